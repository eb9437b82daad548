"""Run notebooks/06_reality_checks.ipynb in the smoke profile and check its metrics."""

from __future__ import annotations

import math

import pytest
from conftest import run_notebook

from deepnnk.studies import reality_report
from deepnnk.studies.decoy import METHODS
from deepnnk.studies.reality_checks import EXPLANATIONS, SIMILARITIES
from deepnnk.studies.reporting import load_metrics

FIGURES = (
    "acd_hierarchies",
    "trim_fourier",
    "trim_wavelet",
    "decoy_examples",
    "decoy_accuracy",
    "reliance_scatter",
    "reliance_auc",
    "sanity_curves",
    "sanity_maps",
    "identical_class",
    "awd_filter",
    "awd_loss",
)


@pytest.mark.notebook
@pytest.mark.data
@pytest.mark.slow
def test_notebook_06_smoke(tmp_path, monkeypatch, real_data_root):
    monkeypatch.setenv("DEEPNNK_DATA", str(real_data_root.resolve()))
    monkeypatch.setenv("DEEPNNK_CACHE", str(tmp_path / "cache"))
    out = run_notebook(
        "06_reality_checks", tmp_path, monkeypatch, checkpoints_root=str(tmp_path / "ck")
    )
    m = load_metrics(out)
    sizes = reality_report.profile("smoke")
    assert m["config"]["profile"] == "smoke"
    # CD's invariant on the authors' network and a random one, every kind of mask.
    assert m["cd"]["max_error"] <= 1e-5 and m["cd"]["empty_rel_max"] == 0.0
    assert set(m["cd"]["trained"]) == set(m["cd"]["random"]) and len(m["cd"]["trained"]) == 4
    assert m["acd"]["n_images"] == sizes["acd_images"]
    for kind in ("fourier", "wavelet"):
        assert m["trim"][kind]["top_band"] in m["trim"][kind]["names"]
        assert math.isclose(sum(m["trim"][kind]["top_band_share"]), 1.0)
    # Every Decoy-CIFAR model of the profile was trained here (its own checkpoint folder) and
    # scored; each accuracy a fraction, reliance = clean − swap.
    runs = m["decoy"]["runs"]
    assert len(runs) == len(sizes["decoy_runs"]) * len(sizes["decoy_seeds"])
    assert len(list((tmp_path / "ck").glob("decoy-*"))) == len(runs)
    for r in runs:
        assert 0.0 <= min(r["clean"], r["swap"]) and max(r["clean"], r["swap"]) <= 1.0
        assert r["reliance"] == pytest.approx(r["clean"] - r["swap"])
    assert set(m["decoy"]["reliance"]["spearman"]) == set(METHODS)
    # Sanity curves: one step per parametrised layer, every explanation.
    assert len(m["sanity"]["layers"]) == 7 and set(m["sanity"]["mean"]) == set(EXPLANATIONS)
    # NNK and kNN read the input of fc: re-initialising fc alone leaves their supports as is.
    assert m["sanity"]["after_fc"]["nnk"] == pytest.approx(1.0)
    assert set(m["identical_class"]["rate"]) == set(SIMILARITIES)
    assert all(0.0 <= v <= 1.0 for v in m["identical_class"]["rate"].values())
    assert set(m["awd"]["accuracy"]) == {"distilled", "db3", "cnn"}
    for name in FIGURES:
        assert (out / f"{name}.png").is_file() and (out / f"{name}.pdf").is_file(), name
