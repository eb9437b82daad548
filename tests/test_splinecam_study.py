"""The statistics and the cached window walks of notebook 08 (deepnnk.studies.splinecam)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepnnk.nets.models import PaperCNN
from deepnnk.nets.splinecam import segment_partitions
from deepnnk.studies import splinecam as study
from deepnnk.studies.region_walks import walk_windows, window_ends


def test_compare_groups_effect_size_and_direction():
    rng = np.random.default_rng(0)
    sel = rng.random((40, 10)) < 0.4
    v = rng.normal(size=sel.shape) + 1.0 * sel  # selected are higher by one sd
    r = study.compare_groups(v, sel)
    assert r["n_selected"] == sel.sum() and r["n_pruned"] == (~sel).sum()
    # AUC = P(selected > pruned), computed directly over all pairs.
    a, b = v[sel], v[~sel]
    assert r["auc"] == pytest.approx((a[:, None] > b[None, :]).mean(), abs=1e-12)
    assert r["rank_biserial"] == pytest.approx(2 * r["auc"] - 1)
    assert r["p"] < 1e-6 and r["paired_share_positive"] > 0.7
    assert study.verdict(r, "higher", "lower") == "higher"
    assert study.verdict(study.compare_groups(-v, sel), "higher", "lower") == "lower"


def test_compare_groups_no_difference_and_undefined():
    rng = np.random.default_rng(1)
    sel = rng.random((30, 8)) < 0.5
    r = study.compare_groups(rng.normal(size=sel.shape), sel)
    assert 0.3 < r["auc"] < 0.7
    const = study.compare_groups(np.ones(sel.shape), sel)
    assert np.isnan(const["p"]) and const["text"]["p"] == "n/a"
    assert study.verdict(const, "higher", "lower").startswith("no significant difference")
    with pytest.raises(ValueError, match="same shape"):
        study.compare_groups(np.ones((3, 4)), np.ones((3, 5), bool))


def test_paired_difference_matches_a_loop():
    rng = np.random.default_rng(2)
    sel = rng.random((12, 6)) < 0.5
    v = rng.normal(size=sel.shape)
    r = study.compare_groups(v, sel)
    rows = [i for i in range(12) if sel[i].any() and (~sel[i]).any()]
    diff = [v[i][sel[i]].mean() - v[i][~sel[i]].mean() for i in rows]
    assert r["paired_n"] == len(rows)
    assert r["paired_mean_diff"] == pytest.approx(np.mean(diff))


def _images(rng, n):
    return rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


def test_walk_windows_equals_the_walk_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPNNK_CACHE", str(tmp_path))
    torch.manual_seed(0)
    model = PaperCNN(width=2).eval()
    rng = np.random.default_rng(0)
    q, c = _images(rng, 2), _images(rng, 6).reshape(2, 3, 32, 32, 3)
    w = walk_windows(model, q, c, 0.5, show_progress=False)
    assert w["n_pieces"].shape == (2, 3) and w["pieces"] == w["n_pieces"].sum()
    np.testing.assert_allclose(w["density"], w["n_pieces"] / 0.5)
    # The same pieces as walking the windows directly.
    x_q = torch.from_numpy(q[1]).permute(2, 0, 1).double() / 255
    x_c = torch.from_numpy(c[1]).permute(0, 3, 1, 2).double() / 255
    ends = window_ends(x_q, x_c, 0.5)
    assert np.allclose((ends - x_q).flatten(1).norm(dim=1).numpy(), 0.5)
    direct = [p.n_pieces for p in segment_partitions(model, x_q, ends)]
    assert w["n_pieces"][1].tolist() == direct
    assert len(list((tmp_path / "splinecam").glob("walk-*.json"))) == 2
    again = walk_windows(model, q, c, 0.5, show_progress=False)  # read back from the cache
    assert (again["n_pieces"] == w["n_pieces"]).all() and again["seconds"] == w["seconds"]
    # Another model misses the cache.
    torch.manual_seed(1)
    other = walk_windows(PaperCNN(width=2).eval(), q, c, 0.5, show_progress=False)
    assert len(list((tmp_path / "splinecam").glob("walk-*.json"))) == 4
    assert other["n_pieces"].shape == (2, 3)


def test_walk_windows_bad_input():
    model = PaperCNN(width=2).eval()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="candidates must be"):
        walk_windows(model, _images(rng, 2), _images(rng, 3), 0.1)
    with pytest.raises(ValueError, match="window must be"):
        walk_windows(model, _images(rng, 1), _images(rng, 2)[None], 0.0)


def test_training_metrics_lists_and_spearman():
    training = {
        m: {e: {"mean_density": d * e} for e in (1, 5, 20)}
        for m, d in (("regularised", 1.0), ("overfit", 2.0))
    }
    loo = {
        m: {e: {"loo_error": x * e, "net_test_error": 0.1} for e in (1, 5, 20)}
        for m, x in (("regularised", 0.01), ("overfit", 0.02))
    }
    out = study.training_metrics(training, loo)
    assert out["regularised"]["epochs"] == [1, 5, 20]
    assert out["overfit"]["density_ratio"] == pytest.approx(20.0)
    assert out["spearman_density_loo"] == pytest.approx(1.0) and out["n_checkpoints"] == 6


def test_profiles_are_complete():
    for name in ("smoke", "quick", "paper"):
        p = study.profile(name)
        assert p["window"] > 0 and p["k"] >= 2 and p["n_samples"] >= 2
        assert p["epochs"][-1] == study.EPOCH
