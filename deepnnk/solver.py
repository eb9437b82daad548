r"""Batched non-negative kernel regression (NNK) weights.

For every query in a batch we solve

    θ* = argmin_{θ ≥ 0}  ½ θᵀ K_SS θ − k_Sqᵀ θ                                     (1)

where K_SS ``[k, k]`` is the kernel among the query's k candidates and k_Sq ``[k]`` the kernel
between the candidates and the query. Because K is a Gram matrix, K = ZᵀZ, (1) is the
non-negative least-squares problem min_{θ≥0} ½‖z_q − Z_S θ‖², and its KKT conditions are

    θ ≥ 0,   g = K_SS θ − k_Sq ≥ 0,   θ ⊙ g = 0.                                   (2)

``method="exact"`` is a Lawson–Hanson primal active-set method run on the whole batch at once:
every iteration solves the equality-constrained problem on each row's current support with one
batched LU solve (rows grouped by support size so small supports cost little), steps back to the
boundary when a weight would turn negative, and adds every candidate whose gradient is negative.
The objective falls strictly at every support change, so it terminates at a point satisfying (2).

``method="prune"`` replicates the original authors' rule, which only ever removes candidates.
It is kept to reproduce their numbers; it can stop at a point that violates (2).
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ._validation import is_torch

# Relative ridge added on the support. k_Sq lies in the range of K_SS (both come from one Gram
# matrix), so the ridge solution stays bounded when K_SS is singular (duplicate candidates); it
# moves the objective by ~1e-12·‖θ‖², far below the 1e-9 optimality scale.
JITTER = 1e-12
# Compiled engine: candidates added per active-set step. Starting from the empty support and
# adding the 6 most violating candidates at a time keeps the refactorised supports small; 1 (pure
# Lawson–Hanson) and "all" (the prune-like start) are both about 2× slower on CIFAR features
# (benchmarks/bench_solver.py prints all three side by side).
MAX_ADD = 6
_BUCKETS = (4, 8, 12, 16, 20, 24, 32, 40, 48, 64, 96, 128)
# Python threads over chunks of the numpy engine; measured slower than 1 on this 2-core machine
# (benchmarks/bench_solver.py), so opt-in.
_THREADS = int(os.environ.get("DEEPNNK_SOLVER_THREADS", "1"))
CHUNK = 4096  # rows per task
_POOL = None


def _pool():
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(_THREADS)
    return _POOL


def _as_batch(K_SS, k_Sq):
    """Validate and convert to float64 numpy ``[B, k, k]``, ``[B, k]``."""
    torch_in = is_torch(K_SS) or is_torch(k_Sq)
    meta = None
    if torch_in:
        ref = K_SS if is_torch(K_SS) else k_Sq
        meta = (ref.device, ref.dtype if torch.is_floating_point(ref) else torch.float64)
        K_SS = K_SS.detach().cpu().numpy() if is_torch(K_SS) else K_SS
        k_Sq = k_Sq.detach().cpu().numpy() if is_torch(k_Sq) else k_Sq
    K = np.asarray(K_SS, dtype=np.float64)
    b = np.asarray(k_Sq, dtype=np.float64)
    squeeze = False
    if K.ndim == 2 and b.ndim == 1:
        K, b, squeeze = K[None], b[None], True
    if K.ndim != 3 or b.ndim != 2 or K.shape[1] != K.shape[2] or K.shape[:2] != b.shape:
        raise ValueError(
            f"K_SS must be [B, k, k] and k_Sq [B, k] (or [k, k] and [k]); got {K.shape} and "
            f"{b.shape}."
        )
    if K.shape[0] == 0 or K.shape[1] == 0:
        raise ValueError(f"empty batch: K_SS has shape {K.shape}.")
    if not (np.isfinite(K).all() and np.isfinite(b).all()):
        raise ValueError("K_SS or k_Sq contains NaN or inf; check the features and the kernel.")
    return K, b, torch_in, meta, squeeze


def _restore(theta, torch_in, meta, squeeze):
    if squeeze:
        theta = theta[0]
    if torch_in:
        device, dtype = meta
        return torch.from_numpy(theta).to(device=device, dtype=dtype)
    return theta


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


def _gradient(K, theta, b):
    return np.einsum("nij,nj->ni", K, theta) - b


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
    # A candidate identical to the query (K = 1) takes its kernel value; the rest get 0.
    hit = b > 1 - tol
    rows = hit.any(1)
    theta[rows] = np.where(hit[rows], b[rows], 0.0)
    return theta


def _numba_module():
    if os.environ.get("DEEPNNK_NO_NUMBA", "") not in ("", "0"):
        return None
    try:
        from . import _solver_numba
    except ImportError:
        return None
    return _solver_numba


def solve_nnk(
    K_SS,
    k_Sq,
    method: str = "exact",
    tol: float = 1e-10,
    max_iter: int | None = None,
    engine: str = "auto",
):
    """NNK weights for a batch of queries: argmin_{θ≥0} ½θᵀK_SSθ − k_Sqᵀθ, row by row.

    Parameters
    ----------
    K_SS : ``[B, k, k]`` kernel among each query's candidates (symmetric PSD, diagonal > 0).
    k_Sq : ``[B, k]`` kernel between each query and its candidates.
    method : "exact" (KKT-exact active set) or "prune" (the original authors' rule).
    tol : "exact": a candidate joins the support when its gradient is below −tol·max(k_Sq), and
        weights ≤ tol·max(θ) are zeroed at the end; "prune": weights ≤ tol are pruned.
    max_iter : iteration cap per query for "exact" (default 20·k + 10); unconverged rows warn.
    engine : "numba" (compiled per-query loops over the batch in parallel; the default when numba
        is installed), "numpy" (batched LAPACK calls), or "auto". Both give the same θ up to
        rounding; ``DEEPNNK_NO_NUMBA=1`` forces numpy.

    Returns
    -------
    θ ``[B, k]`` ≥ 0 — numpy in, numpy out (float64); torch in, torch out (input dtype/device).
    A single problem ``[k, k]``, ``[k]`` is accepted too and gives ``[k]``.
    """
    K, b, torch_in, meta, squeeze = _as_batch(K_SS, k_Sq)
    if method not in ("exact", "prune"):
        raise ValueError(f"method must be 'exact' or 'prune', got {method!r}.")
    if engine not in ("auto", "numba", "numpy"):
        raise ValueError(f"engine must be 'auto', 'numba' or 'numpy', got {engine!r}.")
    nb = _numba_module() if engine in ("auto", "numba") else None
    if engine == "numba" and nb is None:
        raise ImportError("engine='numba' needs numba: pip install numba (or use engine='numpy').")
    iters = max_iter or 20 * K.shape[1] + 10
    if nb is not None:
        K = np.ascontiguousarray(K)
        b = np.ascontiguousarray(b)
        # Threads cost more than they save on a few small problems.
        parallel = K.shape[0] * K.shape[1] ** 2 >= 20_000
        if method == "exact":
            run = nb.solve_exact if parallel else nb.solve_exact_serial
            theta, ok = run(K, b, float(tol), int(iters), JITTER, MAX_ADD)
            _warn_unconverged(int((~ok).sum()), len(ok), iters)
            _own_copies(K, b, theta)
        else:
            run = nb.solve_prune if parallel else nb.solve_prune_serial
            theta = run(K, b, float(tol), JITTER)
        return _restore(theta, torch_in, meta, squeeze)
    if method == "exact":
        solve = lambda sl: _solve_exact(K[sl], b[sl], tol, iters)  # noqa: E731
    else:
        solve = lambda sl: _solve_prune(K[sl], b[sl], tol)  # noqa: E731
    # Chunks keep each iteration's temporaries in cache.
    n = K.shape[0]
    slices = [slice(i, i + CHUNK) for i in range(0, n, CHUNK)]
    if len(slices) == 1 or _THREADS == 1:
        parts = [solve(sl) for sl in slices]
    else:
        parts = list(_pool().map(solve, slices))
    theta = np.concatenate(parts)
    if method == "exact":
        _own_copies(K, b, theta)
    return _restore(theta, torch_in, meta, squeeze)


def _own_copies(K, b, theta, rel_tol: float = 1e-12) -> None:
    """Rows whose query is one of its candidates (column j of K_SS = k_Sq) get θ = e_j·b_j/K_jj.

    That point is exactly optimal (its gradient is zero) and is what interpolation must return;
    the ridge of the support solve would otherwise spread ~1e-9 of the weight (more when K_SS is
    singular) over other optimal-looking candidates. Edits ``theta`` in place.
    """
    # Only a candidate with k_Sq,j = K_jj can be the query's copy: check those rows alone.
    diag = np.einsum("nii->ni", K)
    near = np.abs(diag - b) <= rel_tol * np.maximum(np.abs(b).max(1, keepdims=True), 1e-300)
    candidates = np.nonzero(near.any(1))[0]
    for start in range(0, len(candidates), CHUNK):
        sl = candidates[start : start + CHUNK]
        Kc, bc = K[sl], b[sl]
        gap = np.abs(Kc - bc[:, :, None]).max(1)  # [n, k]: max_l |K_lj − b_l| per column j
        scale = np.maximum(np.abs(bc).max(1, keepdims=True), 1e-300)
        hit = gap <= rel_tol * scale
        rows = np.nonzero(hit.any(1))[0]
        if rows.size:
            j = hit[rows].argmax(1)
            t = np.zeros((rows.size, b.shape[1]))
            t[np.arange(rows.size), j] = bc[rows, j] / Kc[rows, j, j]
            theta[sl[rows]] = t


def _warn_unconverged(bad: int, n: int, max_iter: int) -> None:
    if bad:
        warnings.warn(
            f"solve_nnk: {bad} of {n} rows did not converge in {max_iter} iterations; "
            "their kkt_residual shows how far they are. Raise max_iter.",
            RuntimeWarning,
            stacklevel=3,
        )


def kkt_residual(K_SS, k_Sq, theta):
    """The largest violation of the KKT conditions (2), per query: ``[B]`` (or a float).

    r = max_j |min(K_jj·θ_j, g_j)| / max_j |k_Sq,j|, with g = K_SSθ − k_Sq. It is zero exactly at
    the optimum, invariant to rescaling the kernel, and ≤ 1e-9 means solved.
    """
    K, b, torch_in, meta, squeeze = _as_batch(K_SS, k_Sq)
    if is_torch(theta):
        theta = theta.detach().cpu().numpy()
    t = np.asarray(theta, dtype=np.float64).reshape(b.shape)
    g = _gradient(K, t, b)
    diag = np.einsum("nii->ni", K)
    r = np.abs(np.minimum(diag * t, g)).max(1) / np.maximum(np.abs(b).max(1), 1e-300)
    if squeeze:
        return float(r[0])
    return torch.from_numpy(r).to(meta[0]) if torch_in else r


def nnk_objective(K_SS, k_Sq, theta) -> np.ndarray:
    """½θᵀK_SSθ − k_Sqᵀθ per query, ``[B]`` float64."""
    K, b, _, _, _ = _as_batch(K_SS, k_Sq)
    t = np.asarray(theta.detach().cpu().numpy() if is_torch(theta) else theta, np.float64)
    t = t.reshape(b.shape)
    return 0.5 * np.einsum("ni,nij,nj->n", t, K, t) - np.einsum("ni,ni->n", b, t)
