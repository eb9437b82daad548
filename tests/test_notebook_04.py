"""Run notebooks/04_generative.ipynb in the smoke profile and check its metrics, its rendered
claims and its outputs (no path, warning or progress bar)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_notebook

from deepnnk.nets import dcgan, features
from deepnnk.nets.data import load_cifar10
from deepnnk.studies import generative
from deepnnk.studies.explanations import sample_indices
from deepnnk.studies.reporting import check_claims, load_metrics

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
    # The new scores, their words, the memorisation caveats and the Fréchet distances.
    for name in SETS:
        assert c[name]["feature_norm"]["q10"] > 0
        assert (
            0 <= c[name]["nn_cosine_distance"]["q10"] <= c[name]["nn_cosine_distance"]["q90"] <= 2
        )
    assert set(m["reading"]) == {"generated", "pgd"}
    assert set(m["reading"]["pgd"]) == set(generative.SCORES)
    mem = m["memorisation"]
    assert mem["n_closest"] == 8
    for name in ("generated", "real test"):
        r = mem[name]
        assert 0 < r["nn_pixel_min"] <= r["closest_nn_pixel_mean"] <= c[name]["nn_pixel"]["median"]
        assert r["pixel_std_median"] > 0
    q = m["sample_quality"]
    assert q["n_per_set"] == 100 and q["n_train"] == 5000 and q["dimension"] == 512
    assert set(q["fd_to_train"]) == set(SETS) and set(q["fd_to_reference"]) == set(SETS) - {
        "real test"
    }
    assert all(v > 0 for v in q["fd_to_train"].values())
    assert q["fd_ratio_to_reference"]["real test"] == pytest.approx(1.0)
    assert m["summary"]["fd_generated_to_train"] == q["fd_to_train"]["generated"]
    # The generated set's FD, recomputed from the classifier's features of the same images.
    model = generative.load_classifier("paper", real_data_root)
    F_gen = features.extract(model, samples)
    F_train = features.extract(model, x_train[train_ids])
    assert generative.frechet_distance(F_gen, F_train) == pytest.approx(
        q["fd_to_train"]["generated"], rel=1e-6
    )
    # Every number of the prose is rendered from this metrics.json; the outputs are clean.
    executed = tmp_path / "04_generative.ipynb"
    n_claims, bad = check_claims(executed, out / "metrics.json")
    assert n_claims >= 6 and not bad
    for cell in json.loads(executed.read_text())["cells"]:
        for o in cell.get("outputs", []):
            assert o["output_type"] != "error"
            assert not (o["output_type"] == "stream" and o["name"] == "stderr"), o
            assert "application/vnd.jupyter.widget-view+json" not in o.get("data", {}), o
            data = {k: v for k, v in o.get("data", {}).items() if k.startswith("text/")}
            text = json.dumps([data, o.get("text", "")])
            assert str(tmp_path) not in text and "/work/" not in text, text[:200]
    names = ["samples_grid", "network_classes", "score_histograms", "norm_and_angle"]
    names += ["nearest_training_generated", "nearest_training_real"]
    names += [f"generated_gallery_{i}" for i in m["galleries"]["generated_ids"]]
    for name in names:
        assert (out / f"{name}.png").is_file() and (out / f"{name}.pdf").is_file(), name
