"""Reductions and scans: sum, mean, max, min, logsumexp, prod, cumsum, cumprod.

A reduction's gradient spreads the upstream gradient back over the reduced axes (`keepdims`
gives it back those axes as size 1, then it broadcasts); sum and mean are linear, so their
JVP is the reduction of the tangent.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import batching
from .elementwise import exp, where
from .shape import broadcast, broadcast_to
from .table import ARRAY, NoOnnx, call, keepdims, register, value, wide_sum


def _onnx_axes(axis: Any) -> list[int] | None:
    """A reduction's axis param as ONNX's list of axes (None: every axis)."""
    if axis is None:
        return None
    return [int(a) for a in axis] if isinstance(axis, (tuple, list)) else [int(axis)]


def _onnx_reduce(op_type: str) -> Any:
    """The translation of a reduction whose axes are an attribute in opset 17 (ReduceMean,
    ReduceMax, ...: all but ReduceSum, which took them as an input already in opset 13)."""

    def translate(e: Any, names: list[str], out: Any, x: Any, **params: Any) -> str:
        axes = _onnx_axes(params["axis"])
        extra = {} if axes is None else {"axes": axes}
        return e.node(op_type, names, keepdims=int(params["keepdims"]), **extra)

    return translate


def _sum_vjp(g: Any, out: Any, x: Any, *, axis: Any, keepdims: bool) -> Any:
    if axis is None and isinstance(g, ARRAY):
        # A total: g holds one number, which broadcasts as it is (no reshape needed first),
        # by the row's own forward: through `call` the dispatch costs as much as the small
        # broadcast itself, in the backward pass of every loss.
        return broadcast_to.forward(g, shape=x.shape)
    return broadcast(_keep(g, x.shape, axis, keepdims), x.shape)


_keep = keepdims


def _sum_onnx(e: Any, names: list[str], out: Any, x: Any, *, axis: Any, keepdims: bool) -> str:
    axes = _onnx_axes(axis)
    inputs = names if axes is None else [*names, e.const(np.array(axes, dtype=np.int64))]
    return e.node("ReduceSum", inputs, keepdims=int(keepdims))


sum_ = register(
    "sum",
    # The ufunc's own reduce: np.sum's Python wrapper costs more than a small sum itself.
    lambda x, *, axis, keepdims: np.add.reduce(x, axis=axis, keepdims=keepdims),
    _sum_vjp,
    jvp=lambda t, out, x, *, axis, keepdims: t.sum(axis=axis, keepdims=keepdims),
    linear=True,
    numpy=((np.sum, "reduce"), (np.add.reduce, "ufunc.reduce")),
    method="sum",
    formula="1",
    onnx=_sum_onnx,
    batch=batching.reduction,
)


# The sum times 1/count, as one node rather than two (losses end in a mean every step): the
# same arithmetic as sum-then-mul, so the same numbers. The gradient is scaled before it is
# spread out, while it is still small.
def _mean_forward(x: Any, *, axis: Any, keepdims: bool, count: int) -> Any:
    if x.dtype.char == "e":
        # float16 sums overflow at 65504 (the mean of 10,000 tens was inf): accumulate in
        # float32 and round once, as numpy's and PyTorch's means do.
        # numpy's stub overloads keepdims as Literal[True] and Literal[False] only, not bool.
        total = np.add.reduce(x, axis=axis, keepdims=keepdims, dtype=np.float32)  # type: ignore[call-overload]
        result = (total * (1.0 / count)).astype(x.dtype)
        return result if result.ndim else result[()]
    return np.add.reduce(x, axis=axis, keepdims=keepdims) * (1.0 / count)  # type: ignore[call-overload]


mean = register(
    "mean",
    _mean_forward,
    lambda g, out, x, *, axis, keepdims, count: _sum_vjp(
        g * (1.0 / count), out, x, axis=axis, keepdims=keepdims
    ),
    jvp=lambda t, out, x, *, axis, keepdims, count: (
        _mean_forward(t, axis=axis, keepdims=keepdims, count=count)
        if isinstance(t, ARRAY)
        else t.sum(axis=axis, keepdims=keepdims) * (1.0 / count)
    ),
    linear=True,
    numpy=((np.mean, "reduce"),),
    method="mean",
    formula="1 / count",
    onnx=_onnx_reduce("ReduceMean"),
    batch=batching.reduction,
)


def _extremum_vjp(g: Any, out: Any, x: Any, *, axis: Any, keepdims: bool) -> Any:
    # Ties share the gradient equally, so the rule is symmetric and the total is preserved.
    hit = value(x) == _keep(value(out), x.shape, axis, keepdims)
    share = hit / hit.sum(axis=axis, keepdims=True)
    return _keep(g, x.shape, axis, keepdims) * share.astype(np.result_type(value(x)))


def _extremum_jvp(t: Any, out: Any, x: Any, *, axis: Any, keepdims: bool) -> Any:
    # The tangents of the tied maxima, averaged: the transpose of the VJP's equal shares.
    hit = value(x) == _keep(value(out), x.shape, axis, keepdims)
    share = (hit / hit.sum(axis=axis, keepdims=True)).astype(np.result_type(value(x)))
    return (t * share).sum(axis=axis, keepdims=keepdims)


max_ = register(
    "max",
    lambda x, *, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims),
    _extremum_vjp,
    jvp=_extremum_jvp,
    numpy=((np.max, "extremum"), (np.amax, "extremum"), (np.maximum.reduce, "ufunc.reduce")),
    method="max",
    formula="onehot(argmax(x)) / ties",
    onnx=_onnx_reduce("ReduceMax"),
    batch=batching.reduction,
)
min_ = register(
    "min",
    lambda x, *, axis, keepdims: np.min(x, axis=axis, keepdims=keepdims),
    _extremum_vjp,
    jvp=_extremum_jvp,
    numpy=((np.min, "extremum"), (np.amin, "extremum"), (np.minimum.reduce, "ufunc.reduce")),
    method="min",
    formula="onehot(argmin(x)) / ties",
    onnx=_onnx_reduce("ReduceMin"),
    batch=batching.reduction,
)


def _logsumexp_forward(x: np.ndarray, *, axis: Any, keepdims: bool) -> np.ndarray:
    # Shift by the max so exp never overflows; a row of -inf keeps its shift at 0.
    # initial=-inf: an empty axis has logsumexp -inf (log of an empty sum), not an error.
    shift = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    shift = np.where(np.isfinite(shift), shift, 0)
    with np.errstate(divide="ignore"):  # an empty or all -inf axis: log(0) = -inf, quietly
        total = (
            np.log(np.sum(np.exp(x - shift), axis=axis, keepdims=True, dtype=wide_sum(x))) + shift
        )
    total = total.astype(x.dtype, copy=False)
    return total if keepdims else np.squeeze(total, axis=axis)


# Primitive rather than composite for numerical stability (the shift above) and because its
# gradient is simply softmax.
logsumexp = register(
    "logsumexp",
    _logsumexp_forward,
    lambda g, out, x, *, axis, keepdims: (
        _keep(g, x.shape, axis, keepdims) * call(exp, x - _keep(out, x.shape, axis, keepdims))
    ),
    jvp=lambda t, out, x, *, axis, keepdims: (
        t * call(exp, x - _keep(out, x.shape, axis, keepdims))
    ).sum(axis=axis, keepdims=keepdims),
    method="logsumexp",
    formula="exp(x - out)",
    onnx=_onnx_reduce("ReduceLogSumExp"),
    batch=batching.reduction,
)


# --- products ----------------------------------------------------------------------------------


def _others_product(x: Any, axis: int) -> Any:
    """For each element, the product of all the others along `axis` (right with zeros).

    On arrays: exclusive products from the left times exclusive products from the right,
    O(n). On Tensors (create_graph): the product of a (..., n, n) stack in which row k has
    x_k replaced by 1, so the result is again a differentiable product.
    """
    if isinstance(x, ARRAY):
        x = np.moveaxis(np.asarray(x), axis, -1)
        if x.shape[-1] == 0:  # an empty axis: nothing to differentiate (its product is 1)
            return np.moveaxis(x.copy(), -1, axis)
        ones = np.ones(x.shape[:-1] + (1,), dtype=x.dtype)
        left = np.cumprod(np.concatenate([ones, x[..., :-1]], axis=-1), axis=-1)
        right = np.cumprod(np.concatenate([ones, x[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
        return np.moveaxis(left * right, -1, axis)
    moved = x.swapaxes(axis, -1)
    n = moved.shape[-1]
    stacked = call(where, 1.0, moved.reshape(moved.shape[:-1] + (1, n)), cond=np.eye(n, dtype=bool))
    return call(prod, stacked, axis=stacked.ndim - 1, keepdims=False).swapaxes(axis, -1)


def _prod_vjp(g: Any, out: Any, x: Any, *, axis: int | None, keepdims: bool) -> Any:
    if axis is None:
        flat = x.reshape(-1)
        return (g * _others_product(flat, 0)).reshape(x.shape)
    if not keepdims:
        g = g.reshape(g.shape[:axis] + (1,) + g.shape[axis:])
    return g * _others_product(x, axis)


def _prod_jvp(t: Any, out: Any, x: Any, *, axis: int | None, keepdims: bool) -> Any:
    # Each element's tangent times the product of the others, summed: right with zeros too.
    if axis is None:
        return (t.reshape(-1) * _others_product(x.reshape(-1), 0)).sum()
    return (t * _others_product(x, axis)).sum(axis=axis, keepdims=keepdims)


prod = register(
    "prod",
    lambda x, *, axis, keepdims: np.prod(x, axis=axis, keepdims=keepdims),
    _prod_vjp,
    jvp=_prod_jvp,
    numpy=((np.prod, "reduce"),),
    method="prod",
    formula="out / x",
    onnx=_onnx_reduce("ReduceProd"),
    batch=batching.reduction_one_axis,
)


# --- scans -------------------------------------------------------------------------------------


def _cumsum_forward(x: Any, *, axis: int) -> Any:
    if x.dtype.char == "e":
        # float16 running sums rounded at every step drift (off by about 1 after 500 terms of
        # size 4): accumulate in float32 and round each sum once, as PyTorch does.
        return np.cumsum(x, axis=axis, dtype=np.float32).astype(x.dtype)
    return np.cumsum(x, axis=axis)


def _reverse_cumsum(g: Any, axis: int) -> Any:
    flip = (slice(None),) * (axis % g.ndim) + (slice(None, None, -1),)
    return call(cumsum, g[flip], axis=axis)[flip]


def _cumsum_onnx(e: Any, names: list[str], out: Any, x: Any, *, axis: int) -> str:
    if x.dtype.char == "e":  # ours sums float16 in float32 (see above); CumSum would not
        raise NoOnnx("a float16 CumSum would round every running sum, which cumsum avoids")
    return e.node("CumSum", [*names, e.const(np.array(axis, dtype=np.int64))])


cumsum = register(
    "cumsum",
    _cumsum_forward,
    lambda g, out, x, *, axis: _reverse_cumsum(g, axis),
    linear=True,
    numpy=((np.cumsum, "scan"),),
    method="cumsum",
    formula="1",
    onnx=_cumsum_onnx,
    batch=batching.cumulative,
)


def _divides_exactly(x: np.ndarray | np.generic, out: Any, other: Any) -> bool:
    """Whether dividing by x recovers cumprod's products to full precision: no zero in x, and
    no number involved below the smallest normal float, where digits are lost (at x ~ 1e-44 in
    float32 the quotient keeps 4 bits; a product that underflowed to 0 cannot be divided back).
    PyTorch divides there too and is off by up to 100%; the stack form is exact."""
    if x.dtype.kind != "f":
        return bool(np.all(x != 0))
    tiny = np.finfo(x.dtype).tiny
    other = np.abs(other)
    return bool(
        np.all(np.abs(x) >= tiny)
        and np.all(np.abs(out) >= tiny)
        and not np.any((other < tiny) & (other != 0))
    )


def _leave_one_out(x: Any, axis: int) -> tuple[Any, int]:
    """[..., k, i] = prod_{j<=i, j!=k} x_j along `axis` moved last: row k of an (n, n) stack
    has x_k replaced by 1, and its cumulative product leaves x_k out."""
    moved_x = x.swapaxes(axis, -1)
    n = moved_x.shape[-1]
    rows = moved_x.reshape(moved_x.shape[:-1] + (1, n))
    eye = np.eye(n, dtype=bool)
    stacked = np.where(eye, 1.0, rows) if isinstance(x, ARRAY) else call(where, 1.0, rows, cond=eye)
    return call(cumprod, stacked, axis=-1), n


def _cumprod_vjp(g: Any, out: Any, x: Any, *, axis: int) -> Any:
    """d/dx_k of sum_i g_i prod_{j<=i} x_j = sum_{i>=k} g_i prod_{j<=i, j!=k} x_j.

    Without zeros that is reverse-cumsum(g * out) / x, O(n). With a zero, with numbers so
    small that the quotient would lose digits (see _divides_exactly), or on Tensors (for
    higher derivatives) the products leaving x_k out are formed explicitly (_leave_one_out).
    """
    if isinstance(x, ARRAY):
        weighted = g * out
        if _divides_exactly(x, out, weighted):
            return _reverse_cumsum(weighted, axis) / x
    partial, n = _leave_one_out(x, axis)
    moved_g = g.swapaxes(axis, -1)
    upper = np.triu(np.ones((n, n), dtype=bool))  # only i >= k contributes
    weighted = partial * moved_g.reshape(moved_g.shape[:-1] + (1, n)) * upper
    return weighted.sum(axis=-1).swapaxes(axis, -1)


def _cumprod_jvp(t: Any, out: Any, x: Any, *, axis: int) -> Any:
    """d out_i = sum_{k<=i} t_k prod_{j<=i, j!=k} x_j: out * cumsum(t / x) without zeros, else
    from the same (n, n) stack as the VJP, summed over k instead of over i."""
    if isinstance(x, ARRAY) and _divides_exactly(x, out, t):
        return out * call(cumsum, t / x, axis=axis)
    partial, n = _leave_one_out(x, axis)
    moved_t = t.swapaxes(axis, -1)
    upper = np.triu(np.ones((n, n), dtype=bool))  # only k <= i contributes
    weighted = partial * moved_t.reshape(moved_t.shape[:-1] + (n, 1)) * upper
    return weighted.sum(axis=-2).swapaxes(axis, -1)


cumprod = register(
    "cumprod",
    lambda x, *, axis: np.cumprod(x, axis=axis),
    _cumprod_vjp,
    jvp=_cumprod_jvp,
    numpy=((np.cumprod, "scan"),),
    method="cumprod",
    formula="out / x",
    onnx="none: ONNX has no cumulative product",
    batch=batching.cumulative,
)
