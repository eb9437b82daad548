"""SplineCam-style pictures of an exact 2-D slice of the paper's CNN
(:func:`deepnnk.nets.splinecam_2d.slice_partition`): the linear regions with thin edges, lightly
coloured by predicted class, the decision boundary as a thick dark line, and the three images
placed at their ``(u, v)`` (or, outside the window, as arrows to its edge)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.offsetbox import AnnotationBbox, OffsetImage
from matplotlib.ticker import MaxNLocator

from deepnnk.figures import style
from deepnnk.nets.splinecam_2d import SlicePartition

__all__ = ["draw_slice", "slice_figure"]

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
_MARKERS = ("*", "o", "s")


def _thumbnail(image) -> np.ndarray:
    """``[3, H, W]`` floats in [0, 1] or ``[H, W, 3]`` (uint8 or float) → ``[H, W, 3]`` floats."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[0] == 3 and a.shape[-1] != 3:
        a = a.transpose(1, 2, 0)
    if a.dtype == np.uint8:
        a = a / 255.0
    return np.clip(a.astype(np.float64), 0.0, 1.0)


def _exit_point(p: np.ndarray, window) -> np.ndarray:
    """Where the ray from the window's centre towards ``p`` leaves the window box."""
    lo, hi = np.array(window[0::2]), np.array(window[1::2])
    c = 0.5 * (lo + hi)
    d = p - c
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(d > 0, (hi - c) / d, np.where(d < 0, (lo - c) / d, np.inf))
    return c + d * min(1.0, float(s.min()))


def draw_slice(
    ax,
    s: SlicePartition,
    images=None,
    names=("query", "x_a", "x_b"),
    colour_by: str = "class",
    zoom: float = 0.9,
    seed: int = 0,
) -> None:
    """Draw ``s`` on ``ax``. ``images``: the three images (``[3, 32, 32]`` pixels/255 or
    ``[32, 32, 3]`` uint8) for ``x_q``, ``x_a``, ``x_b``, shown as thumbnails at their ``(u, v)``
    (markers only when ``None``). ``colour_by``: ``"class"`` (light tab10 by predicted class) or
    ``"region"`` (a random pastel per region)."""
    if colour_by not in ("class", "region"):
        raise ValueError(f"colour_by must be 'class' or 'region', got {colour_by!r}")
    if colour_by == "class":
        base = np.array(plt.get_cmap("tab10").colors)[s.predicted % 10]
        faces = 0.6 + 0.4 * base  # lightened: the edges and the boundary must stay visible
    else:
        faces = 0.6 + 0.4 * np.random.default_rng(seed).random((s.n_regions, 3))
    ax.add_collection(
        PolyCollection(
            s.polygons(),
            facecolors=faces,
            edgecolors=(0.25, 0.25, 0.25, 0.6),
            linewidths=0.25 if s.n_regions < 3000 else 0.1,
            zorder=0,
            rasterized=True,
        )
    )
    if len(s.boundary):
        ax.add_collection(LineCollection(s.boundary, colors="k", linewidths=2.2, zorder=3))
    window = s.window
    span = max(window[1] - window[0], window[3] - window[2])
    for k, (p, name) in enumerate(zip(s.anchors, names, strict=True)):
        inside = window[0] <= p[0] <= window[1] and window[2] <= p[1] <= window[3]
        at = p if inside else _exit_point(p, window)
        label = name if inside else f"{name}\n(at u={p[0]:.3g}, v={p[1]:.3g})"
        if not inside:
            centre = 0.5 * np.array([window[0] + window[1], window[2] + window[3]])
            tail = at - 0.18 * span * (p - centre) / np.linalg.norm(p - centre)
            arrow = {"arrowstyle": "-|>", "color": "k", "lw": 1.5}
            ax.annotate("", xy=at, xytext=tail, arrowprops=arrow, zorder=5)
            at = tail
        else:
            ax.scatter(*at, marker=_MARKERS[k], s=120, c="w", edgecolors="k", zorder=7)
        if images is not None:
            # The thumbnail sits beside its point (linked by a thin line), not over the regions
            # right at it.
            box = OffsetImage(_thumbnail(images[k]), zoom=zoom, interpolation="nearest")
            ax.add_artist(
                AnnotationBbox(
                    box, at, xybox=(0, 34), boxcoords="offset points", frameon=True, pad=0.1,
                    arrowprops={"arrowstyle": "-", "color": "k", "lw": 0.8}, zorder=6,
                )
            )  # fmt: skip
        ax.annotate(
            label, at, xytext=(0, -14), textcoords="offset points", ha="center", va="top",
            fontsize=9, zorder=7,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.8, "lw": 0},
        )  # fmt: skip
    ax.set_xlim(window[:2])
    ax.set_ylim(window[2:])
    ax.set_aspect("equal")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(5))
    ax.set_xlabel("u (along x_a − x_q, L2 pixel/255)")
    ax.set_ylabel("v")


def slice_figure(
    s: SlicePartition,
    images=None,
    names=("query", "x_a", "x_b"),
    classes=CIFAR10_CLASSES,
    colour_by: str = "class",
    title: str | None = None,
):
    """One SplineCam-style panel of ``s`` (see :func:`draw_slice`) with the region count and the
    window in the title and a legend of the predicted classes and the decision boundary.
    Returns the figure (pass it to :func:`deepnnk.figures.publish`)."""
    style.use()
    fig, ax = plt.subplots(figsize=(style.BOOK_WIDTH, 0.8 * style.BOOK_WIDTH))
    draw_slice(ax, s, images, names, colour_by)
    w = s.window
    box = (
        f"[−{w[1]:.3g}, {w[1]:.3g}]²"
        if w == (-w[1], w[1], -w[1], w[1])
        else f"u ∈ [{w[0]:.3g}, {w[1]:.3g}], v ∈ [{w[2]:.3g}, {w[3]:.3g}]"
    )
    head = f"{s.n_regions:,} linear regions in the window {box}"
    ax.set_title(head if title is None else f"{title}\n{head}", fontsize=10)
    # Empty proxies carry the legend's labels, so legend_outside finds them on the axes.
    none = "" if len(s.boundary) else " (none in this window)"
    ax.plot([], [], color="k", lw=2.2, label=f"decision boundary{none}")
    if colour_by == "class":
        cmap = np.array(plt.get_cmap("tab10").colors)
        for c in np.unique(s.predicted):
            label = classes[c] if classes is not None and c < len(classes) else f"class {c}"
            ax.fill([], [], facecolor=0.6 + 0.4 * cmap[c % 10], edgecolor="0.3", label=label)
    style.legend_outside(ax, loc="below")
    fig.tight_layout()
    return fig
