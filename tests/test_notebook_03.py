"""Run notebooks/03_adversarial.ipynb in the smoke profile and check its metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_notebook

from deepnnk.studies.reporting import load_metrics, notebook_claims

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
        if key.endswith("_norm_ratio"):
            assert value > 0, (key, value)
        elif not key.startswith("n_"):
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
    _check_report(m, eps)
    _check_outputs(tmp_path / "03_adversarial.ipynb", tmp_path)
    names = ["accuracy_vs_eps", "weight_share_vs_eps", "share_true_hist", "auc_vs_eps"]
    names += ["polytope_vs_eps", "overlap_vs_eps", "geometry_vs_eps"]
    names += [f"twin_gallery_{i}" for i in m["galleries"]["test_ids"]]
    assert len(m["galleries"]["test_ids"]) == 1
    for name in names:
        assert (out / f"{name}.png").is_file() and (out / f"{name}.pdf").is_file(), name


def _check_report(m, eps):
    """metrics["report"] (deepnnk.studies.adversarial_report): both detection reference sets,
    the support overlap, the feature geometry, the transfer comparison and the fixed keys the
    notebook's sentences read."""
    rep = m["report"]
    assert (rep["eps_min"], rep["eps_max"]) == (min(eps), max(eps))
    n_wrong = round(100 * (1 - m["clean"]["network_accuracy"]))
    assert rep["clean"]["n_misclassified"] == n_wrong > 0
    for attack in ("fgsm", "pgd"):
        for e in eps:
            r = rep["attacks"][attack][f"eps{e}"]
            base = m["attacks"][attack][f"eps{e}"]
            assert r["n_successful"] == base["n_successful"]
            for score in SCORES:
                assert r["auc_twin"][score] == base["auc"][score]
                _unit(r["auc_all_clean"][score], f"{attack} eps{e} all-clean auc {score}")
            for key in ("support_jaccard", "weighted_overlap", "no_shared_neighbour"):
                _unit(r[key], f"{attack} eps{e} {key}")
            for key in ("cos_nn_clean", "cos_nn_adv"):
                _unit(r[key], f"{attack} eps{e} {key}")
            assert r["norm_ratio"] > 0 and r["nn_distance_adv"] > 0
            for score, auc in r["auc_geometry"].items():
                _unit(auc, f"{attack} eps{e} geometry auc {score}")
        for end in ("min", "max"):
            assert rep[f"{attack}_{end}"]["eps_255"] == rep[f"eps_{end}"]
    t = rep["transfer"]
    assert 0 <= t["n_nnk_above_network"] <= t["n_settings"] == 2 * len(eps)
    # the table carries both AUCs of every score
    for row in m["table"]:
        assert all(f"auc_{s}" in row and f"auc_all_{s}" in row for s in SCORES)


def _check_outputs(executed: Path, tmp_path: Path):
    """The prose is rendered from the run (issue 13: every quoted number through ``state``), and
    no output shows a warning, an error or the machine's results folder."""
    import json

    assert len(notebook_claims(executed)) >= 10
    nb = json.loads(executed.read_text())
    for i, cell in enumerate(nb["cells"]):
        if "injected-parameters" in cell["metadata"].get("tags", []):
            continue
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", i
            assert out.get("name") != "stderr", (i, out.get("text"))
            assert str(tmp_path) not in json.dumps(out), (i, "absolute path in an output")
