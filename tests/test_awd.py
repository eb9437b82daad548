"""AWD: the loss terms, seeded training that lowers the loss, the distilled model's pieces and
the study on tiny inputs, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import pywt
import torch

from deepnnk.nets.models import PaperCNN
from deepnnk.studies import awd


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: small convolutions on a shared 2-core machine run faster so."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _net(seed=0) -> PaperCNN:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return PaperCNN(width=4).eval()


def _grey(n=16, seed=0) -> torch.Tensor:
    return torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed))


def _db3() -> torch.Tensor:
    return torch.tensor(pywt.Wavelet("db3").rec_lo, dtype=torch.float32)


def test_grey_is_the_channel_mean():
    u8 = (np.random.default_rng(0).random((3, 32, 32, 3)) * 255).astype(np.uint8)
    g = awd.grey(u8)
    assert g.shape == (3, 1, 32, 32) and g.dtype == torch.float32
    np.testing.assert_allclose(g[:, 0].numpy(), u8.mean(-1) / 255, atol=1e-6)


def test_loss_terms_validity_zero_for_db3_and_positive_when_perturbed():
    terms = {k: v.detach() for k, v in awd.awd_loss(_db3(), _grey(), _net()).items()}
    assert set(terms) == set(awd.LOSS_TERMS)
    for k in ("reconstruction", "sum", "norm", "cmf", "conv"):
        assert float(terms[k]) < 1e-6, k
    assert float(terms["wave"]) > 0 and float(terms["attr"]) > 0
    bad = _db3() + torch.tensor([0.05, -0.03, 0.0, 0.02, 0.0, 0.01])
    bad_terms = awd.awd_loss(bad, _grey(), _net())
    for k in ("reconstruction", "sum", "norm", "cmf", "conv"):
        assert float(bad_terms[k]) > 1e-5, k
    lam = awd.DEFAULT_LAMBDAS
    total = (
        terms["reconstruction"]
        + lam["valid"] * sum(terms[k] for k in ("sum", "norm", "cmf", "conv"))
        + lam["wave"] * terms["wave"]
        + lam["attr"] * terms["attr"]
    )
    torch.testing.assert_close(terms["total"], total)
    assert float(awd.awd_loss(_db3(), _grey(), None)["attr"]) == 0


def test_attribution_term_reaches_the_filter():
    h = _db3().requires_grad_(True)
    terms = awd.awd_loss(h, _grey(4), _net())
    (grad,) = torch.autograd.grad(terms["attr"], h)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_training_is_seeded_and_lowers_the_loss():
    g, net = _grey(32), _net()
    init = (_db3() + torch.tensor([0.03, -0.02, 0.0, 0.02, 0.0, 0.01])).numpy()
    kw = dict(steps=25, batch_size=8, lr=5e-3, init=init, seed=3)
    a = awd.train_awd(net, g, **kw)
    b = awd.train_awd(net, g, **kw)
    np.testing.assert_array_equal(a["h0"], b["h0"])
    assert not np.array_equal(a["h0"], a["h0_init"])
    assert a["loss_end"]["total"] < a["loss_start"]["total"]
    assert {k: len(v) for k, v in a["history"].items()} == {k: 25 for k in awd.LOSS_TERMS}
    assert set(a["residuals"]) == {"sum", "norm", "cmf", "conv"}
    c = awd.train_awd(net, g, **{**kw, "seed": 4})
    assert not np.array_equal(a["h0"], c["h0"])
    for p, q in zip(net.parameters(), _net().parameters(), strict=True):
        assert torch.equal(p, q)  # the model is not trained


def test_features_and_accuracies_on_tiny_inputs():
    g = _grey(40)
    f = awd.wavelet_features(g, _db3().double().numpy())
    assert f.shape == (40, 16 + 36) and np.isfinite(f).all()
    y = np.arange(40) % 2
    acc = awd.distilled_accuracy(g[:30], y[:30], g[30:], y[30:], _db3().numpy())
    assert 0 <= acc <= 1
    assert 0 <= awd.cnn_grey_accuracy(_net(), g, np.zeros(40, int)) <= 1


def test_study_smoke_on_tiny_inputs():
    sizes = {**awd.profile("smoke"), "n_train": 20, "n_clf_train": 30, "n_clf_test": 10}
    rng = np.random.default_rng(0)
    x = (rng.random((40, 32, 32, 3)) * 255).astype(np.uint8)
    y = np.arange(40) % 3
    out = awd.awd_study(_net(), x, y, x[:10], y[:10], sizes)
    assert set(out["accuracy"]) == {"distilled", "db3", "cnn"}
    assert out["h0"].shape == (6,) and out["seconds"] > 0
    np.testing.assert_allclose(out["h0_init"], pywt.Wavelet("db3").rec_lo, atol=1e-7)
    assert set(awd.PROFILES) == {"smoke", "quick", "paper"}
    with pytest.raises(ValueError, match="more images"):
        awd.awd_study(_net(), x[:5], y[:5], x[:5], y[:5], sizes)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: awd.awd_loss(_db3(), torch.rand(2, 3, 32, 32), None), r"\[N, 1, H, W\]"),
        (lambda: awd.awd_loss(_db3(), _grey(2) * float("nan"), None), "NaN"),
        (lambda: awd.awd_loss(_db3(), _grey(2), None, levels=6), "levels <= 5"),
        (lambda: awd.awd_loss(torch.ones(5), _grey(2), None), "even length"),
        (lambda: awd.train_awd(None, _grey(2), steps=0), "steps"),
        (lambda: awd.train_awd(_net().train(), _grey(2), steps=1), "eval"),
        (lambda: awd.train_awd(None, _grey(2), steps=1, init="nope"), "unknown wavelet"),
        (lambda: awd.grey(np.full((1, 3, 32, 32), np.nan, np.float32)), "NaN"),
    ],
)
def test_bad_input_names_the_fix(call, match):
    with pytest.raises(ValueError, match=match):
        call()
