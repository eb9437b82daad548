"""Run notebooks/01_cifar_explanations.ipynb in the smoke profile and check its metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_notebook

from deepnnk.studies.reporting import load_metrics

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_cifar_explanations.ipynb"
K = 50


@pytest.mark.notebook
@pytest.mark.data
@pytest.mark.slow
def test_notebook_01_smoke(tmp_path, monkeypatch, real_data_root):
    monkeypatch.setenv("DEEPNNK_DATA", str(real_data_root.resolve()))
    out = run_notebook("01_cifar_explanations", tmp_path, monkeypatch, k=K)
    m = load_metrics(out)
    s = m["summary"]
    for key in (
        "nnk_accuracy",
        "knn_accuracy",
        "network_accuracy",
        "agreement_nnk_network",
        "mean_share_correct",
        "mean_share_wrong",
    ):
        assert 0.0 <= s[key] <= 1.0, key
    for kk in (25, 50, 75):
        assert 1 <= s[f"mean_neighbours_k{kk}"] <= kk
        n = m["n_neighbours"][f"k{kk}"]
        assert 1 <= n["min"] <= n["max"] <= kk
    assert s["n_queries"] == 500 and s["n_train"] == 5000
    assert 0 <= s["n_disagreements"] <= s["n_queries"]
    assert s["mean_share_correct"] > s["mean_share_wrong"]
    p = m["predictions"]
    assert (
        p["disagreements_network_right"]
        + p["disagreements_nnk_right"]
        + p["disagreements_both_wrong"]
    ) == p["n_disagreements"]
    assert set(m["paper_images"]) == {"2595", "3745", "374"}
    for rec in m["paper_images"].values():
        assert 1 <= rec["n_neighbours"] <= K
        assert 1 <= rec["published_quirk"]["n_neighbours"] <= K - 1
        assert 0.0 <= rec["nnk_share"] <= 1.0
        weights = [nb["weight"] for nb in rec["neighbours"]]
        assert weights == sorted(weights, reverse=True) and abs(sum(weights) - 1) < 1e-6
    for name in (
        "gallery_paper_2595",
        "gallery_paper_3745",
        "gallery_paper_374",
        "nnk_vs_knn_2595",
        "n_neighbours_by_k",
        "weight_share",
        "disagreement_confidence",
    ):
        assert (out / f"{name}.png").is_file() and (out / f"{name}.pdf").is_file(), name
    # the numbers the prose quotes (issue 13): each in metrics, each in range
    fractions = [
        m["nearest_candidate"]["is_neighbour"],
        m["nearest_candidate"]["is_top_neighbour"],
        m["quirk"]["changed_prediction"],
        m["top_neighbour"]["same_class_as_prediction"],
        m["top_neighbour"]["near_copy"],
        *m["separation"].values(),
        *(v for key, v in m["disagreement"]["detection"].items()),
    ]
    assert all(0.0 <= x <= 1.0 for x in fractions), fractions
    assert m["weight_spread"]["nnk_max_over_min"] > m["weight_spread"]["knn_max_over_min"] >= 1
    assert m["neighbour_growth"]["k_ratio"] == 3
    assert set(m["paper_overview"]["images"]) == {"img2595", "img3745", "img374"}
    assert p["nnk_minus_network_points"] == pytest.approx(
        100 * (p["nnk_accuracy"] - p["network_accuracy"])
    )
    # every run number of the prose is rendered by state (run_notebook re-checks them)
    executed = json.loads((tmp_path / "01_cifar_explanations.ipynb").read_text())
    claims = [
        o
        for c in executed["cells"]
        for o in c.get("outputs", [])
        if "deepnnk_claim" in o.get("metadata", {})
    ]
    assert len(claims) >= 12
    text = "".join("".join(c["source"]) for c in executed["cells"] if c["cell_type"] == "markdown")
    assert "(00_nnk_geometry.ipynb)" in text and "(02_loo_generalization.ipynb)" in text
    assert 2 <= text.count("<details><summary>Answer</summary>") <= 3
