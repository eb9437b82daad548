"""Loading the authors' TensorFlow checkpoints into PaperCNN, and reproducing their accuracies."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from bundle_writer import write_bundle

from deepnnk.nets.data import load_cifar10, to_tensor
from deepnnk.nets.models import PaperCNN
from deepnnk.nets.paper import (
    CHECKPOINT_DIR,
    PAPER_ACCURACY,
    PAPER_MODELS,
    checkpoint_prefix,
    load_paper_model,
    paper_model,
    state_dict_from_bundle,
)
from deepnnk.nets.tf_bundle import CheckpointNotFoundError

# --------------------------------------------------------------------------------------------
# without the real data
# --------------------------------------------------------------------------------------------


def tf_weights(width: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights named and laid out as in the authors' bundles."""
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(6):
        cin = 3 if i == 0 else width
        out[f"network/W_conv{i}"] = rng.normal(0, 0.4, (3, 3, cin, width)).astype(np.float32)
        out[f"network/b_conv{i}"] = rng.normal(0, 0.1, width).astype(np.float32)
    out["W_fc1"] = rng.normal(0, 0.3, (16 * width, 10)).astype(np.float32)
    out["b_fc1"] = rng.normal(0, 0.1, 10).astype(np.float32)
    return out


def tf_forward(weights: dict[str, np.ndarray], images: np.ndarray) -> np.ndarray:
    """The authors' network as TensorFlow computes it, in float64 numpy, on NHWC pixels/255."""
    x = images.astype(np.float64) / 255.0
    for i in range(6):
        kernel = weights[f"network/W_conv{i}"].astype(np.float64)
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))  # SAME for 3×3, stride 1
        h, w = x.shape[1:3]
        x = sum(
            padded[:, di : di + h, dj : dj + w, :] @ kernel[di, dj]
            for di in range(3)
            for dj in range(3)
        )
        x = np.maximum(x + weights[f"network/b_conv{i}"], 0.0)
        if i % 2 == 1:
            n, h, w, c = x.shape
            x = x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
    return x.reshape(len(x), -1) @ weights["W_fc1"] + weights["b_fc1"]


@pytest.mark.parametrize("width", [2, 5])
def test_layouts_match_tensorflow(tmp_path, width):
    weights = tf_weights(width)
    write_bundle(tmp_path / "model.ckpt-0", weights)
    net = PaperCNN(width=width)
    net.load_state_dict(state_dict_from_bundle(tmp_path / "model.ckpt-0", width))
    net.eval()
    images = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    with torch.no_grad():
        logits = net(to_tensor(images)).double().numpy()
    np.testing.assert_allclose(logits, tf_forward(weights, images), rtol=1e-4, atol=1e-4)


def fake_checkpoint(root, model: str, epoch: int, width: int) -> None:
    prefix = checkpoint_prefix(root, model, epoch)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    write_bundle(prefix, tf_weights(width))


def test_load_from_a_fake_root(tmp_path, monkeypatch):
    fake_checkpoint(tmp_path, "overfit", 3, 32)
    net = load_paper_model(tmp_path, "overfit", 3)
    assert not net.training and net.width == 32 and not net.regularized
    np.testing.assert_array_equal(net.fc.weight.detach().numpy(), tf_weights(32)["W_fc1"].T)
    monkeypatch.setenv("DEEPNNK_DATA", str(tmp_path))
    assert load_paper_model(model="overfit", epoch=3).state_dict().keys() == net.state_dict().keys()


def test_wrong_width(tmp_path):
    fake_checkpoint(tmp_path, "regularised", 20, 16)
    with pytest.raises(ValueError, match="checkpoint .* has width 16 but model width 32"):
        load_paper_model(tmp_path, "regularised", 20)


def test_checkpoint_prefix(tmp_path, monkeypatch):
    folder = tmp_path / CHECKPOINT_DIR / "conv2d_models_cifar10_layer_size_32_regularized_True"
    assert checkpoint_prefix(tmp_path, "regularised", 20) == folder / "model.ckpt-19000"
    assert checkpoint_prefix(tmp_path, "regularized", 1) == folder / "model.ckpt-0"
    monkeypatch.setenv("DEEPNNK_DATA", str(tmp_path))
    assert checkpoint_prefix(model="regularised", epoch=np.int64(2)).name == "model.ckpt-1000"


def test_model_names_and_aliases():
    assert (
        set(PAPER_MODELS) == set(PAPER_ACCURACY) == {"underparameterised", "regularised", "overfit"}
    )
    assert paper_model("underparameterized") is PAPER_MODELS["underparameterised"]
    assert paper_model("regularized").width == 32 and paper_model("regularized").regularized
    assert (paper_model("underparameterised").width, paper_model("overfit").regularized) == (
        16,
        False,
    )


@pytest.mark.parametrize("name", ["overfitted", "Regularised", "", None])
def test_unknown_model(name, tmp_path):
    with pytest.raises(ValueError, match="unknown model.*'underparameterised'.*'overfit'"):
        load_paper_model(tmp_path, name)


@pytest.mark.parametrize("epoch", [0, 21, -1, 1.5, "20", True])
def test_bad_epoch(epoch, tmp_path):
    with pytest.raises(ValueError, match=r"epoch must (lie in|be an int in) 1\.\.20"):
        load_paper_model(tmp_path, "regularised", epoch)


def test_missing_root(tmp_path):
    with pytest.raises(CheckpointNotFoundError) as err:
        load_paper_model(tmp_path / "nowhere", "overfit", 20)
    message = str(err.value)
    assert isinstance(err.value, ValueError) and isinstance(err.value, FileNotFoundError)
    assert "nowhere" in message and "does not exist" in message
    assert "github.com/STAC-USC/DeepNNK_polytope_interpolation" in message
    assert "MIT" in message and f"/{CHECKPOINT_DIR}/" in message


def test_missing_file_in_existing_folder(tmp_path):
    fake_checkpoint(tmp_path, "overfit", 19, 32)
    with pytest.raises(CheckpointNotFoundError, match=r"model\.ckpt-19000\.index is missing"):
        load_paper_model(tmp_path, "overfit", 20)


# --------------------------------------------------------------------------------------------
# the authors' real checkpoints
# --------------------------------------------------------------------------------------------

# Batches of 200 keep each activation under glibc's 32 MB mmap threshold, so its memory is
# reused instead of page-faulted afresh: about twice as fast as batches of 1000 on CPU.
BATCH = 200


def accuracy(net: torch.nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in percent of ``net`` on uint8 HWC ``images``."""
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(images), BATCH):
            logits = net(to_tensor(images[start : start + BATCH]))
            correct += int((logits.argmax(1).numpy() == labels[start : start + BATCH]).sum())
    return 100.0 * correct / len(images)


@pytest.fixture(scope="module")
def cifar(real_data_root):
    return load_cifar10(real_data_root)


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("model", list(PAPER_MODELS))
def test_reproduces_the_authors_accuracy(real_data_root, cifar, model):
    # The authors logged two decimals; ±0.05 points is ±5 test or ±25 training images.
    x_train, y_train, x_test, y_test = cifar
    net = load_paper_model(real_data_root, model, epoch=20)
    start = time.perf_counter()
    measured = {"test": accuracy(net, x_test, y_test), "train": accuracy(net, x_train, y_train)}
    elapsed = time.perf_counter() - start
    print(f"{model}: {measured} in {elapsed:.1f} s (paper: {PAPER_ACCURACY[model]})")
    for split, value in measured.items():
        assert abs(value - PAPER_ACCURACY[model][split]) <= 0.05, (split, measured)


@pytest.mark.data
def test_every_epoch_loads(checkpoint_root):
    for name in PAPER_MODELS:
        for epoch in (1, 10, 20):
            net = load_paper_model(checkpoint_root, name, epoch)
            assert all(torch.isfinite(p).all() for p in net.parameters())


@pytest.mark.data
def test_real_wrong_width(checkpoint_root):
    prefix = checkpoint_prefix(checkpoint_root, "underparameterised", 20)
    with pytest.raises(ValueError, match="has width 16 but model width 32"):
        state_dict_from_bundle(prefix, 32)
