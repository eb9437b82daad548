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
- ``nn_feature``: the Euclidean distance from its feature to the nearest training feature;
- ``feature_norm``: the Euclidean norm of its feature;
- ``nn_cosine_distance``: 1 − the cosine similarity of its feature to the cosine-nearest training
  feature, what NNK's kernel :math:`K = \tfrac12 + \tfrac12\cos` sees (``1 − K`` is half of it):
  scale-free, unlike ``nn_feature``, which also grows with the feature's norm.

:func:`compare` summarises each score per set and gives the ROC AUC that separates each set from
the real test images (0.5: indistinguishable by that score). :func:`train_gan` trains (or
resumes) the DCGAN, :func:`explain_sets` builds the three sets. :func:`memorisation_report`
gives the caveats of the pixel-space memorisation check (flat images are near everything), and
:func:`sample_quality` a Fréchet distance between each set and the training set in the
classifier's own feature space (:func:`frechet_distance`, numpy only). :func:`reading` turns the
AUCs into the words the notebook's sentences use, so that no sentence claims a direction its run
did not measure. The figures are in :mod:`deepnnk.figures.generative`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepnnk import NNKClassifier
from deepnnk.explain import NeighbourTable, neighbourhood_table
from deepnnk.neighbors import knn
from deepnnk.nets import dcgan, features
from deepnnk.nets.data import CLASSES as CLASSES  # re-exported for the notebook
from deepnnk.nets.data import load_cifar10 as load_cifar10
from deepnnk.nets.loading import load_network
from deepnnk.studies.adversarial import cached_attack, detection_auc
from deepnnk.studies.explanations import network_proba, sample_indices
from deepnnk.studies.profiles import pick

PROFILES = {
    "smoke": dict(
        gan_width=8, gan_epochs=1, gan_n_train=2048, n_train=5000, n_images=100, n_galleries=1
    ),
    "quick": dict(
        gan_width=32, gan_epochs=8, gan_n_train=50000, n_train=50000, n_images=1000, n_galleries=4
    ),
    "paper": dict(
        gan_width=32, gan_epochs=8, gan_n_train=50000, n_train=50000, n_images=10000, n_galleries=4
    ),
}
EPS_255 = 8  # the adversarial set: PGD at ε = 8/255, 10 steps, as in notebook 03
PGD_STEPS = 10
MODEL, EPOCH = "regularised", 20  # the classifier whose features NNK explains


def profile(name: str) -> dict:
    """The sizes of profile ``name``: the DCGAN's width, epochs and training images, NNK's
    database size ``n_train``, the number of images per set ``n_images`` and of generated images
    shown with their neighbours ``n_galleries``."""
    return pick(PROFILES, name)


def run_config(config: dict, sizes: dict) -> dict:
    """The metrics' ``config``: the notebook's parameters, the profile's sizes (the number of
    galleries, which changes no number, left out) and the attack."""
    sizes = {key: v for key, v in sizes.items() if key != "n_galleries"}
    return {**config, **sizes, "eps_255": EPS_255, "pgd_steps": PGD_STEPS}


SCORES = (
    "n_neighbours",
    "residual",
    "entropy",
    "nn_pixel",
    "nn_feature",
    "feature_norm",
    "nn_cosine_distance",
)
SCORE_LABELS = {
    "n_neighbours": "number of NNK neighbours",
    "residual": "NNK residual",
    "entropy": "entropy of the interpolated label (bits)",
    "nn_pixel": "distance to nearest training image (pixels)",
    "nn_feature": "distance to nearest training feature",
    "feature_norm": "norm of the feature",
    "nn_cosine_distance": "1 − cosine to nearest training feature",
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


def unit_rows(X) -> np.ndarray:
    """Rows of ``X`` scaled to unit Euclidean norm (float32; a zero row stays zero)."""
    X = np.asarray(X, np.float32)
    norm = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norm > 0, norm, 1)


def nearest_cosine_distance(F, F_train) -> np.ndarray:
    """``[n]``: 1 − the largest cosine similarity between each row of ``F`` and the rows of
    ``F_train`` (exact: for unit vectors ‖a − b‖² = 2 − 2 cos, so the Euclidean nearest unit
    vector is the cosine-nearest one)."""
    d, _ = nearest_distance(unit_rows(F), unit_rows(F_train))
    return d**2 / 2


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
    ``[n]`` the training row nearest in pixel space; features ``[n, d]`` the network's features.
    """

    name: str
    scores: dict
    net_pred: np.ndarray
    net_conf: np.ndarray
    nnk: NeighbourTable
    nearest_train: np.ndarray
    features: np.ndarray | None = None


def explain_images(name: str, model, clf, images, train_pixels, train_features) -> ImageSet:
    """Features (cached), network labels, NNK explanations and the scores of ``images``.

    ``clf`` is a fitted NNK :class:`~deepnnk.NNKClassifier` on ``train_features``;
    ``train_pixels`` are the same training images as :func:`pixels` rows.
    """
    F = features.extract(model, images)
    proba = network_proba(model, F)
    table = neighbourhood_table(clf, F)
    d_pix, near = nearest_distance(pixels(images), train_pixels)
    d_feat, _ = nearest_distance(F, train_features)
    scores = {
        "n_neighbours": table.n_neighbours.astype(float),
        "residual": np.asarray(table.residual, float),
        "entropy": label_entropy(table),
        "nn_pixel": d_pix,
        "nn_feature": d_feat,
        "feature_norm": np.linalg.norm(np.asarray(F, np.float64), axis=1),
        "nn_cosine_distance": nearest_cosine_distance(F, train_features),
    }
    return ImageSet(name, scores, proba.argmax(1), proba.max(1), table, near, np.asarray(F))


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


def nn_pixel_ratio(comparison: dict) -> float:
    """Median distance to the nearest training image, generated over real test images."""
    return (
        comparison["generated"]["nn_pixel"]["median"]
        / comparison["real test"]["nn_pixel"]["median"]
    )


def format_comparison(comparison: dict) -> str:
    """:func:`compare`'s output as text: per set, the network's confidence, NNK's agreement with
    it, and each score's median and mean (and AUC against the reference)."""
    lines = []
    for name, c in comparison.items():
        auc = c.get("auc_vs_reference", {})
        lines.append(
            f"{name:12s} net conf {c['network_confidence']:.3f}  "
            f"NNK=net {c['nnk_agrees_with_network']:.3f}"
        )
        for key in SCORES:
            extra = f"  AUC vs real {auc[key]:.3f}" if auc else ""
            lines.append(
                f"   {key:12s} median {c[key]['median']:.4f}  mean {c[key]['mean']:.4f}{extra}"
            )
    return "\n".join(lines)


def summary(
    comparison: dict, training_seconds: float, ratio: float, quality: dict | None = None
) -> dict:
    """The headline numbers: per set, each score's median, the network's confidence and the AUCs
    against the real test images; the DCGAN's training time and :func:`nn_pixel_ratio`; and,
    given :func:`sample_quality`'s output, each set's Fréchet distance to the training features
    (``fd_<tag>_to_train``)."""
    out = {"dcgan_training_seconds": training_seconds}
    for name, fd in (quality or {}).get("fd_to_train", {}).items():
        out[f"fd_{_tag(name)}_to_train"] = fd
    for name, c in comparison.items():
        tag = _tag(name)
        for key in SCORES:
            out[f"{tag}_{key}_median"] = c[key]["median"]
        out[f"{tag}_network_confidence"] = c["network_confidence"]
        for key, v in c.get("auc_vs_reference", {}).items():
            out[f"{tag}_auc_vs_real_{key}"] = v
    out["nn_pixel_median_ratio_generated_to_real"] = ratio
    return out


#: What an AUC against the real test images says in words, for the notebook's sentences:
#: (above 0.5 + margin, below 0.5 − margin, in between).
PHRASES = {
    "default": ("higher than", "lower than", "about the same as"),
    "nn_pixel": (
        "farther from the training images than",
        "closer to the training images than",
        "about as far from the training images as",
    ),
    "nn_feature": (
        "farther from the training features than",
        "closer to the training features than",
        "about as far from the training features as",
    ),
}
READING_MARGIN = 0.05


def phrase(auc: float, key: str = "default", margin: float = READING_MARGIN) -> str:
    """The words for an AUC of "this set against the real test images", e.g. "higher than"
    (AUC > 0.5 + margin), "lower than" (< 0.5 − margin) or "about the same as"."""
    above, below, same = PHRASES.get(key, PHRASES["default"])
    if auc > 0.5 + margin:
        return above
    if auc < 0.5 - margin:
        return below
    return same


def reading(comparison: dict, margin: float = READING_MARGIN) -> dict:
    """``{set tag: {score: phrase}}`` for every set with AUCs (tags as in :func:`summary`):
    the direction each score moves against the real test images, in words (:func:`phrase`)."""
    out = {}
    for name, c in comparison.items():
        if "auc_vs_reference" in c:
            out[_tag(name)] = {
                key: phrase(v, key, margin) for key, v in c["auc_vs_reference"].items()
            }
    return out


def _tag(name: str) -> str:
    return name.split()[0].lower().replace("/", "_")


# --------------------------------------------------------------------------- memorisation


def pixel_std(images) -> np.ndarray:
    """``[n]``: the standard deviation of each image's 3,072 pixel values (pixels/255): near 0
    for a flat, near-blank image."""
    return pixels(images).std(axis=1)


def spearman(a, b) -> float:
    """Spearman's rank correlation of ``a`` and ``b`` (average ranks for ties; NaN when one of
    them is constant)."""
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(x) -> np.ndarray:
    x = np.asarray(x, float)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    return (sums / counts)[inv]


def memorisation_report(sets: list, images: dict, n_closest: int = 8) -> dict:
    """The caveats of the pixel-space memorisation check, per set of ``sets`` (:class:`ImageSet`
    with the ``nn_pixel`` score; ``images``: {set name: its images}).

    Per set: ``nn_pixel_min`` and ``closest_nn_pixel_mean`` (the mean distance of the
    ``n_closest`` images nearest to the training set, those the figure shows); the median pixel
    std of those images (``closest_pixel_std_median``) and of all (``pixel_std_median``), and
    their ratio ``closest_std_ratio`` (well below 1: the closest pairs are flat images);
    ``spearman_std_nn_pixel``, the rank correlation between an image's pixel std and its distance
    to the nearest training image (positive: flatter images are nearer the training set).
    """
    out = {"n_closest": n_closest}
    for s in sets:
        d = np.asarray(s.scores["nn_pixel"], float)
        std = pixel_std(images[s.name])
        closest = np.argsort(d, kind="stable")[:n_closest]
        typical = float(np.median(std))
        out[s.name] = {
            "nn_pixel_min": float(d.min()),
            "closest_nn_pixel_mean": float(d[closest].mean()),
            "closest_pixel_std_median": float(np.median(std[closest])),
            "pixel_std_median": typical,
            "closest_std_ratio": float(np.median(std[closest]) / typical) if typical else None,
            "spearman_std_nn_pixel": spearman(std, d),
        }
    return out


# --------------------------------------------------------------------------- sample quality


def gaussian_moments(X) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[d]`` and covariance ``[d, d]`` (unbiased, float64) of the rows of ``X``."""
    X = np.asarray(X, np.float64)
    if X.ndim != 2 or len(X) < 2:
        raise ValueError(f"need at least two rows [n, d], got shape {X.shape}.")
    mu = X.mean(axis=0)
    Xc = X - mu
    return mu, Xc.T @ Xc / (len(X) - 1)


def sqrt_psd(C) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix, by its
    eigendecomposition (eigenvalues below 0, rounding errors, clipped to 0)."""
    C = np.asarray(C, np.float64)
    w, V = np.linalg.eigh((C + C.T) / 2)
    return (V * np.sqrt(np.clip(w, 0, None))) @ V.T


def frechet_distance_gaussians(mu1, C1, mu2, C2) -> float:
    r"""The Fréchet (2-Wasserstein) distance, squared, between :math:`N(\mu_1, C_1)` and
    :math:`N(\mu_2, C_2)`:

    .. math:: \lVert\mu_1 - \mu_2\rVert^2 + \operatorname{tr} C_1 + \operatorname{tr} C_2
              - 2 \operatorname{tr}\big(C_1^{1/2} C_2 C_1^{1/2}\big)^{1/2}.

    :math:`C_1 C_2` is similar to the symmetric :math:`C_1^{1/2} C_2 C_1^{1/2}`, so the trace of
    its square root is the sum of the square roots of the latter's eigenvalues: numpy only, and
    no complex parts from a non-symmetric square root. Exact for rank-deficient covariances.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    C1, C2 = np.asarray(C1, np.float64), np.asarray(C2, np.float64)
    S1 = sqrt_psd(C1)
    M = S1 @ C2 @ S1
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((M + M.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    fd = diff @ diff + np.trace(C1) + np.trace(C2) - 2 * tr_sqrt
    return float(max(fd, 0.0))


def frechet_distance(X1, X2) -> float:
    """:func:`frechet_distance_gaussians` between the Gaussians fitted to the rows of ``X1`` and
    of ``X2`` (as FID does, on whatever features the rows are)."""
    return frechet_distance_gaussians(*gaussian_moments(X1), *gaussian_moments(X2))


def sample_quality(sets: list, train_features, reference: str = "real test") -> dict:
    """Fréchet distance in the classifier's feature space (the ``d``-dimensional features NNK
    uses) from each set to the training features, and from each other set to ``reference``.

    Every set has the same number of images, so their finite-sample biases match; the training
    side is the whole NNK database. ``fd_to_train`` {set name: FD}, ``fd_to_reference``
    {set name: FD}, ``fd_ratio_to_reference`` {set name: FD to train / the reference set's}, and
    the sizes. Not an FID: the features are the classifier's, not Inception's.
    """
    sizes = {len(s.features) for s in sets}
    if len(sizes) != 1:
        raise ValueError(f"sets of unequal sizes {sorted(sizes)}: the FDs would not compare.")
    train = gaussian_moments(train_features)
    by_name = {s.name: s for s in sets}
    ref = gaussian_moments(by_name[reference].features)
    fd_train, fd_ref = {}, {}
    for s in sets:
        moments = gaussian_moments(s.features)
        fd_train[s.name] = frechet_distance_gaussians(*moments, *train)
        if s.name != reference:
            fd_ref[s.name] = frechet_distance_gaussians(*moments, *ref)
    base = fd_train[reference]
    return {
        "fd_to_train": fd_train,
        "fd_to_reference": fd_ref,
        "fd_ratio_to_reference": {k: v / base if base else None for k, v in fd_train.items()},
        "n_per_set": sizes.pop(),
        "n_train": len(train_features),
        "dimension": int(np.shape(train_features)[1]),
    }


# --------------------------------------------------------------------------- the DCGAN


def gan_dir(checkpoints_root: str | os.PathLike, config: dcgan.GANConfig, seed: int) -> Path:
    """Where the DCGAN of ``config`` keeps its checkpoints:
    ``<checkpoints_root>/dcgan-w<width>-n<n_train>-seed<seed>``."""
    return Path(checkpoints_root) / f"dcgan-w{config.width}-n{config.n_train}-seed{seed}"


def train_gan(x_train, sizes: dict, checkpoints_root, seed: int):
    """Train the profile's DCGAN on ``x_train`` (uint8), or resume it from its checkpoints.

    Returns (generator, its metrics: width, epochs, n_train, parameter counts, training seconds
    over all epochs, seconds this run, and the per-epoch history).
    """
    config = dcgan.GANConfig(width=sizes["gan_width"], n_train=sizes["gan_n_train"], seed=seed)
    folder = gan_dir(checkpoints_root, config, seed)
    t0 = time.time()
    # progress=False: no bar and no per-epoch line (they name the checkpoint folder); the same
    # training, whose per-epoch numbers are in the returned history.
    generator, history = dcgan.train_dcgan(
        x_train, folder, epochs=sizes["gan_epochs"], config=config, progress=False
    )
    g_ref, d_ref = dcgan.build_dcgan(config)
    metrics = {
        "width": config.width,
        "epochs": sizes["gan_epochs"],
        "n_train": config.n_train,
        "generator_parameters": dcgan.n_parameters(g_ref),
        "discriminator_parameters": dcgan.n_parameters(d_ref),
        "training_seconds": sum(h["seconds"] for h in history),
        "seconds_this_run": time.time() - t0,
        "history": history,
    }
    return generator, metrics


def sample(generator, n: int, seed: int) -> np.ndarray:
    """``n`` seeded DCGAN samples, uint8 ``[n, 32, 32, 3]`` like real images."""
    return dcgan.sample_images(generator, n, seed=seed)


# --------------------------------------------------------------------------- the three sets


@dataclass
class Sets:
    """The three image sets explained by NNK over the training features.

    train_ids ``[n_train]`` the training images in NNK's database, train_images those images;
    images: {set name: the images as explained (uint8 HWC, or float NCHW for the adversarial)};
    sets: their :class:`ImageSet`, in the order generated, real test, adversarial;
    train_features ``[n_train, d]`` the network's features of the training images.
    """

    train_ids: np.ndarray
    train_images: np.ndarray
    images: dict
    sets: list
    train_features: np.ndarray | None = None


def load_classifier(weights: str, data_root=None, checkpoints_root=None):
    """The regularised network at epoch 20 (``weights``: "paper" or "retrained")."""
    return load_network(weights, MODEL, EPOCH, data_root, checkpoints_root)


def explain_sets(model, generated, data, sizes: dict, *, k: int, solver: str, seed: int) -> Sets:
    """Explain the generated images, a seeded sample of real test images and their PGD versions
    (ε = 8/255, cached) by NNK over a seeded sample of training features.

    data: ``(x_train, y_train, x_test, y_test)`` as :func:`load_cifar10` returns them.
    """
    x_train, y_train, x_test, y_test = data
    train_ids = sample_indices(np.ones(len(x_train), bool), sizes["n_train"], seed)
    test_ids = sample_indices(np.ones(len(x_test), bool), sizes["n_images"], seed + 1)
    train_images, y_tr = x_train[train_ids], y_train[train_ids]
    q_images, y_q = x_test[test_ids], y_test[test_ids]
    F_train = features.extract(model, train_images)
    P_train = pixels(train_images)
    clf = NNKClassifier(k, solver=solver).fit(F_train, y_tr)
    adv_images = cached_attack(
        model, q_images, y_q, "pgd", EPS_255 / 255, steps=PGD_STEPS, seed=seed
    )
    inputs = {"generated": generated, "real test": q_images, f"PGD {EPS_255}/255": adv_images}
    sets = [explain_images(n, model, clf, im, P_train, F_train) for n, im in inputs.items()]
    return Sets(train_ids, train_images, inputs, sets, np.asarray(F_train))


def gallery_picks(n_images: int, n_show: int, seed: int) -> np.ndarray:
    """The seeded generated images shown with their NNK neighbours."""
    return sample_indices(np.ones(n_images, bool), n_show, seed)
