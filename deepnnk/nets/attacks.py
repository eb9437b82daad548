"""Untargeted L∞ adversarial examples: FGSM and PGD, for any torch classifier on [0, 1] inputs.

``eps`` is in pixel units of [0, 1], so the usual "ε = 8" on 0..255 pixels is ``eps=8/255``.

>>> x_adv = pgd(model, x, y, 8 / 255, steps=10, generator=0)  # doctest: +SKIP
>>> x_adv, pred = attack_dataset(model, x_test_uint8, y_test, "pgd", 8 / 255)  # doctest: +SKIP

Both attacks maximise the cross-entropy of the true label (Goodfellow et al. 2015, FGSM;
Madry et al. 2018, PGD with a uniform random start in the ε-ball and the final iterate
returned). They run the model in eval mode (dropout off) and put every submodule back in the
mode it was in; gradients are taken with respect to the input only, so nothing accumulates in
the parameters' ``.grad``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from deepnnk._progress import progress
from deepnnk._validation import check_positive_int as _check_positive_int

METHODS = ("fgsm", "pgd")
DEFAULT_BATCH_SIZE = 256
DEFAULT_STEPS = 10
STEP_SIZE_FACTOR = 2.5  # Madry et al.: step = 2.5·ε/steps, so a path can cross the ball and back


class AttackResult(NamedTuple):
    """What :func:`attack_dataset` returns; unpacks as ``images, predictions``."""

    images: np.ndarray  # float32 [N, C, H, W] in [0, 1]
    predictions: np.ndarray  # int64 [N], the model's argmax on ``images``


# --------------------------------------------------------------------------- input checks


def _check_eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.integer, np.floating)):
        raise ValueError(f"eps must be a real number in [0, 1], got {eps!r}")
    eps = float(eps)
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps}")
    if eps > 1:
        raise ValueError(
            f"eps={eps:g} exceeds 1, the whole pixel range: eps is in units of [0, 1] pixels, "
            f"so pass e.g. 8/255 for 'ε = 8'."
        )
    return eps


def _check_step_size(step_size, eps: float, steps: int) -> float:
    if step_size is None:
        return STEP_SIZE_FACTOR * eps / steps
    if isinstance(step_size, bool) or not isinstance(
        step_size, (int, float, np.integer, np.floating)
    ):
        raise ValueError(f"step_size must be a positive number or None, got {step_size!r}")
    step_size = float(step_size)
    if not math.isfinite(step_size) or step_size <= 0:
        raise ValueError(f"step_size must be a finite number > 0 (or None), got {step_size}")
    return step_size


def _as_generator(generator) -> torch.Generator | None:
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        return torch.Generator().manual_seed(int(generator))
    raise ValueError(
        f"generator must be a torch.Generator, an int seed or None, got {type(generator).__name__}"
    )


def _check_images(x) -> torch.Tensor:
    """Float ``[N, C, H, W]`` in [0, 1] as a tensor (numpy and lists are converted)."""
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(
                f"x must be a float array [N, C, H, W], got {type(x).__name__}"
            ) from err
    if not torch.is_floating_point(x):
        raise ValueError(
            f"x must be floating point in [0, 1] (pixels/255), got dtype {x.dtype}; "
            "convert uint8 images with deepnnk.nets.data.to_tensor or use attack_dataset."
        )
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D [N, C, H, W] (NCHW), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"x is empty (shape {tuple(x.shape)}); pass at least one image.")
    _check_range(x, "x")
    return x


def _check_range(x: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf; images must be finite pixels in [0, 1].")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        hint = " (it looks like 0..255 pixels: divide by 255)" if hi > 1.5 else ""
        raise ValueError(f"{name} must lie in [0, 1], got values in [{lo:g}, {hi:g}]{hint}.")


def _check_labels(y, n: int) -> torch.Tensor:
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu()
    else:
        try:
            y = torch.as_tensor(np.asarray(y))
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(
                f"labels must be an integer array [N], got {type(y).__name__}"
            ) from err
    if y.dtype == torch.bool or torch.is_floating_point(y) or torch.is_complex(y):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D [N], got shape {tuple(y.shape)}")
    if len(y) != n:
        raise ValueError(f"{n} images but {len(y)} labels; they must match.")
    if len(y) and int(y.min()) < 0:
        raise ValueError(f"labels must be >= 0, got minimum {int(y.min())}")
    return y.to(torch.int64)


# --------------------------------------------------------------------------- model handling


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode, then restore each submodule's own mode (mixed modes too)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _model_device_dtype(model: nn.Module, x: torch.Tensor) -> tuple[torch.device, torch.dtype]:
    param = next(model.parameters(), None)
    if param is None:
        return x.device, x.dtype
    return param.device, param.dtype if torch.is_floating_point(param) else x.dtype


def _logits(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = model(x)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != len(x):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"model must return logits [batch, classes], got {shape}")
    if int(y.max()) >= logits.shape[1]:
        raise ValueError(
            f"labels must lie in 0..{logits.shape[1] - 1} for a model with {logits.shape[1]} "
            f"outputs, got {int(y.max())}"
        )
    return logits


def _input_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∇ₓ of the summed cross-entropy (per-example gradients, independent of the batch)."""
    x = x.detach().requires_grad_(True)
    logits = _logits(model, x, y)
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    loss = nn.functional.cross_entropy(logits, y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)  # w.r.t. x only: parameters' .grad stay untouched
    return grad


# --------------------------------------------------------------------------- attacks


def _fgsm_batch(model, x, y, eps) -> torch.Tensor:
    if eps == 0:
        return x.clone()
    return (x + eps * _input_grad(model, x, y).sign()).clamp_(0, 1)


def _pgd_batch(model, x, y, eps, steps, step_size, random_start, generator) -> torch.Tensor:
    if eps == 0:
        return x.clone()
    lower = (x - eps).clamp_(min=0)
    upper = (x + eps).clamp_(max=1)
    if random_start:
        # Drawn on the generator's device (CPU by default), so a seed gives the same start
        # whether the model runs on CPU or GPU.
        gen_device = generator.device if generator is not None else torch.device("cpu")
        noise = torch.rand(x.shape, generator=generator, device=gen_device, dtype=x.dtype)
        x_adv = x + (2 * noise.to(x.device) - 1) * eps
        x_adv = torch.minimum(torch.maximum(x_adv, lower), upper)
    else:
        x_adv = x.clone()
    for _ in range(steps):
        x_adv = x_adv + step_size * _input_grad(model, x_adv, y).sign()
        x_adv = torch.minimum(torch.maximum(x_adv, lower), upper)
    return x_adv


def _run(model, x, y, batch_size, attack) -> torch.Tensor:
    device, dtype = _model_device_dtype(model, x)
    # inference_mode(False)/enable_grad: the attack needs autograd even if the caller disabled it.
    with _eval_mode(model), torch.inference_mode(False), torch.enable_grad():
        out = torch.empty_like(x)
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size].to(device=device, dtype=dtype).clone()
            yb = y[start : start + batch_size].to(device).clone()  # no inference tensors
            out[start : start + len(xb)] = attack(xb, yb).detach().to(out.device, out.dtype)
    return out


def fgsm(
    model: nn.Module, x, y, eps: float, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> torch.Tensor:
    """Fast gradient sign method: ``clip(x + eps·sign(∇ₓ CE(model(x), y)), 0, 1)``.

    x: float ``[N, C, H, W]`` in [0, 1] (tensor or array), y: int labels ``[N]``, eps: L∞
    radius in [0, 1] pixel units. Returns a tensor shaped and typed like ``x``, on ``x``'s
    device; the model runs on its own device, ``batch_size`` images at a time. ``eps=0``
    returns a copy of ``x``.
    """
    x = _check_images(x)
    y = _check_labels(y, len(x))
    eps = _check_eps(eps)
    batch_size = _check_positive_int(batch_size, "batch_size")
    if eps == 0:
        return x.clone()
    return _run(model, x, y, batch_size, lambda xb, yb: _fgsm_batch(model, xb, yb, eps))


def pgd(
    model: nn.Module,
    x,
    y,
    eps: float,
    *,
    steps: int = DEFAULT_STEPS,
    step_size: float | None = None,
    random_start: bool = True,
    generator: torch.Generator | int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> torch.Tensor:
    """Projected gradient descent (ascent on the loss) in the L∞ ball of radius ``eps``.

    From ``x`` (plus uniform noise in [-eps, eps] when ``random_start``), ``steps`` times:
    ``x' ← Π(x' + step_size·sign(∇ CE))``, where Π clips to the ε-ball around ``x`` and to
    [0, 1]. ``step_size`` defaults to ``2.5·eps/steps``. The final iterate is returned, shaped
    and typed like ``x``, on ``x``'s device.

    generator: a ``torch.Generator`` (or an int seed) for the random start; ``None`` uses
    torch's global RNG. The same generator state, inputs and ``batch_size`` give the same result.
    ``eps=0`` returns a copy of ``x`` and draws nothing.
    """
    x = _check_images(x)
    y = _check_labels(y, len(x))
    eps = _check_eps(eps)
    steps = _check_positive_int(steps, "steps")
    step_size = _check_step_size(step_size, eps, steps)
    batch_size = _check_positive_int(batch_size, "batch_size")
    generator = _as_generator(generator)
    random_start = bool(random_start)
    if eps == 0:
        return x.clone()
    return _run(
        model,
        x,
        y,
        batch_size,
        lambda xb, yb: _pgd_batch(model, xb, yb, eps, steps, step_size, random_start, generator),
    )


# --------------------------------------------------------------------------- datasets


def _check_dataset_images(images) -> np.ndarray | torch.Tensor:
    """uint8 ``[N, H, W, C]`` (HWC, as ``load_cifar10``) or float ``[N, C, H, W]`` in [0, 1]."""
    if not isinstance(images, (np.ndarray, torch.Tensor)):
        try:
            images = np.asarray(images)
        except (TypeError, ValueError) as err:
            raise ValueError(f"images must be an array, got {type(images).__name__}") from err
    is_uint8 = images.dtype in (np.uint8, torch.uint8)
    is_float = (
        torch.is_floating_point(images)
        if isinstance(images, torch.Tensor)
        else np.issubdtype(images.dtype, np.floating)
    )
    if images.ndim != 4 or not (is_uint8 or is_float):
        raise ValueError(
            "images must be uint8 [N, H, W, C] (HWC, as load_cifar10 returns) or float "
            f"[N, C, H, W] (NCHW, pixels/255); got {images.dtype} {list(images.shape)}."
        )
    if images.shape[0] == 0:
        raise ValueError(f"images is empty (shape {list(images.shape)}); pass at least one image.")
    return images


def _batch_to_float(batch) -> torch.Tensor:
    """A batch of checked images → float32 ``[b, C, H, W]`` in [0, 1] on the CPU."""
    if batch.dtype in (np.uint8, torch.uint8):
        t = batch if isinstance(batch, torch.Tensor) else torch.from_numpy(np.asarray(batch))
        return t.cpu().permute(0, 3, 1, 2).float().div_(255.0)
    t = batch.detach().cpu() if isinstance(batch, torch.Tensor) else torch.from_numpy(batch)
    t = t.float()
    _check_range(t, "images")
    return t


def attack_dataset(
    model: nn.Module,
    images,
    labels,
    method: str,
    eps: float,
    *,
    steps: int | None = None,
    step_size: float | None = None,
    random_start: bool | None = None,
    generator: torch.Generator | int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    show_progress: bool = True,
) -> AttackResult:
    """Attack a whole data set in batches (with a tqdm progress bar); ``(images, predictions)``.

    images: uint8 ``[N, H, W, C]`` (as :func:`deepnnk.nets.data.load_cifar10` returns; converted to
    pixels/255 batch by batch) or float ``[N, C, H, W]`` in [0, 1]. labels: int ``[N]``.
    method: ``"fgsm"`` or ``"pgd"``; ``steps`` (default 10), ``step_size`` (default
    ``2.5·eps/steps``), ``random_start`` (default True) and ``generator`` apply to PGD only.

    Returns float32 adversarial images ``[N, C, H, W]`` and int64 predictions ``[N]`` (the
    model's argmax on them, in eval mode), both numpy. ``eps=0`` gives the clean images and the
    clean predictions.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    pgd_only = {"steps": steps, "step_size": step_size, "random_start": random_start}
    pgd_only["generator"] = generator
    if method == "fgsm":
        given = [name for name, value in pgd_only.items() if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} only apply to method='pgd', not 'fgsm'")
    images = _check_dataset_images(images)
    n = len(images)
    y = _check_labels(labels, n)
    eps = _check_eps(eps)
    batch_size = _check_positive_int(batch_size, "batch_size")
    if method == "pgd":
        steps = _check_positive_int(DEFAULT_STEPS if steps is None else steps, "steps")
        step_size = _check_step_size(step_size, eps, steps)
        random_start = True if random_start is None else bool(random_start)
        generator = _as_generator(generator)

    x_first = _batch_to_float(images[:1])
    out = np.empty((n, *x_first.shape[1:]), dtype=np.float32)
    preds = np.empty(n, dtype=np.int64)
    device, dtype = _model_device_dtype(model, x_first)
    starts = range(0, n, batch_size)
    with _eval_mode(model), torch.inference_mode(False), torch.enable_grad():
        for start in progress(starts, show_progress, desc=f"{method} eps={eps:.4g}"):
            xb = _batch_to_float(images[start : start + batch_size])
            xb = xb.to(device=device, dtype=dtype).clone()  # clone: no inference tensors
            yb = y[start : start + batch_size].to(device).clone()
            if method == "fgsm":
                x_adv = _fgsm_batch(model, xb, yb, eps)
            else:
                x_adv = _pgd_batch(model, xb, yb, eps, steps, step_size, random_start, generator)
            with torch.no_grad():
                pred = _logits(model, x_adv, yb).argmax(1)
            out[start : start + len(xb)] = x_adv.detach().float().cpu().numpy()
            preds[start : start + len(xb)] = pred.cpu().numpy()
    return AttackResult(out, preds)
