"""Shape and indexing primitives: reshape, transpose, broadcast_to, getitem and its adjoint
scatter_add, setitem, concatenate.

All but setitem are linear, so each is its own JVP and its VJP is its transpose: reshape back,
transpose by the inverse permutation, getitem <-> scatter_add, sum back a broadcast (the
engine's unbroadcast does that, so broadcast_to's rule is the identity).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import batching
from .elementwise import where
from .table import Op, call, is_basic_index, register, value

reshape = register(
    "reshape",
    lambda x, *, shape: np.reshape(x, shape),
    lambda g, out, x, *, shape: g.reshape(x.shape),
    linear=True,
    numpy=((np.reshape, "reshape"), (np.ravel, "ravel")),
    method="reshape",
    formula="1",
    onnx="Reshape",
    batch=batching.reshape,
)
transpose = register(
    "transpose",
    lambda x, *, axes: np.transpose(x, axes),
    lambda g, out, x, *, axes: g.transpose(tuple(np.argsort(axes))),
    linear=True,
    numpy=((np.transpose, "transpose"), (np.swapaxes, "method:swapaxes")),
    method="transpose",
    formula="1",
    onnx="Transpose",
    batch=batching.transpose,
)


def _broadcast_forward(x: Any, *, shape: tuple[int, ...]) -> Any:
    if math.prod(shape) > 1 << 16 or x.ndim > len(shape):
        return np.broadcast_to(x, shape)  # a view: no memory for big reductions
    # np.broadcast_to costs ~10 us (it builds an nditer); a filled copy of a small array
    # costs ~1 us, and small reductions (losses, biases) are the common case of its rule.
    out = np.empty(shape, dtype=x.dtype)
    out[...] = x
    return out


# The engine's unbroadcast turns g back into x's shape, so this rule is the identity.
broadcast_to = register(
    "broadcast_to",
    _broadcast_forward,
    lambda g, out, x, *, shape: g,
    linear=True,
    numpy=((np.broadcast_to, "method"),),
    method="broadcast_to",
    formula="1",
    onnx="Expand",
    batch=batching.broadcast,
)


def broadcast(g: Any, shape: tuple[int, ...]) -> Any:
    """`g` broadcast to `shape` (a sum's gradient spread back over the summed axes)."""
    return call(broadcast_to, g, shape=shape)


def _setitem_forward(x: Any, v: Any, *, index: Any) -> Any:
    out = np.array(x)  # a copy: the tensor written into may be saved by a pending graph
    out[index] = v
    return out if out.ndim else out[()]


def _setitem_vjp_x(g: Any, out: Any, x: Any, v: Any, *, index: Any) -> Any:
    kept = np.ones(np.shape(value(x)), dtype=bool)  # the overwritten places get nothing
    kept[index] = False
    return call(where, g, 0.0, cond=kept)


def _last_writes(shape: tuple[int, ...], index: Any) -> np.ndarray:
    """Which places of `x[index]` a write into it keeps: with a repeated advanced index only
    one write per element lands, and only that one may receive the element's gradient.
    numpy decides which by writing the places' own numbers, so the rule follows numpy."""
    selected = np.shape(np.empty(shape, dtype=bool)[index])
    order = np.arange(math.prod(selected)).reshape(selected)
    written = np.full(shape, -1)
    written[index] = order
    return written[index] == order


def _setitem_vjp_v(g: Any, out: Any, x: Any, v: Any, *, index: Any) -> Any:
    picked = call(getitem, g, index=index)
    if not is_basic_index(index):  # a basic index never names one element twice
        picked = call(where, picked, 0.0, cond=_last_writes(np.shape(value(x)), index))
    # A value with extra leading axes of size 1 was squeezed into its slot; give them back
    # (as size 1: the slot may also have broadcast the value, which the engine sums back).
    if picked.ndim < v.ndim:
        return picked.reshape((1,) * (v.ndim - picked.ndim) + picked.shape)
    return picked


def _setitem_jvp_v(t: Any, out: Any, x: Any, v: Any, *, index: Any) -> Any:
    # Writing v into zeros is linear in v: the op itself carries v's tangent into place.
    zeros = np.zeros(np.shape(value(x)), dtype=np.result_type(value(out)))
    return call(setitem, zeros, t, index=index)


# `buf[i] = w` with w (or buf) in a graph: recorded so w gets its gradient (as PyTorch does).
# x's rule is a mask: the same both ways.
setitem = register(
    "setitem",
    _setitem_forward,
    _setitem_vjp_x,
    _setitem_vjp_v,
    jvp=(_setitem_vjp_x, _setitem_jvp_v),
    linear=True,
    method="__setitem__",
    formula=("1 - written", "1"),
    onnx="ScatterND",
    batch=batching.setitem,
)


def _getitem_forward(x: Any, *, index: Any) -> Any:
    # Rows picked by an integer array (a batch gathered from a data set): ndarray.take is
    # numpy's faster path for it, same values, errors and layout (MNIST batch of 64 from the
    # 60,000 images, inside the training loop: 22-23 us -> 18-19 us).
    if type(index) is np.ndarray and index.dtype.kind in "iu" and type(x) is np.ndarray and x.ndim:
        return x.take(index, 0)
    return x[index]


def _scatter_forward(g: Any, *, shape: tuple[int, ...], index: Any) -> np.ndarray:
    result = np.zeros(shape, dtype=np.result_type(g))
    if is_basic_index(index):
        result[index] = g  # a basic index never repeats an element: plain assignment is exact
    else:
        np.add.at(result, index, g)  # repeated integer indices must add up, not overwrite
    return result


getitem = register(
    "getitem",
    _getitem_forward,
    lambda g, out, x, *, index: call(scatter_add, g, shape=x.shape, index=index),
    linear=True,
    method="__getitem__",
    formula="1",
    onnx="Gather",
    batch=batching.getitem,
)
# The adjoint of indexing (used by getitem's rule, so second derivatives through indexing work).
scatter_add: Op = register(  # typed: getitem's rule names it before it is defined
    "scatter_add",
    _scatter_forward,
    lambda g, out, x, *, shape, index: call(getitem, g, index=index),
    linear=True,
    formula="1",
    onnx="ScatterND",
    batch=batching.scatter,
)


def _concatenate_vjp(i: int, g: Any, out: Any, *xs: Any, axis: int) -> Any:
    start = sum(x.shape[axis] for x in xs[:i])
    window = (slice(None),) * axis + (slice(start, start + xs[i].shape[axis]),)
    return g[window]


concatenate = register(
    "concatenate",
    lambda *xs, axis: np.concatenate(xs, axis=axis),
    _concatenate_vjp,
    variadic=True,
    linear=True,
    numpy=((np.concatenate, "concatenate"),),
    formula="1",
    onnx="Concat",
    batch=batching.concatenate,
)
