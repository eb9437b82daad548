"""Read TensorFlow V2 checkpoint bundles with numpy alone (no TensorFlow, no protobuf).

A V2 checkpoint with prefix ``P`` is two files:

- ``P.index``: a LevelDB-format table (SSTable). Its empty key holds a ``BundleHeaderProto``
  (number of data shards, endianness); every other key is a tensor name whose value is a
  ``BundleEntryProto`` (dtype, shape, shard, byte offset, byte size, masked crc32c).
- ``P.data-SSSSS-of-NNNNN``: the shards, each tensor's raw bytes in C order at
  ``[offset, offset + size)``.

Everything read is checked: the table's footer magic, each block's masked crc32c, the key
order, each tensor's byte size against its shape, and each tensor's masked crc32c. Anything
wrong raises :class:`CheckpointError`, whose message names the file, the fault and the fix.

Public API: :func:`read_bundle`, :func:`list_tensors`, :func:`read_index`, :func:`crc32c`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from math import prod
from pathlib import Path

import numpy as np

__all__ = [
    "CheckpointError",
    "CheckpointNotFoundError",
    "TensorInfo",
    "crc32c",
    "crc32c_py",
    "list_tensors",
    "mask_crc",
    "read_bundle",
    "read_index",
    "unmask_crc",
]

from deepnnk.nets.checkpoints import CheckpointError, CheckpointNotFoundError

_REDOWNLOAD = "The file is damaged or incomplete: copy or download the checkpoint again."


# --------------------------------------------------------------------------------------------
# crc32c (Castagnoli), as LevelDB and TensorFlow use it
# --------------------------------------------------------------------------------------------

_CASTAGNOLI_REFLECTED = 0x82F63B78
_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CASTAGNOLI_REFLECTED if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _crc_table()


def crc32c_py(data: bytes, crc: int = 0) -> int:
    """crc32c of ``data`` in pure Python, continuing from ``crc`` (the crc of preceding bytes).

    About 7 MB/s; :func:`crc32c` uses a C implementation instead when one is installed.
    """
    table = _TABLE
    crc ^= _U32
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _U32


def _fast_crc32c():
    """A C crc32c from an optional package, or None. Neither package is a dependency."""
    try:
        import google_crc32c

        # google_crc32c silently falls back to pure Python when its extension is missing.
        if getattr(google_crc32c, "implementation", "c") == "c":
            return lambda data, crc=0: google_crc32c.extend(crc, bytes(data))
    except ImportError:
        pass
    try:
        import crc32c as crc32c_package

        return lambda data, crc=0: crc32c_package.crc32c(bytes(data), crc)
    except ImportError:
        pass
    return None


_FAST_CRC32C = _fast_crc32c()


def crc32c(data: bytes, crc: int = 0) -> int:
    """crc32c of ``data``, continuing from ``crc``: C-backed when ``google_crc32c`` or
    ``crc32c`` is installed (optional), else :func:`crc32c_py`."""
    if _FAST_CRC32C is not None:
        return _FAST_CRC32C(data, crc)
    return crc32c_py(data, crc)


def mask_crc(crc: int) -> int:
    """LevelDB's masked crc (rotate right by 15, add a constant), as stored in the files."""
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & _U32


def unmask_crc(masked: int) -> int:
    """Inverse of :func:`mask_crc`."""
    rot = (masked - _MASK_DELTA) & _U32
    return ((rot >> 17) | (rot << 15)) & _U32


# --------------------------------------------------------------------------------------------
# minimal protobuf wire-format decoding
# --------------------------------------------------------------------------------------------


class _Malformed(Exception):
    """Internal: raised by the low-level decoders, re-raised as CheckpointError with a file name."""


def _varint(buf: bytes, pos: int, end: int | None = None) -> tuple[int, int]:
    """Decode a base-128 varint at ``buf[pos]``; return (value, position after it)."""
    end = len(buf) if end is None else end
    value = shift = 0
    while True:
        if pos >= end:
            raise _Malformed("a varint runs past the end of its buffer")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise _Malformed("a varint is longer than 10 bytes")


def _proto_fields(buf: bytes) -> dict[int, list]:
    """Decode one protobuf message into {field number: [values]}.

    Varints and fixed32/fixed64 become ints (unsigned), length-delimited fields stay bytes;
    interpreting them (signed ints, nested messages) is up to the caller, who knows the schema.
    """
    fields: dict[int, list] = {}
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise _Malformed("a protobuf field has number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1 or wire == 5:
            width = 8 if wire == 1 else 4
            if pos + width > end:
                raise _Malformed("a fixed-width protobuf field runs past the end of its message")
            value = int.from_bytes(buf[pos : pos + width], "little")
            pos += width
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise _Malformed("a length-delimited protobuf field runs past its message")
            value = bytes(buf[pos : pos + length])
            pos += length
        else:
            raise _Malformed(f"protobuf wire type {wire} (groups) is not used by TF bundles")
        fields.setdefault(number, []).append(value)
    return fields


def _last(fields: dict[int, list], number: int, default=0):
    # proto3 semantics: a repeated scalar field's last occurrence wins; absent means default.
    values = fields.get(number)
    return values[-1] if values else default


def _int64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


# --------------------------------------------------------------------------------------------
# LevelDB table (SSTable)
# --------------------------------------------------------------------------------------------

_FOOTER_SIZE = 48
_TABLE_MAGIC = 0xDB4775248B80FB57
_TRAILER_SIZE = 5  # compression type byte + masked crc32c


def _block(data: bytes, handle: tuple[int, int], path: Path, what: str) -> bytes:
    """The contents of the block at ``handle`` = (offset, size), with its trailer checked."""
    offset, size = handle
    end = offset + size + _TRAILER_SIZE
    if end > len(data) - _FOOTER_SIZE:
        raise CheckpointError(
            f"{path} is truncated or corrupt: its {what} block spans bytes [{offset}, {end}) "
            f"but the blocks end at byte {len(data) - _FOOTER_SIZE}. {_REDOWNLOAD}"
        )
    contents = data[offset : offset + size]
    kind = data[offset + size]
    if kind != 0:
        raise CheckpointError(
            f"{path}: its {what} block is compressed (type byte {kind}, e.g. 1 = snappy); this "
            "reader only handles uncompressed tables, which is what TensorFlow writes for "
            "checkpoint indexes. Re-save the checkpoint with TensorFlow, or check the file."
        )
    stored = int.from_bytes(data[offset + size + 1 : end], "little")
    actual = mask_crc(crc32c(data[offset : offset + size + 1]))
    if stored != actual:
        raise CheckpointError(
            f"{path} is corrupt: crc mismatch in its {what} block at byte {offset} "
            f"(stored {stored:#010x}, computed {actual:#010x}). {_REDOWNLOAD}"
        )
    return contents


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """The (key, value) pairs of one block, undoing the keys' prefix compression."""
    if len(block) < 4:
        raise _Malformed("a block is shorter than its restart count")
    n_restarts = int.from_bytes(block[-4:], "little")
    limit = len(block) - 4 - 4 * n_restarts
    if n_restarts < 1 or limit < 0:
        raise _Malformed(f"a block of {len(block)} bytes claims {n_restarts} restart points")
    restarts = {
        int.from_bytes(block[limit + 4 * i : limit + 4 * i + 4], "little")
        for i in range(n_restarts)
    }
    entries, starts, key, pos = [], set(), b"", 0
    while pos < limit:
        start = pos
        starts.add(start)
        shared, pos = _varint(block, pos, limit)
        unshared, pos = _varint(block, pos, limit)
        value_len, pos = _varint(block, pos, limit)
        if shared > len(key) or (start in restarts and shared):
            raise _Malformed(f"the entry at block byte {start} shares more key than it can")
        if pos + unshared + value_len > limit:
            raise _Malformed(f"the entry at block byte {start} runs past the block's entries")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        entries.append((key, block[pos : pos + value_len]))
        pos += value_len
    if not restarts <= (starts or {0}):
        raise _Malformed("a restart point does not fall on the start of an entry")
    return entries


def _table_entries(path: Path) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs of the LevelDB table at ``path``, in key order."""
    data = _read_file(path, "index")
    if len(data) < _FOOTER_SIZE:
        raise CheckpointError(
            f"{path} is truncated: {len(data)} bytes, shorter than the 48-byte table footer. "
            f"{_REDOWNLOAD}"
        )
    footer = data[-_FOOTER_SIZE:]
    magic = int.from_bytes(footer[-8:], "little")
    if magic != _TABLE_MAGIC:
        raise CheckpointError(
            f"{path} is not a TensorFlow V2 checkpoint index: it ends in {magic:#018x}, not the "
            f"table magic {_TABLE_MAGIC:#018x}. It may be truncated or another file type; pass "
            "the prefix of a V2 checkpoint (the path without '.index'). " + _REDOWNLOAD
        )
    try:
        meta_offset, pos = _varint(footer, 0, 40)
        meta_size, pos = _varint(footer, pos, 40)
        index_offset, pos = _varint(footer, pos, 40)
        index_size, pos = _varint(footer, pos, 40)
    except _Malformed as err:
        raise CheckpointError(f"{path} has a corrupt table footer: {err}. {_REDOWNLOAD}") from None
    _block(data, (meta_offset, meta_size), path, "metaindex")
    entries = []
    try:
        index = _block_entries(_block(data, (index_offset, index_size), path, "index"))
        for _, handle in index:
            block_offset, pos = _varint(handle, 0)
            block_size, _ = _varint(handle, pos)
            block = _block(data, (block_offset, block_size), path, "data")
            entries.extend(_block_entries(block))
    except _Malformed as err:
        raise CheckpointError(f"{path} is corrupt: {err}. {_REDOWNLOAD}") from None
    for (a, _), (b, _) in zip(entries, entries[1:], strict=False):
        if a >= b:
            raise CheckpointError(
                f"{path} is corrupt: its keys are out of order ({a!r} before {b!r}). {_REDOWNLOAD}"
            )
    return entries


def _not_found(path: Path, what: str) -> CheckpointNotFoundError:
    hint = ""
    if what == "index" and Path(str(path)[: -len(".index")]).is_file():
        hint = " A file exists at the bare prefix: that is a V1 checkpoint, not supported."
    return CheckpointNotFoundError(
        f"TensorFlow checkpoint {what} file {path} does not exist. A V2 checkpoint with "
        f"prefix P is the files P.index and P.data-00000-of-00001; pass P, and check the "
        f"folder and step number.{hint}"
    )


def _read_file(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise _not_found(path, what)
    return path.read_bytes()


# --------------------------------------------------------------------------------------------
# the bundle
# --------------------------------------------------------------------------------------------

# TensorFlow's DataType enum (types.proto) → numpy, little-endian. DT_STRING (7), DT_BFLOAT16
# (14), resources, variants and quantised types have no plain numpy equivalent.
_DTYPES = {
    1: np.dtype("<f4"),  # DT_FLOAT
    2: np.dtype("<f8"),  # DT_DOUBLE
    3: np.dtype("<i4"),  # DT_INT32
    4: np.dtype("u1"),  # DT_UINT8
    5: np.dtype("<i2"),  # DT_INT16
    6: np.dtype("i1"),  # DT_INT8
    8: np.dtype("<c8"),  # DT_COMPLEX64
    9: np.dtype("<i8"),  # DT_INT64
    10: np.dtype("?"),  # DT_BOOL
    17: np.dtype("<u2"),  # DT_UINT16
    18: np.dtype("<c16"),  # DT_COMPLEX128
    19: np.dtype("<f2"),  # DT_HALF
    22: np.dtype("<u4"),  # DT_UINT32
    23: np.dtype("<u8"),  # DT_UINT64
}
_TF_DTYPE_NAMES = {
    0: "DT_INVALID",
    7: "DT_STRING",
    11: "DT_QINT8",
    12: "DT_QUINT8",
    13: "DT_QINT32",
    14: "DT_BFLOAT16",
    15: "DT_QINT16",
    16: "DT_QUINT16",
    20: "DT_RESOURCE",
    21: "DT_VARIANT",
}


@dataclass(frozen=True)
class TensorInfo:
    """One ``BundleEntryProto``: where a tensor lies and what it is.

    ``dtype`` is None when the TF type has no numpy equivalent (``tf_dtype`` keeps the enum).
    ``offset`` and ``size`` are in bytes within data shard ``shard_id``; ``crc32c`` is masked.
    """

    name: str
    tf_dtype: int
    dtype: np.dtype | None
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int
    sliced: bool

    @property
    def dtype_name(self) -> str:
        """The numpy dtype's name, or TensorFlow's name for an unsupported type."""
        if self.dtype is not None:
            return self.dtype.name
        return _TF_DTYPE_NAMES.get(self.tf_dtype, f"TF DataType {self.tf_dtype}")


def _shape(buf: bytes) -> tuple[int, ...]:
    fields = _proto_fields(buf)
    if _last(fields, 3):
        raise _Malformed("the shape has unknown rank")
    dims = []
    for dim in fields.get(2, []):
        size = _int64(_last(_proto_fields(dim), 1))
        if size < 0:
            raise _Malformed(f"the shape has an unknown dimension ({size})")
        dims.append(size)
    return tuple(dims)


def _entry(name: str, value: bytes) -> TensorInfo:
    fields = _proto_fields(value)
    tf_dtype = _last(fields, 1)
    return TensorInfo(
        name=name,
        tf_dtype=tf_dtype,
        dtype=_DTYPES.get(tf_dtype),
        shape=_shape(_last(fields, 2, b"")),
        shard_id=_last(fields, 3),
        offset=_int64(_last(fields, 4)),
        size=_int64(_last(fields, 5)),
        crc32c=_last(fields, 6),
        sliced=bool(fields.get(7)),
    )


@dataclass(frozen=True)
class BundleIndex:
    """A parsed ``.index``: the header's shard count and endianness, and every tensor's entry."""

    prefix: str
    num_shards: int
    big_endian: bool
    tensors: dict[str, TensorInfo]

    def data_path(self, shard_id: int) -> Path:
        return Path(f"{self.prefix}.data-{shard_id:05d}-of-{self.num_shards:05d}")


def _prefix(prefix: str | os.PathLike) -> str:
    prefix = os.fspath(prefix)
    # Accept a path to the .index itself, a common slip.
    return prefix[: -len(".index")] if prefix.endswith(".index") else prefix


def read_index(prefix: str | os.PathLike) -> BundleIndex:
    """Parse ``prefix + '.index'`` (cheap: no tensor data is read)."""
    prefix = _prefix(prefix)
    path = Path(prefix + ".index")
    header, tensors = None, {}
    for key, value in _table_entries(path):
        try:
            if key == b"":
                header = _proto_fields(value)
            else:
                name = key.decode("utf-8")
                tensors[name] = _entry(name, value)
        except (_Malformed, UnicodeDecodeError) as err:
            raise CheckpointError(
                f"{path} is corrupt: cannot decode the entry {key!r}: {err}. {_REDOWNLOAD}"
            ) from None
    if header is None:
        raise CheckpointError(
            f"{path} has no bundle header (the empty key): it is a LevelDB table but not a "
            "TensorFlow V2 checkpoint index. Pass the prefix of a V2 checkpoint."
        )
    num_shards = _last(header, 1)
    if num_shards < 1 or any(t.shard_id >= num_shards for t in tensors.values()):
        raise CheckpointError(
            f"{path} is corrupt: its header says {num_shards} data shards, which does not cover "
            f"its tensors' shard ids. {_REDOWNLOAD}"
        )
    return BundleIndex(prefix, num_shards, _last(header, 2) == 1, tensors)


def list_tensors(prefix: str | os.PathLike) -> dict[str, tuple[np.dtype | str, tuple[int, ...]]]:
    """``{name: (dtype, shape)}`` for every tensor in the bundle, in key order, from the index.

    dtype is a numpy dtype, or TensorFlow's type name (e.g. ``"DT_STRING"``) for a type this
    reader cannot load.
    """
    return {
        name: (info.dtype if info.dtype is not None else info.dtype_name, info.shape)
        for name, info in read_index(prefix).tensors.items()
    }


def read_bundle(
    prefix: str | os.PathLike, names: list[str] | None = None, *, verify: bool = True
) -> dict[str, np.ndarray]:
    """Read tensors from the V2 checkpoint bundle with prefix ``prefix``.

    ``names`` picks tensors (default: all). Returns ``{name: array}``, each array writable, in
    native byte order, with the checkpoint's shape (TensorFlow's layout, e.g. conv kernels
    ``[kh, kw, in, out]``). ``verify`` checks each tensor's crc32c against the index.
    """
    index = read_index(prefix)
    if names is None:
        names = list(index.tensors)
    missing = [n for n in names if n not in index.tensors]
    if missing:
        raise CheckpointError(
            f"{index.prefix}.index has no tensor named {', '.join(map(repr, missing))}. "
            f"It holds: {', '.join(index.tensors)}."
        )
    out: dict[str, np.ndarray] = {}
    by_shard: dict[int, list[TensorInfo]] = {}
    for name in names:
        info = index.tensors[name]
        by_shard.setdefault(info.shard_id, []).append(info)
    for shard_id, infos in sorted(by_shard.items()):
        path = index.data_path(shard_id)
        if not path.is_file():
            raise _not_found(path, "data")
        shard_size = path.stat().st_size
        with open(path, "rb") as f:
            for info in sorted(infos, key=lambda i: i.offset):
                out[info.name] = _read_tensor(f, path, shard_size, info, index.big_endian, verify)
    return {name: out[name] for name in names}


def _read_tensor(f, path: Path, shard_size: int, info: TensorInfo, big_endian: bool, verify: bool):
    where = f"tensor {info.name!r} in {path}"
    if info.dtype is None:
        raise CheckpointError(
            f"{where} has dtype {info.dtype_name} (TF enum {info.tf_dtype}), which this reader "
            "cannot load: it reads numeric and bool tensors only. Read other tensors by name."
        )
    if info.sliced:
        raise CheckpointError(
            f"{where} was saved as partitioned slices, which this reader does not support. "
            "Re-save it unpartitioned with TensorFlow."
        )
    expected = prod(info.shape) * info.dtype.itemsize
    if info.size != expected:
        raise CheckpointError(
            f"size mismatch for {where}: the index says {info.size} bytes but shape "
            f"{list(info.shape)} of {info.dtype.name} needs {expected}. The index is corrupt. "
            + _REDOWNLOAD
        )
    end = info.offset + info.size
    if info.offset < 0 or end > shard_size:
        raise CheckpointError(
            f"{path} is truncated: {where} spans bytes [{info.offset}, {end}) but the file has "
            f"{shard_size}. {_REDOWNLOAD}"
        )
    raw = bytearray(info.size)  # a bytearray so that the array is writable without a copy
    f.seek(info.offset)
    if f.readinto(raw) != info.size:
        raise CheckpointError(f"{path} is truncated: could not read {where}. {_REDOWNLOAD}")
    if verify:
        actual = mask_crc(crc32c(raw))
        if actual != info.crc32c:
            raise CheckpointError(
                f"crc mismatch for {where}: stored {info.crc32c:#010x}, computed {actual:#010x}; "
                f"its bytes are corrupt. {_REDOWNLOAD}"
            )
    dtype = info.dtype.newbyteorder(">") if big_endian else info.dtype
    array = np.frombuffer(raw, dtype=dtype).reshape(info.shape)
    return array.astype(array.dtype.newbyteorder("="), copy=False) if big_endian else array
