"""Exact linear-region geometry of small ReLU MLPs on 2-D input, plus 2-D NNK polytopes.

A ReLU network is continuous and piecewise affine: the input plane splits into convex
polygons ("linear regions"), one per activation pattern, and on each the network is exactly
``x ↦ A x + c``. :func:`linear_regions` computes that partition inside a bounding box by
cutting convex polygons with each neuron's zero line, layer by layer, in float64 — no
sampling (the idea behind SplineCam, Humayun et al., CVPR 2023).

:func:`kri_halfplane` and :func:`nnk_polytope` give the matching NNK picture for Gaussian
kernels: every selected NNK neighbour ``x_j`` of a query ``x_q`` casts a Kernel Ratio Interval
hyperplane through ``x_j`` orthogonal to ``x_j − x_q``, and the query-side intersection of
those half-planes is the query's NNK polytope.

Conventions: polygons are float64 arrays ``[m, 2]`` in counter-clockwise order, without a
repeated closing vertex. A half-plane ``(a, b)`` means ``{x : a·x + b ≥ 0}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

__all__ = [
    "Region",
    "box_polygon",
    "clip_polygon",
    "decision_boundary",
    "kri_halfplane",
    "linear_regions",
    "locate",
    "nnk_polytope",
    "point_in_polygon",
    "polygon_area",
    "polygon_centroid",
]

# Relative size of the float64 rounding we tolerate when deciding on which side of a line a
# vertex lies: values within this (times the affine map's scale) count as "on the line".
_SIDE_RTOL = 1e-12
# Pieces smaller than this fraction of the domain area are not split off (they are rounding
# slivers, not regions).
_SLIVER_RTOL = 1e-12


# --------------------------------------------------------------------------- polygons


def box_polygon(bounds) -> np.ndarray:
    """``(xmin, xmax, ymin, ymax)`` → the box as a CCW polygon ``[4, 2]``."""
    xmin, xmax, ymin, ymax = (float(v) for v in bounds)
    if not (xmin < xmax and ymin < ymax):
        raise ValueError(f"bounds must be (xmin, xmax, ymin, ymax) with min < max, got {bounds}")
    return np.array([[xmin, ymin], [xmax, ymin], [xmax, ymax], [xmin, ymax]], dtype=np.float64)


def polygon_area(vertices) -> float:
    """Signed shoelace area of a polygon ``[m, 2]`` (positive when counter-clockwise)."""
    v = np.asarray(vertices, dtype=np.float64)
    if len(v) < 3:
        return 0.0
    x, y = v[:, 0], v[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def polygon_centroid(vertices) -> np.ndarray:
    """Area centroid ``[2]`` of a non-degenerate polygon ``[m, 2]`` (vertex mean if degenerate)."""
    v = np.asarray(vertices, dtype=np.float64)
    # Shift to the first vertex so that large offsets do not cost precision.
    o = v[0]
    p = v - o
    q = np.roll(p, -1, axis=0)
    cr = p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1]
    a = cr.sum()
    if abs(a) <= 1e-300:
        return v.mean(0)
    return o + ((p + q) * cr[:, None]).sum(0) / (3.0 * a)


def _split_by_values(v: np.ndarray, z: np.ndarray, tol: float, extra: np.ndarray | None = None):
    """Split a convex polygon by the zero set of an affine function sampled at its vertices.

    ``v [m, 2]`` vertices, ``z [m]`` the function there, ``extra [m, k]`` other affine
    quantities carried along (interpolated exactly at the new vertices). ``|z| ≤ tol`` counts as
    on the line; such vertices go to both sides. Returns ``(pos, neg)``, each ``(vertices,
    extra)`` or ``None`` when that side has no interior.
    """
    m = len(z)
    pos = z > tol
    neg = z < -tol
    nxt = np.arange(1, m + 1) % m
    # A convex polygon has at most two edges with a strict sign change.
    ke = np.flatnonzero((pos & neg[nxt]) | (neg & pos[nxt]))
    kn = nxt[ke]
    t = z[ke] / (z[ke] - z[kn])
    vc = v[ke] + t[:, None] * (v[kn] - v[ke])
    ec = None if extra is None else extra[ke] + t[:, None] * (extra[kn] - extra[ke])

    def side(keep):
        iv = np.flatnonzero(keep)
        if len(iv) + len(ke) < 3 or not keep.any():
            return None
        # Vertex k sorts at 2k, the crossing on edge k→k+1 at 2k+1: original cyclic order.
        order = np.argsort(np.concatenate([2 * iv, 2 * ke + 1]), kind="stable")
        vs = np.concatenate([v[iv], vc])[order]
        es = None if extra is None else np.concatenate([extra[iv], ec])[order]
        return vs, es

    return side(~neg) if pos.any() else None, side(~pos) if neg.any() else None


def clip_polygon(vertices, a, b, tol: float = 0.0) -> np.ndarray:
    """Keep the part of a convex polygon ``[m, 2]`` where ``a·x + b ≥ 0`` (``a [2]``, ``b`` scalar).

    Returns the clipped CCW polygon ``[k, 2]`` (``k = 0`` when nothing of positive area is left).
    ``tol`` is an absolute tolerance on ``a·x + b`` for vertices counted as on the line.
    """
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 2)
    a = np.asarray(a, dtype=np.float64).reshape(2)
    z = v @ a + float(b)
    if not (z < -tol).any():
        return v.copy()
    if not (z > tol).any():
        return np.zeros((0, 2))
    pos, _ = _split_by_values(v, z, tol)
    return np.zeros((0, 2)) if pos is None else pos[0]


def point_in_polygon(points, vertices, tol: float = 1e-10) -> np.ndarray:
    """Which of ``points [n, 2]`` lie in the closed convex CCW polygon ``vertices [m, 2]``.

    A point counts as inside when its signed distance to every edge line is ``≥ −tol``.
    Returns bool ``[n]``.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 2)
    if len(v) < 3:
        return np.zeros(len(p), dtype=bool)
    e = np.roll(v, -1, axis=0) - v
    ln = np.hypot(e[:, 0], e[:, 1])
    ok = ln > 0
    e, v0, ln = e[ok], v[ok], ln[ok]
    d = p[:, None, :] - v0[None]
    cross = (e[None, :, 0] * d[..., 1] - e[None, :, 1] * d[..., 0]) / ln
    return (cross >= -tol).all(1)


# --------------------------------------------------------------------------- regions


@dataclass(eq=False)
class Region:
    """One linear region of a ReLU MLP on the plane.

    ``vertices [m, 2]`` CCW polygon; ``pattern`` one bool array ``[h_l]`` per hidden layer
    (True = ReLU active); ``A [out, 2]``, ``c [out]`` the network's exact affine map here;
    ``hidden_A [h_L, 2]``, ``hidden_c [h_L]`` the last hidden layer's post-ReLU features as an
    affine map of the input; ``area`` the polygon's area.
    """

    vertices: np.ndarray
    pattern: tuple[np.ndarray, ...]
    A: np.ndarray
    c: np.ndarray
    hidden_A: np.ndarray
    hidden_c: np.ndarray
    area: float = field(default=0.0)

    @property
    def centroid(self) -> np.ndarray:
        """Area centroid ``[2]``."""
        return polygon_centroid(self.vertices)

    def __call__(self, x) -> np.ndarray:
        """The affine map at ``x [n, 2]`` → ``[n, out]``."""
        return np.asarray(x, dtype=np.float64) @ self.A.T + self.c

    def pattern_key(self) -> bytes:
        """The activation pattern packed into bytes (hashable, unique per region)."""
        if not self.pattern:
            return b""
        return np.packbits(np.concatenate(self.pattern)).tobytes()


def _mlp_ops(mlp: nn.Module) -> list[tuple[str, np.ndarray | None, np.ndarray | None]]:
    """Flatten a Sequential of Linear/ReLU (identities allowed) into float64 ops."""
    mods = list(mlp) if isinstance(mlp, nn.Sequential) else [mlp]
    ops: list[tuple[str, np.ndarray | None, np.ndarray | None]] = []
    for mod in mods:
        if isinstance(mod, nn.Sequential):
            ops.extend(_mlp_ops(mod))
        elif isinstance(mod, nn.Linear):
            w = mod.weight.detach().to("cpu", torch.float64).numpy().copy()
            b = (
                np.zeros(w.shape[0])
                if mod.bias is None
                else mod.bias.detach().to("cpu", torch.float64).numpy().copy()
            )
            ops.append(("linear", w, b))
        elif isinstance(mod, nn.ReLU):
            ops.append(("relu", None, None))
        elif isinstance(mod, (nn.Identity, nn.Dropout)):
            continue  # identities at inference
        else:
            raise TypeError(f"linear_regions supports Linear/ReLU layers only, got {type(mod)}")
    return ops


def _area_fast(v: np.ndarray) -> float:
    """Shoelace area of a CCW polygon ``[m, 2]`` (no checks; hot loop)."""
    x, y = v[:, 0], v[:, 1]
    return 0.5 * float(x[:-1] @ y[1:] - x[1:] @ y[:-1] + x[-1] * y[0] - x[0] * y[-1])


def _ragged(verts: list[np.ndarray]):
    """Concatenate polygons: → (all vertices ``[N, 2]``, owner ``[N]``, start offsets ``[R]``,
    index of each vertex's successor within its polygon ``[N]``)."""
    counts = np.fromiter((len(v) for v in verts), dtype=np.int64, count=len(verts))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    owner = np.repeat(np.arange(len(verts)), counts)
    succ = np.arange(1, counts.sum() + 1)
    succ[starts + counts - 1] = starts
    return np.concatenate(verts), owner, starts, succ


def _centroids_areas(verts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Area centroids ``[R, 2]`` and areas ``[R]`` of many polygons at once."""
    v, owner, starts, succ = _ragged(verts)
    # Shift each polygon to its first vertex so that the shoelace terms stay well conditioned.
    o = v[starts]
    p = v - o[owner]
    q = p[succ]
    cr = p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1]
    a2 = np.add.reduceat(cr, starts)
    s = np.add.reduceat((p + q) * cr[:, None], starts, axis=0)
    safe = np.where(np.abs(a2) > 1e-300, a2, 1.0)
    cen = np.where(
        (np.abs(a2) > 1e-300)[:, None],
        o + s / (3.0 * safe[:, None]),
        np.add.reduceat(v, starts, axis=0) / np.diff(np.append(starts, len(v)))[:, None],
    )
    return cen, 0.5 * a2


def _split_region(v0, z0, cand, tol, min_area) -> list[np.ndarray]:
    """Cut one convex polygon by the zero lines of the neurons ``cand`` (pre-activations
    ``z0 [m, h]`` at its vertices, tolerances ``tol [h]``) into pieces of constant sign."""
    pieces = []
    stack = [(v0, z0, cand)]
    while stack:
        v, z, cand = stack.pop()
        if len(cand):
            zc = z[:, cand]
            tc = tol[cand]
            # A neuron that misses the parent misses its pieces too: the list only shrinks.
            cand = cand[(zc > tc).any(0) & (zc < -tc).any(0)]
        if not len(cand):
            pieces.append(v)
            continue
        i, rest = cand[0], cand[1:]
        pos, neg = _split_by_values(v, z[:, i], tol[i], z)
        if pos is None or neg is None or min(_area_fast(pos[0]), _area_fast(neg[0])) < min_area:
            # A rounding sliver: keep the piece whole; its centroid decides the sign.
            stack.append((v, z, rest))
            continue
        # The new vertices lie on neuron i's line by construction; make that exact.
        pos[1][:, i] = 0.0
        neg[1][:, i] = 0.0
        stack.append((pos[0], pos[1], rest))
        stack.append((neg[0], neg[1], rest))
    return pieces


def linear_regions(mlp: nn.Module, bounds=(-1.0, 1.0, -1.0, 1.0)) -> list[Region]:
    """Exact partition of the box ``bounds = (xmin, xmax, ymin, ymax)`` into linear regions.

    ``mlp`` is an ``nn.Sequential`` of ``Linear``/``ReLU`` layers with 2 inputs (any depth, any
    output size); every ``ReLU`` counts as one hidden layer. Each region's polygon is cut by
    each neuron's zero line in turn, so inside every returned region the activation pattern is
    constant and the network equals ``A x + c`` exactly (float64). A cut that would leave a
    piece smaller than ``1e-12`` of the domain area is skipped (a rounding sliver): the piece
    stays whole and takes the sign at its centroid, so the regions still tile the box.

    Cost grows with the number of regions, not neurons²: a width-64, 4-hidden-layer MLP with
    ~15k regions takes a few seconds on one core.

    Returns a list of :class:`Region`; their areas sum to the box's area.
    """
    ops = _mlp_ops(mlp)
    first = next((w for kind, w, _ in ops if kind == "linear"), None)
    if first is None or first.shape[1] != 2:
        raise ValueError("linear_regions needs an MLP whose first Linear has in_features == 2")
    box = box_polygon(bounds)
    min_area = _SLIVER_RTOL * polygon_area(box)
    scale = float(np.abs(box).max())

    verts: list[np.ndarray] = [box]
    patterns: list[np.ndarray] = []  # one bool [R, h_l] per hidden layer so far
    # The representation at the current point of the network, as an affine map of the input.
    amap = np.eye(2)[None]  # [R, d, 2]
    cmap = np.zeros((1, 2))  # [R, d]
    hidden_a, hidden_c = amap, cmap

    for kind, w, b in ops:
        if kind == "linear":
            n_reg, d_in = amap.shape[0], amap.shape[1]
            # One BLAS call for all regions: [o, d] @ [d, R·2].
            flat = amap.transpose(1, 0, 2).reshape(d_in, 2 * n_reg)
            amap = (w @ flat).reshape(w.shape[0], n_reg, 2).transpose(1, 0, 2).copy()
            cmap = cmap @ w.T + b
            continue
        # Pre-activations z = g x + d at every vertex of every region, all at once.
        vc, owner, starts, _ = _ragged(verts)
        z_all = vc[:, :1] * amap[owner, :, 0] + vc[:, 1:] * amap[owner, :, 1] + cmap[owner]
        tol = _SIDE_RTOL * (np.abs(amap).sum(2) * scale + np.abs(cmap))  # [R, h]
        t_v = tol[owner]
        mixed = np.logical_or.reduceat(z_all > t_v, starts) & np.logical_or.reduceat(
            z_all < -t_v, starts
        )
        ends = np.append(starts[1:], len(vc))
        new_v: list[np.ndarray] = []
        new_owner: list[int] = []
        for r in range(len(verts)):
            cand = np.flatnonzero(mixed[r])
            if not len(cand):
                new_v.append(verts[r])
                new_owner.append(r)
                continue
            z0 = z_all[starts[r] : ends[r]]
            pieces = _split_region(verts[r], z0, cand, tol[r], min_area)
            new_v.extend(pieces)
            new_owner.extend([r] * len(pieces))
        own = np.asarray(new_owner, dtype=np.int64)
        cen, _ = _centroids_areas(new_v)
        g, d = amap[own], cmap[own]
        # The centroid is interior to its piece, so its sign is the piece's pattern.
        mask = (np.einsum("rhk,rk->rh", g, cen) + d) > 0
        verts = new_v
        patterns = [p[own] for p in patterns] + [mask]
        amap, cmap = g * mask[..., None], d * mask
        hidden_a, hidden_c = amap, cmap

    _, areas = _centroids_areas(verts)
    return [
        Region(
            vertices=verts[r],
            pattern=tuple(p[r] for p in patterns),
            A=amap[r],
            c=cmap[r],
            hidden_A=hidden_a[r],
            hidden_c=hidden_c[r],
            area=float(areas[r]),
        )
        for r in range(len(verts))
    ]


def _line_in_polygon(v: np.ndarray, z: np.ndarray, tol: float) -> np.ndarray | None:
    """The segment ``[2, 2]`` where an affine function (values ``z [m]`` at the convex
    polygon's vertices ``v [m, 2]``) vanishes, or ``None`` if it meets the polygon in ≤ 1 point."""
    m = len(z)
    nxt = np.arange(1, m + 1) % m
    on = np.abs(z) <= tol
    pos, neg = z > tol, z < -tol
    ke = np.flatnonzero((pos & neg[nxt]) | (neg & pos[nxt]))
    kn = nxt[ke]
    t = z[ke] / (z[ke] - z[kn])
    pts = np.concatenate([v[on], v[ke] + t[:, None] * (v[kn] - v[ke])])
    if len(pts) < 2:
        return None
    # The points are collinear: the two extremes along the spread direction bound the segment.
    dirn = pts.max(0) - pts.min(0)
    axis = int(np.argmax(dirn))
    if dirn[axis] <= 0:
        return None
    return np.stack([pts[np.argmin(pts[:, axis])], pts[np.argmax(pts[:, axis])]])


def decision_boundary(regions: list[Region], *, return_classes: bool = False):
    """Exact decision boundary of the network as line segments.

    For 2 outputs this is where the logit gap ``l₁ − l₀`` vanishes; for more, where the top
    logit switches between two classes ``k < j`` (``l_k = l_j ≥`` all other logits). Inside
    each region the logits are affine, so every piece is a line clipped to a convex polygon.
    A single-output network is read as a binary classifier by the sign of its logit.

    Returns float64 ``[S, 2, 2]`` (segment, endpoint, xy) — ready for matplotlib's
    ``LineCollection`` — and, with ``return_classes``, also int ``[S, 2]`` class pairs.
    Segments lying along a region edge may be reported by both adjacent regions.
    """
    segs, pairs = [], []
    for reg in regions:
        A, c, v = reg.A, reg.c, reg.vertices
        n_out = A.shape[0]
        if n_out == 1:
            A, c = np.concatenate([np.zeros((1, 2)), A]), np.concatenate([[0.0], c])
            n_out = 2
        scale = np.abs(v).max()
        for k in range(n_out):
            for j in range(k + 1, n_out):
                a = A[j] - A[k]
                b = c[j] - c[k]
                tol = _SIDE_RTOL * (np.abs(a).sum() * scale + abs(b) + 1.0)
                if not np.any(np.abs(a) > tol):
                    continue  # the gap is constant here: no line (or a degenerate tie)
                poly = v
                # Where l_k = l_j, both must beat every other class.
                for o in range(n_out):
                    if o in (k, j) or len(poly) < 3:
                        continue
                    poly = clip_polygon(poly, A[k] - A[o], c[k] - c[o])
                if len(poly) < 2:
                    continue
                seg = _line_in_polygon(poly, poly @ a + b, tol)
                if seg is not None:
                    segs.append(seg)
                    pairs.append((k, j))
    out = np.array(segs, dtype=np.float64).reshape(-1, 2, 2)
    if return_classes:
        return out, np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return out


def _local_index(counts: np.ndarray) -> np.ndarray:
    """``[0..n₀), [0..n₁), …`` concatenated, for ``counts = [n₀, n₁, …]``."""
    return np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)


def locate(regions: list[Region], points, tol: float = 1e-10) -> np.ndarray:
    """Index of the region containing each of ``points [n, 2]`` (``−1`` if none).

    Vectorised: a uniform grid over the regions' bounding boxes gives each point a short list
    of candidate regions, then one padded half-plane test runs on all (point, candidate)
    pairs. A point on a shared edge gets the lowest region index. Returns int64 ``[n]``.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    out = np.full(len(p), -1, dtype=np.int64)
    n_reg = len(regions)
    if not n_reg or not len(p):
        return out
    m = max(len(r.vertices) for r in regions)
    # Pad each polygon by repeating its last vertex; zero-length edges never reject a point.
    poly = np.stack(
        [np.concatenate([r.vertices, np.repeat(r.vertices[-1:], m - len(r.vertices), 0)])
         for r in regions]
    )  # fmt: skip
    lo, hi = poly.min(1) - tol, poly.max(1) + tol
    e = np.roll(poly, -1, axis=1) - poly
    ln = np.hypot(e[..., 0], e[..., 1])
    ln = np.where(ln > 0, ln, 1.0)

    # Grid index: about one region per cell; each region is listed in every cell its
    # bounding box touches.
    g = max(1, int(np.ceil(np.sqrt(n_reg))))
    org = lo.min(0)
    size = np.maximum(hi.max(0) - org, 1e-300) / g
    c0 = np.clip(((lo - org) / size).astype(np.int64), 0, g - 1)  # [R, 2]
    c1 = np.clip(((hi - org) / size).astype(np.int64), 0, g - 1)
    wx, wy = c1[:, 0] - c0[:, 0] + 1, c1[:, 1] - c0[:, 1] + 1
    nc = wx * wy
    reg = np.repeat(np.arange(n_reg), nc)
    k = _local_index(nc)
    cell = (c0[reg, 1] + k // wx[reg]) * g + c0[reg, 0] + k % wx[reg]
    order = np.lexsort((reg, cell))  # by cell, then region index
    cell_reg = reg[order]
    ptr = np.concatenate([[0], np.cumsum(np.bincount(cell, minlength=g * g))])

    pc = np.floor((p - org) / size).astype(np.int64)
    inside_grid = ((pc >= 0) & (pc < g)).all(1)
    # Chunk the points so that the pair arrays stay small.
    step = 20_000
    for s in range(0, len(p), step):
        sl = np.arange(s, min(s + step, len(p)))
        sl = sl[inside_grid[sl]]
        pcell = pc[sl, 1] * g + pc[sl, 0]
        cnt = ptr[pcell + 1] - ptr[pcell]
        pi = np.repeat(np.arange(len(sl)), cnt)
        ri = cell_reg[np.repeat(ptr[pcell], cnt) + _local_index(cnt)]
        d = p[sl[pi], None, :] - poly[ri]
        cross = (e[ri, :, 0] * d[..., 1] - e[ri, :, 1] * d[..., 0]) / ln[ri]
        hit = (cross >= -tol).all(1)
        pi, ri = pi[hit], ri[hit]
        # Pairs are grouped by point with ascending region index: the first hit is the lowest.
        first = np.unique(pi, return_index=True)[1]
        out[sl[pi[first]]] = ri[first]
    return out


# --------------------------------------------------------------------------- NNK geometry


def kri_halfplane(x_q, x_j) -> tuple[np.ndarray, float]:
    """Kernel Ratio Interval half-plane of neighbour ``x_j [2]`` for query ``x_q [2]``.

    For a Gaussian kernel, another candidate ``x_l`` can keep a positive NNK weight next to
    ``x_j`` only if it lies strictly on the query's side of the line through ``x_j``
    orthogonal to ``x_j − x_q``. Returns ``(normal [2], offset)`` with unit ``normal``
    pointing towards the query, so the query side is ``{x : normal·x + offset > 0}``.
    """
    q = np.asarray(x_q, dtype=np.float64).reshape(2)
    j = np.asarray(x_j, dtype=np.float64).reshape(2)
    n = q - j
    ln = float(np.hypot(*n))
    if ln == 0:
        raise ValueError("kri_halfplane: x_j coincides with the query")
    n = n / ln
    return n, -float(n @ j)


def nnk_polytope(x_q, neighbours, bounds) -> np.ndarray:
    """The query's NNK polytope: the box ``bounds`` cut by each neighbour's KRI half-plane.

    ``x_q [2]``; ``neighbours [k, 2]`` the NNK-selected neighbours (positive weights). Returns
    the CCW polygon ``[m, 2]`` of points on the query's side of every KRI line, inside the box.
    """
    poly = box_polygon(bounds)
    for x_j in np.asarray(neighbours, dtype=np.float64).reshape(-1, 2):
        a, b = kri_halfplane(x_q, x_j)
        poly = clip_polygon(poly, a, b)
        if len(poly) < 3:
            return np.zeros((0, 2))
    return poly
