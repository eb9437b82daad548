"""Unit tests for deepnnk.figures.adversarial on synthetic features (no data, no network)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import off_the_data  # noqa: E402

from deepnnk import NNKClassifier, explain  # noqa: E402
from deepnnk.figures import adversarial as plots  # noqa: E402
from deepnnk.studies import adversarial  # noqa: E402
from deepnnk.studies import adversarial_report as report  # noqa: E402
from deepnnk.studies.adversarial import Run  # noqa: E402


@pytest.fixture(scope="module")
def base():
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

    Fc = centres[yq] + rng.normal(size=(30, d))
    Fa = centres[y_adv] + rng.normal(size=(30, d))
    clean = run(Fc, yq, "clean")
    adv = run(Fa, y_adv, "adv")
    return yq, clean, adv, (report.geometry(Fc, X, clean), report.geometry(Fa, X, adv))


@pytest.fixture(scope="module")
def setting(base):
    return base[:3]


@pytest.fixture(scope="module")
def results(setting):
    yq, clean, adv = setting
    m = adversarial.attack_metrics(yq, clean, adv)
    return {"fgsm": {"eps2": m, "eps8": m}, "pgd": {"eps2": m, "eps8": m}}


@pytest.fixture(scope="module")
def report_attacks(base):
    yq, clean, adv, geometry = base
    m = report.attack_report(yq, clean, adv, *geometry)
    return {"fgsm": {"eps2": m, "eps8": m}, "pgd": {"eps2": m, "eps8": m}}


CLEAN = {"network_accuracy": 0.7, "nnk_accuracy": 0.75, "knn_accuracy": 0.7}
CLEAN["other_class_polytope"] = 0.3


def data_lines(ax):
    """The plotted curves: lines with data, not the legend's proxies nor the chance line."""
    return [ln for ln in ax.lines if len(ln.get_xdata()) and ln.get_label() != "chance"]


def test_curves(results):
    panels = {"acc": ({"nnk_accuracy": "NNK", "auc.residual": "res"}, "value")}
    fig = plots.curve_panels(results, [2, 8], panels)
    assert len(fig.axes) == 1 and len(data_lines(fig.axes[0])) == 4
    off_the_data(fig)
    plt.close(fig)


def _draw(name, results, report_attacks):
    return {
        "accuracy": lambda: plots.accuracy_curves(results, [2, 8], CLEAN),
        "weight_share": lambda: plots.weight_share_curves(results, [2, 8]),
        "auc": lambda: plots.auc_curves(results, [2, 8], report_attacks),
        "polytope": lambda: plots.polytope_curves(results, [2, 8], CLEAN),
        "overlap": lambda: plots.overlap_curves(report_attacks, [2, 8]),
        "geometry": lambda: plots.geometry_curves(report_attacks, [2, 8]),
    }[name]()


@pytest.mark.parametrize(
    ("name", "lines", "chance", "zero"),
    [
        ("accuracy", [3 * 2], [False], [True]),
        ("weight_share", [3 * 2, 2 * 2], [False, False], [False, False]),
        ("auc", [4 * 2, 4 * 2], [True, True], [True, True]),
        ("polytope", [3 * 2], [False], [True]),
        ("overlap", [2 * 2], [False], [True]),
        ("geometry", [1 * 2, 4 * 2], [False, True], [True, True]),
    ],
)
def test_notebook_curves(results, report_attacks, name, lines, chance, zero):
    """Line counts, a chance line on every AUC axes, an ε = 0 point where one is meaningful, and
    the legends off the data, at the book's width."""
    fig = _draw(name, results, report_attacks)
    assert [len(data_lines(ax)) for ax in fig.axes] == lines
    assert ["chance" in [ln.get_label() for ln in ax.lines] for ax in fig.axes] == chance
    assert [any(0 in ln.get_xdata() for ln in data_lines(ax)) for ax in fig.axes] == zero
    assert fig.get_figwidth() <= 7.0
    off_the_data(fig)
    plt.close(fig)


def test_zero_points_are_the_clean_values(results, report_attacks):
    fig = plots.accuracy_curves(results, [2, 8], CLEAN)
    starts = sorted({ln.get_ydata()[0] for ln in data_lines(fig.axes[0])})
    assert starts == sorted({0.7, 0.75})
    plt.close(fig)
    fig = plots.auc_curves(results, [2, 8], report_attacks)
    assert {ln.get_ydata()[0] for ax in fig.axes for ln in data_lines(ax)} == {0.5}
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
    assert len(fig.axes[0].collections) == 2  # seaborn: one filled step histogram per group
    off_the_data(fig)
    plt.close(fig)
