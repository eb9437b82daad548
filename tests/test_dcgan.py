"""The CPU DCGAN: shapes, seeded sampling, checkpoints that resume bit-identically, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepnnk.nets.checkpoints import CheckpointError
from deepnnk.nets.dcgan import (
    Discriminator,
    GANConfig,
    Generator,
    build_dcgan,
    gan_checkpoint_path,
    list_gan_checkpoints,
    load_generator,
    sample_grid,
    sample_images,
    train_dcgan,
)

TINY = GANConfig(width=4, nz=8, batch_size=16, n_train=64, seed=3)


def _images(n=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def test_shapes_and_ranges():
    g, d = Generator(8, 16), Discriminator(8)
    x = g(torch.randn(5, 16))
    assert x.shape == (5, 3, 32, 32)
    assert float(x.detach().abs().max()) <= 1.0
    assert d(x).shape == (5,)


def test_sampling_is_seeded_and_batch_independent():
    g, _ = build_dcgan(TINY)
    a = sample_images(g, 20, seed=1, batch_size=7)
    b = sample_images(g, 20, seed=1, batch_size=500)
    c = sample_images(g, 20, seed=2)
    assert a.dtype == np.uint8 and a.shape == (20, 32, 32, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    with pytest.raises(ValueError, match="positive integer"):
        sample_images(g, 0)


def test_grid_tiles_images():
    imgs = _images(4)
    grid = sample_grid(imgs, 2, 2, pad=1)
    assert grid.shape == (2 * 33 + 1, 2 * 33 + 1, 3)
    np.testing.assert_array_equal(grid[1:33, 34:66], imgs[1])
    with pytest.raises(ValueError, match="need 9 images"):
        sample_grid(imgs, 3, 3)


def test_resume_is_bit_identical(tmp_path):
    x = _images()
    full, hist_full = train_dcgan(x, tmp_path / "a", epochs=2, config=TINY, progress=False)
    train_dcgan(x, tmp_path / "b", epochs=1, config=TINY, progress=False)
    assert sorted(list_gan_checkpoints(tmp_path / "b")) == [1]
    resumed, hist = train_dcgan(x, tmp_path / "b", epochs=2, config=TINY, progress=False)
    for (k, v), w in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
    assert [h["loss_d"] for h in hist] == [h["loss_d"] for h in hist_full]
    again, _ = train_dcgan(x, tmp_path / "b", epochs=2, config=TINY, progress=False)
    loaded = load_generator(tmp_path / "b")
    for v, w, u in zip(
        again.state_dict().values(),
        loaded.state_dict().values(),
        resumed.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(v, w) and torch.equal(v, u)


def test_other_config_and_bad_checkpoints_are_refused(tmp_path):
    x = _images()
    train_dcgan(x, tmp_path, epochs=1, config=TINY, progress=False)
    other = GANConfig(**{**TINY.__dict__, "lr": 1e-3})
    with pytest.raises(CheckpointError, match="another configuration.*lr"):
        train_dcgan(x, tmp_path, epochs=2, config=other, progress=False)
    with pytest.raises(CheckpointError, match="another configuration.*data_digest"):
        train_dcgan(_images(seed=1), tmp_path, epochs=2, config=TINY, progress=False)
    gan_checkpoint_path(tmp_path, 1).write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_generator(tmp_path)
    with pytest.raises(CheckpointError, match="no gan_epoch"):
        load_generator(tmp_path / "empty")
    with pytest.raises(ValueError, match="only 64 images"):
        train_dcgan(x, tmp_path / "c", epochs=1, config=GANConfig(n_train=100), progress=False)
    with pytest.raises(ValueError, match="uint8"):
        train_dcgan(
            x.astype(np.float32).transpose(0, 3, 1, 2) / 255, tmp_path / "d", epochs=1, config=TINY
        )


def test_generator_learns_the_data_colour(tmp_path):
    # Noisy images of one colour: a few epochs must pull the samples' mean colour towards it.
    rng = np.random.default_rng(0)
    target = np.array([200, 30, 30])
    x = np.clip(target + rng.integers(-10, 11, (512, 32, 32, 3)), 0, 255).astype(np.uint8)
    cfg = GANConfig(width=8, n_train=512, batch_size=32, lr=2e-3)
    g0, _ = build_dcgan(cfg)
    before = np.linalg.norm(sample_images(g0, 64).reshape(-1, 3).mean(0) - target)
    g, hist = train_dcgan(x, tmp_path, epochs=3, config=cfg, progress=False)
    after = np.linalg.norm(sample_images(g, 64).reshape(-1, 3).mean(0) - target)
    assert after < 0.75 * before, (before, after)
    assert all(0 < h["d_real"] < 1 and 0 < h["d_fake"] < 1 for h in hist)
