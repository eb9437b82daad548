"""Exactness of :mod:`deepnnk.nets.splinecam_2d`: 2-D partitions of PaperCNN on image planes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepnnk.nets.models import PaperCNN
from deepnnk.nets.splinecam import activation_patterns, segment_partition
from deepnnk.nets.splinecam_2d import slice_partition, slice_plane

W = 0.05  # a window of a few hundred regions for a random width-3 net: seconds on one core


def exact_logits(model, x) -> np.ndarray:
    m64 = PaperCNN(model.width, model.regularized).double().eval()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    with torch.no_grad():
        return torch.cat([m64(c) for c in torch.as_tensor(x).split(2000)]).numpy()


def three_images(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(3, 3, 32, 32, generator=g, dtype=torch.float64)


def tie_at(model, x, a: int = 0, b: int = 1) -> None:
    """Bias ``model.fc`` so that classes ``a`` and ``b`` tie at image ``x`` and every other
    class is far below: the decision boundary then runs through the window's centre."""
    with torch.no_grad():
        logits = model.double()(x[None])[0]
        model.float()
        bias = torch.full_like(model.fc.bias, -100.0)
        bias[a] = model.fc.bias[a] - float(logits[a] - logits[b])
        bias[b] = model.fc.bias[b]
        model.fc.bias.copy_(bias)


@pytest.fixture(scope="module")
def sliced():
    torch.manual_seed(0)
    model = PaperCNN(width=3).eval()
    x = three_images()
    tie_at(model, x[0])
    return model, x, slice_partition(model, x[0], x[1], x[2], window=W)


def interior_points(s, n_per: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Random points strictly inside each region: convex combinations of its vertices, pulled
    towards the centroid. Returns ``(uv [R·n_per, 2], region [R·n_per])``."""
    pts, owner = [], []
    for r, poly in enumerate(s.polygons()):
        wts = rng.dirichlet(np.ones(len(poly)), n_per)
        p = wts @ poly
        p = 0.9 * p + 0.1 * poly.mean(0)
        pts.append(p), owner.append(np.full(n_per, r))
    return np.concatenate(pts), np.concatenate(owner)


def test_regions_tile_the_window(sliced):
    _, _, s = sliced
    area = (2 * W) ** 2
    assert s.n_regions > 50  # a non-trivial slice
    assert s.window == (-W, W, -W, W)
    assert (s.areas > 0).all()
    assert abs(s.areas.sum() - area) <= 1e-9 * area
    assert np.abs(s.vertices).max() <= W * (1 + 1e-12)
    # Every grid point lies in exactly one region (up to shared edges).
    g = np.linspace(-W, W, 41)[1:-1] + 1e-7
    uv = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    assert (s.locate(uv) >= 0).all()


def test_plane_is_orthonormal_through_the_images(sliced):
    _, x, s = sliced
    b = s.basis.reshape(2, -1)
    assert np.allclose(b @ b.T, np.eye(2), atol=1e-12)
    back = s.images(s.anchors)
    assert np.abs(back - x.numpy()).max() < 1e-12
    assert s.anchors[1, 1] == 0.0 and s.anchors[1, 0] == pytest.approx(float((x[1] - x[0]).norm()))


def test_network_equals_each_regions_affine_map(sliced):
    model, _, s = sliced
    uv, owner = interior_points(s, 3, np.random.default_rng(0))
    want = exact_logits(model, s.images(uv))
    got = s.logit_c[owner] + np.einsum("nkd,nd->nk", s.logit_A[owner], uv)
    scale = np.abs(want).max()
    assert np.abs(got - want).max() <= 1e-9 * scale
    assert (s.locate(uv) == owner).all()
    assert np.abs(s.logits(uv) - want).max() <= 1e-9 * scale


def test_patterns_are_constant_in_regions_and_distinct(sliced):
    model, _, s = sliced
    uv, owner = interior_points(s, 3, np.random.default_rng(1))
    _, _, dig = activation_patterns(model, s.images(uv))
    assert (dig == s.digests[owner]).all()
    # A pattern's region is convex, so an exact partition never repeats one: no spurious cut.
    assert len(set(s.digests.tolist())) == s.n_regions


def test_walls_are_real(sliced):
    """Just across every interior edge the network's pattern differs from just inside."""
    model, _, s = sliced
    inside, outside = [], []
    for poly in s.polygons():
        e = np.roll(poly, -1, 0) - poly
        mid = poly + 0.5 * e
        normal = np.stack([e[:, 1], -e[:, 0]], 1) / np.hypot(e[:, 0], e[:, 1])[:, None]
        h = 1e-6 * W
        keep = (np.abs(mid + 2 * h * normal) < W).all(1)  # skip the window's own edges
        inside.append(mid[keep] - h * normal[keep]), outside.append(mid[keep] + h * normal[keep])
    a, b = np.concatenate(inside), np.concatenate(outside)
    assert len(a) > s.n_regions
    _, _, da = activation_patterns(model, s.images(a))
    _, _, db = activation_patterns(model, s.images(b))
    assert (da != db).all()


def test_dense_grid_finds_no_missed_pattern(sliced):
    model, _, s = sliced
    g = np.linspace(-W, W, 38)[1:-1] + 1.234e-7 * W
    uv = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    _, _, dig = activation_patterns(model, s.images(uv))
    assert set(dig.tolist()) <= set(s.digests.tolist())
    assert (dig == s.digests[s.locate(uv)]).mean() == 1.0


def test_decision_boundary_has_zero_gap(sliced):
    model, _, s = sliced
    assert len(s.boundary) >= 3  # tie_at puts it through the window
    assert set(np.unique(s.boundary_classes).tolist()) == {0, 1}
    t = np.linspace(0.1, 0.9, 3)
    pts = s.boundary[:, :1] * (1 - t[None, :, None]) + s.boundary[:, 1:] * t[None, :, None]
    pts = pts.reshape(-1, 2)
    logits = exact_logits(model, s.images(pts))
    top2 = np.sort(logits, 1)[:, -2:]
    assert np.abs(top2[:, 1] - top2[:, 0]).max() <= 1e-9 * np.abs(logits).max()
    # Regions on either side of the boundary predict the two classes.
    assert set(s.predicted.tolist()) == {0, 1}


def test_line_v0_matches_the_segment_walk(sliced):
    model, x, s = sliced
    e1 = torch.from_numpy(s.basis[0])
    p = segment_partition(model, x[0], x[0] + W * e1)
    want = p.breaks[1:-1] * W
    # Where the regions' edges cross v = 0 between u = 0 and u = W.
    got = []
    for poly in s.polygons():
        q = np.roll(poly, -1, 0)
        cross = (poly[:, 1] > 0) != (q[:, 1] > 0)
        f = poly[cross, 1] / (poly[cross, 1] - q[cross, 1])
        got.extend(poly[cross, 0] + f * (q[cross, 0] - poly[cross, 0]))
    got = np.unique(np.round(np.array(got) / W, 9)) * W
    got = got[(got > 1e-9 * W) & (got < W * (1 - 1e-9))]
    assert len(got) == len(want) > 3
    assert np.abs(got - want).max() <= 1e-8 * W
    mids = np.stack([0.5 * (p.breaks[1:] + p.breaks[:-1]) * W, np.zeros(p.n_pieces)], 1)
    assert (s.digests[s.locate(mids)] == p.digests).all()


def test_bad_inputs():
    torch.manual_seed(0)
    model = PaperCNN(width=2).eval()
    x = three_images(2)
    for window in (0.0, -1.0, (0.2, 0.1, -0.1, 0.1), (1, 2, 3), float("nan")):
        with pytest.raises(ValueError, match="window"):
            slice_partition(model, x[0], x[1], x[2], window=window)
    with pytest.raises(ValueError, match="collinear"):
        slice_partition(model, x[0], x[1], 2 * x[1] - x[0], window=0.01)
    with pytest.raises(ValueError, match="x_a equals x_q"):
        slice_plane(x[0], x[0], x[1])
    with pytest.raises(ValueError, match=r"\[3, 32, 32\]"):
        slice_partition(model, x[0, :2], x[1], x[2], window=0.01)
    with pytest.raises(ValueError, match=r"one image"):
        slice_partition(model, x[:2], x[1], x[2], window=0.01)
    with pytest.raises(TypeError, match="PaperCNN"):
        slice_partition(torch.nn.Linear(2, 2), x[0], x[1], x[2], window=0.01)
    with pytest.raises(RuntimeError, match="shrink the window"):
        slice_partition(model, x[0], x[1], x[2], window=0.5, max_regions=10)
    with pytest.raises(ValueError, match="max_regions"):
        slice_partition(model, x[0], x[1], x[2], window=0.01, max_regions=0)


@pytest.mark.parametrize("options", [{"chunk": 1}, {"sparse_updates": False}])
def test_chunks_and_sparse_updates_change_nothing(sliced, options):
    model, x, s = sliced
    one = slice_partition(model, x[0], x[1], x[2], window=W, **options)
    assert sorted(one.digests.tolist()) == sorted(s.digests.tolist())
    order = {d: r for r, d in enumerate(s.digests.tolist())}
    back = np.array([order[d] for d in one.digests.tolist()])
    assert np.allclose(one.areas, s.areas[back], rtol=1e-9, atol=0)
    assert np.abs(one.logit_c - s.logit_c[back]).max() <= 1e-12 * np.abs(s.logit_c).max()


def test_a_window_away_from_the_query(sliced):
    """A box centred on x_a (not holding the query) tiles and is exact too."""
    model, x, s = sliced
    u, h = s.anchors[1, 0], W / 2
    box = (u - h, u + h, -h, h)
    far = slice_partition(model, x[0], x[1], x[2], window=box)
    assert far.window == box and far.n_regions > 10
    assert abs(far.areas.sum() - (2 * h) ** 2) <= 1e-9 * (2 * h) ** 2
    uv, owner = interior_points(far, 2, np.random.default_rng(2))
    want = exact_logits(model, far.images(uv))
    got = far.logit_c[owner] + np.einsum("nkd,nd->nk", far.logit_A[owner], uv)
    assert np.abs(got - want).max() <= 1e-9 * np.abs(want).max()
    _, _, dig = activation_patterns(model, far.images(uv))
    assert (dig == far.digests[owner]).all()


def test_slice_figure_draws(sliced, tmp_path):
    from deepnnk.figures import save_figure
    from deepnnk.figures.splinecam import slice_figure

    _, x, s = sliced
    fig = slice_figure(s, images=list(x.numpy()), names=("q", "a", "b"))
    assert "regions" in fig.axes[0].get_title()
    save_figure(fig, tmp_path, "slice")
    fig = slice_figure(s, colour_by="region", classes=None)
    assert (tmp_path / "slice.png").exists()
    with pytest.raises(ValueError, match="colour_by"):
        slice_figure(s, colour_by="pattern")
    import matplotlib.pyplot as plt

    plt.close("all")
