r"""NNK interpolation as a scikit-learn classifier, with leave-one-out on the training set.

For a query q with candidate set S (its k nearest training points by squared L2 on the raw
features), the NNK weights θ solve (1) in :mod:`deepnnk.solver`, and the prediction interpolates
the training labels over the NNK neighbours (the support of θ):

    p(c | q) = Σ_j θ_j [y_j = c] / Σ_j θ_j .                                        (3)

``weighting="knn"`` uses θ_j = K(q, x_j) on all k candidates instead: the kernel-weighted kNN
baseline of the paper, through the same code path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._progress import progress
from .kernels import default_sigma, gaussian_from_sqdist, normalize_rows, resolve_gram_dtype
from .neighbors import exact_copies, knn
from .solver import solve_nnk

KERNELS = ("cosine", "gaussian")
SOLVERS = ("exact", "prune")
WEIGHTINGS = ("nnk", "knn")


@dataclass
class Neighbourhoods:
    """The candidate sets of n queries and their kernels.

    index ``[n, k]`` training rows, sorted by distance; sq_dist ``[n, k]`` squared L2 distances;
    k_Sq ``[n, k]`` kernel to the query; K_SS ``[n, k, k]`` kernel among candidates (None for
    kNN weighting, which does not need it).
    """

    index: np.ndarray
    sq_dist: np.ndarray
    k_Sq: np.ndarray
    K_SS: np.ndarray | None


def _gram(Z: torch.Tensor) -> np.ndarray:
    """Z Zᵀ for ``Z [n, k, d]`` as float64 numpy ``[n, k, k]`` (torch bmm uses every core)."""
    return torch.bmm(Z, Z.mT).numpy().astype(np.float64)


def candidate_kernels(
    X_train,
    Xq: np.ndarray,
    index: np.ndarray,
    sq_dist: np.ndarray,
    kernel: str = "cosine",
    sigma=None,
    with_K_SS: bool = True,
    gram_dtype: str = "float64",
    buffer: torch.Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """k_Sq ``[n, k]`` and K_SS ``[n, k, k]`` (float64) for queries ``Xq [n, d]`` and their
    candidates ``X_train[index]``.

    For ``kernel="cosine"``, ``X_train`` must already be row-normalised (a float32 or float64
    array or tensor). Inner products are accumulated in ``gram_dtype``, which callers resolve by
    the package's one rule (:func:`deepnnk.kernels.resolve_gram_dtype`): float32 (as the authors
    did) is about twice as fast as float64 here and moves K by ~1e-7. ``buffer`` (at least
    ``[n·k, d]`` of that dtype) receives the gathered candidates: reusing one across blocks is 3×
    faster here than a fresh allocation, whose pages the OS must fault in each time.
    """
    dt = getattr(torch, gram_dtype)
    Xt = X_train if isinstance(X_train, torch.Tensor) else torch.from_numpy(np.asarray(X_train))
    Xt = Xt.to(dt)
    flat = torch.from_numpy(np.ascontiguousarray(index)).reshape(-1)
    if buffer is not None and buffer.dtype == dt and buffer.shape[0] >= len(flat):
        Z = torch.index_select(Xt, 0, flat, out=buffer[: len(flat)])
    else:
        Z = Xt[flat]
    Z = Z.view(*index.shape, Xt.shape[1])  # [n, k, d]
    if kernel == "cosine":
        qn = torch.from_numpy(normalize_rows(Xq, "query features")).to(dt)
        k_Sq = torch.bmm(Z, qn[:, :, None])[:, :, 0].mul_(0.5).add_(0.5).clamp_(0.0, 1.0)
        if not with_K_SS:
            return k_Sq.double().numpy(), None
        K_SS = torch.bmm(Z, Z.mT).mul_(0.5).add_(0.5).clamp_(0.0, 1.0)
        return k_Sq.double().numpy(), K_SS.double().numpy()
    if kernel == "gaussian":
        s = default_sigma(sq_dist) if sigma is None else np.broadcast_to(sigma, (len(Xq),))
        if not with_K_SS:
            return gaussian_from_sqdist(sq_dist, s), None
        # Distances from a Gram matrix cancel badly in float32 (low-dimensional data especially),
        # leaving K_SS indefinite: the Gaussian kernel always accumulates in float64.
        Z = Z.to(torch.float64)
        G = _gram(Z)
        sq = np.einsum("nkk->nk", G)
        d2 = sq[:, :, None] + sq[:, None, :] - 2 * G
        # k_Sq from the same float64 inner products as K_SS, not from the kNN's float32
        # distances, and with the query rounded like the stored candidates: an inconsistent
        # pair moves θ (a query equal to a candidate no longer gets it alone).
        qt = torch.from_numpy(np.ascontiguousarray(Xq)).to(dt).to(torch.float64)
        q_sq = torch.einsum("nd,nd->n", qt, qt).numpy()
        cross = torch.einsum("nkd,nd->nk", Z, qt).numpy()
        k_Sq = gaussian_from_sqdist(sq + q_sq[:, None] - 2 * cross, s)
        return k_Sq, gaussian_from_sqdist(d2, s)
    raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}.")


def pin_copies(theta: np.ndarray, copy_pos: np.ndarray) -> np.ndarray:
    """θ = e_j for every row whose query is an exact copy of its candidate j (``copy_pos`` from
    :func:`deepnnk.neighbors.exact_copies`, −1 for none); edits ``theta [n, k]`` in place.

    With K(q, q) = 1 that point is the exact optimum (its gradient K_SS e_j − k_Sq is zero), and
    interpolation must return it; rounding in a float32 Gram matrix would otherwise spread a
    little weight over other candidates.
    """
    rows = np.nonzero(copy_pos >= 0)[0]
    if rows.size:
        theta[rows] = 0.0
        theta[rows, copy_pos[rows]] = 1.0
    return theta


def interpolate(theta: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Equation (3): ``theta [n, k]`` ≥ 0, ``labels [n, k]`` in 0..C−1 → probabilities ``[n, C]``.

    A row with Σθ = 0 (no candidate has positive weight) falls back to its first candidate.
    """
    n, k = theta.shape
    flat = (np.arange(n)[:, None] * n_classes + labels).ravel()
    P = np.bincount(flat, weights=theta.ravel(), minlength=n * n_classes).reshape(n, n_classes)
    total = P.sum(1, keepdims=True)
    empty = total[:, 0] <= 0
    if empty.any():
        P[empty] = 0.0
        P[np.nonzero(empty)[0], labels[empty, 0]] = 1.0
        total[empty] = 1.0
    return P / total


def nnk_residual(K_SS: np.ndarray, k_Sq: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """1 − 2k_Sqᵀθ + θᵀK_SSθ ``[n]``: the squared RKHS distance from the query to its
    interpolation (for kernels with K(q, q) = 1)."""
    quad = np.einsum("ni,nij,nj->n", theta, K_SS, theta)
    return np.maximum(1.0 - 2.0 * np.einsum("ni,ni->n", k_Sq, theta) + quad, 0.0)


class _NNKEstimator(BaseEstimator):
    """What :class:`NNKClassifier` and :class:`~deepnnk.NNKRegressor` share: the parameters and
    their checks, the stored training features, the query validation and the block generator
    that finds each query's candidates and solves for θ. The two estimators differ only in
    what they interpolate (labels or real targets), so they find the same candidates and the
    same θ on the same features."""

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

    # ------------------------------------------------------------------ fitting
    def _check_params(self):
        for name, value, allowed in (
            ("kernel", self.kernel, KERNELS),
            ("solver", self.solver, SOLVERS),
            ("weighting", self.weighting, WEIGHTINGS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}.")
        if self.sigma is not None and not (np.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"sigma must be a positive number or None, got {self.sigma!r}.")

    def _fit_features(self, X):
        """Check ``n_neighbors`` against ``X [N, d]`` and keep X, and the copy the kernel reads."""
        k = self.n_neighbors
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"n_neighbors must be a positive integer, got {k!r}.")
        if k >= X.shape[0]:
            raise ValueError(
                f"n_neighbors={k} must be smaller than the number of training points "
                f"(n_samples={X.shape[0]}): leave-one-out needs k other points. Lower "
                "n_neighbors or add training data."
            )
        self.X_fit_ = X
        # The kernel reads candidates from this copy: unit rows for the cosine kernel.
        base = normalize_rows(X, "X") if self.kernel == "cosine" else X
        self.gram_dtype_ = resolve_gram_dtype(self.gram_dtype, self.kernel, X.shape[1], k)
        self._X_kernel = torch.from_numpy(np.ascontiguousarray(base)).to(
            getattr(torch, self.gram_dtype_)
        )
        return self

    # ------------------------------------------------------------------ core
    def _queries(self, X):
        check_is_fitted(self, "X_fit_")
        return validate_data(self, X, dtype=[np.float64, np.float32], reset=False)

    def _blocks(self, Xq, exclude_self: bool):
        """Yield (slice, Neighbourhoods, θ) over blocks of queries."""
        k = self.n_neighbors
        sq_dist, index = knn(Xq, self.X_fit_, k, exclude_self=exclude_self, backend=self.backend)
        n = len(Xq)
        need_K = self.weighting == "nnk"
        starts = range(0, n, self.batch_size)
        buffer = torch.empty(
            (min(n, self.batch_size) * k, self._X_kernel.shape[1]), dtype=self._X_kernel.dtype
        )
        for start in progress(starts, n > 8 * self.batch_size, "NNK"):
            sl = slice(start, start + self.batch_size)
            k_Sq, K_SS = candidate_kernels(
                self._X_kernel,
                Xq[sl],
                index[sl],
                sq_dist[sl],
                self.kernel,
                self.sigma,
                with_K_SS=need_K,
                gram_dtype=self.gram_dtype_,
                buffer=buffer,
            )
            if need_K:
                theta = solve_nnk(K_SS, k_Sq, method=self.solver, tol=self.tol)
                if self.solver == "exact":
                    pin_copies(theta, exact_copies(Xq[sl], self.X_fit_, index[sl], sq_dist[sl]))
            else:
                theta = k_Sq
            yield sl, Neighbourhoods(index[sl], sq_dist[sl], k_Sq, K_SS), theta

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


class NNKClassifier(ClassifierMixin, _NNKEstimator):
    """Classify by NNK interpolation over the training set (or kernel-weighted kNN).

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
    gram_dtype : "auto", "float32" or "float64": the precision of the candidates' inner products
        for the cosine kernel, resolved by :func:`deepnnk.kernels.resolve_gram_dtype` (the
        package's one rule: "auto" takes float32 when d ≥ 2k; the Gaussian kernel and the
        solver always use float64). The resolved value is ``gram_dtype_``.

    A query that is an exact copy of a training point (found from the exact kNN distances) is
    interpolated by that point alone, θ = e_j, with the exact solver, in any precision.

    Attributes
    ----------
    classes_ ``[C]``, n_features_in_, X_fit_ ``[N, d]``, y_fit_ ``[N]`` (indices into classes_).
    """

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y):
        """Store the training features ``X [N, d]`` and labels ``y [N]``."""
        self._check_params()
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], ensure_min_samples=1)
        check_classification_targets(y)
        self._fit_features(X)
        self.classes_, self.y_fit_ = np.unique(y, return_inverse=True)
        return self

    def _proba(self, Xq, exclude_self):
        P = np.empty((len(Xq), len(self.classes_)))
        for sl, nb, theta in self._blocks(Xq, exclude_self):
            P[sl] = interpolate(theta, self.y_fit_[nb.index], len(self.classes_))
        return P

    # ------------------------------------------------------------------ public API
    def predict_proba(self, X) -> np.ndarray:
        """Interpolated label distribution (3), ``[n, C]`` in the order of ``classes_``."""
        return self._proba(self._queries(X), exclude_self=False)

    def predict(self, X) -> np.ndarray:
        """The class with the largest interpolated probability, ``[n]``."""
        P = self.predict_proba(X)  # first: an unfitted estimator raises NotFittedError
        return self.classes_[np.argmax(P, axis=1)]

    def explain(self, X):
        """Why each query gets its label.

        Returns (index ``[n, k]`` training rows of the candidates, sorted by distance; weights
        ``[n, k]`` normalised to sum to 1, zero off the NNK neighbours; residual ``[n]``, the
        squared kernel-space distance 1 − 2k_Sqᵀθ + θᵀK_SSθ from the query to its interpolation,
        computed with the unnormalised θ; NaN under ``weighting="knn"``, where θ is no fit).
        """
        return self._explain(self._queries(X), exclude_self=False)

    def _explain(self, Xq, exclude_self: bool):
        n, k = len(Xq), self.n_neighbors
        index = np.empty((n, k), dtype=np.int64)
        weights = np.empty((n, k))
        residual = np.full(n, np.nan)
        for sl, nb, theta in self._blocks(Xq, exclude_self=exclude_self):
            index[sl] = nb.index
            total = theta.sum(1, keepdims=True)
            weights[sl] = theta / np.where(total > 0, total, 1.0)
            if nb.K_SS is not None:
                residual[sl] = nnk_residual(nb.K_SS, nb.k_Sq, theta)
        return index, weights, residual

    def loo_predict_proba(self) -> np.ndarray:
        """Leave-one-out: each training point interpolated from its k nearest *other* training
        points (excluded by index, so duplicates stay candidates). ``[N, C]``."""
        check_is_fitted(self, "X_fit_")
        return self._proba(self.X_fit_, exclude_self=True)

    def loo_explain(self):
        """Leave-one-out explanations of the training points: as :meth:`explain`, each point
        interpolated from its k nearest *other* training points (the interpolation
        :meth:`loo_predict_proba` reads its labels from, from one search and one solve).
        Returns (index ``[N, k]``, weights ``[N, k]``, residual ``[N]``)."""
        check_is_fitted(self, "X_fit_")
        return self._explain(self.X_fit_, exclude_self=True)

    def loo_predict(self) -> np.ndarray:
        """Leave-one-out predicted labels ``[N]``."""
        P = self.loo_predict_proba()  # first: an unfitted estimator raises NotFittedError
        return self.classes_[np.argmax(P, axis=1)]

    def loo_error(self) -> float:
        """Leave-one-out error rate on the training set, in [0, 1]."""
        P = self.loo_predict_proba()
        return float(np.mean(np.argmax(P, axis=1) != self.y_fit_))
