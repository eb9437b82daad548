"""Unit tests for deepnnk.figures.your_model on synthetic data (no CIFAR, no network)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import off_the_data  # noqa: E402

from deepnnk.explain import NeighbourTable  # noqa: E402
from deepnnk.figures import style  # noqa: E402
from deepnnk.figures import your_model as plots  # noqa: E402

NAMES = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CNN = [f"convs.{i}" for i in range(6)] + ["features"]
RESNET = ["layer1", "layer2", "layer3", "layer4", "fc input"]
KEYS = ("loo_nnk", "test_nnk", "loo_knn", "test_knn")


def layer_table(layers, base):
    """A table shaped like deepnnk.studies.your_model.layer_table's: errors fall with depth."""
    out = {}
    for i, layer in enumerate(layers):
        e = base - 0.05 * i
        out[layer] = {
            "dim": 64 * (i + 1),
            "loo_nnk": e,
            "test_nnk": e + 0.04,
            "loo_knn": e + 0.02,
            "test_knn": e + 0.06,
            "neighbours_mean": 5.0 + i,
            "seconds": 0.5,
        }
    return out


REPORT = {
    "nnk_other_share": {"auc": 0.91, "precision_at_rate": 0.64},
    "nnk_residual": {"auc": 0.58, "precision_at_rate": 0.17},
    "knn_other_share": {"auc": 0.88, "precision_at_rate": 0.6},
    "network_loss": {"auc": 0.95, "precision_at_rate": 0.81},
    "tracin_self_influence": {"auc": 0.93, "precision_at_rate": 0.77},
}
SECONDS = {"nnk_other_share": 120.0, "knn_other_share": 3.2}


def data_lines(ax):
    return [ln for ln in ax.lines if len(ln.get_xdata()) and ln.get_label() != "chance"]


# --------------------------------------------------------------------------- layer curves


def test_layer_curves_two_models():
    tables = {"regularised": layer_table(CNN, 0.6), "overfit": layer_table(CNN, 0.7)}
    fig = plots.layer_curves(tables)
    assert len(fig.axes) == 4  # 2 rows (errors, neighbours) x 2 models
    assert fig.get_figwidth() <= style.BOOK_WIDTH
    # subplots are added row-major: errors of both models, then their neighbour counts
    top, bottom = [fig.axes[0], fig.axes[1]], [fig.axes[2], fig.axes[3]]
    for ax_err, ax_nb, (model, table) in zip(top, bottom, tables.items(), strict=True):
        assert ax_err.get_title() == model
        lines = data_lines(ax_err)
        assert [ln.get_label() for ln in lines] == [label for _, label, _ in plots.LAYER_LINES]
        for ln, key in zip(lines, KEYS, strict=True):
            np.testing.assert_allclose(ln.get_ydata(), [table[layer][key] for layer in CNN])
        # LOO solid, test dashed
        assert [ln.get_linestyle() for ln in lines] == ["-", "--", "-", "--"]
        (nb,) = data_lines(ax_nb)
        np.testing.assert_allclose(
            nb.get_ydata(), [table[layer]["neighbours_mean"] for layer in CNN]
        )
        assert [t.get_text() for t in ax_nb.get_xticklabels()] == CNN
        lo, hi = ax_err.get_ylim()
        assert lo == 0 and 0.7 + 0.06 <= hi <= 1.0
    # the error axes are shared: one scale for both models
    assert top[0].get_ylim() == top[1].get_ylim()
    # one legend for the figure, with the four lines, none on the axes
    legends = off_the_data(fig)
    assert len(legends) == 1 and legends[0] in fig.legends
    assert len(legends[0].get_texts()) == 4
    plt.close(fig)


def test_layer_curves_one_model_keeps_layer_order():
    layers = ["layer4", "layer1", "fc input"]  # any names, in the dict's order
    fig = plots.layer_curves({"ResNet-18": layer_table(layers, 0.5)})
    assert len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == layers
    off_the_data(fig)
    plt.close(fig)


def test_layer_curves_rejects_empty():
    with pytest.raises(ValueError, match="at least one"):
        plots.layer_curves({})
    with pytest.raises(ValueError, match="no layers"):
        plots.layer_curves({"m": {}})


# --------------------------------------------------------------------------- detection


def bar_values(ax):
    """(bar widths, bar centres) of the first bar container, top bar first."""
    bars = list(ax.containers[0])
    bars.sort(key=lambda b: -(b.get_y() + b.get_height() / 2))
    return [b.get_width() for b in bars]


def test_detection_bars_read_back():
    rate = 0.1
    fig = plots.detection_bars(REPORT, rate, seconds=SECONDS)
    assert len(fig.axes) == 2
    assert fig.get_figwidth() <= style.BOOK_WIDTH
    auc_ax, prec_ax = fig.axes
    order = sorted(REPORT, key=lambda s: -REPORT[s]["auc"])  # best on top
    np.testing.assert_allclose(bar_values(auc_ax), [REPORT[s]["auc"] for s in order])
    np.testing.assert_allclose(bar_values(prec_ax), [REPORT[s]["precision_at_rate"] for s in order])
    # values written at the bar ends, two decimals
    texts = {t.get_text() for t in auc_ax.texts}
    assert {f"{REPORT[s]['auc']:.2f}" for s in REPORT} <= texts
    texts = {t.get_text() for t in prec_ax.texts}
    assert {f"{REPORT[s]['precision_at_rate']:.2f}" for s in REPORT} <= texts
    # y labels: readable names, top first, with the seconds where given
    ticks = sorted(
        zip(auc_ax.get_yticks(), (t.get_text() for t in auc_ax.get_yticklabels()), strict=True),
        reverse=True,
    )
    labels = [" ".join(text.split()) for _, text in ticks]
    assert labels[0] == plots.SCORE_LABELS["network_loss"]
    assert labels[order.index("nnk_other_share")] == (
        plots.SCORE_LABELS["nnk_other_share"] + " (120 s)"
    )
    assert labels[order.index("knn_other_share")].endswith("(3.2 s)")
    # chance: AUC 0.5, precision = the flip rate ("random ranking")
    chance = {ln.get_label(): ln.get_xdata()[0] for ax in fig.axes for ln in ax.lines}
    assert chance == {"chance": 0.5, "random ranking": rate}
    legends = off_the_data(fig)
    assert {t.get_text() for t in legends[0].get_texts()} == {"chance", "random ranking"}
    plt.close(fig)


def test_detection_bars_without_seconds_and_bad_rate():
    fig = plots.detection_bars({"network_loss": REPORT["network_loss"]}, 0.2)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["network loss"]
    plt.close(fig)
    with pytest.raises(ValueError, match="rate"):
        plots.detection_bars(REPORT, 1.5)
    with pytest.raises(ValueError, match="non-empty"):
        plots.detection_bars({}, 0.1)


def test_roc_curves():
    grid = np.linspace(0, 1, 21)
    curves = {s: (grid, grid ** (1 - REPORT[s]["auc"])) for s in REPORT}
    fig = plots.roc_curves(curves, REPORT)
    (ax,) = fig.axes
    assert ax.get_aspect() == 1.0
    assert len(data_lines(ax)) == len(REPORT)
    assert "chance" in [ln.get_label() for ln in ax.lines]
    legends = off_the_data(fig)
    texts = [t.get_text() for t in legends[0].get_texts()]
    assert texts[0] == "network loss (AUC 0.95)"  # best first
    assert f"{plots.SCORE_LABELS['nnk_other_share']} (AUC 0.91)" in texts
    plt.close(fig)
    fig = plots.roc_curves({"nnk_residual": (grid, grid)})
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert texts == ["NNK LOO residual", "chance"]
    plt.close(fig)
    with pytest.raises(ValueError, match="1-D"):
        plots.roc_curves({"network_loss": (grid, grid[:-1])})


# --------------------------------------------------------------------------- suspects


@pytest.fixture(scope="module")
def setting():
    """12 training points, 5 candidates each (never the point itself), labels in 10 classes.
    Row 0: flipped from 'cat' to 'dog', its neighbours mostly cats; row 1: a correct 'car' with
    two neighbours only; the others random."""
    rng = np.random.default_rng(0)
    n, m = 12, 5
    original = np.array([3, 1, 4, 4, 5, 6, 7, 8, 9, 0, 2, 3])
    given = original.copy()
    given[0] = 5  # flipped
    index = np.array([rng.choice(np.delete(np.arange(n), i), m, replace=False) for i in range(n)])
    weights = rng.random((n, m)) + 0.01
    index[0] = [11, 1, 2, 3, 4]  # row 11 is a cat
    weights[0] = [0.7, 0.1, 0.1, 0.05, 0.05]
    weights[1] = [0.6, 0.4, 0, 0, 0]
    weights /= weights.sum(1, keepdims=True)
    table = NeighbourTable(index, weights, given[index], rng.random(n), np.arange(10))
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    return table, images, given, original


def panels(sub):
    """The image panels of a subfigure, in order, and their titles."""
    shown = [ax for ax in sub.axes if ax.images]
    return shown, [ax.get_title() for ax in shown]


def test_suspect_title():
    assert plots.suspect_title(NAMES, 3, 5, 5) == "given cat\nNNK: dog\nwas dog"
    assert plots.suspect_title(NAMES, 3, 3) == "given cat\nNNK: cat"
    assert plots.suspect_title(NAMES, 3, 3, 3) == "given cat\nNNK: cat\nlabel correct"
    assert plots.suspect_title(NAMES, 1, 9, 8) == "given car\nNNK: truck\nwas ship"


def test_suspects_gallery(setting):
    table, images, given, original = setting
    suspects = np.array([0, 1, 4])
    sub = table.subset(suspects)  # row i explains suspects[i], as loo_table returns it
    fig = plots.suspects_gallery(sub, suspects, images, NAMES, given, original, n_neighbours=3)
    assert len(fig.subfigs) == len(suspects)
    assert fig.get_figwidth() <= style.BOOK_WIDTH
    # row 0: given dog, was cat, NNK interpolates cat (70% of the weight on a cat)
    shown, titles = panels(fig.subfigs[0])
    assert len(shown) == 1 + 3
    assert titles[0].startswith("given dog") and "was cat" in titles[0]
    assert f"NNK: {NAMES[int(table.pred[0])]}" in titles[0] and table.pred[0] == 3
    np.testing.assert_array_equal(shown[0].images[0].get_array(), images[0])
    assert titles[1] == "cat, 0.70"
    np.testing.assert_array_equal(shown[1].images[0].get_array(), images[11])
    # the suspect is drawn at gallery size 8 pt, the neighbours too
    assert shown[0].title.get_fontsize() == plots.GALLERY_FONTSIZE
    # row 1: only two neighbours, so fewer panels; its label was not flipped
    shown, titles = panels(fig.subfigs[1])
    assert len(shown) == 1 + 2
    assert titles[0].startswith("given car") and "label correct" in titles[0]
    assert [t.split(",")[0] for t in titles[1:]] == [NAMES[int(c)] for c in table.neighbours(1)[2]]
    shown, titles = panels(fig.subfigs[2])
    assert len(shown) == 1 + min(3, int(table.n_neighbours[4]))
    plt.close(fig)


def test_suspects_gallery_without_original(setting):
    table, images, given, _ = setting
    fig = plots.suspects_gallery(table.subset([0]), [0], images, NAMES, given)
    assert len(fig.subfigs) == 1
    shown, titles = panels(fig.subfigs[0])
    assert titles[0] == "given dog\nNNK: cat"
    assert len(shown) == 1 + 5  # all five neighbours fit under the default of 6
    plt.close(fig)


@pytest.mark.parametrize(
    ("suspects", "images", "match"),
    [
        ([12], None, "out of range"),
        ([0, -1], None, "out of range"),
        ("table", None, "table of the suspects"),
        ([], None, "non-empty"),
        ([0.5], None, "integer"),
        ([0], "chw", r"\[N, H, W, 3\]"),
    ],
)
def test_suspects_gallery_rejects(setting, suspects, images, match):
    table, train_images, given, original = setting
    if images == "chw":
        train_images = np.moveaxis(train_images, -1, 1)
    if suspects == "table":  # a table over all 12 points with 2 suspects: which row is which?
        suspects, sub = [0, 1], table
    else:
        sub = table.subset(np.clip(np.asarray(suspects, dtype=int), 0, len(table) - 1))
    with pytest.raises(ValueError, match=match):
        plots.suspects_gallery(sub, np.asarray(suspects), train_images, NAMES, given, original)
    plt.close("all")
