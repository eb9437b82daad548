"""A full leave-one-out NNK sweep against the brute-force neighbour search alone.

    python benchmarks/bench_loo.py                    # 50,000 × 512 synthetic ReLU features, k=50
    python benchmarks/bench_loo.py --features F.npy   # real features [N, d]
    python benchmarks/bench_loo.py --quick            # 10,000 points

Each measurement runs in its own subprocess, so its peak resident memory (ru_maxrss) is its own:
1. ``search``: ``knn(X, X, k, exclude_self=True)`` only;
2. ``loo``: ``NNKClassifier(k).fit(X, y).loo_error()`` — search, kernel, solve and vote.
The ratio loo / search is the overhead of everything NNK adds on top of the search.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def _child(what: str, n: int, d: int, k: int, features: str | None) -> None:
    sys.path.insert(0, str(HERE))
    import numpy as np
    from _instances import load_or_make

    from deepnnk import NNKClassifier, knn, solve_nnk

    X, y = load_or_make(features, n, d)
    solve_nnk(np.eye(3)[None], np.ones((1, 3)) * 0.5)  # compile outside the timing
    t0 = time.perf_counter()
    if what == "search":
        knn(X, X, k, exclude_self=True)
        err = None
    else:
        err = NNKClassifier(k).fit(X, y).loo_error()
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB → GiB
    print(json.dumps({"seconds": seconds, "peak_gib": peak, "loo_error": err}))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--d", type=int, default=512)
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--features", default=None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    n = 10_000 if a.quick else a.n
    if a.child:
        return _child(a.child, n, a.d, a.k, a.features)
    results = {}
    for what in ("search", "loo"):
        cmd = [
            sys.executable,
            __file__,
            "--child",
            what,
            "--n",
            str(n),
            "--d",
            str(a.d),
            "--k",
            str(a.k),
        ]
        if a.features:
            cmd += ["--features", a.features]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        results[what] = json.loads(out.strip().splitlines()[-1])
    s, l = results["search"], results["loo"]
    print(f"n={n}, d={a.d}, k={a.k}, {'file ' + a.features if a.features else 'synthetic'}")
    print(f"{'step':28s} {'seconds':>8s} {'peak GiB':>9s} {'vs search':>10s}")
    print(f"{'brute-force search alone':28s} {s['seconds']:8.2f} {s['peak_gib']:9.2f} {1:10.2f}x")
    print(
        f"{'full LOO sweep':28s} {l['seconds']:8.2f} {l['peak_gib']:9.2f} "
        f"{l['seconds'] / s['seconds']:10.2f}x"
    )
    print(f"LOO-NNK error {l['loo_error']:.4f}")


if __name__ == "__main__":
    main()
