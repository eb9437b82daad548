"""Figures for instance explanations: image galleries and distributions.

A gallery shows the query first, then its neighbours, ``per_row`` panels to a row (7, as in the
paper), each with a small title. Images are uint8 ``[32, 32, 3]`` RGB (HWC), as
:func:`deepnnk.nets.data.load_cifar10` returns them.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from deepnnk.explain import NeighbourTable

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
    ks = sorted(counts)
    fig, axes = plt.subplots(
        1, len(ks), figsize=(3.4 * len(ks), 2.8), sharey=True, squeeze=False, layout="constrained"
    )
    for ax, k in zip(axes.ravel(), ks, strict=True):
        c = np.asarray(counts[k])
        ax.hist(c, bins=np.arange(0.5, k + 1.5), color="C0")
        ax.axvline(c.mean(), color="C3", ls="--", label=f"mean {c.mean():.1f}")
        ax.set_xlim(0, k + 1)
        ax.set_title(f"k = {k}")
        ax.set_xlabel("number of NNK neighbours")
        ax.legend(fontsize=8)
    axes[0, 0].set_ylabel("test queries")
    return fig


def share_histograms(groups: dict[str, np.ndarray], xlabel: str, bins: int = 20, ax=None):
    """Density histograms of values in [0, 1], one step outline per group ({label: values})."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3), layout="constrained")
    edges = np.linspace(0, 1, bins + 1)
    for n, (label, x) in enumerate(groups.items()):
        x = np.asarray(x)
        if x.size:
            ax.hist(
                x,
                bins=edges,
                density=True,
                histtype="step",
                lw=1.8,
                color=f"C{n}",
                label=f"{label} (n = {x.size}, mean {x.mean():.2f})",
            )
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.legend(fontsize=8, loc="upper left")
    return ax.figure


def share_panels(groups: dict[str, tuple[np.ndarray, np.ndarray]]):
    """Side-by-side :func:`share_histograms` of correct and wrong predictions, one panel per
    method. ``groups``: {method: (weight share ``[n]``, correct ``[n]`` bool)}."""
    fig, axes = plt.subplots(
        1,
        len(groups),
        figsize=(4.5 * len(groups), 3.2),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    for ax, (name, (share, ok)) in zip(axes.ravel(), groups.items(), strict=True):
        share, ok = np.asarray(share), np.asarray(ok, dtype=bool)
        share_histograms(
            {"correct": share[ok], "wrong": share[~ok]},
            f"{name}: weight share on predicted class",
            ax=ax,
        )
    return fig


def confidence_scatter(confidence, share, disagree, ax=None):
    """The network's softmax confidence against NNK's weight share on its own predicted class,
    agreeing queries in grey, disagreeing ones in red."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.6), layout="constrained")
    confidence, share, disagree = map(np.asarray, (confidence, share, disagree))
    disagree = disagree.astype(bool)
    ax.scatter(
        confidence[~disagree],
        share[~disagree],
        s=4,
        alpha=0.25,
        color="0.6",
        label=f"NNK agrees with network (n = {int((~disagree).sum())})",
    )
    ax.scatter(
        confidence[disagree],
        share[disagree],
        s=8,
        alpha=0.8,
        color="C3",
        label=f"NNK disagrees (n = {int(disagree.sum())})",
    )
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("network confidence (max softmax)")
    ax.set_ylabel("NNK weight share on its predicted class")
    ax.legend(fontsize=7, loc="lower right")
    return ax.figure
