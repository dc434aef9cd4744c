"""The safetensors format, written and read without the `safetensors` package, and the atomic
file write that every saver here shares.

A .safetensors file is:

    8 bytes       N, the header's length, unsigned little-endian
    N bytes       a JSON object: name -> {"dtype": "F32", "shape": [3, 4],
                  "data_offsets": [begin, end]}, plus an optional "__metadata__" object of
                  string -> string
    the rest      the tensors' raw little-endian bytes, C order; offsets count from here

The `safetensors` package (and so PyTorch's `safetensors.torch.load_file`) reads what
`write_safetensors` writes. `read_safetensors` never unpickles (the format holds no code) and
checks the header completely against the file's real size before it allocates anything, so a
forged header cannot make it reserve gigabytes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np

# safetensors dtype name <-> numpy dtype (always little-endian in the file). BF16 and the F8
# types have no numpy dtype, so files holding them are refused with a message saying so.
_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"),
    "U8": np.dtype("u1"),
    "I8": np.dtype("i1"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F16": np.dtype("<f2"),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
}
_NAMES = {(dtype.kind, dtype.itemsize): name for name, dtype in _DTYPES.items()}
# The reference implementation refuses headers above 100 MB; so do we, before reading them.
MAX_HEADER_BYTES = 100_000_000
_METADATA_KEY = "__metadata__"
_MAX_AXES = 64  # numpy's limit on the number of axes
_MAX_BYTES = np.iinfo(np.intp).max  # and on the size of one array, in bytes


def numpy_can_hold(shape: tuple[int, ...] | list[int], itemsize: int) -> bool:
    """Whether numpy can make an array of this shape. A file's size check cannot tell: an
    empty tensor holds no bytes whatever its other axes claim ([0, 10**30])."""
    return len(shape) <= _MAX_AXES and math.prod(max(d, 1) for d in shape) * itemsize <= _MAX_BYTES


def _short(shape: list[int]) -> str:
    text = str(shape)
    return text if len(text) <= 80 else text[:77] + "..."


# --- writing ---------------------------------------------------------------------------------


def _header_bytes(arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    header: dict[str, object] = {}
    if metadata:
        header[_METADATA_KEY] = dict(metadata)
    offset = 0
    for name, array in arrays.items():
        kind = _NAMES.get((array.dtype.kind, array.dtype.itemsize))
        if kind is None:
            raise TypeError(
                f"save: parameter '{name}' has dtype {array.dtype}, which safetensors cannot hold"
            )
        header[name] = {
            "dtype": kind,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + array.nbytes],
        }
        offset += array.nbytes
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    # Pad with spaces to a multiple of 8, as the reference writer does, so the data starts
    # aligned and a reader can map it in place.
    return text + b" " * (-len(text) % 8)


def write_safetensors(
    arrays: Mapping[str, np.ndarray],
    path: str | os.PathLike[str],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write name -> array to `path` in the safetensors format, atomically, in the given order.

    The arrays must already be numeric numpy arrays (nn.save checks that); names are kept as
    they are, e.g. "layers.0.weight".
    """
    for name in arrays:
        if name == _METADATA_KEY:
            raise ValueError(f"save: the name {_METADATA_KEY!r} is reserved by safetensors")
    # Little-endian, C order: the layout the format defines. (Not ascontiguousarray, which
    # would turn a 0-d array into shape (1,).)
    ready = {
        name: np.asarray(a, dtype=a.dtype.newbyteorder("<"), order="C")
        for name, a in arrays.items()
    }
    header = _header_bytes(ready, metadata or {})

    def write(f: BinaryIO) -> None:
        f.write(len(header).to_bytes(8, "little"))
        f.write(header)
        for array in ready.values():
            f.write(array.tobytes())  # bytes of a C-ordered copy, whatever the source strides

    from .serialization import write_atomic  # one atomic writer for every format

    return write_atomic(path, write, "save")


# --- reading ---------------------------------------------------------------------------------


class SafetensorsError(ValueError):
    """A .safetensors file that is malformed or holds what we cannot read."""


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    seen: dict[str, object] = {}
    for key, value in pairs:
        if key in seen:
            raise SafetensorsError(f"its header names {key!r} twice")
        seen[key] = value
    return seen


def _parse_header(raw: bytes, data_size: int) -> tuple[dict[str, tuple], dict[str, str]]:
    """name -> (dtype, shape, begin, end) in file order, and the metadata; every entry checked
    against the size of the data section, which must be covered exactly, without holes."""
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except SafetensorsError:  # a name given twice (from _no_duplicates)
        raise
    except ValueError as exc:  # bad UTF-8 or JSON, or an integer of over 4,300 digits
        raise SafetensorsError(f"its header is not valid JSON ({exc})") from None
    except RecursionError:  # "[[[[..." nested deeper than Python's parser goes
        raise SafetensorsError("its header is nested too deeply to be a header") from None
    if not isinstance(header, dict):
        raise SafetensorsError("its header is not a JSON object")
    metadata = header.pop(_METADATA_KEY, {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise SafetensorsError(f"its {_METADATA_KEY} is not an object of strings")
    entries = {}
    for name, entry in header.items():
        if not name:
            raise SafetensorsError("its header has an empty tensor name")
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise SafetensorsError(f"its entry for {name!r} is malformed: {entry!r}")
        kind, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if kind not in _DTYPES:
            why = (
                "it has no numpy dtype; convert it to F32 before saving"
                if isinstance(kind, str)
                else "not a dtype name"
            )
            raise SafetensorsError(f"tensor {name!r} has dtype {kind!r} ({why})")

        def whole(v: object) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v >= 0

        if not (isinstance(shape, list) and all(whole(d) for d in shape)):
            raise SafetensorsError(f"tensor {name!r} has an invalid shape {shape!r}")
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(map(whole, offsets))
            and offsets[0] <= offsets[1] <= data_size
        ):
            raise SafetensorsError(
                f"tensor {name!r} has data_offsets {offsets!r} outside the "
                f"{data_size} data bytes the file holds"
            )
        dtype = _DTYPES[kind]
        if not numpy_can_hold(shape, dtype.itemsize):
            raise SafetensorsError(
                f"tensor {name!r} has shape {_short(shape)}, which no numpy array can have"
            )
        declared = math.prod(shape) * dtype.itemsize
        if declared != offsets[1] - offsets[0]:
            raise SafetensorsError(
                f"tensor {name!r} is {kind} {tuple(shape)} ({declared} bytes)"
                f" but its data_offsets {offsets} span "
                f"{offsets[1] - offsets[0]} bytes"
            )
        entries[name] = (dtype, tuple(shape), offsets[0], offsets[1])
    # The tensors must tile the data section: no gaps (hidden bytes) and no overlaps.
    position = 0
    for name, (_, _, begin, end) in sorted(entries.items(), key=lambda item: item[1][2:]):
        if begin != position:
            what = "overlaps the previous one" if begin < position else "leaves a gap before it"
            raise SafetensorsError(f"tensor {name!r} at bytes {begin}..{end} {what}")
        position = end
    if position != data_size:
        raise SafetensorsError(f"its tensors cover {position} of the {data_size} data bytes")
    return entries, metadata


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read name -> array from a .safetensors file, in the header's order.

    Raises FileNotFoundError if `path` does not exist, and ValueError naming the path and the
    problem if the file is truncated or its header is malformed; nothing is allocated for a
    tensor until the header as a whole has been checked against the file's size.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "no such file"
        raise FileNotFoundError(f"load: {what}: {path}")
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            if size < 8:
                raise SafetensorsError(f"it has {size} bytes, fewer than the 8-byte header length")
            length = int.from_bytes(f.read(8), "little")
            if length > min(size - 8, MAX_HEADER_BYTES):
                raise SafetensorsError(
                    f"its header claims {length} bytes but the file holds "
                    f"{size - 8} after the length (limit "
                    f"{MAX_HEADER_BYTES})"
                )
            entries, _ = _parse_header(f.read(length), size - 8 - length)
            start = 8 + length
            arrays = {}
            for name, (dtype, shape, begin, end) in entries.items():
                array = np.empty(shape, dtype=dtype)
                f.seek(start + begin)
                # numpy's stubs give ndarray __buffer__ only from Python 3.12 (mypy checks 3.10).
                view = memoryview(array.reshape(-1))  # type: ignore[arg-type]
                if f.readinto(view.cast("B")) != end - begin:
                    raise SafetensorsError(f"tensor {name!r} is cut short")
                # Native byte order for the caller; a no-op on little-endian machines.
                arrays[name] = array.astype(dtype.newbyteorder("="), copy=False)
    except SafetensorsError as exc:
        raise ValueError(f"load: {path} is not a valid .safetensors file: {exc}") from None
    return arrays
