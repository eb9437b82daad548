r"""Generated, real and adversarial images compared through their NNK explanations.

For each set of images (DCGAN samples, real test images, adversarial test images) we compute,
per image, in the classifier's feature space with NNK over the training features:

- ``n_neighbours``: the number of NNK neighbours (support of θ*);
- ``residual``: :math:`1 - 2K_{Sq}^\top\theta + \theta^\top K_{SS}\theta`, how far the feature is
  from its interpolation by the training features (kernel space, in [0, 1]-ish units);
- ``entropy``: the entropy, in bits, of the interpolated label Σθ_j y_j / Σθ_j (0: one class;
  log2 10 ≈ 3.32: uniform);
- ``nn_pixel``: the Euclidean distance from the image (pixels/255, 3072 values) to the nearest
  training image, the memorisation check;
- ``nn_feature``: the Euclidean distance from its feature to the nearest training feature.

:func:`compare` summarises each score per set and gives the ROC AUC that separates each set from
the real test images (0.5: indistinguishable by that score).
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np

from deepnnk import explain
from deepnnk.explain import NeighbourTable
from deepnnk.neighbors import knn
from deepnnk.nets import features
from deepnnk.studies.adversarial import detection_auc, to_hwc

SCORES = ("n_neighbours", "residual", "entropy", "nn_pixel", "nn_feature")
SCORE_LABELS = {
    "n_neighbours": "number of NNK neighbours",
    "residual": "NNK residual",
    "entropy": "entropy of the interpolated label (bits)",
    "nn_pixel": "distance to nearest training image (pixels)",
    "nn_feature": "distance to nearest training feature",
}


def pixels(images) -> np.ndarray:
    """Images as float32 rows ``[n, 3072]`` of pixels/255 in HWC order, for pixel distances.

    uint8 ``[n, 32, 32, 3]`` (as loaded) or float ``[n, 3, 32, 32]`` in [0, 1] (as attacked).
    """
    images = features.check_images(images)
    arr = np.asarray(images)
    if arr.dtype == np.uint8:
        return (arr.reshape(len(arr), -1).astype(np.float32)) / 255.0
    return np.ascontiguousarray(np.transpose(arr, (0, 2, 3, 1)), dtype=np.float32).reshape(
        len(arr), -1
    )


def nearest_distance(X, X_train) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance ``[n]`` from each row of ``X`` to its nearest row of ``X_train``, and
    that row's index ``[n]`` (exact: :func:`deepnnk.knn` re-ranks near-ties in float64)."""
    _, idx = knn(X, X_train, 1)
    idx = np.asarray(idx)[:, 0]
    # The search's distances come from ‖q‖² + ‖x‖² − 2q·x, which loses all precision for a
    # near-copy, exactly the case a memorisation check is about: recompute from the difference.
    diff = np.asarray(X, np.float64) - np.asarray(X_train)[idx].astype(np.float64)
    return np.sqrt(np.einsum("ij,ij->i", diff, diff)), idx


def label_entropy(table: NeighbourTable) -> np.ndarray:
    """Entropy in bits ``[n]`` of each query's interpolated label distribution."""
    p = table.proba
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log2(p), 0.0)
    return terms.sum(1)


@dataclass
class ImageSet:
    """One set of images seen by the network and explained by NNK.

    scores: {name in :data:`SCORES`: ``[n]``}; net_pred / net_conf ``[n]`` the network's label and
    its softmax probability; nnk: the :class:`~deepnnk.explain.NeighbourTable`; nearest_train
    ``[n]`` the training row nearest in pixel space.
    """

    name: str
    scores: dict
    net_pred: np.ndarray
    net_conf: np.ndarray
    nnk: NeighbourTable
    nearest_train: np.ndarray


def explain_images(name: str, model, clf, images, train_pixels, train_features) -> ImageSet:
    """Features (cached), network labels, NNK explanations and the five scores of ``images``.

    ``clf`` is a fitted NNK :class:`~deepnnk.NNKClassifier` on ``train_features``;
    ``train_pixels`` are the same training images as :func:`pixels` rows.
    """
    F = features.extract(model, images)
    proba = explain.network_proba(model, F)
    table = explain.neighbourhood_table(clf, F)
    d_pix, near = nearest_distance(pixels(images), train_pixels)
    d_feat, _ = nearest_distance(F, train_features)
    scores = {
        "n_neighbours": table.n_neighbours.astype(float),
        "residual": np.asarray(table.residual, float),
        "entropy": label_entropy(table),
        "nn_pixel": d_pix,
        "nn_feature": d_feat,
    }
    return ImageSet(name, scores, proba.argmax(1), proba.max(1), table, near)


def _describe(x) -> dict:
    x = np.asarray(x, float)
    q10, q50, q90 = np.quantile(x, [0.1, 0.5, 0.9])
    return {"mean": float(x.mean()), "median": float(q50), "q10": float(q10), "q90": float(q90)}


def compare(sets: list[ImageSet], reference: str = "real test") -> dict:
    """Per set: each score's mean/median/10th/90th percentile, the network's mean confidence,
    NNK's agreement with the network, and the ROC AUC of each score separating the set from
    ``reference`` (read as "higher = this set"); ``{set name: {...}}``."""
    by_name = {s.name: s for s in sets}
    if reference not in by_name:
        raise ValueError(f"reference set {reference!r} is not among {list(by_name)}.")
    ref = by_name[reference]
    out = {}
    for s in sets:
        entry = {"n": len(s.net_pred)}
        entry |= {key: _describe(s.scores[key]) for key in SCORES}
        entry["network_confidence"] = float(np.mean(s.net_conf))
        entry["nnk_agrees_with_network"] = float(np.mean(s.nnk.pred == s.net_pred))
        if s.name != reference:
            entry["auc_vs_reference"] = {
                key: detection_auc(ref.scores[key], s.scores[key]) for key in SCORES
            }
        out[s.name] = entry
    return out


def class_histogram(pred, n_classes: int = 10) -> list[float]:
    """Fraction of images given each class, ``[n_classes]``."""
    return (np.bincount(np.asarray(pred), minlength=n_classes) / max(len(pred), 1)).tolist()


# --------------------------------------------------------------------------- figures


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
    from deepnnk.figures.gallery import neighbour_titles, plot_gallery

    rows, w, labels = table.neighbours(i)
    names = [class_names[int(c)] for c in labels]
    title = f"net {class_names[int(net_label)]}, NNK {class_names[int(table.pred[i])]}"
    return plot_gallery(image, train_images[rows], neighbour_titles(names, w), query_title=title)
