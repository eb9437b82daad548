"""One place for progress bars: tqdm.auto, silenced by TQDM_DISABLE=1 (set in CI and papermill)."""

from __future__ import annotations

import os

from tqdm.auto import tqdm


def progress(iterable, enabled: bool = True, desc: str | None = None, **kwargs):
    """Wrap ``iterable`` in a tqdm bar when ``enabled`` and TQDM_DISABLE is unset."""
    disable = not enabled or os.environ.get("TQDM_DISABLE", "") not in ("", "0")
    return tqdm(iterable, desc=desc, disable=disable, leave=False, **kwargs)
