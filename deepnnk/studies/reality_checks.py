"""Reality checks for explanations: cascading randomisation and the identical-class test.

Two tests that an explanation must pass before its pictures mean anything (issue 15, item 6):

* **Sanity checks** (Adebayo et al., NeurIPS 2018). :func:`cascade_randomise` re-initialises the
  network's parametrised layers in cascade from the top (``fc``, then ``fc`` + ``convs.5``, ...).
  An explanation that stays the same as the model is destroyed is not explaining the model.
  :func:`sanity_curves` measures, at each step, how similar each explanation of the randomised
  model is to the original's: Spearman rank correlation (:func:`spearman_maps`) for the
  gradient, gradient × input and CD maps (:func:`gradient_map`, :func:`gradient_input_map`,
  :func:`cd_map`), weighted Jaccard (:func:`weighted_jaccard`) for the NNK and kernel-kNN
  supports (:func:`nnk_support`, :func:`knn_support`).
* **Identical-class test** (Hanawa et al., ICLR 2021). For an example-based explanation, the
  top-weighted training example should have the class the model predicts.
  :func:`identical_class_test` compares NNK, kernel kNN, last-layer cosine and gradient-cosine
  similarity (:func:`gradient_cosine`, factorised for the linear last layer).

Everything returns plain data (numpy arrays, dicts, :class:`~deepnnk.NeighbourTable`). Images
are float ``[N, 3, 32, 32]`` pixels/255 or uint8 ``[N, 32, 32, 3]``; the models are
:class:`~deepnnk.nets.models.PaperCNN` or, except for CD, any CIFAR classifier whose last layer
is a linear ``fc`` fed by the features.
"""

from __future__ import annotations

import contextlib
import copy
import time
import warnings

import numpy as np
import torch
from scipy import sparse, stats
from torch import nn

from deepnnk import NeighbourTable, NNKClassifier, neighbourhood_table
from deepnnk.kernels import ZERO_NORM
from deepnnk.nets.cd import cd_importance
from deepnnk.nets.features import check_images, extract, images_to_float
from deepnnk.nets.models import PaperCNN

SIDE = 32  # CIFAR-10 image side, pixels
DEFAULT_BATCH_SIZE = 64
DEFAULT_TILE = 4
#: The example-based methods of :func:`identical_class_test`, in table order.
SIMILARITIES = ("nnk", "knn", "last_layer_cosine", "gradient_cosine")
#: The explanations of :func:`sanity_curves` and the similarity each is compared with.
EXPLANATIONS = {
    "gradient": "spearman",
    "gradient_input": "spearman",
    "cd": "spearman",
    "nnk": "weighted_jaccard",
    "knn": "weighted_jaccard",
}


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _eval_mode(model: nn.Module):
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


def _device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(model.parameters())
    return p.device, p.dtype


def _images(images, model: nn.Module) -> torch.Tensor:
    """Checked images → the model's device and dtype, NCHW pixels/255, contiguous."""
    x = images_to_float(check_images(images))
    device, dtype = _device_dtype(model)
    return x.to(device=device, dtype=dtype).contiguous()


def _targets(target, n: int) -> torch.Tensor | None:
    if target is None:
        return None
    t = torch.as_tensor(np.asarray(target.cpu() if isinstance(target, torch.Tensor) else target))
    if t.is_floating_point() or t.dtype == torch.bool:
        raise ValueError(f"target must be an int class or ints [N], got dtype {t.dtype}")
    t = t.to(torch.int64)
    if t.ndim == 0:
        t = t.expand(n)
    if t.shape != (n,):
        raise ValueError(
            f"target must be one int or {n} ints (one per image), got {tuple(t.shape)}"
        )
    return t


def predict(model: nn.Module, images, *, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """The model's predicted classes (argmax of the logits) in eval mode, int64 ``[N]``."""
    x = _images(images, model)
    with _eval_mode(model), torch.no_grad():
        out = [model(x[s : s + batch_size]).argmax(1) for s in range(0, len(x), batch_size)]
    return torch.cat(out).cpu().numpy()


# --------------------------------------------------------------------------- randomisation


def parametrised_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers a cascade re-initialises, bottom to top: ``(name, module)`` for every module
    with parameters of its own and a ``reset_parameters`` method, in registration order
    (the forward order for :class:`PaperCNN`: ``convs.0`` … ``convs.5``, ``fc``)."""
    return [
        (name, m)
        for name, m in model.named_modules()
        if name
        and callable(getattr(m, "reset_parameters", None))
        and any(True for _ in m.parameters(recurse=False))
    ]


def cascade_randomise(model: nn.Module, seed: int = 0) -> list[tuple[str, nn.Module]]:
    """Copies of ``model`` with its layers re-initialised in cascade from the top (Adebayo et
    al. 2018): ``[("fc", m1), ("convs.5", m2), ...]`` where ``m_i`` has the top ``i``
    parametrised layers (:func:`parametrised_layers`) re-initialised and the rest as trained;
    each step's name is the layer it adds. Each copy starts from the one before, so a layer
    keeps the random weights it got when it was first re-initialised.

    Layers are re-initialised with their own ``reset_parameters()`` (for ``nn.Conv2d`` and
    ``nn.Linear`` PyTorch's Kaiming-uniform weights and U(±1/√fan_in) biases, not PaperCNN's
    Glorot weights) under a forked RNG seeded with ``seed``: the same seed gives the same copies,
    and the global RNG and ``model`` are untouched. The copies keep ``model``'s train/eval mode.
    """
    layers = parametrised_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no layer with reset_parameters to randomise.")
    cuda = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    out = []
    current = model
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        for name, _ in reversed(layers):
            current = copy.deepcopy(current)
            with torch.no_grad():
                current.get_submodule(name).reset_parameters()
            out.append((name, current))
    return out


# --------------------------------------------------------------------------- saliency maps


def _input_gradients(model, images, target, batch_size) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, ∂logit_target/∂x), both ``[N, 3, 32, 32]``; target ``None`` = the prediction."""
    x = _images(images, model)
    t = _targets(target, len(x))
    grads = []
    with _eval_mode(model):
        for s in range(0, len(x), batch_size):
            xb = x[s : s + batch_size].clone().requires_grad_(True)
            logits = model(xb)
            tb = logits.argmax(1) if t is None else t[s : s + batch_size].to(logits.device)
            (g,) = torch.autograd.grad(logits.gather(1, tb[:, None]).sum(), xb)
            grads.append(g.detach())
    return x, torch.cat(grads)


def gradient_map(
    model: nn.Module, images, target=None, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> np.ndarray:
    """The gradient saliency map: |∂logit_target/∂x| summed over the colour channels,
    ``[N, 32, 32]`` (the model's dtype). ``target``: one class or ``[N]`` classes, by default
    the model's prediction on each image. Eval mode; the model's mode is restored."""
    _, g = _input_gradients(model, images, target, batch_size)
    return g.abs().sum(1).cpu().numpy()


def gradient_input_map(
    model: nn.Module, images, target=None, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> np.ndarray:
    """Gradient × input: |Σ_c x_c · ∂logit_target/∂x_c| per pixel, ``[N, 32, 32]``; arguments
    as :func:`gradient_map`."""
    x, g = _input_gradients(model, images, target, batch_size)
    return (x * g).sum(1).abs().cpu().numpy()


def cd_map(
    model: PaperCNN,
    images,
    target=None,
    tile: int = DEFAULT_TILE,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> np.ndarray:
    """CD importance of each ``tile``×``tile`` tile (:func:`deepnnk.nets.cd.cd_importance`, the
    relevant logit of ``target``), ``[N, 32/tile, 32/tile]`` in logits; one batched CD call per
    tile. ``target``: one class or ``[N]`` classes, default the prediction. ``model``: a
    :class:`PaperCNN` (put in eval mode for the call, its mode restored)."""
    if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < 1 or SIDE % tile:
        raise ValueError(f"tile must divide 32 (1, 2, 4, 8, 16 or 32), got {tile!r}")
    grid = SIDE // int(tile)
    x = _images(images, model)
    with _eval_mode(model):
        t = predict(model, x, batch_size=batch_size) if target is None else _targets(target, len(x))
        out = np.empty((len(x), grid, grid), dtype=np.float64)
        for r in range(grid):
            for c in range(grid):
                mask = np.zeros((SIDE, SIDE), dtype=bool)
                mask[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = True
                out[:, r, c] = cd_importance(model, x, mask, t, batch_size=batch_size)
    return out


# --------------------------------------------------------------------------- example supports


def last_layer_features(model: nn.Module, images) -> np.ndarray:
    """The input of the model's final linear layer ``fc`` for each image, float32 ``[N, d]``
    (:func:`deepnnk.nets.features.extract`, uncached, no progress bar)."""
    return extract(model, images, layer="features", cache_dir=False, progress_bar=False)


def feature_table(features_train, y_train, features_query, k: int, weighting: str = "nnk"):
    """NNK (``weighting="nnk"``) or kernel-kNN (``"knn"``) explanations of ``features_query``
    over ``features_train`` (cosine kernel, ``k`` candidates, the exact solver), a
    :class:`~deepnnk.NeighbourTable` whose index is into the full training set.

    A randomised network can kill every unit of a layer for some images, and the cosine kernel
    has no value at a zero feature vector: zero training rows are left out of the candidates,
    and a zero query gets an empty explanation (all weights 0, residual NaN; its index row is
    filler). ``k`` shrinks to the number of usable training rows minus 1 where it must.
    """
    f_train = np.asarray(features_train)
    f_query = np.asarray(features_query)
    y = np.zeros(len(f_train), dtype=np.int64) if y_train is None else np.asarray(y_train)
    classes = np.unique(y)
    alive_t = np.linalg.norm(f_train.astype(np.float64), axis=1) > ZERO_NORM
    alive_q = np.linalg.norm(f_query.astype(np.float64), axis=1) > ZERO_NORM
    rows = np.nonzero(alive_t)[0]
    k_used = min(int(k), len(rows) - 1)
    index = np.tile(np.arange(min(int(k), len(f_train))), (len(f_query), 1))
    weights = np.zeros(index.shape)
    residual = np.full(len(f_query), np.nan)
    if k_used >= 1 and alive_q.any():
        clf = NNKClassifier(n_neighbors=k_used, weighting=weighting).fit(f_train[rows], y[rows])
        table = neighbourhood_table(clf, f_query[alive_q])
        if k_used < index.shape[1]:
            index, weights = index[:, :k_used], weights[:, :k_used]
        index[alive_q] = rows[table.index]
        weights[alive_q] = table.weights
        residual[alive_q] = table.residual
    labels = np.searchsorted(classes, y[index])
    return NeighbourTable(index, weights, labels, residual, classes)


def _support(model, train_images, queries, k, y_train, weighting, train_features):
    f_train = last_layer_features(model, train_images) if train_features is None else train_features
    return feature_table(f_train, y_train, last_layer_features(model, queries), k, weighting)


def nnk_support(
    model: nn.Module, train_images, queries, k: int, *, y_train=None, train_features=None
) -> NeighbourTable:
    """The NNK explanation of ``queries`` over ``train_images`` in the model's last-layer
    features (cosine kernel, ``k`` candidates, the exact solver): a
    :class:`~deepnnk.NeighbourTable` (index/weights ``[n, k]``, weights summing to 1 per row).
    ``y_train`` fills the table's labels (default all 0: the weights do not depend on them);
    ``train_features`` ``[N, d]`` skips re-extracting the training features."""
    return _support(model, train_images, queries, k, y_train, "nnk", train_features)


def knn_support(
    model: nn.Module, train_images, queries, k: int, *, y_train=None, train_features=None
) -> NeighbourTable:
    """The kernel-kNN analogue of :func:`nnk_support`: weights proportional to the cosine
    kernel on all ``k`` nearest training features."""
    return _support(model, train_images, queries, k, y_train, "knn", train_features)


# --------------------------------------------------------------------------- similarities


def spearman_maps(a, b) -> np.ndarray:
    """Per-image Spearman rank correlation of two stacks of maps ``[N, ...]`` (flattened per
    image; ties get average ranks, as ``scipy.stats.spearmanr``), float64 ``[N]``. NaN where a
    map is constant."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(f"a and b must be maps [N, ...] of one shape, got {a.shape} and {b.shape}")
    ra = stats.rankdata(a.reshape(len(a), -1), axis=1)
    rb = stats.rankdata(b.reshape(len(b), -1), axis=1)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    num = (ra * rb).sum(1)
    den = np.sqrt((ra * ra).sum(1) * (rb * rb).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _scatter(table: NeighbourTable, n_train: int) -> sparse.csr_matrix:
    n, m = table.index.shape
    rows = np.repeat(np.arange(n), m)
    return sparse.csr_matrix(
        (np.asarray(table.weights, dtype=np.float64).ravel(), (rows, table.index.ravel())),
        shape=(n, n_train),
    )


def weighted_jaccard(table_a: NeighbourTable, table_b: NeighbourTable) -> np.ndarray:
    """Per query, Σ_j min(θa_j, θb_j) / Σ_j max(θa_j, θb_j) over training rows j, float64
    ``[n]``: 1 for identical weights, 0 for disjoint supports. Both tables explain the same
    ``n`` queries (any candidate counts); weights are taken as stored (normalised). A query
    with no weight in either table scores 1. Vectorised through sparse ``[n, N]`` matrices."""
    if len(table_a) != len(table_b):
        raise ValueError(f"the tables explain {len(table_a)} and {len(table_b)} queries")
    n_train = int(max(table_a.index.max(initial=-1), table_b.index.max(initial=-1))) + 1
    A, B = _scatter(table_a, n_train), _scatter(table_b, n_train)
    lo = np.asarray(A.minimum(B).sum(1)).ravel()
    hi = np.asarray(A.maximum(B).sum(1)).ravel()
    return np.where(hi > 0, lo / np.where(hi > 0, hi, 1.0), 1.0)


# --------------------------------------------------------------------------- sanity checks


def explanations(
    model: nn.Module,
    train_images,
    y_train,
    queries,
    target,
    *,
    k: int,
    tile: int = DEFAULT_TILE,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict:
    """Every explanation of :data:`EXPLANATIONS` of ``queries`` for ``target``: maps
    ``gradient``/``gradient_input`` ``[n, 32, 32]``, ``cd`` ``[n, 32/tile, 32/tile]`` (only for
    a :class:`PaperCNN`), tables ``nnk``/``knn``."""
    out = {
        "gradient": gradient_map(model, queries, target, batch_size=batch_size),
        "gradient_input": gradient_input_map(model, queries, target, batch_size=batch_size),
    }
    if isinstance(model, PaperCNN):
        out["cd"] = cd_map(model, queries, target, tile, batch_size=batch_size)
    f_train = last_layer_features(model, train_images)
    kw = {"y_train": y_train, "train_features": f_train}
    out["nnk"] = nnk_support(model, train_images, queries, k, **kw)
    out["knn"] = knn_support(model, train_images, queries, k, **kw)
    return out


def compare(reference: dict, other: dict) -> dict[str, np.ndarray]:
    """Per-query similarity ``[n]`` of each explanation in both dicts (of :func:`explanations`):
    Spearman for maps, weighted Jaccard for tables."""
    sim = {"spearman": spearman_maps, "weighted_jaccard": weighted_jaccard}
    return {
        name: sim[how](reference[name], other[name])
        for name, how in EXPLANATIONS.items()
        if name in reference and name in other
    }


def sanity_curves(
    model: nn.Module,
    train_images,
    y_train,
    queries,
    *,
    k: int,
    seed: int = 0,
    tile: int = DEFAULT_TILE,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict:
    """The cascading-randomisation sanity check of every explanation.

    Explains ``queries`` with ``model`` and with each copy of :func:`cascade_randomise`
    (``seed``), always for the original model's predicted class, and compares each explanation
    with the original's (:func:`compare`). NNK and kNN use ``k`` candidates among
    ``train_images`` (labels ``y_train``) in each model's own last-layer features.

    Returns a dict of plain data: ``"layers"`` the cascade's steps (the layer each adds, top
    first), ``"mean"`` {explanation: float64 ``[steps]``, the mean similarity over queries
    (NaN-aware)}, ``"per_query"`` {explanation: ``[steps, n]``}, ``"target"`` the classes
    explained ``[n]``, ``"similarity"`` the measure per explanation, ``"seconds"``.

    Cost: 8 models × (CD of every tile, features of the training set, NNK). Measured once on
    the 2-core CPU with a random C = 32 PaperCNN, 2,000 training and 50 query CIFAR images,
    k = 50, tile = 4: 246 s, of which CD is ~19 s a model (3,200 CD passes); ``tile=8``
    quarters that part.
    """
    t0 = time.perf_counter()
    target = predict(model, queries, batch_size=batch_size)
    kw = {"k": k, "tile": tile, "batch_size": batch_size}
    reference = explanations(model, train_images, y_train, queries, target, **kw)
    layers, per_step = [], []
    for name, copy_ in cascade_randomise(model, seed):
        layers.append(name)
        other = explanations(copy_, train_images, y_train, queries, target, **kw)
        per_step.append(compare(reference, other))
    per_query = {name: np.stack([s[name] for s in per_step]) for name in per_step[0]}
    with np.errstate(all="ignore"), _quiet_nanmean():
        mean = {name: np.nanmean(v, axis=1) for name, v in per_query.items()}
    return {
        "layers": layers,
        "mean": mean,
        "per_query": per_query,
        "target": target,
        "similarity": {name: EXPLANATIONS[name] for name in per_query},
        "seconds": time.perf_counter() - t0,
    }


@contextlib.contextmanager
def _quiet_nanmean():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN step (constant maps) → NaN
        yield


# --------------------------------------------------------------------------- identical class


def identical_class_rate(predicted, top_labels) -> float:
    """The identical-class test (Hanawa et al., ICLR 2021): the fraction of queries whose top
    training example's label equals the model's prediction, in [0, 1]."""
    predicted, top_labels = np.asarray(predicted), np.asarray(top_labels)
    if predicted.shape != top_labels.shape or predicted.ndim != 1 or not len(predicted):
        raise ValueError(
            f"predicted and top_labels must be non-empty [n] arrays of one shape, got "
            f"{predicted.shape} and {top_labels.shape}"
        )
    return float(np.mean(predicted == top_labels))


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def last_layer_gradient_factors(features, logits, labels) -> tuple[np.ndarray, np.ndarray]:
    """The factors of the cross-entropy gradient of a linear last layer, float64.

    For logits ``z = W h + b`` and label ``y``, ∂loss/∂[W, b] = (p − e_y) [h; 1]ᵀ with
    ``p = softmax(z)``. Returns ``u = p − e_y`` ``[n, C]`` and ``v = [h; 1]`` ``[n, d + 1]``.
    """
    h = np.asarray(features, dtype=np.float64)
    u = _softmax(np.asarray(logits, dtype=np.float64))
    u[np.arange(len(u)), np.asarray(labels, dtype=np.int64)] -= 1.0
    v = np.concatenate([h, np.ones((len(h), 1))], axis=1)
    return u, v


def _unit(a: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(a, axis=1, keepdims=True)
    return a / np.where(norm > 0, norm, 1.0)  # a zero gradient has cosine 0 with everything


def gradient_cosine(query_factors, train_factors) -> np.ndarray:
    """Cosine between the last-layer gradients of queries and training points, ``[n, N]``.

    The gradients are outer products u vᵀ (:func:`last_layer_gradient_factors`), and
    ⟨u₁v₁ᵀ, u₂v₂ᵀ⟩_F = (u₁·u₂)(v₁·v₂), ‖uvᵀ‖_F = ‖u‖‖v‖, so the cosine factorises:
    cos(u₁, u₂) · cos(v₁, v₂), two matrix products. A zero gradient gets cosine 0."""
    (uq, vq), (ut, vt) = query_factors, train_factors
    return (_unit(uq) @ _unit(ut).T) * (_unit(vq) @ _unit(vt).T)


def _blocked_argmax(query_factors, train_factors, block: int) -> np.ndarray:
    uq, vq = query_factors
    ut, vt = (_unit(a) for a in train_factors)
    out = np.empty(len(uq), dtype=np.int64)
    for s in range(0, len(uq), block):
        sl = slice(s, s + block)
        out[sl] = np.argmax((_unit(uq[sl]) @ ut.T) * (_unit(vq[sl]) @ vt.T), axis=1)
    return out


def _logits_of(model: nn.Module, features: np.ndarray) -> np.ndarray:
    fc = model.fc
    W = fc.weight.detach().cpu().double().numpy()
    b = fc.bias.detach().cpu().double().numpy() if fc.bias is not None else 0.0
    return np.asarray(features, dtype=np.float64) @ W.T + b


def top_examples(
    features_train,
    y_train,
    logits_train,
    features_query,
    logits_query,
    *,
    k: int,
    block: int = 1024,
) -> dict:
    """Each method's top-weighted training example for each query, from last-layer features.

    ``features_*`` ``[·, d]`` the input of the final linear layer, ``logits_*`` ``[·, C]`` its
    output, ``y_train`` ``[N]`` class indices 0..C-1. The methods (:data:`SIMILARITIES`):
    ``nnk`` the largest NNK weight, ``knn`` the largest kernel-kNN weight (``k`` candidates,
    cosine kernel), ``last_layer_cosine`` the cosine-nearest training feature,
    ``gradient_cosine`` the largest :func:`gradient_cosine` between the query's gradient at its
    predicted label and each training point's at its own label (blocks of ``block`` queries).

    Returns ``{"predicted": [n], "top_index": {method: [n]}, "top_label": {method: [n]}}``;
    a query with no top example (zero features, see :func:`feature_table`) gets index and
    label −1, which counts as a failure of the test.
    """
    f_train = np.asarray(features_train)
    f_query = np.asarray(features_query)
    y_train = np.asarray(y_train, dtype=np.int64)
    predicted = np.argmax(logits_query, axis=1)
    top = {}
    for weighting in ("nnk", "knn"):
        table = feature_table(f_train, y_train, f_query, k, weighting)
        best = table.index[np.arange(len(table)), np.argmax(table.weights, axis=1)]
        top[weighting] = np.where(table.weights.max(1) > 0, best, -1)
    ht = _unit(f_train.astype(np.float64))
    hq = _unit(f_query.astype(np.float64))
    nearest = np.concatenate(
        [np.argmax(hq[s : s + block] @ ht.T, axis=1) for s in range(0, len(hq), block)]
    )
    top["last_layer_cosine"] = np.where(np.abs(hq).sum(1) > 0, nearest, -1)
    top["gradient_cosine"] = _blocked_argmax(
        last_layer_gradient_factors(f_query, logits_query, predicted),
        last_layer_gradient_factors(f_train, logits_train, y_train),
        block,
    )
    return {
        "predicted": predicted,
        "top_index": top,
        "top_label": {m: np.where(i >= 0, y_train[i], -1) for m, i in top.items()},
    }


def identical_class_test(model: nn.Module, train_images, y_train, queries, *, k: int) -> dict:
    """The identical-class test of NNK, kernel kNN, last-layer cosine and gradient-cosine
    similarity for ``model`` (its last layer a linear ``fc``): ``{"rate": {method: float},
    **top_examples(...)}``, rates in [0, 1] by :func:`identical_class_rate`."""
    f_train = last_layer_features(model, train_images)
    f_query = last_layer_features(model, queries)
    top = top_examples(
        f_train,
        y_train,
        _logits_of(model, f_train),
        f_query,
        _logits_of(model, f_query),
        k=k,
    )
    rate = {m: identical_class_rate(top["predicted"], top["top_label"][m]) for m in SIMILARITIES}
    return {"rate": rate, **top}
