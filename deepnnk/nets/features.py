"""CIFAR-10 images through the paper's CNN: its features or logits, with an on-disk cache.

>>> feats = extract(model, x_train)  # doctest: +SKIP  (uint8 [50000, 32, 32, 3] → [50000, 512])

:func:`extract` checks CIFAR-shaped images and hands them, converted batch by batch, to
:func:`deepnnk.extract_features`, which hooks the CNN's final linear layer and caches the result
under a key of the code that computes it (:mod:`deepnnk.activations`, the cache and the model's
own module), the model (class and every weight), the layer and the input bytes, so a retrained
or modified model, or edited code, never reads another's entry. Entries are ``<key>.npz`` files
under ``<cache root>/features`` (:mod:`deepnnk.cache`: ``$DEEPNNK_CACHE``, else
``~/.cache/deepnnk``); each is written atomically, so a crash never leaves half an entry.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deepnnk import activations
from deepnnk.activations import extract_features
from deepnnk.cache import CACHE_ENV_VAR, array_digest, atomic_write, cache_root, model_digest
from deepnnk.nets.data import to_tensor

__all__ = [
    "CACHE_ENV_VAR",
    "array_digest",
    "atomic_write",
    "cache_key",
    "check_images",
    "default_cache_dir",
    "extract",
    "images_to_float",
    "model_digest",
]


def default_cache_dir() -> Path:
    """``$DEEPNNK_CACHE/features``, else ``~/.cache/deepnnk/features``."""
    return cache_root() / "features"


LAYERS = ("features", "logits")
# Images per forward pass. Measured on the 2-core CPU (C=32, 1 thread, glibc defaults): batches
# of <= 125 run 60k images in ~23 s, batches of >= 250 in 38-42 s, because larger activations are
# handed back to the OS when freed and page-faulted in afresh on every call (see
# deepnnk.nets.train.tune_allocator, which removes the effect for any batch size).
DEFAULT_BATCH_SIZE = 100


# --------------------------------------------------------------------------- input checks


def check_images(images, name: str = "images") -> np.ndarray | torch.Tensor:
    """Accept uint8 ``[N, 32, 32, 3]`` (HWC, as ``load_cifar10``) or float ``[N, 3, 32, 32]``.

    Float images must already be pixels/255 in NCHW. Numpy arrays and torch tensors are both
    accepted and returned unchanged (nested lists become numpy). Raises ``ValueError`` otherwise.
    """
    if not isinstance(images, (np.ndarray, torch.Tensor)):
        try:
            images = np.asarray(images)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{name} must be an array of images, got {type(images).__name__}"
            ) from err
    shape = tuple(images.shape)
    is_uint8 = images.dtype in (np.uint8, torch.uint8)
    is_float = (
        torch.is_floating_point(images)
        if isinstance(images, torch.Tensor)
        else np.issubdtype(images.dtype, np.floating)
    )
    if is_uint8 and len(shape) == 4 and shape[1:] == (32, 32, 3):
        ok = True
    elif is_float and len(shape) == 4 and shape[1:] == (3, 32, 32):
        ok = True
    else:
        ok = False
    if not ok:
        raise ValueError(
            f"{name} must be uint8 [N, 32, 32, 3] (HWC, as load_cifar10 returns) or float "
            f"[N, 3, 32, 32] (NCHW, pixels/255); got {images.dtype} {list(shape)}."
        )
    if shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {list(shape)}); pass at least one image.")
    return images


def images_to_float(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A checked image batch → float32 ``[n, 3, 32, 32]`` pixels/255 on the CPU.

    uint8 HWC input comes out channels-last in memory (a permuted view of the HWC buffer), which
    is the layout the convolutions run fastest in here; float input keeps its own layout.
    """
    if images.dtype in (np.uint8, torch.uint8):
        arr = images.cpu().numpy() if isinstance(images, torch.Tensor) else images
        return to_tensor(arr)
    return torch.as_tensor(images, dtype=torch.float32)


# --------------------------------------------------------------------------- extraction


class _CifarInput(nn.Module):
    """The CNN behind a converter: a uint8 ``[B, 32, 32, 3]`` batch becomes float32
    ``[B, 3, 32, 32]`` pixels/255 (the very operations of :func:`~deepnnk.nets.data.to_tensor`,
    channels-last in memory, the layout the convolutions run fastest in); a float batch passes
    unchanged. Feeding uint8 images keeps the cache key a hash of their bytes (a quarter of the
    float ones) and converts only one batch at a time."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.train(net.training)  # extract_features restores the mode it found

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.permute(0, 3, 1, 2).float().div_(255.0)
        return self.net(x)


def _arguments(model: nn.Module, images, layer: str) -> tuple[nn.Module, object, dict]:
    if layer not in LAYERS:
        raise ValueError(
            f"layer must be one of {LAYERS}, got {layer!r}; for any other layer of any model use "
            "deepnnk.extract_features(model, data, layer)."
        )
    images = check_images(images)
    if not isinstance(getattr(model, "fc", None), nn.Linear):
        raise ValueError(
            f"extract reads the input and output of the final linear layer `fc` of the paper's "
            f"CNN, and {type(model).__name__} has none; use deepnnk.extract_features(model, "
            "data, layer) with one of its layer names."
        )
    return _CifarInput(model), images, {"layer": "net.fc", "layer_input": layer == "features"}


def cache_key(model: nn.Module, images, layer: str) -> str:
    """The hex key of ``extract(model, images, layer=layer)`` in the feature cache
    (:func:`deepnnk.activations.cache_key`: the code, the model's class and weights, the layer
    and the image bytes; the batch size does not enter)."""
    wrapped, data, where = _arguments(model, images, layer)
    return activations.cache_key(wrapped, data, where["layer"], layer_input=where["layer_input"])


def extract(
    model: nn.Module,
    images,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    layer: str = "features",
    cache_dir: str | os.PathLike | None | bool = None,
    progress_bar: bool = True,
) -> np.ndarray:
    """What ``layer`` of the paper's CNN outputs for CIFAR-10 ``images``: float32 ``[N, D]``.

    A CIFAR-shaped front end to :func:`deepnnk.extract_features`, which does the work (forward
    hooks, eval mode under ``torch.inference_mode``, the code-keyed cache, the progress bar).
    images: uint8 ``[N, 32, 32, 3]`` (converted batch by batch, so memory stays low) or float
    ``[N, 3, 32, 32]`` pixels/255. layer: ``"features"`` (what goes into the final linear layer
    ``model.fc``, i.e. ``model.features(x)``, the flattened last conv block, D = 16·C) or
    ``"logits"`` (what comes out of it, ``model(x)``, D = 10). For any other model or layer use
    :func:`deepnnk.extract_features` directly.
    batch_size: images per forward pass; the default is the fastest measured on CPU (see
    DEFAULT_BATCH_SIZE). cache_dir: as :func:`deepnnk.extract_features` (default
    ``<cache root>/features``; ``False`` disables the cache).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    wrapped, data, where = _arguments(model, images, layer)
    return extract_features(
        wrapped,
        data,
        where["layer"],
        layer_input=where["layer_input"],
        batch_size=batch_size,
        cache_dir=cache_dir,
        progress_bar=progress_bar,
    )
