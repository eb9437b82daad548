"""Decoy-CIFAR runs (issue 15, items 4 and 5): does a network learn the class-coded patch, does
an explanation penalty (CDEP, or the gradient penalty) stop it, and which explanation shows it?

:func:`decoy_run` trains the paper's CNN on a seeded subset of Decoy-CIFAR
(:func:`deepnnk.nets.decoy.add_decoy`, training levels ``255 − 25·y``), with or without a
penalty on the patch (:mod:`deepnnk.nets.penalties`), checkpointed and resumed like every other
run, and reports its accuracy on test images without a patch (``clean``), with a patch of a
random class level (``random``) and with another class's level (``swap``). A network that reads
the label off the patch is right on ``clean`` but fails on ``swap``; ``clean − swap`` is how
much it relies on the decoy (the ground truth of item 5).

:func:`reliance_scores` then asks each explanation method, on the swapped test images, how much
the prediction rests on the patch (CD, gradient × input, NNK, kernel kNN), per image; and
:func:`reliance_summary` scores the methods against the ground truth across the trained models
(Spearman ρ of the model means with ``clean − swap``) and per image (the AUC for "this
prediction was caused by the decoy").
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy import stats

from .cifar_features import subset_indices as _subset

PENALTIES = ("none", "cdep", "rrr")
#: The reliance scores of :func:`reliance_scores`, in table order, and what each measures.
METHODS = {
    "cd": "CD: the patch's share of the predicted logit, rel / (|rel| + |irrel|)",
    "gradient_input": "gradient × input: the patch's share of the total |attribution|",
    "nnk": "NNK: weight on training neighbours with the query's decoy level, not its class",
    "knn": "kernel kNN: the same share of its weights",
}


def _check_penalty(penalty: str) -> None:
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {PENALTIES}, got {penalty!r}.")


def decoy_model(
    penalty: str = "none",
    lam: float = 0.0,
    *,
    model: str = "underparameterised",
    n_train: int | None = 10_000,
    epochs: int = 5,
    seed: int = 0,
    data_root=None,
    checkpoints_root=None,
    progress: bool = True,
) -> dict:
    """Train (or load, if its checkpoints exist) one Decoy-CIFAR network; arguments as
    :func:`decoy_run`. Returns plain data and the network: ``"net"`` (eval mode),
    ``"x_train"`` the decoyed training images uint8 ``[n, 32, 32, 3]``, ``"y_train"`` ``[n]``,
    ``"history"`` the per-epoch training history, ``"seconds"`` the call's wall time and
    ``"x_test"`` / ``"y_test"`` the whole CIFAR-10 test set (uint8, undecoyed)."""
    from deepnnk.nets.data import load_cifar10
    from deepnnk.nets.decoy import add_decoy
    from deepnnk.nets.loading import checkpoints_root_or_default, resolve_data_root
    from deepnnk.nets.penalties import CDEPPenalty, GradientPenalty
    from deepnnk.nets.train import SEED, build_model, train

    _check_penalty(penalty)
    x_tr, y_tr, x_te, y_te = load_cifar10(resolve_data_root(data_root))
    tr = _subset(len(x_tr), n_train, seed)
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
    return {
        "net": net,
        "x_train": x_train,
        "y_train": y_tr[tr],
        "x_test": x_te,
        "y_test": y_te,
        "history": history,
        "seconds": time.perf_counter() - t0,
    }


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
    trained: dict | None = None,
) -> dict:
    """Train ``model`` (a paper recipe; default the C = 16 network) on Decoy-CIFAR with
    ``penalty`` (``"none"``, ``"cdep"`` or ``"rrr"``) at weight ``lam`` on each image's patch,
    for ``epochs`` epochs on ``n_train`` seeded training images (None: all), checkpointed under
    ``<checkpoints_root>/decoy-<model>-<penalty>-lam<lam>-seed<seed>[-n<n_train>]``.
    ``trained``: the output of :func:`decoy_model` for these arguments, to skip loading again.

    Returns the test accuracies on ``n_test`` seeded test images: ``clean`` (no patch),
    ``random`` (a random class level), ``swap`` (another class's level), ``reliance`` =
    ``clean − swap``; ``train_decoy`` (on the decoyed training images), ``epochs``,
    ``train_seconds`` and the last epoch's mean ``penalty``."""
    from deepnnk.nets.decoy import add_decoy
    from deepnnk.nets.train import accuracy

    _check_penalty(penalty)
    t0 = time.perf_counter()
    if trained is None:
        trained = decoy_model(
            penalty,
            lam,
            model=model,
            n_train=n_train,
            epochs=epochs,
            seed=seed,
            data_root=data_root,
            checkpoints_root=checkpoints_root,
            progress=progress,
        )
    net, history = trained["net"], trained["history"]
    x_te, y_te = trained["x_test"], trained["y_test"]
    te = _subset(len(x_te), n_test, seed)
    out = {
        "penalty": penalty,
        "lam": float(lam),
        "seed": int(seed),
        "n_train": len(trained["y_train"]),
        "n_test": len(te),
        "epochs": len(history),
        "train_seconds": float(sum(h["seconds"] for h in history)),
        "wall_seconds": time.perf_counter() - t0,
        "last_penalty": history[-1].get("penalty"),
        "train_decoy": accuracy(net, trained["x_train"], trained["y_train"]),
        "clean": accuracy(net, x_te[te], y_te[te]),
    }
    for mode in ("random", "swap"):
        decoyed, _ = add_decoy(x_te[te], y_te[te], mode=mode, seed=seed + 1)
        out[mode] = accuracy(net, decoyed, y_te[te])
    out["reliance"] = out["clean"] - out["swap"]
    return out


def decoy_class(levels) -> np.ndarray:
    """The class whose training level is each grey level (``255 − 25·y`` inverted), int ``[N]``."""
    from deepnnk.nets.decoy import CLASS_LEVELS

    levels = np.asarray(levels)
    lookup = {int(v): c for c, v in enumerate(CLASS_LEVELS)}
    try:
        return np.array([lookup[int(v)] for v in levels.ravel()], dtype=np.int64)
    except KeyError as err:
        raise ValueError(
            f"{err.args[0]} is not a class level; levels are {CLASS_LEVELS}."
        ) from None


def reliance_scores(
    trained: dict,
    *,
    n_queries: int = 500,
    n_neighbours_train: int | None = None,
    k: int = 50,
    seed: int = 0,
) -> dict:
    """Per-image reliance on the decoy, by each explanation method, on swapped test images.

    ``trained``: a :func:`decoy_model` output. The queries are ``n_queries`` seeded test images
    given another class's patch (``mode="swap"``, seed ``seed + 1``, as :func:`decoy_run`); the
    example-based methods search ``n_neighbours_train`` seeded decoyed training images (None:
    all of the network's training images) in the network's last-layer features, ``k``
    candidates, the cosine kernel. Scores (float64 ``[n]``, see :data:`METHODS`):

    - ``cd``: CD of the patch at the predicted class, ``rel / (|rel| + |irrel|)`` in [−1, 1];
    - ``gradient_input``: Σ over the patch of |gradient × input| / Σ over the image, in [0, 1];
    - ``nnk`` / ``knn``: the weight share of training neighbours whose patch has the query's
      level (in training the level is the class, so: neighbours of the decoy's class, which is
      never the query's own), in [0, 1].

    Also returns the ground truth per image: ``"caused"`` (bool: the prediction on the swapped
    image is the decoy's class and the prediction on the same image without a patch is not),
    ``"pred_swap"``, ``"pred_clean"``, ``"decoy_class"``, ``"y"`` and ``"seconds"``.
    """
    from deepnnk.nets.cd import contextual_decomposition
    from deepnnk.nets.decoy import add_decoy, decoy_levels

    from .reality_checks import feature_table, gradient_input_map, last_layer_features, predict

    t0 = time.perf_counter()
    net = trained["net"]
    x_te, y_te = trained["x_test"], trained["y_test"]
    te = _subset(len(x_te), n_queries, seed + 7)  # a stream apart from decoy_run's accuracy set
    y = y_te[te]
    queries, masks = add_decoy(x_te[te], y, mode="swap", seed=seed + 1)
    d_class = decoy_class(decoy_levels(y, "swap", seed + 1))
    pred_swap = predict(net, queries)
    pred_clean = predict(net, x_te[te])
    rows = np.arange(len(y))

    rel, irrel = contextual_decomposition(net, queries, masks)
    r, i = rel[rows, pred_swap].astype(np.float64), irrel[rows, pred_swap].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cd = np.where(np.abs(r) + np.abs(i) > 0, r / (np.abs(r) + np.abs(i)), 0.0)
    gxi = gradient_input_map(net, queries, pred_swap).astype(np.float64)
    total = gxi.reshape(len(gxi), -1).sum(1)
    gxi_share = np.where(total > 0, (gxi * masks).reshape(len(gxi), -1).sum(1) / total, 0.0)

    tr = _subset(len(trained["y_train"]), n_neighbours_train, seed + 11)
    f_train = last_layer_features(net, trained["x_train"][tr])
    f_query = last_layer_features(net, queries)
    y_train = trained["y_train"][tr]
    out = {"cd": cd, "gradient_input": gxi_share}
    for weighting in ("nnk", "knn"):
        table = feature_table(f_train, y_train, f_query, k, weighting)
        hit = y_train[table.index] == d_class[:, None]
        w = table.weights
        norm = w.sum(1)
        out[weighting] = np.where(norm > 0, (w * hit).sum(1) / np.where(norm > 0, norm, 1), 0.0)
    return {
        **out,
        "caused": (pred_swap == d_class) & (pred_clean != d_class),
        "pred_swap": pred_swap,
        "pred_clean": pred_clean,
        "decoy_class": d_class,
        "y": y,
        "seconds": time.perf_counter() - t0,
    }


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of ``scores`` for bool ``labels`` (ties count half); NaN if one class is absent."""
    labels = np.asarray(labels, dtype=bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = stats.rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def reliance_summary(runs: list[dict], scores: list[dict]) -> dict:
    """Each method against the ground truth, across models and across images.

    ``runs``: :func:`decoy_run` outputs; ``scores``: the :func:`reliance_scores` of the same
    models, in the same order. Returns plain data: ``"true_reliance"`` float ``[m]`` (clean −
    swap per model, accuracy points as fractions), ``"model_score"`` {method: ``[m]``, the mean
    per-image score of each model}, ``"spearman"`` {method: ρ across the ``m`` models (NaN if
    a side is constant)}, ``"auc"`` {method: the per-image AUC for ``caused``, all models'
    images pooled}, ``"auc_per_model"`` {method: ``[m]``, NaN where a model has no caused or no
    uncaused image}, ``"caused_rate"`` ``[m]`` (the fraction of swapped images whose prediction
    the decoy caused)."""
    if len(runs) != len(scores) or not runs:
        raise ValueError(
            f"runs and scores must pair up one per model, got {len(runs)} and {len(scores)}."
        )
    true = np.array([r["reliance"] for r in runs], dtype=np.float64)
    caused = np.concatenate([s["caused"] for s in scores])
    out = {
        "true_reliance": true,
        "caused_rate": np.array([s["caused"].mean() for s in scores]),
        "model_score": {},
        "spearman": {},
        "auc": {},
        "auc_per_model": {},
    }
    for m in METHODS:
        per_model = np.array([s[m].mean() for s in scores])
        out["model_score"][m] = per_model
        const = np.ptp(per_model) == 0 or np.ptp(true) == 0 or len(true) < 3
        out["spearman"][m] = float("nan") if const else float(stats.spearmanr(per_model, true)[0])
        out["auc"][m] = _auc(caused, np.concatenate([s[m] for s in scores]))
        out["auc_per_model"][m] = np.array([_auc(s["caused"], s[m]) for s in scores])
    return out
