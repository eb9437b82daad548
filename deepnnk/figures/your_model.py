"""Figures of notebook 05 (explain your own model), drawn from the plain data of
:mod:`deepnnk.studies.your_model`:

- :func:`layer_curves`: LOO-NNK, NNK test, kernel kNN LOO and kNN test error layer by layer, one
  column per model, with the mean number of NNK neighbours under each (a
  :func:`~deepnnk.studies.your_model.layer_table` per model);
- :func:`detection_bars`: ROC AUC and precision at the flip rate of each mislabel score
  (a :func:`~deepnnk.studies.your_model.detection_report`), with chance marked;
- :func:`roc_curves`: the ROC curves of the scores;
- :func:`suspects_gallery`: the most suspicious training points, each beside its NNK neighbours.

Every function applies the book's style (:func:`deepnnk.figures.style.use`), fits the book's
width and keeps its legend off the data; the galleries are plain matplotlib
(:func:`deepnnk.figures.gallery.plot_gallery`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from deepnnk.explain import NeighbourTable
from deepnnk.figures import gallery, style
from deepnnk.studies.your_model import SCORE_NAMES

_C = style.METHOD_COLOURS

#: Readable names of the mislabel scores of :data:`deepnnk.studies.your_model.SCORES`.
SCORE_LABELS = SCORE_NAMES

#: Colour and line style (hatch for bars) of each score: the method's colour where it has one.
SCORE_COLOURS = {
    "nnk_other_share": _C["NNK"],
    "nnk_residual": _C["NNK"],
    "knn_other_share": _C["kNN"],
    "network_loss": _C["network"],
    "tracin_self_influence": "#937860",
}
_SCORE_LINES = {"nnk_residual": "--"}
_SCORE_HATCH = {"nnk_residual": "///"}

#: (table key, legend label, line options) of :func:`layer_curves`' error panels.
LAYER_LINES = (
    ("loo_nnk", "LOO-NNK (training set)", dict(color=_C["NNK"], ls="-", marker="o")),
    ("test_nnk", "NNK test", dict(color=_C["NNK"], ls="--", marker="o", mfc="white")),
    ("loo_knn", "kernel kNN LOO (training set)", dict(color=_C["kNN"], ls="-", marker="s")),
    ("test_knn", "kernel kNN test", dict(color=_C["kNN"], ls="--", marker="s", mfc="white")),
)

#: Font size of the gallery's panel titles (as in the book's other galleries).
GALLERY_FONTSIZE = 8


def _label(name: str, width: int | None = None) -> str:
    text = SCORE_LABELS.get(name, name)
    return textwrap.fill(text, width) if width else text


def _colour(name: str, n: int) -> str:
    return SCORE_COLOURS.get(name, f"C{n % 10}")


def _seconds(s: float) -> str:
    return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"


# --------------------------------------------------------------------------- layer by layer


def layer_curves(tables: dict[str, dict], *, title: str | None = None):
    """Error layer by layer, one column per model; below each, the mean number of NNK neighbours.

    ``tables``: {model: :func:`~deepnnk.studies.your_model.layer_table`}, each an ordered
    {layer name: {"loo_nnk", "test_nnk", "loo_knn", "test_knn": errors in [0, 1],
    "neighbours_mean": float, ...}}; the layers are drawn in their dict order (x), the models in
    theirs (columns). Lines: LOO-NNK (solid) and NNK test (dashed) in NNK's colour, kernel kNN
    LOO and test likewise in kNN's. The error axes are shared, from 0 to just above the largest
    error (at most 1); one legend under the figure."""
    style.use()
    if not tables:
        raise ValueError("layer_curves needs at least one table.")
    for model, table in tables.items():
        if not table:
            raise ValueError(f"the table of {model!r} has no layers.")
    n = len(tables)
    longest = max(len(str(layer)) for t in tables.values() for layer in t)
    many = max(len(t) for t in tables.values())
    # ticks at 9 pt are about 0.07 in a character; a panel is about 6.2 / n inches wide
    rotate = 35 if many * (longest + 1) * 0.07 > 0.9 * 6.2 / n else 0
    fig, axes = plt.subplots(
        2,
        n,
        figsize=style.figsize(1, row_height=4.4 if rotate else 4.0),
        sharex="col",
        sharey="row",
        squeeze=False,
        height_ratios=(2.3, 1.0),
        layout="constrained",
    )
    top, most = 0.0, 0.0
    for j, (model, table) in enumerate(tables.items()):
        layers = list(table)
        x = np.arange(len(layers))
        err, nb = axes[0, j], axes[1, j]
        for key, label, kw in LAYER_LINES:
            y = np.array([table[layer].get(key, np.nan) for layer in layers], dtype=float)
            if np.isfinite(y).any():
                err.plot(x, y, label=label, ms=4, lw=1.6, **kw)
                top = max(top, float(np.nanmax(y)))
        mean = np.array([table[layer].get("neighbours_mean", np.nan) for layer in layers], float)
        nb.plot(x, mean, color=_C["NNK"], marker="o", ms=4, lw=1.6)
        if np.isfinite(mean).any():
            most = max(most, float(np.nanmax(mean)))
        if n > 1 or model:
            err.set_title(str(model))
        for ax in (err, nb):
            ax.grid(alpha=0.3)
        nb.set_xticks(x)
        nb.set_xticklabels(
            [str(layer) for layer in layers],
            rotation=rotate,
            ha="right" if rotate else "center",
            rotation_mode="anchor",
        )
        nb.set_xlabel("layer")
    axes[0, 0].set_ylim(0, min(1.0, 1.1 * top + 0.02) if top > 0 else 1.0)
    axes[1, 0].set_ylim(0, 1.15 * most if most > 0 else 1.0)
    axes[0, 0].set_ylabel("error")
    axes[1, 0].set_ylabel("mean NNK\nneighbours")
    if title:
        fig.suptitle(title)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False)
    return fig


# --------------------------------------------------------------------------- mislabel detection


def _by_auc(report: dict) -> list[str]:
    """Score names by decreasing AUC (ties keep the report's order)."""
    names = list(report)
    return sorted(names, key=lambda s: -float(report[s]["auc"]))


def detection_bars(report: dict, rate: float, seconds: dict | None = None):
    """How well each score finds the flipped labels: ROC AUC (left, chance 0.5) and precision
    among the top ``rate`` fraction of training points (right, chance = ``rate``: a random
    ranking), as horizontal bars with their values at the ends, best AUC on top.

    ``report``: {score name: {"auc": float, "precision_at_rate": float}}
    (:func:`~deepnnk.studies.your_model.detection_report`); ``rate``: the flip rate in (0, 1);
    ``seconds``: optional {score name: seconds to compute it}, appended to its label as "(N s)".
    """
    style.use()
    if not report:
        raise ValueError("detection_bars needs a non-empty report.")
    if not 0.0 < float(rate) < 1.0:
        raise ValueError(f"rate must be in (0, 1), got {rate}.")
    names = _by_auc(report)
    labels = []
    for name in names:
        text = _label(name, 24)
        if seconds and name in seconds:
            text += f" ({_seconds(float(seconds[name]))})"
        labels.append(text)
    y = np.arange(len(names))[::-1]  # the best on top
    fig, axes = plt.subplots(
        1,
        2,
        figsize=style.figsize(1, row_height=max(2.6, 0.55 * len(names) + 1.3)),
        sharey=True,
        layout="constrained",
    )
    panels = (
        ("auc", "ROC AUC", 0.5, "chance"),
        ("precision_at_rate", f"precision at the flip rate ({rate:.0%})", rate, "random ranking"),
    )
    for ax, (key, xlabel, chance, chance_label) in zip(axes, panels, strict=True):
        values = [float(report[s][key]) for s in names]
        bars = ax.barh(
            y,
            values,
            height=0.65,
            color=[_colour(s, i) for i, s in enumerate(names)],
            edgecolor="white",
        )
        for bar, s in zip(bars, names, strict=True):
            if s in _SCORE_HATCH:
                bar.set_hatch(_SCORE_HATCH[s])
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=3, fontsize=9)
        style.chance_line(ax, chance, label=chance_label, axis="x")
        ax.set_xlim(0, 1.16)
        ax.set_xticks(np.linspace(0, 1, 6))
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y)
    axes[0].set_yticklabels(labels)
    handles, texts = [], []
    for ax in axes:
        h, t = ax.get_legend_handles_labels()
        handles += h
        texts += t
    fig.legend(handles, texts, loc="outside lower center", ncol=2, frameon=False)
    return fig


def roc_curves(curves: dict, report: dict | None = None):
    """ROC curves of the mislabel scores, the diagonal (chance) dashed, the legend to the right.

    ``curves``: {score name: (false-positive rate ``[m]``, true-positive rate ``[m]``)};
    ``report``: optional {score name: {"auc": float, ...}}: each label then carries the AUC and
    the curves are listed best first."""
    style.use()
    if not curves:
        raise ValueError("roc_curves needs at least one curve.")
    names = list(curves)
    if report:
        ranked = [s for s in _by_auc(report) if s in curves]
        names = ranked + [s for s in names if s not in ranked]
    fig, ax = plt.subplots(figsize=(style.BOOK_WIDTH, 3.6), layout="constrained")
    for n, name in enumerate(names):
        fpr, tpr = (np.asarray(a, dtype=float) for a in curves[name])
        if fpr.shape != tpr.shape or fpr.ndim != 1:
            raise ValueError(
                f"curve {name!r}: fpr and tpr must be 1-D of one length, got {fpr.shape} "
                f"and {tpr.shape}."
            )
        label = _label(name)
        if report and name in report:
            label += f" (AUC {float(report[name]['auc']):.2f})"
        ax.plot(
            fpr,
            tpr,
            color=_colour(name, n),
            ls=_SCORE_LINES.get(name, "-"),
            lw=1.8,
            label=label,
        )
    ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1, label="chance", zorder=0)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate\n(flipped labels found)")
    ax.grid(alpha=0.3)
    style.legend_outside(ax, "right")
    return fig


# --------------------------------------------------------------------------- suspects


def suspect_title(
    class_names: Sequence[str], given: int, predicted: int, original: int | None = None
) -> str:
    """The suspect's title, one fact a line (a panel is about an inch wide): "given cat",
    "NNK: dog" (its leave-one-out interpolated class) and, when ``original`` is known, "was dog"
    or "label correct"."""
    lines = [f"given {class_names[int(given)]}", f"NNK: {class_names[int(predicted)]}"]
    if original is not None:
        same = int(original) == int(given)
        lines.append("label correct" if same else f"was {class_names[int(original)]}")
    return "\n".join(lines)


def suspects_gallery(
    table: NeighbourTable,
    suspects,
    train_images,
    class_names: Sequence[str],
    given,
    original=None,
    n_neighbours: int = 6,
):
    """One row per suspect (most suspicious first): the training image, titled with its given
    label, NNK's leave-one-out interpolated class and, when ``original`` is given, its label
    before flipping; then its top ``n_neighbours`` NNK neighbours by weight, "class, weight".

    ``table``: the leave-one-out :class:`~deepnnk.explain.NeighbourTable` of the suspects, row
    i explaining training point ``suspects[i]`` (``index`` rows into the training set), as
    :func:`deepnnk.studies.your_model.loo_table` returns it; ``suspects``: int ``[s]`` training
    rows; ``train_images``: uint8 ``[N, H, W, 3]``; ``class_names``: names indexed
    by class value; ``given``: int ``[N]`` the labels trained on; ``original``: int ``[N]`` the
    labels before flipping, or None. A suspect with fewer neighbours shows fewer panels."""
    style.use()
    suspects = np.atleast_1d(np.asarray(suspects))
    if suspects.ndim != 1 or suspects.size == 0:
        raise ValueError(f"suspects must be a non-empty 1-D array of rows, got {suspects.shape}.")
    if not np.issubdtype(suspects.dtype, np.integer):
        raise ValueError(f"suspects must be integer rows, got dtype {suspects.dtype}.")
    train_images = np.asarray(train_images)
    if train_images.ndim != 4 or train_images.shape[-1] != 3:
        raise ValueError(
            f"train_images must be [N, H, W, 3] RGB images, got shape {train_images.shape}."
        )
    given = np.asarray(given)
    if len(given) != len(train_images):
        raise ValueError(f"given has {len(given)} labels for {len(train_images)} images.")
    if original is not None:
        original = np.asarray(original)
        if len(original) != len(given):
            raise ValueError(f"original has {len(original)} labels, given has {len(given)}.")
    if len(table) != len(suspects):
        raise ValueError(
            f"the table explains {len(table)} points but there are {len(suspects)} suspects; "
            "pass the table of the suspects (row i explains suspects[i]), e.g. "
            "table.subset(suspects) of a table over every training point."
        )
    bad = suspects[(suspects < 0) | (suspects >= len(train_images))]
    if bad.size:
        raise ValueError(
            f"suspects {bad.tolist()} are out of range: there are {len(train_images)} "
            "training images."
        )
    if n_neighbours < 0:
        raise ValueError(f"n_neighbours must be >= 0, got {n_neighbours}.")
    per_row = n_neighbours + 1
    row_inches = 1.45 if original is None else 1.6  # room for a two- or three-line title
    fig = plt.figure(figsize=(style.BOOK_WIDTH, len(suspects) * row_inches))
    subs = np.atleast_1d(fig.subfigures(len(suspects), 1, hspace=0.0))
    predicted = table.pred
    for i, (sub, row) in enumerate(zip(subs, suspects, strict=True)):
        row = int(row)
        rows, weights, classes = table.neighbours(i)
        rows, weights, classes = rows[:n_neighbours], weights[:n_neighbours], classes[:n_neighbours]
        names = [class_names[int(c)] for c in classes]
        title = suspect_title(
            class_names,
            given[row],
            predicted[i],
            None if original is None else original[row],
        )
        gallery.plot_gallery(
            train_images[row],
            train_images[rows],
            gallery.neighbour_titles(names, weights),
            per_row,
            query_title=title,
            fontsize=GALLERY_FONTSIZE,
            fig=sub,
        )
    return fig
