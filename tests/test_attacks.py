"""FGSM and PGD: strength, the ε-ball and [0, 1] box, determinism, and leaving the model alone."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch import nn

from deepnnk.nets.attacks import attack_dataset, fgsm, pgd
from deepnnk.nets.models import PaperCNN

K, SIDE = 4, 8  # classes, image side of the synthetic problem
EPS_GRID = (0.005, 0.01, 0.02, 0.04, 0.08)


def _synthetic(n: int, templates: torch.Tensor, gen: torch.Generator):
    """Noisy copies of one fixed random template per class, in [0, 1]; separable by a CNN."""
    y = torch.randint(0, K, (n,), generator=gen)
    noise = 0.15 * torch.randn(n, 3, SIDE, SIDE, generator=gen)
    return (0.4 + 0.2 * templates[y] + noise).clamp(0, 1), y


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine, OpenMP's spinning threads make these
    tiny convolutions 10-50x slower whenever another process holds a core."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _adam(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps=40, lr=1e-2) -> None:
    """Full-batch Adam by hand: torch.optim's first use in a process imports dynamo (~3 s)."""
    params = list(model.parameters())
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    for t in range(1, steps + 1):
        grads = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), params)
        with torch.no_grad():
            for p, g, m_, v_ in zip(params, grads, m, v, strict=True):
                m_.lerp_(g, 0.1)
                v_.lerp_(g * g, 0.001)
                p -= lr * (m_ / (1 - 0.9**t)) / ((v_ / (1 - 0.999**t)).sqrt() + 1e-8)


@pytest.fixture(scope="module")
def problem():
    """A small conv net (with dropout) trained ~1 s to ~100% on a synthetic 4-class problem."""
    gen = torch.Generator().manual_seed(0)
    templates = torch.rand(K, 3, SIDE, SIDE, generator=gen)
    x_train, y_train = _synthetic(384, templates, gen)
    x_test, y_test = _synthetic(256, templates, gen)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Flatten(),
            nn.Linear(3 * SIDE * SIDE, 64),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Linear(64, 64),
            nn.ReLU(),
            nn.Linear(64, K),
        )
        _adam(model, x_train, y_train)
    model.eval()
    for p in model.parameters():
        p.grad = None
    return model, x_test, y_test


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


@pytest.fixture(scope="module")
def accuracies(problem):
    """Clean accuracy and accuracy under FGSM and PGD (10 steps, seeded) on each ε of the grid."""
    model, x, y = problem
    fg = [_accuracy(model, fgsm(model, x, y, eps), y) for eps in EPS_GRID]
    pg = [_accuracy(model, pgd(model, x, y, eps, generator=1), y) for eps in EPS_GRID]
    return _accuracy(model, x, y), fg, pg


def test_accuracy_falls_as_eps_grows(accuracies):
    clean, fg, pg = accuracies
    assert clean >= 0.95
    for accs in (fg, pg):
        assert all(b <= a for a, b in zip([clean, *accs], accs, strict=False)), accs
        assert accs[-1] <= 0.1, accs  # ε = 0.08 breaks nearly everything
        assert accs[1] >= 0.5, accs  # while ε = 0.01 leaves most points alone


def test_pgd_at_least_as_strong_as_fgsm(accuracies):
    _, fg, pg = accuracies
    assert all(p <= f for f, p in zip(fg, pg, strict=True)), (fg, pg)
    assert sum(pg) < sum(fg), "PGD should beat FGSM somewhere on this nonlinear model"


@pytest.mark.parametrize("eps", [0.01, 0.3, 1.0])
def test_stays_in_the_ball_and_the_box(problem, eps):
    model, x, y = problem
    x = x.clone()
    x[:, 0] = 0.0  # pixels on the box's faces, where clipping matters
    x[:, 1, 0] = 1.0
    attacks = {
        "fgsm": fgsm(model, x, y, eps),
        "pgd": pgd(model, x, y, eps, steps=3, generator=0),
        "pgd big steps": pgd(model, x, y, eps, steps=3, step_size=5 * eps, generator=0),
        "pgd no start": pgd(model, x, y, eps, steps=2, random_start=False),
    }
    for name, x_adv in attacks.items():
        assert x_adv.shape == x.shape and x_adv.dtype == x.dtype, name
        assert float((x_adv - x).abs().max()) <= eps + 1e-6, name
        assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0, name
    # FGSM moves every pixel by exactly ε unless the box stops it (or the gradient is 0).
    step = (attacks["fgsm"] - x).abs()
    inside = ((x - eps) >= 0) & ((x + eps) <= 1)
    if inside.any():
        assert float((step[inside] - eps).abs().max()) <= 1e-6 or eps == 1.0


def test_eps_zero_returns_the_input(problem):
    model, x, y = problem
    x64 = x[:16].double()  # a dtype the model does not run in: must still come back bit-exact
    for x_in in (x, x64):
        assert torch.equal(fgsm(model, x_in, y[: len(x_in)], 0.0), x_in)
        assert torch.equal(pgd(model, x_in, y[: len(x_in)], 0, generator=0), x_in)
    images, preds = attack_dataset(model, x, y, "pgd", 0.0, show_progress=False)
    assert np.array_equal(images, x.numpy())
    assert np.array_equal(preds, model(x).argmax(1).numpy())


def test_deterministic_with_a_fixed_generator(problem):
    model, x, y = problem
    eps = 0.03
    a = pgd(model, x, y, eps, steps=3, generator=torch.Generator().manual_seed(7))
    b = pgd(model, x, y, eps, steps=3, generator=torch.Generator().manual_seed(7))
    c = pgd(model, x, y, eps, steps=3, generator=7)
    d = pgd(model, x, y, eps, steps=3, generator=8)
    assert torch.equal(a, b) and torch.equal(a, c)
    assert not torch.equal(a, d)  # the random start matters
    assert torch.equal(fgsm(model, x, y, eps), fgsm(model, x, y, eps))
    # attack_dataset draws the same random starts as pgd for the same seed and batch size
    images, _ = attack_dataset(model, x, y, "pgd", eps, steps=3, generator=7, show_progress=False)
    assert np.array_equal(images, a.numpy())


def test_leaves_grads_and_modes_alone(problem):
    model, x, y = problem
    params = list(model.parameters())
    before = [p.detach().clone() for p in params]
    params[0].grad = torch.full_like(params[0], 0.5)  # an existing grad must survive unchanged
    model.train()
    model[2].eval()  # mixed modes must come back as they were
    try:
        x_adv = pgd(model, x[:32], y[:32], 0.05, steps=2, generator=0)
        fgsm(model, x[:32], y[:32], 0.05)
        attack_dataset(model, x[:32], y[:32], "fgsm", 0.05, show_progress=False)
        modes = [m.training for m in model.modules()]
        assert modes == [True, True, True, False, True, True, True, True], modes
        assert torch.equal(params[0].grad, torch.full_like(params[0], 0.5))
        assert all(p.grad is None for p in params[1:])
        assert all(torch.equal(p, q) for p, q in zip(params, before, strict=True))
        # dropout was off during the attack: the same call in eval mode gives the same result
        model.eval()
        assert torch.equal(pgd(model, x[:32], y[:32], 0.05, steps=2, generator=0), x_adv)
    finally:
        model.eval()
        params[0].grad = None


def test_works_under_no_grad_and_inference_mode(problem):
    model, x, y = problem
    expected = fgsm(model, x[:8], y[:8], 0.05)
    with torch.no_grad():
        assert torch.equal(fgsm(model, x[:8], y[:8], 0.05), expected)
    with torch.inference_mode():
        x_inf, y_inf = x[:8].clone(), y[:8].clone()
        assert torch.equal(fgsm(model, x_inf, y_inf, 0.05), expected)


def test_attack_dataset_uint8_hwc_matches_float_nchw():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = PaperCNN(width=4).eval()
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (10, 32, 32, 3), dtype=torch.uint8, generator=gen).numpy()
    labels = np.arange(10) % 10
    as_float = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    for method, kwargs in (("fgsm", {}), ("pgd", {"steps": 2, "generator": 3})):
        kwargs.update(batch_size=4, show_progress=False)
        a = attack_dataset(model, images, labels, method, 4 / 255, **kwargs)
        b = attack_dataset(model, as_float, labels, method, 4 / 255, **kwargs)
        assert a.images.dtype == np.float32 and a.images.shape == (10, 3, 32, 32)
        assert a.predictions.dtype == np.int64 and a.predictions.shape == (10,)
        assert np.array_equal(a.images, b.images) and np.array_equal(a.predictions, b.predictions)
        with torch.no_grad():
            again = model(torch.from_numpy(a.images)).argmax(1).numpy()
        assert np.array_equal(a.predictions, again)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"x": torch.rand(2, 3, SIDE)}, r"4-D \[N, C, H, W\]"),
        ({"x": torch.rand(2, 3, SIDE, SIDE) * 255}, r"\[0, 1\].*divide by 255"),
        ({"x": torch.full((2, 3, SIDE, SIDE), -0.1)}, r"must lie in \[0, 1\]"),
        ({"x": torch.full((2, 3, SIDE, SIDE), float("nan"))}, "NaN"),
        ({"x": torch.zeros(2, 3, SIDE, SIDE, dtype=torch.uint8)}, "floating point"),
        ({"x": torch.rand(0, 3, SIDE, SIDE), "y": torch.zeros(0, dtype=torch.long)}, "empty"),
        ({"y": torch.zeros(3, dtype=torch.long)}, "2 images but 3 labels"),
        ({"y": torch.zeros(2)}, "integers"),
        ({"y": torch.tensor([0, -1])}, ">= 0"),
        ({"y": torch.tensor([0, K])}, rf"0\.\.{K - 1}"),
        ({"eps": -0.1}, ">= 0"),
        ({"eps": float("nan")}, "finite"),
        ({"eps": 8}, "8/255"),
        ({"eps": True}, "real number"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_rejects_bad_inputs(problem, kwargs, match):
    model = problem[0]
    args = {"x": torch.rand(2, 3, SIDE, SIDE), "y": torch.zeros(2, dtype=torch.long), "eps": 0.1}
    args.update(kwargs)
    x, y, eps = args.pop("x"), args.pop("y"), args.pop("eps")
    for attack in (fgsm, pgd):
        with pytest.raises(ValueError, match=match):
            attack(model, x, y, eps, **args)
    if x.ndim == 4 and x.is_floating_point():  # attack_dataset also takes uint8 HWC images
        with pytest.raises(ValueError, match=match):
            attack_dataset(model, x.numpy(), y, "fgsm", eps, show_progress=False, **args)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"step_size": 0.0}, "step_size"),
        ({"generator": "seed"}, "generator"),
    ],
)
def test_pgd_rejects_bad_options(problem, kwargs, match):
    model, x, y = problem
    with pytest.raises(ValueError, match=match):
        pgd(model, x[:2], y[:2], 0.1, **kwargs)


def test_attack_dataset_rejects_bad_options(problem):
    model, x, y = problem
    with pytest.raises(ValueError, match="method must be one of"):
        attack_dataset(model, x, y, "PGD", 0.1)
    with pytest.raises(ValueError, match="only apply to method='pgd'"):
        attack_dataset(model, x, y, "fgsm", 0.1, steps=5)
    with pytest.raises(ValueError, match="uint8 \\[N, H, W, C\\]"):
        attack_dataset(model, x.numpy().astype(np.int32), y, "fgsm", 0.1)


# --------------------------------------------------------------------------- real data

N_REAL = 200
REAL_EPS = (1, 2, 4, 8)  # on 0..255 pixels


@pytest.mark.data
@pytest.mark.slow
def test_paper_model_pgd_beats_fgsm_on_cifar10(real_data_root):
    from deepnnk.nets.data import load_cifar10
    from deepnnk.nets.paper import load_paper_model

    _, _, x_test, y_test = load_cifar10(real_data_root)
    images, labels = x_test[:N_REAL], y_test[:N_REAL]
    model = load_paper_model(real_data_root, "regularised", 20)
    start = time.perf_counter()
    clean = attack_dataset(model, images, labels, "fgsm", 0.0, show_progress=False)
    results = {"clean": float((clean.predictions == labels).mean())}
    for e in REAL_EPS:
        f = attack_dataset(model, images, labels, "fgsm", e / 255, show_progress=False)
        p = attack_dataset(
            model, images, labels, "pgd", e / 255, steps=10, generator=0, show_progress=False
        )
        results[f"fgsm {e}"] = float((f.predictions == labels).mean())
        results[f"pgd {e}"] = float((p.predictions == labels).mean())
    elapsed = time.perf_counter() - start
    print(f"regularised epoch 20, first {N_REAL} test images, {elapsed:.1f} s: {results}")
    for e in REAL_EPS:
        assert results[f"fgsm {e}"] >= results[f"pgd {e}"], results
    assert results["pgd 8"] < 0.10, results
    assert results["clean"] > 0.6, results
