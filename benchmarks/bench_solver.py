"""Batched exact NNK solver against per-query loops, on 50,000 queries at k = 50, d = 512.

    python benchmarks/bench_solver.py                 # synthetic ReLU-like features
    python benchmarks/bench_solver.py --features F.npy  # real features [N, d] (first rows)
    python benchmarks/bench_solver.py --quick           # 5,000 queries

Instances: queries and a 10,000-point database from the same distribution; each query's k nearest
database points form its candidates; cosine kernel. The baselines (the authors' prune rule as a
Python loop over queries with LAPACK Cholesky, and per-query scipy.optimize.nnls) run on a
subsample of ``--baseline-queries`` in the same run, and their time is scaled linearly to all
queries (they are per-query loops, so linear scaling is exact up to noise).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.linalg
from _instances import load_or_make
from scipy.optimize import nnls

from deepnnk import kkt_residual, knn, nnk_objective, solve_nnk
from deepnnk.classifier import candidate_kernels
from deepnnk.kernels import normalize_rows
from deepnnk.solver import JITTER, MAX_ADD, _numba_module


def prune_loop(K, b, tol=1e-10):
    """The authors' rule, one query at a time (their code's structure)."""
    out = np.zeros_like(b)
    for i in range(len(b)):
        Ki, bi = K[i], b[i]
        hit = bi > 1 - tol
        if hit.any():
            out[i, hit] = bi[hit]
            continue
        keep = np.nonzero(bi > tol)[0]
        while True:
            c = scipy.linalg.cho_factor(Ki[np.ix_(keep, keep)], check_finite=False)
            x = scipy.linalg.cho_solve(c, bi[keep], check_finite=False)
            if (x >= 0).all():
                break
            keep = keep[x > tol]
        x[x < tol] = 0
        out[i, keep] = x
    return out


def nnls_loop(Z_S, z_q):
    out = np.zeros(Z_S.shape[:2])
    for i in range(len(z_q)):
        out[i] = nnls(Z_S[i].T, z_q[i], maxiter=50 * Z_S.shape[1])[0]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--queries", type=int, default=50_000)
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--d", type=int, default=512)
    p.add_argument("--baseline-queries", type=int, default=2_000)
    p.add_argument("--features", default=None)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    n = 5_000 if a.quick else a.queries
    X, _ = load_or_make(a.features, n + 10_000, a.d)
    db, q = X[:10_000], X[10_000 : 10_000 + n]
    n = len(q)
    d2, idx = knn(q, db, a.k)
    U = normalize_rows(db)
    k_Sq, K_SS = candidate_kernels(U, q, idx, d2, "cosine", gram_dtype="float64")
    print(
        f"{n} queries, k={a.k}, d={X.shape[1]}  "
        f"({'file ' + a.features if a.features else 'synthetic'})"
    )

    solve_nnk(K_SS[:256], k_Sq[:256])  # warm-up (thread pool, BLAS)
    t0 = time.perf_counter()
    theta = solve_nnk(K_SS, k_Sq, method="exact")
    t_exact = time.perf_counter() - t0
    t0 = time.perf_counter()
    theta_p = solve_nnk(K_SS, k_Sq, method="prune")
    t_prune_batched = time.perf_counter() - t0

    variants = []  # the compiled engine's step size, side by side (see solver.MAX_ADD)
    nb = _numba_module()
    if nb is not None:
        for add in (1, a.k):
            t0 = time.perf_counter()
            nb.solve_exact(K_SS, k_Sq, 1e-10, 20 * a.k + 10, JITTER, add)
            variants.append((f"  exact, add {add} per step", time.perf_counter() - t0))

    m = min(a.baseline_queries, n)
    t0 = time.perf_counter()
    prune_loop(K_SS[:m], k_Sq[:m])
    t_prune_loop = (time.perf_counter() - t0) * n / m
    qn = normalize_rows(q[:m])
    Z_S = np.concatenate([U[idx[:m]], np.ones((m, a.k, 1))], 2) / np.sqrt(2)
    z_q = np.concatenate([qn, np.ones((m, 1))], 1) / np.sqrt(2)
    t0 = time.perf_counter()
    theta_n = nnls_loop(Z_S, z_q)
    t_nnls = (time.perf_counter() - t0) * n / m

    r = kkt_residual(K_SS, k_Sq, theta)
    rp = kkt_residual(K_SS, k_Sq, theta_p)
    gap = nnk_objective(K_SS[:m], k_Sq[:m], theta[:m]) - nnk_objective(K_SS[:m], k_Sq[:m], theta_n)
    print(f"{'method':34s} {'seconds':>9s} {'vs exact':>9s}")
    for name, t in (
        (f"solve_nnk exact (add {MAX_ADD} per step)", t_exact),
        *variants,
        ("solve_nnk prune (batched)", t_prune_batched),
        (f"prune rule, per-query loop (x{n / m:.0f})", t_prune_loop),
        (f"scipy nnls, per-query loop (x{n / m:.0f})", t_nnls),
    ):
        print(f"{name:34s} {t:9.2f} {t / t_exact:9.2f}x")
    print(f"exact: max KKT residual {r.max():.2e}; mean support {np.mean((theta > 0).sum(1)):.1f}")
    print(
        f"prune: max KKT residual {rp.max():.2e}; "
        f"rows violating KKT (>1e-9) {np.mean(rp > 1e-9):.1%}"
    )
    print(
        f"exact − nnls objective on the subsample: max {gap.max():.1e} (≤ 0 means ours is as good)"
    )


if __name__ == "__main__":
    main()
