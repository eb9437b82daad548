"""Invertible classifiers from additive coupling blocks (Zhuang et al., arXiv 1910.00406).

An invertible classifier is an invertible map ``T`` followed by a linear head on ``T(x)``.
Between classes ``a`` and ``b`` the decision boundary in feature space is the hyperplane
``{f : (w_a − w_b)·f + (b_a − b_b) = 0}``; :func:`boundary_projection` projects ``T(x)`` onto it
and pulls the projection back to the input, ``x_b = T⁻¹(p)``; :func:`taylor_importance` gives
the first-order Taylor feature importance of the logit difference at ``x``.

- :class:`AdditiveCoupling` — ``y1 = x1 + F(x2)``, ``y2 = x2 + G(y1)``, split on dim 1 (so the
  same block works on vectors ``[n, C]`` and on images ``[n, C, H, W]`` with conv sub-networks);
- :class:`InvertibleMLP` — the 2-D toy of the paper: coupling blocks whose F and G are each
  Linear–ReLU–Linear–ReLU;
- :class:`Squeeze` — space-to-depth, ``[n, C, H, W] → [n, 4C, H/2, W/2]``, a permutation
  (exactly invertible);
- :class:`InvertibleConvNet` — the CIFAR-10 map: squeeze, additive coupling blocks whose F and
  G are small Conv–ReLU–Conv nets, per stage; :func:`cifar_classifier` puts a linear head on it;
- :class:`InvertibleClassifier` — ``T`` then a linear head;
- :func:`coupling_regions` — the exact linear regions of an :class:`InvertibleMLP` classifier on
  the plane (float64), as :class:`deepnnk.nets.geometry.Region` objects, so that
  :func:`deepnnk.nets.geometry.decision_boundary` applies; each region's ``hidden_A``,
  ``hidden_c`` are ``T`` itself there (``T(x) = hidden_A x + hidden_c``).

The authors' ``generate_boundary`` uses ``bias[0]`` and ``bias[1]`` whatever the class pair;
here the biases of ``a`` and ``b`` are used, so the projection is on the right hyperplane for
any pair of any number of classes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from deepnnk.nets.geometry import (
    _SIDE_RTOL,
    _SLIVER_RTOL,
    Region,
    _centroids_areas,
    _mlp_ops,
    _ragged,
    _split_region,
    box_polygon,
    polygon_area,
)

__all__ = [
    "AdditiveCoupling",
    "InvertibleClassifier",
    "InvertibleConvNet",
    "InvertibleMLP",
    "Squeeze",
    "cifar_classifier",
    "conv_subnet",
    "boundary_projection",
    "coupling_regions",
    "subnet",
    "taylor_importance",
]


class AdditiveCoupling(nn.Module):
    """One additive coupling block: ``y1 = x1 + F(x2)``, ``y2 = x2 + G(y1)``.

    ``x`` is split on dim 1 into its first ``split`` channels ``x1`` and the rest ``x2``
    (default: ``C // 2`` channels for ``x1``, as the authors split). ``f`` maps ``x2``'s shape to
    ``x1``'s and ``g`` the reverse; any modules work (linear layers for ``[n, C]``, convolutions
    for ``[n, C, H, W]``). :meth:`inverse` undoes :meth:`forward` up to rounding:
    ``x2 = y2 − G(y1)``, ``x1 = y1 − F(x2)``.
    """

    def __init__(self, f: nn.Module, g: nn.Module, split: int | None = None):
        super().__init__()
        self.f, self.g, self.split = f, g, split

    def _halves(self, x: torch.Tensor, name: str):
        if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[1] < 2:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a tensor [n, C, ...] with C ≥ 2, got {shape}.")
        c1 = x.shape[1] // 2 if self.split is None else int(self.split)
        if not 0 < c1 < x.shape[1]:
            raise ValueError(f"split={c1} must lie strictly between 0 and C={x.shape[1]}.")
        return x[:, :c1], x[:, c1:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [n, C, ...]`` → ``y`` of the same shape."""
        x1, x2 = self._halves(x, "x")
        y1 = x1 + self.f(x2)
        return torch.cat([y1, x2 + self.g(y1)], dim=1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """``y [n, C, ...]`` → the ``x`` with ``forward(x) = y``."""
        y1, y2 = self._halves(y, "y")
        x2 = y2 - self.g(y1)
        return torch.cat([y1 - self.f(x2), x2], dim=1)


def subnet(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    """Linear–ReLU–Linear–ReLU, ``n_in → hidden → n_out`` (the paper's F and G)."""
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out), nn.ReLU())


class InvertibleMLP(nn.Module):
    """``blocks`` additive coupling blocks on vectors ``[n, dim]``.

    F maps the last ``dim − dim//2`` coordinates to the first ``dim//2``, G the reverse, each
    Linear–ReLU–Linear–ReLU with ``hidden`` units (default ``4 · (dim // 2)``: the authors'
    ``planes * 4``, 4 for the plane). The map is piecewise affine (ReLU) and a bijection of
    ``R^dim``; :meth:`inverse` runs the blocks backwards.
    """

    def __init__(self, dim: int = 2, blocks: int = 6, hidden: int | None = None):
        super().__init__()
        if dim < 2 or blocks < 1:
            raise ValueError(f"need dim ≥ 2 and blocks ≥ 1, got dim={dim}, blocks={blocks}.")
        c1 = dim // 2
        hidden = 4 * c1 if hidden is None else int(hidden)
        self.dim, self.feature_shape = dim, (dim,)
        self.blocks = nn.ModuleList(
            AdditiveCoupling(subnet(dim - c1, hidden, c1), subnet(c1, hidden, dim - c1), c1)
            for _ in range(blocks)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [n, dim]`` → ``T(x) [n, dim]``."""
        for block in self.blocks:
            x = block(x)
        return x

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """``z [n, dim]`` → ``T⁻¹(z) [n, dim]``."""
        for block in reversed(self.blocks):
            z = block.inverse(z)
        return z


class Squeeze(nn.Module):
    """Space-to-depth: ``[n, C, H, W] → [n, 4C, H/2, W/2]``, each 2×2 patch into channels.

    Output channel ``4c + 2i + j`` holds input channel ``c`` at offset ``(i, j)`` of each patch.
    A permutation of the entries, so :meth:`inverse` is exact in any dtype.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [n, C, H, W]`` (H, W even) → ``[n, 4C, H/2, W/2]``."""
        if x.dim() != 4 or x.shape[2] % 2 or x.shape[3] % 2:
            raise ValueError(f"Squeeze needs [n, C, H, W] with even H, W; got {tuple(x.shape)}.")
        n, c, h, w = x.shape
        x = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return x.reshape(n, 4 * c, h // 2, w // 2)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """``y [n, 4C, H, W]`` → ``[n, C, 2H, 2W]``."""
        if y.dim() != 4 or y.shape[1] % 4:
            raise ValueError(f"Squeeze.inverse needs [n, 4C, H, W]; got {tuple(y.shape)}.")
        n, c4, h, w = y.shape
        y = y.reshape(n, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
        return y.reshape(n, c4 // 4, 2 * h, 2 * w)


def conv_subnet(c_in: int, hidden: int, c_out: int) -> nn.Sequential:
    """Conv3×3–ReLU–Conv3×3, ``c_in → hidden → c_out`` channels, same spatial size; the last
    conv starts at zero, so a new coupling block is the identity (Glow's initialisation)."""
    net = nn.Sequential(
        nn.Conv2d(c_in, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, c_out, 3, padding=1)
    )
    nn.init.zeros_(net[2].weight)
    nn.init.zeros_(net[2].bias)
    return net


class InvertibleConvNet(nn.Module):
    """An invertible map of CIFAR-sized images ``[n, 3, 32, 32]`` (pixels/255).

    Each of ``len(blocks)`` stages squeezes (:class:`Squeeze`) and then applies ``blocks[s]``
    additive coupling blocks with conv F and G (:func:`conv_subnet`, ``hidden[s]`` channels).
    Default: two stages, ``[n, 12, 16, 16]`` then ``[n, 48, 8, 8]``, 3072 features (no
    dimension is dropped: the map is a bijection of ``R^3072``, piecewise affine).
    """

    def __init__(self, in_shape=(3, 32, 32), blocks=(2, 2), hidden=(32, 64)):
        super().__init__()
        if len(blocks) != len(hidden) or not len(blocks):
            raise ValueError(f"blocks and hidden need one entry per stage, got {blocks}, {hidden}.")
        c, h, w = (int(v) for v in in_shape)
        layers: list[nn.Module] = []
        for nb, hid in zip(blocks, hidden, strict=True):
            if h % 2 or w % 2:
                raise ValueError(f"cannot squeeze a {h}×{w} image: H and W must stay even.")
            c, h, w = 4 * c, h // 2, w // 2
            layers.append(Squeeze())
            c1 = c // 2
            layers += [
                AdditiveCoupling(conv_subnet(c - c1, hid, c1), conv_subnet(c1, hid, c - c1), c1)
                for _ in range(int(nb))
            ]
        self.layers = nn.ModuleList(layers)
        self.in_shape, self.feature_shape, self.dim = tuple(in_shape), (c, h, w), c * h * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [n, *in_shape]`` → ``T(x) [n, *feature_shape]``."""
        for layer in self.layers:
            x = layer(x)
        return x

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """``z [n, *feature_shape]`` → ``T⁻¹(z) [n, *in_shape]``."""
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z


def cifar_classifier(
    seed: int = 0, blocks=(2, 2), hidden=(32, 64), n_classes: int = 10
) -> InvertibleClassifier:
    """An :class:`InvertibleClassifier` over :class:`InvertibleConvNet` for CIFAR-10, float32,
    PyTorch's default initialisation drawn from ``seed`` (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return InvertibleClassifier(InvertibleConvNet((3, 32, 32), blocks, hidden), n_classes)


class InvertibleClassifier(nn.Module):
    """An invertible map ``transform`` (with ``inverse``) then a linear head to ``n_classes``.

    ``n_features`` is the size of the flattened ``transform(x)`` (default ``transform.dim``);
    ``transform.feature_shape`` (if set) is the shape :meth:`inverse` restores from flat
    features. :meth:`forward` returns logits ``[n, n_classes]``.
    """

    def __init__(self, transform: nn.Module, n_classes: int, n_features: int | None = None):
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"n_classes must be ≥ 2, got {n_classes}.")
        n_features = getattr(transform, "dim", None) if n_features is None else n_features
        if n_features is None:
            raise ValueError("pass n_features: the transform has no .dim attribute.")
        self.transform, self.n_classes = transform, int(n_classes)
        self.feature_shape = tuple(getattr(transform, "feature_shape", (n_features,)))
        self.head = nn.Linear(int(n_features), self.n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``T(x)`` flattened, ``[n, n_features]``."""
        return self.transform(x).flatten(1)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """``T⁻¹(z)`` for features ``z`` (flat ``[n, n_features]`` or in ``feature_shape``)."""
        return self.transform.inverse(z.reshape(len(z), *self.feature_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` → logits ``[n, n_classes]``."""
        return self.head(self.features(x))


# --------------------------------------------------------------------------- explanations


def _param(model: InvertibleClassifier) -> torch.Tensor:
    return model.head.weight


def _inputs(model: InvertibleClassifier, x) -> torch.Tensor:
    """``x`` as a finite tensor of the model's dtype and device, ``[n, ...]``."""
    if not isinstance(model, InvertibleClassifier):
        raise ValueError(f"model must be an InvertibleClassifier, got {type(model).__name__}.")
    w = _param(model)
    try:
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    except (TypeError, ValueError) as err:
        raise ValueError(f"x must be a numeric array, got {type(x).__name__}: {err}") from err
    x = x.to(w.device, w.dtype)
    if x.dim() < 2 or len(x) == 0:
        raise ValueError(f"x must be a non-empty batch [n, ...], got shape {tuple(x.shape)}.")
    want = model.feature_shape if len(model.feature_shape) > 1 else (model.head.in_features,)
    if len(model.feature_shape) == 1 and tuple(x.shape[1:]) != want:
        raise ValueError(f"x must have shape [n, {want[0]}], got {tuple(x.shape)}.")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or inf; remove those rows first.")
    return x


def _pairs(model: InvertibleClassifier, n: int, a, b) -> tuple[torch.Tensor, torch.Tensor]:
    """Class pairs broadcast to ``[n]`` each, checked: in range and ``a ≠ b`` row by row."""
    out = []
    for name, v in (("a", a), ("b", b)):
        arr = np.asarray(v.cpu() if isinstance(v, torch.Tensor) else v)
        if not np.issubdtype(arr.dtype, np.integer) or arr.ndim > 1:
            raise ValueError(f"{name} must be an int or an int array [n], got {arr!r}.")
        arr = np.broadcast_to(arr, (n,)) if arr.ndim == 0 or arr.size == 1 else arr
        if arr.shape != (n,):
            raise ValueError(f"{name} must have one class per row ({n}), got {arr.shape}.")
        if (arr < 0).any() or (arr >= model.n_classes).any():
            raise ValueError(f"{name} holds a class outside 0..{model.n_classes - 1}: {arr}.")
        out.append(torch.as_tensor(arr.astype(np.int64), device=_param(model).device))
    if (out[0] == out[1]).any():
        raise ValueError(
            "a and b must differ in every row: no boundary between a class and itself."
        )
    return out[0], out[1]


def boundary_projection(model: InvertibleClassifier, x, a, b):
    """Project ``T(x)`` onto the hyperplane ``{logit_a = logit_b}`` and pull it back.

    ``x [n, ...]`` inputs; ``a``, ``b`` an int or ints ``[n]`` (per-row class pairs). With
    ``u = w_a − w_b``, ``w = u/‖u‖``, ``Δ = bias_a − bias_b`` and ``f = T(x)``, the signed
    feature-space distance to the boundary is ``s = (u·f + Δ)/‖u‖`` and ``p = f − s w``
    (= ``f − (f·w)w − wΔ/‖u‖``, the authors' formula with the biases of ``a`` and ``b``).
    Returns ``(x_b [n, ...], p [n, D], s [n])`` in the model's dtype, without gradients;
    ``logit_a = logit_b`` at ``x_b`` up to the inverse's rounding.
    """
    x = _inputs(model, x)
    ia, ib = _pairs(model, len(x), a, b)
    with torch.no_grad():
        W, bias = model.head.weight, model.head.bias
        u = W[ia] - W[ib]  # [n, D]
        nu = u.norm(dim=1)
        if (nu == 0).any():
            raise ValueError("w_a = w_b for some pair: the two classes have no boundary.")
        f = model.features(x)
        s = ((u * f).sum(1) + bias[ia] - bias[ib]) / nu
        p = f - s[:, None] * (u / nu[:, None])
        return model.inverse(p), p, s


def taylor_importance(model: InvertibleClassifier, x, a, b):
    """First-order Taylor feature importance of ``d = logit_a − logit_b`` at ``x``.

    With ``g = ∇_x d(x)`` and ``x_b`` from :func:`boundary_projection`, ``d(x_b) = 0``, so
    ``d(x) ≈ g·(x − x_b)``; the importance of input feature ``i`` is ``g_i (x_i − x_b,i)``, its
    share of that sum (exact when ``x`` and ``x_b`` share one linear region of the ReLU net).
    Returns ``(importance [n, ...], gradient [n, ...])``: gradient × (x − x_b), and the plain
    gradient ``g`` (a saliency map). Rows are independent, so one backward pass of ``Σ d``
    gives every row's gradient.
    """
    x = _inputs(model, x)
    ia, ib = _pairs(model, len(x), a, b)
    x_b = boundary_projection(model, x, ia, ib)[0]
    xg = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(xg)
        rows = torch.arange(len(xg), device=xg.device)
        d = logits[rows, ia] - logits[rows, ib]
        (grad,) = torch.autograd.grad(d.sum(), xg)
    return grad * (x - x_b), grad


# --------------------------------------------------------------------------- exact regions


def _relu_cut(verts, za, zc, scale, min_area):
    """Cut each convex polygon ``verts[r]`` by the zero lines of pre-activations
    ``z = za[r] x + zc[r]`` (``za [R, h, 2]``, ``zc [R, h]``). Returns the pieces, each piece's
    parent region ``own [R']`` and its activation mask ``[R', h]`` (sign at its centroid)."""
    vc, owner, starts, _ = _ragged(verts)
    z_all = vc[:, :1] * za[owner, :, 0] + vc[:, 1:] * za[owner, :, 1] + zc[owner]
    tol = _SIDE_RTOL * (np.abs(za).sum(2) * scale + np.abs(zc))
    t_v = tol[owner]
    mixed = np.logical_or.reduceat(z_all > t_v, starts) & np.logical_or.reduceat(
        z_all < -t_v, starts
    )
    ends = np.append(starts[1:], len(vc))
    new_v, own = [], []
    for r in range(len(verts)):
        cand = np.flatnonzero(mixed[r])
        pieces = (
            [verts[r]]
            if not len(cand)
            else _split_region(verts[r], z_all[starts[r] : ends[r]], cand, tol[r], min_area)
        )
        new_v.extend(pieces)
        own.extend([r] * len(pieces))
    own = np.asarray(own, dtype=np.int64)
    cen, _ = _centroids_areas(new_v)
    mask = (np.einsum("rhk,rk->rh", za[own], cen) + zc[own]) > 0
    return new_v, own, mask


def coupling_regions(model: InvertibleClassifier, bounds) -> list[Region]:
    """Exact linear regions of an :class:`InvertibleMLP` classifier on the box ``bounds``.

    ``bounds = (xmin, xmax, ymin, ymax)``; the model's transform must be an
    :class:`InvertibleMLP` with ``dim = 2`` whose F and G are Sequentials of Linear/ReLU. The
    coupling network is no plain Sequential, so the state (both halves) is carried as an affine
    map of the input per region while F and G run on its slices; every ReLU cuts the regions
    by its neurons' zero lines (:mod:`deepnnk.nets.geometry`'s polygon cutting, float64).
    Returns :class:`Region` objects: ``A [C, 2]``, ``c [C]`` the logits; ``hidden_A [2, 2]``,
    ``hidden_c [2]`` the map ``T``; ``pattern`` one mask per ReLU layer. Areas sum to the box's.
    """
    tr = model.transform
    if not isinstance(tr, InvertibleMLP) or tr.dim != 2:
        raise ValueError(
            "coupling_regions needs an InvertibleClassifier over InvertibleMLP(dim=2)."
        )
    box = box_polygon(bounds)
    min_area = _SLIVER_RTOL * polygon_area(box)
    scale = float(np.abs(box).max())
    verts = [box]
    # Every array indexed by region; a ReLU cut re-indexes them all by the pieces' parents.
    st = {"A": np.eye(2)[None], "c": np.zeros((1, 2))}  # the state x ↦ A x + c: [R, 2, 2], [R, 2]
    patterns: list[np.ndarray] = []

    def run(seq, inA, inc):
        # Push the affine map (inA [R, d, 2], inc [R, d]) through a Linear/ReLU Sequential.
        nonlocal verts, patterns
        for kind, w, b in _mlp_ops(seq):
            if kind == "linear":
                inA, inc = np.einsum("oi,rik->rok", w, inA), inc @ w.T + b
                continue
            verts, own, mask = _relu_cut(verts, inA, inc, scale, min_area)
            for key in st:
                st[key] = st[key][own]
            patterns = [p[own] for p in patterns] + [mask]
            inA, inc = inA[own] * mask[..., None], inc[own] * mask
        return inA, inc

    for block in tr.blocks:
        c1 = block.split
        fA, fc = run(block.f, st["A"][:, c1:], st["c"][:, c1:])
        st["y1A"], st["y1c"] = st["A"][:, :c1] + fA, st["c"][:, :c1] + fc
        gA, gc = run(block.g, st["y1A"], st["y1c"])
        st["A"] = np.concatenate([st.pop("y1A"), st["A"][:, c1:] + gA], 1)
        st["c"] = np.concatenate([st.pop("y1c"), st["c"][:, c1:] + gc], 1)

    W = model.head.weight.detach().to("cpu", torch.float64).numpy()
    bias = model.head.bias.detach().to("cpu", torch.float64).numpy()
    A, c = np.einsum("oi,rik->rok", W, st["A"]), st["c"] @ W.T + bias
    _, areas = _centroids_areas(verts)
    return [
        Region(
            vertices=verts[r],
            pattern=tuple(p[r] for p in patterns),
            A=A[r],
            c=c[r],
            hidden_A=st["A"][r],
            hidden_c=st["c"][r],
            area=float(areas[r]),
        )
        for r in range(len(verts))
    ]
