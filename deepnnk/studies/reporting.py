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


def repo_root(start: str | os.PathLike | None = None) -> Path | None:
    """The deepnnk checkout that holds ``start`` (default: the working directory), or None.

    A notebook runs in ``notebooks/`` (JupyterLab, papermill ``--cwd notebooks``); its default
    folders are the checkout's top-level ``data/``, ``checkpoints/`` and ``results/``."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "reproduce.sh").is_file() and (folder / "deepnnk" / "__init__.py").is_file():
            return folder
    return None


#: The folders a notebook reads and writes: parameter name -> (environment variable, default).
LOCATIONS = {
    "data_root": ("DEEPNNK_DATA", "data"),
    "checkpoints_root": ("DEEPNNK_CHECKPOINTS", "checkpoints"),
    "results_root": ("DEEPNNK_RESULTS", "results"),
}


def locations(data_root: str = "", checkpoints_root: str = "", results_root: str = ""):
    """``(data_root, checkpoints_root, results_root)`` as every notebook resolves them.

    Each is the parameter if non-empty, else its environment variable (``$DEEPNNK_DATA``,
    ``$DEEPNNK_CHECKPOINTS``, ``$DEEPNNK_RESULTS``; ``reproduce.sh`` sets all three), else the
    folder of that name at the top of the checkout (:func:`repo_root`), else in the working
    directory. One convention for all notebooks, and no machine path in a parameters cell."""
    given = {"data_root": data_root, "checkpoints_root": checkpoints_root}
    given["results_root"] = results_root
    top = repo_root() or Path.cwd()
    out = []
    for name, (env, default) in LOCATIONS.items():
        value = given[name] or os.environ.get(env) or str(top / default)
        out.append(str(value))
    return tuple(out)


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


# --------------------------------------------------------------------------- claims

#: Key of the output metadata that carries a claim's template (see :func:`render_claim`).
CLAIM_METADATA = "deepnnk_claim"


def render_claim(template: str, metrics: dict) -> str:
    """A sentence of prose whose numbers come from ``metrics``: ``template.format(m=metrics)``.

    The template names each number by its path in ``metrics.json``, e.g.
    ``"LOO-NNK is {m[summary][loo_error]:.3f}, {m[summary][gap]:.1%} below the test error"``,
    so a profile can only ever quote its own run. ``metrics`` is first converted as
    :func:`save_metrics` writes it, so the sentence is exactly what the saved file gives.
    A missing key raises KeyError naming the path."""
    try:
        return template.format(m=plain(metrics))
    except KeyError as err:
        raise KeyError(
            f"claim template refers to metrics key {err} that this run did not record; "
            f"template: {template!r}"
        ) from None


def notebook_claims(notebook: str | os.PathLike) -> list[tuple[str, str]]:
    """``(template, shown text)`` of every claim displayed in an executed notebook."""
    nb = json.loads(Path(notebook).read_text())
    found = []
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            meta = out.get("metadata", {}).get(CLAIM_METADATA)
            if meta is None:
                continue
            text = out.get("data", {}).get("text/markdown", "")
            found.append((meta["template"], text if isinstance(text, str) else "".join(text)))
    return found


def check_claims(notebook: str | os.PathLike, metrics_path: str | os.PathLike | None = None):
    """Re-render every claim of an executed notebook from its ``metrics.json``.

    Returns ``(n_claims, mismatches)``, mismatches as ``(template, shown, expected)``: a claim
    that quotes a number its own run did not produce shows up here."""
    notebook = Path(notebook)
    metrics = json.loads(Path(metrics_path or notebook.parent / "metrics.json").read_text())
    claims = notebook_claims(notebook)
    bad = []
    for template, shown in claims:
        expected = render_claim(template, metrics)
        if shown != expected:
            bad.append((template, shown, expected))
    return len(claims), bad
