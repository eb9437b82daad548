r"""The leave-one-out NNK evaluation engine: LOO (training side) and test-side NNK and kNN errors
of a feature set, for several k and both solvers, from one neighbour search and one kernel
computation.

For every training point x_i interpolated from its k nearest *other* training points,

    ε̂_LOO = (1/N) Σ_i [ argmax_c p̂_{−i}(c | x_i) ≠ y_i ]

needs no validation set. :func:`evaluate_features` computes, for every k in ``ks``,

- LOO-NNK and LOO-kNN errors on the training set, NNK and kNN errors on the test set (candidates
  from the training set), from **one** neighbour search per side at k_max, whose sorted prefixes
  give every smaller k, and **one** kernel computation at k_max, sliced;
- both NNK solvers ("exact" and the authors' "prune") on the same kernels, with the number of
  predictions on which they disagree;
- the number of NNK neighbours, the residual 1 − 2k_Sqᵀθ + θᵀK_SSθ and the KKT violations.

It is equivalent to ``NNKClassifier(k, kernel, solver).fit(train, y_train).loo_error()`` (and
``predict`` on the test side) for each k and solver, at a fraction of the cost. Pure NNK: arrays
in, plain dicts out; which features, and the caching of results, are the studies' business
(:mod:`deepnnk.studies.loo`).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from deepnnk._progress import progress as _progress
from deepnnk.classifier import candidate_kernels, interpolate, nnk_residual, pin_copies
from deepnnk.kernels import normalize_rows, resolve_gram_dtype
from deepnnk.neighbors import exact_copies, knn
from deepnnk.solver import kkt_residual, solve_nnk

KKT_TOL = 1e-9  # kkt_residual above this: the solver stopped at a non-optimal point


def _exact_prefix_order(Xq, X, sq, idx, ks):
    """Re-sort the k_max candidates of rows with a near-tie at any prefix boundary k in ``ks``.

    :func:`knn` guarantees the k_max set; the order inside it is float32, which can misplace
    two candidates whose distances agree to float32 rounding. Where that could move a candidate
    across a smaller k, recompute the distances in float64 from differences and sort by
    (distance, index), as a separate search at that k would.
    """
    kmax = idx.shape[1]
    inner = [k for k in ks if k < kmax]
    if not inner:
        return sq, idx
    d = X.shape[1]
    eps = float(np.finfo(np.float32).eps)
    q2 = np.einsum("ij,ij->i", Xq, Xq, dtype=np.float64)
    x2 = np.einsum("ij,ij->i", X, X, dtype=np.float64)
    # float32 rounding of ‖q‖² + ‖x‖² − 2q·x is ~√d·eps·(‖q‖² + ‖x‖²) (8√d is generous), for
    # any two of the row's candidates at most twice that at its largest ‖x‖².
    bound = 2 * 8 * d**0.5 * eps * (q2 + x2[idx].max(1))
    unsure = np.zeros(len(sq), dtype=bool)
    for k in inner:
        unsure |= (sq[:, k] - sq[:, k - 1]) <= bound
    rows = np.nonzero(unsure)[0]
    if rows.size == 0:
        return sq, idx
    sq, idx = sq.copy(), idx.copy()
    for start in range(0, rows.size, 256):
        r = rows[start : start + 256]
        diff = X[idx[r]].astype(np.float64) - Xq[r, None, :].astype(np.float64)
        d2 = np.einsum("rkd,rkd->rk", diff, diff)
        # Sort each row by (distance, index): by index first, then stably by distance.
        by_index = np.argsort(idx[r], axis=1, kind="stable")
        d2i = np.take_along_axis(d2, by_index, 1)
        perm = np.take_along_axis(by_index, np.argsort(d2i, axis=1, kind="stable"), 1)
        sq[r] = np.take_along_axis(d2, perm, 1)
        idx[r] = np.take_along_axis(idx[r], perm, 1)
    return sq, idx


def _new_stats(ks, solvers):
    side = {}
    for k in ks:
        entry = {"knn": {"wrong": 0, "soft": 0.0}}
        for s in solvers:
            entry[s] = {
                "wrong": 0,
                "soft": 0.0,
                "nnz": [],
                "residual": 0.0,
                "kkt_bad": 0,
                "kkt_max": 0.0,
                "pred": [],
            }
        side[k] = entry
    return side


def _score(P, truth):
    pred = P.argmax(1)
    return pred, int(np.sum(pred != truth)), float(np.sum(1.0 - P[np.arange(len(P)), truth]))


def gram_dtypes(ks, kernel: str, d: int, gram_dtype: str = "auto") -> dict[int, str]:
    """{k: the Gram precision :class:`~deepnnk.NNKClassifier` would use at that k} — the package's
    one rule, :func:`deepnnk.kernels.resolve_gram_dtype`, applied to each k."""
    return {int(k): resolve_gram_dtype(gram_dtype, kernel, d, int(k)) for k in ks}


def _evaluate_side(
    Xk, X, Xq, yq, y_fit, idx, sq, ks, solvers, kernel, dtypes, tol, batch_size, n_classes, bar,
    name,
):  # fmt: skip
    stats = _new_stats(ks, solvers)
    n = len(Xq)
    # The cosine kernel is computed once per precision, at the largest k that uses it, and sliced
    # for the smaller ones; the Gaussian's default σ depends on k, so it is recomputed per k.
    slice_kernels = kernel == "cosine"
    top = {dt: max(k for k in ks if dtypes[k] == dt) for dt in set(dtypes.values())}
    for start in _progress(range(0, n, batch_size), bar, name):
        sl = slice(start, start + batch_size)
        truth = yq[sl]
        copy_pos = exact_copies(Xq[sl], X, idx[sl], sq[sl])
        if slice_kernels:
            full = {
                dt: candidate_kernels(
                    Xk[dt], Xq[sl], idx[sl, :kt], sq[sl, :kt], kernel, gram_dtype=dt
                )
                for dt, kt in top.items()
            }
        for k in ks:
            if slice_kernels:
                kq_all, K_all = full[dtypes[k]]
                b = np.ascontiguousarray(kq_all[:, :k])
                K = np.ascontiguousarray(K_all[:, :k, :k]) if k < K_all.shape[1] else K_all
            else:
                b, K = candidate_kernels(
                    Xk[dtypes[k]], Xq[sl], idx[sl, :k], sq[sl, :k], kernel, gram_dtype=dtypes[k]
                )
            labels = y_fit[idx[sl, :k]]
            st = stats[k]
            _, wrong, soft = _score(interpolate(b, labels, n_classes), truth)
            st["knn"]["wrong"] += wrong
            st["knn"]["soft"] += soft
            for s in solvers:
                theta = solve_nnk(K, b, method=s, tol=tol)
                if s == "exact":  # as NNKClassifier: an exact copy interpolates itself alone
                    pin_copies(theta, np.where(copy_pos < k, copy_pos, -1))
                pred, wrong, soft = _score(interpolate(theta, labels, n_classes), truth)
                kkt = kkt_residual(K, b, theta)
                e = st[s]
                e["wrong"] += wrong
                e["soft"] += soft
                e["nnz"].append((theta > 0).sum(1))
                e["residual"] += float(nnk_residual(K, b, theta).sum())
                e["kkt_bad"] += int(np.sum(kkt > KKT_TOL))
                e["kkt_max"] = max(e["kkt_max"], float(kkt.max()))
                e["pred"].append(pred)
    out = {}
    for k in ks:
        st = stats[k]
        res = {"knn_error": st["knn"]["wrong"] / n, "knn_soft_error": st["knn"]["soft"] / n}
        preds = {}
        for s in solvers:
            e = st[s]
            nnz = np.concatenate(e["nnz"])
            preds[s] = np.concatenate(e["pred"])
            res[s] = {
                "error": e["wrong"] / n,
                "soft_error": e["soft"] / n,
                "n_neighbors_mean": float(nnz.mean()),
                "n_neighbors_median": float(np.median(nnz)),
                "residual_mean": e["residual"] / n,
                "kkt_violation_fraction": e["kkt_bad"] / n,
                "kkt_max": e["kkt_max"],
            }
        if len(solvers) == 2:
            a, b2 = solvers
            res["changed"] = int(np.sum(preds[a] != preds[b2]))
        out[str(k)] = res
    return out


def evaluate_features(
    train,
    y_train,
    test,
    y_test,
    *,
    ks=(25, 50, 75),
    solvers=("exact", "prune"),
    kernel: str = "cosine",
    tol: float = 1e-10,
    batch_size: int = 2048,
    progress: bool = False,
    gram_dtype: str = "auto",
) -> dict:
    """LOO (train side) and test-side NNK / kNN errors for every k in ``ks`` and every solver.

    One :func:`knn` search per side at k_max (the train side excluding each query by index), whose
    sorted prefixes serve the smaller k; for the cosine kernel one
    :func:`~deepnnk.classifier.candidate_kernels` call per block at k_max, sliced to
    ``K_SS[:, :k, :k]``; every solver runs on the same kernels. Equivalent to
    ``NNKClassifier(k, kernel, solver).fit(train, y_train).loo_error()`` (and ``predict`` on the
    test side) for each k and solver, at a fraction of the cost.

    Precision: each k gets the Gram precision ``NNKClassifier(k, gram_dtype=gram_dtype)`` would
    use (:func:`gram_dtypes`); the kernels are computed once per precision, at the largest k that
    uses it. Exact copies of a query among its candidates interpolate it alone with the exact
    solver, as in the classifier.

    Returns ``{"loo": {k: side}, "test": {k: side}, "gram_dtype": {k: dtype}, "seconds": {...}}``
    with k as a string and
    side = {knn_error, knn_soft_error, <solver>: {error, soft_error, n_neighbors_mean,
    n_neighbors_median, residual_mean, kkt_violation_fraction, kkt_max}, changed} ("changed":
    predictions on which the two solvers disagree, when two are given).
    """
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers, got {ks}.")
    solvers = tuple(solvers)
    for s in solvers:
        if s not in ("exact", "prune"):
            raise ValueError(f"solvers must be 'exact' and/or 'prune', got {s!r}.")
    X = np.ascontiguousarray(train)
    Xt = np.ascontiguousarray(test)
    classes, y_fit = np.unique(np.asarray(y_train), return_inverse=True)
    # Test labels as indices into classes (a label absent from training is always an error).
    pos = np.searchsorted(classes, np.asarray(y_test))
    pos = np.clip(pos, 0, len(classes) - 1)
    y_te = np.where(classes[pos] == np.asarray(y_test), pos, -1)
    kmax = ks[-1]
    dtypes = gram_dtypes(ks, kernel, X.shape[1], gram_dtype)
    # The kernel reads candidates from unit rows in the Gram precision, as NNKClassifier does.
    base = normalize_rows(X, "train features") if kernel == "cosine" else X
    base = torch.from_numpy(np.ascontiguousarray(base))
    Xk = {dt: base.to(getattr(torch, dt)) for dt in set(dtypes.values())}
    seconds = {}
    t = time.perf_counter()
    sq_tr, idx_tr = knn(X, X, kmax, exclude_self=True)
    sq_tr, idx_tr = _exact_prefix_order(X, X, sq_tr, idx_tr, ks)
    sq_te, idx_te = knn(Xt, X, kmax)
    sq_te, idx_te = _exact_prefix_order(Xt, X, sq_te, idx_te, ks)
    seconds["knn"] = time.perf_counter() - t
    t = time.perf_counter()
    common = (ks, solvers, kernel, dtypes, tol, batch_size, len(classes), progress)
    loo = _evaluate_side(Xk, X, X, y_fit, y_fit, idx_tr, sq_tr, *common, "LOO")
    seconds["loo_solve"] = time.perf_counter() - t
    t = time.perf_counter()
    tst = _evaluate_side(Xk, X, Xt, y_te, y_fit, idx_te, sq_te, *common, "test")
    seconds["test_solve"] = time.perf_counter() - t
    gram = {str(k): dt for k, dt in dtypes.items()}
    return {"loo": loo, "test": tst, "gram_dtype": gram, "seconds": seconds}
