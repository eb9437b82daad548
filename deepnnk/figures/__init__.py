"""Everything drawn: matplotlib figures for each notebook, and how they are saved and shown.

:func:`save_figure` writes a figure as PNG and PDF (atomically); :func:`publish` also shows it
inline in a notebook, so the executed copy carries every figure, and frees it.
"""

from deepnnk.figures.output import publish, save_figure

__all__ = ["publish", "save_figure"]
