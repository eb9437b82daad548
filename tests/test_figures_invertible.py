"""Figure tests for deepnnk.figures.invertible (a tiny seeded moons model)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from deepnnk.figures import invertible as plots  # noqa: E402
from deepnnk.studies import invertible as study  # noqa: E402


@pytest.fixture(scope="module")
def data():
    split = study.moons_split()
    model = study.train_moons(split, epochs=6, seed=0)["model"]
    return split, model


def test_moons_figure(data):
    split, model = data
    ex = study.moons_example(model, split, k=8)
    mini = study.minimality(model, split.X_test[:50])
    fig = plots.moons_figure(ex, mini)
    assert len(fig.axes) == 4
    assert all(ax.get_title() for ax in fig.axes)
    plt.close(fig)


def test_accuracy_figure():
    sweep = {"seed": [0, 1, 2], "train_acc": [96.0, 90.0, 95.0], "test_acc": [95.0, 84.0, 91.0]}
    fig = plots.accuracy_figure(sweep, study.AUTHORS_LOG)
    assert len(fig.axes) == 1
    assert fig.axes[0].get_xlabel() == "train accuracy (%)"
    plt.close(fig)
