"""One on-disk cache for everything deepnnk computes once and reads back: features, LOO and SVM
results, adversarial images.

Layout: ``<root>/<kind>/<name>`` with root ``$DEEPNNK_CACHE``, else ``~/.cache/deepnnk``, and one
subfolder per kind (``features``, ``loo``, ``svm``, ``adversarial``).

Keys. An entry's key hashes everything that produced it: the inputs (weights, images, options)
*and* the source code of the modules that compute it (:func:`code_digest`). Editing the solver,
the neighbour search or the feature extractor therefore makes the entries they produced miss,
with no version string to remember to bump.

Writes are atomic (:func:`atomic_write`): a crash never leaves half an entry, and a reader never
sees one.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import math
import os
import secrets
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import BinaryIO

import numpy as np

CACHE_ENV_VAR = "DEEPNNK_CACHE"
KINDS = ("features", "loo", "svm", "adversarial", "splinecam", "dmm_men")


def cache_root() -> Path:
    """``$DEEPNNK_CACHE`` if set, else ``~/.cache/deepnnk``."""
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "deepnnk"


def cache_dir(kind: str, override=None) -> Path | None:
    """The folder of one kind of entry: ``override`` if given, else ``<root>/<kind>``.

    ``override=False`` means "no cache" and gives None; ``None`` or ``True`` the default folder.
    """
    if kind not in KINDS:
        raise ValueError(f"cache kind must be one of {KINDS}, got {kind!r}.")
    if override is False:
        return None
    if override is None or override is True:
        return cache_root() / kind
    return Path(override)


# --------------------------------------------------------------------------- keys


def _module(mod: str | ModuleType) -> ModuleType:
    if isinstance(mod, ModuleType):
        return mod
    return importlib.import_module(mod if mod.startswith("deepnnk.") else f"deepnnk.{mod}")


def code_digest(modules: Iterable[str | ModuleType]) -> str:
    """A hex digest of the source files of ``modules``: module objects, or names relative to the
    package (``"solver"``, ``"nets.features"``).

    Read from disk at each call, so an edited file changes the digest in a running process too.
    """
    h = hashlib.blake2b(digest_size=16)
    for mod in sorted({_module(m) for m in modules}, key=lambda m: m.__name__):
        path = Path(mod.__file__)
        h.update(f"{mod.__name__}\0".encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def model_module(model) -> list[ModuleType]:
    """The modules that define the classes of ``model`` and of every submodule (their forward
    passes: a model built from blocks in several files, or torch's own layers), sorted by
    name. A class without a source file (one defined in a notebook) adds none; its weights and
    class name still enter the keys (:func:`model_digest`)."""
    parts = model.modules() if hasattr(model, "modules") else [model]
    found = {}
    for part in parts:
        mod = sys.modules.get(type(part).__module__)
        if mod is not None and getattr(mod, "__file__", None):
            found[mod.__name__] = mod
    return [found[name] for name in sorted(found)]


def spec_digest(spec: dict) -> str:
    """A hex digest of a JSON-able spec (key order does not matter)."""
    text = json.dumps(spec, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def array_digest(arr, hasher=None):
    """Feed dtype, shape and raw bytes of ``arr`` (numpy or torch) into a blake2b hasher."""
    import torch

    hasher = hasher or hashlib.blake2b(digest_size=20)
    if isinstance(arr, torch.Tensor):
        arr = arr.detach().cpu()
        if arr.dtype == torch.bfloat16:  # numpy has no bfloat16; the raw bits hash the same
            arr = arr.view(torch.int16)
        arr = arr.contiguous().numpy()
    arr = np.ascontiguousarray(arr)
    hasher.update(f"{arr.dtype.str}{arr.shape}".encode())
    hasher.update(memoryview(arr).cast("B"))
    return hasher


def model_digest(model, hasher=None):
    """Feed the model's class, width and every state_dict entry (name and bytes) into a hasher."""
    hasher = hasher or hashlib.blake2b(digest_size=20)
    hasher.update(type(model).__qualname__.encode())
    hasher.update(f"width={getattr(model, 'width', None)}".encode())
    for key, tensor in model.state_dict().items():
        hasher.update(key.encode())
        array_digest(tensor, hasher)
    return hasher


# --------------------------------------------------------------------------- files


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Write ``path`` all-or-nothing: ``write(f)`` fills a temp file beside it, then rename.

    The temp file is flushed and fsynced before ``os.replace``; if anything fails (including
    KeyboardInterrupt) it is removed and any previous ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # os.open rather than mkstemp: mkstemp's mode 0600 would survive the rename; this honours umask.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # Persist the rename itself, so a power loss cannot roll the directory entry back.
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def plain(x):
    """JSON-safe copy: numpy scalars/arrays to Python, NaN/inf to None (JSON has neither)."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return plain(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def read_json(path: Path | None, spec: dict) -> dict | None:
    """The entry at ``path`` if it exists, parses, and was written for exactly ``spec``."""
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("spec") == plain(spec) else None


def write_json(path: Path, data: dict) -> Path:
    """Write ``data`` (with its ``spec``) as JSON, atomically."""
    text = json.dumps(plain(data), indent=1, sort_keys=True).encode()
    return atomic_write(path, lambda f: f.write(text))
