"""Tests for deepnnk.studies.invertible: the authors' moons split, seeded training, the exact
closest boundary point, the minimality ratio and NNK in feature space."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepnnk.studies import invertible as study


@pytest.fixture(scope="module")
def split():
    return study.moons_split()


@pytest.fixture(scope="module")
def run(split):
    return study.train_moons(split, epochs=6, seed=0)


def test_profiles():
    for name in ("smoke", "quick", "paper"):
        assert set(study.profile(name)) == {"epochs", "seeds", "k", "n_queries"}
    assert study.profile("quick")["epochs"] == 60
    with pytest.raises(ValueError, match="profile"):
        study.profile("huge")


def test_moons_split_is_the_authors(split):
    assert split.X_train.shape == (600, 2) and split.X_test.shape == (400, 2)
    again = study.moons_split()
    assert np.array_equal(again.X_train, split.X_train)
    assert np.array_equal(again.y_test, split.y_test)


def test_training_is_seeded(split, run):
    again = study.train_moons(split, epochs=6, seed=0)
    other = study.train_moons(split, epochs=6, seed=1)
    for key, v in run["model"].state_dict().items():
        assert torch.equal(v, again["model"].state_dict()[key])
    assert not all(
        torch.equal(v, other["model"].state_dict()[key])
        for key, v in run["model"].state_dict().items()
    )
    assert run["train_acc"] == again["train_acc"]
    assert len(run["history"]["epoch"]) == 6
    assert 50 < run["train_acc"] <= 100


def test_seed_sweep_and_choice(split):
    sweep = study.seed_sweep([0, 1], epochs=2, split=split)
    assert sweep["seed"] == [0, 1] and len(sweep["test_acc"]) == 2
    assert study.closest_to_log(sweep) in (0, 1)


def _boundary_samples(model, bounds, res=300):
    """Boundary points found by bisection between grid neighbours whose labels differ."""
    xs = np.linspace(bounds[0], bounds[1], res)
    ys = np.linspace(bounds[2], bounds[3], res)
    xx, yy = np.meshgrid(xs, ys)
    P = np.column_stack([xx.ravel(), yy.ravel()])

    def gap(Z):
        with torch.no_grad():
            lg = model(torch.as_tensor(Z)).numpy()
        return lg[:, 1] - lg[:, 0]

    g = gap(P).reshape(res, res)
    lo, hi = [], []
    for sl_a, sl_b in (((slice(None), slice(0, -1)), (slice(None), slice(1, None))),
                       ((slice(0, -1), slice(None)), (slice(1, None), slice(None)))):  # fmt: skip
        flip = np.sign(g[sl_a]) != np.sign(g[sl_b])
        pa = P.reshape(res, res, 2)[sl_a][flip]
        pb = P.reshape(res, res, 2)[sl_b][flip]
        lo.append(pa)
        hi.append(pb)
    lo, hi = np.concatenate(lo), np.concatenate(hi)
    s_lo = np.sign(gap(lo))
    for _ in range(60):
        mid = (lo + hi) / 2
        same = np.sign(gap(mid)) == s_lo
        lo = np.where(same[:, None], mid, lo)
        hi = np.where(same[:, None], hi, mid)
    return (lo + hi) / 2


def test_closest_boundary_point_is_on_the_boundary_and_minimal(split, run):
    model = run["model"]
    X = split.X_test[:60]
    out = study.closest_boundary_point(model, X)
    with torch.no_grad():
        lg = model(torch.as_tensor(out["x_star"])).numpy()
    assert np.abs(lg[:, 1] - lg[:, 0]).max() <= 1e-9
    assert np.allclose(np.linalg.norm(X - out["x_star"], axis=1), out["distance"])
    samples = _boundary_samples(model, out["bounds"])
    assert len(samples) > 50
    d = np.linalg.norm(X[:, None] - samples[None], axis=2).min(1)
    assert (d >= out["distance"] - 1e-9).all()


def test_minimality_ratio_at_least_one(split, run):
    mini = study.minimality(run["model"], split.X_test[:80])
    assert mini["ratio"].shape == (80,)
    assert mini["min"] >= 1 - 1e-9
    assert mini["median"] <= mini["p90"] <= mini["max"]
    assert (mini["a"] != mini["b"]).all()


def test_feature_nnk_pulls_back_the_interpolation(split, run):
    model = run["model"]
    out = study.feature_nnk(model, split, split.X_test[:5], k=8)
    assert out["kernel"] == "gaussian"
    assert np.allclose(out["weights"].sum(1), 1.0)
    with torch.no_grad():
        back = model.features(torch.as_tensor(out["x_interp"])).numpy()
    assert np.abs(back - out["z"]).max() <= 1e-10
    assert out["index"].shape == (5, 8)


def test_moons_example(split, run):
    ex = study.moons_example(run["model"], split, k=8)
    assert ex["dist_b"] >= ex["dist_star"] - 1e-9
    assert len(ex["pieces"]) >= 1 and ex["polytope_area"] > 0
    assert ex["hyperplane"].shape == (2, 2) and ex["segments"].ndim == 3
    assert len(ex["neighbours"]) == len(ex["feature_neighbours"]) >= 1


@pytest.mark.parametrize("bad", [np.array([np.nan, 0.0]), np.zeros((3, 3)), np.zeros((0, 2))])
def test_bad_points_raise(run, bad):
    with pytest.raises(ValueError):
        study.closest_boundary_point(run["model"], bad)
    with pytest.raises(ValueError):
        study.minimality(run["model"], bad)


def test_explain_points_and_metrics(split, run):
    model = run["model"]
    ex = study.explain_points(model, split.X_test[:30])
    assert np.abs(ex["gap_at_x_b"]).max() <= 1e-6
    assert (ex["gap"] >= 0).all()  # a is the predicted class
    assert np.allclose(ex["importance"], ex["gradient"] * ex["delta"])
    sweep = {"seed": [0], "train_acc": [run["train_acc"]], "test_acc": [run["test_acc"]],
             "within_2": [False], "seconds": 0.1}  # fmt: skip
    mini = study.minimality(model, split.X_test[:20])
    out = study.moons_metrics(sweep, run, mini, study.moons_example(model, split, k=8))
    assert out["ratio_n"] == 20 and out["kernel"] == "gaussian"
    assert all(isinstance(v, (int, float, str)) for v in out.values())


def test_too_small_box_is_doubled_until_certified(split, run):
    X = split.X_test[:20]
    small = study.closest_boundary_point(run["model"], X, bounds=(-0.1, 0.1, -0.1, 0.1))
    default = study.closest_boundary_point(run["model"], X)
    assert small["bounds"][1] > 0.1
    assert np.allclose(small["distance"], default["distance"], atol=1e-12)
