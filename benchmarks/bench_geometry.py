"""Exact linear regions of a 2→64→64→64→64→2 ReLU MLP vs counting patterns on a dense grid.

    cd /work/main && .venv/bin/python benchmarks/bench_geometry.py [--grid 1000] [--steps 300]

For a seeded random-init MLP and the same MLP after ``--steps`` full-batch Adam steps on
two-moons, times :func:`deepnnk.nets.geometry.linear_regions` over [-2, 3] × [-1.5, 2] and prints
the region count, then samples activation patterns on a ``grid × grid`` lattice (float64) and
reports how many distinct patterns the grid sees, how many exact regions it misses, and any
pattern it sees that the exact partition lacks (which would be a bug). Single-threaded.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
from sklearn.datasets import make_moons
from threadpoolctl import threadpool_limits
from torch import nn

from deepnnk.nets.geometry import linear_regions

BOUNDS = (-2.0, 3.0, -1.5, 2.0)


def make_mlp(seed: int = 0, width: int = 64, depth: int = 4) -> nn.Sequential:
    torch.manual_seed(seed)
    layers, d = [], 2
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.ReLU()]
        d = width
    return nn.Sequential(*layers, nn.Linear(d, 2))


def train_moons(mlp: nn.Sequential, steps: int, seed: int = 0) -> float:
    """Full-batch Adam on 512 noisy two-moons points; returns the final training accuracy."""
    x, y = make_moons(512, noise=0.1, random_state=seed)
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    opt = torch.optim.Adam(mlp.parameters(), lr=3e-3)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(mlp(x), y).backward()
        opt.step()
    with torch.no_grad():
        return float((mlp(x).argmax(1) == y).float().mean())


def grid_patterns(mlp: nn.Sequential, n: int) -> set[bytes]:
    """Distinct activation patterns (packed bits) at the n × n lattice over ``BOUNDS``."""
    xs = np.linspace(BOUNDS[0], BOUNDS[1], n)
    ys = np.linspace(BOUNDS[2], BOUNDS[3], n)
    pts = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    mlp64 = copy.deepcopy(mlp).double()  # float64, like the exact partition
    keys = []
    with torch.no_grad():
        for s in range(0, len(pts), 100_000):
            h = torch.from_numpy(pts[s : s + 100_000])
            bits = []
            for mod in mlp64:
                h = mod(h)
                if isinstance(mod, nn.ReLU):
                    bits.append((h > 0).numpy())
            packed = np.packbits(np.concatenate(bits, 1), axis=1)
            keys.append(packed)
    packed = np.ascontiguousarray(np.concatenate(keys))
    rows = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    return {r.tobytes() for r in np.unique(rows)}


def bench(name: str, mlp: nn.Sequential, grid: int) -> None:
    t = time.perf_counter()
    regions = linear_regions(mlp, BOUNDS)
    t_exact = time.perf_counter() - t
    exact = {r.pattern_key(): r for r in regions}
    areas = np.array([r.area for r in regions])

    t = time.perf_counter()
    seen = grid_patterns(mlp, grid)
    t_grid = time.perf_counter() - t
    found = seen & exact.keys()
    missed = [exact[k].area for k in exact.keys() - seen]
    cell = (BOUNDS[1] - BOUNDS[0]) * (BOUNDS[3] - BOUNDS[2]) / (grid - 1) ** 2

    print(f"\n[{name}]")
    print(f"{'method':<26}{'seconds':>9}{'regions':>9}")
    print(f"{'exact (linear_regions)':<26}{t_exact:>9.2f}{len(regions):>9d}")
    print(f"{f'grid {grid}x{grid} patterns':<26}{t_grid:>9.2f}{len(seen):>9d}")
    print(f"grid/exact region ratio: {len(seen) / len(regions):.3f}")
    print(
        f"grid finds {len(found)} exact regions, misses {len(missed)}"
        + (f" (median missed area {np.median(missed):.2e})" if missed else "")
        + f"; grid-cell area {cell:.2e}, smallest region {areas.min():.2e}"
    )
    print(f"patterns on the grid absent from the exact partition: {len(seen - exact.keys())}")
    print(f"sum of region areas / domain area - 1: {areas.sum() / (5.0 * 3.5) - 1:.1e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        mlp = make_mlp(0)
        bench("random init, 2-64-64-64-64-2", mlp, args.grid)
        acc = train_moons(mlp, args.steps)
        bench(f"two-moons, {args.steps} Adam steps (train acc {acc:.3f})", mlp, args.grid)


if __name__ == "__main__":
    main()
