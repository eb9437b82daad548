"""Time PGD (10 steps) against FGSM on 1,000 CIFAR-10 test images with the regularised model.

    cd /work/main && .venv/bin/python benchmarks/bench_attacks.py [--n 1000] [--threads 1]

Times :func:`deepnnk.nets.attacks.fgsm` and :func:`deepnnk.nets.attacks.pgd` at ε = 8/255 (after a
small warm-up), prints images/s for each, the PGD/FGSM time ratio (about ``steps`` when a
step costs what the FGSM gradient costs), and the accuracy each leaves. Uses the authors'
regularised epoch-20 model and the test images under $DEEPNNK_DATA (or --data) when present,
else a randomly initialised C=32 PaperCNN on random images (the speed does not depend on the
weights or pixels, the accuracies then mean nothing). The machine is shared: the load average
is printed alongside, so compare runs only at similar load.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does; see deepnnk/__main__.py

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from deepnnk.nets.attacks import fgsm, pgd  # noqa: E402
from deepnnk.nets.checkpoints import CheckpointError  # noqa: E402
from deepnnk.nets.data import DataError, load_cifar10, to_tensor  # noqa: E402
from deepnnk.nets.models import PaperCNN  # noqa: E402
from deepnnk.nets.paper import load_paper_model  # noqa: E402

EPS = 8 / 255


def load(root: str | None, n: int) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, str]:
    try:
        _, _, x_test, y_test = load_cifar10(root, verify=False)
        model = load_paper_model(root, "regularised", 20)
        return model, to_tensor(x_test[:n]), torch.from_numpy(y_test[:n]), "CIFAR-10 test"
    except (DataError, CheckpointError):
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        images = to_tensor(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))
        labels = torch.from_numpy(rng.integers(0, 10, n))
        return PaperCNN(32).eval(), images, labels, "random images, random-init model"


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.inference_mode():
        return 100.0 * float((model(x).argmax(1) == y).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="test images (default 1000)")
    parser.add_argument("--steps", type=int, default=10, help="PGD steps (default 10)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--data", default=None, help="data root (default $DEEPNNK_DATA)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model, x, y, source = load(args.data, args.n)
    print(
        f"{args.n} {source}, eps 8/255, batch {args.batch_size}, {args.threads} thread(s), "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    fgsm(model, x[:64], y[:64], EPS)  # warm-up
    gen = torch.Generator().manual_seed(0)
    timings = {}
    for name, attack in (
        ("fgsm", lambda: fgsm(model, x, y, EPS, batch_size=args.batch_size)),
        (
            f"pgd-{args.steps}",
            lambda: pgd(
                model, x, y, EPS, steps=args.steps, generator=gen, batch_size=args.batch_size
            ),
        ),
    ):
        start = time.perf_counter()
        x_adv = attack()
        timings[name] = elapsed = time.perf_counter() - start
        print(
            f"  {name:7s}: {elapsed:7.2f} s, {args.n / elapsed:7.1f} images/s, "
            f"accuracy {accuracy(model, x_adv, y):5.1f}% (clean {accuracy(model, x, y):.1f}%)"
        )
    fgsm_s, pgd_s = timings.values()
    print(
        f"  pgd / fgsm = {pgd_s / fgsm_s:.1f}x for {args.steps} steps;  "
        f"load average now {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
