"""CIFAR-10 features of one checkpoint, and the network's own train and test error.

One forward pass per image: the logits are the network's ``fc`` applied to the (cached)
features of its last conv block. Subsets are fixed random draws (:func:`subset_indices`), so
every profile sees the same images on every run.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import numpy as np
import torch

from deepnnk.nets.features import extract
from deepnnk.nets.loading import load_network, resolve_data_root
from deepnnk.nets.train import torch_threads

__all__ = ["CheckpointFeatures", "checkpoint_features", "network_test_error", "subset_indices"]


@functools.lru_cache(maxsize=2)
def _cifar(root: str):
    from deepnnk.nets.data import load_cifar10

    return load_cifar10(root)


def subset_indices(n_total: int, n: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of a fixed random subset of ``n`` of ``n_total`` rows (all when n is None)."""
    if n is None or n >= n_total:
        return np.arange(n_total)
    if n < 1:
        raise ValueError(f"subset size must be positive, got {n}.")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_total, size=int(n), replace=False))


@dataclass
class CheckpointFeatures:
    """Features of one checkpoint on (a subset of) CIFAR-10, and the network's own errors."""

    weights: str
    model: str
    epoch: int
    train: np.ndarray  # [n_train, 16C] float32
    test: np.ndarray  # [n_test, 16C] float32
    y_train: np.ndarray
    y_test: np.ndarray
    train_index: np.ndarray  # rows of the official training order
    test_index: np.ndarray
    net_train_error: float
    net_test_error: float
    seconds: float


def _features_and_logits(net, images, cache_dir):
    # One thread: the measured fastest for convolutions on this shared 2-core machine.
    with torch_threads(1):
        feats = extract(net, images, cache_dir=cache_dir)
    with torch.inference_mode():
        logits = net.fc(torch.from_numpy(feats)).numpy()
    return feats, logits


def checkpoint_features(
    weights: str,
    model: str,
    epoch: int,
    data_root=None,
    *,
    checkpoints_root=None,
    n_train: int | None = None,
    n_test: int | None = None,
    subset_seed: int = 0,
    cache_dir=None,
) -> CheckpointFeatures:
    """Train and test features of one checkpoint, and the network's own train/test error.

    One forward pass per image: the logits are the network's ``fc`` applied to the cached
    features. ``n_train``/``n_test`` take a fixed random subset (:func:`subset_indices`) of the
    images before the forward pass; None means all 50,000 / 10,000. ``cache_dir`` is the feature
    cache of :func:`deepnnk.nets.features.extract`.
    """
    t0 = time.perf_counter()
    x_train, y_train, x_test, y_test = _cifar(str(resolve_data_root(data_root)))
    net = load_network(weights, model, epoch, data_root, checkpoints_root)
    itr = subset_indices(len(x_train), n_train, subset_seed)
    ite = subset_indices(len(x_test), n_test, subset_seed + 1)
    f_tr, l_tr = _features_and_logits(net, x_train[itr], cache_dir)
    f_te, l_te = _features_and_logits(net, x_test[ite], cache_dir)
    return CheckpointFeatures(
        weights=weights,
        model=model,
        epoch=int(epoch),
        train=f_tr,
        test=f_te,
        y_train=y_train[itr],
        y_test=y_test[ite],
        train_index=itr,
        test_index=ite,
        net_train_error=float(np.mean(l_tr.argmax(1) != y_train[itr])),
        net_test_error=float(np.mean(l_te.argmax(1) != y_test[ite])),
        seconds=time.perf_counter() - t0,
    )


def network_test_error(
    weights: str,
    model: str,
    epoch: int,
    data_root=None,
    *,
    checkpoints_root=None,
    n_test: int | None = None,
    subset_seed: int = 0,
    cache_dir=None,
) -> float:
    """The network's own error on (the same subset as :func:`checkpoint_features` of) the test
    set; by default all 10,000 images — the "true" test error that model selection aims at."""
    _, _, x_test, y_test = _cifar(str(resolve_data_root(data_root)))
    net = load_network(weights, model, epoch, data_root, checkpoints_root)
    ite = subset_indices(len(x_test), n_test, subset_seed + 1)
    _, logits = _features_and_logits(net, x_test[ite], cache_dir)
    return float(np.mean(logits.argmax(1) != y_test[ite]))
