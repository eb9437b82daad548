"""Time an exact segment walk (:mod:`deepnnk.nets.splinecam`) and exact 2-D slices
(:mod:`deepnnk.nets.splinecam_2d`) on the authors' regularised CNN.

    .venv/bin/python benchmarks/bench_splinecam.py [--index 0] [--fraction 1] [--prefix 0.05]
        [--what both|segment|slice] [--windows 1e-3,3e-3,1e-2,2e-2] [--budget 60] [--grid 32]
        [--full-upto 2e-2]

The segment runs from CIFAR-10 test image ``--index`` to its nearest training image in pixel
space (L2 on pixels/255; the feature-space NNK neighbours come with issue 17's item 3). Prints
the piece count, the pieces per unit length, the decision changes and the breakpoint causes
per layer for the whole segment, then times the walk against its baseline, the same walk
rerunning every conv at every piece (``reuse_layers=False``), on the walked part's first
``--prefix`` (same pieces, so the per-piece times compare directly). Needs $DEEPNNK_DATA (or
--data). The machine is shared, so the load average is printed alongside.

The 2-D part slices the plane through the test image and its 1st and 2nd nearest training
images in pixel space (L2 on pixels/255; NNK neighbours in feature space come with item 3), in
growing square windows ``[−w, w]²`` (L2 pixel/255 units along the orthonormalised directions),
and stops after the first window that takes longer than ``--budget`` seconds. For each it prints
the region count, the seconds and the baseline: patterns sampled on a ``--grid``² grid over the
window (timed; how many of the exact regions it finds), and the least grid that could be sure to
hit every region: its spacing must be below the thinnest region's width, and a convex polygon's
inradius is at most ``2·area/perimeter``, so at least ``(2w / (2√2·min 2A/P))²`` points,
priced at the measured seconds per point. Up to ``--full-upto`` it also times the slice with
every conv run in full for every region (``sparse_updates=False``, the same regions).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from deepnnk.nets.data import load_cifar10, to_tensor
from deepnnk.nets.loading import load_network
from deepnnk.nets.splinecam import CAUSES, activation_patterns, segment_partition
from deepnnk.nets.splinecam_2d import slice_partition


def timed(fn):
    wall = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - wall


def grid_baseline(model, s, w: float, grid: int, secs: float) -> str:
    """Sample patterns on a ``grid``² grid over the window; compare with the exact slice ``s``."""
    g = (np.arange(grid) + 0.5) / grid * 2 * w - w
    uv = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    images = torch.from_numpy(s.images(uv))
    (_, _, dig), grid_s = timed(lambda: activation_patterns(model, images))
    found = set(dig.tolist())
    assert found <= set(s.digests.tolist()), "the grid found a pattern the slice missed"
    polys = s.polygons()
    perim = np.array([np.hypot(*(np.roll(p, -1, 0) - p).T).sum() for p in polys])
    width = float((2 * s.areas / perim).min())  # the thinnest region's inradius bound
    need = (2 * w / (2**0.5 * width)) ** 2
    need_s = need * grid_s / len(uv)
    return (
        f"grid {grid}² {grid_s:.1f} s finds {len(found)}/{s.n_regions}; a grid sure to hit "
        f"every region needs ≥ {need:.3g} points ≈ {need_s:.3g} s (≥ {need_s / secs:.3g}x)"
    )


def slice_benchmark(
    model, x_q, x_a, x_b, windows, budget: float, grid: int, full_upto: float
) -> None:
    """Time exact 2-D slices in growing windows against a grid sampling of patterns and, up to
    ``full_upto``, against the same slice with every conv run in full for every region."""
    for w in windows:
        s, secs = timed(lambda w=w: slice_partition(model, x_q, x_a, x_b, window=w))
        line = (
            f"  w = {w:g}: {s.n_regions} regions in {secs:.1f} s "
            f"({1e3 * secs / s.n_regions:.1f} ms/region), {len(s.boundary)} boundary segments"
        )
        if w <= full_upto:
            full, full_s = timed(
                lambda w=w: slice_partition(model, x_q, x_a, x_b, window=w, sparse_updates=False)
            )
            assert sorted(full.digests.tolist()) == sorted(s.digests.tolist())
            line += f"; full convs {full_s:.1f} s (sparse updates {full_s / secs:.2f}x faster)"
        if grid:
            line += "; " + grid_baseline(model, s, w, grid, secs)
        print(f"{line}; load average {os.getloadavg()[0]:.2f}", flush=True)
        if secs > budget:
            print(f"  stopped: w = {w:g} took longer than the budget of {budget:g} s")
            break


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
    parser.add_argument(
        "--what", choices=("both", "segment", "slice"), default="both", help="what to time"
    )
    parser.add_argument(
        "--windows",
        default="1e-3,3e-3,1e-2,2e-2",
        help="2-D slice half-widths w, comma separated (default 1e-3,3e-3,1e-2,2e-2)",
    )
    parser.add_argument(
        "--budget", type=float, default=60.0, help="stop after a slice slower than this (s)"
    )
    parser.add_argument(
        "--grid", type=int, default=32, help="baseline grid side, 0 for none (default 32)"
    )
    parser.add_argument(
        "--full-upto",
        type=float,
        default=2e-2,
        help="also time every conv in full (no sparse updates) up to this w (default 2e-2)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = load_network("paper", "regularised", 20, data_root=args.data)
    x_train, y_train, x_test, y_test = load_cifar10(args.data, verify=False)
    x_q = to_tensor(x_test[args.index : args.index + 1])[0].double()
    train = to_tensor(x_train)
    order = ((train - x_q.float()) ** 2).flatten(1).sum(1).argsort()
    j = int(order[0])
    x_a, x_b = train[j].double(), train[int(order[1])].double()
    x_j = x_q + args.fraction * (x_a - x_q)  # t now runs over the first `fraction` of it
    print(
        f"segment: test image {args.index} (class {y_test[args.index]}) → training image {j} "
        f"(class {y_train[j]}), {args.threads} thread(s), load average {os.getloadavg()[0]:.2f}"
    )

    if args.what in ("both", "slice"):
        print(
            f"2-D slice: test image {args.index} (class {y_test[args.index]}), its 1st and 2nd "
            f"nearest training images in pixel space {j} (class {y_train[j]}) and "
            f"{int(order[1])} (class {y_train[int(order[1])]})"
        )
        windows = [float(w) for w in args.windows.split(",")]
        slice_benchmark(model, x_q, x_a, x_b, windows, args.budget, args.grid, args.full_upto)
    if args.what == "slice":
        return
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
