"""Scores that compare generated, real and adversarial images through NNK; the study's profiles
and summaries, and its figures on synthetic sets."""

from __future__ import annotations

import numpy as np
import pytest

from deepnnk.explain import NeighbourTable
from deepnnk.nets.dcgan import GANConfig
from deepnnk.studies import generative
from deepnnk.studies.generative import ImageSet, compare, label_entropy, nearest_distance, pixels


def test_pixels_agree_across_layouts():
    u8 = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    nchw = u8.transpose(0, 3, 1, 2).astype(np.float32) / 255
    np.testing.assert_allclose(pixels(u8), pixels(nchw), atol=1e-7)
    assert pixels(u8).shape == (3, 3072)


def test_nearest_distance_is_brute_force():
    rng = np.random.default_rng(1)
    X, T = rng.normal(size=(30, 7)), rng.normal(size=(200, 7))
    d, i = nearest_distance(X, T)
    full = np.linalg.norm(X[:, None] - T[None], axis=2)
    np.testing.assert_array_equal(i, full.argmin(1))
    np.testing.assert_allclose(d, full.min(1), rtol=1e-9)


def _table(weights, labels):
    w = np.asarray(weights, float)
    n, m = w.shape
    return NeighbourTable(np.zeros((n, m), int), w, np.asarray(labels), np.zeros(n), np.arange(10))


def test_label_entropy_bounds():
    one_class = _table([[0.5, 0.5, 0.0]], [[3, 3, 4]])
    uniform = _table([np.full(10, 0.1)], [np.arange(10)])
    two = _table([[0.5, 0.5]], [[1, 2]])
    assert label_entropy(one_class)[0] == 0.0
    assert label_entropy(uniform)[0] == pytest.approx(np.log2(10))
    assert label_entropy(two)[0] == pytest.approx(1.0)


def _set(name, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    n = 200
    scores = {
        k: rng.normal(size=n) + shift
        for k in ("n_neighbours", "residual", "entropy", "nn_pixel", "nn_feature")
    }
    t = _table(np.ones((n, 2)) / 2, np.zeros((n, 2), int))
    return ImageSet(name, scores, np.zeros(n, int), np.full(n, 0.9), t, np.zeros(n, int))


def test_compare_auc_and_keys():
    out = compare([_set("real test", 0), _set("same", 1), _set("shifted", 2, shift=3.0)])
    assert "auc_vs_reference" not in out["real test"]
    assert abs(out["same"]["auc_vs_reference"]["residual"] - 0.5) < 0.1
    assert out["shifted"]["auc_vs_reference"]["residual"] > 0.95
    assert out["shifted"]["nnk_agrees_with_network"] == 1.0
    for key in ("mean", "median", "q10", "q90"):
        assert key in out["same"]["entropy"]
    with pytest.raises(ValueError, match="reference set"):
        compare([_set("a", 0)])


def test_profiles_and_config():
    for name in ("smoke", "quick", "paper"):
        sizes = generative.profile(name)
        assert set(sizes) == {
            "gan_width",
            "gan_epochs",
            "gan_n_train",
            "n_train",
            "n_images",
            "n_galleries",
        }
    sizes = generative.profile("smoke")
    sizes["n_images"] = -1  # a copy: the table is untouched
    assert generative.profile("smoke")["n_images"] == 100
    with pytest.raises(ValueError, match="profile"):
        generative.profile("huge")
    config = generative.run_config({"profile": "quick", "k": 50}, generative.profile("quick"))
    assert "n_galleries" not in config
    assert config["eps_255"] == 8 and config["pgd_steps"] == 10 and config["gan_width"] == 32


def test_gan_dir_names_the_configuration(tmp_path):
    path = generative.gan_dir(tmp_path, GANConfig(width=8, n_train=2048, seed=0), 0)
    assert path == tmp_path / "dcgan-w8-n2048-seed0"


def test_summary_ratio_and_report():
    comp = compare([_set("real test", 0), _set("generated", 1), _set("PGD 8/255", 2, shift=3.0)])
    for c in comp.values():
        c["nn_pixel"]["median"] = abs(c["nn_pixel"]["median"]) + 1.0
    ratio = generative.nn_pixel_ratio(comp)
    assert (
        ratio == comp["generated"]["nn_pixel"]["median"] / comp["real test"]["nn_pixel"]["median"]
    )
    s = generative.summary(comp, 12.5, ratio)
    assert s["dcgan_training_seconds"] == 12.5
    assert s["nn_pixel_median_ratio_generated_to_real"] == ratio
    assert s["pgd_auc_vs_real_residual"] == comp["PGD 8/255"]["auc_vs_reference"]["residual"]
    assert s["real_entropy_median"] == comp["real test"]["entropy"]["median"]
    assert "real_auc_vs_real_residual" not in s
    text = generative.format_comparison(comp)
    assert text.count("AUC vs real") == 2 * len(generative.SCORES)


def test_figures_draw_synthetic_sets():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deepnnk.figures import generative as figs

    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    nchw = rng.random((64, 3, 32, 32)).astype(np.float32)
    sets = [_set("real test", 0), _set("generated", 1)]
    for s in sets:
        s.scores["n_neighbours"] = np.round(np.abs(s.scores["n_neighbours"]) * 5)
    near = rng.integers(0, 64, 64)
    dist = rng.random(64)
    table = NeighbourTable(
        np.array([[3, 5]]), np.array([[0.7, 0.3]]), np.array([[1, 2]]), np.zeros(1), np.arange(10)
    )
    names = [f"c{i}" for i in range(10)]
    made = [
        figs.samples_grid(u8, "samples"),
        figs.network_classes({s.name: generative.class_histogram(s.net_pred) for s in sets}, names),
        figs.score_histograms(sets),
        figs.memorisation_pairs(u8, near, u8, dist, title="uint8"),
        figs.memorisation_pairs(nchw, near, u8, dist, n=4),
        figs.generated_gallery(table, 0, u8[0], u8, names, 4),
    ]
    assert len(made[2].axes) == len(generative.SCORES)
    assert len(made[4].axes) == 8
    for fig in made:
        plt.close(fig)
