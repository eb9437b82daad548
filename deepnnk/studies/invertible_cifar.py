"""CIFAR-10 through an invertible classifier: the boundary projection, NNK in feature space
pulled back by ``T⁻¹``, and three counterfactuals compared (notebook 07, part B; drawn by
:mod:`deepnnk.figures.invertible_cifar`).

- sizes: :data:`PROFILES`, :func:`profile`; data: :func:`load_data`, :func:`pick_images`;
- the method's checks: :func:`method_checks` (inverse and boundary, random weights) and
  :func:`gap_profile` (the logit gap along the feature-space and input-space paths to ``x_b``);
- the network: :func:`run_dir`, :func:`train_network` (per-epoch checkpoints through
  :func:`deepnnk.nets.train.train`; resumes, and a finished run loads at once),
  :func:`accuracy`, :func:`reconstruction` (``|T⁻¹(T(x)) − x|`` in float32);
- NNK in feature space: :func:`features`, :func:`fit_nnk`, :func:`gallery` (per test image:
  ``x_b``, ``x − x_b``, the NNK neighbours of ``T(x)`` and ``T⁻¹`` of the interpolation point);
- counterfactuals: :func:`flip_bisection` (vectorised over queries), :func:`validity`,
  :func:`proximity`, :func:`plausibility`, :func:`counterfactuals` (the three methods, scored);
- ``*_metrics``: flat dicts for ``metrics.json``.

Images are float32 ``[n, 3, 32, 32]`` pixels/255 (what the network takes); distances in input
space are Euclidean over those 3072 values. ``a`` is the predicted class of a query and ``b``
its runner-up (the second-largest logit), the class every counterfactual aims at.

**Validity** of a counterfactual ``c`` of ``x``: the network's prediction *just past* ``c``, at
``c⁺ = x + (1 + ε)(c − x)`` (ε = :data:`PAST`, 1% further along the straight input-space line
from ``x`` through ``c``), is no longer ``a``. ``x_b`` lies on the feature-space boundary, where
the logits of ``a`` and ``b`` tie; "just past" asks whether stepping on leaves class ``a``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from deepnnk.classifier import NNKClassifier
from deepnnk.explain import neighbourhood_table, nnk_on_candidates
from deepnnk.neighbors import knn
from deepnnk.nets.checkpoints import list_checkpoints
from deepnnk.nets.data import CLASSES as CLASSES  # re-exported for the notebook
from deepnnk.nets.data import load_cifar10
from deepnnk.nets.features import images_to_float
from deepnnk.nets.invertible import boundary_projection, cifar_classifier
from deepnnk.nets.train import load_checkpoint, train
from deepnnk.studies.profiles import pick

# n_train: training images (the network and NNK's database); epochs, batch_size, lr: training
# (Adam, random flips); blocks, hidden: coupling blocks and hidden channels per stage;
# n_recon: test images for the reconstruction error; n_gallery: images in the gallery;
# n_counterfactual: test images in the counterfactual comparison; bisection_steps: halvings.
PROFILES = {
    "smoke": {
        "n_train": 1000, "epochs": 1, "batch_size": 100, "lr": 1e-3, "blocks": [1, 1],
        "hidden": [8, 8], "n_test": 200, "n_recon": 100, "n_gallery": 10,
        "n_counterfactual": 20, "bisection_steps": 20,
    },
    "quick": {
        "n_train": 50000, "epochs": 10, "batch_size": 128, "lr": 1e-3, "blocks": [2, 2],
        "hidden": [32, 64], "n_test": 10000, "n_recon": 1000, "n_gallery": 10,
        "n_counterfactual": 200, "bisection_steps": 30,
    },
    "paper": {
        "n_train": 50000, "epochs": 20, "batch_size": 128, "lr": 1e-3, "blocks": [2, 2],
        "hidden": [32, 64], "n_test": 10000, "n_recon": 10000, "n_gallery": 12,
        "n_counterfactual": 500, "bisection_steps": 30,
    },
}  # fmt: skip
PAST = 0.01  # validity: the prediction at x + (1 + PAST)(c − x)
METHODS = ("projection", "nnk_neighbour", "nnk_guided")
METHOD_LABELS = {
    "projection": "projection x_b",
    "nnk_neighbour": "nearest NNK neighbour of class b",
    "nnk_guided": "NNK-guided (bisection)",
}


def profile(name: str) -> dict:
    """The sizes for profile ``name`` ("smoke", "quick" or "paper"), a copy."""
    return pick(PROFILES, name)


# --------------------------------------------------------------------------- data, network


def load_data(sizes: dict, data_root=None) -> dict:
    """CIFAR-10 cut to the profile: the first ``n_train`` training and ``n_test`` test images,
    as uint8 ``[n, 32, 32, 3]`` (``x_train``, ``x_test``) and labels."""
    x_tr, y_tr, x_te, y_te = load_cifar10(data_root or None)
    n, m = sizes["n_train"], sizes["n_test"]
    return {"x_train": x_tr[:n], "y_train": y_tr[:n], "x_test": x_te[:m], "y_test": y_te[:m]}


def to_float(images) -> torch.Tensor:
    """uint8 HWC images (or float NCHW pixels/255) as float32 ``[n, 3, 32, 32]`` pixels/255."""
    if isinstance(images, torch.Tensor) and images.dtype == torch.float32:
        return images
    arr = np.asarray(images)
    if arr.dtype == np.uint8:
        return images_to_float(arr).contiguous()
    return torch.as_tensor(arr, dtype=torch.float32)


def run_dir(checkpoints_root, sizes: dict, seed: int) -> Path:
    """``<checkpoints_root>/invertible-cifar-b<blocks>-h<hidden>-n<n_train>-bs<batch>-seed<s>``:
    the architecture is in the name (the checkpoint's config records the rest)."""
    b = "x".join(str(v) for v in sizes["blocks"])
    h = "x".join(str(v) for v in sizes["hidden"])
    name = f"invertible-cifar-b{b}-h{h}-n{sizes['n_train']}-bs{sizes['batch_size']}-seed{seed}"
    return Path(checkpoints_root) / name


def build(sizes: dict, seed: int):
    """A fresh float32 network of the profile's architecture, seeded."""
    return cifar_classifier(seed, tuple(sizes["blocks"]), tuple(sizes["hidden"]))


def train_network(data: dict, sizes: dict, checkpoints_root, seed: int = 0) -> tuple:
    """Train the profile's network for ``epochs`` epochs (Adam, ``lr``, random flips, seeded)
    with a checkpoint per epoch in :func:`run_dir`, resuming there; a finished run only loads.

    Returns ``(model in eval mode, info)``: ``info`` holds ``epochs``, ``training_seconds``
    (summed over the epochs, whenever they ran), ``seconds_this_run``, ``history`` and
    ``parameters``.
    """
    folder = run_dir(checkpoints_root, sizes, seed)
    t0 = time.time()
    model = build(sizes, seed)
    history = train(
        model, data["x_train"], data["y_train"], checkpoint_dir=folder, epochs=sizes["epochs"],
        batch_size=sizes["batch_size"], lr=sizes["lr"], seed=seed, flip=True, progress=False,
    )  # fmt: skip
    model = load_checkpoint(folder, sizes["epochs"], model=build(sizes, seed))
    model = model.to(memory_format=torch.contiguous_format).eval()
    info = {
        "epochs": sizes["epochs"],
        "training_seconds": float(sum(h["seconds"] for h in history)),
        "seconds_this_run": time.time() - t0,
        "history": history,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "checkpoints": len(list_checkpoints(folder)),
    }
    return model, info


def _batches(model, x, fn, batch_size: int = 500):
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out.append(fn(model, x[i : i + batch_size]))
    return torch.cat(out)


def logits(model, x) -> np.ndarray:
    """Logits ``[n, 10]`` (float32, batched)."""
    return _batches(model, to_float(x), lambda m, b: m(b)).numpy()


def features(model, x) -> np.ndarray:
    """``T(x)`` flattened, float32 ``[n, 3072]`` (batched)."""
    return _batches(model, to_float(x), lambda m, b: m.features(b)).numpy()


def inverse(model, z) -> np.ndarray:
    """``T⁻¹(z)`` for flat features ``z [n, 3072]``: float32 images ``[n, 3, 32, 32]``."""
    z = torch.as_tensor(np.asarray(z), dtype=torch.float32)
    return _batches(model, z, lambda m, b: m.inverse(b)).numpy()


def accuracy(model, x, y) -> float:
    """Fraction of ``x`` classified as ``y``."""
    return float(np.mean(logits(model, x).argmax(1) == np.asarray(y)))


def reconstruction(model, x) -> dict:
    """``|T⁻¹(T(x)) − x|`` over all pixels of ``x`` (float32, pixels/255): ``max``, ``mean``,
    ``n_images``; and the same in float64 (``max_float64``), the inverse's exactness apart from
    float32 rounding."""
    xf = to_float(x)
    err = np.abs(inverse(model, features(model, xf)) - xf.numpy())
    m64 = model.to(torch.float64)
    try:
        with torch.no_grad():
            x64 = xf[:200].double()
            e64 = (m64.inverse(m64.features(x64)) - x64).abs().max().item()
    finally:
        model.to(torch.float32)
    return {"max": float(err.max()), "mean": float(err.mean()), "max_float64": float(e64),
            "n_images": int(len(xf))}  # fmt: skip


def method_checks(seed: int = 0, n: int = 2) -> dict:
    """The inverse and boundary tests on a network with random weights (every parameter
    N(0, 0.05²), so no coupling is the identity), on ``n`` random images: the largest
    ``|T⁻¹(T(x)) − x|`` in float64 and in float32, and the largest ``|logit_a − logit_b|`` at
    ``x_b`` over every ordered class pair ``(a, b)`` (float64)."""
    gen = torch.Generator().manual_seed(seed)
    model = cifar_classifier(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    x = torch.rand(n, 3, 32, 32, generator=gen)
    out = {}
    for name, dtype in (("float64", torch.float64), ("float32", torch.float32)):
        m, xd = model.to(dtype), x.to(dtype)
        with torch.no_grad():
            out[f"roundtrip_{name}"] = (m.inverse(m.features(xd)) - xd).abs().max().item()
    m, x64 = model.to(torch.float64), x.double()
    pairs = [(a, b) for a in range(10) for b in range(10) if a != b]
    xa = x64.repeat(len(pairs), 1, 1, 1)
    a = np.repeat([p[0] for p in pairs], n)
    b = np.repeat([p[1] for p in pairs], n)
    x_b = boundary_projection(m, xa, a, b)[0]
    with torch.no_grad():
        lg = m(x_b).numpy()
    rows = np.arange(len(a))
    out["max_gap_at_x_b"] = float(np.abs(lg[rows, a] - lg[rows, b]).max())
    out["n_pairs"], out["n_images"] = len(pairs), n
    return out


def gap_profile(model, x, steps=None) -> dict:
    """``logit_a − logit_b`` along two paths from each image ``x`` towards its ``x_b`` (``a``
    predicted, ``b`` runner-up), at ``s`` in ``steps`` (default 0 … 1.5): in feature space,
    ``T(x) + s (p − T(x))``, a straight line, so the gap falls linearly to 0 at ``s = 1``; in
    input space, ``x + s (x_b − x)``, the straight line the validity check steps along, whose
    gap need not be linear or vanish at ``s = 1``. Returns ``{"s", "feature" [n, S], "input"
    [n, S]}``."""
    s = np.linspace(0.0, 1.5, 31) if steps is None else np.asarray(steps, dtype=np.float64)
    xf = to_float(x)
    a, b = top_two(model, xf)
    x_b, p, _ = boundary_projection(model, xf, a, b)
    f = features(model, xf)
    W = model.head.weight.detach().numpy()
    bias = model.head.bias.detach().numpy()
    u, du = W[a] - W[b], bias[a] - bias[b]
    pn, xn, xbn = p.numpy(), xf.numpy(), x_b.numpy()
    feat = np.stack([((f + t * (pn - f)) * u).sum(1) + du for t in s], axis=1)
    n = len(xn)
    path = np.concatenate([xn + t * (xbn - xn) for t in s]).astype(np.float32)
    lg = logits(model, path).reshape(len(s), n, -1)
    rows = np.arange(n)
    inp = (lg[:, rows, a] - lg[:, rows, b]).T
    return {"s": s, "feature": feat, "input": inp}


def gap_metrics(gp: dict) -> dict:
    """How far the input-space path is from the feature-space one: the largest ``|gap|`` at
    ``x_b`` (``s = 1``) on the input path, the largest ``|input − feature|`` gap over all ``s``,
    and the largest gap at ``s = 0`` (the scale)."""
    s = np.asarray(gp["s"])
    at_one = int(np.argmin(np.abs(s - 1.0)))
    inp, feat = np.asarray(gp["input"]), np.asarray(gp["feature"])
    return {
        "max_abs_gap_input_at_x_b": float(np.abs(inp[:, at_one]).max()),
        "max_abs_path_difference": float(np.abs(inp - feat).max()),
        "max_gap_at_x": float(np.abs(feat[:, 0]).max()),
        "n_images": int(len(inp)),
    }


def pick_images(sizes: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, disjoint test-image indices: the gallery's and the counterfactual comparison's."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(sizes["n_test"], sizes["n_gallery"] + sizes["n_counterfactual"], replace=False)
    return ids[: sizes["n_gallery"]], ids[sizes["n_gallery"] :]


# --------------------------------------------------------------------------- NNK in feature space


def fit_nnk(F_train, y_train, k: int = 50) -> NNKClassifier:
    """NNK over the training features ``T(x_train)`` (cosine kernel, the package default)."""
    return NNKClassifier(int(k), kernel="cosine").fit(F_train, y_train)


def top_two(model, x) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)``: the predicted class and the runner-up of each image (int ``[n]``)."""
    order = np.argsort(-logits(model, x), axis=1, kind="stable")
    return order[:, 0], order[:, 1]


def predict(model, x) -> np.ndarray:
    """The network's predicted class of float images ``x`` (int ``[n]``)."""
    return logits(model, x).argmax(1)


def _gap(model, x, a, b) -> np.ndarray:
    lg = logits(model, x)
    rows = np.arange(len(lg))
    return lg[rows, a] - lg[rows, b]


def gallery(model, clf: NNKClassifier, x, n_show: int = 5, x_train=None) -> dict:
    """What the gallery shows for float images ``x [n, 3, 32, 32]``, as numpy:

    ``a``, ``b`` (predicted, runner-up); ``x``, ``x_b`` (the projection onto the ``a``/``b``
    boundary pulled back), ``delta`` (x − x_b); ``gap`` and ``gap_at_x_b`` (logit_a − logit_b at
    x and at x_b, the latter ≈ 0 up to float32 rounding); NNK of ``T(x)`` over the training
    features: ``neighbours [n, n_show]`` (training rows by decreasing weight, −1 past the
    support), ``neighbour_weights``, ``neighbour_labels`` (−1 past the support), ``n_neighbours``,
    ``nnk_pred``, ``residual``; ``x_interp`` = ``T⁻¹(Σθ_j T(x_j)/Σθ_j)`` and its prediction
    ``interp_pred``, and ``interp_distance`` (‖x_interp − x‖, pixels/255); with ``x_train``
    (the database's images) also ``neighbour_distance``, ‖x − its top-weight neighbour‖.
    """
    xf = to_float(x)
    a, b = top_two(model, xf)
    x_b = boundary_projection(model, xf, a, b)[0].numpy()
    fq = features(model, xf)
    table = neighbourhood_table(clf, fq)
    z = np.einsum("nk,nkd->nd", table.weights, clf.X_fit_[table.index])
    x_interp = inverse(model, z)
    order = np.argsort(-table.weights, axis=1, kind="stable")[:, :n_show]
    rows = np.arange(len(xf))[:, None]
    w = table.weights[rows, order]
    nb = np.where(w > 0, table.index[rows, order], -1)
    lab = np.where(w > 0, table.classes[table.labels[rows, order]], -1)
    xn = xf.numpy()
    extra = {}
    if x_train is not None:
        top = to_float(np.asarray(x_train)[nb[:, 0]]).numpy()
        extra["neighbour_distance"] = proximity(xn, top)
    return {
        **extra,
        "a": a, "b": b, "x": xn, "x_b": x_b, "delta": xn - x_b,
        "gap": _gap(model, xf, a, b), "gap_at_x_b": _gap(model, x_b, a, b),
        "neighbours": nb, "neighbour_weights": w, "neighbour_labels": lab,
        "n_neighbours": table.n_neighbours, "nnk_pred": table.pred, "residual": table.residual,
        "x_interp": x_interp, "interp_pred": predict(model, x_interp),
        "interp_distance": np.linalg.norm((x_interp - xn).reshape(len(xn), -1), axis=1),
    }  # fmt: skip


def gallery_metrics(g: dict) -> dict:
    """The gallery's numbers: the largest |logit gap| at ``x_b``, the mean ‖x − x_b‖, the NNK
    support size, how often ``T⁻¹`` of the interpolation keeps the network's class."""
    n = len(g["a"])
    return {
        "n_images": int(n),
        "max_abs_gap_at_x_b": float(np.abs(g["gap_at_x_b"]).max()),
        "mean_gap": float(np.mean(g["gap"])),
        "mean_dist_b": float(np.linalg.norm(g["delta"].reshape(n, -1), axis=1).mean()),
        "mean_n_neighbours": float(np.mean(g["n_neighbours"])),
        "nnk_agrees": float(np.mean(g["nnk_pred"] == g["a"])),
        "interp_keeps_class": float(np.mean(g["interp_pred"] == g["a"])),
        "mean_interp_distance": float(np.mean(g["interp_distance"])),
        "mean_neighbour_distance": float(np.mean(g["neighbour_distance"]))
        if "neighbour_distance" in g
        else None,
    }


# --------------------------------------------------------------------------- counterfactuals


def flip_bisection(predict_fn, x, target, a, steps: int = 30) -> dict:
    """For each row, a point where the prediction leaves class ``a`` on the segment
    ``x + t (target − x)``, ``t ∈ [0, 1]``, by bisection on ``t`` (all rows at once: one call of
    ``predict_fn`` per halving on the whole batch).

    ``predict_fn(images) → classes [n]``; ``x``, ``target`` numpy ``[n, ...]``; ``a [n]``. A row
    is ``found`` when the prediction at ``t = 1`` is not ``a`` (and at ``t = 0`` it is); the
    bisection keeps ``pred(lo) = a`` and ``pred(hi) ≠ a`` and halves ``steps`` times, so
    ``hi − lo = 2^-steps``: a flip of the prediction lies in ``[lo, hi]``. Returns ``{"t"`` (hi;
    1 where not found), ``"t_lo"``, ``"found"`` [n] bool, ``"point"`` (x + t(target − x), on the
    flipped side), ``"pred"`` (the class there)``}``.
    """
    x, target = np.asarray(x), np.asarray(target)
    a = np.asarray(a)
    n = len(x)
    shape = (n,) + (1,) * (x.ndim - 1)
    d = target - x
    found = (np.asarray(predict_fn(target)) != a) & (np.asarray(predict_fn(x)) == a)
    lo, hi = np.zeros(n), np.ones(n)
    for _ in range(int(steps)):
        mid = (lo + hi) / 2
        flipped = np.asarray(predict_fn((x + mid.reshape(shape) * d).astype(x.dtype))) != a
        hi = np.where(found & flipped, mid, hi)
        lo = np.where(found & ~flipped, mid, lo)
    point = (x + hi.reshape(shape) * d).astype(x.dtype)
    return {"t": hi, "t_lo": np.where(found, lo, 0.0), "found": found, "point": point,
            "pred": np.asarray(predict_fn(point))}  # fmt: skip


def just_past(x, c, past: float = PAST) -> np.ndarray:
    """``x + (1 + past)(c − x)``: a step of ``past`` × ‖c − x‖ beyond ``c`` on the line from x."""
    x, c = np.asarray(x), np.asarray(c)
    return (x + (1 + past) * (c - x)).astype(c.dtype)


def validity(predict_fn, x, c, a, past: float = PAST) -> tuple[np.ndarray, np.ndarray]:
    """``(valid [n] bool, pred [n])``: the prediction at :func:`just_past` ``c`` and whether it
    is not ``a``. A counterfactual equal to ``x`` is never valid (the step is zero)."""
    pred = np.asarray(predict_fn(just_past(x, c, past)))
    return pred != np.asarray(a), pred


def proximity(x, c) -> np.ndarray:
    """``‖c − x‖`` per row, Euclidean over all pixels (pixels/255), float64 ``[n]``."""
    d = np.asarray(c, dtype=np.float64) - np.asarray(x, dtype=np.float64)
    return np.linalg.norm(d.reshape(len(d), -1), axis=1)


def plausibility(clf: NNKClassifier, F, exclude=None) -> dict:
    """How much a feature ``T(c)`` looks like the training features: ``residual`` (NNK's
    squared kernel-space distance from ``T(c)`` to its interpolation over its ``k`` nearest
    training features, cosine kernel) and ``nn_distance`` (Euclidean distance to the nearest
    training feature). ``exclude [n]`` (training rows, −1 for none) leaves one row out of each
    query's database, for a counterfactual that *is* a training image (else both scores are 0
    by construction)."""
    F = np.asarray(F, dtype=clf.X_fit_.dtype)
    k = clf.n_neighbors
    sq, idx = knn(F, clf.X_fit_, k + 1)
    ex = np.full(len(F), -1) if exclude is None else np.asarray(exclude)
    keep = idx != ex[:, None]
    keep[keep.all(1), -1] = False  # nothing excluded: drop the (k+1)-th candidate
    idx = idx[keep].reshape(len(F), k)
    sq = sq[keep].reshape(len(F), k)
    _, residual = nnk_on_candidates(clf, F, idx)
    return {"residual": residual, "nn_distance": np.sqrt(np.maximum(sq[:, 0], 0.0))}


def class_nnk(clf: NNKClassifier, F, b) -> tuple[np.ndarray, np.ndarray]:
    """NNK of each feature ``F[i]`` over the training features of class ``b[i]`` only (its k
    nearest there): ``(index [n, k]`` training rows by distance, ``weights [n, k])``. One kNN
    search per class, one NNK solve for all rows."""
    F = np.asarray(F, dtype=clf.X_fit_.dtype)
    b = np.asarray(b)
    labels = clf.classes_[clf.y_fit_]
    index = np.empty((len(F), clf.n_neighbors), dtype=np.int64)
    for c in np.unique(b):
        rows, members = np.flatnonzero(b == c), np.flatnonzero(labels == c)
        index[rows] = members[knn(F[rows], clf.X_fit_[members], clf.n_neighbors)[1]]
    weights, _ = nnk_on_candidates(clf, F, index)
    return index, weights


def counterfactuals(model, clf: NNKClassifier, x_train, x, steps: int = 30) -> dict:
    """The three counterfactuals of each float image ``x [n, 3, 32, 32]``, towards its runner-up
    class ``b``, scored.

    - ``projection``: ``x_b``, ``T(x)`` projected onto the ``a``/``b`` boundary, pulled back;
    - ``nnk_neighbour``: among the NNK neighbours of ``T(x)`` over class ``b``'s training
      features (:func:`class_nnk`), the nearest in feature space: a real training image;
    - ``nnk_guided``: :func:`flip_bisection` from ``x`` towards ``T⁻¹(Σθ_j T(x_j)/Σθ_j)`` over
      those class-``b`` neighbours.

    ``x_train``: the training images of ``clf``'s database (uint8 or float). Returns ``{"a",
    "b", "bisection_found", "bisection_t", "methods": {name: {"images", "valid", "pred",
    "to_b", "proximity", "residual", "nn_distance", "out_of_range"}}, "seconds"}``; ``to_b``:
    the prediction just past is ``b``; ``out_of_range``: the share of pixels outside [0, 1].
    """
    t0 = time.perf_counter()
    xf = to_float(x)
    xn = xf.numpy()
    a, b = top_two(model, xf)
    x_b = boundary_projection(model, xf, a, b)[0].numpy()
    index, weights = class_nnk(clf, features(model, xf), b)
    first = np.argmax(weights > 0, axis=1)
    nearest = index[np.arange(len(xn)), first]
    real = to_float(np.asarray(x_train)[nearest]).numpy()
    z = np.einsum("nk,nkd->nd", weights, clf.X_fit_[index])
    bis = flip_bisection(lambda im: predict(model, im), xn, inverse(model, z), a, steps)
    images = {"projection": x_b, "nnk_neighbour": real, "nnk_guided": bis["point"]}
    methods = {}
    for name, c in images.items():
        valid, pred = validity(lambda im: predict(model, im), xn, c, a)
        Fc = clf.X_fit_[nearest] if name == "nnk_neighbour" else features(model, c)
        plaus = plausibility(clf, Fc, nearest if name == "nnk_neighbour" else None)
        methods[name] = {
            "images": c, "valid": valid, "pred": pred, "to_b": pred == b,
            "proximity": proximity(xn, c), **plaus,
            "out_of_range": ((c < 0) | (c > 1)).reshape(len(c), -1).mean(1),
        }  # fmt: skip
    return {"a": a, "b": b, "bisection_found": bis["found"], "bisection_t": bis["t"],
            "methods": methods, "seconds": time.perf_counter() - t0}  # fmt: skip


def counterfactual_table(cf: dict) -> dict:
    """Per method: ``validity`` (share valid), ``to_b`` (share flipped to b), medians of
    ``proximity``, ``residual``, ``nn_distance``, and the mean ``out_of_range`` share."""
    out = {}
    for name, m in cf["methods"].items():
        out[name] = {
            "validity": float(np.mean(m["valid"])),
            "to_b": float(np.mean(m["to_b"])),
            "proximity": float(np.median(m["proximity"])),
            "residual": float(np.median(m["residual"])),
            "nn_distance": float(np.median(m["nn_distance"])),
            "out_of_range": float(np.mean(m["out_of_range"])),
        }
    return out


def format_table(table: dict) -> str:
    """The counterfactual table as text, one row per method (medians over the images)."""
    head = f"{'method':<36}{'valid':>7}{'to b':>7}{'L2':>8}{'NNK res.':>10}{'nn dist':>9}"
    rows = [
        f"{METHOD_LABELS[n]:<36}{r['validity']:>7.0%}{r['to_b']:>7.0%}{r['proximity']:>8.2f}"
        f"{r['residual']:>10.3f}{r['nn_distance']:>9.2f}"
        for n, r in table.items()
    ]
    return "\n".join([head, *rows])


def _best(table: dict, key: str, low: bool = True) -> str:
    vals = {n: r[key] for n, r in table.items()}
    return (min if low else max)(vals, key=vals.get)


def verdict(table: dict) -> dict:
    """Which method wins each criterion, and where the NNK-guided counterfactual beats, ties
    with or loses to the projection, in words (``nnk_wins``, ``nnk_ties``, ``nnk_loses``), so
    the notebook's claim follows the run."""
    g, p = table["nnk_guided"], table["projection"]
    criteria = (  # name, NNK-guided's value, the projection's, higher is better
        ("validity", g["validity"], p["validity"], True),
        ("proximity", g["proximity"], p["proximity"], False),
        ("NNK residual", g["residual"], p["residual"], False),
        ("nearest-training distance", g["nn_distance"], p["nn_distance"], False),
    )
    wins, ties, losses = [], [], []
    for name, gv, pv, higher in criteria:
        (ties if gv == pv else wins if (gv > pv) == higher else losses).append(name)
    words = lambda items: ", ".join(items) if items else "none"  # noqa: E731
    return {
        "best_validity": METHOD_LABELS[_best(table, "validity", low=False)],
        "best_proximity": METHOD_LABELS[_best(table, "proximity")],
        "best_residual": METHOD_LABELS[_best(table, "residual")],
        "best_nn_distance": METHOD_LABELS[_best(table, "nn_distance")],
        "nnk_wins": words(wins),
        "nnk_ties": words(ties),
        "nnk_loses": words(losses),
    }


def counterfactual_metrics(cf: dict) -> dict:
    """The comparison for ``metrics.json``: ``n``, the bisection's success rate and median
    ``t``, the table (:func:`counterfactual_table`), the verdict (:func:`verdict`), seconds."""
    table = counterfactual_table(cf)
    return {
        "n": int(len(cf["a"])),
        "past": PAST,
        "bisection_found": float(np.mean(cf["bisection_found"])),
        "bisection_t_median": float(np.median(cf["bisection_t"][cf["bisection_found"]]))
        if cf["bisection_found"].any()
        else None,
        "table": table,
        "verdict": verdict(table),
        "seconds": float(cf["seconds"]),
    }


def network_metrics(info: dict, acc: float, recon: dict, sizes: dict) -> dict:
    """The network's numbers: test accuracy, reconstruction error, parameters, training time."""
    return {
        "test_accuracy": acc,
        "n_test": sizes["n_test"],
        "recon_max": recon["max"],
        "recon_mean": recon["mean"],
        "recon_max_float64": recon["max_float64"],
        "recon_n_images": recon["n_images"],
        "parameters": info["parameters"],
        "epochs": info["epochs"],
        "n_train": sizes["n_train"],
        "training_seconds": info["training_seconds"],
        "load_or_train_seconds": info["seconds_this_run"],
        "final_train_loss": info["history"][-1]["train_loss"] if info["history"] else None,
    }


def config(sizes: dict, **params) -> dict:
    """The metrics' ``config``: the notebook's parameters and the profile's sizes."""
    return {**params, **sizes, "past": PAST}
