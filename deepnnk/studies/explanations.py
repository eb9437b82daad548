r"""The computation behind ``notebooks/01_cifar_explanations.ipynb``: explaining the CIFAR-10
test predictions of the paper's regularised CNN by their NNK neighbours.

- sizes: :data:`PROFILES` / :func:`profile`; the paper's three test images :data:`PAPER_IDS`
  and the k values of the neighbour counts :data:`KS`;
- data: :func:`load_queries` (CIFAR-10, the network, a seeded training subset and test sample,
  the network's features), a :class:`Queries`;
- explanations: :func:`explain_queries` (NNK and kernel-kNN tables, the network's softmax), an
  :class:`Explanations`;
- one function per section of the notebook, each returning plain data for ``metrics.json``:
  :func:`prediction_metrics`, :func:`paper_reference`, :func:`paper_images`,
  :func:`paper_overview`, :func:`nearest_candidate`, :func:`quirk_effect`,
  :func:`top_neighbour`, :func:`sample_galleries`, :func:`weight_spread`,
  :func:`neighbour_counts_by_k`, :func:`neighbour_growth`, :func:`weight_share_groups`,
  :func:`weight_share_metrics`, :func:`separation`, :func:`disagreement_scores`,
  :func:`disagreement_details`, :func:`disagreement_cases`, :func:`summary`;
- the building blocks they share with notebooks 03 and 04: :func:`network_proba`,
  :func:`sample_indices`, :func:`prediction_summary`, :func:`query_records`,
  :func:`disagreement_summary`, :func:`describe`, :func:`split_describe`, :func:`auc`.

The NNK tables themselves (:class:`~deepnnk.explain.NeighbourTable`,
:func:`~deepnnk.explain.neighbourhood_table`, :func:`~deepnnk.explain.weight_share`) are the
core's, in :mod:`deepnnk.explain`; the figures are in :mod:`deepnnk.figures.gallery` and
:mod:`deepnnk.figures.explanations`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from deepnnk.classifier import NNKClassifier
from deepnnk.explain import NeighbourTable, neighbour_counts, neighbourhood_table, weight_share
from deepnnk.nets import features
from deepnnk.nets.data import CLASSES, load_cifar10
from deepnnk.nets.loading import load_network
from deepnnk.nets.paper import PAPER_ACCURACY
from deepnnk.studies.profiles import pick

__all__ = [
    "CLASSES",
    "EPOCH",
    "KS",
    "MODEL",
    "NEAR_COPY_RMS",
    "PAPER_ACCURACY",
    "PAPER_IDS",
    "PROFILES",
    "Explanations",
    "PaperImages",
    "Queries",
    "auc",
    "describe",
    "disagreement_cases",
    "disagreement_details",
    "disagreement_scores",
    "disagreement_summary",
    "explain_queries",
    "load_network",
    "load_queries",
    "nearest_candidate",
    "neighbour_counts_by_k",
    "neighbour_growth",
    "network_proba",
    "paper_images",
    "paper_overview",
    "paper_reference",
    "prediction_metrics",
    "prediction_summary",
    "profile",
    "query_records",
    "quirk_effect",
    "sample_galleries",
    "sample_indices",
    "separation",
    "split_describe",
    "summary",
    "top_neighbour",
    "weight_share_groups",
    "weight_share_metrics",
    "weight_spread",
]

# n_train: training images (a seeded subset below 50,000); n_test: test queries in the evaluation
# sample; n_gallery: galleries of correct and of wrong predictions each; n_disagree: galleries of
# NNK-network disagreements; n_compare: paper images drawn as NNK next to kNN.
PROFILES = {
    "smoke": dict(n_train=5000, n_test=500, n_gallery=1, n_disagree=1, n_compare=1),
    "quick": dict(n_train=50000, n_test=5000, n_gallery=3, n_disagree=4, n_compare=3),
    "paper": dict(n_train=50000, n_test=10000, n_gallery=4, n_disagree=6, n_compare=3),
}
PAPER_IDS = [2595, 3745, 374]  # the paper's test images, official test order
KS = [25, 50, 75]  # the k values of the neighbour counts (section 5)
MODEL, EPOCH = "regularised", 20  # the network explained: the paper's regularised CNN, epoch 20
PAPER_NEIGHBOURS_K50 = [15, 22]  # the paper's range of NNK neighbours of 50 at epoch 20
# RMS pixel difference (pixels in [0, 1]) below which a training image counts as a near-copy of
# the query: about 13 of 255 grey levels per pixel and channel.
NEAR_COPY_RMS = 0.05


def profile(name: str) -> dict:
    """The sizes of profile ``name`` ("smoke", "quick" or "paper"), a fresh copy."""
    return pick(PROFILES, name)


# --------------------------------------------------------------------------- data


@dataclass
class Queries:
    """The network, the training subset and the test queries of one run, with their features.

    train_ids ``[n_train]`` rows of the official training set; q_ids ``[n]`` the test ids
    explained (the evaluation sample ∪ the paper's images, sorted); ev ``[n]`` bool, which of
    them are the evaluation sample; images uint8 HWC; F_* the network's features ``[·, 512]``;
    features_seconds the time their extraction took.
    """

    model: torch.nn.Module
    train_ids: np.ndarray
    test_ids: np.ndarray
    q_ids: np.ndarray
    ev: np.ndarray
    train_images: np.ndarray
    y_train: np.ndarray
    q_images: np.ndarray
    y_q: np.ndarray
    F_train: np.ndarray
    F_q: np.ndarray
    features_seconds: float = float("nan")


def load_queries(
    weights: str,
    sizes: dict,
    seed: int,
    data_root=None,
    checkpoints_root=None,
    paper_ids=PAPER_IDS,
) -> Queries:
    """CIFAR-10 and the network (:data:`MODEL` at :data:`EPOCH`, ``weights`` "paper" or
    "retrained"), a training subset of ``sizes["n_train"]`` images drawn with ``seed``, a test
    sample of ``sizes["n_test"]`` drawn with ``seed + 1``, and the network's features of both
    (:func:`deepnnk.nets.features.extract`, cached on disk). The ``paper_ids`` are explained too.
    """
    x_train, y_train, x_test, y_test = load_cifar10(data_root or None)
    model = load_network(weights, MODEL, EPOCH, data_root or None, checkpoints_root)
    train_ids = sample_indices(np.ones(len(x_train), bool), sizes["n_train"], seed)
    test_ids = sample_indices(np.ones(len(x_test), bool), sizes["n_test"], seed + 1)
    q_ids = np.union1d(test_ids, paper_ids)  # every test image we explain
    ev = np.isin(q_ids, test_ids)  # the evaluation sample among them
    t0 = time.time()
    F_train = features.extract(model, x_train[train_ids])
    F_q = features.extract(model, x_test[q_ids])
    seconds = time.time() - t0
    return Queries(
        model=model,
        train_ids=train_ids,
        test_ids=test_ids,
        q_ids=q_ids,
        ev=ev,
        train_images=x_train[train_ids],
        y_train=y_train[train_ids],
        q_images=x_test[q_ids],
        y_q=y_test[q_ids],
        F_train=F_train,
        F_q=F_q,
        features_seconds=seconds,
    )


# --------------------------------------------------------------------------- explanations


@dataclass
class Explanations:
    """NNK's and kernel kNN's explanations of every query, and the network's softmax.

    clf: the fitted NNK classifier; nnk, knn: their :class:`NeighbourTable` over the queries;
    net_proba ``[n, C]`` the network's softmax.
    """

    clf: NNKClassifier
    nnk: NeighbourTable
    knn: NeighbourTable
    net_proba: np.ndarray

    @property
    def net_pred(self) -> np.ndarray:
        """The network's predicted class per query, ``[n]``."""
        return self.net_proba.argmax(1)

    @property
    def net_conf(self) -> np.ndarray:
        """The network's confidence (max softmax) per query, ``[n]``."""
        return self.net_proba.max(1)


def explain_queries(q: Queries, k: int, solver: str) -> Explanations:
    """Fit NNK and kernel-weighted kNN (``k`` candidates, ``solver``) on the training features
    and explain every query with both; the network's softmax from the same features."""
    clf = NNKClassifier(k, solver=solver).fit(q.F_train, q.y_train)
    knn = NNKClassifier(k, solver=solver, weighting="knn").fit(q.F_train, q.y_train)
    nnk_t, knn_t = neighbourhood_table(clf, q.F_q), neighbourhood_table(knn, q.F_q)
    return Explanations(clf, nnk_t, knn_t, network_proba(q.model, q.F_q))


# --------------------------------------------------------------------------- the sections


def prediction_metrics(q: Queries, ex: Explanations) -> dict[str, float]:
    """:func:`prediction_summary` over the evaluation sample, with NNK's accuracy minus the
    network's and minus kernel kNN's, in percentage points."""
    ev = q.ev
    out = prediction_summary(q.y_q[ev], ex.nnk.pred[ev], ex.knn.pred[ev], ex.net_pred[ev])
    out["nnk_minus_network_points"] = 100 * (out["nnk_accuracy"] - out["network_accuracy"])
    out["nnk_minus_knn_points"] = 100 * (out["nnk_accuracy"] - out["knn_accuracy"])
    return out


def paper_reference() -> dict:
    """What the paper reports: the network's test accuracy (the authors' log, all 10k test
    images) and its range of NNK neighbours for k = 50 at epoch 20."""
    paper_acc = PAPER_ACCURACY[MODEL]["test"] / 100
    return {"network_accuracy": paper_acc, "n_neighbours_k50_epoch20": PAPER_NEIGHBOURS_K50}


@dataclass
class PaperImages:
    """The paper's test images: their rows among the queries, the tables of the authors'
    plotting quirk (nearest candidate dropped), and their :func:`query_records`."""

    rows: np.ndarray
    quirk: NeighbourTable
    records: dict[str, dict]


def paper_images(q: Queries, ex: Explanations, paper_ids=PAPER_IDS) -> PaperImages:
    """The explanations of ``paper_ids``, correct and as the authors' code drew them."""
    rows = np.searchsorted(q.q_ids, paper_ids)
    quirk_t = neighbourhood_table(ex.clf, q.F_q[rows], drop_nearest=True)
    records = query_records(
        paper_ids,
        q.y_q[rows],
        ex.nnk.subset(rows),
        quirk_t,
        ex.net_proba[rows],
        CLASSES,
        q.train_ids,
    )
    return PaperImages(rows, quirk_t, records)


def nearest_candidate(table: NeighbourTable, ev) -> dict[str, float]:
    """How often the nearest candidate (column 0) is an NNK neighbour, the top neighbour, and
    its mean weight, over the rows ``ev`` of ``table``; for scale, the mean weight of an average
    neighbour (1 / number of neighbours) and the ratio of the two."""
    W = table.weights[ev]  # the nearest candidate is column 0
    nearest = {
        "is_neighbour": W[:, 0] > 0,
        "is_top_neighbour": W.argmax(1) == 0,
        "mean_weight": W[:, 0],
        "mean_neighbour_weight": 1.0 / np.maximum(table.n_neighbours[ev], 1),
    }
    out = {key: float(v.mean()) for key, v in nearest.items()}
    out["weight_ratio"] = out["mean_weight"] / out["mean_neighbour_weight"]
    return out


def quirk_effect(q: Queries, ex: Explanations) -> dict[str, float]:
    """What the authors' plotting quirk (the nearest candidate dropped, NNK solved on the other
    k − 1) does over the evaluation sample: how often it changes NNK's prediction, NNK's accuracy
    with and without it, and the mean number of neighbours with and without it."""
    ev = q.ev
    quirk = neighbourhood_table(ex.clf, q.F_q[ev], drop_nearest=True)
    pred, y = ex.nnk.pred[ev], q.y_q[ev]
    return {
        "changed_prediction": float(np.mean(quirk.pred != pred)),
        "accuracy": float(np.mean(pred == y)),
        "quirk_accuracy": float(np.mean(quirk.pred == y)),
        "mean_neighbours": float(ex.nnk.n_neighbours[ev].mean()),
        "quirk_mean_neighbours": float(quirk.n_neighbours.mean()),
    }


def paper_overview(records: dict[str, dict]) -> dict:
    """The facts of :func:`paper_images`'s records that the prose quotes, keyed ``"img<id>"``
    (a claim template cannot name an all-digit key): number of neighbours, NNK's and the
    network's class, NNK's weight share, the network's confidence, the top neighbour's class and
    weight; and the fewest and most neighbours over the images."""
    images = {
        f"img{tid}": dict(
            n_neighbours=r["n_neighbours"],
            nnk_pred=r["nnk_pred"],
            nnk_share=r["nnk_share"],
            network_pred=r["network_pred"],
            network_confidence=r["network_confidence"],
            top_label=r["neighbours"][0]["label"],
            top_weight=r["neighbours"][0]["weight"],
        )
        for tid, r in records.items()
    }
    counts = [r["n_neighbours"] for r in records.values()]
    return {"images": images, "n_neighbours_min": min(counts), "n_neighbours_max": max(counts)}


def top_neighbour(q: Queries, ex: Explanations) -> dict[str, float]:
    """The top-weight NNK neighbour of each evaluation query: how often its class is NNK's
    prediction and the true class, its mean weight, the median RMS pixel difference (pixels in
    [0, 1]) between it and the query, and how often that is below :data:`NEAR_COPY_RMS`."""
    ev = q.ev
    W = ex.nnk.weights[ev]
    top = W.argmax(1)
    at = np.arange(len(W))
    label = ex.nnk.classes[ex.nnk.labels[ev][at, top]]
    rows = ex.nnk.index[ev][at, top]
    diff = q.q_images[ev].astype(np.float64) - q.train_images[rows].astype(np.float64)
    rms = np.sqrt(np.mean((diff / 255.0) ** 2, axis=(1, 2, 3)))
    return {
        "same_class_as_prediction": float(np.mean(label == ex.nnk.pred[ev])),
        "same_class_as_truth": float(np.mean(label == q.y_q[ev])),
        "mean_weight": float(W[at, top].mean()),
        "median_pixel_rms": float(np.median(rms)),
        "near_copy": float(np.mean(rms < NEAR_COPY_RMS)),
        "near_copy_rms": NEAR_COPY_RMS,
    }


def weight_spread(q: Queries, ex: Explanations) -> dict[str, float]:
    """How uneven the weights of one explanation are, over the evaluation sample: the median
    (over queries) ratio of the largest to the smallest nonzero weight, for NNK's neighbours
    and for kernel kNN's k candidates, and the median number of each."""

    def ratio(W):
        Wp = np.where(W > 0, W, np.inf)
        return float(np.median(W.max(1) / Wp.min(1)))

    nnk, knn = ex.nnk.weights[q.ev], ex.knn.weights[q.ev]
    return {
        "nnk_max_over_min": ratio(nnk),
        "knn_max_over_min": ratio(knn),
        "nnk_median_neighbours": float(np.median((nnk > 0).sum(1))),
        "knn_median_neighbours": float(np.median((knn > 0).sum(1))),
    }


def sample_galleries(q: Queries, ex: Explanations, n: int, seed: int) -> dict[str, np.ndarray]:
    """Up to ``n`` query rows of the evaluation sample that NNK predicts correctly and ``n``
    it gets wrong, each drawn with ``seed``: {"correct": rows, "wrong": rows}."""
    correct = q.ev & (ex.nnk.pred == q.y_q)
    return {
        name: sample_indices(mask, n, seed)
        for name, mask in (("correct", correct), ("wrong", q.ev & ~correct))
    }


def neighbour_counts_by_k(q: Queries, ex: Explanations, ks, k: int, solver: str) -> dict:
    """Number of NNK neighbours of each evaluation query for each k in ``ks``: {k: ``[n]``}
    (:func:`deepnnk.explain.neighbour_counts`; k = ``k`` is taken from ``ex``, not solved
    again)."""
    known = {k: ex.nnk.n_neighbours[q.ev]}  # k is solved already
    return neighbour_counts(q.F_train, q.y_train, q.F_q[q.ev], ks, known, solver=solver)


def weight_share_groups(q: Queries, ex: Explanations) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Weight share on the predicted class and correctness over the evaluation sample, for NNK
    and kernel kNN: {"NNK": (share, correct), "kernel kNN": (share, correct)}."""
    ev = q.ev
    share_nnk, share_knn = weight_share(ex.nnk)[ev], weight_share(ex.knn)[ev]
    ok_nnk, ok_knn = (ex.nnk.pred == q.y_q)[ev], (ex.knn.pred == q.y_q)[ev]
    return {"NNK": (share_nnk, ok_nnk), "kernel kNN": (share_knn, ok_knn)}


def weight_share_metrics(groups: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """:func:`split_describe` of the weight shares of :func:`weight_share_groups`."""
    return {
        "nnk": split_describe(*groups["NNK"]),
        "knn": split_describe(*groups["kernel kNN"]),
    }


def separation(q: Queries, ex: Explanations, groups) -> dict[str, float]:
    """ROC AUC of each method's confidence for telling its correct predictions from its wrong
    ones over the evaluation sample (0.5: no better than chance): NNK's and kernel kNN's weight
    share on their predicted class (``groups`` of :func:`weight_share_groups`), and the
    network's max softmax for the network's own predictions."""
    ok_net = (ex.net_pred == q.y_q)[q.ev]
    return {
        "auc_nnk_share": auc(*groups["NNK"]),
        "auc_knn_share": auc(*groups["kernel kNN"]),
        "auc_network_confidence": auc(ex.net_conf[q.ev], ok_net),
    }


def disagreement_scores(q: Queries, ex: Explanations) -> dict[str, np.ndarray]:
    """Per evaluation query, the arguments of :func:`disagreement_summary`: whether NNK and the
    network disagree, the network's confidence, NNK's weight share on its own and on the
    network's class, the number of NNK neighbours and the residual."""
    ev = q.ev
    return dict(
        disagree=(ex.nnk.pred != ex.net_pred)[ev],
        net_conf=ex.net_conf[ev],
        nnk_share=weight_share(ex.nnk)[ev],
        share_on_net=weight_share(ex.nnk, ex.net_pred)[ev],
        n_nb=ex.nnk.n_neighbours[ev],
        residual=ex.nnk.residual[ev],
    )


def disagreement_cases(q: Queries, ex: Explanations, n: int, seed: int) -> np.ndarray:
    """Up to ``n`` rows of the evaluation sample where NNK and the network disagree (seeded)."""
    return sample_indices(q.ev & (ex.nnk.pred != ex.net_pred), n, seed)


def disagreement_details(scores: dict[str, np.ndarray]) -> dict[str, float]:
    """How well low confidence flags the queries where NNK and the network disagree, from
    :func:`disagreement_scores`: ROC AUC of 1 − network confidence, of 1 − NNK's weight share
    and of the residual for disagreement (0.5: chance); and, among disagreements, how often the
    network's class holds some of NNK's weight and how often it holds at least a quarter."""
    dis = np.asarray(scores["disagree"], dtype=bool)
    on_net = np.asarray(scores["share_on_net"])[dis]
    return {
        "auc_low_network_confidence": auc(-np.asarray(scores["net_conf"]), dis),
        "auc_low_nnk_share": auc(-np.asarray(scores["nnk_share"]), dis),
        "auc_residual": auc(scores["residual"], dis),
        "network_class_among_neighbours": float(np.mean(on_net > 0)) if dis.any() else np.nan,
        "network_class_share_over_quarter": float(np.mean(on_net >= 0.25)) if dis.any() else np.nan,
    }


def neighbour_growth(counts: dict[int, np.ndarray]) -> dict[str, float]:
    """How the number of NNK neighbours grows with k (``counts``: {k: ``[n]``}): the ratio of
    the largest to the smallest k, the ratio of their mean counts, and per k the mean fraction
    of the k candidates kept."""
    ks = sorted(counts)
    lo, hi = ks[0], ks[-1]
    out = {
        "k_ratio": hi / lo,
        "mean_ratio": float(np.mean(counts[hi]) / np.mean(counts[lo])),
    }
    out |= {f"kept_fraction_k{kk}": float(np.mean(counts[kk]) / kk) for kk in ks}
    return out


def summary(metrics: dict, ks, n_train: int) -> dict:
    """The headline numbers of ``metrics``: accuracies, agreement, disagreements, mean number of
    NNK neighbours per k, mean weight share on correct and wrong predictions."""
    p, n, w = metrics["predictions"], metrics["n_neighbours"], metrics["weight_share"]["nnk"]
    keys = ["nnk_accuracy", "knn_accuracy", "network_accuracy", "agreement_nnk_network"]
    out = {key: p[key] for key in [*keys, "n_disagreements", "n_queries"]}
    out |= {f"mean_neighbours_k{kk}": n[f"k{kk}"]["mean"] for kk in ks}
    out |= {"mean_share_correct": w["correct"]["mean"], "mean_share_wrong": w["wrong"]["mean"]}
    return {**out, "n_train": n_train}


# --------------------------------------------------------------------------- building blocks


def auc(score, positive) -> float:
    """ROC AUC of ``score`` for the ``positive`` (bool) examples against the others: the chance
    that a random positive scores above a random negative (ties count half); NaN when either
    group is empty."""
    positive = np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        return float("nan")
    return float(roc_auc_score(positive, np.asarray(score, dtype=np.float64)))


def split_describe(x, correct) -> dict[str, dict[str, float]]:
    """:func:`describe` of ``x`` where ``correct`` is true and where it is false."""
    x, correct = np.asarray(x), np.asarray(correct, dtype=bool)
    return {"correct": describe(x[correct]), "wrong": describe(x[~correct])}


def describe(x) -> dict[str, float]:
    """Mean, median, quartiles, min, max and count of ``x`` (empty → NaNs, n = 0)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size == 0:
        nan = float("nan")
        return dict(n=0, mean=nan, median=nan, q25=nan, q75=nan, min=nan, max=nan)
    q25, med, q75 = np.percentile(x, [25, 50, 75])
    return dict(
        n=int(x.size),
        mean=float(x.mean()),
        median=float(med),
        q25=float(q25),
        q75=float(q75),
        min=float(x.min()),
        max=float(x.max()),
    )


def sample_indices(mask, n: int, seed: int = 0) -> np.ndarray:
    """Up to ``n`` positions where ``mask`` is true, drawn without replacement with ``seed``,
    returned sorted."""
    where = np.flatnonzero(np.asarray(mask))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(where, size=min(n, len(where)), replace=False))


def network_proba(model, feats) -> np.ndarray:
    """The network's softmax ``[n, C]`` from its own features ``[n, d]`` (``model.fc`` on
    ``model.features``, so no second pass over the images)."""
    with torch.inference_mode():
        logits = model.fc(torch.as_tensor(np.asarray(feats), dtype=model.fc.weight.dtype))
        return torch.softmax(logits.double(), dim=1).numpy()


def prediction_summary(y_true, nnk_pred, knn_pred, net_pred) -> dict[str, float]:
    """Accuracies of NNK, kNN and the network, and how often NNK agrees with the network."""
    y_true, nnk_pred, knn_pred, net_pred = map(np.asarray, (y_true, nnk_pred, knn_pred, net_pred))
    disagree = nnk_pred != net_pred
    return dict(
        n_queries=int(len(y_true)),
        nnk_accuracy=float(np.mean(nnk_pred == y_true)),
        knn_accuracy=float(np.mean(knn_pred == y_true)),
        network_accuracy=float(np.mean(net_pred == y_true)),
        agreement_nnk_network=float(np.mean(~disagree)),
        agreement_knn_network=float(np.mean(knn_pred == net_pred)),
        n_disagreements=int(disagree.sum()),
        disagreements_network_right=int((disagree & (net_pred == y_true)).sum()),
        disagreements_nnk_right=int((disagree & (nnk_pred == y_true)).sum()),
        disagreements_both_wrong=int(
            (disagree & (net_pred != y_true) & (nnk_pred != y_true)).sum()
        ),
    )


def query_records(
    ids,
    y_true,
    table: NeighbourTable,
    quirk: NeighbourTable | None,
    net_proba,
    class_names,
    train_ids=None,
) -> dict[str, dict]:
    """Per-query facts for ``metrics.json``, keyed by test id: true, NNK and network classes
    (``net_proba [n, C]``, the network's softmax), NNK's neighbours (training ids in the official
    order when ``train_ids`` maps the table's rows, classes, weights), weight share, residual
    and, given ``quirk``, what the authors' plotting quirk shows instead."""
    train_ids = None if train_ids is None else np.asarray(train_ids)
    net_pred = table.classes[np.argmax(net_proba, axis=1)]  # columns in the order of classes
    net_conf = np.max(net_proba, axis=1)
    share = weight_share(table)
    out = {}
    for i, tid in enumerate(ids):
        rows, w, labels = table.neighbours(i)
        rec = dict(
            true=class_names[int(y_true[i])],
            nnk_pred=class_names[int(table.pred[i])],
            network_pred=class_names[int(net_pred[i])],
            network_confidence=float(net_conf[i]),
            n_neighbours=int(table.n_neighbours[i]),
            nnk_share=float(share[i]),
            residual=float(table.residual[i]),
            neighbours=[
                dict(
                    train_id=int(r if train_ids is None else train_ids[r]),
                    label=class_names[int(c)],
                    weight=float(x),
                )
                for r, c, x in zip(rows, labels, w, strict=True)
            ],
        )
        if quirk is not None:
            rec["published_quirk"] = dict(
                nnk_pred=class_names[int(quirk.pred[i])], n_neighbours=int(quirk.n_neighbours[i])
            )
        out[str(int(tid))] = rec
    return out


def disagreement_summary(disagree, net_conf, nnk_share, share_on_net, n_nb, residual) -> dict:
    """Means of the network's confidence, NNK's weight share on its own and on the network's
    class, the number of neighbours and the residual, over agreeing and disagreeing queries."""
    disagree = np.asarray(disagree, dtype=bool)
    out = {"n": int(disagree.sum())}
    for name, sel in (("agree", ~disagree), ("disagree", disagree)):
        out[name] = {
            key: float(np.mean(np.asarray(v)[sel])) if sel.any() else float("nan")
            for key, v in (
                ("network_confidence", net_conf),
                ("nnk_share", nnk_share),
                ("nnk_share_on_network_class", share_on_net),
                ("n_neighbours", n_nb),
                ("residual", residual),
            )
        }
    return out
