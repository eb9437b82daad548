"""Scores that compare generated, real and adversarial images through NNK; the Fréchet distance
against closed forms and scipy; the memorisation caveats; the study's profiles and summaries, and
its figures on synthetic sets."""

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


def _set(name, seed, shift=0.0, n=200, d=6):
    rng = np.random.default_rng(seed)
    scores = {k: rng.normal(size=n) + shift for k in generative.SCORES}
    t = _table(np.ones((n, 2)) / 2, np.zeros((n, 2), int))
    feats = rng.normal(size=(n, d)) + shift
    return ImageSet(name, scores, np.zeros(n, int), np.full(n, 0.9), t, np.zeros(n, int), feats)


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
    assert not any(key.startswith("fd_") for key in s)
    quality = {"fd_to_train": {"generated": 9.0, "real test": 3.0, "PGD 8/255": 4.0}}
    s = generative.summary(comp, 12.5, ratio, quality)
    assert (s["fd_generated_to_train"], s["fd_real_to_train"], s["fd_pgd_to_train"]) == (9, 3, 4)
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
    hist = made[2]
    n_keys = len(generative.SCORES)
    assert len(hist.axes) == 3 * -(-n_keys // 3)  # a grid 3 wide, the legend in a spare panel
    assert hist.axes[n_keys].get_legend() is not None
    assert [t.get_text() for t in hist.axes[n_keys].get_legend().get_texts()] == [
        s.name for s in sets
    ]
    assert hist.get_size_inches()[0] <= 7.0 + 1e-9
    assert len(made[4].axes) == 8
    made.append(figs.memorisation_pairs(u8, near, u8, dist, stds=generative.pixel_std(u8)))
    made.append(figs.norm_and_angle(sets))
    for fig in made:
        plt.close(fig)


# --------------------------------------------------------------------------- feature geometry


def test_nearest_cosine_distance_is_brute_force():
    rng = np.random.default_rng(3)
    X, T = rng.normal(size=(20, 5)), rng.normal(size=(150, 5)) * rng.uniform(0.1, 9, (150, 1))
    cos = (X / np.linalg.norm(X, axis=1, keepdims=True)) @ (
        T / np.linalg.norm(T, axis=1, keepdims=True)
    ).T
    got = generative.nearest_cosine_distance(X, T)
    np.testing.assert_allclose(got, 1 - cos.max(1), atol=1e-6)
    # scale-free: scaling queries or training rows changes nothing
    np.testing.assert_allclose(generative.nearest_cosine_distance(7 * X, T / 3), got, atol=1e-6)


# --------------------------------------------------------------------------- Fréchet distance


def test_frechet_diagonal_closed_form():
    rng = np.random.default_rng(4)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    v1, v2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    got = generative.frechet_distance_gaussians(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-10)
    # a point mass against N(0, I_d): the distance is d
    assert generative.frechet_distance_gaussians(
        np.zeros(4), np.zeros((4, 4)), np.zeros(4), np.eye(4)
    ) == pytest.approx(4.0)


def _random_psd(rng, d, rank=None):
    A = rng.normal(size=(d, rank or d))
    return A @ A.T / d


@pytest.mark.parametrize("rank", [None, 3])
def test_frechet_matches_scipy_sqrtm(rank):
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(5)
    d = 8
    C1, C2 = _random_psd(rng, d, rank), _random_psd(rng, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    covmean = linalg.sqrtm(C1 @ C2)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(C1 + C2) - 2 * np.trace(covmean).real
    got = generative.frechet_distance_gaussians(mu1, C1, mu2, C2)
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-8)
    # symmetric in its two arguments
    assert generative.frechet_distance_gaussians(mu2, C2, mu1, C1) == pytest.approx(got, rel=1e-8)


def test_frechet_of_samples():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(40, 10))
    assert generative.frechet_distance(X, X) == pytest.approx(0.0, abs=1e-8)
    assert generative.frechet_distance(X, X + 2.0) == pytest.approx(4.0 * 10, rel=1e-8)
    mu, C = generative.gaussian_moments(X)
    np.testing.assert_allclose(C, np.cov(X, rowvar=False), atol=1e-12)
    np.testing.assert_allclose(mu, X.mean(0))
    # fewer rows than dimensions (rank-deficient covariances): finite and >= 0
    Y = rng.normal(size=(5, 10))
    assert np.isfinite(generative.frechet_distance(Y, X)) and generative.frechet_distance(Y, X) > 0
    with pytest.raises(ValueError, match="two rows"):
        generative.gaussian_moments(X[:1])


def test_sample_quality_keys_and_reference():
    sets = [_set("generated", 1, shift=2.0), _set("real test", 0), _set("PGD 8/255", 2)]
    train = np.random.default_rng(9).normal(size=(500, 6))
    q = generative.sample_quality(sets, train)
    assert set(q["fd_to_train"]) == {"generated", "real test", "PGD 8/255"}
    assert set(q["fd_to_reference"]) == {"generated", "PGD 8/255"}
    assert q["fd_to_train"]["generated"] > q["fd_to_train"]["real test"]
    assert q["fd_ratio_to_reference"]["real test"] == 1.0
    assert q["n_per_set"] == 200 and q["n_train"] == 500 and q["dimension"] == 6
    expected = generative.frechet_distance(sets[0].features, train)
    assert q["fd_to_train"]["generated"] == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="unequal"):
        generative.sample_quality([_set("real test", 0), _set("generated", 1, n=50)], train)


# --------------------------------------------------------------------------- memorisation


def test_spearman_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(7)
    a = rng.integers(0, 5, 60).astype(float)  # ties
    b = a + rng.normal(size=60)
    assert generative.spearman(a, b) == pytest.approx(stats.spearmanr(a, b)[0], rel=1e-12)
    assert np.isnan(generative.spearman(np.ones(5), np.arange(5)))


def test_memorisation_report_flags_flat_images():
    rng = np.random.default_rng(8)
    busy = rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)
    flat = np.full((10, 32, 32, 3), 128, np.uint8)
    images = np.concatenate([busy, flat])
    train = np.concatenate([rng.integers(0, 256, (50, 32, 32, 3), dtype=np.uint8), flat[:1] + 3])
    d, near = nearest_distance(pixels(images), pixels(train))
    s = ImageSet("generated", {"nn_pixel": d}, None, None, None, near)
    rep = generative.memorisation_report([s], {"generated": images}, n_closest=8)
    r = rep["generated"]
    assert rep["n_closest"] == 8
    assert r["closest_pixel_std_median"] == 0.0 < r["pixel_std_median"]
    assert r["closest_std_ratio"] == 0.0
    assert r["nn_pixel_min"] == pytest.approx(np.sqrt(3072) * 3 / 255)
    assert r["spearman_std_nn_pixel"] > 0.5
    np.testing.assert_allclose(generative.pixel_std(flat), 0.0)


# --------------------------------------------------------------------------- words


def test_phrases_follow_the_auc():
    assert generative.phrase(0.8) == "higher than"
    assert generative.phrase(0.2) == "lower than"
    assert generative.phrase(0.52) == "about the same as"
    assert generative.phrase(0.3, "nn_pixel") == "closer to the training images than"
    assert generative.phrase(0.7, "nn_feature") == "farther from the training features than"
    comp = compare([_set("real test", 0), _set("generated", 1), _set("PGD 8/255", 2, shift=3.0)])
    words = generative.reading(comp)
    assert set(words) == {"generated", "pgd"}
    assert words["pgd"]["residual"] == "higher than"
    assert set(words["generated"]) == set(generative.SCORES)
