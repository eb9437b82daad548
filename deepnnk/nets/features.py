"""Run a CNN over images and keep what a layer outputs, with an on-disk cache.

>>> feats = extract(model, x_train)  # doctest: +SKIP  (uint8 [50000, 32, 32, 3] → [50000, 512])

The cache key is a hash of the code that computes the features (this module and the model's),
the model (class, width and every weight), the layer name and the image bytes, so a retrained or
modified model, or edited code, never reads another's entry. Entries are ``<key>.npy`` files
under ``<cache root>/features`` (:mod:`deepnnk.cache`: ``$DEEPNNK_CACHE``, else
``~/.cache/deepnnk``); each is written atomically, so a crash never leaves half an entry.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deepnnk.cache import (
    CACHE_ENV_VAR,
    array_digest,
    atomic_write,
    cache_root,
    code_digest,
    model_digest,
    model_module,
)
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
# The modules whose source goes into every feature-cache key (besides the model's own module).
CODE = ("nets.features", "nets.data", "cache")


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


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def cache_key(model: nn.Module, images: np.ndarray | torch.Tensor, layer: str) -> str:
    """The hex key of ``extract(model, images, layer=layer)`` in the feature cache.

    It covers the source of this module and of the model's own module (its forward pass), the
    model's class, width and weights, the layer and the image bytes.
    """
    code = code_digest([*CODE, *model_module(model)])
    hasher = hashlib.blake2b(code.encode(), digest_size=20)
    model_digest(model, hasher)
    hasher.update(f"layer={layer}".encode())
    array_digest(images, hasher)
    return hasher.hexdigest()


def _compute(model: nn.Module, images, batch_size: int, layer: str) -> np.ndarray:
    device = _model_device(model)
    run = model.features if layer == "features" else model
    out: np.ndarray | None = None
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                batch = images_to_float(images[start : start + batch_size]).to(device)
                result = run(batch).float().cpu().numpy()
                if out is None:
                    out = np.empty((len(images), result.shape[1]), dtype=np.float32)
                out[start : start + len(result)] = result
    finally:
        model.train(was_training)
    assert out is not None
    return out


def extract(
    model: nn.Module,
    images,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    layer: str = "features",
    cache_dir: str | os.PathLike | None | bool = None,
) -> np.ndarray:
    """What ``layer`` of ``model`` outputs for ``images``: float32 ``[N, D]``.

    images: uint8 ``[N, 32, 32, 3]`` (converted batch by batch, so memory stays low) or float
    ``[N, 3, 32, 32]`` pixels/255. layer: ``"features"`` (``model.features``, the flattened last
    conv block, D = 16·C) or ``"logits"`` (``model(x)``, D = 10). The model runs in eval mode
    under ``torch.inference_mode`` and is put back in the mode it was in.
    batch_size: images per forward pass; the default is the fastest measured on CPU (see
    DEFAULT_BATCH_SIZE), and the cache key does not depend on it.

    cache_dir: where cached results live (default ``<cache root>/features``, see
    :mod:`deepnnk.cache`); ``False`` disables the cache. The key covers the code, the weights, the
    layer and the image bytes, so any change to one of them recomputes.
    """
    if layer not in LAYERS:
        raise ValueError(f"layer must be one of {LAYERS}, got {layer!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    images = check_images(images)
    if cache_dir is False:
        return _compute(model, images, batch_size, layer)
    if cache_dir is None or cache_dir is True:
        cache_dir = default_cache_dir()
    path = Path(cache_dir) / f"{cache_key(model, images, layer)}.npy"
    if path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            warnings.warn(
                f"feature cache entry {path} is unreadable ({err}); recomputing it.", stacklevel=2
            )
        else:
            if cached.ndim == 2 and cached.shape[0] == len(images) and cached.dtype == np.float32:
                return cached
            warnings.warn(
                f"feature cache entry {path} has the wrong shape; recomputing it.", stacklevel=2
            )
    out = _compute(model, images, batch_size, layer)
    atomic_write(path, lambda f: np.save(f, out, allow_pickle=False))
    return out
