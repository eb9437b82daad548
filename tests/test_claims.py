"""Prose numbers come from the run: claims are rendered from metrics and re-checked from files."""

import json

import nbformat
import pytest
from nbclient import NotebookClient

from deepnnk.studies.reporting import check_claims, render_claim, save_metrics


def test_render_claim_formats_nested_metrics_as_saved():
    import numpy as np

    metrics = {"summary": {"acc": np.float64(0.80412), "n": np.int64(7)}}
    text = render_claim("NNK agrees on {m[summary][acc]:.1%} of {m[summary][n]} images", metrics)
    assert text == "NNK agrees on 80.4% of 7 images"


def test_render_claim_names_the_missing_key():
    with pytest.raises(KeyError, match="absent"):
        render_claim("{m[summary][absent]:.2f}", {"summary": {}})


def test_executed_claim_is_rechecked_from_metrics_json(tmp_path):
    """A notebook states a claim through figures.state; check_claims re-renders it from the saved
    metrics.json, and catches a file whose numbers differ from what the prose shows."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "from deepnnk.figures import state\n"
            "from deepnnk.studies.reporting import save_metrics\n"
            "m = {'a': {'b': 0.123456}}\n"
            f"save_metrics({str(tmp_path)!r}, m)\n"
            "state('b is {m[a][b]:.3f}', m)  # no ';': the return value must not show twice"
        )
    ]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    n, bad = check_claims(path)
    assert (n, bad) == (1, [])
    shown = [o for o in nb.cells[0].outputs if o.get("output_type") == "display_data"]
    assert shown[0]["data"]["text/markdown"] == "b is 0.123"
    assert len(nb.cells[0].outputs) == 1  # the sentence once, and no repr of the return value
    save_metrics(tmp_path, {"a": {"b": 0.5}})  # another run's numbers
    n, bad = check_claims(path)
    assert n == 1 and bad == [("b is {m[a][b]:.3f}", "b is 0.123", "b is 0.500")]
    assert json.loads((tmp_path / "metrics.json").read_text())["a"]["b"] == 0.5
