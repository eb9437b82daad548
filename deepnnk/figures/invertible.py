"""Figures of notebook 07's two-moons part, drawn from :mod:`deepnnk.studies.invertible`.

- :func:`moons_figure`: the invertible classifier on two moons. Top, the input plane (whole,
  and zoomed on the query): the exact decision boundary, a query ``x`` (star), its projection
  explanation ``x_b = T⁻¹(p)`` (square), the true closest boundary point ``x*`` (diamond), its
  NNK neighbours (rings, chosen in feature space, drawn where they are in the plane), ``T⁻¹``
  of the NNK interpolation point (plus) and the NNK polytope. NNK runs on ``T(x)``, so the
  polytope is convex in feature space; the input panels show its exact preimage under ``T``
  (the convex pieces of ``study.moons_example``: a connected, generally non-convex region).
  Bottom left, feature space: ``T(x_train)``, the linear boundary (a line), ``T(x)``, ``p``,
  the convex polytope and the interpolation point ``z``. Bottom right: the histogram of the
  minimality ratio ``‖x − x_b‖ / ‖x − x*‖`` over the test set, median and 90th percentile.
- :func:`accuracy_figure`: the seed sweep's train/test accuracies against the authors' log.

Drawn in the book's style (:mod:`deepnnk.figures.style`).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.collections import LineCollection

from deepnnk.figures import style
from deepnnk.figures.nnk_geometry import CLASS_COLOURS, _scatter_data, draw_polytopes

POLY_COLOUR = "gold"
MARKS = {  # what, marker, colour
    "x": ("query x", "*", "crimson"),
    "x_b": ("x_b = T⁻¹(p) (projection)", "s", "tab:purple"),
    "x_star": ("x* (closest boundary point)", "D", "tab:green"),
    "interp": ("T⁻¹(NNK interpolation)", "P", "black"),
}


def _mark(ax, xy, key, size=90, zorder=7):
    label, marker, colour = MARKS[key]
    ax.scatter(*np.asarray(xy).T, marker=marker, s=size, c=colour, edgecolors="w", lw=0.6,
               zorder=zorder, label=label)  # fmt: skip


def _input_panel(ax, ex: dict, zoom: bool = False) -> None:
    b = ex["bounds"]
    q = ex["query"]
    if zoom:  # a square around x holding x_b, x*, the neighbours and the polytope
        pts = [ex["x_b"][None], ex["x_star"][None], ex["neighbours"], *ex["pieces"]]
        half = 1.25 * max(float(np.abs(np.concatenate(pts) - q).max()), 1e-3)
        b = (q[0] - half, q[0] + half, q[1] - half, q[1] + half)
    _scatter_data(ax, ex["X_train"], ex["y_train"], alpha=0.35, s=8)
    draw_polytopes(ax, ex["pieces"], POLY_COLOUR, edges=False)
    ax.add_collection(LineCollection(ex["segments"], colors="k", linewidths=1.8, zorder=3))
    for key, colour in (("x_b", "tab:purple"), ("x_star", "tab:green")):
        ax.plot(*np.stack([q, ex[key]]).T, color=colour, lw=1.4, ls="--", zorder=6)
    ax.scatter(*ex["neighbours"].T, s=55, facecolors="none", edgecolors="crimson", lw=1.4,
               zorder=6, label="NNK neighbours")  # fmt: skip
    _mark(ax, ex["x_interp"], "interp", 70, zorder=8)  # often right on x
    _mark(ax, ex["x_b"], "x_b")
    _mark(ax, ex["x_star"], "x_star")
    _mark(ax, q, "x", 200)
    ax.set_xlim(b[:2])
    ax.set_ylim(b[2:])
    ax.set_aspect("equal")
    if zoom:
        title = (
            f"zoom: ‖x−x_b‖ = {ex['dist_b']:.3f}, ‖x−x*‖ = {ex['dist_star']:.3f};\n"
            "NNK polytope pulled back by T⁻¹ (gold)"
        )
    else:
        title = "input plane: exact decision boundary"
    ax.set_title(title, fontsize=9)


def _feature_panel(ax, ex: dict) -> None:
    fb = ex["feature_bounds"]
    _scatter_data(ax, ex["F_train"], ex["y_train"], alpha=0.35, s=8)
    draw_polytopes(ax, [ex["feature_polytope"]], POLY_COLOUR)
    ax.plot(*ex["hyperplane"].T, color="k", lw=1.8, zorder=3)
    fq = ex["f_query"]
    ax.plot(*np.stack([fq, ex["p"]]).T, color="tab:purple", lw=1.4, ls="--", zorder=6)
    ax.scatter(*ex["feature_neighbours"].T, s=55, facecolors="none", edgecolors="crimson",
               lw=1.4, zorder=6)  # fmt: skip
    _mark(ax, ex["z"], "interp", 70, zorder=8)
    _mark(ax, ex["p"], "x_b")
    _mark(ax, fq, "x", 200)
    ax.set_xlim(fb[:2])
    ax.set_ylim(fb[2:])
    ax.set_aspect("equal")
    ax.set_title("feature space T(x): linear boundary,\nconvex NNK polytope", fontsize=9)


def _ratio_panel(ax, mini: dict) -> None:
    r = np.asarray(mini["ratio"])
    sns.histplot(r, bins=30, ax=ax, color=style.METHOD_COLOURS["network"])
    for v, name, ls in ((mini["median"], "median", "-"), (mini["p90"], "90th pct", "--")):
        ax.axvline(v, color="k", ls=ls, lw=1.0, label=f"{name} {v:.2f}")
    ax.set_xlabel("‖x − x_b‖ / ‖x − x*‖")
    ax.set_ylabel("test points")
    ax.set_title(f"minimality ratio ({len(r)} test points)", fontsize=9)
    ax.legend(frameon=False, fontsize=8)


def moons_figure(example: dict, mini: dict):
    """Four panels: the input plane and a zoom on the query (top), feature space (both from
    ``example``, the output of ``study.moons_example``) and the minimality-ratio histogram
    (``mini``, the output of ``study.minimality``) below. Returns the figure; the legend sits
    below it."""
    style.use()
    fig, axes = plt.subplots(2, 2, figsize=(style.BOOK_WIDTH, 6.4))
    _input_panel(axes[0, 0], example)
    _input_panel(axes[0, 1], example, zoom=True)
    _feature_panel(axes[1, 0], example)
    _ratio_panel(axes[1, 1], mini)
    fig.tight_layout()
    handles, labels = axes[0, 1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3,
               frameon=False, fontsize=8)  # fmt: skip
    return fig


def accuracy_figure(sweep: dict, target: dict):
    """Train against test accuracy (percent) of each seed of ``study.seed_sweep``, with the
    authors' logged run (``target``, :data:`~deepnnk.studies.invertible.AUTHORS_LOG`) and its
    ±2-point box. Returns the figure."""
    style.use()
    fig, ax = plt.subplots(figsize=(style.BOOK_WIDTH * 0.55, 3.0))
    corner = (target["train_acc"] - 2, target["test_acc"] - 2)
    box = plt.Rectangle(corner, 4, 4, fc="0.9", ec="0.5", ls="--", zorder=0, label="authors ±2")
    ax.add_patch(box)
    ax.scatter(sweep["train_acc"], sweep["test_acc"], c=CLASS_COLOURS[0], s=30, zorder=3,
               label="seeds (ours)")  # fmt: skip
    ax.scatter([target["train_acc"]], [target["test_acc"]], marker="*", s=180, c="crimson",
               edgecolors="k", zorder=4, label="authors' log")  # fmt: skip
    ax.set_xlabel("train accuracy (%)")
    ax.set_ylabel("test accuracy (%)")
    style.legend_outside(ax)
    fig.tight_layout()
    return fig
