"""Data: batching, MNIST (IDX files, checksums, cache, verified downloads), mini-MNIST, toy sets."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

# --- batching --------------------------------------------------------------------------------


class DataLoader:
    """Mini-batches over numpy arrays: `for xb, yb in DataLoader(x, y, batch_size=64)`.

    With shuffle=True the order changes every epoch, drawn from a Generator seeded once from
    `seed`, so two loaders with the same seed give the same batches in the same order.
    """

    def __init__(self, x: Any, y: Any = None, batch_size: int = 64, shuffle: bool = False,
                 seed: Any = None, drop_last: bool = False) -> None:
        self.x = np.asarray(x)
        self.y = None if y is None else np.asarray(y)
        if self.x.ndim == 0:
            raise ValueError("DataLoader: x must have a first (sample) axis, got a scalar")
        if self.y is not None and len(self.y) != len(self.x):
            raise ValueError(
                f"DataLoader: x has {len(self.x)} samples but y has {len(self.y)} "
                f"(shapes {self.x.shape} and {self.y.shape})"
            )
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) \
                or batch_size <= 0:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        n = len(self.x)
        order = self._rng.permutation(n) if self.shuffle else None
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            stop = min(start + self.batch_size, n)
            if order is None:
                index: Any = slice(start, stop)  # a view: no copy for unshuffled batches
            else:
                index = order[start:stop]
            if self.y is None:
                yield self.x[index]
            else:
                yield self.x[index], self.y[index]


# --- IDX files -------------------------------------------------------------------------------

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(source: str | os.PathLike | bytes) -> np.ndarray:
    """Parse an IDX file (the MNIST format), gzipped or raw, from a path or bytes.

    The header is checked against the actual number of bytes before anything is allocated, so
    a corrupt or hostile file raises ValueError instead of allocating gigabytes.
    """
    if isinstance(source, (bytes, bytearray)):
        raw, name = bytes(source), "<bytes>"
    else:
        name = str(source)
        raw = Path(source).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise ValueError(f"read_idx: {name} is not a valid gzip file ({exc})") from None
    if len(raw) < 4:
        raise ValueError(f"read_idx: {name} is too short to be an IDX file ({len(raw)} bytes)")
    zero, type_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or type_code not in _IDX_TYPES or ndim == 0:
        raise ValueError(f"read_idx: {name} has a bad magic number {raw[:4].hex()}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"read_idx: {name} is truncated inside its header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_TYPES[type_code])
    expected = dtype.itemsize
    for d in dims:
        expected *= d
    if len(raw) - header != expected:
        raise ValueError(
            f"read_idx: {name} declares shape {dims} ({expected} bytes of data) but holds "
            f"{len(raw) - header} bytes: truncated or corrupt"
        )
    values = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return values.astype(dtype.newbyteorder("="))  # native byte order, and a writable copy


# --- MNIST -----------------------------------------------------------------------------------

# SHA-256 of the *uncompressed* files (mirrors recompress, so the .gz bytes differ).
MNIST_FILES = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

# Injectable so tests can simulate downloads without any network.
Opener = Callable[[str], Any]


def _default_opener(url: str) -> Any:
    return urllib.request.urlopen(url, timeout=30)  # noqa: S310 (fixed https mirrors)


class MNISTNotFoundError(FileNotFoundError):
    """A MNIST file is in none of the folders searched and could not be downloaded."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "autodiff" / "mnist"


def _search_dirs(data_dir: str | os.PathLike | None) -> list[Path]:
    dirs: list[Path] = []
    if data_dir is not None:
        dirs.append(Path(data_dir))
    env = os.environ.get("AUTODIFF_DATA")
    if env:
        dirs += [Path(env), Path(env) / "mnist"]
    dirs.append(cache_dir())
    return dirs


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _verified(path: Path, name: str) -> bytes:
    """The uncompressed bytes of `path`, after checking them against the known checksum."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"load_mnist: {path} is not a valid gzip file ({exc})") from None
    digest = _sha256(raw)
    if digest != MNIST_FILES[name]:
        raise ValueError(
            f"load_mnist: {path} is corrupt or not the MNIST file it claims to be "
            f"(SHA-256 {digest[:16]}..., expected {MNIST_FILES[name][:16]}...)"
        )
    return raw


def _find(name: str, dirs: list[Path]) -> Path | None:
    for folder in dirs:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _download(name: str, target_dir: Path, opener: Opener, mirrors: tuple[str, ...],
              progress: bool) -> Path:
    """Fetch name.gz from the first mirror that gives verified bytes; publish atomically."""
    failures = []
    for mirror in mirrors:
        url = mirror + name + ".gz"
        try:
            with opener(url) as response:
                total = int(response.headers.get("Content-Length", 0) or 0) \
                    if hasattr(response, "headers") else 0
                data = _read_with_progress(response, total, f"{name}.gz", progress)
            raw = gzip.decompress(data)
        except Exception as exc:  # noqa: BLE001 - any failure means: try the next mirror
            failures.append(f"{url}: {exc}")
            continue
        if _sha256(raw) != MNIST_FILES[name]:
            failures.append(f"{url}: checksum mismatch")
            continue
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / f"{name}.gz"
        # Written beside the target and renamed only when complete and verified, so no later
        # run can ever find a partial file under the real name.
        fd, tmp = tempfile.mkstemp(dir=target_dir, prefix=f".{name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target
    raise MNISTNotFoundError(
        f"load_mnist: could not download {name}: " + "; ".join(failures)
    )


def _read_with_progress(response: Any, total: int, label: str, progress: bool) -> bytes:
    buffer = io.BytesIO()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total or None, unit="B", unit_scale=True, desc=label, leave=False)
    try:
        while True:
            chunk = response.read(1 << 16)
            if not chunk:
                break
            buffer.write(chunk)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return buffer.getvalue()


def load_mnist(
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    progress: bool = True,
    opener: Opener | None = None,
    mirrors: tuple[str, ...] = MNIST_MIRRORS,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """MNIST as ((x_train, y_train), (x_test, y_test)): images float32 in [0, 1], shape
    (N, 784); labels int64.

    Looks in `data_dir`, then `$AUTODIFF_DATA` (and its `mnist/`), then the user cache
    (`~/.cache/autodiff/mnist`), for each file raw or gzipped, and verifies its SHA-256.
    Missing files are downloaded into the cache (or `data_dir` if given) from public mirrors,
    verified, and moved into place only when complete; set `AUTODIFF_OFFLINE=1` to never
    download.
    """
    dirs = _search_dirs(data_dir)
    if os.environ.get("AUTODIFF_OFFLINE"):
        download = False  # machines without network (CI) say so once, in the environment
    arrays = {}
    for name in MNIST_FILES:
        path = _find(name, dirs)
        if path is None:
            if not download:
                raise MNISTNotFoundError(
                    f"load_mnist: {name}(.gz) not found; looked in: "
                    + ", ".join(str(d) for d in dirs)
                )
            target = Path(data_dir) if data_dir is not None else cache_dir()
            try:
                path = _download(name, target, opener or _default_opener, mirrors, progress)
            except MNISTNotFoundError as exc:
                raise MNISTNotFoundError(
                    f"{exc}\n{name}(.gz) was not found in: " + ", ".join(str(d) for d in dirs)
                ) from None
        arrays[name] = read_idx(_verified(path, name))
    x_train = arrays["train-images-idx3-ubyte"].reshape(-1, 784).astype(np.float32) / 255.0
    x_test = arrays["t10k-images-idx3-ubyte"].reshape(-1, 784).astype(np.float32) / 255.0
    y_train = arrays["train-labels-idx1-ubyte"].astype(np.int64)
    y_test = arrays["t10k-labels-idx1-ubyte"].astype(np.int64)
    return (x_train, y_train), (x_test, y_test)


# --- mini-MNIST (shipped inside the package) ---------------------------------------------------

MINI_MNIST_PATH = Path(__file__).with_name("_data") / "mini_mnist.npz"


def load_mini_mnist() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A fixed, balanced subset of MNIST shipped with the package (500 training and 100 test
    images per digit), in the same format as `load_mnist`, so examples run offline."""
    with np.load(MINI_MNIST_PATH, allow_pickle=False) as f:
        x_train, y_train = f["x_train"], f["y_train"]
        x_test, y_test = f["x_test"], f["y_test"]
    return (
        (x_train.reshape(-1, 784).astype(np.float32) / 255.0, y_train.astype(np.int64)),
        (x_test.reshape(-1, 784).astype(np.float32) / 255.0, y_test.astype(np.int64)),
    )


def make_mini_mnist(source_dir: str | os.PathLike, path: str | os.PathLike = MINI_MNIST_PATH,
                    per_class_train: int = 500, per_class_test: int = 100) -> Path:
    """Build the mini-MNIST file: the first N images of each digit, in file order."""
    (x_train, y_train), (x_test, y_test) = load_mnist(source_dir, download=False)

    def pick(y: np.ndarray, per_class: int) -> np.ndarray:
        return np.sort(np.concatenate([np.flatnonzero(y == d)[:per_class] for d in range(10)]))

    train, test = pick(y_train, per_class_train), pick(y_test, per_class_test)
    to_bytes = lambda x: np.round(x * 255).astype(np.uint8)  # exact: inputs were k/255
    np.savez_compressed(
        path,
        x_train=to_bytes(x_train[train]), y_train=y_train[train].astype(np.uint8),
        x_test=to_bytes(x_test[test]), y_test=y_test[test].astype(np.uint8),
    )
    return Path(path)


# --- toy data sets ---------------------------------------------------------------------------


def make_xor() -> tuple[np.ndarray, np.ndarray]:
    """The four XOR points and their targets, shape (4, 2) and (4, 1)."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    y = np.array([[0], [1], [1], [0]], dtype=np.float64)
    return x, y


def make_moons(n: int = 100, noise: float = 0.1, seed: Any = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved half circles; labels 0/1 of shape (n,)."""
    rng = np.random.default_rng(seed)
    n_top = n // 2
    angles_top = np.linspace(0, np.pi, n_top)
    angles_bottom = np.linspace(0, np.pi, n - n_top)
    top = np.stack([np.cos(angles_top), np.sin(angles_top)], axis=1)
    bottom = np.stack([1 - np.cos(angles_bottom), 0.5 - np.sin(angles_bottom)], axis=1)
    x = np.concatenate([top, bottom]) + rng.normal(0, noise, size=(n, 2))
    y = np.concatenate([np.zeros(n_top), np.ones(n - n_top)]).astype(np.int64)
    order = rng.permutation(n)
    return x[order], y[order]


def make_spirals(n_per_class: int = 100, n_classes: int = 3, noise: float = 0.2,
                 seed: Any = 0) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms, one per class; labels of shape (n_per_class * n_classes,)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(n_classes):
        radius = np.linspace(0.0, 1.0, n_per_class)
        theta = np.linspace(c * 4.0, (c + 1) * 4.0, n_per_class) + rng.normal(0, noise,
                                                                            n_per_class)
        xs.append(np.stack([radius * np.sin(theta), radius * np.cos(theta)], axis=1))
        ys.append(np.full(n_per_class, c, dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def make_regression(n: int = 100, kind: str = "linear", noise: float = 0.1,
                    seed: Any = 0) -> tuple[np.ndarray, np.ndarray]:
    """1-D regression: y = x + noise ("linear") or y = x**2 + noise ("quadratic"), x in [-1, 1]."""
    if kind not in ("linear", "quadratic"):
        raise ValueError(f"make_regression: kind must be 'linear' or 'quadratic', got {kind!r}")
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-1, 1, size=(n, 1)), axis=0)
    clean = x if kind == "linear" else x**2
    return x, clean + rng.normal(0, noise, size=(n, 1))
