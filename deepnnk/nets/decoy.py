"""Decoy-CIFAR: CIFAR-10 with a class-coded grey patch in a random corner (issue 15, item 4).

The CIFAR analogue of DecoyMNIST (Rieger, Singh, Murdoch & Yu, ICML 2020): each training image
gets a ``size``×``size`` grey patch in one of its four corners, whose grey level encodes the
class, ``255 − 25·y`` (255 for class 0 down to 30 for class 9). A network can then read the
label off the patch instead of the object. At test time the level is either random (uniform
over the ten class levels) or *swapped* to another class's level, so a network that learnt the
shortcut fails there.

>>> decoyed, mask = add_decoy(x_train, y_train, mode="train", seed=0)  # doctest: +SKIP
>>> swapped, test_mask = add_decoy(x_test, y_test, mode="swap", seed=1)  # doctest: +SKIP

The corner and the level come from two independent random streams derived from ``seed``, so
e.g. the same seed with ``mode="random"`` and ``mode="swap"`` puts the patches in the same
corners. The patch is grey (the same level in R, G and B) and replaces the pixels under it;
``mask`` marks exactly those pixels (the "relevant" region for CD, CDEP and the gradient
penalty, see :mod:`deepnnk.nets.penalties`).
"""

from __future__ import annotations

import numpy as np

from deepnnk.nets.train import check_labels

SIDE = 32  # CIFAR-10 image side, pixels
N_CLASSES = 10
DEFAULT_SIZE = 4
MODES = ("train", "random", "swap")
#: The grey level of each class's patch in training: 255 − 25·y, uint8 ``[10]``.
CLASS_LEVELS = (255 - 25 * np.arange(N_CLASSES)).astype(np.uint8)
#: Corner order of the ``corners`` stream: (row, column) of the patch's top-left pixel is
#: (0 or 32 − size, 0 or 32 − size) for top-left, top-right, bottom-left, bottom-right.
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
# Independent random streams derived from the seed.
_STREAM_LEVEL = 0
_STREAM_CORNER = 1


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    return int(seed)


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream]))


def decoy_levels(labels, mode: str = "train", seed: int = 0) -> np.ndarray:
    """The grey level (uint8 ``[N]``) of each image's patch.

    ``mode``: ``"train"``: the class level ``255 − 25·y``; ``"random"``: one of the ten class
    levels, uniformly, whatever the class; ``"swap"``: the level of another class, uniform over
    the nine others (never the true class's). ``labels``: ints 0..9 ``[N]``. Seeded: the same
    ``(labels, mode, seed)`` gives the same levels (``"train"`` draws nothing).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}.")
    seed = _check_seed(seed)
    y = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels)
    y = check_labels(y, len(y) if y.ndim else -1, "labels")
    if mode == "train":
        cls = y
    elif mode == "random":
        cls = _rng(seed, _STREAM_LEVEL).integers(0, N_CLASSES, len(y))
    else:  # swap: a shift of 1..9 classes, uniform, so never the true class
        cls = (y + _rng(seed, _STREAM_LEVEL).integers(1, N_CLASSES, len(y))) % N_CLASSES
    return CLASS_LEVELS[cls]


def decoy_corners(n: int, seed: int = 0) -> np.ndarray:
    """The corner (int ``[n]``, an index into :data:`CORNERS`) of each image's patch, uniform
    and seeded, from a stream independent of :func:`decoy_levels`."""
    return _rng(_check_seed(seed), _STREAM_CORNER).integers(0, len(CORNERS), n)


def corner_mask(corner: int, size: int = DEFAULT_SIZE) -> np.ndarray:
    """bool ``[32, 32]``: the ``size``×``size`` patch in corner ``corner`` (see :data:`CORNERS`)."""
    mask = np.zeros((SIDE, SIDE), dtype=bool)
    rows = slice(0, size) if corner in (0, 1) else slice(SIDE - size, SIDE)
    cols = slice(0, size) if corner in (0, 2) else slice(SIDE - size, SIDE)
    mask[rows, cols] = True
    return mask


def all_corners_mask(size: int = DEFAULT_SIZE) -> np.ndarray:
    """bool ``[32, 32]``: all four corner patches at once. The authors' DecoyMNIST script
    penalises this fixed "blob" (every corner where a patch may be), not each image's own
    patch; pass ``np.broadcast_to(all_corners_mask(), (N, 32, 32))`` to train that way."""
    return np.any([corner_mask(c, size) for c in range(len(CORNERS))], axis=0)


def _check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 1 <= size <= 16:
        raise ValueError(f"size must be an integer patch side in 1..16 pixels, got {size!r}.")
    return int(size)


def add_decoy(
    images, labels, *, mode: str = "train", seed: int = 0, size: int = DEFAULT_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Decoy-CIFAR images: a grey ``size``×``size`` patch in a random corner of each image.

    ``images``: uint8 ``[N, 32, 32, 3]`` (as ``load_cifar10`` returns them); ``labels``: ints
    0..9 ``[N]``. The level of each patch is :func:`decoy_levels` ``(labels, mode, seed)``; its
    corner is uniform over the four (:func:`decoy_corners`, a stream independent of the
    levels). Returns ``(decoyed, patch_mask)``: a new uint8 ``[N, 32, 32, 3]`` array, equal to
    ``images`` outside the patch, and bool ``[N, 32, 32]``, True exactly on each image's patch.
    ``images`` is not modified.
    """
    if not isinstance(images, np.ndarray):
        if hasattr(images, "detach"):
            images = images.detach().cpu().numpy()
        else:
            images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (SIDE, SIDE, 3):
        raise ValueError(
            "add_decoy needs uint8 images [N, 32, 32, 3] (HWC, as load_cifar10 returns them), "
            f"got {images.dtype} {list(images.shape)}."
        )
    size = _check_size(size)
    y = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels)
    if y.ndim != 1 or len(y) != len(images):
        raise ValueError(
            f"labels must be 1-D with one label per image ({len(images)}), got shape {y.shape}."
        )
    levels = decoy_levels(y, mode, seed)
    corners = decoy_corners(len(images), seed)
    masks = np.stack([corner_mask(c, size) for c in range(len(CORNERS))])[corners]
    decoyed = images.copy()
    decoyed[masks] = np.repeat(levels, size * size)[:, None]  # masks is row-major per image
    return decoyed, masks
