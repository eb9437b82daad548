r"""Helpers for the teaching notebook ``notebooks/00_nnk_geometry.ipynb``.

Everything here works on two-dimensional toy data, so that NNK's geometry can be drawn:

- data: :func:`make_split` (two moons or Gaussian blobs, seeded), :func:`padded_bounds`,
  :func:`grid`;
- one query's neighbourhood: :func:`neighbourhood` (its k candidates and NNK weights), the Kernel
  Ratio Interval (KRI) geometry (:func:`kri_margins`, :func:`kri_statistics`,
  :func:`pairwise_kri_check`) and drawings (:func:`draw_neighbourhood`,
  :func:`neighbourhood_panels`);
- curves and fields: :func:`loo_curve`, :func:`proba_field`, drawn by :func:`field_panels` and
  :func:`loo_figure`;
- a small ReLU MLP: :func:`make_mlp`, :func:`train_mlp` (Adam, with snapshots),
  :func:`hidden_features`, :func:`network_labels`; its exact regions drawn by
  :func:`draw_regions`; NNK polytopes of last-hidden-layer features pulled back to the input
  plane (:func:`pulled_back_polytope`, :func:`probe_polytopes`, :func:`polytope_figure`); the
  training history (:func:`epoch_history`, :func:`agreement_figure`);
- :func:`neighbourhood_explorer`, an ipywidgets explorer, built only where
  :func:`widgets_available`, and its static stand-in :func:`k_sweep_figure`;
- :func:`headline`, the notebook's summary numbers.

KRI conventions follow :mod:`deepnnk.nets.geometry`: the KRI line of a selected neighbour ``x_j``
of a query ``x_q`` passes through ``x_j`` orthogonally to ``x_j − x_q``; a point ``x`` is on the
query side when ``(x_q − x_j)·(x − x_j) > 0``. For a Gaussian kernel this does not depend on σ.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.patches import Circle, Polygon
from sklearn.datasets import make_blobs, make_moons
from torch import nn

from deepnnk.classifier import NNKClassifier, candidate_kernels
from deepnnk.neighbors import knn
from deepnnk.nets.geometry import Region, clip_polygon, linear_regions, nnk_polytope, polygon_area
from deepnnk.solver import solve_nnk

CLASS_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple")
BLOB_CENTRES = ((-1.6, -0.6), (1.6, -0.6), (0.0, 1.9))
PROBE_COLOURS = ("crimson", "darkviolet", "teal", "darkorange", "navy")


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


# --------------------------------------------------------------------------- drawing one query


def _scatter_data(ax, X, y, alpha=0.35, s=10):
    for c in np.unique(y):
        ax.scatter(*X[y == c].T, s=s, c=CLASS_COLOURS[c % len(CLASS_COLOURS)], alpha=alpha, lw=0)


def _kri_segment(query, x_j, length: float) -> np.ndarray:
    n = np.asarray(query) - np.asarray(x_j)
    t = np.array([-n[1], n[0]]) / max(np.hypot(*n), 1e-300)
    return np.stack([x_j - length * t, x_j + length * t])


def draw_neighbourhood(
    ax,
    X,
    y,
    nb: Neighbourhood,
    kri: bool = False,
    zoom: float = 2.2,
    title: str | None = None,
    half_width: float | None = None,
) -> None:
    """Draw the data, the query (star), its kNN ball (dashed circle; only meaningful when the
    neighbours were chosen in this plane) and the NNK neighbours (edges ∝ weight).

    With ``kri``: every selected neighbour's KRI line, the NNK polytope they bound (shaded), and
    the discarded candidates — crosses when outside the polytope, open circles when inside.
    The view is a square of half-width ``half_width`` (default ``zoom`` × the ball's radius).
    """
    q, r = nb.query, nb.radius
    half = zoom * r if half_width is None else half_width
    view = (q[0] - half, q[0] + half, q[1] - half, q[1] + half)
    _scatter_data(ax, X, y)
    kept, P = nb.kept, nb.points
    if kri:
        poly = nnk_polytope(q, P[kept], view)
        if len(poly):
            ax.add_patch(Polygon(poly, closed=True, fc="gold", ec="none", alpha=0.25, zorder=1))
        segs = [_kri_segment(q, x, 4 * half) for x in P[kept]]
        ax.add_collection(LineCollection(segs, colors="darkgoldenrod", lw=1.0, zorder=2))
        outside = discarded_outside(nb)
        D = P[~kept]
        ax.scatter(*D[outside].T, marker="x", c="grey", s=30, zorder=3, label="discarded, outside")
        if (~outside).any():
            ax.scatter(
                *D[~outside].T,
                marker="o",
                facecolors="none",
                edgecolors="crimson",
                s=60,
                lw=1.2,
                zorder=3,
                label="discarded, inside",
            )
    else:
        ax.add_patch(Circle(q, r, fill=False, ls="--", ec="k", lw=1.0, zorder=2))
        ax.scatter(
            *P[~kept].T,
            marker="o",
            facecolors="none",
            edgecolors="k",
            s=30,
            zorder=3,
            label="kNN only",
        )
    w = nb.weights[kept]
    segs = [np.stack([q, x]) for x in P[kept]]
    ax.add_collection(LineCollection(segs, colors="k", lw=0.5 + 5 * w, zorder=4))
    colours = [CLASS_COLOURS[c % len(CLASS_COLOURS)] for c in nb.labels[kept]]
    ax.scatter(*P[kept].T, c=colours, s=70, edgecolors="k", zorder=5, label="NNK neighbour")
    ax.scatter(*q, marker="*", c="k", s=220, zorder=6, label="query")
    ax.set_xlim(view[:2])
    ax.set_ylim(view[2:])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(loc="lower left", fontsize=7, framealpha=0.8)


def neighbourhood_panels(data: dict, nbs: dict, kri: bool = False):
    """One panel per data set (``data[name]`` a :class:`Split`, ``nbs[name]`` its query's
    :class:`Neighbourhood`). Returns the figure."""
    fig, axes = plt.subplots(1, len(data), figsize=(5 * len(data), 5), squeeze=False)
    for ax, name in zip(axes[0], data, strict=True):
        d, nb = data[name], nbs[name]
        k, m = len(nb.weights), int(nb.kept.sum())
        if kri:
            title = f"{name}: KRI lines and NNK polytope ({m} of {k} kept)"
        else:
            title = f"{name}: kNN ball (k={k}) vs NNK neighbours ({m})"
        draw_neighbourhood(ax, d.X_train, d.y_train, nb, kri=kri, title=title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- fields and curves


def proba_field(clf, bounds, res: int, cls: int = 1):
    """``(xx, yy, P)``: ``clf.predict_proba`` of class index ``cls`` on a ``res × res`` grid."""
    xx, yy, pts = grid(bounds, res)
    return xx, yy, clf.predict_proba(pts)[:, cls].reshape(xx.shape)


def draw_field(ax, xx, yy, P, X, y, title: str) -> None:
    """A probability field in [0, 1] with its 0.5 contour and the training data on top."""
    ax.pcolormesh(xx, yy, P, cmap="RdBu_r", vmin=0, vmax=1, shading="auto", rasterized=True)
    ax.contour(xx, yy, P, levels=[0.5], colors="k", linewidths=1.2)
    for c in np.unique(y):
        ax.scatter(
            *X[y == c].T,
            s=9,
            c=CLASS_COLOURS[c % len(CLASS_COLOURS)],
            edgecolors="w",
            linewidths=0.3,
        )
    ax.set_title(title, fontsize=10)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


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


def field_panels(clfs: dict, split: Split, bounds, res: int):
    """One P(class 1) field per fitted classifier in ``clfs`` (``{title: clf}``), side by side,
    with a shared colour bar. Returns the figure."""
    fig, axes = plt.subplots(1, len(clfs), figsize=(5.2 * len(clfs), 4.2), squeeze=False)
    for ax, (title, clf) in zip(axes[0], clfs.items(), strict=True):
        xx, yy, P = proba_field(clf, bounds, res)
        draw_field(ax, xx, yy, P, split.X_train, split.y_train, f"{title}: P(class 1)")
    fig.colorbar(axes[0, 0].collections[0], ax=axes[0].tolist(), shrink=0.8)
    return fig


def loo_figure(loo: dict):
    """LOO error against k, NNK vs kNN, one panel per data set (``loo[name]`` from
    :func:`loo_curve`), with NNK's mean number of selected neighbours on a second axis."""
    fig, axes = plt.subplots(1, len(loo), figsize=(5.5 * len(loo), 3.8), squeeze=False)
    for ax, (name, c) in zip(axes[0], loo.items(), strict=True):
        ax.plot(c["k"], c["nnk"], "o-", c="tab:red", label="NNK")
        ax.plot(c["k"], c["knn"], "s--", c="tab:grey", label="kernel kNN")
        ax.set_xscale("log")
        ax.set_xticks(c["k"], [str(k) for k in c["k"]])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xlabel("k (candidates)")
        ax.set_ylabel("leave-one-out error")
        ax.set_title(name, fontsize=10)
        ax2 = ax.twinx()
        ax2.plot(c["k"], c["nnk_selected"], ":", c="tab:red", alpha=0.6)
        ax2.plot(c["k"], c["k"], ":", c="tab:grey", alpha=0.6)
        ax2.set_yscale("log")
        ax2.yaxis.set_major_formatter(plt.matplotlib.ticker.ScalarFormatter())
        ax2.yaxis.set_minor_formatter(plt.NullFormatter())
        ax2.set_ylabel("neighbours used (dotted)")
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- a small ReLU MLP


def make_mlp(widths=(24, 24, 24), n_in: int = 2, n_out: int = 2, seed: int = 0) -> nn.Sequential:
    """``n_in → widths… → n_out`` ReLU MLP (float32), initialised from ``seed``."""
    torch.manual_seed(seed)
    layers, d = [], n_in
    for w in widths:
        layers += [nn.Linear(d, w), nn.ReLU()]
        d = w
    layers.append(nn.Linear(d, n_out))
    return nn.Sequential(*layers)


def train_mlp(
    mlp: nn.Sequential,
    X,
    y,
    epochs: int,
    snapshots=(),
    lr: float = 1e-2,
    batch_size: int = 32,
    seed: int = 0,
) -> dict:
    """Adam (β = 0.9, 0.999) on cross-entropy, mini-batches reshuffled each epoch from ``seed``.

    Returns ``{epoch: state_dict}`` for each epoch in ``snapshots`` (0 = before training); the
    model is left at its final state. Adam is written out here because constructing
    ``torch.optim.Adam`` the first time imports ~1.5 s of torch modules, a tenth of the smoke
    profile's budget; the update is the textbook one.
    """
    Xt = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    params = list(mlp.parameters())
    m1 = [torch.zeros_like(p) for p in params]
    m2 = [torch.zeros_like(p) for p in params]
    b1, b2, eps, step = 0.9, 0.999, 1e-8, 0
    wanted = set(int(e) for e in snapshots)
    states = {0: copy.deepcopy(mlp.state_dict())} if 0 in wanted else {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: extra threads only add overhead
    try:
        for epoch in range(1, epochs + 1):
            for b in torch.randperm(len(Xt), generator=gen).split(batch_size):
                for p in params:
                    p.grad = None
                nn.functional.cross_entropy(mlp(Xt[b]), yt[b]).backward()
                step += 1
                with torch.no_grad():
                    for p, g1, g2 in zip(params, m1, m2, strict=True):
                        g1.mul_(b1).add_(p.grad, alpha=1 - b1)
                        g2.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                        denom = (g2 / (1 - b2**step)).sqrt_().add_(eps)
                        p.addcdiv_(g1, denom, value=-lr / (1 - b1**step))
            if epoch in wanted:
                states[epoch] = copy.deepcopy(mlp.state_dict())
    finally:
        torch.set_num_threads(threads)
    return states


def snapshot_epochs(epochs: int, n: int) -> list[int]:
    """0, then ``n − 1`` roughly log-spaced epochs up to ``epochs`` (distinct, sorted)."""
    if n < 2 or epochs < 1:
        return [0]
    steps = np.unique(np.round(np.geomspace(1, epochs, n - 1)).astype(int))
    return [0, *(int(s) for s in steps)]


def _double(mlp: nn.Sequential) -> nn.Sequential:
    return copy.deepcopy(mlp).to(torch.float64).eval()


def hidden_features(mlp: nn.Sequential, X) -> np.ndarray:
    """The last hidden layer (post-ReLU) of ``mlp`` at ``X [n, 2]``, float64 ``[n, h]``."""
    with torch.no_grad():
        return _double(mlp)[:-1](torch.as_tensor(np.asarray(X), dtype=torch.float64)).numpy()


def network_labels(mlp: nn.Sequential, X) -> np.ndarray:
    """The class ``mlp`` predicts at ``X [n, 2]`` (float64 forward pass), int ``[n]``."""
    with torch.no_grad():
        logits = _double(mlp)(torch.as_tensor(np.asarray(X), dtype=torch.float64))
    return logits.argmax(1).numpy()


# --------------------------------------------------------------------------- regions and pull-backs


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


def draw_regions(ax, regions: list[Region], boundary=None, seed: int = 0, alpha: float = 0.55):
    """The network's linear regions (random pastel colours, thin edges) and, if given, its
    decision boundary (``[S, 2, 2]`` segments, black)."""
    rng = np.random.default_rng(seed)
    colours = 0.55 + 0.45 * rng.random((len(regions), 3))
    ax.add_collection(
        PolyCollection(
            [r.vertices for r in regions],
            facecolors=colours,
            edgecolors=(0.3, 0.3, 0.3, 0.5),
            linewidths=0.3,
            alpha=alpha,
            zorder=0,
            rasterized=True,
        )
    )
    if boundary is not None and len(boundary):
        ax.add_collection(LineCollection(boundary, colors="k", linewidths=2.0, zorder=3))


def draw_polytopes(ax, polys, colour, edges: bool = True, fill: bool = True) -> None:
    """Polygons (a list of ``[m, 2]``) in one colour: filled and/or outlined."""
    polys = [p for p in polys if len(p) >= 3]
    if polys:
        rgb = plt.matplotlib.colors.to_rgb(colour)
        ax.add_collection(
            PolyCollection(
                polys,
                facecolors=(*rgb, (0.45 if edges else 0.6) if fill else 0.0),
                edgecolors=(*rgb, 1.0) if edges else "none",
                linewidths=1.6,
                zorder=4,
                rasterized=len(polys) > 50,
            )
        )


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


def region_panel(
    ax, regions, boundary, split: Split, bounds, probes: list[dict], space: str, title: str
) -> None:
    """Regions + decision boundary + training data, with each probe's NNK polytope chosen in
    ``space`` ("input" or "feature"): star = query, rings = its NNK neighbours. Probes carry
    their colour under ``"colour"``."""
    draw_regions(ax, regions, boundary)
    _scatter_data(ax, split.X_train, split.y_train, alpha=0.5, s=6)
    for p in probes:
        nbrs, polys = p[space]
        draw_polytopes(ax, polys, p["colour"], edges=space == "input")
        ax.scatter(*nbrs.T, s=45, facecolors="none", edgecolors=p["colour"], lw=1.5, zorder=5)
        ax.scatter(*p["query"], marker="*", s=200, c=p["colour"], edgecolors="k", zorder=6)
    ax.set_xlim(bounds[:2])
    ax.set_ylim(bounds[2:])
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=10)


def polytope_figure(regions, boundary, split: Split, bounds, probes: list[dict]):
    """The network's regions and decision boundary with NNK polytopes: first panel, every probe's
    polytope in the input plane; then one panel per probe with its NNK polytope on the last
    hidden layer, pulled back to the plane (the input polytope outlined for comparison)."""
    n = len(probes) + 1
    rows = (n + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(12, 4.6 * rows), squeeze=False)
    probes = [{**p, "colour": c} for p, c in zip(probes, PROBE_COLOURS, strict=False)]
    region_panel(
        axes[0, 0],
        regions,
        boundary,
        split,
        bounds,
        probes,
        "input",
        f"{len(regions)} linear regions, decision boundary,\nNNK polytopes in the input",
    )
    for ax, p in zip(axes.flat[1:], probes, strict=False):
        qx, qy = p["query"]
        region_panel(
            ax,
            regions,
            boundary,
            split,
            bounds,
            [p],
            "feature",
            f"query ({qx:.2f}, {qy:.2f}): NNK on the last hidden layer,\n"
            f"pulled back ({p['feature_selected']} neighbours, "
            f"{p['feature_pieces']} pieces)",
        )
        draw_polytopes(ax, p["input"][1], "k", fill=False)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


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


def agreement_figure(xx, yy, net_labels, nnk_labels, split: Split, hist: dict):
    """Left: the network's labels on the grid, with the cells where NNK-on-features disagrees in
    black. Right: regions, LOO-NNK error, test error and disagreement over the snapshots."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    ax = axes[0]
    ax.pcolormesh(
        xx,
        yy,
        net_labels.reshape(xx.shape),
        cmap="RdBu_r",
        vmin=-0.5,
        vmax=1.5,
        alpha=0.35,
        shading="auto",
        rasterized=True,
    )
    dis = (net_labels != nnk_labels).reshape(xx.shape)
    ax.pcolormesh(
        xx,
        yy,
        np.ma.masked_where(~dis, dis),
        cmap="Greys",
        vmin=0,
        vmax=1,
        shading="auto",
        rasterized=True,
    )
    _scatter_data(ax, split.X_train, split.y_train, alpha=0.7, s=6)
    ax.set_aspect("equal")
    ax.set_title(
        f"network labels; black: NNK-on-features disagrees ({dis.mean():.1%})", fontsize=10
    )
    ax = axes[1]
    e = np.asarray(hist["epoch"])
    ax.plot(e, hist["loo_nnk_features"], "o-", c="tab:red", label="LOO-NNK error (features)")
    ax.plot(e, hist["test_error"], "s-", c="k", label="network test error")
    ax.plot(
        e,
        1 - np.asarray(hist["agreement_nnk_features"]),
        "^--",
        c="tab:purple",
        label="NNK vs network disagreement",
    )
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("error / disagreement")
    ax.legend(loc="center right", fontsize=8)
    ax2 = ax.twinx()
    ax2.plot(e, hist["n_regions"], "d:", c="tab:green")
    ax2.set_ylabel("linear regions (green, dotted)", color="tab:green")
    fig.tight_layout()
    return fig


def k_sweep_figure(split: Split, query, ks):
    """The KRI polytope of one query for several k (what the interactive explorer shows).
    Returns ``(figure, {k: number of NNK neighbours})``."""
    fig, axes = plt.subplots(1, len(ks), figsize=(4 * len(ks), 4), squeeze=False)
    nbs = [
        neighbourhood(
            NNKClassifier(int(kk), kernel="gaussian").fit(split.X_train, split.y_train), query
        )
        for kk in ks
    ]
    half = 1.3 * max(nb.radius for nb in nbs)  # one view for all panels
    selected = {}
    for ax, kk, nb in zip(axes[0], ks, nbs, strict=True):
        selected[int(kk)] = int(nb.kept.sum())
        draw_neighbourhood(
            ax,
            split.X_train,
            split.y_train,
            nb,
            kri=True,
            half_width=half,
            title=f"k={kk}: {selected[int(kk)]} NNK neighbours",
        )
    fig.tight_layout()
    return fig, selected


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


# --------------------------------------------------------------------------- widgets


def widgets_available() -> bool:
    """True in a live Jupyter kernel whose matplotlib backend can show figures in widget output
    (inline or ipympl), with ipywidgets installed. False under a plain interpreter and under
    ``MPLBACKEND=Agg`` (how the tests run the notebook with papermill)."""
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    if ip is None or not hasattr(ip, "kernel"):
        return False
    backend = plt.get_backend().lower()
    return "inline" in backend or "widget" in backend or "ipympl" in backend


def neighbourhood_explorer(data: dict, queries: dict, k: int, k_max: int = 40):
    """An ipywidgets box: pick a data set, k and the query position; redraws the kNN-vs-NNK and
    KRI-polytope panels (sections 1–2 of the notebook) for that choice."""
    import ipywidgets as w

    name = w.Dropdown(options=list(data), description="data")
    ks = w.IntSlider(value=k, min=2, max=k_max, description="k")
    q0 = queries[name.value]
    lo = np.min([d.X_train.min(0) for d in data.values()], axis=0)
    hi = np.max([d.X_train.max(0) for d in data.values()], axis=0)
    qx = w.FloatSlider(value=q0[0], min=lo[0], max=hi[0], step=0.05, description="query x")
    qy = w.FloatSlider(value=q0[1], min=lo[1], max=hi[1], step=0.05, description="query y")

    def draw(name, k, qx, qy):
        d = data[name]
        clf = NNKClassifier(k, kernel="gaussian").fit(d.X_train, d.y_train)
        nb = neighbourhood(clf, (qx, qy))
        fig, axes = plt.subplots(1, 2, figsize=(10, 5))
        draw_neighbourhood(axes[0], d.X_train, d.y_train, nb, title=f"kNN ball vs NNK (k={k})")
        draw_neighbourhood(axes[1], d.X_train, d.y_train, nb, kri=True, title="KRI polytope")
        plt.show()
        plt.close(fig)

    out = w.interactive_output(draw, {"name": name, "k": ks, "qx": qx, "qy": qy})
    return w.VBox([w.HBox([name, ks]), w.HBox([qx, qy]), out])
