"""deepnnk.nets.features: extraction, the on-disk cache and its keys, atomic writes, input
checks."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from deepnnk.nets.data import to_tensor
from deepnnk.nets.features import atomic_write, cache_key, default_cache_dir, extract
from deepnnk.nets.models import PaperCNN

WIDTH = 4


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (200, 32, 32, 3), dtype=np.uint8)


@pytest.fixture
def net() -> PaperCNN:
    torch.manual_seed(0)
    return PaperCNN(WIDTH, regularized=True)


def entries(folder) -> list[str]:
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_features_and_logits_match_the_model(net, images):
    feats = extract(net, images, batch_size=64, cache_dir=False)
    logits = extract(net, images, batch_size=64, layer="logits", cache_dir=False)
    assert feats.shape == (200, 16 * WIDTH) and feats.dtype == np.float32
    assert logits.shape == (200, 10) and logits.dtype == np.float32
    net.eval()
    with torch.no_grad():
        x = to_tensor(images)
        np.testing.assert_allclose(feats, net.features(x).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(logits, net(x).numpy(), rtol=1e-5, atol=1e-6)


def test_extract_is_extract_features_on_the_final_linear_layer(net, images):
    """The CIFAR front end and the general hooks give the very same bits: ``features`` is what
    goes into ``fc`` (``model.features(x)``), ``logits`` what comes out (``model(x)``)."""
    from deepnnk import extract_features

    net.eval()
    x = to_tensor(images)
    with torch.no_grad():
        np.testing.assert_array_equal(extract(net, images, 200, cache_dir=False), net.features(x))
        np.testing.assert_array_equal(
            extract(net, images, 200, layer="logits", cache_dir=False), net(x)
        )
    np.testing.assert_array_equal(
        extract(net, images, 50, cache_dir=False),
        extract_features(net, x, "fc", layer_input=True, batch_size=50, cache_dir=False),
    )


def test_a_model_without_fc_is_sent_to_extract_features(images):
    with pytest.raises(ValueError, match="extract_features"):
        extract(torch.nn.Sequential(torch.nn.Flatten()), images, cache_dir=False)


def test_eval_mode_is_used_and_the_mode_is_restored(net, images):
    net.train()
    first = extract(net, images[:20], cache_dir=False)
    second = extract(net, images[:20], cache_dir=False)  # dropout off: deterministic
    np.testing.assert_array_equal(first, second)
    assert net.training
    net.eval()
    extract(net, images[:20], cache_dir=False)
    assert not net.training


def test_float_input_and_batch_size_give_the_same_features(net, images):
    ref = extract(net, images, cache_dir=False)
    as_float = to_tensor(images).contiguous()
    np.testing.assert_allclose(extract(net, as_float, cache_dir=False), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        extract(net, as_float.numpy(), 7, cache_dir=False), ref, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        extract(net, torch.from_numpy(images), 33, cache_dir=False), ref, rtol=1e-5, atol=1e-6
    )


def test_second_call_reads_the_cache_without_running_the_model(net, images, tmp_path, monkeypatch):
    first = extract(net, images, cache_dir=tmp_path)
    assert len(entries(tmp_path)) == 1 and entries(tmp_path)[0].endswith(".npz")

    def must_not_run(*args, **kwargs):
        raise AssertionError("the model ran although the cache held the answer")

    monkeypatch.setattr(net, "features", must_not_run)
    monkeypatch.setattr(net, "forward", must_not_run)
    np.testing.assert_array_equal(extract(net, images, cache_dir=tmp_path), first)


def test_a_modified_model_misses_the_cache(net, images, tmp_path):
    before = extract(net, images, cache_dir=tmp_path)
    with torch.no_grad():
        net.convs[5].bias[0] += 0.5
    after = extract(net, images, cache_dir=tmp_path)
    assert len(entries(tmp_path)) == 2
    assert not np.array_equal(before, after)
    np.testing.assert_allclose(after, extract(net, images, cache_dir=False), rtol=1e-5, atol=1e-6)


def test_key_covers_layer_images_and_weights(net, images):
    key = cache_key(net, images, "features")
    assert key == cache_key(net, images.copy(), "features")
    assert key != cache_key(net, images, "logits")
    other = images.copy()
    other[199, 31, 31, 2] ^= 1
    assert key != cache_key(net, other, "features")
    assert key != cache_key(net, images[:199], "features")
    torch.manual_seed(1)
    assert key != cache_key(PaperCNN(WIDTH), images, "features")
    assert key != cache_key(PaperCNN(WIDTH + 1), images, "features")


def test_cache_disabled_writes_nothing(net, images, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPNNK_CACHE", str(tmp_path / "env"))
    extract(net, images[:10], cache_dir=False)
    assert entries(tmp_path) == []


def test_default_cache_dir_follows_the_environment(net, images, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPNNK_CACHE", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env" / "features"
    extract(net, images[:10])
    assert len(entries(tmp_path / "env" / "features")) == 1
    monkeypatch.delenv("DEEPNNK_CACHE")
    assert default_cache_dir().parts[-3:] == (".cache", "deepnnk", "features")


def test_unreadable_cache_entry_is_recomputed(net, images, tmp_path):
    first = extract(net, images, cache_dir=tmp_path)
    (entry,) = entries(tmp_path)
    (tmp_path / entry).write_bytes(b"\x93NUMPY garbage")
    with pytest.warns(UserWarning, match="unreadable"):
        again = extract(net, images, cache_dir=tmp_path)
    np.testing.assert_array_equal(again, first)
    with np.load(tmp_path / entry) as rewritten:
        np.testing.assert_array_equal(rewritten["layer0"], first)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "x.bin"
    atomic_write(target, lambda f: f.write(b"old"))

    def fail_halfway(f):
        f.write(b"ne")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, fail_halfway)
    assert target.read_bytes() == b"old"
    assert entries(tmp_path) == ["x.bin"]


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((4, 3, 32, 32), np.uint8), "uint8"),
        (np.zeros((4, 32, 32, 3), np.float32), "float"),
        (np.zeros((4, 32, 32), np.uint8), r"\[4, 32, 32\]"),
        (np.zeros((4, 32, 32, 3), np.int64), "int64"),
        (np.zeros((0, 32, 32, 3), np.uint8), "empty"),
        ("not images", "images"),
    ],
)
def test_bad_images_raise_value_error(net, bad, match):
    with pytest.raises(ValueError, match=match):
        extract(net, bad, cache_dir=False)


def test_bad_layer_or_batch_size_raise_value_error(net, images):
    with pytest.raises(ValueError, match="layer"):
        extract(net, images, layer="conv3", cache_dir=False)
    with pytest.raises(ValueError, match="batch_size"):
        extract(net, images, 0, cache_dir=False)


def test_atomic_write_honours_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        target = atomic_write(tmp_path / "f.bin", lambda f: f.write(b"x"))
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o644
