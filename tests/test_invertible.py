"""Unit tests for deepnnk.nets.invertible: coupling blocks, exact inverses, the boundary
projection with the correct biases, Taylor importance and the exact linear regions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepnnk.nets.geometry import locate
from deepnnk.nets.invertible import (
    AdditiveCoupling,
    InvertibleClassifier,
    InvertibleMLP,
    boundary_projection,
    coupling_regions,
    taylor_importance,
)


def model(n_classes=2, dim=2, blocks=6, hidden=None, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    return InvertibleClassifier(InvertibleMLP(dim, blocks, hidden), n_classes).to(dtype)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-10), (torch.float32, 1e-4)])
@pytest.mark.parametrize("dim", [2, 5])
def test_inverse_round_trip(dtype, tol, dim):
    m = model(3, dim=dim, hidden=16, dtype=dtype)
    x = 3 * torch.randn(2000, dim, generator=torch.Generator().manual_seed(1)).to(dtype)
    with torch.no_grad():
        assert (m.inverse(m.features(x)) - x).abs().max() <= tol
        z = torch.randn(500, dim, dtype=dtype)
        assert (m.features(m.inverse(z)) - z).abs().max() <= tol


def test_each_block_inverse_is_exact():
    m = model(2, hidden=8)
    x = 2 * torch.randn(1000, 2, dtype=torch.float64)
    with torch.no_grad():
        for block in m.transform.blocks:
            y = block(x)
            assert (block.inverse(y) - x).abs().max() <= 1e-12
            assert not torch.allclose(y, x)  # the block does something
            x = y


def test_coupling_block_reused_with_convolutions():
    # The block splits on dim 1, so conv sub-networks on images need no other code.
    def conv():
        return nn.Sequential(
            nn.Conv2d(2, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 3, padding=1)
        )

    torch.manual_seed(0)
    block = AdditiveCoupling(conv(), conv()).double()
    x = torch.randn(4, 4, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        assert (block.inverse(block(x)) - x).abs().max() <= 1e-12


def test_projection_lands_on_the_pair_boundary_with_correct_biases():
    m = model(4, hidden=8)
    with torch.no_grad():
        m.head.bias.copy_(torch.tensor([0.7, -1.3, 2.1, 0.4]))  # distinct biases
    rng = np.random.default_rng(0)
    n = 300
    x = torch.as_tensor(rng.normal(size=(n, 2)) * 2)
    a = rng.integers(0, 4, n)
    b = (a + rng.integers(1, 4, n)) % 4  # random pairs, a ≠ b
    x_b, p, s = boundary_projection(m, x, a, b)
    rows = np.arange(n)
    with torch.no_grad():
        gap = m(x_b)[rows, a] - m(x_b)[rows, b]
        assert gap.abs().max() <= 1e-6
        # p is the orthogonal projection: T(x) − p is along w_a − w_b, length |s|.
        u = m.head.weight[a] - m.head.weight[b]
        d = m.features(x) - p
        assert torch.allclose(d.norm(dim=1), s.abs(), atol=1e-10)
        assert (d[:, 0] * u[:, 1] - d[:, 1] * u[:, 0]).abs().max() <= 1e-10
        # The authors' bias[0] − bias[1] misses the boundary for other pairs: caught.
        bias = m.head.bias
        nu = u.norm(dim=1)
        f = m.features(x)
        wrong = f - (((u * f).sum(1) + bias[0] - bias[1]) / nu**2)[:, None] * u
        gap_wrong = (m(m.inverse(wrong))[rows, a] - m(m.inverse(wrong))[rows, b]).abs()
        assert gap_wrong.max() > 1e-2


def test_projection_broadcasts_scalar_pairs_and_float32():
    m = model(3, dtype=torch.float32)
    x = torch.randn(50, 2)
    x_b, _, _ = boundary_projection(m, x, 2, 0)
    with torch.no_grad():
        gap = m(x_b)[:, 2] - m(x_b)[:, 0]
    assert x_b.dtype == torch.float32 and gap.abs().max() <= 1e-4


def test_taylor_importance_is_gradient_times_offset():
    m = model(3, hidden=8)
    x = torch.randn(40, 2, dtype=torch.float64)
    a, b = np.zeros(40, dtype=int), np.full(40, 2)
    imp, grad = taylor_importance(m, x, a, b)
    x_b = boundary_projection(m, x, a, b)[0]
    assert torch.allclose(imp, grad * (x - x_b))
    # The gradient matches central differences (the net is piecewise affine: small steps).
    eps = 1e-6

    def d(z):
        with torch.no_grad():
            lg = m(z)
        return lg[:, 0] - lg[:, 2]

    for i in range(2):
        e = torch.zeros(1, 2, dtype=torch.float64)
        e[0, i] = eps
        fd = (d(x + e) - d(x - e)) / (2 * eps)
        assert torch.allclose(fd, grad[:, i], atol=1e-5)


def test_coupling_regions_are_exact():
    m = model(3, hidden=6, seed=2)
    bounds = (-2.5, 2.0, -1.5, 3.0)
    regions = coupling_regions(m, bounds)
    assert len(regions) > 10
    assert sum(r.area for r in regions) == pytest.approx(4.5 * 4.5, rel=1e-12)
    rng = np.random.default_rng(3)
    X = np.column_stack([rng.uniform(-2.5, 2.0, 3000), rng.uniform(-1.5, 3.0, 3000)])
    idx = locate(regions, X)
    assert (idx >= 0).all()
    A = np.stack([regions[i].A for i in idx])
    c = np.stack([regions[i].c for i in idx])
    hA = np.stack([regions[i].hidden_A for i in idx])
    hc = np.stack([regions[i].hidden_c for i in idx])
    with torch.no_grad():
        logits = m(torch.as_tensor(X)).numpy()
        feats = m.features(torch.as_tensor(X)).numpy()
    assert np.abs(np.einsum("nok,nk->no", A, X) + c - logits).max() <= 1e-12
    assert np.abs(np.einsum("nok,nk->no", hA, X) + hc - feats).max() <= 1e-12


@pytest.mark.parametrize(
    ("x", "a", "b", "match"),
    [
        (torch.zeros(3, 2), 0, 0, "must differ"),
        (torch.zeros(3, 2), 0, 3, "outside"),
        (torch.zeros(3, 2), -1, 1, "outside"),
        (torch.zeros(3, 2), np.array([0, 1]), 2, "one class per row"),
        (torch.zeros(3, 2), 0.5, 1, "int"),
        (torch.tensor([[0.0, float("nan")]]), 0, 1, "NaN"),
        (torch.zeros(3, 3), 0, 1, "shape"),
        (torch.zeros(2), 0, 1, "batch"),
    ],
)
def test_bad_inputs_raise(x, a, b, match):
    m = model(3)
    with pytest.raises(ValueError, match=match):
        boundary_projection(m, x, a, b)
    with pytest.raises(ValueError, match=match):
        taylor_importance(m, x, a, b)


def test_bad_construction_raises():
    with pytest.raises(ValueError, match="dim"):
        InvertibleMLP(1)
    with pytest.raises(ValueError, match="n_classes"):
        InvertibleClassifier(InvertibleMLP(2), 1)
    with pytest.raises(ValueError, match="split"):
        AdditiveCoupling(nn.Identity(), nn.Identity(), split=2)(torch.zeros(1, 2))
    with pytest.raises(ValueError, match="C ≥ 2"):
        AdditiveCoupling(nn.Identity(), nn.Identity())(torch.zeros(1, 1))
    with pytest.raises(ValueError, match="InvertibleMLP"):
        coupling_regions(model(2, dim=3), (-1, 1, -1, 1))
    m = model(2)
    with torch.no_grad():
        m.head.weight.zero_()
    with pytest.raises(ValueError, match="no boundary"):
        boundary_projection(m, torch.zeros(1, 2, dtype=torch.float64), 0, 1)
