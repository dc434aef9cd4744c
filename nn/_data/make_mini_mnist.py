"""Build nn/_data/mini_mnist.npz, the small MNIST subset shipped inside the package.

The subset is fixed and balanced: the first 500 training and the first 100 test images of each
digit, in file order, stored as uint8 in a compressed .npz with fixed timestamps (the same
inputs give the same bytes). Run from the repository root:

    python -m nn._data.make_mini_mnist [MNIST_DIR] [--out PATH]

MNIST_DIR defaults to ../shared/data/mnist beside the checkout. The script prints the file's
SHA-256; copy it into MINI_MNIST_SHA256 in nn/data.py after a rebuild.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

import numpy as np

from nn.data import MINI_MNIST_PATH, load_mnist
from nn.serialization import _write_npz

DEFAULT_SOURCE = Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"


def first_per_class(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Indices of the first `per_class` samples of each digit, in file order."""
    picked = [np.flatnonzero(labels == digit)[:per_class] for digit in range(10)]
    return np.sort(np.concatenate(picked))


def build(
    source_dir: str | os.PathLike[str] = DEFAULT_SOURCE,
    out: str | os.PathLike[str] = MINI_MNIST_PATH,
    per_class_train: int = 500,
    per_class_test: int = 100,
) -> Path:
    """Write the subset of the verified MNIST files in `source_dir` to `out`."""
    (x_train, y_train), (x_test, y_test) = load_mnist(source_dir, download=False)
    train = first_per_class(y_train, per_class_train)
    test = first_per_class(y_test, per_class_test)
    # Back to the original bytes: load_mnist's floats are exactly k / 255.
    to_uint8 = lambda x: np.round(x * 255).astype(np.uint8).reshape(-1, 28, 28)
    arrays = {
        "x_train": to_uint8(x_train[train]),
        "y_train": y_train[train].astype(np.uint8),
        "x_test": to_uint8(x_test[test]),
        "y_test": y_test[test].astype(np.uint8),
    }
    out = Path(out)
    with out.open("wb") as f:
        _write_npz(f, arrays, compress=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "source",
        nargs="?",
        default=DEFAULT_SOURCE,
        help="folder with the four MNIST IDX files (default: %(default)s)",
    )
    parser.add_argument("--out", default=MINI_MNIST_PATH, help="default: %(default)s")
    args = parser.parse_args(argv)
    path = build(args.source, args.out)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"{path}: {path.stat().st_size} bytes, SHA-256 {digest}")


if __name__ == "__main__":
    main()
