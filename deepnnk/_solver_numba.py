"""Compiled per-query NNK solvers, run over the batch in parallel (numba ``prange``).

The same problems as the batched numpy code in :mod:`deepnnk.solver`: a Lawson–Hanson active set
for "exact" (here started from the empty support and adding at most ``max_add`` of the most
violating candidates per step), the authors' rule for "prune". Each query's small Cholesky
factorisations run in compiled code instead of through one LAPACK call per matrix, whose fixed
cost dominates at k ≈ 50. Imported only when numba is installed.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
def _solve_support(K, b, idx, s, jitter, L, y, z):
    """z[idx[:s]] = (K_FF + jitter·I)⁻¹ b_F by Cholesky, z = 0 elsewhere.

    Returns −1, or the support position whose pivot is not positive: that candidate is (to
    rounding) a combination of the earlier ones, or K is indefinite there (float32 kernels).
    """
    for a in range(s):
        ja = idx[a]
        for c in range(a + 1):
            jc = idx[c]
            acc = K[ja, jc]
            for m in range(c):
                acc -= L[a, m] * L[c, m]
            if a == c:
                acc += jitter
                if acc <= 0.5 * jitter:  # below the ridge: K is indefinite here
                    return a
                L[a, a] = np.sqrt(acc)
            else:
                L[a, c] = acc / L[c, c]
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
    # violating) per step: supports stay small, so the O(s³) refactorisations stay cheap.
    F = np.zeros(k, np.bool_)
    gneg = np.empty(k)
    failures = np.zeros(k, np.int64)
    theta[:] = 0.0
    idx = np.empty(k, np.int64)
    L = np.empty((k, k))
    y = np.empty(k)
    z = np.empty(k)
    converged = False
    for _ in range(max_iter):
        s = 0
        for j in range(k):
            if F[j]:
                idx[s] = j
                s += 1
        bad = _solve_support(K, b, idx, s, jitter, L, y, z)
        if bad >= 0:
            # A dependent candidate adds nothing the others cannot: leave it out.
            # In exact arithmetic only the starting support can be dependent: the active set
            # re-adds the candidate if it is needed. A candidate failing repeatedly means K is
            # indefinite (float32 rounding); leaving it out then stops the cycle.
            F[idx[bad]] = False
            failures[idx[bad]] += 1
            theta[idx[bad]] = 0.0
            continue
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
            for a in range(s):
                j = idx[a]
                r = 2.0
                if z[j] <= 0.0:
                    r = theta[j] / (theta[j] - z[j]) if theta[j] - z[j] > 0 else 0.0
                theta[j] = max(theta[j] + alpha * (z[j] - theta[j]), 0.0)
                if j == blocking or r <= alpha:
                    theta[j] = 0.0
                    F[j] = False
            continue
        for a in range(s):
            theta[idx[a]] = z[idx[a]]
        n_viol = 0
        for j in range(k):
            gneg[j] = 0.0
            if not F[j] and failures[j] < 3:
                g = -b[j]
                for a in range(s):
                    g += K[j, idx[a]] * theta[idx[a]]
                if g < -tol * scale:
                    gneg[j] = g
                    n_viol += 1
        if n_viol == 0:
            converged = True
            break
        for _a in range(min(n_viol, max_add)):
            best = 0
            for j in range(1, k):
                if gneg[j] < gneg[best]:
                    best = j
            F[best] = True
            gneg[best] = 0.0
    tmax = 0.0
    for j in range(k):
        tmax = max(tmax, theta[j])
    for j in range(k):
        if theta[j] <= tol * tmax:
            theta[j] = 0.0
    return converged


def _exact_batch(K, b, tol, max_iter, rel_jitter, max_add):
    """θ ``[n, k]`` and a converged flag ``[n]`` for ``K [n, k, k]``, ``b [n, k]`` (float64)."""
    n, k = b.shape
    theta = np.zeros((n, k))
    ok = np.zeros(n, np.bool_)
    for i in prange(n):
        ok[i] = _exact_one(K[i], b[i], tol, max_iter, rel_jitter, theta[i], max_add)
    return theta, ok


solve_exact = njit(cache=True, parallel=True)(_exact_batch)
solve_exact_serial = njit(cache=True)(_exact_batch)


@njit(cache=True)
def _prune_one(K, b, tol, rel_jitter, theta):
    k = b.size
    dmax = 1e-300
    hit = False
    for j in range(k):
        dmax = max(dmax, K[j, j])
        hit = hit or b[j] > 1 - tol
    theta[:] = 0.0
    if hit:
        for j in range(k):
            if b[j] > 1 - tol:
                theta[j] = b[j]
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
        bad = _solve_support(K, b, idx, s, jitter, L, y, theta)
        if bad >= 0:
            F[idx[bad]] = False
            continue
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


def _prune_batch(K, b, tol, rel_jitter):
    n, k = b.shape
    theta = np.zeros((n, k))
    for i in prange(n):
        _prune_one(K[i], b[i], tol, rel_jitter, theta[i])
    return theta


solve_prune = njit(cache=True, parallel=True)(_prune_batch)
solve_prune_serial = njit(cache=True)(_prune_batch)
