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
  :func:`nearest_candidate`, :func:`sample_galleries`, :func:`neighbour_counts_by_k`,
  :func:`weight_share_groups`, :func:`weight_share_metrics`, :func:`disagreement_scores`,
  :func:`disagreement_cases`, :func:`summary`;
- the building blocks they share with notebooks 03 and 04: :func:`network_proba`,
  :func:`sample_indices`, :func:`prediction_summary`, :func:`query_records`,
  :func:`disagreement_summary`, :func:`describe`, :func:`split_describe`.

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
    "PAPER_ACCURACY",
    "PAPER_IDS",
    "PROFILES",
    "Explanations",
    "PaperImages",
    "Queries",
    "describe",
    "disagreement_cases",
    "disagreement_scores",
    "disagreement_summary",
    "explain_queries",
    "load_network",
    "load_queries",
    "nearest_candidate",
    "neighbour_counts_by_k",
    "network_proba",
    "paper_images",
    "paper_reference",
    "prediction_metrics",
    "prediction_summary",
    "profile",
    "query_records",
    "sample_galleries",
    "sample_indices",
    "split_describe",
    "summary",
    "weight_share_groups",
    "weight_share_metrics",
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
    """:func:`prediction_summary` over the evaluation sample."""
    ev = q.ev
    return prediction_summary(q.y_q[ev], ex.nnk.pred[ev], ex.knn.pred[ev], ex.net_pred[ev])


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
    its mean weight, over the rows ``ev`` of ``table``."""
    W = table.weights[ev]  # the nearest candidate is column 0
    nearest = {
        "is_neighbour": W[:, 0] > 0,
        "is_top_neighbour": W.argmax(1) == 0,
        "mean_weight": W[:, 0],
    }
    return {key: v.mean() for key, v in nearest.items()}


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
