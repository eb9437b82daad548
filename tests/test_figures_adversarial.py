"""Unit tests for deepnnk.figures.adversarial on synthetic features (no data, no network)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from deepnnk import NNKClassifier, explain  # noqa: E402
from deepnnk.figures import adversarial as plots  # noqa: E402
from deepnnk.studies import adversarial  # noqa: E402
from deepnnk.studies.adversarial import Run  # noqa: E402


@pytest.fixture(scope="module")
def setting():
    """Three well separated Gaussian classes; "adversarial" features moved to the next class's
    centre, which the network follows (as in test_adversarial.py)."""
    rng = np.random.default_rng(0)
    d = 40
    centres = 12.0 * np.eye(3, d)
    X = np.concatenate([c + rng.normal(size=(60, d)) for c in centres])
    y = np.repeat(np.arange(3), 60)
    clf = NNKClassifier(10).fit(X, y)
    knn = NNKClassifier(10, weighting="knn").fit(X, y)
    yq = np.repeat(np.arange(3), 10)
    y_adv = (yq + 1) % 3

    def run(F, net_pred, name):
        tables = (explain.neighbourhood_table(clf, F), explain.neighbourhood_table(knn, F))
        return Run(name, np.asarray(net_pred), *tables)

    clean = run(centres[yq] + rng.normal(size=(30, d)), yq, "clean")
    adv = run(centres[y_adv] + rng.normal(size=(30, d)), y_adv, "adv")
    return yq, clean, adv


@pytest.fixture(scope="module")
def results(setting):
    yq, clean, adv = setting
    m = adversarial.attack_metrics(yq, clean, adv)
    return {"fgsm": {"eps2": m, "eps8": m}, "pgd": {"eps2": m, "eps8": m}}


def test_curves(results):
    panels = {"acc": ({"nnk_accuracy": "NNK", "auc.residual": "res"}, "value")}
    fig = plots.curve_panels(results, [2, 8], panels)
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 4
    plt.close(fig)


@pytest.mark.parametrize(
    ("draw", "lines"),
    [
        (plots.accuracy_curves, [3 * 2]),
        (plots.weight_share_curves, [3 * 2, 2 * 2]),
        (plots.auc_curves, [4 * 2]),
        (plots.polytope_curves, [3 * 2]),
    ],
)
def test_notebook_curves(results, draw, lines):
    fig = draw(results, [2, 8])
    assert [len(ax.lines) for ax in fig.axes] == lines
    plt.close(fig)


def test_twin_galleries(setting):
    yq, clean, adv = setting
    rng = np.random.default_rng(1)
    train_images = rng.integers(0, 256, size=(180, 32, 32, 3), dtype=np.uint8)
    q = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    a = adversarial.to_hwc(rng.random((3, 32, 32)))
    assert a.shape == (32, 32, 3)
    names = ["a", "b", "c"]
    fig = plots.twin_galleries(clean.nnk, adv.nnk, 0, q, a, train_images, names, yq[0])
    shown = sum(bool(ax.images) for ax in fig.get_axes())
    assert shown == 2 + clean.nnk.n_neighbours[0] + adv.nnk.n_neighbours[0]
    plt.close(fig)


def test_attack_twins_and_histogram(setting):
    yq, clean, adv = setting
    rng = np.random.default_rng(2)
    train_images = rng.integers(0, 256, size=(180, 32, 32, 3), dtype=np.uint8)
    q = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    adv_image = rng.random((3, 32, 32), dtype=np.float32)  # float CHW, as attacked
    names = ["a", "b", "c"]
    fig = plots.attack_twins(clean, adv, 0, q, adv_image, train_images, names, 0, "PGD", 7)
    shown = sum(bool(ax.images) for ax in fig.get_axes())
    assert shown == 2 + clean.nnk.n_neighbours[0] + adv.nnk.n_neighbours[0]
    titles = [sub._suptitle.get_text() for sub in fig.subfigs]
    assert titles == ["clean: network says a", "PGD: network says b"]
    assert fig._suptitle.get_text() == "test image 7"
    plt.close(fig)
    groups = adversarial.true_share_groups(yq, clean, adv, "PGD")
    fig = plots.true_share_histogram(groups)
    assert len(fig.axes) == 1 and len(fig.axes[0].get_legend().get_texts()) == 2
    plt.close(fig)
