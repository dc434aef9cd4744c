"""Every public op and loss against PyTorch, one entry each, on hypothesis-drawn inputs.

Shapes include 0-d, size-0 and size-1 axes; values include each op's kinks (0 for relu, abs and
powers, ties for max/min/maximum); inputs come as float32, float64, int64 and uint8 (integers
take part as constants); the upstream gradient is random and read-only, and so are the
inputs, so a rule that wrote into either fails here. Each entry asserts the value, the
gradient of every input, and their dtypes and shapes; in float64 also a Hessian-vector
product. `test_every_public_op_has_an_entry` lists the public API and fails when an op is
added without an entry here (or a reason in NOT_OPS).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import autodiff as ad
import nn
from autodiff import Tensor, engine
from tests.oracle import require_torch

torch = require_torch()  # every test here compares with PyTorch
TF = torch.nn.functional
OF = nn.functional

FLOATS = (np.float32, np.float64)
INTS = (np.int64, np.uint8)


def _dim(axis: Any, ndim: int) -> Any:
    """Our axis (None, int or tuple) as PyTorch's dim."""
    return tuple(range(ndim)) if axis is None else axis


# --- drawing inputs --------------------------------------------------------------------------


def _shape(min_dims: int = 0, min_side: int = 0) -> st.SearchStrategy:
    return hnp.array_shapes(min_dims=min_dims, max_dims=3, min_side=min_side, max_side=3)


def _broadcast(n: int, min_side: int = 0) -> st.SearchStrategy:
    return hnp.mutually_broadcastable_shapes(num_shapes=n, min_side=min_side, max_side=3).map(
        lambda b: b.input_shapes
    )


def _axis_kwargs(shapes: tuple, keepdims: bool = True) -> st.SearchStrategy:
    ndim = len(shapes[0])
    axis = (
        st.none()
        if ndim == 0
        else st.one_of(
            st.none(),
            st.integers(-ndim, ndim - 1),
            st.lists(st.integers(0, ndim - 1), unique=True, min_size=1).map(tuple),
        )
    )
    if not keepdims:
        return st.fixed_dictionaries({"axis": axis})
    return st.fixed_dictionaries({"axis": axis, "keepdims": st.booleans()})


def _one_axis(shapes: tuple) -> st.SearchStrategy:
    ndim = len(shapes[0])
    return st.fixed_dictionaries({"axis": st.integers(-ndim, ndim - 1)})


def _values(
    dtype: Any, shape: tuple, low: float, high: float, kinks: tuple, avoid: tuple = ()
) -> Any:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        width = 32 if dtype == np.float32 else 64
        smooth = st.floats(low, high, width=width, allow_nan=False, allow_infinity=False)
        if avoid:
            smooth = smooth.filter(lambda v: all(abs(v - p) > 1e-3 for p in avoid))
        elements = st.one_of(st.sampled_from(kinks), smooth) if kinks else smooth
    else:
        lo = max(int(np.ceil(low)), 0 if dtype.kind == "u" else -10)
        elements = st.integers(lo, max(lo, min(int(np.floor(high)), 10)))
    return hnp.arrays(dtype, shape, elements=elements)


@dataclass
class Entry:
    """One public op: ours and PyTorch's, and the inputs it is defined on."""

    ours: Callable
    theirs: Callable
    shapes: st.SearchStrategy = field(default_factory=lambda: _shape().map(lambda s: (s,)))
    kwargs: Callable[[tuple], st.SearchStrategy] | None = None
    low: float = -3.0
    high: float = 3.0
    kinks: tuple = (0.0,)
    ints: bool | tuple = True  # also run with int64 and uint8 inputs (constants), or these
    float_op: bool = False  # integer inputs compute (and come out) in float64
    constants: tuple = ()  # positions of extra non-differentiable array inputs (labels)
    make_constants: Callable[[tuple, Any], st.SearchStrategy] | None = None
    second_order: bool = True
    rtol32: float = 2e-5
    torch_grad: bool = True  # False where PyTorch has no derivative: ours is checked for zeros
    distinct: bool = False  # values made distinct: which of two tied values wins is a convention
    avoid: tuple = ()  # points where PyTorch's convention differs from ours (second order)
    usable: Callable[[list, dict], bool] | None = None  # inputs PyTorch is accurate on


def _spread_is_clear(arrays: list, kwargs: dict) -> bool:
    """std's gradient divides by the spread: where values differ by a few ulps, the rounding of
    the mean decides it, and PyTorch's is off there (x = [3, 3 + 1 ulp] gave it [0, -0.19]
    against the exact [+0.097, -0.097]; three equal float32 values 1.5573347 gave it 0.091
    each, from a mean rounded away from them, against the kink's 0). Equal whole numbers,
    whose mean is exact, are the kink, and stay."""
    a = arrays[0].astype(np.float64)
    if a.size == 0:
        return True
    axis = kwargs.get("axis")
    spread, top = np.ptp(a, axis=axis), np.max(a, axis=axis)
    kink = (spread == 0) & (top == np.round(top))
    return bool(np.all(kink | (spread > 1e-4 * (np.max(np.abs(a), axis=axis) + 1))))


def _unary(ours, theirs, **kw) -> Entry:
    return Entry(ours, theirs, **kw)


def _binary(ours, theirs, **kw) -> Entry:
    return Entry(ours, theirs, shapes=_broadcast(2), **kw)


def _labels(shapes: tuple, classes_axis: int = 1) -> st.SearchStrategy:
    n, c = shapes[0]
    return hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)).map(lambda a: (a,))


_NC = st.tuples(st.integers(0, 4), st.integers(1, 4)).map(lambda s: (s,))
_NC1 = st.tuples(st.integers(1, 4), st.integers(1, 4)).map(lambda s: (s,))
_MATMUL = st.sampled_from(
    [
        ((3,), (3,)),
        ((2, 3), (3,)),
        ((3,), (3, 4)),
        ((2, 3), (3, 4)),
        ((0, 3), (3, 2)),
        ((2, 0), (0, 2)),
        ((1, 2, 3), (4, 3, 1)),
        ((3,), (2, 3, 4)),
        ((2, 2, 3), (3,)),
    ]
)
_LINEAR = st.sampled_from(
    [
        ((4, 3), (2, 3), (2,)),
        ((3,), (2, 3), (2,)),
        ((2, 4, 3), (5, 3), (5,)),
        ((0, 3), (2, 3), (2,)),
        ((1, 1), (1, 1), (1,)),
    ]
)
_INDICES = [
    (slice(None, None, 2),),
    (0,),
    (-1,),
    ([0, 0, -1],),
    (Ellipsis, 0),
    (None, Ellipsis),
    (slice(1, None), [0, 0]),
    ([],),
]


def _index_for(shape: tuple) -> st.SearchStrategy:
    """A valid index into `shape` (basic, integer, repeated, boolean, empty)."""
    if not shape or 0 in shape:  # (..., 0) into an empty last axis is out of bounds
        return st.sampled_from([(Ellipsis,), (None,)])
    ok = [
        ix
        for ix in _INDICES
        if not (len([p for p in ix if p not in (None, Ellipsis)]) > len(shape))
        and not (len(ix) > 1 and isinstance(ix[1], list) and (len(shape) < 2 or shape[1] == 0))
    ]
    boolean = hnp.arrays(bool, shape[:1]).map(lambda m: (m,))
    return st.one_of(st.sampled_from(ok), boolean)


def _setitem(x, w, *, index, lib):
    buf = x * 1.5
    if lib == "torch":
        buf = buf.clone()
        buf[index] = w
    else:
        buf[index] = w
    return buf * buf


def _torch_index(index: tuple) -> tuple:
    return tuple(
        torch.as_tensor(np.asarray(p, dtype=np.intp) if isinstance(p, list) and not p else p)
        if isinstance(p, (list, np.ndarray))
        else p
        for p in index
    )


def _np_index(index: tuple) -> tuple:
    return tuple(
        np.asarray(p, dtype=np.intp) if isinstance(p, list) and not p else p for p in index
    )


SWEEP: dict[str, Entry] = {
    # --- operators -------------------------------------------------------------------------
    "Tensor.__add__": _binary(lambda a, b: a + b, lambda a, b: a + b),
    "Tensor.__radd__": _unary(lambda a: 2.5 + a, lambda a: 2.5 + a),
    "Tensor.__sub__": _binary(lambda a, b: a - b, lambda a, b: a - b),
    "Tensor.__rsub__": _unary(lambda a: 1.5 - a, lambda a: 1.5 - a, ints=False),
    "Tensor.__mul__": _binary(lambda a, b: a * b, lambda a, b: a * b),
    "Tensor.__rmul__": _unary(lambda a: 0.5 * a, lambda a: 0.5 * a),
    "Tensor.__truediv__": _binary(
        lambda a, b: a / b, lambda a, b: a / b, kinks=(0.0, 1.0), float_op=True
    ),
    "Tensor.__rtruediv__": _unary(lambda a: 2.0 / a, lambda a: 2.0 / a, float_op=True),
    "Tensor.__neg__": _unary(lambda a: -a, lambda a: -a, ints=False),
    "Tensor.__pos__": _unary(lambda a: +a * 1.0, lambda a: +a * 1.0),
    "Tensor.clone": _unary(lambda a: a.clone() * 1.0, lambda a: a.clone() * 1.0),
    "Tensor.__pow__": Entry(
        lambda a, *, e: a**e,
        lambda a, *, e: a**e,
        low=0.0,
        kwargs=lambda s: st.fixed_dictionaries({"e": st.sampled_from([0, 1, 2, 3, 0.5, -1.0])}),
        ints=False,
    ),
    # Second order at base 0 is infinite or undefined (PyTorch even gives NaN for an empty
    # exponent); test_rules checks it numerically on positive bases.
    "Tensor.__pow__(tensor)": _binary(
        lambda a, b: a**b,
        lambda a, b: a**b,
        low=0.0,
        kinks=(0.0, 1.0),
        ints=False,
        second_order=False,
    ),
    "Tensor.__rpow__": _unary(lambda a: 2.0**a, lambda a: 2.0**a, ints=False),
    "Tensor.__matmul__": Entry(
        lambda a, b: a @ b, lambda a, b: a @ b, shapes=_MATMUL, low=-2, high=2
    ),
    "Tensor.__rmatmul__": Entry(
        lambda a: np.ones((2, 3), a.dtype) @ a,
        lambda a: torch.ones((2, 3), dtype=a.dtype) @ a,
        shapes=st.just(((3, 2),)),
        ints=False,
    ),
    "Tensor.__getitem__": Entry(
        lambda a, *, index: a[_np_index(index)],
        lambda a, *, index: a[_torch_index(index)],
        shapes=_shape(min_dims=1).map(lambda s: (s,)),
        kwargs=lambda s: st.fixed_dictionaries({"index": _index_for(s[0])}),
    ),
    "Tensor.__setitem__": Entry(
        lambda a, w, *, index: _setitem(a, w, index=index, lib="ours"),
        lambda a, w, *, index: _setitem(a, w, index=index, lib="torch"),
        shapes=_shape(min_dims=1, min_side=1).map(lambda s: (s, s[1:])),
        kwargs=lambda s: st.fixed_dictionaries({"index": st.just((0,))}),
        ints=False,
    ),
    # comparisons: values (booleans) only, no gradient
    "Tensor.__lt__": _binary(lambda a, b: a < b, lambda a, b: a < b),
    "Tensor.__le__": _binary(lambda a, b: a <= b, lambda a, b: a <= b),
    "Tensor.__gt__": _binary(lambda a, b: a > b, lambda a, b: a > b),
    "Tensor.__ge__": _binary(lambda a, b: a >= b, lambda a, b: a >= b),
    "Tensor.__eq__": _binary(lambda a, b: a == b, lambda a, b: a == b),
    "Tensor.__ne__": _binary(lambda a, b: a != b, lambda a, b: a != b),
    # --- elementwise ---------------------------------------------------------------------
    "exp": _unary(ad.exp, torch.exp, float_op=True),
    "log": _unary(ad.log, torch.log, low=0.0, float_op=True),
    "sqrt": _unary(ad.sqrt, torch.sqrt, low=0.0, float_op=True),
    "tanh": _unary(ad.tanh, torch.tanh, float_op=True),
    "sigmoid": _unary(ad.sigmoid, torch.sigmoid, low=-30, high=30, float_op=True),
    "relu": _unary(ad.relu, torch.relu),
    "abs": _unary(ad.abs, torch.abs),
    # uint8 is left out: PyTorch wraps the bound -1 around to 255 first.
    "Tensor.clip": _unary(
        lambda a: a.clip(-1, 1), lambda a: a.clamp(-1, 1), kinks=(-1.0, 0.0, 1.0), ints=(np.int64,)
    ),
    "Tensor.clip(array)": _unary(
        lambda a: a.clip(np.float32(-0.5), np.array(1.0)),
        lambda a: a.clamp(-0.5, 1.0),
        kinks=(-0.5, 1.0),
        ints=False,
    ),
    "Tensor.astype": _unary(
        lambda a: (a.astype(np.float64) * a).astype(a.dtype),
        lambda a: (a.double() * a).to(a.dtype),
        ints=False,
    ),
    "where": _binary(
        lambda a, b: ad.where(np.asarray(a.data) > 0, a, b), lambda a, b: torch.where(a > 0, a, b)
    ),
    "maximum": _binary(ad.maximum, torch.maximum, kinks=(0.0, 1.0, -1.0)),
    "minimum": _binary(ad.minimum, torch.minimum, kinks=(0.0, 1.0, -1.0)),
    "maximum(number)": _unary(
        lambda a: ad.maximum(a, 0), lambda a: torch.maximum(a, torch.zeros_like(a))
    ),
    # --- reductions --------------------------------------------------------------------------
    "Tensor.sum": Entry(
        lambda a, **k: a.sum(**k),
        lambda a, axis, keepdims: a.sum(dim=_dim(axis, a.ndim), keepdim=keepdims),
        kwargs=_axis_kwargs,
    ),
    "Tensor.mean": Entry(
        lambda a, **k: a.mean(**k),
        lambda a, axis, keepdims: (
            a.double()
            .mean(dim=_dim(axis, a.ndim), keepdim=keepdims)
            .to(a.dtype if a.is_floating_point() else torch.float64)
        ),
        shapes=_shape(min_side=1).map(lambda s: (s,)),
        kwargs=_axis_kwargs,
        float_op=True,
    ),
    "Tensor.max": Entry(
        lambda a, **k: a.max(**k),
        lambda a, axis, keepdims: a.amax(dim=_dim(axis, a.ndim), keepdim=keepdims),
        shapes=_shape(min_side=1).map(lambda s: (s,)),
        kwargs=_axis_kwargs,
        kinks=(0.0, 1.0),
    ),
    "Tensor.min": Entry(
        lambda a, **k: a.min(**k),
        lambda a, axis, keepdims: a.amin(dim=_dim(axis, a.ndim), keepdim=keepdims),
        shapes=_shape(min_side=1).map(lambda s: (s,)),
        kwargs=_axis_kwargs,
        kinks=(0.0, 1.0),
    ),
    "Tensor.var": Entry(
        lambda a, **k: a.var(**k),
        lambda a, axis, keepdims: a.var(dim=_dim(axis, a.ndim), keepdim=keepdims, correction=0),
        shapes=_shape(min_side=1).map(lambda s: (s,)),
        kwargs=_axis_kwargs,
        ints=False,
        kinks=(0.0, 1.0),
        rtol32=1e-4,
    ),
    "Tensor.std": Entry(
        lambda a, **k: a.std(**k),
        lambda a, axis, keepdims: a.std(dim=_dim(axis, a.ndim), keepdim=keepdims, correction=0),
        shapes=_shape(min_side=1).map(lambda s: (s,)),
        kwargs=_axis_kwargs,
        ints=False,
        kinks=(1.0,),
        second_order=False,
        rtol32=1e-4,
        usable=_spread_is_clear,
    ),
    "logsumexp": Entry(
        lambda a, **k: ad.logsumexp(a, **k),
        lambda a, axis, keepdims: torch.logsumexp(a, dim=_dim(axis, a.ndim), keepdim=keepdims),
        kwargs=_axis_kwargs,
        float_op=True,
        ints=False,
    ),
    "softmax": Entry(
        lambda a, **k: ad.softmax(a, **k),
        lambda a, axis: torch.softmax(a, axis),
        shapes=_shape(min_dims=1).map(lambda s: (s,)),
        kwargs=_one_axis,
        float_op=True,
        ints=False,
    ),
    "log_softmax": Entry(
        lambda a, **k: ad.log_softmax(a, **k),
        lambda a, axis: torch.log_softmax(a, axis),
        shapes=_shape(min_dims=1).map(lambda s: (s,)),
        kwargs=_one_axis,
        float_op=True,
        ints=False,
    ),
    # --- shape -------------------------------------------------------------------------------
    "Tensor.reshape": _unary(lambda a: a.reshape(-1, 1), lambda a: a.reshape(-1, 1)),
    "Tensor.flatten": _unary(lambda a: a.flatten() * 1.0, lambda a: a.flatten() * 1.0),
    "Tensor.ravel": _unary(lambda a: a.ravel() * 1.0, lambda a: a.ravel() * 1.0),
    "Tensor.transpose": _unary(
        lambda a: a.transpose(), lambda a: a.permute(tuple(reversed(range(a.ndim))))
    ),
    "Tensor.T": _unary(
        lambda a: a.T * 1.0, lambda a: a.permute(tuple(reversed(range(a.ndim)))) * 1.0
    ),
    "Tensor.swapaxes": Entry(
        lambda a: a.swapaxes(0, -1),
        lambda a: a.swapaxes(0, -1),
        shapes=_shape(min_dims=1).map(lambda s: (s,)),
    ),
    "Tensor.broadcast_to": _unary(
        lambda a: a.broadcast_to((2,) + a.shape) * 1.0,
        lambda a: a.broadcast_to((2,) + a.shape) * 1.0,
    ),
    "concatenate": Entry(
        lambda a, b: ad.concatenate([a, b, a], axis=-1),
        lambda a, b: torch.cat([a, b, a], dim=-1),
        shapes=_shape(min_dims=1).map(lambda s: (s, s[:-1] + (2,))),
    ),
    "stack": Entry(
        lambda a, b: ad.stack([a, b], axis=-1),
        lambda a, b: torch.stack([a, b], -1),
        shapes=_shape().map(lambda s: (s, s)),
    ),
    # --- linear algebra and fused ops ------------------------------------------------------
    "matmul": Entry(ad.matmul, torch.matmul, shapes=_MATMUL, low=-2, high=2),
    "linear": Entry(ad.linear, TF.linear, shapes=_LINEAR, low=-2, high=2),
    "softmax_cross_entropy": Entry(
        lambda z, y: ad.softmax_cross_entropy(z, y),
        lambda z, y: TF.cross_entropy(z, torch.as_tensor(y)),
        shapes=_NC1,
        constants=(1,),
        make_constants=lambda s, dt: _labels(s),
        ints=False,
        low=-5,
        high=5,
    ),
    # --- nn.functional ---------------------------------------------------------------------
    "nn.functional.leaky_relu": _unary(
        lambda a: OF.leaky_relu(a, 0.1), lambda a: TF.leaky_relu(a, 0.1), ints=False
    ),
    "nn.functional.mse_loss": Entry(
        lambda a, b, *, reduction: OF.mse_loss(a, b, reduction=reduction),
        lambda a, b, *, reduction: TF.mse_loss(a, b, reduction=reduction),
        shapes=_shape(min_side=1).map(lambda s: (s, s)),
        ints=False,
        kwargs=lambda s: st.fixed_dictionaries(
            {"reduction": st.sampled_from(["mean", "sum", "none"])}
        ),
    ),
    "nn.functional.binary_cross_entropy": Entry(
        lambda p, y: OF.binary_cross_entropy(p, y, reduction="sum"),
        lambda p, y: TF.binary_cross_entropy(p, y, reduction="sum"),
        shapes=_shape(min_side=1).map(lambda s: (s, s)),
        low=1 / 128,
        high=127 / 128,
        kinks=(0.5,),
        ints=False,
        rtol32=1e-4,
    ),
    "nn.functional.binary_cross_entropy_with_logits": Entry(
        lambda z, y, *, reduction: OF.binary_cross_entropy_with_logits(z, y, reduction=reduction),
        lambda z, y, *, reduction: TF.binary_cross_entropy_with_logits(z, y, reduction=reduction),
        shapes=_shape(min_side=1).map(lambda s: (s, s)),
        low=-50,
        high=50,
        kinks=(0.0,),
        ints=False,
        kwargs=lambda s: st.fixed_dictionaries(
            {"reduction": st.sampled_from(["mean", "sum", "none"])}
        ),
        rtol32=1e-4,
    ),
    "nn.functional.nll_loss": Entry(
        lambda z, y, *, reduction: OF.nll_loss(z, y, reduction=reduction),
        lambda z, y, *, reduction: TF.nll_loss(z, torch.as_tensor(y), reduction=reduction),
        shapes=_NC1,
        constants=(1,),
        make_constants=lambda s, dt: _labels(s),
        ints=False,
        kwargs=lambda s: st.fixed_dictionaries(
            {"reduction": st.sampled_from(["mean", "sum", "none"])}
        ),
    ),
    "nn.functional.cross_entropy": Entry(
        lambda z, y, *, reduction: OF.cross_entropy(z, y, reduction=reduction),
        lambda z, y, *, reduction: TF.cross_entropy(z, torch.as_tensor(y), reduction=reduction),
        shapes=_NC1,
        constants=(1,),
        make_constants=lambda s, dt: _labels(s),
        ints=False,
        low=-5,
        high=5,
        kwargs=lambda s: st.fixed_dictionaries(
            {"reduction": st.sampled_from(["mean", "sum", "none"])}
        ),
    ),
    "nn.functional.cross_entropy(options)": Entry(
        lambda z, y, *, reduction, smooth: OF.cross_entropy(
            z,
            y,
            weight=np.linspace(0.5, 2, z.shape[1]).astype(z.dtype),
            ignore_index=1,
            reduction=reduction,
            label_smoothing=smooth,
        ),
        lambda z, y, *, reduction, smooth: TF.cross_entropy(
            z,
            torch.as_tensor(y),
            weight=torch.linspace(0.5, 2, z.shape[1], dtype=z.dtype),
            ignore_index=1,
            reduction=reduction,
            label_smoothing=smooth,
        ),
        shapes=_NC1,
        constants=(1,),
        make_constants=lambda s, dt: _labels(s),
        ints=False,
        low=-5,
        high=5,
        kwargs=lambda s: st.fixed_dictionaries(
            {
                "reduction": st.sampled_from(["mean", "sum", "none"]),
                "smooth": st.sampled_from([0.0, 0.25]),
            }
        ),
        rtol32=1e-4,
    ),
    "nn.functional.cross_entropy(probabilities)": Entry(
        lambda z, p: OF.cross_entropy(z, p, reduction="sum"),
        lambda z, p: TF.cross_entropy(z, p, reduction="sum"),
        shapes=_NC.map(lambda s: (s[0], s[0])),
        low=-5,
        high=5,
        ints=False,
    ),
    # --- PyTorch spellings ----------------------------------------------------------------
    "Tensor.__abs__": _unary(lambda a: abs(a), lambda a: abs(a)),
    "Tensor.clamp": _unary(
        lambda a: a.clamp(-1, 0.5), lambda a: a.clamp(-1, 0.5), kinks=(-1.0, 0.5), ints=False
    ),
    "Tensor.double": _unary(
        lambda a: (a.double() * 2).astype(a.dtype),
        lambda a: (a.double() * 2).to(a.dtype),
        ints=False,
    ),
    "Tensor.float": _unary(
        lambda a: (a.float() * 2).astype(a.dtype), lambda a: (a.float() * 2).to(a.dtype), ints=False
    ),
    "Tensor.permute": Entry(
        lambda a: a.permute(2, 0, 1),
        lambda a: a.permute(2, 0, 1),
        shapes=_shape(min_dims=3).map(lambda s: (s,)),
    ),
    "Tensor.pow": _unary(lambda a: a.pow(3), lambda a: a.pow(3)),
    "Tensor.squeeze": _unary(lambda a: a.squeeze() * 1.0, lambda a: a.squeeze() * 1.0),
    "Tensor.unsqueeze": _unary(lambda a: a.unsqueeze(0) * 1.0, lambda a: a.unsqueeze(0) * 1.0),
    "Tensor.view": _unary(lambda a: a.view(-1) * 1.0, lambda a: a.reshape(-1) * 1.0),
    "cat": Entry(
        lambda a, b: ad.cat([a, b], 0),
        lambda a, b: torch.cat([a, b], 0),
        shapes=_shape(min_dims=1).map(lambda s: (s, (1,) + s[1:])),
    ),
    "nn.functional.l1_loss": Entry(
        lambda a, b, *, reduction: OF.l1_loss(a, b, reduction=reduction),
        lambda a, b, *, reduction: TF.l1_loss(a, b, reduction=reduction),
        shapes=_shape(min_side=1).map(lambda s: (s, s)),
        ints=False,
        kwargs=lambda s: st.fixed_dictionaries(
            {"reduction": st.sampled_from(["mean", "sum", "none"])}
        ),
    ),
    # --- elementwise functions (autodiff.functions) -------------------------------------------
    "sin": _unary(ad.sin, torch.sin, float_op=True),
    "cos": _unary(ad.cos, torch.cos, float_op=True),
    "tan": _unary(ad.tan, torch.tan, low=-1.25, high=1.25, float_op=True),
    "Tensor.arctan": _unary(lambda x: x.arctan(), torch.atan, float_op=True),
    "sinh": _unary(ad.sinh, torch.sinh, float_op=True),
    "cosh": _unary(ad.cosh, torch.cosh, float_op=True),
    "log1p": _unary(ad.log1p, torch.log1p, low=-0.875, float_op=True),
    "expm1": _unary(ad.expm1, torch.expm1, float_op=True),
    "erf": _unary(ad.erf, torch.erf, float_op=True),
    "softplus": _unary(
        lambda a: ad.softplus(a, beta=2.0), lambda a: TF.softplus(a, beta=2.0), ints=False
    ),
    "gelu": Entry(
        lambda a, *, approximate: ad.gelu(a, approximate=approximate),
        lambda a, *, approximate: TF.gelu(a, approximate=approximate),
        ints=False,
        kwargs=lambda s: st.fixed_dictionaries({"approximate": st.sampled_from(["none", "tanh"])}),
        rtol32=1e-4,
    ),
    # elu'' jumps at 0 (1 on the left, 0 on the right): a kink left out, like relu's.
    "elu": _unary(ad.elu, TF.elu, ints=False, kinks=(), avoid=(0.0,)),
    "silu": _unary(ad.silu, TF.silu, ints=False),
    "leaky_relu": _unary(
        lambda a: ad.leaky_relu(a, 0.2), lambda a: TF.leaky_relu(a, 0.2), ints=False
    ),
    "floor": _unary(ad.floor, torch.floor, ints=False, kinks=(0.0, 1.0, -1.5)),
    "ceil": _unary(ad.ceil, torch.ceil, ints=False, kinks=(0.0, 1.0, -1.5)),
    "round": _unary(ad.round, torch.round, ints=False, kinks=(0.5, 1.5, -2.5)),
    "sign": _unary(ad.sign, torch.sign, ints=False),
    "reciprocal": _unary(ad.reciprocal, torch.reciprocal, low=0.25, kinks=(1.0,), ints=False),
    "rsqrt": _unary(ad.rsqrt, torch.rsqrt, low=0.25, kinks=(1.0,), ints=False),
    "square": _unary(ad.square, torch.square, ints=False),
    "floor_divide": _binary(
        ad.floor_divide, torch.floor_divide, low=0.5, kinks=(1.0,), ints=False, torch_grad=False
    ),
    "remainder": _binary(ad.remainder, torch.remainder, low=0.5, kinks=(1.0,), ints=False),
    "Tensor.__floordiv__": _binary(
        lambda a, b: a // b,
        lambda a, b: a // b,
        low=0.5,
        kinks=(1.0,),
        ints=False,
        torch_grad=False,
    ),
    "Tensor.__rfloordiv__": _unary(
        lambda a: 3.0 // a, lambda a: 3.0 // a, low=0.5, kinks=(1.0,), ints=False, torch_grad=False
    ),
    "Tensor.__mod__": _binary(
        lambda a, b: a % b, lambda a, b: a % b, low=0.5, kinks=(1.0,), ints=False
    ),
    # PyTorch has no derivative of a % b in b; ours (-floor(a / b)) is checked by test_rules.
    "Tensor.__rmod__": _unary(
        lambda a: 3.0 % a,
        lambda a: 3.0 % a.detach(),
        low=0.5,
        kinks=(1.0,),
        ints=False,
        torch_grad=False,
    ),
    "masked_fill": _unary(
        lambda a: ad.masked_fill(a, np.asarray(a.data) > 0, 0.5),
        lambda a: torch.masked_fill(a, a > 0, 0.5),
        ints=False,
    ),
    # --- scans, reductions and sorting -------------------------------------------------------
    "cumsum": Entry(
        lambda a, **k: ad.cumsum(a, **k),
        lambda a, axis: torch.cumsum(a, axis),
        shapes=_shape(min_dims=1).map(lambda s: (s,)),
        kwargs=_one_axis,
        ints=False,
    ),
    # Exact zeros (kinks) yes, magnitudes near 0 no: PyTorch divides by x there and its
    # gradients lose their digits (ours are exact: test_functions pins those cases).
    "cumprod": Entry(
        lambda a, **k: ad.cumprod(a, **k),
        lambda a, axis: torch.cumprod(a, axis),
        shapes=_shape(min_dims=1).map(lambda s: (s,)),
        kwargs=_one_axis,
        ints=False,
        avoid=(0.0,),
    ),
    "prod": Entry(
        lambda a, **k: ad.prod(a, **k),
        lambda a, axis, keepdims: a.prod() if axis is None else a.prod(axis, keepdims),
        shapes=_shape(min_dims=1).map(lambda s: (s,)),
        kwargs=lambda s: st.fixed_dictionaries(
            {
                "axis": st.one_of(st.none(), st.integers(-len(s[0]), len(s[0]) - 1)),
                "keepdims": st.just(False),
            }
        ),
        ints=False,
        avoid=(0.0,),
    ),  # as cumprod
    "argmax": Entry(
        lambda a, **k: ad.argmax(a, **k),
        lambda a, axis: torch.argmax(a, axis) if axis is not None else torch.argmax(a),
        shapes=_shape(min_side=1).map(lambda s: (s,)),
        kwargs=lambda s: st.fixed_dictionaries(
            {
                "axis": st.one_of(st.none(), st.integers(-len(s[0]), len(s[0]) - 1))
                if s[0]
                else st.none()
            }
        ),
        kinks=(),
        distinct=True,
    ),
    "argmin": Entry(
        lambda a, **k: ad.argmin(a, **k),
        lambda a, axis: torch.argmin(a, axis) if axis is not None else torch.argmin(a),
        shapes=_shape(min_side=1).map(lambda s: (s,)),
        kwargs=lambda s: st.fixed_dictionaries(
            {
                "axis": st.one_of(st.none(), st.integers(-len(s[0]), len(s[0]) - 1))
                if s[0]
                else st.none()
            }
        ),
        kinks=(),
        distinct=True,
    ),
    "any": Entry(
        lambda a, **k: ad.any(a, **k),
        lambda a, axis, keepdims: torch.any(a, dim=_dim(axis, a.ndim), keepdim=keepdims),
        kwargs=_axis_kwargs,
        kinks=(0.0,),
    ),
    "all": Entry(
        lambda a, **k: ad.all(a, **k),
        lambda a, axis, keepdims: torch.all(a, dim=_dim(axis, a.ndim), keepdim=keepdims),
        kwargs=_axis_kwargs,
        kinks=(0.0,),
    ),
    "norm": Entry(
        lambda a, *, o, **k: ad.norm(a, o, **k),
        lambda a, *, o, axis, keepdims: torch.linalg.vector_norm(
            a, o, dim=_dim(axis, a.ndim), keepdim=keepdims
        ),
        shapes=_shape(min_side=1).map(lambda s: (s,)),
        kwargs=lambda s: _axis_kwargs(s).flatmap(
            lambda k: st.fixed_dictionaries(
                {"o": st.sampled_from([1, 2]), **{n: st.just(v) for n, v in k.items()}}
            )
        ),
        # Exactly 0 is drawn (the subgradient 0, as PyTorch); values so tiny that
        # x * x underflows are not: PyTorch's norm underflows there, ours rescales
        # (test_functions.py checks that).
        ints=False,
        kinks=(0.0,),
        avoid=(0.0,),
        second_order=False,
    ),
    "sort": Entry(
        lambda a, *, descending: ad.sort(a, -1, descending),
        lambda a, *, descending: torch.sort(a, -1, descending).values,
        distinct=True,
        shapes=_shape(min_dims=1).map(lambda s: (s,)),
        kinks=(),
        ints=False,
        kwargs=lambda s: st.fixed_dictionaries({"descending": st.booleans()}),
    ),
    "topk": Entry(
        lambda a, *, largest: ad.topk(a, 2, -1, largest)[0],
        lambda a, *, largest: torch.topk(a, 2, -1, largest).values,
        distinct=True,
        shapes=_shape(min_dims=1).map(lambda s: (s[:-1] + (3,),)),
        kinks=(),
        ints=False,
        kwargs=lambda s: st.fixed_dictionaries({"largest": st.booleans()}),
    ),
    # --- indexing and rearranging ------------------------------------------------------------
    "take_along_axis": Entry(
        lambda a, i: ad.take_along_axis(a, i, axis=1),
        lambda a, i: torch.take_along_dim(a, torch.as_tensor(i), dim=1),
        shapes=st.just(((3, 4),)),
        make_constants=lambda s, dt: hnp.arrays(np.int64, (3, 5), elements=st.integers(0, 3)).map(
            lambda i: (i,)
        ),
        ints=False,
    ),
    "gather": Entry(
        lambda a, i: ad.gather(a, 1, i),
        lambda a, i: torch.gather(a, 1, torch.as_tensor(i)),
        shapes=st.just(((3, 4),)),
        make_constants=lambda s, dt: hnp.arrays(np.int64, (3, 2), elements=st.integers(0, 3)).map(
            lambda i: (i,)
        ),
        ints=False,
    ),
    "scatter_add": Entry(
        lambda a, b, i: ad.scatter_add(a, 1, i, b),
        lambda a, b, i: torch.scatter_add(a, 1, torch.as_tensor(i), b),
        shapes=st.just(((3, 4), (3, 2))),
        make_constants=lambda s, dt: hnp.arrays(np.int64, (3, 2), elements=st.integers(0, 3)).map(
            lambda i: (i,)
        ),
        ints=False,
    ),
    "tril": Entry(
        lambda a: ad.tril(a, -1),
        lambda a: torch.tril(a, -1),
        shapes=_shape(min_dims=2).map(lambda s: (s,)),
        ints=False,
    ),
    "triu": Entry(
        lambda a: ad.triu(a, 1),
        lambda a: torch.triu(a, 1),
        shapes=_shape(min_dims=2).map(lambda s: (s,)),
        ints=False,
    ),
    "flip": Entry(
        lambda a: ad.flip(a, 0),
        lambda a: torch.flip(a, (0,)),
        shapes=_shape(min_dims=1).map(lambda s: (s,)),
        ints=False,
    ),
    "roll": Entry(
        lambda a: ad.roll(a, 2, 0),
        lambda a: torch.roll(a, 2, 0),
        shapes=_shape(min_dims=1).map(lambda s: (s,)),
        ints=False,
    ),
    "repeat": Entry(
        lambda a: ad.repeat(a, 2, 0),
        lambda a: torch.repeat_interleave(a, 2, 0),
        shapes=_shape(min_dims=1).map(lambda s: (s,)),
        ints=False,
    ),
    "tile": _unary(lambda a: ad.tile(a, (2, 1)), lambda a: torch.tile(a, (2, 1)), ints=False),
    "split": Entry(
        lambda a: ad.concatenate([p * (i + 1.0) for i, p in enumerate(ad.split(a, 2, axis=0))]),
        lambda a: torch.cat([p * (i + 1.0) for i, p in enumerate(torch.tensor_split(a, 2, dim=0))]),
        shapes=st.just(((4, 3),)),
        ints=False,
    ),
    "chunk": Entry(
        lambda a: ad.concatenate(
            [p * (i + 1.0) for i, p in enumerate(ad.chunk(a, 2, axis=1))], axis=1
        ),
        lambda a: torch.cat([p * (i + 1.0) for i, p in enumerate(torch.chunk(a, 2, dim=1))], dim=1),
        shapes=st.just(((3, 4),)),
        ints=False,
    ),
    "pad": Entry(
        lambda a: ad.pad(a, ((1, 0), (2, 1)), value=0.5),
        lambda a: TF.pad(a, (2, 1, 1, 0), value=0.5),
        shapes=st.sampled_from([((2, 3),), ((1, 1),), ((0, 2),)]),
        ints=False,
    ),
    "einsum": Entry(
        lambda a, b: ad.einsum("ij,jk->ik", a, b),
        lambda a, b: torch.einsum("ij,jk->ik", a, b),
        shapes=st.just(((2, 3), (3, 4))),
        ints=False,
    ),
    # --- convolutions and pooling (autodiff.conv) -----------------------------------------
    "conv2d": Entry(
        lambda x, w, b: ad.conv2d(x, w, b, stride=1, padding=1),
        lambda x, w, b: TF.conv2d(x, w, b, stride=1, padding=1),
        shapes=st.just(((2, 3, 5, 4), (2, 3, 3, 2), (2,))),
        ints=False,
        low=-1,
        high=1,
        rtol32=1e-4,
    ),
    "conv1d": Entry(
        lambda x, w, b: ad.conv1d(x, w, b, stride=2),
        lambda x, w, b: TF.conv1d(x, w, b, stride=2),
        shapes=st.just(((2, 3, 7), (4, 3, 3), (4,))),
        ints=False,
        low=-1,
        high=1,
        rtol32=1e-4,
    ),
    "max_pool2d": Entry(
        lambda x: ad.max_pool2d(x, 2),
        lambda x: TF.max_pool2d(x, 2),
        shapes=st.just(((2, 1, 4, 6),)),
        ints=False,
        kinks=(),
        distinct=True,
    ),
    "avg_pool2d": Entry(
        lambda x: ad.avg_pool2d(x, 2),
        lambda x: TF.avg_pool2d(x, 2),
        shapes=st.just(((2, 1, 4, 6),)),
        ints=False,
    ),
    "unfold": Entry(
        lambda x: ad.unfold(x, (2, 3)),
        lambda x: TF.unfold(x, (2, 3)).reshape(2, 3, 2, 3, 3, 2).permute(0, 1, 4, 5, 2, 3),
        shapes=st.just(((2, 3, 4, 4),)),
        ints=False,
    ),
}

# Public names that are not differentiable ops, each with the reason it needs no entry.
NOT_OPS = {
    **dict.fromkeys(
        [
            "zeros",
            "ones",
            "full",
            "arange",
            "rand",
            "randn",
            "zeros_like",
            "eye",
            "ones_like",
            "tensor",
            "from_numpy",
        ],
        "constructor: makes a leaf, computes nothing",
    ),
    **dict.fromkeys(
        [
            "grad",
            "no_grad",
            "inference_mode",
            "tree_flatten",  # tree utilities, not ops (autodiff/trees.py)
            "tree_leaves",
            "tree_map",
            "tree_structure",
            "tree_unflatten",
            "enable_grad",
            "set_grad_enabled",
            "is_grad_enabled",
            "detect_anomaly",
            "Tensor.zero_",
        ],
        "gradient machinery: exercised by every entry",
    ),
    **dict.fromkeys(
        ["jvp", "explain_forward"],
        "forward mode: its own PyTorch comparison (torch.func.jvp) in its tests",
    ),
    "manual_seed": "seeds the random constructors, computes nothing",
    "custom_op": "makes a user's primitive; tested in tests/autodiff/test_custom.py",
    "vmap": "a transform, not an op: every row under it against the loop, and against "
    "torch.func and jax, in tests/autodiff/test_vmap.py",
    **dict.fromkeys(
        [
            "nn.functional.max_pool2d",
            "nn.functional.avg_pool2d",
            "nn.functional.max_unpool2d",
        ],
        "pooling with PyTorch's options: values, indices and gradients against torch over "
        "random settings in tests/nn/test_pooling_options.py",
    ),
    **dict.fromkeys(
        [
            "Tensor.item",
            "Tensor.numpy",
            "Tensor.tolist",
            "Tensor.backward",
            "Tensor.zero_grad",
            "Tensor.requires_grad_",
            "Tensor.detach",
            "Tensor.retain_grad",
            "Tensor.__array__",
            "Tensor.__bool__",
            "Tensor.__float__",
            "Tensor.__int__",
            "Tensor.__len__",
            "Tensor.__iter__",
            "Tensor.__repr__",
            "Tensor.__hash__",
            "Tensor.numel",
            "Tensor.dim",
            "Tensor.cpu",
        ],
        "conversion or bookkeeping, not an op",
    ),
    **dict.fromkeys(
        [
            "Tensor.__iadd__",
            "Tensor.__isub__",
            "Tensor.__imul__",
            "Tensor.__itruediv__",
            "Tensor.__ipow__",
        ],
        "in-place spelling: recorded, it is the out-of-place op's entry; the write "
        "under no_grad is tested in test_engine",
    ),
    "nn.functional.accuracy": "a metric on plain numbers, no gradient",
    "nn.functional.one_hot": "integer labels to integer rows, no gradient (checked against "
    "PyTorch in test_utils)",
    **dict.fromkeys(
        ["Tensor.argmax", "Tensor.argmin", "Tensor.argsort"], "an integer index, no gradient"
    ),
    "Tensor.long": "an integer cast: a constant, no gradient (astype's entry covers casts)",
    **dict.fromkeys(
        ["apply", "mark_written", "enter_scope", "exit_scope"],
        "the surface for libraries (autodiff.extend): runs a row, or bookkeeping",
    ),
    **dict.fromkeys(
        ["Tensor.raw", "Tensor.raw_grad", "Tensor.op_params"],
        "the raw array, gradient or params: no op",
    ),
    **dict.fromkeys(
        [
            "nn.functional.relu",
            "nn.functional.sigmoid",
            "nn.functional.tanh",
            "nn.functional.softmax",
            "nn.functional.log_softmax",
        ],
        "the engine's own function re-exported (its entry is the engine's)",
    ),
}
_OPERATOR_WORDS = (
    "add radd sub rsub mul rmul truediv rtruediv floordiv rfloordiv mod rmod pow rpow matmul "
    "rmatmul neg pos abs invert lt le gt ge eq ne getitem setitem iadd isub imul itruediv ipow "
    "and or xor rand ror rxor array bool float int len iter repr hash"
)
_OPERATORS = {f"__{n}__" for n in _OPERATOR_WORDS.split()}
_ATTRIBUTES = {
    "data",
    "grad",
    "requires_grad",
    "name",
    "shape",
    "ndim",
    "dtype",
    "size",
    "is_leaf",
    "op",
    "parents",
}


def public_api() -> set[str]:
    names = set()
    for name in ad.__all__:
        obj = getattr(ad, name)
        if inspect.isfunction(obj):
            names.add(name)
    for name in dir(Tensor):
        if name in _ATTRIBUTES or (name.startswith("_") and name not in _OPERATORS):
            continue
        if (
            inspect.isfunction(getattr(Tensor, name, None))
            or name in ("T",)
            or isinstance(inspect.getattr_static(Tensor, name), property)
        ):
            names.add(f"Tensor.{name}")
    for name, obj in vars(OF).items():
        if inspect.isfunction(obj) and not name.startswith("_"):
            names.add(f"nn.functional.{name}")
    return names


def test_every_public_op_has_an_entry():
    covered = {name.split("(")[0] for name in SWEEP} | set(NOT_OPS)
    # Method spellings of functions covered under their function name (x.exp() is exp(x)).
    covered |= {f"Tensor.{n}" for n in SWEEP if "." not in n and "(" not in n}
    missing = sorted(public_api() - covered)
    assert not missing, f"public ops without a PyTorch sweep entry: {missing}"


# --- running one entry -------------------------------------------------------------------


def _tol(dtype: Any, entry: Entry) -> dict:
    if np.dtype(dtype) == np.float32:
        return {"rtol": entry.rtol32, "atol": 1e-5}
    return {"rtol": 1e-9, "atol": 1e-10}


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a)
    a.flags.writeable = False
    return a


def _close(ours: Any, theirs: Any, tol: dict, what: str) -> None:
    ours = np.asarray(ours, dtype=np.float64)
    theirs = np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
    np.testing.assert_allclose(ours, theirs, equal_nan=True, err_msg=what, **tol)


def _torch(a: np.ndarray, dtype: Any, grad: bool) -> Any:
    t = torch.tensor(np.array(a, dtype=dtype))
    return t.requires_grad_(grad)


# ~140 hypothesis-driven entries: a minute of CPU, so the quick loop leaves them to CI.
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SWEEP))
@settings(max_examples=20)
@given(data=st.data())
def test_op_matches_pytorch(name, data):
    entry = SWEEP[name]
    shapes = data.draw(entry.shapes, label="shapes")
    dtypes = FLOATS + (INTS if entry.ints is True else entry.ints or ())
    dtype = np.dtype(data.draw(st.sampled_from(dtypes), label="dtype"))
    n = len(shapes)
    arrays = [
        data.draw(_values(dtype, s, entry.low, entry.high, entry.kinks, entry.avoid), label=f"x{i}")
        for i, s in enumerate(shapes)
    ]
    constants = list(data.draw(entry.make_constants(shapes, dtype))) if entry.make_constants else []
    kwargs = data.draw(entry.kwargs(shapes), label="kwargs") if entry.kwargs else {}
    if entry.usable is not None:
        assume(entry.usable(arrays, kwargs))
    floating = dtype.kind == "f"
    if entry.distinct:  # the ranks of the drawn values: same order, no two equal
        ranks = [
            np.argsort(np.argsort(a.reshape(-1), kind="stable")).reshape(a.shape) for a in arrays
        ]
        arrays = [(r * 0.25 - 1 if floating else r).astype(dtype) for r in ranks]
    arrays = [_readonly(a) for a in arrays]

    ours_in = [Tensor(a, requires_grad=floating) for a in arrays]
    # PyTorch computes integer inputs in float64 where ours does (float ops), else in kind.
    ref_dtype = np.float64 if (not floating and entry.float_op) else dtype
    ref_in = [_torch(a, ref_dtype, floating and entry.torch_grad) for a in arrays]
    with np.errstate(all="ignore"):
        out = entry.ours(*ours_in, *constants, **kwargs)
        ref = entry.theirs(*ref_in, *constants, **kwargs)
    tol = _tol(dtype if floating else np.float64, entry)
    _close(out.data, ref.detach().numpy(), tol, f"{name} value")
    if not ref.dtype.is_floating_point and (floating or out.dtype == np.bool_):
        # comparisons, any/all, argmax: booleans or indices, never a gradient
        assert out.dtype.kind in "biu" and not out.requires_grad, (name, out.dtype)
        return
    if floating:
        assert out.dtype == dtype, (name, out.dtype, dtype)
    elif entry.float_op:
        assert out.dtype == np.float64, (name, out.dtype)
    else:
        assert out.dtype.kind in "iuf" and not out.requires_grad
    if not floating or not out.requires_grad:
        return

    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    upstream = _readonly(rng.uniform(-1, 1, size=out.shape).astype(dtype))
    with np.errstate(all="ignore"):
        engine.backward([out], [upstream])
        ref_grads = (
            torch.autograd.grad(ref, ref_in, grad_outputs=torch.tensor(upstream), allow_unused=True)
            if entry.torch_grad
            else [None] * n
        )
    for i, (t, g) in enumerate(zip(ours_in, ref_grads, strict=True)):
        expected = np.zeros(t.shape) if g is None else g.numpy(force=True)
        assert t.grad is not None, (name, i)
        assert t.grad.dtype == dtype and t.grad.shape == t.shape, (name, i, t.grad.dtype)
        if not entry.torch_grad and not np.all(t.grad.data == 0):
            continue  # PyTorch has no derivative to compare a nonzero one with
        _close(t.grad.data, expected, tol, f"{name} gradient of input {i}")

    if not entry.second_order or not entry.torch_grad or dtype != np.float64 or n == 0:
        return
    # Second order: a Hessian-vector product, with a random direction per input.
    ours_in = [Tensor(a, requires_grad=True) for a in arrays]
    ref_in = [_torch(a, dtype, True) for a in arrays]
    directions = [rng.uniform(-1, 1, size=a.shape) for a in arrays]
    with np.errstate(all="ignore"):
        out = entry.ours(*ours_in, *constants, **kwargs)
        grads = ad.grad(out, ours_in, grad_outputs=upstream, create_graph=True)
        inner = sum(((g * d).sum() for g, d in zip(grads, directions, strict=True)), Tensor(0.0))
        ref = entry.theirs(*ref_in, *constants, **kwargs)
        ref_grads = torch.autograd.grad(
            ref, ref_in, grad_outputs=torch.tensor(upstream), create_graph=True, allow_unused=True
        )
        ref_inner = sum(
            (g * torch.tensor(d)).sum()
            for g, d in zip(ref_grads, directions, strict=True)
            if g is not None
        )
        if inner.requires_grad:
            hvp = ad.grad(inner, ours_in)
        else:
            hvp = [np.zeros(a.shape) for a in arrays]
        if isinstance(ref_inner, torch.Tensor) and ref_inner.requires_grad:
            ref_hvp = torch.autograd.grad(ref_inner, ref_in, allow_unused=True)
        else:
            ref_hvp = [None] * n
    for i, (h, r) in enumerate(zip(hvp, ref_hvp, strict=True)):
        expected = np.zeros(arrays[i].shape) if r is None else r.numpy(force=True)
        _close(
            getattr(h, "data", h),
            expected,
            {"rtol": 1e-7, "atol": 1e-8},
            f"{name} Hessian-vector product, input {i}",
        )
