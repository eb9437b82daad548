"""Figures for instance explanations: image galleries (plain matplotlib) and distributions
(seaborn, in the book's :mod:`~deepnnk.figures.style`, legends off the data).

A gallery shows the query first, then its neighbours, ``per_row`` panels to a row (7, as in the
paper), each with a small title. Images are uint8 ``[32, 32, 3]`` RGB (HWC), as
:func:`deepnnk.nets.data.load_cifar10` returns them.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from deepnnk.explain import NeighbourTable
from deepnnk.figures import style

PANEL_INCHES = 1.15  # width of one panel; a row of 7 is about 8 inches
ROW_INCHES = 1.3  # height of one row of panels, title included
HEAD_INCHES = 0.35  # room for a (sub)figure title


def format_weight(w: float) -> str:
    """A weight for a panel title: 0.48, 0.071, 0.004, or 3e-04 below 0.001."""
    if w >= 0.1:
        return f"{w:.2f}"
    return f"{w:.3f}" if w >= 0.001 else f"{w:.0e}"


def query_title(true_class: str, predicted_class: str) -> str:
    """The query's title, as in the paper: "true class, NNK-predicted class"."""
    return f"{true_class}, {predicted_class}"


def neighbour_titles(class_names: Sequence[str], weights: Sequence[float]) -> list[str]:
    """Titles "class, weight" for neighbours."""
    return [f"{c}, {format_weight(float(w))}" for c, w in zip(class_names, weights, strict=True)]


def _check_image(img) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"images must be HWC RGB [H, W, 3], got shape {img.shape}.")
    return img


def plot_gallery(
    query_image,
    neighbour_images,
    titles: Sequence[str],
    per_row: int = 7,
    *,
    query_title: str = "",
    suptitle: str | None = None,
    fontsize: float = 6.5,
    fig=None,
):
    """The query, then its neighbours, ``per_row`` panels a row.

    query_image ``[H, W, 3]``; neighbour_images ``[m, H, W, 3]`` (uint8 or floats in [0, 1]);
    titles: one per neighbour. ``fig``: a Figure or SubFigure to draw into (default: a new
    figure sized to the grid). Returns the figure.
    """
    neighbour_images = list(neighbour_images)
    if len(titles) != len(neighbour_images):
        raise ValueError(f"{len(neighbour_images)} neighbour images but {len(titles)} titles.")
    if per_row < 1:
        raise ValueError(f"per_row must be positive, got {per_row}.")
    images = [_check_image(query_image)] + [_check_image(im) for im in neighbour_images]
    names = [query_title, *titles]
    rows = -(-len(images) // per_row)
    head = HEAD_INCHES if suptitle else 0.0
    height = rows * ROW_INCHES + head
    if fig is None:
        fig = plt.figure(figsize=(per_row * PANEL_INCHES, height))
    # Fixed margins (no layout engine: it is slow on ~50 panels); room above each row for its
    # titles and above the grid for the suptitle.
    top = 1 - (head + 0.25) / height
    grid = dict(left=0.01, right=0.99, bottom=0.02, top=top, wspace=0.08, hspace=0.3)
    axes = fig.subplots(rows, per_row, squeeze=False, gridspec_kw=grid)
    for n, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if n < len(images):
            ax.imshow(images[n], interpolation="nearest")
            ax.set_title(names[n], fontsize=fontsize, fontweight="bold" if n == 0 else "normal")
    if suptitle:
        fig.suptitle(suptitle, fontsize=fontsize + 2.5, y=1 - 0.08 / height, va="top")
    return fig


def table_gallery(
    table: NeighbourTable,
    i: int,
    query_image,
    train_images,
    class_names: Sequence[str],
    true_label: int,
    per_row: int = 7,
    **kwargs,
):
    """Gallery of query ``i`` of ``table``: titled "true, predicted"; its nonzero-weight
    neighbours by decreasing weight, titled "class, weight". Labels index ``class_names``."""
    rows, w, labels = table.neighbours(i)
    names = [class_names[int(c)] for c in labels]
    pred = class_names[int(table.pred[i])]
    return plot_gallery(
        query_image,
        train_images[rows],
        neighbour_titles(names, w),
        per_row,
        query_title=query_title(class_names[int(true_label)], pred),
        **kwargs,
    )


def stacked_galleries(
    tables: dict[str, NeighbourTable],
    i: int,
    query_image,
    train_images,
    class_names: Sequence[str],
    true_label: int,
    per_row: int = 7,
    suptitle: str | None = None,
):
    """Galleries of the same query from several tables, one above the other, e.g. NNK above
    kNN. ``tables``: {section heading: table}; the other arguments as :func:`table_gallery`."""
    counts = [int(t.n_neighbours[i]) + 1 for t in tables.values()]
    heights = [-(-c // per_row) * ROW_INCHES + HEAD_INCHES for c in counts]
    head = HEAD_INCHES if suptitle else 0.0
    fig = plt.figure(figsize=(per_row * PANEL_INCHES, sum(heights) + head))
    ratios = ([head] if suptitle else []) + heights
    subs = list(fig.subfigures(len(ratios), 1, height_ratios=ratios, squeeze=False).ravel())
    if suptitle:
        subs.pop(0).suptitle(suptitle, fontsize=10, va="center", y=0.5)
    for sub, (label, table), h in zip(subs, tables.items(), heights, strict=True):
        table_gallery(
            table,
            i,
            query_image,
            train_images,
            class_names,
            true_label,
            per_row,
            fig=sub,
            suptitle=label,
        )
        sub.suptitle(label, fontsize=9, x=0.01, ha="left", y=1 - 0.08 / h, va="top")
    return fig


def neighbour_count_histograms(counts: dict[int, np.ndarray]):
    """One histogram of the number of NNK neighbours per k (one integer bin each), with the
    mean marked. ``counts``: {k: ``[n]``}."""
    style.use()
    ks = sorted(counts)
    cols = min(len(ks), 3)
    rows = -(-len(ks) // cols)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=style.figsize(rows, row_height=2.6),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    for ax, k in zip(axes.ravel(), ks, strict=False):
        c = np.asarray(counts[k])
        sns.histplot(x=c, bins=np.arange(0.5, k + 1.5), color=style.METHOD_COLOURS["NNK"], ax=ax)
        ax.axvline(c.mean(), color="0.2", ls="--", lw=1.2, label="mean")
        ax.set_xlim(0, k + 1)
        ax.set_title(f"k = {k}: mean {c.mean():.1f}")
        ax.set_xlabel("NNK neighbours")
        style.integer_ticks(ax)
    for ax in axes.ravel()[len(ks) :]:
        ax.set_axis_off()
    axes[0, 0].set_ylabel("test queries")
    style.legend_outside(fig, "below")
    return fig


def share_histograms(groups: dict[str, np.ndarray], xlabel: str, bins: int = 20, ax=None):
    """Density histograms of values in [0, 1], one step outline per group ({label: values}),
    the legend (with each group's size and mean) to the right of the axes."""
    style.use()
    if ax is None:
        _, ax = plt.subplots(figsize=(style.BOOK_WIDTH, 3.0), layout="constrained")
    edges = np.linspace(0, 1, bins + 1)
    for n, (label, x) in enumerate(groups.items()):
        x = np.asarray(x, dtype=float)
        if x.size:
            sns.histplot(
                x=x,
                bins=edges,
                stat="density",
                element="step",
                fill=False,
                lw=1.8,
                color=f"C{n}",
                label=f"{label} (n = {x.size}, mean {x.mean():.2f})",
                ax=ax,
            )
    ax.set_xlim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    style.legend_outside(ax, "right")
    return ax.figure


def share_panels(groups: dict[str, tuple[np.ndarray, np.ndarray]]):
    """Side-by-side :func:`share_histograms` of correct and wrong predictions, one panel per
    method, each with its legend below it. ``groups``: {method: (weight share ``[n]``,
    correct ``[n]`` bool)}."""
    style.use()
    fig, axes = plt.subplots(
        1,
        len(groups),
        figsize=style.figsize(1, row_height=3.4),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    for ax, (name, (share, ok)) in zip(axes.ravel(), groups.items(), strict=True):
        share, ok = np.asarray(share), np.asarray(ok, dtype=bool)
        share_histograms({"correct": share[ok], "wrong": share[~ok]}, "", ax=ax)
        ax.set_title(name)
        ax.set_xlabel("weight share on predicted class")
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        style.legend_outside(ax, "below", bbox_to_anchor=(0.5, -0.22), ncol=1)
    return fig


def confidence_scatter(confidence, share, disagree, ax=None):
    """The network's softmax confidence against NNK's weight share on its own predicted class,
    agreeing queries in grey, disagreeing ones in red; the legend to the right."""
    style.use()
    if ax is None:
        _, ax = plt.subplots(figsize=(style.BOOK_WIDTH, 3.8), layout="constrained")
    confidence, share, disagree = map(np.asarray, (confidence, share, disagree))
    disagree = disagree.astype(bool)
    for sel, label, colour, size, alpha in (
        (~disagree, "NNK agrees with network", "0.6", 8, 0.35),
        (disagree, "NNK disagrees", "C3", 14, 0.8),
    ):
        sns.scatterplot(
            x=confidence[sel],
            y=share[sel],
            s=size,
            alpha=alpha,
            color=colour,
            linewidth=0,
            label=f"{label} (n = {int(sel.sum())})",
            ax=ax,
        )
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel("network confidence (max softmax)")
    ax.set_ylabel("NNK weight share\non its predicted class")
    style.legend_outside(ax, "right", markerscale=2)
    return ax.figure
