"""studies.decoy: a tiny Decoy-CIFAR run with each penalty, resumed from its checkpoints."""

from __future__ import annotations

import pytest

from deepnnk.studies import decoy


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("penalty, lam", [("none", 0.0), ("cdep", 1.0), ("rrr", 1.0)])
def test_decoy_run_reports_and_resumes(real_data_root, tmp_path, monkeypatch, penalty, lam):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    kw = dict(
        n_train=120,
        n_test=60,
        epochs=1,
        data_root=real_data_root,
        checkpoints_root=tmp_path,
        progress=False,
    )
    r = decoy.decoy_run(penalty, lam, **kw)
    for key in ("clean", "random", "swap", "train_decoy"):
        assert 0.0 <= r[key] <= 1.0, (key, r[key])
    assert r["reliance"] == pytest.approx(r["clean"] - r["swap"])
    assert (r["n_train"], r["n_test"], r["epochs"]) == (120, 60, 1)
    assert (r["last_penalty"] is None) == (penalty == "none")
    (folder,) = tmp_path.iterdir()
    assert folder.name == f"decoy-underparameterised-{penalty}-lam{lam:g}-seed0-n120"
    again = decoy.decoy_run(penalty, lam, **kw)  # resumed: nothing retrained
    assert {k: v for k, v in again.items() if "seconds" not in k} == {
        k: v for k, v in r.items() if "seconds" not in k
    }


def test_an_unknown_penalty_is_named():
    with pytest.raises(ValueError, match="penalty must be one of"):
        decoy.decoy_run("lasso", 1.0)


# --------------------------------------------------------------------------- reliance scores


def _tiny_trained(seed=0, n_train=80, n_test=40):
    """A decoy_model-shaped dict around a random width-4 PaperCNN and random images."""
    import numpy as np
    import torch

    from deepnnk.nets.decoy import add_decoy
    from deepnnk.nets.models import PaperCNN

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    x = rng.integers(0, 256, (n_train + n_test, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, n_train + n_test)
    x_train, _ = add_decoy(x[:n_train], y[:n_train], mode="train", seed=seed)
    return {
        "net": PaperCNN(width=4).eval(),
        "x_train": x_train,
        "y_train": y[:n_train],
        "x_test": x[n_train:],
        "y_test": y[n_train:],
        "history": [],
    }


def test_decoy_class_inverts_the_training_levels():
    import numpy as np

    from deepnnk.nets.decoy import decoy_levels

    y = np.arange(10).repeat(3)
    assert (decoy.decoy_class(decoy_levels(y, "train")) == y).all()
    with pytest.raises(ValueError, match="not a class level"):
        decoy.decoy_class([7])


def test_auc_matches_scikit_learn_and_is_nan_without_both_classes():
    import numpy as np
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    labels = rng.random(200) < 0.3
    scores = rng.integers(0, 5, 200) + labels  # ties on purpose
    assert decoy._auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    assert np.isnan(decoy._auc(np.zeros(5, bool), np.arange(5)))


def test_reliance_scores_are_shares_and_the_ground_truth_is_consistent():
    import numpy as np

    trained = _tiny_trained()
    s = decoy.reliance_scores(trained, n_queries=30, k=10)
    n = 30
    for m in decoy.METHODS:
        assert s[m].shape == (n,) and np.isfinite(s[m]).all(), m
    assert (np.abs(s["cd"]) <= 1 + 1e-12).all()
    for m in ("gradient_input", "nnk", "knn"):
        assert ((s[m] >= 0) & (s[m] <= 1 + 1e-12)).all(), m
    assert (s["decoy_class"] != s["y"]).all()  # a swapped level is never the true class's
    expected = (s["pred_swap"] == s["decoy_class"]) & (s["pred_clean"] != s["decoy_class"])
    assert (s["caused"] == expected).all()
    again = decoy.reliance_scores(trained, n_queries=30, k=10)
    for m in decoy.METHODS:
        np.testing.assert_array_equal(s[m], again[m])


def test_reliance_summary_ranks_models_and_pools_images():
    import numpy as np

    rng = np.random.default_rng(1)
    runs, scores = [], []
    for level in (0.0, 0.1, 0.2, 0.3):
        caused = rng.random(50) < level + 0.05
        base = caused + rng.normal(0, 0.1, 50)
        runs.append({"reliance": level})
        scores.append({m: base + level for m in decoy.METHODS} | {"caused": caused})
    summ = decoy.reliance_summary(runs, scores)
    for m in decoy.METHODS:
        assert summ["spearman"][m] == pytest.approx(1.0)
        assert summ["auc"][m] > 0.9
        assert summ["auc_per_model"][m].shape == (4,)
    with pytest.raises(ValueError, match="pair up"):
        decoy.reliance_summary(runs, scores[:2])
