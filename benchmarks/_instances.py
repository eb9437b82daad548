"""Benchmark inputs: ReLU-like features with class structure, or real features from a file."""

from __future__ import annotations

import numpy as np


def relu_features(n: int, d: int = 512, n_classes: int = 10, seed: int = 0, dtype=np.float32):
    """``[n, d]`` non-negative features (about half zeros) around ``n_classes`` centres, and labels.

    Mimics a CNN's last ReLU block: class means plus per-point noise, clipped at zero; the noise
    level gives a leave-one-out NNK error of about 0.2 at k = 50 (as on CIFAR-10 features).
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, d)).astype(dtype)
    y = rng.integers(0, n_classes, n)
    X = centres[y] + 5 * rng.standard_normal((n, d)).astype(dtype)
    return np.maximum(X, 0, out=X), y


def load_or_make(path: str | None, n: int, d: int, seed: int = 0):
    """The first ``n`` rows of real features, or synthetic ones when ``path`` is None.

    ``path`` is a ``.npy`` matrix or the ``.npz`` written by ``python -m deepnnk features``
    (train then test rows)."""
    if path:
        data = np.load(path)
        if isinstance(data, np.lib.npyio.NpzFile):
            X = np.concatenate([data["train_features"], data["test_features"]])
            y = np.concatenate([data["train_labels"], data["test_labels"]])
        else:
            X, y = data, np.zeros(len(data), dtype=np.int64)
        return X.astype(np.float32)[:n], y[:n]
    return relu_features(n, d, seed=seed)
