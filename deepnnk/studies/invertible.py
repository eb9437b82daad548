"""Two moons through an invertible classifier (notebook 07, part A; drawn by
:mod:`deepnnk.figures.invertible`).

- sizes: :data:`PROFILES`, :func:`profile`; the authors' logged accuracies :data:`AUTHORS_LOG`;
- data and training: :func:`moons_split` (the authors' data and split), :func:`make_model`,
  :func:`train_moons` (their recipe, seeded, float64), :func:`seed_sweep` and
  :func:`closest_to_log` (how the accuracy varies with the seed);
- the explanation against the optimum: :func:`closest_boundary_point` (the true closest point
  ``x*`` on the decision boundary, exactly, from the network's linear regions) and
  :func:`minimality` (``‖x − x_b‖ / ‖x − x*‖`` per point, its median and 90th percentile);
- the explanation itself, as plain arrays: :func:`explain_points` (``x_b``, ``x − x_b``, the
  Taylor importance and the gradient); :func:`moons_metrics`, the numbers for ``metrics.json``;
- NNK in feature space: :func:`feature_nnk` (neighbours of ``T(x)`` among ``T(x_train)`` and
  ``T⁻¹`` of the interpolation point) and :func:`moons_example` (everything the figure draws
  for one query, including its NNK polytope pulled back to the plane).

Models are float64 (:func:`make_model`). Everything returns plain numpy data (dicts of arrays
and floats); accuracies are in percent.
Distances are Euclidean, in the units of the input plane.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.datasets import make_moons
from sklearn.model_selection import train_test_split

from deepnnk.classifier import NNKClassifier
from deepnnk.nets.geometry import decision_boundary, nnk_polytope, polygon_area
from deepnnk.nets.invertible import (
    InvertibleClassifier,
    InvertibleMLP,
    boundary_projection,
    coupling_regions,
    taylor_importance,
)
from deepnnk.studies.nnk_geometry import Split, padded_bounds, pulled_back_polytope
from deepnnk.studies.profiles import pick

# epochs: of each training (the authors': 60); seeds: the seed sweep; k: NNK candidates in
# feature space; n_queries: test points in the minimality ratio (None = all 400).
PROFILES = {
    "smoke": {"epochs": 6, "seeds": [0, 1], "k": 10, "n_queries": 40},
    "quick": {"epochs": 60, "seeds": list(range(10)), "k": 15, "n_queries": None},
    "paper": {"epochs": 60, "seeds": list(range(30)), "k": 15, "n_queries": None},
}
#: The authors' last logged epoch (checkpoint_single/log.txt): train and test accuracy, percent.
AUTHORS_LOG = {"train_acc": 95.33, "test_acc": 91.5}
QUERY = (0.4, 0.5)  # the figure's query: between the moons, near the boundary


def profile(name: str) -> dict:
    """The sizes for profile ``name`` ("smoke", "quick" or "paper"), a copy."""
    return pick(PROFILES, name)


# --------------------------------------------------------------------------- data, training


def moons_split() -> Split:
    """The authors' data: ``make_moons(n_samples=1000, noise=0.2, random_state=0)`` split by
    ``train_test_split(test_size=0.4, random_state=42)``: 600 training and 400 test points."""
    X, y = make_moons(n_samples=1000, noise=0.2, random_state=0)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.4, random_state=42)
    return Split(Xtr.astype(np.float64), ytr, Xte.astype(np.float64), yte)


def make_model(seed: int = 0, blocks: int = 6, hidden: int | None = None, n_classes: int = 2):
    """A float64 :class:`InvertibleClassifier` over :class:`InvertibleMLP` (2-D, ``blocks``
    coupling blocks, PyTorch's default initialisation drawn from ``seed``; the global RNG is
    left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = InvertibleClassifier(InvertibleMLP(2, blocks, hidden), n_classes)
    return model.to(torch.float64)


def _accuracy(model, X, y) -> float:
    with torch.no_grad():
        pred = model(torch.as_tensor(X, dtype=torch.float64)).argmax(1).numpy()
    return float(100.0 * (pred == np.asarray(y)).mean())


def train_moons(
    split: Split | None = None,
    epochs: int = 60,
    seed: int = 0,
    lr: float = 0.1,
    momentum: float = 0.9,
    batch_size: int = 128,
    milestones=(20, 40),
    gamma: float = 0.1,
) -> dict:
    """The authors' recipe: SGD (``lr``, ``momentum``, no weight decay), cross-entropy, batches
    of 128 in the data's order (their loader does not shuffle), ``lr × gamma`` at each of
    ``milestones``; float64 (600 points: cheap). The same ``seed`` gives the same weights.

    Returns ``{"model", "train_acc", "test_acc"`` (percent, of the final model), ``"history"``
    (per epoch: ``epoch``, ``loss`` (mean over batches), ``train_acc``, ``test_acc``),
    ``"seconds", "seed", "epochs"}``.
    """
    split = moons_split() if split is None else split
    model = make_model(seed)
    X = torch.as_tensor(split.X_train, dtype=torch.float64)
    y = torch.as_tensor(split.y_train, dtype=torch.long)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    steps = set(int(m) for m in milestones)
    hist: dict[str, list] = {"epoch": [], "loss": [], "train_acc": [], "test_acc": []}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: extra threads only add overhead
    t0 = time.perf_counter()
    try:
        for epoch in range(epochs):
            if epoch in steps:
                for group in opt.param_groups:
                    group["lr"] *= gamma
            losses = []
            for b in torch.arange(len(X)).split(batch_size):
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(X[b]), y[b])
                loss.backward()
                opt.step()
                losses.append(loss.item())
            hist["epoch"].append(epoch + 1)
            hist["loss"].append(float(np.mean(losses)))
            hist["train_acc"].append(_accuracy(model, split.X_train, split.y_train))
            hist["test_acc"].append(_accuracy(model, split.X_test, split.y_test))
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return {
        "model": model,
        "train_acc": _accuracy(model, split.X_train, split.y_train),
        "test_acc": _accuracy(model, split.X_test, split.y_test),
        "history": hist,
        "seconds": time.perf_counter() - t0,
        "seed": int(seed),
        "epochs": int(epochs),
    }


def seed_sweep(seeds, epochs: int = 60, split: Split | None = None) -> dict:
    """:func:`train_moons` once per seed: ``{"seed", "train_acc", "test_acc"`` (lists,
    percent), ``"within_2"`` (bool list: both within ±2 points of :data:`AUTHORS_LOG`),
    ``"seconds"}``. The authors' single run is one draw of this distribution (seed unknown)."""
    split = moons_split() if split is None else split
    out: dict[str, list] = {"seed": [], "train_acc": [], "test_acc": [], "within_2": []}
    t0 = time.perf_counter()
    for s in seeds:
        run = train_moons(split, epochs=epochs, seed=int(s))
        out["seed"].append(int(s))
        out["train_acc"].append(run["train_acc"])
        out["test_acc"].append(run["test_acc"])
        out["within_2"].append(
            abs(run["train_acc"] - AUTHORS_LOG["train_acc"]) <= 2
            and abs(run["test_acc"] - AUTHORS_LOG["test_acc"]) <= 2
        )
    out["seconds"] = time.perf_counter() - t0
    return out


def closest_to_log(sweep: dict) -> int:
    """The seed of ``sweep`` whose (train, test) accuracy is nearest :data:`AUTHORS_LOG`
    (max-norm): the run the notebook explains, chosen openly rather than by a lucky default."""
    gap = np.maximum(
        np.abs(np.asarray(sweep["train_acc"]) - AUTHORS_LOG["train_acc"]),
        np.abs(np.asarray(sweep["test_acc"]) - AUTHORS_LOG["test_acc"]),
    )
    return int(sweep["seed"][int(np.argmin(gap))])


# --------------------------------------------------------------------------- the boundary


def _points(x, name="x") -> np.ndarray:
    p = np.asarray(x, dtype=np.float64)
    p = p.reshape(1, 2) if p.shape == (2,) else p
    if p.ndim != 2 or p.shape[1] != 2 or not len(p):
        raise ValueError(f"{name} must be points [n, 2] (or one point [2]), got {p.shape}.")
    if not np.isfinite(p).all():
        raise ValueError(f"{name} contains NaN or inf.")
    return p


def _nearest_on_segments(P: np.ndarray, S: np.ndarray, block: int = 256):
    """For each point of ``P [n, 2]`` the nearest point on the segments ``S [s, 2, 2]``:
    ``(points [n, 2], distances [n])``; blocks of points keep the ``[block, s, 2]`` arrays small."""
    s0, d = S[:, 0], S[:, 1] - S[:, 0]
    dd = np.maximum((d * d).sum(1), 1e-300)
    best = np.empty_like(P)
    dist = np.empty(len(P))
    for i in range(0, len(P), block):
        q = P[i : i + block, None, :]
        t = np.clip(((q - s0) * d).sum(2) / dd, 0.0, 1.0)
        c = s0 + t[..., None] * d  # [b, s, 2]
        r = np.hypot(*(q - c).transpose(2, 0, 1))
        j = r.argmin(1)
        best[i : i + block] = c[np.arange(len(j)), j]
        dist[i : i + block] = r[np.arange(len(j)), j]
    return best, dist


def closest_boundary_point(model, x, bounds=None, max_doublings: int = 6) -> dict:
    """The true closest point ``x*`` on the decision boundary to each of ``x [n, 2]``.

    The classifier is piecewise affine, so its exact linear regions in the box ``bounds``
    (:func:`deepnnk.nets.invertible.coupling_regions`, float64) turn the boundary into line
    segments (:func:`deepnnk.nets.geometry.decision_boundary`); ``x*`` is the nearest point over
    all of them. It is certified global: a boundary point outside the box is farther than the
    box's edge, so the box is doubled (about its centre) until every ``‖x − x*‖`` is at most
    the distance from ``x`` to the box's edge. Default box: the points' own, padded by a quarter
    of its size and at least 1 unit a side.

    Returns ``{"x_star" [n, 2], "distance" [n], "bounds", "n_regions", "n_segments",
    "regions", "segments" [s, 2, 2]}``.
    """
    P = _points(x)
    if bounds is None:
        # The points' box, padded by a quarter and at least 1 unit a side (doubled if needed).
        lo, hi = P.min(0), P.max(0)
        m = np.maximum(0.25 * (hi - lo), 1.0)
        bounds = (lo[0] - m[0], hi[0] + m[0], lo[1] - m[1], hi[1] + m[1])
    b = np.asarray(bounds, dtype=np.float64)
    for _ in range(max_doublings + 1):
        regions = coupling_regions(model, tuple(b))
        S = decision_boundary(regions)
        if len(S):
            best, dist = _nearest_on_segments(P, S)
            edge = np.minimum.reduce(
                [P[:, 0] - b[0], b[1] - P[:, 0], P[:, 1] - b[2], b[3] - P[:, 1]]
            )
            if (dist <= edge).all():
                return {
                    "x_star": best,
                    "distance": dist,
                    "bounds": tuple(float(v) for v in b),
                    "n_regions": len(regions),
                    "n_segments": len(S),
                    "regions": regions,
                    "segments": S,
                }
        mid, width = (b[[0, 2]] + b[[1, 3]]) / 2, b[[1, 3]] - b[[0, 2]]  # double about the centre
        b = np.array([mid[0] - width[0], mid[0] + width[0], mid[1] - width[1], mid[1] + width[1]])
    raise ValueError("no certified boundary point within the box doubled max_doublings times.")


def projection_pairs(model, X) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)``: the predicted class and the runner-up at each of ``X [n, 2]`` (int ``[n]``)."""
    with torch.no_grad():
        order = model(torch.as_tensor(X, dtype=torch.float64)).argsort(1, descending=True)
    return order[:, 0].numpy(), order[:, 1].numpy()


def minimality(model, X, bounds=None) -> dict:
    """How far from minimal the projection explanation is: ``‖x − x_b‖ / ‖x − x*‖``.

    ``x_b`` projects ``T(x)`` onto the boundary between the predicted class and the runner-up
    (:func:`deepnnk.nets.invertible.boundary_projection`); ``x*`` is the true closest boundary
    point (:func:`closest_boundary_point`). For two classes ``x_b`` lies on the decision
    boundary, so the ratio is ≥ 1 up to rounding. Returns ``{"ratio" [n], "median", "p90",
    "min", "max", "x_b" [n, 2], "x_star" [n, 2], "dist_b" [n], "dist_star" [n], "a", "b"
    [n], "n_regions", "n_segments", "seconds"}``.
    """
    P = _points(X, "X")
    t0 = time.perf_counter()
    a, b = projection_pairs(model, P)
    x_b = boundary_projection(model, P, a, b)[0].numpy()
    star = closest_boundary_point(model, P, bounds)
    dist_b = np.linalg.norm(P - x_b, axis=1)
    ratio = dist_b / np.maximum(star["distance"], 1e-300)
    return {
        "ratio": ratio,
        "median": float(np.median(ratio)),
        "p90": float(np.percentile(ratio, 90)),
        "min": float(ratio.min()),
        "max": float(ratio.max()),
        "x_b": x_b,
        "x_star": star["x_star"],
        "dist_b": dist_b,
        "dist_star": star["distance"],
        "a": a,
        "b": b,
        "n_regions": star["n_regions"],
        "n_segments": star["n_segments"],
        "seconds": time.perf_counter() - t0,
    }


def explain_points(model, X) -> dict:
    """The projection explanation of each of ``X [n, 2]`` against its runner-up class, as
    numpy: ``{"a", "b" [n]`` (predicted, runner-up), ``"x_b" [n, 2], "delta" [n, 2]`` (x − x_b),
    ``"importance" [n, 2]`` (gradient × (x − x_b), the first-order Taylor share of each input
    feature in ``logit_a − logit_b`` at ``x``), ``"gradient" [n, 2]``, ``"gap" [n]``
    (``logit_a − logit_b`` at ``x``), ``"gap_at_x_b" [n]`` (≈ 0)``}``."""
    P = _points(X, "X")
    a, b = projection_pairs(model, P)
    x_b = boundary_projection(model, P, a, b)[0]
    imp, grad = taylor_importance(model, P, a, b)
    rows = np.arange(len(P))
    with torch.no_grad():
        lx = model(torch.as_tensor(P)).numpy()
        lb = model(x_b).numpy()
    x_b = x_b.numpy()
    return {
        "a": a,
        "b": b,
        "x_b": x_b,
        "delta": P - x_b,
        "importance": imp.numpy(),
        "gradient": grad.numpy(),
        "gap": lx[rows, a] - lx[rows, b],
        "gap_at_x_b": lb[rows, a] - lb[rows, b],
    }


def moons_metrics(sweep: dict, run: dict, mini: dict, example: dict) -> dict:
    """The numbers notebook 07's prose quotes, JSON-ready: the seed sweep (accuracies, how many
    seeds land within ±2 points of :data:`AUTHORS_LOG`), the explained run's accuracies and
    training time, the minimality ratio (median, 90th percentile, min, max, the shares of test
    points with ratio < 1 + 1e-6 and ≤ 1.01), and the example query's distances and NNK
    neighbours."""
    r = np.asarray(mini["ratio"])
    return {
        "authors_train_acc": AUTHORS_LOG["train_acc"],
        "authors_test_acc": AUTHORS_LOG["test_acc"],
        "sweep_seeds": len(sweep["seed"]),
        "sweep_within_2": int(np.sum(sweep["within_2"])),
        "sweep_test_acc_median": float(np.median(sweep["test_acc"])),
        "sweep_test_acc_min": float(np.min(sweep["test_acc"])),
        "sweep_test_acc_max": float(np.max(sweep["test_acc"])),
        "sweep_seconds": float(sweep["seconds"]),
        "seed": run["seed"],
        "epochs": run["epochs"],
        "train_acc": run["train_acc"],
        "test_acc": run["test_acc"],
        "train_seconds": float(run["seconds"]),
        "ratio_median": mini["median"],
        "ratio_p90": mini["p90"],
        "ratio_min": mini["min"],
        "ratio_max": mini["max"],
        "ratio_minimal_share": float(np.mean(r < 1 + 1e-6)),
        "ratio_within_1pct_share": float(np.mean(r <= 1.01)),
        "ratio_n": int(len(r)),
        "n_regions": int(mini["n_regions"]),
        "n_boundary_segments": int(mini["n_segments"]),
        "minimality_seconds": float(mini["seconds"]),
        "example_dist_b": example["dist_b"],
        "example_dist_star": example["dist_star"],
        "example_nnk_neighbours": int(len(example["neighbours"])),
        "example_polytope_area": example["polytope_area"],
        "kernel": example["kernel"],
    }


# --------------------------------------------------------------------------- NNK in feature space


def _T(model, X) -> np.ndarray:
    with torch.no_grad():
        return model.features(torch.as_tensor(X, dtype=torch.float64)).numpy()


def feature_nnk(model, split: Split, queries, k: int = 15) -> dict:
    """NNK on the invertible features: neighbours of ``T(q)`` among ``T(x_train)``, and the
    interpolation point pulled back to the plane.

    Kernel: Gaussian (the package's default bandwidth, the k-th candidate's distance / 3). The
    features are 2-D, and the cosine kernel (the package default) sees only a feature's
    direction from the origin, which in the plane merges everything along a ray; the Gaussian
    kernel also makes the NNK polytope the KRI half-plane intersection that
    :func:`deepnnk.nets.geometry.nnk_polytope` draws. Returns ``{"index" [n, k], "weights"
    [n, k]`` (normalised, zero off the NNK neighbours), ``"f_query" [n, 2], "z" [n, 2]``
    (Σθ_j T(x_j)/Σθ_j), ``"x_interp" [n, 2]`` (T⁻¹(z)), ``"nnk_label" [n]`` (NNK's
    prediction), ``"residual" [n], "F_train" [N, 2], "kernel"}``.
    """
    Q = _points(queries, "queries")
    F = _T(model, split.X_train)
    fq = _T(model, Q)
    clf = NNKClassifier(int(k), kernel="gaussian").fit(F, split.y_train)
    idx, w, res = clf.explain(fq)
    z = np.einsum("nk,nkd->nd", w, F[idx])
    with torch.no_grad():
        x_interp = model.inverse(torch.as_tensor(z)).numpy()
    return {
        "index": idx,
        "weights": w,
        "f_query": fq,
        "z": z,
        "x_interp": x_interp,
        "nnk_label": clf.predict(fq),
        "residual": res,
        "F_train": F,
        "kernel": "gaussian",
    }


def moons_example(model, split: Split, query=QUERY, k: int = 15, bounds=None) -> dict:
    """Everything the moons figure draws for one ``query [2]``: in the plane, the boundary
    segments, ``x``, ``x_b``, ``x*``, the NNK neighbours (input positions), ``T⁻¹`` of the
    interpolation point, and the NNK polytope: the feature-space polytope (the KRI half-planes
    of the neighbours around ``T(x)``) pulled back exactly through ``T`` region by region
    (convex pieces whose union is ``T⁻¹`` of a convex polygon: connected, not convex). In
    feature space: ``T(x_train)``, ``T(x)``, ``p``, ``z``, the convex polytope, and the
    hyperplane as a segment. Plain arrays and floats.
    """
    q = _points(query, "query")
    if bounds is None:  # the regions and boundary over the whole data set, for drawing
        bounds = padded_bounds(np.concatenate([split.X_train, split.X_test, q]), pad=0.1)
    star = closest_boundary_point(model, q, bounds)
    a, b = projection_pairs(model, q)
    x_b, p, s = (t.numpy() for t in boundary_projection(model, q, a, b))
    nnk = feature_nnk(model, split, q, k)
    kept = nnk["weights"][0] > 0
    nb = nnk["index"][0][kept]
    F, fq = nnk["F_train"], nnk["f_query"][0]
    pieces = pulled_back_polytope(star["regions"], fq, F[nb])
    fb = padded_bounds(np.concatenate([F, fq[None]]), pad=0.05)
    W = model.head.weight.detach().numpy()
    bias = model.head.bias.detach().numpy()
    u, du = W[a[0]] - W[b[0]], bias[a[0]] - bias[b[0]]
    # The feature hyperplane u·f + du = 0 as a segment across the feature box.
    tdir = np.array([-u[1], u[0]]) / np.linalg.norm(u)
    span = np.hypot(fb[1] - fb[0], fb[3] - fb[2])
    foot = -du * u / (u @ u)
    return {
        "query": q[0],
        "x_b": x_b[0],
        "x_star": star["x_star"][0],
        "dist_b": float(np.linalg.norm(q[0] - x_b[0])),
        "dist_star": float(star["distance"][0]),
        "segments": star["segments"],
        "bounds": star["bounds"],
        "X_train": split.X_train,
        "y_train": split.y_train,
        "neighbours": split.X_train[nb],
        "neighbour_weights": nnk["weights"][0][kept],
        "x_interp": nnk["x_interp"][0],
        "pieces": pieces,
        "polytope_area": float(sum(abs(polygon_area(v)) for v in pieces)),
        "F_train": F,
        "f_query": fq,
        "p": p[0],
        "z": nnk["z"][0],
        "feature_neighbours": F[nb],
        "feature_polytope": nnk_polytope(fq, F[nb], fb),
        "feature_bounds": fb,
        "hyperplane": np.stack([foot - span * tdir, foot + span * tdir]),
        "classes": (int(a[0]), int(b[0])),
        "kernel": nnk["kernel"],
    }
