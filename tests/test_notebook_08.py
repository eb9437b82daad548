"""Run notebooks/08_splinecam.ipynb in the smoke profile and check its metrics."""

from __future__ import annotations

import pytest
from conftest import run_notebook

from deepnnk.studies import splinecam as study
from deepnnk.studies.reporting import load_metrics

FIGURES = ("window", "claim", "relations", "training")


@pytest.mark.notebook
@pytest.mark.data
@pytest.mark.slow
def test_notebook_08_smoke(tmp_path, monkeypatch, real_data_root):
    monkeypatch.setenv("DEEPNNK_DATA", str(real_data_root.resolve()))
    monkeypatch.setenv("DEEPNNK_CACHE", str(tmp_path / "cache"))
    out = run_notebook("08_splinecam", tmp_path, monkeypatch)
    m = load_metrics(out)
    sizes = study.profile("smoke")
    assert m["config"]["profile"] == "smoke"
    # The walk is exact: the network itself equals the pieces' affine maps in float64.
    assert m["checks"]["affine_max_error"] <= 1e-9 and m["checks"]["n_pieces"] >= 1
    n_segments = sizes["n_queries"] * sizes["k"]
    for key in ("density", "crossing_endpoints", "crossing_sampled"):
        assert m[key]["n_selected"] + m[key]["n_pruned"] == n_segments
    assert m["setting"]["mean_selected"] >= 1
    # Every window crosses at least one region, and the densities are pieces / window.
    assert m["density"]["mean_selected"] >= 1 / sizes["window"]
    assert m["walks"]["pieces"] >= n_segments
    # A path whose far end is classed differently is seen leaving by the samples too.
    e, s = m["crossing_endpoints"], m["crossing_sampled"]
    assert s["mean_selected"] >= e["mean_selected"] and s["mean_pruned"] >= e["mean_pruned"]
    tr = m["training"]
    for model in ("regularised", "overfit"):
        assert tr[model]["epochs"] == sizes["epochs"]
        assert all(d > 0 for d in tr[model]["mean_density"])
        assert all(0 <= x <= 1 for x in tr[model]["loo_error"])
    for name in FIGURES:
        assert (out / f"{name}.png").is_file() and (out / f"{name}.pdf").is_file()
