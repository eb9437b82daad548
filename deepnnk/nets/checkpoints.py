"""The vocabulary every checkpoint reader shares: the paper's model names and one error class.

The authors' TensorFlow bundles (:mod:`deepnnk.nets.tf_bundle`, :mod:`deepnnk.nets.paper`), our
training checkpoints (:mod:`deepnnk.nets.train`), the DCGAN's (:mod:`deepnnk.nets.dcgan`) and the
one loader (:func:`deepnnk.nets.loading.load_network`) all raise :class:`CheckpointError`, whose
message names the file, the fault and the fix.
"""

from __future__ import annotations

# The paper's three models, in order of size; both spellings are accepted everywhere.
MODELS = ("underparameterised", "regularised", "overfit")
MODEL_ALIASES = {"underparameterized": "underparameterised", "regularized": "regularised"}


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
