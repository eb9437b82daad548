"""Figures of notebook 04: DCGAN samples, the classes the network gives each image set, the
score distributions, the feature geometry, memorisation pairs and the NNK galleries of generated
images.

Statistical plots (class bars, score histograms, the norm/angle scatter) are seaborn in the
book's :mod:`~deepnnk.figures.style`, legends off the data; image grids and galleries are plain
matplotlib. The numbers come from :mod:`deepnnk.studies.generative`.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from deepnnk.explain import NeighbourTable
from deepnnk.figures import style
from deepnnk.figures.gallery import neighbour_titles, plot_gallery
from deepnnk.nets import dcgan
from deepnnk.studies.adversarial import to_hwc
from deepnnk.studies.generative import SCORE_LABELS, SCORES, ImageSet

#: Short axis labels for the score panels (the long ones are :data:`SCORE_LABELS`).
SHORT_LABELS = {
    "n_neighbours": "NNK neighbours",
    "residual": "NNK residual",
    "entropy": "label entropy (bits)",
    "nn_pixel": "pixel dist. to train",
    "nn_feature": "feature dist. to train",
    "feature_norm": "feature norm",
    "nn_cosine_distance": "1 − cos to train",
}


def samples_grid(images, title: str = "", rows: int = 8, cols: int = 8):
    """The first ``rows × cols`` generated images (uint8 HWC) as one grid."""
    style.use()
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.imshow(dcgan.sample_grid(images, rows, cols))
    ax.set_title(title)
    ax.axis("off")
    return fig


def network_classes(hist: dict, class_names):
    """Bars of the fraction of each set's images the network puts in each class;
    ``hist``: {set name: ``[n_classes]`` fractions}, one colour per set, uniform 10% dashed."""
    style.use()
    rows = [
        {"set": name, "class": class_names[c], "fraction": f}
        for name, h in hist.items()
        for c, f in enumerate(h)
    ]
    fig, ax = plt.subplots(figsize=style.figsize(1, row_height=3.2), layout="constrained")
    sns.barplot(pd.DataFrame(rows), x="class", y="fraction", hue="set", ax=ax)
    ax.axhline(1 / len(class_names), color="0.5", ls="--", lw=1, label="uniform", zorder=0)
    ax.tick_params(axis="x", labelrotation=35)
    ax.set_xlabel("")
    ax.set_ylabel("fraction of images")
    ax.get_legend().remove()
    style.legend_outside(ax, "right")
    return fig


def score_histograms(sets: list[ImageSet], keys=SCORES, ncols: int = 3):
    """One panel per score, a step histogram (density per set, shared bins) per image set, in a
    grid ``ncols`` wide at book width; the legend takes the first free panel (or goes below)."""
    style.use()
    frame = pd.DataFrame(
        [
            {"set": s.name, **{key: float(s.scores[key][i]) for key in keys}}
            for s in sets
            for i in range(len(s.scores[keys[0]]))
        ]
    )
    n = len(keys)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=style.figsize(nrows, row_height=2.3),
        layout="constrained",
        squeeze=False,
    )
    palette = dict(zip([s.name for s in sets], sns.color_palette(n_colors=len(sets)), strict=True))
    for j, (ax, key) in enumerate(zip(axes.ravel(), keys, strict=False)):
        opts = dict(element="step", fill=False, stat="density", common_norm=False, linewidth=1.5)
        if key == "n_neighbours":
            opts["discrete"] = True
        else:
            opts["bins"] = 25
        sns.histplot(frame, x=key, hue="set", palette=palette, ax=ax, legend=j == 0, **opts)
        ax.set_xlabel(SHORT_LABELS.get(key, SCORE_LABELS[key]))
        ax.set_ylabel("density" if j % ncols == 0 else "")
        ax.set_yticks([])
        if key == "n_neighbours":
            style.integer_ticks(ax)
    legend = axes.ravel()[0].get_legend()
    handles, labels = legend.legend_handles, [t.get_text() for t in legend.get_texts()]
    legend.remove()
    spare = axes.ravel()[n:]
    for ax in spare:
        ax.axis("off")
    if len(spare):
        spare[0].legend(handles, labels, loc="center", frameon=False, title="image set")
    else:
        fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), frameon=False)
    return fig


def norm_and_angle(sets: list[ImageSet], x: str = "nn_cosine_distance", y: str = "feature_norm"):
    """Each image's feature norm against its cosine distance to the nearest training feature,
    one colour per set: what the Euclidean distance mixes, and what the cosine kernel keeps."""
    style.use()
    frame = pd.DataFrame(
        [
            {"set": s.name, x: float(s.scores[x][i]), y: float(s.scores[y][i])}
            for s in sets
            for i in range(len(s.scores[x]))
        ]
    )
    fig, ax = plt.subplots(figsize=style.figsize(1, row_height=3.4), layout="constrained")
    sns.scatterplot(frame, x=x, y=y, hue="set", s=12, alpha=0.6, linewidth=0, ax=ax)
    ax.set_xlabel(SCORE_LABELS[x] + " (what the kernel sees)")
    ax.set_ylabel(SCORE_LABELS[y])
    ax.get_legend().remove()
    style.legend_outside(ax, "right", markerscale=2)
    return fig


def memorisation_pairs(
    images, nearest, train_images, distances, n: int = 8, title: str = "", stds=None
):
    """The ``n`` images closest to the training set in pixel space (top row) above their nearest
    training image (bottom row); the top titled with the distance (and the image's pixel std
    σ when ``stds`` is given), the bottom with the training image's index."""
    style.use()
    order = np.argsort(distances, kind="stable")[:n]
    fig, axes = plt.subplots(
        2, n, figsize=(style.BOOK_WIDTH, 0.875 * style.BOOK_WIDTH / n * 2 + 1.2), squeeze=False
    )
    for j, i in enumerate(order):
        img = images[i]
        img = to_hwc(img) if img.dtype != np.uint8 else img
        axes[0, j].imshow(img)
        label = f"d {distances[i]:.2f}"
        if stds is not None:
            label += f"\nσ {stds[i]:.2f}"
        axes[0, j].set_title(label, fontsize=9)
        axes[1, j].imshow(train_images[nearest[i]])
        axes[1, j].set_title(f"#{nearest[i]}", fontsize=9)
    for ax in axes.ravel():
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def generated_gallery(table: NeighbourTable, i: int, image, train_images, class_names, net_label):
    """Gallery of generated image ``i``: titled with the network's and NNK's labels (a generated
    image has no true class), then its NNK neighbours by decreasing weight, "class, weight"."""
    style.use()
    rows, w, labels = table.neighbours(i)
    names = [class_names[int(c)] for c in labels]
    title = f"net {class_names[int(net_label)]}, NNK {class_names[int(table.pred[i])]}"
    return plot_gallery(image, train_images[rows], neighbour_titles(names, w), query_title=title)
