"""Decoy-CIFAR runs (issue 15, item 4): does a network learn the class-coded patch, and does an
explanation penalty (CDEP, or the gradient penalty) stop it?

:func:`decoy_run` trains the paper's CNN on a seeded subset of Decoy-CIFAR
(:func:`deepnnk.nets.decoy.add_decoy`, training levels ``255 − 25·y``), with or without a
penalty on the patch (:mod:`deepnnk.nets.penalties`), checkpointed and resumed like every other
run, and reports its accuracy on test images without a patch (``clean``), with a patch of a
random class level (``random``) and with another class's level (``swap``). A network that reads
the label off the patch is right on ``clean`` but fails on ``swap``; ``clean − swap`` is how
much it relies on the decoy.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

PENALTIES = ("none", "cdep", "rrr")


def _subset(n_total: int, n: int | None, seed: int) -> np.ndarray:
    if n is None or n >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).choice(n_total, n, replace=False))


def decoy_run(
    penalty: str = "none",
    lam: float = 0.0,
    *,
    model: str = "underparameterised",
    n_train: int | None = 10_000,
    n_test: int | None = 2_000,
    epochs: int = 5,
    seed: int = 0,
    data_root=None,
    checkpoints_root=None,
    progress: bool = True,
) -> dict:
    """Train ``model`` (a paper recipe; default the C = 16 network) on Decoy-CIFAR with
    ``penalty`` (``"none"``, ``"cdep"`` or ``"rrr"``) at weight ``lam`` on each image's patch,
    for ``epochs`` epochs on ``n_train`` seeded training images (None: all), checkpointed under
    ``<checkpoints_root>/decoy-<model>-<penalty>-lam<lam>-seed<seed>[-n<n_train>]``.

    Returns the test accuracies on ``n_test`` seeded test images: ``clean`` (no patch),
    ``random`` (a random class level), ``swap`` (another class's level), ``reliance`` =
    ``clean − swap``; ``train_decoy`` (on the decoyed training images), ``epochs``,
    ``train_seconds`` and the last epoch's mean ``penalty``."""
    from deepnnk.nets.data import load_cifar10
    from deepnnk.nets.decoy import add_decoy
    from deepnnk.nets.loading import checkpoints_root_or_default, resolve_data_root
    from deepnnk.nets.penalties import CDEPPenalty, GradientPenalty
    from deepnnk.nets.train import SEED, accuracy, build_model, train

    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {PENALTIES}, got {penalty!r}.")
    x_tr, y_tr, x_te, y_te = load_cifar10(resolve_data_root(data_root))
    tr, te = _subset(len(x_tr), n_train, seed), _subset(len(x_te), n_test, seed)
    x_train, masks = add_decoy(x_tr[tr], y_tr[tr], mode="train", seed=seed)
    pen = {"none": None, "cdep": CDEPPenalty, "rrr": GradientPenalty}[penalty]
    pen = None if pen is None else pen(lam)
    name = f"decoy-{model}-{penalty}-lam{lam:g}-seed{seed}" + (
        f"-n{len(tr)}" if len(tr) < len(x_tr) else ""
    )
    folder = Path(checkpoints_root_or_default(checkpoints_root)) / name
    net = build_model(model, seed=SEED + seed)
    t0 = time.perf_counter()
    history = train(
        net,
        x_train,
        y_tr[tr],
        checkpoint_dir=folder,
        epochs=epochs,
        seed=SEED + seed,
        penalty=pen,
        masks=None if pen is None else masks,
        progress=progress,
    )
    net.eval()
    out = {
        "penalty": penalty,
        "lam": float(lam),
        "n_train": len(tr),
        "n_test": len(te),
        "epochs": len(history),
        "train_seconds": float(sum(h["seconds"] for h in history)),
        "wall_seconds": time.perf_counter() - t0,
        "last_penalty": history[-1].get("penalty"),
        "train_decoy": accuracy(net, x_train, y_tr[tr]),
        "clean": accuracy(net, x_te[te], y_te[te]),
    }
    for mode in ("random", "swap"):
        decoyed, _ = add_decoy(x_te[te], y_te[te], mode=mode, seed=seed + 1)
        out[mode] = accuracy(net, decoyed, y_te[te])
    out["reliance"] = out["clean"] - out["swap"]
    return out
