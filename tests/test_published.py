"""The executed notebooks under ``published/`` read as a paper: every figure inline, no noise, no
machine path, every rendered claim true of its own metrics.json.

``published/<profile>/<NN_name>/<NN_name>.ipynb`` is written by ``./reproduce.sh --publish`` (the
paper profile) next to its figures and ``metrics.json``. ``$DEEPNNK_PUBLISHED`` points these tests
at another folder laid out the same way (e.g. a smoke run: ``./reproduce.sh --profile smoke
--results DIR`` writes ``DIR/smoke/<NN_name>/``). Each checker returns a list of problems, so a
failure names the cell; the checkers themselves are tested on tiny synthetic notebooks below.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import pytest

from deepnnk.studies.reporting import check_claims

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = Path(os.environ.get("DEEPNNK_PUBLISHED") or ROOT / "published")
NOTEBOOKS = sorted(PUBLISHED.glob("*/*/*.ipynb"))

# Absolute paths that would name this machine (or any other) in a published notebook.
MACHINE_PATHS = re.compile(
    r"(?<![\w.])(?:/work/|/root/|/home/|/tmp/|/Users/|/var/folders/|[A-Z]:\\)"
)
# A warning or a progress bar in an output (tqdm: "45%|####  | 9/20 [00:01<00:02, 4.5it/s]").
WARNING = re.compile(r"Warning|warning:")
PROGRESS = re.compile(r"it/s\]|s/it\]|%\|")
TEXT_TYPES = ("text/plain", "text/markdown", "text/html", "text/latex")


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _outputs(nb: dict):
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []):
            yield i, out


def _output_texts(out: dict) -> list[str]:
    """The text a reader sees in one output (no image data: base64 can spell anything)."""
    texts = []
    if out.get("output_type") == "stream":
        texts.append(_text(out.get("text", "")))
    elif out.get("output_type") == "error":
        texts += [out.get("ename", ""), out.get("evalue", ""), *out.get("traceback", [])]
    for mime in TEXT_TYPES:
        if mime in out.get("data", {}):
            texts.append(_text(out["data"][mime]))
    return texts


def inline_pngs(nb: dict) -> list[bytes]:
    """The bytes of every image/png output of the notebook."""
    return [
        base64.b64decode(_text(out["data"]["image/png"]))
        for _, out in _outputs(nb)
        if "image/png" in out.get("data", {})
    ]


def missing_inline_figures(nb: dict, folder: Path) -> list[str]:
    """The PNG files in ``folder`` that the notebook does not show, byte for byte, inline."""
    shown = set(inline_pngs(nb))
    return [p.name for p in sorted(folder.glob("*.png")) if p.read_bytes() not in shown]


def noisy_outputs(nb: dict) -> list[str]:
    """Errors, stderr streams, warnings and progress bars among the outputs, as ``cell i: ...``."""
    found = []
    for i, out in _outputs(nb):
        kind = out.get("output_type")
        if kind == "error":
            found.append(f"cell {i}: error {out.get('ename')}: {out.get('evalue')}")
        elif kind == "stream" and out.get("name") == "stderr":
            found.append(f"cell {i}: stderr {_text(out.get('text', ''))[:120]!r}")
        for text in _output_texts(out):
            for pattern, what in ((WARNING, "warning"), (PROGRESS, "progress bar")):
                m = pattern.search(text)
                if m:
                    context = text[max(0, m.start() - 60) : m.end() + 60]
                    found.append(f"cell {i}: {what} {context!r}")
    return found


def machine_paths(nb: dict) -> list[str]:
    """Absolute paths in the cells' sources, their outputs' text and papermill's record."""
    places = [(f"cell {i} source", _text(c.get("source", ""))) for i, c in enumerate(nb["cells"])]
    places += [(f"cell {i} output", t) for i, out in _outputs(nb) for t in _output_texts(out)]
    record = nb.get("metadata", {}).get("papermill", {})
    places += [
        (f"metadata papermill {k}", str(record.get(k, ""))) for k in ("input_path", "output_path")
    ]
    found = []
    for where, text in places:
        for m in MACHINE_PATHS.finditer(text):
            found.append(f"{where}: {text[max(0, m.start() - 40) : m.end() + 60]!r}")
    return found


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _id(path: Path) -> str:
    return f"{path.parent.parent.name}/{path.stem}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_every_figure_file_is_shown_inline(path):
    missing = missing_inline_figures(_load(path), path.parent)
    assert not missing, f"{_id(path)}: figure files not shown inline (figures.publish): {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_no_error_warning_or_progress_bar(path):
    noise = noisy_outputs(_load(path))
    assert not noise, f"{_id(path)}: " + "\n".join(noise)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_no_machine_path(path):
    found = machine_paths(_load(path))
    assert not found, f"{_id(path)}: absolute machine paths:\n" + "\n".join(found)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_metrics_saved(path):
    assert (path.parent / "metrics.json").is_file(), f"{_id(path)}: no metrics.json beside it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_claims_rerender_from_metrics(path):
    metrics = path.parent / "metrics.json"
    if not metrics.is_file():
        pytest.fail(f"{_id(path)}: no metrics.json to check its claims against")
    _, bad = check_claims(path, metrics)
    assert not bad, f"{_id(path)}: prose that differs from its metrics.json: {bad}"


def test_published_notebooks_found():
    """The glob above found something: an empty published/ would pass every check vacuously."""
    assert NOTEBOOKS, f"no executed notebook under {PUBLISHED}/*/*/ (./reproduce.sh --publish)"


# ----------------------------------------------------------------- the checkers, on tiny notebooks
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


def _nb(*outputs, source="x = 1") -> dict:
    return {
        "cells": [
            {"cell_type": "code", "source": source, "metadata": {}, "outputs": list(outputs)}
        ],
        "metadata": {"papermill": {"input_path": "notebooks/x.ipynb", "output_path": "x.ipynb"}},
    }


def _png_output(data: bytes) -> dict:
    encoded = base64.b64encode(data).decode()
    return {"output_type": "display_data", "data": {"image/png": encoded, "text/plain": "<Image>"}}


def _stream(text: str, name: str = "stdout") -> dict:
    return {"output_type": "stream", "name": name, "text": text}


def test_checker_inline_figures(tmp_path):
    (tmp_path / "shown.png").write_bytes(PNG)
    (tmp_path / "figure.pdf").write_bytes(b"%PDF")  # only PNGs are looked at
    assert missing_inline_figures(_nb(_png_output(PNG)), tmp_path) == []
    assert missing_inline_figures(_nb(), tmp_path) == ["shown.png"]
    assert missing_inline_figures(_nb(_png_output(PNG + b"x")), tmp_path) == ["shown.png"]
    # base64 as nbformat may store it: split into lines, as a list of strings
    lines = base64.encodebytes(PNG).decode().splitlines(keepends=True)
    out = {"output_type": "display_data", "data": {"image/png": lines}}
    assert missing_inline_figures(_nb(out), tmp_path) == []


def test_checker_noise():
    assert noisy_outputs(_nb(_stream("LOO error 0.205\n"), _png_output(PNG))) == []
    error = {"output_type": "error", "ename": "ValueError", "evalue": "bad", "traceback": []}
    assert "error ValueError" in noisy_outputs(_nb(error))[0]
    assert "stderr" in noisy_outputs(_nb(_stream("hello", name="stderr")))[0]
    assert "warning" in noisy_outputs(_nb(_stream("x.py:3: UserWarning: careful\n")))[0]
    assert "warning" in noisy_outputs(_nb(_stream("warning: careful\n")))[0]
    bar = "epochs:  45%|####5     | 9/20 [00:01<00:02, 4.50it/s]"
    assert "progress bar" in noisy_outputs(_nb(_stream(bar)))[0]
    result = {"output_type": "execute_result", "data": {"text/plain": "10/10 [00:03, 3.1s/it]"}}
    assert "progress bar" in noisy_outputs(_nb(result))[0]


def test_checker_machine_paths():
    assert machine_paths(_nb(_stream("saved error_curves.png\n"))) == []
    assert machine_paths(_nb(source='results_root = "/home/me/r"'))[0].startswith("cell 0 source")
    assert machine_paths(_nb(_stream("wrote /tmp/x/metrics.json\n")))[0].startswith("cell 0 output")
    nb = _nb()
    nb["metadata"]["papermill"]["output_path"] = "/work/main/published/paper/x.ipynb"
    assert machine_paths(nb)[0].startswith("metadata papermill output_path")
    # image data is not text: base64 may spell "/tmp/" by chance
    assert machine_paths(_nb(_png_output(base64.b64decode("AA/tmp/A")))) == []


def test_checker_claims(tmp_path):
    from deepnnk.studies.reporting import CLAIM_METADATA

    template = "NNK agrees on {m[agree]:.1%} of images."

    def claim(shown):
        meta = {CLAIM_METADATA: {"template": template}}
        return {"output_type": "display_data", "data": {"text/markdown": shown}, "metadata": meta}

    (tmp_path / "metrics.json").write_text(json.dumps({"agree": 0.804}))
    good, bad = tmp_path / "good.ipynb", tmp_path / "bad.ipynb"
    good.write_text(json.dumps(_nb(claim("NNK agrees on 80.4% of images."))))
    bad.write_text(json.dumps(_nb(claim("NNK agrees on 76.0% of images."))))
    assert check_claims(good, tmp_path / "metrics.json") == (1, [])
    n, mismatches = check_claims(bad, tmp_path / "metrics.json")
    assert n == 1 and mismatches[0][2] == "NNK agrees on 80.4% of images."
