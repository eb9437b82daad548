"""How the authors' linear-SVM baseline scales with its training rows.

    python benchmarks/bench_svm.py --features F.npz    # F.npz: python -m deepnnk features ...
    python benchmarks/bench_svm.py                     # 512-d synthetic ReLU features

Times one ``LinearSVC(C=1000, max_iter=1000, dual=True)`` fit (the baseline of notebook 02) on
the first 2,000, 4,000, 8,000 and 16,000 rows and prints each time beside the previous one: the
ratio is 2 for a cost linear in the rows. Extrapolating the last ratio gives the cost of the
5 × 40,000-row fits of one full-data checkpoint, printed at the end.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _instances import load_or_make  # noqa: E402


def main(argv=None):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--features", default=None)
    p.add_argument("--rows", type=int, nargs="+", default=[2000, 4000, 8000, 16000])
    a = p.parse_args(argv)
    X, y = load_or_make(a.features, max(a.rows), 512)
    prev, prev_n = None, None
    times = []
    for n in a.rows:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            LinearSVC(C=1000.0, max_iter=1000, dual=True, random_state=0).fit(X[:n], y[:n])
        t = time.perf_counter() - t0
        times.append(t)
        ratio = f"  ×{t / prev:.2f} for ×{n / prev_n:.0f} rows" if prev else ""
        print(f"{n:6d} rows: {t:7.1f} s{ratio}", flush=True)
        prev, prev_n = t, n
    if len(times) >= 2:
        growth = math.log(times[-1] / times[-2]) / math.log(a.rows[-1] / a.rows[-2])
        full = 5 * times[-1] * (40_000 / a.rows[-1]) ** growth
        print(f"fit time ~ rows^{growth:.2f}; 5 folds × 40,000 rows ≈ {full / 60:.0f} min")


if __name__ == "__main__":
    main()
