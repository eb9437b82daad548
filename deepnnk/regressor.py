r"""NNK interpolation of real-valued targets: a scikit-learn regressor beside NNKClassifier.

For a query q with candidate set S (its k nearest training points by squared L2 on the raw
features) and NNK weights θ from (1) in :mod:`deepnnk.solver`, the prediction interpolates the
training targets over the NNK neighbours (the support of θ):

    ŷ(q) = Σ_j θ_j y_j / Σ_j θ_j ,                                                   (4)

the regression form of the classifier's equation (3). ``weighting="knn"`` uses θ_j = K(q, x_j)
on all k candidates instead (kernel-weighted kNN regression, the Nadaraya–Watson estimator over
the k nearest points).

The parameters, the candidate search, kernels and solve are :class:`~deepnnk.NNKClassifier`'s
own: both estimators derive from one private base class, so they find the same candidates and
the same θ on the same features.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.validation import check_is_fitted, validate_data

from .classifier import _NNKEstimator


def interpolate_values(theta: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Equation (4): ``theta [n, k]`` ≥ 0 and ``values [n, k, m]`` → ``[n, m]``.

    A row with Σθ = 0 (no candidate has positive weight) falls back to its first (nearest)
    candidate, as :func:`deepnnk.classifier.interpolate` does.
    """
    total = theta.sum(1)
    out = np.einsum("nk,nkm->nm", theta, values)
    empty = total <= 0
    if empty.any():
        out[empty] = values[empty, 0]
        total = np.where(empty, 1.0, total)
    return out / total[:, None]


class NNKRegressor(RegressorMixin, _NNKEstimator):
    """Regress by NNK interpolation over the training set (or kernel-weighted kNN).

    Parameters
    ----------
    The same as :class:`~deepnnk.NNKClassifier`'s, with the same meaning and defaults:
    ``n_neighbors`` (k), ``kernel`` ("cosine" or "gaussian"), ``solver`` ("exact" or "prune"),
    ``weighting`` ("nnk" or "knn"), ``sigma``, ``tol``, ``batch_size``, ``backend`` and
    ``gram_dtype``.

    Attributes
    ----------
    n_features_in_, X_fit_ ``[N, d]``, y_fit_ ``[N, m]`` (float64; m = 1 for a 1-D target),
    gram_dtype_.
    """

    def fit(self, X, y):
        """Store the training features ``X [N, d]`` and real targets ``y [N]`` or ``[N, m]``."""
        self._check_params()
        X, y = validate_data(
            self,
            X,
            y,
            dtype=[np.float64, np.float32],
            ensure_min_samples=1,
            y_numeric=True,
            multi_output=True,
        )
        y = np.asarray(y, dtype=np.float64)
        if not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or inf; remove or impute those targets.")
        self._fit_features(X)
        self._y_1d = y.ndim == 1
        self.y_fit_ = y[:, None] if self._y_1d else y
        return self

    def _predict(self, Xq, exclude_self: bool) -> np.ndarray:
        out = np.empty((len(Xq), self.y_fit_.shape[1]))
        for sl, nb, theta in self._blocks(Xq, exclude_self):
            out[sl] = interpolate_values(theta, self.y_fit_[nb.index])
        return out[:, 0] if self._y_1d else out

    def predict(self, X) -> np.ndarray:
        """Equation (4) for each query of ``X [n, d]``: ``[n]`` (or ``[n, m]`` for a 2-D y)."""
        return self._predict(self._queries(X), exclude_self=False)

    def loo_predict(self) -> np.ndarray:
        """Leave-one-out: each training point interpolated from its k nearest *other* training
        points (excluded by index, so duplicates stay candidates). ``[N]`` or ``[N, m]``."""
        check_is_fitted(self, "X_fit_")
        return self._predict(self.X_fit_, exclude_self=True)

    def loo_score(self) -> float:
        """Leave-one-out R² on the training set (uniform average over outputs)."""
        y = self.y_fit_[:, 0] if self._y_1d else self.y_fit_
        return float(r2_score(y, self.loo_predict()))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()  # the base already refuses NaN
        tags.target_tags.multi_output = True
        return tags
