"""The TF V2 checkpoint reader, on bundles built byte by byte here and on the authors' real ones."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from bundle_writer import entry_proto, varint, write_bundle
from hypothesis import given, settings
from hypothesis import strategies as st

from deepnnk.nets.paper import EPOCHS, PAPER_MODELS, checkpoint_prefix, weight_names
from deepnnk.nets.tf_bundle import (
    CheckpointError,
    CheckpointNotFoundError,
    _varint,  # the reader's own varint, to locate blocks in tests
    crc32c,
    crc32c_py,
    list_tensors,
    mask_crc,
    read_bundle,
    read_index,
    unmask_crc,
)

# --------------------------------------------------------------------------------------------
# crc32c
# --------------------------------------------------------------------------------------------

# RFC 3720 (iSCSI) appendix B.4 test vectors, plus the customary "123456789" check value.
CRC_VECTORS = [
    (b"123456789", 0xE3069283),
    (bytes(32), 0x8A9136AA),
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
    (b"", 0),
]


@pytest.mark.parametrize("fn", [crc32c_py, crc32c], ids=["pure-python", "default"])
@pytest.mark.parametrize("data,expected", CRC_VECTORS)
def test_crc32c_vectors(fn, data, expected):
    assert fn(data) == expected


@given(st.binary(max_size=300), st.integers(0, 300))
@settings(max_examples=50, deadline=None)
def test_crc32c_continues_and_fast_path_agrees(data, cut):
    cut = min(cut, len(data))
    assert crc32c_py(data[cut:], crc32c_py(data[:cut])) == crc32c_py(data)
    assert crc32c(data[cut:], crc32c(data[:cut])) == crc32c_py(data)


@given(st.integers(0, 2**32 - 1))
def test_mask_round_trips(crc):
    assert 0 <= mask_crc(crc) < 2**32
    assert unmask_crc(mask_crc(crc)) == crc


# --------------------------------------------------------------------------------------------
# synthetic bundles
# --------------------------------------------------------------------------------------------


def sample_tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "network/W_conv0": rng.standard_normal((3, 3, 2, 4)).astype(np.float32),
        "network/b_conv0": rng.standard_normal(4).astype(np.float32),
        "global_step": np.array(12345678901, dtype=np.int64),
        "counts": np.array([-3, 0, 2**40, -(2**62)], dtype=np.int64),
        "scalar_f32": np.array(1.5, dtype=np.float32),
        "f64": rng.standard_normal((2, 3)),
        "i32": np.arange(24, dtype=np.int32).reshape(2, 3, 4),
        "u8": np.arange(7, dtype=np.uint8),
        "mask": np.array([[True, False], [False, True]]),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }


@pytest.fixture
def bundle(tmp_path):
    """(prefix, tensors, index path, data path) of a bundle with several blocks and restarts."""
    tensors = sample_tensors()
    prefix = tmp_path / "model.ckpt-7"
    index, data = write_bundle(prefix, tensors, entries_per_block=3, restart_interval=2)
    return prefix, tensors, index, data


def assert_same(got: dict, want: dict):
    assert list(got) == list(want)
    for name, array in want.items():
        assert got[name].dtype == array.dtype, name
        assert got[name].shape == array.shape, name
        np.testing.assert_array_equal(got[name], array, err_msg=name)


def test_round_trip(bundle):
    prefix, tensors, _, _ = bundle
    got = read_bundle(prefix)
    assert_same(got, {name: tensors[name] for name in sorted(tensors)})
    assert all(a.flags.writeable and a.dtype.isnative for a in got.values())


def test_list_tensors_reads_only_the_index(bundle):
    prefix, tensors, _, data = bundle
    data.unlink()
    listing = list_tensors(prefix)
    assert listing == {n: (tensors[n].dtype, tensors[n].shape) for n in sorted(tensors)}
    assert read_index(prefix).num_shards == 1


def test_selected_names_come_back_in_the_order_asked(bundle):
    prefix, tensors, _, _ = bundle
    names = ["scalar_f32", "network/W_conv0", "counts"]
    assert_same(read_bundle(prefix, names), {n: tensors[n] for n in names})


def test_prefix_may_name_the_index_file(bundle):
    prefix, tensors, index, _ = bundle
    assert_same(read_bundle(str(index), ["i32"]), {"i32": tensors["i32"]})


def test_unknown_tensor_name_lists_the_contents(bundle):
    prefix, *_ = bundle
    with pytest.raises(CheckpointError, match="no tensor named 'nope'.*network/W_conv0"):
        read_bundle(prefix, ["nope"])


def test_big_endian_bundle(tmp_path):
    tensors = sample_tensors()
    write_bundle(tmp_path / "be", tensors, big_endian=True)
    assert read_index(tmp_path / "be").big_endian
    got = read_bundle(tmp_path / "be")
    assert_same(got, {name: tensors[name] for name in sorted(tensors)})
    assert all(a.dtype.isnative for a in got.values())


names_st = st.text(st.sampled_from("abcW_/0123"), min_size=1, max_size=12)
arrays_st = st.sampled_from(["<f4", "<i8", "<i4", "<f8", "u1"]).flatmap(
    lambda dt: st.lists(st.integers(0, 3), max_size=3).flatmap(
        lambda shape: st.builds(
            lambda seed: np.random.default_rng(seed).integers(-100, 100, size=shape).astype(dt),
            st.integers(0, 2**16),
        )
    )
)


@given(
    st.dictionaries(names_st, arrays_st, min_size=1, max_size=12),
    st.integers(1, 5),
    st.integers(1, 5),
)
@settings(max_examples=40, deadline=None)
def test_round_trip_property(tensors, per_block, restart):
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "x"
        write_bundle(prefix, tensors, entries_per_block=per_block, restart_interval=restart)
        assert_same(read_bundle(prefix), {n: tensors[n] for n in sorted(tensors)})


# --------------------------------------------------------------------------------------------
# damaged bundles: every fault names the file and says what is wrong
# --------------------------------------------------------------------------------------------


def flip_byte(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


def test_corrupt_data_byte_is_a_crc_error(bundle):
    prefix, tensors, _, data = bundle
    info = read_index(prefix).tensors["i32"]
    flip_byte(data, info.offset + 5)
    with pytest.raises(CheckpointError, match=r"crc mismatch for tensor 'i32' in .*data-00000"):
        read_bundle(prefix)
    # Other tensors are intact, and verify=False reads the damaged one as is.
    assert_same(read_bundle(prefix, ["u8"]), {"u8": tensors["u8"]})
    assert read_bundle(prefix, ["i32"], verify=False)["i32"].flat[1] != tensors["i32"].flat[1]


def test_corrupt_index_byte_is_a_crc_error(bundle):
    prefix, _, index, _ = bundle
    flip_byte(index, 10)
    with pytest.raises(CheckpointError, match=r"index is corrupt: crc mismatch in its data block"):
        list_tensors(prefix)


@pytest.mark.parametrize("keep", [0, 20, 47])
def test_index_shorter_than_a_footer(bundle, keep):
    prefix, _, index, _ = bundle
    index.write_bytes(index.read_bytes()[:keep])
    with pytest.raises(CheckpointError, match=rf"{index.name} is truncated: {keep} bytes"):
        read_bundle(prefix)


@pytest.mark.parametrize("drop", [1, 100])
def test_truncated_index(bundle, drop):
    prefix, _, index, _ = bundle
    index.write_bytes(index.read_bytes()[:-drop])
    with pytest.raises(CheckpointError, match=rf"{index.name} is not a TensorFlow.*truncated"):
        read_bundle(prefix)


def test_truncated_data(bundle):
    prefix, _, _, data = bundle
    data.write_bytes(data.read_bytes()[:-20])
    with pytest.raises(CheckpointError, match=rf"{data.name} is truncated: tensor 'i32'"):
        read_bundle(prefix)
    read_bundle(prefix, ["counts"])  # tensors before the cut are still readable


def test_bad_magic(bundle):
    prefix, _, index, _ = bundle
    flip_byte(index, index.stat().st_size - 1)
    with pytest.raises(CheckpointError, match=r"not the table magic 0xdb4775248b80fb57"):
        read_bundle(prefix)


def footer_handles(raw: bytes) -> tuple[int, int, int, int]:
    """(metaindex offset, size, index offset, size) from a table's footer."""
    values, pos = [], 0
    for _ in range(4):
        value, pos = _varint(raw[-48:], pos)
        values.append(value)
    return tuple(values)


def test_block_handle_past_the_end(bundle):
    prefix, _, index, _ = bundle
    raw = index.read_bytes()
    meta_offset, meta_size, _, _ = footer_handles(raw)
    # Keep the magic but point the index block past the end, as a cut-and-patch would.
    handles = varint(meta_offset) + varint(meta_size) + varint(len(raw)) + varint(30)
    index.write_bytes(raw[:-48] + handles.ljust(40, b"\0") + raw[-8:])
    with pytest.raises(CheckpointError, match=r"truncated or corrupt: its index block"):
        read_bundle(prefix)


def test_missing_index(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match=r"nothing\.index does not exist") as err:
        read_bundle(tmp_path / "nothing")
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, ValueError)


def test_missing_data_shard(bundle):
    prefix, _, _, data = bundle
    data.unlink()
    with pytest.raises(CheckpointNotFoundError, match=r"data-00000-of-00001 does not exist"):
        read_bundle(prefix)


def test_compressed_block_is_refused(tmp_path):
    index, _ = write_bundle(tmp_path / "c", {"a": np.zeros(3, np.float32)})
    raw = bytearray(index.read_bytes())
    # Mark the metaindex block as snappy-compressed and fix its crc, so only the type is wrong.
    meta_off, meta_size, _, _ = footer_handles(raw)
    raw[meta_off + meta_size] = 1
    crc = mask_crc(crc32c_py(bytes(raw[meta_off : meta_off + meta_size + 1])))
    raw[meta_off + meta_size + 1 : meta_off + meta_size + 5] = crc.to_bytes(4, "little")
    index.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"metaindex block is compressed \(type byte 1"):
        read_bundle(tmp_path / "c")


def test_unsupported_dtype(tmp_path):
    string_entry = entry_proto(7, (2,), 0, 0, mask_crc(0))  # DT_STRING
    write_bundle(tmp_path / "s", {"a": np.ones(2, np.float32)}, extra_entries={"s": string_entry})
    assert list_tensors(tmp_path / "s")["s"] == ("DT_STRING", (2,))
    assert read_bundle(tmp_path / "s", ["a"])["a"].tolist() == [1.0, 1.0]
    with pytest.raises(CheckpointError, match=r"tensor 's' .* has dtype DT_STRING"):
        read_bundle(tmp_path / "s")


def test_size_mismatch(tmp_path):
    bad = entry_proto(1, (2, 3), 0, 20, mask_crc(crc32c_py(bytes(20))))  # needs 24 bytes
    write_bundle(tmp_path / "m", {"a": np.zeros(8, np.float32)}, extra_entries={"b": bad})
    with pytest.raises(CheckpointError, match=r"size mismatch for tensor 'b'.*needs 24"):
        read_bundle(tmp_path / "m", ["b"])


# --------------------------------------------------------------------------------------------
# the authors' real bundles
# --------------------------------------------------------------------------------------------

SLOTS = ("", "/Adam", "/Adam_1")


def expected_listing(width: int) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    shapes = {"beta1_power": (), "beta2_power": (), "W_fc1": (16 * width, 10), "b_fc1": (10,)}
    for i in range(6):
        shapes[f"network/W_conv{i}"] = (3, 3, 3 if i == 0 else width, width)
        shapes[f"network/b_conv{i}"] = (width,)
    out = {}
    for name, shape in shapes.items():
        for slot in SLOTS if "power" not in name else ("",):
            out[name + slot] = (np.dtype("float32"), shape)
    return out


@pytest.mark.data
def test_every_real_index_parses(checkpoint_root):
    n = 0
    for name, spec in PAPER_MODELS.items():
        want = expected_listing(spec.width)
        for epoch in EPOCHS:
            listing = list_tensors(checkpoint_prefix(checkpoint_root, name, epoch))
            assert len(listing) == 44
            assert listing == want
            assert sorted(listing) == list(listing)
            n += 1
    assert n == 60


@pytest.mark.data
@pytest.mark.parametrize("model", list(PAPER_MODELS))
def test_real_weights_read_with_crc_verified(checkpoint_root, model):
    prefix = checkpoint_prefix(checkpoint_root, model, 20)
    start = time.perf_counter()
    weights = read_bundle(prefix, weight_names())
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"reading the weights took {elapsed:.2f} s"
    for array in weights.values():
        assert array.dtype == np.float32 and np.isfinite(array).all()
        assert 0 < np.abs(array).max() < 100


@pytest.mark.data
def test_real_bundle_reads_whole(checkpoint_root):
    arrays = read_bundle(checkpoint_prefix(checkpoint_root, "overfit", 20))
    assert len(arrays) == 44
    # Adam's second-moment slots are non-negative, as they must be.
    assert all((a >= 0).all() for n, a in arrays.items() if n.endswith("/Adam_1"))


@pytest.mark.data
@pytest.mark.parametrize("epoch", [1, 2, 20])
def test_step_label_is_one_epoch_behind_the_adam_steps(checkpoint_root, epoch):
    # beta2_power = 0.999^t after t Adam updates: the file named STEP = 1000·(epoch − 1)
    # holds 1000·epoch updates, i.e. the model after `epoch` epochs.
    prefix = checkpoint_prefix(checkpoint_root, "regularised", epoch)
    beta2_power = float(read_bundle(prefix, ["beta2_power"])["beta2_power"])
    assert round(np.log(beta2_power) / np.log(0.999) / 1000) == epoch


@pytest.mark.data
def test_damaged_copy_of_a_real_bundle(checkpoint_root, tmp_path):
    prefix = checkpoint_prefix(checkpoint_root, "underparameterised", 20)
    copy = tmp_path / prefix.name
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copyfile(f"{prefix}{suffix}", f"{copy}{suffix}")
    info = read_index(copy).tensors["network/W_conv3"]
    flip_byte(Path(f"{copy}.data-00000-of-00001"), info.offset + info.size // 2)
    with pytest.raises(CheckpointError, match="crc mismatch for tensor 'network/W_conv3'"):
        read_bundle(copy, weight_names())
