"""Train :class:`~deepnnk.nets.models.PaperCNN` with the paper's recipe, resumably (and any
other CIFAR-10 classifier with the same loop, e.g. :func:`~deepnnk.nets.models.resnet18`).

The recipe (Shekkizhar & Ortega 2020 and the authors' code): inputs are pixels/255; Adam with
lr 1e-3 and default betas/eps, no weight decay; batches of 50 reshuffled every epoch; 20
epochs (1,000 steps each on the 50k CIFAR-10 training images); seed 4629; random horizontal
flips only for regularised models (their dropout lives inside the model). :func:`build_model`
initialises as the authors did, Glorot-uniform weights *and* biases (``bias_init="tensorflow"``):
with PyTorch's smaller biases instead, the same recipe gives networks 1.6-2.3 points more
accurate than the authors' at epoch 20 (README, "Retraining").

A checkpoint ``epoch_XX.pt`` is written atomically after every epoch. Calling :func:`train`
again with the same ``checkpoint_dir`` continues after the last complete epoch, and the result
is bit-identical to an uninterrupted run: each epoch's shuffle and flips come from
``(seed, epoch)`` alone, and the global torch RNG that dropout draws from is saved in every
checkpoint and restored on resume.

>>> model = build_model("regularised")  # doctest: +SKIP
>>> history = train(model, x_train, y_train, checkpoint_dir="runs/regularised")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from deepnnk.nets.checkpoints import (
    CheckpointError,
    canonical_model,
    checkpoint_path,
    list_checkpoints,
    load_checkpoint_file,
)
from deepnnk.nets.features import (
    DEFAULT_BATCH_SIZE,
    array_digest,
    atomic_write,
    check_images,
    extract,
    images_to_float,
)
from deepnnk.nets.models import PaperCNN

SEED = 4629
EPOCHS = 20
BATCH_SIZE = 50
LR = 1e-3
# One thread measured fastest (or equal) on the shared 2-core machine: with two, libgomp's
# busy-waiting threads collapse to 3-5x slower whenever another process holds a core. See
# benchmarks/bench_train.py; two single-threaded trainings in parallel use both cores better.
DEFAULT_NUM_THREADS: int | None = 1
CHECKPOINT_FORMAT = "deepnnk.train/1"  # the tag inside saved files: unchanged by the move to nets/
# Independent random streams derived from the seed (see _stream_seed).
_STREAM_EPOCH_PLAN = 0
_STREAM_DROPOUT = 1
# The config fields a checkpoint must agree on before it may be resumed.
_CONFIG_FIELDS = (
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
    "penalty",
    "penalty_masks",
)
# Checkpoints written before bias_init existed used PyTorch's biases; "flip" is recorded only for
# models other than PaperCNN, whose flips follow from "regularized"; "penalty" (the penalty's tag)
# and "penalty_masks" (a digest of its masks) only for a run with an explanation penalty, so a
# run without one writes the config it always wrote.
_CONFIG_DEFAULTS = {"bias_init": "pytorch", "flip": None, "penalty": None, "penalty_masks": None}


@dataclass(frozen=True)
class Recipe:
    """A named model of the paper: width C and whether it is regularised (dropout + flips)."""

    name: str
    width: int
    regularized: bool


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("underparameterised", 16, True),
        Recipe("regularised", 32, True),
        Recipe("overfit", 32, False),
    )
}


def recipe(name: str) -> Recipe:
    """The :class:`Recipe` called ``name`` (British or American spelling)."""
    return RECIPES[canonical_model(name)]


def build_model(name: str | Recipe, seed: int = SEED, bias_init: str = "tensorflow") -> PaperCNN:
    """A freshly initialised PaperCNN for a recipe, seeded without touching the global RNG.

    bias_init: ``"tensorflow"`` (default, the authors' Glorot-uniform biases, which the paper's
    models were trained from) or ``"pytorch"``; see :class:`~deepnnk.nets.models.PaperCNN`.
    """
    spec = name if isinstance(name, Recipe) else recipe(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PaperCNN(width=spec.width, regularized=spec.regularized, bias_init=bias_init)


def tune_allocator(threshold: int = 1 << 30) -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the OS (process-wide).

    PyTorch frees and re-allocates every activation on every step. By default glibc gives
    large freed blocks back to the OS (munmap, heap trimming), so the next step page-faults
    them in again. Raising ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` to ``threshold`` bytes
    avoids that; measured here: ~13% faster training of the regularised C=32 model (9,400 → 80
    page faults per step) and ~1.8x faster feature extraction in batches of 1000. The price is
    that the process keeps its peak memory. The CLI and the benchmarks call this at start-up;
    :func:`train` does not, since it changes the whole process. Returns False (doing nothing)
    where glibc's ``mallopt`` is not available.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's <malloc.h>
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    value = min(int(threshold), 2**31 - 1)
    return bool(mallopt(m_trim_threshold, value)) and bool(mallopt(m_mmap_threshold, value))


# --------------------------------------------------------------------------- checkpoints


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The raw checkpoint dict (config, epoch, model/optimizer/RNG state, history).

    Raises :class:`CheckpointError` naming the file when it is missing, unreadable or not a
    deepnnk training checkpoint.
    """
    needed = {"format", "config", "epoch", "model_state", "optimizer_state", "rng_state", "history"}
    return load_checkpoint_file(
        path,
        kind="training checkpoint",
        format=CHECKPOINT_FORMAT,
        needed=needed,
        on_corrupt="train() will retrain that epoch from the checkpoint before it",
    )


def load_checkpoint(
    path: str | os.PathLike,
    epoch: int | None = None,
    *,
    device: str | torch.device = "cpu",
    model: nn.Module | None = None,
) -> nn.Module:
    """The trained model stored in a checkpoint, in eval mode.

    ``path`` is an ``epoch_XX.pt`` file, or a checkpoint directory together with ``epoch``
    (default: the latest epoch there). A PaperCNN is rebuilt from the checkpoint's config; any
    other model needs ``model``, a freshly built instance of the same architecture, whose
    weights are replaced.
    """
    path = Path(path)
    if path.is_dir():
        found = list_checkpoints(path)
        if epoch is None:
            if not found:
                raise CheckpointError(f"no epoch_XX.pt checkpoints in {path}.")
            epoch = max(found)
        path = checkpoint_path(path, epoch)
    elif epoch is not None:
        raise ValueError("pass epoch only together with a checkpoint directory, not a file.")
    state = read_checkpoint(path)
    config = state["config"]
    if model is not None:
        if type(model).__name__ != config["model"]:
            raise CheckpointError(
                f"checkpoint {path} holds a {config['model']}, not a {type(model).__name__}; "
                "pass a model of the architecture that was trained."
            )
        model.load_state_dict(state["model_state"])
        return model.to(device).eval()
    if config["model"] != "PaperCNN":
        raise CheckpointError(
            f"checkpoint {path} holds a {config['model']}; pass model=<a new instance of it> "
            "to load_checkpoint so its weights can be loaded."
        )
    model = PaperCNN(
        width=config["width"],
        regularized=config["regularized"],
        bias_init=config.get("bias_init", _CONFIG_DEFAULTS["bias_init"]),
    )
    model.load_state_dict(state["model_state"])
    return model.to(device).eval()


def _check_config(state: dict, wanted: dict, path: Path) -> None:
    saved = state["config"]
    diffs = [
        f"{key}: checkpoint {saved.get(key, _CONFIG_DEFAULTS.get(key))!r}, "
        f"requested {wanted.get(key, _CONFIG_DEFAULTS.get(key))!r}"
        for key in _CONFIG_FIELDS
        if saved.get(key, _CONFIG_DEFAULTS.get(key)) != wanted.get(key, _CONFIG_DEFAULTS.get(key))
    ]
    if diffs:
        readable = [
            "training data differ"
            if d.startswith("data_digest")
            else "penalty masks differ"
            if d.startswith("penalty_masks")
            else d
            for d in diffs
        ]
        raise CheckpointError(
            f"checkpoint {path} was written by a different training run, so it will not be "
            f"resumed ({'; '.join(readable)}). Use another checkpoint_dir, or delete "
            f"{path.parent} to start over."
        )


# --------------------------------------------------------------------------- one epoch


def _stream_seed(seed: int, *words: int) -> int:
    """A 63-bit seed for the random stream ``(seed, *words)``, independent across streams."""
    state = np.random.SeedSequence([seed, *words]).generate_state(1, np.uint64)[0]
    return int(state) >> 1


def epoch_plan(
    seed: int, epoch: int, n: int, flip: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The visiting order (int64 ``[n]``) and flip mask (bool ``[n]`` or None) of one epoch.

    Both depend on ``(seed, epoch)`` only, so a resumed run replays exactly the same epochs.
    ``mask[i]`` says whether the i-th visited image is mirrored left-right.
    """
    gen = torch.Generator().manual_seed(_stream_seed(seed, _STREAM_EPOCH_PLAN, epoch))
    order = torch.randperm(n, generator=gen)
    mask = torch.rand(n, generator=gen) < 0.5 if flip else None
    return order, mask


def run_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    order: torch.Tensor,
    flips: torch.Tensor | None,
    batch_size: int,
    *,
    bar=None,
    max_batches: int | None = None,
    penalty=None,
    masks: torch.Tensor | None = None,
    stats: dict | None = None,
) -> float:
    """One pass of Adam steps over ``x[order]`` in batches; returns the mean training loss.

    x: float ``[N, 3, 32, 32]`` on the model's device; y: int64 ``[N]``; flips: bool ``[N]``
    per visited position or None. ``max_batches`` stops early (for benchmarks).

    penalty: an explanation penalty (:mod:`deepnnk.nets.penalties`) added to each batch's
    cross-entropy, ``penalty(model, xb, y[idx], masks[idx])``, with ``masks`` bool
    ``[N, 32, 32]`` on x's device, mirrored with their images. The penalty runs with the random
    state the batch's forward pass started from (the same dropout draw) inside a forked RNG, so
    the run's random stream is the same with or without it. The returned loss stays the mean
    cross-entropy; the mean penalty goes into ``stats["penalty"]`` when ``stats`` is a dict.
    """
    if (penalty is None) != (masks is None):
        raise ValueError("pass penalty and masks together (or neither).")
    model.train()
    total = torch.zeros((), dtype=torch.float64)
    total_penalty = torch.zeros((), dtype=torch.float64)
    seen = 0
    for b, start in enumerate(range(0, len(order), batch_size)):
        if max_batches is not None and b >= max_batches:
            break
        idx = order[start : start + batch_size]
        xb = x[idx]
        if flips is not None:
            mirror = flips[start : start + batch_size].view(-1, 1, 1, 1)
            xb = torch.where(mirror, xb.flip(3), xb)
        if penalty is None:
            loss = F.cross_entropy(model(xb), y[idx])
            objective = loss
        else:
            rng_state = _get_rng_state(xb.device)
            loss = F.cross_entropy(model(xb), y[idx])
            mb = masks[idx]
            if flips is not None:
                mb = torch.where(mirror.view(-1, 1, 1), mb.flip(2), mb)
            with torch.random.fork_rng(devices=_rng_devices(xb.device)):
                _set_rng_state(rng_state, xb.device)
                extra = penalty(model, xb, y[idx], mb)
            objective = loss + extra
            total_penalty += extra.detach().double().cpu() * len(idx)
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        optimizer.step()
        total += loss.detach().double().cpu() * len(idx)
        seen += len(idx)
        if bar is not None:
            bar.update(1)
            if b % 50 == 0:
                bar.set_postfix(loss=f"{total.item() / seen:.4f}", refresh=False)
    if stats is not None and penalty is not None:
        stats["penalty"] = total_penalty.item() / max(seen, 1)
    return total.item() / max(seen, 1)


def accuracy(model: nn.Module, images, labels, batch_size: int = DEFAULT_BATCH_SIZE) -> float:
    """Fraction of ``images`` whose argmax logit is the label (eval mode, no cache)."""
    logits = extract(model, images, batch_size, layer="logits", cache_dir=False, progress_bar=False)
    return float(np.mean(logits.argmax(1) == _label_array(labels)))


# --------------------------------------------------------------------------- train


def check_labels(labels, n: int, name: str = "labels") -> np.ndarray:
    """Integer class labels ``[n]`` in 0..9, as int64 numpy; ``ValueError`` otherwise."""
    arr = _label_array(labels)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(
            f"{name} must be 1-D with one label per image ({n}), got shape {arr.shape}."
        )
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be integers 0..9, got dtype {arr.dtype}.")
    if arr.min() < 0 or arr.max() > 9:
        raise ValueError(
            f"{name} must lie in 0..9 (CIFAR-10 classes), got {arr.min()}..{arr.max()}."
        )
    return arr.astype(np.int64, copy=False)


def _label_array(labels) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        return labels.detach().cpu().numpy()
    return np.asarray(labels)


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block with torch using ``n`` threads (None: leave as is), then restore."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _rng_devices(device: torch.device) -> list:
    return [device] if device.type == "cuda" else []


def _get_rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def train(
    model: nn.Module,
    x_train,
    y_train,
    *,
    checkpoint_dir: str | os.PathLike,
    epochs: int = EPOCHS,
    batch_size: int = BATCH_SIZE,
    lr: float = LR,
    seed: int = SEED,
    x_test=None,
    y_test=None,
    eval_train: bool = False,
    num_threads: int | None = DEFAULT_NUM_THREADS,
    channels_last: bool = True,
    progress: bool = True,
    flip: bool | None = None,
    penalty=None,
    masks=None,
) -> list[dict]:
    """Train ``model`` in place for ``epochs`` epochs; returns the per-epoch history.

    x_train: uint8 ``[N, 32, 32, 3]`` or float ``[N, 3, 32, 32]`` pixels/255; y_train: ints
    0..9 ``[N]``. A PaperCNN is mirrored left-right at random exactly when
    ``model.regularized``; any other ``nn.Module`` mapping ``[B, 3, 32, 32]`` to 10 logits needs
    ``flip=True|False``. If ``checkpoint_dir``
    already holds checkpoints of the same configuration (width, regularisation, seed, batch
    size, lr and training data), training resumes after the latest one and ``model``'s weights
    are replaced by it; a different configuration raises :class:`CheckpointError`.

    History entries: ``epoch``, ``train_loss`` (mean cross-entropy over the epoch's batches, in
    train mode), ``seconds`` (training time of the epoch), and when requested
    ``test_accuracy`` (if x_test/y_test are given) and ``train_accuracy`` (``eval_train``; a
    full forward pass over the training set, about a third of an epoch's time), both fractions
    in eval mode, with ``eval_seconds``.

    num_threads: torch intra-op threads while training (None leaves the setting alone).
    channels_last: run convolutions in NHWC memory layout (faster on CPU here); the model is
    left in that layout. Bit-identical resumption assumes the same num_threads, channels_last,
    device and torch version as the interrupted run (they are recorded under ``"runtime"``).
    progress: a tqdm bar per epoch and a summary line per epoch (``TQDM_DISABLE=1`` hides bars).

    penalty: an explanation penalty added to the cross-entropy of every batch, e.g.
    :class:`~deepnnk.nets.penalties.CDEPPenalty` or
    :class:`~deepnnk.nets.penalties.GradientPenalty`; ``masks``, bool ``[N, 32, 32]`` (one per
    training image, True where the penalty applies, e.g. the patch of
    :func:`~deepnnk.nets.decoy.add_decoy`), is then required and is mirrored with its image.
    The config records ``penalty.tag`` and a digest of the masks (only when a penalty is given:
    a run without one writes the config it always did), so a checkpoint of another penalty,
    λ or masks is not resumed; history entries add ``penalty``, its mean over the epoch
    (``train_loss`` stays the mean cross-entropy).
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    if isinstance(model, PaperCNN):
        if flip is not None and flip != model.regularized:
            raise ValueError(
                "a PaperCNN is flipped exactly when it is regularised (the paper's recipe); "
                "leave flip=None."
            )
        flip, flip_record = bool(model.regularized), None
    elif flip is None:
        raise ValueError(
            f"say whether to mirror the training images of this {type(model).__name__} at random: "
            "train(..., flip=True) or flip=False (only a PaperCNN decides it from its recipe)."
        )
    else:
        flip = flip_record = bool(flip)
    epochs = _check_positive_int(epochs, "epochs")
    batch_size = _check_positive_int(batch_size, "batch_size")
    seed = int(seed) if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) else seed
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}.")
    if num_threads is not None:
        num_threads = _check_positive_int(num_threads, "num_threads")
    x_train = check_images(x_train, "x_train")
    y_np = check_labels(y_train, len(x_train), "y_train")
    if (x_test is None) != (y_test is None):
        raise ValueError("pass x_test and y_test together (or neither).")
    if x_test is not None:
        x_test = check_images(x_test, "x_test")
        check_labels(y_test, len(x_test), "y_test")
    masks_t = _check_penalty(penalty, masks, len(x_train))

    config = {
        "model": type(model).__name__,
        "width": getattr(model, "width", None),
        "regularized": bool(model.regularized) if isinstance(model, PaperCNN) else None,
        "seed": seed,
        "batch_size": batch_size,
        "lr": float(lr),
        "n_train": len(x_train),
        "data_digest": array_digest(y_np, array_digest(x_train)).hexdigest(),
        # How the model was initialised; train() cannot see it in the weights, so it trusts
        # the model's own record.
        "bias_init": getattr(model, "bias_init", "pytorch"),
        "flip": flip_record,
    }
    if penalty is not None:
        config["penalty"] = penalty.tag
        config["penalty_masks"] = array_digest(masks_t).hexdigest()
    checkpoint_dir = Path(checkpoint_dir)
    say = tqdm.write if progress else (lambda *_args, **_kw: None)
    device = next(model.parameters()).device
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    history: list[dict] = []
    start_epoch = 0
    rng_state = None
    existing = list_checkpoints(checkpoint_dir)
    if existing:
        last = max(existing)
        state = read_checkpoint(existing[last])
        _check_config(state, config, existing[last])
        if last >= epochs and epochs in existing:
            state = read_checkpoint(existing[epochs])
            _check_config(state, config, existing[epochs])
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        history = list(state["history"])[: state["epoch"]]
        start_epoch = state["epoch"]
        rng_state = state["rng_state"]
        if start_epoch >= epochs:
            say(
                f"{checkpoint_dir.name}: already trained for {start_epoch} epoch(s); nothing to do."
            )
            return history
        say(f"{checkpoint_dir.name}: resuming after epoch {start_epoch} of {epochs}.")

    x = images_to_float(x_train).to(device)
    x = x.contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format
    )
    y = torch.from_numpy(y_np).to(device)
    if masks_t is not None:
        masks_t = masks_t.to(device)
    steps = math.ceil(len(x) / batch_size)

    with torch_threads(num_threads), torch.random.fork_rng(devices=_rng_devices(device)):
        # Dropout draws from the global RNG; fork_rng keeps the caller's stream untouched.
        if rng_state is None:
            torch.manual_seed(_stream_seed(seed, _STREAM_DROPOUT))
        else:
            _set_rng_state(rng_state, device)
        for epoch in range(start_epoch + 1, epochs + 1):
            order, flips = epoch_plan(seed, epoch, len(x), flip=flip)
            order = order.to(device)
            flips = flips.to(device) if flips is not None else None
            # Passing disable=False explicitly would override the TQDM_DISABLE variable.
            bar_args = {} if progress else {"disable": True}
            with tqdm(
                total=steps, desc=f"epoch {epoch}/{epochs}", unit="step", leave=False, **bar_args
            ) as bar:
                started = time.perf_counter()
                stats: dict = {}
                loss = run_epoch(
                    model,
                    optimizer,
                    x,
                    y,
                    order,
                    flips,
                    batch_size,
                    bar=bar,
                    penalty=penalty,
                    masks=masks_t,
                    stats=stats,
                )
                seconds = time.perf_counter() - started
            record = {"epoch": epoch, "train_loss": loss, "seconds": seconds}
            if penalty is not None:
                record["penalty"] = stats["penalty"]
            if x_test is not None or eval_train:
                started = time.perf_counter()
                if eval_train:
                    record["train_accuracy"] = accuracy(model, x_train, y_np)
                if x_test is not None:
                    record["test_accuracy"] = accuracy(model, x_test, y_test)
                record["eval_seconds"] = time.perf_counter() - started
            history.append(record)
            _save_checkpoint(
                checkpoint_path(checkpoint_dir, epoch),
                {
                    "format": CHECKPOINT_FORMAT,
                    "config": config,
                    "epoch": epoch,
                    "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                    "optimizer_state": optimizer.state_dict(),
                    "rng_state": _get_rng_state(device),
                    "history": history,
                    "runtime": {
                        "torch": str(torch.__version__),
                        "num_threads": torch.get_num_threads(),
                        "channels_last": channels_last,
                        "device": str(device),
                    },
                },
            )
            say(_summary(record, epochs, steps))
    return history


def _check_penalty(penalty, masks, n: int) -> torch.Tensor | None:
    """Check a penalty and its masks; returns the masks as a CPU bool tensor (or None)."""
    if penalty is None:
        if masks is not None:
            raise ValueError("masks are used only with a penalty; pass penalty=... or no masks.")
        return None
    if not callable(penalty) or not isinstance(getattr(penalty, "tag", None), str):
        raise ValueError(
            "penalty must be a callable penalty(model, xb, yb, masks_b) with a str tag, e.g. "
            f"deepnnk.nets.penalties.CDEPPenalty(lam); got {type(penalty).__name__}."
        )
    if masks is None:
        raise ValueError(
            "a penalty needs masks: bool [N, 32, 32], one per training image (True where the "
            "penalty applies, e.g. the patch_mask of deepnnk.nets.decoy.add_decoy)."
        )
    m = (
        masks.detach().cpu()
        if isinstance(masks, torch.Tensor)
        else torch.from_numpy(np.ascontiguousarray(np.asarray(masks)))
    )
    if m.dtype != torch.bool or tuple(m.shape) != (n, 32, 32):
        raise ValueError(
            f"masks must be bool [N, 32, 32] with N = {n} (one per training image), "
            f"got {m.dtype} {list(m.shape)}."
        )
    return m.contiguous()


def _save_checkpoint(path: Path, state: dict) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


def _summary(record: dict, epochs: int, steps: int) -> str:
    parts = [
        f"epoch {record['epoch']}/{epochs}",
        f"loss {record['train_loss']:.4f}",
        *([f"penalty {record['penalty']:.4g}"] if "penalty" in record else []),
        f"{record['seconds']:.1f} s ({1000 * record['seconds'] / steps:.0f} ms/step)",
    ]
    if "train_accuracy" in record:
        parts.append(f"train acc {100 * record['train_accuracy']:.2f}%")
    if "test_accuracy" in record:
        parts.append(f"test acc {100 * record['test_accuracy']:.2f}%")
    if "eval_seconds" in record:
        parts.append(f"eval {record['eval_seconds']:.1f} s")
    return ", ".join(parts)
