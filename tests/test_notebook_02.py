"""Run notebooks/02_loo_generalization.ipynb in the smoke profile and check its metrics against
an independent NNKClassifier run on the same features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_notebook
from test_loo_report import _exercise_code

from deepnnk import NNKClassifier
from deepnnk.studies.loo import checkpoint_features
from deepnnk.studies.reporting import load_metrics

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "02_loo_generalization.ipynb"


@pytest.mark.notebook
@pytest.mark.data
@pytest.mark.slow
def test_notebook_02_smoke(tmp_path, monkeypatch, real_data_root):
    monkeypatch.setenv("DEEPNNK_DATA", str(real_data_root.resolve()))
    # A fresh result cache, so that the notebook computes rather than reads old entries.
    out = run_notebook(
        "02_loo_generalization", tmp_path, monkeypatch, cache_dir=str(tmp_path / "cache")
    )
    m = load_metrics(out)
    plan, s = m["plan"], m["summary"]
    for key in (
        "plan",
        "table",
        "timing",
        "correlation",
        "ranking",
        "paper_check",
        "svm",
        "neighbours_last_epoch",
        "summary",
        "last_epoch",
        "level",
        "calibration",
        "solvers",
        "neighbours",
    ):
        assert key in m, key
    for model in plan["models"]:
        for c in ("loo_nnk", "loo_knn", "test_nnk", "net_train", "net_test"):
            assert 0.0 <= s[f"{model}.{c}"] <= 1.0, (model, c)
        assert s["ranks_like_test.loo_nnk"] in (True, False)
    assert len(m["table"]) == len(plan["models"]) * len(plan["epochs"]) * len(plan["ks"])
    for row in m["table"]:
        for c in (
            "loo_nnk",
            "loo_knn",
            "test_nnk",
            "test_knn",
            "net_train",
            "net_test",
            "loo_nnk_exact",
            "loo_nnk_prune",
        ):
            assert 0.0 <= row[c] <= 1.0, c
        assert 1 <= row["n_nnk_mean"] <= row["k"]
        assert row["residual_mean"] >= 0 and 0 <= row["loo_changed"] <= row["n_train"]
    for name in (
        "error_curves_k50",
        "estimator_scatter_k50",
        "calibration_k50",
        "nnk_neighbours",
        "residual",
    ):
        assert (out / f"{name}.png").is_file() and (out / f"{name}.pdf").is_file(), name
    check_outputs(tmp_path / "02_loo_generalization.ipynb", out, str(tmp_path))
    check_level_and_calibration(m)

    # The reported LOO error of one checkpoint equals NNKClassifier's on the same features.
    row = next(r for r in m["table"] if r["model"] == "regularised" and r["epoch"] == 20)
    feats = checkpoint_features(
        plan["weights"],
        "regularised",
        20,
        n_train=plan["n_train"],
        n_test=plan["n_test"],
        subset_seed=plan["subset_seed"],
    )
    assert len(feats.train) == row["n_train"]
    assert feats.net_test_error == pytest.approx(row["net_test"])
    for solver in plan["solvers"]:
        clf = NNKClassifier(row["k"], solver=solver).fit(feats.train, feats.y_train)
        assert clf.loo_error() == pytest.approx(row[f"loo_nnk_{solver}"], abs=1e-12)
        test_err = float(np.mean(clf.predict(feats.test) != feats.y_test))
        assert test_err == pytest.approx(row[f"test_nnk_{solver}"], abs=1e-12)
    knn = NNKClassifier(row["k"], weighting="knn").fit(feats.train, feats.y_train)
    assert knn.loo_error() == pytest.approx(row["loo_knn"], abs=1e-12)


def check_outputs(notebook: Path, out: Path, machine_path: str):
    """Every figure inline, no stderr, no machine path in any output."""
    nb = json.loads(notebook.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    images = sum("image/png" in o.get("data", {}) for o in outputs)
    assert images == len(list(out.glob("*.png")))
    assert not [o for o in outputs if o.get("name") == "stderr"]
    assert machine_path not in json.dumps(outputs)


def check_level_and_calibration(m: dict):
    """The level, the calibration and the SVM's flag agree with the table they come from."""
    plan, k = m["plan"], m["plan"]["k_main"]
    rows = [r for r in m["table"] if r["k"] == k]
    loo = np.array([r["loo_nnk"] for r in rows])
    test = np.array([r["net_test"] for r in rows])
    cal = m["calibration"]["loo_nnk"]
    assert cal["checkpoints"] == len(rows) == len(plan["models"]) * len(plan["epochs"])
    assert cal["offset"] == pytest.approx(np.mean(test - loo))
    assert cal["calibrated"]["max"] == pytest.approx(np.max(np.abs(loo + cal["offset"] - test)))
    assert set(cal["leave_one_model_out"]["offsets"]) == set(plan["models"])
    assert m["level"]["mean"]["minus_net_test"] == pytest.approx(np.mean(loo - test))
    assert m["level"]["direction"] in ("below", "above")
    # no correlation over the SVM's few checkpoints
    assert not [e for e in m["correlation"][str(k)] if e.startswith("svm")]
    svm = m["svm"]
    warned = sum(r.get("svm_convergence_warnings") or 0 for r in rows)
    assert svm["fits_not_converged"] == min(warned, svm["fits"]) and svm["fits"] == 15
    assert svm["n_train"] == plan["svm_n_train"]
    # the answer to the calibration exercise gives the notebook's numbers
    scope = {"rows": m["table"], "K": k}
    exec(_exercise_code(), scope)  # noqa: S102 - the notebook's own answer
    assert scope["c"] == pytest.approx(cal["offset"])
    assert scope["lomo_worst"] == pytest.approx(cal["leave_one_model_out"]["max"])
