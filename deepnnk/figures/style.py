"""One look for every figure of the book: seaborn's theme, sizes readable at book width.

Statistical plots (histograms, scatter plots with fits, heatmaps) are drawn with seaborn;
galleries of images stay plain matplotlib. Every figure module calls :func:`use` before drawing,
and uses the helpers below for the three rules of the style guide:

* epoch axes have integer ticks (:func:`integer_ticks`);
* AUC axes show chance (:func:`chance_line`);
* legends sit off the data (:func:`legend_outside`).
"""

from __future__ import annotations

import matplotlib as mpl
from matplotlib.ticker import MaxNLocator

#: Width of a full-width figure, inches: the book's text column (about 760 px at 110 dpi).
BOOK_WIDTH = 7.0
#: Height of one row of panels, inches.
ROW_HEIGHT = 3.0
#: Colours of the methods, the same in every chapter.
METHOD_COLOURS = {
    "network": "#4c72b0",
    "NNK": "#dd8452",
    "nnk": "#dd8452",
    "kNN": "#55a868",
    "knn": "#55a868",
    "kernel kNN": "#55a868",
    "SVM": "#8172b3",
    "svm": "#8172b3",
}

_RC = {
    "figure.dpi": 110,
    "savefig.dpi": 130,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.title_fontsize": 9,
    "figure.titlesize": 12,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def use() -> None:
    """Apply the book's theme (seaborn "ticks" at "notebook" scale, with :data:`_RC`).

    Idempotent and cheap; figure functions call it so that a figure drawn outside a notebook
    looks the same as in the book."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="ticks", rc=_RC)
    mpl.rcParams.update(_RC)


def figsize(rows: int = 1, width: float = BOOK_WIDTH, row_height: float = ROW_HEIGHT):
    """``(width, rows * row_height)`` inches: a figure that fits the book's text column."""
    return (width, rows * row_height)


def integer_ticks(ax, axis: str = "x") -> None:
    """Only integer ticks on ``axis`` (epochs, counts): no 2.5 or 7.5."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(MaxNLocator(integer=True))


def chance_line(ax, level: float = 0.5, label: str = "chance", axis: str = "y") -> None:
    """A dashed grey line at ``level`` (AUC 0.5 by default), labelled for the legend."""
    line = ax.axhline if axis == "y" else ax.axvline
    line(level, color="0.5", linestyle="--", linewidth=1, label=label, zorder=0)


def legend_outside(ax_or_fig, loc: str = "right", **kwargs):
    """A legend that never covers data: to the right of an axes, or below a figure.

    ``loc="right"``: centred on the right edge of the axes (or figure), outside it;
    ``loc="below"``: centred under it, in as many columns as entries (at most 5)."""
    handles, labels = _handles(ax_or_fig)
    if not handles:
        return None
    if loc == "right":
        kw = dict(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    elif loc == "below":
        kw = dict(
            loc="upper center",
            bbox_to_anchor=(0.5, -0.12 if hasattr(ax_or_fig, "plot") else 0.0),
            ncol=min(len(handles), 5),
            frameon=False,
        )
    else:
        raise ValueError(f"loc must be 'right' or 'below', got {loc!r}.")
    kw.update(kwargs)
    return ax_or_fig.legend(handles, labels, **kw)


def _handles(ax_or_fig):
    if hasattr(ax_or_fig, "get_legend_handles_labels"):
        return ax_or_fig.get_legend_handles_labels()
    seen: dict[str, object] = {}
    for ax in ax_or_fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(lab, h)
    return list(seen.values()), list(seen.keys())
