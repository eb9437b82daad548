"""Compiled per-query NNK solvers, run over the batch in parallel (numba ``prange``).

The engine of :func:`deepnnk.solve_nnk`: a Lawson–Hanson active set for "exact" and the authors'
rule for "prune". Each query's small Cholesky factorisations run in compiled code instead of
through one LAPACK call per matrix, whose fixed cost dominates at k ≈ 50 (the batched-numpy
version, now the tests' oracle in ``tests/solver_oracle.py``, is several times slower:
``benchmarks/bench_solver.py``).

"exact" starts from the empty support and adds at most ``max_add`` of the most violating
candidates per step. The support is kept in joining order, so the Cholesky factor is updated, not
recomputed: new members append rows, a member leaving recomputes the rows after it. A float32
kernel is slightly indefinite, so a candidate can violate (2) while lying, to rounding, in the
span of the support, where no larger support can be factorised; it is traded in for members
instead (``_swap_in``). ``benchmarks/stress_solver.py`` exercises those paths.

Every routine reads K only through its lower triangle (``K[i, j]`` with i ≥ j), so a K_SS that is
symmetric up to rounding defines one problem; :func:`check_kernels` bounds that rounding.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True)
def _check_one(K):
    """For one ``K [k, k]``: (all entries finite, max_ij |K_ij − K_ji|, max_ij |K_ij|)."""
    k = K.shape[0]
    ok, asym, scale = True, 0.0, 0.0
    for i in range(k):
        for j in range(k):
            v = K[i, j]
            ok = ok and np.isfinite(v)
            scale = max(scale, abs(v))
            if j < i:
                asym = max(asym, abs(v - K[j, i]))
    return ok, asym, scale


@njit(cache=True, inline="always")
def _factor(K, idx, s, start, keep, jitter, L, dependent):
    """Rows ``start``..s−1 of the Cholesky factor L of K_FF + jitter·I, F = idx[:s] in that order
    (rows < start are still valid from an earlier call: row a depends on idx[:a+1] alone).

    A candidate at a position ≥ ``keep`` whose pivot falls below the ridge — to rounding a
    combination of the earlier ones, with K indefinite there (float32 kernels) — is taken out of
    idx and flagged in ``dependent``. Returns (the new s, −1), or (s, a) if that happens at a
    position a < keep, where nothing is skipped: the caller decides.
    """
    w = start
    for a in range(start, s):
        ja = idx[a]
        ok = True
        for c in range(w + 1):
            jc = ja if c == w else idx[c]
            acc = K[ja, jc] if ja >= jc else K[jc, ja]  # the lower triangle
            for m in range(c):
                acc -= L[w, m] * L[c, m]
            if c < w:
                L[w, c] = acc / L[c, c]
            else:
                acc += jitter
                ok = acc > 0.5 * jitter  # below the ridge: K is indefinite here
                if ok:
                    L[w, w] = np.sqrt(acc)
        if ok:
            idx[w] = ja
            w += 1
        elif a < keep:
            return s, a
        else:
            dependent[ja] = True
    return w, -1


@njit(cache=True, inline="always")
def _substitute(b, idx, s, L, y, z):
    """z[idx[:s]] = (L Lᵀ)⁻¹ b_F, z = 0 elsewhere."""
    for a in range(s):
        acc = b[idx[a]]
        for m in range(a):
            acc -= L[a, m] * y[m]
        y[a] = acc / L[a, a]
    z[:] = 0.0
    for a in range(s - 1, -1, -1):
        acc = y[a]
        for m in range(a + 1, s):
            acc -= L[m, a] * z[idx[m]]
        z[idx[a]] = acc / L[a, a]


@njit(cache=True, inline="always")
def _swap_in(K, j, idx, s, theta, L, y, z, jitter, dependent):
    """Bring candidate j, with g_j < 0 but (to rounding) in the span of the support F = idx[:s],
    into the support, at a stationary point of F (g_F = 0) with L its factor.

    Along d = (d_F = −K_FF⁻¹K_Fj, d_j = 1) the gradient on F stays 0 and the objective falls at
    rate g_j, curving by j's pivot ≤ 0: step until the first member reaches 0 and drop it. Repeat
    until j's pivot against what is left is positive, then append j (its row of L is y). The
    objective falls at every step. Returns the new s, or −1 where K is too indefinite to go on
    (no member bounds the step, or the reduced support cannot be refactorised); ``theta``,
    ``idx`` and L are then spoilt and the caller restores them.
    """
    while True:
        pivot = K[j, j] + jitter
        for a in range(s):  # y = L⁻¹ K_Fj
            i = idx[a]
            acc = K[j, i] if j > i else K[i, j]
            for m in range(a):
                acc -= L[a, m] * y[m]
            y[a] = acc / L[a, a]
            pivot -= y[a] * y[a]
        if pivot > 0.5 * jitter:
            for a in range(s):
                L[s, a] = y[a]
            L[s, s] = np.sqrt(pivot)
            idx[s] = j
            return s + 1
        for a in range(s - 1, -1, -1):  # z = L⁻ᵀ y = K_FF⁻¹ K_Fj, by support position
            acc = y[a]
            for m in range(a + 1, s):
                acc -= L[m, a] * z[m]
            z[a] = acc / L[a, a]
        leave = -1
        step = 0.0
        for a in range(s):
            if z[a] > 0.0 and (leave < 0 or theta[idx[a]] / z[a] < step):
                leave = a
                step = theta[idx[a]] / z[a]
        if leave < 0:
            return -1
        for a in range(s):
            theta[idx[a]] = max(theta[idx[a]] - step * z[a], 0.0)
        theta[idx[leave]] = 0.0
        theta[j] += step
        for a in range(leave, s - 1):
            idx[a] = idx[a + 1]
        s, bad = _factor(K, idx, s - 1, leave, s - 1, jitter, L, dependent)
        if bad >= 0:
            return -1


@njit(cache=True)
def _exact_one(K, b, tol, max_iter, rel_jitter, theta, max_add):
    k = b.size
    scale = 1e-300
    dmax = 1e-300
    for j in range(k):
        scale = max(scale, abs(b[j]))
        dmax = max(dmax, K[j, j])
    jitter = rel_jitter * dmax
    # Lawson–Hanson from the empty support, adding at most ``max_add`` candidates (the most
    # violating) per step: supports stay small. The support is kept in the order its members
    # joined, so that after adding candidates only their rows of the Cholesky factor are new, and
    # after dropping members only the rows from the first one dropped are recomputed.
    idx = np.empty(k, np.int64)  # the support idx[:s], in joining order
    F = np.zeros(k, np.bool_)  # membership of the support
    # Candidates found (to rounding) in the span of the support when they tried to join: adding
    # members keeps them there, so they stay out until a member leaves.
    dependent = np.zeros(k, np.bool_)
    ignored = np.zeros(k, np.bool_)  # see the swap below: never set when K is PSD
    gswap = 0.0
    saved_theta = np.empty(k)
    saved_idx = np.empty(k, np.int64)
    gneg = np.empty(k)
    L = np.empty((k, k))
    y = np.empty(k)
    z = np.empty(k)
    theta[:] = 0.0
    s = 0
    keep = 0  # idx[:keep] held the last accepted solution; the rest joined since
    start = 0  # rows of L from here on are out of date
    converged = False
    for _ in range(max_iter):
        s, bad = _factor(K, idx, s, start, keep, jitter, L, dependent)
        if bad >= 0:
            # A member whose pivot vanished once another left (rounding, or K indefinite in
            # float32): it adds nothing the others cannot, so it leaves too, at weight 0.
            j = idx[bad]
            theta[j] = 0.0
            for a in range(bad, s - 1):
                idx[a] = idx[a + 1]
            s -= 1
            keep -= 1
            start = bad
            continue
        for j in range(k):
            F[j] = False
        for a in range(s):
            F[idx[a]] = True
        _substitute(b, idx, s, L, y, z)
        alpha = 1.0
        blocking = -1
        for a in range(s):
            j = idx[a]
            if z[j] <= 0.0:
                r = theta[j] / (theta[j] - z[j]) if theta[j] - z[j] > 0 else 0.0
                if blocking < 0 or r < alpha:
                    alpha = r
                    blocking = j
        if blocking >= 0:
            # Step to the boundary and drop the weights that reach it (from θ = 0: every
            # candidate whose solution is ≤ 0, the authors' prune step).
            w = 0
            start = s
            for a in range(s):
                j = idx[a]
                r = 2.0
                if z[j] <= 0.0:
                    r = theta[j] / (theta[j] - z[j]) if theta[j] - z[j] > 0 else 0.0
                theta[j] = max(theta[j] + alpha * (z[j] - theta[j]), 0.0)
                if j == blocking or r <= alpha:
                    theta[j] = 0.0
                    F[j] = False
                    start = min(start, a)
                else:
                    idx[w] = j
                    w += 1
            s = w
            keep = s
            for j in range(k):  # a smaller support may no longer span them
                dependent[j] = False
            continue
        for a in range(s):
            theta[idx[a]] = z[idx[a]]
        keep = s
        start = s
        n_viol = 0
        swap = -1  # the most violating of the candidates flagged dependent
        for j in range(k):
            gneg[j] = 0.0
            if not F[j] and not ignored[j]:
                g = -b[j]
                for a in range(s):
                    i = idx[a]  # the lower triangle, as in the factorisation
                    g += (K[j, i] if j > i else K[i, j]) * theta[i]
                if g < -tol * scale:
                    if not dependent[j]:
                        gneg[j] = g
                        n_viol += 1
                    elif swap < 0 or g < gswap:
                        swap = j
                        gswap = g
        if n_viol == 0 and swap >= 0:
            # Only candidates in the span of the support still violate (2): impossible in exact
            # arithmetic (g_j would be a combination of g_F = 0), but a float32 kernel is a
            # little indefinite. Trade members for the most violating one (see _swap_in).
            saved_theta[:] = theta
            saved_idx[:] = idx
            s_new = _swap_in(K, swap, idx, s, theta, L, y, z, jitter, dependent)
            if s_new < 0:  # K is not PSD enough here to make progress: leave j out
                ignored[swap] = True
                theta[:] = saved_theta
                idx[:] = saved_idx
                start = 0
                continue
            s = s_new
            keep = s
            start = s
            for i in range(k):  # a smaller support may no longer span them
                dependent[i] = False
            continue
        if n_viol == 0:
            converged = True
            break
        # Most violating first: it joins the factor right after the current members, where its
        # pivot (squared distance to their span) is at least g_j²/K(q, q) in exact arithmetic.
        for _a in range(min(n_viol, max_add)):
            best = 0
            for j in range(1, k):
                if gneg[j] < gneg[best]:
                    best = j
            F[best] = True
            gneg[best] = 0.0
            idx[s] = best
            s += 1
    tmax = 0.0
    for j in range(k):
        tmax = max(tmax, theta[j])
    for j in range(k):
        if theta[j] <= tol * tmax:
            theta[j] = 0.0
    return converged


@njit(cache=True, inline="always")
def _is_hit(K_jj, b_j, tol):
    """The prune rule's test "the query is candidate j": the authors' k_Sq,j > 1 − tol made
    relative to K(s_j, s_j), so that it means the same for c·K (bit for bit so when K_jj = 1)."""
    return K_jj > 0.0 and b_j > K_jj * (1 - tol)


@njit(cache=True)
def _prune_one(K, b, tol, rel_jitter, theta):
    k = b.size
    dmax = 1e-300
    hit = False
    for j in range(k):
        dmax = max(dmax, K[j, j])
        hit = hit or _is_hit(K[j, j], b[j], tol)
    theta[:] = 0.0
    if hit:
        # Each copy of the query gets θ_j = k_Sq,j / K_jj (the authors' θ_j = k_Sq,j when K_jj = 1).
        for j in range(k):
            if _is_hit(K[j, j], b[j], tol):
                theta[j] = b[j] / K[j, j]
        return
    jitter = rel_jitter * dmax
    F = b > tol
    idx = np.empty(k, np.int64)
    L = np.empty((k, k))
    y = np.empty(k)
    for _ in range(k + 1):
        s = 0
        for j in range(k):
            if F[j]:
                idx[s] = j
                s += 1
        s, bad = _factor(K, idx, s, 0, s, jitter, L, F)  # keep = s: nothing skipped, F untouched
        if bad >= 0:
            F[idx[bad]] = False
            continue
        _substitute(b, idx, s, L, y, theta)
        negative = False
        for a in range(s):
            j = idx[a]
            negative = negative or theta[j] < 0
            F[j] = theta[j] > tol
        if not negative:
            break
    for j in range(k):
        if theta[j] < tol:
            theta[j] = 0.0


def _row_loops(parallel: bool):
    """The loops over a batch's rows, compiled with ``parallel`` (rows shared among numba's
    threads) or without it (for small batches, where starting the threads costs more)."""

    def check_kernels(K):
        """Per matrix of ``K [n, k, k]``: all entries finite ``[n]``, max_ij |K_ij − K_ji| ``[n]``
        and max_ij |K_ij| ``[n]``, in one pass over K and without temporaries."""
        n = K.shape[0]
        finite = np.ones(n, np.bool_)
        asym = np.zeros(n)
        scale = np.zeros(n)
        for r in prange(n):
            finite[r], asym[r], scale[r] = _check_one(K[r])
        return finite, asym, scale

    def solve_exact(K, b, tol, max_iter, rel_jitter, max_add):
        """θ ``[n, k]`` and a converged flag ``[n]`` for ``K [n, k, k]``, ``b [n, k]`` (float64)."""
        n, k = b.shape
        theta = np.zeros((n, k))
        ok = np.zeros(n, np.bool_)
        for i in prange(n):
            ok[i] = _exact_one(K[i], b[i], tol, max_iter, rel_jitter, theta[i], max_add)
        return theta, ok

    def solve_prune(K, b, tol, rel_jitter):
        """θ ``[n, k]`` of the authors' rule for ``K [n, k, k]``, ``b [n, k]`` (float64)."""
        n, k = b.shape
        theta = np.zeros((n, k))
        for i in prange(n):
            _prune_one(K[i], b[i], tol, rel_jitter, theta[i])
        return theta

    loops = (check_kernels, solve_exact, solve_prune)
    for fn in loops:
        # numba's on-disk cache files a function under its qualified name and tells overloads
        # apart by signature, not by compile flags: without distinct names, whichever variant
        # was compiled first is loaded for both (a serial call then paid a parallel launch).
        fn.__qualname__ += "_parallel" if parallel else "_serial"
    return tuple(njit(cache=True, parallel=parallel)(fn) for fn in loops)


check_kernels, solve_exact, solve_prune = _row_loops(parallel=True)
check_kernels_serial, solve_exact_serial, solve_prune_serial = _row_loops(parallel=False)
