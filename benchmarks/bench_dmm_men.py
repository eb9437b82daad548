"""DMM-MEN Gibbs sampler (deepnnk.nets.dmm_men): time per iteration against the problem size.

    python benchmarks/bench_dmm_men.py                   # p ∈ {64, 300} × n ∈ {1000, 5000}
    python benchmarks/bench_dmm_men.py --quick           # fewer timed iterations
    python benchmarks/bench_dmm_men.py --paper-n 10000   # the budget estimate at n = 10,000

Each size runs one chain on synthetic data (a planted mixture of three sparse linear models, x ~
N(0, I)) with ``--blas-threads`` BLAS threads (default 1, the sampler's default), for ``--warmup``
untimed iterations (the chain leaves its prior draw and settles to a few occupied components),
then ``--iters`` timed ones; the table gives the median seconds per iteration over ``--repeats``
runs and its ratio to the smallest size. An iteration costs about n·p² (the components'
X_jᵀX_j) + J·p³ (their Cholesky factors) + n·p·J (the assignment step).

The last lines estimate how many iterations fit in ``--budget-min`` minutes at the paper's sizes:
p = 300 pixels and n = ``--paper-n`` images (default 10,000: a CIFAR-10 one-vs-rest surrogate on
the 10,000 test images), for 1 and 4 chains run one after the other.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from deepnnk.nets.dmm_men import fit


def planted(n: int, p: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    B = np.zeros((3, p))
    for m in range(3):
        B[m, rng.choice(p, 5, replace=False)] = rng.choice([-2.0, 2.0], 5)
    z = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    return X, np.einsum("np,np->n", X, B[z]) + 0.5 * rng.normal(size=n)


def seconds_per_iteration(n, p, warmup, iters, repeats, threads) -> float:
    X, y = planted(n, p)
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        fit(X, y, warmup, 1, seed=r, burn_in=0, show_progress=False, blas_threads=threads)
        t1 = time.perf_counter()
        fit(X, y, warmup + iters, 1, seed=r, burn_in=0, show_progress=False, blas_threads=threads)
        t2 = time.perf_counter()
        # the same seed replays the warm-up: the difference is the `iters` extra iterations
        times.append(((t2 - t1) - (t1 - t0)) / iters)
    return float(np.median(times))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 5000])
    ap.add_argument("--p", type=int, nargs="+", default=[64, 300])
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--iters", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--paper-n", type=int, default=10000)
    ap.add_argument("--budget-min", type=float, default=45.0)
    ap.add_argument("--blas-threads", type=int, default=1, help="fit(blas_threads=...)")
    ap.add_argument("--quick", action="store_true", help="--iters 10 --repeats 1")
    a = ap.parse_args(argv)
    if a.quick:
        a.iters, a.repeats = 10, 1
    print(
        f"load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs; "
        f"BLAS threads {a.blas_threads}"
    )
    rows = []
    for p in a.p:
        for n in a.n:
            rows.append(
                (n, p, seconds_per_iteration(n, p, a.warmup, a.iters, a.repeats, a.blas_threads))
            )
    base = rows[0][2]
    print(f"\n{'n':>7} {'p':>5} {'ms / iteration':>15} {'ratio':>7} {'n·p² ratio':>11}")
    n0, p0 = rows[0][0], rows[0][1]
    for n, p, s in rows:
        print(f"{n:>7} {p:>5} {1e3 * s:>15.2f} {s / base:>7.2f} {n * p**2 / (n0 * p0**2):>11.1f}")
    s_paper = seconds_per_iteration(a.paper_n, 300, a.warmup, a.iters, a.repeats, a.blas_threads)
    budget = 60 * a.budget_min
    print(
        f"\npaper size n = {a.paper_n}, p = 300: {1e3 * s_paper:.1f} ms / iteration; in "
        f"{a.budget_min:g} min: {budget / s_paper:,.0f} iterations with 1 chain, "
        f"{budget / (4 * s_paper):,.0f} per chain with 4 chains (20,000 needs "
        f"{20000 * s_paper / 60:.0f} min per chain)."
    )
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
