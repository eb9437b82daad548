"""``deepnnk.nets.data`` on tiny synthetic CIFAR-10 files written to tmp_path (never the real data).

The loader checks every file against the official md5s and the splits against the official sizes
(50,000 / 10,000). Tiny files pass the md5 check only with the expected table patched to their own
md5s (``_official``), and reach the caller only with the readers padded to the official size
(``_pad_readers``); every other test sees the loader's real behaviour on the tiny files.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from deepnnk.nets import data
from deepnnk.nets.data import (
    BIN_DIR,
    BIN_MD5,
    ENV_VAR,
    PY_DIR,
    PY_MD5,
    CIFAR10Arrays,
    DataError,
    load_cifar10,
    to_tensor,
)

N = 3  # records per tiny file
PIXELS = 32 * 32 * 3


# ----------------------------------------------------------------------------- file writers


def _records(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels ``[n]`` and pixel rows ``[n, 3072]`` (1,024 red, 1,024 green, 1,024 blue bytes)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 10, n), rng.integers(0, 256, (n, PIXELS), dtype=np.uint8)


def _expected_hwc(rows: np.ndarray) -> np.ndarray:
    """The official row layout, decoded pixel by pixel: channel plane, then row-major 32×32."""
    out = np.empty((len(rows), 32, 32, 3), np.uint8)
    for i, row in enumerate(rows):
        for ch in range(3):
            for r in range(32):
                for c in range(32):
                    out[i, r, c, ch] = row[ch * 1024 + r * 32 + c]
    return out


def _write_bin(path: Path, labels: np.ndarray, rows: np.ndarray) -> None:
    """Records of 1 label byte + 3,072 pixel bytes, as in cifar-10-binary.tar.gz."""
    path.write_bytes(np.column_stack([labels.astype(np.uint8), rows]).tobytes())


class _Python2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle (protocol 2) wrote for cifar-10-python.tar.gz: bytes and
    str as Python 2 ``str`` (SHORT_BINSTRING / BINSTRING) and numpy under ``numpy.core``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str

    def save_global(self, obj, name=None):
        name = name or obj.__qualname__
        module = pickle.whichmodule(obj, name).replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
        self.memoize(obj)

    dispatch[type] = save_global
    dispatch[type(len)] = save_global


def _write_py(path: Path, labels: np.ndarray, rows: np.ndarray) -> None:
    """A batch of torchvision's layout: a Python 2 pickle of the official dict."""
    batch = {
        b"batch_label": b"training batch 1 of 5",
        b"labels": [int(v) for v in labels],
        b"data": rows,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
    }
    buf = io.BytesIO()
    _Python2Pickler(buf, protocol=2).dump(batch)
    path.write_bytes(buf.getvalue())


LAYOUTS = {
    "bin": (BIN_DIR, BIN_MD5, _write_bin, "BIN_MD5"),
    "py": (PY_DIR, PY_MD5, _write_py, "PY_MD5"),
}


def _write_layout(root: Path, layout: str, n: int = N) -> tuple[Path, dict]:
    """All six files of ``layout`` under ``root``; returns the folder and {name: (labels, rows)}."""
    sub, table, write, _ = LAYOUTS[layout]
    folder = root / sub
    folder.mkdir(parents=True)
    written = {}
    for seed, name in enumerate(table):
        labels, rows = _records(n, seed)
        write(folder / name, labels, rows)
        written[name] = (labels, rows)
    return folder, written


def _official(monkeypatch, layout: str, folder: Path) -> None:
    """Make the tiny files the 'official' ones: patch the md5 table to their md5s."""
    _, table, _, attr = LAYOUTS[layout]
    md5s = {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in table}
    monkeypatch.setattr(data, attr, md5s)


def _pad_readers(monkeypatch) -> None:
    """Readers that repeat a tiny file's records up to the official 10,000 per file."""
    for attr in ("_read_bin", "_read_py"):
        real = getattr(data, attr)

        def padded(path, real=real):
            images, labels = real(path)
            return np.resize(images, (10_000, *images.shape[1:])), np.resize(labels, 10_000)

        monkeypatch.setattr(data, attr, padded)


# ----------------------------------------------------------------------------- the two layouts


@pytest.mark.parametrize("layout", ["bin", "py"])
def test_reader_decodes_the_official_record_layout(tmp_path, layout):
    _, _, write, _ = LAYOUTS[layout]
    labels, rows = _records(N, seed=7)
    path = tmp_path / "batch"
    write(path, labels, rows)
    images, got_labels = (data._read_bin if layout == "bin" else data._read_py)(path)
    assert images.dtype == np.uint8 and images.shape == (N, 32, 32, 3)
    assert images.flags.c_contiguous
    np.testing.assert_array_equal(images, _expected_hwc(rows))
    assert got_labels.dtype == np.int64
    np.testing.assert_array_equal(got_labels, labels)


def test_python2_pickle_is_what_the_official_files_hold(tmp_path):
    """The writer above makes Python 2 pickles: keys come back as str only with latin1."""
    _write_py(tmp_path / "b", *_records(2, 0))
    raw = (tmp_path / "b").read_bytes()
    assert raw.startswith(b"\x80\x02}") and b"cnumpy.core.multiarray\n_reconstruct\n" in raw
    as_bytes = pickle.loads(raw, encoding="bytes")
    assert set(as_bytes) == {b"batch_label", b"labels", b"data", b"filenames"}
    as_latin1 = pickle.loads(raw, encoding="latin1")
    assert set(as_latin1) == {"batch_label", "labels", "data", "filenames"}


@pytest.mark.parametrize("layout", ["bin", "py"])
def test_load_cifar10_returns_the_official_order(tmp_path, monkeypatch, layout):
    folder, written = _write_layout(tmp_path, layout)
    _official(monkeypatch, layout, folder)
    _pad_readers(monkeypatch)
    x_train, y_train, x_test, y_test = load_cifar10(tmp_path)
    assert x_train.shape == (50_000, 32, 32, 3) and x_test.shape == (10_000, 32, 32, 3)
    assert x_train.dtype == x_test.dtype == np.uint8
    assert y_train.dtype == y_test.dtype == np.int64
    names = list(LAYOUTS[layout][1])
    for i, name in enumerate(names[:5]):  # data_batch_1 … 5, in that order
        labels, rows = written[name]
        np.testing.assert_array_equal(x_train[10_000 * i : 10_000 * i + N], _expected_hwc(rows))
        np.testing.assert_array_equal(y_train[10_000 * i : 10_000 * i + N], labels)
    labels, rows = written[names[5]]  # test_batch
    np.testing.assert_array_equal(x_test[:N], _expected_hwc(rows))
    np.testing.assert_array_equal(y_test[:N], labels)


@pytest.mark.parametrize("layout", ["bin", "py"])
def test_tiny_files_pass_the_md5_check_and_stop_at_the_official_size(tmp_path, monkeypatch, layout):
    folder, _ = _write_layout(tmp_path, layout)
    _official(monkeypatch, layout, folder)
    message = (
        f"CIFAR-10 under {re.escape(str(folder))} holds {5 * N} training and {N} test images, "
        "not the official 50000 and 10000.*Replace them with the official release"
    )
    with pytest.raises(DataError, match=message):
        load_cifar10(tmp_path)


def test_root_may_be_the_layout_folder_itself_or_come_from_the_environment(tmp_path, monkeypatch):
    folder, _ = _write_layout(tmp_path, "bin")
    _official(monkeypatch, "bin", folder)
    for root in (folder, None):
        monkeypatch.setenv(ENV_VAR, str(tmp_path))
        with pytest.raises(DataError, match=f"CIFAR-10 under {re.escape(str(folder))} holds"):
            load_cifar10(root)


def test_binary_layout_wins_when_both_are_present(tmp_path, monkeypatch):
    bin_folder, _ = _write_layout(tmp_path, "bin")
    _write_layout(tmp_path, "py")
    _official(monkeypatch, "bin", bin_folder)
    with pytest.raises(DataError, match=f"under {re.escape(str(bin_folder))} holds"):
        load_cifar10(tmp_path)


# ----------------------------------------------------------------------------- broken data


def test_md5_mismatch_names_the_file_and_the_fix(tmp_path):
    folder, _ = _write_layout(tmp_path, "bin")  # tiny files: not the official md5s
    path = folder / "data_batch_1.bin"
    got = hashlib.md5(path.read_bytes()).hexdigest()
    message = (
        f"CIFAR-10 file {re.escape(str(path))} is corrupt: its md5 is {got}, not the official "
        f"{BIN_MD5['data_batch_1.bin']}. Delete it and fetch it again. Get CIFAR-10 .*"
        r"cifar-10-binary\.tar\.gz"
    )
    with pytest.raises(DataError, match=message):
        load_cifar10(tmp_path)


def test_md5_mismatch_in_the_python_layout(tmp_path, monkeypatch):
    folder, _ = _write_layout(tmp_path, "py")
    _official(monkeypatch, "py", folder)
    path = folder / "test_batch"
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(DataError, match=f"{re.escape(str(path))} is corrupt: its md5 is"):
        load_cifar10(tmp_path)


def test_truncated_bin_names_the_file_and_the_fix(tmp_path):
    folder, _ = _write_layout(tmp_path, "bin")
    path = folder / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-100])
    size = N * (PIXELS + 1) - 100
    message = (
        f"CIFAR-10 file {re.escape(str(path))} is truncated or corrupt: its {size} bytes are "
        r"not a whole number of 3073-byte records .*Delete it and fetch it again\."
    )
    # With verify=True the md5 check reports it first; the size check guards verify=False.
    with pytest.raises(DataError, match=message):
        load_cifar10(tmp_path, verify=False)


@pytest.mark.parametrize("damage", ["truncated", "python3 pickle", "not a dict"])
def test_unreadable_python_batch_names_the_file_and_the_fix(tmp_path, damage):
    folder, _ = _write_layout(tmp_path, "py")
    path = folder / "data_batch_2"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:500])
    elif damage == "python3 pickle":  # bytes keys: not the official Python 2 file
        labels, rows = _records(N, 0)
        path.write_bytes(pickle.dumps({b"data": rows, b"labels": list(labels)}))
    else:
        path.write_bytes(pickle.dumps([1, 2, 3]))
    message = (
        f"CIFAR-10 file {re.escape(str(path))} is not a readable CIFAR-10 python batch "
        r".*Delete it and fetch it again\."
    )
    with pytest.raises(DataError, match=message):
        load_cifar10(tmp_path, verify=False)


def test_missing_file_names_it(tmp_path, monkeypatch):
    folder, _ = _write_layout(tmp_path, "bin")
    _official(monkeypatch, "bin", folder)
    (folder / "test_batch.bin").unlink()
    path = re.escape(str(folder / "test_batch.bin"))
    with pytest.raises(DataError, match=f"CIFAR-10 file {path} is missing. Get CIFAR-10"):
        load_cifar10(tmp_path)


def test_folder_without_either_layout_says_where_it_looked_and_how_to_get_the_data(
    tmp_path, monkeypatch
):
    (tmp_path / "cifar-10-python").mkdir()  # a near miss: the archive's name, not the folder's
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    message = (
        f"No CIFAR-10 found under {re.escape(str(tmp_path.resolve()))}: looked for "
        f"{re.escape(str(tmp_path / BIN_DIR))} and {re.escape(str(tmp_path / PY_DIR))}. "
        r"Get CIFAR-10 either by calling load_cifar10\(root, download=True\).*"
        r"https://www\.cs\.toronto\.edu/~kriz/cifar\.html.*\$DEEPNNK_DATA"
    )
    with pytest.raises(DataError, match=message) as err:
        load_cifar10()  # the root comes from $DEEPNNK_DATA
    assert isinstance(err.value, FileNotFoundError)


def test_download_without_torchvision_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision → ImportError
    with pytest.raises(ImportError, match=r"pip install 'deepnnk\[download\]'"):
        load_cifar10(tmp_path / "new", download=True)
    assert not (tmp_path / "new").exists()


# ----------------------------------------------------------------------------- tensors


def test_to_tensor_is_chw_float_in_unit_range():
    images = _expected_hwc(_records(2, 0)[1])
    x = to_tensor(images)
    assert x.dtype == torch.float32 and x.shape == (2, 3, 32, 32)
    np.testing.assert_allclose(x.numpy(), images.transpose(0, 3, 1, 2) / 255.0, rtol=1e-6)
    with pytest.raises(ValueError, match=r"images must be uint8 \[N, 32, 32, 3\]"):
        to_tensor(images.transpose(0, 3, 1, 2))


def test_cifar10_arrays_checks_labels_and_flips_only_when_asked():
    images = _expected_hwc(_records(2, 0)[1])
    ds = CIFAR10Arrays(images, np.array([0, 9]))
    x, y = ds[1]
    assert len(ds) == 2 and x.shape == (3, 32, 32) and y.item() == 9
    torch.testing.assert_close(x, to_tensor(images[1:])[0])
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.9, got 0\.\.10"):
        CIFAR10Arrays(images, np.array([0, 10]))
    with pytest.raises(ValueError, match="2 images but 3 labels"):
        CIFAR10Arrays(images, np.array([0, 1, 2]))
    flipped = CIFAR10Arrays(images, np.array([0, 9]), hflip=True)
    torch.manual_seed(0)
    seen = {bool(torch.equal(flipped[0][0], ds[0][0].flip(-1))) for _ in range(20)}
    assert seen == {True, False}
