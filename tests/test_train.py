"""deepnnk.nets.train: the recipe, per-epoch atomic checkpoints, bit-identical resume, input
checks."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from deepnnk.nets import train as tr
from deepnnk.nets.models import PaperCNN, count_parameters, resnet18
from deepnnk.nets.train import CheckpointError, checkpoint_path, list_checkpoints, load_checkpoint

WIDTH = 4


def toy_data(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [n, 32, 32, 3] noise with a bright class-specific stripe: easy to learn."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n).astype(np.int64)
    x = rng.integers(0, 100, (n, 32, 32, 3), dtype=np.uint8)
    for c in range(4):
        x[y == c, 8 * c : 8 * c + 8, :, c % 3] = 255
    return x, y


def model(regularized: bool = True, seed: int = 0) -> PaperCNN:
    torch.manual_seed(seed)
    return PaperCNN(WIDTH, regularized)


def run(net, x, y, folder, **kw):
    kw.setdefault("epochs", 2)
    return tr.train(net, x, y, checkpoint_dir=folder, progress=False, **kw)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_training_reduces_loss(tmp_path):
    x, y = toy_data()
    history = run(model(False), x, y, tmp_path, epochs=8, lr=5e-3)
    losses = [r["train_loss"] for r in history]
    assert losses[-1] < 0.6 * losses[0], losses
    assert all(r["seconds"] > 0 for r in history)


def test_checkpoint_after_every_epoch_with_history(tmp_path):
    x, y = toy_data()
    net = model()
    history = run(net, x, y, tmp_path, epochs=3, x_test=x[:50], y_test=y[:50], eval_train=True)
    assert sorted(os.listdir(tmp_path)) == ["epoch_01.pt", "epoch_02.pt", "epoch_03.pt"]
    assert list(list_checkpoints(tmp_path)) == [1, 2, 3]
    state = tr.read_checkpoint(checkpoint_path(tmp_path, 2))
    assert state["epoch"] == 2 and len(state["history"]) == 2
    assert state["config"]["width"] == WIDTH and state["config"]["seed"] == tr.SEED
    assert {"cpu"} <= set(state["rng_state"]) and state["optimizer_state"]["state"]
    for record in history:
        assert 0 <= record["test_accuracy"] <= 1 and 0 <= record["train_accuracy"] <= 1
        assert {"epoch", "train_loss", "seconds", "eval_seconds"} <= set(record)
    loaded = load_checkpoint(tmp_path / "epoch_03.pt")
    assert isinstance(loaded, PaperCNN) and not loaded.training
    assert same_weights(loaded, net)
    assert same_weights(load_checkpoint(tmp_path), net)  # a directory means its latest epoch
    assert not same_weights(load_checkpoint(tmp_path, 1), net)


def test_resume_after_interrupt_is_bit_identical(tmp_path):
    x, y = toy_data()
    reference = model(seed=1)
    ref_history = run(reference, x, y, tmp_path / "a", epochs=4)

    interrupted = model(seed=1)
    calls = 0

    def stop_mid_epoch_3(module, inputs):
        nonlocal calls
        calls += 1
        if calls == 2 * 4 + 2:  # 4 steps per epoch: the 2nd step of epoch 3
            raise KeyboardInterrupt

    interrupted.register_forward_pre_hook(stop_mid_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        run(interrupted, x, y, tmp_path / "b", epochs=4)
    assert list(list_checkpoints(tmp_path / "b")) == [1, 2]

    # A fresh process would build a new, differently initialised model: the checkpoint wins.
    resumed = model(seed=99)
    history = run(resumed, x, y, tmp_path / "b", epochs=4)
    assert same_weights(resumed, reference)
    assert [r["train_loss"] for r in history] == [r["train_loss"] for r in ref_history]
    final_a = tr.read_checkpoint(checkpoint_path(tmp_path / "a", 4))
    final_b = tr.read_checkpoint(checkpoint_path(tmp_path / "b", 4))
    for key, value in final_a["optimizer_state"]["state"][0].items():
        assert torch.equal(value, final_b["optimizer_state"]["state"][0][key])


def test_train_leaves_the_callers_global_rng_alone(tmp_path):
    x, y = toy_data()
    net = model()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    run(net, x, y, tmp_path, epochs=1)
    assert torch.equal(torch.rand(3), expected)


def test_already_trained_returns_without_training(tmp_path):
    x, y = toy_data()
    first = run(model(), x, y, tmp_path, epochs=2)
    net = model(seed=5)
    assert run(net, x, y, tmp_path, epochs=1) == first[:1]
    assert same_weights(net, load_checkpoint(tmp_path, 1))


def test_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    x, y = toy_data()
    run(model(), x, y, tmp_path, epochs=1)
    before = (tmp_path / "epoch_01.pt").read_bytes()
    real_save = torch.save

    def save_then_die(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("simulated: disk full")

    monkeypatch.setattr(torch, "save", save_then_die)
    with pytest.raises(OSError, match="disk full"):
        run(model(), x, y, tmp_path, epochs=2)
    monkeypatch.setattr(torch, "save", real_save)
    assert os.listdir(tmp_path) == ["epoch_01.pt"]  # no epoch_02, no temp file
    assert (tmp_path / "epoch_01.pt").read_bytes() == before
    assert tr.read_checkpoint(tmp_path / "epoch_01.pt")["epoch"] == 1
    assert len(run(model(), x, y, tmp_path, epochs=2)) == 2


def test_leftover_temp_file_is_ignored(tmp_path):
    x, y = toy_data()
    run(model(), x, y, tmp_path, epochs=1)
    (tmp_path / ".epoch_02.pt.abc123.tmp").write_bytes(b"killed -9 mid-write")
    assert [r["epoch"] for r in run(model(), x, y, tmp_path, epochs=2)] == [1, 2]


def test_corrupt_checkpoint_names_the_file_and_the_fix(tmp_path):
    x, y = toy_data()
    run(model(), x, y, tmp_path, epochs=2)
    bad = tmp_path / "epoch_02.pt"
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="epoch_02.pt") as err:
        run(model(), x, y, tmp_path, epochs=3)
    assert "delete it" in str(err.value)
    with pytest.raises(CheckpointError, match="epoch_02.pt"):
        load_checkpoint(bad)
    bad.unlink()
    assert [r["epoch"] for r in run(model(), x, y, tmp_path, epochs=3)] == [1, 2, 3]


def test_foreign_file_is_not_taken_for_a_checkpoint(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "epoch_01.pt")
    with pytest.raises(CheckpointError, match="not a deepnnk training checkpoint"):
        tr.read_checkpoint(tmp_path / "epoch_01.pt")


@pytest.mark.parametrize(
    "change, field",
    [
        ({"regularized": False}, "regularized"),
        ({"width": 2}, "width"),
        ({"seed": 1}, "seed"),
        ({"lr": 1e-2}, "lr"),
        ({"batch_size": 40}, "batch_size"),
        ({"data": True}, "training data"),
        ({"bias_init": "tensorflow"}, "bias_init"),
    ],
)
def test_checkpoint_of_another_config_is_refused(tmp_path, change, field):
    x, y = toy_data()
    run(model(), x, y, tmp_path, epochs=1)
    net = PaperCNN(
        change.get("width", WIDTH),
        change.get("regularized", True),
        bias_init=change.get("bias_init", "pytorch"),
    )
    kw = {k: v for k, v in change.items() if k in ("seed", "lr", "batch_size")}
    if "data" in change:
        x = x.copy()
        x[0, 0, 0, 0] ^= 1
    with pytest.raises(CheckpointError, match=field) as err:
        run(net, x, y, tmp_path, **kw)
    assert "epoch_01.pt" in str(err.value)
    assert list(list_checkpoints(tmp_path)) == [1]


@pytest.mark.parametrize("regularized", [False, True])
def test_flips_only_when_regularized(tmp_path, regularized):
    x, y = toy_data(100)
    x_float = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
    originals = {t.numpy().tobytes() for t in x_float}
    mirrored = {t.flip(2).numpy().tobytes() for t in x_float}
    seen = []
    net = model(regularized)
    net.register_forward_pre_hook(lambda m, inp: seen.extend(inp[0].detach().clone()))
    run(net, x, y, tmp_path, epochs=2)
    keys = [t.contiguous().numpy().tobytes() for t in seen]
    assert len(keys) == 200 and all(k in originals or k in mirrored for k in keys)
    n_flipped = sum(k in mirrored for k in keys)
    if regularized:
        assert 60 < n_flipped < 140
    else:
        assert n_flipped == 0


def test_epoch_plan_depends_on_seed_and_epoch_only():
    order, flips = tr.epoch_plan(tr.SEED, 3, 1000, flip=True)
    again, flips_again = tr.epoch_plan(tr.SEED, 3, 1000, flip=True)
    assert torch.equal(order, again) and torch.equal(flips, flips_again)
    assert sorted(order.tolist()) == list(range(1000))
    assert not torch.equal(order, tr.epoch_plan(tr.SEED, 4, 1000, flip=True)[0])
    assert not torch.equal(order, tr.epoch_plan(tr.SEED + 1, 3, 1000, flip=True)[0])
    assert tr.epoch_plan(tr.SEED, 3, 1000, flip=False)[1] is None


def test_float_nchw_input_trains_like_uint8(tmp_path):
    x, y = toy_data()
    a, b = model(seed=3), model(seed=3)
    run(a, x, y, tmp_path / "u8", epochs=1)
    x_float = torch.from_numpy(x).permute(0, 3, 1, 2).float().div(255).contiguous()
    run(b, x_float.numpy(), torch.from_numpy(y), tmp_path / "f32", epochs=1)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(pa, pb, msg=name)


def test_recipes_match_the_paper():
    assert count_parameters(tr.build_model("underparameterised")) == 14_618
    assert count_parameters(tr.build_model("regularised")) == 52_266
    overfit = tr.build_model("overfit")
    assert overfit.width == 32 and not overfit.regularized
    assert same_weights(tr.build_model("regularized"), tr.build_model("regularised"))
    with pytest.raises(ValueError, match="unknown model"):
        tr.recipe("huge")


def test_tensorflow_bias_init_draws_glorot_uniform_biases_and_keeps_the_weights():
    pt = tr.build_model("regularised", bias_init="pytorch")
    tf = tr.build_model("regularised")  # the paper's recipe: the authors' biases
    for (name, a), b in zip(pt.named_parameters(), tf.parameters(), strict=True):
        if name.endswith("weight"):
            assert torch.equal(a, b), name
            continue
        n = b.numel()
        tf_bound, pt_bound = (
            (3 / n) ** 0.5,
            1 / pt.state_dict()[name[:-4] + "weight"][0].numel() ** 0.5,
        )
        # U(±√(3/n)): inside the bound, and with n ≥ 10 draws it reaches well past PyTorch's.
        assert float(b.detach().abs().max()) <= tf_bound
        assert float(b.detach().abs().max()) > max(0.5 * tf_bound, pt_bound), name
        assert float(a.detach().abs().max()) <= pt_bound + 1e-7, name
    with pytest.raises(ValueError, match="bias_init must be one of"):
        PaperCNN(4, bias_init="keras")


def test_bias_init_is_recorded_and_old_checkpoints_read_as_pytorch(tmp_path):
    x, y = toy_data(50)
    run(PaperCNN(WIDTH, bias_init="tensorflow"), x, y, tmp_path / "tf", epochs=1)
    assert load_checkpoint(tmp_path / "tf").bias_init == "tensorflow"
    run(model(), x, y, tmp_path / "old", epochs=1)
    state = tr.read_checkpoint(checkpoint_path(tmp_path / "old", 1))
    del state["config"]["bias_init"]  # as written before the option existed
    torch.save(state, checkpoint_path(tmp_path / "old", 1))
    assert load_checkpoint(tmp_path / "old").bias_init == "pytorch"
    assert len(run(model(), x, y, tmp_path / "old", epochs=2)) == 2  # resumes


def test_build_model_leaves_the_global_rng_alone():
    torch.manual_seed(7)
    expected = torch.rand(2)
    torch.manual_seed(7)
    tr.build_model("overfit")
    assert torch.equal(torch.rand(2), expected)


@pytest.mark.parametrize(
    "images, labels, match",
    [
        (np.zeros((4, 3, 32, 32), np.uint8), np.zeros(4, np.int64), "uint8"),
        (np.zeros((4, 32, 32, 3), np.float32), np.zeros(4, np.int64), "float"),
        (np.zeros((4, 28, 28, 3), np.uint8), np.zeros(4, np.int64), r"\[4, 28, 28, 3\]"),
        (np.zeros((0, 32, 32, 3), np.uint8), np.zeros(0, np.int64), "empty"),
        (np.zeros((4, 32, 32, 3), np.uint8), np.zeros(3, np.int64), "one label per image"),
        (np.zeros((4, 32, 32, 3), np.uint8), np.array([0, 1, 2, 10]), "0..9"),
        (np.zeros((4, 32, 32, 3), np.uint8), np.array([0, -1, 2, 3]), "0..9"),
        (np.zeros((4, 32, 32, 3), np.uint8), np.zeros(4, np.float32), "integers"),
        (np.zeros((4, 32, 32, 3), np.uint8), np.zeros((4, 1), np.int64), "1-D"),
    ],
)
def test_bad_inputs_raise_value_error(tmp_path, images, labels, match):
    with pytest.raises(ValueError, match=match):
        run(model(), images, labels, tmp_path)
    assert not list(list_checkpoints(tmp_path))


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": -1.0}, "lr"),
        ({"seed": -3}, "seed"),
        ({"x_test": np.zeros((2, 32, 32, 3), np.uint8)}, "together"),
        ({"x_test": np.zeros((2, 32, 32, 3), np.uint8), "y_test": np.zeros(3, int)}, "y_test"),
    ],
)
def test_bad_settings_raise_value_error(tmp_path, kw, match):
    x, y = toy_data(20)
    with pytest.raises(ValueError, match=match):
        run(model(), x, y, tmp_path, **kw)


def test_a_non_module_is_rejected(tmp_path):
    x, y = toy_data(20)
    with pytest.raises(ValueError, match="nn.Module"):
        run(object(), x, y, tmp_path)


def test_another_model_must_say_whether_to_flip(tmp_path):
    x, y = toy_data(20)
    with pytest.raises(ValueError, match="flip=True"):
        run(resnet18(), x, y, tmp_path)
    with pytest.raises(ValueError, match="leave flip=None"):
        run(model(regularized=False), x, y, tmp_path, flip=True)


def test_a_resnet18_trains_resumes_and_loads(tmp_path):
    """Any CIFAR classifier goes through the same loop: torchvision's ResNet-18 (random
    weights), interrupted after epoch 1 and resumed, ends bit-identical to an uninterrupted
    run, and load_checkpoint restores it into a fresh instance."""
    x, y = toy_data(64)
    reference = resnet18(seed=3)
    run(reference, x, y, tmp_path / "a", epochs=2, flip=True)
    first = resnet18(seed=3)
    run(first, x, y, tmp_path / "b", epochs=1, flip=True)
    resumed = resnet18(seed=99)  # a fresh process: the checkpoint's weights win
    run(resumed, x, y, tmp_path / "b", epochs=2, flip=True)
    assert same_weights(resumed, reference)
    with pytest.raises(CheckpointError, match="flip"):
        run(resnet18(), x, y, tmp_path / "b", epochs=3, flip=False)
    loaded = load_checkpoint(tmp_path / "b", model=resnet18(seed=5))
    assert same_weights(loaded, reference) and not loaded.training
    with pytest.raises(CheckpointError, match="pass model="):
        load_checkpoint(tmp_path / "b")
    with pytest.raises(CheckpointError, match="not a PaperCNN"):
        load_checkpoint(tmp_path / "b", model=model())


def test_tune_allocator_is_harmless():
    assert isinstance(tr.tune_allocator(), bool)
    assert torch.ones(1000, 1000).sum().item() == 1e6


def test_checkpoint_format_tags_are_those_on_disk():
    """Files written by earlier versions carry these tags; renaming a module must not rename
    them, or every saved checkpoint becomes unreadable."""
    from deepnnk.nets.dcgan import GAN_FORMAT

    assert tr.CHECKPOINT_FORMAT == "deepnnk.train/1"
    assert GAN_FORMAT == "deepnnk.dcgan/1"


# --------------------------------------------------------------------------- penalties


def decoy_data(n: int = 64):
    """Decoy-CIFAR on the toy images: a class-coded grey corner patch, and its masks."""
    from deepnnk.nets.decoy import add_decoy

    x, y = toy_data(n)
    return (*add_decoy(x, y, mode="train", seed=0), y)


def test_cdep_run_trains_checkpoints_and_resumes_bit_identically(tmp_path):
    from deepnnk.nets.penalties import CDEPPenalty

    x, masks, y = decoy_data()
    reference = model(seed=1)  # regularised: dropout and flips, masks flipped with them
    ref_history = run(reference, x, y, tmp_path / "a", penalty=CDEPPenalty(10.0), masks=masks)
    assert all(r["penalty"] > 0 for r in ref_history)
    config = tr.read_checkpoint(checkpoint_path(tmp_path / "a", 2))["config"]
    assert config["penalty"] == "cdep(lam=10.0)" and len(config["penalty_masks"]) == 40

    interrupted = model(seed=1)
    calls = 0

    def stop_in_epoch_2(module, inputs):
        nonlocal calls
        calls += 1
        if calls == 2 + 2:  # 2 steps per epoch (64 images, batch 50): epoch 2's 2nd step
            raise KeyboardInterrupt

    hook = interrupted.register_forward_pre_hook(stop_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run(interrupted, x, y, tmp_path / "b", penalty=CDEPPenalty(10.0), masks=masks)
    hook.remove()
    assert list(list_checkpoints(tmp_path / "b")) == [1]
    resumed = model(seed=99)
    history = run(resumed, x, y, tmp_path / "b", penalty=CDEPPenalty(10.0), masks=masks)
    assert same_weights(resumed, reference)
    for key in ("train_loss", "penalty"):
        assert [r[key] for r in history] == [r[key] for r in ref_history]

    # another λ, another penalty, no penalty, other masks: each refused, naming the field
    for kw, match in [
        ({"penalty": CDEPPenalty(20.0), "masks": masks}, "penalty: checkpoint 'cdep"),
        ({"penalty": _rrr(10.0), "masks": masks}, "rrr"),
        ({}, "requested None"),
        ({"penalty": CDEPPenalty(10.0), "masks": np.roll(masks, 1, axis=0)}, "masks differ"),
    ]:
        with pytest.raises(CheckpointError, match=match):
            run(model(), x, y, tmp_path / "a", epochs=3, **kw)
    # and a checkpoint without a penalty is not resumed with one
    run(model(), x, y, tmp_path / "plain", epochs=1)
    with pytest.raises(CheckpointError, match="penalty"):
        run(model(), x, y, tmp_path / "plain", penalty=CDEPPenalty(10.0), masks=masks)


def _rrr(lam):
    from deepnnk.nets.penalties import GradientPenalty

    return GradientPenalty(lam)


@pytest.mark.parametrize("name", ["cdep", "rrr"])
def test_a_zero_lambda_penalty_trains_exactly_like_no_penalty(tmp_path, name):
    """The penalty replays the forward pass's random state in a forked RNG, so even with
    dropout the run's random stream is untouched, and λ = 0 adds exact zeros to the gradients."""
    from deepnnk.nets.penalties import CDEPPenalty, GradientPenalty

    penalty = {"cdep": CDEPPenalty, "rrr": GradientPenalty}[name](0.0)
    x, masks, y = decoy_data()
    plain, zero = model(seed=2), model(seed=2)
    plain_history = run(plain, x, y, tmp_path / "plain")
    zero_history = run(zero, x, y, tmp_path / "zero", penalty=penalty, masks=masks)
    assert same_weights(plain, zero)
    assert [r["train_loss"] for r in zero_history] == [r["train_loss"] for r in plain_history]
    assert all(r["penalty"] == 0.0 for r in zero_history)
    assert "penalty" not in plain_history[0]
    config = tr.read_checkpoint(checkpoint_path(tmp_path / "plain", 2))["config"]
    assert set(config) == {
        "model",
        "width",
        "regularized",
        "seed",
        "batch_size",
        "lr",
        "n_train",
        "data_digest",
        "bias_init",
        "flip",
    }  # unchanged without a penalty, so existing checkpoints still resume


def test_masks_are_mirrored_with_their_images(tmp_path):
    """Every batch's masks mark exactly the grey patch of the images the model sees, flipped
    ones included (about half of a regularised model's images are mirrored)."""
    from deepnnk.nets.decoy import CLASS_LEVELS

    x, masks, y = decoy_data()
    seen = []

    class Spy:
        tag = "spy"

        def __call__(self, net, xb, yb, masks_b):
            seen.append((xb.detach().clone(), yb.clone(), masks_b.clone()))
            return xb.sum() * 0

    run(model(), x, y, tmp_path, penalty=Spy(), masks=masks)
    assert len(seen) == 4 and sum(len(s[0]) for s in seen) == 128
    for xb, yb, mb in seen:
        assert mb.dtype == torch.bool and mb.shape == (len(xb), 32, 32)
        for image, label, mask in zip(xb, yb, mb, strict=True):
            patch = image[:, mask]
            assert patch.shape == (3, 16)
            assert torch.allclose(patch, torch.full_like(patch, CLASS_LEVELS[label] / 255.0))


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"masks": np.zeros((64, 32, 32), bool)}, "only with a penalty"),
        ({"penalty": "cdep"}, "callable"),
        ({"penalty": "cdep", "masks": np.zeros((64, 32, 32), bool)}, "callable"),
        ({"penalty": lambda *a: 0}, "callable"),
        ({"penalty": _rrr(1.0)}, "needs masks"),
        ({"penalty": _rrr(1.0), "masks": np.zeros((63, 32, 32), bool)}, r"bool \[N, 32, 32\]"),
        ({"penalty": _rrr(1.0), "masks": np.zeros((64, 32, 32), np.uint8)}, "bool"),
    ],
)
def test_bad_penalty_arguments_raise_value_error(tmp_path, kw, match):
    x, _, y = decoy_data()
    with pytest.raises(ValueError, match=match):
        run(model(), x, y, tmp_path, **kw)
    assert not list(list_checkpoints(tmp_path))
