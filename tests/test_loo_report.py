"""The reporting layer of notebook 02 (:mod:`deepnnk.studies.loo_report`) on hand-made rows: the
level of the estimate, the one-offset calibration (in-sample and leave-one-model-out), the SVM's
flag, correlations without the SVM, and the Markdown templates rendered from metrics; and the
answer to the notebook's calibration exercise against the package."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from deepnnk.studies import loo_report as report
from deepnnk.studies.reporting import render_claim

MODELS = ["underparameterised", "regularised", "overfit"]
EPOCHS = [1, 5, 10, 20]
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "02_loo_generalization.ipynb"


def make_rows(k=50, seed=0, svm_epoch=20):
    """Rows as loo.sweep makes them: LOO-NNK sits below the network's test error by a gap that
    depends on the model; the SVM only at ``svm_epoch``."""
    rng = np.random.default_rng(seed)
    gaps = {"underparameterised": 0.05, "regularised": 0.03, "overfit": 0.06}
    rows = []
    for m in MODELS:
        for e in EPOCHS:
            net_test = 0.5 - 0.01 * e + rng.uniform(-0.005, 0.005)
            loo = net_test - gaps[m] + rng.uniform(-0.01, 0.01)
            svm = e == svm_epoch
            rows.append(
                {
                    "model": m,
                    "epoch": e,
                    "k": k,
                    "n_train": 1000,
                    "n_test": 200,
                    "loo_nnk": loo,
                    "loo_knn": loo + 0.05,
                    "test_nnk": loo + 0.01,
                    "test_knn": loo + 0.06,
                    "net_train": net_test - 0.1 if m == "overfit" else net_test - 0.02,
                    "net_test": net_test,
                    "n_nnk_mean": 10.0 + e / 4,
                    "residual_mean": 0.02 + e / 200,
                    "svm_train": 0.4 if svm else None,
                    "svm_test": 0.41 if svm else None,
                    "svm_convergence_warnings": 5 if svm else None,
                    "svm_seconds": 3.0 if svm else None,
                    "loo_nnk_exact": loo,
                    "loo_nnk_prune": loo + (0.001 if e == 20 else 0.0),
                    "test_nnk_exact": loo + 0.01,
                    "test_nnk_prune": loo + 0.01,
                    "loo_changed": 7 if e == 20 else 0,
                    "test_changed": 1,
                    "loo_kkt_violation_prune": 0.4,
                }
            )
    return rows


PLAN = {
    "models": MODELS,
    "epochs": EPOCHS,
    "ks": [50],
    "k_main": 50,
    "epoch_last": 20,
    "svm_epochs": [20],
    "svm_n_train": 10_000,
}


def test_offset_calibration_by_hand():
    rows = make_rows()
    cal = report.offset_calibration(rows, 50, models=MODELS)
    est = np.array([r["loo_nnk"] for r in rows])
    test = np.array([r["net_test"] for r in rows])
    c = np.mean(test - est)
    assert cal["checkpoints"] == len(rows)
    assert cal["offset"] == pytest.approx(c)
    assert cal["raw"]["mean"] == pytest.approx(np.mean(np.abs(est - test)))
    assert cal["calibrated"]["mean"] == pytest.approx(np.mean(np.abs(est + c - test)))
    assert cal["calibrated"]["max"] == pytest.approx(np.max(np.abs(est + c - test)))
    # leave one model out: each model's offset is fitted on the other two only
    names = np.array([r["model"] for r in rows])
    lomo = cal["leave_one_model_out"]
    errs = []
    for m in MODELS:
        cm = np.mean(test[names != m] - est[names != m])
        assert lomo["offsets"][m] == pytest.approx(cm)
        e = np.abs(est[names == m] + cm - test[names == m])
        assert lomo["models"][m]["max"] == pytest.approx(e.max())
        errs.append(e)
    assert lomo["mean"] == pytest.approx(np.concatenate(errs).mean())
    assert lomo["max"] == pytest.approx(np.concatenate(errs).max())
    # a constant gap is removed exactly, in sample and out of sample
    flat = [{**r, "loo_nnk": r["net_test"] - 0.04} for r in rows]
    cal = report.offset_calibration(flat, 50, models=MODELS)
    assert cal["offset"] == pytest.approx(0.04)
    assert cal["calibrated"]["max"] == pytest.approx(0.0, abs=1e-12)
    assert cal["leave_one_model_out"]["max"] == pytest.approx(0.0, abs=1e-12)


def test_offset_calibration_skips_missing_and_needs_points():
    rows = make_rows()
    cal = report.offset_calibration(rows, 50, estimator="svm_train", models=MODELS)
    assert cal["checkpoints"] == len(MODELS)  # the SVM ran at one epoch only
    with pytest.raises(ValueError):
        report.offset_calibration(rows, 25)


def test_calibrations_and_correlations_leave_out_the_svm():
    rows = make_rows()
    cal = report.calibrations(rows, PLAN)
    assert set(cal) == set(report.CALIBRATED)
    corr = report.correlations(rows, [50])["50"]
    assert "svm_train" not in corr and "svm_test" not in corr
    assert set(corr) == {"loo_nnk", "loo_knn", "net_train", "test_nnk", "test_knn"}
    assert corr["loo_nnk"] == pytest.approx(cal["loo_nnk"]["pearson"])


def test_level_gaps():
    rows = make_rows()
    lv = report.level_gaps(rows, PLAN)
    reg = report.select(rows, model="regularised", epoch=20)[0]
    last = lv["models"]["regularised"]["last"]
    assert last["minus_net_test"] == pytest.approx(reg["loo_nnk"] - reg["net_test"])
    assert last["minus_test_nnk"] == pytest.approx(reg["loo_nnk"] - reg["test_nnk"])
    d = [r["loo_nnk"] - r["net_test"] for r in rows]
    assert lv["mean"]["minus_net_test"] == pytest.approx(np.mean(d))
    assert lv["checkpoints"] == len(rows) and lv["below_net_test"] == len(rows)
    assert lv["direction"] == "below" and lv["reading"] == "optimistic"
    assert lv["closer_to"] == "NNK's own test error"
    up = [{**r, "loo_nnk": r["net_test"] + 0.02, "test_nnk": r["net_test"] + 0.2} for r in rows]
    lv = report.level_gaps(up, PLAN)
    assert lv["direction"] == "above" and lv["reading"] == "pessimistic"
    assert lv["closer_to"] == "the network's test error" and lv["below_net_test"] == 0


def test_svm_cost_and_flag():
    rows = make_rows()
    svm = report.svm_cost(rows, PLAN)
    assert svm["fits"] == 15 and svm["convergence_warnings"] == 15
    assert svm["fits_not_converged"] == 15 and svm["n_train"] == 10_000 and svm["subsample"]
    flag = report.svm_flag(svm)
    assert flag == "linear SVM, 10,000-image training subsample, 15 of 15 fits not converged"
    assert render_claim(report.svm_flag_template(svm), {"svm": svm}) == flag
    full = report.svm_cost(rows, {**PLAN, "svm_n_train": None})
    assert report.svm_flag(full).startswith("linear SVM, all 50,000 training images")


def test_templates_render_the_numbers_of_the_tables():
    rows = make_rows()
    ranking = report.model_ranking(rows, 20, 50)
    svm = report.svm_cost(rows, PLAN)
    metrics = {"ranking": ranking, "svm": svm}
    text = render_claim(report.ranking_template(ranking, MODELS, svm), metrics)
    table, footnote = text.split("\n\n")
    plain = report.ranking_table(ranking, MODELS)
    assert table == plain
    assert footnote == "† " + report.svm_flag(svm) + "."
    assert ranking["loo_nnk"]["order"] == " < ".join(ranking["loo_nnk"]["ranking"])
    # the template carries fields, not numbers
    template = report.ranking_template(ranking, MODELS, svm)
    assert not re.search(r"\d\.\d{4}", template)

    cal = report.calibrations(rows, PLAN)
    lv = report.level_gaps(rows, PLAN)
    metrics = {"calibration": cal, "level": lv}
    text = render_claim(report.calibration_template(cal), metrics)
    assert f"{cal['loo_nnk']['offset']:+.4f}" in text
    assert f"{cal['loo_nnk']['leave_one_model_out']['max']:.4f}" in text
    text = render_claim(report.gaps_template(lv), metrics)
    assert f"{lv['models']['overfit']['last']['minus_test_nnk']:+.4f}" in text


def test_paper_check_template_matches_table():
    entry = {
        "paper": {"loo_nnk": 0.2053, "loo_knn": 0.2634, "test_nnk": 0.2171},
        "ours": {
            "prune": {"loo_nnk": 0.2052, "loo_knn": 0.2634, "test_nnk": 0.2172},
            "exact": {"loo_nnk": 0.2051, "loo_knn": 0.2634, "test_nnk": 0.2174},
        },
        "loo_changed": 120,
        "test_changed": 12,
        "max_abs_diff_prune": 1e-4,
    }
    check = {"regularised": entry, "overfit": None}
    text = render_claim(report.paper_check_template(check), {"paper_check": check})
    assert text == report.paper_check_table(check)
    assert "1.0e-04" in text and "| overfit | not computed |" in text


def test_field_and_summary_template():
    assert report.field("a/b", 0.5) == "{m[a][b]:.4f}"
    assert report.field("a/b", True) == "{m[a][b]}"
    assert report.field("a/b", None) == "–"
    assert report.field("a/b", 3, ",") == "{m[a][b]:,}"
    summary = {
        "regularised.loo_nnk": 0.2,
        "loo_nnk_minus_net_test.mean": -0.03,
        "calibration.loo_nnk.offset": 0.03,
        "ranks_like_test.svm_train": False,
        "paper_max_abs_diff_prune": None,
        "truth_ranking": "a < b",
    }
    svm = {"n_train": 1000, "fits_not_converged": 5, "fits": 15, "subsample": True}
    text = render_claim(report.summary_template(summary, svm), {"summary": summary, "svm": svm})
    assert "| loo_nnk_minus_net_test.mean | -0.0300 |" in text
    assert "| calibration.loo_nnk.offset | +0.0300 |" in text
    assert "| ranks_like_test.svm_train † | False |" in text
    assert "| paper_max_abs_diff_prune | – |" in text
    assert text.endswith(
        "† linear SVM, 1,000-image training subsample, 5 of 15 fits not converged."
    )


def test_neighbours_and_solvers():
    rows = make_rows()
    nb = report.neighbour_summary(rows, PLAN)
    assert nb["grows"] == 3 and nb["residual_grows"] == 3 and nb["n_models"] == 3
    assert nb["models"]["overfit"]["first"] == pytest.approx(10.25)
    sd = report.solver_difference(rows, 50)
    assert sd["rows"] == len(rows) and sd["max_abs_loo_diff"] == pytest.approx(0.001)
    assert sd["max_loo_changed"] == 7 and sd["max_kkt_violation_prune"] == 0.4
    assert report.solver_difference(rows, 25) == {"rows": 0}


def _exercise_code() -> str:
    nb = json.loads(NOTEBOOK.read_text())
    cell = next(
        "".join(c["source"])
        for c in nb["cells"]
        if c["cell_type"] == "markdown" and "".join(c["source"]).startswith("## Exercises")
    )
    blocks = re.findall(r"```python\n(.*?)```", cell, flags=re.S)
    assert blocks, "the calibration exercise's answer has no code block"
    return blocks[0]


def test_exercise_answer_matches_the_package():
    """The answer to exercise 3 of notebook 02 computes what loo_report computes."""
    rows = make_rows(seed=3)
    scope = {"rows": rows, "K": 50}
    exec(_exercise_code(), scope)  # noqa: S102 - the notebook's own answer, run on test rows
    cal = report.offset_calibration(rows, 50, models=MODELS)
    assert scope["c"] == pytest.approx(cal["offset"])
    assert scope["mean"] == pytest.approx(cal["calibrated"]["mean"])
    assert scope["worst"] == pytest.approx(cal["calibrated"]["max"])
    assert scope["lomo_mean"] == pytest.approx(cal["leave_one_model_out"]["mean"])
    assert scope["lomo_worst"] == pytest.approx(cal["leave_one_model_out"]["max"])
