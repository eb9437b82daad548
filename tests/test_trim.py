"""TRIM: the bands partition the coefficients and the image, CD's invariant holds per band, the
bias remainder vanishes without biases, gradient × input is additive over bands, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepnnk.nets.models import PaperCNN
from deepnnk.studies import trim

N = 5


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: small convolutions on a shared 2-core machine run faster so."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _net(seed=0, bias=True) -> PaperCNN:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = PaperCNN(width=4, bias_init="tensorflow").eval()
    if not bias:
        with torch.no_grad():
            for m in [*net.convs, net.fc]:
                m.bias.zero_()
    return net


def _images(n=N, seed=0) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", trim.BAND_KINDS)
def test_band_masks_partition_the_coefficients_and_parts_sum_to_the_image(kind):
    bands = trim.make_bands(kind, n_bands=5, levels=3)
    masks = bands["masks"]
    assert masks.dtype == bool and masks.shape[1:] == (32, 32)
    assert (masks.sum(0) == 1).all()  # every coefficient in exactly one band
    assert len(bands["names"]) == len(masks) == len(bands["ranges"])
    assert (np.diff(bands["ranges"][:, 0]) > 0).all()  # low to high frequency
    x = _images(3).double()
    parts = trim.band_parts(x, bands)
    assert parts.shape == (len(masks), 3, 3, 32, 32) and not parts.is_complex()
    torch.testing.assert_close(parts.sum(0), x, atol=1e-12, rtol=0)


def test_fourier_masks_are_conjugate_symmetric_so_parts_are_real():
    masks = trim.fourier_bands(6)["masks"]
    k = (-np.arange(32)) % 32
    assert (masks == masks[:, k][:, :, k]).all()
    x = _images(2).double()
    m = torch.as_tensor(masks)[:, None, None].double()
    full = torch.fft.ifft2(torch.fft.fft2(x)[None] * m)
    assert full.imag.abs().max() < 1e-12


@pytest.mark.parametrize("kind", trim.BAND_KINDS)
def test_cd_invariant_per_band_and_the_sum_identity(kind):
    net, x = _net(), _images()
    r = trim.trim_scores(net, x, kind, n_bands=4, levels=2, batch_size=3)
    with torch.no_grad():
        logits = net(x)
    pred = logits.argmax(1).numpy()
    assert (r["target"] == pred).all()
    np.testing.assert_allclose(r["logit"], logits.numpy()[np.arange(N), pred], atol=1e-5)
    n_b = len(r["names"])
    assert r["scores"].shape == r["irrel"].shape == r["gradient_input"].shape == (N, n_b)
    # CD: each band's relevant + irrelevant logit is the logit
    np.testing.assert_allclose(
        r["scores"] + r["irrel"], r["logit"][:, None] * np.ones(n_b), atol=1e-5
    )
    # the decomposition of the logit the module documents, exactly by construction
    np.testing.assert_allclose(
        r["scores"].sum(1) + r["interaction"] + r["bias"], r["logit"], atol=1e-5
    )


def test_bias_remainder_vanishes_without_biases_and_is_small_with():
    x = _images()
    r0 = trim.trim_scores(_net(bias=False), x, "wavelet")
    np.testing.assert_allclose(r0["bias"], 0, atol=1e-6)
    np.testing.assert_allclose(r0["full"], r0["logit"], atol=1e-6)
    r1 = trim.trim_scores(_net(), x, "wavelet")
    assert np.isfinite(r1["bias"]).all()


def test_gradient_input_is_additive_over_bands():
    net, x = _net(), _images(3)
    r = trim.trim_scores(net, x, "fourier", n_bands=6)
    xg = x.clone().requires_grad_(True)
    out = net(xg)
    (g,) = torch.autograd.grad(out.gather(1, out.argmax(1, keepdim=True)).sum(), xg)
    np.testing.assert_allclose(r["gradient_input"].sum(1), (g * x).flatten(1).sum(1), atol=1e-4)


def test_target_and_uint8_input_and_summary():
    net = _net()
    u8 = (np.random.default_rng(0).random((4, 32, 32, 3)) * 255).astype(np.uint8)
    r = trim.trim_scores(net, u8, "fourier", target=3)
    assert (r["target"] == 3).all()
    r2 = trim.trim_scores(net, u8, "fourier", target=[3, 3, 3, 3])
    np.testing.assert_allclose(r["scores"], r2["scores"], atol=1e-6)
    s = trim.summarise(r)
    assert s["top_band_share"].sum() == pytest.approx(1.0)
    assert s["mean_score"].shape == (6,)


def test_study_on_tiny_inputs_and_profiles():
    sizes = trim.profile("smoke")
    assert set(trim.PROFILES) == {"smoke", "quick", "paper"}
    u8 = (np.random.default_rng(1).random((sizes["n_mean"], 32, 32, 3)) * 255).astype(np.uint8)
    out = trim.trim_study(_net(), u8, sizes)
    assert out["images"].shape == (sizes["n_show"], 32, 32, 3)
    assert out["fourier"]["scores"].shape == (sizes["n_mean"], sizes["n_fourier_bands"])
    assert out["wavelet"]["scores"].shape == (sizes["n_mean"], sizes["levels"] + 1)
    with pytest.raises(ValueError, match="need"):
        trim.trim_study(_net(), u8[:3], sizes)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bands": "haar"}, "must be one of"),
        ({"bands": "wavelet", "levels": 6}, "levels <= 5"),
        ({"bands": "wavelet", "wavelet": "nope"}, "unknown wavelet"),
        ({"bands": "fourier", "n_bands": 0}, "positive int"),
        ({"bands": "fourier", "n_bands": 40}, "at most"),
        ({"target": 10}, "0..9"),
        ({"target": 1.5}, "int class"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        trim.trim_scores(_net(), _images(2), **kwargs)


def test_bad_images_and_model_raise():
    with pytest.raises(ValueError, match="NaN"):
        trim.trim_scores(_net(), _images(2) * float("nan"))
    with pytest.raises(ValueError, match="divide"):
        trim.trim_scores(_net(), _images(2) * 255)
    with pytest.raises(ValueError):
        trim.trim_scores(_net(), torch.rand(2, 32, 32))
    with pytest.raises(ValueError, match="eval"):
        trim.trim_scores(_net().train(), _images(2))
    with pytest.raises(ValueError, match="PaperCNN"):
        trim.trim_scores(torch.nn.Linear(3, 3), _images(2))
