"""Scores that compare generated, real and adversarial images through NNK."""

from __future__ import annotations

import numpy as np
import pytest

from deepnnk.explain import NeighbourTable
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
