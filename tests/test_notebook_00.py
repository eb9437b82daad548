"""Run notebooks/00_nnk_geometry.ipynb headless (smoke profile) and check its metrics.json.

Papermill starts the Jupyter kernel named ``python3``. The venv's ipykernel ships that
kernelspec with ``argv[0] = "python"``, which jupyter_client replaces by the interpreter running
the test, so the kernel is this venv's Python. Where the ``python3`` spec points elsewhere, run
``python -m ipykernel install --sys-prefix --name python3`` with the venv's Python.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from conftest import run_notebook

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "00_nnk_geometry.ipynb"
FIGURES = (
    "01_knn_vs_nnk",
    "02_kri_polytope",
    "03_interpolation_field",
    "04_loo_vs_k",
    "05_network_polytopes",
    "06_agreement_and_training",
    "07_k_sweep",
    "08_cosine_bridge",
)


def _check_kernel() -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        pytest.fail(
            "no Jupyter kernel named python3: run `python -m ipykernel install "
            "--sys-prefix --name python3` with this venv's Python"
        )
    exe = spec.argv[0]
    v = sys.version_info
    if exe not in ("python", f"python{v[0]}", f"python{v[0]}.{v[1]}") and not (
        os.path.exists(exe) and os.path.samefile(exe, sys.executable)
    ):
        pytest.fail(
            f"kernel python3 runs {exe}, not {sys.executable}: run `python -m ipykernel "
            "install --sys-prefix --name python3` with this venv's Python"
        )


def _in_unit(x) -> bool:
    return isinstance(x, (int, float)) and 0.0 <= x <= 1.0


@pytest.mark.notebook
def test_notebook_00_smoke(tmp_path, monkeypatch):
    _check_kernel()
    out = run_notebook(
        "00_nnk_geometry", tmp_path, monkeypatch, kernel="python3", interactive=False
    )
    m = json.loads((out / "metrics.json").read_text())
    for name in FIGURES:
        assert (out / f"{name}.png").stat().st_size > 0
        assert (out / f"{name}.pdf").stat().st_size > 0

    assert m["profile"] == "smoke" and m["k"] == 10
    for name in ("moons", "blobs"):
        nb = m["neighbourhood"][name]
        assert 1 <= nb["n_selected"] <= nb["n_candidates"] == m["k"]
        assert abs(sum(nb["weights"]) - 1) < 1e-9 and _in_unit(nb["discarded_outside"])

        pc = m["polytope_check"]
        assert pc["pairs_checked"][name] > 0
        stats = pc["test"][name]
        for key in ("discarded_outside", "queries_all_discarded_outside", "kept_pairs_consistent"):
            assert _in_unit(stats[key])
        assert 1 <= stats["mean_selected"] <= m["k"]

        loo = m["loo"][name]
        assert loo["k"] == m["sizes"]["ks"]
        assert all(_in_unit(e) for e in loo["nnk"] + loo["knn"])
        assert all(1 <= s <= k for s, k in zip(loo["nnk_selected"], loo["k"], strict=True))
    assert m["polytope_check"]["pairwise_kri_matches_solver"] is True

    assert _in_unit(m["field"]["test_error_nnk"]) and _in_unit(m["field"]["test_error_knn"])

    net = m["network"]
    assert net["n_regions"] > 0 and net["boundary_segments"] > 0
    for p in net["probes"]:
        assert p["input_selected"] >= 1 and p["feature_selected"] >= 1
        assert p["input_area"] > 0 and p["feature_area"] > 0 and p["feature_pieces"] >= 1

    assert _in_unit(m["agreement"]["nnk_features"]) and _in_unit(m["agreement"]["nnk_input"])
    ep = m["epochs"]
    assert ep["epoch"][0] == 0 and ep["epoch"][-1] == m["sizes"]["epochs"]
    assert all(n > 0 for n in ep["n_regions"])
    for key in ("loo_nnk_features", "test_error", "agreement_nnk_features"):
        assert len(ep[key]) == len(ep["epoch"]) and all(_in_unit(v) for v in ep[key])
    # A trained network beats chance on the moons.
    assert ep["test_error"][-1] < 0.3

    sw = m["k_sweep"]
    assert sw["k"] == sorted({3, m["k"], 3 * m["k"]}) and len(sw["selected"]) == len(sw["k"])
    assert all(1 <= v <= kk for kk, v in zip(sw["k"], sw["selected"], strict=True))
    assert (sw["k_largest"], sw["selected_largest"]) == (sw["k"][-1], sw["selected"][-1])

    # The 15-line solver agrees with the package's on every test query of both data sets.
    for name in ("moons", "blobs"):
        h = m["hand_solver"][name]
        assert h["n_problems"] == m["sizes"]["n_test"] and h["same_support"] == 1.0
        assert h["max_abs_theta_diff"] <= 1e-6
        assert h["max_kkt_hand"] <= 1e-9 and h["max_kkt_package"] <= 1e-9

    # The cosine bridge: rays from the origin are the two-candidate KRI; the cosine kernel keeps
    # about two neighbours in the plane, fewer than the Gaussian; moving the data changes nothing
    # for the Gaussian kernel.
    c = m["cosine"]
    assert c["k"] == m["k"] and c["in_first_quadrant"] and c["ray_kri_matches_solver"]
    assert c["ray_pairs_checked"] >= 0.99 * m["sizes"]["n_test"] * m["k"] * (m["k"] - 1) / 2
    assert 1 <= c["cosine_mean_selected"] <= 2.5 < c["gaussian_mean_selected"] <= m["k"]
    assert c["gaussian_test_error"] == c["gaussian_test_error_unshifted"]
    assert 0.5 <= c["cosine_is_angular_brackets"] <= 1 and c["exception_objective_gap"] <= 1e-9
    assert 0 < c["median_kernel_spread"] < 0.05
    for key in ("gaussian_test_error", "cosine_test_error", "cosine_test_error_unshifted"):
        assert _in_unit(c[key]), key

    # What the prose quotes.
    for name in ("moons", "blobs"):
        ls = m["loo_summary"][name]
        assert (
            ls["k_largest"] == m["sizes"]["ks"][-1]
            and ls["nnk_at_largest"] == m["loo"][name]["nnk"][-1]
        )
        assert ls["nnk_spread"] >= 0 and ls["knn_spread"] >= 0
    assert set(m["field"]["undecided"]) == {"NNK", "kernel kNN"}
    assert all(_in_unit(v) for v in m["field"]["undecided"].values())
    assert _in_unit(m["agreement"]["loo_nnk_input"])
    es = m["epochs_summary"]
    assert es["epoch_first"] == 0 and es["test_error_last"] == ep["test_error"][-1]
    s = m["summary"]
    assert s["pairwise_kri_matches_solver"] is True and s["n_regions"] == ep["n_regions"][-1]
    for key in (
        "discarded_outside_moons",
        "discarded_outside_blobs",
        "test_error_nnk",
        "test_error_knn",
        "loo_nnk_features",
        "test_error_network",
        "agreement_nnk_features",
    ):
        assert _in_unit(s[key]), key
    assert s["hand_solver_max_theta_diff"] <= 1e-6
    assert s["cosine_mean_selected"] < s["gaussian_mean_selected"]
    assert m["elapsed_s"] > 0


def test_notebook_00_shows_the_hand_solver_and_its_exercises():
    """The solver the notebook shows is the package function, and the closing cell is the
    Exercises with folded answers and the link to notebook 01 (read from the notebook itself)."""
    nb = json.loads(NOTEBOOK.read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    text = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]
    assert any("draw.show_source(study.nnk_by_hand)" in c for c in code)
    ex = [t for t in text if t.startswith("## Exercises")]
    assert len(ex) == 1 and 2 <= ex[0].count("<details><summary>Answer</summary>") <= 3
    assert "(01_cifar_explanations.ipynb)" in text[-1]
    assert not any("print(out)" in c or "{out}" in c for c in code)
