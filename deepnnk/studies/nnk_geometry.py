r"""The computation behind ``notebooks/00_nnk_geometry.ipynb`` (drawn by
:mod:`deepnnk.figures.nnk_geometry`).

Everything here works on two-dimensional toy data, so that NNK's geometry can be drawn:

- sizes: :data:`PROFILES` and :func:`profile`; the notebook's queries :data:`QUERIES` and
  :data:`PROBES`;
- data: :func:`make_split` (two moons or Gaussian blobs, seeded), :func:`padded_bounds`,
  :func:`grid`;
- one query's neighbourhood: :func:`neighbourhood` (its k candidates and NNK weights),
  :func:`fit_neighbourhood`, and the Kernel Ratio Interval (KRI) geometry (:func:`kri_margins`,
  :func:`nnk_region`, :func:`kri_statistics`, :func:`pairwise_kri_check`);
- curves and fields: :func:`loo_curve`, :func:`proba_field`, :func:`proba_fields`, and the
  k sweep of the explorer's static stand-in (:func:`k_sweep`, :func:`k_sweep_selected`);
- a small ReLU MLP (:mod:`deepnnk.nets.mlp`: :func:`make_mlp`, :func:`train_mlp`,
  :func:`hidden_features`, :func:`network_labels`, :func:`snapshot_epochs`) and its exact
  regions (:mod:`deepnnk.nets.geometry`: :func:`linear_regions`, :func:`decision_boundary`),
  re-exported for the notebook; NNK polytopes of last-hidden-layer features pulled back to the
  input plane (:func:`pulled_back_polytope`, :func:`feature_nnk`, :func:`probe_polytopes`); the
  training history (:func:`epoch_history`);
- :func:`headline`, the notebook's summary numbers.

KRI conventions follow :mod:`deepnnk.nets.geometry`: the KRI line of a selected neighbour ``x_j``
of a query ``x_q`` passes through ``x_j`` orthogonally to ``x_j − x_q``; a point ``x`` is on the
query side when ``(x_q − x_j)·(x − x_j) > 0``. For a Gaussian kernel this does not depend on σ.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from sklearn.datasets import make_blobs, make_moons
from torch import nn

from deepnnk.classifier import NNKClassifier, candidate_kernels
from deepnnk.neighbors import knn
from deepnnk.nets.geometry import Region, clip_polygon, nnk_polytope, polygon_area
from deepnnk.nets.geometry import decision_boundary as decision_boundary  # for the notebook
from deepnnk.nets.geometry import linear_regions as linear_regions
from deepnnk.nets.mlp import hidden_features, network_labels
from deepnnk.nets.mlp import make_mlp as make_mlp  # for the notebook
from deepnnk.nets.mlp import snapshot_epochs as snapshot_epochs
from deepnnk.nets.mlp import train_mlp as train_mlp
from deepnnk.solver import solve_nnk
from deepnnk.studies.profiles import pick

BLOB_CENTRES = ((-1.6, -0.6), (1.6, -0.6), (0.0, 1.9))

# Sizes per profile: training/test points per data set, grid resolutions of the fields (res) and
# of the training history (res_epochs), the MLP's epochs and snapshots, and the k of the LOO
# curves.
PROFILES = {
    "smoke": {
        "n_train": 200,
        "n_test": 200,
        "res": 40,
        "res_epochs": 25,
        "epochs": 20,
        "snapshots": 3,
        "ks": [2, 5, 10, 20],
    },
    "quick": {
        "n_train": 1000,
        "n_test": 1000,
        "res": 150,
        "res_epochs": 60,
        "epochs": 300,
        "snapshots": 8,
        "ks": [2, 3, 5, 8, 12, 20, 30, 50],
    },
    "paper": {
        "n_train": 2000,
        "n_test": 2000,
        "res": 250,
        "res_epochs": 100,
        "epochs": 400,
        "snapshots": 10,
        "ks": [2, 3, 5, 8, 12, 20, 30, 50, 75, 100],
    },
}
QUERIES = {"moons": (0.5, 0.25), "blobs": (0.0, 0.4)}  # the query of sections 1, 2 and 7
PROBES = [(0.5, 0.25), (-0.8, 0.6), (1.6, -0.3)]  # the queries of section 5


def profile(name: str) -> dict:
    """The notebook's sizes for profile ``name`` ("smoke", "quick" or "paper"), a copy."""
    return pick(PROFILES, name)


# --------------------------------------------------------------------------- data


@dataclass
class Split:
    """A seeded 2-D classification data set: ``X_train [n, 2]``, ``y_train [n]``, and a test set."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def make_split(name: str, n_train: int, n_test: int, seed: int = 0) -> Split:
    """``"moons"`` (two interleaved half circles, noise 0.2) or ``"blobs"`` (three Gaussian
    clusters, std 0.9): ``n_train + n_test`` points drawn once with ``seed``, then split."""
    n = n_train + n_test
    if name == "moons":
        X, y = make_moons(n, noise=0.2, random_state=seed)
    elif name == "blobs":
        X, y = make_blobs(n, centers=np.array(BLOB_CENTRES), cluster_std=0.9, random_state=seed)
    else:
        raise ValueError(f"name must be 'moons' or 'blobs', got {name!r}.")
    X = X.astype(np.float64)
    return Split(X[:n_train], y[:n_train], X[n_train:], y[n_train:])


def padded_bounds(X, pad: float = 0.1) -> tuple[float, float, float, float]:
    """``(xmin, xmax, ymin, ymax)`` of ``X [n, 2]``, widened by ``pad`` of each side's range."""
    X = np.asarray(X, dtype=np.float64)
    lo, hi = X.min(0), X.max(0)
    m = pad * (hi - lo)
    return (float(lo[0] - m[0]), float(hi[0] + m[0]), float(lo[1] - m[1]), float(hi[1] + m[1]))


def grid(bounds, res: int):
    """A ``res × res`` grid over ``bounds``: ``(xx, yy)`` each ``[res, res]``, and the points
    ``[res², 2]``."""
    xs = np.linspace(bounds[0], bounds[1], res)
    ys = np.linspace(bounds[2], bounds[3], res)
    xx, yy = np.meshgrid(xs, ys)
    return xx, yy, np.column_stack([xx.ravel(), yy.ravel()])


# --------------------------------------------------------------------------- one query


@dataclass
class Neighbourhood:
    """One query's k candidates (sorted by distance) and their NNK weights.

    ``query [2]`` and ``points [k, 2]`` are positions in the *input* plane (for NNK on features,
    the candidates are chosen in feature space and drawn where their inputs lie); ``weights [k]``
    sum to 1 and are zero off the selected neighbours; ``radius`` is the distance, in the space
    the neighbours were chosen in, to the k-th candidate (the kNN ball).
    """

    query: np.ndarray
    points: np.ndarray
    labels: np.ndarray
    index: np.ndarray
    weights: np.ndarray
    radius: float

    @property
    def kept(self) -> np.ndarray:
        """bool ``[k]``: the NNK neighbours (positive weight)."""
        return self.weights > 0


def neighbourhood(clf: NNKClassifier, query, positions=None, query_position=None) -> Neighbourhood:
    """The neighbourhood of one ``query [d]`` under a fitted ``clf``.

    ``positions [N, 2]`` are where the training points are drawn (default: ``clf``'s own
    training features, which must then be 2-D) and ``query_position [2]`` where the query is
    drawn (default: ``query``).
    """
    q = np.asarray(query, dtype=np.float64).reshape(1, -1)
    idx, w, _ = clf.explain(q)
    idx, w = idx[0], w[0]
    pos = clf.X_fit_ if positions is None else np.asarray(positions, dtype=np.float64)
    radius = float(np.sqrt(((clf.X_fit_[idx[-1]] - q[0]) ** 2).sum()))
    qpos = q[0] if query_position is None else np.asarray(query_position, dtype=np.float64)
    return Neighbourhood(qpos, pos[idx], clf.classes_[clf.y_fit_[idx]], idx, w, radius)


def kri_margins(query, points, anchors) -> np.ndarray:
    """Signed distance of each of ``points [m, 2]`` to each anchor's KRI line: ``[m, a]``.

    Anchor ``x_j`` (a row of ``anchors [a, 2]``) gives the line through ``x_j`` orthogonal to
    ``x_j − x_q``; the distance is positive on the query's side. Works in any dimension.
    """
    q = np.asarray(query, dtype=np.float64).reshape(-1)
    P = np.asarray(points, dtype=np.float64).reshape(-1, q.size)
    A = np.asarray(anchors, dtype=np.float64).reshape(-1, q.size)
    n = q - A
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-300)
    return np.einsum("jd,mjd->mj", n, P[:, None, :] - A[None, :, :])


def discarded_outside(nb: Neighbourhood) -> np.ndarray:
    """bool per discarded candidate: does it lie strictly outside some selected neighbour's KRI
    half-plane (i.e. outside the NNK polytope)?"""
    M = kri_margins(nb.query, nb.points[~nb.kept], nb.points[nb.kept])
    return (M < 0).any(1)


def summary(nb: Neighbourhood) -> dict:
    """Plain numbers for one neighbourhood: candidates, NNK neighbours, their weights, and the
    fraction of discarded candidates outside the KRI polytope (1.0 when none is discarded)."""
    out = discarded_outside(nb)
    return {
        "n_candidates": len(nb.weights),
        "n_selected": int(nb.kept.sum()),
        "weights": [float(w) for w in nb.weights[nb.kept]],
        "discarded_outside": float(out.mean()) if out.size else 1.0,
    }


def _kri_matrix(queries, candidates) -> np.ndarray:
    """``M [n, k, k]``: ``M[i, l, j]`` is the signed distance of candidate l of query i to
    candidate j's KRI line (positive on the query's side; ``M[i, j, j] = 0``)."""
    q = np.asarray(queries, dtype=np.float64)
    P = np.asarray(candidates, dtype=np.float64)
    nrm = q[:, None, :] - P
    nrm /= np.maximum(np.linalg.norm(nrm, axis=2, keepdims=True), 1e-300)
    return np.einsum("ijd,iljd->ilj", nrm, P[:, :, None, :] - P[:, None, :, :])


def kri_statistics(queries, candidates, kept) -> dict:
    """How well the KRI polytope separates NNK's choices, over many queries.

    ``queries [n, 2]``, ``candidates [n, k, 2]``, ``kept [n, k]`` bool. Returns fractions in
    [0, 1]: ``discarded_outside`` (discarded candidates outside the polytope),
    ``queries_all_discarded_outside`` (queries whose every discarded candidate is outside),
    ``kept_pairs_consistent`` (ordered pairs of selected neighbours lying on each other's query
    side), plus ``mean_selected`` (neighbours per query).
    """
    M = _kri_matrix(queries, candidates)
    kept = np.asarray(kept, dtype=bool)
    violated = (M < 0) & kept[:, None, :]
    out = violated.any(2)
    disc = ~kept
    pairs = kept[:, :, None] & kept[:, None, :] & ~np.eye(kept.shape[1], dtype=bool)
    n_pairs = int(pairs.sum())
    return {
        "discarded_outside": float(out[disc].mean()) if disc.any() else 1.0,
        "queries_all_discarded_outside": float((out | kept).all(1).mean()),
        "kept_pairs_consistent": float((M[pairs] > 0).mean()) if n_pairs else 1.0,
        "mean_selected": float(kept.sum(1).mean()),
    }


def batch_neighbourhoods(clf: NNKClassifier, X):
    """``(candidates [n, k, d], kept [n, k])`` for queries ``X [n, d]`` under a fitted ``clf``."""
    idx, w, _ = clf.explain(X)
    return clf.X_fit_[idx], w > 0


def pairwise_kri_check(queries, candidates, rtol: float = 1e-6) -> tuple[bool, int]:
    """Check the two-neighbour KRI theorem against the NNK solver, for every candidate pair.

    ``queries [n, 2]`` and their candidates ``[n, k, 2]``. For each query and each pair
    ``{a, b}`` of its candidates we solve NNK with those two alone (Gaussian kernel, the
    classifier's σ: distance to the farthest candidate / 3) and compare "both weights positive"
    with "each lies on the query side of the other's KRI line". Pairs within ``rtol`` (relative
    to their distance from the query) of a line are skipped as ties.
    Returns ``(all agree, pairs compared)``.
    """
    q = np.asarray(queries, dtype=np.float64)
    P = np.asarray(candidates, dtype=np.float64)
    n, k, _ = P.shape
    ia, ib = np.triu_indices(k, 1)
    d2q = ((P - q[:, None, :]) ** 2).sum(2)  # [n, k]
    sigma = np.maximum(np.sqrt(d2q.max(1)), 1e-300)[:, None] / 3.0  # [n, 1]
    d2ab = ((P[:, ia] - P[:, ib]) ** 2).sum(2)  # [n, p]
    K = np.ones((n, len(ia), 2, 2))
    K[..., 0, 1] = K[..., 1, 0] = np.exp(-d2ab / (2 * sigma**2))
    kq = np.exp(-np.stack([d2q[:, ia], d2q[:, ib]], axis=2) / (2 * sigma[..., None] ** 2))
    theta = solve_nnk(K.reshape(-1, 2, 2), kq.reshape(-1, 2)).reshape(n, len(ia), 2)
    solver_both = (theta > 0).all(2)
    M = _kri_matrix(q, P)
    m_ab, m_ba = M[:, ib, ia], M[:, ia, ib]
    geometry_both = (m_ab > 0) & (m_ba > 0)
    scale = np.sqrt(np.maximum(d2q[:, ia], d2q[:, ib]))
    clear = (np.abs(m_ab) > rtol * scale) & (np.abs(m_ba) > rtol * scale)
    return bool((solver_both == geometry_both)[clear].all()), int(clear.sum())


def fit_neighbourhood(split: Split, k: int, query) -> Neighbourhood:
    """The neighbourhood of ``query [2]`` under NNK (Gaussian kernel, ``k`` candidates) fitted on
    ``split``'s training set."""
    return neighbourhood(
        NNKClassifier(int(k), kernel="gaussian").fit(split.X_train, split.y_train), query
    )


def nnk_region(nb: Neighbourhood, bounds) -> np.ndarray:
    """The NNK polytope of ``nb`` (the query side of its selected neighbours' KRI lines) clipped
    to ``bounds = (xmin, xmax, ymin, ymax)``: a CCW polygon ``[m, 2]``, empty if nothing is left."""
    return nnk_polytope(nb.query, nb.points[nb.kept], bounds)


# --------------------------------------------------------------------------- fields and curves


def proba_field(clf, bounds, res: int, cls: int = 1):
    """``(xx, yy, P)``: ``clf.predict_proba`` of class index ``cls`` on a ``res × res`` grid."""
    xx, yy, pts = grid(bounds, res)
    return xx, yy, clf.predict_proba(pts)[:, cls].reshape(xx.shape)


def proba_fields(clfs: dict, bounds, res: int) -> dict:
    """:func:`proba_field` of class 1 for each fitted classifier of ``clfs`` (``{title: clf}``):
    ``{title: (xx, yy, P)}``."""
    return {title: proba_field(clf, bounds, res) for title, clf in clfs.items()}


def loo_curve(X, y, ks) -> dict:
    """Leave-one-out error of NNK and of kernel-weighted kNN (Gaussian kernel) for each k in
    ``ks``, and NNK's mean number of selected neighbours in those leave-one-out problems."""
    X = np.asarray(X, dtype=np.float64)
    out = {"k": [int(k) for k in ks], "nnk": [], "knn": [], "nnk_selected": []}
    for k in ks:
        k = int(k)
        out["nnk"].append(NNKClassifier(k, kernel="gaussian").fit(X, y).loo_error())
        knn_clf = NNKClassifier(k, kernel="gaussian", weighting="knn").fit(X, y)
        out["knn"].append(knn_clf.loo_error())
        sq, idx = knn(X, X, k, exclude_self=True)
        k_Sq, K_SS = candidate_kernels(X, X, idx, sq, "gaussian", gram_dtype="float64")
        out["nnk_selected"].append(float((solve_nnk(K_SS, k_Sq) > 0).sum(1).mean()))
    return out


def k_sweep(split: Split, query, ks) -> dict:
    """The neighbourhood of one query for several k (what the interactive explorer shows):
    ``{k: Neighbourhood}``, in the order of ``ks``."""
    return {int(kk): fit_neighbourhood(split, kk, query) for kk in ks}


def k_sweep_selected(sweep: dict) -> dict:
    """``{k: number of NNK neighbours}`` of a :func:`k_sweep`."""
    return {kk: int(nb.kept.sum()) for kk, nb in sweep.items()}


# --------------------------------------------------------------------------- the network


def pulled_back_polytope(regions: list[Region], h_q, H_kept) -> list[np.ndarray]:
    """The input-plane preimage of a feature-space NNK polytope, as convex pieces.

    ``h_q [h]`` is the query's last-hidden-layer feature and ``H_kept [m, h]`` those of its NNK
    neighbours (chosen in feature space). The polytope is ``{h : (h_q − h_j)·(h − h_j) ≥ 0 ∀j}``.
    On each linear region the features are exactly ``hidden_A x + hidden_c``, so each condition
    is a half-plane there: the preimage is the union, over regions, of the region clipped by
    those half-planes. Returns the non-empty CCW pieces (it need not be convex or connected).
    """
    h_q = np.asarray(h_q, dtype=np.float64)
    H = np.asarray(H_kept, dtype=np.float64).reshape(-1, h_q.size)
    D = h_q - H  # [m, h]
    pieces = []
    for reg in regions:
        a = D @ reg.hidden_A  # [m, 2]
        b = np.einsum("jh,jh->j", reg.hidden_c - H, D)  # [m]
        z = reg.vertices @ a.T + b  # [v, m]
        if (z < 0).all(0).any():
            continue  # some half-plane excludes the whole region
        poly = reg.vertices
        for j in np.flatnonzero((z < 0).any(0)):
            poly = clip_polygon(poly, a[j], b[j])
            if len(poly) < 3:
                break
        if len(poly) >= 3:
            pieces.append(poly)
    return pieces


def feature_nnk(mlp: nn.Sequential, split: Split, k: int) -> NNKClassifier:
    """NNK (Gaussian kernel) fitted on the last hidden layer's features of the training set."""
    return NNKClassifier(k, kernel="gaussian").fit(
        hidden_features(mlp, split.X_train), split.y_train
    )


def probe_polytopes(mlp, regions, input_clf, feature_clf, probes, bounds) -> list[dict]:
    """For each probe ``[2]``: its NNK neighbours and polytope chosen in the input plane, and
    those chosen on the last hidden layer, pulled back to the plane. Returns one dict per probe
    (``query``, ``input``/``feature`` → ``(neighbours [m, 2], polygons)``) and their areas."""
    X_in = input_clf.X_fit_
    out = []
    for q in np.asarray(probes, dtype=np.float64).reshape(-1, 2):
        nb = neighbourhood(input_clf, q)
        poly = nnk_polytope(q, nb.points[nb.kept], bounds)
        h_q = hidden_features(mlp, q[None])[0]
        fnb = neighbourhood(feature_clf, h_q, positions=X_in, query_position=q)
        pieces = pulled_back_polytope(regions, h_q, feature_clf.X_fit_[fnb.index[fnb.kept]])
        out.append(
            {
                "query": q,
                "input": (nb.points[nb.kept], [poly]),
                "feature": (fnb.points[fnb.kept], pieces),
                "input_selected": int(nb.kept.sum()),
                "feature_selected": int(fnb.kept.sum()),
                "input_area": abs(polygon_area(poly)),
                "feature_area": float(sum(abs(polygon_area(p)) for p in pieces)),
                "feature_pieces": len(pieces),
            }
        )
    return out


def epoch_history(mlp: nn.Sequential, states: dict, split: Split, bounds, k: int, res: int) -> dict:
    """For each snapshot ``states[epoch]``: number of linear regions in ``bounds``, LOO error of
    NNK on the last-hidden-layer features, the network's test error, and the fraction of a
    ``res × res`` grid where NNK on features (training labels) agrees with the network.
    ``mlp`` itself is not modified."""
    net = copy.deepcopy(mlp)
    _, _, pts = grid(bounds, res)
    keys = ("epoch", "n_regions", "loo_nnk_features", "test_error", "agreement_nnk_features")
    hist = {key: [] for key in keys}
    for epoch in sorted(states):
        net.load_state_dict(states[epoch])
        fclf = feature_nnk(net, split, k)
        agree = fclf.predict(hidden_features(net, pts)) == network_labels(net, pts)
        hist["epoch"].append(int(epoch))
        hist["n_regions"].append(len(linear_regions(net, bounds)))
        hist["loo_nnk_features"].append(fclf.loo_error())
        hist["test_error"].append(float(np.mean(network_labels(net, split.X_test) != split.y_test)))
        hist["agreement_nnk_features"].append(float(agree.mean()))
    return hist


def headline(metrics: dict) -> dict:
    """The notebook's headline numbers, flat, for ``metrics["summary"]`` (what
    ``deepnnk.studies.reporting.print_summary`` tabulates): the KRI check, the polytope picture's
    hit rate, NNK vs kNN test errors at k, and the trained network's regions, LOO-NNK on its
    features, test error and agreement with NNK."""
    test = metrics["polytope_check"]["test"]
    ep = metrics["epochs"]
    return {
        "pairwise_kri_matches_solver": metrics["polytope_check"]["pairwise_kri_matches_solver"],
        **{f"discarded_outside_{n}": s["discarded_outside"] for n, s in test.items()},
        "test_error_nnk": metrics["field"]["test_error_nnk"],
        "test_error_knn": metrics["field"]["test_error_knn"],
        "n_regions": ep["n_regions"][-1],
        "loo_nnk_features": ep["loo_nnk_features"][-1],
        "test_error_network": ep["test_error"][-1],
        "agreement_nnk_features": metrics["agreement"]["nnk_features"],
    }
