r"""NNK interpolation of real-valued targets: a scikit-learn regressor beside NNKClassifier.

For a query q with candidate set S (its k nearest training points by squared L2 on the raw
features) and NNK weights θ from (1) in :mod:`deepnnk.solver`, the prediction interpolates the
training targets over the NNK neighbours (the support of θ):

    ŷ(q) = Σ_j θ_j y_j / Σ_j θ_j ,                                                   (4)

the regression form of the classifier's equation (3). ``weighting="knn"`` uses θ_j = K(q, x_j)
on all k candidates instead (kernel-weighted kNN regression, the Nadaraya–Watson estimator over
the k nearest points).

The candidate search, kernels and solve are :class:`~deepnnk.NNKClassifier`'s own, called (not
copied): its parameter check, query validation and block generator are private methods that this
class borrows, so both estimators stay identical on the same features.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.validation import check_is_fitted, validate_data

from .classifier import NNKClassifier
from .kernels import normalize_rows, resolve_gram_dtype


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


class NNKRegressor(RegressorMixin, BaseEstimator):
    """Regress by NNK interpolation over the training set (or kernel-weighted kNN).

    Parameters
    ----------
    n_neighbors : k, the number of candidates per query (by squared L2 on the raw features).
    kernel : "cosine" (K = ½ + ½cos) or "gaussian" (exp(−d²/2σ²)).
    solver : "exact" (KKT-exact) or "prune" (the original authors' rule).
    weighting : "nnk" (θ from the NNK problem) or "knn" (θ_j = K(q, x_j) on all k candidates).
    sigma : Gaussian bandwidth; None means per query, the distance to its k-th candidate / 3.
    tol : solver tolerance (see :func:`deepnnk.solve_nnk`).
    batch_size : queries per block of kernel + solve work; bounds memory (~k²·8 bytes a query).
    backend : kNN backend, "torch" (exact) or "faiss".
    gram_dtype : "auto", "float32" or "float64", resolved as in :class:`~deepnnk.NNKClassifier`.

    Attributes
    ----------
    n_features_in_, X_fit_ ``[N, d]``, y_fit_ ``[N, m]`` (float64; m = 1 for a 1-D target),
    gram_dtype_.
    """

    def __init__(
        self,
        n_neighbors: int = 50,
        kernel: str = "cosine",
        solver: str = "exact",
        weighting: str = "nnk",
        sigma: float | None = None,
        tol: float = 1e-10,
        batch_size: int = 2048,
        backend: str = "torch",
        gram_dtype: str = "auto",
    ):
        self.n_neighbors = n_neighbors
        self.kernel = kernel
        self.solver = solver
        self.weighting = weighting
        self.sigma = sigma
        self.tol = tol
        self.batch_size = batch_size
        self.backend = backend
        self.gram_dtype = gram_dtype

    # The classifier's machinery, shared rather than copied (private there, used here on
    # purpose: the two estimators must find the same candidates and the same θ).
    _check_params = NNKClassifier._check_params
    _queries = NNKClassifier._queries
    _blocks = NNKClassifier._blocks

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
        k = self.n_neighbors
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"n_neighbors must be a positive integer, got {k!r}.")
        if k >= X.shape[0]:
            raise ValueError(
                f"n_neighbors={k} must be smaller than the number of training points "
                f"(n_samples={X.shape[0]}): leave-one-out needs k other points. Lower "
                "n_neighbors or add training data."
            )
        self._y_1d = y.ndim == 1
        self.y_fit_ = y[:, None] if self._y_1d else y
        self.X_fit_ = X
        # The kernel reads candidates from this copy: unit rows for the cosine kernel.
        base = normalize_rows(X, "X") if self.kernel == "cosine" else X
        self.gram_dtype_ = resolve_gram_dtype(self.gram_dtype, self.kernel, X.shape[1], k)
        self._X_kernel = torch.from_numpy(np.ascontiguousarray(base)).to(
            getattr(torch, self.gram_dtype_)
        )
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
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.target_tags.multi_output = True
        return tags
