"""THE table of derivative rules: every primitive's forward, its vector-Jacobian products
(reverse mode) and its Jacobian-vector products (forward mode), side by side.

A VJP rule receives the upstream gradient `g`, the op's output `out` and its inputs, and returns
the gradient for one input. A JVP rule receives the tangent `t` of one input (the same
arguments otherwise) and returns that input's contribution to the output's tangent; the engine
adds the contributions of all inputs that carry a tangent (`forward.carry_tangents`). Both are
written as if no broadcasting happened: the engine sums each gradient back to its input's shape
(`engine.unbroadcast`) and broadcasts each tangent up to the output's shape.

For an elementwise op the Jacobian is diagonal, hence its own transpose: its JVP and VJP rules
read the same (`g * out` and `t * out` for exp). A linear op (sum, reshape, getitem, matmul in
one argument) is its own JVP: the tangent goes through the op itself, and its VJP is the
transposed op (sum <-> broadcast, getitem <-> scatter_add), so the two share one helper.

The same rule runs on numpy arrays (an ordinary, fast backward pass) and on Tensors (when
`create_graph=True`, so that the backward pass is recorded and can be differentiated again).
That is why rules use only operators both understand (`*`, `@`, `.T`, `.sum`, `.reshape`,
indexing) and the small helpers below for anything else.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from . import engine

_ARRAY = (np.ndarray, np.generic)
_PLAIN = (np.ndarray, np.generic, int, float)


class Op:
    """A primitive: its name (shown in drawings and errors), forward, and one rule per input.

    A variadic op (concatenate) has a single VJP rule that also receives the input's index,
    and a single JVP rule that receives the list of all tangents (zeros where none).
    An op that `saves` returns (output, saved) from forward; its rules then receive `saved=`,
    an intermediate of the forward pass they would otherwise compute again.
    `jvps` has one rule per input, like `vjps` (None until `jvp=` is given).
    """

    __slots__ = ("name", "forward", "vjps", "jvps", "variadic", "saves")

    def __init__(
        self,
        name: str,
        forward: Callable,
        *vjps: Callable,
        variadic: bool = False,
        saves: bool = False,
        jvp: Callable | tuple[Callable, ...] | None = None,
    ):
        self.name = name
        self.forward = forward
        self.vjps = vjps
        self.jvps = (jvp,) if callable(jvp) else jvp
        self.variadic = variadic
        self.saves = saves

    def __repr__(self) -> str:
        return f"Op({self.name})"


OPS: dict[str, Op] = {}


def defop(
    name: str,
    forward: Callable,
    *vjps: Callable,
    variadic: bool = False,
    saves: bool = False,
    jvp: Callable | tuple[Callable, ...] | None = None,
) -> Op:
    """Add a primitive to the table: forward, one VJP rule per input, and `jvp=` (one rule, or
    a tuple with one per input) for forward mode."""
    OPS[name] = op = Op(name, forward, *vjps, variadic=variadic, saves=saves, jvp=jvp)
    return op


# --- helpers that work on arrays and on Tensors ---------------------------------------------


def _value(x: Any) -> Any:
    """The raw numbers, for masks and other values that carry no gradient."""
    return x if isinstance(x, _ARRAY) else x._data


def _exp(x: Any) -> Any:
    return np.exp(x) if isinstance(x, _ARRAY) else x.exp()


def _log(x: Any) -> Any:
    return np.log(x) if isinstance(x, _ARRAY) else x.log()


def _where(cond: np.ndarray, a: Any, b: Any) -> Any:
    if isinstance(a, _PLAIN) and isinstance(b, _PLAIN):
        return np.where(cond, a, b)
    return engine.apply(where, (_lift(a), _lift(b)), cond=cond)


def _lift(x: Any) -> Any:
    return x if isinstance(x, engine.Tensor) else engine.Tensor(x)


def _keepdims(g: Any, shape: tuple[int, ...], axis: tuple[int, ...] | None, keepdims: bool):
    """Give a reduction's gradient back the reduced axes (as size 1) so it broadcasts."""
    if keepdims:
        return g
    kept = tuple(1 if (axis is None or i in axis) else n for i, n in enumerate(shape))
    return g.reshape(kept)


def _broadcast_to(g: Any, shape: tuple[int, ...]) -> Any:
    if isinstance(g, _ARRAY):
        if math.prod(shape) > 1 << 16:
            return np.broadcast_to(g, shape)  # a view: no memory for big reductions
        # np.broadcast_to costs ~10 us (it builds an nditer); a filled copy of a small array
        # costs ~1 us, and small reductions are the common case (losses, biases).
        out = np.empty(shape, dtype=g.dtype)
        out[...] = g
        return out
    return engine.apply(broadcast_to, (g,), shape=shape)


def _getitem(g: Any, index: Any) -> Any:
    return g[index] if isinstance(g, _ARRAY) else engine.apply(getitem, (g,), index=index)


def _scatter(g: Any, shape: tuple[int, ...], index: Any) -> Any:
    if isinstance(g, _ARRAY):
        return _scatter_forward(g, shape=shape, index=index)
    return engine.apply(scatter_add, (g,), shape=shape, index=index)


def _is_basic_index(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, int | slice) for p in parts)


def _scatter_forward(g: Any, *, shape: tuple[int, ...], index: Any) -> np.ndarray:
    result = np.zeros(shape, dtype=np.result_type(g))
    if _is_basic_index(index):
        result[index] = g  # a basic index never repeats an element: plain assignment is exact
    else:
        np.add.at(result, index, g)  # repeated integer indices must add up, not overwrite
    return result


def _wide_sum(x: Any) -> Any:
    """The dtype to add up exponentials in: float32 for float16, whose sum of more than 65504
    ones (a softmax over 100k classes) overflows to inf, making the softmax 0; else x's own."""
    return np.float32 if np.result_type(x) == np.float16 else None


def _softmax(x: Any, axis: int = -1) -> Any:
    if isinstance(x, _ARRAY):
        z = x - x.max(axis=axis, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=axis, keepdims=True, dtype=_wide_sum(x))).astype(
            np.result_type(x), copy=False
        )
    return x.softmax(axis=axis)


def _concatenate(xs: list, axis: int) -> Any:
    if all(isinstance(x, _ARRAY) for x in xs):
        return np.concatenate(xs, axis=axis)
    return engine.apply(concatenate, tuple(_lift(x) for x in xs), axis=axis)


def _swap(x: Any) -> Any:
    return x.swapaxes(-1, -2)


# --- elementwise ---------------------------------------------------------------------------
# Forwards use Python operators rather than ufuncs: the same for arrays, and several times
# faster on the numpy scalars that 0-d (micrograd-style) graphs are made of.

add = defop(
    "add",
    operator.add,
    lambda g, out, a, b: g,
    lambda g, out, a, b: g,
    jvp=(lambda t, out, a, b: t, lambda t, out, a, b: t),
)
# sub and div could be composites (a + -b, a * b**-1) but each would then cost two nodes on the
# hottest path of every training loop and two boxes in every drawing.
sub = defop(
    "sub",
    operator.sub,
    lambda g, out, a, b: g,
    lambda g, out, a, b: -g,
    jvp=(lambda t, out, a, b: t, lambda t, out, a, b: -t),
)
mul = defop(
    "mul",
    operator.mul,
    lambda g, out, a, b: g * b,
    lambda g, out, a, b: g * a,
    jvp=(lambda t, out, a, b: t * b, lambda t, out, a, b: a * t),
)
# Where inf or NaN is the mathematical answer (1/0, log(0), log(-1), sqrt(-1)) numpy would
# warn from inside this file, far from the user's line: these forwards answer quietly instead
# (overflow still warns) and `detect_anomaly` reports the line where the NaN is born. Numpy
# scalars whose result is certainly finite skip np.errstate, which costs ~0.7 us per use.
_QUIET = {"divide": "ignore", "invalid": "ignore"}


def _div_forward(a: Any, b: Any) -> Any:
    if type(b) is not np.ndarray and b:
        return a / b
    with np.errstate(**_QUIET):
        return a / b


def _pow_const_forward(x: Any, *, exponent: float) -> Any:
    if exponent == 0.5 and x.dtype.kind == "f":
        # sqrt (Tensor.sqrt comes here) by np.sqrt: numpy computes an array's x ** 0.5 so,
        # but a numpy scalar's (a 0-d tensor) by C's pow, which gives sqrt(-inf) = inf and
        # differs from the correctly rounded root in the last bit. (Floats only: np.sqrt
        # of int8, uint8 or bool answers in float16, where x ** 0.5 answers in float64.)
        with np.errstate(**_QUIET):
            return np.sqrt(x)
    if type(x) is not np.ndarray and x > 0:
        return x**exponent
    with np.errstate(**_QUIET):
        return x**exponent


def _pow_tensor_forward(a: Any, b: Any) -> Any:
    with np.errstate(**_QUIET):
        return a**b


def _log_forward(x: Any) -> Any:
    if type(x) is not np.ndarray and x > 0:
        return np.log(x)
    with np.errstate(**_QUIET):
        return np.log(x)


div = defop(
    "div",
    _div_forward,
    lambda g, out, a, b: g / b,
    lambda g, out, a, b: -g * out / b,
    jvp=(lambda t, out, a, b: t / b, lambda t, out, a, b: -t * out / b),
)
neg = defop("neg", operator.neg, lambda g, out, x: -g, jvp=lambda t, out, x: -t)


# x ** c for a constant c: the common case gets a rule without log(x), defined for x <= 0.
def _zeros_like(g: Any) -> Any:
    return np.zeros_like(g) if isinstance(g, _ARRAY) else engine.constant(np.zeros_like(g._data))


def _pow_const_vjp(g: Any, out: Any, x: Any, *, exponent: float) -> Any:
    if exponent == 0:
        return _zeros_like(g)  # x**0 is constant: 0, not 0 * x**-1 = NaN at x = 0
    return g * exponent * x ** (exponent - 1)


# Elementwise, so the same rule is its JVP: d(x**c) = c x**(c-1) dx, and 0 for c = 0.
pow_const = defop("pow", _pow_const_forward, _pow_const_vjp, jvp=_pow_const_vjp)


def _pow_base_vjp(g: Any, out: Any, a: Any, b: Any) -> Any:
    # b * a**(b-1) is 0 * inf = NaN where b = 0 and a**-1 overflows (a = 0, or a subnormal
    # a); there the power is constant in a (a**0 = 1), so its derivative is 0 (as PyTorch).
    # Elsewhere the formula is left alone, so its derivative in b (second order) stays exact.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # replaced below
        local = b * a ** (b - 1)
    constant = (_value(b) == 0) & ~np.isfinite(_value(local))
    return g * (_where(constant, 0.0, local) if np.any(constant) else local)


def _log_base(a: Any, b: Any) -> Any:
    # d(a**b)/db = a**b * log(a). At a = 0 the power is constant in b (0**b = 0) for b >= 0,
    # so we use 0; for b < 0 it is inf * log(0) = -inf (as PyTorch). For a < 0 the power is
    # only defined at integer b, so it has no derivative in b: we use 0 rather than NaN.
    av = _value(a)
    positive = av > 0
    elsewhere = np.where((av == 0) & (_value(b) < 0), -np.inf, 0.0)
    return _where(positive, _log(_where(positive, a, 1.0)), elsewhere)


pow_tensor = defop(
    "pow_tensor",
    _pow_tensor_forward,
    _pow_base_vjp,
    lambda g, out, a, b: g * out * _log_base(a, b),
    jvp=(_pow_base_vjp, lambda t, out, a, b: t * out * _log_base(a, b)),  # elementwise
)
exp = defop("exp", np.exp, lambda g, out, x: g * out, jvp=lambda t, out, x: t * out)
log = defop("log", _log_forward, lambda g, out, x: g / x, jvp=lambda t, out, x: t / x)
tanh = defop(
    "tanh",
    np.tanh,
    lambda g, out, x: g * (1 - out * out),
    jvp=lambda t, out, x: t * (1 - out * out),
)


def _sigmoid_forward(x: np.ndarray) -> np.ndarray:
    # exp(-log(1 + exp(-x))): logaddexp never overflows, so this is finite and accurate in
    # both tails, unlike 1 / (1 + exp(-x)) which overflows for x < -88 in float32.
    return np.exp(-np.logaddexp(0, -x))


sigmoid = defop(
    "sigmoid",
    _sigmoid_forward,
    lambda g, out, x: g * out * (1 - out),
    jvp=lambda t, out, x: t * out * (1 - out),
)


def _relu_forward(x: Any) -> Any:
    # Against an array of zeros, not the scalar 0: numpy's maximum with a scalar operand runs
    # a slower loop, and allocating the zeros costs less than the difference (2x faster in
    # all, float32 and float64, 8x8 to 1000x1000). Only for C-ordered arrays: the zeros are
    # C-ordered, and any other layout (a convolution's output is a transposed view) would
    # come out C-ordered too, slower to make and slower for the pooling that reads it next.
    # Integer and bool arrays keep numpy's promotion with 0 (bool would otherwise stay bool).
    if type(x) is np.ndarray and x.dtype.kind == "f" and x.flags.c_contiguous:
        return np.maximum(x, np.zeros(x.shape, x.dtype))
    return np.maximum(x, 0)


# relu'(0) is taken as 0 (as PyTorch does): a unit sitting exactly at 0 gets no update, and the
# gradient check avoids the kink, where no derivative exists.
relu = defop(
    "relu",
    _relu_forward,
    lambda g, out, x: g * ((x if type(x) is np.ndarray else _value(x)) > 0),
    jvp=lambda t, out, x: t * (_value(x) > 0),
)
abs_ = defop(
    "abs",
    np.abs,
    lambda g, out, x: g * np.sign(_value(x)),
    jvp=lambda t, out, x: t * np.sign(_value(x)),
)
where = defop(
    "where",
    lambda a, b, *, cond: np.where(cond, a, b),
    lambda g, out, a, b, *, cond: _where(cond, g, 0),
    lambda g, out, a, b, *, cond: _where(cond, 0, g),
    jvp=(
        lambda t, out, a, b, *, cond: _where(cond, t, 0),
        lambda t, out, a, b, *, cond: _where(cond, 0, t),
    ),
)


def _tie_share(a: Any, b: Any, wins: np.ufunc) -> np.ndarray:
    """The share of the gradient `a` gets in maximum(a, b) (wins=greater) or minimum: all of it
    where it wins, half on a tie (as PyTorch, and as max() splits ties), none where it loses."""
    a, b = _value(a), _value(b)
    return np.where(a == b, 0.5, wins(a, b)).astype(np.result_type(a, b))


maximum = defop(
    "maximum",
    np.maximum,
    lambda g, out, a, b: g * _tie_share(a, b, np.greater),
    lambda g, out, a, b: g * _tie_share(b, a, np.greater),
    jvp=(
        lambda t, out, a, b: t * _tie_share(a, b, np.greater),
        lambda t, out, a, b: t * _tie_share(b, a, np.greater),
    ),
)
minimum = defop(
    "minimum",
    np.minimum,
    lambda g, out, a, b: g * _tie_share(a, b, np.less),
    lambda g, out, a, b: g * _tie_share(b, a, np.less),
    jvp=(
        lambda t, out, a, b: t * _tie_share(a, b, np.less),
        lambda t, out, a, b: t * _tie_share(b, a, np.less),
    ),
)

# A dtype conversion: the gradient is converted back by the engine's unbroadcast, the tangent
# forward to the output's dtype by forward mode.
cast = defop(
    "cast",
    lambda x, *, dtype: x.astype(dtype),
    lambda g, out, x, *, dtype: g,
    jvp=lambda t, out, x, *, dtype: t,
)

# --- reductions ----------------------------------------------------------------------------


def _sum_vjp(g: Any, out: Any, x: Any, *, axis: Any, keepdims: bool) -> Any:
    if axis is None and isinstance(g, _ARRAY):
        # A total: g holds one number, which broadcasts as it is (no reshape needed first).
        return _broadcast_to(g, x.shape)
    return _broadcast_to(_keepdims(g, x.shape, axis, keepdims), x.shape)


sum_ = defop(
    "sum",
    # The ufunc's own reduce: np.sum's Python wrapper costs more than a small sum itself.
    lambda x, *, axis, keepdims: np.add.reduce(x, axis=axis, keepdims=keepdims),
    _sum_vjp,
    jvp=lambda t, out, x, *, axis, keepdims: t.sum(axis=axis, keepdims=keepdims),
)


# The sum times 1/count, as one node rather than two (losses end in a mean every step): the
# same arithmetic as sum-then-mul, so the same numbers. The gradient is scaled before it is
# spread out, while it is still small.
def _mean_forward(x: Any, *, axis: Any, keepdims: bool, count: int) -> Any:
    if x.dtype.char == "e":
        # float16 sums overflow at 65504 (the mean of 10,000 tens was inf): accumulate in
        # float32 and round once, as numpy's and PyTorch's means do.
        total = np.add.reduce(x, axis=axis, keepdims=keepdims, dtype=np.float32)
        result = (total * (1.0 / count)).astype(x.dtype)
        return result if result.ndim else result[()]
    return np.add.reduce(x, axis=axis, keepdims=keepdims) * (1.0 / count)


mean = defop(
    "mean",
    _mean_forward,
    lambda g, out, x, *, axis, keepdims, count: _sum_vjp(
        g * (1.0 / count), out, x, axis=axis, keepdims=keepdims
    ),
    jvp=lambda t, out, x, *, axis, keepdims, count: (
        _mean_forward(t, axis=axis, keepdims=keepdims, count=count)
        if isinstance(t, _ARRAY)
        else t.sum(axis=axis, keepdims=keepdims) * (1.0 / count)
    ),
)


def _extremum_vjp(g: Any, out: Any, x: Any, *, axis: Any, keepdims: bool) -> Any:
    # Ties share the gradient equally, so the rule is symmetric and the total is preserved.
    hit = _value(x) == _keepdims(_value(out), x.shape, axis, keepdims)
    share = hit / hit.sum(axis=axis, keepdims=True)
    return _keepdims(g, x.shape, axis, keepdims) * share.astype(np.result_type(_value(x)))


def _extremum_jvp(t: Any, out: Any, x: Any, *, axis: Any, keepdims: bool) -> Any:
    # The tangents of the tied maxima, averaged: the transpose of the VJP's equal shares.
    hit = _value(x) == _keepdims(_value(out), x.shape, axis, keepdims)
    share = (hit / hit.sum(axis=axis, keepdims=True)).astype(np.result_type(_value(x)))
    return (t * share).sum(axis=axis, keepdims=keepdims)


max_ = defop(
    "max",
    lambda x, *, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims),
    _extremum_vjp,
    jvp=_extremum_jvp,
)
min_ = defop(
    "min",
    lambda x, *, axis, keepdims: np.min(x, axis=axis, keepdims=keepdims),
    _extremum_vjp,
    jvp=_extremum_jvp,
)


def _logsumexp_forward(x: np.ndarray, *, axis: Any, keepdims: bool) -> np.ndarray:
    # Shift by the max so exp never overflows; a row of -inf keeps its shift at 0.
    # initial=-inf: an empty axis has logsumexp -inf (log of an empty sum), not an error.
    shift = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    shift = np.where(np.isfinite(shift), shift, 0)
    with np.errstate(divide="ignore"):  # an empty or all -inf axis: log(0) = -inf, quietly
        total = (
            np.log(np.sum(np.exp(x - shift), axis=axis, keepdims=True, dtype=_wide_sum(x))) + shift
        )
    total = total.astype(x.dtype, copy=False)
    return total if keepdims else np.squeeze(total, axis=axis)


# Primitive rather than composite for numerical stability (the shift above) and because its
# gradient is simply softmax.
logsumexp = defop(
    "logsumexp",
    _logsumexp_forward,
    lambda g, out, x, *, axis, keepdims: (
        _keepdims(g, x.shape, axis, keepdims) * _exp(x - _keepdims(out, x.shape, axis, keepdims))
    ),
    jvp=lambda t, out, x, *, axis, keepdims: (
        t * _exp(x - _keepdims(out, x.shape, axis, keepdims))
    ).sum(axis=axis, keepdims=keepdims),
)

# --- shape ---------------------------------------------------------------------------------

reshape = defop(
    "reshape",
    lambda x, *, shape: np.reshape(x, shape),
    lambda g, out, x, *, shape: g.reshape(x.shape),
    jvp=lambda t, out, x, *, shape: t.reshape(shape),
)
transpose = defop(
    "transpose",
    lambda x, *, axes: np.transpose(x, axes),
    lambda g, out, x, *, axes: g.transpose(tuple(np.argsort(axes))),
    jvp=lambda t, out, x, *, axes: t.transpose(axes),
)
# The engine's unbroadcast turns g back into x's shape, so this rule is the identity.
broadcast_to = defop(
    "broadcast_to",
    lambda x, *, shape: np.broadcast_to(x, shape),
    lambda g, out, x, *, shape: g,
    jvp=lambda t, out, x, *, shape: _broadcast_to(t, shape),
)


def _setitem_forward(x: Any, v: Any, *, index: Any) -> Any:
    out = np.array(x)  # a copy: the tensor written into may be saved by a pending graph
    out[index] = v
    return out if out.ndim else out[()]


def _setitem_vjp_x(g: Any, out: Any, x: Any, v: Any, *, index: Any) -> Any:
    kept = np.ones(np.shape(_value(x)), dtype=bool)  # the overwritten places get nothing
    kept[index] = False
    return _where(kept, g, 0.0)


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
    picked = _getitem(g, index)
    if not _is_basic_index(index):  # a basic index never names one element twice
        picked = _where(_last_writes(np.shape(_value(x)), index), picked, 0.0)
    # A value with extra leading axes of size 1 was squeezed into its slot; give them back
    # (as size 1: the slot may also have broadcast the value, which the engine sums back).
    if picked.ndim < v.ndim:
        return picked.reshape((1,) * (v.ndim - picked.ndim) + picked.shape)
    return picked


def _setitem_jvp_v(t: Any, out: Any, x: Any, v: Any, *, index: Any) -> Any:
    # Writing v into zeros is linear in v: the op itself carries v's tangent into place.
    zeros = np.zeros(np.shape(_value(x)), dtype=np.result_type(_value(out)))
    if isinstance(t, _ARRAY):
        return _setitem_forward(zeros, t, index=index)
    return engine.apply(setitem, (engine.constant(zeros), t), index=index)


# `buf[i] = w` with w (or buf) in a graph: recorded so w gets its gradient (as PyTorch does).
setitem = defop(
    "setitem",
    _setitem_forward,
    _setitem_vjp_x,
    _setitem_vjp_v,
    jvp=(_setitem_vjp_x, _setitem_jvp_v),
)  # x's rule is a mask: the same both ways


def _getitem_forward(x: Any, *, index: Any) -> Any:
    # Rows picked by an integer array (a batch gathered from a data set): ndarray.take is
    # numpy's faster path for it, same values, errors and layout (MNIST batch of 64 from the
    # 60,000 images, inside the training loop: 22-23 us -> 18-19 us).
    if type(index) is np.ndarray and index.dtype.kind in "iu" and type(x) is np.ndarray and x.ndim:
        return x.take(index, 0)
    return x[index]


getitem = defop(
    "getitem",
    _getitem_forward,
    lambda g, out, x, *, index: _scatter(g, x.shape, index),
    jvp=lambda t, out, x, *, index: _getitem(t, index),
)
# The adjoint of indexing (used by getitem's rule, so second derivatives through indexing work).
scatter_add = defop(
    "scatter_add",
    _scatter_forward,
    lambda g, out, x, *, shape, index: _getitem(g, index),
    jvp=lambda t, out, x, *, shape, index: _scatter(t, shape, index),
)


def _concatenate_vjp(i: int, g: Any, out: Any, *xs: Any, axis: int) -> Any:
    start = sum(x.shape[axis] for x in xs[:i])
    window = (slice(None),) * axis + (slice(start, start + xs[i].shape[axis]),)
    return g[window]


concatenate = defop(
    "concatenate",
    lambda *xs, axis: np.concatenate(xs, axis=axis),
    _concatenate_vjp,
    variadic=True,
    jvp=lambda ts, out, *xs, axis: _concatenate(ts, axis),
)

# --- linear algebra ------------------------------------------------------------------------


def _matmul_vjp_a(g: Any, out: Any, a: Any, b: Any) -> Any:
    if a.ndim == 1 and b.ndim == 1:
        return g * b
    if b.ndim == 1:  # (..., n, k) @ (k,) -> (..., n)
        return g[..., None] * b
    if a.ndim == 1:  # (k,) @ (..., k, m) -> (..., m)
        return (g[..., None, :] @ _swap(b))[..., 0, :]
    return g @ _swap(b)


def _matmul_vjp_b(g: Any, out: Any, a: Any, b: Any) -> Any:
    if a.ndim == 1 and b.ndim == 1:
        return g * a
    if b.ndim == 1:
        return (_swap(a) @ g[..., None])[..., 0]
    if a.ndim == 1:
        return a[:, None] * g[..., None, :]
    return _swap(a) @ g


# matmul is linear in each argument: the tangent goes through the product itself.
matmul = defop(
    "matmul",
    operator.matmul,
    _matmul_vjp_a,
    _matmul_vjp_b,
    jvp=(lambda t, out, a, b: t @ b, lambda t, out, a, b: a @ t),
)


def _linear_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None):
    y = x @ weight.T
    if bias is not None:
        y += bias  # y is a fresh array here, so adding in place is safe and saves a copy
    return y


def _rows(a: Any) -> Any:
    return a.reshape(-1, a.shape[-1])


_ones: dict[np.dtype, np.ndarray] = {}


def _linear_bias_vjp(g: Any, out: Any, x: Any, w: Any, b: Any = None) -> Any:
    if g.ndim != 2:
        g = _rows(g)
    if not isinstance(g, _ARRAY):
        return g.sum(axis=0)
    # The column sums as ones @ g, a BLAS matrix-vector product: np.add.reduce(g, 0) adds
    # one row at a time and takes about twice as long for a batch (64x128 float32: 0.9 us
    # against 1.9). The ones are cached per dtype, as the row index is.
    n, dtype = len(g), g.dtype
    ones = _ones.get(dtype)
    if ones is None or len(ones) < n:
        ones = _ones[dtype] = _grown(ones, n, lambda length: np.ones(length, dtype))
    return ones[:n] @ g


# Fused x @ W.T + b, W stored (out, in) as in PyTorch: one node instead of three (transpose,
# matmul, add) in every layer, which is both faster and easier to read in a drawing.
linear = defop(
    "linear",
    _linear_forward,
    lambda g, out, x, w, b=None: g @ w,
    lambda g, out, x, w, b=None: g.T @ x if g.ndim == 2 else _rows(g).T @ _rows(x),
    _linear_bias_vjp,
    jvp=(
        lambda t, out, x, w, b=None: t @ w.T,
        lambda t, out, x, w, b=None: x @ t.T,
        lambda t, out, x, w, b=None: t,
    ),
)


_row_cache = np.arange(0)


def _grown(cached: np.ndarray | None, n: int, make: Callable[[int], np.ndarray]) -> np.ndarray:
    """`cached` if it holds at least n values, else make(length) at twice its length or n,
    read-only: the arrays every training step slices from (the batch size rarely changes)."""
    if cached is not None and len(cached) >= n:
        return cached
    array = make(max(n, 2 * len(cached)) if cached is not None else n)
    array.flags.writeable = False
    return array


def _row_index(n: int) -> np.ndarray:
    """np.arange(n), sliced from a cached, read-only array (every training step needs one)."""
    global _row_cache
    _row_cache = _grown(_row_cache, n, np.arange)
    return _row_cache[:n]


def _cross_entropy_forward(logits: np.ndarray, *, labels: np.ndarray):
    # Computed class-major, on a (classes, n) copy of the logits: numpy reduces an (n, 10)
    # array along its rows one short row at a time, about 3x slower than it combines the
    # rows of a (10, n) one, and the copy costs less than the difference. Written out rather
    # than through _logsumexp_forward (the rule reuses the probabilities); ufunc reductions
    # called directly (ndarray.max and .sum add a Python wrapper each).
    if logits.dtype.char == "e":
        # float16: its sums overflow at 65504 (the exponentials of 100,000 equal logits, the
        # losses of a batch of 30,000), so computed in float32 and answered in float16.
        loss, (probabilities, at) = _cross_entropy_forward(logits.astype(np.float32), labels=labels)
        return loss.astype(np.float16), (probabilities.astype(np.float16), at)
    n = len(labels)
    shifted = logits.T.copy()
    shifted -= np.maximum.reduce(shifted, 0)
    # Each sample's label as a flat position in that layout: numpy indexes with one integer
    # array several times faster than with a (labels, samples) pair, and the rule indexes
    # there too. In intp whatever the labels' type; they are in range (checked by the caller).
    at = np.multiply(labels, n, dtype=np.intp, casting="unsafe")
    at += _row_cache[:n] if len(_row_cache) >= n else _row_index(n)
    exp = np.exp(shifted)
    total = np.add.reduce(exp, 0)
    loss = np.add.reduce(np.log(total) - shifted.ravel()[at])
    # The mean; of an empty batch, NaN (as in PyTorch) without numpy's warning about 0 / 0.
    loss = loss / n if n else loss.dtype.type(np.nan)
    exp /= total  # exp is ours: the probabilities in place, one array fewer
    return loss, (exp, at)


def _cross_entropy_vjp(
    g: Any, out: Any, logits: Any, *, labels: np.ndarray, saved: tuple[np.ndarray, np.ndarray]
) -> Any:
    n = len(labels) or 1  # an empty batch has an empty gradient: any scale will do
    if isinstance(logits, _ARRAY):
        # (softmax - onehot) / n without building the one-hot: scale a copy of the saved
        # probabilities (never the saved array itself: backward may run twice), then take
        # the scale off at each sample's label; then back to (n, classes), as a view.
        probabilities, at = saved
        scale = g / n
        grad = probabilities * scale
        grad.ravel()[at] -= scale
        return grad.T
    # On Tensors (create_graph) the softmax is recomputed as a differentiable expression, so
    # second derivatives flow through it.
    onehot = np.zeros(logits.shape, dtype=np.result_type(_value(logits)))
    onehot[_row_index(len(labels)), labels] = 1
    return (_softmax(logits, axis=1) - onehot) * (g / n)


# Fused log-softmax + negative log-likelihood (mean over the batch, integer labels): its
# gradient (softmax - onehot) / N is exact and stable, and it saves four nodes per step.
def _cross_entropy_jvp(
    t: Any, out: Any, logits: Any, *, labels: np.ndarray, saved: tuple[np.ndarray, np.ndarray]
) -> Any:
    # The scalar loss moves by <gradient, tangent>: the VJP rule with g = 1, dotted with t.
    return (_cross_entropy_vjp(1.0, out, logits, labels=labels, saved=saved) * t).sum()


softmax_cross_entropy = defop(
    "softmax_cross_entropy",
    _cross_entropy_forward,
    _cross_entropy_vjp,
    saves=True,
    jvp=_cross_entropy_jvp,
)
