"""Kernels that turn features into similarities in [0, 1] with K(a, a) = 1.

Both are computed in float64 here: the NNK solver's optimality check works at the 1e-9 level,
which float32 similarities cannot support. The batched candidate kernels of the classifier may
accumulate inner products in float32 by :func:`resolve_gram_dtype`, the package's one rule.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_features

ZERO_NORM = 1e-300


GRAM_DTYPES = ("auto", "float32", "float64")


def resolve_gram_dtype(requested: str, kernel: str, d: int, k: int) -> str:
    """The one precision rule for the candidates' inner products: "float32" or "float64".

    Every NNK computation in the package (:class:`~deepnnk.NNKClassifier`, the explanation
    tables, the LOO evaluation of :mod:`deepnnk.evaluation`) resolves its Gram precision here,
    for its own ``d`` features and ``k`` candidates. The solver itself always runs in float64.

    - The Gaussian kernel is always float64: its distances come from a Gram matrix and cancel
      badly in float32.
    - The cosine kernel takes float32 (the authors' choice, about 2× faster) when d ≥ 2k, else
      float64: the cosine kernel's K_SS has rank ≤ d + 1, and below that the ~1e-7 float32
      rounding makes the nearly singular K_SS indefinite. An explicit float32 there is refused.
    """
    if requested not in GRAM_DTYPES:
        raise ValueError(f"gram_dtype must be one of {GRAM_DTYPES}, got {requested!r}.")
    if kernel != "cosine":
        return "float64"
    if requested == "auto":
        return "float32" if d >= 2 * k else "float64"
    if requested == "float32" and d < 2 * k:
        raise ValueError(
            f"gram_dtype='float32' with {d} features and k={k}: K_SS has rank ≤ d + 1 < k, and "
            "float32 rounding makes it indefinite, so the NNK weights are unreliable. Use "
            "gram_dtype='float64' (or 'auto')."
        )
    return requested


def kernel_rounding(gram_dtype: str, d: int) -> float:
    """A bound on the rounding error of one kernel entry computed from unit rows of ``d``
    features in ``gram_dtype``: d·eps (the classical bound for a dot product). Tests derive
    their tolerances from it."""
    return float(d * np.finfo(np.dtype(gram_dtype)).eps)


def normalize_rows(X: np.ndarray, name: str = "X") -> np.ndarray:
    """Rows scaled to unit L2 norm, float64 ``[n, d]``. A zero row has no direction: ValueError."""
    X = np.asarray(X, dtype=np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    zero = norms <= ZERO_NORM
    if zero.any():
        rows = np.nonzero(zero)[0]
        raise ValueError(
            f"{name} has {rows.size} zero vector(s) (rows {rows[:5].tolist()}): the cosine kernel "
            "is undefined for them. Drop those rows, add a small constant to the features, or use "
            "kernel='gaussian'."
        )
    return X / norms[:, None]


def cosine_kernel(A, B) -> np.ndarray:
    """K = ½ + ½·cos(a, b) for all pairs: ``A [n, d]``, ``B [m, d]`` → float64 ``[n, m]`` in [0, 1].

    K(a, a) = 1, and K is a valid (positive semi-definite) kernel: it is the inner product of
    z(x) = [x/‖x‖; 1]/√2.
    """
    A = check_features(A, "A")
    B = check_features(B, "B")
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"A has {A.shape[1]} features but B has {B.shape[1]}; they must match.")
    K = 0.5 + 0.5 * (normalize_rows(A, "A") @ normalize_rows(B, "B").T)
    return np.clip(K, 0.0, 1.0, out=K)


def default_sigma(sq_dist: np.ndarray) -> np.ndarray:
    """The bandwidth rule used when σ is not given: σ = (distance to the farthest candidate) / 3.

    ``sq_dist [n, m]`` are squared distances from each of n queries to its m candidates; the rule
    gives one σ per query, ``[n]``. For a query and its k nearest neighbours this is the distance
    to the k-th neighbour / 3, so that neighbour gets weight exp(−4.5) ≈ 0.011.
    """
    sigma = np.sqrt(np.max(sq_dist, axis=1)) / 3.0
    # All candidates at distance 0 (duplicates): any σ gives K = 1; avoid dividing by zero.
    return np.where(sigma > 0, sigma, 1.0)


def gaussian_from_sqdist(sq_dist: np.ndarray, sigma) -> np.ndarray:
    """exp(−d²/2σ²) with σ a scalar or one per row (broadcast over the trailing axes)."""
    sigma = np.asarray(sigma, dtype=np.float64)
    if np.any(~np.isfinite(sigma)) or np.any(sigma <= 0):
        raise ValueError(f"sigma must be positive and finite, got {sigma!r}.")
    sigma = sigma.reshape(sigma.shape + (1,) * (np.ndim(sq_dist) - sigma.ndim))
    return np.exp(-np.maximum(sq_dist, 0.0) / (2.0 * sigma**2))


def squared_distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Pairwise ‖a − b‖², float64 ``[n, m]``, clipped at 0 against rounding."""
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    d2 = np.einsum("ij,ij->i", A, A)[:, None] + np.einsum("ij,ij->i", B, B)[None, :] - 2 * A @ B.T
    return np.maximum(d2, 0.0, out=d2)


def gaussian_kernel(A, B, sigma=None) -> np.ndarray:
    """K = exp(−‖a − b‖² / 2σ²): ``A [n, d]``, ``B [m, d]`` → float64 ``[n, m]`` in (0, 1].

    ``sigma`` is a positive scalar, or one value per row of A ``[n]``. When it is None, each row
    of A gets σ = (its distance to the farthest row of B) / 3 (see :func:`default_sigma`): for a
    query and its k nearest neighbours, the distance to the k-th neighbour / 3. That per-row rule
    makes K(A, B) non-symmetric for A = B; pass an explicit σ when you need a symmetric matrix.
    """
    A = check_features(A, "A")
    B = check_features(B, "B")
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"A has {A.shape[1]} features but B has {B.shape[1]}; they must match.")
    d2 = squared_distances(A, B)
    if sigma is None:
        sigma = default_sigma(d2)
    return gaussian_from_sqdist(d2, sigma)
