"""Batching rules: the `batch` column of the table, used by `autodiff.vmap`.

A rule receives (op, reals, dims, size, **params): the op's inputs as real Tensors, dims[i]
0 when input i carries the batch (of `size` examples) on its first axis and None when it is
the same for every example, and the op's params as the user's call gave them for ONE example.
It returns the real result with the batch in front, computed by applying primitives (so the
graph is recorded on the batched Tensors and every transform composes with vmap).

Rows get their rule in their registration (`batch=`); every `elementwise` row that gives none
gets `elementwise` below (autodiff/rules/__init__.py fills it in). A row with no rule is
computed by `loop` (one application per example, with a warning naming the op); the ops that
are meant to be, because no rule can exist, are listed in `LOOP_FALLBACK`.

This module imports only the engine and the table: rules name the rows they apply through
`OPS` when they run.
"""

from __future__ import annotations

import functools
import inspect
import string
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import engine
from .table import OPS, Op

Tensor = Any  # a Tensor (or a value batched by an outer vmap, which is one too)

# Ops computed by the loop on purpose (no rule can exist): ops made at run time, such as
# checkpoint's, whose forward is the user's own function.
LOOP_FALLBACK: frozenset[str] = frozenset({"checkpoint"})


def _per_example(p: Any) -> bool:
    """Whether an index part is the numbers of a value batched by vmap (vmap's _PerExample)."""
    return getattr(type(p), "per_example", False)


def _apply(op: Op, reals: Sequence[Any], **params: Any) -> Tensor:
    return engine.apply(op, tuple(reals), **params)


def ndim(real: Tensor, dim: int | None) -> int:
    return real.ndim - (dim is not None)


def pad(real: Tensor, dim: int | None, ndim: int) -> Tensor:
    """A batched real Tensor reshaped to (B, 1, ..., *shape) with `ndim` per-example axes, so
    that it broadcasts against unbatched values aligned on the right; unbatched: as it is."""
    if dim is None or real.ndim - 1 >= ndim:
        return real
    shape = tuple(real.shape)
    return _apply(
        OPS["reshape"], (real,), shape=shape[:1] + (1,) * (ndim - len(shape) + 1) + shape[1:]
    )


def expand(real: Tensor, dim: int | None, size: int) -> Tensor:
    """A real Tensor with the batch in front: an unbatched one is broadcast to the batch."""
    if dim is not None:
        return real
    shape = tuple(real.shape)
    return _apply(
        OPS["broadcast_to"],
        (_apply(OPS["reshape"], (real,), shape=(1,) + shape),),
        shape=(size,) + shape,
    )


def elementwise(op: Op, reals: list, dims: list, size: int, **params: Any) -> Tensor:
    """Elementwise ops: batched inputs padded to the output's rank, unbatched ones broadcast."""
    n = max(ndim(r, d) for r, d in zip(reals, dims, strict=True))
    if "cond" in params:  # where: its mask takes part in the broadcast
        n = max(n, np.ndim(params["cond"]))
    out = _apply(op, [pad(r, d, n) for r, d in zip(reals, dims, strict=True)], **params)
    if out.ndim == n:  # every batched input was 0-d and something broadcast (cannot: kept safe)
        out = expand(out, None, size)
    return out


def shift_axis(axis: Any, ndim: int) -> Any:
    """A per-example axis (or tuple, or None for all) as the real Tensor's axis."""
    if axis is None:
        return tuple(range(1, ndim + 1))
    if isinstance(axis, tuple):
        return tuple(shift_axis(a, ndim) for a in axis)
    return axis % ndim + 1 if ndim else axis


def reduction(op: Op, reals: list, dims: list, size: int, **params: Any) -> Tensor:
    (x,) = reals
    n = x.ndim - 1
    axis = params["axis"]
    if n == 0:
        params["axis"] = () if axis is None or axis == () else axis
        if op.name in ("cumsum", "cumprod"):
            return _apply(OPS["reshape"], (x,), shape=(size,)) if params["axis"] == () else x
    else:
        params["axis"] = shift_axis(axis, n)
    return _apply(op, [x], **params)


def reduction_one_axis(
    op: Op, reals: list, dims: list, size: int, *, axis: Any, keepdims: bool
) -> Tensor:
    """Reductions over one axis or all (prod): all of one example's axes are flattened into
    one first, since a tuple of axes is not theirs to take."""
    (x,) = reals
    n = x.ndim - 1
    if axis is None:
        flat = _apply(OPS["reshape"], (x,), shape=(size, -1))
        out = _apply(op, [flat], axis=1, keepdims=False)
        return _apply(OPS["reshape"], (out,), shape=(size,) + (1,) * n) if keepdims else out
    return _apply(op, [x], axis=axis % n + 1 if n else axis, keepdims=keepdims)


def cumulative(op: Op, reals: list, dims: list, size: int, **params: Any) -> Tensor:
    (x,) = reals
    n = x.ndim - 1
    if n == 0:
        return _apply(op, [_apply(OPS["reshape"], (x,), shape=(size, 1))], axis=1).reshape((size,))
    return _apply(op, [x], axis=params["axis"] % n + 1)


def reshape(op: Op, reals: list, dims: list, size: int, *, shape: tuple) -> Tensor:
    return _apply(op, reals, shape=(size,) + tuple(shape))


def transpose(op: Op, reals: list, dims: list, size: int, *, axes: Any) -> Tensor:
    n = reals[0].ndim - 1
    axes = tuple(range(n))[::-1] if axes is None else axes
    return _apply(op, reals, axes=(0,) + tuple(a % n + 1 for a in axes))


def broadcast(op: Op, reals: list, dims: list, size: int, *, shape: tuple) -> Tensor:
    x = pad(reals[0], 0, len(shape))
    return _apply(op, [x], shape=(size,) + tuple(shape))


def _index_parts(index: Any) -> tuple:
    return index if isinstance(index, tuple) else (index,)


def _batched_index(index: Any, per_example: tuple[int, ...]) -> tuple[tuple, int]:
    """The index for the real Tensor (a full slice over the batch in front) and the axis the
    batch lands on in the result (numpy moves the axes of non-adjacent advanced indices to the
    front)."""
    parts = _index_parts(index)
    real = (slice(None),) + parts
    advanced = [
        i
        for i, p in enumerate(real)
        if isinstance(p, np.ndarray | list)
        or (isinstance(p, (int, np.integer)) and not isinstance(p, bool))
    ]
    arrays = [p for p in real if isinstance(p, np.ndarray | list)]
    if not arrays or advanced == list(range(advanced[0], advanced[-1] + 1)):
        return real, 0
    # Separated advanced indices: their broadcast axes come first, then the rest in order.
    shapes = []
    for p in real:
        if isinstance(p, np.ndarray | list):
            a = np.asarray(p)
            shapes.append((int(a.sum()),) if a.dtype == bool and a.ndim == 1 else a.shape)
    return real, len(np.broadcast_shapes(*shapes))


def _to_front(real: Tensor, axis: int) -> Tensor:
    if axis == 0:
        return real
    order = (axis,) + tuple(i for i in range(real.ndim) if i != axis)
    return _apply(OPS["transpose"], (real,), axes=order)


def getitem(op: Op, reals: list, dims: list, size: int, *, index: Any) -> Tensor:
    parts = _index_parts(index)
    if any(_per_example(p) for p in parts):
        return _gather(op, reals[0], dims[0], size, parts)
    real_index, at = _batched_index(index, tuple(reals[0].shape[1:]))
    return _to_front(_apply(op, reals, index=real_index), at)


def _gather(op: Op, x: Tensor, dim: int | None, size: int, parts: tuple) -> Tensor:
    """x[i] with a batched integer index i: each example picks with its own indices. Batched
    when the index arrays come first and together (x[i], x[i, j], x[i, :]), where the picked
    axes lead the result for the example and for the batch alike."""
    arrays = [k for k, p in enumerate(parts) if not (p is None or isinstance(p, slice | type(...)))]
    if arrays != list(range(len(arrays))):
        raise TypeError(
            "vmap: indexing with a batched index is batched when the index arrays come first "
            "(x[i], x[i, j], x[i, :]); use take_along_axis for other layouts "
            f"(at {engine._user_frame()})"
        )
    level = next(p.owner._level for p in parts if _per_example(p))
    reals = []
    for p in parts:
        if _per_example(p):
            if p.owner._level is not level or getattr(p.owner._real, "_batched", False):
                raise TypeError("vmap: an index batched by two nested vmaps is not supported")
            if p.dtype.kind not in "iub":
                raise IndexError(f"getitem: index arrays must be integers, got {p.dtype}")
            reals.append(np.asarray(p.owner._real._data))
        else:
            reals.append(p)
    ndim = max(np.ndim(r) - (_per_example(p)) for r, p in zip(reals, parts, strict=True))
    rows = np.arange(size).reshape((size,) + (1,) * ndim)
    reals = [
        r if _per_example(p) else np.broadcast_to(np.asarray(r), (size,) + np.shape(r))
        for r, p in zip(reals[: len(arrays)], parts, strict=False)
    ] + reals[len(arrays) :]
    if any(np.asarray(r).dtype == bool for r in reals[: len(arrays)]):
        raise TypeError("vmap: a batched boolean mask as an index is not supported; use where")
    reals = [_pad_index(r, ndim) for r in reals[: len(arrays)]] + reals[len(arrays) :]
    x = expand(x, dim, size)
    return _apply(op, [x], index=(rows, *reals))


def _pad_index(r: np.ndarray, ndim: int) -> np.ndarray:
    """A batched index array (B, *shape) with its shape padded to `ndim` axes on the left."""
    r = np.asarray(r)
    return r.reshape(r.shape[:1] + (1,) * (ndim - r.ndim + 1) + r.shape[1:])


def _selection(shape: tuple[int, ...], index: Any) -> tuple[int, ...]:
    return np.broadcast_to(np.empty((), dtype=bool), shape)[index].shape


def setitem(op: Op, reals: list, dims: list, size: int, *, index: Any) -> Tensor:
    x, v = reals
    x = expand(x, dims[0], size)
    real_index, at = _batched_index(index, tuple(x.shape[1:]))
    if at != 0:
        raise ValueError(
            "vmap: setitem with advanced indices separated by a slice is not batched; "
            "write the indices next to each other"
        )
    if dims[1] is not None:
        v = pad(v, 0, len(_selection(tuple(x.shape[1:]), index)))
    return _apply(op, (x, v), index=real_index)


def scatter(op: Op, reals: list, dims: list, size: int, *, shape: tuple, index: Any) -> Tensor:
    real_index, at = _batched_index(index, tuple(shape))
    if at != 0:
        raise ValueError("vmap: scatter_add with separated advanced indices is not batched")
    x = pad(reals[0], 0, len(_selection(tuple(shape), index)))
    return _apply(op, [x], shape=(size,) + tuple(shape), index=real_index)


def concatenate(op: Op, reals: list, dims: list, size: int, *, axis: int) -> Tensor:
    n = max(ndim(r, d) for r, d in zip(reals, dims, strict=True))
    xs = [expand(r, d, size) for r, d in zip(reals, dims, strict=True)]
    return _apply(op, xs, axis=axis % n + 1)


_LEAD = "pqrstuvw"  # letters for leading (stacked) axes in the einsums below


def matmul(op: Op, reals: list, dims: list, size: int) -> Tensor:
    (a, b), (da, db) = reals, dims
    na, nb = ndim(a, da), ndim(b, db)
    if da is not None and db is not None and (na == 1 or nb == 1):
        # Both batched with a vector among them (x @ W with per-example weights, as
        # per-example gradients make): as one einsum, whose gradient for the matrix is a
        # broadcast product laid out as the matrix is, not a stack of k x 1 @ 1 x m
        # products transposed afterwards (3x faster for a batch of 64 MNIST layers).
        if na == 1 and nb == 1:
            spec = "zk,zk->z"
        elif na == 1:
            lead = _LEAD[: nb - 2]
            spec = f"zk,z{lead}km->z{lead}m"
        else:
            lead = _LEAD[: na - 2]
            spec = f"z{lead}nk,zk->z{lead}n"
        return _apply(OPS["einsum"], (a, b), subscripts=spec)
    # 1-d operands as matrices (a row, a column), squeezed again after: numpy's own rule,
    # made explicit so that the batch axis never lands in a 1-d operand's place.
    if na == 1:
        a = _apply(OPS["reshape"], (a,), shape=tuple(a.shape[:-1]) + (1, a.shape[-1]))
    if nb == 1:
        b = _apply(OPS["reshape"], (b,), shape=tuple(b.shape) + (1,))
    n = max(na, nb, 2)
    out = _apply(OPS["matmul"], (pad(a, da, n), pad(b, db, n)))
    shape = tuple(out.shape)
    if na == 1 and nb == 1:
        return _apply(OPS["reshape"], (out,), shape=shape[:-2])
    if na == 1:
        return _apply(OPS["reshape"], (out,), shape=shape[:-2] + shape[-1:])
    if nb == 1:
        return _apply(OPS["reshape"], (out,), shape=shape[:-1])
    return out


def linear(op: Op, reals: list, dims: list, size: int) -> Tensor:
    if dims[0] == 0 and all(d is None for d in dims[1:]) and reals[0].ndim >= 2:
        return _apply(op, reals)  # linear already maps over leading axes
    x, w = reals[0], reals[1]
    if dims[1] is not None:
        # Per-example weights: one einsum (see matmul), the gradient for W in W's layout.
        lead = _LEAD[: ndim(x, dims[0]) - 1]
        spec = f"{'z' if dims[0] is not None else ''}{lead}i,zoi->z{lead}o"
        y = _apply(OPS["einsum"], (x, w), subscripts=spec)
    else:
        wt = _apply(OPS["transpose"], (w,), axes=(1, 0))
        y = matmul(OPS["matmul"], [x, wt], [dims[0], None], size)
    if len(reals) == 3:
        batched = 0 if dims[0] is not None or dims[1] is not None else None
        y = elementwise(OPS["add"], [y, reals[2]], [batched, dims[2]], size)
    return y


def _free_letter(spec: str) -> str:
    return next(c for c in string.ascii_letters if c not in spec)


def einsum(op: Op, reals: list, dims: list, size: int, *, subscripts: str) -> Tensor:
    inputs, _, output = subscripts.partition("->")
    if not _:
        letters = inputs.replace(",", "")
        output = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    z = _free_letter(subscripts)
    terms = [z + t if d is not None else t for t, d in zip(inputs.split(","), dims, strict=True)]
    return _apply(op, reals, subscripts=",".join(terms) + "->" + z + output)


def leading(op: Op, reals: list, dims: list, size: int, **params: Any) -> Tensor:
    """One-input ops that act on trailing axes and map over any leading ones (a matrix norm
    of each matrix of a stack): the batch in front is one more leading axis."""
    return _apply(op, [expand(reals[0], dims[0], size)], **params)


def windows(op: Op, reals: list, dims: list, size: int, **params: Any) -> Tensor:
    """unfold2d and fold2d take (N, ...) images: the batch is merged into N and split again."""
    (x,) = reals
    shape = tuple(x.shape)
    merged = _apply(OPS["reshape"], (x,), shape=(size * shape[1],) + shape[2:])
    if "shape" in params:
        s = tuple(params["shape"])
        params["shape"] = (size * s[0],) + s[1:]
    out = _apply(op, [merged], **params)
    return _apply(OPS["reshape"], (out,), shape=(size, shape[1]) + tuple(out.shape[1:]))


def cross_entropy(
    op: Op, reals: list, dims: list, size: int, *, labels: Any, saved: Any = None
) -> Tensor:
    """softmax_cross_entropy of one example's (N, C) logits, for every example: the mean over N
    of logsumexp minus the label's logit, from primitives (the fused op is one batch's mean)."""
    (x,) = reals  # (B, N, C)
    return cross_entropy_real(x, np.broadcast_to(np.asarray(labels), (size, len(labels))), size)


def cross_entropy_real(x: Tensor, labels: np.ndarray, size: int) -> Tensor:
    n = x.shape[1]
    lse = _apply(OPS["logsumexp"], (x,), axis=(2,), keepdims=False)
    rows = np.arange(size)[:, None]
    cols = np.arange(n)[None, :]
    picked = _apply(OPS["getitem"], (x,), index=(rows, cols, np.asarray(labels)))
    diff = _apply(OPS["sub"], (lse, picked))
    return _apply(OPS["mean"], (diff,), axis=(1,), keepdims=False, count=n)


def loop(op: Op, reals: list, dims: list, size: int, **params: Any) -> Tensor:
    """The fallback: the op once per example, stacked. Correct for any op, and slow."""
    params.pop("saved", None)
    rows = []
    for i in range(size):
        args = [
            _apply(OPS["getitem"], (r,), index=i) if d is not None else r
            for r, d in zip(reals, dims, strict=True)
        ]
        out = _apply(op, args, **params)
        rows.append(_apply(OPS["reshape"], (out,), shape=(1,) + tuple(out.shape)))
    return _apply(OPS["concatenate"], rows, axis=0)


# --- library functions that read their input's numbers ----------------------------------------
# sort, topk, any, norm, take_along_axis, gather, scatter_add compute an order, a mask or an
# index from the numbers of their input, which a value batched by vmap does not show. These
# decorators run such a function on the whole batch instead. A batched value is recognised by
# its `_batched` flag and its level (the vmap interpreter: `size`, `wrap`, `unwrap`, `depth`);
# this module knows no vmap.


def _active(value: Any) -> Any:
    """The vmap level `value` is batched at, if that vmap is still running, else None."""
    if getattr(type(value), "_batched", False) is not True:  # (a BatchedTensor's class flag)
        return None
    level = value._level
    return level if level in engine.state.interpreters else None


def _highest_of(values: Sequence[Any]) -> Any:
    levels = [lv for lv in map(_active, values) if lv is not None]
    return max(levels, key=lambda lv: lv.depth) if levels else None


def over_axis(fn: Callable[..., Any]) -> Callable[..., Any]:
    """For library functions of one tensor and an axis that read its numbers (sort, topk,
    any, norm): on a batched value, the same function of the real Tensor, with the axis
    shifted past the batch (None, for all axes, becomes every per-example axis)."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def batched_or_not(x: Any, *args: Any, **kwargs: Any) -> Any:
        if not engine.interpreting or _active(x) is None:
            return fn(x, *args, **kwargs)
        bound = signature.bind(x, *args, **kwargs)
        bound.apply_defaults()
        call = dict(bound.arguments)
        if call.get("dim") is not None:
            call["axis"], call["dim"] = call["dim"], None
        n = x.ndim
        axis = call["axis"]
        call["axis"] = (
            shift_axis(axis, n)
            if axis is None or isinstance(axis, tuple | list)
            else (axis % n + 1 if n else axis)
        )
        if isinstance(call["axis"], list):
            call["axis"] = tuple(call["axis"])
        level = x._level
        call[next(iter(signature.parameters))] = x._real
        out = fn(**call)
        if isinstance(out, tuple):
            parts = [level.wrap(o) for o in out]
            return type(out)(*parts) if hasattr(out, "_fields") else tuple(parts)
        return level.wrap(out)

    return batched_or_not


def along_axis(*names: str, axis: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """For library functions that take indices along an axis of `x` as numbers (gather,
    take_along_axis, scatter_add): when any of the arguments `names` is batched, the same
    function of the whole batch, every one of them given the batch (an index shared by the
    examples repeated for each), and the axis shifted past it."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def batched_or_not(*args: Any, **kwargs: Any) -> Any:
            if not engine.interpreting:  # outside vmap: one check
                return fn(*args, **kwargs)
            bound = signature.bind(*args, **kwargs)
            level = _highest_of([bound.arguments.get(n) for n in names])
            if level is None:
                return fn(*args, **kwargs)
            bound.apply_defaults()
            call = dict(bound.arguments)
            first = call[names[0]]
            n = np.ndim(first._data) if isinstance(first, engine.Node) else np.ndim(first)
            for name in names:
                value = call[name]
                if isinstance(value, engine.Node):  # a Tensor
                    real, dim = level.unwrap(value)
                    call[name] = expand(real, dim, level.size)
                else:  # numbers shared by the examples: the same for each
                    array = np.asarray(value)
                    call[name] = np.broadcast_to(array, (level.size, *array.shape))
            if call.get("dim") is not None and axis != "dim":
                call[axis], call["dim"] = call["dim"], None
            if call[axis] is not None:
                call[axis] = call[axis] % n + 1 if n else call[axis]
            return level.wrap(batched_or_not(**call))

        return batched_or_not

    return decorate
