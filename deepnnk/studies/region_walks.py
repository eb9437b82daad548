"""Exact linear regions crossed in fixed-length windows from queries towards their candidates,
cached by the code and the model that produced them.

Kept apart from :mod:`deepnnk.studies.splinecam` so that editing the study (its statistics and
profiles) does not invalidate the walks, the paper profile's expensive part: an entry's key
holds the source of this module and of :mod:`deepnnk.nets.splinecam`, a digest of the model's
weights, of the images and the window length, and nothing else.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from deepnnk import cache
from deepnnk._progress import progress
from deepnnk.nets.data import to_tensor
from deepnnk.nets.splinecam import segment_partitions
from deepnnk.nets.train import torch_threads

__all__ = ["walk_windows", "window_ends"]

CODE = ("nets.splinecam", "studies.region_walks")


def window_ends(x_q: torch.Tensor, x_c: torch.Tensor, window: float) -> torch.Tensor:
    """``[m, 3, 32, 32]``: the points ``window`` units (‖Δx‖₂, pixels/255) from ``x_q``
    ``[3, 32, 32]`` towards each of the candidates ``x_c [m, 3, 32, 32]``."""
    d = x_c - x_q
    return x_q + window * d / d.flatten(1).norm(dim=1)[:, None, None, None]


def _walk_one(model, x_q, x_c, window: float, digest: str) -> dict:
    """One query's windows, cached under ``<cache root>/splinecam``."""
    h = cache.array_digest(x_q)
    cache.array_digest(x_c, h)
    spec = {"code": cache.code_digest(CODE), "model": digest, "inputs": h.hexdigest(),
            "window": float(window)}  # fmt: skip
    path = cache.cache_dir("splinecam") / f"walk-{cache.spec_digest(spec)}.json"
    if (hit := cache.read_json(path, spec)) is not None:
        return hit
    t0 = time.perf_counter()
    parts = segment_partitions(model, x_q, window_ends(x_q, x_c, window))
    data = {
        "spec": spec,
        "n_pieces": [p.n_pieces for p in parts],
        "decision_changes": [len(p.decision_t) for p in parts],
        "seconds": time.perf_counter() - t0,
    }
    cache.write_json(path, data)
    return data


def walk_windows(
    model, queries, candidates, window: float, show_progress: bool = True, threads: int = 1
) -> dict:
    """Walk the exact partition of ``model`` (a PaperCNN) over the first ``window`` units of the
    segment from each query to each of its candidates.

    ``queries``: uint8 ``[Q, 32, 32, 3]``; ``candidates``: uint8 ``[Q, k, 32, 32, 3]`` (CIFAR
    HWC, as :func:`~deepnnk.nets.data.load_cifar10` gives them). Returns ``n_pieces [Q, k]``
    (regions crossed), ``density [Q, k]`` (regions per unit length, ``n_pieces / window``),
    ``decision_changes [Q, k]`` (exact, inside the window), ``seconds`` (the walks' own time,
    cached ones included) and ``pieces`` (their total). A query's k windows walk in lockstep
    (one batched pass per step); the loop over queries is the cache's unit, so an interrupted
    run resumes where it stopped.

    ``threads``: torch's intra-op threads during the walk. One by default: its many small
    element-wise ops gain little from a second thread and lose much to contention (on the
    2-core machine, loaded by other jobs, one query's 50 windows took 26 s with one thread
    against 82 s with two; ``benchmarks/bench_splinecam.py --threads N`` times a walk).
    """
    queries, candidates = np.asarray(queries), np.asarray(candidates)
    if candidates.ndim != 5 or candidates.shape[0] != len(queries):
        raise ValueError(
            f"candidates must be [Q, k, 32, 32, 3] with Q = {len(queries)} queries, got "
            f"{candidates.shape}"
        )
    if not window > 0:
        raise ValueError(f"window must be a positive length (pixels/255), got {window!r}")
    digest = cache.model_digest(model).hexdigest()
    rows = []
    with torch_threads(threads):
        for q in progress(range(len(queries)), show_progress, desc="walking windows"):
            x_q = to_tensor(queries[q : q + 1])[0].double()
            x_c = to_tensor(candidates[q]).double()
            rows.append(_walk_one(model, x_q, x_c, window, digest))
    n_pieces = np.array([r["n_pieces"] for r in rows], dtype=np.int64).reshape(len(queries), -1)
    changes = [r["decision_changes"] for r in rows]
    return {
        "n_pieces": n_pieces,
        "density": n_pieces / window,
        "decision_changes": np.array(changes, dtype=np.int64).reshape(n_pieces.shape),
        "seconds": float(sum(r["seconds"] for r in rows)),
        "pieces": int(n_pieces.sum()),
    }
