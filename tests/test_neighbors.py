"""Exact blocked kNN: agreement with a float64 brute force, types, exclude_self, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import importorskip

from deepnnk import knn


def brute_force(Q, X, k, exclude_self=False):
    """float64 squared distances from differences; ties by index (stable sort)."""
    Q = np.asarray(Q, np.float64)
    X = np.asarray(X, np.float64)
    d2 = ((Q[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    if exclude_self:
        d2[np.arange(len(Q)), np.arange(len(Q))] = np.inf
    idx = np.argsort(d2, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d2, idx, 1), idx


def random_data(rng, n, d):
    return rng.standard_normal((n, d))


def clustered_data(rng, n, d):
    """Tight clusters far from the origin: ‖x‖² ≫ distances, the worst case for float32
    ‖q‖² + ‖x‖² − 2q·x, so neighbour sets rely on the float64 re-ranking."""
    centres = 10 * rng.standard_normal((4, d))
    X = centres[rng.integers(4, size=n)] + 0.01 * rng.standard_normal((n, d))
    return np.maximum(X, 0) if d % 2 else X


def assert_matches_brute_force(Q, X, k, exclude_self, d, i):
    d_bf, i_bf = brute_force(Q, X, k, exclude_self)
    for row in range(len(Q)):
        assert set(i[row]) == set(i_bf[row]), f"row {row}: {sorted(i[row])} vs {sorted(i_bf[row])}"
    # distances sorted, and equal to the float64 ones up to float32 rounding of ‖q‖² + ‖x‖²
    assert np.all(np.diff(d, axis=1) >= 0)
    scale = (Q**2).sum(1)[:, None] + (X**2).sum(1).max()
    np.testing.assert_array_less(np.abs(d - d_bf), 1e-6 * (d_bf + scale))
    # the returned distance belongs to the returned index
    d_own = ((Q[:, None, :] - X[i]) ** 2).sum(-1)
    np.testing.assert_array_less(np.abs(d - d_own), 1e-6 * (d_own + scale))


@pytest.mark.parametrize("make", [random_data, clustered_data], ids=["random", "clustered"])
@pytest.mark.parametrize(("n", "d", "k"), [(200, 3, 1), (300, 16, 5), (250, 64, 20), (120, 9, 119)])
def test_matches_brute_force_exclude_self(make, n, d, k):
    rng = np.random.default_rng(n + d + k)
    X = make(rng, n, d)
    dist, idx = knn(X, X, k, exclude_self=True)
    assert dist.shape == idx.shape == (n, k)
    assert not np.any(idx == np.arange(n)[:, None])
    assert_matches_brute_force(X, X, k, True, dist, idx)


@pytest.mark.parametrize("make", [random_data, clustered_data], ids=["random", "clustered"])
@pytest.mark.parametrize(("n", "d", "k"), [(200, 3, 1), (300, 16, 7), (250, 64, 30), (50, 5, 50)])
def test_matches_brute_force_queries(make, n, d, k):
    rng = np.random.default_rng(n * d + k)
    X = make(rng, n, d)
    Q = make(rng, 40, d)
    dist, idx = knn(Q, X, k)
    assert_matches_brute_force(Q, X, k, False, dist, idx)


def test_numpy_in_numpy_out():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 4))
    d, i = knn(X[:10], X, 3)
    assert isinstance(d, np.ndarray) and isinstance(i, np.ndarray)
    assert d.dtype == np.float64 and i.dtype == np.int64
    np.testing.assert_array_equal(i[:, 0], np.arange(10))  # a point is its own nearest
    d32, i32 = knn(X[:10].astype(np.float32), X.astype(np.float32), 3)
    assert d32.dtype == np.float64 and i32.dtype == np.int64
    np.testing.assert_array_equal(i32, i)
    di, ii = knn((X[:10] * 100).astype(np.int64), (X * 100).astype(np.int64), 3)  # ints accepted
    assert di.dtype == np.float64


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_in_torch_out(dtype):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((60, 5))
    d_np, i_np = knn(X, X, 4, exclude_self=True)
    Xt = torch.from_numpy(X).to(dtype)
    d, i = knn(Xt, Xt, 4, exclude_self=True)
    assert isinstance(d, torch.Tensor) and isinstance(i, torch.Tensor)
    assert d.dtype == torch.float64 and i.dtype == torch.int64
    assert d.device == Xt.device and i.device == Xt.device
    np.testing.assert_array_equal(i.numpy(), i_np)
    np.testing.assert_allclose(d.numpy(), d_np, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_torch_cuda_device_kept():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((500, 32))
    Xt = torch.from_numpy(X).float().cuda()
    d, i = knn(Xt, Xt, 10, exclude_self=True)
    assert d.device == Xt.device and i.device == Xt.device
    assert_matches_brute_force(X, X, 10, True, d.cpu().numpy(), i.cpu().numpy())


def test_exclude_self_keeps_duplicates():
    """Exclusion is by index: an exact copy of the query stays a neighbour, at distance 0."""
    rng = np.random.default_rng(3)
    X = 3 * rng.standard_normal((40, 6)) + 5
    X[10] = X[3]
    X[20] = X[3]
    X[30] = X[7]
    for k in (1, 2, 3, 5):
        d, i = knn(X, X, k, exclude_self=True)
        assert not np.any(i == np.arange(40)[:, None])
        # ‖x‖² ≈ 200 here: "0" means float32 rounding of it at most
        for row, dups in [(3, {10, 20}), (10, {3, 20}), (20, {3, 10}), (7, {30}), (30, {7})]:
            got = [
                j
                for j, dist in zip(i[row], d[row], strict=True)
                if dist <= 1e-6 * 2 * (X[row] ** 2).sum()
            ]
            assert set(got) == (dups if len(dups) <= k else set(sorted(dups)[:k])), (k, row, got)
        assert_matches_brute_force(X, X, k, True, d, i)


def test_ties_resolve_by_index():
    """Sorted by distance, ties by index: duplicated rows come out lowest index first, and at
    the k-th place the lowest-index copies are the ones kept."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((30, 4)) + 3
    X[[5, 12, 25]] = X[17]  # four copies of one point: rows 5, 12, 17, 25
    q = X[17:18] + 1e-3
    for k in (1, 2, 3, 4):
        _, i = knn(q, X, k)
        np.testing.assert_array_equal(i[0], [5, 12, 17, 25][:k])
    _, i = knn(X, X, 2, exclude_self=True)
    np.testing.assert_array_equal(i[[5, 12, 17, 25]], [[12, 17], [5, 17], [5, 12], [5, 12]])


def test_block_size_does_not_change_results():
    rng = np.random.default_rng(5)
    X = clustered_data(rng, 203, 12)
    X[100] = X[50]
    for exclude_self in (False, True):
        d0, i0 = knn(X, X, 9, exclude_self=exclude_self)
        d1, i1 = knn(X, X, 9, exclude_self=exclude_self, block_size=7)
        np.testing.assert_array_equal(i0, i1)
        np.testing.assert_array_equal(d0, d1)


def test_k_too_large_raises():
    X = np.random.default_rng(6).standard_normal((10, 3))
    knn(X, X, 10)  # k = N is fine
    knn(X, X, 9, exclude_self=True)  # k = N − 1 is fine with exclude_self
    with pytest.raises(ValueError, match="only 10 points"):
        knn(X, X, 11)
    with pytest.raises(ValueError, match="only 9 other"):
        knn(X, X, 10, exclude_self=True)
    for k in (0, -1, 2.0, True, "3"):
        with pytest.raises(ValueError, match="positive integer"):
            knn(X, X, k)


def test_input_errors():
    X = np.random.default_rng(7).standard_normal((10, 3))
    with pytest.raises(ValueError, match="features"):
        knn(X[:, :2], X, 2)
    with pytest.raises(ValueError, match="exclude_self"):
        knn(X[:5], X, 2, exclude_self=True)
    bad = X.copy()
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf .*\[4\]"):
        knn(bad, X, 2)
    with pytest.raises(ValueError, match="NaN or inf"):
        knn(X, bad, 2)
    bad[4, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        knn(torch.from_numpy(bad), torch.from_numpy(X), 2)
    with pytest.raises(ValueError, match="empty"):
        knn(np.empty((0, 3)), X, 2)
    with pytest.raises(ValueError, match="empty"):
        knn(X, np.empty((0, 3)), 1)
    with pytest.raises(ValueError, match="empty"):
        knn(torch.empty((0, 3)), torch.from_numpy(X), 1)
    with pytest.raises(ValueError, match="2-D"):
        knn(X[0], X, 2)
    with pytest.raises(ValueError, match="backend"):
        knn(X, X, 2, backend="annoy")


def test_faiss_backend_matches():
    importorskip("faiss", "faiss")
    rng = np.random.default_rng(8)
    X = rng.standard_normal((300, 16)).astype(np.float32)
    d, i = knn(X, X, 5, exclude_self=True, backend="faiss")
    assert d.dtype == np.float64 and i.dtype == np.int64
    assert not np.any(i == np.arange(300)[:, None])
    assert_matches_brute_force(X, X, 5, True, d, i)
    dt, it = knn(torch.from_numpy(X), torch.from_numpy(X), 5, backend="faiss")
    assert isinstance(dt, torch.Tensor) and isinstance(it, torch.Tensor)


def test_exact_copies_come_out_in_index_order():
    """Copies of one point are tied in float64; whatever the float32 rounding of their keys,
    they come out in index order, lowest first, in every query's list."""
    rng = np.random.default_rng(8)
    X = 3 * rng.standard_normal((150, 10)) + 4
    X[[40, 90, 149]] = X[3]
    for k in (1, 6, 30):
        d, i = knn(X, X, k, exclude_self=True, block_size=11)
        assert_matches_brute_force(X, X, k, True, d, i)
        for row in range(len(X)):
            copies = [j for j in i[row] if j in (3, 40, 90, 149)]
            assert copies == sorted(copies), (row, copies)
