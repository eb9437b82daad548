"""deepnnk.studies.loo (and its report and SVM modules) on small synthetic features: caching and
its keys, the sweep, the SVM, rankings, profiles. The engine itself: tests/test_evaluation.py."""

from __future__ import annotations

import json
import sys
import threading

import numpy as np
import pytest
from synthetic import loo_data, relu_features

from deepnnk import solver as solver_module
from deepnnk.studies import cifar_features, svm
from deepnnk.studies import loo as ex
from deepnnk.studies import loo_report as report


@pytest.fixture(scope="module")
def data():
    return loo_data()


def test_subset_indices():
    a = cifar_features.subset_indices(100, 10, seed=0)
    assert len(a) == 10 and (np.diff(a) > 0).all()
    assert (a == cifar_features.subset_indices(100, 10, seed=0)).all()
    assert (cifar_features.subset_indices(100, None) == np.arange(100)).all()
    assert (cifar_features.subset_indices(100, 500) == np.arange(100)).all()


@pytest.fixture
def fake_checkpoints(monkeypatch, data):
    """evaluate_checkpoint / checkpoint_svm on synthetic features: no network, no CIFAR."""
    X, y, Xt, yt = data
    calls = []

    def fake_features(
        weights, model, epoch, data_root=None, *, n_train=None, n_test=None, subset_seed=0, **_
    ):
        calls.append((model, epoch, n_train, n_test))
        itr = cifar_features.subset_indices(len(X), n_train, subset_seed)
        ite = cifar_features.subset_indices(len(Xt), n_test, subset_seed + 1)
        return cifar_features.CheckpointFeatures(
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
    r = report.select(rows, model="overfit", epoch=20, k=10)[0]
    assert r["loo_nnk"] == r["loo_nnk_prune"] and r["svm_train"] is not None
    assert report.select(rows, model="overfit", epoch=1, k=10)[0]["svm_train"] is None
    assert 0 <= r["svm_train"] <= 1 and r["svm_convergence_warnings"] >= 0
    ranking = report.model_ranking(rows, 20, 10, truth={"regularised": 0.2, "overfit": 0.3})
    assert ranking["truth"]["ranking"] == ["regularised", "overfit"]
    assert set(ranking["loo_nnk"]["ranking"]) == {"regularised", "overfit"}
    assert np.isfinite(report.pearson(rows, "loo_nnk")) or len(rows) < 3


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
    first, last = (report.select(rows, epoch=e)[0] for e in (1, 20))
    assert "loo_nnk_prune" not in first and first["loo_nnk"] == first["loo_nnk_exact"]
    assert "loo_nnk_prune" in last and "loo_changed" in last
    # the epoch-20 entry is the one paper_check reads: both solvers, from the cache
    hit = ex.evaluate_checkpoint(
        "paper", "overfit", 20, ks=(5,), n_train=300, n_test=100, cache_dir=tmp_path,
        cache_only=True,
    )  # fmt: skip
    assert hit is not None and hit["spec"]["solvers"] == ["exact", "prune"]


def test_svm_cv_error_counts_folds_and_warnings():
    X, y = relu_features(300, seed=4)
    Xt, yt = relu_features(100, seed=5)
    res = svm.svm_cv_error(X, y, Xt, yt, n_splits=3, max_iter=5)
    assert res["n_fits"] == 3 and len(res["fold_val_accuracy"]) == 3
    assert res["convergence_warnings"] >= 1  # 5 iterations cannot converge at C=1000
    assert res["train_error"] == pytest.approx(1 - np.mean(res["fold_val_accuracy"]))
    assert 0 <= res["test_error"] <= 1


def test_make_plan_profiles():
    for profile in ("smoke", "quick", "paper"):
        plan = ex.make_plan(profile)
        assert plan["k_main"] in plan["ks"] and plan["epoch_last"] == max(plan["epochs"])
        assert set(plan["svm_epochs"]) <= set(plan["epochs"])
        assert set(plan.get("solvers_epochs") or plan["epochs"]) <= set(plan["epochs"])
    with pytest.raises(ValueError):
        ex.make_plan("huge")


def test_profiles_are_the_plans_sizes():
    for profile in ("smoke", "quick", "paper"):
        sizes = ex.profile(profile)
        assert sizes == ex.PROFILES[profile] and sizes is not ex.PROFILES[profile]
        plan = ex.make_plan(profile, "retrained", "prune")
        assert {k: plan[k] for k in sizes} == sizes
        assert (plan["profile"], plan["weights"], plan["solver"]) == (profile, "retrained", "prune")
    with pytest.raises(ValueError, match="profile"):
        ex.profile("huge")
    with pytest.raises(ValueError, match="weights"):
        ex.make_plan("smoke", "mine")


# --------------------------------------------------------------------------- cache-key code lists


def _modules_run(fn) -> set[str]:
    """The deepnnk modules (names relative to ``deepnnk.``, as in the code lists) whose Python
    functions are called while ``fn()`` runs, in this thread or threads it starts."""
    seen = set()

    def hook(frame, event, arg):
        if event == "call":
            name = frame.f_globals.get("__name__") or ""
            if name == "deepnnk" or name.startswith("deepnnk."):
                seen.add(name.removeprefix("deepnnk").removeprefix("."))

    threading.setprofile(hook)
    sys.setprofile(hook)
    try:
        fn()
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    return seen


def test_loo_cache_key_lists_every_module_that_runs(tmp_path, fake_checkpoints):
    """Every deepnnk module whose code runs for a LOO result (evaluation, search, kernels, solver,
    cache, the study itself) is in LOO_CODE, so an edit to any of them misses the cache. The
    network part (features from a checkpoint) is faked here: see the comment at NETWORK_CODE and
    test_network_cache_key_lists_every_module_that_runs."""
    kw = dict(ks=(5, 8), n_train=200, n_test=60, cache_dir=tmp_path)
    run = _modules_run(lambda: ex.evaluate_checkpoint("paper", "regularised", 20, **kw))
    assert {"studies.loo", "evaluation", "neighbors", "kernels", "solver", "cache"} <= run
    assert run <= set(ex.LOO_CODE), run - set(ex.LOO_CODE)
    assert len(fake_checkpoints) == 1  # computed, not read from the cache


def test_svm_cache_key_lists_every_module_that_runs(tmp_path, fake_checkpoints):
    kw = dict(n_train=100, n_test=40, n_splits=2, max_iter=20, cache_dir=tmp_path)
    run = _modules_run(lambda: ex.checkpoint_svm("paper", "regularised", 20, **kw))
    assert {"studies.loo", "studies.svm", "cache"} <= run
    assert run <= set(ex.SVM_CODE), run - set(ex.SVM_CODE)
    assert len(fake_checkpoints) == 1


@pytest.mark.data
def test_network_cache_key_lists_every_module_that_runs(real_data_root):
    """The network part on the real data (the authors' weights, a few images, no feature cache):
    loading, the checkpoint digest, features and logits run only modules of NETWORK_CODE. (The
    retrained weights' path, nets.train.load_checkpoint, is listed from its imports.)"""
    cifar_features._cifar.cache_clear()  # so that reading CIFAR-10 runs here

    def network_part():
        ex.source_digest("paper", "regularised", 20, real_data_root)
        ex.checkpoint_features(
            "paper", "regularised", 20, real_data_root, n_train=20, n_test=10, cache_dir=False
        )

    run = _modules_run(network_part)
    assert {"studies.cifar_features", "nets.loading", "nets.paper", "nets.data"} <= run
    assert run <= set(ex.NETWORK_CODE), run - set(ex.NETWORK_CODE)
    cifar_features._cifar.cache_clear()
