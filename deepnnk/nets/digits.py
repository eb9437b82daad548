"""A small CNN for scikit-learn's bundled 8×8 digits (no download): the MNIST-like target of
notebook 09, trained here in seconds, seeded, its weights cached under the checkpoints root.

Data: ``sklearn.datasets.load_digits`` (1,797 images, 10 classes, grey levels 0–16), as float32
``[N, 1, 8, 8]`` in [0, 1] (grey level / 16). Split: a seeded permutation, the first
``n_test`` images held out.

Network (:class:`DigitsCNN`): conv 3×3 (1 → 16) – ReLU – conv 3×3 (16 → 32) – ReLU – max-pool 2
→ ``[32, 4, 4]`` – dense 512 → 64 – ReLU (``features``, the penultimate layer) – dense 64 → 10.
Trained with Adam (full determinism: one thread, seeded shuffles), cross-entropy.
"""

from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deepnnk import cache

SHAPE = (1, 8, 8)
CLASSES = tuple(str(d) for d in range(10))
# Training hyper-parameters: part of the checkpoint's key.
DEFAULTS = {"epochs": 30, "batch_size": 64, "lr": 2e-3, "width": 16, "hidden": 64}


class DigitsCNN(nn.Module):
    """Input float ``[N, 1, 8, 8]`` in [0, 1]; output logits ``[N, 10]``; ``features(x)`` is the
    penultimate layer ``[N, hidden]`` (after its ReLU), what ``fc`` reads."""

    def __init__(self, width: int = 16, hidden: int = 64, n_classes: int = 10):
        super().__init__()
        self.width = width
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.dense = nn.Linear(2 * width * 16, hidden)
        self.fc = nn.Linear(hidden, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 1, 8, 8]`` → ``[N, hidden]``."""
        if x.ndim != 4 or tuple(x.shape[1:]) != SHAPE:
            raise ValueError(f"DigitsCNN expects float images [N, 1, 8, 8], got {tuple(x.shape)}")
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        x = nn.functional.max_pool2d(x, 2).flatten(1)
        return torch.relu(self.dense(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits: float32 images ``[N, 1, 8, 8]`` in [0, 1] and int64 labels ``[N]``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images.astype(np.float32) / 16.0)[:, None]
    return images, d.target.astype(np.int64)


def split(n_test: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A seeded train/test split of the digits: ``x_train``, ``y_train``, ``x_test``, ``y_test``."""
    images, labels = load_digits_images()
    if not 0 < n_test < len(images):
        raise ValueError(f"n_test must be in (0, {len(images)}), got {n_test}.")
    order = np.random.default_rng(seed).permutation(len(images))
    te, tr = order[:n_test], order[n_test:]
    return {
        "x_train": images[tr],
        "y_train": labels[tr],
        "x_test": images[te],
        "y_test": labels[te],
    }


def checkpoint_path(checkpoints_root, images, labels, seed: int, **hyper) -> Path:
    """``<root>/digits-cnn/<key>.pt``: the key hashes this module's code, the hyper-parameters,
    the seed and the training data, so a change of any of them trains afresh."""
    h = hashlib.blake2b(cache.code_digest(["nets.digits"]).encode(), digest_size=12)
    h.update(cache.spec_digest({**hyper, "seed": int(seed)}).encode())
    cache.array_digest(np.asarray(images), h)
    cache.array_digest(np.asarray(labels), h)
    return Path(checkpoints_root) / "digits-cnn" / f"{h.hexdigest()}.pt"


def train_digits_cnn(images, labels, checkpoints_root, seed: int = 0, **hyper):
    """Train (or load, when cached) a :class:`DigitsCNN` on ``images [N, 1, 8, 8]`` and
    ``labels [N]``. ``hyper`` overrides :data:`DEFAULTS`. Returns ``(model in eval mode, info)``
    with ``info = {"seconds": training time when it ran, "cached": bool, "path": str}``."""
    unknown = set(hyper) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown hyper-parameters {sorted(unknown)}; use {sorted(DEFAULTS)}.")
    hp = {**DEFAULTS, **hyper}
    path = checkpoint_path(checkpoints_root, images, labels, seed, **hp)
    model = DigitsCNN(hp["width"], hp["hidden"])
    if path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        return model.eval(), {"seconds": float(state["seconds"]), "cached": True, "path": str(path)}
    t0 = time.time()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny network: threads only contend (52 s against 5 s, loaded)
    try:
        model = _train(images, labels, seed, hp)
    finally:
        torch.set_num_threads(threads)
    seconds = time.time() - t0
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "seconds": seconds, "hyper": hp}, buf)
    cache.atomic_write(path, lambda f: f.write(buf.getvalue()))
    return model.eval(), {"seconds": seconds, "cached": False, "path": str(path)}


def _train(images, labels, seed: int, hp: dict) -> DigitsCNN:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = DigitsCNN(hp["width"], hp["hidden"])
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=hp["lr"])
    model.train()
    for _ in range(hp["epochs"]):
        perm = torch.randperm(len(x), generator=gen)
        for s in range(0, len(x), hp["batch_size"]):
            b = perm[s : s + hp["batch_size"]]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[b]), y[b]).backward()
            opt.step()
    return model
