"""Test-only writer of TensorFlow V2 checkpoint bundles, built byte by byte.

It writes what TensorFlow's BundleWriter writes (an uncompressed LevelDB table for the index,
raw C-order tensors in one data shard) so that the reader can be tested without TensorFlow
and without the real checkpoints. Knobs let tests produce small blocks, many restarts and
big-endian shards; corruption is left to the tests, which edit the bytes afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from deepnnk.nets.tf_bundle import crc32c_py, mask_crc

TABLE_MAGIC = 0xDB4775248B80FB57
TF_DTYPES = {
    np.dtype("float32"): 1,
    np.dtype("float64"): 2,
    np.dtype("int32"): 3,
    np.dtype("uint8"): 4,
    np.dtype("int16"): 5,
    np.dtype("int8"): 6,
    np.dtype("complex64"): 8,
    np.dtype("int64"): 9,
    np.dtype("bool"): 10,
    np.dtype("uint16"): 17,
    np.dtype("complex128"): 18,
    np.dtype("float16"): 19,
    np.dtype("uint32"): 22,
    np.dtype("uint64"): 23,
}


def varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # protobuf encodes negative int64 as ten-byte two's complement
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def pb_bytes(number: int, value: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(value)) + value


def pb_fixed32(number: int, value: int) -> bytes:
    return varint(number << 3 | 5) + value.to_bytes(4, "little")


def shape_proto(shape) -> bytes:
    return b"".join(pb_bytes(2, pb_varint(1, d)) for d in shape)


def entry_proto(
    tf_dtype: int, shape, offset: int, size: int, masked_crc: int, shard_id: int = 0
) -> bytes:
    """A BundleEntryProto; zero-valued scalars are omitted, as proto3 serialisers do."""
    out = pb_varint(1, tf_dtype) + pb_bytes(2, shape_proto(shape))
    for number, value in ((3, shard_id), (4, offset), (5, size)):
        if value:
            out += pb_varint(number, value)
    return out + pb_fixed32(6, masked_crc)


def header_proto(num_shards: int = 1, big_endian: bool = False) -> bytes:
    version = pb_varint(1, 1)  # VersionDef.producer
    out = pb_varint(1, num_shards)
    if big_endian:
        out += pb_varint(2, 1)
    return out + pb_bytes(3, version)


def block(entries: list[tuple[bytes, bytes]], restart_interval: int = 16) -> bytes:
    """A LevelDB block: prefix-compressed entries, then the restart offsets and their count."""
    out, restarts, prev = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        if i % restart_interval == 0:
            restarts.append(len(out))
            shared = 0
        else:
            shared = 0
            while shared < min(len(key), len(prev)) and key[shared] == prev[shared]:
                shared += 1
        out += varint(shared) + varint(len(key) - shared) + varint(len(value))
        out += key[shared:] + value
        prev = key
    restarts = restarts or [0]
    for r in restarts:
        out += r.to_bytes(4, "little")
    return bytes(out + len(restarts).to_bytes(4, "little"))


def table(
    entries: list[tuple[bytes, bytes]], entries_per_block: int = 64, restart_interval: int = 16
) -> bytes:
    """A whole LevelDB table from sorted ``entries``: data blocks, metaindex, index, footer."""
    out = bytearray()

    def put(contents: bytes, kind: int = 0) -> bytes:
        handle = varint(len(out)) + varint(len(contents))
        out.extend(contents + bytes([kind]))
        out.extend(mask_crc(crc32c_py(contents + bytes([kind]))).to_bytes(4, "little"))
        return handle

    index = []
    for start in range(0, len(entries), entries_per_block):
        chunk = entries[start : start + entries_per_block]
        # The last key of a block is a valid separator for the index.
        index.append((chunk[-1][0], put(block(chunk, restart_interval))))
    meta_handle = put(block([]))
    index_handle = put(block(index, 1))
    footer = (meta_handle + index_handle).ljust(40, b"\0") + TABLE_MAGIC.to_bytes(8, "little")
    return bytes(out + footer)


def write_bundle(
    prefix: str | os.PathLike,
    tensors: dict[str, np.ndarray],
    *,
    big_endian: bool = False,
    entries_per_block: int = 64,
    restart_interval: int = 16,
    extra_entries: dict[str, bytes] | None = None,
) -> tuple[Path, Path]:
    """Write ``tensors`` as a one-shard V2 bundle; return the (index, data) paths.

    ``extra_entries`` adds raw BundleEntryProto values by name, for entries a test crafts by
    hand (odd dtypes, wrong sizes).
    """
    data, entries = bytearray(), {}
    for name, array in tensors.items():
        array = np.asarray(array)
        raw = array.astype(array.dtype.newbyteorder(">" if big_endian else "<")).tobytes("C")
        tf_dtype = TF_DTYPES[array.dtype.newbyteorder("=")]
        crc = mask_crc(crc32c_py(raw))
        entries[name.encode()] = entry_proto(tf_dtype, array.shape, len(data), len(raw), crc)
        data += raw
        # Gaps between tensors (TF can align them) must not matter to a reader that seeks.
        data += b"\0" * (-len(data) % 8)
    for name, value in (extra_entries or {}).items():
        entries[name.encode()] = value
    entries[b""] = header_proto(1, big_endian)
    index_path = Path(f"{prefix}.index")
    data_path = Path(f"{prefix}.data-00000-of-00001")
    index_path.write_bytes(table(sorted(entries.items()), entries_per_block, restart_interval))
    data_path.write_bytes(bytes(data))
    return index_path, data_path
