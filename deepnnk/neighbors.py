"""Exact k-nearest-neighbour search by squared L2 distance, blocked over queries.

The brute-force pass runs in float32 (one matmul per block of queries, CPU or GPU). The
neighbour *set* is what NNK depends on, and it can only be wrong where the k-th and (k+1)-th
distances are closer than float32 can tell apart; those rows (a few percent on CIFAR features)
are re-ranked with float64 distances computed from differences, which cannot cancel.
Distances are returned as float64; outside re-ranked rows they carry float32 rounding
(relative error ~1e-6).
"""

from __future__ import annotations

import numpy as np
import torch

from ._progress import progress as _progress
from ._validation import check_features, check_k, is_torch

BLOCK_BYTES = 256 * 2**20  # one query block's distance matrix


def _faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _block_rows(n_db: int, itemsize: int = 4) -> int:
    return int(max(64, min(8192, BLOCK_BYTES // max(1, n_db * itemsize))))


def _exact_rerank(q64, db, cand, exclude_rows):
    """float64 squared distances from ``q64 [b, d]`` to ``db[cand] [b, m, d]``; sort them."""
    cand = torch.sort(cand, dim=1).values  # index order, so the stable sort keeps ties by index
    diff = db[cand].to(torch.float64) - q64[:, None, :]
    d2 = torch.einsum("bmd,bmd->bm", diff, diff)
    if exclude_rows is not None:
        d2 = torch.where(cand == exclude_rows[:, None], torch.inf, d2)
    # Stable sort by (distance, index): ties resolve to the lower index, as in a full sort.
    d2s, order = torch.sort(d2, dim=1, stable=True)
    return d2s, torch.gather(cand, 1, order)


def _search_torch(q, db, k, exclude_self, block):
    n, d = q.shape
    device = q.device
    db32 = db.to(torch.float32)
    db_sq = torch.einsum("ij,ij->i", db32, db32)
    db_sq_max = float(db_sq.max())
    available = db.shape[0] - int(exclude_self)
    m = min(available, k + max(8, k // 4))
    # Float32 error of ‖q‖² + ‖x‖² − 2q·x, at the typical √d (not worst-case d) accumulation.
    err = 4 * d**0.5 * float(torch.finfo(torch.float32).eps)
    out_d = torch.empty((n, k), dtype=torch.float64, device=device)
    out_i = torch.empty((n, k), dtype=torch.int64, device=device)
    for start in _progress(range(0, n, block), n > 20 * block, "knn"):
        qb = q[start : start + block]
        qb32 = qb.to(torch.float32)
        q_sq = torch.einsum("ij,ij->i", qb32, qb32)
        d32 = torch.addmm(db_sq[None, :], qb32, db32.T, alpha=-2.0)  # ‖q‖² added after top-k
        rows = torch.arange(start, start + len(qb), device=device) if exclude_self else None
        if exclude_self:
            d32[torch.arange(len(qb), device=device), rows] = torch.inf
        c32, cand = torch.topk(d32, m, dim=1, largest=False)
        # topk leaves equal distances (duplicate rows) in no set order: put ties in index order.
        cand, perm = torch.sort(cand, dim=1)
        c32, perm = torch.sort(torch.gather(c32, 1, perm), dim=1, stable=True)
        cand = torch.gather(cand, 1, perm)
        out_d[start : start + len(qb)] = (c32[:, :k] + q_sq[:, None]).to(torch.float64).clamp_min(0)
        out_i[start : start + len(qb)] = cand[:, :k]
        bound = 2 * err * (q_sq + db_sq_max)
        # Exact copies among the k (equal ‖x‖², keys within rounding) must come out in index
        # order, but the matrix multiply may round their keys differently (different column
        # blocks): re-rank those rows in float64.
        kept_sq = db_sq[cand[:, :k]]
        twins = ((c32[:, 1:k] - c32[:, : k - 1]) <= bound[:, None]) & (
            kept_sq[:, 1:] == kept_sq[:, :-1]
        )
        # Only membership at the k-th place can change the neighbour set: re-rank in float64 the
        # rows whose k-th and (k+1)-th distances are within the float32 error.
        if m > k:
            boundary = (c32[:, k] - c32[:, k - 1]) <= bound
        else:
            boundary = torch.zeros(len(qb), dtype=torch.bool, device=device)
        unsure = torch.nonzero(boundary | twins.any(1))[:, 0]
        if len(unsure) == 0:
            continue
        ru = rows[unsure] if exclude_self else None
        d2, idx = _exact_rerank(qb[unsure].to(torch.float64), db, cand[unsure], ru)
        # If even the m-th candidate is within the error of the k-th, search the row in float64.
        far = boundary[unsure] & ((c32[unsure, m - 1] - c32[unsure, k - 1]) <= bound[unsure])
        if bool(far.any()):
            f = torch.nonzero(far)[:, 0]
            dd = torch.cdist(qb[unsure[f]].to(torch.float64), db.to(torch.float64)) ** 2
            if exclude_self:
                dd[torch.arange(len(f), device=device), ru[f]] = torch.inf
            _, cf = torch.topk(dd, m, dim=1, largest=False)
            d2[f], idx[f] = _exact_rerank(
                qb[unsure[f]].to(torch.float64), db, cf, ru[f] if exclude_self else None
            )
        out_d[start + unsure] = d2[:, :k]
        out_i[start + unsure] = idx[:, :k]
    return out_d, out_i


def _search_faiss(q, db, k, exclude_self):
    import faiss

    index = faiss.IndexFlatL2(db.shape[1])
    index.add(np.ascontiguousarray(db, dtype=np.float32))
    extra = 1 if exclude_self else 0
    d, i = index.search(np.ascontiguousarray(q, dtype=np.float32), k + extra)
    if exclude_self:
        own = i == np.arange(len(q))[:, None]
        # Drop the query's own row by index; if it was not returned, drop the farthest hit.
        own[~own.any(1), -1] = True
        keep = ~own
        d = d[keep].reshape(len(q), k)
        i = i[keep].reshape(len(q), k)
    return d.astype(np.float64), i.astype(np.int64)


def knn(
    queries,
    database,
    k: int,
    exclude_self: bool = False,
    *,
    backend: str = "torch",
    block_size: int | None = None,
):
    """The exact k nearest rows of ``database`` for each query, by squared L2 distance.

    Parameters
    ----------
    queries : ``[n, d]`` numpy array or torch tensor (any device).
    database : ``[N, d]``, same kind as ``queries``.
    k : number of neighbours, 1 ≤ k ≤ N (≤ N − 1 with ``exclude_self``).
    exclude_self : query i *is* database row i (leave-one-out); that row is excluded by index,
        which stays correct when the data hold duplicate points.
    backend : "torch" (exact, blocked brute force) or "faiss" (``IndexFlatL2``, float32 distances;
        needs ``pip install deepnnk[faiss]``).
    block_size : queries per block; by default a block's distance matrix takes ≤ 256 MiB.

    Returns
    -------
    (sq_dist ``[n, k]`` float64, indices ``[n, k]`` int64), sorted by distance (ties by index);
    numpy in → numpy out, torch in → torch out on the input's device.
    """
    torch_in = is_torch(queries)
    q = check_features(queries, "queries", allow_torch=True)
    db = check_features(database, "database", allow_torch=True)
    if q.shape[1] != db.shape[1]:
        raise ValueError(
            f"queries have {q.shape[1]} features but the database has {db.shape[1]}; "
            "they must match."
        )
    if exclude_self and q.shape[0] != db.shape[0]:
        raise ValueError(
            f"exclude_self=True means query i is database row i, but there are {q.shape[0]} "
            "queries "
            f"and {db.shape[0]} database rows."
        )
    k = check_k(k, db.shape[0], exclude_self=exclude_self)
    if backend == "faiss":
        if not _faiss_available():
            raise ImportError("backend='faiss' needs faiss: pip install 'deepnnk[faiss]'.")
        qn = q.detach().cpu().numpy() if torch_in else q
        dn = db.detach().cpu().numpy() if is_torch(db) else db
        d, i = _search_faiss(qn, dn, k, exclude_self)
        if torch_in:
            return torch.from_numpy(d).to(queries.device), torch.from_numpy(i).to(queries.device)
        return d, i
    if backend != "torch":
        raise ValueError(f"backend must be 'torch' or 'faiss', got {backend!r}.")
    qt = q if is_torch(q) else torch.from_numpy(q)
    dbt = db if is_torch(db) else torch.from_numpy(db)
    dbt = dbt.to(qt.device)
    block = block_size or _block_rows(dbt.shape[0])
    d, i = _search_torch(qt, dbt, k, exclude_self, block)
    if torch_in:
        return d, i
    return d.numpy(), i.numpy()


def exact_copies(queries: np.ndarray, database: np.ndarray, index, sq_dist) -> np.ndarray:
    """For each query, the position in its candidate row of its first exact copy, else −1.

    ``queries [n, d]``, ``database [N, d]`` (numpy), ``index``/``sq_dist [n, k]`` from
    :func:`knn`. A copy has distance 0, which the float32 search reports as at most its
    worst-case rounding d·eps·(‖q‖² + ‖x‖²) (times a safety factor of 4); only those few
    candidates are compared with the query element by element. Returns int64 ``[n]``.
    """
    index, sq_dist = np.asarray(index), np.asarray(sq_dist)
    q2 = np.einsum("ij,ij->i", queries, queries, dtype=np.float64)
    x2 = np.einsum("ij,ij->i", database, database, dtype=np.float64)
    eps = float(np.finfo(np.float32).eps)
    bound = 4 * queries.shape[1] * eps * (q2[:, None] + x2[index])
    rows, cols = np.nonzero(sq_dist <= bound)
    same = (queries[rows] == database[index[rows, cols]]).all(1)
    k = index.shape[1]
    pos = np.full(len(queries), k, dtype=np.int64)
    np.minimum.at(pos, rows[same], cols[same])  # the first copy in the row
    pos[pos == k] = -1
    return pos
