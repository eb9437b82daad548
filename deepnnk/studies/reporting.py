"""Where notebook results go, and how: metrics as JSON (figures: :mod:`deepnnk.figures`).

Every notebook writes to ``results/<profile>/<notebook>/``; ``reproduce.sh`` collects the
``metrics.json`` files into its summary table, and the tests read them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from deepnnk.cache import atomic_write, plain
from deepnnk.studies.profiles import PROFILES


def results_dir(profile: str, notebook: str, root: str | os.PathLike | None = None) -> Path:
    """``<root>/<profile>/<notebook>/``, created. ``root`` defaults to ``$DEEPNNK_RESULTS`` or
    ``results``."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}.")
    root = Path(root or os.environ.get("DEEPNNK_RESULTS") or "results")
    out = root / profile / notebook
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_metrics(outdir: str | os.PathLike, metrics: dict, name: str = "metrics.json") -> Path:
    """Write ``metrics`` as indented JSON, atomically."""
    text = json.dumps(plain(metrics), indent=2, sort_keys=True).encode()
    return atomic_write(Path(outdir) / name, lambda f: f.write(text))


def load_metrics(outdir: str | os.PathLike, name: str = "metrics.json") -> dict:
    return json.loads((Path(outdir) / name).read_text())


def _scalars(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    out = []
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out += _scalars(value, name + ".")
        elif isinstance(value, (int, float, str, bool)) or value is None:
            out.append((name, value))
    return out


def print_summary(folder: str | os.PathLike) -> int:
    """Print each notebook's ``summary`` metrics (its headline numbers) as a table.

    Returns 0, or 1 when the folder holds no results."""
    folder = Path(folder)
    found = sorted(folder.glob("*/metrics.json"))
    if not found:
        print(f"no metrics.json under {folder}")
        return 1
    rows = []
    for path in found:
        metrics = json.loads(path.read_text())
        for name, value in _scalars(metrics.get("summary", metrics)):
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            rows.append((path.parent.name, name, shown))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print(f"{'notebook':{w0}s}  {'metric':{w1}s}  value")
    for nb, name, shown in rows:
        print(f"{nb:{w0}s}  {name:{w1}s}  {shown}")
    return 0
