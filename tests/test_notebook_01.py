"""Run notebooks/01_cifar_explanations.ipynb in the smoke profile and check its metrics."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deepnnk.reporting import load_metrics

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_cifar_explanations.ipynb"
K = 50


def _kernel() -> str:
    """The project's kernel ("deepnnk", installed by reproduce.sh), else this Python's own."""
    from jupyter_client.kernelspec import KernelSpecManager

    wanted = os.environ.get("DEEPNNK_KERNEL", "deepnnk")
    return wanted if wanted in KernelSpecManager().find_kernel_specs() else "python3"


@pytest.mark.notebook
@pytest.mark.data
@pytest.mark.slow
def test_notebook_01_smoke(tmp_path, monkeypatch, real_data_root):
    root = real_data_root
    papermill = pytest.importorskip("papermill")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("DEEPNNK_DATA", str(root.resolve()))
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(tmp_path / "01_cifar_explanations.ipynb"),
        parameters=dict(profile="smoke", results_root=str(tmp_path), k=K),
        kernel_name=_kernel(),
        cwd=str(NOTEBOOK.parent),
        progress_bar=False,
    )
    out = tmp_path / "smoke" / "01_cifar_explanations"
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
