"""Unit tests for deepnnk.figures.reality_checks on small synthetic inputs of the studies' formats
(a real ACD hierarchy of a random width-4 PaperCNN; no CIFAR, no training)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from conftest import off_the_data  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from deepnnk.figures import reality_checks as plots  # noqa: E402
from deepnnk.figures import style  # noqa: E402
from deepnnk.nets.cd import acd_hierarchy  # noqa: E402
from deepnnk.nets.data import CLASSES  # noqa: E402
from deepnnk.nets.decoy import add_decoy  # noqa: E402
from deepnnk.nets.models import PaperCNN  # noqa: E402
from deepnnk.studies.reality_checks import EXPLANATIONS  # noqa: E402

LAYERS = ["fc", "convs.5", "convs.4", "convs.3", "convs.2", "convs.1", "convs.0"]


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _images(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g)


@pytest.fixture(scope="module")
def acd():
    """Two random images and their real ACD hierarchies (width-4 PaperCNN, 2 growth steps)."""
    torch.manual_seed(0)
    model = PaperCNN(width=4).eval()
    images = _images(2)
    return images, [acd_hierarchy(model, im, max_steps=2, tile=8) for im in images]


def _texts(ax):
    return [t.get_text() for t in ax.texts]


def _colorbars(fig):
    return [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]


# --------------------------------------------------------------------------- ACD


def test_select_levels():
    assert plots.select_levels(3, 5) == [0, 1, 2]
    assert plots.select_levels(11, 5) == [0, 2, 5, 8, 10]
    assert plots.select_levels(11, 1) == [10]
    with pytest.raises(ValueError, match="max_levels"):
        plots.select_levels(4, 0)


def test_acd_figure_one_image(acd):
    images, hierarchies = acd
    levels = hierarchies[0]
    fig = plots.acd_figure(images[0], levels)
    shown = plots.select_levels(len(levels), plots.MAX_LEVELS)
    (bar,) = _colorbars(fig)
    panels = [ax for ax in fig.axes if ax is not bar]
    assert len(panels) == 1 + len(shown)
    assert fig.get_figwidth() <= style.BOOK_WIDTH
    assert "logit" in bar.get_ylabel() and CLASSES[levels[0]["target"]] in bar.get_ylabel()
    assert CLASSES[levels[0]["target"]] in panels[0].get_title()
    # the diverging scale is centred at 0 and covers every score shown
    lo, hi = bar.get_ylim()
    top = max(np.abs(levels[j]["scores"]).max() for j in shown)
    assert lo == pytest.approx(-hi) and hi == pytest.approx(top)
    for ax, j in zip(panels[1:], shown, strict=True):
        assert ax.get_title().startswith(f"level {j}")
        # the grey image and the cluster overlay; each cluster labelled with its stable id
        assert len(ax.images) == 2
        assert sorted(_texts(ax)) == sorted(str(i) for i in levels[j]["ids"])
        overlay = ax.images[1].get_array()
        assert overlay.shape == (32, 32, 4)
        painted = overlay[..., 3] > 0
        np.testing.assert_array_equal(painted, levels[j]["masks"].any(0))


def test_acd_figures_rows_share_one_colour_bar(acd):
    images, hierarchies = acd
    fig = plots.acd_figures(images, hierarchies, max_levels=3)
    assert len(_colorbars(fig)) == 1
    cols = 1 + max(len(plots.select_levels(len(h), 3)) for h in hierarchies)
    assert len(fig.axes) == 2 * cols + 1
    # uint8 HWC images are accepted too
    as_uint8 = (images.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    fig = plots.acd_figures(as_uint8, hierarchies, max_levels=2)
    assert len(fig.axes) == 2 * 3 + 1


def test_acd_bad_input(acd):
    images, hierarchies = acd
    with pytest.raises(ValueError, match="2 images but 1 hierarchies"):
        plots.acd_figures(images, hierarchies[:1])
    with pytest.raises(ValueError, match="empty"):
        plots.acd_figure(images[0], [])
    with pytest.raises(ValueError, match="empty"):
        plots.acd_figures([], [])
    with pytest.raises(ValueError, match="lacks"):
        plots.acd_figure(images[0], [{"masks": np.zeros((0, 32, 32), bool)}])
    bad = [dict(hierarchies[0][0], scores=np.zeros(99))]
    with pytest.raises(ValueError, match="must agree"):
        plots.acd_figure(images[0], bad)
    with pytest.raises(ValueError, match="pixels/255"):
        plots.acd_figure(images[0] * 255, hierarchies[0])


# --------------------------------------------------------------------------- Decoy-CIFAR


def _decoyed(n=4):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    y = np.arange(n) % 10
    return add_decoy(x, y, mode="swap", seed=3)


def test_decoy_examples_outline_each_patch():
    images, masks = _decoyed(5)
    titles = [f"swap {i}" for i in range(5)]
    fig = plots.decoy_examples(images, masks, titles, per_row=3)
    assert len(fig.axes) == 6  # 2 rows of 3, the last panel blank
    assert fig.get_figwidth() <= style.BOOK_WIDTH
    for ax, mask, title in zip(fig.axes, masks, titles, strict=False):
        assert ax.get_title() == title
        boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert len(boxes) == 2  # a dark halo under a bright outline
        r, c = np.nonzero(mask)
        assert boxes[1].get_xy() == (c.min() - 0.5, r.min() - 0.5)
        assert boxes[1].get_width() == 4 and boxes[1].get_height() == 4
    assert not fig.axes[-1].axison


def test_decoy_examples_bad_input():
    images, masks = _decoyed(3)
    with pytest.raises(ValueError, match="3 images but 2 titles"):
        plots.decoy_examples(images, masks, ["a", "b"])
    with pytest.raises(ValueError, match="one mask per image"):
        plots.decoy_examples(images, masks[:2], ["a", "b", "c"])
    empty = masks.copy()
    empty[1] = False
    with pytest.raises(ValueError, match="mask 1 is empty"):
        plots.decoy_examples(images, empty, ["a", "b", "c"])
    with pytest.raises(ValueError, match="empty"):
        plots.decoy_examples(images[:0], masks[:0], [])


def _runs():
    rows = []
    spec = [("rrr", 1.0, 0.5, 0.3), ("cdep", 100.0, 0.45, 0.44), ("none", 0.0, 0.6, 0.15)]
    spec.append(("cdep", 10.0, 0.5, 0.47))
    for penalty, lam, clean, swap in spec:
        for seed in range(3):
            c, s = clean + 0.01 * seed, swap - 0.01 * seed
            rows.append(
                dict(penalty=penalty, lam=lam, seed=seed, clean=c, random=(c + s) / 2, swap=s)
            )
            rows[-1]["reliance"] = c - s
    return rows


def test_decoy_accuracy_bars_dots_and_chance():
    rows = _runs()
    fig = plots.decoy_accuracy(rows)
    (ax,) = fig.axes
    names = [t.get_text() for t in ax.get_xticklabels()]
    assert names == ["no penalty", "CDEP λ=10", "CDEP λ=100", "RRR λ=1"]
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(bars) == 3 * 4
    # bars of the clean set first, one per model, at the mean over seeds
    clean_none = np.mean([r["clean"] for r in rows if r["penalty"] == "none"])
    assert bars[0].get_height() == pytest.approx(clean_none)
    swap_none = np.mean([r["swap"] for r in rows if r["penalty"] == "none"])
    assert bars[8].get_height() == pytest.approx(swap_none)
    assert sum(len(c.get_offsets()) for c in ax.collections) == 3 * len(rows)  # every seed
    chance = [ln for ln in ax.lines if ln.get_label().startswith("chance")]
    assert len(chance) == 1 and chance[0].get_ydata()[0] == pytest.approx(0.1)
    assert ax.get_ylabel() == "test accuracy"
    legend = off_the_data(fig)[0]
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts.count("one seed") == 1 and "swapped-level patch" in texts


def test_decoy_accuracy_bad_input():
    with pytest.raises(ValueError, match="no runs"):
        plots.decoy_accuracy([])
    with pytest.raises(ValueError, match="lacks"):
        plots.decoy_accuracy([{"penalty": "none", "lam": 0.0, "clean": 0.5}])


def test_model_label():
    assert plots.model_label("none", 0) == "no penalty"
    assert plots.model_label("cdep", 10.0) == "CDEP λ=10"
    assert plots.model_label("rrr", 0.5) == "RRR λ=0.5"


def test_reliance_scatter():
    rows = _runs()
    true = np.array([r["reliance"] for r in rows])
    scores = {"cd": true * 0.3, "gradient_input": -true, "nnk": true + 0.01, "knn": true * 0}
    rho = {"cd": 1.0, "gradient_input": -1.0, "nnk": 1.0, "knn": float("nan")}
    models = [plots.model_label(r["penalty"], r["lam"]) for r in rows]
    fig = plots.reliance_scatter(true, scores, rho, models=models)
    assert len(fig.axes) == 4
    assert fig.get_figwidth() <= style.BOOK_WIDTH
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [
        "CD: ρ = 1.00",
        "gradient × input: ρ = -1.00",
        "NNK: ρ = 1.00",
        "kernel kNN: ρ n/a",
    ]
    for ax, y in zip(fig.axes, scores.values(), strict=True):
        xy = np.concatenate([c.get_offsets() for c in ax.collections])
        assert len(xy) == len(rows)
        want = np.column_stack([100 * true, y])  # x in accuracy points
        np.testing.assert_allclose(xy[np.lexsort(xy.T[::-1])], want[np.lexsort(want.T[::-1])])
        assert "accuracy points" in ax.get_xlabel() and ax.get_ylabel()
    (legend,) = off_the_data(fig)
    assert [t.get_text() for t in legend.get_texts()] == ["no penalty", "CDEP", "RRR"]


def test_reliance_scatter_bad_input():
    with pytest.raises(ValueError, match="one score per model"):
        plots.reliance_scatter([0.1, 0.2, 0.3], {"cd": [1, 2]}, {"cd": 0.5})
    with pytest.raises(ValueError, match="rho lacks"):
        plots.reliance_scatter([0.1, 0.2], {"cd": [1, 2]}, {})
    with pytest.raises(ValueError, match="non-empty"):
        plots.reliance_scatter([], {"cd": []}, {"cd": 0.5})
    with pytest.raises(ValueError, match="fractions"):
        plots.reliance_scatter([10.0, 20.0], {"cd": [1, 2]}, {"cd": 0.5})
    with pytest.raises(ValueError, match="scores is empty"):
        plots.reliance_scatter([0.1, 0.2], {}, {})
    with pytest.raises(ValueError, match="model names"):
        plots.reliance_scatter([0.1, 0.2], {"cd": [1, 2]}, {"cd": 0.5}, models=["a"])


def test_decoy_auc():
    auc = {"cd": 0.8, "gradient_input": [0.5, 0.7], "nnk": 0.66}
    fig = plots.decoy_auc(auc, per_model={"nnk": [0.6, 0.7, 0.75]})
    (ax,) = fig.axes
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    np.testing.assert_allclose([b.get_height() for b in bars], [0.8, 0.6, 0.66])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["CD", "gradient × input", "NNK"]
    assert sum(len(c.get_offsets()) for c in ax.collections) == 2 + 3
    chance = [ln for ln in ax.lines if ln.get_label() == "chance"]
    assert len(chance) == 1 and chance[0].get_ydata()[0] == 0.5
    assert "AUC" in ax.get_ylabel()
    off_the_data(fig)
    with pytest.raises(ValueError, match="empty"):
        plots.decoy_auc({})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        plots.decoy_auc({"cd": 1.5})
    with pytest.raises(ValueError, match="without an AUC"):
        plots.decoy_auc({"cd": 0.5}, per_model={"nnk": [0.5]})


# --------------------------------------------------------------------------- sanity checks


def _curves(n=6, nan_steps=3):
    """A dict with sanity_curves' keys and shapes; gradient maps constant (NaN) at the end."""
    rng = np.random.default_rng(0)
    per_query = {}
    for name in EXPLANATIONS:
        v = np.linspace(0.9, 0.0, len(LAYERS))[:, None] + rng.normal(0, 0.1, (len(LAYERS), n))
        per_query[name] = np.clip(v, 0 if EXPLANATIONS[name] == "weighted_jaccard" else -1, 1)
    per_query["gradient"][-nan_steps:] = np.nan
    mean = {
        k: np.array([np.nan if np.isnan(r).all() else np.nanmean(r) for r in v])
        for k, v in per_query.items()
    }
    return {
        "layers": list(LAYERS),
        "mean": mean,
        "per_query": per_query,
        "target": np.zeros(n, dtype=np.int64),
        "similarity": dict(EXPLANATIONS),
        "seconds": 1.0,
    }


def test_sanity_figure_panels_bands_and_gaps():
    curves = _curves()
    fig = plots.sanity_figure(curves)
    maps, supports = fig.axes
    assert "Spearman" in maps.get_ylabel() and "Jaccard" in supports.get_ylabel()
    ticks = [t.get_text() for t in maps.get_xticklabels()]
    assert ticks == ["original", *LAYERS]
    for ax, names in ((maps, ["gradient", "gradient_input", "cd"]), (supports, ["nnk", "knn"])):
        lines = [ln for ln in ax.lines if ln.get_label() in map(plots.method_label, names)]
        assert [ln.get_label() for ln in lines] == [plots.method_label(n) for n in names]
        for ln, name in zip(lines, names, strict=True):
            y = np.asarray(ln.get_ydata(), dtype=float)
            assert y[0] == 1.0  # the original model: identical to itself
            np.testing.assert_allclose(y[1:], curves["mean"][name])
        assert sum(isinstance(c, PolyCollection) for c in ax.collections) == len(names)
        zero = [ln for ln in ax.lines if list(ln.get_ydata()) == [0, 0]]
        assert zero and zero[0].get_linestyle() == "--"
    assert any("undefined" in t for t in _texts(maps)) and not _texts(supports)
    legend = off_the_data(fig)[0]
    assert len(legend.get_texts()) == 5
    assert fig.get_figwidth() <= style.BOOK_WIDTH


def test_sanity_figure_without_original_or_bands():
    curves = _curves(nan_steps=0)
    del curves["per_query"]
    fig = plots.sanity_figure(curves, original=False)
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == LAYERS
        assert not any(isinstance(c, PolyCollection) for c in ax.collections)


def test_sanity_figure_bad_input():
    curves = _curves()
    with pytest.raises(ValueError, match="lacks"):
        plots.sanity_figure({"layers": LAYERS})
    bad = dict(curves, mean=dict(curves["mean"], cd=np.zeros(3)))
    with pytest.raises(ValueError, match="one value per step"):
        plots.sanity_figure(bad)
    bad = dict(curves, per_query=dict(curves["per_query"], nnk=np.zeros((2, 6))))
    with pytest.raises(ValueError, match="per_query"):
        plots.sanity_figure(bad)
    with pytest.raises(ValueError, match="no cascade steps"):
        plots.sanity_figure(dict(curves, layers=[]))


def test_identical_class_figure_one_model_and_several():
    rates = {"nnk": 0.9, "knn": 0.92, "last_layer_cosine": 0.88, "gradient_cosine": 0.4}
    fig = plots.identical_class_figure(rates)
    (ax,) = fig.axes
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    np.testing.assert_allclose([b.get_height() for b in bars], list(rates.values()))
    assert [b.get_facecolor()[:3] for b in bars] == [
        matplotlib.colors.to_rgb(plots.METHOD_COLOURS[m]) for m in rates
    ]
    assert any(ln.get_ydata()[0] == 1.0 for ln in ax.lines)
    assert ax.get_ylabel() == "identical-class rate"
    off_the_data(fig)
    fig = plots.identical_class_figure({"C=16": rates, "C=32": dict(rates, nnk=0.95)})
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["C=16", "C=32"]
    assert len([p for p in ax.patches if isinstance(p, Rectangle)]) == 8
    assert fig.get_figwidth() <= style.BOOK_WIDTH


def test_identical_class_figure_bad_input():
    with pytest.raises(ValueError, match="empty"):
        plots.identical_class_figure({})
    with pytest.raises(ValueError, match="mixes"):
        plots.identical_class_figure({"a": {"nnk": 0.5}, "knn": 0.3})
    with pytest.raises(ValueError, match="no methods"):
        plots.identical_class_figure({"a": {}})
    with pytest.raises(ValueError, match=r"not in \[0, 1\]"):
        plots.identical_class_figure({"nnk": 90.0})


def test_tile_maps():
    images = _images(3)
    rng = np.random.default_rng(0)
    maps = {
        "gradient (original)": rng.random((3, 32, 32)),
        "CD (original)": rng.normal(size=(3, 8, 8)),
        "CD (randomised)": np.zeros((3, 8, 8)),
    }
    fig = plots.tile_maps(images, maps, ["a", "b", "c"])
    bars = _colorbars(fig)
    assert len(bars) == 3 and all("max" in b.get_xlabel() for b in bars)
    panels = [ax for ax in fig.axes if ax not in bars]
    assert len(panels) == 3 * 4
    assert [panels[4 * r].get_title() for r in range(3)] == ["a", "b", "c"]
    assert [ax.get_title() for ax in panels[1:4]] == list(maps)
    # every map spans the image's pixels and is scaled to its largest absolute value
    for ax in panels[1:4]:
        assert ax.images[0].get_extent() == [-0.5, 31.5, 31.5, -0.5]
    assert np.abs(panels[2].images[0].get_array()).max() == pytest.approx(1.0)
    assert panels[2].images[0].norm.vmin == -1  # signed map: diverging scale
    assert panels[1].images[0].norm.vmin == 0
    assert "constant" in _texts(panels[3])
    assert fig.get_figwidth() <= style.BOOK_WIDTH


def test_tile_maps_bad_input():
    images = _images(2)
    with pytest.raises(ValueError, match="2 images but 1 titles"):
        plots.tile_maps(images, {"g": np.zeros((2, 32, 32))}, ["a"])
    with pytest.raises(ValueError, match="maps is empty"):
        plots.tile_maps(images, {}, ["a", "b"])
    with pytest.raises(ValueError, match=r"\[n, h, w\]"):
        plots.tile_maps(images, {"g": np.zeros((3, 32, 32))}, ["a", "b"])
