"""deepnnk.studies.explanations (notebook 01's statistics) and deepnnk.figures.explanations on
synthetic data (fast, no CIFAR-10 needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from synthetic import C, D, K, N, table_data

from deepnnk import NNKClassifier, explain
from deepnnk.studies import explanations

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_cifar_explanations.ipynb"


@pytest.fixture(scope="module")
def data():
    return table_data()


@pytest.fixture(scope="module")
def fitted(data):
    X, y, _, _ = data
    return NNKClassifier(K).fit(X, y), NNKClassifier(K, weighting="knn").fit(X, y)


def test_summaries():
    split = explanations.split_describe([0.9, 0.8, 0.2], [True, True, False])
    assert split["correct"]["n"] == 2 and split["wrong"]["mean"] == 0.2
    d = explanations.describe([1, 2, 3, 4])
    assert d["n"] == 4 and d["mean"] == 2.5 and d["median"] == 2.5 and d["min"] == 1
    assert explanations.describe([])["n"] == 0
    s = explanations.prediction_summary([0, 1, 2, 3], [0, 1, 0, 0], [0, 0, 2, 3], [0, 1, 2, 1])
    assert s["nnk_accuracy"] == 0.5 and s["knn_accuracy"] == 0.75 and s["network_accuracy"] == 0.75
    assert s["n_disagreements"] == 2 and s["agreement_nnk_network"] == 0.5
    assert s["disagreements_network_right"] == 1 and s["disagreements_both_wrong"] == 1
    idx = explanations.sample_indices(np.arange(20) % 2 == 0, 4, seed=3)
    assert len(idx) == 4 and np.all(idx % 2 == 0) and np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(
        idx, explanations.sample_indices(np.arange(20) % 2 == 0, 4, seed=3)
    )
    assert len(explanations.sample_indices([True, False], 5)) == 1
    dis = explanations.disagreement_summary(
        [True, False, False],
        [0.5, 0.9, 0.7],
        [0.4, 0.8, 0.6],
        [0.2, 0.8, 0.6],
        [3, 4, 5],
        [0.1, 0.2, 0.3],
    )
    assert dis["n"] == 1 and dis["agree"]["network_confidence"] == pytest.approx(0.8)
    assert dis["disagree"]["nnk_share_on_network_class"] == pytest.approx(0.2)


def test_query_records(data, fitted):
    _, _, Xq, yq = data
    clf = fitted[0]
    t = explain.neighbourhood_table(clf, Xq[:2])
    q = explain.neighbourhood_table(clf, Xq[:2], drop_nearest=True)
    names = {c: f"c{c}" for c in range(10, 14)}
    net = np.array([[0.9, 0.1, 0, 0], [0.3, 0.4, 0.2, 0.1]])  # the network's softmax
    rec = explanations.query_records(
        [7, 8], yq[:2], t, q, net, names, train_ids=np.arange(N) + 1000
    )
    assert set(rec) == {"7", "8"}
    r = rec["7"]
    assert r["n_neighbours"] == len(r["neighbours"]) == t.n_neighbours[0]
    assert all(nb["train_id"] >= 1000 for nb in r["neighbours"])
    assert "published_quirk" in r and r["network_pred"] == "c10"
    assert rec["8"]["network_pred"] == "c11" and rec["8"]["network_confidence"] == 0.4


def test_profiles():
    assert set(explanations.PROFILES) == {"smoke", "quick", "paper"}
    smoke = explanations.profile("smoke")
    assert smoke == dict(n_train=5000, n_test=500, n_gallery=1, n_disagree=1, n_compare=1)
    smoke["n_train"] = 1  # a copy: the table is unchanged
    assert explanations.profile("smoke")["n_train"] == 5000
    with pytest.raises(ValueError, match="profile"):
        explanations.profile("huge")
    assert explanations.PAPER_IDS == [2595, 3745, 374] and explanations.KS == [25, 50, 75]
    assert explanations.paper_reference()["network_accuracy"] == pytest.approx(0.7602)


class _Net(torch.nn.Module):
    """A stand-in for the paper's CNN: only its final linear layer, as network_proba uses."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(D, C)


@pytest.fixture(scope="module")
def run(data):
    """A synthetic :class:`Queries` (labels 0..C−1, so CLASSES names them) and its explanations:
    30 queries, the first 25 the evaluation sample, the last 5 'paper images'."""
    X, y, Xq, yq = data
    torch.manual_seed(0)
    n = len(Xq)
    q = explanations.Queries(
        model=_Net().double(),
        train_ids=np.arange(N) * 2,
        test_ids=np.arange(n - 5),
        q_ids=np.arange(n),
        ev=np.arange(n) < n - 5,
        train_images=np.random.default_rng(2).integers(0, 256, (N, 32, 32, 3), dtype=np.uint8),
        y_train=y - 10,
        q_images=np.zeros((n, 32, 32, 3), np.uint8),
        y_q=yq - 10,
        F_train=X,
        F_q=Xq,
    )
    return q, explanations.explain_queries(q, K, "exact")


def test_network_proba_is_a_softmax(run):
    q, ex = run
    p = explanations.network_proba(q.model, q.F_q)
    assert p.shape == (len(q.F_q), C) and p.dtype == np.float64
    np.testing.assert_allclose(p.sum(1), 1.0)
    np.testing.assert_array_equal(ex.net_pred, p.argmax(1))
    np.testing.assert_array_equal(ex.net_conf, p.max(1))


def test_explain_queries_and_section_metrics(run):
    q, ex = run
    ev = q.ev
    np.testing.assert_array_equal(ex.nnk.pred, ex.clf.predict(q.F_q))
    assert np.all(ex.knn.n_neighbours == K)
    p = explanations.prediction_metrics(q, ex)
    assert p["n_queries"] == ev.sum()
    assert p["nnk_accuracy"] == pytest.approx(np.mean(ex.nnk.pred[ev] == q.y_q[ev]))
    near = explanations.nearest_candidate(ex.nnk, ev)
    assert set(near) == {
        "is_neighbour",
        "is_top_neighbour",
        "mean_weight",
        "mean_neighbour_weight",
        "weight_ratio",
    }
    assert near["mean_weight"] == pytest.approx(ex.nnk.weights[ev, 0].mean())
    assert near["mean_neighbour_weight"] == pytest.approx(np.mean(1 / ex.nnk.n_neighbours[ev]))
    assert near["weight_ratio"] == pytest.approx(
        near["mean_weight"] / near["mean_neighbour_weight"]
    )
    picks = explanations.sample_galleries(q, ex, 3, seed=0)
    assert set(picks) == {"correct", "wrong"}
    assert np.all(ev[picks["correct"]]) and np.all(
        ex.nnk.pred[picks["correct"]] == q.y_q[picks["correct"]]
    )
    assert np.all(ex.nnk.pred[picks["wrong"]] != q.y_q[picks["wrong"]])
    groups = explanations.weight_share_groups(q, ex)
    share = explanations.weight_share_metrics(groups)
    assert share["nnk"]["correct"]["n"] + share["nnk"]["wrong"]["n"] == ev.sum()
    np.testing.assert_allclose(groups["NNK"][0], explain.weight_share(ex.nnk)[ev])
    scores = explanations.disagreement_scores(q, ex)
    dis = explanations.disagreement_summary(**scores)
    assert dis["n"] == int(np.sum((ex.nnk.pred != ex.net_pred)[ev]))
    cases = explanations.disagreement_cases(q, ex, 2, seed=0)
    assert len(cases) <= 2 and np.all(ex.nnk.pred[cases] != ex.net_pred[cases])
    counts = explanations.neighbour_counts_by_k(q, ex, [5, K], K, "exact")
    np.testing.assert_array_equal(counts[K], ex.nnk.n_neighbours[ev])
    metrics = {
        "predictions": p,
        "weight_share": share,
        "n_neighbours": {f"k{kk}": explanations.describe(c) for kk, c in counts.items()},
    }
    s = explanations.summary(metrics, [5, K], len(q.train_ids))
    assert s["n_train"] == N and s["mean_neighbours_k5"] == pytest.approx(counts[5].mean())
    assert s["mean_share_correct"] == share["nnk"]["correct"]["mean"]


def test_paper_images_records(run):
    q, ex = run
    ids = [28, 26]
    paper = explanations.paper_images(q, ex, ids)
    np.testing.assert_array_equal(paper.rows, ids)  # q_ids are 0..n−1
    assert set(paper.records) == {"28", "26"}
    assert paper.quirk.index.shape == (2, K - 1)
    rec = paper.records["28"]
    assert rec["true"] == explanations.CLASSES[q.y_q[28]]
    assert all(nb["train_id"] % 2 == 0 for nb in rec["neighbours"])  # mapped by train_ids


def test_query_figures(run):
    from deepnnk.figures import explanations as figures

    q, ex = run
    fig = figures.query_gallery(q, ex.nnk, 3, "q")
    assert sum(1 for ax in fig.axes if ax.images) == ex.nnk.n_neighbours[3] + 1
    plt.close(fig)
    sub = ex.nnk.subset(np.array([5]))
    fig = figures.query_gallery(q, sub, 0, "q", r=5)
    assert sum(1 for ax in fig.axes if ax.images) == ex.nnk.n_neighbours[5] + 1
    plt.close(fig)
    fig = figures.nnk_vs_knn(q, ex.nnk, ex.knn, 3, "q")
    assert sum(1 for ax in fig.get_axes() if ax.images) == ex.nnk.n_neighbours[3] + 1 + K + 1
    plt.close(fig)


def test_auc():
    assert explanations.auc([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 1.0
    assert explanations.auc([0.1, 0.2, 0.8, 0.9], [True, True, False, False]) == 0.0
    assert explanations.auc([0.5, 0.5], [True, False]) == 0.5  # ties count half
    assert np.isnan(explanations.auc([0.5, 0.6], [True, True]))


def test_extra_section_metrics(run):
    """The numbers the prose of notebook 01 quotes, on the synthetic run."""
    q, ex = run
    ev = q.ev
    quirk = explanations.quirk_effect(q, ex)
    table = explain.neighbourhood_table(ex.clf, q.F_q[ev], drop_nearest=True)
    assert quirk["changed_prediction"] == pytest.approx(np.mean(table.pred != ex.nnk.pred[ev]))
    assert quirk["accuracy"] == pytest.approx(np.mean(ex.nnk.pred[ev] == q.y_q[ev]))
    assert quirk["quirk_mean_neighbours"] == pytest.approx(table.n_neighbours.mean())

    top = explanations.top_neighbour(q, ex)
    W = ex.nnk.weights[ev]
    assert top["mean_weight"] == pytest.approx(W.max(1).mean())
    assert 0 <= top["near_copy"] <= 1 and top["median_pixel_rms"] > 0
    assert top["near_copy_rms"] == explanations.NEAR_COPY_RMS

    spread = explanations.weight_spread(q, ex)
    assert spread["knn_median_neighbours"] == K
    assert spread["nnk_max_over_min"] >= 1 and spread["knn_max_over_min"] >= 1

    groups = explanations.weight_share_groups(q, ex)
    sep = explanations.separation(q, ex, groups)
    assert sep["auc_nnk_share"] == pytest.approx(explanations.auc(*groups["NNK"]), nan_ok=True)
    assert set(sep) == {"auc_nnk_share", "auc_knn_share", "auc_network_confidence"}

    scores = explanations.disagreement_scores(q, ex)
    det = explanations.disagreement_details(scores)
    dis = scores["disagree"]
    if dis.any() and not dis.all():
        assert det["auc_low_network_confidence"] == pytest.approx(
            explanations.auc(1 - scores["net_conf"], dis)
        )
        assert det["network_class_among_neighbours"] == pytest.approx(
            np.mean(scores["share_on_net"][dis] > 0)
        )

    counts = {5: np.array([3, 4, 5]), 15: np.array([6, 6, 9])}
    growth = explanations.neighbour_growth(counts)
    assert growth["k_ratio"] == 3 and growth["mean_ratio"] == pytest.approx(7 / 4)
    assert growth["kept_fraction_k5"] == pytest.approx(0.8)

    paper = explanations.paper_images(q, ex, [28, 26])
    over = explanations.paper_overview(paper.records)
    assert set(over["images"]) == {"img28", "img26"}
    counts28 = paper.records["28"]["n_neighbours"]
    assert over["images"]["img28"]["n_neighbours"] == counts28
    assert over["n_neighbours_min"] <= counts28 <= over["n_neighbours_max"]


def test_notebook_answers(run):
    """Exercise 1: the neighbour counts of section 5 at another k are those of a run at that k.
    Exercise 3: the answer's predicted_share equals the weight share of section 6."""
    q, ex = run
    counts = explanations.neighbour_counts_by_k(q, ex, [5, K], K, "exact")
    other = explanations.explain_queries(q, 5, "exact")
    np.testing.assert_array_equal(counts[5], other.nnk.n_neighbours[q.ev])

    nb = json.loads(NOTEBOOK.read_text())
    text = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    answer = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    groups = explanations.weight_share_groups(q, ex)
    ns = {"ex": ex, "data": q, "groups": groups}
    exec(answer, ns)
    np.testing.assert_allclose(ns["share"][q.ev], groups["NNK"][0])
    np.testing.assert_allclose(ns["predicted_share"](ex.knn)[q.ev], groups["kernel kNN"][0])
