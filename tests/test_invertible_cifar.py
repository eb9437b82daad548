"""Tests for the CIFAR invertible classifier (deepnnk.nets.invertible) and the counterfactual
study (deepnnk.studies.invertible_cifar): tiny sizes, random weights, no data set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepnnk.nets.invertible import (
    AdditiveCoupling,
    InvertibleConvNet,
    Squeeze,
    boundary_projection,
    cifar_classifier,
    conv_subnet,
)
from deepnnk.studies import invertible_cifar as study


def randomise(module: torch.nn.Module, seed: int = 0, std: float = 0.1) -> torch.nn.Module:
    """Every parameter redrawn N(0, std²) (the zero-initialised last convs included)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype) * std)
    return module


def tiny(dtype=torch.float64, seed=0):
    model = cifar_classifier(seed, blocks=(1, 2), hidden=(8, 8), n_classes=4)
    return randomise(model, seed).to(dtype).eval()


def images(n=5, seed=0, dtype=torch.float64):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed)).to(dtype)


def test_squeeze_is_an_exact_permutation():
    x = images(2)
    sq = Squeeze()
    y = sq(x)
    assert y.shape == (2, 12, 16, 16)
    assert torch.equal(sq.inverse(y), x)
    # channel 4c + 2i + j holds input channel c at offset (i, j) of each 2×2 patch
    assert torch.equal(y[:, 4 * 1 + 2 * 1 + 0], x[:, 1, 1::2, 0::2])
    assert torch.equal(torch.sort(y.flatten())[0], torch.sort(x.flatten())[0])
    with pytest.raises(ValueError, match="even"):
        sq(torch.zeros(1, 3, 5, 4))


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_conv_coupling_block_inverse(dtype, tol):
    block = randomise(AdditiveCoupling(conv_subnet(6, 8, 6), conv_subnet(6, 8, 6)), 1).to(dtype)
    x = torch.randn(3, 12, 16, 16, dtype=dtype)
    with torch.no_grad():
        y = block(x)
        assert (y - x).abs().max() > 1e-2  # the block is not the identity
        assert (block.inverse(y) - x).abs().max() <= tol


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_network_round_trip(dtype, tol):
    model = tiny(dtype)
    x = images(4, dtype=dtype)
    with torch.no_grad():
        z = model.features(x)
        assert z.shape == (4, 3072)
        assert (model.inverse(z) - x).abs().max() <= tol
        # each layer on its own, too
        h = x
        for layer in model.transform.layers:
            out = layer(h)
            assert (layer.inverse(out) - h).abs().max() <= tol
            h = out


def test_new_network_is_a_squeeze_and_zero_init_couplings():
    model = cifar_classifier(0)
    assert isinstance(model.transform, InvertibleConvNet)
    assert model.transform.feature_shape == (48, 8, 8)
    x = images(2, dtype=torch.float32)
    with torch.no_grad():
        ref = Squeeze()(Squeeze()(x))
        assert torch.equal(model.transform(x), ref)


def test_logit_gap_is_zero_at_the_projection():
    model = tiny()
    x = images(6)
    with torch.no_grad():
        order = model(x).argsort(1, descending=True)
    a, b = order[:, 0].numpy(), order[:, 2].numpy()  # any pair, not only the runner-up
    x_b = boundary_projection(model, x, a, b)[0]
    with torch.no_grad():
        lg = model(x_b)
    rows = torch.arange(len(x))
    assert (lg[rows, a] - lg[rows, b]).abs().max() <= 1e-6


def threshold_predict(t_star):
    """Class 1 where the first coordinate exceeds t_star (row by row), else 0."""
    t_star = np.asarray(t_star)
    return lambda im: (np.asarray(im)[:, 0] > t_star).astype(int)


def test_bisection_finds_the_flip_to_tolerance():
    t_star = np.array([0.1, 0.5, 0.73, 2.0])  # the last never flips on [0, 1]
    x, target = np.zeros((4, 3)), np.ones((4, 3))
    steps = 25
    out = study.flip_bisection(threshold_predict(t_star), x, target, np.zeros(4, int), steps)
    assert out["found"].tolist() == [True, True, True, False]
    ok = out["found"]
    assert np.all(out["t_lo"][ok] <= t_star[ok]) and np.all(t_star[ok] <= out["t"][ok])
    assert np.all(out["t"][ok] - t_star[ok] <= 2.0**-steps)
    assert out["t"][3] == 1.0 and out["pred"][:3].tolist() == [1, 1, 1]
    assert np.allclose(out["point"], out["t"][:, None] * target)


def test_validity_and_proximity_definitions():
    predict_fn = threshold_predict(np.ones(4))  # flips where x[0] > 1
    x = np.zeros((4, 3))
    c = np.array([[1.0, 0, 0], [0.98, 0, 0], [0, 0, 0], [1.5, 0, 0]])
    valid, pred = study.validity(predict_fn, x, c, np.zeros(4, int))
    # exactly on the threshold: 1% past it flips; 2% short: 1% past is still short; c = x never
    assert valid.tolist() == [True, False, False, True]
    assert np.allclose(study.just_past(x, c)[:, 0], 1.01 * c[:, 0])
    d = np.zeros((2, 3, 2, 2))
    d[0, 0, 0, 0], d[0, 1, 1, 1], d[1, 2, 0, 1] = 3.0, 4.0, -2.0
    assert np.allclose(study.proximity(np.zeros_like(d), d), [5.0, 2.0])


@pytest.fixture(scope="module")
def nnk_setting():
    rng = np.random.default_rng(0)
    F = rng.normal(size=(120, 6)) + 3.0
    y = np.repeat(np.arange(4), 30)
    return F, y, study.fit_nnk(F, y, k=8)


def test_plausibility_leaves_the_training_image_out(nnk_setting):
    F, _, clf = nnk_setting
    own = study.plausibility(clf, F[:5])
    assert np.allclose(own["nn_distance"], 0.0) and np.allclose(own["residual"], 0.0, atol=1e-8)
    out = study.plausibility(clf, F[:5], exclude=np.arange(5))
    assert np.all(out["nn_distance"] > 0) and np.all(out["residual"] > 1e-6)
    d = np.sqrt(((F[:5, None] - F[None]) ** 2).sum(-1))
    d[np.arange(5), np.arange(5)] = np.inf
    assert np.allclose(out["nn_distance"], d.min(1), rtol=1e-5)


def test_class_nnk_stays_in_the_class(nnk_setting):
    F, y, clf = nnk_setting
    b = np.array([0, 1, 2, 3, 3])
    index, w = study.class_nnk(clf, F[40:45] + 0.01, b)
    assert np.all(y[index] == b[:, None])
    assert np.allclose(w.sum(1), 1.0) and np.all(w >= 0)


def test_counterfactuals_end_to_end(nnk_setting):
    model = tiny(torch.float32)
    rng = np.random.default_rng(1)
    x_train = rng.integers(0, 256, size=(80, 32, 32, 3), dtype=np.uint8)
    y_train = np.repeat(np.arange(4), 20)  # every class holds more than k images
    clf = study.fit_nnk(study.features(model, x_train), y_train, k=6)
    x = study.to_float(rng.integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8))
    g = study.gallery(model, clf, x, n_show=3)
    assert g["x_interp"].shape == (6, 3, 32, 32) and np.abs(g["gap_at_x_b"]).max() < 1e-3
    assert study.gallery_metrics(g)["n_images"] == 6
    cf = study.counterfactuals(model, clf, x_train, x, steps=12)
    assert set(cf["methods"]) == set(study.METHODS)
    for m in cf["methods"].values():
        assert m["images"].shape == (6, 3, 32, 32) and m["valid"].dtype == bool
        assert np.all(m["proximity"] >= 0) and np.all(np.isfinite(m["residual"]))
    real = cf["methods"]["nnk_neighbour"]
    assert np.all(real["nn_distance"] >= 0)  # itself left out
    metrics = study.counterfactual_metrics(cf)
    assert set(metrics["table"]) == set(study.METHODS) and "nnk_loses" in metrics["verdict"]
    assert "NNK-guided" in study.format_table(metrics["table"])


def test_seeded_training_resumes_to_identical_weights(tmp_path):
    rng = np.random.default_rng(0)
    data = {
        "x_train": rng.integers(0, 256, size=(60, 32, 32, 3), dtype=np.uint8),
        "y_train": rng.integers(0, 10, size=60),
    }
    sizes = {**study.profile("smoke"), "n_train": 60, "batch_size": 20, "epochs": 2}
    straight, info = study.train_network(data, sizes, tmp_path / "a", seed=3)
    study.train_network(data, {**sizes, "epochs": 1}, tmp_path / "b", seed=3)
    resumed, info_b = study.train_network(data, sizes, tmp_path / "b", seed=3)
    assert info["checkpoints"] == info_b["checkpoints"] == 2
    for (k, v), (k2, v2) in zip(
        straight.state_dict().items(), resumed.state_dict().items(), strict=True
    ):
        assert k == k2 and torch.equal(v, v2), k
    # a finished run only loads
    again, info_c = study.train_network(data, sizes, tmp_path / "a", seed=3)
    assert info_c["training_seconds"] == info["training_seconds"]
