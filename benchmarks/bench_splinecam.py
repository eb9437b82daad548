"""Time an exact segment walk (:mod:`deepnnk.nets.splinecam`) on the authors' regularised CNN.

    .venv/bin/python benchmarks/bench_splinecam.py [--index 0] [--fraction 1] [--prefix 0.05]

The segment runs from CIFAR-10 test image ``--index`` to its nearest training image in pixel
space (L2 on pixels/255; the feature-space NNK neighbours come with issue 17's item 3). Prints
the piece count, the pieces per unit length, the decision changes and the breakpoint causes
per layer for the whole segment, then times the walk against its baseline, the same walk
rerunning every conv at every piece (``reuse_layers=False``), on the walked part's first
``--prefix`` (same pieces, so the per-piece times compare directly). Needs $DEEPNNK_DATA (or
--data). The machine is shared, so the load average is printed alongside.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from deepnnk.nets.data import load_cifar10, to_tensor
from deepnnk.nets.loading import load_network
from deepnnk.nets.splinecam import CAUSES, segment_partition


def timed(fn):
    wall = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=int, default=0, help="test image (default 0)")
    parser.add_argument(
        "--fraction", type=float, default=1.0, help="walk only this first part of the segment"
    )
    parser.add_argument(
        "--prefix", type=float, default=0.05, help="fraction of the segment for the baseline"
    )
    parser.add_argument("--data", default=None, help="data root (default $DEEPNNK_DATA)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = load_network("paper", "regularised", 20, data_root=args.data)
    x_train, y_train, x_test, y_test = load_cifar10(args.data, verify=False)
    x_q = to_tensor(x_test[args.index : args.index + 1])[0].double()
    train = to_tensor(x_train)
    j = int(((train - x_q.float()) ** 2).flatten(1).sum(1).argmin())
    x_j = train[j].double()
    x_j = x_q + args.fraction * (x_j - x_q)  # t now runs over the first `fraction` of it
    print(
        f"segment: test image {args.index} (class {y_test[args.index]}) → training image {j} "
        f"(class {y_train[j]}), {args.threads} thread(s), load average {os.getloadavg()[0]:.2f}"
    )

    p, full_s = timed(lambda: segment_partition(model, x_q, x_j))
    print(f"walked: the first {args.fraction:g} of the segment")
    counts = np.bincount(p.cause, minlength=len(CAUSES))
    print(
        f"walked part: {p.n_pieces} pieces in {full_s:.1f} s "
        f"({1e3 * full_s / p.n_pieces:.1f} ms/piece), length {p.length:.3f}, "
        f"{p.n_pieces / p.length:.1f} pieces per unit length"
    )
    print(
        "  breakpoints by cause: "
        + ", ".join(f"{c} {n}" for c, n in zip(CAUSES, counts, strict=True))
    )
    changes = ", ".join(
        f"t={t:.6f} {a}→{b}"
        for t, a, b in zip(p.decision_t, p.decision_from, p.decision_to, strict=True)
    )
    print(f"  decision changes: {len(p.decision_t)} ({changes or 'none'})")

    x_end = x_q + args.prefix * (x_j - x_q)
    fast, fast_s = timed(lambda: segment_partition(model, x_q, x_end))
    slow, slow_s = timed(lambda: segment_partition(model, x_q, x_end, reuse_layers=False))
    assert fast.n_pieces == slow.n_pieces and (fast.digests == slow.digests).all()
    print(
        f"first {args.prefix:g} of that: {fast.n_pieces} pieces; walk {fast_s:.2f} s, "
        f"baseline (every conv at every piece) {slow_s:.2f} s: "
        f"{slow_s / fast_s:.2f}x faster; load average {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
