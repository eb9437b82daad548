"""studies.your_model: layer tables, label flips, mislabel scores and their detection report."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepnnk.studies import your_model as ym


def _blobs(n=300, d=6, c=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    centres = rng.normal(scale=4.0, size=(c, d))
    return centres[y] + rng.normal(size=(n, d)), y


def test_flip_labels_changes_exactly_the_rate_and_always_the_class():
    y = np.arange(1000) % 10
    noisy, flipped = ym.flip_labels(y, 0.1, 10, seed=3)
    assert flipped.sum() == 100 and (noisy[flipped] != y[flipped]).all()
    assert (noisy[~flipped] == y[~flipped]).all()
    again, _ = ym.flip_labels(y, 0.1, 10, seed=3)
    np.testing.assert_array_equal(noisy, again)
    with pytest.raises(ValueError, match="rate"):
        ym.flip_labels(y, 1.0, 10)


def test_tracin_self_influence_equals_autograd_gradient_norm():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(7, 5, generator=g, dtype=torch.float64)
    layer = torch.nn.Linear(5, 3).double()
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    want = []
    for i in range(7):
        layer.zero_grad()
        torch.nn.functional.cross_entropy(layer(h[i : i + 1]), y[i : i + 1]).backward()
        want.append(layer.weight.grad.pow(2).sum() + layer.bias.grad.pow(2).sum())
    with torch.no_grad():
        z = layer(h).numpy()
    got = ym.tracin_self_influence([h.numpy(), h.numpy()], [z, z], y.numpy(), lrs=[0.5, 0.25])
    np.testing.assert_allclose(got, 0.75 * torch.stack(want).numpy(), rtol=1e-10)


def test_network_loss_equals_torch_cross_entropy():
    z = np.random.default_rng(1).normal(size=(9, 4)) * 10
    y = np.arange(9) % 4
    want = torch.nn.functional.cross_entropy(
        torch.from_numpy(z), torch.from_numpy(y), reduction="none"
    )
    np.testing.assert_allclose(ym.network_loss(z, y), want.numpy(), rtol=1e-12)


def test_flipped_labels_rank_first_on_separable_blobs():
    X, y = _blobs()
    noisy, flipped = ym.flip_labels(y, 0.1, 3, seed=0)
    scores = ym.mislabel_scores(X, noisy, k=15)
    assert set(scores) == {"nnk_other_share", "knn_other_share", "nnk_residual"}
    rep = ym.detection_report(scores, flipped)
    assert rep["nnk_other_share"]["auc"] > 0.95 and rep["knn_other_share"]["auc"] > 0.95
    assert rep["nnk_other_share"]["precision_at_rate"] > 0.8
    assert 0.0 <= rep["nnk_residual"]["auc"] <= 1.0  # geometry alone does not see labels


def test_layer_table_separates_a_good_layer_from_noise():
    X, y = _blobs(n=400, seed=2)
    noise = np.random.default_rng(3).normal(size=X.shape)
    train = {"noise": noise[:300], "good": X[:300]}
    test = {"noise": noise[300:], "good": X[300:]}
    table = ym.layer_table(train, y[:300], test, y[300:], k=10)
    assert list(table) == ["noise", "good"]
    assert table["good"]["loo_nnk"] < 0.1 < 0.4 < table["noise"]["loo_nnk"]
    assert 1 <= table["good"]["neighbours_mean"] <= 10
    with pytest.raises(ValueError, match="same layers"):
        ym.layer_table(train, y[:300], {"good": X[300:]}, y[300:])


@pytest.mark.data
def test_paper_cnn_layers_features_row_matches_the_cifar_pipeline(
    real_data_root, tmp_path, monkeypatch
):
    """The last row (the fc input through extract_features(layer_input=True)) gives the errors of
    the features the paper's pipeline extracts (nets.features.extract), and the conv rows are
    post-ReLU channel maxima."""
    from deepnnk.evaluation import evaluate_features
    from deepnnk.nets.data import load_cifar10
    from deepnnk.nets.features import extract
    from deepnnk.nets.loading import load_network

    monkeypatch.setenv("DEEPNNK_CACHE", str(tmp_path))
    table = ym.paper_cnn_layers(
        "paper", "regularised", 20, n_train=600, n_test=200, k=20, data_root=real_data_root
    )
    assert list(table) == [f"convs.{i}" for i in range(6)] + ["features"]
    assert [r["dim"] for r in table.values()] == [32] * 6 + [512]
    net = load_network("paper", "regularised", 20, real_data_root)
    x_tr, y_tr, x_te, y_te = load_cifar10(real_data_root)
    tr = np.sort(np.random.default_rng(0).choice(len(x_tr), 600, replace=False))
    te = np.sort(np.random.default_rng(0).choice(len(x_te), 200, replace=False))
    F_tr, F_te = extract(net, x_tr[tr], cache_dir=False), extract(net, x_te[te], cache_dir=False)
    r = evaluate_features(F_tr, y_tr[tr], F_te, y_te[te], ks=[20], solvers=["exact"])
    assert table["features"]["loo_nnk"] == r["loo"]["20"]["exact"]["error"]
    assert table["features"]["test_knn"] == r["test"]["20"]["knn_error"]


@pytest.mark.data
@pytest.mark.slow
def test_mislabel_experiment_end_to_end_and_resumes(real_data_root, tmp_path, monkeypatch):
    """A tiny run: labels flipped at the rate, the network trained and checkpointed on them,
    every score reported; a second call resumes from the checkpoints (no retraining) and gives
    the same report."""
    monkeypatch.setenv("DEEPNNK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    kw = dict(
        epochs=1,
        n_train=400,
        k=10,
        data_root=real_data_root,
        checkpoints_root=tmp_path / "ck",
        progress=False,
    )
    r, arrays = ym.mislabel_experiment(0.1, **kw)
    assert (r["n_train"], r["n_flipped"], r["tracin_epochs"]) == (400, 40, [1])
    assert (arrays["given"] != arrays["original"]).sum() == 40
    np.testing.assert_array_equal(arrays["given"] != arrays["original"], arrays["flipped"])
    assert arrays["features"].shape == (400, 512) and set(arrays["scores"]) == set(ym.SCORES)
    assert set(r["detection"]) == set(ym.SCORES)
    for d in r["detection"].values():
        assert 0.0 <= d["auc"] <= 1.0 and 0.0 <= d["precision_at_rate"] <= 1.0
    (folder,) = (tmp_path / "ck").iterdir()
    assert folder.name == "regularised-noisy10-seed0-n400" and (folder / "epoch_01.pt").is_file()
    again, _ = ym.mislabel_experiment(0.1, **kw)
    assert again["detection"] == r["detection"]


def test_loo_table_gives_the_weights_the_mislabel_score_reads():
    """The gallery's explanation of a suspect is the very interpolation its score came from:
    1 − (weight on the given label) equals nnk_other_share, and no point explains itself,
    even when it has an exact duplicate."""
    X, y = _blobs(n=200, seed=4)
    X[7] = X[3]  # a duplicate: its twin stays a candidate, the point itself does not
    noisy, _ = ym.flip_labels(y, 0.1, 3, seed=1)
    scores = ym.mislabel_scores(X, noisy, k=12)
    rows = ym.top_suspects(scores["nnk_other_share"], 10)
    assert list(rows[:1]) == [int(np.argmax(scores["nnk_other_share"]))]
    rows = np.concatenate([rows, [3, 7]])
    table = ym.loo_table(X, noisy, rows, k=12)
    assert table.index.shape == (12, 12) and not (table.index == rows[:, None]).any()
    assert 7 in table.index[-2] and 3 in table.index[-1]
    share = 1.0 - table.proba[np.arange(len(rows)), np.searchsorted(table.classes, noisy[rows])]
    np.testing.assert_allclose(share, scores["nnk_other_share"][rows], atol=1e-12)


def test_roc_curves_end_at_the_corners():
    flipped = np.array([0, 1, 0, 1, 0, 0], bool)
    perfect = flipped.astype(float)
    curves = ym.roc_curves({"perfect": perfect, "reversed": -perfect}, flipped)
    for fpr, tpr in curves.values():
        assert fpr[0] == tpr[0] == 0.0 and fpr[-1] == tpr[-1] == 1.0
    fpr, tpr = curves["perfect"]
    assert np.trapezoid(tpr, fpr) == 1.0


def test_layer_by_layer_on_a_tabular_mlp():
    """Any model, any layers: an MLP trained on separable blobs separates them in its hidden
    layer, and its rows are named and sized as asked."""
    X, y = _blobs(n=300, d=6, c=3, seed=5)
    X = X.astype(np.float32)
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(
        torch.nn.Linear(6, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 16),
        torch.nn.ReLU(),
        torch.nn.Linear(16, 3),
    )
    opt = torch.optim.Adam(mlp.parameters(), 1e-2)
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(mlp(torch.from_numpy(X)), torch.from_numpy(y)).backward()
        opt.step()
    table = ym.layer_by_layer(
        mlp,
        X[:200],
        y[:200],
        X[200:],
        y[200:],
        {"hidden": "3", "logits": "4"},
        k=10,
        progress=False,
    )
    assert list(table) == ["hidden", "logits"]
    assert table["hidden"]["dim"] == 16 and table["logits"]["dim"] == 3
    assert table["logits"]["test_nnk"] < 0.1
    with pytest.raises(ValueError, match="valid layer names"):
        ym.layer_by_layer(mlp, X[:200], y[:200], X[200:], y[200:], ["nope"], progress=False)
