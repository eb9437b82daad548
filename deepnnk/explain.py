r"""Instance explanations: which training points an NNK prediction rests on, and how much.

For a query :math:`x_q` with candidates :math:`S` (its k nearest training features), NNK solves

    θ* = argmin_{θ ≥ 0} ½ θᵀ K_SS θ − k_Sqᵀ θ

and predicts p(c | q) = Σ_j θ_j [y_j = c] / Σ_j θ_j. The *NNK neighbours* are the support of θ*;
their normalised weights θ_j / Σθ are the explanation. This module turns
:meth:`deepnnk.NNKClassifier.explain` into tables and summary statistics; the figures are in
:mod:`deepnnk.figures.gallery`.

``drop_nearest=True`` reproduces a quirk of the authors' plotting code: it dropped the nearest
candidate of *test* queries too (as if it were the query itself) and solved NNK on the other k − 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from .classifier import NNKClassifier, candidate_kernels, interpolate, nnk_residual
from .kernels import normalize_rows
from .solver import solve_nnk


@dataclass
class NeighbourTable:
    """The explanation of n queries over their m candidates each.

    index ``[n, m]`` training rows of the candidates, sorted by distance; weights ``[n, m]``
    normalised to sum to 1 per row (zero off the NNK neighbours; kernel weights for kNN);
    labels ``[n, m]`` the candidates' training labels (indices into ``classes``); residual ``[n]``
    the squared kernel-space distance from the query to its interpolation (NaN for kNN);
    classes ``[C]`` the class values, in the order of the label indices.
    """

    index: np.ndarray
    weights: np.ndarray
    labels: np.ndarray
    residual: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    @property
    def proba(self) -> np.ndarray:
        """Interpolated label distribution ``[n, C]``: Σθ_j [y_j = c] / Σθ_j."""
        return interpolate(self.weights, self.labels, len(self.classes))

    @property
    def pred(self) -> np.ndarray:
        """Predicted class *values* ``[n]`` (argmax of :attr:`proba`)."""
        return self.classes[np.argmax(self.proba, axis=1)]

    @property
    def n_neighbours(self) -> np.ndarray:
        """Number of candidates with nonzero weight, ``[n]``."""
        return n_neighbours(self.weights)

    def neighbours(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Query ``i``'s nonzero-weight neighbours, by decreasing weight: (training rows,
        normalised weights, class values). Ties keep distance order."""
        w = self.weights[i]
        keep = np.nonzero(w > 0)[0]
        order = keep[np.argsort(-w[keep], kind="stable")]
        return self.index[i, order], w[order], self.classes[self.labels[i, order]]

    def subset(self, rows) -> NeighbourTable:
        """The table restricted to ``rows`` (an index array or boolean mask)."""
        return NeighbourTable(
            self.index[rows],
            self.weights[rows],
            self.labels[rows],
            self.residual[rows],
            self.classes,
        )


def n_neighbours(weights: np.ndarray) -> np.ndarray:
    """Number of strictly positive weights per row, ``[n]``."""
    return np.count_nonzero(np.asarray(weights) > 0, axis=1)


def _normalise(theta: np.ndarray) -> np.ndarray:
    total = theta.sum(1, keepdims=True)
    return theta / np.where(total > 0, total, 1.0)


def _gram_dtype(clf: NNKClassifier) -> str:
    """The precision the fitted ``clf`` computes its kernels in (the package's one rule,
    :func:`deepnnk.kernels.resolve_gram_dtype`, resolved at fit time)."""
    check_is_fitted(clf, "X_fit_")
    return clf.gram_dtype_


def nnk_on_candidates(clf: NNKClassifier, X, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NNK weights of queries ``X [n, d]`` over *given* candidates ``index [n, m]`` (rows of
    ``clf``'s training set), with ``clf``'s kernel, solver and tolerance.

    Returns (normalised weights ``[n, m]``, residual ``[n]``). With ``index`` equal to the
    candidates ``clf.explain`` finds, this reproduces its weights.
    """
    if clf.kernel != "cosine":
        raise ValueError("nnk_on_candidates supports the cosine kernel only.")
    X = np.asarray(X, dtype=np.float64)
    index = np.asarray(index, dtype=np.int64)
    if index.ndim != 2 or len(index) != len(X):
        raise ValueError(f"index must be [n, m] with n = {len(X)}, got shape {index.shape}.")
    rows, local = np.unique(index, return_inverse=True)
    local = local.reshape(index.shape)
    base = normalize_rows(clf.X_fit_[rows], "training features")
    k_Sq, K_SS = candidate_kernels(
        base, X, local, np.zeros(index.shape), "cosine", gram_dtype=_gram_dtype(clf)
    )
    theta = solve_nnk(K_SS, k_Sq, method=clf.solver, tol=clf.tol)
    return _normalise(theta), nnk_residual(K_SS, k_Sq, theta)


def neighbourhood_table(clf: NNKClassifier, X, *, drop_nearest: bool = False) -> NeighbourTable:
    """Explain queries ``X [n, d]`` with a fitted :class:`~deepnnk.NNKClassifier`.

    ``clf.weighting`` decides the weights: NNK (sparse) or kNN (kernel weights on all k).
    ``drop_nearest`` reproduces the authors' plotting quirk: the nearest candidate is dropped and
    the weights are recomputed on the remaining k − 1 (NNK weighting only).
    """
    index, weights, residual = clf.explain(X)
    if drop_nearest:
        if clf.weighting != "nnk":
            raise ValueError("drop_nearest reproduces the NNK plotting quirk; use weighting='nnk'.")
        index = index[:, 1:]
        weights, residual = nnk_on_candidates(clf, X, index)
    return NeighbourTable(index, weights, clf.y_fit_[index], residual, clf.classes_)


def weight_share(table: NeighbourTable, classes=None) -> np.ndarray:
    """Share of each query's normalised weight on one class, ``[n]`` in [0, 1].

    ``classes [n]`` are class values; default: each query's predicted class.
    """
    if classes is None:
        classes = table.pred
    target = np.searchsorted(table.classes, np.asarray(classes))
    target = np.clip(target, 0, len(table.classes) - 1)
    hit = table.labels == target[:, None]
    total = table.weights.sum(1)
    share = (table.weights * hit).sum(1) / np.where(total > 0, total, 1.0)
    return np.clip(share, 0.0, 1.0)


def neighbour_counts(X_train, y_train, X, ks, known=None, **clf_params) -> dict[int, np.ndarray]:
    """Number of NNK neighbours of each query in ``X`` for each k in ``ks``: {k: ``[n]``}.

    ``known``: counts already computed, {k: ``[n]``}, reused instead of solving again.
    ``clf_params`` go to :class:`~deepnnk.NNKClassifier` (e.g. ``solver``).
    """
    known = known or {}
    out = {}
    for k in ks:
        if int(k) in known:
            out[int(k)] = np.asarray(known[int(k)])
            continue
        clf = NNKClassifier(n_neighbors=int(k), **clf_params).fit(X_train, y_train)
        out[int(k)] = n_neighbours(clf.explain(X)[1])
    return out


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
