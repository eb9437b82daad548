"""Everything drawn: matplotlib figures for each notebook, and how they are saved and shown.

:func:`save_figure` writes a figure as PNG and PDF (atomically); :func:`publish` also shows it
inline in a notebook, so the executed copy carries every figure, and frees it; :func:`state`
shows a sentence whose numbers are rendered from the run's metrics; :mod:`.style` is the look.
"""

from deepnnk.figures import style
from deepnnk.figures.output import publish, save_figure, state

__all__ = ["publish", "save_figure", "state", "style"]
