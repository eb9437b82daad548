"""Figures of notebook 04: DCGAN samples, the classes the network gives each image set, the
score distributions, memorisation pairs and the NNK galleries of generated images.

The numbers come from :mod:`deepnnk.studies.generative`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from deepnnk.explain import NeighbourTable
from deepnnk.figures.gallery import neighbour_titles, plot_gallery
from deepnnk.nets import dcgan
from deepnnk.studies.adversarial import to_hwc
from deepnnk.studies.generative import SCORE_LABELS, SCORES, ImageSet


def samples_grid(images, title: str = "", rows: int = 8, cols: int = 8):
    """The first ``rows × cols`` generated images (uint8 HWC) as one grid."""
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(dcgan.sample_grid(images, rows, cols))
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return fig


def network_classes(hist: dict, class_names):
    """Bars of the fraction of each set's images the network puts in each class;
    ``hist``: {set name: ``[n_classes]`` fractions} (three sets side by side)."""
    fig, ax = plt.subplots(figsize=(7, 2.6))
    for j, (name, h) in enumerate(hist.items()):
        ax.bar(np.arange(10) + 0.27 * (j - 1), h, width=0.27, label=name)
    ax.set_xticks(range(10), class_names, fontsize=7)
    ax.set_ylabel("fraction of images")
    ax.legend(fontsize=7)
    return fig


def score_histograms(sets: list[ImageSet], keys=SCORES):
    """One panel per score, a step histogram per image set on shared bins."""
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.9))
    for ax, key in zip(np.atleast_1d(axes), keys, strict=True):
        allv = np.concatenate([s.scores[key] for s in sets])
        if key == "n_neighbours":
            bins = np.arange(allv.min() - 0.5, allv.max() + 1.5)
        else:
            bins = np.linspace(allv.min(), allv.max(), 30)
        for s in sets:
            ax.hist(s.scores[key], bins=bins, histtype="step", density=True, lw=1.5, label=s.name)
        ax.set_xlabel(SCORE_LABELS[key], fontsize=8)
        ax.set_yticks([])
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def memorisation_pairs(images, nearest, train_images, distances, n: int = 8, title: str = ""):
    """The ``n`` images closest to the training set in pixel space (top row) above their nearest
    training image (bottom row), each titled with the distance."""
    order = np.argsort(distances, kind="stable")[:n]
    fig, axes = plt.subplots(2, n, figsize=(1.15 * n, 2.8), squeeze=False)
    for j, i in enumerate(order):
        img = images[i]
        img = to_hwc(img) if img.dtype != np.uint8 else img
        axes[0, j].imshow(img)
        axes[0, j].set_title(f"{distances[i]:.2f}", fontsize=7)
        axes[1, j].imshow(train_images[nearest[i]])
        axes[1, j].set_title(f"train {nearest[i]}", fontsize=7)
    for ax in axes.ravel():
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def generated_gallery(table: NeighbourTable, i: int, image, train_images, class_names, net_label):
    """Gallery of generated image ``i``: titled with the network's and NNK's labels (a generated
    image has no true class), then its NNK neighbours by decreasing weight, "class, weight"."""
    rows, w, labels = table.neighbours(i)
    names = [class_names[int(c)] for c in labels]
    title = f"net {class_names[int(net_label)]}, NNK {class_names[int(table.pred[i])]}"
    return plot_gallery(image, train_images[rows], neighbour_titles(names, w), query_title=title)
