"""Data: batching, MNIST (IDX files, checksums, cache, verified downloads), mini-MNIST, toy sets.

Everything here works on plain numpy arrays and never imports the autodiff engine (only, for
a shuffling loader without a seed, the default generator that autodiff.manual_seed seeds); the
training loop wraps batches in Tensors itself.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import io
import math
import os
import struct
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

__all__ = [
    "MINI_MNIST_PATH",
    "MINI_MNIST_SHA256",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "DataLoader",
    "Dataset",
    "MNISTNotFoundError",
    "TensorDataset",
    "Opener",
    "cache_dir",
    "load_mini_mnist",
    "load_mnist",
    "make_moons",
    "make_regression",
    "make_spirals",
    "make_xor",
    "read_idx",
]


def __dir__() -> list[str]:
    # dir() of a module lists its imports and helpers too; show what a user may call.
    return sorted(__all__)


# --- batching --------------------------------------------------------------------------------


class Dataset:
    """A map-style data set, as PyTorch's: subclass it and give `__len__` and
    `__getitem__(i)` (one sample: an array, a tuple such as `(x_i, y_i)`, or a dict).
    `DataLoader(dataset, batch_size=...)` batches it. Any object with those two methods
    works as well; this base only names the idea."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError


class TensorDataset(Dataset):
    """Arrays (or Tensors) with the same first axis, sample i being the tuple of their row i,
    as PyTorch's. `DataLoader(TensorDataset(x, y))` batches them as `DataLoader(x, y)` does."""

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise ValueError("TensorDataset: give at least one array")
        self.tensors = tuple(
            _samples(f"array {i}", getattr(a, "_data", a)) for i, a in enumerate(arrays)
        )
        lengths = [len(a) if a.ndim else None for a in self.tensors]
        if None in lengths or len(set(lengths)) != 1:
            shapes = ", ".join(str(a.shape) for a in self.tensors)
            raise ValueError(
                f"TensorDataset: the arrays must share their first (sample) axis, got "
                f"shapes {shapes}"
            )

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index: Any) -> tuple[np.ndarray, ...]:
        return tuple(a[index] for a in self.tensors)


def _is_dataset(x: Any) -> bool:
    """A map-style data set: indexable and sized, but not the arrays DataLoader takes."""
    if isinstance(x, Dataset):
        return True
    plain = (np.ndarray, list, tuple, str, bytes, dict)
    tensor = hasattr(x, "_data") and hasattr(x, "requires_grad")  # autodiff's, not imported
    return (
        not isinstance(x, plain)
        and not tensor
        and hasattr(x, "__getitem__")
        and hasattr(x, "__len__")
    )


def _collate(samples: list[Any], where: str) -> Any:
    """Stack a batch of samples field by field, as PyTorch's default collate: tuples give a
    tuple of arrays, dicts a dict, anything else one array."""
    first = samples[0]
    if isinstance(first, (tuple, list)):
        if any(not isinstance(s, (tuple, list)) or len(s) != len(first) for s in samples):
            raise ValueError(f"DataLoader: the samples of {where} have different lengths")
        return tuple(_collate([s[k] for s in samples], where) for k in range(len(first)))
    if isinstance(first, dict):
        if any(not isinstance(s, dict) or s.keys() != first.keys() for s in samples):
            raise ValueError(f"DataLoader: the samples of {where} have different keys")
        return {k: _collate([s[k] for s in samples], where) for k in first}
    values = [np.asarray(getattr(s, "_data", s)) for s in samples]
    shapes = {v.shape for v in values}
    if len(shapes) != 1:
        raise ValueError(
            f"DataLoader: the samples of {where} have different shapes "
            f"{sorted(shapes, key=str)[:4]}, so they cannot be stacked into one batch"
        )
    return np.stack(values)


class DataLoader:
    """Mini-batches: `for xb, yb in DataLoader(x, y, batch_size=64)`.

    Over arrays, yields `(xb, yb)`, or `xb` alone when `y` is None. Over a map-style data
    set (`TensorDataset(x, y)`, or any object with `__len__` and `__getitem__`, as PyTorch's
    DataLoader takes), yields its samples stacked field by field (a data set of `(x_i, y_i)`
    pairs gives `(xb, yb)` batches). With shuffle=True the order changes every epoch, drawn
    from one Generator seeded once from `seed`, so two loaders built with the same seed give
    the same batches in the same order, epoch after epoch. Without a seed, that Generator is
    seeded from autodiff's default generator (see autodiff.manual_seed).
    """

    def __init__(
        self,
        x: Any,
        y: Any = None,
        batch_size: int = 64,
        shuffle: bool = False,
        seed: Any = None,
        drop_last: bool = False,
    ) -> None:
        self.dataset: Any = None
        if _is_dataset(x) and isinstance(y, (int, np.integer)) and not isinstance(y, bool):
            # PyTorch's order, DataLoader(dataset, 64): the second argument is batch_size.
            if batch_size != 64 and batch_size != y:
                raise ValueError(
                    f"DataLoader: two batch sizes, {y} (the second argument, PyTorch's "
                    f"batch_size) and batch_size={batch_size}"
                )
            y, batch_size = None, y
        if isinstance(x, TensorDataset) and len(x.tensors) <= 2 and y is None:
            # Two arrays are what this loader batches best: slices, no per-sample calls.
            x, y = x.tensors if len(x.tensors) == 2 else (x.tensors[0], None)
        elif _is_dataset(x):
            if y is not None:
                raise ValueError(
                    f"DataLoader: x is a data set ({type(x).__name__}), which yields whole "
                    f"samples; y must be None"
                )
            self.dataset = x
        if self.dataset is None:
            self._x: np.ndarray | None = _samples("x", x)
            self._y = None if y is None else _samples("y", y)
            if self._x.ndim == 0:
                raise ValueError("DataLoader: x must have a first (sample) axis, got a 0-d array")
            if self._y is not None and (self._y.ndim == 0 or len(self._y) != len(self._x)):
                n_y = "no sample axis" if self._y.ndim == 0 else f"{len(self._y)} samples"
                raise ValueError(
                    f"DataLoader: x has {len(self._x)} samples but y has {n_y} "
                    f"(shapes {self._x.shape} and {self._y.shape})"
                )
            self._n = len(self._x)
        else:
            self._x = self._y = None  # stacked only if asked for (.x, .y)
            self._n = len(self.dataset)
        # bool is an int subclass, but batch_size=True is surely a mistake.
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(
                f"DataLoader: batch_size must be an int, got {type(batch_size).__name__} "
                f"{batch_size!r}"
            )
        if batch_size <= 0:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size}")
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        if seed is None and self.shuffle:
            # As PyTorch's loader: without a seed of its own, the order follows the default
            # generator, so autodiff.manual_seed(0) at the top of a script repeats the run.
            from autodiff.creation import as_generator

            seed = int(as_generator(None).integers(2**63))
        self._rng = np.random.default_rng(seed)

    def _stack_dataset(self) -> None:
        # fit and evaluate read the whole set's inputs and targets (to choose the metric, to
        # score validation data): over a data set they are its samples, stacked once.
        if self._x is not None or self._n == 0:
            return
        whole = _collate([self.dataset[i] for i in range(self._n)], type(self.dataset).__name__)
        if isinstance(whole, tuple) and len(whole) == 2:
            self._x, self._y = whole
        elif isinstance(whole, np.ndarray):
            self._x = whole
        else:
            raise ValueError(
                f"DataLoader: the samples of {type(self.dataset).__name__} are not arrays or "
                f"(input, target) pairs, so there is no x and y to give"
            )

    @property
    def x(self) -> np.ndarray:
        """The inputs (over a data set: its samples' first fields, stacked)."""
        self._stack_dataset()
        return self._x if self._x is not None else np.zeros((0,))

    @property
    def y(self) -> np.ndarray | None:
        """The targets, or None (over a data set: its samples' second fields, stacked)."""
        self._stack_dataset()
        return self._y

    def __len__(self) -> int:
        n = self._n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        n = self._n
        order = self._rng.permutation(n) if self.shuffle else None
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            stop = min(start + self.batch_size, n)
            if self.dataset is not None:
                picks = range(start, stop) if order is None else order[start:stop]
                where = type(self.dataset).__name__
                yield _collate([self.dataset[int(i)] for i in picks], where)
                continue
            # Unshuffled batches are slices: views, no copy.
            index: Any = slice(start, stop) if order is None else order[start:stop]
            x: Any = self._x  # set whenever there is no data set
            if self._y is None:
                yield x[index]
            else:
                yield x[index], self._y[index]


def _samples(name: str, values: Any) -> np.ndarray:
    """`values` as an array of numbers, or an error naming the DataLoader argument: ragged
    nesting and non-numbers would otherwise fail later, deep inside numpy or the model."""
    try:
        array = np.asarray(values)
    except ValueError as exc:  # numpy refuses ragged nesting ("inhomogeneous shape")
        pair = (
            isinstance(values, (tuple, list))
            and len(values) == 2
            and all(np.ndim(v) >= 1 for v in values)
            and len(values[0]) == len(values[1])
        )
        if name == "x" and pair:  # PyTorch's DataLoader(TensorDataset(x, y)) habit
            raise ValueError(
                "DataLoader: x is an (inputs, targets) pair; pass them as two "
                "arguments, DataLoader(x, y, batch_size=...)"
            ) from None
        raise ValueError(
            f"DataLoader: {name} is ragged (its samples have different "
            f"shapes), so it cannot be one array; pad or crop them to one "
            f"shape; for (input, target) pairs, pass the inputs and the "
            f"targets as two arrays, DataLoader(x, y) ({exc})"
        ) from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"DataLoader: {name} must hold numbers, got dtype {array.dtype}")
    return array


# --- reading bytes, bounded ------------------------------------------------------------------

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


def _read_upto(stream: BinaryIO, n: int) -> bytes:
    """At most n bytes of `stream`. Read in chunks, so memory grows with the bytes actually
    there, never with a size some header merely claims."""
    parts, got = [], 0
    while got < n:
        chunk = stream.read(min(n - got, _CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _content(stream: BinaryIO, limit: int, label: str) -> bytes:
    """At most `limit` bytes of the content of `stream`, gunzipped if it starts like gzip.

    The limit also bounds what a small, highly compressed file can expand to.
    """
    with _unzipped(stream, label) as content:
        return _read_guarded(content, limit, label)


def _unzipped(stream: BinaryIO, label: str) -> Any:
    """`stream` itself, or a gunzipping reader over it if it starts like gzip (the caller
    reads it through _read_guarded, which turns damage into a ValueError naming `label`)."""
    gzipped = stream.read(2) == _GZIP_MAGIC
    stream.seek(0)
    if not gzipped:
        return contextlib.nullcontext(stream)
    return gzip.GzipFile(fileobj=stream)


def _read_guarded(stream: BinaryIO, n: int, label: str) -> bytes:
    try:
        return _read_upto(stream, n)
    except (OSError, EOFError, zlib.error) as exc:  # flipped or missing deflate bytes
        raise ValueError(
            f"{label} is not a valid gzip file (truncated or damaged: {exc})"
        ) from None


# --- IDX files -------------------------------------------------------------------------------

# IDX type codes (third byte of the magic number) and their big-endian element types.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(source: str | os.PathLike[str] | bytes, *, max_bytes: int = 1 << 30) -> np.ndarray:
    """Parse an IDX file (the MNIST format), gzipped or raw, from a path or from bytes.

    Returns a native-endian array of the shape the header declares. Anything malformed
    (bad magic, truncated, trailing bytes, damaged gzip) raises ValueError. The declared size is
    checked against the bytes actually present before any array is made, and no more than
    `max_bytes` are ever decompressed, so hostile headers cannot cause huge allocations.
    """
    stream: BinaryIO
    if isinstance(source, (bytes, bytearray, memoryview)):
        name, stream = "<bytes>", io.BytesIO(source)
    else:
        name, stream = str(source), open(source, "rb")  # noqa: SIM115 (closed just below)
    label = f"read_idx: {name}"
    with stream, _unzipped(stream, label) as content:
        # The header first; then no more data than it declares (capped at max_bytes), plus
        # one byte to see excess: a gzip bomb behind a small header costs nothing.
        raw = _read_guarded(content, 4, label)
        ndim = raw[3] if len(raw) == 4 else 0
        raw += _read_guarded(content, 4 * ndim, label)
        if ndim and raw[:2] == b"\x00\x00" and raw[2] in _IDX_TYPES and len(raw) == 4 + 4 * ndim:
            dims = struct.unpack(f">{ndim}I", raw[4:])
            expected = math.prod(dims) * np.dtype(_IDX_TYPES[raw[2]]).itemsize
            raw += _read_guarded(content, min(expected, max_bytes) + 1, label)
        # else: _parse_idx reports the bad or truncated header, with no data read.
    return _parse_idx(raw, name, max_bytes)


def _parse_idx(raw: bytes, name: str, max_bytes: int) -> np.ndarray:
    if len(raw) < 4:
        raise ValueError(f"read_idx: {name} is too short to be an IDX file ({len(raw)} bytes)")
    zero, type_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or type_code not in _IDX_TYPES or ndim == 0:
        raise ValueError(
            f"read_idx: {name} has a bad magic number 0x{raw[:4].hex()} (expected two zero "
            f"bytes, a type code in {sorted(_IDX_TYPES)}, and a dimension count >= 1)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"read_idx: {name} is truncated inside its header ({ndim} dimensions "
            f"need {header} bytes, the file has {len(raw)})"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_TYPES[type_code])
    expected = math.prod(dims) * dtype.itemsize  # a Python int: no overflow
    held = len(raw) - header
    if expected > max_bytes and held > max_bytes:
        raise ValueError(
            f"read_idx: {name} declares shape {dims} ({expected} bytes), more "
            f"than max_bytes={max_bytes}"
        )
    if held != expected:
        problem = "truncated" if held < expected else "trailing bytes after the data"
        raise ValueError(
            f"read_idx: {name} declares shape {dims} ({expected} bytes of data) but holds "
            f"{held} bytes: truncated or corrupt ({problem})"
        )
    try:
        values = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    except ValueError as exc:  # e.g. more dimensions than numpy supports
        raise ValueError(f"read_idx: {name} declares an unusable shape {dims} ({exc})") from None
    return values.astype(dtype.newbyteorder("="))  # native byte order, and a writable copy


# --- MNIST -----------------------------------------------------------------------------------

# SHA-256 of the *uncompressed* files: mirrors recompress, so the .gz bytes differ.
MNIST_FILES = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
_MNIST_SHAPES = {
    "train-images-idx3-ubyte": (60000, 28, 28),
    "train-labels-idx1-ubyte": (60000,),
    "t10k-images-idx3-ubyte": (10000, 28, 28),
    "t10k-labels-idx1-ubyte": (10000,),
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

# Anything that takes a URL and returns a context manager with .read(n); injectable so tests
# can simulate downloads without any network.
Opener = Callable[[str], Any]


def _default_opener(url: str) -> Any:
    return urllib.request.urlopen(url, timeout=30)  # noqa: S310 (fixed mirror URLs)


class MNISTNotFoundError(FileNotFoundError):
    """A MNIST file is in none of the folders searched and could not be downloaded."""


def cache_dir() -> Path:
    """Where downloads go by default: `$XDG_CACHE_HOME/autodiff/mnist` or
    `~/.cache/autodiff/mnist`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "autodiff" / "mnist"


def _search_dirs(data_dir: str | os.PathLike[str] | None) -> list[Path]:
    dirs: list[Path] = []
    if data_dir is not None:
        dirs.append(Path(data_dir))
    env = os.environ.get("AUTODIFF_DATA")
    if env:
        dirs += [Path(env), Path(env) / "mnist"]
    dirs.append(cache_dir())
    return dirs


def _find(name: str, dirs: list[Path]) -> Path | None:
    # Also the names of Kaggle's copy, "train-images.idx3-ubyte" (a dot before idx): the
    # content is checked against the same SHA-256 whatever the file is called.
    dotted = name.replace("-idx", ".idx")
    for folder in dirs:
        for candidate in (name, f"{name}.gz", dotted, f"{dotted}.gz"):
            if (folder / candidate).is_file():
                return folder / candidate
    return None


def _mnist_size(name: str) -> int:
    shape = _MNIST_SHAPES[name]
    return 4 + 4 * len(shape) + math.prod(shape)


def _check_mnist(raw: bytes, name: str, where: str) -> np.ndarray:
    """The array in `raw` (uncompressed bytes of MNIST file `name`), or ValueError saying what
    is wrong with it: header first, since that names the problem better than a checksum."""
    shape = _MNIST_SHAPES[name]
    magic = 0x0800 + len(shape)  # unsigned bytes (0x08), then the dimension count: 2051 / 2049
    found = int.from_bytes(raw[:4], "big")
    if len(raw) < 4 or found != magic:
        raise ValueError(
            f"{where} is corrupt: bad magic number {found}, expected {magic} "
            f"({'images' if len(shape) == 3 else 'labels'})"
        )
    header = 4 + 4 * len(shape)
    dims = struct.unpack(f">{len(shape)}I", raw[4:header]) if len(raw) >= header else None
    if dims != shape:
        raise ValueError(f"{where} is corrupt: its header declares shape {dims}, expected {shape}")
    size = _mnist_size(name)
    if len(raw) != size:
        problem = "truncated" if len(raw) < size else "too long"
        raise ValueError(
            f"{where} is corrupt: {problem}, {len(raw)} bytes uncompressed instead of {size}"
        )
    digest = hashlib.sha256(raw).hexdigest()
    if digest != MNIST_FILES[name]:
        raise ValueError(
            f"{where} is corrupt: checksum mismatch (SHA-256 of the uncompressed "
            f"bytes is {digest}, expected {MNIST_FILES[name]})"
        )
    return _parse_idx(raw, where, len(raw))


def _load_file(path: Path, name: str) -> np.ndarray:
    where = f"load_mnist: {path}"
    try:
        with path.open("rb") as stream:
            # One byte over the true size is enough to tell "too long" from "just right".
            raw = _content(stream, _mnist_size(name) + 1, where)
        return _check_mnist(raw, name, where)
    except ValueError as exc:
        raise ValueError(
            f"{exc}. Delete {path} and load_mnist will download it again (or put a good copy there)"
        ) from None


def _fetch(response: Any, limit: int, label: str, progress: bool) -> bytes:
    """The response body, with a progress bar; refuses more than `limit` bytes so a
    misbehaving server cannot fill memory."""
    headers = getattr(response, "headers", None)
    total = int((headers.get("Content-Length") if headers else None) or 0)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total or None, unit="B", unit_scale=True, desc=label, leave=False)
    parts, got = [], 0
    try:
        while chunk := response.read(1 << 16):
            got += len(chunk)
            if got > limit:
                raise ValueError(f"more than {limit} bytes, not the MNIST file")
            parts.append(chunk)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return b"".join(parts)


def _write_atomically(data: bytes, target: Path) -> None:
    """Store a verified download under its real name, atomically (nn's one atomic writer), so
    no run ever finds a partial file there."""
    from .serialization import write_atomic

    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, lambda out: out.write(data), "load_mnist")


def _download(
    name: str, target_dir: Path, opener: Opener, mirrors: tuple[str, ...], progress: bool
) -> tuple[np.ndarray | None, list[str]]:
    """Fetch `name`.gz from the first mirror whose content verifies, and store it in
    `target_dir`. Returns the array (None if every mirror failed) and the failures."""
    failures = []
    # A gzip file is never much bigger than its content; twice is a generous ceiling.
    limit = 2 * _mnist_size(name) + (1 << 16)
    for mirror in mirrors:
        url = mirror.rstrip("/") + f"/{name}.gz"
        # Any failure, of the network or of the content: note it and try the next mirror.
        try:
            with opener(url) as response:
                data = _fetch(response, limit, f"{name}.gz", progress)
        except (OSError, EOFError, ValueError, http.client.HTTPException) as exc:
            failures.append(f"{url}: download failed ({type(exc).__name__}: {exc})")
            continue
        try:
            raw = _content(io.BytesIO(data), _mnist_size(name) + 1, url)
            array = _check_mnist(raw, name, url)
        except ValueError as exc:
            failures.append(str(exc))  # already names the URL and the problem
            continue
        _write_atomically(data, target_dir / f"{name}.gz")
        return array, failures
    return None, failures


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    progress: bool = True,
    opener: Opener | None = None,
    mirrors: tuple[str, ...] = MNIST_MIRRORS,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """MNIST as `((x_train, y_train), (x_test, y_test))`: images float32 in [0, 1] of shape
    (N, 784), labels int64.

    Each of the four IDX files (raw or `.gz`, also under Kaggle's names such as
    `train-images.idx3-ubyte`) is looked for in `data_dir`, then
    `$AUTODIFF_DATA` and `$AUTODIFF_DATA/mnist`, then the user cache (see `cache_dir`), and is
    checked (header, size, SHA-256 of the uncompressed bytes) before use. A missing file is
    downloaded from `mirrors` in turn into `data_dir` (or the cache), verified, and moved into
    place only once complete. `download=False`, or `AUTODIFF_OFFLINE=1` in the environment,
    never touches the network. `opener(url)` replaces `urllib.request.urlopen` (for tests).

    Raises MNISTNotFoundError (a FileNotFoundError) naming the missing file, every folder
    searched and every mirror that failed; ValueError for a corrupt file, naming it.
    """
    dirs = _search_dirs(data_dir)
    offline = bool(os.environ.get("AUTODIFF_OFFLINE"))  # machines without network say so once
    target = Path(data_dir) if data_dir is not None else cache_dir()
    arrays = {}
    for name in MNIST_FILES:
        path = _find(name, dirs)
        if path is not None:
            arrays[name] = _load_file(path, name)
            continue
        looked = "".join(f"\n  {d}" for d in dirs)
        if not download or offline:
            reason = "download=False" if not download else "AUTODIFF_OFFLINE is set"
            raise MNISTNotFoundError(
                f"load_mnist: {name} (or {name}.gz) not found, and not downloaded "
                f"({reason}). Looked in:{looked}"
            )
        array, failures = _download(name, target, opener or _default_opener, mirrors, progress)
        if array is None:
            tried = "".join(f"\n  {f}" for f in failures) or " (no mirrors given)"
            raise MNISTNotFoundError(
                f"load_mnist: {name} (or {name}.gz) not found. Looked in:{looked}\n"
                f"and every download failed:{tried}"
            )
        arrays[name] = array
    x_train = arrays["train-images-idx3-ubyte"].reshape(-1, 784).astype(np.float32) / 255.0
    x_test = arrays["t10k-images-idx3-ubyte"].reshape(-1, 784).astype(np.float32) / 255.0
    y_train = arrays["train-labels-idx1-ubyte"].astype(np.int64)
    y_test = arrays["t10k-labels-idx1-ubyte"].astype(np.int64)
    return (x_train, y_train), (x_test, y_test)


# --- mini-MNIST (shipped inside the package) ---------------------------------------------------

MINI_MNIST_PATH = Path(__file__).with_name("_data") / "mini_mnist.npz"
# Written by nn/_data/make_mini_mnist.py, which prints the new value whenever it rebuilds.
MINI_MNIST_SHA256 = "5b13ff1146786296c98496262b34bdfdecede8966426c66c7269c3834052b892"


def load_mini_mnist() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A fixed, balanced subset of MNIST shipped with the package, in the format of
    `load_mnist`: the first 500 training and first 100 test images of each digit, in file
    order, so examples and tests run offline."""
    blob = MINI_MNIST_PATH.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != MINI_MNIST_SHA256:
        raise ValueError(
            f"load_mini_mnist: {MINI_MNIST_PATH} is corrupt or was rebuilt "
            f"without updating MINI_MNIST_SHA256 (SHA-256 {digest}, expected "
            f"{MINI_MNIST_SHA256})"
        )
    with np.load(io.BytesIO(blob), allow_pickle=False) as f:
        x_train, y_train = f["x_train"], f["y_train"]
        x_test, y_test = f["x_test"], f["y_test"]
    return (
        (x_train.reshape(-1, 784).astype(np.float32) / 255.0, y_train.astype(np.int64)),
        (x_test.reshape(-1, 784).astype(np.float32) / 255.0, y_test.astype(np.int64)),
    )


# --- toy data sets ---------------------------------------------------------------------------


def _check_size(who: str, name: str, value: Any, low: int = 1) -> int:
    """A count of points or classes as an int, or an error naming the generator (numpy's own
    says "negative dimensions are not allowed" or "scale < 0", naming nothing)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{who}: {name} must be an int >= {low}, got {value!r}")
    return int(value)


def _check_noise(who: str, noise: Any) -> float:
    if (
        isinstance(noise, bool)
        or not isinstance(noise, (int, float, np.integer, np.floating))
        or not 0 <= noise < math.inf
    ):
        raise ValueError(f"{who}: noise is a standard deviation, a number >= 0, got {noise!r}")
    return float(noise)


def make_xor() -> tuple[np.ndarray, np.ndarray]:
    """The four XOR points, shape (4, 2), and their targets, shape (4, 1), both float64."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    y = np.array([[0], [1], [1], [0]], dtype=np.float64)
    return x, y


def make_moons(
    n: int = 100,
    noise: float = 0.1,
    seed: Any = 0,
    *,
    n_samples: int | None = None,
    random_state: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved half circles: x of shape (n, 2) float64, labels 0/1 of shape (n,)
    int64. Class 0 is the upper arc (centre (0, 0)), class 1 the lower (centre (1, 0.5)).

    `n_samples` and `random_state` are scikit-learn's names for `n` and `seed` (micrograd's
    demo calls `make_moons(n_samples=100, noise=0.1)`); the points are this function's own.
    """
    if n_samples is not None:
        if n != 100:
            raise TypeError("make_moons: pass n or n_samples (the same thing), not both")
        n = n_samples
    if random_state is not None:
        if seed != 0:
            raise TypeError("make_moons: pass seed or random_state (the same thing), not both")
        seed = random_state
    n, noise = _check_size("make_moons", "n", n), _check_noise("make_moons", noise)
    rng = np.random.default_rng(seed)
    n_top = n // 2
    angles_top = np.linspace(0, np.pi, n_top)
    angles_bottom = np.linspace(0, np.pi, n - n_top)
    top = np.stack([np.cos(angles_top), np.sin(angles_top)], axis=1)
    bottom = np.stack([1 - np.cos(angles_bottom), 0.5 - np.sin(angles_bottom)], axis=1)
    x = np.concatenate([top, bottom]) + rng.normal(0, noise, size=(n, 2))
    y = np.concatenate([np.zeros(n_top), np.ones(n - n_top)]).astype(np.int64)
    order = rng.permutation(n)  # mixed classes, so unshuffled batches still see both
    return x[order], y[order]


def make_spirals(
    n_per_class: int = 100, n_classes: int = 3, noise: float = 0.2, seed: Any = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms, one per class: x of shape (n_per_class * n_classes, 2)
    float64, labels int64. The radius grows from 0 to 1 along each arm; `noise` jitters the
    angle."""
    n_per_class = _check_size("make_spirals", "n_per_class", n_per_class)
    n_classes = _check_size("make_spirals", "n_classes", n_classes)
    noise = _check_noise("make_spirals", noise)
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(n_classes):
        radius = np.linspace(0.0, 1.0, n_per_class)
        theta = np.linspace(c * 4.0, (c + 1) * 4.0, n_per_class)
        theta = theta + rng.normal(0, noise, n_per_class)
        xs.append(np.stack([radius * np.sin(theta), radius * np.cos(theta)], axis=1))
        ys.append(np.full(n_per_class, c, dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def make_regression(
    n: int = 100, kind: str = "linear", noise: float = 0.1, seed: Any = 0
) -> tuple[np.ndarray, np.ndarray]:
    """1-D regression, x sorted in [-1, 1]: y = x + noise ("linear") or y = x**2 + noise
    ("quadratic"), noise normal with standard deviation `noise`. Both of shape (n, 1)."""
    if kind not in ("linear", "quadratic"):
        raise ValueError(f"make_regression: kind must be 'linear' or 'quadratic', got {kind!r}")
    n, noise = _check_size("make_regression", "n", n), _check_noise("make_regression", noise)
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-1, 1, size=(n, 1)), axis=0)
    clean = x if kind == "linear" else x**2
    return x, clean + rng.normal(0, noise, size=(n, 1))
