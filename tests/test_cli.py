"""``python -m deepnnk``: help, and tiny train / evaluate / features runs on synthetic data."""

from __future__ import annotations

import os

import numpy as np
import pytest

from deepnnk.cli import main
from deepnnk.nets.data import BIN_DIR, BIN_MD5, load_cifar10
from deepnnk.nets.train import list_checkpoints, read_checkpoint

RECORD = 1 + 32 * 32 * 3
LIMIT = 100  # images used per split: 2 training steps of 50


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """A fake CIFAR-10 in the official binary layout (full size, since the loader checks it).

    Only the first 200 records of each file carry random pixels; the rest are black. The md5s
    are not the official ones, so every command needs --no-verify.
    """
    root = tmp_path_factory.mktemp("cifar")
    folder = root / BIN_DIR
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in BIN_MD5:
        n = 10_000
        records = np.zeros((n, RECORD), np.uint8)
        records[:, 0] = rng.integers(0, 10, n)
        records[:200, 1:] = rng.integers(0, 256, (200, RECORD - 1))
        records.tofile(folder / name)
    return root


def cli(*args: str) -> int:
    return main([*args])


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli("--help")
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "features", "evaluate"):
        assert command in out


@pytest.mark.parametrize("command", ["train", "features", "evaluate"])
def test_each_command_has_help(capsys, command):
    with pytest.raises(SystemExit) as exit_:
        cli(command, "--help")
    assert exit_.value.code == 0
    assert "--data" in capsys.readouterr().out


def test_fixture_is_a_loadable_binary_layout(data_root):
    x_train, y_train, x_test, y_test = load_cifar10(data_root, verify=False)
    assert x_train.shape == (50_000, 32, 32, 3) and x_test.shape == (10_000, 32, 32, 3)
    assert y_train.max() <= 9 and y_test.max() <= 9


def test_train_evaluate_features_end_to_end(data_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DEEPNNK_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    common = ["--data", str(data_root), "--no-verify", "--limit", str(LIMIT)]
    assert (
        cli("train", "--model", "underparameterised", "--epochs", "1", "--out", str(out), *common)
        == 0
    )
    assert list(list_checkpoints(out)) == [1]
    state = read_checkpoint(out / "epoch_01.pt")
    assert state["config"]["width"] == 16 and state["config"]["regularized"]
    assert 0 <= state["history"][0]["test_accuracy"] <= 1

    # Running it again resumes: only epoch 2 is trained.
    assert (
        cli("train", "--model", "underparameterised", "--epochs", "2", "--out", str(out), *common)
        == 0
    )
    assert list(list_checkpoints(out)) == [1, 2]
    printed = capsys.readouterr()
    assert "resuming after epoch 1" in printed.out + printed.err

    assert cli("evaluate", "--checkpoint", str(out / "epoch_02.pt"), *common) == 0
    printed = capsys.readouterr().out
    assert "train accuracy" in printed and "test accuracy" in printed
    assert cli("evaluate", "--checkpoint", str(out), *common) == 0  # a directory: latest epoch
    assert "epoch_02.pt" in capsys.readouterr().out

    npz = tmp_path / "feats.npz"
    assert (
        cli("features", "--checkpoint", str(out), "--epoch", "1", "--out", str(npz), *common) == 0
    )
    with np.load(npz) as saved:
        assert saved["train_features"].shape == (LIMIT, 256)
        assert saved["test_features"].shape == (LIMIT, 256)
        assert saved["train_labels"].shape == (LIMIT,)
        assert str(saved["layer"]) == "features"
    assert len(os.listdir(tmp_path / "cache" / "features")) == 2  # train and test entries


def test_resuming_with_another_model_is_refused(data_root, tmp_path, capsys):
    common = ["--data", str(data_root), "--no-verify", "--limit", "50", "--quiet", "--no-eval-test"]
    out = str(tmp_path / "run")
    assert (
        cli("train", "--model", "underparameterised", "--epochs", "1", "--out", out, *common) == 0
    )
    assert cli("train", "--model", "overfit", "--epochs", "2", "--out", out, *common) == 1
    err = capsys.readouterr().err
    assert "different training run" in err and "epoch_01.pt" in err


def test_md5_is_checked_unless_no_verify(data_root, tmp_path, capsys):
    code = cli("evaluate", "--checkpoint", str(tmp_path / "none.pt"), "--data", str(data_root))
    assert code == 1
    assert "md5" in capsys.readouterr().err


def test_missing_checkpoint_and_paper_model_errors(data_root, tmp_path, capsys):
    common = ["--data", str(data_root), "--no-verify", "--limit", "10"]
    assert cli("evaluate", "--checkpoint", str(tmp_path / "none.pt"), *common) == 1
    assert "does not exist" in capsys.readouterr().err
    assert cli("evaluate", "--checkpoint", str(tmp_path), *common) == 1
    assert "no epoch_XX.pt checkpoints" in capsys.readouterr().err
    # The fake data root has no deepnnk-paper-checkpoints/: a clear error, not a traceback.
    assert cli("evaluate", "--paper-model", "regularised", "--epoch", "3", *common) == 1
    assert "deepnnk-paper-checkpoints" in capsys.readouterr().err


def test_missing_data_is_reported(tmp_path, capsys):
    assert cli("evaluate", "--checkpoint", "x.pt", "--data", str(tmp_path)) == 1
    assert "No CIFAR-10 found" in capsys.readouterr().err


def test_data_defaults_to_the_environment(data_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEEPNNK_DATA", str(data_root))
    out = str(tmp_path / "run")
    args = ["--no-verify", "--limit", "50", "--quiet", "--no-eval-test"]
    assert cli("train", "--model", "overfit", "--epochs", "1", "--out", out, *args) == 0


def test_train_all_runs_the_three_models_side_by_side(data_root, tmp_path, capsys):
    out = tmp_path / "all"
    common = ["--data", str(data_root), "--no-verify", "--limit", str(LIMIT)]
    assert (
        cli(
            "train",
            *("--model", "all", "--jobs", "2", "--epochs", "1", "--out", str(out)),
            *("--bias-init", "tensorflow", *common),
        )
        == 0
    )
    text = capsys.readouterr().out
    for model in ("regularised", "overfit", "underparameterised"):
        assert list(list_checkpoints(out / model)) == [1], model
        assert f"finished {model}: exit 0" in text
        assert "epoch 1/1, loss" in (out / f"{model}.log").read_text(), model
    config = read_checkpoint(out / "overfit" / "epoch_01.pt")["config"]
    assert config["regularized"] is False and config["bias_init"] == "tensorflow"
    assert "2 at a time" in text


def test_gan_command_trains_and_resumes(data_root, tmp_path, capsys):
    from deepnnk.nets.dcgan import list_gan_checkpoints

    out = tmp_path / "gan"
    common = ["--data", str(data_root), "--no-verify", "--width", "4", "--n-train", "128"]
    assert cli("gan", "--out", str(out), "--epochs", "1", *common) == 0
    assert cli("gan", "--out", str(out), "--epochs", "2", *common) == 0
    assert sorted(list_gan_checkpoints(out)) == [1, 2]
    assert cli("gan", "--out", str(out), "--epochs", "2", *common[:-1], "64") == 1
    assert "another configuration" in capsys.readouterr().err
