"""What every checkpoint reader shares: the paper's model names, one error class, and the
safe loading and listing of ``epoch_XX.pt``-style files.

The authors' TensorFlow bundles (:mod:`deepnnk.nets.tf_bundle`, :mod:`deepnnk.nets.paper`), our
training checkpoints (:mod:`deepnnk.nets.train`), the DCGAN's (:mod:`deepnnk.nets.dcgan`) and the
one loader (:func:`deepnnk.nets.loading.load_network`) all raise :class:`CheckpointError`, whose
message names the file, the fault and the fix.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

# The paper's three models, in order of size; both spellings are accepted everywhere.
MODELS = ("underparameterised", "regularised", "overfit")
MODEL_ALIASES = {"underparameterized": "underparameterised", "regularized": "regularised"}
_CHECKPOINT_RE = re.compile(r"^epoch_(\d+)\.pt$")


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, corrupt, not ours, or from another configuration."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint file does not exist (both a ``ValueError`` and a ``FileNotFoundError``)."""


def canonical_model(name: str) -> str:
    """The British spelling of one of :data:`MODELS`; ValueError naming the valid names."""
    key = MODEL_ALIASES.get(name, name) if isinstance(name, str) else name
    if key not in MODELS:
        valid = ", ".join(map(repr, [*MODELS, *MODEL_ALIASES]))
        raise ValueError(f"unknown model {name!r}; valid names are {valid}.")
    return key


def checkpoint_path(checkpoint_dir: str | os.PathLike, epoch: int) -> Path:
    """``<checkpoint_dir>/epoch_XX.pt``, the checkpoint written after ``epoch`` (1-based)."""
    return Path(checkpoint_dir) / f"epoch_{int(epoch):02d}.pt"


def list_checkpoints(
    checkpoint_dir: str | os.PathLike, pattern: re.Pattern = _CHECKPOINT_RE
) -> dict[int, Path]:
    """``{epoch: path}`` of the checkpoints in a directory whose names match ``pattern`` (its
    group 1 is the epoch; default ``epoch_XX.pt``); temp files are ignored."""
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        return {}
    found = {}
    for path in folder.iterdir():
        match = pattern.match(path.name)
        if match and path.is_file():
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def load_checkpoint_file(
    path: str | os.PathLike, *, kind: str, format: str, needed: set[str], on_corrupt: str
) -> dict:
    """``torch.load`` a deepnnk checkpoint dict safely (``weights_only``), checking its ``format``
    tag and keys; :class:`CheckpointError` naming the file and the fix otherwise.

    kind: what the file is, for messages ("training checkpoint"); on_corrupt: what happens once
    a corrupt file is deleted ("train() will retrain that epoch").
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{kind} {path} does not exist.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a truncated or garbled zip
        raise CheckpointError(
            f"{kind} {path} cannot be read ({type(err).__name__}: {err}). It is probably "
            f"truncated or corrupt: delete it, and {on_corrupt}."
        ) from err
    if not isinstance(state, dict) or state.get("format") != format or needed - set(state):
        raise CheckpointError(
            f"{path} is not a deepnnk {kind} (format {format!r}); move it out of the "
            "checkpoint directory or delete it."
        )
    return state
