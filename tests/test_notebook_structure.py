"""Every notebook follows the project's pattern: literal parameters, imports from the studies and
figures layers only (plus the top-level NNK API), and short cells (no code cell over 15 lines)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9]*.ipynb"))
MAX_LINES = 15
# What a notebook may import from the package: the NNK core's public API (``from deepnnk import
# NNKClassifier``), a study, and the figures. Networks, data and caches come through the studies.
ALLOWED = ("deepnnk.studies", "deepnnk.figures")


def code_cells(path: Path) -> list[tuple[int, dict, str]]:
    nb = json.loads(path.read_text())
    return [
        (i, c, "".join(c["source"])) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_holds_only_literals(path):
    cells = [
        (i, c, s) for i, c, s in code_cells(path) if "parameters" in c["metadata"].get("tags", [])
    ]
    assert len(cells) == 1, f"{path.name}: exactly one cell must be tagged 'parameters'"
    for node in ast.parse(cells[0][2]).body:
        assert isinstance(node, ast.Assign), f"{path.name}: only assignments in the parameters cell"
        ast.literal_eval(node.value)  # raises on anything but a literal
    names = {t.id for node in ast.parse(cells[0][2]).body for t in node.targets}
    assert "profile" in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_imports_come_from_studies_and_figures(path):
    bad = []
    for i, _, src in code_cells(path):
        for node in ast.walk(ast.parse(src)):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("deepnnk")
            ):
                if node.module != "deepnnk" and not node.module.startswith(ALLOWED):
                    bad.append((i, node.module))
                if node.module == "deepnnk":
                    # the top-level API only (the classes and functions in deepnnk.__all__)
                    import deepnnk

                    bad += [
                        (i, f"deepnnk.{a.name}")
                        for a in node.names
                        if a.name not in deepnnk.__all__
                    ]
            if isinstance(node, ast.Import):
                bad += [(i, a.name) for a in node.names if a.name.startswith("deepnnk")]
    assert not bad, f"{path.name} imports {bad}; import from {ALLOWED} or the top-level API"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_cells_are_short(path):
    long = {
        i: len(s.splitlines()) for i, _, s in code_cells(path) if len(s.splitlines()) > MAX_LINES
    }
    assert not long, f"{path.name}: cells {long} are over {MAX_LINES} lines; move code into a study"
