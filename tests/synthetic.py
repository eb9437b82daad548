"""Small synthetic data sets shared by several test files."""

from __future__ import annotations

import numpy as np

# Explanation tables: d > k, so the candidates' cosine Gram matrix has full rank, as with CIFAR
# features (d = 512).
N, D, K, C = 400, 48, 20, 4


def relu_features(n: int, d: int = 24, seed: int = 0, noise: float = 1.4):
    """ReLU-like float32 features ``[n, d]`` of 5 classes, and their labels ``[n]``."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(5, d))
    y = rng.integers(0, 5, n)
    X = np.maximum(centres[y] + noise * rng.normal(size=(n, d)), 0) + 0.01
    return X.astype(np.float32), y


def loo_data():
    """600 training and 200 test rows of :func:`relu_features`."""
    X, y = relu_features(600)
    Xt, yt = relu_features(200, seed=1)
    return X, y, Xt, yt


def table_data():
    """(X ``[N, D]``, y, 30 queries, their labels), class values 10..13: tables must map them,
    not assume 0..C−1."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(C, D)) * 2
    y = rng.integers(0, C, N)
    X = centres[y] + rng.normal(size=(N, D))
    yq = rng.integers(0, C, 30)
    Xq = centres[yq] + rng.normal(size=(30, D))
    return X, y + 10, Xq, yq + 10
