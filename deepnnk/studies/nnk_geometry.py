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
- the solver written out, :func:`nnk_by_hand` (a 15-line active-set method), and its comparison
  with the package's :func:`deepnnk.solve_nnk` on the notebook's queries
  (:func:`candidate_problems`, :func:`hand_vs_package`);
- the bridge to the cosine kernel of the CIFAR chapters (:data:`COSINE_SHIFT`,
  :func:`shifted`, :func:`ray_kri_check`, :func:`angular_brackets`, :func:`cosine_bridge`);
- summaries the prose quotes: :func:`loo_summary`, :func:`field_sharpness`,
  :func:`k_sweep_summary`;
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
from deepnnk.solver import kkt_residual, nnk_objective, solve_nnk
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
QUERIES = {"moons": (0.5, 0.25), "blobs": (0.0, 0.4)}  # the query of sections 1, 2, 7 and 8
PROBES = [(0.5, 0.25), (-0.8, 0.6), (1.6, -0.3)]  # the queries of section 5
# Section 8 moves the moons by this much, so that every point lies in the open first quadrant and
# the cosine kernel (which sees only a point's direction from the origin) can tell them apart.
COSINE_SHIFT = (2.5, 1.5)


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


def fit_neighbourhood(split: Split, k: int, query, kernel: str = "gaussian") -> Neighbourhood:
    """The neighbourhood of ``query [2]`` under NNK (``kernel``, ``k`` candidates) fitted on
    ``split``'s training set."""
    return neighbourhood(
        NNKClassifier(int(k), kernel=kernel).fit(split.X_train, split.y_train), query
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


def k_sweep_summary(sweep: dict) -> dict:
    """A :func:`k_sweep` as plain lists for ``metrics`` (``k``, ``selected``), plus the smallest
    and largest k and their neighbour counts under names the prose can quote."""
    sel = k_sweep_selected(sweep)
    ks = sorted(sel)
    return {
        "k": ks,
        "selected": [sel[kk] for kk in ks],
        "k_smallest": ks[0],
        "selected_smallest": sel[ks[0]],
        "k_largest": ks[-1],
        "selected_largest": sel[ks[-1]],
    }


def loo_summary(curve: dict) -> dict:
    """What the prose of section 4 quotes from a :func:`loo_curve`: the errors and NNK's mean
    neighbours at the smallest and largest k, and how far each method's LOO error moves over all k
    (max − min)."""
    nnk, knn_err = np.asarray(curve["nnk"]), np.asarray(curve["knn"])
    return {
        "k_smallest": curve["k"][0],
        "k_largest": curve["k"][-1],
        "nnk_at_largest": float(nnk[-1]),
        "knn_at_largest": float(knn_err[-1]),
        "nnk_selected_at_smallest": float(curve["nnk_selected"][0]),
        "nnk_selected_at_largest": float(curve["nnk_selected"][-1]),
        "nnk_spread": float(nnk.max() - nnk.min()),
        "knn_spread": float(knn_err.max() - knn_err.min()),
    }


def field_sharpness(fields: dict, band: tuple[float, float] = (0.1, 0.9)) -> dict:
    """For each field of :func:`proba_fields`: the fraction of grid cells where P(class 1) lies
    strictly inside ``band``, i.e. how much of the plane is a transition zone rather than a
    confident decision. A smaller fraction means sharper transitions."""
    lo, hi = band
    return {title: float(((P > lo) & (P < hi)).mean()) for title, (_, _, P) in fields.items()}


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


# --------------------------------------------------------------------------- the solver, by hand


def nnk_by_hand(K, b, tol=1e-10):
    """argmin_{θ ≥ 0} ½θᵀKθ − bᵀθ (K = K_SS, b = k_Sq, numpy), by Lawson–Hanson's active set."""
    theta, support = np.zeros(len(b)), np.zeros(len(b), dtype=bool)
    for _ in range(10 * len(b)):
        g = np.where(support, np.inf, K @ theta - b)  # the gradient off the support
        if g.min() >= -tol * b.max():  # no candidate can lower the objective: KKT hold, done
            break
        support[np.argmin(g)] = True  # add the candidate whose gradient is most negative
        while True:  # the unconstrained optimum on the support, kept only if all weights > 0
            s = np.zeros(len(b))
            s[support] = np.linalg.lstsq(K[np.ix_(support, support)], b[support], rcond=None)[0]
            if (s[support] > 0).all():
                break
            ratio = np.where(support & (s <= 0), theta / np.maximum(theta - s, 1e-300), np.inf)
            step = ratio.min()  # walk from θ towards s until a weight hits zero; drop it
            theta, support = theta + step * (s - theta), support & (ratio > step)
        theta = s
    return theta


def candidate_problems(clf: NNKClassifier, X):
    """The NNK problems a fitted Gaussian-kernel ``clf`` solves for queries ``X [n, d]``:
    ``(K_SS [n, k, k], k_Sq [n, k])``, built as the classifier builds them (k nearest training
    points, σ = distance to the k-th / 3, float64)."""
    X = np.asarray(X, dtype=np.float64)
    sq, idx = knn(X, clf.X_fit_, clf.n_neighbors)
    k_Sq, K_SS = candidate_kernels(clf.X_fit_, X, idx, sq, "gaussian", gram_dtype="float64")
    return K_SS, k_Sq


def hand_vs_package(K_SS, k_Sq) -> dict:
    """:func:`nnk_by_hand` against :func:`deepnnk.solve_nnk` on a batch of problems: the largest
    weight difference, both solvers' largest KKT residual (:func:`deepnnk.kkt_residual`, 0 at the
    optimum) and the fraction of problems where both choose the same neighbours."""
    K_SS, k_Sq = np.asarray(K_SS, dtype=np.float64), np.asarray(k_Sq, dtype=np.float64)
    hand = np.stack([nnk_by_hand(K, b) for K, b in zip(K_SS, k_Sq, strict=True)])
    pkg = solve_nnk(K_SS, k_Sq)
    return {
        "n_problems": len(hand),
        "max_abs_theta_diff": float(np.abs(hand - pkg).max()),
        "max_kkt_hand": float(np.max(kkt_residual(K_SS, k_Sq, hand))),
        "max_kkt_package": float(np.max(kkt_residual(K_SS, k_Sq, pkg))),
        "same_support": float(((hand > 0) == (pkg > 0)).all(1).mean()),
    }


# --------------------------------------------------------------------------- the cosine kernel


def shifted(split: Split, shift=COSINE_SHIFT) -> Split:
    """``split`` with every point moved by ``shift [2]`` (labels unchanged)."""
    s = np.asarray(shift, dtype=np.float64)
    return Split(split.X_train + s, split.y_train, split.X_test + s, split.y_test)


def ray_kri_check(queries, candidates, theta_pairs=None) -> tuple[bool, int]:
    """The two-candidate KRI of the cosine kernel in the plane, against the solver.

    For the cosine kernel a point is only its direction, so (for data in an open half-plane
    through the origin) the KRI line of a neighbour ``x_j`` becomes the *ray from the origin
    through x_j*: another candidate ``x_l`` survives it iff it lies on the query's side of that
    ray. For every query ``[n, 2]`` and every pair of its candidates ``[n, k, 2]`` this compares
    "both rays pass" with the solver's two-candidate NNK on K = ½ + ½cos. Returns
    ``(all agree, pairs compared)``; pairs within 1e-9 (in sine) of a ray are skipped as ties.
    """
    q = np.asarray(queries, dtype=np.float64)
    P = np.asarray(candidates, dtype=np.float64)
    n, k, _ = P.shape
    ia, ib = np.triu_indices(k, 1)
    u = P / np.linalg.norm(P, axis=2, keepdims=True)  # [n, k, 2] directions
    uq = q / np.linalg.norm(q, axis=1, keepdims=True)  # [n, 2]

    def cross(a, b):
        return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]

    ua, ub = u[:, ia], u[:, ib]  # [n, p, 2]
    # b passes a's ray iff b and the query lie on the same side of the line through 0 and a.
    side_b = cross(ua, ub) * cross(ua, uq[:, None])
    side_a = cross(ub, ua) * cross(ub, uq[:, None])
    geometry_both = (side_b > 0) & (side_a > 0)
    K = np.ones((n, len(ia), 2, 2))
    K[..., 0, 1] = K[..., 1, 0] = 0.5 + 0.5 * np.einsum("npd,npd->np", ua, ub)
    kq = 0.5 + 0.5 * np.stack([np.einsum("npd,nd->np", x, uq) for x in (ua, ub)], axis=2)
    theta = solve_nnk(K.reshape(-1, 2, 2), kq.reshape(-1, 2)).reshape(n, len(ia), 2)
    clear = (np.abs(side_b) > 1e-9) & (np.abs(side_a) > 1e-9)
    return bool(((theta > 0).all(2) == geometry_both)[clear].all()), int(clear.sum())


def angular_brackets(queries, candidates) -> np.ndarray:
    """bool ``[n, k]``: for each query, the candidate nearest in angle on each side of the query's
    direction (one side only when all candidates lie on one side). Under the cosine kernel in the
    plane these are NNK's neighbours: every other candidate lies behind one of their rays."""
    q = np.asarray(queries, dtype=np.float64)
    P = np.asarray(candidates, dtype=np.float64)
    ang = np.arctan2(P[..., 1], P[..., 0]) - np.arctan2(q[:, 1], q[:, 0])[:, None]
    ang = (ang + np.pi) % (2 * np.pi) - np.pi  # signed angle from the query, in [-π, π)
    out = np.zeros(ang.shape, dtype=bool)
    rows = np.arange(len(ang))
    for sign in (1, -1):
        a = np.where(sign * ang > 0, sign * ang, np.inf)
        hit = np.isfinite(a).any(1)
        out[rows[hit], a.argmin(1)[hit]] = True
    return out


def cosine_problems(queries, candidates):
    """``(K_SS [n, k, k], k_Sq [n, k])`` of the cosine kernel K = ½ + ½cos for queries
    ``[n, d]`` and their candidates ``[n, k, d]``, float64."""
    q = np.asarray(queries, dtype=np.float64)
    P = np.asarray(candidates, dtype=np.float64)
    u = P / np.linalg.norm(P, axis=2, keepdims=True)
    uq = q / np.linalg.norm(q, axis=1, keepdims=True)
    K_SS = 0.5 + 0.5 * np.einsum("nid,njd->nij", u, u)
    return K_SS, 0.5 + 0.5 * np.einsum("nid,nd->ni", u, uq)


def cosine_bridge(split: Split, k: int, shift=COSINE_SHIFT) -> dict:
    """Gaussian against cosine kernel (K = ½ + ½cos, the kernel of the CIFAR chapters) on the same
    2-D data, moved by ``shift`` so that every point lies in the open first quadrant.

    Both use the same candidates (the k nearest points); only the kernel changes. Returns the
    neighbours per test query (mean and max) and the test error for each kernel, both on the moved
    data and (``*_unshifted``) on the data as it was; the fraction of test queries whose cosine
    neighbours are exactly their :func:`angular_brackets`, how many are not, and for those how
    far (relative) the NNK objective with the two brackets alone is from the solver's
    (``exception_objective_gap``); the median over queries of 1 − min_j K(q, x_j), how flat the
    cosine kernel is across a neighbourhood (``median_kernel_spread``); the
    :func:`ray_kri_check`; and whether every moved point is in the open first quadrant (where the
    ray picture is exact; the angles then never wrap around).
    """
    moved = shifted(split, shift)
    out = {"shift": [float(v) for v in shift], "k": int(k)}
    out["in_first_quadrant"] = bool((np.vstack([moved.X_train, moved.X_test]) > 0).all())
    for kernel in ("gaussian", "cosine"):
        for tag, data in (("", moved), ("_unshifted", split)):
            clf = NNKClassifier(int(k), kernel=kernel).fit(data.X_train, data.y_train)
            _, w, _ = clf.explain(data.X_test)
            out[f"{kernel}_test_error{tag}"] = 1 - clf.score(data.X_test, data.y_test)
            if not tag:
                out[f"{kernel}_mean_selected"] = float((w > 0).sum(1).mean())
                out[f"{kernel}_max_selected"] = int((w > 0).sum(1).max())
    clf = NNKClassifier(int(k), kernel="cosine").fit(moved.X_train, moved.y_train)
    C, kept = batch_neighbourhoods(clf, moved.X_test)
    brackets = angular_brackets(moved.X_test, C)
    same = (brackets == kept).all(1)
    K_SS, k_Sq = cosine_problems(moved.X_test, C)
    theta = solve_nnk(K_SS, k_Sq)
    theta_br = np.zeros_like(theta)
    for i in np.flatnonzero(~same):  # the best weights on the two angular brackets alone
        s = brackets[i]
        theta_br[i, s] = np.maximum(np.linalg.lstsq(K_SS[i][np.ix_(s, s)], k_Sq[i, s])[0], 0)
    f, f_br = nnk_objective(K_SS, k_Sq, theta), nnk_objective(K_SS, k_Sq, theta_br)
    out["cosine_is_angular_brackets"] = float(same.mean())
    out["cosine_exceptions"] = int((~same).sum())
    out["exception_objective_gap"] = float(
        np.max(np.abs(f_br - f)[~same] / np.abs(f[~same])) if (~same).any() else 0.0
    )
    out["median_kernel_spread"] = float(np.median(1 - k_Sq.min(1)))
    ok, n = ray_kri_check(moved.X_test, C)
    out["ray_kri_matches_solver"], out["ray_pairs_checked"] = ok, n
    return out


def headline(metrics: dict) -> dict:
    """The notebook's headline numbers, flat, for ``metrics["summary"]`` (what
    ``deepnnk.studies.reporting.print_summary`` tabulates): the KRI check, the polytope picture's
    hit rate, NNK vs kNN test errors at k, and the trained network's regions, LOO-NNK on its
    features, test error and agreement with NNK."""
    test = metrics["polytope_check"]["test"]
    ep = metrics["epochs"]
    hand = metrics.get("hand_solver", {}).values()
    extra = {}
    if hand:
        extra["hand_solver_max_theta_diff"] = max(h["max_abs_theta_diff"] for h in hand)
        extra["hand_solver_max_kkt"] = max(h["max_kkt_hand"] for h in hand)
    if "cosine" in metrics:
        c = metrics["cosine"]
        extra["gaussian_mean_selected"] = c["gaussian_mean_selected"]
        extra["cosine_mean_selected"] = c["cosine_mean_selected"]
    return {
        "pairwise_kri_matches_solver": metrics["polytope_check"]["pairwise_kri_matches_solver"],
        **{f"discarded_outside_{n}": s["discarded_outside"] for n, s in test.items()},
        "test_error_nnk": metrics["field"]["test_error_nnk"],
        "test_error_knn": metrics["field"]["test_error_knn"],
        "n_regions": ep["n_regions"][-1],
        "loo_nnk_features": ep["loo_nnk_features"][-1],
        "test_error_network": ep["test_error"][-1],
        "agreement_nnk_features": metrics["agreement"]["nnk_features"],
        **extra,
    }


def first_last(hist: dict) -> dict:
    """``{key_first, key_last}`` of every list of :func:`epoch_history`, for the prose."""
    out = {}
    for key, values in hist.items():
        out[f"{key}_first"], out[f"{key}_last"] = values[0], values[-1]
    return out
