"""Unit tests for deepnnk.studies.adversarial on synthetic features (no data, no network).

Its figures are tested in ``test_figures_adversarial.py``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from deepnnk import NNKClassifier, explain
from deepnnk.cache import plain
from deepnnk.studies import adversarial
from deepnnk.studies.adversarial import Run


def _blobs(n_per=60, d=40, seed=0):
    """Three well separated Gaussian classes in d dimensions."""
    rng = np.random.default_rng(seed)
    centres = 12.0 * np.eye(3, d)
    X = np.concatenate([c + rng.normal(size=(n_per, d)) for c in centres])
    y = np.repeat(np.arange(3), n_per)
    return X, y, centres, rng


def _run(clf, knn, F, net_pred, name="x"):
    return Run(
        name,
        np.asarray(net_pred),
        explain.neighbourhood_table(clf, F),
        explain.neighbourhood_table(knn, F),
    )


@pytest.fixture(scope="module")
def setting():
    X, y, centres, rng = _blobs()
    clf = NNKClassifier(10).fit(X, y)
    knn = NNKClassifier(10, weighting="knn").fit(X, y)
    yq = np.repeat(np.arange(3), 10)
    Fc = centres[yq] + rng.normal(size=(30, X.shape[1]))
    # "adversarial": features moved to the next class's centre; the network follows them
    y_adv = (yq + 1) % 3
    Fa = centres[y_adv] + rng.normal(size=(30, X.shape[1]))
    clean = _run(clf, knn, Fc, yq, "clean")
    adv = _run(clf, knn, Fa, y_adv, "adv")
    return yq, y_adv, clean, adv


def test_detection_auc_basics():
    assert adversarial.detection_auc([0, 1], [2, 3]) == 1.0
    assert adversarial.detection_auc([2, 3], [0, 1]) == 0.0
    assert adversarial.detection_auc([1, 1], [1, 1]) == 0.5
    assert math.isnan(adversarial.detection_auc([], [1.0]))
    assert math.isnan(adversarial.detection_auc([0.0], [np.nan]))


def test_successful_definition():
    clean = Run("c", np.array([0, 1, 2, 0]), None, None)
    adv = Run("a", np.array([1, 1, 0, 2]), None, None)
    y = np.array([0, 1, 0, 0])
    # right→wrong, right→right, wrong→wrong, right→wrong
    np.testing.assert_array_equal(adversarial.successful(y, clean, adv), [1, 0, 0, 1])


def test_attack_metrics_moved_features(setting):
    yq, y_adv, clean, adv = setting
    m = adversarial.attack_metrics(yq, clean, adv)
    assert m["n_successful"] == 30 and m["attack_success_rate"] == 1.0
    assert m["network_accuracy"] == 0.0
    assert m["nnk_accuracy"] == 0.0 and m["knn_accuracy"] == 0.0
    assert m["nnk_agrees_with_network"] == 1.0 and m["nnk_recovers_true_label"] == 0.0
    assert m["share_true_clean"] > 0.99 and m["share_adv_class_adv"] > 0.99
    assert m["share_true_adv"] < 0.01 and m["share_adv_class_clean"] < 0.01
    assert m["other_class_polytope_all"] == 1.0 == m["other_class_polytope_successful"]
    assert m["other_class_polytope_clean"] == 0.0
    assert m["adv_class_polytope_successful"] == 1.0
    # disagreement with the network is ~0 on both sides: the label scores cannot detect this
    for key in adversarial.SCORES:
        assert 0.0 <= m["auc"][key] <= 1.0
    c = adversarial.clean_metrics(yq, clean)
    assert c["network_accuracy"] == c["nnk_accuracy"] == c["knn_accuracy"] == 1.0
    assert c["other_class_polytope"] == 0.0


def test_scores_and_auc_on_off_manifold(setting):
    """Features far from every training point are reconstructed worse: larger residual."""
    X, y, centres, rng = _blobs()
    clf = NNKClassifier(10).fit(X, y)
    knn = NNKClassifier(10, weighting="knn").fit(X, y)
    yq = np.repeat(np.arange(3), 10)
    Fc = centres[yq] + rng.normal(size=(30, X.shape[1]))
    Fa = Fc + 3.0 * rng.normal(size=Fc.shape)  # noisy: off the training manifold
    clean, adv = _run(clf, knn, Fc, yq), _run(clf, knn, Fa, (yq + 1) % 3)
    s = adversarial.scores(adv)
    assert set(s) == set(adversarial.SCORES)
    assert all(v.shape == (30,) for v in s.values())
    m = adversarial.attack_metrics(yq, clean, adv)
    assert m["auc"]["residual"] > 0.9
    assert m["mean_residual_adv"] > m["mean_residual_clean"]
    # the network's wrong label is not what the neighbours say: disagreement detects it
    assert m["auc"]["knn_disagreement"] > 0.9 and m["auc"]["nnk_disagreement"] > 0.9


def test_table(setting):
    yq, _, clean, adv = setting
    m = adversarial.attack_metrics(yq, clean, adv)
    results = {"fgsm": {"eps2": m, "eps8": m}, "pgd": {"eps2": m, "eps8": m}}
    rows = adversarial.table(results, [2, 8])
    assert len(rows) == 4 and rows[0]["attack"] == "fgsm" and rows[1]["eps_255"] == 8
    assert "auc_residual" in rows[0] and rows[0]["network_accuracy"] == 0.0
    assert adversarial.eps_key(8) == "eps8" and adversarial.eps_key(0.5) == "eps0.5"


def test_to_hwc():
    a = adversarial.to_hwc(np.random.default_rng(1).random((3, 32, 32)) * 1.2 - 0.1)
    assert a.shape == (32, 32, 3) and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 1.0


def test_profiles_and_config():
    for name in ("smoke", "quick", "paper"):
        sizes = adversarial.profile(name)
        assert {"n_train", "n_test", "eps_255", "n_galleries"} <= set(sizes)
    smoke = adversarial.profile("smoke")
    assert smoke == {"n_train": 5000, "n_test": 100, "eps_255": [2, 8], "n_galleries": 1}
    smoke["eps_255"].append(16)  # a copy: the table is untouched
    assert adversarial.profile("smoke")["eps_255"] == [2, 8]
    with pytest.raises(ValueError):
        adversarial.profile("huge")
    cfg = adversarial.config(adversarial.profile("quick"), profile="quick", k=50, seed=0)
    assert cfg == {
        "profile": "quick",
        "k": 50,
        "seed": 0,
        "n_train": 50000,
        "n_test": 1000,
        "eps_255": [1, 2, 4, 8],
        "attacks": ["fgsm", "pgd"],
        "pgd_steps": 10,
    }


def test_notebook_helpers(setting):
    yq, y_adv, clean, adv = setting
    m = adversarial.attack_metrics(yq, clean, adv)
    results = {"fgsm": {"eps2": m, "eps8": m}, "pgd": {"eps2": m, "eps8": m}}
    rows = adversarial.table(results, [2, 8])
    assert adversarial.attack_label("pgd", 8) == "PGD ε=8/255"
    picks = adversarial.gallery_picks(yq, clean, adv, 3, seed=0)
    assert len(picks) == 3 and np.all(np.diff(picks) > 0)
    assert adversarial.successful(yq, clean, adv)[picks].all()
    groups = adversarial.true_share_groups(yq, clean, adv, "PGD ε=8/255")
    assert list(groups) == ["clean", "PGD ε=8/255"]
    assert groups["clean"].shape == (30,) and groups["clean"].min() > 0.99
    assert groups["PGD ε=8/255"].max() < 0.01
    poly = adversarial.polytope_successful(results)
    assert poly == {"fgsm": {"eps2": 1.0, "eps8": 1.0}, "pgd": {"eps2": 1.0, "eps8": 1.0}}
    report = adversarial.accuracy_report(adversarial.clean_metrics(yq, clean), rows)
    assert report.splitlines()[0] == "clean: network 1.000, NNK 1.000, kNN 1.000"
    assert len(report.splitlines()) == 5 and report.splitlines()[1].startswith("fgsm ε=2/255")
    aucs = adversarial.auc_report(rows).splitlines()
    assert len(aucs) == 4 and all(s in aucs[0] for s in adversarial.SCORES)
    s = adversarial.summary(adversarial.clean_metrics(yq, clean), results, 30, 180)
    assert s["clean_nnk_accuracy"] == 1.0 and s["n_queries"] == 30 and s["n_train"] == 180
    assert s["pgd_eps8_network_accuracy"] == 0.0 and "fgsm_eps2_auc_residual" in s
    assert len(s) == 3 + 4 * 9 + 2
    json.dumps(plain(s))  # JSON-able once NaN is mapped


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3 * 4 * 4, 3)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_cached_attack_roundtrip(tmp_path):
    model = _Tiny().eval()
    rng = np.random.default_rng(0)
    x = rng.random((6, 3, 4, 4), dtype=np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    a = adversarial.cached_attack(model, x, y, "pgd", 4 / 255, steps=3, seed=1, cache_dir=tmp_path)
    assert a.shape == x.shape and a.dtype == np.float32
    assert np.abs(a - x).max() <= 4 / 255 + 1e-6
    files = list(tmp_path.glob("*.npy"))
    assert len(files) == 1
    b = adversarial.cached_attack(model, x, y, "pgd", 4 / 255, steps=3, seed=1, cache_dir=tmp_path)
    np.testing.assert_array_equal(a, b)
    assert isinstance(b, np.memmap)  # served from the cache
    # a different seed, ε or method is a different entry
    adversarial.cached_attack(model, x, y, "pgd", 4 / 255, steps=3, seed=2, cache_dir=tmp_path)
    adversarial.cached_attack(model, x, y, "fgsm", 4 / 255, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 3
    k1 = adversarial.attack_key(model, x, y, "fgsm", 2 / 255, 10, 0)
    assert k1 == adversarial.attack_key(model, x, y, "fgsm", 2 / 255, 10, 5)  # FGSM ignores seed
    assert k1 != adversarial.attack_key(model, x, y, "fgsm", 2 / 255 + 1e-9, 10, 0)
