"""The code behind notebooks/00_nnk_geometry.ipynb: data and KRI geometry
(deepnnk.studies.nnk_geometry), the small MLP (deepnnk.nets.mlp) and its pulled-back NNK
polytopes, and that every figure (deepnnk.figures.nnk_geometry) builds."""

from __future__ import annotations

import copy
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from conftest import importorskip  # noqa: E402

from deepnnk import NNKClassifier  # noqa: E402
from deepnnk.figures import nnk_geometry as draw  # noqa: E402
from deepnnk.nets import mlp as nets_mlp  # noqa: E402
from deepnnk.nets.geometry import (  # noqa: E402
    decision_boundary,
    linear_regions,
    locate,
    point_in_polygon,
    polygon_area,
)
from deepnnk.studies import nnk_geometry as study  # noqa: E402

BOUNDS = (-1.5, 2.5, -1.0, 1.5)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def moons():
    return study.make_split("moons", 120, 80, seed=0)


@pytest.fixture(scope="module")
def trained(moons):
    mlp = nets_mlp.make_mlp((8, 8), seed=1)
    states = nets_mlp.train_mlp(mlp, moons.X_train, moons.y_train, 4, snapshots=(0, 4), seed=1)
    return mlp, states


# --------------------------------------------------------------------------- data


def test_make_split_is_seeded_and_shaped():
    a = study.make_split("blobs", 50, 30, seed=3)
    b = study.make_split("blobs", 50, 30, seed=3)
    c = study.make_split("blobs", 50, 30, seed=4)
    assert a.X_train.shape == (50, 2) and a.X_test.shape == (30, 2)
    assert a.y_train.shape == (50,) and a.n_classes == 3
    np.testing.assert_array_equal(a.X_train, b.X_train)
    assert not np.array_equal(a.X_train, c.X_train)
    assert study.make_split("moons", 10, 10).n_classes == 2
    with pytest.raises(ValueError, match="moons"):
        study.make_split("circles", 10, 10)


def test_bounds_and_grid():
    X = np.array([[0.0, 1.0], [2.0, 3.0]])
    assert study.padded_bounds(X, 0.5) == (-1.0, 3.0, 0.0, 4.0)
    xx, yy, pts = study.grid((0, 1, 0, 2), 5)
    assert xx.shape == yy.shape == (5, 5) and pts.shape == (25, 2)
    assert pts.min(0).tolist() == [0, 0] and pts.max(0).tolist() == [1, 2]


# --------------------------------------------------------------------------- KRI geometry


def test_kri_margins_by_hand():
    # Query at the origin, anchor at (1, 0): its KRI line is x = 1, query side x < 1.
    M = study.kri_margins([0, 0], [[0.5, 3.0], [2.0, 0.0], [1.0, -7.0]], [[1.0, 0.0]])
    np.testing.assert_allclose(M[:, 0], [0.5, -1.0, 0.0], atol=1e-15)


def test_kri_statistics_by_hand():
    q = np.zeros((1, 2))
    # Kept: (1, 0) and (0, 1). Discarded: (2, 0) behind (1, 0)'s line; (0.3, 0.3) inside both.
    P = np.array([[[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.3, 0.3]]])
    kept = np.array([[True, True, False, False]])
    s = study.kri_statistics(q, P, kept)
    assert s["discarded_outside"] == 0.5
    assert s["queries_all_discarded_outside"] == 0.0
    assert s["kept_pairs_consistent"] == 1.0
    assert s["mean_selected"] == 2.0
    s = study.kri_statistics(q, P[:, :3], kept[:, :3])
    assert s["discarded_outside"] == 1.0 and s["queries_all_discarded_outside"] == 1.0


def test_pairwise_kri_matches_the_solver(moons):
    clf = NNKClassifier(8, kernel="gaussian").fit(moons.X_train, moons.y_train)
    C, kept = study.batch_neighbourhoods(clf, moons.X_test)
    assert C.shape == (80, 8, 2) and kept.shape == (80, 8)
    ok, n = study.pairwise_kri_check(moons.X_test, C)
    assert ok
    assert 0.99 * 80 * 28 <= n <= 80 * 28  # only exact ties may be skipped


def test_pairwise_kri_check_can_fail(moons, monkeypatch):
    # Draw the KRI lines for the wrong query (the solver still sees the true distances): the
    # check must notice.
    clf = NNKClassifier(8, kernel="gaussian").fit(moons.X_train, moons.y_train)
    C, _ = study.batch_neighbourhoods(clf, moons.X_test)
    real = study._kri_matrix
    monkeypatch.setattr(study, "_kri_matrix", lambda q, P: real(np.asarray(q) + 0.5, P))
    ok, _ = study.pairwise_kri_check(moons.X_test, C)
    assert not ok


def test_neighbourhood_and_summary(moons):
    clf = NNKClassifier(10, kernel="gaussian").fit(moons.X_train, moons.y_train)
    q = np.array([0.5, 0.25])
    nb = study.neighbourhood(clf, q)
    idx, w, _ = clf.explain(q[None])
    np.testing.assert_array_equal(nb.index, idx[0])
    np.testing.assert_allclose(nb.weights, w[0])
    np.testing.assert_allclose(nb.points, moons.X_train[idx[0]])
    assert nb.radius == pytest.approx(np.linalg.norm(moons.X_train[idx[0, -1]] - q))
    s = study.summary(nb)
    assert s["n_candidates"] == 10 and s["n_selected"] == nb.kept.sum() >= 1
    assert sum(s["weights"]) == pytest.approx(1.0)
    assert 0.0 <= s["discarded_outside"] <= 1.0
    outside = study.discarded_outside(nb)
    assert outside.shape == ((~nb.kept).sum(),)


# --------------------------------------------------------------------------- curves


def test_loo_curve(moons):
    c = study.loo_curve(moons.X_train, moons.y_train, [2, 6])
    assert c["k"] == [2, 6]
    ref = NNKClassifier(6, kernel="gaussian").fit(moons.X_train, moons.y_train).loo_error()
    assert c["nnk"][1] == ref
    assert all(0 <= e <= 1 for e in c["nnk"] + c["knn"])
    assert all(1 <= s <= k for s, k in zip(c["nnk_selected"], c["k"], strict=True))
    # With k = 2 kNN and NNK see the same two candidates; NNK uses at most both.
    assert c["nnk_selected"][0] <= 2


# --------------------------------------------------------------------------- the MLP


def test_train_mlp_is_adam_and_snapshots(moons):
    mlp = nets_mlp.make_mlp((8, 8), seed=2)
    ref = copy.deepcopy(mlp)
    states = nets_mlp.train_mlp(mlp, moons.X_train, moons.y_train, 3, snapshots=(0, 2), seed=5)
    assert sorted(states) == [0, 2]
    for name, t in ref.state_dict().items():
        torch.testing.assert_close(states[0][name], t)
    X = torch.as_tensor(moons.X_train, dtype=torch.float32)
    y = torch.as_tensor(moons.y_train)
    gen = torch.Generator().manual_seed(5)
    opt = torch.optim.Adam(ref.parameters(), lr=1e-2)
    for _ in range(3):
        for b in torch.randperm(len(X), generator=gen).split(32):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(ref(X[b]), y[b]).backward()
            opt.step()
    for a, b in zip(mlp.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_snapshot_epochs():
    e = nets_mlp.snapshot_epochs(100, 5)
    assert e[0] == 0 and e[-1] == 100 and e == sorted(set(e)) and len(e) <= 5
    assert nets_mlp.snapshot_epochs(3, 10) == [0, 1, 2, 3]
    assert nets_mlp.snapshot_epochs(10, 1) == [0]


def test_hidden_features_match_the_regions(trained):
    mlp, _ = trained
    regions = linear_regions(mlp, BOUNDS)
    rng = np.random.default_rng(0)
    pts = rng.uniform([BOUNDS[0], BOUNDS[2]], [BOUNDS[1], BOUNDS[3]], (300, 2))
    where = locate(regions, pts)
    assert (where >= 0).all()
    H = nets_mlp.hidden_features(mlp, pts)
    affine = np.stack(
        [regions[r].hidden_A @ p + regions[r].hidden_c for r, p in zip(where, pts, strict=True)]
    )
    np.testing.assert_allclose(H, affine, atol=1e-9)
    logits = np.stack([regions[r](p[None])[0] for r, p in zip(where, pts, strict=True)])
    np.testing.assert_array_equal(nets_mlp.network_labels(mlp, pts), logits.argmax(1))


def test_pulled_back_polytope_is_the_exact_preimage(trained, moons):
    mlp, _ = trained
    regions = linear_regions(mlp, BOUNDS)
    H_train = nets_mlp.hidden_features(mlp, moons.X_train)
    q = np.array([0.4, 0.2])
    h_q = nets_mlp.hidden_features(mlp, q[None])[0]
    H_kept = H_train[[3, 17, 40]]
    pieces = study.pulled_back_polytope(regions, h_q, H_kept)
    assert pieces and all(len(p) >= 3 for p in pieces)
    rng = np.random.default_rng(1)
    pts = rng.uniform([BOUNDS[0], BOUNDS[2]], [BOUNDS[1], BOUNDS[3]], (3000, 2))
    cond = np.einsum("nh,jh->nj", nets_mlp.hidden_features(mlp, pts), h_q - H_kept) - np.einsum(
        "jh,jh->j", H_kept, h_q - H_kept
    )
    clear = np.abs(cond).min(1) > 1e-7
    inside = np.zeros(len(pts), dtype=bool)
    for p in pieces:
        inside |= point_in_polygon(pts, p)
    np.testing.assert_array_equal(inside[clear], (cond >= 0).all(1)[clear])
    # The query is always in its own polytope; the pieces tile part of the box.
    assert any(point_in_polygon(q[None], p)[0] for p in pieces)
    area = sum(polygon_area(p) for p in pieces)
    assert (
        0
        < area
        <= polygon_area(
            [
                [BOUNDS[0], BOUNDS[2]],
                [BOUNDS[1], BOUNDS[2]],
                [BOUNDS[1], BOUNDS[3]],
                [BOUNDS[0], BOUNDS[3]],
            ]
        )
        + 1e-9
    )


def test_probe_polytopes_and_epoch_history(trained, moons):
    mlp, states = trained
    regions = linear_regions(mlp, BOUNDS)
    clf = NNKClassifier(6, kernel="gaussian").fit(moons.X_train, moons.y_train)
    fclf = study.feature_nnk(mlp, moons, 6)
    probes = study.probe_polytopes(mlp, regions, clf, fclf, [(0.5, 0.25), (-0.8, 0.6)], BOUNDS)
    assert len(probes) == 2
    for p in probes:
        assert p["input_selected"] == len(p["input"][0]) >= 1
        assert p["feature_selected"] == len(p["feature"][0]) >= 1
        assert p["input_area"] > 0 and p["feature_area"] > 0
        assert p["feature_pieces"] == len(p["feature"][1])
    before = copy.deepcopy(mlp.state_dict())
    hist = study.epoch_history(mlp, states, moons, BOUNDS, 6, res=12)
    for name, t in before.items():
        torch.testing.assert_close(mlp.state_dict()[name], t)  # the model is left alone
    assert hist["epoch"] == [0, 4]
    assert all(n > 0 for n in hist["n_regions"])
    for key in ("loo_nnk_features", "test_error", "agreement_nnk_features"):
        assert all(0 <= v <= 1 for v in hist[key])


# --------------------------------------------------------------------------- figures and widgets


def test_every_figure_builds(trained, moons):
    mlp, states = trained
    data = {"moons": moons, "blobs": study.make_split("blobs", 120, 40, seed=0)}
    clfs = {
        n: NNKClassifier(6, kernel="gaussian").fit(d.X_train, d.y_train) for n, d in data.items()
    }
    nbs = {n: study.neighbourhood(clfs[n], (0.3, 0.2)) for n in data}
    for kri in (False, True):
        fig = draw.neighbourhood_panels(data, nbs, kri=kri)
        assert len(fig.axes) == 2
    knn = NNKClassifier(6, kernel="gaussian", weighting="knn").fit(moons.X_train, moons.y_train)
    fields = study.proba_fields({"NNK": clfs["moons"], "kNN": knn}, BOUNDS, 10)
    assert list(fields) == ["NNK", "kNN"] and fields["kNN"][2].shape == (10, 10)
    fig = draw.field_panels(fields, moons)
    assert len(fig.axes) == 3  # two fields and the colour bar
    loo = {n: study.loo_curve(d.X_train, d.y_train, [2, 4]) for n, d in data.items()}
    assert len(draw.loo_figure(loo).axes) == 4
    regions = linear_regions(mlp, BOUNDS)
    fclf = study.feature_nnk(mlp, moons, 6)
    probes = study.probe_polytopes(mlp, regions, clfs["moons"], fclf, [(0.5, 0.25)], BOUNDS)
    fig = draw.polytope_figure(regions, decision_boundary(regions), moons, BOUNDS, probes)
    assert len(fig.axes) == 2
    xx, yy, pts = study.grid(BOUNDS, 10)
    hist = study.epoch_history(mlp, states, moons, BOUNDS, 6, res=8)
    labels = nets_mlp.network_labels(mlp, pts)
    assert len(draw.agreement_figure(xx, yy, labels, labels, moons, hist).axes) == 3
    sweep = study.k_sweep(moons, (0.5, 0.25), [3, 8])
    selected = study.k_sweep_selected(sweep)
    assert sorted(selected) == [3, 8] and all(1 <= v <= k for k, v in selected.items())
    assert len(draw.k_sweep_figure(moons, sweep).axes) == 2


def test_widgets_only_in_a_live_kernel(moons):
    assert not draw.widgets_available()  # plain pytest: no kernel, Agg backend
    importorskip("ipywidgets", "notebooks")
    box = draw.neighbourhood_explorer({"moons": moons}, {"moons": (0.5, 0.25)}, 6, k_max=12)
    slider = box.children[0].children[1]
    slider.value = 4  # redraws without error
    assert slider.value == 4


def test_explorer_without_ipywidgets_says_what_to_install(moons, monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets -> ImportError
    assert not draw.widgets_available()
    with pytest.raises(ImportError, match=r"pip install 'deepnnk\[notebooks\]'"):
        draw.neighbourhood_explorer({"moons": moons}, {"moons": (0.5, 0.25)}, 6)


# --------------------------------------------------------------------------- profiles


def test_profiles():
    assert set(study.PROFILES) == {"smoke", "quick", "paper"}
    smoke = study.profile("smoke")
    assert smoke == study.PROFILES["smoke"] and smoke["ks"] == [2, 5, 10, 20]
    smoke["ks"].append(99)  # a copy: the table is left alone
    assert study.PROFILES["smoke"]["ks"] == [2, 5, 10, 20]
    for name in ("quick", "paper"):
        assert set(study.profile(name)) == set(smoke)
    with pytest.raises(ValueError, match="profile"):
        study.profile("huge")


# --------------------------------------------------------------------------- the solver, by hand


def _random_problem(rng, k: int, d: int):
    Z = rng.normal(size=(d, k))
    zq = rng.normal(size=d)
    return Z.T @ Z, Z.T @ zq


def test_nnk_by_hand_matches_solve_nnk_on_random_problems():
    from deepnnk import kkt_residual, nnk_objective, solve_nnk

    rng = np.random.default_rng(0)
    for _ in range(200):
        k = int(rng.integers(1, 16))
        K, b = _random_problem(rng, k, d=k + 3)  # full rank: the optimum is unique
        hand, pkg = study.nnk_by_hand(K, b), solve_nnk(K, b)
        assert (hand >= 0).all()
        assert kkt_residual(K, b, hand) <= 1e-9
        np.testing.assert_allclose(hand, pkg, atol=1e-6)
        assert nnk_objective(K, b, hand) <= nnk_objective(K, b, pkg) + 1e-9


def test_nnk_by_hand_on_degenerate_problems():
    from deepnnk import kkt_residual, nnk_objective, solve_nnk

    rng = np.random.default_rng(1)
    # Rank-deficient Gram matrices (k candidates in d < k dimensions) and a duplicated candidate:
    # the weights need not be unique, the optimal value is.
    for _ in range(100):
        k = int(rng.integers(3, 12))
        K, b = _random_problem(rng, k, d=int(rng.integers(1, k)))
        hand, pkg = study.nnk_by_hand(K, b), solve_nnk(K, b)
        assert (hand >= 0).all() and kkt_residual(K, b, hand) <= 1e-9
        scale = max(abs(float(nnk_objective(K, b, pkg)[0])), 1e-12)
        assert abs(nnk_objective(K, b, hand) - nnk_objective(K, b, pkg))[0] <= 1e-9 * scale + 1e-12
    X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [2.0, 2.0]])  # rows 1 and 2 coincide
    q = np.array([0.6, 0.5])
    K = np.exp(-((X[:, None] - X[None]) ** 2).sum(2))
    b = np.exp(-((X - q) ** 2).sum(1))
    hand = study.nnk_by_hand(K, b)
    assert kkt_residual(K, b, hand) <= 1e-9
    assert (hand[1] == 0) or (hand[2] == 0)  # one copy suffices
    # The query is one of the candidates: all the weight on that candidate.
    hand = study.nnk_by_hand(K, K[0])
    np.testing.assert_allclose(hand, [1.0, 0.0, 0.0, 0.0], atol=1e-12)


def test_nnk_by_hand_is_short():
    import inspect

    src = inspect.getsource(study.nnk_by_hand).splitlines()
    body = [ln for ln in src[2:] if ln.strip() and not ln.strip().startswith("#")]
    assert src[1].strip().startswith('"""') and src[1].strip().endswith('"""')
    assert len(body) <= 16, len(body)  # the "15-line solver" of the notebook


def test_hand_vs_package_on_classifier_problems(moons):
    clf = NNKClassifier(8, kernel="gaussian").fit(moons.X_train, moons.y_train)
    K_SS, k_Sq = study.candidate_problems(clf, moons.X_test)
    assert K_SS.shape == (80, 8, 8) and k_Sq.shape == (80, 8)
    _, w, _ = clf.explain(moons.X_test)
    from deepnnk import solve_nnk

    theta = solve_nnk(K_SS, k_Sq)
    np.testing.assert_allclose(theta / theta.sum(1, keepdims=True), w, atol=1e-12)
    r = study.hand_vs_package(K_SS, k_Sq)
    assert r["n_problems"] == 80 and r["same_support"] == 1.0
    assert r["max_abs_theta_diff"] <= 1e-6 and r["max_kkt_hand"] <= 1e-9


def test_show_source_is_the_function():
    import inspect

    text = draw.show_source(study.nnk_by_hand)
    assert text.startswith("```python\n") and text.endswith("\n```")
    assert inspect.getsource(study.nnk_by_hand).rstrip() in text


# --------------------------------------------------------------------------- the cosine kernel


def test_cosine_problems_match_the_kernel():
    from deepnnk import cosine_kernel

    rng = np.random.default_rng(2)
    q, C = rng.normal(size=(3, 2)), rng.normal(size=(3, 5, 2))
    K_SS, k_Sq = study.cosine_problems(q, C)
    for i in range(3):
        np.testing.assert_allclose(K_SS[i], cosine_kernel(C[i], C[i]), atol=1e-12)
        np.testing.assert_allclose(k_Sq[i], cosine_kernel(C[i], q[i : i + 1])[:, 0], atol=1e-12)


def test_angular_brackets_by_hand():
    q = np.array([[1.0, 1.0]])  # direction 45°
    angles = np.deg2rad([10, 40, 44, 50, 80])
    C = (
        np.stack([np.cos(angles), np.sin(angles)], 1)[None]
        * np.array([1, 3, 2, 5, 1])[None, :, None]
    )
    np.testing.assert_array_equal(study.angular_brackets(q, C)[0], [0, 0, 1, 1, 0])
    one_side = C[:, :3]  # all below 45°: only the nearest one
    np.testing.assert_array_equal(study.angular_brackets(q, one_side)[0], [0, 0, 1])


def test_ray_kri_check(moons):
    moved = study.shifted(moons)
    np.testing.assert_allclose(moved.X_train - moons.X_train, [study.COSINE_SHIFT] * 120)
    clf = NNKClassifier(6, kernel="cosine").fit(moved.X_train, moved.y_train)
    C, _ = study.batch_neighbourhoods(clf, moved.X_test)
    ok, n = study.ray_kri_check(moved.X_test, C)
    assert ok and n >= 0.99 * 80 * 15
    # By hand: query at 45°; candidates at 40° and 50° straddle it (both kept), at 30° and 40°
    # the farther one lies behind the nearer one's ray (dropped).
    from deepnnk import solve_nnk

    q = np.array([[1.0, 1.0]])
    for degrees, both in (([40, 50], True), ([30, 40], False)):
        a = np.deg2rad(degrees)
        C2 = np.stack([np.cos(a), np.sin(a)], 1)[None] * np.array([[[2.0], [0.5]]])
        K_SS, k_Sq = study.cosine_problems(q, C2)
        assert (solve_nnk(K_SS, k_Sq)[0] > 0).all() == both
        assert study.ray_kri_check(q, C2) == (True, 1)


def test_cosine_bridge(moons):
    c = study.cosine_bridge(moons, 8)
    assert c["in_first_quadrant"] and c["ray_kri_matches_solver"]
    # Translation does not move the Gaussian kernel; the cosine kernel keeps at most about two.
    assert c["gaussian_test_error"] == c["gaussian_test_error_unshifted"]
    assert 1 <= c["cosine_mean_selected"] <= 2.5 < c["gaussian_mean_selected"]
    assert 0.5 <= c["cosine_is_angular_brackets"] <= 1
    assert c["exception_objective_gap"] <= 1e-9
    assert 0 < c["median_kernel_spread"] < 0.05


def test_cosine_bridge_figure(moons):
    moved = study.shifted(moons)
    q = np.asarray(study.QUERIES["moons"]) + study.COSINE_SHIFT
    g = study.fit_neighbourhood(moved, 8, q)
    c = study.fit_neighbourhood(moved, 8, q, kernel="cosine")
    assert c.kept.sum() <= 2
    fig = draw.cosine_bridge_figure(moved, g, c)
    assert len(fig.axes) == 2 and fig.get_size_inches()[0] <= 7.01


# --------------------------------------------------------------------------- summaries


def test_summaries_for_the_prose():
    curve = {
        "k": [2, 5, 9],
        "nnk": [0.1, 0.2, 0.15],
        "knn": [0.3, 0.1, 0.2],
        "nnk_selected": [1.5, 2.5, 3.0],
    }
    s = study.loo_summary(curve)
    assert s["k_largest"] == 9 and s["nnk_at_largest"] == 0.15 and s["knn_at_largest"] == 0.2
    assert s["nnk_spread"] == pytest.approx(0.1) and s["knn_spread"] == pytest.approx(0.2)
    P = np.array([[0.0, 0.5], [0.95, 0.2]])
    assert study.field_sharpness({"a": (None, None, P)}) == {"a": 0.5}
    hist = {"epoch": [0, 3], "test_error": [0.5, 0.1]}
    assert study.first_last(hist) == {
        "epoch_first": 0,
        "epoch_last": 3,
        "test_error_first": 0.5,
        "test_error_last": 0.1,
    }


def test_epoch_ticks_are_integers():
    assert draw.epoch_ticks([0, 1, 20]) == [0, 1, 20]
    assert draw.epoch_ticks([0, 1, 2, 4, 9, 20, 42, 89, 189, 400]) == [0, 1, 10, 100, 400]
    assert draw.epoch_ticks([0, 1, 3, 7, 17, 45, 116, 300]) == [0, 1, 10, 100, 300]
