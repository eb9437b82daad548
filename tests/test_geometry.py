"""Exact linear-region geometry of ReLU MLPs and the 2-D NNK (KRI) geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from torch import nn

from deepnnk.nets.geometry import (
    box_polygon,
    clip_polygon,
    decision_boundary,
    kri_halfplane,
    linear_regions,
    locate,
    nnk_polytope,
    point_in_polygon,
    polygon_area,
    polygon_centroid,
)

BOUNDS = (-2.0, 3.0, -1.5, 2.0)
DOMAIN_AREA = 5.0 * 3.5


def make_mlp(widths, n_out, seed):
    """Seeded float64 ``2 → widths… → n_out`` ReLU MLP whose top logits tie at the domain centre,
    so that the decision boundary crosses the domain."""
    torch.manual_seed(seed)
    layers, d = [], 2
    for w in widths:
        layers += [nn.Linear(d, w), nn.ReLU()]
        d = w
    layers.append(nn.Linear(d, n_out))
    mlp = nn.Sequential(*layers).double()
    centre = torch.tensor([[0.5 * (BOUNDS[0] + BOUNDS[1]), 0.5 * (BOUNDS[2] + BOUNDS[3])]])
    with torch.no_grad():
        logits = mlp(centre.double())[0]
        mlp[-1].bias -= logits - logits.mean()
    return mlp


def forward_with_patterns(mlp, x):
    """float64 ``x [n, 2]`` → (logits ``[n, out]``, pre-activations per hidden layer, last hidden
    post-ReLU features)."""
    h = torch.as_tensor(x, dtype=torch.float64)
    pre, post = [], None
    with torch.no_grad():
        for mod in mlp:
            if isinstance(mod, nn.ReLU):
                pre.append(h.numpy().copy())
                h = mod(h)
                post = h.numpy().copy()
            else:
                h = mod(h)
    return h.numpy(), pre, post


def interior_points(region, rng, k):
    """``k`` random points strictly inside a region: convex combinations of its vertices, pulled
    towards the centroid."""
    v = region.vertices
    w = rng.dirichlet(np.ones(len(v)), size=k)
    cen = polygon_centroid(v)
    return np.concatenate([cen[None], cen + 0.9 * (w @ v - cen)])


@pytest.fixture(
    scope="module",
    params=[((16, 16), 2, 0), ((12, 12, 12), 3, 1)],
    ids=["2-16-16-2", "2-12-12-12-3"],
)
def net_regions(request):
    widths, n_out, seed = request.param
    mlp = make_mlp(widths, n_out, seed)
    return mlp, linear_regions(mlp, BOUNDS)


# --------------------------------------------------------------------------- helpers


def test_area_and_clip_on_simple_shapes():
    sq = box_polygon((0, 1, 0, 1))
    assert polygon_area(sq) == pytest.approx(1.0)
    assert polygon_area(sq[::-1]) == pytest.approx(-1.0)  # clockwise → negative
    np.testing.assert_allclose(polygon_centroid(sq), [0.5, 0.5])

    half = clip_polygon(sq, [1.0, 0.0], -0.5)  # x ≥ 0.5
    assert polygon_area(half) == pytest.approx(0.5)
    assert half[:, 0].min() == pytest.approx(0.5)

    tri = clip_polygon(sq, [1.0, 1.0], -1.0)  # x + y ≥ 1: passes through two corners
    assert len(tri) == 3
    assert polygon_area(tri) == pytest.approx(0.5)
    np.testing.assert_allclose(polygon_centroid(tri), [2 / 3, 2 / 3])

    corner = clip_polygon(sq, [-1.0, -1.0], 0.5)  # x + y ≤ 0.5
    assert polygon_area(corner) == pytest.approx(0.125)

    assert np.array_equal(clip_polygon(sq, [1.0, 0.0], 1.0), sq)  # keeps everything
    assert len(clip_polygon(sq, [1.0, 0.0], -2.0)) == 0  # keeps nothing
    assert len(clip_polygon(sq, [1.0, 0.0], -1.0)) == 0  # only an edge survives

    inside = point_in_polygon([[0.5, 0.5], [1.0, 0.3], [1.1, 0.5], [-1e-3, 0.2]], sq)
    assert inside.tolist() == [True, True, False, False]


def test_box_rejects_bad_bounds_and_unsupported_layers():
    with pytest.raises(ValueError):
        box_polygon((1, 0, 0, 1))
    with pytest.raises(ValueError):
        linear_regions(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)))
    with pytest.raises(TypeError):
        linear_regions(nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 2)))


def test_single_linear_layer_is_one_region():
    mlp = nn.Sequential(nn.Linear(2, 3)).double()
    (reg,) = linear_regions(mlp, BOUNDS)
    assert reg.pattern == ()
    np.testing.assert_allclose(reg.A, mlp[0].weight.detach().numpy())
    assert reg.area == pytest.approx(DOMAIN_AREA)


# --------------------------------------------------------------------------- regions


def test_areas_tile_the_domain(net_regions):
    _, regions = net_regions
    assert len(regions) > 20
    areas = np.array([r.area for r in regions])
    assert (areas > 0).all()
    assert areas.sum() == pytest.approx(DOMAIN_AREA, rel=1e-9)
    for r in regions:  # every polygon is counter-clockwise and convex
        e = np.roll(r.vertices, -1, 0) - r.vertices
        turn = e[:, 0] * np.roll(e[:, 1], -1) - e[:, 1] * np.roll(e[:, 0], -1)
        assert (turn >= -1e-12).all()


def test_pattern_is_constant_in_each_region(net_regions):
    mlp, regions = net_regions
    rng = np.random.default_rng(0)
    keys = set()
    for r in regions:
        x = interior_points(r, rng, 5)
        _, pre, _ = forward_with_patterns(mlp, x)
        for layer, (z, pat) in enumerate(zip(pre, r.pattern, strict=True)):
            # Only rounding-level pre-activations could be ambiguous; interior points have none.
            decided = np.abs(z) > 1e-9
            assert ((z > 0) == pat[None])[decided].all(), f"layer {layer}"
        keys.add(r.pattern_key())
    assert len(keys) == len(regions)  # a pattern's region is convex, hence unique


def test_network_equals_region_affine_map(net_regions):
    mlp, regions = net_regions
    rng = np.random.default_rng(1)
    for r in regions:
        x = interior_points(r, rng, 4)
        x = np.concatenate([x, r.vertices])  # continuity: the map also holds on the boundary
        logits, _, hidden = forward_with_patterns(mlp, x)
        np.testing.assert_allclose(x @ r.A.T + r.c, logits, rtol=0, atol=1e-9)
        np.testing.assert_allclose(x @ r.hidden_A.T + r.hidden_c, hidden, rtol=0, atol=1e-9)


def test_logit_gap_vanishes_on_decision_boundary(net_regions):
    mlp, regions = net_regions
    segs, pairs = decision_boundary(regions, return_classes=True)
    assert segs.shape[1:] == (2, 2) and len(segs) > 0
    n_out = regions[0].A.shape[0]
    if n_out > 2:
        assert len({tuple(p) for p in pairs}) == 3  # the tie at the centre: all three pairs
    pts = np.concatenate([segs[:, 0], segs[:, 1], segs.mean(1)])
    pp = np.concatenate([pairs] * 3)
    logits, _, _ = forward_with_patterns(mlp, pts)
    rows = np.arange(len(pts))
    lk, lj = logits[rows, pp[:, 0]], logits[rows, pp[:, 1]]
    np.testing.assert_allclose(lk - lj, 0.0, atol=1e-9)
    assert (logits.max(1) - lk <= 1e-9).all()  # the two tied classes are on top
    lo = np.array([BOUNDS[0], BOUNDS[2]]) - 1e-12
    hi = np.array([BOUNDS[1], BOUNDS[3]]) + 1e-12
    assert ((pts >= lo) & (pts <= hi)).all()


def test_regions_do_not_overlap_and_locate_finds_them(net_regions):
    mlp, regions = net_regions
    rng = np.random.default_rng(2)
    pts = rng.uniform([BOUNDS[0], BOUNDS[2]], [BOUNDS[1], BOUNDS[3]], size=(3000, 2))
    member = np.stack([point_in_polygon(pts, r.vertices, tol=-1e-12) for r in regions])
    assert (member.sum(0) == 1).all()
    idx = locate(regions, pts)
    np.testing.assert_array_equal(idx, member.argmax(0))
    logits, _, _ = forward_with_patterns(mlp, pts)
    A = np.stack([r.A for r in regions])[idx]
    c = np.stack([r.c for r in regions])[idx]
    np.testing.assert_allclose(np.einsum("nok,nk->no", A, pts) + c, logits, atol=1e-9)
    assert (locate(regions, [[10.0, 10.0]]) == -1).all()


def test_deeper_wider_net_partition_is_consistent():
    mlp = make_mlp((32, 32, 32), 2, seed=3)
    regions = linear_regions(mlp, BOUNDS)
    assert sum(r.area for r in regions) == pytest.approx(DOMAIN_AREA, rel=1e-9)
    rng = np.random.default_rng(3)
    pts = rng.uniform([BOUNDS[0], BOUNDS[2]], [BOUNDS[1], BOUNDS[3]], size=(5000, 2))
    idx = locate(regions, pts)
    assert (idx >= 0).all()
    logits, pre, _ = forward_with_patterns(mlp, pts)
    A = np.stack([r.A for r in regions])[idx]
    c = np.stack([r.c for r in regions])[idx]
    np.testing.assert_allclose(np.einsum("nok,nk->no", A, pts) + c, logits, atol=1e-9)
    for layer, z in enumerate(pre):
        pat = np.stack([regions[i].pattern[layer] for i in idx])
        decided = np.abs(z) > 1e-9
        assert ((z > 0) == pat)[decided].all()


# --------------------------------------------------------------------------- NNK geometry


def nnk_two_candidates(q, j, l, sigma):
    """Exact minimiser of ½θᵀK_SSθ − K_Sqᵀθ over θ ≥ 0 for two Gaussian-kernel candidates."""

    def k(a, b):
        return np.exp(-np.sum((a - b) ** 2) / (2 * sigma**2))

    kss = np.array([[1.0, k(j, l)], [k(j, l), 1.0]])
    ksq = np.array([k(q, j), k(q, l)])
    theta = np.linalg.solve(kss, ksq)
    if (theta >= 0).all():
        return theta
    # Otherwise one weight is zero and the other solves its 1-D problem (K_ii = 1).
    singles = [np.array([ksq[0], 0.0]), np.array([0.0, ksq[1]])]
    return min(singles, key=lambda t: 0.5 * t @ kss @ t - ksq @ t)


coord = st.floats(-3.0, 3.0, allow_nan=False)
point = st.tuples(coord, coord).map(np.array)


@settings(max_examples=300, deadline=None)
@given(q=point, j=point, l=point, sigma=st.floats(0.3, 3.0))
def test_kri_halfplanes_decide_both_weights_positive(q, j, l, sigma):
    for a, b in ((q, j), (q, l), (j, l)):
        assume(np.linalg.norm(a - b) > 0.05)
    # Stay clear of the KRI lines, where the sign of a weight is decided by rounding.
    assume(abs((q - j) @ (l - j)) / sigma**2 > 1e-3)
    assume(abs((q - l) @ (j - l)) / sigma**2 > 1e-3)

    theta = nnk_two_candidates(q, j, l, sigma)
    nj, oj = kri_halfplane(q, j)
    nl, ol = kri_halfplane(q, l)
    assert nj @ q + oj > 0 and nl @ q + ol > 0  # the normal points to the query's side
    assert abs(nj @ j + oj) < 1e-12  # the line passes through the neighbour
    l_beyond_ok = nj @ l + oj > 0  # l strictly on the query's side of j's KRI line
    j_beyond_ok = nl @ j + ol > 0
    assert bool((theta > 0).all()) == bool(l_beyond_ok and j_beyond_ok)


@settings(max_examples=100, deadline=None)
@given(
    q=st.tuples(st.floats(-0.9, 0.9), st.floats(-0.9, 0.9)).map(np.array),
    nbrs=st.lists(point, min_size=1, max_size=6),
)
@example(  # once failed in CI (a neighbour at 1e-300 from the origin)
    q=np.array([-0.3359375, -0.3359375]),
    nbrs=[np.array([1.2427396, -0.875]), np.array([0.0, 1e-300])],
)
def test_nnk_polytope_contains_query_and_respects_every_halfplane(q, nbrs):
    for x in nbrs:
        assume(np.linalg.norm(x - q) > 0.05)
    bounds = (-3.0, 3.0, -3.0, 3.0)
    poly = nnk_polytope(q, np.array(nbrs), bounds)
    assert len(poly) >= 3 and polygon_area(poly) > 0
    assert point_in_polygon(q[None], poly)[0]
    for x in nbrs:
        a, b = kri_halfplane(q, x)
        assert (poly @ a + b >= -1e-9).all()
    assert (poly >= -3 - 1e-12).all() and (poly <= 3 + 1e-12).all()


def test_nnk_polytope_simple_case():
    # Neighbours at (±1, 0) around the origin: the polytope is the strip |x| ≤ 1.
    poly = nnk_polytope([0.0, 0.0], [[1.0, 0.0], [-1.0, 0.0]], (-2, 2, -2, 2))
    assert polygon_area(poly) == pytest.approx(8.0)
    np.testing.assert_allclose(np.abs(poly[:, 0]).max(), 1.0)
