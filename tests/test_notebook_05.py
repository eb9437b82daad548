"""Run notebooks/05_your_own_model.ipynb in the smoke profile and check its metrics."""

from __future__ import annotations

import pytest
from conftest import run_notebook

from deepnnk.studies import your_model
from deepnnk.studies.reporting import load_metrics

FIGURES = (
    "query_gallery",
    "paper_cnn_layers",
    "resnet18_layers",
    "mislabel_detection",
    "mislabel_roc",
    "mislabel_suspects",
)


@pytest.mark.notebook
@pytest.mark.data
@pytest.mark.slow
def test_notebook_05_smoke(tmp_path, monkeypatch, real_data_root):
    monkeypatch.setenv("DEEPNNK_DATA", str(real_data_root.resolve()))
    monkeypatch.setenv("DEEPNNK_CACHE", str(tmp_path / "cache"))
    out = run_notebook(
        "05_your_own_model", tmp_path, monkeypatch, checkpoints_root=str(tmp_path / "ck")
    )
    m = load_metrics(out)
    sizes = your_model.profile("smoke")
    assert m["config"]["profile"] == "smoke"
    # The paper CNN's table: six conv layers and the features, for both models (metrics.json
    # sorts its keys, so the order is saved beside them).
    assert m["paper_cnn_layers"]["layer_order"] == list(your_model.PAPER_CNN_LAYERS)
    for model in ("regularised", "overfit"):
        table = m["paper_cnn_layers"][model]
        assert set(table) == set(your_model.PAPER_CNN_LAYERS)
        for row in table.values():
            for key in ("loo_nnk", "test_nnk", "loo_knn", "test_knn"):
                assert 0.0 <= row[key] <= 0.9, (model, key, row)  # better than chance (0.9)
            assert 1.0 <= row["neighbours_mean"] <= m["config"]["k"]
        # The paper's claim at its layer: the features separate the classes best.
        assert table["features"]["test_nnk"] < table["convs.0"]["test_nnk"]
    # The ResNet-18 was trained here (checkpoints under the run's own folder) and tabulated.
    assert (tmp_path / "ck" / f"resnet18-seed0-n{sizes['resnet_n_train']}").is_dir()
    assert m["resnet18"]["layer_order"] == list(your_model.RESNET_LAYERS)
    assert set(m["resnet18"]["layers"]) == set(your_model.RESNET_LAYERS)
    assert m["resnet18"]["accuracy"]["n_train"] == sizes["resnet_n_train"]
    # The mislabel experiment: the flip rate exactly, every score, and each AUC a probability.
    r = m["mislabel"]
    assert r["n_train"] == sizes["mislabel_n_train"] and r["n_flipped"] == r["n_train"] // 10
    assert set(r["detection"]) == set(your_model.SCORES)
    for d in r["detection"].values():
        assert 0.0 <= d["auc"] <= 1.0 and 0.0 <= d["precision_at_rate"] <= 1.0
    # Even two epochs on 1,000 images: the label-agreement scores find flips above chance.
    assert r["detection"]["nnk_other_share"]["auc"] > 0.6
    assert m["suspects"]["n"] == sizes["n_suspects"]
    for name in FIGURES:
        assert (out / f"{name}.png").is_file() and (out / f"{name}.pdf").is_file(), name
