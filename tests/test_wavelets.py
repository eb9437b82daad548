"""The differentiable 2-D DWT: equality with pywt's periodization mode, perfect reconstruction,
orthogonality, gradients to the filter, the packed layout, validity penalties, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import pywt
import torch

from deepnnk.nets.wavelets import (
    band_layout,
    dwt2,
    dwt2_packed,
    frequency_response,
    idwt2,
    idwt2_packed,
    pack,
    quadrature_mirror,
    unpack,
    validity_penalties,
    validity_residuals,
)

pytestmark = pytest.mark.filterwarnings("ignore:Level value of .* is too high:UserWarning")


def _h0(name="db3") -> torch.Tensor:
    return torch.tensor(pywt.Wavelet(name).rec_lo, dtype=torch.float64)


def _x(shape=(2, 3, 32, 32), seed=0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("name", ["db1", "db2", "db3", "db4"])
def test_dwt2_equals_pywt_periodization(name):
    x = _x()
    approx, details = dwt2(x, _h0(name), 3)
    ref = pywt.wavedec2(x.numpy(), name, mode="periodization", level=3)
    np.testing.assert_allclose(approx.numpy(), ref[0], atol=1e-12)
    for j, d in enumerate(details, start=1):
        for k in range(3):  # (cH, cV, cD), pywt's order
            np.testing.assert_allclose(d[..., k, :, :].numpy(), ref[-j][k], atol=1e-12)


def test_pack_equals_pywt_coeffs_to_array():
    x = _x((1, 32, 32))
    ref = pywt.wavedec2(x.numpy(), "db3", mode="periodization", level=3, axes=(-2, -1))
    arr, _ = pywt.coeffs_to_array(ref, axes=(-2, -1))
    np.testing.assert_allclose(dwt2_packed(x, _h0(), 3).numpy(), arr, atol=1e-12)


@pytest.mark.parametrize("levels", [1, 3, 5])
def test_perfect_reconstruction_and_energy(levels):
    x = _x()
    approx, details = dwt2(x, _h0(), levels)
    assert approx.shape == (2, 3, 32 >> levels, 32 >> levels)
    assert [tuple(d.shape) for d in details] == [
        (2, 3, 3, 32 >> j, 32 >> j) for j in range(1, levels + 1)
    ]
    torch.testing.assert_close(idwt2(approx, details, _h0()), x, atol=1e-12, rtol=0)
    c = pack(approx, details)
    assert c.shape == x.shape
    torch.testing.assert_close((c**2).sum((-2, -1)), (x**2).sum((-2, -1)), atol=1e-10, rtol=0)
    torch.testing.assert_close(idwt2_packed(c, _h0(), levels), x, atol=1e-12, rtol=0)


def test_unpack_inverts_pack_and_band_layout_partitions():
    x = _x((16, 16))
    approx, details = dwt2(x, _h0(), 2)
    a2, d2 = unpack(pack(approx, details), 2)
    assert torch.equal(a2, approx) and all(
        torch.equal(p, q) for p, q in zip(d2, details, strict=True)
    )
    lab = band_layout(16, 16, 2)
    assert (lab == 0).sum() == 16 and (lab == 2).sum() == 48 and (lab == 1).sum() == 192


def test_adjoint_and_gradient_reach_the_filter():
    h = _h0() + 0.05 * torch.randn(
        6, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    h.requires_grad_(True)
    x, y = _x((1, 1, 16, 16), 0), _x((1, 1, 16, 16), 1)
    # the inverse is the adjoint even for a non-orthogonal filter: <Wx, y> = <x, W^T y>
    lhs = (dwt2_packed(x, h, 2) * y).sum()
    rhs = (x * idwt2_packed(y, h, 2)).sum()
    torch.testing.assert_close(lhs, rhs, atol=1e-12, rtol=0)
    loss = ((idwt2_packed(dwt2_packed(x, h, 2), h, 2) - x) ** 2).mean()
    (grad,) = torch.autograd.grad(loss, h)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    hh = h.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda f: dwt2_packed(x, f, 2).sum(), (hh,))


def test_quadrature_mirror_is_pywt_rec_hi():
    np.testing.assert_allclose(
        quadrature_mirror(_h0()).numpy(), pywt.Wavelet("db3").rec_hi, atol=1e-15
    )


@pytest.mark.parametrize("name", ["db1", "db2", "db3", "db4"])
def test_validity_is_zero_for_daubechies_and_positive_when_perturbed(name):
    h = _h0(name)
    pen = validity_penalties(h)
    assert set(pen) == {"sum", "norm", "cmf", "conv"}
    assert all(float(v) < 1e-12 for v in pen.values())
    assert all(abs(v) < 1e-10 for v in validity_residuals(h).values())
    bad = h.clone()
    bad[0] += 0.1
    pen = validity_penalties(bad)
    assert all(float(v) > 1e-6 for v in pen.values())
    omega, mag = frequency_response(h)
    assert mag[0] == pytest.approx(2**0.5) and omega.shape == mag.shape


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: dwt2(_x((2, 3, 32, 32)), _h0(), 6), "levels <= 5"),
        (lambda: dwt2(_x((2, 3, 24, 32)), _h0(), 4), "levels <= 3"),
        (lambda: dwt2(_x(), _h0(), 0), "positive int"),
        (lambda: dwt2(_x(), torch.ones(5), 1), "even length"),
        (lambda: dwt2(_x(), torch.ones(2, 3), 1), "1-D low-pass"),
        (lambda: dwt2(_x() * float("nan"), _h0(), 1), "NaN"),
        (lambda: dwt2(_x().numpy(), _h0(), 1), "torch tensor"),
        (lambda: dwt2(_x(), torch.tensor([0.5, float("nan")]), 1), "NaN"),
        (lambda: idwt2(torch.zeros(1, 4, 4), [torch.zeros(1, 3, 2, 2)], _h0()), "match"),
        (lambda: validity_penalties(_h0(), n_freq=7), "even"),
    ],
)
def test_bad_input_names_the_fix(call, match):
    with pytest.raises(ValueError, match=match):
        call()
