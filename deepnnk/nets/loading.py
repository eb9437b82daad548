"""The one network loader: ``load_network(weights, model, epoch)`` for the CLI, the studies and
the notebooks alike, and the digest of a checkpoint's bytes that result caches are keyed by.

weights="paper" reads the authors' TensorFlow checkpoints from the data root
(``$DEEPNNK_DATA``, else ``./data``); weights="retrained" reads ours from
``<checkpoints_root>/<model>/epoch_XX.pt`` (``$DEEPNNK_CHECKPOINTS``, else ``./checkpoints``), the
layout ``python -m deepnnk train`` writes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from deepnnk.nets.checkpoints import CheckpointNotFoundError, canonical_model

WEIGHTS = ("paper", "retrained")
CHECKPOINTS_ENV_VAR = "DEEPNNK_CHECKPOINTS"


def resolve_data_root(data_root=None) -> Path:
    """``data_root`` if given (non-empty), else ``$DEEPNNK_DATA``, else ``./data``."""
    from deepnnk.nets.data import data_root as _data_root

    return _data_root(data_root or None).resolve()


def retrained_path(checkpoints_root, model: str, epoch: int) -> Path:
    """``<checkpoints_root>/<model>/epoch_XX.pt``, the layout ``python -m deepnnk train`` writes."""
    from deepnnk.nets.train import checkpoint_path, recipe

    return checkpoint_path(Path(checkpoints_root) / recipe(model).name, epoch)


def checkpoints_root_or_default(checkpoints_root=None) -> Path:
    """``checkpoints_root`` if given (non-empty), else ``$DEEPNNK_CHECKPOINTS``, else
    ``./checkpoints``."""
    return Path(checkpoints_root or os.environ.get(CHECKPOINTS_ENV_VAR) or "checkpoints")


def load_network(weights: str, model: str, epoch: int, data_root=None, checkpoints_root=None):
    """The network behind a checkpoint, in eval mode (``model`` in either spelling).

    weights="paper": the authors' TensorFlow checkpoint
    (:func:`deepnnk.nets.paper.load_paper_model`);
    weights="retrained": ours, ``<checkpoints_root>/<model>/epoch_XX.pt`` (default root
    ``$DEEPNNK_CHECKPOINTS``, else ``checkpoints``).
    """
    model = canonical_model(model)
    if weights == "paper":
        from deepnnk.nets.paper import load_paper_model

        return load_paper_model(resolve_data_root(data_root), model, epoch)
    if weights == "retrained":
        from deepnnk.nets.train import load_checkpoint, recipe

        root = checkpoints_root_or_default(checkpoints_root)
        path = retrained_path(root, model, epoch)
        if not path.is_file():
            name = recipe(model).name
            raise CheckpointNotFoundError(
                f"no retrained checkpoint {path.resolve()}. Train it first (20 epochs, one "
                f"checkpoint each):\n    python -m deepnnk train --model {name} --out "
                f"{(root / name).resolve()}\n"
                "or use weights='paper' for the authors' checkpoints."
            )
        return load_checkpoint(path)
    raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}.")


def source_digest(weights: str, model: str, epoch: int, data_root=None, checkpoints_root=None):
    """A short digest of the checkpoint's bytes on disk (cheap: the index / the .pt file), so
    that cached results of a retrained or replaced checkpoint are not reused."""
    h = hashlib.blake2b(digest_size=12)
    if weights == "paper":
        from deepnnk.nets.paper import checkpoint_prefix

        prefix = checkpoint_prefix(resolve_data_root(data_root), model, epoch)
        index = Path(f"{prefix}.index")
        if not index.is_file():
            load_network(weights, model, epoch, data_root)  # raises the helpful error
        h.update(index.read_bytes())
        for part in sorted(prefix.parent.glob(f"{prefix.name}.data-*")):
            h.update(f"{part.name}:{part.stat().st_size}".encode())
    elif weights == "retrained":
        path = retrained_path(checkpoints_root_or_default(checkpoints_root), model, epoch)
        if not path.is_file():
            load_network(weights, model, epoch, data_root, checkpoints_root)  # raises
        h.update(path.read_bytes())
    else:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}.")
    return h.hexdigest()
