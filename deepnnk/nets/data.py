"""CIFAR-10 on disk: the official binary layout or torchvision's python layout.

The data root comes from, in order: the ``root`` argument, the environment variable
``DEEPNNK_DATA``, then ``./data``. Below the root the loader looks for
``cifar-10-batches-bin/`` (the official binary release) or ``cifar-10-batches-py/``
(torchvision's download). Every file is checked against the official md5.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

ENV_VAR = "DEEPNNK_DATA"
CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

BIN_DIR = "cifar-10-batches-bin"
PY_DIR = "cifar-10-batches-py"
BIN_MD5 = {
    "data_batch_1.bin": "5dd7e06a14cb22eb9f671a540d1b7c25",
    "data_batch_2.bin": "5ea93a67294ea407fff1d09f752e9692",
    "data_batch_3.bin": "942cd6a4bcdd0dd3c604fbe906cb4421",
    "data_batch_4.bin": "ae636b3ba5c66a11e91e8cb52e771fcb",
    "data_batch_5.bin": "53f37980c15c3d472c316c40844f3f0d",
    "test_batch.bin": "803d5f7f4d78ea53de84dbe85f74fb6d",
}
# torchvision.datasets.CIFAR10.train_list / test_list
PY_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
_RECORD = 1 + 32 * 32 * 3
_HOW_TO_GET = (
    "Get CIFAR-10 either by calling load_cifar10(root, download=True) while online "
    "(torchvision downloads the python layout; pip install 'deepnnk[download]'), or by "
    "unpacking the official "
    "cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html into the root, "
    f"and point the root there with the argument or ${ENV_VAR}."
)


class DataError(FileNotFoundError):
    """A data file is missing or corrupt; the message says where we looked and what to do."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Resolve the data root: argument, then ``$DEEPNNK_DATA``, then ``./data``."""
    if root is None:
        root = os.environ.get(ENV_VAR) or "data"
    return Path(root).expanduser()


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_files(folder: Path, expected: dict[str, str], verify: bool) -> None:
    for name, md5 in expected.items():
        path = folder / name
        if not path.is_file():
            raise DataError(f"CIFAR-10 file {path} is missing. {_HOW_TO_GET}")
        if verify and (got := _md5(path)) != md5:
            raise DataError(
                f"CIFAR-10 file {path} is corrupt: its md5 is {got}, not the official {md5}. "
                f"Delete it and fetch it again. {_HOW_TO_GET}"
            )


def _find_layout(root: Path) -> tuple[str, Path] | None:
    for layout, sub in (("bin", BIN_DIR), ("py", PY_DIR)):
        for folder in (root / sub, root):
            if folder.name == sub and folder.is_dir():
                return layout, folder
    return None


def _read_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % _RECORD:
        raise DataError(
            f"CIFAR-10 file {path} is truncated or corrupt: its {raw.size} bytes are not a whole "
            f"number of {_RECORD}-byte records (1 label byte + 3072 pixel bytes). "
            f"Delete it and fetch it again. {_HOW_TO_GET}"
        )
    raw = raw.reshape(-1, _RECORD)
    labels = raw[:, 0].astype(np.int64)
    images = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _read_py(path: Path) -> tuple[np.ndarray, np.ndarray]:
    # The official files are Python 2 pickles: latin1 turns their str keys and bytes into str.
    bad = (
        f"CIFAR-10 file {path} is not a readable CIFAR-10 python batch (a pickled dict with "
        "'data' uint8 [n, 3072] and 'labels'); it is truncated, corrupt or another file. "
        f"Delete it and fetch it again. {_HOW_TO_GET}"
    )
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        data = np.asarray(entry["data"], dtype=np.uint8)
        labels = np.asarray(entry["labels"], dtype=np.int64)
    except Exception as err:  # unpickling a damaged or foreign file raises many types
        raise DataError(bad) from err
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (len(data),):
        raise DataError(bad)
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def load_cifar10(
    root: str | os.PathLike | None = None, *, download: bool = False, verify: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load CIFAR-10 in the official order.

    Returns ``(x_train, y_train, x_test, y_test)``: uint8 images ``[N, 32, 32, 3]`` (RGB, HWC)
    and int64 labels ``[N]``, with N = 50,000 and 10,000.

    ``download=True`` lets torchvision fetch the python layout into ``root`` when no layout is
    found there (needs internet and torchvision: ``pip install 'deepnnk[download]'``).
    ``verify`` checks every file's md5 (about 1 s).
    """
    root = data_root(root)
    found = _find_layout(root)
    if found is None and download:
        try:
            import torchvision
        except ImportError as err:
            raise ImportError(
                "load_cifar10(download=True) needs torchvision: pip install 'deepnnk[download]'. "
                "Or, without it, unpack the official cifar-10-binary.tar.gz from "
                f"https://www.cs.toronto.edu/~kriz/cifar.html into {root}."
            ) from err

        root.mkdir(parents=True, exist_ok=True)
        torchvision.datasets.CIFAR10(str(root), train=True, download=True)
        found = _find_layout(root)
    if found is None:
        raise DataError(
            f"No CIFAR-10 found under {root.resolve()}: looked for {root / BIN_DIR} and "
            f"{root / PY_DIR}. {_HOW_TO_GET}"
        )
    layout, folder = found
    expected, reader = (BIN_MD5, _read_bin) if layout == "bin" else (PY_MD5, _read_py)
    _check_files(folder, expected, verify)
    names = list(expected)
    parts = [reader(folder / n) for n in names[:5]]
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    x_test, y_test = reader(folder / names[5])
    if x_train.shape != (50000, 32, 32, 3) or x_test.shape != (10000, 32, 32, 3):
        raise DataError(
            f"CIFAR-10 under {folder} holds {len(x_train)} training and {len(x_test)} test "
            "images, not the official 50000 and 10000: some files are not the official ones. "
            f"Replace them with the official release. {_HOW_TO_GET}"
        )
    return x_train, y_train, x_test, y_test


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 ``[N, 32, 32, 3]`` → float32 ``[N, 3, 32, 32]`` in [0, 1] (pixels/255, paper)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise ValueError(
            f"images must be uint8 [N, 32, 32, 3] (HWC RGB), got {images.dtype} {images.shape}; "
            "pass the arrays returned by load_cifar10."
        )
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)


class CIFAR10Arrays(Dataset):
    """A torch Dataset over uint8 HWC arrays, yielding (float [3, 32, 32] in [0, 1], label)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, hflip: bool = False):
        labels = np.asarray(labels)
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels; they must match.")
        if labels.size and (labels.min() < 0 or labels.max() >= len(CLASSES)):
            raise ValueError(
                f"labels must lie in 0..{len(CLASSES) - 1}, got {labels.min()}..{labels.max()}."
            )
        self.x = to_tensor(images)
        self.y = torch.as_tensor(labels, dtype=torch.int64)
        self.hflip = hflip

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        x = self.x[i]
        if self.hflip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x, self.y[i]


def cifar10_datasets(root=None, *, download: bool = False, hflip: bool = False):
    """(train, test) :class:`CIFAR10Arrays`; ``hflip`` applies random flips to the train split."""
    x_train, y_train, x_test, y_test = load_cifar10(root, download=download)
    return CIFAR10Arrays(x_train, y_train, hflip=hflip), CIFAR10Arrays(x_test, y_test)
