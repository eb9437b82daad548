"""Run notebooks/07_invertible.ipynb in the smoke profile and check its metrics."""

from __future__ import annotations

import pytest
from conftest import run_notebook

from deepnnk.studies import invertible_cifar as study
from deepnnk.studies.reporting import load_metrics

FIGURES = ("moons_accuracy", "moons", "gallery", "gap_profile", "counterfactual_pareto")


@pytest.mark.notebook
@pytest.mark.data
@pytest.mark.slow
def test_notebook_07_smoke(tmp_path, monkeypatch, real_data_root):
    monkeypatch.setenv("DEEPNNK_DATA", str(real_data_root.resolve()))
    monkeypatch.setenv("DEEPNNK_CACHE", str(tmp_path / "cache"))
    out = run_notebook(
        "07_invertible", tmp_path, monkeypatch, checkpoints_root=str(tmp_path / "ck")
    )
    m = load_metrics(out)
    sizes = study.profile("smoke")
    assert m["config"]["profile"] == "smoke"
    # The inverse and boundary tests on random weights.
    assert m["checks"]["roundtrip_float64"] <= 1e-10 and m["checks"]["roundtrip_float32"] <= 1e-4
    assert m["checks"]["max_gap_at_x_b"] <= 1e-6
    # Moons: the sweep and the minimality ratio (≥ 1 up to rounding: x* is the closest).
    assert m["moons"]["sweep_seeds"] == 2 and m["moons"]["ratio_min"] >= 1 - 1e-6
    assert m["moons"]["ratio_median"] <= m["moons"]["ratio_p90"]
    # CIFAR: trained here, into the test's checkpoints; exact inverse up to float32 rounding.
    assert len(list((tmp_path / "ck").glob("invertible-cifar-*/epoch_01.pt"))) == 1
    assert 0.0 <= m["cifar"]["test_accuracy"] <= 1.0 and m["cifar"]["recon_max"] <= 1e-4
    assert m["gallery"]["n_images"] == sizes["n_gallery"] >= 10
    assert m["gap_profile"]["n_images"] == sizes["n_gallery"]
    assert m["gallery"]["mean_neighbour_distance"] > 0
    cf = m["counterfactuals"]
    assert cf["n"] == sizes["n_counterfactual"]
    assert set(cf["table"]) == set(study.METHODS)
    for row in cf["table"].values():
        assert 0.0 <= row["validity"] <= 1.0 and row["proximity"] >= 0.0
    for name in FIGURES:
        assert (out / f"{name}.png").is_file() and (out / f"{name}.pdf").is_file(), name
