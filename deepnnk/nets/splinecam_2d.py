"""Exact 2-D partitions of the paper's CNN on a plane through three images (SplineCam in 2-D).

The plane through ``x_q``, ``x_a``, ``x_b`` has orthonormal directions (Gram–Schmidt):
``e₁ = (x_a − x_q)/‖x_a − x_q‖``, ``e₂`` the unit part of ``x_b − x_q`` orthogonal to ``e₁``, and
``x(u, v) = x_q + u·e₁ + v·e₂``. So ``(u, v)`` are in input units (L2 in pixels/255, as the 1-D
walk's ``length``), distances and areas are those of input space, ``x_q`` is at ``(0, 0)``,
``x_a`` at ``(‖x_a − x_q‖, 0)``, and the line ``v = 0`` is the segment ``x_q → x_a``.

:func:`slice_partition` cuts a window into the network's linear regions exactly, in float64.
From the window polygon, layer by layer, every region carries its representation as an affine
map of ``(u, v)`` (value at the origin and two tangents; each conv runs on the tripled batch,
the bias on the value only, as the 1-D walk does with one tangent). After each conv, every ReLU
zero line crossing a region cuts it (the polygon splitting of :mod:`deepnnk.nets.geometry`);
after each max-pool, every 2×2 window whose argmax differs between a region's vertices splits
it into its argmax cells (the polygon clipped by ``f_k ≥ f_j``). Both are real walls (the
pattern differs across), so no two regions share a pattern. Candidates are found for all
regions and units at once (a bound from each region's centroid and extent, then an exact test
at its vertices); Python loops only over the lines that do cut a region. Regions go through the
layers depth first, ``chunk`` at a time, so memory stays bounded; a child's next conv is its
parent's reference plus a sparse update (see :func:`_walk`).

Ties use :data:`~deepnnk.nets.splinecam.RTOL` times each region's layer scale (as the 1-D walk).
A cut leaving a piece under ``1e-12`` of the window's area is skipped (a rounding sliver: the
piece keeps its centroid's pattern) and a max-pool cell that small is dropped, so the regions
tile the window up to that relative area.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from deepnnk.nets.geometry import (
    _centroids_areas,
    _line_in_polygon,
    _split_region,
    box_polygon,
    clip_polygon,
    polygon_area,
)
from deepnnk.nets.splinecam import RTOL, _as_images, _weights

__all__ = ["SlicePartition", "slice_partition", "slice_plane"]

_SLIVER_RTOL = 1e-12  # as deepnnk.nets.geometry: smaller pieces are rounding, not regions


@dataclass(eq=False)
class SlicePartition:
    """The exact linear regions of a PaperCNN on a window of the plane ``x_q + u·e₁ + v·e₂``.

    ``origin [3, 32, 32]`` (``x_q``) and ``basis [2, 3, 32, 32]`` (``e₁``, ``e₂``, orthonormal),
    float64 pixels/255; ``(u, v)`` are in the same L2 units. ``anchors [3, 2]``: the ``(u, v)`` of
    ``x_q``, ``x_a``, ``x_b``. ``window``: ``(u_min, u_max, v_min, v_max)``.
    Region ``r``'s convex CCW polygon is ``vertices[offsets[r]:offsets[r + 1]]`` (``[N, 2]``,
    ``offsets [R + 1]``); ``areas [R]``; ``digests [R]`` (``S16``): its activation pattern hashed
    as :func:`deepnnk.nets.splinecam.activation_patterns` does (all distinct); ``logit_c [R, K]``
    and ``logit_A [R, K, 2]``: the logits on it are exactly ``c + A·(u, v)``; ``predicted [R]``:
    the top class at its centroid. ``boundary [S, 2, 2]``: the decision boundary as segments
    (segment, endpoint, (u, v)); ``boundary_classes [S, 2]`` the two classes tied on each
    (lower first) and ``boundary_region [S]`` the region holding it.
    """

    origin: np.ndarray
    basis: np.ndarray
    anchors: np.ndarray
    window: tuple[float, float, float, float]
    vertices: np.ndarray
    offsets: np.ndarray
    areas: np.ndarray
    digests: np.ndarray
    logit_c: np.ndarray
    logit_A: np.ndarray
    predicted: np.ndarray
    boundary: np.ndarray
    boundary_classes: np.ndarray
    boundary_region: np.ndarray

    @property
    def n_regions(self) -> int:
        return len(self.offsets) - 1

    def polygons(self) -> list[np.ndarray]:
        return np.split(self.vertices, self.offsets[1:-1])

    def images(self, uv) -> np.ndarray:
        """The input images ``[n, 3, 32, 32]`` at plane points ``uv [n, 2]``."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        return self.origin + np.einsum("nk,kchw->nchw", uv, self.basis)

    def locate(self, uv, tol: float = 0.0) -> np.ndarray:
        """Index ``[n]`` of the region holding each point ``uv [n, 2]`` (−1 outside the window;
        a point on a shared edge gets the lowest index). ``tol``: slack in plane units."""
        p = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        poly = _padded(self.polygons())  # [R, M, 2]
        e = np.roll(poly, -1, axis=1) - poly
        ln = np.hypot(e[..., 0], e[..., 1])
        ok = ln > 0
        out = np.full(len(p), -1, dtype=np.int64)
        step = max(1, 2_000_000 // poly[..., 0].size)
        for s in range(0, len(p), step):
            d = p[s : s + step, None, None, :] - poly[None]
            cross = e[None, ..., 0] * d[..., 1] - e[None, ..., 1] * d[..., 0]
            inside = ((cross >= -tol * np.where(ok, ln, 1.0)) | ~ok).all(-1)  # [n, R]
            out[s : s + step] = np.where(inside.any(1), inside.argmax(1), -1)
        return out

    def logits(self, uv) -> np.ndarray:
        """The logits ``[n, K]`` at ``uv [n, 2]`` from the regions' affine maps."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        r = self.locate(uv, tol=1e-12 * max(map(abs, self.window)))
        if (r < 0).any():
            raise ValueError(f"points {np.flatnonzero(r < 0)[:5].tolist()} lie outside the window")
        return self.logit_c[r] + np.einsum("nkd,nd->nk", self.logit_A[r], uv)


def _padded(polys: list[np.ndarray]) -> np.ndarray:
    """``[n, M, 2]``: polygons padded by repeating their last vertex (harmless for min/max and
    half-plane tests: a zero-length edge)."""
    m = max(len(v) for v in polys)
    return np.stack([np.concatenate([v, np.repeat(v[-1:], m - len(v), 0)]) for v in polys])


def slice_plane(x_q, x_a, x_b):
    """``(origin [3, 32, 32], basis [2, 3, 32, 32], anchors [3, 2])`` float64 torch/numpy: the
    orthonormal plane through three images (see the module docstring). Raises if the three are
    (nearly) collinear."""
    xq, xa, xb = (
        _as_images(x, name, "cpu", allow_single=True)
        for x, name in ((x_q, "x_q"), (x_a, "x_a"), (x_b, "x_b"))
    )
    for name, x in (("x_q", xq), ("x_a", xa), ("x_b", xb)):
        if len(x) != 1:
            raise ValueError(f"{name} must be one image [3, 32, 32], got {tuple(x.shape)}")
    da, db = (xa - xq)[0], (xb - xq)[0]
    na = float(da.norm())
    if na == 0:
        raise ValueError("x_a equals x_q: the plane needs three distinct images")
    e1 = da / na
    along = float((db * e1).sum())
    perp = db - along * e1
    nb = float(perp.norm())
    if nb <= 1e-9 * float(db.norm()) or nb == 0:
        raise ValueError(
            "x_q, x_a and x_b are collinear (x_b − x_q is parallel to x_a − x_q): "
            "pick a third image off the line"
        )
    anchors = np.array([[0.0, 0.0], [na, 0.0], [along, nb]])
    return xq[0].numpy(), torch.stack([e1, perp / nb]).numpy(), anchors


def _window_bounds(window) -> tuple[float, float, float, float]:
    w = np.asarray(window, dtype=np.float64).reshape(-1)
    if w.size == 1:
        w = np.array([-w[0], w[0], -w[0], w[0]])
    if w.size != 4 or not np.isfinite(w).all() or not (w[0] < w[1] and w[2] < w[3]):
        raise ValueError(
            f"window must be a half-width w > 0 (the box [−w, w]² around x_q) or a box "
            f"(u_min, u_max, v_min, v_max) with min < max, in L2 pixel/255 units; got {window!r}"
        )
    return tuple(float(x) for x in w)


class _Context:
    def __init__(self, weights, bounds, max_regions, chunk):
        self.weights = weights
        self.bounds = bounds
        self.extent = max(map(abs, bounds))
        self.min_area = _SLIVER_RTOL * polygon_area(box_polygon(bounds))
        self.max_regions = max_regions
        self.chunk = chunk
        self.out: dict[str, list] = {k: [] for k in ("polys", "c", "A", "digests")}
        self.count = 0

    def overflow(self, n: int) -> None:
        if n > self.max_regions:
            w = self.bounds
            raise RuntimeError(
                f"the slice has more than max_regions={self.max_regions} regions in the window "
                f"u ∈ [{w[0]:.3g}, {w[1]:.3g}], v ∈ [{w[2]:.3g}, {w[3]:.3g}]; shrink the window "
                "(region counts grow about as its area) or pass a larger max_regions"
            )


def _at(Z: torch.Tensor, uv: np.ndarray) -> torch.Tensor:
    """Affine maps ``Z [n, 3, …]`` (value at the origin, d/du, d/dv) evaluated at ``uv [n, 2]``."""
    p = torch.from_numpy(uv).reshape(len(uv), 2, *([1] * (Z.ndim - 2)))
    return Z[:, 0] + p[:, 0] * Z[:, 1] + p[:, 1] * Z[:, 2]


def _radii(V: np.ndarray, cen: np.ndarray, ndim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each region's extent ``[n, 1, …]`` in u and in v around its centroid (vertices ``V``)."""
    r = torch.from_numpy(np.abs(V - cen[:, None]).max(1)).reshape(len(V), 2, *([1] * ndim))
    return r[:, 0], r[:, 1]


def _scale_tol(zc: torch.Tensor, Z: torch.Tensor, extent: float) -> torch.Tensor:
    """Per-region tie tolerance ``[n, 1, …]``: RTOL × (max |value| + max |gradient| × extent)."""
    dims = tuple(range(1, zc.ndim))
    g = (Z[:, 1].abs() + Z[:, 2].abs()).amax(dims, keepdim=True)
    return RTOL * (zc.abs().amax(dims, keepdim=True) + g * extent) + 1e-300


def _relu_split(polys, Z, ctx):
    """Cut regions ``polys`` by every ReLU zero line of the pre-activations ``Z [n, 3, C, H, W]``.
    Returns ``(pieces, parent [p], active [p, C, H, W])``."""
    n = len(polys)
    cen, _ = _centroids_areas(polys)
    V = _padded(polys)
    zc = _at(Z, cen)
    tol = _scale_tol(zc, Z, ctx.extent)
    ru, rv = _radii(V, cen, 3)
    maybe = zc.abs() <= Z[:, 1].abs() * ru + Z[:, 2].abs() * rv + tol
    reg, unit = maybe.flatten(1).nonzero(as_tuple=True)
    pieces, parent = [], []
    if len(reg):
        flat = Z.flatten(2)  # [n, 3, units]
        c, gu, gv = (flat[reg, k, unit].numpy() for k in range(3))
        zv = c[:, None] + V[reg.numpy(), :, 0] * gu[:, None] + V[reg.numpy(), :, 1] * gv[:, None]
        t = tol.flatten()[reg].numpy()
        cuts = (zv > t[:, None]).any(1) & (zv < -t[:, None]).any(1)
        reg_c = reg.numpy()[cuts]
        zv, t = zv[cuts], t[cuts]
    else:
        reg_c = np.zeros(0, dtype=np.int64)
    starts = np.searchsorted(reg_c, np.arange(n + 1))
    for i in range(n):
        a, b = starts[i], starts[i + 1]
        if a == b:
            pieces.append(polys[i])
            parent.append(i)
            continue
        m = len(polys[i])
        got = _split_region(polys[i], zv[a:b, :m].T.copy(), np.arange(b - a), t[a:b], ctx.min_area)
        pieces.extend(got)
        parent.extend([i] * len(got))
    parent = np.asarray(parent, dtype=np.int64)
    ctx.overflow(len(pieces))
    pc, _ = _centroids_areas(pieces)
    active = _at(Z[parent], pc) > tol[parent]
    return pieces, parent, active


def _windows(Y: torch.Tensor) -> torch.Tensor:
    """``[n, 3, C, H, W]`` → ``[n, 3, C, H/2, W/2, 4]`` (2×2 windows, row-major)."""
    n, k, c, h, w = Y.shape
    return (
        Y.reshape(n, k, c, h // 2, 2, w // 2, 2)
        .permute(0, 1, 2, 3, 5, 4, 6)
        .reshape(n, k, c, h // 2, w // 2, 4)
    )


def _argmax_first(vals: torch.Tensor, tol: torch.Tensor) -> torch.Tensor:
    """First index among the candidates within ``tol`` of the max (the 1-D walk's rule)."""
    near = vals >= vals.amax(-1, keepdim=True) - tol
    return torch.argmax(near.to(torch.uint8), dim=-1)


def _pool_cells(poly, c, g, tol, extent, min_area) -> list[np.ndarray]:
    """Split one polygon into the argmax cells of 4 affine candidates ``c [4] + g [4, 2]·(u, v)``
    (identical candidates go to the first). Returns the cells (one: no split)."""
    vals = c + poly @ g.T  # [m, 4]
    near = vals >= vals.max(1, keepdims=True) - tol
    if near.all(0).any():  # one candidate is (within tol) the max at every vertex: convexity
        return [poly]
    cells = []
    for k in range(4):
        cell = poly
        for j in range(4):
            if j == k or len(cell) < 3:
                continue
            a, b = g[k] - g[j], c[k] - c[j]
            if np.abs(a).sum() * extent <= tol and abs(b) <= tol:  # the same function
                if j < k:
                    cell = np.zeros((0, 2))
                continue
            cell = clip_polygon(cell, a, b)
        if len(cell) >= 3 and polygon_area(cell) > min_area:
            cells.append(cell)
    return cells if len(cells) > 1 else [poly]


def _pool_split(polys, Y, ctx):
    """Split regions by every max-pool window whose argmax changes inside them. ``Y [n, 3, C, H,
    W]`` post-ReLU maps. Returns ``(pieces, parent, arg [p, C, H/2, W/2], pooled [p, 3, …])``."""
    n = len(polys)
    cen, _ = _centroids_areas(polys)
    V = _padded(polys)
    Yw = _windows(Y)  # [n, 3, C, h, w, 4]
    vc = _at(Yw, cen)
    tol = _scale_tol(vc, Yw, ctx.extent)  # [n, 1, 1, 1, 1]
    k = _argmax_first(vc, tol)[..., None]
    dc = vc.gather(-1, k) - vc
    du = Yw[:, 1].gather(-1, k) - Yw[:, 1]
    dv = Yw[:, 2].gather(-1, k) - Yw[:, 2]
    ru, rv = _radii(V, cen, 4)
    # f_k − f_j ≥ dc − bound on the region's box: if that is ≥ −tol for every j, k stays max.
    maybe = ((dc - du.abs() * ru - dv.abs() * rv) < -tol).any(-1)
    reg, win = maybe.flatten(1).nonzero(as_tuple=True)
    flat = Yw.flatten(2, 4)  # [n, 3, windows, 4]
    split = np.zeros(0, dtype=np.int64)
    if len(reg):
        c, gu, gv = (flat[reg, j, win].numpy() for j in range(3))  # [p, 4]
        Vr = V[reg.numpy()]
        vals = c[:, None] + Vr[..., :1] * gu[:, None] + Vr[..., 1:] * gv[:, None]  # [p, M, 4]
        t = tol.flatten()[reg].numpy()[:, None, None]
        common = (vals >= vals.max(-1, keepdims=True) - t).all(1).any(-1)
        split = np.flatnonzero(~common)
    reg_s = reg.numpy()[split] if len(split) else split
    win_s = win.numpy()[split] if len(split) else split
    starts = np.searchsorted(reg_s, np.arange(n + 1))
    pieces, parent = [], []
    for i in range(n):
        a, b = starts[i], starts[i + 1]
        cur = [polys[i]]
        ti = float(tol.flatten()[i])
        for w in win_s[a:b]:
            fl = flat[i, :, w].numpy()  # [3, 4]
            g = fl[1:].T.copy()  # [4, 2]
            cur = [
                cell for p in cur for cell in _pool_cells(p, fl[0], g, ti, ctx.extent, ctx.min_area)
            ]
        pieces.extend(cur)
        parent.extend([i] * len(cur))
    parent = np.asarray(parent, dtype=np.int64)
    ctx.overflow(len(pieces))
    pc, _ = _centroids_areas(pieces)
    Yp = Yw[parent]
    arg = _argmax_first(_at(Yp, pc), tol[parent])
    pooled = Yp.gather(-1, arg[:, None, ..., None].expand(-1, 3, -1, -1, -1, 1))[..., 0]
    return pieces, parent, arg, pooled


def _conv(X: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """The conv on affine maps ``X [n, 3, C, H, W]``: bias on the value only (if given)."""
    Z = F.conv2d(X.flatten(0, 1), w, padding=1).unflatten(0, (len(X), 3))
    if b is not None:
        Z[:, 0] += b[:, None, None]
    return Z


def _conv_sparse(D: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``_conv(D, w, None)`` for a mostly-zero ``D [n, 3, C, H, W]``: each nonzero input unit
    adds its 3×3×C_out footprint (scattered with accumulation), so the cost is per nonzero."""
    n, _, _, h, wd = D.shape
    cout = w.shape[0]
    out = D.new_zeros(n, 3, cout, h + 2, wd + 2)  # padded by one on each side
    r, c, y, x = (D != 0).any(1).nonzero(as_tuple=True)
    if len(r):
        vals = D[r, :, c, y, x]  # [p, 3]
        # Input (c, y, x) reaches output (o, y + 1 − ky, x + 1 − kx) through w[o, c, ky, kx].
        contrib = vals[:, :, None, None, None] * w[:, c].transpose(0, 1)[:, None]
        k = torch.arange(3)
        rows = (y[:, None] + 2 - k)[:, None, None, :, None]
        cols = (x[:, None] + 2 - k)[:, None, None, None, :]
        index = (
            r[:, None, None, None, None],
            torch.arange(3)[None, :, None, None, None],
            torch.arange(cout)[None, None, :, None, None],
            rows,
            cols,
        )
        out.index_put_(tuple(i.expand_as(contrib) for i in index), contrib, accumulate=True)
    return out[..., 1:-1, 1:-1]


def _walk(layer, polys, Z, bits, args, ctx) -> None:
    """Take regions ``polys`` (conv ``layer``'s output maps ``Z [n, 3, C, H, W]``, bias
    included) through ReLU ``layer`` and on, depth first, ``ctx.chunk`` regions at a time;
    finished regions go to ``ctx.out``.

    The next conv is linear, so a child region's next pre-activation is its parent's reference
    (the next conv of the parent's first child's input, computed once per parent) plus the conv
    of the difference, which is nonzero only at the units that the cuts inside the parent
    switched: a sparse update instead of a full conv per child.
    """
    ws, bs, wfc, bfc = ctx.weights
    pieces, parent, active = _relu_split(polys, Z, ctx)
    bits = [b[parent] for b in bits] + [np.packbits(active.flatten(1).numpy(), axis=1)]
    args = [a[parent] for a in args]
    ref = ref_in = None
    if layer < 5 and ctx.sparse:
        first = np.searchsorted(parent, np.arange(len(polys)))
        ref_in = Z * active[first, None]
        if layer % 2 == 1:  # the pool of the reference: PyTorch's first max, at the centroid
            cen, _ = _centroids_areas([pieces[i] for i in first])
            Yw = _windows(ref_in)
            arg = _at(Yw, cen).argmax(-1)
            ref_in = Yw.gather(-1, arg[:, None, ..., None].expand(-1, 3, -1, -1, -1, 1))[..., 0]
        ref = _conv(ref_in, ws[layer + 1], bs[layer + 1])
    for s in range(0, len(pieces), ctx.chunk):
        sl = slice(s, s + ctx.chunk)
        Y = Z[parent[sl]] * active[sl, None]
        group = parent[sl]
        sub, b_sub, a_sub = pieces[sl], [b[sl] for b in bits], [a[sl] for a in args]
        if layer % 2 == 1:
            sub, par, arg, Y = _pool_split(sub, Y, ctx)
            group = group[par]
            b_sub = [b[par] for b in b_sub]
            a_sub = [a[par] for a in a_sub] + [arg.flatten(1).to(torch.uint8).numpy()]
        if layer < 5:
            if ref is None:
                Zn = _conv(Y, ws[layer + 1], bs[layer + 1])
            else:
                D = Y - ref_in[group]
                Zn = ref[group] + _conv_sparse(D, ws[layer + 1])
            _walk(layer + 1, sub, Zn, b_sub, a_sub, ctx)
            continue
        f = Y.permute(0, 1, 3, 4, 2).flatten(2)  # NHWC, as PaperCNN.features
        out = f @ wfc.T  # [p, 3, K]
        ctx.out["polys"].extend(sub)
        ctx.out["c"].append((out[:, 0] + bfc).numpy())
        ctx.out["A"].append(out[:, 1:].permute(0, 2, 1).numpy())
        # Hashed at once (the packed pattern is ~21 kB a region at width 32), exactly as
        # splinecam._digests does: the packed ReLU bits of all layers, then the pool argmaxes.
        pb, pa = np.concatenate(b_sub, 1), np.concatenate(a_sub, 1)
        ctx.out["digests"].extend(
            hashlib.blake2b(b.tobytes() + a.tobytes(), digest_size=16).digest()
            for b, a in zip(pb, pa, strict=True)
        )
        ctx.count += len(sub)
        ctx.overflow(ctx.count)


def _boundary(polys, c, A, extent):
    """Decision-boundary segments: per region where the top class is not the same at all
    vertices, the argmax cells of the affine logits and the shared edges between them."""
    V = _padded(polys)
    vals = c[:, None] + np.einsum("rmd,rkd->rmk", V, A)  # [R, M, K]
    tol = RTOL * (np.abs(vals).max((1, 2)) + np.abs(A).sum(2).max(1) * extent)  # [R]
    near = vals >= vals.max(-1, keepdims=True) - tol[:, None, None]
    segs, pairs, owner = [], [], []
    for r in np.flatnonzero(~near.all(1).any(-1)):
        K = c.shape[1]
        cells = {}
        for k in range(K):
            cell = polys[r]
            for j in range(K):
                if j != k and len(cell) >= 3:
                    cell = clip_polygon(cell, A[r, k] - A[r, j], c[r, k] - c[r, j])
            if len(cell) >= 3:
                cells[k] = cell
        for k in cells:
            for j in cells:
                if j <= k:
                    continue
                cell = cells[k]
                seg = _line_in_polygon(cell, cell @ (A[r, k] - A[r, j]) + c[r, k] - c[r, j], tol[r])
                if seg is not None:
                    segs.append(seg), pairs.append((k, j)), owner.append(r)
    return (
        np.array(segs, dtype=np.float64).reshape(-1, 2, 2),
        np.array(pairs, dtype=np.int64).reshape(-1, 2),
        np.array(owner, dtype=np.int64),
    )


def slice_partition(
    model,
    x_q,
    x_a,
    x_b,
    *,
    window,
    max_regions: int = 200_000,
    chunk: int = 8,
    sparse_updates: bool = True,
) -> SlicePartition:
    """The exact linear regions and decision boundary of a PaperCNN on a window of the plane
    through ``x_q``, ``x_a``, ``x_b`` (each ``[3, 32, 32]`` float pixels/255, torch or numpy).

    ``window``: a half-width ``w`` (the box ``[−w, w]²`` around ``x_q``) or any box ``(u_min,
    u_max, v_min, v_max)``, in L2 pixel/255 units along the orthonormalised directions (see
    :func:`slice_plane`); e.g. ``(u* − w, u* + w, −w, w)`` centres it on the point ``u*`` of the
    segment ``x_q → x_a`` where the 1-D walk finds a decision change. ``max_regions``: the
    computation raises rather than exceed it. ``chunk``: regions per batched pass (memory ∝
    chunk; 8 was fastest here). ``sparse_updates=False`` runs every conv in full for every
    region (the benchmark's baseline; the same regions). Runs on the CPU, float64.
    Returns a :class:`SlicePartition`.
    """
    if not (isinstance(max_regions, int) and max_regions >= 1):
        raise ValueError(f"max_regions must be a positive int, got {max_regions!r}")
    if not (isinstance(chunk, int) and chunk >= 1):
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    bounds = _window_bounds(window)
    ws, bs, wfc, bfc = _weights(model)
    weights = ([w.cpu() for w in ws], [b.cpu() for b in bs], wfc.cpu(), bfc.cpu())
    origin, basis, anchors = slice_plane(x_q, x_a, x_b)
    ctx = _Context(weights, bounds, max_regions, chunk)
    ctx.sparse = bool(sparse_updates)
    X = torch.from_numpy(np.concatenate([origin[None], basis]))[None]  # [1, 3, 3, 32, 32]
    with torch.no_grad():
        _walk(0, [box_polygon(bounds)], _conv(X, weights[0][0], weights[1][0]), [], [], ctx)
    polys = ctx.out["polys"]
    c = np.concatenate(ctx.out["c"])
    A = np.concatenate(ctx.out["A"])
    digests = np.array(ctx.out["digests"], dtype="S16")
    cen, areas = _centroids_areas(polys)
    predicted = np.argmax(c + np.einsum("rkd,rd->rk", A, cen), axis=1)
    seg, pairs, owner = _boundary(polys, c, A, ctx.extent)
    counts = np.fromiter((len(p) for p in polys), dtype=np.int64, count=len(polys))
    return SlicePartition(
        origin=origin,
        basis=basis,
        anchors=anchors,
        window=bounds,
        vertices=np.concatenate(polys),
        offsets=np.concatenate([[0], np.cumsum(counts)]),
        areas=areas,
        digests=digests,
        logit_c=c,
        logit_A=A,
        predicted=predicted,
        boundary=seg,
        boundary_classes=pairs,
        boundary_region=owner,
    )
