"""Making tensors: from data (`tensor`, `from_numpy`), filled (`zeros`, `ones`, `full`,
`arange`, `eye`, the `_like`s) and random (`rand`, `randn`, with `manual_seed` and the
default generator behind every `rng=None`)."""

from __future__ import annotations

import mmap
import numbers
from typing import Any

import numpy as np

from . import engine
from ._args import ArrayLike, _count, _shape
from .tensor import Tensor


def tensor(data: ArrayLike, **kwargs: Any) -> Tensor:
    return data if isinstance(data, Tensor) and not kwargs else Tensor(data, **kwargs)


def from_numpy(array: np.ndarray) -> Tensor:
    """A constant Tensor over `array`'s memory, without a copy (as torch.from_numpy): for a
    data set too big to hold twice, e.g. `X = from_numpy(x_train)`, then batches `X[idx]`.

    Tensor(array) copies, so a graph can never see the caller change its numbers; sharing
    keeps that promise another way: an array that owns its memory is made read-only, so a
    later write into it fails at once. Memory that is read-only already (np.load with
    mmap_mode="r", np.frombuffer of bytes, a view of such an array) is shared as it is. A
    view of memory that could still be written elsewhere is refused: pass its owner, or copy
    with Tensor(array).
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(
            f"from_numpy: expected a numpy array, got {type(array).__name__} "
            "(Tensor(data) converts anything)"
        )
    if array.dtype.kind not in "biuf":
        raise TypeError(f"from_numpy: unsupported data type {array.dtype} (numbers only)")
    array = np.asarray(array)  # a plain ndarray (np.memmap's view of the same memory)
    owner = engine._owner(array)
    if array.base is None:
        array.flags.writeable = False
    elif (
        array.flags.writeable
        or owner.flags.writeable
        or (owner.base is not None and not isinstance(owner.base, bytes | mmap.mmap))
    ):
        raise ValueError(
            f"from_numpy: the array (shape {array.shape}) views memory that could still be "
            "written through its owner; pass the array that owns it (from_numpy(owner)"
            ".reshape(...) shares it too), or Tensor(array) to copy"
        )
    return engine.constant(array[()] if array.ndim == 0 else array)


# The generator behind every `rng=None` (rand, randn, nn.init, layer weights, Dropout): fresh
# entropy per process, until manual_seed makes it reproducible.
_default_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Seed the default generator, as PyTorch's manual_seed: after `manual_seed(0)` the same
    program draws the same random tensors and initial weights. Returns that generator."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"manual_seed: seed must be an int, not {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"manual_seed: seed must be >= 0, got {seed}")
    # Reseeded in place: modules made earlier (a Dropout with rng=None) hold this very object.
    _default_generator.bit_generator.state = np.random.default_rng(int(seed)).bit_generator.state
    return _default_generator


def as_generator(rng: Any) -> np.random.Generator:
    """None (the default generator, see manual_seed), an int seed, or a numpy Generator -> a
    Generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return _default_generator
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be None, an int seed or a numpy Generator, not {type(rng).__name__}")


def zeros(*shape: Any, dtype: Any = np.float64, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros(_shape(shape, "zeros"), dtype=dtype), requires_grad=requires_grad)


def ones(*shape: Any, dtype: Any = np.float64, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones(_shape(shape, "ones"), dtype=dtype), requires_grad=requires_grad)


def full(
    shape: Any, fill_value: float, dtype: Any = np.float64, requires_grad: bool = False
) -> Tensor:
    shape = _shape((shape,) if isinstance(shape, int) else tuple(shape), "full")
    if not isinstance(fill_value, numbers.Number | np.generic) or isinstance(fill_value, str):
        raise TypeError(f"full: fill_value must be a number, got {fill_value!r}")
    return Tensor(np.full(shape, fill_value, dtype=dtype), requires_grad=requires_grad)


def arange(*args: float, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """numpy's arange: integers (int64) from integer arguments, as numpy and PyTorch give,
    so `logits[arange(n), labels]` indexes; float64 from float arguments or with
    requires_grad=True (only floats have gradients)."""
    if dtype is None:
        integral = all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in args)
        dtype = np.int64 if integral and not requires_grad else np.float64
    return Tensor(np.arange(*args, dtype=dtype), requires_grad=requires_grad)


def rand(
    *shape: Any, rng: Any = None, dtype: Any = np.float64, requires_grad: bool = False
) -> Tensor:
    """Uniform on [0, 1); `rng` is a seed or a numpy Generator, for reproducible runs."""
    data = as_generator(rng).random(_shape(shape, "rand")).astype(dtype, copy=False)
    return Tensor(data, requires_grad=requires_grad)


def randn(
    *shape: Any, rng: Any = None, dtype: Any = np.float64, requires_grad: bool = False
) -> Tensor:
    """Standard normal; `rng` is a seed or a numpy Generator, for reproducible runs."""
    data = as_generator(rng).standard_normal(_shape(shape, "randn")).astype(dtype, copy=False)
    return Tensor(data, requires_grad=requires_grad)


def zeros_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros_like(t._data), requires_grad=requires_grad)


def ones_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones_like(t._data), requires_grad=requires_grad)


def eye(
    n: int, m: int | None = None, dtype: Any = np.float64, requires_grad: bool = False
) -> Tensor:
    _count(n if m is None else (n, m), "eye", "the sizes")
    return Tensor(np.eye(n, m, dtype=dtype), requires_grad=requires_grad)
