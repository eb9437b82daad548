"""Shared test helpers: find the real data (``$DEEPNNK_DATA``), or skip with the reason.

Where the data and the optional extras must be there (CI sets ``DEEPNNK_REQUIRE_DATA=1``), a
test that would skip fails instead, naming what is missing: a green run then means every test ran.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deepnnk.nets.data import BIN_DIR, ENV_VAR, PY_DIR, data_root
from deepnnk.nets.paper import CHECKPOINT_DIR, PAPER_MODELS

REQUIRE_ENV_VAR = "DEEPNNK_REQUIRE_DATA"


def required() -> bool:
    """True when missing data or extras must fail the tests rather than skip them."""
    return os.environ.get(REQUIRE_ENV_VAR, "") not in ("", "0")


def skip_or_fail(reason: str):
    """Skip with ``reason``, or fail with it when :func:`required`."""
    if required():
        pytest.fail(f"{reason} ({REQUIRE_ENV_VAR} is set, so this fails instead of skipping)")
    pytest.skip(reason)


def importorskip(name: str, extra: str):
    """``pytest.importorskip``, failing instead under :func:`required`."""
    try:
        return __import__(name)
    except ImportError:
        skip_or_fail(f"{name} is not installed: pip install 'deepnnk[{extra}]'")


def data_root_or_skip(*, cifar: bool = True, checkpoints: bool = True) -> Path:
    """The data root from ``$DEEPNNK_DATA`` (else ``./data``), or skip the calling test.

    Skips (fails under ``DEEPNNK_REQUIRE_DATA=1``) unless the root holds CIFAR-10 (when
    ``cifar``) and all three paper checkpoint folders (when ``checkpoints``).
    """
    root = data_root()
    missing = []
    if cifar and not ((root / BIN_DIR).is_dir() or (root / PY_DIR).is_dir()):
        missing.append(f"{BIN_DIR}/ or {PY_DIR}/")
    if checkpoints:
        absent = [
            m.folder
            for m in PAPER_MODELS.values()
            if not (root / CHECKPOINT_DIR / m.folder).is_dir()
        ]
        if absent:
            missing.append(f"{CHECKPOINT_DIR}/{{{','.join(absent)}}}/")
    if missing:
        skip_or_fail(
            f"real data absent: {root.resolve()} lacks {', '.join(missing)}; "
            f"set {ENV_VAR} to the data root to run this test"
        )
    return root


@pytest.fixture(scope="session")
def real_data_root() -> Path:
    """Data root with CIFAR-10 and the paper checkpoints, else skip."""
    return data_root_or_skip()


@pytest.fixture(scope="session")
def checkpoint_root() -> Path:
    """Data root with the paper checkpoints (CIFAR-10 not needed), else skip."""
    return data_root_or_skip(cifar=False)


# Same examples on every run (the project's determinism rule); no deadline on a shared 2-core box.
from hypothesis import settings  # noqa: E402

settings.register_profile("deepnnk", derandomize=True, deadline=None)
settings.load_profile("deepnnk")


# ----------------------------------------------------------------------------- notebooks
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def notebook_kernel() -> str:
    """The project's kernel ("deepnnk", installed by reproduce.sh), else this Python's own."""
    from jupyter_client.kernelspec import KernelSpecManager

    wanted = os.environ.get("DEEPNNK_KERNEL", "deepnnk")
    return wanted if wanted in KernelSpecManager().find_kernel_specs() else "python3"


def run_notebook(name: str, tmp_path: Path, monkeypatch, kernel: str | None = None, **parameters):
    """Execute ``notebooks/<name>.ipynb`` headless with papermill in the smoke profile, results
    under ``tmp_path``; returns the notebook's results folder."""
    papermill = pytest.importorskip("papermill")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    params = {"profile": "smoke", "results_root": str(tmp_path), **parameters}
    papermill.execute_notebook(
        str(NOTEBOOKS / f"{name}.ipynb"),
        str(tmp_path / f"{name}.ipynb"),
        parameters=params,
        kernel_name=kernel or notebook_kernel(),
        cwd=str(NOTEBOOKS),
        progress_bar=False,
    )
    out = tmp_path / params["profile"] / name
    # Every sentence the notebook rendered from its metrics matches the metrics.json it saved.
    from deepnnk.studies.reporting import check_claims

    _, bad = check_claims(tmp_path / f"{name}.ipynb", out / "metrics.json")
    assert not bad, f"{name}: prose that differs from its own metrics.json: {bad}"
    return out


def off_the_data(fig):
    """Every legend of ``fig`` lies outside every axes' box (the style guide: legends never
    over data); returns the legends."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    assert legends
    for leg in legends:
        box = leg.get_window_extent(renderer)
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent(renderer)), (leg, ax)
    return legends
