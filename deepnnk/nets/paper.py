"""The paper authors' own trained CNNs, loaded from their TensorFlow checkpoints.

The authors (STAC-USC/DeepNNK_polytope_interpolation, folder ``logs/``, MIT licence) saved
a checkpoint after each of 20 epochs for three models. Place their three
``conv2d_models_cifar10_*`` folders under ``<data root>/deepnnk-paper-checkpoints/``; the data
root is the ``root`` argument, else ``$DEEPNNK_DATA``, else ``./data``.

>>> model = load_paper_model(model="regularised", epoch=20)  # doctest: +SKIP
"""

from __future__ import annotations

import operator
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deepnnk.nets.checkpoints import CheckpointError, CheckpointNotFoundError, canonical_model
from deepnnk.nets.data import ENV_VAR, data_root
from deepnnk.nets.models import PaperCNN
from deepnnk.nets.tf_bundle import list_tensors, read_bundle

CHECKPOINT_DIR = "deepnnk-paper-checkpoints"
EPOCHS = range(1, 21)
STEPS_PER_EPOCH = 1000


@dataclass(frozen=True)
class PaperModel:
    """One of the paper's three models: its checkpoint folder, width C and regularisation."""

    name: str
    folder: str
    width: int
    regularized: bool


PAPER_MODELS: dict[str, PaperModel] = {
    m.name: m
    for m in (
        PaperModel(
            "underparameterised", "conv2d_models_cifar10_layer_size_16_regularized_True", 16, True
        ),
        PaperModel("regularised", "conv2d_models_cifar10_layer_size_32_regularized_True", 32, True),
        PaperModel("overfit", "conv2d_models_cifar10_layer_size_32_regularized_False", 32, False),
    )
}

# The authors' logged epoch-20 accuracies, in percent, on the 50k train and 10k test images.
PAPER_ACCURACY: dict[str, dict[str, float]] = {
    "underparameterised": {"train": 71.38, "test": 69.84},
    "regularised": {"train": 79.20, "test": 76.02},
    "overfit": {"train": 85.17, "test": 72.25},
}

_SOURCE = (
    "The bundles are the logs/ folder of github.com/STAC-USC/DeepNNK_polytope_interpolation "
    "(MIT licence): place its conv2d_models_cifar10_* folders under "
    f"<{ENV_VAR}>/{CHECKPOINT_DIR}/ and point ${ENV_VAR} (or root=) at that data root."
)


def paper_model(model: str) -> PaperModel:
    """The :class:`PaperModel` called ``model`` (British or American spelling)."""
    return PAPER_MODELS[canonical_model(model)]


def checkpoint_step(epoch: int) -> int:
    """The training step saved after ``epoch`` (1..20): 1000·(epoch − 1)."""
    if isinstance(epoch, bool):
        raise ValueError(f"epoch must be an int in 1..20, got {epoch!r}")
    try:
        epoch = operator.index(epoch)
    except TypeError:
        raise ValueError(f"epoch must be an int in 1..20, got {epoch!r}") from None
    if epoch not in EPOCHS:
        raise ValueError(
            f"epoch must lie in 1..20 (the authors saved one checkpoint per epoch), got {epoch}"
        )
    return STEPS_PER_EPOCH * (epoch - 1)


def checkpoint_prefix(
    root: str | os.PathLike | None = None, model: str = "regularised", epoch: int = 20
) -> Path:
    """``<root>/deepnnk-paper-checkpoints/<folder>/model.ckpt-STEP``, without checking it exists."""
    spec = paper_model(model)
    step = checkpoint_step(epoch)
    return data_root(root) / CHECKPOINT_DIR / spec.folder / f"model.ckpt-{step}"


def _require_bundle(prefix: Path) -> None:
    index = Path(f"{prefix}.index")
    if index.is_file():
        return
    folder = prefix.parent.resolve()
    if folder.is_dir():
        where = f"the folder exists but {index.resolve()} is missing"
    else:
        where = f"the folder {folder} does not exist"
    raise CheckpointNotFoundError(f"No paper checkpoint at {prefix}: {where}. {_SOURCE}")


def weight_names() -> list[str]:
    """The bundle names of the 14 network weights (Adam slots and beta powers excluded).

    The convs are scoped under ``network/``; the final layer's ``W_fc1``/``b_fc1`` are not.
    """
    convs = [f"network/{kind}_conv{i}" for i in range(6) for kind in ("W", "b")]
    return [*convs, "W_fc1", "b_fc1"]


def _expected_shapes(width: int) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for i in range(6):
        shapes[f"network/W_conv{i}"] = (3, 3, 3 if i == 0 else width, width)
        shapes[f"network/b_conv{i}"] = (width,)
    shapes["W_fc1"] = (16 * width, 10)
    shapes["b_fc1"] = (10,)
    return shapes


def state_dict_from_bundle(prefix: str | os.PathLike, width: int) -> dict[str, torch.Tensor]:
    """A :class:`PaperCNN` (width ``width``) state dict from the authors' bundle at ``prefix``.

    Conv kernels go from TF's ``[3, 3, in, out]`` to ``[out, in, 3, 3]`` (both frameworks
    cross-correlate, so no flip); ``W_fc1`` ``[16·C, 10]`` is transposed to ``[10, 16·C]``,
    whose input order is already NHWC as in ``PaperCNN.features``.
    """
    listing = list_tensors(prefix)
    expected = _expected_shapes(width)
    missing = [n for n in expected if n not in listing]
    if missing:
        raise CheckpointError(
            f"{prefix} is not one of the paper's CNN checkpoints: it lacks {', '.join(missing)}."
        )
    found = {n: tuple(listing[n][1]) for n in expected}
    if found != expected:
        w0 = found["network/W_conv0"]
        if len(w0) == 4 and w0[3] != width:
            raise ValueError(
                f"checkpoint {prefix} has width {w0[3]} but model width {width}; load it with "
                f"width={w0[3]} (or pick the matching paper model)."
            )
        wrong = {n: s for n, s in found.items() if s != expected[n]}
        raise ValueError(f"checkpoint {prefix} has shapes {wrong}, not those of width {width}.")
    arrays = read_bundle(prefix, list(expected))
    state = {}
    for i in range(6):
        kernel = arrays[f"network/W_conv{i}"].transpose(3, 2, 0, 1)
        state[f"convs.{i}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel))
        state[f"convs.{i}.bias"] = torch.from_numpy(arrays[f"network/b_conv{i}"])
    state["fc.weight"] = torch.from_numpy(np.ascontiguousarray(arrays["W_fc1"].T))
    state["fc.bias"] = torch.from_numpy(arrays["b_fc1"])
    return state


def load_paper_model(
    root: str | os.PathLike | None = None, model: str = "regularised", epoch: int = 20
) -> PaperCNN:
    """The authors' ``model`` after ``epoch`` (1..20) as a :class:`PaperCNN` in eval mode.

    Feed it RGB pixels/255, NCHW (``deepnnk.nets.data.to_tensor``), with no mean subtraction.
    """
    spec = paper_model(model)
    prefix = checkpoint_prefix(root, spec.name, epoch)
    _require_bundle(prefix)
    net = PaperCNN(width=spec.width, regularized=spec.regularized)
    net.load_state_dict(state_dict_from_bundle(prefix, spec.width))
    return net.eval()
