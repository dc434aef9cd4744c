"""Argument normalisation: turning what users pass (numbers, lists, arrays, axes given
numpy's or PyTorch's way, indices, shapes) into what the engine and the rules take, with
errors that name the op.

Everything here works on any tensor (an `engine.Node`) without importing the Tensor class:
a value is lifted to a tensor by `engine.constant`, which makes the class Tensor declared.
"""

from __future__ import annotations

import itertools
import math
import numbers
import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from . import engine
from .engine import Node

if TYPE_CHECKING:  # pragma: no cover
    from .tensor import Tensor

ArrayLike = Any
Axis = int | Sequence[int] | None

_FLOAT_KINDS = "f"


def _as_array(data: Any, dtype: Any, who: str) -> np.ndarray:
    """Turn user data into an ndarray under the dtype policy (see Tensor's docstring)."""
    if isinstance(data, Node):
        data = data._data
    if isinstance(data, (str, bytes)):
        raise TypeError(f"{who}: expected numbers, got a string {data!r}")
    if isinstance(data, np.ndarray | np.generic):
        array = np.asarray(data, dtype=dtype)
    else:
        if isinstance(data, list | tuple) and _holds_graph(data):
            # Copying their numbers would silently cut the graph (a gradient of 0 for
            # everything before them): refuse, and name the op that keeps it.
            raise TypeError(
                f"{who}: the list holds tensors that require grad, and a new tensor made from "
                "their numbers would cut the graph; use autodiff.stack([...]) to keep it, or "
                "detach() them first"
            )
        try:
            array = np.asarray(data, dtype=dtype)
        except ValueError as exc:
            if "inhomogeneous" in str(exc) or "sequence" in str(exc):
                raise ValueError(
                    f"{who}: nested lists must be rectangular (ragged data: {exc})"
                ) from None
            raise ValueError(f"{who}: cannot convert data to numbers ({exc})") from None
        except TypeError as exc:
            raise TypeError(f"{who}: cannot convert {type(data).__name__} to numbers") from exc
        if dtype is None and array.dtype.kind in "iu":
            # Python numbers and lists are teaching arithmetic: exact float64 by default.
            array = array.astype(np.float64)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{who}: unsupported data type {array.dtype} (numbers only)")
    # A 0-d value is kept as a numpy scalar: arithmetic on those is several times faster than
    # on 0-d arrays, which matters for micrograd-style graphs made of thousands of scalars.
    return array[()] if array.ndim == 0 else array


# numpy functions called on a Tensor dispatch to differentiable ops (see interop.py); what
# reaches __array__ is numpy taking the bare numbers, e.g. np.mean([a * a, b * b]) on a list
# of tensors, which would silently drop the graph behind them. Refused for a computed tensor
# while gradients are recorded (as PyTorch refuses t.numpy()); a leaf's numbers (a weight


def _holds_graph(items: list | tuple, budget: int = 100_000) -> bool:
    """Whether a nested list holds a Tensor that requires grad. Lists of tensors are short
    (each is a Python object); the look stops after `budget` items, so a big nested list of
    numbers (a dataset) costs no more than a fraction of its own conversion."""
    pending = [items]
    while pending and budget > 0:
        level = pending.pop()
        budget -= len(level)
        for item in level:
            if isinstance(item, Node):
                if item.requires_grad:
                    return True
            elif isinstance(item, list | tuple):
                pending.append(item)
    return False


# Creation order of tensors made with Tensor(...): drawings number unnamed leaves by it.
_births = itertools.count(1)


_CONSTANTS: dict[tuple[int, float], Tensor] = {}
_CONSTANT_IDS: set[int] = set()


def _own_numbers(array: Any, data: Any) -> Any:
    """`array` (made from `data`), copied when it may still be the caller's memory: a tensor
    owns its numbers (as torch.tensor and np.array make them), so a graph that saved them
    cannot be changed by a later write into the caller's array."""
    source = data._data if isinstance(data, Node) else data
    if (
        type(array) is np.ndarray
        and isinstance(source, np.ndarray)
        and (array is source or array.base is not None)
    ):
        return array.copy()
    return array


def _same_memory(view: np.ndarray, data: Any) -> bool:
    return (
        type(data) is np.ndarray
        and view.shape == data.shape
        and view.strides == data.strides
        and view.dtype == data.dtype
        and view.__array_interface__["data"] == data.__array_interface__["data"]
    )


def _operand(value: Any, like: Tensor) -> Tensor:
    """Wrap the other side of a binary operator as a constant Tensor.

    A Python number takes the dtype numpy would give it next to `like` (float32 stays
    float32 when multiplied by 0.5), matching numpy 2's rules for Python scalars.
    """
    if isinstance(value, Node):
        return cast("Tensor", value)  # every tensor is the result class, Tensor
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        dtype = like._data.dtype
        if dtype.kind != "f":
            dtype = np.result_type(dtype, value)
        # Reuse constants like `2.0`, `1e-9` or the 0 that Python's sum() starts from instead
        # of making a node per use (half of the nodes of a scalar chain). -0.0 is not cached
        # (it equals 0.0 as a key but differs in sign), nor NaN (never equal to itself);
        # nothing can write into a cached constant (see _refuse_shared_constant).
        cacheable = value == value and (value or math.copysign(1.0, value) > 0)
        key = (dtype.num, value)
        if cacheable:
            cached = _CONSTANTS.get(key)
            if cached is not None:
                return cached
        # A numpy scalar, not a 0-d array: creating one is several times cheaper.
        constant = engine.constant(dtype.type(value))
        if cacheable and len(_CONSTANTS) < 4096:
            _CONSTANTS[key] = constant
            _CONSTANT_IDS.add(id(constant))  # cached ones live as long as the process
        return constant
    if isinstance(value, np.ndarray | np.generic | list | tuple | numbers.Number):
        return _lift(value)
    raise TypeError(
        f"unsupported operand type {type(value).__name__} for a Tensor of shape {like.shape}"
    )


def _axis(axis: Any, ndim: int, who: str) -> int:
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TypeError(f"{who}: axis must be an int, got {type(axis).__name__}")
    # A 0-d tensor has one implicit axis, 0 or -1, as in PyTorch (softmax of a scalar).
    in_range = axis in (0, -1) if ndim == 0 else -ndim <= axis < ndim
    if not in_range:
        raise ValueError(f"{who}: axis {axis} is out of range for a tensor with {ndim} axes")
    return int(axis) % ndim if ndim else 0


def _axes(axis: Axis, ndim: int, who: str) -> tuple[int, ...] | None:
    if axis is None:
        return None
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
        axes: tuple = (axis,)
    elif isinstance(axis, (tuple, list)):
        axes = tuple(axis)
    else:
        raise TypeError(
            f"{who}: axis must be an int or a tuple of ints, got {type(axis).__name__} {axis!r}"
        )
    if ndim == 0:
        # As in PyTorch, a scalar has one implicit axis (0 or -1) to reduce or softmax over;
        # the answer is the same as reducing everything.
        if len(axes) <= 1 and all(a in (0, -1) for a in axes):
            return None
        raise ValueError(f"{who}: axis {axis} is out of range for a 0-d tensor")
    normalized = tuple(_axis(a, ndim, who) for a in axes)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"{who}: repeated axis in {axis}")
    return normalized


def _torch_names(
    who: str, axis: Any, keepdims: bool, dim: Any, keepdim: bool | None
) -> tuple[Any, bool]:
    """PyTorch's dim=/keepdim= turned into numpy's axis=/keepdims= (one spelling per call)."""
    if dim is not None:
        if axis is not None:
            raise TypeError(f"{who}: pass axis= or dim= (the same thing), not both")
        axis = dim
    if keepdim is not None:
        keepdims = bool(keepdim)
    return axis, keepdims


def _named_axis_only(name: str, by_position: tuple) -> None:
    """Refuse max(1) / min(1): numpy's x.max(1) is the values, PyTorch's the pair (values,
    indices); `_, predicted = out.max(1)` (PyTorch's tutorial) would take a batch of two
    apart into its two maxima. x.max() and x.max(None) mean the same in both."""
    if by_position and not (len(by_position) == 1 and by_position[0] is None):
        given = ", ".join(map(repr, by_position))
        raise TypeError(
            f"{name}({given}): name the axis, as axis= (numpy's answer: the values) or dim= "
            f"(PyTorch's: values and indices, so `_, predicted = out.{name}(dim=1)` works); "
            "by position it means one in numpy and the other in PyTorch"
        )


def _index(index: Any) -> Any:
    """Replace Tensors (and lists) inside an index by arrays, so numpy sees plain indices.

    Index arrays are copied: the node keeps its index for backward, and a caller writing into
    their array before backward must not move the gradient elsewhere.
    """
    if isinstance(index, tuple):
        return tuple(_index(part) for part in index)
    if isinstance(index, Node):
        index = index._data
    if isinstance(index, np.ndarray):
        return index.copy()
    if isinstance(index, list):
        array = np.asarray([_index(part) for part in index])
        # [] is an empty selection (as in numpy and PyTorch), not an array of floats.
        return array.astype(np.intp) if array.size == 0 else array
    return index


def _clip_bound(bound: Any, name: str, shape: tuple[int, ...]) -> Any:
    """A clip bound as numbers that broadcast to `shape` (None stays None)."""
    if bound is None:
        return None
    if isinstance(bound, Node):
        if bound.requires_grad:
            raise TypeError(
                f"clip: the {name} bound requires grad, but bounds are constants and its "
                "gradient would be lost; use autodiff.maximum / minimum instead"
            )
        bound = bound._data
    array = np.asarray(bound) if not isinstance(bound, (str, bytes)) else None
    if array is None or array.dtype.kind not in "biuf":
        raise TypeError(
            f"clip: the {name} bound must be a number or an array of numbers, "
            f"got {type(bound).__name__} {bound!r}"
        )
    if array.ndim:
        try:
            fits = np.broadcast_shapes(array.shape, shape) == shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"clip: the {name} bound of shape {array.shape} does not broadcast to the "
                f"tensor's shape {shape}"
            )
    return array if array.ndim else array[()]


def _lift(x: ArrayLike) -> Tensor:
    """`x` as a tensor: itself if it is one, else a new constant of its numbers (as
    `Tensor(x)`: the dtype policy, a copy of the caller's array, a birth number for drawings)."""
    if isinstance(x, Node):
        return cast("Tensor", x)
    t = engine.constant(_own_numbers(_as_array(x, None, "Tensor"), x))
    t._born = next(_births)
    return t


def _pair(a: ArrayLike, b: ArrayLike) -> tuple[Tensor, Tensor]:
    """Two operands as Tensors; a Python number takes the other side's dtype (float32 stays)."""
    if isinstance(a, Node):
        a = cast("Tensor", a)
        return a, _operand(b, a)
    if isinstance(b, Node):
        b = cast("Tensor", b)
        return _operand(a, b), b
    like = _lift(np.asarray(a))
    return _operand(a, like), _operand(b, like)


def _shape(shape: tuple, who: str) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    try:
        sizes = tuple(operator.index(n) for n in shape)
    except TypeError:
        raise TypeError(f"{who}: shape must be integers, got {shape}") from None
    if any(n < 0 for n in sizes):
        raise ValueError(f"{who}: negative size in shape {sizes}")
    return sizes


def _float(x: Any) -> Any:
    """Integer input to a floating-point function computes in floating point (uint8 pixels)."""
    x = _lift(x)
    return x.astype(np.float64) if x.dtype.kind in "biu" else x


def _dim(who: str, axis: Any, dim: Any, default: Any = None) -> Any:
    """PyTorch's dim= (or dims=) as numpy's axis=: both spellings are taken, one per call."""
    if dim is None:
        return axis
    if axis is not default and axis != default:
        raise TypeError(f"{who}: pass axis= or dim= (the same thing), not both")
    return dim


def _keep(keepdims: bool, keepdim: bool | None) -> bool:
    return bool(keepdims if keepdim is None else keepdim)


def _count(value: Any, who: str, what: str) -> None:
    """Refuse a negative or non-integer count with the op's name (numpy's says neither)."""
    values = value if isinstance(value, (tuple, list)) else (value,)
    if not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in values
    ):
        raise ValueError(f"{who}: {what} must be non-negative integers, got {value!r}")
