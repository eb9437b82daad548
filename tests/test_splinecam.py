"""Exactness of :mod:`deepnnk.nets.splinecam`: 1-D partitions of PaperCNN along segments."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from deepnnk.nets.models import PaperCNN
from deepnnk.nets.splinecam import (
    CAUSES,
    activation_patterns,
    segment_partition,
    segment_partitions,
)

# Dense enough to put several samples in each of the short segment's pieces (about 100 at
# scale 0.015), small enough for CI: float64 convs on the CPU are slow.
N_DENSE = 5_000


def small_model(seed: int = 0) -> PaperCNN:
    torch.manual_seed(seed)
    return PaperCNN(width=4).eval()


def short_segment(seed: int = 1, scale: float = 0.015):
    """A query in [0, 1]^3072 and an endpoint a short random step away (about a hundred pieces)."""
    g = torch.Generator().manual_seed(seed)
    x_q = torch.rand(3, 32, 32, generator=g, dtype=torch.float64)
    return x_q, x_q + scale * torch.randn(3, 32, 32, generator=g, dtype=torch.float64)


def along(x_q, x_j, t) -> torch.Tensor:
    """Images ``[n, 3, 32, 32]`` at ``t [n]`` on the segment, float64."""
    t = torch.as_tensor(np.asarray(t), dtype=torch.float64)[:, None, None, None]
    return x_q[None] + t * (x_j - x_q)[None]


def exact_logits(model, x) -> np.ndarray:
    m64 = PaperCNN(model.width, model.regularized).double().eval()
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    with torch.no_grad():
        return torch.cat([m64(c) for c in x.split(2000)]).numpy()


def tie_two_classes(model, x_q, x_j) -> tuple[int, int]:
    """Bias ``model.fc`` so that the top class changes along the segment: the pair whose logit
    difference changes most picks the biases, every other class is pushed far down."""
    with torch.no_grad():
        lq, lj = (model.double()(x[None])[0] for x in (x_q, x_j))
        model.float()
        diff = (lq[:, None] - lq[None]) - (lj[:, None] - lj[None])
        a, b = divmod(int(diff.argmax()), len(lq))
        old = model.fc.bias.clone()
        bias = torch.full_like(old, -100.0)
        # a leads b by diff/2 at x_q and trails it by diff/2 at x_j.
        bias[a] = old[a] - 0.5 * float((lq[a] - lq[b]) + (lj[a] - lj[b]))
        bias[b] = old[b]
        model.fc.bias.copy_(bias)
    return a, b


@pytest.fixture(scope="module")
def walked():
    model = small_model()
    x_q, x_j = short_segment()
    return model, x_q, x_j, segment_partition(model, x_q, x_j)


def test_pieces_tile_the_segment(walked):
    _, x_q, x_j, p = walked
    assert p.breaks[0] == 0.0 and p.breaks[-1] == 1.0
    assert (np.diff(p.breaks) > 0).all()
    assert p.n_pieces > 20  # a non-trivial walk
    assert p.logit_intercept.shape == p.logit_slope.shape == (p.n_pieces, 10)
    assert len(p.cause) == len(p.cause_unit) == p.n_pieces - 1
    assert set(p.cause.tolist()) <= set(range(len(CAUSES)))
    assert p.length == pytest.approx(float((x_j - x_q).norm()))


def test_network_is_the_pieces_affine_map(walked):
    model, x_q, x_j, p = walked
    rng = np.random.default_rng(0)
    lo, hi = p.breaks[:-1], p.breaks[1:]
    t = (lo[:, None] + rng.uniform(size=(p.n_pieces, 3)) * (hi - lo)[:, None]).ravel()
    want = exact_logits(model, along(x_q, x_j, t))
    assert np.abs(p.logits(t) - want).max() <= 1e-9
    # The maps also agree at the breaks themselves (the network is continuous).
    want = exact_logits(model, along(x_q, x_j, p.breaks))
    assert np.abs(p.logits(p.breaks) - want).max() <= 1e-9


def test_neighbouring_pieces_differ(walked):
    p = walked[3]
    assert (p.digests[1:] != p.digests[:-1]).all()


def test_dense_sampling_finds_no_missed_switch(walked):
    model, x_q, x_j, p = walked
    t = np.random.default_rng(1).uniform(size=N_DENSE)
    d = (x_j - x_q)[None]
    digests = np.concatenate(
        [
            activation_patterns(model, along(x_q, x_j, c), d.expand(len(c), -1, -1, -1))[2]
            for c in np.array_split(t, 40)
        ]
    )
    # Every sample's pattern is its piece's: constant within pieces, no switch missed.
    assert (digests == p.digests[p.piece_index(t)]).all()
    assert len(np.unique(p.piece_index(t))) > 0.9 * p.n_pieces


def test_patterns_match_a_plain_forward_pass(walked):
    """Independent of the walk's tie rule: ReLU signs from F.conv2d, and the recorded pool
    argmax attains its window's maximum."""
    model, x_q, x_j, _ = walked
    t = np.random.default_rng(2).uniform(size=300)
    x = along(x_q, x_j, t)
    relus, pools, _ = activation_patterns(model, x)
    h = x
    for i, conv in enumerate(model.requires_grad_(False).convs):
        pre = F.conv2d(h, conv.weight.double(), conv.bias.double(), padding=1)
        clear = pre.abs().numpy() > 1e-9
        assert (relus[i][clear] == (pre.numpy() > 0)[clear]).all()
        h = torch.relu(pre)
        if i % 2 == 1:
            n, c, hh, ww = h.shape
            win = h.reshape(n, c, hh // 2, 2, ww // 2, 2).permute(0, 1, 2, 4, 3, 5)
            win = win.reshape(n, c, hh // 2, ww // 2, 4).numpy()
            got = np.take_along_axis(win, pools[i // 2][..., None], -1)[..., 0]
            assert np.abs(got - win.max(-1)).max() <= 1e-12
            h = F.max_pool2d(h, 2)


def test_decision_changes_are_exact_ties():
    model = small_model(3)
    x_q, x_j = short_segment(4, scale=0.05)
    a, b = tie_two_classes(model, x_q, x_j)
    p = segment_partition(model, x_q, x_j)
    assert len(p.decision_t) >= 1
    assert {p.decision_from[0], p.decision_to[0]} == {a, b}
    assert (p.decision_from[1:] == p.decision_to[:-1]).all()
    logits = exact_logits(model, along(x_q, x_j, p.decision_t))
    rows = np.arange(len(p.decision_t))
    gap = logits[rows, p.decision_from] - logits[rows, p.decision_to]
    assert np.abs(gap).max() <= 1e-9
    assert (logits.max(1) - logits[rows, p.decision_to] <= 1e-9).all()
    # Between changes the top class is the recorded one.
    t = np.random.default_rng(5).uniform(size=2000)
    top = exact_logits(model, along(x_q, x_j, t)).argmax(1)
    cls = np.concatenate([[p.decision_from[0]], p.decision_to])
    assert (top == cls[np.searchsorted(p.decision_t, t)]).all()


def test_reuse_and_batching_change_nothing(walked):
    model, x_q, x_j, p = walked
    x_k = short_segment(7)[1] - short_segment(7)[0] + x_q
    both = segment_partitions(model, x_q, torch.stack([x_j, x_k]))
    full = segment_partitions(model, x_q, x_j, reuse_layers=False)[0]
    for q in (both[0], full):
        assert len(q.breaks) == len(p.breaks)
        assert np.abs(q.breaks - p.breaks).max() <= 1e-12
        assert (q.digests == p.digests).all()
    single = segment_partition(model, x_q, x_k)
    assert (single.digests == both[1].digests).all()


def test_callers_model_untouched(walked):
    model = small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x_q, x_j = short_segment(scale=0.005)
    segment_partition(model, x_q.float(), x_j.float())
    assert all(v.dtype == torch.float32 for v in model.state_dict().values())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_errors_name_the_fix():
    model = small_model()
    x_q, x_j = short_segment(scale=0.005)
    with pytest.raises(TypeError, match="PaperCNN"):
        segment_partition(torch.nn.Linear(3, 3), x_q, x_j)
    with pytest.raises(ValueError, match=r"\[3, 32, 32\]"):
        segment_partition(model, x_q[:, :16], x_j)
    with pytest.raises(ValueError, match="NaN"):
        segment_partition(model, x_q, torch.full_like(x_j, float("nan")))
    with pytest.raises(ValueError, match="x_q == x_j"):
        segment_partition(model, x_q, x_q.clone())
    with pytest.raises(ValueError, match="to_tensor"):
        segment_partitions(model, x_q, np.zeros((2, 32, 32, 3), dtype=np.uint8))
    with pytest.raises(RuntimeError, match="max_pieces"):
        segment_partition(model, x_q, x_j + 0.3, max_pieces=2)


@pytest.mark.data
@pytest.mark.slow
def test_authors_network_on_real_segments(real_data_root):
    from deepnnk.nets.data import load_cifar10, to_tensor
    from deepnnk.nets.loading import load_network

    model = load_network("paper", "regularised", 20, data_root=real_data_root)
    x_train, _, x_test, _ = load_cifar10(real_data_root, verify=False)
    x_q = to_tensor(x_test[:2]).double()
    # Short real segments: from two test images 1% of the way to training images (tens of
    # pieces each; the whole segment has tens of thousands, see benchmarks/bench_splinecam.py).
    x_j = x_q + 0.01 * (to_tensor(x_train[:2]).double() - x_q)
    parts = segment_partitions(model, x_q, x_j)
    rng = np.random.default_rng(0)
    for k, p in enumerate(parts):
        assert p.breaks[0] == 0.0 and p.breaks[-1] == 1.0 and (np.diff(p.breaks) > 0).all()
        assert (p.digests[1:] != p.digests[:-1]).all()
        t = rng.uniform(size=200)
        want = exact_logits(model, along(x_q[k], x_j[k], t))
        assert np.abs(p.logits(t) - want).max() <= 1e-9
        d = (x_j[k] - x_q[k])[None].expand(len(t), -1, -1, -1)
        digests = activation_patterns(model, along(x_q[k], x_j[k], t), d)[2]
        assert (digests == p.digests[p.piece_index(t)]).all()
        if len(p.decision_t):
            logits = exact_logits(model, along(x_q[k], x_j[k], p.decision_t))
            rows = np.arange(len(p.decision_t))
            gap = logits[rows, p.decision_from] - logits[rows, p.decision_to]
            assert np.abs(gap).max() <= 1e-9
