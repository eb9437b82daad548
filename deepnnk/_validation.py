"""Input checks at the package boundary: each error names the problem and the fix."""

from __future__ import annotations

import operator

import numpy as np
import torch


def is_torch(x) -> bool:
    return isinstance(x, torch.Tensor)


def as_numpy(x, name: str, *, ndim: int | None = None, dtype=None) -> np.ndarray:
    """Convert ``x`` (numpy, torch on any device, or nested lists) to a numpy array and check it."""
    if is_torch(x):
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x) if dtype is None else np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric array, got {type(x).__name__}: {err}") from err
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}; reshape it first.")
    if arr.size == 0 or (arr.ndim and arr.shape[0] == 0):
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass at least one row.")
    return arr


def check_finite(arr, name: str) -> None:
    """Raise if ``arr`` (numpy or torch) holds NaN or inf, saying which rows."""
    bad = ~torch.isfinite(arr) if is_torch(arr) else ~np.isfinite(arr)
    if bad.any():
        rows = np.unique(np.nonzero(np.asarray(bad.cpu() if is_torch(bad) else bad))[0])
        raise ValueError(
            f"{name} contains NaN or inf in {rows.size} row(s) (first: {rows[:5].tolist()}); "
            "remove or impute those rows before calling deepnnk."
        )


def check_features(x, name: str = "X", *, allow_torch: bool = False):
    """A finite float matrix [n, d]; returns numpy (or the torch tensor itself if allowed)."""
    if allow_torch and is_torch(x):
        if x.ndim != 2:
            raise ValueError(f"{name} must be 2-D [n, d], got shape {tuple(x.shape)}.")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); pass at least one row.")
        if not torch.is_floating_point(x):
            x = x.float()
        check_finite(x, name)
        return x
    arr = as_numpy(x, name, ndim=2)
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has no features (shape {arr.shape}).")
    if not np.issubdtype(arr.dtype, np.floating):
        if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
            raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}.")
        arr = arr.astype(np.float64)
    check_finite(arr, name)
    return arr


def check_k(k, n: int, *, exclude_self: bool = False, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{name} must be a positive integer, got {k!r}.")
    available = n - 1 if exclude_self else n
    if k > available:
        what = (
            "other training points (leave-one-out excludes the query)" if exclude_self else "points"
        )
        raise ValueError(
            f"{name}={k} neighbours requested but only {available} {what} exist; "
            f"use {name} <= {available} or add more data."
        )
    return int(k)


def check_positive_int(value, name: str) -> int:
    """``value`` as an int ≥ 1 (any integer type; not a bool), else a ValueError naming it."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be a positive int, got {value!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value
