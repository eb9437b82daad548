"""solve_nnk (the compiled engine) against the batched-numpy oracle and per-query loops, on
50,000 queries at k = 50, d = 512.

    python benchmarks/bench_solver.py                 # synthetic ReLU-like features
    python benchmarks/bench_solver.py --features F.npy  # real features [N, d] (first rows)
    python benchmarks/bench_solver.py --quick           # 5,000 queries

Instances: queries and a 10,000-point database from the same distribution; each query's k nearest
database points form its candidates; cosine kernel. The batched-numpy solver (the package's second
engine until this benchmark retired it; now the tests' oracle, ``tests/solver_oracle.py``) runs on
all queries. The baselines (the authors' prune rule as a Python loop over queries with LAPACK
Cholesky, and per-query scipy.optimize.nnls) run on a subsample of ``--baseline-queries`` in the
same run, and their time is scaled linearly to all queries (they are per-query loops, so linear
scaling is exact up to noise). The load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.linalg
from _instances import load_or_make
from scipy.optimize import nnls

from deepnnk import _solver_numba, kkt_residual, knn, nnk_objective, solve_nnk
from deepnnk.classifier import candidate_kernels
from deepnnk.kernels import normalize_rows
from deepnnk.solver import JITTER, MAX_ADD

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from solver_oracle import solve_oracle  # noqa: E402


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
        f"({'file ' + a.features if a.features else 'synthetic'}); "
        f"load average {os.getloadavg()[0]:.2f}"
    )

    for method in ("exact", "prune"):  # warm-up: compiled code from numba's cache, BLAS
        solve_nnk(K_SS[:256], k_Sq[:256], method=method)
        solve_oracle(K_SS[:256], k_Sq[:256], method=method)
    timed = {}
    for name, solve in (("solve_nnk", solve_nnk), ("oracle", solve_oracle)):
        for method in ("exact", "prune"):
            t0 = time.perf_counter()
            timed[name, method] = solve(K_SS, k_Sq, method=method)
            timed[name, method, "s"] = time.perf_counter() - t0
    theta, theta_p = timed["solve_nnk", "exact"], timed["solve_nnk", "prune"]
    t_exact = timed["solve_nnk", "exact", "s"]

    variants = []  # the compiled engine's step size, side by side (see solver.MAX_ADD)
    for add in (1, a.k):
        t0 = time.perf_counter()
        _solver_numba.solve_exact(K_SS, k_Sq, 1e-10, 20 * a.k + 10, JITTER, add)
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
    print(f"{'method':36s} {'seconds':>9s} {'vs exact':>9s}")
    for name, t in (
        (f"solve_nnk exact (add {MAX_ADD} per step)", t_exact),
        *variants,
        ("solve_nnk prune", timed["solve_nnk", "prune", "s"]),
        ("numpy oracle exact (batched LAPACK)", timed["oracle", "exact", "s"]),
        ("numpy oracle prune (batched LAPACK)", timed["oracle", "prune", "s"]),
        (f"prune rule, per-query loop (x{n / m:.0f})", t_prune_loop),
        (f"scipy nnls, per-query loop (x{n / m:.0f})", t_nnls),
    ):
        print(f"{name:36s} {t:9.2f} {t / t_exact:9.2f}x")
    print(f"exact: max KKT residual {r.max():.2e}; mean support {np.mean((theta > 0).sum(1)):.1f}")
    print(
        f"prune: max KKT residual {rp.max():.2e}; "
        f"rows violating KKT (>1e-9) {np.mean(rp > 1e-9):.1%}"
    )
    print(
        f"exact − nnls objective on the subsample: max {gap.max():.1e} (≤ 0 means ours is as good)"
    )
    gap_o = nnk_objective(K_SS, k_Sq, theta) - nnk_objective(K_SS, k_Sq, timed["oracle", "exact"])
    prune_o = np.abs(theta_p - timed["oracle", "prune"]).max()
    print(
        f"solve_nnk − oracle: exact objective max {gap_o.max():.1e}, prune θ max |Δ| {prune_o:.1e}"
    )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
