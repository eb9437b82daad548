"""Run notebooks/09_global_surrogate.ipynb in the smoke profile and check its metrics."""

from __future__ import annotations

import pytest
from conftest import run_notebook

from deepnnk.studies import global_surrogate as study
from deepnnk.studies import global_surrogate_fidelity as fidelity
from deepnnk.studies.reporting import load_metrics

FIGURES = ("traces", "fidelity", "pixels_digits", "pixels_cifar", "surrogate_fidelity", "detection")


@pytest.mark.notebook
@pytest.mark.data
@pytest.mark.slow
def test_notebook_09_smoke(tmp_path, monkeypatch, real_data_root):
    monkeypatch.setenv("DEEPNNK_DATA", str(real_data_root.resolve()))
    monkeypatch.setenv("DEEPNNK_CACHE", str(tmp_path / "cache"))
    out = run_notebook(
        "09_global_surrogate", tmp_path, monkeypatch, checkpoints_root=str(tmp_path / "ck")
    )
    m = load_metrics(out)
    sizes = study.profile("smoke")
    assert m["config"]["profile"] == "smoke"
    # The digits CNN was trained here, into the test's checkpoints, and it works.
    assert len(list((tmp_path / "ck" / "digits-cnn").glob("*.pt"))) == 1
    assert m["targets"]["digits"]["heldout_accuracy"] > 0.8
    assert m["targets"]["cifar"]["p"] == 300 and m["targets"]["cifar"]["heldout_accuracy"] > 0.5
    for name in study.TARGETS:
        s = m["sampler"][name]
        assert s["n_iter"] == sizes[name]["n_iter"] and s["n_chains"] == sizes[name]["n_chains"]
        assert s["rhat_loglik"] >= 0.9 and len(s["rhat_beta_top"]) == 5
        assert 0.0 <= s["accept_sigma2"] <= 1.0 and 0.0 < s["dominant_share"] <= 1.0
        assert set(m["fidelity"][name]) == set(study.RANKINGS)
        for row in m["fidelity"][name].values():
            assert set(row) == set(fidelity.TESTS)
            for v in row.values():
                assert v["lo"] <= v["mean"] <= v["hi"]
        assert m["overlap_with_dmm"][name]["dmm_men"] == 1.0
        fit = m["surrogates"][name]
        assert set(study.SURROGATES) <= set(fit) and all(
            fit[k]["rmse"] > 0 for k in study.SURROGATES
        )
        # NNK on the network's own features predicts the network's log-odds well
        assert fit["nnk_features"]["r2"] > 0.5
        det = m["detection"][name]
        assert det["n_flipped"] == round(det["share_flipped"] * det["n_filling"])
        assert det["n_flipped"] == round(
            m["fidelity"][name]["dmm_men"]["filling"]["mean"] * det["n_filling"]
        )
    # DMM-MEN's pixels flip the digits CNN far more often than random pixels
    assert (
        m["fidelity"]["digits"]["dmm_men"]["filling"]["mean"]
        > m["fidelity"]["digits"]["random"]["filling"]["mean"]
    )
    for name in FIGURES:
        assert (out / f"{name}.png").is_file() and (out / f"{name}.pdf").is_file(), name
