"""Time ``deepnnk.nets.features.extract`` on all 60,000 CIFAR-10 images with the C=32 model.

    .venv/bin/python benchmarks/bench_features.py            # 60k images: cold, then cache hit
    .venv/bin/python benchmarks/bench_features.py --quick    # 10k images

Like the CLI, it calls ``deepnnk.nets.train.tune_allocator()`` and sets ``OMP_WAIT_POLICY=PASSIVE``
(``--no-tune`` keeps glibc's defaults). Cold = forward passes + hashing + writing the cache
entry; warm = hashing + reading it back.
Uses the real data under $DEEPNNK_DATA (or --data) when present, else random images of the
same shape (the speed does not depend on pixel values). The machine is shared, so the load
average is printed alongside: compare runs only at similar load.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does; see deepnnk/__main__.py

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from deepnnk.nets.data import DataError, load_cifar10  # noqa: E402
from deepnnk.nets.features import DEFAULT_BATCH_SIZE, extract  # noqa: E402
from deepnnk.nets.train import build_model, tune_allocator  # noqa: E402

TARGET_S = 40.0


def load_images(root: str | None, n: int) -> tuple[np.ndarray, str]:
    try:
        x_train, _, x_test, _ = load_cifar10(root, verify=False)
        return np.concatenate([x_train, x_test])[:n], "CIFAR-10"
    except DataError:
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), "random images"


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k images instead of 60k")
    parser.add_argument("--data", default=None, help="CIFAR-10 root (default $DEEPNNK_DATA)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument(
        "--no-tune", action="store_true", help="keep glibc's allocator defaults (no tune_allocator)"
    )
    args = parser.parse_args()
    tuned = False if args.no_tune else tune_allocator()

    torch.set_num_threads(args.threads)
    n = 10_000 if args.quick else 60_000
    images, source = load_images(args.data, n)
    model = build_model("regularised")
    print(
        f"extract(): {n} {source}, C=32 features, batch {args.batch_size}, "
        f"{args.threads} thread(s), allocator {'tuned' if tuned else 'glibc defaults'}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    with tempfile.TemporaryDirectory() as cache:
        extract(model, images[:200], args.batch_size, cache_dir=False)  # warm-up
        cold, cold_s, cold_cpu = timed(
            lambda: extract(model, images, args.batch_size, cache_dir=cache)
        )
        warm, warm_s, warm_cpu = timed(
            lambda: extract(model, images, args.batch_size, cache_dir=cache)
        )
    assert np.array_equal(cold, warm)
    per_60k = cold_s * 60_000 / n
    print(
        f"  cold : {cold_s:7.2f} s wall, {cold_cpu:7.2f} s CPU  -> {per_60k:.1f} s per 60k "
        f"(target <= {TARGET_S:.0f} s: {'met' if per_60k <= TARGET_S else 'NOT met'})"
    )
    print(f"  warm : {warm_s:7.2f} s wall, {warm_cpu:7.2f} s CPU  (cache hit)")
    print(f"  cold / warm = {cold_s / warm_s:.0f}x;  load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
