"""Cosine and Gaussian kernels: range, diagonal, dtype, symmetry, the σ rule and input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepnnk import cosine_kernel, gaussian_kernel
from deepnnk.kernels import default_sigma, normalize_rows


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((30, 7))
    B = rng.standard_normal((20, 7))
    return A, B


# ----------------------------------------------------------------------------- cosine
def test_cosine_range_diagonal_dtype_symmetry(data):
    A, B = data
    K = cosine_kernel(A, B)
    assert K.shape == (30, 20) and K.dtype == np.float64
    assert np.all((K >= 0) & (K <= 1))
    cos = (A @ B.T) / np.outer(np.linalg.norm(A, axis=1), np.linalg.norm(B, axis=1))
    np.testing.assert_allclose(K, 0.5 + 0.5 * cos, atol=1e-14)
    KA = cosine_kernel(A, A)
    np.testing.assert_array_equal(KA, KA.T)
    np.testing.assert_allclose(np.diag(KA), 1.0, atol=1e-15)
    np.testing.assert_allclose(cosine_kernel(B, A), K.T, atol=1e-15)
    # positive semi-definite: it is the Gram matrix of [x/‖x‖; 1]/√2
    assert np.linalg.eigvalsh(KA)[0] > -1e-12


def test_cosine_extremes_and_scale_invariance():
    a = np.array([[1.0, 2.0, 0.0]])
    np.testing.assert_allclose(cosine_kernel(a, -a), [[0.0]], atol=1e-15)  # opposite → 0
    np.testing.assert_allclose(cosine_kernel(a, 5 * a), [[1.0]], atol=1e-15)  # same direction → 1
    np.testing.assert_allclose(cosine_kernel(a, [[-2.0, 1.0, 3.0]]), [[0.5]], atol=1e-15)  # ⊥ → ½
    rng = np.random.default_rng(1)
    A, B = rng.random((5, 4)), rng.random((6, 4))
    np.testing.assert_allclose(cosine_kernel(3 * A, 0.1 * B), cosine_kernel(A, B), atol=1e-15)
    # nonnegative features (ReLU) → cos ≥ 0 → K ≥ ½
    assert cosine_kernel(A, B).min() >= 0.5


def test_cosine_float64_from_other_inputs(data):
    A, B = data
    want = cosine_kernel(A, B)
    for a, b in [
        (A.astype(np.float32), B.astype(np.float32)),
        (torch.from_numpy(A), torch.from_numpy(B)),
        (A.tolist(), B.tolist()),
    ]:
        K = cosine_kernel(a, b)
        assert isinstance(K, np.ndarray) and K.dtype == np.float64
        np.testing.assert_allclose(K, want, atol=1e-6)
    assert cosine_kernel(np.array([[1, 2]]), np.array([[2, 4]])).dtype == np.float64  # ints


@pytest.mark.parametrize("which", ["A", "B"])
def test_cosine_zero_vector_raises(data, which):
    A, B = (x.copy() for x in data)
    (A if which == "A" else B)[3] = 0.0
    with pytest.raises(ValueError, match="zero") as err:
        cosine_kernel(A, B)
    assert "rows [3]" in str(err.value) and which in str(err.value)
    with pytest.raises(ValueError, match="zero"):
        normalize_rows(np.zeros((2, 3)))


def test_normalize_rows():
    X = np.array([[3.0, 4.0], [0.0, -2.0]])
    np.testing.assert_allclose(normalize_rows(X), [[0.6, 0.8], [0.0, -1.0]])


# ----------------------------------------------------------------------------- gaussian
def test_gaussian_explicit_sigma(data):
    A, B = data
    d2 = ((A[:, None, :] - B[None, :, :]) ** 2).sum(-1)
    for sigma in (0.5, 2.0):
        K = gaussian_kernel(A, B, sigma=sigma)
        assert K.dtype == np.float64 and K.shape == (30, 20)
        np.testing.assert_allclose(K, np.exp(-d2 / (2 * sigma**2)), rtol=1e-12, atol=1e-300)
        assert np.all((K > 0) & (K <= 1))
    # one σ per row of A
    s = np.linspace(0.5, 3.0, 30)
    np.testing.assert_allclose(
        gaussian_kernel(A, B, sigma=s), np.exp(-d2 / (2 * s[:, None] ** 2)), rtol=1e-12
    )
    KA = gaussian_kernel(A, A, sigma=1.3)
    np.testing.assert_allclose(KA, KA.T, rtol=1e-14)
    np.testing.assert_allclose(np.diag(KA), 1.0, atol=1e-14)
    assert np.linalg.eigvalsh(KA)[0] > -1e-12


def test_gaussian_default_sigma_rule(data):
    """σ per row of A = (distance to the farthest row of B) / 3: the farthest gets exp(−4.5)."""
    A, B = data
    d2 = ((A[:, None, :] - B[None, :, :]) ** 2).sum(-1)
    sigma = np.sqrt(d2.max(1)) / 3
    K = gaussian_kernel(A, B)
    np.testing.assert_allclose(K, np.exp(-d2 / (2 * sigma[:, None] ** 2)), rtol=1e-10)
    np.testing.assert_allclose(K.min(1), np.exp(-4.5), rtol=1e-10)
    np.testing.assert_allclose(K[np.arange(30), d2.argmax(1)], np.exp(-4.5), rtol=1e-10)
    np.testing.assert_allclose(default_sigma(d2), sigma, rtol=1e-14)
    # the rule is per row, so K(A, A) is not symmetric in general
    KA = gaussian_kernel(A, A)
    assert not np.allclose(KA, KA.T)
    np.testing.assert_allclose(np.diag(KA), 1.0)


def test_gaussian_default_sigma_all_duplicates():
    a = np.array([[1.0, 2.0]])
    K = gaussian_kernel(a, np.repeat(a, 3, 0))
    np.testing.assert_array_equal(K, np.ones((1, 3)))
    np.testing.assert_array_equal(default_sigma(np.zeros((2, 4))), [1.0, 1.0])


@pytest.mark.parametrize("sigma", [0.0, -1.0, np.nan, np.inf, [1.0, 0.0, 1.0]])
def test_gaussian_bad_sigma(sigma):
    A = np.eye(3)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_kernel(A, A, sigma=sigma)


# ----------------------------------------------------------------------------- input errors
@pytest.mark.parametrize("kernel", [cosine_kernel, gaussian_kernel])
def test_shape_errors(kernel):
    A = np.ones((4, 3))
    with pytest.raises(ValueError, match="features"):
        kernel(A, np.ones((2, 5)))
    with pytest.raises(ValueError, match="2-D"):
        kernel(np.ones(3), A)
    with pytest.raises(ValueError, match="2-D"):
        kernel(A, np.ones((2, 3, 1)))
    with pytest.raises(ValueError, match="empty"):
        kernel(np.ones((0, 3)), A)
    with pytest.raises(ValueError, match="NaN or inf"):
        kernel(A, np.array([[1.0, np.nan, 0.0]]))
    with pytest.raises(ValueError, match="NaN or inf"):
        kernel(np.array([[np.inf, 1.0, 0.0]]), A)
    with pytest.raises(ValueError, match="numeric"):
        kernel(np.array([["a", "b", "c"]]), A)
