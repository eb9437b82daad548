"""Run notebooks/03_adversarial.ipynb in the smoke profile and check its metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_notebook

from deepnnk.studies.reporting import load_metrics

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "03_adversarial.ipynb"
SCORES = ("n_neighbours", "residual", "nnk_disagreement", "knn_disagreement")


def _unit(value, key):
    assert value is not None and 0.0 <= value <= 1.0, (key, value)


@pytest.mark.notebook
@pytest.mark.data
@pytest.mark.slow
def test_notebook_03_smoke(tmp_path, monkeypatch, real_data_root):
    monkeypatch.setenv("DEEPNNK_DATA", str(real_data_root.resolve()))
    out = run_notebook("03_adversarial", tmp_path, monkeypatch)
    m = load_metrics(out)
    s = m["summary"]
    assert s["n_queries"] == 100 and s["n_train"] == 5000
    for key, value in s.items():
        if not key.startswith("n_"):
            _unit(value, key)
    for key in ("network_accuracy", "nnk_accuracy", "knn_accuracy", "other_class_polytope"):
        _unit(m["clean"][key], key)
    eps = m["config"]["eps_255"]
    assert eps == [2, 8]
    for attack in ("fgsm", "pgd"):
        for e in eps:
            r = m["attacks"][attack][f"eps{e}"]
            for key in (
                "network_accuracy",
                "nnk_accuracy",
                "knn_accuracy",
                "attack_success_rate",
                "nnk_agrees_with_network",
                "nnk_recovers_true_label",
                "share_true_clean",
                "share_true_adv",
                "share_adv_class_clean",
                "share_adv_class_adv",
                "other_class_polytope_all",
                "other_class_polytope_successful",
                "adv_class_polytope_successful",
            ):
                _unit(r[key], f"{attack} eps{e} {key}")
            for score in SCORES:
                _unit(r["auc"][score], f"{attack} eps{e} auc {score}")
            assert 0 < r["n_successful"] <= r["n_queries"] == 100
            # an attack that succeeds cannot leave the network more accurate than on clean inputs
            assert r["network_accuracy"] <= m["clean"]["network_accuracy"]
    for e in eps:
        fgsm, pgd = (m["attacks"][a][f"eps{e}"]["network_accuracy"] for a in ("fgsm", "pgd"))
        assert pgd <= fgsm, (e, pgd, fgsm)
    names = ["accuracy_vs_eps", "weight_share_vs_eps", "share_true_hist", "auc_vs_eps"]
    names += ["polytope_vs_eps"] + [f"twin_gallery_{i}" for i in m["galleries"]["test_ids"]]
    assert len(m["galleries"]["test_ids"]) == 1
    for name in names:
        assert (out / f"{name}.png").is_file() and (out / f"{name}.pdf").is_file(), name
