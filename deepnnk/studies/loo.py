r"""Leave-one-out NNK as a generalization estimate: the cached, per-checkpoint study behind
notebook 02.

For a trained network, take the features of the last conv block; the LOO-NNK error of the
training features (:func:`deepnnk.evaluation.evaluate_features`) needs no validation set, and
the paper's claim is that it tracks the test error and ranks models by it. This module, per
checkpoint of the authors' (or our retrained) networks:

- extracts the features of (a fixed random subset of) CIFAR-10 and the network's own train and
  test error (:mod:`deepnnk.studies.cifar_features`);
- evaluates LOO-NNK/kNN and test-side NNK/kNN, both solvers, for several k:
  :func:`evaluate_checkpoint`;
- optionally the authors' 5-fold linear-SVM baseline (:mod:`deepnnk.studies.svm`):
  :func:`checkpoint_svm`;
- sweeps models × epochs into a tidy table (:func:`sweep`, :func:`run_plan`) and checks the
  paper's epoch-20 numbers (:func:`paper_check`).

Each checkpoint's result is cached as JSON (written atomically) under a key covering everything
that produced it, so re-running a notebook costs nothing: see :func:`evaluate_checkpoint`.
Rankings, correlations and tables of the sweep are in :mod:`deepnnk.studies.loo_report`.
"""

from __future__ import annotations

import time

from deepnnk import cache
from deepnnk._progress import progress as _progress
from deepnnk.evaluation import evaluate_features
from deepnnk.nets.checkpoints import MODELS
from deepnnk.nets.loading import WEIGHTS, source_digest
from deepnnk.studies.cifar_features import (
    checkpoint_features,
    network_test_error,
)
from deepnnk.studies.loo_report import checkpoint_rows, paper_comparison, select
from deepnnk.studies.profiles import pick
from deepnnk.studies.svm import svm_cv_error

# The modules whose source goes into the cache keys (names relative to ``deepnnk.``): every
# module with code that runs between the checkpoint file and the cached numbers.
# The network part cannot run in the tests (no checkpoints there), so it is listed from the
# imports: this module (cache entries) -> studies.cifar_features (subsets, features, logits)
# -> nets.loading (load_network,
# source_digest) -> nets.checkpoints (model names), nets.paper -> nets.tf_bundle, nets.models
# (the authors' weights), nets.train (retrained weights, torch_threads) -> nets.features
# (CIFAR images) -> activations (extraction and its cache), nets.data (CIFAR-10, to_tensor),
# cache.
# tests/test_loo.py traces evaluate_checkpoint and checkpoint_svm on synthetic features and
# checks that every deepnnk module whose code runs is listed.
NETWORK_CODE = (
    "studies.loo",
    "studies.cifar_features",
    "nets.loading",
    "nets.checkpoints",
    "nets.paper",
    "nets.tf_bundle",
    "nets.train",
    "nets.models",
    "nets.data",
    "nets.features",
    "activations",
    "_progress",
    "cache",
)
LOO_CODE = (
    *NETWORK_CODE,
    "evaluation",
    "neighbors",
    "kernels",
    "classifier",
    "solver",
    "_solver_numba",
    "_validation",
)
SVM_CODE = (*NETWORK_CODE, "studies.svm")

# --------------------------------------------------------------------------- profiles

# The profiles of notebook 02. smoke: about a minute; quick: <= 15 min on 2 CPU cores (subsets,
# 7 epochs); paper: everything as in the paper (full data; the SVM only at epoch 20, see
# svm_cost). truth_n_test: test images for the "true" test error of model selection.
PROFILES: dict[str, dict] = {
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


def profile(name: str) -> dict:
    """The sizes of notebook 02 in profile ``name`` (a copy of ``PROFILES[name]``)."""
    return pick(PROFILES, name)


def make_plan(profile: str, weights: str = "paper", solver: str = "exact") -> dict:
    """The sizes of a profile (:data:`PROFILES`), with the weights, the headline solver, both
    solvers evaluated, the subset seed, and the headline k (50) and last epoch."""
    sizes = pick(PROFILES, profile)
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}.")
    if solver not in ("exact", "prune"):
        raise ValueError(f"solver must be 'exact' or 'prune', got {solver!r}.")
    plan = dict(sizes, profile=profile, weights=weights, solver=solver)
    plan.update(solvers=["exact", "prune"], subset_seed=0)
    plan["k_main"] = 50 if 50 in plan["ks"] else plan["ks"][0]
    plan["epoch_last"] = max(plan["epochs"])
    return plan


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
    """:func:`~deepnnk.evaluation.evaluate_features` of one checkpoint, plus the network's own
    errors; cached.

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
    """Our epoch-20, k = 50 numbers on the full 50k/10k data beside the paper's, one
    :func:`~deepnnk.studies.loo_report.paper_comparison` per model.

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
        out[model] = paper_comparison(res, model, solvers)
    return out


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
