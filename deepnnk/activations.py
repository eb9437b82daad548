"""Features from any layer of any PyTorch model, through forward hooks, with an on-disk cache.

>>> feats = extract_features(model, loader, "layer4", pool="avg")  # doctest: +SKIP
>>> feats.shape  # doctest: +SKIP
(50000, 512)

``layer`` is a name from ``model.named_modules()`` (``"layer4.1.conv2"``), the module itself (as
Captum's ``LayerActivation`` takes it), or a list of either. The model runs in eval mode under
``torch.inference_mode`` and is put back in the mode it was in. The result is float32
``[N, D]``: the layer's output flattened per example, or globally average/max pooled over its
spatial dimensions (``pool="avg"|"max"``, a ``[N, C, H, W]`` map becomes ``[N, C]``).

Cache: the key covers the source of this module and of the model's own module, the model's
class and every weight, the layer names, ``pool`` and the input bytes, so a changed model, input
or code never reads another's entry (:mod:`deepnnk.cache`). Entries are written atomically.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from deepnnk import cache
from deepnnk._progress import progress
from deepnnk.cache import array_digest, atomic_write, code_digest, model_digest, model_module

__all__ = ["POOLS", "cache_key", "extract_features", "layer_names"]

POOLS = (None, "avg", "max")
# The modules whose source goes into every key (besides the model's own module).
CODE = ("activations", "cache")


def layer_names(model: nn.Module) -> list[str]:
    """Every hookable layer name of ``model``, in ``named_modules()`` order (the root excluded)."""
    return [name for name, _ in model.named_modules() if name]


def _resolve_layers(model: nn.Module, layer) -> tuple[list[str], list[nn.Module], bool]:
    """``(names, modules, single)`` for a name, a module, or a list of either."""
    single = isinstance(layer, (str, nn.Module))
    wanted = [layer] if single else list(layer) if isinstance(layer, Sequence) else None
    if not wanted:
        raise ValueError(
            "layer must be a module name from model.named_modules(), an nn.Module of the model, "
            f"or a non-empty list of either; got {layer!r}."
        )
    by_name = dict(model.named_modules())
    by_module = {id(m): name for name, m in by_name.items()}
    names, modules = [], []
    for item in wanted:
        if isinstance(item, nn.Module):
            if id(item) not in by_module:
                raise ValueError(
                    f"the module {type(item).__name__} passed as layer is not part of the model; "
                    "pass one of its submodules or a name from model.named_modules()."
                )
            name = by_module[id(item)]
        elif isinstance(item, str) and item in by_name:
            name = item
        else:
            valid = ", ".join(repr(n) for n in layer_names(model)) or "(the model has none)"
            raise ValueError(f"unknown layer {item!r}; valid layer names: {valid}.")
        if name in names:
            raise ValueError(f"layer {name!r} is listed twice; list each layer once.")
        names.append(name)
        modules.append(by_name[name])
    return names, modules, single


def _batches(data, batch_size: int):
    """``(n_examples or None, iterator of input tensors)`` for an array, tensor, Dataset or
    DataLoader. Tuples/lists from a Dataset or DataLoader contribute their first element (the
    input; labels are ignored); dict batches their ``"x"``, ``"input"`` or ``"inputs"``."""
    if isinstance(data, DataLoader):
        from torch.utils.data import RandomSampler

        if isinstance(data.sampler, RandomSampler):
            raise ValueError(
                "the DataLoader shuffles (shuffle=True), so the features would come back in a "
                "random order; pass DataLoader(dataset, batch_size=..., shuffle=False)."
            )
        n = len(data.dataset) if hasattr(data.dataset, "__len__") else None
        return n, (_input_of(b) for b in data)
    if isinstance(data, Dataset):
        n = len(data)

        def gen():
            for start in range(0, n, batch_size):
                items = [_input_of(data[i]) for i in range(start, min(start + batch_size, n))]
                yield torch.stack([torch.as_tensor(x) for x in items])

        return n, gen()
    if isinstance(data, np.ndarray) or isinstance(data, torch.Tensor):
        arr = data
    else:
        try:
            arr = np.asarray(data)
        except (TypeError, ValueError) as err:
            raise TypeError(
                "data must be a numpy array, a torch tensor, a Dataset or a DataLoader; got "
                f"{type(data).__name__}."
            ) from err
    if arr.ndim < 1 or len(arr) == 0:
        raise ValueError(f"data must hold at least one example along dim 0; got shape {arr.shape}.")
    return len(arr), (_as_tensor(arr[s : s + batch_size]) for s in range(0, len(arr), batch_size))


def _as_tensor(chunk) -> torch.Tensor:
    """A batch as a tensor. A numpy batch is copied into a fresh buffer: torch cannot share a
    read-only one (a memory-mapped or cached array; it would warn in every batch), and a slice
    at an arbitrary offset can be misaligned for the vectorised kernels, which then round
    differently (measured: 1-ulp differences between a slice and its copy), so copying makes the
    features independent of where the batch sits in memory."""
    if isinstance(chunk, np.ndarray):
        return torch.from_numpy(np.array(chunk, copy=True))
    return torch.as_tensor(chunk)


def _input_of(item):
    if isinstance(item, (tuple, list)):
        return item[0]
    if isinstance(item, dict):
        for key in ("x", "input", "inputs"):
            if key in item:
                return item[key]
        raise ValueError(f"dict batches need an 'x', 'input' or 'inputs' key; got {list(item)}.")
    return item


def _pooled(out: torch.Tensor, pool: str | None) -> torch.Tensor:
    if pool is None or out.ndim <= 2:
        return out.reshape(len(out), -1)
    dims = tuple(range(2, out.ndim))  # [N, C, *spatial]: pool everything after the channels
    return out.mean(dim=dims) if pool == "avg" else out.amax(dim=dims)


def _compute(
    model, names, modules, data, batch_size, pool, device, show, layer_input=False
) -> dict[str, np.ndarray]:
    captured: dict[str, list[torch.Tensor]] = {name: [] for name in names}

    def hook_for(name):
        def hook(_module, inputs, output):
            if layer_input:
                if len(inputs) != 1:
                    raise TypeError(
                        f"layer {name!r} takes {len(inputs)} positional inputs; layer_input=True "
                        "needs a layer with exactly one (or hook the output of the layer before)."
                    )
                output = inputs[0]
            if not isinstance(output, torch.Tensor):
                what = "takes" if layer_input else "outputs"
                raise TypeError(
                    f"layer {name!r} {what} a {type(output).__name__}, not a tensor; hook one "
                    "of its submodules that outputs a tensor (see deepnnk.activations."
                    "layer_names(model))."
                )
            captured[name].append(_pooled(output.detach(), pool).float().cpu())

        return hook

    n, batches = _batches(data, batch_size)
    handles = [
        m.register_forward_hook(hook_for(name)) for name, m in zip(names, modules, strict=True)
    ]
    was_training = model.training
    model.eval()
    chunks: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    try:
        with torch.inference_mode():
            for batch in progress(batches, show, desc="features", total=_n_batches(n, data)):
                if isinstance(batch, np.ndarray):
                    batch = torch.from_numpy(batch)
                if batch.dtype == torch.float64:
                    batch = batch.float()
                for name in names:
                    captured[name].clear()
                model(batch.to(device))
                for name in names:
                    if len(captured[name]) != 1:
                        raise ValueError(
                            f"layer {name!r} ran {len(captured[name])} times in one forward pass "
                            "(a module reused, e.g. one ReLU object applied twice), so its "
                            "activation is ambiguous; hook a module that runs once, such as "
                            "the block that contains it."
                        )
                    chunks[name].append(captured[name][0])
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    out = {name: torch.cat(chunks[name]).numpy() for name in names}
    for name, feats in out.items():
        bad = ~np.isfinite(feats)
        if bad.any():
            rows = int(bad.any(axis=1).sum())
            raise ValueError(
                f"layer {name!r} gave non-finite activations (NaN or inf) for {rows} of "
                f"{len(feats)} examples; check the inputs and the model's weights (e.g. "
                "normalise the inputs, or load a checkpoint that is not diverged)."
            )
    return out


def _n_batches(n, data):
    if isinstance(data, DataLoader):
        try:
            return len(data)
        except TypeError:
            return None
    return None


def _input_digest(data, batch_size, hasher):
    """Hash every input example (one pass over the data, no forward)."""
    _, batches = _batches(data, batch_size)
    count = 0
    for batch in batches:
        array_digest(torch.as_tensor(batch), hasher)
        count += len(batch)
    return count


def _key(model, names, data, batch_size, pool, layer_input) -> tuple[str, int]:
    """``(hex cache key, number of examples)``: the code (this module, the cache, the model's
    own module), the model's class and weights, the layer names, ``pool``, ``layer_input`` and
    every input example's bytes."""
    hasher = hashlib.blake2b(code_digest([*CODE, *model_module(model)]).encode(), digest_size=20)
    model_digest(model, hasher)
    hasher.update(f"layers={names};pool={pool};input={layer_input}".encode())
    n = _input_digest(data, batch_size, hasher)
    return hasher.hexdigest(), n


def cache_key(
    model: nn.Module,
    data,
    layer,
    *,
    pool: str | None = None,
    batch_size: int = 128,
    layer_input: bool = False,
) -> str:
    """The hex key under which :func:`extract_features` caches these arguments' result (the
    file ``<cache dir>/<key>.npz``); the batch size of an array or Dataset does not change it."""
    names, _, _ = _resolve_layers(model, layer)
    return _key(model, names, data, batch_size, pool, layer_input)[0]


def extract_features(
    model: nn.Module,
    data,
    layer,
    *,
    pool: str | None = None,
    batch_size: int = 128,
    cache_dir: str | os.PathLike | bool | None = None,
    device: str | torch.device | None = None,
    progress_bar: bool = True,
    layer_input: bool = False,
):
    """What ``layer`` of ``model`` outputs for ``data``: float32 ``[N, D]`` (a dict of them,
    by layer name, when ``layer`` is a list).

    model: any ``nn.Module``, called as ``model(x)`` on each batch of inputs.
    data: a numpy array or tensor (examples along dim 0, any shape the model takes), a
    ``Dataset`` (items ``x`` or ``(x, y, ...)``) or a ``DataLoader`` without shuffling.
    layer: a name from ``model.named_modules()``, a submodule, or a list of either; an unknown
    name raises ValueError listing the valid names (also :func:`layer_names`).
    pool: ``None`` flattens each example's activation; ``"avg"`` / ``"max"`` pool a conv map
    ``[N, C, *spatial]`` over its spatial dimensions to ``[N, C]``.
    batch_size: examples per forward pass for arrays and Datasets (a DataLoader keeps its own).
    cache_dir: ``None`` (default) or ``True``: ``<cache root>/features``
    (:mod:`deepnnk.cache`, ``$DEEPNNK_CACHE``); a folder; ``False``: no cache.
    device: where to run (default: the device of the model's first parameter).
    layer_input: take what goes *into* the layer instead of what comes out (as Captum's
    ``attribute_to_layer_input``), e.g. the features a final ``nn.Linear`` classifies.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    names, modules, single = _resolve_layers(model, layer)
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    folder = cache.cache_dir("features", None if cache_dir is True else cache_dir)
    path = None
    if folder is not None:
        key, n = _key(model, names, data, batch_size, pool, layer_input)
        path = Path(folder) / f"{key}.npz"
        cached = _read(path, names, n)
        if cached is not None:
            return cached[names[0]] if single else cached
    out = _compute(model, names, modules, data, batch_size, pool, device, progress_bar, layer_input)
    if path is not None:
        atomic_write(
            path, lambda f: np.savez(f, **{f"layer{i}": out[nm] for i, nm in enumerate(names)})
        )
    return out[names[0]] if single else out


def _read(path: Path, names: list[str], n: int) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {nm: z[f"layer{i}"] for i, nm in enumerate(names)}
    except (OSError, ValueError, KeyError) as err:
        warnings.warn(
            f"feature cache entry {path} is unreadable ({err}); recomputing it.", stacklevel=3
        )
        return None
    if any(a.ndim != 2 or len(a) != n or a.dtype != np.float32 for a in out.values()):
        warnings.warn(
            f"feature cache entry {path} has the wrong shape; recomputing it.", stacklevel=3
        )
        return None
    return out
