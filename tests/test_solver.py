"""The NNK solver: exact optimality against scipy's NNLS and the batched-numpy oracle, the prune
rule, and its I/O contract.

NNK minimises ½θᵀK_SSθ − k_Sqᵀθ over θ ≥ 0. With a feature map z (K = ZᵀZ, K(q, q) = 1) this is
min_{θ≥0} ½‖z_q − Z_Sθ‖² − ½, so scipy.optimize.nnls on the explicit features is an independent
oracle: for the cosine kernel z(x) = [x/‖x‖; 1]/√2, for the Gaussian kernel Z comes from an
eigendecomposition of the Gram matrix of {q} ∪ S. The second oracle, ``solver_oracle.py``, is the
batched-numpy active set that was the package's other engine: a different route to the same point.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import nnls
from solver_oracle import solve_oracle
from threadpoolctl import threadpool_limits

from deepnnk import cosine_kernel, gaussian_kernel, kkt_residual, knn, nnk_objective, solve_nnk
from deepnnk.classifier import candidate_kernels
from deepnnk.solver import SYMMETRY_RTOL

KS = (1, 2, 5, 25, 50, 100)
DIMS = (8, 32, 128, 512)
VARIANTS = ("plain", "near_dup", "query_in", "dup")
REPS = 12  # instances per (kernel, k, dim, variant): 2 · 6 · 4 · 4 · 12 = 2304 in all


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """Thousands of tiny BLAS/LAPACK calls: threads only contend on a shared 2-core machine."""
    with threadpool_limits(1):
        yield


def solve(K, b, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # "did not converge" is a failure here
        return solve_nnk(K, b, **kw)


# ----------------------------------------------------------------------------- instances
def relu_features(rng, n, d):
    """Structured ReLU-like features ``[n, d]``: three clusters plus a low-rank latent factor,
    rectified, so that many coordinates are exactly zero (no row is all zero)."""
    r = max(2, d // 8)
    centres = rng.standard_normal((3, d))
    latent = rng.standard_normal((n, r)) @ rng.standard_normal((r, d)) / np.sqrt(r)
    X = np.maximum(0.7 * centres[rng.integers(3, size=n)] + latent - 0.3, 0.0)
    zero = np.nonzero(~X.any(1))[0]
    X[zero, rng.integers(d, size=zero.size)] = 0.5
    return X


def make_instance(rng, k, d, variant):
    """A query q ``[d]`` and its k candidates S ``[k, d]`` — its nearest points in a pool, as the
    classifier picks them — then degraded according to ``variant``."""
    X = relu_features(rng, 2 * k + 12, d)
    q, pool = X[0], X[1:]
    S = pool[np.argsort(((pool - q) ** 2).sum(1), kind="stable")[:k]].copy()
    slots = rng.permutation(k)
    if variant == "near_dup" and k >= 2:
        # a candidate = another + 1e-9 noise; with room, another = the query + 1e-9 noise
        S[slots[0]] = S[slots[1]] + 1e-9 * rng.random(d)
        if k >= 3:
            S[slots[2]] = q + 1e-9 * rng.random(d)
    elif variant == "query_in":
        S[slots[0]] = q
    elif variant == "dup" and k >= 2:
        # exact duplicates: about a third of the candidates copy another one
        m = max(1, k // 3)
        S[slots[:m]] = S[slots[m : 2 * m]] if 2 * m <= k else S[slots[-1]]
    return q, S


def cosine_features(A):
    """z(x) = [x/‖x‖; 1]/√2, row-wise: ⟨z(a), z(b)⟩ = ½ + ½cos(a, b)."""
    unit = A / np.linalg.norm(A, axis=1, keepdims=True)
    return np.hstack([unit, np.ones((len(A), 1))]) / np.sqrt(2.0)


def cosine_problem(q, S):
    K = cosine_kernel(S, S)
    b = cosine_kernel(q[None], S)[0]
    return K, b, cosine_features(S).T, cosine_features(q[None])[0]  # Z_S is [d+1, k]


def gaussian_problem(q, S):
    d2 = ((S - q) ** 2).sum(1)
    sigma = np.sqrt(d2.max()) / 3 if d2.max() > 0 else 1.0
    P = np.vstack([q, S])
    G = gaussian_kernel(P, P, sigma=sigma)
    w, V = np.linalg.eigh(G)
    Z = np.sqrt(np.clip(w, 0.0, None))[:, None] * V.T  # ZᵀZ = G, one column per point
    return G[1:, 1:], G[0, 1:], Z[:, 1:], Z[:, 0]


PROBLEMS = {"cosine": cosine_problem, "gaussian": gaussian_problem}


@functools.cache
def instance_set(kernel, k):
    """``(K [B,k,k], b [B,k], nnls objective [B], variant labels [B])`` for one kernel and k."""
    rng = np.random.default_rng([KS.index(k), 17 if kernel == "cosine" else 29])
    Ks, bs, objs, labels = [], [], [], []
    for d in DIMS:
        for variant in VARIANTS:
            for _ in range(REPS):
                q, S = make_instance(rng, k, d, variant)
                K, b, Z_S, z_q = PROBLEMS[kernel](q, S)
                theta, _ = nnls(Z_S, z_q, maxiter=50 * k)
                ls = 0.5 * np.sum((z_q - Z_S @ theta) ** 2) - 0.5
                obj = nnk_objective(K, b, theta)[0]
                # the oracle itself: the LS objective minus ½ is the NNK objective
                assert abs(ls - obj) < 1e-10
                Ks.append(K)
                bs.append(b)
                objs.append(obj)
                labels.append(f"d={d} {variant}")
    return np.stack(Ks), np.stack(bs), np.array(objs), labels


def test_instance_count():
    total = sum(len(instance_set(kernel, k)[1]) for kernel in PROBLEMS for k in KS)
    assert total >= 2000


# ----------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("kernel", ["cosine", "gaussian"])
def test_exact_matches_nnls(kernel, k):
    K, b, ref, labels = instance_set(kernel, k)
    theta = solve(K, b)
    assert theta.shape == b.shape and theta.dtype == np.float64
    assert np.all(theta >= 0)
    obj = nnk_objective(K, b, theta)
    res = kkt_residual(K, b, theta)
    bad = [
        f"{labels[i]}: ours {obj[i]:.15f} nnls {ref[i]:.15f} kkt {res[i]:.1e}"
        for i in range(len(b))
        if not (obj[i] <= ref[i] + 1e-8 and abs(obj[i] - ref[i]) <= 1e-8 and res[i] <= 1e-9)
    ]
    assert not bad, f"{len(bad)} of {len(b)} instances not exact:\n" + "\n".join(bad[:10])


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("kernel", ["cosine", "gaussian"])
def test_exact_never_worse_than_prune(kernel, k):
    K, b, _, _ = instance_set(kernel, k)
    exact = nnk_objective(K, b, solve(K, b))
    prune = nnk_objective(K, b, solve(K, b, method="prune"))
    assert np.all(exact <= prune + 1e-12), np.max(exact - prune)


@pytest.mark.parametrize("d", [2, 3])
def test_exact_on_indefinite_float32_kernels(d):
    """Cosine kernels of low-dimensional data accumulated in float32 (as the classifier does by
    default) are indefinite by ~1e-7: every K_SS here has negative eigenvalues, and candidates
    that lie, to rounding, in the span of the support still show negative gradients. The solver
    trades them in for support members; before it did, a third to a half of these rows stopped
    with KKT residuals up to 1e-2."""
    rng = np.random.default_rng(12)
    X = np.abs(rng.standard_normal((1300, d))) + 0.01
    db, q = X[:1000], X[1000:]
    d2, idx = knn(q, db, 40)
    unit = db / np.linalg.norm(db, axis=1, keepdims=True)
    k_Sq, K_SS = candidate_kernels(unit, q, idx, d2, "cosine", gram_dtype="float32")
    assert np.all(np.linalg.eigvalsh(K_SS)[:, 0] < -1e-9)
    theta = solve(K_SS, k_Sq)
    assert np.all(theta >= 0)
    assert np.max(kkt_residual(K_SS, k_Sq, theta)) <= 1e-9


def test_exact_on_identity_kernel():
    # K = I: the problem separates, θ = max(k_Sq, 0)
    b = np.array([[0.3, 0.0, 0.9, 0.5]])
    theta = solve(np.eye(4)[None], b)
    np.testing.assert_allclose(theta, b, atol=1e-12)


# ----------------------------------------------------------------------------- prune
def prune_reference(K, b, tol=1e-10):
    """The authors' rule, one query at a time: start from every candidate with k_Sq > tol, solve
    the normal equations on the support, drop the weights ≤ tol, repeat while any was negative;
    a candidate with k_Sq > 1 − tol (the query itself) takes its kernel value, the rest 0. The
    hit test is written relative to the diagonal, k_Sq,j > K_jj·(1 − tol) → θ_j = k_Sq,j / K_jj,
    which is the authors' test bit for bit when K_jj = 1."""
    diag = np.diag(K)
    hit = b > diag * (1 - tol)
    if hit.any():
        return np.where(hit, b / diag, 0.0)
    F = b > tol
    theta = np.zeros_like(b)
    for _ in range(len(b) + 1):
        theta = np.zeros_like(b)
        idx = np.nonzero(F)[0]
        theta[idx] = np.linalg.solve(K[np.ix_(idx, idx)], b[idx])
        negative = np.any(theta[idx] < 0)
        F &= theta > tol
        if not negative:
            break
    return np.where(theta < tol, 0.0, theta)


def test_prune_reproduces_the_rule():
    rng = np.random.default_rng(5)
    Ks, bs = [], []
    for i in range(800):
        k = (2, 3, 5, 8, 12)[i % 5]
        d = k + 3 + i % 7  # K_SS well conditioned, so both sides solve the same systems
        q, S = make_instance(rng, k, d, "plain")
        K, b, _, _ = cosine_problem(q, S)
        # well conditioned: the solver's 1e-12 ridge then moves θ by < 1e-9 relative
        if np.linalg.eigvalsh(K)[0] < 1e-3 or b.max() > 1 - 1e-6:
            continue
        Ks.append(np.pad(K, ((0, 12 - k), (0, 12 - k))) + np.diag([0.0] * k + [1.0] * (12 - k)))
        bs.append(np.pad(b, (0, 12 - k)))  # zero padding: never a candidate (k_Sq = 0 ≤ tol)
    K, b = np.stack(Ks), np.stack(bs)
    assert len(b) > 300
    got = solve(K, b, method="prune")
    want = np.stack([prune_reference(Ki, bi) for Ki, bi in zip(K, b, strict=True)])
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9)
    # the rule often stops short of the optimum on these instances, never beyond it
    exact = solve(K, b)
    assert np.sum(kkt_residual(K, b, got) > 1e-6) > 10
    assert np.all(nnk_objective(K, b, exact) <= nnk_objective(K, b, got) + 1e-12)


# A hand-made instance: the unconstrained solution on all three candidates is
# (−5.31, 6.03, −0.019); pruning drops the first *and* the third, keeps the second alone and
# stops, yet the third has a negative gradient there (K θ − k_Sq = (0.062, 0, −0.243)). The exact
# active-set method brings it back: optimum (0, 0.275, 0.604).
PRUNE_Q = np.array([2.0, 4.0, 0.0])
PRUNE_S = np.array([[5.0, 0.0, 4.0], [5.0, 1.0, 4.0], [0.0, 3.0, 3.0]])


def test_prune_stops_at_a_kkt_violating_point():
    K = cosine_kernel(PRUNE_S, PRUNE_S)
    b = cosine_kernel(PRUNE_Q[None], PRUNE_S)[0]
    prune = solve(K, b, method="prune")
    exact = solve(K, b)
    np.testing.assert_allclose(prune, [0.0, b[1], 0.0], atol=1e-12)  # lone survivor: θ = K_qj
    assert kkt_residual(K, b, prune) > 1e-6
    g = K @ prune - b
    assert g[2] < -0.2  # the dropped candidate that should have stayed
    assert kkt_residual(K, b, exact) <= 1e-9
    assert exact[0] == 0 and exact[1] > 0.2 and exact[2] > 0.5
    assert nnk_objective(K, b, exact)[0] < nnk_objective(K, b, prune)[0] - 0.07
    # the exact weights solve the normal equations on their support
    np.testing.assert_allclose(K[1:, 1:] @ exact[1:], b[1:], atol=1e-10)


def test_prune_hit_rule():
    tol = 1e-10
    rng = np.random.default_rng(3)
    S = np.abs(rng.standard_normal((6, 10))) + 0.1
    K = cosine_kernel(S, S)
    np.fill_diagonal(K, 1.0)  # the authors' setting, bit for bit (rounding leaves 1 − 2e-16)
    b = cosine_kernel(S[2:3] * 3.0, S)[0]  # the query is candidate 2 (up to scale)
    b[2] = 1 - tol / 2  # a "hit", not exactly 1
    theta = solve(K, b, method="prune", tol=tol)
    np.testing.assert_array_equal(theta, np.where(np.arange(6) == 2, b, 0.0))
    # two hits (the query duplicated among the candidates): each takes its kernel value
    b2 = b.copy()
    b2[4] = 1.0
    theta = solve(K, b2, method="prune", tol=tol)
    np.testing.assert_array_equal(theta, [0, 0, b2[2], 0, 1.0, 0])
    # just below the threshold it is an ordinary candidate
    b3 = b.copy()
    b3[2] = 1 - 2 * tol
    theta = solve(K, b3, method="prune", tol=tol)
    assert theta[2] > 0.99 and np.all(theta >= 0)


def test_query_equal_to_candidate_interpolates_it_alone():
    """In high dimension (K_SS well conditioned) the unique optimum is θ = e_j·K_qj."""
    rng = np.random.default_rng(11)
    for k, d in [(5, 64), (25, 256), (50, 512)]:
        q, S = make_instance(rng, k, d, "query_in")
        K, b, _, _ = cosine_problem(q, S)
        j = int(np.argmax(b))
        for method in ("exact", "prune"):
            theta = solve(K, b, method=method)
            assert np.count_nonzero(theta) == 1, f"{k=} {method}"
            np.testing.assert_allclose(
                theta, np.eye(k)[j] * b[j], atol=1e-9, err_msg=f"{k=} {method}"
            )


@pytest.mark.parametrize("c", [2.0**-20, 0.25, 4.0, 2.0**10])
def test_prune_is_scale_consistent(c):
    """Scaling the kernel (c·K_SS, c·k_Sq) leaves the NNK problem's minimiser unchanged, and the
    prune rule too: its "the query is candidate j" test is k_Sq,j > K_jj·(1 − tol), not > 1 − tol
    (which every candidate would pass for c = 4, and no copy of the query for c = 0.25). Powers of
    two scale every float exactly, so θ must be identical bit for bit."""
    K, b, _, labels = instance_set("cosine", 25)
    want = solve(K, b, method="prune")
    copies = np.array(["query_in" in lab for lab in labels])
    alone = np.count_nonzero(want, axis=1) == 1
    assert copies.sum() >= 40 and np.all(alone[copies])  # the hit rule fired on every copy
    np.testing.assert_array_equal(solve(c * K, c * b, method="prune"), want)
    np.testing.assert_array_equal(solve(c * K, c * b), solve(K, b))  # and so is "exact"


def test_prune_scale_consistent_for_any_factor():
    """Other factors round differently: equal to rounding where K_SS is well conditioned."""
    K, b, _, labels = instance_set("gaussian", 25)
    well = np.array([lab in ("d=128 plain", "d=512 plain", "d=512 query_in") for lab in labels])
    K, b = K[well], b[well]
    want = solve(K, b, method="prune")
    for c in (3.0, 0.1, 7e5):
        np.testing.assert_allclose(solve(c * K, c * b, method="prune"), want, rtol=1e-9, atol=0)


@pytest.mark.parametrize("k", [5, 50])
@pytest.mark.parametrize("kernel", ["cosine", "gaussian"])
def test_agrees_with_the_numpy_oracle(kernel, k):
    """The compiled solver and the batched-numpy oracle reach the same optimum by different routes;
    where it is unique (more dimensions than candidates, no duplicates) with the same support."""
    K, b, _, labels = instance_set(kernel, k)
    theta, oracle = solve(K, b), solve_oracle(K, b)
    np.testing.assert_allclose(nnk_objective(K, b, theta), nnk_objective(K, b, oracle), atol=1e-12)
    unique = np.array(
        [lab.split()[1] in ("plain", "query_in") and int(lab[2:].split()[0]) > k for lab in labels]
    )
    assert unique.sum() >= 24
    np.testing.assert_array_equal(theta[unique] > 0, oracle[unique] > 0)
    np.testing.assert_allclose(theta[unique], oracle[unique], atol=1e-9)
    np.testing.assert_allclose(
        solve(K[unique], b[unique], method="prune"),
        solve_oracle(K[unique], b[unique], method="prune"),
        rtol=1e-9,
        atol=1e-12,
    )


# ----------------------------------------------------------------------------- I/O contract
@pytest.fixture(scope="module")
def small_batch():
    rng = np.random.default_rng(0)
    Ks, bs = [], []
    for _ in range(4):
        q, S = make_instance(rng, 6, 16, "plain")
        K, b, _, _ = cosine_problem(q, S)
        Ks.append(K)
        bs.append(b)
    return np.stack(Ks), np.stack(bs)


@pytest.mark.parametrize("method", ["exact", "prune"])
def test_numpy_in_numpy_out(small_batch, method):
    K, b = small_batch
    theta = solve_nnk(K, b, method=method)
    assert isinstance(theta, np.ndarray) and theta.dtype == np.float64 and theta.shape == b.shape
    # float32 and list inputs are accepted and computed in float64
    theta32 = solve_nnk(K.astype(np.float32), b.astype(np.float32), method=method)
    assert theta32.dtype == np.float64
    np.testing.assert_allclose(theta32, theta, atol=1e-4)
    np.testing.assert_allclose(solve_nnk(K.tolist(), b.tolist(), method=method), theta)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", ["exact", "prune"])
def test_torch_in_torch_out(small_batch, method, dtype):
    K, b = small_batch
    want = solve_nnk(K, b, method=method)
    Kt, bt = torch.from_numpy(K).to(dtype), torch.from_numpy(b).to(dtype)
    theta = solve_nnk(Kt, bt, method=method)
    assert isinstance(theta, torch.Tensor) and theta.dtype == dtype and theta.device == bt.device
    if dtype == torch.float64:
        np.testing.assert_allclose(theta.numpy(), want, atol=1e-12)
    # mixed inputs: torch wins
    assert isinstance(solve_nnk(Kt, b, method=method), torch.Tensor)
    r = kkt_residual(Kt, bt, theta)
    assert isinstance(r, torch.Tensor) and r.shape == (len(b),)
    # nnk_objective always answers in numpy float64
    assert nnk_objective(Kt, bt, theta).dtype == np.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_torch_cuda_device_kept(small_batch):
    K, b = small_batch
    Kt = torch.from_numpy(K).float().cuda()
    bt = torch.from_numpy(b).float().cuda()
    theta = solve_nnk(Kt, bt)
    assert theta.device == bt.device and theta.dtype == torch.float32
    np.testing.assert_allclose(theta.cpu().numpy(), solve_nnk(K, b), atol=1e-4)
    assert kkt_residual(Kt, bt, theta).device == bt.device


def test_single_problem_and_batch_of_one(small_batch):
    K, b = small_batch
    batch = solve_nnk(K, b)
    single = solve_nnk(K[1], b[1])
    assert single.shape == (6,)
    np.testing.assert_array_equal(single, batch[1])
    one = solve_nnk(K[1:2], b[1:2])
    assert one.shape == (1, 6)
    np.testing.assert_array_equal(one[0], batch[1])
    r = kkt_residual(K[1], b[1], single)
    assert isinstance(r, float) and r <= 1e-9
    assert kkt_residual(K[1:2], b[1:2], one).shape == (1,)
    assert isinstance(solve_nnk(torch.from_numpy(K[1]), torch.from_numpy(b[1])), torch.Tensor)
    # k = 1: θ = k_Sq / K_SS
    np.testing.assert_allclose(solve_nnk(np.array([[2.0]]), np.array([0.5])), [0.25])


def test_kkt_residual_is_zero_only_at_the_optimum(small_batch):
    K, b = small_batch
    theta = solve_nnk(K, b)
    assert np.all(kkt_residual(K, b, theta) <= 1e-9)
    # rescaling the kernel rescales θ but not the residual
    np.testing.assert_allclose(
        kkt_residual(3 * K, 3 * b, theta), kkt_residual(K, b, theta), atol=1e-12
    )
    assert np.all(kkt_residual(K, b, np.zeros_like(b)) > 0.5)  # θ = 0: g = −k_Sq < 0
    assert np.all(kkt_residual(K, b, theta * 1.01) > 1e-4)


@pytest.mark.parametrize(
    ("K", "b", "match"),
    [
        (np.ones((2, 3, 3)), np.ones((2, 4)), r"\[B, k, k\]"),
        (np.ones((2, 3, 4)), np.ones((2, 3)), r"\[B, k, k\]"),
        (np.ones((3, 3)), np.ones((2, 3)), r"\[B, k, k\]"),
        (np.ones(3), np.ones(3), r"\[B, k, k\]"),
        (np.ones((3, 2, 2)), np.ones((2, 2)), r"\[B, k, k\]"),
        (np.ones((0, 3, 3)), np.ones((0, 3)), "empty"),
        (np.ones((2, 0, 0)), np.ones((2, 0)), "empty"),
    ],
)
def test_bad_shapes_raise(K, b, match):
    with pytest.raises(ValueError, match=match):
        solve_nnk(K, b)
    with pytest.raises(ValueError, match=match):
        kkt_residual(K, b, np.zeros(b.shape))


@pytest.mark.parametrize("where", ["K", "b"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_raises(small_batch, where, bad):
    K, b = (a.copy() for a in small_batch)
    if where == "K":
        K[1, 2, 3] = bad
    else:
        b[2, 0] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        solve_nnk(K, b)
    with pytest.raises(ValueError, match="NaN or inf"):
        solve_nnk(torch.from_numpy(K), torch.from_numpy(b), method="prune")


def test_bad_method_raises(small_batch):
    with pytest.raises(ValueError, match="method"):
        solve_nnk(*small_batch, method="lasso")


# ----------------------------------------------------------------------------- symmetry
@pytest.mark.parametrize("where", ["solve_nnk", "prune", "kkt_residual", "nnk_objective"])
def test_non_symmetric_raises(small_batch, where):
    K, b = (a.copy() for a in small_batch)
    K[2, 1, 4] += 0.05  # one entry of one matrix
    call = {
        "solve_nnk": lambda: solve_nnk(K, b),
        "prune": lambda: solve_nnk(torch.from_numpy(K), torch.from_numpy(b), method="prune"),
        "kkt_residual": lambda: kkt_residual(K, b, np.zeros_like(b)),
        "nnk_objective": lambda: nnk_objective(K, b, np.zeros_like(b)),
    }[where]
    with pytest.raises(ValueError, match=r"K_SS is not symmetric: in 1 of 4 matrices.*matrix 2"):
        call()
    with pytest.raises(ValueError, match=r"\(K_SS \+ K_SS\.transpose\(0, 2, 1\)\) / 2"):
        call()  # the message names the fix


def test_per_row_bandwidth_gaussian_is_refused():
    """gaussian_kernel(S, S) without σ picks one bandwidth per row: not a kernel matrix."""
    rng = np.random.default_rng(4)
    S, q = rng.random((8, 5)), rng.random(5)
    with pytest.raises(ValueError, match="not symmetric.*per-row bandwidth"):
        solve_nnk(gaussian_kernel(S, S), gaussian_kernel(q[None], S)[0])


def test_symmetry_tolerance_is_relative(small_batch):
    K, b = small_batch
    rng = np.random.default_rng(8)
    noise = rng.standard_normal(K.shape)
    for scale in (1.0, 1e-6, 1e6):
        # float32-rounding asymmetry passes, at any scale of the kernel...
        solve_nnk(scale * (K + 0.1 * SYMMETRY_RTOL * noise), scale * b)
        # ...ten times the tolerance does not
        with pytest.raises(ValueError, match="not symmetric"):
            solve_nnk(scale * (K + 10 * SYMMETRY_RTOL * noise), scale * b)


def test_solver_reads_the_lower_triangle(small_batch):
    """Within the tolerance the problem is the lower triangle: what lies above is never read."""
    K, b = small_batch
    lower = np.tril(K)
    sym = lower + np.tril(K, -1).transpose(0, 2, 1)
    upset = sym + 0.5 * SYMMETRY_RTOL * np.triu(np.ones_like(K), 1)
    for method in ("exact", "prune"):
        np.testing.assert_array_equal(solve_nnk(upset, b, method=method), solve_nnk(sym, b, method))


@pytest.mark.parametrize("gram_dtype", ["float32", "float64"])
@pytest.mark.parametrize("kernel", ["cosine", "gaussian"])
def test_classifier_kernels_pass_the_symmetry_check(kernel, gram_dtype):
    rng = np.random.default_rng(9)
    X = np.maximum(rng.standard_normal((600, 64)), 0).astype(np.float32) + 1e-3
    db, q = X[:500], X[500:]
    d2, idx = knn(q, db, 30)
    train = db / np.linalg.norm(db, axis=1, keepdims=True) if kernel == "cosine" else db
    k_Sq, K_SS = candidate_kernels(train, q, idx, d2, kernel, gram_dtype=gram_dtype)
    asym = np.abs(K_SS - K_SS.transpose(0, 2, 1)).max((1, 2)) / np.abs(K_SS).max((1, 2))
    assert asym.max() <= SYMMETRY_RTOL / 100
    assert np.all(kkt_residual(K_SS, k_Sq, solve_nnk(K_SS, k_Sq)) <= 1e-9)


def test_missing_numba_says_how_to_install():
    code = "import sys; sys.modules['numba'] = None; import deepnnk"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode != 0
    assert "ImportError" in run.stderr and "pip install numba" in run.stderr
