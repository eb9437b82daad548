"""deepnnk.explain (the NNK tables) and deepnnk.figures.gallery on synthetic data (fast, no
CIFAR-10 needed). The notebook-01 statistics built on them are tested in test_explanations.py."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from synthetic import C, K, N, table_data

from deepnnk import NNKClassifier, explain
from deepnnk.figures import gallery


@pytest.fixture(scope="module")
def data():
    return table_data()


@pytest.fixture(scope="module")
def fitted(data):
    X, y, _, _ = data
    return NNKClassifier(K).fit(X, y), NNKClassifier(K, weighting="knn").fit(X, y)


def test_table_matches_classifier(data, fitted):
    _, _, Xq, _ = data
    clf, _ = fitted
    t = explain.neighbourhood_table(clf, Xq)
    assert t.index.shape == t.weights.shape == t.labels.shape == (len(Xq), K)
    np.testing.assert_allclose(t.weights.sum(1), 1.0)
    np.testing.assert_allclose(t.proba, clf.predict_proba(Xq))
    np.testing.assert_array_equal(t.pred, clf.predict(Xq))
    assert np.all((t.n_neighbours >= 1) & (t.n_neighbours <= K))
    assert np.all(t.n_neighbours < K)  # NNK is sparse on clustered data
    np.testing.assert_array_equal(t.classes[t.labels], clf.classes_[clf.y_fit_[t.index]])


def test_neighbours_sorted_nonzero(data, fitted):
    _, y, Xq, _ = data
    t = explain.neighbourhood_table(fitted[0], Xq)
    for i in range(len(t)):
        rows, w, labels = t.neighbours(i)
        assert len(rows) == t.n_neighbours[i]
        assert np.all(w > 0) and np.all(np.diff(w) <= 0)
        np.testing.assert_array_equal(labels, y[rows])
        np.testing.assert_allclose(w.sum(), 1.0)


def test_nnk_on_candidates_reproduces_explain(data, fitted):
    _, _, Xq, _ = data
    clf = fitted[0]
    index, weights, residual = clf.explain(Xq)
    w, r = explain.nnk_on_candidates(clf, Xq, index)
    np.testing.assert_allclose(w, weights, atol=1e-9)
    np.testing.assert_allclose(r, residual, atol=1e-9)


def test_drop_nearest_is_the_published_quirk(data, fitted):
    _, _, Xq, _ = data
    clf = fitted[0]
    full = explain.neighbourhood_table(clf, Xq)
    quirk = explain.neighbourhood_table(clf, Xq, drop_nearest=True)
    assert quirk.index.shape == (len(Xq), K - 1)
    np.testing.assert_array_equal(quirk.index, full.index[:, 1:])
    # Same as NNK on the k−1 farther candidates, solved from scratch.
    w, _ = explain.nnk_on_candidates(clf, Xq, full.index[:, 1:])
    np.testing.assert_allclose(quirk.weights, w)
    np.testing.assert_allclose(quirk.weights.sum(1), 1.0)
    with pytest.raises(ValueError, match="weighting"):
        explain.neighbourhood_table(fitted[1], Xq, drop_nearest=True)


def test_knn_table_uses_all_candidates(data, fitted):
    _, _, Xq, _ = data
    t = explain.neighbourhood_table(fitted[1], Xq)
    assert np.all(t.n_neighbours == K)
    assert np.all(np.isnan(t.residual))
    np.testing.assert_allclose(t.weights.sum(1), 1.0)


def test_weight_share_by_hand():
    t = explain.NeighbourTable(
        index=np.array([[0, 1, 2], [3, 4, 5]]),
        weights=np.array([[0.5, 0.3, 0.2], [0.1, 0.0, 0.9]]),
        labels=np.array([[0, 1, 0], [1, 1, 0]]),
        residual=np.zeros(2),
        classes=np.array([7, 9]),
    )
    np.testing.assert_array_equal(t.pred, [7, 7])
    np.testing.assert_allclose(explain.weight_share(t), [0.7, 0.9])
    np.testing.assert_allclose(explain.weight_share(t, [9, 9]), [0.3, 0.1])
    np.testing.assert_array_equal(t.n_neighbours, [3, 2])
    rows, w, labels = t.neighbours(1)
    np.testing.assert_array_equal(rows, [5, 3])
    np.testing.assert_array_equal(labels, [7, 9])
    sub = t.subset(np.array([1]))
    assert len(sub) == 1 and sub.index[0, 0] == 3


def test_weight_share_range_and_correct_vs_wrong(data, fitted):
    _, _, Xq, yq = data
    t = explain.neighbourhood_table(fitted[0], Xq)
    s = explain.weight_share(t)
    assert np.all((s >= 1 / C - 1e-12) & (s <= 1))  # the argmax class holds at least 1/C
    np.testing.assert_allclose(s, t.proba.max(1))


def test_neighbour_counts_reuse_and_growth(data):
    X, y, Xq, _ = data
    counts = explain.neighbour_counts(X, y, Xq, [5, 10, 20])
    assert set(counts) == {5, 10, 20}
    for k, c in counts.items():
        assert c.shape == (len(Xq),) and np.all((c >= 1) & (c <= k))
    assert counts[20].mean() >= counts[5].mean()
    again = explain.neighbour_counts(X, y, Xq, [5, 20], known={20: counts[20] * 0 + 3})
    np.testing.assert_array_equal(again[20], 3)
    np.testing.assert_array_equal(again[5], counts[5])


def test_gallery_layout_and_titles(data, fitted):
    _, _, Xq, _ = data
    t = explain.neighbourhood_table(fitted[0], Xq)
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (N, 32, 32, 3), dtype=np.uint8)
    names = {c: f"class{c}" for c in range(10, 14)}
    fig = gallery.table_gallery(t, 0, imgs[0], imgs, names, 10, per_row=7, suptitle="q")
    n = int(t.n_neighbours[0]) + 1
    axes = fig.axes
    assert len(axes) == -(-n // 7) * 7
    shown = [ax for ax in axes if ax.images]
    assert len(shown) == n
    assert shown[0].get_title() == f"class10, class{t.pred[0]}"
    _, w, labels = t.neighbours(0)
    assert shown[1].get_title() == f"class{labels[0]}, {gallery.format_weight(w[0])}"
    np.testing.assert_array_equal(shown[0].images[0].get_array(), imgs[0])  # HWC, unflipped
    plt.close(fig)


def test_plot_gallery_checks_and_stacked(data, fitted):
    _, _, Xq, _ = data
    img = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="titles"):
        gallery.plot_gallery(img, [img, img], ["a"])
    with pytest.raises(ValueError, match="HWC"):
        gallery.plot_gallery(np.zeros((3, 32, 32)), [], [])
    fig = gallery.plot_gallery(img, [img] * 8, ["x"] * 8, per_row=7)
    assert len(fig.axes) == 14
    plt.close(fig)
    nnk, knn = (explain.neighbourhood_table(c, Xq[:1]) for c in fitted)
    imgs = np.zeros((N, 32, 32, 3), np.uint8)
    names = {c: str(c) for c in range(10, 14)}
    tables = {"NNK": nnk, "kNN": knn}
    fig = gallery.stacked_galleries(tables, 0, img, imgs, names, 10, suptitle="q")
    assert sum(1 for ax in fig.get_axes() if ax.images) == nnk.n_neighbours[0] + 1 + K + 1
    plt.close(fig)


def test_distribution_figures():
    fig = gallery.neighbour_count_histograms({25: np.array([3, 4, 5]), 50: np.array([5, 6])})
    assert len(fig.axes) == 2
    plt.close(fig)
    fig = gallery.share_histograms(
        {"correct": np.array([0.9, 0.8]), "wrong": np.array([])}, "share"
    )
    plt.close(fig)
    fig = gallery.confidence_scatter([0.9, 0.4], [0.8, 0.3], [False, True])
    plt.close(fig)
    fig = gallery.share_panels({"NNK": ([0.9, 0.3], [True, False]), "kNN": ([0.5], [True])})
    assert len(fig.axes) == 2
    plt.close(fig)
    assert gallery.format_weight(0.4812) == "0.48"
    assert gallery.format_weight(0.0712) == "0.071"
    assert gallery.format_weight(0.0002) == "2e-04"


def test_describe_lists_neighbours_by_weight_with_class_names():
    from deepnnk import NNKClassifier, neighbourhood_table

    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 4))
    y = (X[:, 0] > 0).astype(int)
    table = neighbourhood_table(NNKClassifier(n_neighbors=8).fit(X, y), X[:4] + 0.05)
    text = table.describe(rows=[1, 3], top=2, class_names=["neg", "pos"])
    lines = text.splitlines()
    assert len(lines) == 3 and lines[0].split()[:4] == [
        "query",
        "predicted",
        "neighbours",
        "residual",
    ]
    for line, i in zip(lines[1:], (1, 3), strict=True):
        idx, w, cls = table.neighbours(i)
        fields = line.split()
        assert int(fields[0]) == i and fields[1] == ["neg", "pos"][table.pred[i]]
        assert int(fields[2]) == len(idx)
        assert f"#{idx[0]} ({['neg', 'pos'][cls[0]]}) {w[0]:.2f}" in line
