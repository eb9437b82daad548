"""Contextual decomposition and ACD: the invariant rel + irrel = logits, the edge masks, the input
forms, leaving the model alone, and the ACD hierarchy's nesting and scores."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from deepnnk.nets.cd import acd_hierarchy, cd_importance, cd_propagate, contextual_decomposition
from deepnnk.nets.models import PaperCNN

TOL = 1e-5  # the bound on |rel + irrel − logits| in float32, logit units
N = 8


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine OpenMP's spinning threads slow these
    small convolutions down whenever another process holds a core."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _net(width=16, regularized=True, bias_init="tensorflow", seed=0) -> PaperCNN:
    # "tensorflow" biases are 5-12x PyTorch's: a harder test of the bias sharing
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return PaperCNN(width, regularized, bias_init=bias_init).eval()


def _images(n=N, seed=0) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _masks(n=N, seed=1) -> torch.Tensor:
    return torch.rand(n, 32, 32, generator=torch.Generator().manual_seed(seed)) > 0.5


def _logits(model, x) -> np.ndarray:
    with torch.no_grad():
        return model(torch.as_tensor(x)).numpy()


def _without_biases(model: PaperCNN) -> PaperCNN:
    model = copy.deepcopy(model)
    with torch.no_grad():
        for layer in [*model.convs, model.fc]:
            layer.bias.zero_()
    return model


@pytest.fixture(scope="module")
def net():
    return _net()


# ----------------------------------------------------------------------------- the invariant


@pytest.mark.parametrize("width", [16, 32])
@pytest.mark.parametrize("regularized", [True, False])
@pytest.mark.parametrize("bias_init", ["pytorch", "tensorflow"])
def test_rel_plus_irrel_is_the_logits_on_random_nets(width, regularized, bias_init):
    model = _net(width, regularized, bias_init)
    x, mask = _images(), _masks()
    rel, irrel = contextual_decomposition(model, x, mask)
    assert rel.shape == irrel.shape == (N, 10) and rel.dtype == np.float32
    assert np.abs(rel + irrel - _logits(model, x)).max() <= TOL
    # a real split: neither part is the whole logit
    assert np.abs(rel).max() > 1e-3 and np.abs(irrel).max() > 1e-3


def test_float64_model_gives_float64_and_an_exact_split(net):
    model = copy.deepcopy(net).double()
    x = torch.rand(N, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    rel, irrel = contextual_decomposition(model, x, _masks())
    assert rel.dtype == irrel.dtype == np.float64
    assert np.abs(rel + irrel - _logits(model, x)).max() <= 1e-12


# ----------------------------------------------------------------------------- edge masks


def test_mask_of_ones_leaves_irrel_only_bias_driven(net):
    x = _images()
    logits = _logits(net, x)
    rel, irrel = contextual_decomposition(net, x, np.ones((32, 32), dtype=bool))
    # irrel's input is 0, so only biases can feed it: none at all once the biases are 0 ...
    unbiased = _without_biases(net)
    rel0, irrel0 = contextual_decomposition(unbiased, x, np.ones((32, 32), dtype=bool))
    assert np.all(irrel0 == 0)
    np.testing.assert_allclose(rel0, _logits(unbiased, x), atol=TOL)
    # ... and with biases only at 0/0 units, which a random net on random images has none of
    assert np.all(irrel == 0)
    np.testing.assert_allclose(rel, logits, atol=TOL)


def test_mask_of_zeros_gives_no_relevant_logit(net):
    """A 0/0 unit's bias goes to irrel, so an empty region scores exactly 0, biases or not."""
    x = _images()
    for model in (net, _without_biases(net)):
        rel, irrel = contextual_decomposition(model, x, np.zeros((32, 32)))
        assert np.all(rel == 0)
        np.testing.assert_allclose(irrel, _logits(model, x), atol=TOL)


def test_a_black_image_is_all_irrelevant(net):
    """Every unit of a black image is 0/0 before its bias: the whole logit is irrel, any mask."""
    x = torch.zeros(2, 3, 32, 32)
    rel, irrel = contextual_decomposition(net, x, _masks(2))
    assert np.all(rel == 0)
    np.testing.assert_allclose(irrel, _logits(net, x), atol=TOL)


def test_complementary_masks_both_sum_to_the_logits(net):
    x, mask = _images(), _masks()
    rel_a, irrel_a = contextual_decomposition(net, x, mask)
    rel_b, irrel_b = contextual_decomposition(net, x, ~mask.numpy())
    logits = _logits(net, x)
    np.testing.assert_allclose(rel_a + irrel_a, logits, atol=TOL)
    np.testing.assert_allclose(rel_b + irrel_b, logits, atol=TOL)
    assert not np.allclose(rel_a, rel_b)  # CD is not symmetric: the ReLU rule favours rel


# ----------------------------------------------------------------------------- input forms


def test_mask_forms_and_batching_agree(net):
    x = _images()
    one = _masks(1)[0]  # [32, 32]
    base = contextual_decomposition(net, x, one)
    forms = {
        "[N, 32, 32]": one.expand(N, -1, -1),
        "[1, 32, 32]": one[None],
        "[N, 1, 32, 32]": one.expand(N, 1, -1, -1),
        "[N, 3, 32, 32]": one.expand(N, 3, -1, -1),
        "numpy 0/1 float": one.numpy().astype(np.float64),
        "numpy int": one.numpy().astype(np.int64),
    }
    for name, mask in forms.items():
        got = contextual_decomposition(net, x, mask)
        for a, b in zip(got, base, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)
    # per-image masks: the batch equals one image at a time, whatever the batch size
    masks = _masks()
    batched = contextual_decomposition(net, x, masks, batch_size=3)
    singles = [contextual_decomposition(net, x[i : i + 1], masks[i]) for i in range(N)]
    for part, k in zip(batched, range(2), strict=True):
        np.testing.assert_allclose(part, np.concatenate([s[k] for s in singles]), atol=1e-6)


def test_per_channel_mask_splits_channels(net):
    x = _images(2)
    mask = torch.zeros(2, 3, 32, 32)
    mask[:, 0] = 1  # red channel relevant
    rel, irrel = contextual_decomposition(net, x, mask)
    np.testing.assert_allclose(rel + irrel, _logits(net, x), atol=TOL)
    red_only = x * mask
    rel_red, _ = contextual_decomposition(net, red_only, np.ones((32, 32)))
    assert not np.allclose(rel, 0) and not np.allclose(rel, rel_red)  # context matters in CD


def test_uint8_hwc_images_equal_their_float_form(net):
    gen = np.random.default_rng(0)
    u8 = gen.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    as_float = torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 255
    mask = _masks(4)
    for a, b in zip(
        contextual_decomposition(net, u8, mask),
        contextual_decomposition(net, as_float, mask),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, atol=1e-6)


# ----------------------------------------------------------------------------- the model


def test_runs_under_no_grad_and_leaves_the_model_alone(net):
    x, mask = _images(), _masks()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    outside = contextual_decomposition(net, x, mask)
    with torch.no_grad():
        inside = contextual_decomposition(net, x, mask)
        score = cd_importance(net, x, mask)
    for a, b in zip(inside, outside, strict=True):
        np.testing.assert_array_equal(a, b)
    assert score.shape == (N,)
    assert not net.training and not any(m.training for m in net.modules())
    assert all(p.grad is None for p in net.parameters())
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_train_mode_is_refused_and_left_as_it_was():
    model = _net().train()
    with pytest.raises(ValueError, match=r"model\.eval\(\)"):
        contextual_decomposition(model, _images(1), _masks(1))
    with pytest.raises(ValueError, match=r"model\.eval\(\)"):
        cd_importance(model, _images(1), _masks(1))
    assert model.training


def test_cd_propagate_is_differentiable_and_exact_in_train_mode():
    """The core serves training penalties (CDEP): gradients flow, finite even through 0/0
    units, and in train mode one shared dropout draw keeps rel + irrel a forward pass."""
    model = _net(regularized=True)
    x = _images(4)
    x[0] = 0  # a black image: every unit is 0/0 before its bias
    keep = _masks(4)[:, None].float()
    rel, irrel = cd_propagate(model, x * keep, x - x * keep)
    rel[:, 0].sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)

    model.train()
    with torch.random.fork_rng():
        torch.manual_seed(5)
        rel, irrel = cd_propagate(model, x * keep, x - x * keep)
    with torch.random.fork_rng():
        torch.manual_seed(5)
        logits = model(x)
    assert float((rel + irrel - logits).detach().abs().max()) <= TOL


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("images", "mask", "match"),
    [
        (torch.rand(2, 32, 32, 3), np.ones((32, 32)), r"\[N, 3, 32, 32\]"),
        (torch.rand(2, 3, 32, 32) * 255, np.ones((32, 32)), "divide by 255"),
        (torch.full((1, 3, 32, 32), float("nan")), np.ones((32, 32)), "NaN"),
        (torch.rand(2, 3, 32, 32), np.ones((16, 16)), r"\[32, 32\]"),
        (torch.rand(2, 3, 32, 32), np.ones((2, 2, 32, 32)), r"1\|3"),
        (torch.rand(2, 3, 32, 32), np.ones((3, 32, 32)), "3 masks for 2 images"),
        (torch.rand(2, 3, 32, 32), np.full((32, 32), 2.0), r"\[0, 1\]"),
        (torch.rand(2, 3, 32, 32), np.full((32, 32), -1), r"\[0, 1\]"),
        (torch.rand(2, 3, 32, 32), np.full((32, 32), "a"), "bool or 0/1"),
    ],
)
def test_bad_inputs_name_the_fix(net, images, mask, match):
    with pytest.raises(ValueError, match=match):
        contextual_decomposition(net, images, mask)


def test_bad_models_targets_and_sizes(net):
    x, mask = _images(2), _masks(2)
    with pytest.raises(ValueError, match="PaperCNN"):
        contextual_decomposition(torch.nn.Linear(3, 10).eval(), x, mask)
    with pytest.raises(ValueError, match="batch_size"):
        contextual_decomposition(net, x, mask, batch_size=0)
    with pytest.raises(ValueError, match="0..9"):
        cd_importance(net, x, mask, target=10)
    with pytest.raises(ValueError, match="one int or 2 ints"):
        cd_importance(net, x, mask, target=[1, 2, 3])
    with pytest.raises(ValueError, match="ints"):
        cd_importance(net, x, mask, target=1.5)
    with pytest.raises(ValueError, match="tile must divide 32"):
        acd_hierarchy(net, x[0], tile=5)
    with pytest.raises(ValueError, match="ONE image"):
        acd_hierarchy(net, x)
    with pytest.raises(ValueError, match="max_steps"):
        acd_hierarchy(net, x[0], max_steps=-1)


# ----------------------------------------------------------------------------- cd_importance


def test_cd_importance_is_the_rel_logit_of_the_target(net):
    x, mask = _images(), _masks()
    rel, _ = contextual_decomposition(net, x, mask)
    pred = _logits(net, x).argmax(1)
    np.testing.assert_array_equal(cd_importance(net, x, mask), rel[np.arange(N), pred])
    np.testing.assert_array_equal(cd_importance(net, x, mask, target=3), rel[:, 3])
    y = np.arange(N) % 10
    np.testing.assert_array_equal(cd_importance(net, x, mask, target=y), rel[np.arange(N), y])
    assert cd_importance(net, x, np.ones((32, 32))).dtype == np.float32


# ----------------------------------------------------------------------------- ACD


def _tile_grid(mask: np.ndarray, tile: int) -> np.ndarray:
    """A pixel mask → its tile grid, checking it is a union of whole tiles."""
    g = mask.reshape(32 // tile, tile, 32 // tile, tile)
    grid = g.any(axis=(1, 3))
    assert np.array_equal(grid, g.all(axis=(1, 3))), "a cluster cuts through a tile"
    return grid


def _check_hierarchy(model, image, levels, tile, per_step):
    assert levels and all(set(lv) == {"masks", "scores", "ids", "target"} for lv in levels)
    target = levels[0]["target"]
    assert target == int(_logits(model, image[None]).argmax())
    for lv in levels:
        masks, scores, ids = lv["masks"], lv["scores"], lv["ids"]
        assert masks.dtype == bool and masks.shape[1:] == (32, 32) and len(masks) >= 1
        assert scores.shape == ids.shape == (len(masks),)
        assert len(set(ids.tolist())) == len(ids) and list(ids) == sorted(ids)
        for m in masks:
            _tile_grid(m, tile)
        assert not np.any(masks.sum(0) > 1), "clusters of a level overlap"
        # the scores are the CD importance of the masks for the predicted class
        want = cd_importance(model, image.expand(len(masks), -1, -1, -1), masks, target=target)
        np.testing.assert_allclose(scores, want, atol=1e-5, rtol=1e-5)
    # level 0: the per_step best tiles by CD importance
    n_tiles = (32 // tile) ** 2
    singles = np.repeat(
        np.repeat(np.eye(n_tiles, dtype=bool).reshape(-1, 32 // tile, 32 // tile), tile, 1), tile, 2
    )
    tile_scores = cd_importance(model, image.expand(n_tiles, -1, -1, -1), singles, target=target)
    seeds = levels[0]["masks"].any(0)
    best = singles[np.argsort(-tile_scores, kind="stable")[:per_step]].any(0)
    np.testing.assert_array_equal(seeds, best)
    # nesting: each cluster of a level is a union of clusters of the level before and of
    # tiles that were free; nothing is dropped; an id is kept by the cluster holding it
    for before, after in zip(levels, levels[1:], strict=False):
        for m in after["masks"]:
            for old in before["masks"]:
                assert not (old & m).any() or not (old & ~m).any(), "a cluster was split"
        for cid, old in zip(before["ids"], before["masks"], strict=True):
            holders = [m for m in after["masks"] if (m & old).any()]
            assert len(holders) == 1 and not (old & ~holders[0]).any()
            if cid in after["ids"]:
                kept = after["masks"][list(after["ids"]).index(cid)]
                assert not (old & ~kept).any(), "an id moved to another cluster"
    # it ends with one cluster covering the whole grown region
    grown = np.any([lv["masks"].any(0) for lv in levels], axis=0)
    assert len(levels[-1]["masks"]) == 1
    np.testing.assert_array_equal(levels[-1]["masks"][0], grown)
    return grown


def test_acd_hierarchy_nests_scores_and_ends_in_one_cluster():
    model = _net(width=16)
    image = _images(1, seed=3)[0]
    levels = acd_hierarchy(model, image, max_steps=3)
    grown = _check_hierarchy(model, image, levels, tile=4, per_step=4)
    # 4 seeds + 3 growth steps of 4 tiles = 16 tiles of 4×4 pixels
    assert grown.sum() == 16 * 16
    assert [lv["masks"].any(0).sum() // 16 for lv in levels[:4]] == [4, 8, 12, 16]
    # after the growth levels, one merge per level
    sizes = [len(lv["masks"]) for lv in levels[3:]]
    assert sizes == list(range(sizes[0], 0, -1))


def test_acd_hierarchy_other_tiles_steps_and_image_forms():
    model = _net(width=16, seed=1)
    image = _images(1, seed=4)[0]
    coarse = acd_hierarchy(model, image, tile=8, per_step=2, max_steps=2)
    _check_hierarchy(model, image, coarse, tile=8, per_step=2)
    # no growth: the seeds, then merges down to one
    seeds_only = acd_hierarchy(model, image, max_steps=0)
    assert seeds_only[0]["masks"].any(0).sum() == 4 * 16
    assert len(seeds_only[-1]["masks"]) == 1
    # growing until every tile is taken ends with the whole image
    whole = acd_hierarchy(model, image, tile=16, per_step=1, max_steps=10)
    np.testing.assert_array_equal(whole[-1]["masks"][0], np.ones((32, 32), dtype=bool))
    # uint8 HWC and a leading batch axis give the same hierarchy as the float image
    u8 = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    from_u8 = acd_hierarchy(model, u8[None], max_steps=2)
    from_float = acd_hierarchy(
        model, torch.from_numpy(u8).permute(2, 0, 1).float() / 255, max_steps=2
    )
    assert len(from_u8) == len(from_float)
    for a, b in zip(from_u8, from_float, strict=True):
        np.testing.assert_array_equal(a["masks"], b["masks"])
        np.testing.assert_allclose(a["scores"], b["scores"], atol=1e-6)
    # an explicit target is scored instead of the prediction
    other = acd_hierarchy(model, image, max_steps=1, target=7)
    assert other[0]["target"] == 7


# ----------------------------------------------------------------------------- trained model


@pytest.fixture(scope="module")
def trained(real_data_root):
    from deepnnk.nets.data import load_cifar10
    from deepnnk.nets.loading import load_network

    model = load_network("paper", "regularised", 20, real_data_root)
    _, _, x_test, _ = load_cifar10(real_data_root, verify=False)
    return model, x_test[:64]


@pytest.mark.data
def test_invariant_on_the_authors_trained_model(trained):
    model, images = trained
    assert isinstance(model, PaperCNN) and not model.training
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    logits = _logits(model, x)
    masks = _masks(len(images))
    rel, irrel = contextual_decomposition(model, images, masks)
    assert np.abs(rel + irrel - logits).max() <= TOL
    # the edge masks on a net with dead units: an empty region still scores exactly 0
    rel0, irrel0 = contextual_decomposition(model, images, np.zeros((32, 32)))
    assert np.all(rel0 == 0)
    np.testing.assert_allclose(irrel0, logits, atol=TOL)
    rel1, irrel1 = contextual_decomposition(model, images, np.ones((32, 32)))
    np.testing.assert_allclose(rel1 + irrel1, logits, atol=TOL)
    rel1b, irrel1b = contextual_decomposition(_without_biases(model), images, np.ones((32, 32)))
    assert np.all(irrel1b == 0)  # all of irrel1 is bias-driven


@pytest.mark.data
def test_acd_on_the_authors_trained_model(trained):
    model, images = trained
    image = torch.from_numpy(images[0]).permute(2, 0, 1).float() / 255
    levels = acd_hierarchy(model, images[0])
    _check_hierarchy(model, image, levels, tile=4, per_step=4)
    assert levels[-1]["masks"][0].sum() == 32 * 16  # 4 seeds + 7 steps of 4 tiles: half
