"""deepnnk.evaluation on small synthetic features: one search and one kernel computation per side
serve every k, and give the same numbers as NNKClassifier at each k."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import loo_data

from deepnnk import NNKClassifier
from deepnnk.evaluation import _exact_prefix_order, evaluate_features
from deepnnk.kernels import kernel_rounding
from deepnnk.neighbors import knn


@pytest.fixture(scope="module")
def data():
    return loo_data()


@pytest.fixture(scope="module")
def result(data):
    X, y, Xt, yt = data
    return evaluate_features(X, y, Xt, yt, ks=(5, 12, 20), solvers=("exact", "prune"))


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
    sq, idx = knn(X[:5], X, 10)
    sq2, idx2 = _exact_prefix_order(X[:5], X, sq, idx, (3, 10))
    for row_d, row_i in zip(sq2, idx2, strict=True):
        order = np.lexsort((row_i, row_d))
        assert (order == np.arange(10)).all()


def test_gaussian_kernel_recomputed_per_k(data):
    # The Gaussian's default σ depends on the k-th distance, so its kernels are not sliced.
    X, y, Xt, yt = data
    res = evaluate_features(X, y, Xt, yt, ks=(6, 15), solvers=("exact",), kernel="gaussian")
    for k in (6, 15):
        clf = NNKClassifier(k, kernel="gaussian").fit(X, y)
        assert res["loo"][str(k)]["exact"]["error"] == pytest.approx(clf.loo_error(), abs=1e-12)
        assert "changed" not in res["loo"][str(k)]
