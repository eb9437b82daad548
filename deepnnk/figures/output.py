"""Save a figure as PNG + PDF and show it inline; state a claim whose numbers come from the run."""

from __future__ import annotations

import os
from pathlib import Path

from deepnnk.cache import atomic_write


class _Shown(list):
    """The saved paths; shows nothing when it ends a cell (the figure is already inline)."""

    def _ipython_display_(self):
        pass


class _Stated(str):
    """The sentence; shows nothing when it ends a cell (it is already displayed as Markdown)."""

    def _ipython_display_(self):
        pass


def save_figure(fig, outdir: str | os.PathLike, name: str, dpi: int = 130) -> list[Path]:
    """Save ``fig`` as ``<name>.png`` and ``<name>.pdf`` in ``outdir``; returns both paths."""
    paths = []
    for ext in ("png", "pdf"):
        path = Path(outdir) / f"{name}.{ext}"
        atomic_write(
            path, lambda f, ext=ext: fig.savefig(f, format=ext, dpi=dpi, bbox_inches="tight")
        )
        paths.append(path)
    return paths


def publish(fig, outdir: str | os.PathLike, name: str, dpi: int = 130) -> list[Path]:
    """:func:`save_figure`, then show the PNG inline (when IPython is running) and close ``fig``.

    Showing the saved PNG rather than the live figure embeds exactly the published image in the
    executed notebook, whatever the matplotlib backend (papermill runs with Agg).
    """
    import matplotlib.pyplot as plt

    paths = save_figure(fig, outdir, name, dpi)
    plt.close(fig)
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        return paths
    if get_ipython() is not None:
        display(Image(filename=str(paths[0])))
    return _Shown(paths)


def state(template: str, metrics: dict) -> str:
    """Show a sentence of prose rendered from this run's ``metrics`` (Markdown, inline).

    ``template`` names each number by its path, ``"{m[summary][nnk_accuracy]:.1%}"``
    (:func:`deepnnk.studies.reporting.render_claim`). The output carries the template in its
    metadata, so a test re-renders it from the saved ``metrics.json``
    (:func:`deepnnk.studies.reporting.check_claims`). Returns the text."""
    from deepnnk.studies.reporting import CLAIM_METADATA, render_claim

    text = render_claim(template, metrics)
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        return text
    if get_ipython() is not None:
        display(Markdown(text), metadata={CLAIM_METADATA: {"template": template}})
    return _Stated(text)
