"""deepnnk.studies.loo on small synthetic features: prefix reuse, caching, the SVM, rankings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepnnk import NNKClassifier
from deepnnk import solver as solver_module
from deepnnk.kernels import kernel_rounding
from deepnnk.studies import loo as ex


def _features(n, d=24, seed=0, noise=1.4):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(5, d))
    y = rng.integers(0, 5, n)
    X = np.maximum(centres[y] + noise * rng.normal(size=(n, d)), 0) + 0.01
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def data():
    X, y = _features(600)
    Xt, yt = _features(200, seed=1)
    return X, y, Xt, yt


@pytest.fixture(scope="module")
def result(data):
    X, y, Xt, yt = data
    return ex.evaluate_features(X, y, Xt, yt, ks=(5, 12, 20), solvers=("exact", "prune"))


@pytest.mark.parametrize("k", [5, 12, 20])
def test_prefix_reuse_matches_separate_classifiers(data, result, k):
    X, y, Xt, yt = data
    loo, tst = result["loo"][str(k)], result["test"][str(k)]
    assert 0.05 < loo["exact"]["error"] < 0.9  # a non-trivial problem
    for solver in ("exact", "prune"):
        clf = NNKClassifier(k, solver=solver).fit(X, y)
        P = clf.loo_predict_proba()
        assert loo[solver]["error"] == pytest.approx(np.mean(P.argmax(1) != y), abs=1e-12)
        assert loo[solver]["soft_error"] == pytest.approx(1 - P[np.arange(len(y)), y].mean())
        assert tst[solver]["error"] == pytest.approx(np.mean(clf.predict(Xt) != yt), abs=1e-12)
        assert 1 <= loo[solver]["n_neighbors_mean"] <= k
    knn = NNKClassifier(k, weighting="knn").fit(X, y)
    assert loo["knn_error"] == pytest.approx(knn.loo_error(), abs=1e-12)
    assert tst["knn_error"] == pytest.approx(np.mean(knn.predict(Xt) != yt), abs=1e-12)
    exact = NNKClassifier(k, solver="exact").fit(X, y).loo_predict()
    prune = NNKClassifier(k, solver="prune").fit(X, y).loo_predict()
    assert loo["changed"] == int(np.sum(exact != prune))
    assert loo["exact"]["kkt_violation_fraction"] == 0.0


def test_one_precision_rule_per_k(data, result):
    """evaluate_features gives every k the Gram precision NNKClassifier uses at that k."""
    X = data[0]
    for k in (5, 12, 20):
        want = NNKClassifier(k).fit(X, data[1]).gram_dtype_
        assert result["gram_dtype"][str(k)] == want
    assert result["gram_dtype"] == {"5": "float32", "12": "float32", "20": "float64"}


@pytest.mark.parametrize("k", [5, 12, 20])
def test_residual_matches_explain(data, result, k):
    """The same residual as the classifier's explain, to the rounding of the precision used: the
    evaluation slices K from a larger k, so float32 entries may differ by BLAS blocking."""
    X, y, Xt, yt = data
    clf = NNKClassifier(k, solver="exact").fit(X, y)
    _, _, res = clf.explain(Xt)
    tol = 100 * kernel_rounding(clf.gram_dtype_, X.shape[1])
    assert result["test"][str(k)]["exact"]["residual_mean"] == pytest.approx(res.mean(), abs=tol)


def test_exact_prefix_order_sorts_near_ties():
    # Duplicated database rows are exact ties: the prefix must keep them in index order.
    rng = np.random.default_rng(3)
    base = rng.normal(size=(40, 8)).astype(np.float32)
    X = np.concatenate([base, base])
    sq, idx = ex.knn(X[:5], X, 10)
    sq2, idx2 = ex._exact_prefix_order(X[:5], X, sq, idx, (3, 10))
    for row_d, row_i in zip(sq2, idx2, strict=True):
        order = np.lexsort((row_i, row_d))
        assert (order == np.arange(10)).all()


def test_subset_indices():
    a = ex.subset_indices(100, 10, seed=0)
    assert len(a) == 10 and (np.diff(a) > 0).all()
    assert (a == ex.subset_indices(100, 10, seed=0)).all()
    assert (ex.subset_indices(100, None) == np.arange(100)).all()
    assert (ex.subset_indices(100, 500) == np.arange(100)).all()


@pytest.fixture
def fake_checkpoints(monkeypatch, data):
    """evaluate_checkpoint / checkpoint_svm on synthetic features: no network, no CIFAR."""
    X, y, Xt, yt = data
    calls = []

    def fake_features(
        weights, model, epoch, data_root=None, *, n_train=None, n_test=None, subset_seed=0, **_
    ):
        calls.append((model, epoch, n_train, n_test))
        itr = ex.subset_indices(len(X), n_train, subset_seed)
        ite = ex.subset_indices(len(Xt), n_test, subset_seed + 1)
        return ex.CheckpointFeatures(
            weights,
            model,
            epoch,
            X[itr] * (1 + 0.01 * epoch),
            Xt[ite] * (1 + 0.01 * epoch),
            y[itr],
            yt[ite],
            itr,
            ite,
            0.1 + 0.01 * epoch,
            0.3 - 0.005 * epoch,
            0.0,
        )

    monkeypatch.setattr(ex, "checkpoint_features", fake_features)
    monkeypatch.setattr(ex, "source_digest", lambda *a, **k: "fake")
    return calls


def test_checkpoint_cache_hit_and_keys(tmp_path, fake_checkpoints):
    calls = fake_checkpoints
    kw = dict(ks=(5, 10), n_train=300, n_test=100, cache_dir=tmp_path)
    first = ex.evaluate_checkpoint("paper", "regularised", 20, **kw)
    assert not first["cached"] and len(calls) == 1
    files = list(tmp_path.glob("loo-*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["spec"]["ks"] == [5, 10]
    second = ex.evaluate_checkpoint("paper", "regularised", 20, **kw)
    assert second["cached"] and len(calls) == 1
    assert second["loo"] == json.loads(json.dumps(first["loo"]))
    # Any change to what produced the result misses the cache.
    ex.evaluate_checkpoint("paper", "regularised", 20, **{**kw, "ks": (5, 12)})
    ex.evaluate_checkpoint("paper", "regularised", 20, **{**kw, "n_train": 250})
    ex.evaluate_checkpoint("paper", "regularised", 20, **{**kw, "n_test": 120})
    ex.evaluate_checkpoint("paper", "regularised", 19, **kw)
    ex.evaluate_checkpoint("paper", "overfit", 20, **kw)
    ex.evaluate_checkpoint("paper", "regularised", 20, **{**kw, "solvers": ("prune",)})
    assert len(calls) == 7
    assert ex.evaluate_checkpoint("paper", "regularised", 18, cache_only=True, **kw) is None
    assert len(calls) == 7
    assert len(list(tmp_path.glob("loo-*.json"))) == 7
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files


def test_changing_the_solver_source_misses_the_loo_cache(tmp_path, fake_checkpoints, monkeypatch):
    """The key holds a digest of the source of every module that computes the result: an edited
    solver (here: a copy of its file with one more line) recomputes instead of reading."""
    calls = fake_checkpoints
    kw = dict(ks=(5,), n_train=200, n_test=50, cache_dir=tmp_path / "loo")
    ex.evaluate_checkpoint("paper", "regularised", 20, **kw)
    assert ex.evaluate_checkpoint("paper", "regularised", 20, **kw)["cached"]
    edited = tmp_path / "solver.py"
    edited.write_text(open(solver_module.__file__).read() + "\n# a change\n")
    monkeypatch.setattr(solver_module, "__file__", str(edited))
    assert ex.evaluate_checkpoint("paper", "regularised", 20, cache_only=True, **kw) is None
    again = ex.evaluate_checkpoint("paper", "regularised", 20, **kw)
    assert not again["cached"] and len(calls) == 2
    assert len(list((tmp_path / "loo").glob("loo-*.json"))) == 2


def test_cache_kinds_share_one_root(tmp_path, fake_checkpoints, monkeypatch):
    monkeypatch.setenv("DEEPNNK_CACHE", str(tmp_path))
    kw = dict(n_train=200, n_test=50)
    ex.evaluate_checkpoint("paper", "regularised", 20, ks=(5,), **kw)
    ex.checkpoint_svm("paper", "regularised", 20, n_splits=2, max_iter=50, **kw)
    assert len(list((tmp_path / "loo").glob("loo-*.json"))) == 1
    assert len(list((tmp_path / "svm").glob("svm-*.json"))) == 1


def test_cache_disabled(tmp_path, fake_checkpoints):
    kw = dict(ks=(5,), n_train=200, n_test=50, cache_dir=False)
    ex.evaluate_checkpoint("paper", "regularised", 20, **kw)
    ex.evaluate_checkpoint("paper", "regularised", 20, **kw)
    assert len(fake_checkpoints) == 2


def test_sweep_rows_and_ranking(tmp_path, fake_checkpoints):
    rows = ex.sweep(
        "paper",
        ["regularised", "overfit"],
        [1, 20],
        ks=(5, 10),
        solver="prune",
        n_train=300,
        n_test=100,
        svm_epochs=[20],
        svm_n_train=200,
        svm_n_test=100,
        cache_dir=tmp_path,
        progress=False,
    )
    assert len(rows) == 2 * 2 * 2
    r = ex.select(rows, model="overfit", epoch=20, k=10)[0]
    assert r["loo_nnk"] == r["loo_nnk_prune"] and r["svm_train"] is not None
    assert ex.select(rows, model="overfit", epoch=1, k=10)[0]["svm_train"] is None
    assert 0 <= r["svm_train"] <= 1 and r["svm_convergence_warnings"] >= 0
    ranking = ex.model_ranking(rows, 20, 10, truth={"regularised": 0.2, "overfit": 0.3})
    assert ranking["truth"]["ranking"] == ["regularised", "overfit"]
    assert set(ranking["loo_nnk"]["ranking"]) == {"regularised", "overfit"}
    assert np.isfinite(ex.pearson(rows, "loo_nnk")) or len(rows) < 3


def test_sweep_compares_solvers_only_where_asked(tmp_path, fake_checkpoints):
    rows = ex.sweep(
        "paper",
        ["overfit"],
        [1, 20],
        ks=(5,),
        solver="exact",
        n_train=300,
        n_test=100,
        solvers_epochs=[20],
        cache_dir=tmp_path,
        progress=False,
    )
    first, last = (ex.select(rows, epoch=e)[0] for e in (1, 20))
    assert "loo_nnk_prune" not in first and first["loo_nnk"] == first["loo_nnk_exact"]
    assert "loo_nnk_prune" in last and "loo_changed" in last
    # the epoch-20 entry is the one paper_check reads: both solvers, from the cache
    hit = ex.evaluate_checkpoint(
        "paper", "overfit", 20, ks=(5,), n_train=300, n_test=100, cache_dir=tmp_path,
        cache_only=True,
    )  # fmt: skip
    assert hit is not None and hit["spec"]["solvers"] == ["exact", "prune"]


def test_svm_cv_error_counts_folds_and_warnings():
    X, y = _features(300, seed=4)
    Xt, yt = _features(100, seed=5)
    res = ex.svm_cv_error(X, y, Xt, yt, n_splits=3, max_iter=5)
    assert res["n_fits"] == 3 and len(res["fold_val_accuracy"]) == 3
    assert res["convergence_warnings"] >= 1  # 5 iterations cannot converge at C=1000
    assert res["train_error"] == pytest.approx(1 - np.mean(res["fold_val_accuracy"]))
    assert 0 <= res["test_error"] <= 1


def test_retrained_missing_checkpoint_says_how_to_train(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m deepnnk train --model overfit"):
        ex.load_network("retrained", "overfit", 3, checkpoints_root=tmp_path)
    with pytest.raises(ValueError, match="weights"):
        ex.load_network("mine", "overfit", 3)


def test_make_plan_profiles():
    for profile in ("smoke", "quick", "paper"):
        plan = ex.make_plan(profile)
        assert plan["k_main"] in plan["ks"] and plan["epoch_last"] == max(plan["epochs"])
        assert set(plan["svm_epochs"]) <= set(plan["epochs"])
        assert set(plan.get("solvers_epochs") or plan["epochs"]) <= set(plan["epochs"])
    with pytest.raises(ValueError):
        ex.make_plan("huge")


def test_gaussian_kernel_recomputed_per_k(data):
    # The Gaussian's default σ depends on the k-th distance, so its kernels are not sliced.
    X, y, Xt, yt = data
    res = ex.evaluate_features(X, y, Xt, yt, ks=(6, 15), solvers=("exact",), kernel="gaussian")
    for k in (6, 15):
        clf = NNKClassifier(k, kernel="gaussian").fit(X, y)
        assert res["loo"][str(k)]["exact"]["error"] == pytest.approx(clf.loo_error(), abs=1e-12)
        assert "changed" not in res["loo"][str(k)]
