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

from deepnnk import NNKClassifier
from deepnnk.evaluation import evaluate_features
from deepnnk.studies.cifar_features import subset_indices as _subset
from deepnnk.studies.profiles import pick

#: The sizes of notebook 05 per profile (:mod:`deepnnk.studies.profiles`); ``None`` is all of a
#: split. ``layers_*``: the paper CNN's per-layer table; ``resnet_*``: the ResNet-18 trained
#: here and its table; ``mislabel_*``: the noisy-label run (``tracin_epochs`` its checkpoints).
PROFILES = {
    "smoke": {
        "layers_n_train": 1000,
        "layers_n_test": 300,
        "resnet_n_train": 500,
        "resnet_epochs": 1,
        "resnet_n_test": 300,
        "mislabel_n_train": 1000,
        "mislabel_epochs": 2,
        "tracin_epochs": [1, 2],
        "n_queries": 2,
        "n_suspects": 4,
    },
    "quick": {
        "layers_n_train": 10000,
        "layers_n_test": 2000,
        "resnet_n_train": 10000,
        "resnet_epochs": 3,
        "resnet_n_test": 2000,
        "mislabel_n_train": 10000,
        "mislabel_epochs": 10,
        "tracin_epochs": [2, 4, 6, 8, 10],
        "n_queries": 3,
        "n_suspects": 6,
    },
    "paper": {
        "layers_n_train": None,
        "layers_n_test": None,
        "resnet_n_train": None,
        "resnet_epochs": 6,
        "resnet_n_test": None,
        "mislabel_n_train": None,
        "mislabel_epochs": 20,
        "tracin_epochs": [4, 8, 12, 16, 20],
        "n_queries": 3,
        "n_suspects": 6,
    },
}
FLIP_RATE = 0.1


def profile(name: str) -> dict:
    """The sizes of profile ``name`` (``"smoke"``, ``"quick"`` or ``"paper"``)."""
    return pick(PROFILES, name)


def config(sizes: dict, **params) -> dict:
    """The run's configuration as recorded in ``metrics.json``: the notebook's ``params`` and
    the profile's sizes."""
    return {**params, **sizes, "flip_rate": FLIP_RATE}


#: Readable names of the scores of :func:`mislabel_scores`, for prose and figures.
SCORE_NAMES = {
    "nnk_other_share": "NNK LOO: weight on other classes",
    "nnk_residual": "NNK LOO residual",
    "knn_other_share": "kernel kNN LOO: weight on other classes",
    "network_loss": "network loss",
    "tracin_self_influence": "last-layer TracIn self-influence",
}

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


def layer_summary(table: dict[str, dict]) -> dict:
    """The numbers the prose quotes about one :func:`layer_table`: its first and last layer's
    errors, the best layer by NNK test error, on how many layers kernel kNN's LOO error is
    below NNK's and by how much at most, and how far LOO-NNK is from NNK's test error."""
    names = list(table)
    first, last = table[names[0]], table[names[-1]]
    knn_gap = {n: table[n]["loo_nnk"] - table[n]["loo_knn"] for n in names}  # > 0: kNN better
    loo_vs_test = [abs(table[n]["loo_nnk"] - table[n]["test_nnk"]) for n in names]
    best = min(names, key=lambda n: table[n]["test_nnk"])
    return {
        "n_layers": len(names),
        "first": names[0],
        "last": names[-1],
        "first_loo_nnk": first["loo_nnk"],
        "first_test_nnk": first["test_nnk"],
        "last_loo_nnk": last["loo_nnk"],
        "last_test_nnk": last["test_nnk"],
        "last_loo_knn": last["loo_knn"],
        "last_test_knn": last["test_knn"],
        "last_nnk_minus_knn_test": last["test_nnk"] - last["test_knn"],
        "best_test_layer": best,
        "best_test_nnk": table[best]["test_nnk"],
        "n_knn_below_nnk_loo": sum(g > 0 for g in knn_gap.values()),
        "max_knn_advantage_loo": max(knn_gap.values()),
        "max_knn_advantage_layer": max(knn_gap, key=knn_gap.get),
        "max_abs_loo_minus_test": max(loo_vs_test),
        "neighbours_first": first["neighbours_mean"],
        "neighbours_last": last["neighbours_mean"],
    }


def diverging_layer(better: dict[str, dict], worse: dict[str, dict], key: str = "loo_nnk"):
    """The first layer from which ``worse``'s ``key`` error stays above ``better``'s at every
    later layer (the same layer names in both), or None when it never does."""
    names = list(better)
    above = [worse[n][key] > better[n][key] for n in names]
    for i in range(len(names)):
        if all(above[i:]):
            return names[i]
    return None


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


def mislabel_scores(
    features,
    y,
    logits=None,
    *,
    k: int = 50,
    tracin=None,
    predictions: dict | None = None,
    tables: dict | None = None,
) -> dict[str, np.ndarray]:
    """Per training point ``[N]``, scores of :data:`SCORES` ("higher = more suspicious").

    ``nnk_other_share``: 1 − NNK's leave-one-out probability of the given label (the weight its
    k nearest *other* training points put on other classes); ``nnk_residual``: how badly they
    reconstruct it; ``knn_other_share``: the same share with kernel-kNN weights;
    ``network_loss``: the cross-entropy of ``logits`` (if given); ``tracin_self_influence``:
    ``tracin`` if given (:func:`tracin_self_influence`). ``predictions``: a dict that receives
    the leave-one-out labels ``[N]`` the two interpolations predict (``"nnk"``, ``"knn"``);
    ``tables``: a dict that receives NNK's leave-one-out
    :class:`~deepnnk.explain.NeighbourTable` of every point (``"nnk"``), the explanation of
    each score. NNK's share, residual, labels and table all come from one search and one
    solve (:meth:`~deepnnk.NNKClassifier.loo_explain`)."""
    from deepnnk.explain import NeighbourTable

    y = np.asarray(y)
    nnk = NNKClassifier(n_neighbors=k).fit(features, y)
    kn = NNKClassifier(n_neighbors=k, weighting="knn").fit(features, y)
    pos = np.searchsorted(nnk.classes_, y)
    rows = np.arange(len(y))
    index, weights, residual = nnk.loo_explain()
    table = NeighbourTable(index, weights, nnk.y_fit_[index], residual, nnk.classes_)
    P_nnk, P_knn = table.proba, kn.loo_predict_proba()
    out = {
        "nnk_other_share": 1.0 - P_nnk[rows, pos],
        "knn_other_share": 1.0 - P_knn[rows, pos],
    }
    if predictions is not None:
        predictions["nnk"] = nnk.classes_[P_nnk.argmax(1)]
        predictions["knn"] = nnk.classes_[P_knn.argmax(1)]
    out["nnk_residual"] = residual
    if tables is not None:
        tables["nnk"] = table
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


def relabel_report(original, given, flipped, network_label, loo_labels: dict, nnk_score) -> dict:
    """Can the suspects be relabelled? Over the flipped points: how often the network's own
    prediction (trained on the noisy labels) and each leave-one-out interpolation
    (``loo_labels``: ``{"nnk": [N], "knn": [N]}``) give back the ``original`` label; and among
    NNK's top suspects at the flip rate (by ``nnk_score``), how many were flipped and how often
    NNK's label is the original one."""
    original, given = np.asarray(original), np.asarray(given)
    flipped = np.asarray(flipped, bool)
    top = np.zeros(len(flipped), bool)
    top[np.argsort(-np.asarray(nnk_score), kind="stable")[: int(flipped.sum())]] = True
    hit = top & flipped
    out = {
        "network_recovers_original": float(
            np.mean(np.asarray(network_label)[flipped] == original[flipped])
        ),
        "n_top": int(top.sum()),
        "n_top_flipped": int(hit.sum()),
        "nnk_top_flipped_recovers_original": float(
            np.mean(loo_labels["nnk"][hit] == original[hit]) if hit.any() else float("nan")
        ),
    }
    for name, labels in loo_labels.items():
        out[f"{name}_recovers_original"] = float(np.mean(labels[flipped] == original[flipped]))
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def cifar_setting(
    weights: str = "paper",
    model: str = "regularised",
    epoch: int = 20,
    *,
    n_train: int | None = 10_000,
    n_test: int | None = 2_000,
    seed: int = 0,
    data_root=None,
    checkpoints_root=None,
):
    """The paper's CNN and a seeded subset of CIFAR-10 (``None``: all of a split), as a
    namespace: ``model`` (eval mode), ``x_train`` / ``x_test`` float ``[n, 3, 32, 32]``
    (pixels/255, what the network takes), ``y_train`` / ``y_test``, the uint8 HWC
    ``train_images`` / ``test_images`` to draw, ``train_ids`` / ``test_ids`` (rows of the
    official splits) and ``classes`` (the ten names)."""
    from types import SimpleNamespace

    from deepnnk.nets.data import CLASSES, load_cifar10, to_tensor
    from deepnnk.nets.loading import load_network, resolve_data_root

    net = load_network(weights, model, epoch, data_root, checkpoints_root)
    x_tr, y_tr, x_te, y_te = load_cifar10(resolve_data_root(data_root))
    tr, te = _subset(len(x_tr), n_train, seed), _subset(len(x_te), n_test, seed)
    return SimpleNamespace(
        model=net,
        x_train=to_tensor(x_tr[tr]),
        y_train=y_tr[tr],
        x_test=to_tensor(x_te[te]),
        y_test=y_te[te],
        train_images=x_tr[tr],
        test_images=x_te[te],
        train_ids=tr,
        test_ids=te,
        classes=list(CLASSES),
    )


#: The paper CNN's rows: its six conv layers and its features (the input of ``fc``).
PAPER_CNN_LAYERS = (*(f"convs.{i}" for i in range(6)), "features")


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
    progress: bool = True,
) -> dict[str, dict]:
    """:func:`layer_table` over the paper CNN's six conv layers and its features (the input of
    ``fc``), on a seeded subset of CIFAR-10 (:func:`cifar_setting`; ``None``: all of a split).

    A conv layer's representation is its post-ReLU map, globally max-pooled per channel
    (``[N, C]``): the CNN applies ReLU functionally, so the hooked conv output is pre-ReLU, and
    ``max`` commutes with ReLU (``relu(max x) = max relu(x)``), which ``avg`` would not."""
    from deepnnk import extract_features

    data = cifar_setting(
        weights,
        model,
        epoch,
        n_train=n_train,
        n_test=n_test,
        seed=seed,
        data_root=data_root,
        checkpoints_root=checkpoints_root,
    )
    net, convs = data.model, list(PAPER_CNN_LAYERS[:-1])
    feats = {}
    for side, X in (("train", data.x_train), ("test", data.x_test)):
        out = extract_features(net, X, convs, pool="max", progress_bar=progress)
        out = {name: np.maximum(f, 0.0) for name, f in out.items()}
        out["features"] = extract_features(net, X, "fc", layer_input=True, progress_bar=progress)
        feats[side] = out
    return layer_table(feats["train"], data.y_train, feats["test"], data.y_test, k=k)


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
    the flipped labels (:func:`detection_report`), with the seconds each score took (the
    features are recomputed, not read from a cache, so those are computing times).

    Returns ``(report, arrays)``: ``report`` is JSON-ready (the detection table, the network's
    training accuracy on the given and on the original labels, seconds); ``arrays`` holds, per
    training point used, ``rows`` (indices into CIFAR-10's training set), ``given`` (the noisy
    labels trained on), ``original``, ``flipped``, ``features`` ``[N, d]`` (the last epoch's
    ``fc`` input), ``scores`` (:func:`mislabel_scores`), the network's and the interpolations'
    labels, and ``loo_table``, NNK's leave-one-out explanation of every point."""
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
    x_tr, y_tr, _, _ = load_cifar10(resolve_data_root(data_root))
    x, original = to_tensor(x_tr[rows]), y_tr[rows]

    def features_and_logits(epoch):
        net = load_checkpoint(folder, epoch)
        # Not cached: the seconds reported for each score are those of computing it.
        F = extract_features(net, x, "fc", layer_input=True, cache_dir=False, progress_bar=progress)
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
    loo_labels: dict = {}
    tables: dict = {}
    scores = mislabel_scores(
        F, noisy, logits, k=k, tracin=tracin, predictions=loo_labels, tables=tables
    )
    seconds["nnk_and_knn_scores"] = time.perf_counter() - t0
    report = {
        "rate": rate,
        "n_train": len(noisy),
        "n_flipped": int(flipped.sum()),
        "epochs": epochs,
        "tracin_epochs": list(tracin_epochs or range(1, epochs + 1)),
        "k": k,
        "network_train_accuracy_given": float(np.mean(logits.argmax(1) == noisy)),
        "network_train_accuracy_original": float(np.mean(logits.argmax(1) == original)),
        "detection": detection_report(scores, flipped),
        "relabel": relabel_report(
            original, noisy, flipped, logits.argmax(1), loo_labels, scores["nnk_other_share"]
        ),
        "seconds": seconds,
    }
    arrays = {
        "rows": rows,
        "given": noisy,
        "original": original,
        "flipped": flipped,
        "features": F,
        "scores": scores,
        "network_label": logits.argmax(1),
        "loo_label": loo_labels,
        "loo_table": tables["nnk"],
    }
    return report, arrays


# --------------------------------------------------------------------------- any model, by layer


def layer_by_layer(
    model,
    train_inputs,
    y_train,
    test_inputs,
    y_test,
    layers,
    *,
    pool: str | None = "avg",
    k: int = 50,
    batch_size: int = 128,
    progress: bool = True,
) -> dict[str, dict]:
    """:func:`layer_table` for any ``model`` and any of its layers: each layer's activations
    (:func:`deepnnk.extract_features`, globally ``pool``-ed, cached) on the training and test
    inputs, then LOO-NNK, NNK test, kernel kNN and the mean number of neighbours per layer.

    layers: module names (as ``model.named_modules()``), or a dict ``{row label: name}``; the
    label ``"logits"`` with ``name`` the final linear layer takes its output, any other label its
    output as well. Inputs are anything :func:`deepnnk.extract_features` takes."""
    from deepnnk import extract_features

    layers = dict(layers) if isinstance(layers, dict) else {name: name for name in layers}
    names = list(layers.values())
    feats = {}
    for side, data in (("train", train_inputs), ("test", test_inputs)):
        out = extract_features(
            model, data, names, pool=pool, batch_size=batch_size, progress_bar=progress
        )
        feats[side] = {label: out[name] for label, name in layers.items()}
    return layer_table(feats["train"], y_train, feats["test"], y_test, k=k)


#: ResNet-18's rows: the stem after its ReLU, the four stages (each average-pooled per channel
#: as the network's own head does, so ``layer4`` is exactly the 512-d input of ``fc``), logits.
RESNET_LAYERS = {
    "stem": "relu",
    "layer1": "layer1",
    "layer2": "layer2",
    "layer3": "layer3",
    "layer4": "layer4",
    "logits": "fc",
}


def resnet18_run(
    *,
    n_train: int | None = None,
    epochs: int = 6,
    seed: int = 0,
    data_root=None,
    checkpoints_root=None,
    progress: bool = True,
):
    """Train torchvision's ResNet-18 (``weights=None``: random, nothing downloaded) on CIFAR-10,
    or a seeded subset of ``n_train`` images, with the paper's loop (Adam, lr 1e-3, batches of
    50, random horizontal flips), checkpointed and resumed under
    ``<checkpoints_root>/resnet18-seed<seed>[-n<n_train>]``.

    Returns ``(model in eval mode, training rows, history)``; the history has one entry per
    epoch (``train_loss``, ``seconds``)."""
    from pathlib import Path

    from deepnnk.nets.data import load_cifar10
    from deepnnk.nets.loading import checkpoints_root_or_default, resolve_data_root
    from deepnnk.nets.models import resnet18
    from deepnnk.nets.train import train

    x_tr, y_tr, _, _ = load_cifar10(resolve_data_root(data_root))
    rows = _subset(len(x_tr), n_train, seed)
    name = f"resnet18-seed{seed}" + (f"-n{len(rows)}" if len(rows) < len(x_tr) else "")
    folder = Path(checkpoints_root_or_default(checkpoints_root)) / name
    net = resnet18(seed=seed)
    history = train(
        net,
        x_tr[rows],
        y_tr[rows],
        checkpoint_dir=folder,
        epochs=epochs,
        flip=True,
        progress=progress,
    )
    return net.eval(), rows, history


def resnet18_layers(
    net,
    rows,
    *,
    n_test: int | None = None,
    k: int = 50,
    seed: int = 0,
    data_root=None,
    progress: bool = True,
) -> tuple[dict[str, dict], dict]:
    """:func:`layer_by_layer` over :data:`RESNET_LAYERS` of a trained ResNet-18: its training
    ``rows`` of CIFAR-10 against ``n_test`` seeded test images (None: all). Returns the table
    and ``{"test_accuracy", "train_accuracy", "n_train", "n_test"}`` of the network itself."""
    from deepnnk import extract_features
    from deepnnk.nets.data import load_cifar10, to_tensor
    from deepnnk.nets.loading import resolve_data_root

    x_tr, y_tr, x_te, y_te = load_cifar10(resolve_data_root(data_root))
    te = _subset(len(x_te), n_test, seed)
    X_tr, X_te = to_tensor(x_tr[rows]), to_tensor(x_te[te])
    table = layer_by_layer(
        net, X_tr, y_tr[rows], X_te, y_te[te], RESNET_LAYERS, k=k, progress=progress
    )
    acc = {}
    for side, X, y in (("train", X_tr, y_tr[rows]), ("test", X_te, y_te[te])):
        logits = extract_features(net, X, "fc", progress_bar=progress)
        acc[f"{side}_accuracy"] = float(np.mean(logits.argmax(1) == y))
    return table, acc | {"n_train": len(rows), "n_test": len(te)}


def resnet18_metrics(table: dict[str, dict], accuracy: dict, history: list[dict]) -> dict:
    """What notebook 05 records of the ResNet-18: the per-layer table (and its layer order,
    which ``metrics.json``'s sorted keys lose), the network's accuracy (and test error), the
    epochs trained and their seconds, and :func:`layer_summary`."""
    return {
        "accuracy": accuracy,
        "network_test_error": 1.0 - accuracy["test_accuracy"],
        "layers": table,
        "layer_order": list(table),
        "epochs": len(history),
        "train_seconds": float(sum(h["seconds"] for h in history)),
        "summary": layer_summary(table),
    }


# --------------------------------------------------------------------------- suspects


def top_suspects(score, n: int) -> np.ndarray:
    """The ``n`` rows with the highest ``score`` ``[N]``, most suspicious first (ties: lower row
    first)."""
    return np.argsort(-np.asarray(score), kind="stable")[:n]


def loo_table(features, labels, rows=None, *, k: int = 50):
    """The leave-one-out NNK explanation of the training points ``rows`` (default all): each
    interpolated from its ``k`` nearest *other* training points (``features [N, d]``,
    ``labels [N]``), as a :class:`~deepnnk.explain.NeighbourTable` whose ``index`` are training
    rows; the same weights :func:`mislabel_scores` reads its ``nnk_other_share`` from (which
    hands out this table for every point through its ``tables`` argument)."""
    from deepnnk.explain import NeighbourTable

    nnk = NNKClassifier(n_neighbors=k).fit(features, labels)
    index, weights, residual = nnk.loo_explain()
    table = NeighbourTable(index, weights, nnk.y_fit_[index], residual, nnk.classes_)
    return table if rows is None else table.subset(np.asarray(rows, dtype=np.int64))


def roc_curves(scores: dict[str, np.ndarray], flipped) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per score, its ROC curve ``(false-positive rate, true-positive rate)`` for finding the
    ``flipped`` points."""
    from sklearn.metrics import roc_curve

    flipped = np.asarray(flipped, bool)
    out = {}
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(flipped, s)
        out[name] = (fpr, tpr)
    return out


# --------------------------------------------------------------------------- reporting


def format_layer_table(tables: dict[str, dict]) -> str:
    """A printable table of one or more :func:`layer_table` results (``{model: table}``)."""
    head = f"{'model':<12} {'layer':<10} {'dim':>5} {'LOO-NNK':>8} {'NNK test':>9} "
    head += f"{'LOO-kNN':>8} {'kNN test':>9} {'neighbours':>10}"
    lines = [head]
    for model, table in tables.items():
        for name, r in table.items():
            lines.append(
                f"{model:<12} {name:<10} {r['dim']:>5} {r['loo_nnk']:>8.4f} {r['test_nnk']:>9.4f} "
                f"{r['loo_knn']:>8.4f} {r['test_knn']:>9.4f} {r['neighbours_mean']:>10.2f}"
            )
    return "\n".join(lines)


def score_seconds(seconds: dict) -> dict[str, float]:
    """Per score, the seconds of the pass that computed it (from
    :func:`mislabel_experiment`'s ``seconds``): the three LOO scores share one pass (NNK and
    kernel kNN on the same candidates), the loss comes with the features, TracIn has its own."""
    shared = seconds["nnk_and_knn_scores"]
    return {
        "nnk_other_share": shared,
        "nnk_residual": shared,
        "knn_other_share": shared,
        "network_loss": seconds["features"],
        "tracin_self_influence": seconds["tracin_self_influence"],
    }


def detection_summary(detection: dict[str, dict]) -> dict:
    """The best score by AUC (its key, readable name, AUC and precision) and NNK's rank
    (1 = best) by AUC and by precision at the flip rate, among ``len(detection)`` scores."""
    by_auc = sorted(detection, key=lambda n: -detection[n]["auc"])
    by_prec = sorted(detection, key=lambda n: -detection[n]["precision_at_rate"])
    best = by_auc[0]
    return {
        "n_scores": len(detection),
        "best_auc_score": best,
        "best_auc_label": SCORE_NAMES.get(best, best),
        "best_auc": detection[best]["auc"],
        "best_auc_precision": detection[best]["precision_at_rate"],
        "nnk_rank_auc": by_auc.index("nnk_other_share") + 1,
        "nnk_rank_precision": by_prec.index("nnk_other_share") + 1,
    }


def format_detection(detection: dict[str, dict], seconds: dict | None = None) -> str:
    """A printable table of :func:`detection_report`, best AUC first, with seconds if given."""
    lines = [f"{'score':<42} {'ROC AUC':>8} {'precision':>9} {'seconds':>8}"]
    for name in sorted(detection, key=lambda n: -detection[n]["auc"]):
        d, sec = detection[name], "" if seconds is None else f"{seconds[name]:.1f}"
        label = SCORE_NAMES.get(name, name)
        lines.append(f"{label:<42} {d['auc']:>8.3f} {d['precision_at_rate']:>9.3f} {sec:>8}")
    return "\n".join(lines)


def training_images(rows, data_root=None) -> np.ndarray:
    """The uint8 ``[n, 32, 32, 3]`` CIFAR-10 training images at ``rows``."""
    from deepnnk.nets.data import load_cifar10
    from deepnnk.nets.loading import resolve_data_root

    return load_cifar10(resolve_data_root(data_root))[0][np.asarray(rows)]


def suspects_summary(table, suspects, arrays: dict) -> dict:
    """How many of the gallery's ``suspects`` were flipped, and for how many of those the
    leave-one-out NNK class (``table.pred``) is the original label."""
    suspects = np.asarray(suspects)
    flipped = np.asarray(arrays["flipped"], bool)[suspects]
    is_original = np.asarray(table.pred) == np.asarray(arrays["original"])[suspects]
    return {
        "n": len(suspects),
        "n_flipped": int(flipped.sum()),
        "n_nnk_is_original": int((flipped & is_original).sum()),
    }
