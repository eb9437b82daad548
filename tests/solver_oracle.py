"""The batched-numpy NNK solver: the independent oracle for :func:`deepnnk.solve_nnk` in the tests.

It was the package's second engine until ``benchmarks/bench_solver.py`` measured it 2–4.5× slower
than the compiled one; it stays here because it reaches the same optimum by a different route
(whole-batch iterations with one LAPACK LU solve per support-size group, starting from the
authors' support {k_Sq > tol} and adding every violating candidate at once), so agreement between
the two is evidence that neither has a bug. The benchmark imports it to time it side by side.

    solve_oracle(K_SS [B, k, k], k_Sq [B, k], method="exact" | "prune") -> θ [B, k]

Input checks, the output type and the exact-copy post-step are the package's own
(``deepnnk.solver``), so that only the optimisation differs.
"""

from __future__ import annotations

import numpy as np

from deepnnk.solver import JITTER, _as_batch, _own_copies, _restore, _warn_unconverged

_BUCKETS = (4, 8, 12, 16, 20, 24, 32, 40, 48, 64, 96, 128)
CHUNK = 4096  # rows per batched pass: keeps each iteration's [rows, s, s] temporaries in cache


def _masked_solve(K, b, F, rows_all):
    """Solve K_FF z_F = b_F for the rows ``rows_all`` of the batch (z = 0 off F).

    ``K [n,k,k]``, ``b [n,k]``, ``F [m,k]`` (the supports of those m rows) → ``z [m,k]``.
    Rows are grouped by support size and each group is packed into ``[r, s, s]`` systems with s
    the group's largest support, so the cubic cost follows the supports, not k.
    """
    k = b.shape[1]
    z = np.zeros((rows_all.size, k))
    sizes = F.sum(1)
    order = np.argsort(~F, axis=1, kind="stable")  # support indices first
    lo = 0
    for hi in (*[e for e in _BUCKETS if e < k], k):
        rows = np.nonzero((sizes > lo) & (sizes <= hi))[0]
        lo = hi
        if rows.size == 0:
            continue
        s = int(sizes[rows].max())
        idx = order[rows, :s]
        valid = np.take_along_axis(F[rows], idx, 1)
        g = rows_all[rows]
        if s == k and valid.all():
            Kc = K[g]
        else:
            Kc = K[g[:, None, None], idx[:, :, None], idx[:, None, :]]
            Kc *= valid[:, :, None] & valid[:, None, :]
        diag = np.einsum("rii->ri", Kc)
        scale = np.maximum(diag.max(1, keepdims=True), 1e-300)
        diag += np.where(valid, JITTER * scale, 1.0)  # padding becomes an identity block
        bc = np.where(valid, np.take_along_axis(b[rows_all[rows]], idx, 1), 0.0)
        try:
            zc = np.linalg.solve(Kc, bc[..., None])[..., 0]
        except np.linalg.LinAlgError:
            zc = np.stack(
                [np.linalg.lstsq(a, c, rcond=None)[0] for a, c in zip(Kc, bc, strict=True)]
            )
        zr = np.zeros((rows.size, k))
        np.put_along_axis(zr, idx, np.where(valid, zc, 0.0), 1)
        z[rows] = zr
    return z


def _support_gradient(K, b, theta, F, rows_all):
    """g = K θ − b for the rows ``rows_all``, reading only the support columns of K."""
    k = b.shape[1]
    s = max(int(F.sum(1).max()), 1)
    idx = np.argsort(~F, axis=1, kind="stable")[:, :s]
    t = np.take_along_axis(theta, idx, 1) * np.take_along_axis(F, idx, 1)
    flat = (rows_all * (k * k))[:, None, None] + np.arange(k)[None, :, None] * k + idx[:, None, :]
    return np.einsum("rjs,rs->rj", np.take(K.reshape(-1), flat), t) - b[rows_all]


def _solve_exact(K, b, tol, max_iter):
    n, k = b.shape
    scale = np.maximum(np.abs(b).max(1), 1e-300)
    theta = np.zeros_like(b)
    F = b > tol  # the authors' starting support; the active set corrects it
    active = np.arange(n)
    for _ in range(max_iter):
        if active.size == 0:
            break
        Fa, ta = F[active], theta[active]
        z = _masked_solve(K, b, Fa, active)
        bad = Fa & (z <= 0)
        blocked = bad.any(1)
        # Rows whose support solution is infeasible: move from θ towards z until the first weight
        # reaches zero, and drop the weights that did.
        if blocked.any():
            r = np.nonzero(blocked)[0]
            t, zz, bb = ta[r], z[r], bad[r]
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(bb, t / (t - zz), np.inf)
            alpha = np.clip(ratio.min(1), 0.0, 1.0)
            first = ratio.argmin(1)
            t = t + alpha[:, None] * (zz - t)
            t[np.arange(r.size), first] = 0.0
            # The weights that block the step leave the support; from θ = 0 (α = 0) that is
            # every candidate whose solution is ≤ 0, exactly the authors' prune step.
            drop = bb & (ratio <= alpha[:, None])
            drop[np.arange(r.size), first] = True
            t = np.where(Fa[r], np.maximum(t, 0.0), 0.0)
            ta[r] = np.where(drop, 0.0, t)
            Fa[r] &= ~drop
        # Rows whose support solution is feasible: accept it, then add every candidate with a
        # negative gradient (the KKT condition (2) it violates).
        ok = ~blocked
        done = np.zeros(active.size, dtype=bool)
        if ok.any():
            r = np.nonzero(ok)[0]
            ta[r] = z[r]
            g = _support_gradient(K, b, z[r], Fa[r], active[r])
            add = ~Fa[r] & (g < -tol * scale[active[r], None])
            Fa[r] |= add
            done[r] = ~add.any(1)
        theta[active], F[active] = ta, Fa
        active = active[~done]
    # Weights at the jitter's scale are rounding, not neighbours: a query equal to a candidate
    # must interpolate that candidate alone. Zeroing them moves the KKT residual by ≤ tol.
    theta[theta <= tol * theta.max(1, keepdims=True, initial=0.0)] = 0.0
    _warn_unconverged(active.size, n, max_iter)
    return theta


def _solve_prune(K, b, tol):
    """The original authors' prune-only rule, batched (see the module docstring)."""
    n, k = b.shape
    theta = np.zeros_like(b)
    F = b > tol
    active = np.arange(n)
    for _ in range(k + 1):
        if active.size == 0:
            break
        z = _masked_solve(K, b, F[active], active)
        theta[active] = z
        negative = (F[active] & (z < 0)).any(1)
        F[active] &= z > tol
        active = active[negative]
    theta[theta < tol] = 0.0
    # A candidate identical to the query (k_Sq,j > K_jj·(1 − tol)) gets k_Sq,j / K_jj; the rest 0.
    diag = np.einsum("nii->ni", K)
    hit = (diag > 0) & (b > diag * (1 - tol))
    rows = hit.any(1)
    theta[rows] = np.where(hit[rows], b[rows] / np.where(hit[rows], diag[rows], 1.0), 0.0)
    return theta


def solve_oracle(
    K_SS, k_Sq, method: str = "exact", tol: float = 1e-10, max_iter: int | None = None
):
    """θ ``[B, k]`` (or ``[k]``): the arguments and contract of :func:`deepnnk.solve_nnk`."""
    if method not in ("exact", "prune"):
        raise ValueError(f"method must be 'exact' or 'prune', got {method!r}.")
    K, b, torch_in, meta, squeeze = _as_batch(K_SS, k_Sq)
    iters = max_iter or 20 * K.shape[1] + 10
    parts = []
    for start in range(0, len(b), CHUNK):
        sl = slice(start, start + CHUNK)
        if method == "exact":
            parts.append(_solve_exact(K[sl], b[sl], tol, iters))
        else:
            parts.append(_solve_prune(K[sl], b[sl], tol))
    theta = np.concatenate(parts)
    if method == "exact":
        _own_copies(K, b, theta)
    return _restore(theta, torch_in, meta, squeeze)
