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
from .table import NoOnnx, Op, call, is_basic_index, register, value

# Slice bounds meaning "to the end" (either way): ONNX clamps them to the axis, as Python does.
_INT64_MAX, _INT64_MIN = np.iinfo(np.int64).max, np.iinfo(np.int64).min


def _int64(values: Any) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def _index_parts(index: Any, ndim: int) -> list[Any]:
    """An index as a list of parts, an Ellipsis spelled out as the full slices it stands for."""
    parts = list(index) if isinstance(index, tuple) else [index]
    if any(p is Ellipsis for p in parts):
        at = next(i for i, p in enumerate(parts) if p is Ellipsis)
        named = sum(1 for p in parts if p is not None and p is not Ellipsis)
        parts[at : at + 1] = [slice(None)] * (ndim - named)
    return parts


# ONNX: the traced output shape, with -1 on the axis that follows the batch size, so that the
# file reshapes any batch (a merged axis, N*6, is one varying axis too).
def _reshape_onnx(e: Any, names: list[str], out: Any, x: Any, *, shape: Any) -> str:
    target = list(np.shape(out))
    varying = e.varying_out
    if len(varying) > 1:
        e.static(f"reshape to {tuple(target)} spreads the batch over several axes")
    elif varying:
        target[varying[0]] = -1
    # allowzero: an axis of size 0 means 0 here, not "copy the input's" (ONNX's default).
    extra = {"allowzero": 1} if 0 in target else {}
    return e.node("Reshape", [names[0], e.const(_int64(target))], **extra)


reshape = register(
    "reshape",
    lambda x, *, shape: np.reshape(x, shape),
    lambda g, out, x, *, shape: g.reshape(x.shape),
    linear=True,
    numpy=((np.reshape, "reshape"), (np.ravel, "ravel")),
    method="reshape",
    formula="1",
    onnx=_reshape_onnx,
    batch=batching.reshape,
)


def _transpose_onnx(e: Any, names: list[str], out: Any, x: Any, *, axes: Any) -> str:
    perm = list(range(np.ndim(x)))[::-1] if axes is None else [int(a) % np.ndim(x) for a in axes]
    return e.node("Transpose", names, perm=perm)


transpose = register(
    "transpose",
    lambda x, *, axes: np.transpose(x, axes),
    lambda g, out, x, *, axes: g.transpose(tuple(np.argsort(axes))),
    linear=True,
    numpy=((np.transpose, "transpose"), (np.swapaxes, "method:swapaxes")),
    method="transpose",
    formula="1",
    onnx=_transpose_onnx,
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


# ONNX Expand broadcasts both ways, so a 1 where the input itself follows the batch keeps
# the file batch-size free; a batch axis the input lacks would need the size at run time.
def _broadcast_onnx(e: Any, names: list[str], out: Any, x: Any, *, shape: Any) -> str:
    target = list(np.shape(out))
    lead = len(target) - np.ndim(x)
    mine = {lead + a for a in e.varying(0)}
    for axis in e.varying_out:
        if axis in mine:
            target[axis] = 1
        else:
            e.static(f"broadcast_to {tuple(np.shape(out))} gives a constant the batch size")
    return e.node("Expand", [names[0], e.const(_int64(target))])


# The engine's unbroadcast turns g back into x's shape, so this rule is the identity.
broadcast_to = register(
    "broadcast_to",
    _broadcast_forward,
    lambda g, out, x, *, shape: g,
    linear=True,
    numpy=((np.broadcast_to, "method"),),
    method="broadcast_to",
    formula="1",
    onnx=_broadcast_onnx,
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


# ONNX: ScatterND of the written places, their flat positions known from the traced shape.
# With a symbolic batch the write must keep the batch axis whole (x[:, 1:3] = v): x is seen
# as a (positions, batch) matrix and whole rows are written, so any batch size works.
def _setitem_onnx(e: Any, names: list[str], out: Any, x: Any, v: Any, *, index: Any) -> str:
    if not is_basic_index(index):
        raise NoOnnx("only writes through slices and integers are translated")
    parts = _index_parts(index, np.ndim(x))
    x_name, v_name = names
    if np.result_type(v) != np.result_type(x):  # numpy converts the value to x's dtype
        v_name = e.node("Cast", [v_name], to=e.tensor_type(np.result_type(x)))
    # The value broadcast to the written region's shape, read at run time off x[index].
    region = _getitem_onnx(e, [x_name], np.asarray(x)[index], x, index=index)
    update = e.node("Expand", [v_name, e.node("Shape", [region])])
    shape = np.shape(x)
    batched = e.varying(0) == (0,) and parts[0] == slice(None) and None not in parts
    if e.varying(0) and not batched:
        e.static("a write that does not keep the batch axis whole")
    if not batched:  # every written place by its flat position in x
        at = np.arange(np.prod(shape, dtype=np.int64)).reshape(shape)[index].reshape(-1, 1)
        flat = e.node("Reshape", [x_name, e.const(_int64([-1]))])
        values = e.node("Reshape", [update, e.const(_int64([-1]))])
        written = e.node("ScatterND", [flat, e.const(at), values])
        return e.node("Reshape", [written, e.const(_int64(shape))])
    rest = shape[1:]
    size = int(np.prod(rest, dtype=np.int64))
    at = np.arange(size).reshape(rest)[tuple(parts[1:])].reshape(-1, 1)
    if at.size == 0 or 0 in shape:  # nothing is written
        return e.node("Identity", [x_name])
    swap = {"perm": [1, 0]}
    matrix = e.node("Transpose", [e.node("Reshape", [x_name, e.const(_int64([-1, size]))])], **swap)
    values = e.node(
        "Transpose", [e.node("Reshape", [update, e.const(_int64([-1, at.size]))])], **swap
    )
    written = e.node("Transpose", [e.node("ScatterND", [matrix, e.const(at), values])], **swap)
    return e.node("Reshape", [written, e.const(_int64([-1, *rest]))])


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
    onnx=_setitem_onnx,
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


def _getitem_onnx(e: Any, names: list[str], out: Any, x: Any, *, index: Any) -> str:
    """Basic indexing as one Slice (Python's bounds: ONNX counts negatives from the end and
    clamps, as Python does), then a Gather per integer (highest axis first, so the lower
    axes keep their numbers), then one Unsqueeze for the Nones; or one integer array on
    one axis as a Gather. Boolean masks and several arrays are refused."""
    parts = _index_parts(index, np.ndim(x))
    arrays = [p for p in parts if isinstance(p, (np.ndarray, list))]
    if any(np.asarray(p).dtype == bool for p in arrays):
        raise NoOnnx("a boolean mask index gives a shape that depends on the data")
    ints = [p for p in parts if isinstance(p, (int, np.integer)) and not isinstance(p, bool)]
    if len(arrays) > 1 or (arrays and ints):
        raise NoOnnx("only one integer-array index (and no other integer) is translated")
    starts, ends, axes, steps, picks, new = [], [], [], [], [], []
    axis = place = 0  # the axis of x, and of the output, that the part reads and writes
    for p in parts:
        if p is None:
            new.append(place)
            place += 1
        elif isinstance(p, slice):
            step = 1 if p.step is None else int(p.step)
            if (p.start, p.stop, step) != (None, None, 1):
                up = step > 0
                starts.append((0 if up else _INT64_MAX) if p.start is None else int(p.start))
                ends.append((_INT64_MAX if up else _INT64_MIN) if p.stop is None else int(p.stop))
                axes.append(axis)
                steps.append(step)
            axis += 1
            place += 1
        else:  # an integer (the axis goes) or an integer array (its axes replace it)
            picks.append((axis, p))
            place += np.ndim(p)
            axis += 1
    y = names[0]
    if axes:
        bounds = [e.const(_int64(v)) for v in (starts, ends, axes, steps)]
        y = e.node("Slice", [y, *bounds])
    for at, p in reversed(picks):
        y = e.node("Gather", [y, e.const(_int64(p))], axis=at)
    if new:
        y = e.node("Unsqueeze", [y, e.const(_int64(new))])
    return y if y != names[0] else e.node("Identity", names)


getitem = register(
    "getitem",
    _getitem_forward,
    lambda g, out, x, *, index: call(scatter_add, g, shape=x.shape, index=index),
    linear=True,
    method="__getitem__",
    formula="1",
    onnx=_getitem_onnx,
    batch=batching.getitem,
)
# The adjoint of indexing (used by getitem's rule, so second derivatives through indexing work).
scatter_add: Op = register(  # typed: getitem's rule names it before it is defined
    "scatter_add",
    _scatter_forward,
    lambda g, out, x, *, shape, index: call(getitem, g, index=index),
    linear=True,
    formula="1",
    onnx="none: scatter_add is the adjoint of indexing, met in backward graphs, not forwards",
    batch=batching.scatter,
)


def _concatenate_vjp(i: int, g: Any, out: Any, *xs: Any, axis: int) -> Any:
    start = sum(x.shape[axis] for x in xs[:i])
    window = (slice(None),) * axis + (slice(start, start + xs[i].shape[axis]),)
    return g[window]


def _concatenate_onnx(e: Any, names: list[str], out: Any, *xs: Any, axis: int) -> str:
    return e.node("Concat", names, axis=int(axis))


concatenate = register(
    "concatenate",
    lambda *xs, axis: np.concatenate(xs, axis=axis),
    _concatenate_vjp,
    variadic=True,
    linear=True,
    numpy=((np.concatenate, "concatenate"),),
    formula="1",
    onnx=_concatenate_onnx,
    batch=batching.concatenate,
)
