"""Explain your own model: NNK layer by layer, and ranking training points as suspected mislabels.

Everything here takes plain arrays (features from :func:`deepnnk.extract_features`, labels) and
returns plain data, so it works for any model and any data set:

* :func:`layer_table` — for each layer, the LOO-NNK error on the training set, NNK's test error,
  kernel kNN's, and the mean number of NNK neighbours: where in the network the classes separate,
  and where the interpolation starts to generalize.
* :func:`flip_labels` — a seeded label-noise experiment: a fraction of the labels moved to another
  class, uniformly.
* :func:`mislabel_scores` — per training point, how suspicious its label is: NNK's leave-one-out
  probability of the given label, the weight share on other classes, the LOO residual; kernel
  kNN's LOO probability; the network's loss; and a last-layer TracIn self-influence
  (:func:`tracin_self_influence`).
* :func:`detection_report` — ROC AUC and precision at the flip rate of each score.
"""

from __future__ import annotations

import time

import numpy as np

from deepnnk import NNKClassifier, knn
from deepnnk.evaluation import evaluate_features
from deepnnk.explain import nnk_on_candidates

#: The scores of :func:`mislabel_scores`, each read "higher = more suspicious".
SCORES = (
    "nnk_other_share",
    "nnk_residual",
    "knn_other_share",
    "network_loss",
    "tracin_self_influence",
)


def layer_table(
    features_train: dict, y_train, features_test: dict, y_test, *, k: int = 50
) -> dict[str, dict]:
    """Per layer (the keys of ``features_*``: name -> ``[N, d]``), the errors of the same
    interpolation on that layer's features: ``loo_nnk``, ``test_nnk``, ``loo_knn``, ``test_knn``,
    ``neighbours_mean`` (NNK, LOO side), ``dim`` and ``seconds``. Layers keep their order."""
    if set(features_train) != set(features_test):
        raise ValueError(
            "features_train and features_test must have the same layers; got "
            f"{sorted(features_train)} and {sorted(features_test)}."
        )
    table = {}
    for name, F in features_train.items():
        t0 = time.perf_counter()
        r = evaluate_features(F, y_train, features_test[name], y_test, ks=[k], solvers=["exact"])
        loo, test = r["loo"][str(k)], r["test"][str(k)]
        table[name] = {
            "dim": int(F.shape[1]),
            "loo_nnk": loo["exact"]["error"],
            "test_nnk": test["exact"]["error"],
            "loo_knn": loo["knn_error"],
            "test_knn": test["knn_error"],
            "neighbours_mean": loo["exact"]["n_neighbors_mean"],
            "seconds": time.perf_counter() - t0,
        }
    return table


def flip_labels(y, rate: float, n_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(noisy labels, flipped mask)``: ``round(rate * N)`` seeded positions, each moved to one of
    the other ``n_classes - 1`` classes uniformly at random."""
    y = np.asarray(y)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be in [0, 1), got {rate}.")
    if n_classes < 2:
        raise ValueError(f"flipping needs at least 2 classes, got n_classes={n_classes}.")
    rng = np.random.default_rng(seed)
    n_flip = int(round(rate * len(y)))
    where = rng.choice(len(y), size=n_flip, replace=False)
    shift = rng.integers(1, n_classes, size=n_flip)  # never 0: the class always changes
    noisy = y.copy()
    noisy[where] = (y[where] + shift) % n_classes
    flipped = np.zeros(len(y), bool)
    flipped[where] = True
    return noisy, flipped


def tracin_self_influence(features_by_checkpoint, logits_by_checkpoint, y, lrs=None) -> np.ndarray:
    """Last-layer TracIn self-influence ``[N]`` (Pruthi et al. 2020), summed over checkpoints.

    For a final linear layer ``z = W h + b`` and cross-entropy, the gradient with respect to
    ``(W, b)`` is ``(p - e_y) [h; 1]ᵀ``, so its squared norm factorises:
    ``‖p − e_y‖² (‖h‖² + 1)``. ``features_by_checkpoint``: ``[N, d]`` inputs of the last layer,
    ``logits_by_checkpoint``: ``[N, C]``, one of each per checkpoint; ``lrs``: the learning rate
    at each checkpoint (default 1)."""
    y = np.asarray(y)
    total = np.zeros(len(y))
    lrs = [1.0] * len(features_by_checkpoint) if lrs is None else list(lrs)
    if not len(features_by_checkpoint) == len(logits_by_checkpoint) == len(lrs):
        raise ValueError("give one features array, one logits array and one lr per checkpoint.")
    for h, z, lr in zip(features_by_checkpoint, logits_by_checkpoint, lrs, strict=True):
        p = _softmax(np.asarray(z, np.float64))
        p[np.arange(len(y)), y] -= 1.0
        h = np.asarray(h, np.float64)
        total += lr * (p**2).sum(1) * ((h**2).sum(1) + 1.0)
    return total


def network_loss(logits, y) -> np.ndarray:
    """Per-example cross-entropy ``[N]`` of ``logits [N, C]`` at labels ``y``."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return -logp[np.arange(len(z)), np.asarray(y)]


def mislabel_scores(features, y, logits=None, *, k: int = 50, tracin=None) -> dict[str, np.ndarray]:
    """Per training point ``[N]``, scores of :data:`SCORES` ("higher = more suspicious").

    ``nnk_other_share``: 1 − NNK's leave-one-out probability of the given label (the weight its
    k nearest *other* training points put on other classes); ``nnk_residual``: how badly they
    reconstruct it; ``knn_other_share``: the same share with kernel-kNN weights;
    ``network_loss``: the cross-entropy of ``logits`` (if given); ``tracin_self_influence``:
    ``tracin`` if given (:func:`tracin_self_influence`)."""
    y = np.asarray(y)
    nnk = NNKClassifier(n_neighbors=k).fit(features, y)
    kn = NNKClassifier(n_neighbors=k, weighting="knn").fit(features, y)
    pos = np.searchsorted(nnk.classes_, y)
    rows = np.arange(len(y))
    out = {
        "nnk_other_share": 1.0 - nnk.loo_predict_proba()[rows, pos],
        "knn_other_share": 1.0 - kn.loo_predict_proba()[rows, pos],
    }
    _, index = knn(nnk.X_fit_, nnk.X_fit_, k, exclude_self=True)
    _, out["nnk_residual"] = nnk_on_candidates(nnk, features, np.asarray(index))
    if logits is not None:
        out["network_loss"] = network_loss(logits, y)
    if tracin is not None:
        out["tracin_self_influence"] = np.asarray(tracin, np.float64)
    return out


def detection_report(scores: dict[str, np.ndarray], flipped) -> dict[str, dict]:
    """Per score: ROC AUC for "this label was flipped" and precision among the top
    ``flipped.mean()`` fraction of points (precision at the flip rate)."""
    from sklearn.metrics import roc_auc_score

    flipped = np.asarray(flipped, bool)
    n_top = int(flipped.sum())
    if n_top == 0 or n_top == len(flipped):
        raise ValueError("flipped must mark some points, not all or none.")
    report = {}
    for name, s in scores.items():
        top = np.argsort(-np.asarray(s), kind="stable")[:n_top]
        report[name] = {
            "auc": float(roc_auc_score(flipped, s)),
            "precision_at_rate": float(flipped[top].mean()),
        }
    return report


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def paper_cnn_layers(
    weights: str = "paper",
    model: str = "regularised",
    epoch: int = 20,
    *,
    n_train: int | None = 10_000,
    n_test: int | None = 2_000,
    k: int = 50,
    seed: int = 0,
    data_root=None,
    checkpoints_root=None,
) -> dict[str, dict]:
    """:func:`layer_table` over the paper CNN's six conv layers and its features (the input of
    ``fc``), on a seeded subset of CIFAR-10 (``None``: all of a split).

    A conv layer's representation is its post-ReLU map, globally max-pooled per channel
    (``[N, C]``): the CNN applies ReLU functionally, so the hooked conv output is pre-ReLU, and
    ``max`` commutes with ReLU (``relu(max x) = max relu(x)``), which ``avg`` would not."""
    from deepnnk import extract_features
    from deepnnk.nets.data import load_cifar10, to_tensor
    from deepnnk.nets.loading import load_network, resolve_data_root

    net = load_network(weights, model, epoch, data_root, checkpoints_root)
    x_tr, y_tr, x_te, y_te = load_cifar10(resolve_data_root(data_root))
    rng = np.random.default_rng(seed)
    tr = np.sort(rng.choice(len(x_tr), n_train, replace=False)) if n_train else np.arange(len(x_tr))
    te = np.sort(rng.choice(len(x_te), n_test, replace=False)) if n_test else np.arange(len(x_te))
    convs = [f"convs.{i}" for i in range(6)]
    feats = {}
    for side, x in (("train", x_tr[tr]), ("test", x_te[te])):
        X = to_tensor(x)
        out = extract_features(net, X, convs, pool="max")
        out = {name: np.maximum(f, 0.0) for name, f in out.items()}
        out["features"] = extract_features(net, X, "fc", layer_input=True)
        feats[side] = out
    return layer_table(feats["train"], y_tr[tr], feats["test"], y_te[te], k=k)


def noisy_label_run(
    rate: float = 0.1,
    *,
    model: str = "regularised",
    epochs: int = 20,
    seed: int = 0,
    n_train: int | None = None,
    data_root=None,
    checkpoints_root=None,
    progress: bool = True,
):
    """Train the paper's ``model`` recipe on CIFAR-10 with ``rate`` of the training labels flipped
    (:func:`flip_labels`, ``seed``), checkpointed (and resumed) under
    ``<checkpoints_root>/<model>-noisy<percent>-seed<seed>[-n<n_train>]``.

    Returns ``(folder, rows, noisy labels, flipped mask)``; ``rows`` are the training images used
    (all, or a seeded subset of ``n_train``)."""
    from pathlib import Path

    from deepnnk.nets.data import load_cifar10
    from deepnnk.nets.loading import checkpoints_root_or_default, resolve_data_root
    from deepnnk.nets.train import build_model, train

    x_tr, y_tr, _, _ = load_cifar10(resolve_data_root(data_root))
    rng = np.random.default_rng(seed)
    rows = (
        np.sort(rng.choice(len(x_tr), n_train, replace=False)) if n_train else np.arange(len(x_tr))
    )
    noisy, flipped = flip_labels(y_tr[rows], rate, 10, seed)
    name = f"{model}-noisy{round(100 * rate)}-seed{seed}" + (f"-n{n_train}" if n_train else "")
    folder = Path(checkpoints_root_or_default(checkpoints_root)) / name
    net = build_model(model)
    train(net, x_tr[rows], noisy, checkpoint_dir=folder, epochs=epochs, progress=progress)
    return folder, rows, noisy, flipped


def mislabel_experiment(
    rate: float = 0.1,
    *,
    model: str = "regularised",
    epochs: int = 20,
    tracin_epochs=None,
    k: int = 50,
    seed: int = 0,
    n_train: int | None = None,
    data_root=None,
    checkpoints_root=None,
    progress: bool = True,
) -> dict:
    """Flip ``rate`` of the labels, train on them (:func:`noisy_label_run`), then score every
    training point (:func:`mislabel_scores`, on the last epoch's features and logits; TracIn
    summed over ``tracin_epochs``, default every epoch) and report how well each score finds
    the flipped labels (:func:`detection_report`), with the seconds each score took."""
    from deepnnk import extract_features
    from deepnnk.nets.data import load_cifar10, to_tensor
    from deepnnk.nets.loading import resolve_data_root
    from deepnnk.nets.train import LR, load_checkpoint

    folder, rows, noisy, flipped = noisy_label_run(
        rate,
        model=model,
        epochs=epochs,
        seed=seed,
        n_train=n_train,
        data_root=data_root,
        checkpoints_root=checkpoints_root,
        progress=progress,
    )
    x = to_tensor(load_cifar10(resolve_data_root(data_root))[0][rows])

    def features_and_logits(epoch):
        net = load_checkpoint(folder, epoch)
        F = extract_features(net, x, "fc", layer_input=True, progress_bar=progress)
        W, b = net.fc.weight.detach().double().numpy(), net.fc.bias.detach().double().numpy()
        return F, F.astype(np.float64) @ W.T + b  # the logits, exactly what fc computes

    seconds = {}
    t0 = time.perf_counter()
    F, logits = features_and_logits(epochs)
    seconds["features"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tracin = np.zeros(len(noisy))
    for e in tracin_epochs or range(1, epochs + 1):
        h, z = features_and_logits(e)
        tracin += tracin_self_influence([h], [z], noisy, lrs=[LR])
    seconds["tracin_self_influence"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = mislabel_scores(F, noisy, logits, k=k, tracin=tracin)
    seconds["nnk_and_knn_scores"] = time.perf_counter() - t0
    return {
        "rate": rate,
        "n_train": len(noisy),
        "n_flipped": int(flipped.sum()),
        "epochs": epochs,
        "tracin_epochs": list(tracin_epochs or range(1, epochs + 1)),
        "k": k,
        "detection": detection_report(scores, flipped),
        "seconds": seconds,
    }
