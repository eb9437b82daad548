"""Figures of notebook 06 (reality checks), drawn from the plain data of
:mod:`deepnnk.nets.cd`, :mod:`deepnnk.studies.decoy` and :mod:`deepnnk.studies.reality_checks`:

- :func:`acd_figure`, :func:`acd_figures`: the ACD hierarchy of an image, level by level, each
  cluster a translucent region coloured by its CD score (one diverging colour bar, in logits);
- :func:`decoy_examples`: Decoy-CIFAR images with the patch outlined;
- :func:`decoy_accuracy`: clean / random-decoy / swapped-decoy accuracy of each trained model,
  mean over seeds with every seed as a dot, chance dashed;
- :func:`reliance_scatter`: each method's reliance score against the true reliance
  (clean − swap), Spearman ρ in the titles;
- :func:`decoy_auc`: per-image AUC of "this prediction was caused by the decoy", chance dashed;
- :func:`sanity_figure`: the cascading-randomisation curves (Adebayo et al. 2018), with the
  per-query interquartile band;
- :func:`identical_class_figure`: the identical-class test (Hanawa et al. 2021);
- :func:`tile_maps`: query images beside their gradient / CD maps.

Every function takes plain data, applies the book's style (:func:`deepnnk.figures.style.use`),
fits the book's width, keeps legends off the data and returns the figure without saving it
(the notebook calls :func:`deepnnk.figures.output.publish`). Methods keep one colour and one
marker throughout (:data:`METHOD_COLOURS`, :data:`METHOD_MARKERS`), so that no panel relies on
colour alone.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import colors as mcolors
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import PercentFormatter

from deepnnk.figures import style
from deepnnk.nets.data import CLASSES

_C = style.METHOD_COLOURS

#: Readable names of the explanation methods (keys of the studies' dicts).
METHOD_LABELS = {
    "gradient": "gradient",
    "gradient_input": "gradient × input",
    "cd": "CD",
    "nnk": "NNK",
    "knn": "kernel kNN",
    "last_layer_cosine": "last-layer cosine",
    "gradient_cosine": "gradient cosine",
}
#: One colour per method (seaborn's "deep" palette; NNK and kNN as in every chapter).
METHOD_COLOURS = {
    "gradient": "#c44e52",
    "gradient_input": "#937860",
    "cd": "#4c72b0",
    "nnk": _C["NNK"],
    "knn": _C["kNN"],
    "last_layer_cosine": "#8c8c8c",
    "gradient_cosine": "#8172b3",
}
#: One marker per method, so that the curves differ without colour.
METHOD_MARKERS = {
    "gradient": "v",
    "gradient_input": "^",
    "cd": "D",
    "nnk": "o",
    "knn": "s",
    "last_layer_cosine": "P",
    "gradient_cosine": "X",
}
#: The y label of each similarity measure of :func:`sanity_figure`.
SIMILARITY_LABELS = {
    "spearman": "Spearman ρ with the\noriginal model's map",
    "weighted_jaccard": "weighted Jaccard with the\noriginal model's support",
}
#: Reliance scores of :func:`reliance_scatter`: what each method's score measures.
RELIANCE_LABELS = {
    "cd": "patch share of\nthe logit (CD)",
    "gradient_input": "patch share of\ngradient × input",
    "gradient": "patch share of\nthe gradient",
    "nnk": "NNK weight on same-decoy,\nother-class neighbours",
    "knn": "kNN weight on same-decoy,\nother-class neighbours",
}
#: The three test sets of :func:`decoy_accuracy`: (key of a decoy_run dict, label, colour).
DECOY_SETS = (
    ("clean", "clean (no patch)", "#4c72b0"),
    ("random", "random-level patch", "#ccb974"),
    ("swap", "swapped-level patch", "#c44e52"),
)
#: Readable names of the penalties of :func:`deepnnk.studies.decoy.decoy_run`.
PENALTY_LABELS = {"none": "no penalty", "cdep": "CDEP", "rrr": "RRR"}
_PENALTY_ORDER = {"none": 0, "cdep": 1, "rrr": 2}
#: Colours of the model kinds in :func:`reliance_scatter` (none of the methods' colours).
KIND_COLOURS = {"no penalty": "#333333", "CDEP": "#64b5cd", "RRR": "#da8bc3"}
_EXTRA_KIND_COLOURS = ("#ccb974", "#8c613c", "#a2c8ec")
#: Chance accuracy on CIFAR-10's ten classes.
CHANCE_ACCURACY = 0.1
#: Colour map of CD scores: diverging, centred at 0 (red: for the class, blue: against it).
CD_CMAP = "RdBu_r"
#: Most levels :func:`acd_figures` shows in a row (panels of about an inch at book width).
MAX_LEVELS = 5
#: Colour of the patch outline in :func:`decoy_examples`.
PATCH_COLOUR = "#f0e442"


def method_label(name: str) -> str:
    """The readable name of a method key ("gradient_input" → "gradient × input")."""
    return METHOD_LABELS.get(name, name)


def _colour(name: str, n: int) -> str:
    return METHOD_COLOURS.get(name, _C.get(name, f"C{n % 10}"))


def _marker(name: str) -> str:
    return METHOD_MARKERS.get(name, "o")


# --------------------------------------------------------------------------- images


def _hwc(image) -> np.ndarray:
    """An image as float HWC in [0, 1]: uint8 ``[32, 32, 3]`` or float pixels/255 ``[3, 32, 32]``
    / ``[32, 32, 3]`` (a leading batch axis of 1 is dropped)."""
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    img = np.asarray(image)
    if img.ndim == 4 and img.shape[0] == 1:
        img = img[0]
    if img.ndim != 3 or 3 not in (img.shape[0], img.shape[-1]):
        raise ValueError(
            f"an image must be uint8 [H, W, 3] or float pixels/255 [3, H, W], got {img.shape}."
        )
    if img.shape[-1] != 3:
        img = np.moveaxis(img, 0, -1)
    if img.dtype == np.uint8:
        return img.astype(np.float64) / 255.0
    img = img.astype(np.float64)
    if not np.isfinite(img).all() or img.min() < 0 or img.max() > 1:
        raise ValueError("float images must be pixels/255 in [0, 1] (divide 0..255 pixels by 255).")
    return img


def _images(images, name: str = "images") -> list[np.ndarray]:
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    images = list(images)
    if not images:
        raise ValueError(f"{name} is empty: pass at least one image.")
    return [_hwc(im) for im in images]


def _image_axes(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


# --------------------------------------------------------------------------- ACD


def _check_levels(levels, where: str = "levels") -> list[dict]:
    levels = list(levels)
    if not levels:
        raise ValueError(f"{where} is empty: pass acd_hierarchy's list of levels.")
    for i, level in enumerate(levels):
        missing = {"masks", "scores", "ids"} - set(level)
        if missing:
            raise ValueError(
                f"{where}[{i}] lacks {sorted(missing)}: pass acd_hierarchy's levels "
                '(dicts with "masks", "scores", "ids", "target").'
            )
        m, s, ids = (np.asarray(level[k]) for k in ("masks", "scores", "ids"))
        if m.ndim != 3 or not (len(m) == len(s) == len(ids)):
            raise ValueError(
                f"{where}[{i}]: masks [m, H, W], scores [m] and ids [m] must agree, got "
                f"{m.shape}, {s.shape} and {ids.shape}."
            )
    return levels


def select_levels(n_levels: int, max_levels: int) -> list[int]:
    """Indices of at most ``max_levels`` of ``n_levels`` levels, evenly spread, always the first
    and the last."""
    if max_levels < 1:
        raise ValueError(f"max_levels must be positive, got {max_levels}.")
    if n_levels <= max_levels:
        return list(range(n_levels))
    if max_levels == 1:
        return [n_levels - 1]
    return sorted({int(round(v)) for v in np.linspace(0, n_levels - 1, max_levels)})


def _anchor(mask: np.ndarray) -> tuple[float, float]:
    """(row, col) of the mask's pixel nearest its centroid: inside the region even if it is not
    convex."""
    rows, cols = np.nonzero(mask)
    r0, c0 = rows.mean(), cols.mean()
    k = int(np.argmin((rows - r0) ** 2 + (cols - c0) ** 2))
    return float(rows[k]), float(cols[k])


def _draw_level(ax, image, level, norm, cmap, alpha) -> None:
    grey = image.mean(-1)
    ax.imshow(grey, cmap="gray", vmin=0, vmax=1, alpha=0.45, interpolation="nearest")
    masks = np.asarray(level["masks"], dtype=bool)
    overlay = np.zeros((*masks.shape[1:], 4))
    for mask, score in zip(masks, np.asarray(level["scores"], dtype=float), strict=True):
        overlay[mask] = (*cmap(norm(score))[:3], alpha)
    ax.imshow(overlay, interpolation="nearest")
    for mask, cid in zip(masks, np.asarray(level["ids"]), strict=True):
        if not mask.any():
            continue
        padded = np.pad(mask.astype(float), 1)  # closes the outline along the image's edge
        rows, cols = np.arange(-1, mask.shape[0] + 1), np.arange(-1, mask.shape[1] + 1)
        ax.contour(cols, rows, padded, levels=[0.5], colors="k", linewidths=0.8)
        r, c = _anchor(mask)
        ax.text(c, r, str(int(cid)), ha="center", va="center", fontsize=7, fontweight="bold")


def acd_figures(
    images,
    hierarchies,
    classes: Sequence[str] = CLASSES,
    *,
    max_levels: int = 5,
    alpha: float = 0.65,
):
    """ACD hierarchies of several images, one row per image: the image (titled with the class
    explained), then up to ``max_levels`` (at most :data:`MAX_LEVELS`) of its levels
    (:func:`select_levels`: evenly spread, the first and the last always shown). Each cluster
    is a translucent region coloured by its CD score on a diverging map centred at 0 (one
    colour bar for the whole figure, in logits of each row's class), outlined and labelled with
    its id, which is stable across levels.

    ``images``: ``[n]`` images, uint8 ``[32, 32, 3]`` or float pixels/255 ``[3, 32, 32]``;
    ``hierarchies``: ``[n]`` lists of levels as :func:`deepnnk.nets.cd.acd_hierarchy` returns
    them (dicts with ``"masks"`` bool ``[m, 32, 32]``, ``"scores"`` ``[m]``, ``"ids"`` ``[m]``,
    ``"target"``); ``classes``: the class names indexed by ``"target"``."""
    style.use()
    imgs = _images(images)
    hierarchies = list(hierarchies)
    if len(hierarchies) != len(imgs):
        raise ValueError(f"{len(imgs)} images but {len(hierarchies)} hierarchies.")
    hierarchies = [_check_levels(h, f"hierarchies[{i}]") for i, h in enumerate(hierarchies)]
    for i, (img, levels) in enumerate(zip(imgs, hierarchies, strict=True)):
        for level in levels:
            if np.asarray(level["masks"]).shape[1:] != img.shape[:2]:
                raise ValueError(
                    f"hierarchies[{i}]: masks {np.asarray(level['masks']).shape[1:]} do not "
                    f"match the image {img.shape[:2]}."
                )
    max_levels = min(max_levels, MAX_LEVELS)
    picks = [select_levels(len(h), max_levels) for h in hierarchies]
    top = max(
        (
            float(np.abs(np.asarray(h[j]["scores"], dtype=float)).max(initial=0.0))
            for h, p in zip(hierarchies, picks, strict=True)
            for j in p
        ),
        default=0.0,
    )
    top = top if top > 0 else 1.0
    norm = mcolors.Normalize(-top, top)
    cmap = plt.get_cmap(CD_CMAP)
    cols = 1 + max(len(p) for p in picks)
    panel = min(1.3, (style.BOOK_WIDTH - 0.9) / cols)
    fig, axes = plt.subplots(
        len(imgs),
        cols,
        figsize=(min(style.BOOK_WIDTH, cols * panel + 0.9), len(imgs) * (panel + 0.45)),
        squeeze=False,
        layout="constrained",
    )
    targets = []
    for row, (img, levels, pick) in enumerate(zip(imgs, hierarchies, picks, strict=True)):
        target = levels[0].get("target")
        targets.append(target)
        ax = axes[row, 0]
        ax.imshow(img, interpolation="nearest")
        name = "" if target is None else str(classes[int(target)])
        ax.set_title(f"explained:\n{name}" if name else "image", fontsize=8)
        _image_axes(ax)
        for col, j in enumerate(pick, start=1):
            ax = axes[row, col]
            _draw_level(ax, img, levels[j], norm, cmap, alpha)
            m = len(np.asarray(levels[j]["ids"]))
            ax.set_title(f"level {j}\n{m} cluster{'s' if m != 1 else ''}", fontsize=8)
            _image_axes(ax)
        for col in range(1 + len(pick), cols):
            axes[row, col].set_axis_off()
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    one = len({t for t in targets if t is not None}) == 1 and targets[0] is not None
    what = f"CD score of {classes[int(targets[0])]}" if one else "CD score of the class explained"
    fig.colorbar(sm, ax=axes, shrink=0.85, label=f"{what} (logit)")
    return fig


def acd_figure(image, levels, classes: Sequence[str] = CLASSES, **kwargs):
    """The ACD hierarchy of one image (:func:`acd_figures` with one row): ``image`` uint8
    ``[32, 32, 3]`` or float ``[3, 32, 32]``; ``levels`` the list
    :func:`deepnnk.nets.cd.acd_hierarchy` returns; ``kwargs``: ``max_levels``, ``alpha``."""
    return acd_figures([image], [levels], classes, **kwargs)


# --------------------------------------------------------------------------- Decoy-CIFAR


def decoy_examples(images, masks, titles: Sequence[str], *, per_row: int = 6):
    """A strip of Decoy-CIFAR images, each patch outlined (its bounding box), ``per_row``
    panels a row.

    ``images``: uint8 ``[n, 32, 32, 3]`` (or float pixels/255 ``[n, 3, 32, 32]``); ``masks``:
    bool ``[n, 32, 32]``, True on each image's patch (:func:`deepnnk.nets.decoy.add_decoy`'s
    second output); ``titles``: ``n`` strings, e.g. "train, cat (level 180)"."""
    style.use()
    imgs = _images(images)
    masks = np.asarray(masks)
    titles = list(titles)
    if masks.ndim != 3 or len(masks) != len(imgs):
        raise ValueError(
            f"masks must be bool [n, H, W] with one mask per image ({len(imgs)}), got "
            f"{masks.shape}."
        )
    if len(titles) != len(imgs):
        raise ValueError(f"{len(imgs)} images but {len(titles)} titles.")
    if per_row < 1:
        raise ValueError(f"per_row must be positive, got {per_row}.")
    rows = -(-len(imgs) // per_row)
    cols = min(per_row, len(imgs))
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(min(style.BOOK_WIDTH, 1.2 * cols), 1.45 * rows),
        squeeze=False,
        layout="constrained",
    )
    for n, ax in enumerate(axes.ravel()):
        if n >= len(imgs):
            ax.set_axis_off()
            continue
        img, mask = imgs[n], masks[n].astype(bool)
        if mask.shape != img.shape[:2]:
            raise ValueError(f"mask {n} is {mask.shape}, its image {img.shape[:2]}.")
        if not mask.any():
            raise ValueError(f"mask {n} is empty: it marks no patch.")
        ax.imshow(img, interpolation="nearest")
        r, c = np.nonzero(mask)
        box = (c.min() - 0.5, r.min() - 0.5)
        w, h = c.max() - c.min() + 1, r.max() - r.min() + 1
        ax.add_patch(Rectangle(box, w, h, fill=False, ec="k", lw=2.6))
        ax.add_patch(Rectangle(box, w, h, fill=False, ec=PATCH_COLOUR, lw=1.3, label="patch"))
        ax.set_title(str(titles[n]), fontsize=8)
        _image_axes(ax)
    return fig


def model_label(penalty: str, lam: float) -> str:
    """ "no penalty", "CDEP λ=10", "RRR λ=100": the name of a Decoy-CIFAR model."""
    if penalty == "none":
        return PENALTY_LABELS["none"]
    return f"{PENALTY_LABELS.get(penalty, penalty)} λ={float(lam):g}"


def _group_runs(rows) -> dict[tuple[str, float], list[dict]]:
    rows = list(rows)
    if not rows:
        raise ValueError("no runs: pass a list of decoy_run dicts.")
    groups: dict[tuple[str, float], list[dict]] = {}
    for i, row in enumerate(rows):
        missing = {"penalty", "lam", *(k for k, _, _ in DECOY_SETS)} - set(row)
        if missing:
            raise ValueError(f"run {i} lacks {sorted(missing)}: pass decoy_run's dicts.")
        groups.setdefault((str(row["penalty"]), float(row["lam"])), []).append(row)
    return dict(sorted(groups.items(), key=lambda kv: (_PENALTY_ORDER.get(kv[0][0], 3), kv[0])))


def decoy_accuracy(rows, *, title: str | None = None):
    """Test accuracy of each Decoy-CIFAR model on clean images, images with a random-level patch
    and images with another class's level: grouped bars (mean over seeds, value on top), every
    seed a dot, chance (10 %) dashed. A model that reads the label off the patch keeps its clean
    accuracy but falls on the swapped patches.

    ``rows``: :func:`deepnnk.studies.decoy.decoy_run` dicts (keys ``"penalty"``, ``"lam"``,
    ``"seed"``, ``"clean"``, ``"random"``, ``"swap"``: accuracies in [0, 1]), any number of
    seeds per (penalty, λ). Models are ordered: no penalty, CDEP, RRR, each by λ."""
    style.use()
    groups = _group_runs(rows)
    names = [model_label(p, lam) for p, lam in groups]
    x = np.arange(len(groups))
    width = 0.8 / len(DECOY_SETS)
    fig, ax = plt.subplots(figsize=style.figsize(1, row_height=3.2), layout="constrained")
    rng = np.random.default_rng(0)  # dot jitter only
    for s, (key, label, colour) in enumerate(DECOY_SETS):
        pos = x + (s - (len(DECOY_SETS) - 1) / 2) * width
        values = [np.array([float(r[key]) for r in runs]) for runs in groups.values()]
        means = np.array([v.mean() for v in values])
        bars = ax.bar(pos, means, width * 0.92, color=colour, label=label, alpha=0.85)
        ax.bar_label(
            bars,
            labels=[f"{100 * m:.0f}" for m in means],
            label_type="center",
            fontsize=7,
            color="white",
            fontweight="bold",
        )
        for p, v in zip(pos, values, strict=True):
            jitter = rng.uniform(-0.22, 0.22, len(v)) * width if len(v) > 1 else np.zeros(1)
            ax.scatter(p + jitter, v, s=10, color="k", zorder=3, lw=0, label="one seed")
    style.chance_line(ax, CHANCE_ACCURACY, label="chance (10 %)")
    ax.set_xticks(x)
    ax.set_xticklabels(
        names, rotation=20 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center"
    )
    ax.set_ylim(0, 1.08)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("test accuracy")
    ax.set_xlabel("model (penalty on the patch)")
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    keep = dict(zip(labels, handles, strict=True))  # one "one seed" entry
    fig.legend(keep.values(), keep.keys(), loc="outside lower center", ncol=5, frameon=False)
    return fig


def reliance_scatter(true_reliance, scores: Mapping, rho: Mapping, *, models=None):
    """Does each explanation see the shortcut? One panel per method: its reliance score of each
    model against the model's true reliance on the decoy (clean − swapped-decoy accuracy, shown
    in accuracy points), Spearman ρ in the title.

    ``true_reliance``: float ``[n_models]``, fractions (decoy_run's ``"reliance"``);
    ``scores``: {method: float ``[n_models]``}; ``rho``: {method: float}, the Spearman
    correlation of each method (NaN shown as "n/a"); ``models``: optional ``[n_models]`` model
    names (e.g. :func:`model_label`): the points are then coloured by model kind (the text
    before " λ"), with a legend under the figure."""
    style.use()
    x = np.asarray(true_reliance, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"true_reliance must be a non-empty 1-D array, got shape {x.shape}.")
    if np.nanmax(np.abs(x)) > 1:
        raise ValueError("true_reliance must be fractions in [-1, 1] (clean − swap accuracy).")
    if not scores:
        raise ValueError("scores is empty: pass {method: [n_models] scores}.")
    missing = [m for m in scores if m not in rho]
    if missing:
        raise ValueError(f"rho lacks the methods {missing}.")
    kinds = None
    if models is not None:
        models = [str(m) for m in models]
        if len(models) != len(x):
            raise ValueError(f"{len(models)} model names for {len(x)} models.")
        kinds = [m.split(" λ")[0] for m in models]
    n = len(scores)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(style.BOOK_WIDTH, 2.5 * rows + (0.4 if kinds else 0)),
        squeeze=False,
        layout="constrained",
    )
    kind_colours = {}
    if kinds:
        order = sorted(set(kinds), key=lambda k: (_PENALTY_ORDER.get(_penalty_key(k), 3), k))
        extra = iter(_EXTRA_KIND_COLOURS)
        kind_colours = {k: KIND_COLOURS.get(k) or next(extra, "0.6") for k in order}
    for n_, (ax, (method, y)) in enumerate(zip(axes.ravel(), scores.items(), strict=False)):
        y = np.asarray(y, dtype=float)
        if y.shape != x.shape:
            raise ValueError(
                f"scores[{method!r}] has shape {y.shape}, true_reliance {x.shape}: one score "
                "per model."
            )
        if kinds:
            for k, c in kind_colours.items():
                sel = np.array([kk == k for kk in kinds])
                ax.scatter(100 * x[sel], y[sel], color=c, marker=_marker(method), s=28)
        else:
            ax.scatter(100 * x, y, color=_colour(method, n_), marker=_marker(method), s=28)
        r = float(rho[method])
        ax.set_title(
            f"{method_label(method)}: ρ = {r:.2f}"
            if np.isfinite(r)
            else f"{method_label(method)}: ρ n/a",
            fontsize=10,
        )
        ax.set_ylabel(RELIANCE_LABELS.get(method, "reliance score"), fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    for ax in axes[-1]:
        if ax.axison:
            ax.set_xlabel("true reliance: clean − swap\n(accuracy points)", fontsize=8)
    if kinds:
        handles = [
            Line2D([], [], ls="", marker="o", color=c, label=k) for k, c in kind_colours.items()
        ]
        fig.legend(handles=handles, loc="outside lower center", ncol=5, frameon=False)
    return fig


def _penalty_key(kind: str) -> str:
    for key, label in PENALTY_LABELS.items():
        if kind == label:
            return key
    return kind


def decoy_auc(auc: Mapping, per_model: Mapping | None = None):
    """Per-image AUC of each method's score for "this prediction was caused by the decoy":
    bars (the value on top), chance (0.5) dashed, methods in the order given.

    ``auc``: {method: float} (the pooled AUC) or {method: [per-model floats]} (the bar is then
    their mean, each value a dot); ``per_model``: optional {method: [per-model floats]} drawn
    as dots over the pooled bars."""
    style.use()
    if not auc:
        raise ValueError("auc is empty: pass {method: AUC}.")
    names = list(auc)
    bars_v, dots = [], {}
    for name in names:
        v = np.atleast_1d(np.asarray(auc[name], dtype=float))
        if v.size == 0:
            raise ValueError(f"auc[{name!r}] is empty.")
        # all NaN (no model with both caused and uncaused images): an empty bar, not a warning
        bars_v.append(float(np.nanmean(v)) if np.isfinite(v).any() else float("nan"))
        if v.size > 1:
            dots[name] = v
    if per_model:
        unknown = [m for m in per_model if m not in auc]
        if unknown:
            raise ValueError(f"per_model names methods without an AUC: {unknown}.")
        dots.update({m: np.atleast_1d(np.asarray(v, dtype=float)) for m, v in per_model.items()})
    for name, v in [(n, np.atleast_1d(bars_v[i])) for i, n in enumerate(names)] + list(
        dots.items()
    ):
        if np.any((v < 0) | (v > 1)):
            raise ValueError(f"AUCs of {name!r} must lie in [0, 1], got {v}.")
    fig, ax = plt.subplots(
        figsize=(min(style.BOOK_WIDTH, 1.3 + 1.1 * len(names)), 3.0), layout="constrained"
    )
    x = np.arange(len(names))
    bars = ax.bar(
        x, bars_v, 0.65, color=[_colour(n, i) for i, n in enumerate(names)], edgecolor="white"
    )
    ax.bar_label(
        bars,
        labels=[f"{v:.2f}" for v in bars_v],
        label_type="center",
        fontsize=9,
        color="white",
        fontweight="bold",
    )
    for i, name in enumerate(names):
        if name in dots:
            v = dots[name]
            ax.scatter(np.full(len(v), x[i]), v, s=12, color="k", zorder=3, lw=0, label="one model")
    style.chance_line(ax, 0.5, label="chance")
    ax.set_xticks(x)
    ax.set_xticklabels([method_label(n) for n in names])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("AUC: prediction\ncaused by the decoy")
    ax.grid(axis="y", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    keep = dict(zip(labels, handles, strict=True))
    ax.legend(
        keep.values(), keep.keys(), loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False
    )
    return fig


# --------------------------------------------------------------------------- sanity checks


def sanity_figure(curves: Mapping, *, original: bool = True, title: str | None = None):
    """The cascading-randomisation sanity check (Adebayo et al. 2018): how similar each
    explanation of the randomised model is to the original's, step by step as layers are
    re-initialised from the top. One panel per similarity measure (Spearman ρ for the maps:
    gradient, gradient × input, CD; weighted Jaccard for the NNK and kNN supports); the mean
    over queries as a line, the interquartile range over queries as a band, 0 dashed. An
    explanation that stays near 1 as the network is destroyed fails the check.

    ``curves``: the dict :func:`deepnnk.studies.reality_checks.sanity_curves` returns:
    ``"layers"`` the steps (the layer each re-initialises, top first), ``"mean"``
    {explanation: ``[steps]``}, ``"per_query"`` {explanation: ``[steps, n]``} (optional: no
    band without it), ``"similarity"`` {explanation: "spearman" | "weighted_jaccard"}.
    ``original``: start at the trained model itself (similarity 1 by definition). A step whose
    value is NaN (every map constant, ρ undefined) is left as a gap and noted in the panel."""
    style.use()
    missing = {"layers", "mean", "similarity"} - set(curves)
    if missing:
        raise ValueError(f"curves lacks {sorted(missing)}: pass sanity_curves' dict.")
    layers = [str(s) for s in curves["layers"]]
    if not layers or not curves["mean"]:
        raise ValueError("curves holds no cascade steps or no explanation.")
    per_query = curves.get("per_query") or {}
    measures: dict[str, list[str]] = {}
    for name, mean in curves["mean"].items():
        if np.asarray(mean).shape != (len(layers),):
            raise ValueError(
                f"curves['mean'][{name!r}] has shape {np.asarray(mean).shape}, expected "
                f"({len(layers)},): one value per step."
            )
        if name in per_query and np.asarray(per_query[name]).shape[:1] != (len(layers),):
            raise ValueError(
                f"curves['per_query'][{name!r}] has shape {np.asarray(per_query[name]).shape}, "
                f"expected ({len(layers)}, n)."
            )
        if name not in curves["similarity"]:
            raise ValueError(f"curves['similarity'] lacks {name!r}.")
        measures.setdefault(curves["similarity"][name], []).append(name)
    order = sorted(
        measures,
        key=lambda m: (
            list(SIMILARITY_LABELS).index(m) if m in SIMILARITY_LABELS else len(SIMILARITY_LABELS)
        ),
    )
    steps = (["original"] if original else []) + layers
    xs = np.arange(len(steps))
    fig, axes = plt.subplots(
        1,
        len(order),
        figsize=style.figsize(1, row_height=3.4),
        squeeze=False,
        sharex=True,
        layout="constrained",
    )
    n = 0
    for ax, measure in zip(axes[0], order, strict=True):
        gaps = False
        for name in measures[measure]:
            mean = np.asarray(curves["mean"][name], dtype=float)
            y = np.concatenate([[1.0], mean]) if original else mean
            gaps |= bool(np.isnan(mean).any())
            c = _colour(name, n)
            n += 1
            ax.plot(xs, y, color=c, marker=_marker(name), ms=5, lw=1.6, label=method_label(name))
            if name in per_query:
                pq = np.asarray(per_query[name], dtype=float)
                with np.errstate(all="ignore"), _quiet():
                    lo, hi = np.nanpercentile(pq, [25, 75], axis=1)
                if original:
                    lo, hi = np.concatenate([[1.0], lo]), np.concatenate([[1.0], hi])
                ax.fill_between(xs, lo, hi, color=c, alpha=0.18, lw=0)
        ax.axhline(0, color="0.4", ls="--", lw=1, zorder=0)
        bottom = -1.05 if measure == "spearman" else -0.05
        ax.set_ylim(bottom, 1.05)
        ax.set_ylabel(SIMILARITY_LABELS.get(measure, measure))
        ax.set_xticks(xs)
        ax.set_xticklabels(steps, rotation=45, ha="right", rotation_mode="anchor")
        ax.set_xlabel("randomised down to (cascade from the top)")
        ax.grid(alpha=0.3)
        if gaps:
            ax.text(
                0.98,
                0.02,
                "gap: every map constant,\nρ undefined",
                transform=ax.transAxes,
                ha="right",
                va="bottom",
                fontsize=7,
                color="0.3",
            )
    if title:
        fig.suptitle(title)
    fig.legend(*_all_handles(fig), loc="outside lower center", ncol=5, frameon=False)
    return fig


@contextlib.contextmanager
def _quiet():
    """Silence numpy's "All-NaN slice" warning inside nanpercentile."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _all_handles(fig):
    seen: dict[str, object] = {}
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(lab, h)
    return list(seen.values()), list(seen.keys())


def identical_class_figure(rates: Mapping, *, title: str | None = None):
    """The identical-class test (Hanawa et al., ICLR 2021): how often each example-based
    method's top training example has the class the model predicts (1.0 = always), as bars
    with their values on top and 1.0 dotted.

    ``rates``: {method: rate in [0, 1]} (one model, as
    :func:`~deepnnk.studies.reality_checks.identical_class_test`'s ``"rate"``), or
    {model name: {method: rate}} (grouped bars, one group per model, one colour per method)."""
    style.use()
    if not rates:
        raise ValueError("rates is empty: pass {method: rate} or {model: {method: rate}}.")
    nested = all(isinstance(v, Mapping) for v in rates.values())
    if not nested and any(isinstance(v, Mapping) for v in rates.values()):
        raise ValueError("rates mixes {method: rate} and {model: {method: rate}} entries.")
    table = dict(rates) if nested else {"": dict(rates)}
    if any(not v for v in table.values()):
        raise ValueError("a model in rates has no methods.")
    methods = list(dict.fromkeys(m for v in table.values() for m in v))
    for model, v in table.items():
        for m, r in v.items():
            if not 0.0 <= float(r) <= 1.0:
                raise ValueError(f"rate of {m!r} ({model or 'the model'}) is {r}, not in [0, 1].")
    groups = list(table)
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(
        figsize=(min(style.BOOK_WIDTH, 2.2 + 1.4 * len(groups) * max(1, len(methods) / 3)), 3.0),
        layout="constrained",
    )
    x = np.arange(len(groups))
    for i, m in enumerate(methods):
        pos = x + (i - (len(methods) - 1) / 2) * width
        vals = np.array([float(table[g].get(m, np.nan)) for g in groups])
        bars = ax.bar(
            pos,
            np.nan_to_num(vals),
            width * 0.92,
            color=_colour(m, i),
            label=method_label(m),
            edgecolor="white",
        )
        ax.bar_label(
            bars, labels=["" if np.isnan(v) else f"{v:.2f}" for v in vals], padding=2, fontsize=8
        )
    ax.axhline(1.0, color="0.4", ls=":", lw=1, zorder=0, label="always the predicted class")
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("identical-class rate")
    ax.set_xticks(x)
    ax.set_xticklabels(groups)
    if not nested:
        ax.set_xticks([])
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    style.legend_outside(ax, "right")
    return fig


def tile_maps(images, maps: Mapping, titles: Sequence[str]):
    """Query images beside their explanation maps, one row per image: the image (titled), then
    one column per map (e.g. gradient and CD of the original model, then of the fully
    randomised one), each map stretched over the image's pixels (a CD map of 4×4-pixel tiles
    is ``[8, 8]``). Each map is scaled to its own largest absolute value, so colours compare
    places within a map, not maps: signed maps (CD) on a diverging scale from −1 to 1,
    non-negative ones (gradient magnitudes) from 0 to 1; one colour bar under each column. A
    constant map (a dead network's) is marked "constant".

    ``images``: ``[n]`` uint8 ``[32, 32, 3]`` or float ``[3, 32, 32]``; ``maps``:
    {column title: float ``[n, h, w]``} in the column order; ``titles``: ``n`` image titles."""
    style.use()
    imgs = _images(images)
    titles = list(titles)
    if len(titles) != len(imgs):
        raise ValueError(f"{len(imgs)} images but {len(titles)} titles.")
    if not maps:
        raise ValueError("maps is empty: pass {name: [n, h, w] maps}.")
    arrays = {}
    for name, a in maps.items():
        a = np.asarray(a, dtype=float)
        if a.ndim != 3 or len(a) != len(imgs):
            raise ValueError(
                f"maps[{name!r}] must be [n, h, w] with n = {len(imgs)} images, got {a.shape}."
            )
        arrays[name] = a
    cols = 1 + len(arrays)
    panel = min(1.25, (style.BOOK_WIDTH - 0.2) / cols)
    fig, axes = plt.subplots(
        len(imgs),
        cols,
        figsize=(cols * panel + 0.2, len(imgs) * (panel + 0.25) + 0.7),
        squeeze=False,
        layout="constrained",
    )
    for r, (img, t) in enumerate(zip(imgs, titles, strict=True)):
        axes[r, 0].imshow(img, interpolation="nearest")
        axes[r, 0].set_title(str(t), fontsize=8)
        _image_axes(axes[r, 0])
    h, w = imgs[0].shape[:2]
    extent = (-0.5, w - 0.5, h - 0.5, -0.5)
    for c, (name, a) in enumerate(arrays.items(), start=1):
        signed = bool(np.nanmin(a) < 0)
        cmap = CD_CMAP if signed else "magma"
        norm = mcolors.Normalize(-1 if signed else 0, 1)
        for r in range(len(imgs)):
            m = a[r]
            top = float(np.nanmax(np.abs(m))) if np.isfinite(m).any() else 0.0
            scaled = m / top if top > 0 else np.zeros_like(m)
            im = axes[r, c].imshow(
                scaled, cmap=cmap, norm=norm, extent=extent, interpolation="nearest"
            )
            if not np.isfinite(m).any() or np.nanmax(m) == np.nanmin(m):
                axes[r, c].text(
                    0.5,
                    0.5,
                    "constant",
                    transform=axes[r, c].transAxes,
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="0.6",
                )
            _image_axes(axes[r, c])
        axes[0, c].set_title(str(name), fontsize=8)
        bar = fig.colorbar(
            im,
            ax=axes[:, c],
            location="bottom",
            shrink=0.9,
            aspect=12,
            ticks=[-1, 0, 1] if signed else [0, 1],
        )
        bar.set_label("÷ max |map|", fontsize=8)
    return fig
