"""The TRIM and AWD figures: a Figure with the expected axes from tiny plain inputs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import pywt  # noqa: E402
import torch  # noqa: E402
from conftest import off_the_data  # noqa: E402

from deepnnk.figures import wavelets as fig_wavelets  # noqa: E402
from deepnnk.nets.models import PaperCNN  # noqa: E402
from deepnnk.studies import awd, trim  # noqa: E402


@pytest.fixture(scope="module")
def trim_study():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = PaperCNN(width=4).eval()
    u8 = (np.random.default_rng(0).random((6, 32, 32, 3)) * 255).astype(np.uint8)
    sizes = {"n_show": 2, "n_mean": 6, "n_fourier_bands": 4, "levels": 2, "wavelet": "db3"}
    return trim.trim_study(net, u8, sizes)


def _awd_result(steps=5):
    h = np.asarray(pywt.Wavelet("db3").rec_lo)
    rng = np.random.default_rng(0)
    hist = {k: rng.random(steps) for k in awd.LOSS_TERMS}
    hist["sum"][0] = 0.0  # a penalty at exactly 0 must not break the log axis
    return {"h0": h + 0.01 * rng.standard_normal(6), "h0_init": h, "history": hist}


@pytest.mark.parametrize("kind", ["fourier", "wavelet"])
def test_trim_bands_axes(trim_study, kind):
    fig = fig_wavelets.trim_bands(trim_study, kind, class_names=[f"c{i}" for i in range(10)])
    assert isinstance(fig, plt.Figure)
    assert len(fig.axes) == 2 * (trim_study["n_show"] + 1)
    n_bands = len(trim_study[kind]["names"])
    assert len(fig.axes[-1].patches) == 2 * n_bands  # CD and gradient × input bars
    off_the_data(fig)
    plt.close(fig)


def test_trim_bands_rejects_unknown_kind(trim_study):
    with pytest.raises(ValueError, match="kind"):
        fig_wavelets.trim_bands(trim_study, "haar")


def test_learned_filter_and_loss_curves_axes():
    res = _awd_result()
    fig = fig_wavelets.learned_filter(res)
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 2
    off_the_data(fig)
    plt.close(fig)
    fig = fig_wavelets.awd_loss_curves(res)
    assert isinstance(fig, plt.Figure) and len(fig.axes) == 2
    assert len(fig.axes[1].lines) == 5
    off_the_data(fig)
    plt.close(fig)
