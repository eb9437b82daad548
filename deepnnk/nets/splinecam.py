"""Exact 1-D partitions of the paper's CNN along segments between images (SplineCam in 1-D).

:class:`~deepnnk.nets.models.PaperCNN` (conv → ReLU, max-pool 2×2 after convs 2, 4, 6, NHWC
flatten, fc; dropout is the identity in eval mode) is continuous and piecewise affine. Along a
segment ``x(t) = x_q + t·(x_j − x_q)``, ``t ∈ [0, 1]``, it is affine in ``t`` on each *piece*:
an interval on which every ReLU's sign and every max-pool window's argmax stay fixed (the
activation pattern). :func:`segment_partitions` walks the pieces exactly, in float64:

1. At the start ``t0`` of a piece, one pass carries every unit's value ``v`` at ``t0`` and its
   tangent ``s = d/dt`` together (forward-mode AD by hand: each conv runs once on the doubled
   batch ``[v; s]``, the bias added to ``v`` only). Inside the piece a unit is ``v + s·(t − t0)``.
2. The pattern is the *right limit* at ``t0``: a ReLU input or a pool candidate that ties at
   ``t0`` (as the unit that just crossed does) is decided by its tangent. That is why the pass is
   written by hand rather than with ``torch.func.jvp``: autograd follows PyTorch's own ties
   (``relu'(0) = 0``, the first max in a pool window), which at a breakpoint can give the piece to
   the *left*; and two passes at ``t0`` and ``t0 + h`` would need an ``h`` smaller than the
   unknown piece.
3. The piece ends at the first ``t > t0`` where a ReLU input reaches 0 heading across, or a
   pool candidate overtakes its window's argmax (pairwise crossing), over all layers at once.

Ties use an absolute tolerance of ``RTOL × (max|v| + max|s|)`` per layer and segment: values
within it of the switch count as at the switch (rounding, not geometry). Pieces are therefore
never shorter than ``RTOL`` in ``t``; a pattern flip that would last less than that is absorbed,
which changes the network's output by at most that tolerance.

Each conv's pre-activation is cached as its affine map in ``t``; it stays exact until an
earlier layer switches, so a step reruns only the convs after the first switched layer (most
switches are in layers 1-2, and conv 2 is most of the cost: about 2x fewer FLOPs per piece).
Several segments advance in lockstep, one piece each per pass, so segments sharing a query
(``x_q`` broadcast) cost one batched pass per step. Units are never looped over in Python.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from deepnnk.nets.models import PaperCNN

__all__ = [
    "RTOL",
    "SegmentPartition",
    "activation_patterns",
    "segment_partition",
    "segment_partitions",
]

RTOL = 1e-11
# Breakpoint causes: 0..5 = ReLU after conv i, 6..8 = max-pool after conv 2, 4, 6.
CAUSES = tuple(f"relu{i + 1}" for i in range(6)) + ("pool1", "pool2", "pool3")
_IMAGE = (3, 32, 32)


@dataclass(eq=False)
class SegmentPartition:
    """The exact pieces of a PaperCNN along ``x(t) = x_q + t·(x_j − x_q)``, ``t ∈ [0, 1]``.

    ``breaks [P+1]`` float64, ``0 = breaks[0] < … < breaks[P] = 1``: piece ``i`` is
    ``[breaks[i], breaks[i+1]]``. ``digests [P]`` (``S16``): a hash of each piece's activation
    pattern (ReLU signs, pool argmaxes); neighbours always differ. ``logit_intercept [P, K]`` and
    ``logit_slope [P, K]``: the logits on piece ``i`` are exactly ``c_i + A_i·t``. ``cause [P−1]``
    indexes :data:`CAUSES` (which layer's unit switched at each interior break) and
    ``cause_unit [P−1]`` that unit's flat index within its layer (``C·H·W`` order; for a pool,
    the pooled output whose argmax changed). ``decision_t [D]``, ``decision_from [D]``,
    ``decision_to [D]``: where the top class changes, from which class to which. ``length``:
    ``‖x_j − x_q‖₂`` in pixels/255 units, so pieces per unit length is ``n_pieces / length``.
    """

    breaks: np.ndarray
    digests: np.ndarray
    logit_intercept: np.ndarray
    logit_slope: np.ndarray
    cause: np.ndarray
    cause_unit: np.ndarray
    decision_t: np.ndarray
    decision_from: np.ndarray
    decision_to: np.ndarray
    length: float

    @property
    def n_pieces(self) -> int:
        return len(self.breaks) - 1

    @property
    def pieces(self) -> np.ndarray:
        """``[P, 2]``: each piece's ``[t0, t1]``."""
        return np.stack([self.breaks[:-1], self.breaks[1:]], axis=1)

    def piece_index(self, t) -> np.ndarray:
        """The piece holding each ``t [n]`` in [0, 1] (at a break, the piece to its right)."""
        t = np.asarray(t, dtype=np.float64)
        return np.clip(np.searchsorted(self.breaks, t, side="right") - 1, 0, self.n_pieces - 1)

    def logits(self, t) -> np.ndarray:
        """The logits ``[n, K]`` at ``t [n]`` from the pieces' affine maps."""
        t = np.asarray(t, dtype=np.float64).reshape(-1)
        i = self.piece_index(t)
        return self.logit_intercept[i] + self.logit_slope[i] * t[:, None]


def _as_images(x, name: str, device, allow_single: bool) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if allow_single and tuple(x.shape) == _IMAGE:
        x = x[None]
    if x.ndim != 4 or tuple(x.shape[1:]) != _IMAGE:
        raise ValueError(
            f"{name} must be float images [N, 3, 32, 32] (NCHW, pixels/255; one image may be "
            f"[3, 32, 32]), got {tuple(x.shape)}; convert uint8 HWC arrays with "
            "deepnnk.nets.data.to_tensor"
        )
    if not x.is_floating_point():
        raise ValueError(f"{name} must be floating point pixels/255, got {x.dtype}")
    x = x.detach().to(device=device, dtype=torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or inf; check how the images were loaded")
    return x


def _weights(model) -> tuple[list, list, torch.Tensor, torch.Tensor]:
    """float64 copies of the convs' and fc's parameters (the caller's model is not touched)."""
    if not isinstance(model, PaperCNN):
        raise TypeError(
            f"segment_partitions needs a deepnnk.nets.models.PaperCNN, got "
            f"{type(model).__name__}; load one with deepnnk.nets.loading.load_network"
        )

    def f64(p):
        return p.detach().to(torch.float64).clone()

    return (
        [f64(c.weight) for c in model.convs],
        [f64(c.bias) for c in model.convs],
        f64(model.fc.weight),
        f64(model.fc.bias),
    )


def _tol(v: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Per-sample tie tolerance ``[n, 1, …]`` for one layer's values ``v`` and tangents ``s``."""
    dims = tuple(range(1, v.ndim))
    scale = v.abs().amax(dims, keepdim=True) + s.abs().amax(dims, keepdim=True)
    return RTOL * scale + 1e-300


def _relu(v, s):
    """Right-limit ReLU: ``(active, v_out, s_out, dt)`` with ``dt`` the time to each unit's next
    sign change (inf when it moves away from 0)."""
    tol = _tol(v, s)
    zero = v.abs() <= tol
    active = (v > tol) | (zero & (s > 0))
    inf = torch.full_like(v, torch.inf)
    # Active units heading down and inactive ones heading up cross at |v| / |s| > tol / |s|.
    heading = torch.where(active, s < 0, s > 0) & ~zero
    dt = torch.where(heading, -v / torch.where(heading, s, 1.0), inf)
    return active, torch.where(active, v, 0.0), torch.where(active, s, 0.0), dt


def _pool(v, s):
    """Right-limit 2×2 max-pool: ``(argmax, v_out, s_out, dt)``; ``argmax [n, C, H/2, W/2]`` in
    0..3 (row-major in the window), ``dt`` the time until another candidate overtakes it."""
    n, c, h, w = v.shape

    def windows(z):
        return (
            z.reshape(n, c, h // 2, 2, w // 2, 2)
            .permute(0, 1, 2, 4, 3, 5)
            .reshape(n, c, h // 2, w // 2, 4)
        )

    tol = _tol(v, s)[..., None]
    vw, sw = windows(v), windows(s)
    near = vw >= vw.amax(-1, keepdim=True) - tol
    sm = torch.where(near, sw, -torch.inf)
    best = near & (sm == sm.amax(-1, keepdim=True))
    # First index among the candidates tied in value (within tol) and tangent.
    arg = torch.argmax(best.to(torch.uint8), dim=-1)
    vb = vw.gather(-1, arg[..., None])
    sb = sw.gather(-1, arg[..., None])
    ds = sw - sb
    # Only candidates with a larger tangent can overtake; near ones never do (argmax rule).
    ahead = (ds > 0) & ~near
    dt = torch.where(ahead, (vb - vw) / torch.where(ahead, ds, 1.0), torch.inf).amin(-1)
    return arg, vb[..., 0], sb[..., 0], dt


def _pass(weights, x, d, cache: dict | None = None, t: torch.Tensor | None = None):
    """Value and tangent through the network at inputs ``x [n, 3, 32, 32]`` along ``d``.

    Returns ``(logits_v [n, K], logits_s [n, K], relus, pools, dts)``: the ReLU patterns (bool
    ``[n, C, H, W]`` per conv), the pool argmaxes (``[n, C, H/2, W/2]`` per pool) and the time to
    the next switch per layer (``[n, units]`` each, in :data:`CAUSES` order).

    With ``cache`` (a dict this function fills; ``t [n, 1, 1, 1]`` the inputs' positions) each
    conv's pre-activation is kept as its affine map ``A + S·t``, valid while no earlier ReLU or
    pool switches; a row then reruns only the convs after its first switched layer. Most
    switches are in the first two layers' ReLUs and pools, and conv 2 (full resolution, 32→32
    channels) is most of the cost, so this skips the bulk of the work at most steps.
    """
    ws, bs, wfc, bfc = weights
    n = len(x)
    if cache is not None and not cache:
        cache.update(A=[None] * 6, S=[None] * 6, relu=[None] * 6, pool=[None] * 3)
    dirty = torch.ones(n, dtype=torch.bool, device=x.device)
    if cache is not None and cache["A"][0] is not None:
        dirty[:] = False
    v, s = x, d
    relus, pools, relu_dt, pool_dt = [], [], [], []
    for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
        if cache is None:
            z = F.conv2d(torch.cat([v, s]), w, padding=1)
            pv, ps = z[:n] + b[:, None, None], z[n:]
        else:
            rows = dirty.nonzero()[:, 0]
            if cache["A"][i] is None:
                z = F.conv2d(torch.cat([v, s]), w, padding=1)
                cache["A"][i], cache["S"][i] = z[:n] + b[:, None, None] - z[n:] * t, z[n:]
            elif len(rows):
                k = len(rows)
                z = F.conv2d(torch.cat([v[rows], s[rows]]), w, padding=1)
                cache["A"][i][rows] = z[:k] + b[:, None, None] - z[k:] * t[rows]
                cache["S"][i][rows] = z[k:]
            ps = cache["S"][i]
            pv = cache["A"][i] + ps * t
        active, v, s, dt = _relu(pv, ps)
        if cache is not None:
            # A switched row reruns every later conv: its later maps are stale from here on.
            if cache["relu"][i] is not None:
                dirty |= (active != cache["relu"][i]).flatten(1).any(1)
            cache["relu"][i] = active
        relus.append(active)
        relu_dt.append(dt.flatten(1))
        if i % 2 == 1:
            arg, v, s, dt = _pool(v, s)
            if cache is not None:
                if cache["pool"][i // 2] is not None:
                    dirty |= (arg != cache["pool"][i // 2]).flatten(1).any(1)
                cache["pool"][i // 2] = arg
            pools.append(arg)
            pool_dt.append(dt.flatten(1))
    f = torch.cat([v, s]).permute(0, 2, 3, 1).flatten(1)  # NHWC, as PaperCNN.features
    out = f @ wfc.T
    return out[:n] + bfc, out[n:], relus, pools, relu_dt + pool_dt


def _digests(relus, pools) -> list[bytes]:
    """One 16-byte blake2b digest of the whole activation pattern per sample."""
    bits = torch.cat([r.flatten(1) for r in relus], 1).cpu().numpy()
    args = torch.cat([p.flatten(1) for p in pools], 1).to(torch.uint8).cpu().numpy()
    packed = np.packbits(bits, axis=1)
    return [
        hashlib.blake2b(packed[k].tobytes() + args[k].tobytes(), digest_size=16).digest()
        for k in range(len(bits))
    ]


def activation_patterns(model, x, direction=None):
    """The activation patterns of ``model`` at images ``x [n, 3, 32, 32]`` (float64).

    With ``direction [n, 3, 32, 32]`` ties are broken as the walk does (the pattern of the piece
    *starting* at ``x`` along ``direction``); without, a tie counts as inactive / first index.
    Returns ``(relus, pools, digests)``: 6 bool arrays ``[n, C, 32|16|8, …]`` (ReLU active),
    3 int arrays ``[n, C, 16|8|4, …]`` (pool argmax 0..3, row-major in the 2×2 window) and the
    ``[n]`` digests (``S16``) that :class:`SegmentPartition` records.
    """
    weights = _weights(model)
    x = _as_images(x, "x", weights[0][0].device, allow_single=True)
    d = (
        torch.zeros_like(x)
        if direction is None
        else _as_images(direction, "direction", x.device, True)
    )
    if d.shape != x.shape:
        raise ValueError(f"direction must match x's shape {tuple(x.shape)}, got {tuple(d.shape)}")
    with torch.no_grad():
        _, _, relus, pools, _ = _pass(weights, x, d)
    digests = np.array(_digests(relus, pools), dtype="S16")
    return [r.cpu().numpy() for r in relus], [p.cpu().numpy() for p in pools], digests


def _top(c, a, t, right: bool) -> np.ndarray:
    """Top class of logits ``c + a·t`` (rows), ties broken by the tangent (right or left limit)."""
    v = c + a * t[:, None]
    tol = RTOL * (np.abs(v).max(1, keepdims=True) + np.abs(a).max(1, keepdims=True))
    near = v >= v.max(1, keepdims=True) - tol
    key = np.where(near, a if right else -a, -np.inf)
    return np.argmax(key, axis=1)


def _decisions(breaks, c, a):
    """``(t, from, to)`` of every top-class change along the pieces (upper envelope of lines)."""
    p = len(c)
    start = _top(c, a, breaks[:-1], right=True)
    end = _top(c, a, breaks[1:], right=False)
    ts, fr, to = [], [], []
    for i in range(p):
        if i and start[i] != end[i - 1]:  # a crossing exactly at a break
            ts.append(breaks[i]), fr.append(end[i - 1]), to.append(start[i])
        k, t = start[i], breaks[i]
        while k != end[i]:  # at most K − 1 steps: each one moves to a steeper line
            gap = (c[i, k] + a[i, k] * t) - (c[i] + a[i] * t)
            ds = a[i] - a[i, k]
            cross = np.where(ds > 0, t + gap / np.where(ds > 0, ds, 1.0), np.inf)
            tn = cross.min()
            if not tn < breaks[i + 1]:
                break
            # Among lines crossing at the same t, the steepest wins to the right.
            j = int(np.argmax(np.where(cross <= tn, a[i], -np.inf)))
            ts.append(tn), fr.append(k), to.append(j)
            k, t = j, tn
    return (
        np.array(ts, dtype=np.float64),
        np.array(fr, dtype=np.int64),
        np.array(to, dtype=np.int64),
    )


def segment_partitions(
    model, x_q, x_j, *, max_pieces: int = 1_000_000, reuse_layers: bool = True
) -> list[SegmentPartition]:
    """Walk the exact pieces of a PaperCNN along each segment ``x_q[m] → x_j[m]``.

    ``model``: a :class:`~deepnnk.nets.models.PaperCNN` (read in float64; not modified).
    ``x_q``: ``[3, 32, 32]`` (shared by all segments) or ``[m, 3, 32, 32]``; ``x_j``:
    ``[m, 3, 32, 32]`` (or one image), float pixels/255 (NCHW, as the model takes), torch or
    numpy. ``max_pieces``: per segment; the walk raises rather than run past it.
    ``reuse_layers=False`` reruns every conv at every piece (the benchmark's baseline; same
    pieces). Returns ``m`` :class:`SegmentPartition` in order. Runs on the model's device.
    """
    weights = _weights(model)
    dev = weights[0][0].device
    xj = _as_images(x_j, "x_j", dev, allow_single=True)
    xq = _as_images(x_q, "x_q", dev, allow_single=True)
    if len(xq) == 1:
        xq = xq.expand_as(xj)
    if xq.shape != xj.shape:
        raise ValueError(
            f"x_q must be one image or match x_j's {len(xj)} images, got {tuple(xq.shape)}"
        )
    d = xj - xq
    length = d.flatten(1).norm(dim=1).cpu().numpy()
    if (length == 0).any():
        raise ValueError(
            f"segments {np.flatnonzero(length == 0).tolist()} have x_q == x_j (zero length); "
            "drop duplicate images before walking"
        )
    m = len(xj)
    t0 = np.zeros(m)
    breaks = [[0.0] for _ in range(m)]
    digs, cs, as_, cause, unit = ([[] for _ in range(m)] for _ in range(5))
    live = np.arange(m)
    cache: dict | None = {} if reuse_layers else None
    with torch.no_grad():
        while len(live):
            t = torch.as_tensor(t0[live], dtype=torch.float64, device=dev)[:, None, None, None]
            lv, ls, relus, pools, dts = _pass(weights, xq[live] + t * d[live], d[live], cache, t)
            mins = torch.stack([dt.amin(1) for dt in dts], 1)  # [n, layers]
            layer = mins.argmin(1)
            step = mins.gather(1, layer[:, None])[:, 0]
            which = torch.stack([dts[int(k)][r].argmin() for r, k in enumerate(layer)])
            step, layer, which = step.cpu().numpy(), layer.cpu().numpy(), which.cpu().numpy()
            lv, ls = lv.cpu().numpy(), ls.cpu().numpy()
            for r, (k, dg) in enumerate(zip(live, _digests(relus, pools), strict=True)):
                if digs[k] and digs[k][-1] == dg:
                    # The same pattern again (a switch within the tolerance): one piece.
                    breaks[k].pop(), cause[k].pop(), unit[k].pop()
                else:
                    digs[k].append(dg), cs[k].append(lv[r] - ls[r] * t0[k]), as_[k].append(ls[r])
                t1 = t0[k] + step[r]
                if t1 >= 1.0:
                    breaks[k].append(1.0)
                else:
                    breaks[k].append(t1)
                    cause[k].append(layer[r]), unit[k].append(which[r])
                    if len(digs[k]) >= max_pieces:
                        raise RuntimeError(
                            f"segment {k} has more than max_pieces={max_pieces} pieces "
                            f"(reached t = {t1:.6g}); pass a larger max_pieces"
                        )
                t0[k] = t1
            keep = t0[live] < 1.0
            if cache and not keep.all():  # drop finished segments' rows from the cache
                rows = torch.as_tensor(np.flatnonzero(keep), device=dev)
                for key in cache:
                    cache[key] = [z[rows] for z in cache[key]]
            live = live[keep]
    out = []
    for k in range(m):
        b, c, a = np.array(breaks[k]), np.array(cs[k]), np.array(as_[k])
        dt_, df, dto = _decisions(b, c, a)
        out.append(
            SegmentPartition(
                breaks=b,
                digests=np.array(digs[k], dtype="S16"),
                logit_intercept=c,
                logit_slope=a,
                cause=np.array(cause[k], dtype=np.int64),
                cause_unit=np.array(unit[k], dtype=np.int64),
                decision_t=dt_,
                decision_from=df,
                decision_to=dto,
                length=float(length[k]),
            )
        )
    return out


def segment_partition(
    model, x_q, x_j, *, max_pieces: int = 1_000_000, reuse_layers: bool = True
) -> SegmentPartition:
    """:func:`segment_partitions` for one segment ``x_q → x_j`` (each ``[3, 32, 32]``)."""
    for name, x in (("x_q", x_q), ("x_j", x_j)):
        if tuple(np.shape(x)) not in (_IMAGE, (1, *_IMAGE)):
            raise ValueError(
                f"{name} must be one image [3, 32, 32], got {tuple(np.shape(x))}; "
                "use segment_partitions for several segments"
            )
    return segment_partitions(model, x_q, x_j, max_pieces=max_pieces, reuse_layers=reuse_layers)[0]
