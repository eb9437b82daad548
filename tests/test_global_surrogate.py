"""Notebook 09's study functions on tiny synthetic data: the fidelity operations, bootstrap
intervals, log-odds, rankings, NNK's importance, the digits CNN and the figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from torch import nn

from deepnnk.figures import global_surrogate as plots
from deepnnk.nets import digits
from deepnnk.nets.dmm_men import fit
from deepnnk.studies import global_surrogate as gs
from deepnnk.studies import global_surrogate_fidelity as gf


class Linear(nn.Module):
    """A 3-class linear model on flattened [n, C, 4, 4] images (fixed seeded weights)."""

    def __init__(self, channels=1, seed=0):
        super().__init__()
        self.fc = nn.Linear(channels * 16, 3)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(3, channels * 16, generator=g))
            self.fc.bias.zero_()

    def features(self, x):
        return x.flatten(1)

    def forward(self, x):
        return self.fc(self.features(x))


def images(n=40, channels=1, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, channels, 4, 4)).astype(np.float32)


def tiny_target(channels=1):
    x = images(120, channels)
    model = Linear(channels).eval()
    labels = gs.predict(model, x)
    return gs.Target("tiny", model, int(np.bincount(labels).argmax()), ("a", "b", "c"),
                     np.arange(16), x[:80], labels[:80], x[80:], labels[80:], {})  # fmt: skip


def tiny_surrogate():
    t = tiny_target()
    X, Xh = gs.surrogate_X(t, t.fit_images), gs.surrogate_X(t, t.heldout_images)
    y = gs.log_odds(gs.logits(t.model, t.fit_images), t.c)
    yh = gs.log_odds(gs.logits(t.model, t.heldout_images), t.c)
    res = fit(gs.with_intercept(X), y, 40, 2, seed=0, show_progress=False)
    return t, gs.Surrogate(X, y, Xh, yh, res, 0.1)


# --------------------------------------------------------------------------- operations


def test_bootstrap_interval_contains_the_point_estimate():
    rng = np.random.default_rng(1)
    for values in (rng.uniform(size=200), rng.uniform(size=500) < 0.3, rng.normal(size=300)):
        b = gf.bootstrap(values, n_boot=10, frac=0.3, seed=0)
        assert b["lo"] <= b["mean"] <= b["hi"] and b["n"] == len(values)
        assert b["mean"] == pytest.approx(np.mean(values))
    assert np.isnan(gf.bootstrap([])["mean"])
    with pytest.raises(ValueError, match="frac"):
        gf.bootstrap([1.0, 2.0], frac=0)


@pytest.mark.parametrize("channels", [1, 3])
def test_nullification_of_no_pixels_changes_nothing(channels):
    x = images(30, channels)
    assert np.array_equal(gf.zero_pixels(x, []), x)
    model = Linear(channels).eval()
    labels = gs.predict(model, x)
    assert np.all(gf.nullification(model, x, labels, [], 0) == 0)


def test_zero_pixels_zeroes_every_channel_at_those_positions_only():
    x = images(5, 3) + 0.1
    out = gf.zero_pixels(x, [0, 5])
    flat = out.reshape(5, 3, 16)
    assert np.all(flat[:, :, [0, 5]] == 0)
    keep = np.setdiff1d(np.arange(16), [0, 5])
    assert np.array_equal(flat[:, :, keep], x.reshape(5, 3, 16)[:, :, keep])


@pytest.mark.parametrize("channels", [1, 3])
def test_filling_with_all_pixels_reproduces_the_source_prediction(channels):
    model = Linear(channels).eval()
    src, tgt = images(20, channels, 1), images(20, channels, 2)
    filled = gf.fill_pixels(tgt, src, np.arange(16))
    assert np.array_equal(filled, src)
    c = 1
    _, flip = gf.filling(model, tgt, src, np.arange(16), c)
    assert np.array_equal(flip, gs.predict(model, src) == c)


def test_pathological_with_all_pixels_is_the_source():
    model = Linear(3).eval()
    src = images(25, 3, 4)
    assert np.array_equal(
        gf.pathological(model, src, np.arange(16), 2), gs.predict(model, src) == 2
    )


def test_pixel_operations_name_bad_input():
    x = images(3)
    with pytest.raises(ValueError, match="flat positions"):
        gf.zero_pixels(x, [16])
    with pytest.raises(ValueError, match="duplicates"):
        gf.zero_pixels(x, [1, 1])
    with pytest.raises(ValueError, match="same shape"):
        gf.fill_pixels(x, images(4), [0])
    with pytest.raises(ValueError, match=r"\[n, C, H, W\]"):
        gf.zero_pixels(x[0], [0])


# --------------------------------------------------------------------------- targets


def test_log_odds_is_exact_and_clipped():
    z = np.array([[2.0, 0.5, -1.0], [50.0, -50.0, -50.0], [-60.0, 0.0, 0.0]])
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = gs.log_odds(z, 0)
    assert y[0] == pytest.approx(np.log(p[0, 0] / (1 - p[0, 0])))
    bound = np.log((1 - gs.P_CLIP) / gs.P_CLIP)
    assert y[1] == pytest.approx(bound) and y[2] == pytest.approx(-bound)


def test_grey_and_top_variance_pixels():
    x = np.zeros((10, 3, 4, 4))
    x[:, :, 0, 1] = np.linspace(0, 1, 10)[:, None]  # flat position 1 varies, in every channel
    x[:, 1, 2, 2] = np.linspace(0, 0.5, 10)  # position 10 varies less, in green only
    assert gs.grey(x)[:, 1] == pytest.approx(np.linspace(0, 1, 10))
    assert list(gs.top_variance_pixels(x, 2)) == [1, 10]
    with pytest.raises(ValueError, match="p must be"):
        gs.top_variance_pixels(x, 17)
    with pytest.raises(ValueError, match="images must be"):
        gs.grey(np.zeros((2, 2, 4, 4)))


def test_load_target_names_bad_input():
    with pytest.raises(ValueError, match="target must be one of"):
        gs.load_target("mnist", gs.profile("smoke"), 1)
    with pytest.raises(ValueError, match="class c"):
        gs.load_target("digits", gs.profile("smoke"), 12)


# --------------------------------------------------------------------------- rankings


def test_rankings_have_the_right_length_and_no_duplicates():
    t, sur = tiny_surrogate()
    rk = gs.rankings(sur, 5, k=10, seed=0)
    assert set(rk["order"]) == set(gs.RANKINGS)
    for name, order in rk["order"].items():
        assert len(order) == 5 and len(np.unique(order)) == 5, name
        assert np.all((0 <= order) & (order < 16))
        assert rk["importance"][name].shape == (16,)
    assert gs.overlap(rk["order"])["dmm_men"] == 1.0
    with pytest.raises(ValueError, match="n must be"):
        gs.top_k(np.ones(4), 5)


def test_nnk_importance_finds_the_pixel_that_drives_y():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(400, 6))
    y = 5 * X[:, 2] + 0.01 * rng.normal(size=400)
    imp = gs.nnk_importance(X[:300], y[:300], X[300:], k=20)
    assert imp.argmax() == 2 and np.all(imp >= 0)
    with pytest.raises(ValueError, match="rows"):
        gs.nnk_importance(X, y[:10], X, k=5)


def test_convergence_traces_and_surrogate_fidelity():
    t, sur = tiny_surrogate()
    conv = gs.convergence(sur)
    assert conv["n_iter"] == 40 and conv["n_chains"] == 2 and conv["p"] == 16
    assert conv["rhat_loglik"] > 0 and conv["mixing"] in ("mixed", "not mixed")
    tr = gs.traces(sur, 2)
    assert tr["loglik"].shape == (2, 40) and tr["beta"].shape == (2, 40, 2)
    rk = gs.rankings(sur, 4, k=10)
    fid = gs.surrogate_fidelity(t, sur, rk["model"], k=10)
    assert set(gs.SURROGATES) <= set(fid) and fid["best_r2"] in gs.SURROGATES
    # y is a smooth function of linear logits: least squares is close to exact
    assert fid["linear"]["r2"] > 0.5


def test_fidelity_table_and_detection_on_a_tiny_target():
    t, sur = tiny_surrogate()
    rk = gs.rankings(sur, 4, k=10)
    sets = gf.test_sets(t, 20, seed=0)
    sizes = {"n_boot": 10, "boot_frac": 0.3}
    table, filled = gf.fidelity_table(t, rk["order"], sets, sizes)
    for row in table.values():
        for v in row.values():
            assert v["lo"] <= v["mean"] <= v["hi"]
    clf, knn = gf.databases(t, 10)
    det = gf.vulnerability_detection(t, clf, knn, filled["dmm_men"], sets)
    assert det["n_filling"] == len(sets["targets"]) and set(det["auc"]) == set(det["mean_clean"])
    words = gf.conclusions(table, gs.surrogate_fidelity(t, sur, rk["model"], 10), det)
    assert words["nnk_pixels_vs_dmm"] in ("above", "below")


# --------------------------------------------------------------------------- digits CNN


def test_digits_cnn_trains_once_and_loads(tmp_path):
    d = digits.split(1500, seed=0)
    x, y = d["x_train"], d["y_train"]
    m1, info1 = digits.train_digits_cnn(x, y, tmp_path, seed=0, epochs=2)
    m2, info2 = digits.train_digits_cnn(x, y, tmp_path, seed=0, epochs=2)
    assert not info1["cached"] and info2["cached"]
    xt = torch.as_tensor(d["x_test"][:10])
    with torch.inference_mode():
        assert torch.equal(m1(xt), m2(xt)) and m1.features(xt).shape == (10, 64)
    with pytest.raises(ValueError, match="unknown hyper"):
        digits.train_digits_cnn(x, y, tmp_path, bogus=1)
    with pytest.raises(ValueError, match="n_test"):
        digits.split(0)


# --------------------------------------------------------------------------- figures


def test_figures_draw():
    import matplotlib.pyplot as plt

    t, sur = tiny_surrogate()
    rk = gs.rankings(sur, 4, k=10)
    sets = gf.test_sets(t, 20)
    table, filled = gf.fidelity_table(t, rk["order"], sets, {"n_boot": 10, "boot_frac": 0.3})
    fid = gs.surrogate_fidelity(t, sur, rk["model"], 10)
    det = gf.detection_metrics(
        gf.vulnerability_detection(t, *gf.databases(t, 10), filled["dmm_men"], sets)
    )
    figs = [
        plots.trace_figure({"digits": gs.traces(sur), "cifar": gs.traces(sur)}),
        plots.fidelity_figure({"digits": table, "cifar": table}),
        plots.pixel_maps(gs.mean_class_image(t), rk["order"], t.pixels, "tiny"),
        plots.surrogate_figure({"digits": fid}),
        plots.detection_figure({"digits": det}),
    ]
    assert all(f.axes for f in figs)
    for f in figs:
        plt.close(f)


def test_fit_cached_reads_back_the_same_traces(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPNNK_CACHE", str(tmp_path))
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=(60, 3)), np.ones(60)])
    y = X[:, 0] - 2 * X[:, 1] + 0.1 * rng.normal(size=60)
    first, s1, hit = gs.fit_cached(X, y, n_iter=20, n_chains=2, seed=0)
    assert not hit
    assert len(list((tmp_path / "dmm_men").glob("fit-*.npz"))) == 1
    again, s2, hit = gs.fit_cached(X, y, n_iter=20, n_chains=2, seed=0)
    assert hit and s2 == s1 and again.burn_in == first.burn_in
    for name in ("beta_dominant", "loglik", "beta_mixture", "beta_best", "pi_mean"):
        np.testing.assert_array_equal(getattr(again, name), getattr(first, name))
    np.testing.assert_array_equal(again.predict(X), first.predict(X))
    other, _, hit = gs.fit_cached(X, y, n_iter=20, n_chains=2, seed=1)
    assert not hit  # another seed: a miss
    assert len(list((tmp_path / "dmm_men").glob("fit-*.npz"))) == 2
    assert not np.array_equal(other.loglik, first.loglik)
