r"""Batched non-negative kernel regression (NNK) weights.

For every query in a batch we solve

    θ* = argmin_{θ ≥ 0}  ½ θᵀ K_SS θ − k_Sqᵀ θ                                     (1)

where K_SS ``[k, k]`` is the kernel among the query's k candidates and k_Sq ``[k]`` the kernel
between the candidates and the query. Because K is a Gram matrix, K = ZᵀZ, (1) is the
non-negative least-squares problem min_{θ≥0} ½‖z_q − Z_S θ‖², and its KKT conditions are

    θ ≥ 0,   g = K_SS θ − k_Sq ≥ 0,   θ ⊙ g = 0.                                   (2)

``method="exact"`` is a Lawson–Hanson primal active-set method, compiled with numba and run over
the batch in parallel (:mod:`deepnnk._solver_numba`): from the empty support, each step solves the
equality-constrained problem on the current support by Cholesky, steps back to the boundary when a
weight would turn negative, and otherwise adds the (at most ``MAX_ADD``) candidates whose gradient
is most negative. The objective falls strictly at every support change, so it terminates at a
point satisfying (2). Float32 kernels are indefinite by ~1e-7, so a candidate can violate (2) while
lying, to rounding, in the span of the support; it is traded in for members instead (see
:mod:`deepnnk._solver_numba`). ``benchmarks/stress_solver.py`` checks (2) on 10,000 random
instances against scipy's NNLS; ``tests/solver_oracle.py`` keeps the former batched-numpy engine as
the tests' second, independent solver.

``method="prune"`` replicates the original authors' rule, which only ever removes candidates.
It is kept to reproduce their numbers; it can stop at a point that violates (2).

K_SS must be symmetric (to rounding, see ``SYMMETRY_RTOL``): the solver reads its lower triangle.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ._validation import is_torch

try:
    from . import _solver_numba as _nb
except ImportError as e:  # numba is a dependency of deepnnk; only a broken install lacks it
    raise ImportError(
        f"deepnnk's NNK solver is compiled with numba, which failed to import ({e}): "
        "pip install numba"
    ) from e

# Relative ridge added on the support. k_Sq lies in the range of K_SS (both come from one Gram
# matrix), so the ridge solution stays bounded when K_SS is singular (duplicate candidates); it
# moves the objective by ~1e-12·‖θ‖², far below the 1e-9 optimality scale.
JITTER = 1e-12
# Candidates added per active-set step. Starting from the empty support and adding the 6 most
# violating candidates at a time keeps the refactorised supports small; 1 (pure Lawson–Hanson) and
# "all" (the prune-like start) are both about 2× slower on CIFAR features
# (benchmarks/bench_solver.py prints all three side by side).
MAX_ADD = 6
# Largest |K_ij − K_ji| accepted, relative to max|K| of the same matrix. Kernels computed in
# float64 are symmetric to ~1e-16 and a symmetric bmm/gemm in float32 (deepnnk.classifier's
# candidate_kernels) gives bitwise-symmetric K here; a float32 gemm whose blocking sums K_ij and
# K_ji in different orders differs by ~√d·6e-8 ≈ 1e-6 at d = 512. 1e-5 accepts that rounding with
# room, and rejects a matrix that is not a kernel among the candidates (a per-row Gaussian
# bandwidth, K(S, q) for K(S, S), a transposed batch: asymmetry ≥ 1e-3) and half-precision kernels
# (~1e-3), which must be symmetrised first. Within the tolerance the lower triangle is the problem.
SYMMETRY_RTOL = 1e-5
# Batches with fewer K entries than this are solved in one thread: a parallel launch measured
# ~35 ms when other processes held both cores (load 5 on 2 cores), while below 1e6 entries
# (400 queries at k = 50) the serial loop takes 0.2–15 ms.
_PARALLEL_MIN = 1_000_000
_COPY_CHUNK = 4096


def _as_batch(K_SS, k_Sq):
    """Validate and convert to C-contiguous float64 numpy ``[B, k, k]``, ``[B, k]``."""
    torch_in = is_torch(K_SS) or is_torch(k_Sq)
    meta = None
    if torch_in:
        ref = K_SS if is_torch(K_SS) else k_Sq
        meta = (ref.device, ref.dtype if torch.is_floating_point(ref) else torch.float64)
        K_SS = K_SS.detach().cpu().numpy() if is_torch(K_SS) else K_SS
        k_Sq = k_Sq.detach().cpu().numpy() if is_torch(k_Sq) else k_Sq
    K = np.ascontiguousarray(K_SS, dtype=np.float64)
    b = np.ascontiguousarray(k_Sq, dtype=np.float64)
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
    check = _nb.check_kernels if K.size >= _PARALLEL_MIN else _nb.check_kernels_serial
    finite, asym, scale = check(K)  # one compiled pass over K, no [B, k, k] temporary
    if not (finite.all() and np.isfinite(b).all()):
        raise ValueError("K_SS or k_Sq contains NaN or inf; check the features and the kernel.")
    bad = asym > SYMMETRY_RTOL * scale
    if bad.any():
        rows = np.nonzero(bad)[0]
        worst = rows[np.argmax(asym[rows] / scale[rows])]
        raise ValueError(
            f"K_SS is not symmetric: in {rows.size} of {len(K)} matrices |K_ij − K_ji| exceeds "
            f"{SYMMETRY_RTOL:g}·max|K| (matrix {worst}: {asym[worst] / scale[worst]:.2g}·max|K|). "
            "It must be the kernel among each query's candidates, K(S, S) — not K(S, q), a "
            "kernel with a per-row bandwidth, or a transposed batch. If it is, but rounding (half "
            "precision) broke the symmetry, pass (K_SS + K_SS.transpose(0, 2, 1)) / 2."
        )
    return K, b, torch_in, meta, squeeze


def _restore(theta, torch_in, meta, squeeze):
    if squeeze:
        theta = theta[0]
    if torch_in:
        device, dtype = meta
        return torch.from_numpy(theta).to(device=device, dtype=dtype)
    return theta


def solve_nnk(K_SS, k_Sq, method: str = "exact", tol: float = 1e-10, max_iter: int | None = None):
    """NNK weights for a batch of queries: argmin_{θ≥0} ½θᵀK_SSθ − k_Sqᵀθ, row by row.

    Parameters
    ----------
    K_SS : ``[B, k, k]`` kernel among each query's candidates: symmetric (to ``SYMMETRY_RTOL``
        relative to its largest entry, else ValueError) and positive semi-definite.
    k_Sq : ``[B, k]`` kernel between each query and its candidates.
    method : "exact" (KKT-exact active set) or "prune" (the original authors' rule).
    tol : "exact": a candidate joins the support when its gradient is below −tol·max(k_Sq), and
        weights ≤ tol·max(θ) are zeroed at the end; "prune": candidates with k_Sq ≤ tol are never
        used, weights ≤ tol are pruned, and k_Sq,j > K_jj·(1 − tol) marks candidate j as the query.
    max_iter : iteration cap per query for "exact" (default 20·k + 10); unconverged rows warn.

    Returns
    -------
    θ ``[B, k]`` ≥ 0 — numpy in, numpy out (float64); torch in, torch out (input dtype/device).
    A single problem ``[k, k]``, ``[k]`` is accepted too and gives ``[k]``. Inputs of any float
    dtype are solved in float64.
    """
    if method not in ("exact", "prune"):
        raise ValueError(f"method must be 'exact' or 'prune', got {method!r}.")
    K, b, torch_in, meta, squeeze = _as_batch(K_SS, k_Sq)
    parallel = K.size >= _PARALLEL_MIN
    if method == "exact":
        iters = max_iter or 20 * K.shape[1] + 10
        run = _nb.solve_exact if parallel else _nb.solve_exact_serial
        theta, ok = run(K, b, float(tol), int(iters), JITTER, MAX_ADD)
        _warn_unconverged(int((~ok).sum()), len(ok), iters)
        _own_copies(K, b, theta)
    else:
        run = _nb.solve_prune if parallel else _nb.solve_prune_serial
        theta = run(K, b, float(tol), JITTER)
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
    for start in range(0, len(candidates), _COPY_CHUNK):  # bounds the [chunk, k, k] temporary
        sl = candidates[start : start + _COPY_CHUNK]
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
    g = np.einsum("nij,nj->ni", K, t) - b
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
