r"""Leave-one-out NNK as a generalization estimate: the heavy, cached work behind notebook 02.

For a trained network, take the features of the last conv block. Each *training* point is
interpolated from its k nearest *other* training points (leave-one-out, LOO); the LOO error

    ε̂_LOO = (1/N) Σ_i [ argmax_c p̂_{−i}(c | x_i) ≠ y_i ]

needs no validation set. The paper's claim is that LOO-NNK tracks the test error and ranks
models by it. This module computes, per checkpoint,

- LOO-NNK and LOO-kNN errors on the training set, NNK and kNN errors on the test set (candidates
  from the training set), for several k from **one** neighbour search per side at k_max, whose
  sorted prefixes give every smaller k, and **one** kernel computation at k_max, sliced;
- both NNK solvers ("exact" and the authors' "prune") on the same kernels, with the number of
  predictions on which they disagree;
- the number of NNK neighbours and the residual 1 − 2k_Sqᵀθ + θᵀK_SSθ;
- the network's own train and test error (its logits are ``fc`` of the same features);
- optionally the authors' 5-fold linear-SVM baseline (:func:`svm_cv_error`).

Each checkpoint's result is cached as JSON (written atomically) under a key covering everything
that produced it, so re-running a notebook costs nothing: see :func:`evaluate_checkpoint`.
"""

from __future__ import annotations

import functools
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deepnnk import cache
from deepnnk._progress import progress as _progress
from deepnnk.classifier import candidate_kernels, interpolate, nnk_residual, pin_copies
from deepnnk.kernels import normalize_rows, resolve_gram_dtype
from deepnnk.neighbors import exact_copies, knn
from deepnnk.nets.checkpoints import MODELS
from deepnnk.nets.features import extract
from deepnnk.nets.loading import WEIGHTS, load_network, resolve_data_root, source_digest
from deepnnk.nets.train import torch_threads
from deepnnk.solver import kkt_residual, solve_nnk

# The modules whose source goes into the cache keys: everything between the checkpoint file and
# the numbers (loading, features, search, kernels, solver, scoring).
NETWORK_CODE = (
    "studies.loo",
    "nets.paper",
    "nets.tf_bundle",
    "nets.train",
    "nets.models",
    "nets.data",
    "nets.features",
    "cache",
)
LOO_CODE = (*NETWORK_CODE, "neighbors", "kernels", "classifier", "solver", "_solver_numba")
SVM_CODE = NETWORK_CODE
KKT_TOL = 1e-9  # kkt_residual above this: the solver stopped at a non-optimal point

# The paper's reported numbers at epoch 20, k = 50, as published (the authors' prune solver,
# full 50k/10k data): LOO-NNK and LOO-kNN on the training set, NNK on the test set.
PAPER_TABLE: dict[str, dict[str, float]] = {
    "underparameterised": {"loo_nnk": 0.2592, "loo_knn": 0.3045, "test_nnk": 0.2657},
    "regularised": {"loo_nnk": 0.2053, "loo_knn": 0.2634, "test_nnk": 0.2171},
    "overfit": {"loo_nnk": 0.2249, "loo_knn": 0.3232, "test_nnk": 0.2612},
}


def experiments_cache_dir(kind: str = "loo") -> Path:
    """Where checkpoint results of ``kind`` ("loo" or "svm") are cached: ``<cache root>/<kind>``
    (:mod:`deepnnk.cache`)."""
    return cache.cache_dir(kind)


# --------------------------------------------------------------------------- data and networks


@functools.lru_cache(maxsize=2)
def _cifar(root: str):
    from deepnnk.nets.data import load_cifar10

    return load_cifar10(root)


def subset_indices(n_total: int, n: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of a fixed random subset of ``n`` of ``n_total`` rows (all when n is None)."""
    if n is None or n >= n_total:
        return np.arange(n_total)
    if n < 1:
        raise ValueError(f"subset size must be positive, got {n}.")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_total, size=int(n), replace=False))


@dataclass
class CheckpointFeatures:
    """Features of one checkpoint on (a subset of) CIFAR-10, and the network's own errors."""

    weights: str
    model: str
    epoch: int
    train: np.ndarray  # [n_train, 16C] float32
    test: np.ndarray  # [n_test, 16C] float32
    y_train: np.ndarray
    y_test: np.ndarray
    train_index: np.ndarray  # rows of the official training order
    test_index: np.ndarray
    net_train_error: float
    net_test_error: float
    seconds: float


def _features_and_logits(net, images, cache_dir):
    # One thread: the measured fastest for convolutions on this shared 2-core machine.
    with torch_threads(1):
        feats = extract(net, images, cache_dir=cache_dir)
    with torch.inference_mode():
        logits = net.fc(torch.from_numpy(feats)).numpy()
    return feats, logits


def checkpoint_features(
    weights: str,
    model: str,
    epoch: int,
    data_root=None,
    *,
    checkpoints_root=None,
    n_train: int | None = None,
    n_test: int | None = None,
    subset_seed: int = 0,
    cache_dir=None,
) -> CheckpointFeatures:
    """Train and test features of one checkpoint, and the network's own train/test error.

    One forward pass per image: the logits are the network's ``fc`` applied to the cached
    features. ``n_train``/``n_test`` take a fixed random subset (:func:`subset_indices`) of the
    images before the forward pass; None means all 50,000 / 10,000. ``cache_dir`` is the feature
    cache of :func:`deepnnk.nets.features.extract`.
    """
    t0 = time.perf_counter()
    x_train, y_train, x_test, y_test = _cifar(str(resolve_data_root(data_root)))
    net = load_network(weights, model, epoch, data_root, checkpoints_root)
    itr = subset_indices(len(x_train), n_train, subset_seed)
    ite = subset_indices(len(x_test), n_test, subset_seed + 1)
    f_tr, l_tr = _features_and_logits(net, x_train[itr], cache_dir)
    f_te, l_te = _features_and_logits(net, x_test[ite], cache_dir)
    return CheckpointFeatures(
        weights=weights,
        model=model,
        epoch=int(epoch),
        train=f_tr,
        test=f_te,
        y_train=y_train[itr],
        y_test=y_test[ite],
        train_index=itr,
        test_index=ite,
        net_train_error=float(np.mean(l_tr.argmax(1) != y_train[itr])),
        net_test_error=float(np.mean(l_te.argmax(1) != y_test[ite])),
        seconds=time.perf_counter() - t0,
    )


def network_test_error(
    weights: str,
    model: str,
    epoch: int,
    data_root=None,
    *,
    checkpoints_root=None,
    n_test: int | None = None,
    subset_seed: int = 0,
    cache_dir=None,
) -> float:
    """The network's own error on (the same subset as :func:`checkpoint_features` of) the test
    set; by default all 10,000 images — the "true" test error that model selection aims at."""
    _, _, x_test, y_test = _cifar(str(resolve_data_root(data_root)))
    net = load_network(weights, model, epoch, data_root, checkpoints_root)
    ite = subset_indices(len(x_test), n_test, subset_seed + 1)
    _, logits = _features_and_logits(net, x_test[ite], cache_dir)
    return float(np.mean(logits.argmax(1) != y_test[ite]))


# --------------------------------------------------------------------------- NNK evaluation


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


# --------------------------------------------------------------------------- linear SVM


def svm_cv_error(
    train_feats,
    y_train,
    test_feats,
    y_test,
    n_splits: int = 5,
    C: float = 1000.0,
    max_iter: int = 1000,
    random_state: int | None = 0,
) -> dict:
    """The authors' linear-SVM baseline: ``LinearSVC(C=1000)`` in ``KFold(5)`` (no shuffling).

    Train-side error = 1 − mean accuracy on the held-out folds; test-side error = 1 − mean test
    accuracy of the fold models. Unscaled features, squared hinge, max_iter 1000, and the dual
    solver (the scikit-learn default when the paper was written; today's "auto" would pick the
    primal here). It often stops at max_iter without converging — reproduced as published; the
    ConvergenceWarnings are counted, not shown. ``random_state`` fixes liblinear's coordinate
    order so that results are reproducible (the authors left it unset).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import KFold
    from sklearn.svm import LinearSVC

    X = np.asarray(train_feats)
    y = np.asarray(y_train)
    Xt = np.asarray(test_feats)
    yt = np.asarray(y_test)
    val_acc, test_acc, fit_seconds = [], [], []
    n_warn = 0
    t0 = time.perf_counter()
    for tr, va in KFold(n_splits).split(X):
        t = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            clf = LinearSVC(C=C, max_iter=max_iter, dual=True, random_state=random_state)
            clf.fit(X[tr], y[tr])
        fit_seconds.append(time.perf_counter() - t)
        n_warn += sum(issubclass(w.category, ConvergenceWarning) for w in caught)
        for w in caught:
            if not issubclass(w.category, ConvergenceWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        val_acc.append(float(np.mean(clf.predict(X[va]) == y[va])))
        test_acc.append(float(np.mean(clf.predict(Xt) == yt)))
    return {
        "train_error": 1.0 - float(np.mean(val_acc)),
        "test_error": 1.0 - float(np.mean(test_acc)),
        "fold_val_accuracy": val_acc,
        "fold_test_accuracy": test_acc,
        "convergence_warnings": n_warn,
        "n_fits": n_splits,
        "n_fit_rows": int(len(X) - len(X) // n_splits),
        "fit_seconds": fit_seconds,
        "seconds": time.perf_counter() - t0,
    }


# --------------------------------------------------------------------------- cached checkpoints


def _cache_path(cache_dir, kind: str, spec: dict):
    folder = cache.cache_dir(kind, cache_dir)
    if folder is None:
        return None
    return folder / f"{kind}-{spec['model']}-e{spec['epoch']:02d}-{cache.spec_digest(spec)}.json"


def _checkpoint_spec(weights, model, epoch, data_root, checkpoints_root) -> dict:
    """The cache-key fields every per-checkpoint result shares (the code digest comes with the
    kind: :data:`LOO_CODE` or :data:`SVM_CODE`)."""
    return {
        "weights": weights,
        "model": model,
        "epoch": int(epoch),
        "source": source_digest(weights, model, epoch, data_root, checkpoints_root),
    }


def evaluate_checkpoint(
    weights: str,
    model: str,
    epoch: int,
    *,
    data_root=None,
    checkpoints_root=None,
    ks=(25, 50, 75),
    solvers=("exact", "prune"),
    kernel: str = "cosine",
    tol: float = 1e-10,
    n_train: int | None = None,
    n_test: int | None = None,
    subset_seed: int = 0,
    cache_dir=None,
    feature_cache_dir=None,
    progress: bool = False,
    cache_only: bool = False,
) -> dict | None:
    """:func:`evaluate_features` of one checkpoint, plus the network's own errors; cached.

    The JSON cache entry (under ``cache_dir``, default ``<cache root>/loo``; False disables it) is
    keyed by the weights, model, epoch, a digest of the checkpoint file, a digest of the source of
    every module that computes it (:data:`LOO_CODE`), ks, solvers, kernel, tol, and subset sizes
    and seed; a hit loads no network and no data. The result carries ``"cached": True`` then, and
    the ``seconds`` of the original computation. ``cache_only=True`` returns None on a miss
    instead of computing.
    """
    spec = {
        **_checkpoint_spec(weights, model, epoch, data_root, checkpoints_root),
        "code": cache.code_digest(LOO_CODE),
        "ks": sorted({int(k) for k in ks}),
        "solvers": list(solvers),
        "kernel": kernel,
        "tol": tol,
        "n_train": n_train,
        "n_test": n_test,
        "subset_seed": subset_seed,
    }
    path = _cache_path(cache_dir, "loo", spec)
    if (hit := cache.read_json(path, spec)) is not None:
        hit["cached"] = True
        return hit
    if cache_only:
        return None
    feats = checkpoint_features(
        weights, model, epoch, data_root, checkpoints_root=checkpoints_root, n_train=n_train,
        n_test=n_test, subset_seed=subset_seed, cache_dir=feature_cache_dir,
    )  # fmt: skip
    result = evaluate_features(
        feats.train,
        feats.y_train,
        feats.test,
        feats.y_test,
        ks=ks,
        solvers=solvers,
        kernel=kernel,
        tol=tol,
        progress=progress,
    )
    result["seconds"]["features"] = feats.seconds
    data = {
        "spec": spec,
        "n_train": len(feats.train),
        "n_test": len(feats.test),
        "dim": int(feats.train.shape[1]),
        "net": {"train_error": feats.net_train_error, "test_error": feats.net_test_error},
        **result,
    }
    if path is not None:
        cache.write_json(path, data)
    data["cached"] = False
    return data


def checkpoint_svm(
    weights: str,
    model: str,
    epoch: int,
    *,
    data_root=None,
    checkpoints_root=None,
    n_train: int | None = None,
    n_test: int | None = None,
    subset_seed: int = 0,
    n_splits: int = 5,
    C: float = 1000.0,
    max_iter: int = 1000,
    cache_dir=None,
    feature_cache_dir=None,
) -> dict:
    """:func:`svm_cv_error` on one checkpoint's features (a subset if n_train/n_test), cached."""
    spec = {
        **_checkpoint_spec(weights, model, epoch, data_root, checkpoints_root),
        "code": cache.code_digest(SVM_CODE),
        "n_train": n_train,
        "n_test": n_test,
        "subset_seed": subset_seed,
        "svm": {"n_splits": n_splits, "C": C, "max_iter": max_iter, "dual": True, "seed": 0},
    }
    path = _cache_path(cache_dir, "svm", spec)
    if (hit := cache.read_json(path, spec)) is not None:
        hit["cached"] = True
        return hit
    feats = checkpoint_features(
        weights, model, epoch, data_root, checkpoints_root=checkpoints_root, n_train=n_train,
        n_test=n_test, subset_seed=subset_seed, cache_dir=feature_cache_dir,
    )  # fmt: skip
    result = svm_cv_error(
        feats.train, feats.y_train, feats.test, feats.y_test, n_splits, C, max_iter
    )
    data = {"spec": spec, "n_train": len(feats.train), "n_test": len(feats.test), **result}
    if path is not None:
        cache.write_json(path, data)
    data["cached"] = False
    return data


# --------------------------------------------------------------------------- sweep


def checkpoint_rows(result: dict, solver: str, svm: dict | None = None) -> list[dict]:
    """Tidy rows, one per k, from an :func:`evaluate_checkpoint` result (and optional SVM).

    ``solver`` picks which NNK solver's numbers are the headline ``loo_nnk``/``test_nnk``; both
    solvers' errors stay in ``loo_nnk_<solver>``/``test_nnk_<solver>``.
    """
    spec = result["spec"]
    if solver not in spec["solvers"]:
        raise ValueError(f"solver {solver!r} was not evaluated (solvers {spec['solvers']}).")
    rows = []
    for k in spec["ks"]:
        loo, tst = result["loo"][str(k)], result["test"][str(k)]
        row = {
            "weights": spec["weights"],
            "model": spec["model"],
            "epoch": spec["epoch"],
            "k": k,
            "n_train": result["n_train"],
            "n_test": result["n_test"],
            "loo_nnk": loo[solver]["error"],
            "loo_knn": loo["knn_error"],
            "test_nnk": tst[solver]["error"],
            "test_knn": tst["knn_error"],
            "loo_nnk_soft": loo[solver]["soft_error"],
            "net_train": result["net"]["train_error"],
            "net_test": result["net"]["test_error"],
            "n_nnk_mean": loo[solver]["n_neighbors_mean"],
            "n_nnk_median": loo[solver]["n_neighbors_median"],
            "test_n_nnk_mean": tst[solver]["n_neighbors_mean"],
            "residual_mean": loo[solver]["residual_mean"],
            "test_residual_mean": tst[solver]["residual_mean"],
            "svm_train": None,
            "svm_test": None,
            "seconds": sum(result["seconds"].values()),
            "cached": result.get("cached", False),
        }
        for s in spec["solvers"]:
            row[f"loo_nnk_{s}"] = loo[s]["error"]
            row[f"test_nnk_{s}"] = tst[s]["error"]
            row[f"loo_kkt_violation_{s}"] = loo[s]["kkt_violation_fraction"]
        if "changed" in loo:
            row["loo_changed"] = loo["changed"]
            row["test_changed"] = tst["changed"]
        if svm is not None:
            row["svm_train"] = svm["train_error"]
            row["svm_test"] = svm["test_error"]
            row["svm_convergence_warnings"] = svm["convergence_warnings"]
            row["svm_seconds"] = svm["seconds"]
        rows.append(row)
    return rows


def sweep(
    weights: str,
    models,
    epochs,
    ks=(25, 50, 75),
    *,
    solvers=("exact", "prune"),
    solver: str = "exact",
    kernel: str = "cosine",
    n_train: int | None = None,
    n_test: int | None = None,
    subset_seed: int = 0,
    svm_epochs=(),
    svm_n_train: int | None = None,
    svm_n_test: int | None = None,
    solvers_epochs=None,
    data_root=None,
    checkpoints_root=None,
    cache_dir=None,
    feature_cache_dir=None,
    progress: bool = True,
) -> list[dict]:
    """Evaluate every (model, epoch) checkpoint; a tidy table, one row per (model, epoch, k).

    The SVM baseline runs only at ``svm_epochs`` (on ``svm_n_train``/``svm_n_test`` rows);
    elsewhere its columns are None. Every solver in ``solvers`` runs at ``solvers_epochs``
    (None: every epoch), elsewhere the headline ``solver`` alone. Checkpoints already in the
    cache cost nothing.
    """
    jobs = [(m, int(e)) for m in models for e in epochs]
    rows = []
    for model, epoch in _progress(jobs, progress, f"{weights} checkpoints"):
        common = dict(
            data_root=data_root,
            checkpoints_root=checkpoints_root,
            cache_dir=cache_dir,
            feature_cache_dir=feature_cache_dir,
            subset_seed=subset_seed,
        )
        compare = solvers_epochs is None or epoch in set(solvers_epochs)
        result = evaluate_checkpoint(
            weights,
            model,
            epoch,
            ks=ks,
            solvers=solvers if compare else (solver,),
            kernel=kernel,
            n_train=n_train,
            n_test=n_test,
            **common,
        )
        svm = None
        if epoch in set(svm_epochs):
            svm = checkpoint_svm(
                weights, model, epoch, n_train=svm_n_train, n_test=svm_n_test, **common
            )
        rows.extend(checkpoint_rows(result, solver, svm))
    return rows


def paper_check(
    weights: str = "paper",
    models=MODELS,
    *,
    solvers=("exact", "prune"),
    compute: bool = False,
    **kwargs,
) -> dict:
    """Our epoch-20, k = 50 numbers on the full 50k/10k data beside the paper's (PAPER_TABLE).

    Reads the full-data result from the cache (an entry with ks (50,) or (25, 50, 75), as a
    full sweep or :func:`evaluate_checkpoint` with ``ks=(50,)`` writes); computes it with
    ``ks=(50,)`` only when ``compute``. A model with neither is None. ``kwargs`` go to
    :func:`evaluate_checkpoint` (data_root, checkpoints_root, cache_dir, ...).
    """
    out = {}
    for model in models:
        res = None
        for ks in ((50,), (25, 50, 75)):
            res = evaluate_checkpoint(
                weights, model, 20, ks=ks, solvers=solvers, cache_only=True, **kwargs
            )
            if res is not None:
                break
        if res is None and compute:
            res = evaluate_checkpoint(weights, model, 20, ks=(50,), solvers=solvers, **kwargs)
        if res is None:
            out[model] = None
            continue
        loo, tst = res["loo"]["50"], res["test"]["50"]
        ours = {
            s: {
                "loo_nnk": loo[s]["error"],
                "loo_knn": loo["knn_error"],
                "test_nnk": tst[s]["error"],
            }
            for s in solvers
        }
        entry = {
            "ours": ours,
            "paper": PAPER_TABLE.get(model),
            "net": res["net"],
            "loo_changed": loo.get("changed"),
            "test_changed": tst.get("changed"),
            "prune_kkt_violation_fraction": loo["prune"]["kkt_violation_fraction"]
            if "prune" in loo
            else None,
            "seconds": res["seconds"],
            "n_train": res["n_train"],
            "n_test": res["n_test"],
        }
        if "prune" in ours and entry["paper"]:
            entry["diff_prune"] = {c: ours["prune"][c] - v for c, v in entry["paper"].items()}
            entry["max_abs_diff_prune"] = max(abs(v) for v in entry["diff_prune"].values())
        out[model] = entry
    return out


# --------------------------------------------------------------------------- table helpers


def select(rows: list[dict], **where) -> list[dict]:
    """The rows whose fields equal every ``where`` value."""
    return [r for r in rows if all(r.get(k) == v for k, v in where.items())]


def column(rows: list[dict], name: str) -> np.ndarray:
    """One field of every row as a float array (None becomes NaN)."""
    return np.array([np.nan if r.get(name) is None else r[name] for r in rows], dtype=float)


ESTIMATORS = {
    "loo_nnk": "LOO-NNK (train)",
    "loo_knn": "LOO-kNN (train)",
    "net_train": "network train error",
    "svm_train": "SVM 5-fold (train)",
    "test_nnk": "NNK (test)",
    "test_knn": "kNN (test)",
    "svm_test": "SVM (test)",
}


def model_ranking(
    rows: list[dict], epoch: int, k: int, estimators=tuple(ESTIMATORS), truth: dict | None = None
) -> dict:
    """Which model each estimator ranks best at (epoch, k), against the true test error.

    Returns {estimator: {values: {model: value}, ranking: [best → worst], best, agrees,
    picks_best}} plus "truth": the ranking by ``truth`` ({model: test error}, e.g. from
    :func:`network_test_error` on the full test set), by default the rows' ``net_test``.
    ``agrees``: the full ranking equals the truth's.
    """
    here = {r["model"]: r for r in select(rows, epoch=epoch, k=k)}
    if not here:
        raise ValueError(f"no rows at epoch {epoch}, k {k}.")
    if truth is not None:
        here = {m: {**r, "net_test": truth[m]} for m, r in here.items()}

    def rank(name):
        vals = {m: r[name] for m, r in here.items() if r.get(name) is not None}
        return vals, sorted(vals, key=vals.get)

    truth_vals, truth = rank("net_test")
    out = {"truth": {"values": truth_vals, "ranking": truth, "best": truth[0]}}
    for name in estimators:
        vals, order = rank(name)
        if len(vals) < len(here):
            continue
        out[name] = {
            "values": vals,
            "ranking": order,
            "best": order[0],
            "agrees": order == truth,
            "picks_best": order[0] == truth[0],
        }
    return out


def pearson(rows: list[dict], name: str, against: str = "net_test") -> float:
    """Pearson correlation of a column with the true test error over the rows where both exist."""
    a, b = column(rows, name), column(rows, against)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def markdown_table(header: list[str], body: list[list]) -> str:
    """A GitHub-markdown table; floats with 4 decimals (tiny ones in e-notation), None as –."""

    def fmt(x):
        if x is None or (isinstance(x, float) and not np.isfinite(x)):
            return "–"
        if isinstance(x, (float, np.floating)):
            return f"{x:.1e}" if 0 < abs(x) < 1e-3 else f"{x:.4f}"
        return str(x)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(x) for x in row) + " |" for row in body]
    return "\n".join(lines)


# --------------------------------------------------------------------------- notebook 02 plans

# The profiles of notebook 02. smoke: about a minute; quick: <= 15 min on 2 CPU cores (subsets,
# 7 epochs); paper: everything as in the paper (full data; the SVM only at epoch 20, see
# svm_cost). truth_n_test: test images for the "true" test error of model selection.
PLANS: dict[str, dict] = {
    "smoke": dict(
        models=list(MODELS),
        epochs=[1, 20],
        ks=[50],
        n_train=1500,
        n_test=500,
        svm_epochs=[20],
        svm_n_train=1000,
        svm_n_test=500,
        truth_n_test=500,
    ),
    "quick": dict(
        models=list(MODELS),
        epochs=[1, 3, 5, 8, 12, 16, 20],
        ks=[25, 50, 75],
        n_train=10_000,
        n_test=2_000,
        svm_epochs=[20],
        svm_n_train=4_000,
        svm_n_test=2_000,
        truth_n_test=None,
    ),
    "paper": dict(
        models=list(MODELS),
        epochs=list(range(1, 21)),
        ks=[25, 50, 75],
        n_train=None,
        n_test=None,
        svm_epochs=[20],
        # 5 × 40,000-row fits take tens of minutes per checkpoint here (fit time grows faster
        # than linearly in the rows: benchmarks/bench_svm.py), so a fixed 10,000 images
        svm_n_train=10_000,
        svm_n_test=None,
        truth_n_test=None,
        # the authors' prune solver beside the exact one where the paper's table is checked
        solvers_epochs=[20],
    ),
}


def make_plan(profile: str, weights: str = "paper", solver: str = "exact") -> dict:
    """The plan of a profile (:data:`PLANS`), with the weights, the headline solver, both solvers
    evaluated, the subset seed, and the headline k (50) and last epoch."""
    if profile not in PLANS:
        raise ValueError(f"profile must be one of {tuple(PLANS)}, got {profile!r}.")
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}.")
    if solver not in ("exact", "prune"):
        raise ValueError(f"solver must be 'exact' or 'prune', got {solver!r}.")
    plan = dict(PLANS[profile], profile=profile, weights=weights, solver=solver)
    plan.update(solvers=["exact", "prune"], subset_seed=0)
    plan["k_main"] = 50 if 50 in plan["ks"] else plan["ks"][0]
    plan["epoch_last"] = max(plan["epochs"])
    return plan


def run_plan(plan: dict, data_root=None, checkpoints_root=None, cache_dir=None, progress=True):
    """:func:`sweep` over a plan; returns (rows, timing)."""
    t0 = time.perf_counter()
    rows = sweep(
        plan["weights"],
        plan["models"],
        plan["epochs"],
        plan["ks"],
        solvers=plan["solvers"],
        solver=plan["solver"],
        n_train=plan["n_train"],
        n_test=plan["n_test"],
        subset_seed=plan["subset_seed"],
        svm_epochs=plan["svm_epochs"],
        svm_n_train=plan["svm_n_train"],
        svm_n_test=plan["svm_n_test"],
        solvers_epochs=plan.get("solvers_epochs"),
        data_root=data_root,
        checkpoints_root=checkpoints_root,
        cache_dir=cache_dir,
        progress=progress,
    )
    first = select(rows, k=plan["ks"][0])
    timing = {
        "sweep_seconds": time.perf_counter() - t0,
        "checkpoints": len(first),
        "checkpoints_from_cache": sum(bool(r["cached"]) for r in first),
        # What the checkpoints cost when computed (cached ones: their original cost).
        "nnk_seconds_when_computed": sum(r["seconds"] for r in first),
        "svm_seconds_when_computed": sum(r.get("svm_seconds") or 0.0 for r in first),
    }
    return rows, timing


def true_test_errors(plan: dict, epoch: int, data_root=None, checkpoints_root=None, **_):
    """{model: the network's test error at ``epoch``} on ``plan["truth_n_test"]`` images."""
    return {
        m: network_test_error(
            plan["weights"],
            m,
            epoch,
            data_root,
            checkpoints_root=checkpoints_root,
            n_test=plan["truth_n_test"],
            subset_seed=plan["subset_seed"],
        )
        for m in plan["models"]
    }


def correlations(rows: list[dict], ks) -> dict:
    """{k: {estimator: Pearson r with the network's test error over all checkpoints}}."""
    return {str(k): {e: pearson(select(rows, k=k), e) for e in ESTIMATORS} for k in ks}


def ranking_table(ranking: dict, models) -> str:
    """Markdown: each estimator's values per model, its ranking, and whether it is the truth's."""
    body = [
        [
            ESTIMATORS.get(e, "network test error (truth)"),
            *[r["values"][m] for m in models],
            " < ".join(r["ranking"]),
            r.get("agrees", "–"),
        ]
        for e, r in ranking.items()
    ]
    return markdown_table(["estimator", *models, "ranking (best first)", "same order"], body)


def paper_check_table(check: dict) -> str:
    """Markdown: :func:`paper_check` beside the paper's numbers."""
    body = []
    for m, c in check.items():
        if c is None:
            body.append([m, *["not computed"] + ["–"] * 10])
            continue
        p, pr, exa = c["paper"], c["ours"]["prune"], c["ours"]["exact"]
        pairs = [v for col in ("loo_nnk", "loo_knn", "test_nnk") for v in (p[col], pr[col])]
        body.append(
            [
                m,
                *pairs,
                exa["loo_nnk"],
                exa["test_nnk"],
                c["loo_changed"],
                c["test_changed"],
                c["max_abs_diff_prune"],
            ]
        )
    header = [
        "model",
        "LOO-NNK paper",
        "ours (prune)",
        "LOO-kNN paper",
        "ours",
        "NNK-test paper",
        "ours (prune)",
        "LOO-NNK exact",
        "NNK-test exact",
        "LOO changed",
        "test changed",
        "max abs diff (prune)",
    ]
    return markdown_table(header, body)


def svm_cost(rows: list[dict], plan: dict) -> dict:
    """What the SVM baseline cost here, and its projection to full-data checkpoints (each fit is
    a fixed number of passes over its rows, so time grows at least linearly with them)."""
    svm_rows = [r for r in select(rows, k=plan["ks"][0]) if r["svm_train"] is not None]
    fits = 5 * len(svm_rows)
    per_fit = sum(r["svm_seconds"] for r in svm_rows) / max(fits, 1)
    n_fit = 0.8 * (plan["svm_n_train"] or 50_000)
    per_full = 5 * per_fit * 40_000 / n_fit
    return {
        "checkpoints": len(svm_rows),
        "fits": fits,
        "convergence_warnings": sum(r["svm_convergence_warnings"] for r in svm_rows),
        "seconds_per_fit": per_fit,
        "rows_per_fit": n_fit,
        "projected_seconds_per_full_checkpoint_linear": per_full,
        "projected_seconds_all_60_full_checkpoints_linear": 60 * per_full,
    }


def summary(rows, plan, ranking, correlation, check, timing) -> dict:
    """The headline numbers: last-epoch k_main errors per model, ranking agreement, Pearson r,
    the largest deviation from the paper's table (prune, full data; None if not computed)."""
    k, e = plan["k_main"], plan["epoch_last"]
    out = {}
    for m in plan["models"]:
        r = select(rows, model=m, epoch=e, k=k)[0]
        for c in ("loo_nnk", "loo_knn", "test_nnk", "net_train", "net_test"):
            out[f"{m}.{c}"] = r[c]
    for name, r in ranking.items():
        if name != "truth":
            out[f"ranks_like_test.{name}"] = r["agrees"]
    out["truth_ranking"] = " < ".join(ranking["truth"]["ranking"])
    out["pearson.loo_nnk"] = correlation[str(k)]["loo_nnk"]
    out["pearson.net_train"] = correlation[str(k)]["net_train"]
    diffs = [c["max_abs_diff_prune"] for c in check.values() if c]
    out["paper_max_abs_diff_prune"] = max(diffs) if diffs and len(diffs) == len(check) else None
    out["sweep_seconds"] = timing["sweep_seconds"]
    out["nnk_seconds_when_computed"] = timing["nnk_seconds_when_computed"]
    return out
