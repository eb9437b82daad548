"""Run notebooks/04_generative.ipynb in the smoke profile and check its metrics."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_notebook

from deepnnk.nets import dcgan
from deepnnk.nets.data import load_cifar10
from deepnnk.studies import generative
from deepnnk.studies.explanations import sample_indices
from deepnnk.studies.reporting import load_metrics

SETS = ("generated", "real test", "PGD 8/255")


@pytest.mark.notebook
@pytest.mark.data
@pytest.mark.slow
def test_notebook_04_smoke(tmp_path, monkeypatch, real_data_root):
    monkeypatch.setenv("DEEPNNK_DATA", str(real_data_root.resolve()))
    ck = tmp_path / "checkpoints"
    out = run_notebook("04_generative", tmp_path, monkeypatch, checkpoints_root=str(ck))
    m = load_metrics(out)
    d = m["dcgan"]
    assert d["epochs"] == 1 and d["width"] == 8 and d["n_train"] == 2048
    assert d["generator_parameters"] > 0 and d["training_seconds"] > 0
    assert len(d["history"]) == 1
    c = m["comparison"]
    assert set(c) == set(SETS)
    for name in SETS:
        assert c[name]["n"] == 100
        assert 1 <= c[name]["n_neighbours"]["median"] <= 50
        assert 0 <= c[name]["residual"]["median"] <= 1
        assert 0 <= c[name]["entropy"]["q10"] <= c[name]["entropy"]["q90"] <= np.log2(10) + 1e-9
        assert c[name]["nn_pixel"]["q10"] > 0 and c[name]["nn_feature"]["q10"] >= 0
        assert 0.1 <= c[name]["network_confidence"] <= 1
        for v in c[name].get("auc_vs_reference", {}).values():
            assert 0 <= v <= 1
    assert "auc_vs_reference" not in c["real test"]
    for name, h in m["network_class_histogram"].items():
        assert len(h) == 10 and abs(sum(h) - 1) < 1e-9, name
    # The memorisation numbers, recomputed from the checkpoint the notebook trained: the
    # generator reloads, samples the same images, and their nearest training images agree.
    x_train, _, _, _ = load_cifar10(real_data_root)
    gen = dcgan.load_generator(ck / "dcgan-w8-n2048-seed0")
    samples = dcgan.sample_images(gen, 100, seed=0)
    train_ids = sample_indices(np.ones(len(x_train), bool), 5000, 0)
    dist, _ = generative.nearest_distance(
        generative.pixels(samples), generative.pixels(x_train[train_ids])
    )
    assert np.median(dist) == pytest.approx(c["generated"]["nn_pixel"]["median"], rel=1e-9)
    assert m["summary"]["nn_pixel_median_ratio_generated_to_real"] == pytest.approx(
        c["generated"]["nn_pixel"]["median"] / c["real test"]["nn_pixel"]["median"]
    )
    names = ["samples_grid", "network_classes", "score_histograms"]
    names += ["nearest_training_generated", "nearest_training_real"]
    names += [f"generated_gallery_{i}" for i in m["galleries"]["generated_ids"]]
    for name in names:
        assert (out / f"{name}.png").is_file() and (out / f"{name}.pdf").is_file(), name
