"""Figures of notebook 07's CIFAR-10 part, drawn from :mod:`deepnnk.studies.invertible_cifar`.

- :func:`gallery_figure`: one row per test image: ``x``, the projection explanation ``x_b``,
  ``x − x_b`` amplified (grey is zero; each row scaled to its own largest entry), the NNK
  neighbours of ``T(x)`` (training images, with class and weight) and ``T⁻¹`` of the NNK
  interpolation point ``Σθ_j T(x_j)/Σθ_j``;
- :func:`pareto_figure`: proximity against plausibility (NNK residual; nearest-training
  distance in feature space) of the three counterfactuals, every image a dot (filled: valid,
  hollow: not), each method's median a large marker.

Images are float ``[n, 3, 32, 32]`` pixels/255 (shown clipped to [0, 1]); training images uint8
HWC. Drawn in the book's style (:mod:`deepnnk.figures.style`).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from deepnnk.figures import style
from deepnnk.figures.gallery import format_weight

METHOD_STYLE = {  # label, colour, marker
    "projection": ("projection x_b", "tab:purple", "s"),
    "nnk_neighbour": ("nearest NNK neighbour of class b", "tab:orange", "o"),
    "nnk_guided": ("NNK-guided (bisection)", "tab:green", "D"),
}


def to_hwc(image) -> np.ndarray:
    """One image as HWC in [0, 1] for ``imshow``: float CHW pixels/255 (clipped) or uint8 HWC."""
    im = np.asarray(image)
    if im.dtype == np.uint8:
        return im.astype(np.float32) / 255
    if im.ndim == 3 and im.shape[0] == 3:
        im = im.transpose(1, 2, 0)
    return np.clip(im, 0.0, 1.0)


def amplified(delta) -> np.ndarray:
    """A difference image ``[3, H, W]`` as HWC in [0, 1]: 0.5 + δ / (2 max|δ|) (grey is zero)."""
    d = np.asarray(delta, dtype=np.float64)
    scale = max(float(np.abs(d).max()), 1e-12)
    return (0.5 + 0.5 * d / scale).transpose(1, 2, 0)


def _show(ax, image, title: str, fontsize: float) -> None:
    ax.imshow(image, interpolation="nearest")
    ax.set_title(title, fontsize=fontsize)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def gallery_figure(g: dict, train_images, class_names, n_neighbours: int = 4, fontsize=6.0):
    """The gallery of ``g`` (the output of ``study.gallery``): one row per image, columns ``x``,
    ``x_b``, ``x − x_b`` (amplified), up to ``n_neighbours`` NNK neighbours by weight (blank past
    the support) and ``T⁻¹`` of the interpolation point. ``train_images``: the NNK database's
    images (uint8 HWC), indexed by ``g["neighbours"]``. Returns the figure."""
    style.use()
    n = len(g["a"])
    cols = 4 + n_neighbours
    fig, axes = plt.subplots(n, cols, figsize=(cols * 0.95, n * 1.1), squeeze=False)
    name = lambda c: str(class_names[int(c)])  # noqa: E731
    for i in range(n):
        row = axes[i]
        _show(row[0], to_hwc(g["x"][i]), f"x: {name(g['a'][i])}", fontsize)
        _show(row[1], to_hwc(g["x_b"][i]), f"x_b ({name(g['a'][i])}|{name(g['b'][i])})", fontsize)
        amp = float(np.abs(g["delta"][i]).max())
        _show(row[2], amplified(g["delta"][i]), f"x − x_b (±{amp:.3f})", fontsize)
        for j in range(n_neighbours):
            ax = row[3 + j]
            r = int(g["neighbours"][i, j]) if j < g["neighbours"].shape[1] else -1
            if r < 0:
                ax.axis("off")
                continue
            w = format_weight(float(g["neighbour_weights"][i, j]))
            title = f"{name(g['neighbour_labels'][i, j])}, {w}"
            _show(ax, to_hwc(np.asarray(train_images)[r]), title, fontsize)
        _show(row[-1], to_hwc(g["x_interp"][i]), f"T⁻¹(interp): {name(g['interp_pred'][i])}",
              fontsize)  # fmt: skip
    fig.tight_layout(pad=0.3, h_pad=0.4, w_pad=0.2)
    return fig


def pareto_figure(cf: dict):
    """Proximity (‖c − x‖, pixels/255) against the NNK residual (left) and the distance to the
    nearest training feature (right) of each counterfactual in ``cf`` (the output of
    ``study.counterfactuals``): filled dots are valid (the prediction leaves class a just past
    them), hollow ones are not; large markers are each method's medians. Returns the figure."""
    style.use()
    fig, axes = plt.subplots(1, 2, figsize=(style.BOOK_WIDTH, 3.2))
    for ax, key, ylabel in (
        (axes[0], "residual", "NNK residual of T(c) (lower: more plausible)"),
        (axes[1], "nn_distance", "distance to nearest training feature"),
    ):
        for name, m in cf["methods"].items():
            label, colour, marker = METHOD_STYLE[name]
            x, y, ok = np.asarray(m["proximity"]), np.asarray(m[key]), np.asarray(m["valid"])
            ax.scatter(x[ok], y[ok], s=12, c=colour, marker=marker, alpha=0.5, lw=0,
                       label=f"{label}, valid")  # fmt: skip
            ax.scatter(x[~ok], y[~ok], s=14, facecolors="none", edgecolors=colour, marker=marker,
                       alpha=0.7, lw=0.8, label=f"{label}, not valid")  # fmt: skip
            ax.scatter([np.median(x)], [np.median(y)], s=140, c=colour, marker=marker,
                       edgecolors="k", lw=1.2, zorder=5, label=f"{label}, median")  # fmt: skip
        ax.set_xscale("symlog", linthresh=0.1)
        ax.set_xlabel("proximity ‖c − x‖ (pixels/255)")
        ax.set_ylabel(ylabel, fontsize=8)
    fig.tight_layout()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3,
               frameon=False, fontsize=7)  # fmt: skip
    return fig


def gap_figure(gp: dict):
    """``logit_a − logit_b`` against ``s`` along the feature-space segment ``T(x) → p`` (left:
    straight lines, zero at ``s = 1``, the boundary) and the input-space segment ``x → x_b``
    (right), one line per image of ``gp`` (the output of ``study.gap_profile``). Returns the
    figure."""
    style.use()
    fig, axes = plt.subplots(1, 2, figsize=(style.BOOK_WIDTH, 2.8), sharey=True)
    for ax, key, title in (
        (axes[0], "feature", "feature space: T(x) + s (p − T(x))"),
        (axes[1], "input", "input space: x + s (x_b − x)"),
    ):
        ax.plot(gp["s"], np.asarray(gp[key]).T, color=style.METHOD_COLOURS["network"], lw=1.0,
                alpha=0.7)  # fmt: skip
        ax.axhline(0.0, color="k", lw=0.8)
        ax.axvline(1.0, color="tab:purple", ls="--", lw=1.0)
        ax.set_xlabel("s (s = 1: p, or x_b)")
        ax.set_title(title, fontsize=9)
    axes[0].set_ylabel("logit_a − logit_b")
    fig.tight_layout()
    return fig
