"""Contextual decomposition (CD) and its hierarchy (ACD) for the paper's CNN, natively in torch.

CD (Murdoch, Liu & Yu 2018; Singh, Murdoch & Yu, ICLR 2019) splits an input into a relevant
part (the pixels inside a mask) and an irrelevant part (the rest), ``x = rel + irrel``, and
carries the two parts through the network so that at every layer ``rel + irrel`` is that
layer's output. The relevant logits are then the part of the prediction that CD attributes to
the masked region, and ``rel + irrel`` equals the model's logits.

>>> rel, irrel = contextual_decomposition(model, images, mask)  # doctest: +SKIP
>>> score = cd_importance(model, images, mask)  # rel logit of the prediction  # doctest: +SKIP
>>> levels = acd_hierarchy(model, image)  # [{"masks": bool [m, 32, 32], ...}]  # doctest: +SKIP

Propagation rules (those of the authors' ``acd/scores/cd_propagate.py``), layer by layer of
:class:`~deepnnk.nets.models.PaperCNN`:

- conv and linear: the weights act on each part alone; the bias is shared in proportion to
  the parts' absolute pre-bias outputs, ``rel += b·|rel|/(|rel|+|irrel|)`` and
  ``irrel += b·|irrel|/(|rel|+|irrel|)``. Where both parts are exactly 0 (a unit whose whole
  receptive field is black, or zeroed by the ReLUs below) the ratio is 0/0. The authors' code
  adds 1e-20 to both magnitudes, which splits such a bias half-half; here it goes to
  ``irrel``. Why: a 0/0 unit receives nothing from the region, and half-half would hand every
  region, even an empty one, half the bias of every dead unit in the image. In the authors'
  trained C = 32 network such units are common: half-half gave an EMPTY mask a relevant logit
  of up to 0.54, which would blur tile scores, ACD gains and a CDEP penalty alike. With the
  bias to ``irrel``, ``rel`` is nonzero only at units the region's pixels reach.
- ReLU: ``rel' = relu(rel)``, ``irrel' = relu(rel + irrel) − relu(rel)``.
- max-pool: both parts are read at the argmax of ``rel + irrel`` (the unit the network itself
  passes on).
- dropout: the identity in eval mode. :func:`cd_propagate` (the differentiable core, meant
  for training-time penalties such as CDEP) also runs in train mode: it then multiplies both
  parts by one shared dropout draw, so ``rel + irrel`` is a forward pass with that draw.
- flatten: NHWC order, as ``PaperCNN.features`` does, then ``fc``.

Consequences worth knowing: a mask of all zeros gives ``rel == 0`` exactly (so does a black
region); a mask of all ones gives an ``irrel`` that is only bias-driven (the 0/0 units' biases
and what they cause above; 0 in a network without dead units); ``rel + irrel`` equals
``model(x)`` up to float rounding (at most 5e-6 on the trained net's logits in float32).
"""

from __future__ import annotations

import math
import operator

import numpy as np
import torch
from scipy import ndimage
from torch.nn import functional as F

from deepnnk.nets.features import check_images, images_to_float
from deepnnk.nets.models import PaperCNN

SIDE = 32  # CIFAR-10 image side, pixels
DEFAULT_BATCH_SIZE = 64
DEFAULT_TILE = 4
DEFAULT_MAX_STEPS = 7  # with the default per_step (1/16 of the tiles), the region reaches half


# --------------------------------------------------------------------------- input checks


def _check_model(model, *, eval_only: bool = True) -> None:
    if not isinstance(model, PaperCNN):
        raise ValueError(
            f"contextual decomposition here knows the layers of deepnnk.nets.models.PaperCNN "
            f"only, got {type(model).__name__}; load the paper's network with "
            "deepnnk.nets.loading.load_network or build a PaperCNN."
        )
    if eval_only and model.training:
        raise ValueError(
            "the model is in train mode (dropout on); call model.eval() first. "
            "cd_propagate accepts train mode if a training-time penalty needs it."
        )


def _model_device_dtype(model: PaperCNN) -> tuple[torch.device, torch.dtype]:
    p = model.fc.weight
    return p.device, p.dtype


def _check_int(value, name: str, *, minimum: int = 1) -> int:
    wanted = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    if isinstance(value, bool):
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be {wanted}, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be {wanted}, got {value}")
    return value


def _as_images(images, model: PaperCNN) -> torch.Tensor:
    """uint8 ``[N, 32, 32, 3]`` or float ``[N, 3, 32, 32]`` pixels/255 → model-dtype NCHW."""
    images = check_images(images)
    if images.dtype not in (np.uint8, torch.uint8):
        x = torch.as_tensor(images)
        if not bool(torch.isfinite(x).all()):
            raise ValueError("images contain NaN or inf; pass finite pixels/255 in [0, 1].")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 1:
            hint = " (it looks like 0..255 pixels: divide by 255)" if hi > 1.5 else ""
            raise ValueError(
                f"float images must be pixels/255 in [0, 1], got values in [{lo:g}, {hi:g}]{hint}."
            )
    else:
        x = images_to_float(images)  # uint8 HWC → float32 NCHW pixels/255
    device, dtype = _model_device_dtype(model)
    # float input goes straight to the model's dtype (images_to_float would round float64 to
    # float32); contiguous, as the uint8 path yields a channels-last view
    return x.to(device=device, dtype=dtype).contiguous()


def _as_mask(mask, n: int, like: torch.Tensor) -> torch.Tensor:
    """A mask → float ``[1|n, 1|3, 32, 32]`` (1 = relevant) in the images' dtype and device.

    Accepts bool or numbers in [0, 1] shaped ``[32, 32]`` (one mask for every image),
    ``[N, 32, 32]`` or ``[N, 1|3, 32, 32]`` (``N`` = the number of images, or 1).
    Fractional values split a pixel between the parts (``rel = x·m``); CD stays exact.
    """
    if isinstance(mask, torch.Tensor):
        m = mask.detach()
    else:
        try:
            m = torch.as_tensor(np.asarray(mask))
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(
                f"mask must be a bool or 0/1 array [32, 32], [N, 32, 32] or [N, 1|3, 32, 32], "
                f"got {type(mask).__name__}"
            ) from err
    if torch.is_complex(m) or not (m.dtype == torch.bool or m.is_floating_point() or _is_int(m)):
        raise ValueError(f"mask must be bool or numbers in [0, 1], got dtype {m.dtype}")
    shape = tuple(m.shape)
    if m.ndim == 2:
        m = m[None, None]
    elif m.ndim == 3:
        m = m[:, None]
    elif not (m.ndim == 4 and m.shape[1] in (1, 3)):
        m = None
    if m is None or m.shape[-2:] != (SIDE, SIDE):
        raise ValueError(
            f"mask must be shaped [32, 32], [N, 32, 32] or [N, 1|3, 32, 32] (True/1 = relevant "
            f"pixel), got {shape}"
        )
    if m.shape[0] not in (1, n):
        raise ValueError(
            f"mask holds {m.shape[0]} masks for {n} images; pass one mask per image, or one "
            "[32, 32] mask for all."
        )
    m = m.to(device=like.device, dtype=like.dtype)
    if not bool(torch.isfinite(m).all()) or float(m.min()) < 0 or float(m.max()) > 1:
        raise ValueError(
            "mask values must lie in [0, 1] (True/1 = relevant pixel, False/0 = irrelevant)."
        )
    return m


def _is_int(t: torch.Tensor) -> bool:
    return not t.is_floating_point() and t.dtype != torch.bool and not torch.is_complex(t)


def _check_target(target, n: int, n_classes: int) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(target.cpu() if isinstance(target, torch.Tensor) else target))
    if not _is_int(t):
        raise ValueError(f"target must be an int class or ints [N], got dtype {t.dtype}")
    if t.ndim == 0:
        t = t.expand(n)
    if t.shape != (n,):
        raise ValueError(
            f"target must be one int or {n} ints (one per image), got {tuple(t.shape)}"
        )
    if int(t.min()) < 0 or int(t.max()) >= n_classes:
        raise ValueError(f"target classes must lie in 0..{n_classes - 1}, got {t.tolist()[:10]}")
    return t.to(torch.int64)


# --------------------------------------------------------------------------- propagation


def _split_bias(rel, irrel, bias, bias_shape):
    """Add ``bias`` to the two parts in proportion to their magnitudes (all to irrel at 0/0)."""
    a, b = rel.abs(), irrel.abs()
    total = a + b
    # clamp before dividing: torch.where would still back-propagate the NaN of 0/0
    share = torch.where(total > 0, a / total.clamp_min(torch.finfo(total.dtype).tiny), 0.0)
    bias = bias.view(bias_shape)
    return rel + bias * share, irrel + bias * (1 - share)


def _conv(rel, irrel, conv):
    both = F.conv2d(torch.cat([rel, irrel]), conv.weight, None, conv.stride, conv.padding)
    rel, irrel = both.chunk(2)
    return _split_bias(rel, irrel, conv.bias, (1, -1, 1, 1))


def _linear(rel, irrel, fc):
    both = F.linear(torch.cat([rel, irrel]), fc.weight)
    rel, irrel = both.chunk(2)
    return _split_bias(rel, irrel, fc.bias, (1, -1))


def _relu(rel, irrel):
    r = torch.relu(rel)
    return r, torch.relu(rel + irrel) - r


def _max_pool(rel, irrel):
    _, idx = F.max_pool2d(rel + irrel, 2, return_indices=True)
    flat = idx.flatten(2)
    return (
        rel.flatten(2).gather(2, flat).view_as(idx),
        irrel.flatten(2).gather(2, flat).view_as(idx),
    )


def cd_propagate(
    model: PaperCNN, rel: torch.Tensor, irrel: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The CD forward pass of a :class:`PaperCNN` for any split of its input, in torch.

    ``rel``, ``irrel``: float ``[N, 3, 32, 32]`` on the model's device and dtype, with
    ``rel + irrel`` the image (pixels/255); any split works (a masked region, a frequency band
    for TRIM). Returns the relevant and irrelevant logits, ``[N, n_classes]`` each, whose sum
    is the model's logits. Differentiable (no ``no_grad`` inside), so a penalty such as CDEP
    can train through it. In train mode each dropout layer draws one mask and applies it to
    both parts; in eval mode dropout is the identity. No batching and light checks: the
    user-facing entry point is :func:`contextual_decomposition`.
    """
    _check_model(model, eval_only=False)
    if rel.shape != irrel.shape or rel.ndim != 4 or tuple(rel.shape[1:]) != (3, SIDE, SIDE):
        raise ValueError(
            f"rel and irrel must both be [N, 3, 32, 32], got {tuple(rel.shape)} and "
            f"{tuple(irrel.shape)}"
        )
    for i, conv in enumerate(model.convs):
        rel, irrel = _relu(*_conv(rel, irrel, conv))
        if model.dropout_p and model.training:
            # one draw for both parts keeps rel + irrel a genuine (dropped-out) forward pass
            keep = F.dropout(torch.ones_like(rel), model.dropout_p, True)
            rel, irrel = rel * keep, irrel * keep
        if i % 2 == 1:
            rel, irrel = _max_pool(rel, irrel)
    # NHWC flatten, as PaperCNN.features does, so fc's columns line up
    rel, irrel = (t.permute(0, 2, 3, 1).flatten(1) for t in (rel, irrel))
    return _linear(rel, irrel, model.fc)


def _cd_batches(model, x, m, batch_size):
    """CD of images ``x`` [N, 3, 32, 32] with masks ``m`` [1|N, 1|3, 32, 32], in batches."""
    rels, irrels = [], []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size]
            mb = m if len(m) == 1 else m[start : start + batch_size]
            rb = xb * mb
            r, i = cd_propagate(model, rb, xb - rb)  # irrel = x − x·m: the parts sum to x exactly
            rels.append(r)
            irrels.append(i)
    return torch.cat(rels), torch.cat(irrels)


def contextual_decomposition(
    model: PaperCNN, images, mask, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """CD logits of the region ``mask`` in each image: ``(rel, irrel)``, numpy ``[N, 10]`` each.

    ``model``: a :class:`PaperCNN` in eval mode. ``images``: float ``[N, 3, 32, 32]``,
    pixels/255 in [0, 1], or uint8 ``[N, 32, 32, 3]`` as ``load_cifar10`` returns them.
    ``mask``: bool or 0/1 (values in [0, 1]) ``[32, 32]`` (the same region in every image),
    ``[N, 32, 32]`` or ``[N, 1|3, 32, 32]`` (per image, per channel); True marks the relevant
    pixels. The input splits as ``rel = x·mask``, ``irrel = x − rel``; the rules are in the
    module docstring. ``rel + irrel`` equals ``model(images)`` up to rounding (logit units).
    Output dtype is the model's (float32 for the paper's nets, float64 for a ``.double()``
    one). Runs without autograd and leaves the model's mode alone.
    """
    _check_model(model)
    batch_size = _check_int(batch_size, "batch_size")
    x = _as_images(images, model)
    m = _as_mask(mask, len(x), x)
    rel, irrel = _cd_batches(model, x, m, batch_size)
    return rel.cpu().numpy(), irrel.cpu().numpy()


def _predict(model, x, batch_size):
    with torch.no_grad():
        return torch.cat(
            [model(x[s : s + batch_size]).argmax(1) for s in range(0, len(x), batch_size)]
        )


def cd_importance(
    model: PaperCNN, images, mask, target=None, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> np.ndarray:
    """The CD score of a region: the relevant logit of the ``target`` class, numpy ``[N]``.

    Arguments as in :func:`contextual_decomposition`; ``target`` is one class or ``[N]``
    classes, by default the model's prediction on each image. Units: logits.
    """
    _check_model(model)
    batch_size = _check_int(batch_size, "batch_size")
    x = _as_images(images, model)
    m = _as_mask(mask, len(x), x)
    n_classes = model.fc.out_features
    t = (
        _predict(model, x, batch_size)
        if target is None
        else _check_target(target, len(x), n_classes)
    )
    rel, _ = _cd_batches(model, x, m, batch_size)
    return rel.gather(1, t.to(rel.device)[:, None])[:, 0].cpu().numpy()


# --------------------------------------------------------------------------- ACD


def _tile_masks(tile_sets, grid: int, tile: int) -> np.ndarray:
    """Boolean tile grids ``[m, grid, grid]`` → pixel masks ``[m, 32, 32]``."""
    return np.repeat(np.repeat(np.asarray(tile_sets, dtype=bool), tile, axis=1), tile, axis=2)


def acd_hierarchy(
    model: PaperCNN,
    image,
    *,
    tile: int = DEFAULT_TILE,
    per_step: int | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    target: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[dict]:
    """Agglomerative contextual decomposition (ACD) of ONE image: a hierarchy of regions.

    Following Singh, Murdoch & Yu (ICLR 2019, Algorithm 1 and the authors' ``agg_2d.py``),
    on a grid of ``tile``×``tile``-pixel tiles, all scored by :func:`cd_importance` for
    ``target`` (default: the model's prediction):

    1. **Seeds.** Level 0 holds the ``per_step`` tiles with the highest CD score, as clusters
       (4-connected components of the selected tiles).
    2. **Growth** (``max_steps`` levels at most, fewer if every tile is taken). Every free
       tile gets a gain: next to a cluster A it is the CD gain of joining it,
       ``CD(A ∪ t) − CD(A)`` (its best over the clusters it touches); elsewhere it is its own
       score ``CD(t)``, the gain of starting a new cluster. The ``per_step`` tiles with the
       largest gain join; clusters that now touch merge. All candidates of a level are scored
       in one batched CD call.
    3. **Merging.** While several clusters remain, the pair (A, B) with the largest gain
       ``CD(A ∪ B) − CD(A) − CD(B)`` (the interaction, i.e. importance of the merge minus that
       of its parts; the authors' code subtracts max(CD(A), CD(B))) merges, one pair a level,
       until one cluster covers the grown region.

    ``image``: float ``[3, 32, 32]`` / ``[1, 3, 32, 32]`` pixels/255, or uint8
    ``[32, 32, 3]`` / ``[1, 32, 32, 3]``. ``tile`` must divide 32; ``per_step`` defaults to
    1/16 of the tiles (4 of the 64 at ``tile=4``), so the default ``max_steps=7`` grows the
    region to half the image.

    Returns a list of levels, first to last, each a dict of plain data:
    ``"masks"``: bool ``[m, 32, 32]``, the clusters; ``"scores"``: float64 ``[m]``, their CD
    importance (logits of ``target``); ``"ids"``: int ``[m]``, cluster ids stable across
    levels (a cluster keeps the smallest id of the clusters it absorbed; new ones get new
    ids); ``"target"``: the class scored. Every cluster of a level is a union of clusters of
    the level before and of new tiles.
    """
    _check_model(model)
    batch_size = _check_int(batch_size, "batch_size")
    tile = _check_int(tile, "tile")
    if SIDE % tile:
        raise ValueError(f"tile must divide 32 (1, 2, 4, 8, 16 or 32), got {tile}")
    grid = SIDE // tile
    n_tiles = grid * grid
    per_step = max(1, n_tiles // 16) if per_step is None else _check_int(per_step, "per_step")
    max_steps = _check_int(max_steps, "max_steps", minimum=0)

    image = image if isinstance(image, (np.ndarray, torch.Tensor)) else np.asarray(image)
    if image.ndim == 3:
        image = image[None]
    x = _as_images(image, model)
    if len(x) != 1:
        raise ValueError(f"acd_hierarchy explains ONE image, got {len(x)}; loop over images.")
    if target is None:
        target = int(_predict(model, x, 1)[0])
    else:
        target = int(_check_target(target, 1, model.fc.out_features)[0])

    def score(tile_sets) -> np.ndarray:
        """CD importance of tile sets ``[k, grid, grid]`` (float64 ``[k]``), one batched call."""
        masks = torch.as_tensor(_tile_masks(tile_sets, grid, tile), device=x.device)
        m = masks[:, None].to(x.dtype)
        rel, _ = _cd_batches(model, x.expand(len(m), -1, -1, -1), m, batch_size)
        return rel[:, target].double().cpu().numpy()

    singles = np.eye(n_tiles, dtype=bool).reshape(n_tiles, grid, grid)
    tile_scores = score(singles).reshape(grid, grid)

    # state: selected tiles, and clusters as (id, bool [grid, grid], score)
    selected = np.zeros((grid, grid), dtype=bool)
    clusters: list[tuple[int, np.ndarray, float]] = []
    next_id = 0
    levels: list[dict] = []

    def record():
        order = sorted(clusters, key=lambda c: c[0])
        levels.append(
            {
                "masks": _tile_masks([c[1] for c in order], grid, tile)
                if order
                else np.zeros((0, SIDE, SIDE), dtype=bool),
                "scores": np.array([c[2] for c in order], dtype=np.float64),
                "ids": np.array([c[0] for c in order], dtype=np.int64),
                "target": target,
            }
        )

    def add_tiles(chosen: np.ndarray):
        """Select ``chosen`` tiles; relabel the clusters, keeping ids and unchanged scores."""
        nonlocal clusters, next_id
        selected[chosen] = True
        labels, n = ndimage.label(selected)  # 4-connectivity: tiles sharing an edge
        new, to_score = [], []
        for k in range(1, n + 1):
            comp = labels == k
            inside = [c for c in clusters if (c[1] & comp).any()]
            same = [c for c in inside if np.array_equal(c[1], comp)]
            if same:
                new.append(same[0])
                continue
            if inside:
                cid = min(c[0] for c in inside)
            else:
                cid, next_id = next_id, next_id + 1
            new.append((cid, comp, math.nan))
            to_score.append(len(new) - 1)
        if to_score:
            s = score([new[j][1] for j in to_score])
            for j, v in zip(to_score, s, strict=True):
                new[j] = (new[j][0], new[j][1], float(v))
        clusters = new

    # 1. seeds: the highest-scoring tiles (stable order breaks ties by tile index)
    flat_order = np.argsort(-tile_scores.ravel(), kind="stable")
    seeds = np.zeros(n_tiles, dtype=bool)
    seeds[flat_order[:per_step]] = True
    add_tiles(seeds.reshape(grid, grid))
    record()

    # 2. growth by the CD gain of each free tile
    for _ in range(max_steps):
        free = ~selected
        if not free.any():
            break
        gain = np.where(free, tile_scores, -np.inf)
        touching = np.zeros((grid, grid), dtype=bool)
        cand_sets, cand_tiles, cand_base = [], [], []
        for _cid, comp, cscore in clusters:
            ring = ndimage.binary_dilation(comp) & free  # default structure: 4-neighbours
            touching |= ring
            for r, c in zip(*np.nonzero(ring), strict=True):
                grown = comp.copy()
                grown[r, c] = True
                cand_sets.append(grown)
                cand_tiles.append((r, c))
                cand_base.append(cscore)
        if cand_sets:
            joined = score(cand_sets) - np.asarray(cand_base)
            gain[touching] = -np.inf  # a touching tile's gain is its best join, set below
            for (r, c), g in zip(cand_tiles, joined, strict=True):
                gain[r, c] = max(gain[r, c], g)
        order = np.argsort(-gain.ravel(), kind="stable")
        take = order[: min(per_step, int(free.sum()))]
        chosen = np.zeros(n_tiles, dtype=bool)
        chosen[take] = True
        add_tiles(chosen.reshape(grid, grid))
        record()

    # 3. merge clusters pairwise by their CD interaction until one covers the grown region
    while len(clusters) > 1:
        pairs = [(i, j) for i in range(len(clusters)) for j in range(i + 1, len(clusters))]
        merged = [clusters[i][1] | clusters[j][1] for i, j in pairs]
        s = score(merged)
        gains = [s[k] - clusters[i][2] - clusters[j][2] for k, (i, j) in enumerate(pairs)]
        best = int(np.argmax(gains))
        i, j = pairs[best]
        union = (min(clusters[i][0], clusters[j][0]), merged[best], float(s[best]))
        clusters = [c for k, c in enumerate(clusters) if k not in (i, j)] + [union]
        record()
    return levels
