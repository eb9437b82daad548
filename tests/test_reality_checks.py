"""studies.reality_checks: cascading randomisation, maps, similarities, the identical-class test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepnnk import NeighbourTable
from deepnnk.nets.models import PaperCNN
from deepnnk.studies import reality_checks as rc


def _model(seed=0, width=4):
    torch.manual_seed(seed)
    return PaperCNN(width=width).eval()


def _images(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g)


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _table(index, weights, n_classes=2):
    index = np.asarray(index, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    return NeighbourTable(
        index,
        weights,
        np.zeros_like(index),
        np.full(len(index), np.nan),
        np.arange(n_classes),
    )


# --------------------------------------------------------------------------- cascade


def test_cascade_changes_exactly_the_reinitialised_layers_and_leaves_the_original():
    model = _model()
    before = _state(model)
    rng_before = torch.get_rng_state()
    steps = rc.cascade_randomise(model, seed=3)
    assert torch.equal(torch.get_rng_state(), rng_before)  # global RNG untouched
    names = [n for n, _ in steps]
    assert names == ["fc", "convs.5", "convs.4", "convs.3", "convs.2", "convs.1", "convs.0"]
    for k, v in _state(model).items():  # the original is unchanged
        assert torch.equal(v, before[k]), k
    for i, (_, copy_) in enumerate(steps):
        assert copy_ is not model
        done = set(names[: i + 1])
        for key, v in copy_.state_dict().items():
            layer = key.rsplit(".", 1)[0]
            if layer in done:
                assert not torch.equal(v, before[key]), key
            else:
                assert torch.equal(v, before[key]), key
        if i:  # a layer keeps the random weights it got when first re-initialised
            prev = steps[i - 1][1].state_dict()
            for key, v in copy_.state_dict().items():
                if key.rsplit(".", 1)[0] in set(names[:i]):
                    assert torch.equal(v, prev[key]), key


def test_cascade_is_reproducible_by_seed():
    model = _model()
    a = rc.cascade_randomise(model, seed=1)
    b = rc.cascade_randomise(model, seed=1)
    c = rc.cascade_randomise(model, seed=2)
    for (na, ma), (nb, mb) in zip(a, b, strict=True):
        assert na == nb
        for (ka, va), (_, vb) in zip(ma.state_dict().items(), mb.state_dict().items(), strict=True):
            assert torch.equal(va, vb), ka
    assert not torch.equal(a[0][1].fc.weight, c[0][1].fc.weight)


# --------------------------------------------------------------------------- maps


def test_maps_have_the_documented_shapes_and_gradient_matches_autograd():
    model, x = _model(), _images(3)
    target = np.array([0, 3, 9])
    g = rc.gradient_map(model, x, target)
    gi = rc.gradient_input_map(model, x, target)
    assert g.shape == gi.shape == (3, 32, 32)
    xi = x[1:2].clone().requires_grad_(True)
    model(xi)[0, 3].backward()
    np.testing.assert_allclose(g[1], xi.grad[0].abs().sum(0).numpy(), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(
        gi[1], (xi.grad[0] * x[1]).sum(0).abs().numpy(), rtol=1e-5, atol=1e-8
    )
    cd = rc.cd_map(model, x, target, tile=8)
    assert cd.shape == (3, 4, 4)
    assert np.isfinite(cd).all()
    with pytest.raises(ValueError, match="tile"):
        rc.cd_map(model, x, target, tile=5)
    model.train()
    rc.gradient_map(model, x)  # runs in eval mode, restores the mode
    assert model.training


def test_spearman_of_a_map_with_itself_is_one_and_of_its_reverse_minus_one():
    maps = np.random.default_rng(0).random((4, 8, 8))
    np.testing.assert_allclose(rc.spearman_maps(maps, maps), 1.0)
    np.testing.assert_allclose(rc.spearman_maps(maps, -maps), -1.0)
    np.testing.assert_allclose(rc.spearman_maps(maps, maps**3 + 2), 1.0)  # monotone: rank only
    from scipy.stats import spearmanr

    other = np.random.default_rng(1).random((4, 8, 8))
    want = [spearmanr(a.ravel(), b.ravel())[0] for a, b in zip(maps, other, strict=True)]
    np.testing.assert_allclose(rc.spearman_maps(maps, other), want)
    assert np.isnan(rc.spearman_maps(np.ones((1, 4, 4)), maps[:1, :4, :4])[0])


# --------------------------------------------------------------------------- jaccard


def test_weighted_jaccard_identity_disjoint_and_a_hand_computed_case():
    a = _table([[0, 1, 2], [3, 4, 5]], [[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    np.testing.assert_allclose(rc.weighted_jaccard(a, a), [1.0, 1.0])
    disjoint = _table([[6, 7, 8], [0, 1, 2]], [[1.0, 0.0, 0.0], [0.4, 0.4, 0.2]])
    np.testing.assert_allclose(rc.weighted_jaccard(a, disjoint), [0.0, 0.0])
    # query 0: a = {0: .5, 1: .5}, b = {1: .25, 2: .25, 9: .5} (candidates in another order)
    #   Σmin = min(.5, .25) = .25;  Σmax = .5 + .5 + .25 + .5 = 1.75  →  1/7
    # query 1: a = {3: .2, 4: .3, 5: .5}, b = {5: .5, 4: .5, 3: 0}
    #   Σmin = 0 + .3 + .5 = .8;  Σmax = .2 + .5 + .5 = 1.2  →  2/3
    b = _table([[2, 9, 1], [5, 4, 3]], [[0.25, 0.5, 0.25], [0.5, 0.5, 0.0]])
    np.testing.assert_allclose(rc.weighted_jaccard(a, b), [1 / 7, 2 / 3])
    np.testing.assert_allclose(rc.weighted_jaccard(b, a), [1 / 7, 2 / 3])  # symmetric
    with pytest.raises(ValueError, match="queries"):
        rc.weighted_jaccard(a, a.subset([0]))


def test_supports_are_tables_over_the_training_set():
    model = _model()
    train, queries = _images(40, seed=1), _images(5, seed=2)
    y = np.arange(40) % 10
    t_nnk = rc.nnk_support(model, train, queries, 8, y_train=y)
    t_knn = rc.knn_support(model, train, queries, 8, y_train=y)
    for t in (t_nnk, t_knn):
        assert t.index.shape == t.weights.shape == (5, 8)
        np.testing.assert_allclose(t.weights.sum(1), 1.0)
        assert ((t.index >= 0) & (t.index < 40)).all()
    assert (t_knn.n_neighbours == 8).all()
    assert (t_nnk.n_neighbours <= 8).all()
    np.testing.assert_allclose(rc.weighted_jaccard(t_nnk, t_nnk), 1.0)


def test_sanity_curves_shape_and_identical_model_scores_one():
    model = _model()
    train, queries = _images(30, seed=1), _images(4, seed=2)
    y = np.arange(30) % 10
    out = rc.sanity_curves(model, train, y, queries, k=6, seed=0, tile=8)
    assert out["layers"][0] == "fc" and len(out["layers"]) == 7
    assert set(out["mean"]) == {"gradient", "gradient_input", "cd", "nnk", "knn"}
    for name, v in out["per_query"].items():
        assert v.shape == (7, 4), name
        assert out["mean"][name].shape == (7,)
    # the fc step leaves the features and so NNK/kNN supports unchanged
    np.testing.assert_allclose(out["per_query"]["nnk"][0], 1.0)
    np.testing.assert_allclose(out["per_query"]["knn"][0], 1.0)
    # comparing a model's explanations with themselves gives 1 throughout
    ref = rc.explanations(model, train, y, queries, out["target"], k=6, tile=8)
    for name, sim in rc.compare(ref, ref).items():
        np.testing.assert_allclose(sim, 1.0, err_msg=name)


# --------------------------------------------------------------------------- identical class


def test_identical_class_rate():
    assert rc.identical_class_rate([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75
    with pytest.raises(ValueError):
        rc.identical_class_rate([1, 2], [1])


def test_factorised_gradient_cosine_equals_autograd():
    g = torch.Generator().manual_seed(0)
    layer = torch.nn.Linear(6, 4).double()
    h = torch.randn(7, 6, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2])
    grads = []
    for i in range(7):
        layer.zero_grad()
        torch.nn.functional.cross_entropy(layer(h[i : i + 1]), y[i : i + 1]).backward()
        grads.append(torch.cat([layer.weight.grad.ravel(), layer.bias.grad]).clone())
    G = torch.stack(grads)
    G = G / G.norm(dim=1, keepdim=True)
    want = (G[:3] @ G[3:].T).numpy()
    with torch.no_grad():
        z = layer(h).numpy()
    fq = rc.last_layer_gradient_factors(h[:3].numpy(), z[:3], y[:3].numpy())
    ft = rc.last_layer_gradient_factors(h[3:].numpy(), z[3:], y[3:].numpy())
    np.testing.assert_allclose(rc.gradient_cosine(fq, ft), want, rtol=1e-10, atol=1e-12)


def _clustered(n_per=12, c=3, d=5, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(c, d)) + 10.0
    y = np.repeat(np.arange(c), n_per)
    return centres[y] + rng.normal(size=(len(y), d)), y, centres


def test_identical_class_rate_is_one_when_the_top_example_shares_the_prediction():
    # well-separated classes and a linear last layer that predicts the cluster: the
    # top example of every method is constructed to share the prediction
    f_train, y_train, centres = _clustered()
    queries = centres + 0.05 * np.random.default_rng(1).normal(size=centres.shape)
    queries = np.concatenate([queries, f_train[::5] + 0.01])
    # logits = −0.1‖f − c‖² + 0.1‖f‖²: linear in f, argmax = the nearest centre
    W = 0.2 * centres
    b = -0.1 * (centres**2).sum(1)

    def logits(f):
        return f @ W.T + b

    predicted = np.argmax(logits(queries), 1)
    want = np.r_[np.arange(3), y_train[::5]]
    np.testing.assert_array_equal(predicted, want)  # the construction predicts the cluster
    top = rc.top_examples(f_train, y_train, logits(f_train), queries, logits(queries), k=6)
    np.testing.assert_array_equal(top["predicted"], predicted)
    for m in rc.SIMILARITIES:
        assert rc.identical_class_rate(top["predicted"], top["top_label"][m]) == 1.0, m
        np.testing.assert_array_equal(top["top_label"][m], y_train[top["top_index"][m]])


def test_identical_class_test_runs_on_a_random_cnn():
    model = _model()
    train, queries = _images(30, seed=1), _images(5, seed=2)
    y = np.arange(30) % 10
    out = rc.identical_class_test(model, train, y, queries, k=6)
    assert set(out["rate"]) == set(rc.SIMILARITIES)
    assert all(0.0 <= r <= 1.0 for r in out["rate"].values())
    np.testing.assert_array_equal(out["predicted"], rc.predict(model, queries))


def test_feature_table_leaves_out_zero_features():
    # a randomised net can kill every unit for some images: the cosine kernel has no value there
    rng = np.random.default_rng(0)
    f_train = rng.random((12, 4))
    f_train[[2, 5]] = 0.0
    f_query = rng.random((3, 4))
    f_query[1] = 0.0
    y = np.arange(12) % 3
    for weighting in ("nnk", "knn"):
        t = rc.feature_table(f_train, y, f_query, 4, weighting)
        assert t.index.shape == (3, 4)
        assert not np.isin(t.index[[0, 2]], [2, 5]).any()
        np.testing.assert_allclose(t.weights.sum(1), [1.0, 0.0, 1.0])
        np.testing.assert_array_equal(t.labels, y[t.index])
    top = rc.top_examples(f_train, y, f_train[:, :3], f_query, f_query[:, :3], k=4)
    for m in ("nnk", "knn", "last_layer_cosine"):
        assert top["top_index"][m][1] == -1 and top["top_label"][m][1] == -1, m
    assert rc.identical_class_rate(top["predicted"], top["top_label"]["nnk"]) <= 2 / 3
