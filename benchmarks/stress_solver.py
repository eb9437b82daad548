"""Stress test of solve_nnk on random NNK problems, checked against scipy.optimize.nnls.

    python benchmarks/stress_solver.py          # 10,000+ instances, about a minute on 2 cores
    python benchmarks/stress_solver.py --quick  # 1,000+

Each instance is a query q and k candidates S (k from 1 to 200), of one of these kinds:

    plain           features of dimension > k (K_SS of full rank)
    duplicates      about a third of the candidates are exact copies of others
    rank_deficient  features of dimension < k; 30% of them in a dense cloud of dimension ≤ 5, so
                    that the nearest candidates are nearly parallel
    near_zero       up to a third of the candidates (and sometimes q) have norm ~1e-8, not 0
    query_in        q is one of the candidates (sometimes twice)
    mixed           all of the above at once

with the cosine or the Gaussian kernel (σ = farthest candidate / 3, as the classifier), passed to
solve_nnk as numpy float64 / float32 or torch float64 / float32, in batches of 1 to 32 problems of
one k (a batch of one sometimes as a single ``[k, k]``, ``[k]`` problem; every 20th batch large
enough for solve_nnk's threaded loops). The problem solved is the one passed, rounded values
included (float64 kernels from float32 ones). torch float32 inputs give θ in float32 (the
solver's contract): that output must equal the float64 solution rounded, and the checks below
measure the float64 solution.

For each instance it records: a crash (any exception, or a "did not converge" warning),
objective(θ) − objective(θ_nnls), and kkt_residual(θ). θ_nnls is scipy's NNLS on explicit
features with ZᵀZ = the Gram matrix of {q} ∪ S (K(q, q) = 1): z = [x/‖x‖; 1]/√2 for the cosine
kernel in float64, an eigendecomposition of the Gram matrix otherwise (negative rounding
eigenvalues clipped). Any θ ≥ 0 gives an upper bound on the minimum, so objective(θ) −
objective(θ_nnls) ≤ 1e-8 is a necessary condition for exactness, and kkt_residual ≤ 1e-9 a
sufficient one (for a positive semi-definite K_SS). The prune rule runs on every batch too
(crashes only: it is not exact). Exits 1 if there is a crash or a bound fails. Seeded: every run
solves the same instances.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections import defaultdict

import numpy as np
import torch
from scipy.optimize import nnls
from threadpoolctl import threadpool_limits

from deepnnk import cosine_kernel, gaussian_kernel, kkt_residual, nnk_objective, solve_nnk
from deepnnk.solver import _PARALLEL_MIN

KINDS = ("plain", "duplicates", "rank_deficient", "near_zero", "query_in", "mixed")
INPUTS = ("numpy float64", "numpy float32", "torch float64", "torch float32")
KERNELS = ("cosine", "gaussian")
GAP_BOUND, KKT_BOUND = 1e-8, 1e-9


# ----------------------------------------------------------------------------- instances
def draw_k(rng) -> int:
    """k in 1..200: log-uniform half the time (small k are common), uniform otherwise."""
    if rng.random() < 0.5:
        return int(np.exp(rng.uniform(0.0, np.log(200.5))))
    return int(rng.integers(1, 201))


def features(rng, n: int, d: int) -> np.ndarray:
    """``[n, d]`` points: ReLU-like (non-negative, clustered, many zeros) or signed Gaussian."""
    if rng.random() < 0.5:
        centres = rng.standard_normal((3, d))
        X = np.maximum(centres[rng.integers(3, size=n)] + rng.standard_normal((n, d)) - 0.3, 0)
        zero = ~X.any(1)
        X[zero, rng.integers(d, size=zero.sum())] = 1.0  # the cosine kernel needs x ≠ 0
        return X
    return rng.standard_normal((n, d)) * rng.uniform(0.1, 10.0)


def make_points(rng, k: int, kind: str):
    """A query ``q [d]`` and its candidates ``S [k, d]`` of the given kind."""
    low_rank = kind in ("rank_deficient", "mixed") and k >= 2
    d = int(rng.integers(1, k)) if low_rank else int(rng.integers(k + 1, k + 65))
    # Sometimes a dense low-dimensional cloud: the nearest candidates are then nearly parallel,
    # and a float32 kernel of them is indefinite by ~1e-7.
    dense = low_rank and rng.random() < 0.3
    if dense:
        d = int(rng.integers(1, min(k, 6)))
    X = features(rng, 25 * k + 100 if dense else 2 * k + 10, d)
    q, pool = X[0], X[1:]
    if dense or rng.random() < 0.5:  # the query's nearest points, as the classifier picks them
        S = pool[np.argsort(((pool - q) ** 2).sum(1), kind="stable")[:k]].copy()
    else:
        S = pool[rng.choice(len(pool), k, replace=False)].copy()
    slots = rng.permutation(k)
    if kind in ("duplicates", "mixed") and k >= 2:
        m = max(1, k // 3)
        src = slots[m : 2 * m] if 2 * m <= k else np.full(m, slots[-1])
        S[slots[:m]] = S[src]
    if kind in ("near_zero", "mixed"):
        m = int(rng.integers(1, max(1, k // 3) + 1))
        tiny = 1e-8 * rng.uniform(0.5, 2.0, (m, 1))
        S[slots[-m:]] = tiny * S[slots[-m:]] / np.linalg.norm(S[slots[-m:]], axis=1, keepdims=True)
        if rng.random() < 0.3:
            q = 1e-8 * q / np.linalg.norm(q)
    if kind in ("query_in", "mixed"):
        S[slots[0]] = q
        if k >= 3 and rng.random() < 0.3:
            S[slots[1]] = q
    return q, S


def kernel_problem(kernel: str, q, S):
    """The Gram matrix ``G [k+1, k+1]`` of {q} ∪ S (index 0 is q), symmetric, G[0, 0] = 1."""
    P = np.vstack([q, S])
    if kernel == "cosine":
        G = cosine_kernel(P, P)
    else:
        d2 = ((S - q) ** 2).sum(1)
        sigma = np.sqrt(d2.max()) / 3 if d2.max() > 0 else 1.0
        G = gaussian_kernel(P, P, sigma=sigma)
    G = (G + G.T) / 2  # a gemm may round G_ij and G_ji differently (~1e-16)
    G[0, 0] = 1.0
    return G


def nnls_reference(G, cosine_features=None):
    """θ_nnls ``[k]`` from explicit features of the Gram matrix G of {q} ∪ S, or None if nnls
    fails. ``cosine_features`` ``[k+1, D]`` (rows: q, then S) replaces the eigendecomposition."""
    if cosine_features is not None:
        Z = cosine_features.T
    else:
        w, V = np.linalg.eigh(G)
        Z = np.sqrt(np.clip(w, 0.0, None))[:, None] * V.T  # ZᵀZ = G, one column per point
    try:
        return nnls(Z[:, 1:], Z[:, 0], maxiter=50 * G.shape[0])[0]
    except RuntimeError:  # scipy's iteration cap: the oracle failed, not the solver
        return None


def cosine_map(q, S):
    """z(x) = [x/‖x‖; 1]/√2 for the rows q, S: ⟨z(a), z(b)⟩ = ½ + ½cos(a, b)."""
    P = np.vstack([q, S])
    unit = P / np.linalg.norm(P, axis=1, keepdims=True)
    return np.hstack([unit, np.ones((len(P), 1))]) / np.sqrt(2.0)


def as_input(K, b, kind: str):
    """K ``[B, k, k]``, b ``[B, k]`` float64 in the given input type."""
    lib, dtype = kind.split()
    if lib == "numpy":
        return K.astype(dtype), b.astype(dtype)
    dt = getattr(torch, dtype)
    return torch.from_numpy(K).to(dt), torch.from_numpy(b).to(dt)


def as_float64(x) -> np.ndarray:
    return (x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)).astype(np.float64)


def rounded(G, kind: str) -> np.ndarray:
    """G as the solver sees it once passed in the input type ``kind``."""
    return G.astype(np.float32).astype(np.float64) if kind.endswith("float32") else G


# ----------------------------------------------------------------------------- solving
def run_solver(K_in, b_in, single: bool, method: str):
    """θ ``[B, k]`` float64, or the exception / convergence warning / invalid θ as a string."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        try:
            if single:
                theta = as_float64(solve_nnk(K_in[0], b_in[0], method=method))[None]
            else:
                theta = as_float64(solve_nnk(K_in, b_in, method=method))
        except Exception as e:  # noqa: BLE001 - a crash of any kind is what we count
            return f"{type(e).__name__}: {e}"
    if theta.shape != tuple(b_in.shape) or not (np.isfinite(theta).all() and (theta >= 0).all()):
        return f"invalid θ: shape {theta.shape}, min {np.nanmin(theta):.2g}"
    return theta


def solve_group(K_in, b_in, single: bool, method: str):
    """θ per instance (None where it crashed) and the crash messages, retrying one by one."""
    out = run_solver(K_in, b_in, single, method)
    if not isinstance(out, str):
        return list(out), []
    thetas, errors = [], []
    for i in range(len(b_in)):
        one = run_solver(K_in[i : i + 1], b_in[i : i + 1], False, method)
        thetas.append(None if isinstance(one, str) else one[0])
        errors += [one] if isinstance(one, str) else []
    return thetas, errors


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--instances", type=int, default=10_000)
    p.add_argument("--quick", action="store_true", help="1,000 instances")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-failures", metavar="NPZ", help="write failing K_SS, k_Sq (float64) here")
    a = p.parse_args(argv)
    target = 1_000 if a.quick else a.instances
    rng = np.random.default_rng(a.seed)
    print(
        f"solve_nnk stress: {target}+ instances, seed {a.seed}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    solve_nnk(np.eye(2), np.ones(2))  # load the compiled code outside the timing
    solve_nnk(np.eye(2), np.ones(2), method="prune")
    # stats[(axis, value)] = [instances, crashes, max gap, max kkt, nnls failures]
    stats = defaultdict(lambda: [0, 0, -np.inf, 0.0, 0])
    errors, worst = [], {"gap": (-np.inf, ""), "kkt": (0.0, "")}
    failing = {}
    t_solve = t_total = 0.0
    t_start = time.perf_counter()
    n, group, parallel = 0, 0, 0
    while n < target:
        # the extremes of k first, then random draws
        k = (1, 200, 2)[group] if group < 3 else draw_k(rng)
        kernel, inp = KERNELS[group % 2], INPUTS[(group // 2) % 4]
        size = int(rng.integers(1, 33))
        if group % 20 == 19:  # now and then a batch large enough for the threaded loops
            k = max(k, 45)
            size = -(-_PARALLEL_MIN // k**2)
            kernel, inp = KERNELS[(group // 20) % 2], INPUTS[(group // 40) % 4]
        parallel += size * k * k >= _PARALLEL_MIN
        single = size == 1 and rng.random() < 0.5
        kinds = [KINDS[(group + i) % len(KINDS)] for i in range(size)]
        Gs, refs = [], []
        for kind in kinds:
            q, S = make_points(rng, k, kind)
            G = kernel_problem(kernel, q, S)
            exact_map = kernel == "cosine" and inp.endswith("float64")
            refs.append(nnls_reference(rounded(G, inp), cosine_map(q, S) if exact_map else None))
            Gs.append(G)
        G = np.stack(Gs)
        K_in, b_in = as_input(G[:, 1:, 1:], G[:, 0, 1:], inp)
        K, b = as_float64(K_in), as_float64(b_in)  # the problem solve_nnk is given
        t0 = time.perf_counter()
        thetas, errs = solve_group(K_in, b_in, single, "exact")
        t_solve += time.perf_counter() - t0
        if inp == "torch float32":
            # torch in, torch out in the input's dtype: θ comes back rounded to float32, ~6e-8
            # relative, which alone moves kkt_residual to ~1e-8. Check that it is the float64
            # solution rounded, and measure that solution.
            thetas64, _ = solve_group(K, b, False, "exact")
            for i, (t32, t64) in enumerate(zip(thetas, thetas64, strict=True)):
                if t32 is not None and t64 is not None:
                    if not np.array_equal(t32, t64.astype(np.float32).astype(np.float64)):
                        errs.append(f"item {i}: torch float32 output is not θ64 rounded")
                        t64 = None
                thetas[i] = t64
        pruned, errs_p = solve_group(K_in, b_in, single, "prune")
        errors += [f"k={k} {kernel} {inp} exact: {e}" for e in errs]
        errors += [f"k={k} {kernel} {inp} prune: {e}" for e in errs_p]
        for i, (kind, theta, ref) in enumerate(zip(kinds, thetas, refs, strict=True)):
            keys = [("kind", kind), ("kernel", kernel), ("input", inp), ("all", "all")]
            crashed = theta is None or pruned[i] is None
            gap, kkt = np.nan, np.nan
            if theta is not None:
                kkt = kkt_residual(K[i], b[i], theta)
                if ref is not None:
                    gap = nnk_objective(K[i], b[i], theta)[0] - nnk_objective(K[i], b[i], ref)[0]
                where = f"k={k} {kernel} {inp} {kind} (group {group}, item {i})"
                if gap > worst["gap"][0]:
                    worst["gap"] = (gap, where)
                if kkt > worst["kkt"][0]:
                    worst["kkt"] = (kkt, where)
                if gap > GAP_BOUND or kkt > KKT_BOUND:
                    failing[where] = (K[i], b[i])
            for key in keys:
                s = stats[key]
                s[0] += 1
                s[1] += int(crashed)
                s[2] = max(s[2], gap) if not np.isnan(gap) else s[2]
                s[3] = max(s[3], kkt) if not np.isnan(kkt) else s[3]
                s[4] += int(ref is None)
        n += size
        group += 1
    t_total = time.perf_counter() - t_start

    print(
        f"\n{'':24s} {'instances':>9s} {'crashes':>8s} {'max gap':>10s} {'max KKT':>9s} "
        f"{'nnls fail':>9s}"
    )
    for axis, values in (("kind", KINDS), ("kernel", KERNELS), ("input", INPUTS), ("all", ["all"])):
        for v in values:
            c, crash, gap, kkt, nf = stats[axis, v]
            print(f"{v:24s} {c:9d} {crash:8d} {gap:10.1e} {kkt:9.1e} {nf:9d}")
        print()
    total = stats["all", "all"]
    print(
        f"{group} batches ({parallel} solved by the threaded loops), k from 1 to 200; "
        f"exact solves {t_solve:.1f} s, total {t_total:.1f} s"
    )
    print(f"worst gap {worst['gap'][0]:.1e} at {worst['gap'][1]}")
    print(f"worst KKT residual {worst['kkt'][0]:.1e} at {worst['kkt'][1]}")
    print(f"instances over a bound: {len(failing)}")
    for e in errors[:10]:
        print("crash:", e[:300])
    if a.save_failures and failing:
        np.savez(
            a.save_failures,
            names=list(failing),
            **{f"K{j}": K_ for j, (K_, _) in enumerate(failing.values())},
            **{f"b{j}": b_ for j, (_, b_) in enumerate(failing.values())},
        )
        print(f"{len(failing)} failing instances written to {a.save_failures}")
    failed = []
    if total[1] or errors:
        failed.append(f"{len(errors)} crash(es)")
    if total[2] > GAP_BOUND:
        failed.append(f"objective gap {total[2]:.1e} > {GAP_BOUND:g}")
    if total[3] > KKT_BOUND:
        failed.append(f"KKT residual {total[3]:.1e} > {KKT_BOUND:g}")
    print(
        "FAIL: " + "; ".join(failed)
        if failed
        else f"PASS: no crash, objective gap ≤ {GAP_BOUND:g}, KKT residual ≤ {KKT_BOUND:g}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    # Thousands of small eigh / nnls calls for the reference: BLAS threads only contend.
    with threadpool_limits(1):
        raise SystemExit(main())
