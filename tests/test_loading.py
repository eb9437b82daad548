"""deepnnk.nets.loading: the one network loader and its errors."""

from __future__ import annotations

import pytest

from deepnnk.nets.checkpoints import CheckpointError, CheckpointNotFoundError, canonical_model
from deepnnk.nets.loading import load_network, source_digest


def test_retrained_missing_checkpoint_says_how_to_train(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="python -m deepnnk train --model overfit"):
        load_network("retrained", "overfit", 3, checkpoints_root=tmp_path)
    with pytest.raises(FileNotFoundError):  # also a FileNotFoundError, and a CheckpointError
        load_network("retrained", "regularized", 3, checkpoints_root=tmp_path)
    with pytest.raises(ValueError, match="weights"):
        load_network("mine", "overfit", 3)


def test_model_names_in_either_spelling():
    assert canonical_model("regularized") == canonical_model("regularised") == "regularised"
    with pytest.raises(ValueError, match="unknown model 'huge'.*'underparameterised'"):
        canonical_model("huge")
    with pytest.raises(ValueError, match="unknown model"):
        load_network("paper", "huge", 20)


def test_paper_weights_load_in_either_spelling(checkpoint_root):
    a = load_network("paper", "underparameterized", 1, data_root=checkpoint_root)
    b = load_network("paper", "underparameterised", 1, data_root=checkpoint_root)
    assert not a.training and a.width == b.width == 16
    assert source_digest("paper", "underparameterized", 1, checkpoint_root) == source_digest(
        "paper", "underparameterised", 1, checkpoint_root
    )


def test_one_checkpoint_error_class():
    from deepnnk.nets import dcgan, paper, tf_bundle, train

    for module in (dcgan, paper, tf_bundle, train):
        assert getattr(module, "CheckpointError", CheckpointError) is CheckpointError
