"""Unit tests for deepnnk.studies.adversarial_report on synthetic features (no data, no
network): support overlap, feature geometry, both detection reference sets, the transfer
comparison and the report's fixed keys."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepnnk import NNKClassifier, explain
from deepnnk.cache import plain
from deepnnk.studies import adversarial
from deepnnk.studies import adversarial_report as report
from deepnnk.studies.adversarial import SCORES, Run
from deepnnk.studies.generative import nearest_distance


def _run(clf, knn, F, net_pred, name="x"):
    tables = (explain.neighbourhood_table(clf, F), explain.neighbourhood_table(knn, F))
    return Run(name, np.asarray(net_pred), *tables)


@pytest.fixture(scope="module")
def blobs():
    """Three well separated Gaussian classes (positive offset, like ReLU features); clean queries
    near their class centre, "adversarial" ones near the next class's centre and scaled by 1.5,
    which the network follows. Query 0's clean twin is misclassified by the network."""
    rng = np.random.default_rng(0)
    d = 40
    centres = 12.0 * np.eye(3, d) + 3.0
    X = np.concatenate([c + rng.normal(size=(60, d)) for c in centres])
    y = np.repeat(np.arange(3), 60)
    clf = NNKClassifier(10).fit(X, y)
    knn = NNKClassifier(10, weighting="knn").fit(X, y)
    yq = np.repeat(np.arange(3), 10)
    Fc = centres[yq] + rng.normal(size=(30, d))
    y_adv = (yq + 1) % 3
    Fa = 1.5 * (centres[y_adv] + rng.normal(size=(30, d)))
    net_clean = yq.copy()
    net_clean[0] = 2  # one clean query the network gets wrong
    clean = _run(clf, knn, Fc, net_clean, "clean")
    adv = _run(clf, knn, Fa, y_adv, "adv")
    return X, clf, yq, Fc, Fa, clean, adv


def test_support_overlap_by_hand():
    # query 0: supports {1, 2} and {2, 3}; query 1: identical; query 2: disjoint
    idx_c = np.array([[1, 2, 9], [4, 5, 6], [7, 8, 0]])
    w_c = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    idx_a = np.array([[2, 3, 1], [6, 5, 4], [8, 0, 7]])
    w_a = np.array([[0.25, 0.75, 0.0], [0.5, 0.3, 0.2], [0.0, 2.0, 0.0]])  # not normalised
    jac, wov = report.support_overlap(w_c, idx_c, w_a, idx_a)
    np.testing.assert_allclose(jac, [1 / 3, 1.0, 0.0])
    np.testing.assert_allclose(wov, [0.25, 1.0, 0.0])


def test_nearest_by_cosine_and_by_distance(blobs):
    X, clf, _, Fc, Fa, clean, adv = blobs
    for F, run in ((Fc, clean), (Fa, adv)):
        U = F / np.linalg.norm(F, axis=1, keepdims=True)
        V = X / np.linalg.norm(X, axis=1, keepdims=True)
        np.testing.assert_allclose(report.cosine_nn(F, X), (U @ V.T).max(1), rtol=1e-9)
        # NNK's first candidate is the L2-nearest training feature: notebook 04's distance
        dist, _ = nearest_distance(F, X)
        np.testing.assert_allclose(report.nn_distance(F, X, run.nnk.index), dist, rtol=1e-9)


def test_cosine_kernel_is_blind_to_scale(blobs):
    """The reconciliation with notebook 04: on the same candidates, scaling a feature leaves its
    NNK weights, its residual and its cosine to the nearest training feature unchanged, while its
    Euclidean distance to the training set grows."""
    X, clf, _, Fc, _, clean, _ = blobs
    index = clean.nnk.index
    w1, r1 = explain.nnk_on_candidates(clf, Fc, index)
    w3, r3 = explain.nnk_on_candidates(clf, 3.0 * Fc, index)
    np.testing.assert_allclose(r3, r1, atol=1e-6)
    np.testing.assert_allclose(w3, w1, atol=1e-6)
    np.testing.assert_allclose(report.cosine_nn(3.0 * Fc, X), report.cosine_nn(Fc, X))
    assert (nearest_distance(3.0 * Fc, X)[0] > 2 * nearest_distance(Fc, X)[0]).all()


def test_attack_report(blobs):
    X, _, yq, Fc, Fa, clean, adv = blobs
    m = report.attack_report(
        yq, clean, adv, report.geometry(Fc, X, clean), report.geometry(Fa, X, adv)
    )
    assert m["n_successful"] == 29 and m["n_clean"] == 30
    assert m["n_clean_misclassified"] == 1 and m["n_clean_right"] == 29
    # the twin AUCs are those of attack_metrics; the all-clean ones add the misclassified query
    base = adversarial.attack_metrics(yq, clean, adv)["auc"]
    for s in SCORES:
        assert m["auc_twin"][s] == pytest.approx(base[s])
        assert m["auc_drop"][s] == pytest.approx(m["auc_twin"][s] - m["auc_all_clean"][s])
    # features moved to another class: no shared neighbour, norm × 1.5
    assert m["support_jaccard"] == 0.0 and m["weighted_overlap"] == 0.0
    assert m["no_shared_neighbour"] == 1.0
    assert m["norm_ratio"] == pytest.approx(1.5, rel=0.05)
    assert m["auc_geometry"]["feature_norm"] == 1.0 and m["auc_geometry"]["nn_distance"] == 1.0
    for key in ("cos_nn_clean", "cos_nn_adv", "support_jaccard", "weighted_overlap"):
        assert 0.0 <= m[key] <= 1.0


def test_all_clean_equals_twin_when_the_network_is_always_right(blobs):
    X, _, yq, Fc, Fa, clean, adv = blobs
    right = Run("clean", yq, clean.nnk, clean.knn)
    g = report.geometry(Fc, X, right), report.geometry(Fa, X, adv)
    m = report.attack_report(yq, right, adv, *g)
    assert m["n_successful"] == 30
    for s in SCORES:
        assert m["auc_all_clean"][s] == pytest.approx(m["auc_twin"][s])


def test_transfer_counts_and_words():
    clean = {"network_accuracy": 0.7, "nnk_accuracy": 0.75}
    results = {
        "fgsm": {"eps2": {"network_accuracy": 0.3, "nnk_accuracy": 0.5},
                 "eps8": {"network_accuracy": 0.1, "nnk_accuracy": 0.1}},
        "pgd": {"eps2": {"network_accuracy": 0.2, "nnk_accuracy": 0.4},
                "eps8": {"network_accuracy": 0.05, "nnk_accuracy": 0.0}},
    }  # fmt: skip
    t = report.transfer(clean, results)
    assert t["n_settings"] == 4 and t["n_nnk_above_network"] == 2
    assert t["gap_min"] == pytest.approx(-0.05) and t["gap_max"] == pytest.approx(0.2)
    assert t["clean_gap"] == pytest.approx(0.05)
    assert (t["fgsm_min_word"], t["fgsm_max_word"]) == ("above", "level with")
    assert (t["pgd_min_word"], t["pgd_max_word"]) == ("above", "below")


def test_report_fixed_keys(blobs, monkeypatch):
    """report() on two ε with the feature extraction replaced by the synthetic features."""
    X, clf, yq, Fc, Fa, clean, adv = blobs
    monkeypatch.setattr(report, "clean_features", lambda model, images: Fc)
    monkeypatch.setattr(report, "attacked_features", lambda *a, **k: Fa)
    runs = {(a, e): adv for a in ("fgsm", "pgd") for e in (2, 8)}
    results = {a: {f"eps{e}": adversarial.attack_metrics(yq, clean, adv) for e in (2, 8)}
               for a in ("fgsm", "pgd")}  # fmt: skip
    rep = report.report(None, clf, None, yq, clean, runs, results)
    assert (rep["eps_min"], rep["eps_max"]) == (2, 8)
    for key in ("fgsm_min", "fgsm_max", "pgd_min", "pgd_max"):
        m = rep[key]
        assert m["eps_255"] == (2 if key.endswith("min") else 8)
        assert {"nnk_accuracy", "auc", "auc_all_clean", "support_jaccard", "norm_ratio"} <= set(m)
    assert rep["clean"]["n_misclassified"] == 1
    json.dumps(plain(rep))  # serialisable as metrics.json
    rows = report.table(adversarial.table(results, [2, 8]), rep)
    assert len(rows) == 4 and all(f"auc_all_{s}" in r for r in rows for s in SCORES)
    assert "/" in report.auc_report(rows) and "Jaccard" in report.geometry_report(rep)
    s = report.summary(rep)
    assert s["pgd_eps8_norm_ratio"] == pytest.approx(1.5, rel=0.05)
    assert set(s) >= {"fgsm_eps8_auc_all_clean_residual", "pgd_eps8_support_jaccard"}


def test_support_overlap_matches_sets_on_random_tables():
    rng = np.random.default_rng(5)
    n, m = 40, 12
    ci = np.stack([rng.choice(30, m, replace=False) for _ in range(n)])
    ai = np.stack([rng.choice(30, m, replace=False) for _ in range(n)])
    cw = rng.random((n, m)) * (rng.random((n, m)) < 0.4)
    aw = rng.random((n, m)) * (rng.random((n, m)) < 0.4)
    jac, wov = report.support_overlap(cw, ci, aw, ai)
    for i in range(n):
        a = {int(ci[i, j]): cw[i, j] / cw[i].sum() for j in np.nonzero(cw[i] > 0)[0]}
        b = {int(ai[i, j]): aw[i, j] / aw[i].sum() for j in np.nonzero(aw[i] > 0)[0]}
        union, shared = a.keys() | b.keys(), a.keys() & b.keys()
        assert jac[i] == pytest.approx(len(shared) / len(union) if union else 1.0)
        assert wov[i] == pytest.approx(sum(min(a[j], b[j]) for j in shared))
