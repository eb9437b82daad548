r"""Instance explanations: which training points an NNK prediction rests on, and how much.

For a query :math:`x_q` with candidates :math:`S` (its k nearest training features), NNK solves

    θ* = argmin_{θ ≥ 0} ½ θᵀ K_SS θ − k_Sqᵀ θ

and predicts p(c | q) = Σ_j θ_j [y_j = c] / Σ_j θ_j. The *NNK neighbours* are the support of θ*;
their normalised weights θ_j / Σθ are the explanation. This module turns
:meth:`deepnnk.NNKClassifier.explain` into tables (:class:`NeighbourTable`,
:func:`neighbourhood_table`), weight shares and neighbour counts; the statistics a notebook
reports on them are in :mod:`deepnnk.studies.explanations`, the figures in
:mod:`deepnnk.figures.gallery`.

``drop_nearest=True`` reproduces a quirk of the authors' plotting code: it dropped the nearest
candidate of *test* queries too (as if it were the query itself) and solved NNK on the other k − 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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

    def describe(self, rows=None, top: int = 5, class_names=None) -> str:
        """A printable table: per query its prediction, number of NNK neighbours, residual, and
        its ``top`` neighbours by weight as ``training row (class) weight``.

        rows: the queries to show (default all); class_names: names of the class values
        (a sequence indexed by class value, or a dict), default the values themselves."""
        rows = range(len(self)) if rows is None else np.atleast_1d(rows)

        def name(c):
            if class_names is None:
                return str(c)
            return str(class_names[c.item() if hasattr(c, "item") else c])

        lines = [f"{'query':>5}  {'predicted':<12} {'neighbours':>10} {'residual':>9}  top weights"]
        for i in rows:
            idx, w, cls = self.neighbours(int(i))
            picked = zip(idx[:top], w[:top], cls[:top], strict=True)
            shown = ", ".join(f"#{r} ({name(c)}) {wt:.2f}" for r, wt, c in picked)
            more = f", +{len(idx) - top} more" if len(idx) > top else ""
            res = "-" if np.isnan(self.residual[i]) else f"{self.residual[i]:.3f}"
            lines.append(
                f"{int(i):>5}  {name(self.pred[i]):<12} {len(idx):>10} {res:>9}  {shown}{more}"
            )
        return "\n".join(lines)

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
