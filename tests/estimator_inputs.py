"""The feature-side input checks that NNKClassifier and NNKRegressor share (one base class
validates X for both), asserted once here and called by each estimator's test."""

from __future__ import annotations

import numpy as np
import pytest


def check_feature_errors(estimator, X, y, Xt) -> None:
    """``estimator(**params)`` builds an unfitted estimator; ``X [N, d]``, ``y [N]`` fit it and
    ``Xt [n, d]`` are queries. Every bad X gets an error that names the problem."""
    n, d = X.shape
    for bad in (np.nan, np.inf, -np.inf):
        Xb = X.copy()
        Xb[3, 2] = bad
        with pytest.raises(ValueError, match="(?i)nan|inf"):
            estimator(n_neighbors=5).fit(Xb, y)
        Xq = Xt.copy()
        Xq[0, 0] = bad
        with pytest.raises(ValueError, match="(?i)nan|inf"):
            estimator(n_neighbors=5).fit(X, y).predict(Xq)
    # a zero row has no direction: fine for the Gaussian kernel, an error for the cosine one
    Xz = X.copy()
    Xz[7] = 0.0
    with pytest.raises(ValueError, match="zero"):
        estimator(n_neighbors=5).fit(Xz, y)
    estimator(n_neighbors=5, kernel="gaussian").fit(Xz, y).predict(Xt)
    fitted = estimator(n_neighbors=5).fit(X, y)
    with pytest.raises(ValueError, match="zero"):
        fitted.predict(np.zeros((2, d)))
    with pytest.raises(ValueError, match=f"n_samples={n}"):
        estimator(n_neighbors=n).fit(X, y)
    estimator(n_neighbors=n - 1).fit(X, y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        estimator(n_neighbors=5).fit(X, y[:-1])
    with pytest.raises(ValueError, match=f"{d} features"):
        fitted.predict(Xt[:, : d - 1])
    with pytest.raises(ValueError, match="(?i)0 sample"):
        estimator(n_neighbors=5).fit(X[:0], y[:0])
    with pytest.raises(ValueError, match="(?i)0 sample"):
        fitted.predict(Xt[:0])
    with pytest.raises(ValueError, match="2D array"):
        estimator(n_neighbors=5).fit(X[:, 0], y)
    with pytest.raises(ValueError, match="2D array"):
        fitted.predict(Xt[0])
