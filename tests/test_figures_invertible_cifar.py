"""Figure tests for deepnnk.figures.invertible_cifar (synthetic study outputs)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from conftest import off_the_data  # noqa: E402

from deepnnk.figures import invertible_cifar as plots  # noqa: E402
from deepnnk.studies import invertible_cifar as study  # noqa: E402

CLASSES = [f"class{i}" for i in range(10)]


def fake_gallery(n=3, m=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 3, 32, 32)).astype(np.float32)
    x_b = x + 0.01 * rng.normal(size=x.shape).astype(np.float32)
    nb = rng.integers(0, 20, size=(n, m))
    nb[0, 2:] = -1  # a support of two
    w = np.where(nb >= 0, 1.0 / m, 0.0)
    return {
        "a": np.arange(n), "b": np.arange(n) + 1, "x": x, "x_b": x_b, "delta": x - x_b,
        "neighbours": nb, "neighbour_weights": w, "neighbour_labels": np.where(nb >= 0, 2, -1),
        "x_interp": rng.normal(0.5, 0.3, size=x.shape), "interp_pred": np.zeros(n, int),
    }  # fmt: skip


def test_gallery_figure():
    g = fake_gallery()
    train = np.random.default_rng(1).integers(0, 256, size=(20, 32, 32, 3), dtype=np.uint8)
    fig = plots.gallery_figure(g, train, CLASSES, n_neighbours=4)
    assert len(fig.axes) == 3 * 8
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "x: class0" and titles[2].startswith("x − x_b")
    assert titles[7].startswith("T⁻¹(interp)")
    assert not fig.axes[5].axison  # past the first row's support: blank
    plt.close(fig)


def test_amplified_difference_is_centred_grey():
    d = np.zeros((3, 4, 4))
    d[0, 0, 0], d[1, 1, 1] = 0.2, -0.1
    img = plots.amplified(d)
    assert img.shape == (4, 4, 3) and img[0, 0, 0] == 1.0 and img[1, 1, 1] == 0.25
    assert img[2, 2, 2] == 0.5
    assert plots.to_hwc(np.full((3, 2, 2), 1.7)).max() == 1.0  # clipped for display


def test_pareto_figure():
    rng = np.random.default_rng(0)
    n = 12
    cf = {
        "methods": {
            name: {
                "proximity": rng.random(n) * 10,
                "residual": rng.random(n),
                "nn_distance": rng.random(n) * 5,
                "valid": rng.random(n) > 0.3,
            }  # fmt: skip
            for name in study.METHODS
        }
    }
    fig = plots.pareto_figure(cf)
    assert len(fig.axes) == 2
    assert all("proximity" in ax.get_xlabel() for ax in fig.axes)
    off_the_data(fig)
    plt.close(fig)
