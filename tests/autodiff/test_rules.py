"""Every op, primitive and composite, against central differences on hypothesis-drawn inputs.

Each case says which primitives of the table it exercises; `test_every_primitive_has_a_domain`
fails when a primitive is added to `autodiff.ops.OPS` without a case here, so no rule can land
untested.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import autodiff as ad
from autodiff import Tensor, engine
from autodiff.rules import OPS
from autodiff.rules import binary_cross_entropy as bce_op
from autodiff.testing import broadcastable_shapes, gradcheck, gradgradcheck, shapes


def floats(low: float, high: float, shape) -> st.SearchStrategy[np.ndarray]:
    elements = st.floats(low, high, allow_nan=False, allow_infinity=False)
    return hnp.arrays(np.float64, shape, elements=elements)


def unary(low: float = -3, high: float = 3, min_dims: int = 0, **kw) -> st.SearchStrategy:
    return shapes(min_dims=min_dims, **kw).flatmap(lambda s: st.tuples(floats(low, high, s)))


def binary(
    low: float = -3, high: float = 3, low_b: float | None = None, high_b: float | None = None
) -> st.SearchStrategy:
    """Two arrays whose shapes broadcast together (0-d and size-1 axes included)."""
    lb = low if low_b is None else low_b
    hb = high if high_b is None else high_b
    return broadcastable_shapes(2).flatmap(
        lambda b: st.tuples(floats(low, high, b.input_shapes[0]), floats(lb, hb, b.input_shapes[1]))
    )


def away_from(points: float | tuple, margin: float = 1e-3):
    """Reject inputs near a kink (relu at 0, abs at 0), where no derivative exists."""
    points = points if isinstance(points, tuple) else (points,)

    def ok(arrays):
        return all(np.all(np.abs(a - p) > margin) for a in arrays for p in points)

    return ok


def distinct(arrays) -> bool:
    """max/min: reject ties, where the derivative is not defined."""
    a = arrays[0]
    flat = np.sort(a.reshape(-1))
    return flat.size < 2 or np.min(np.diff(flat)) > 1e-3


def reduce_axes(draw_shape) -> st.SearchStrategy:
    """A shape with an array, plus an axis argument (None, int, negative int or tuple)."""

    def with_axis(shape):
        ndim = len(shape)
        axis = (
            st.none()
            if ndim == 0
            else st.one_of(
                st.none(),
                st.integers(-ndim, ndim - 1),
                st.lists(st.integers(0, ndim - 1), unique=True, min_size=1).map(tuple),
            )
        )
        return st.tuples(floats(-3, 3, shape), axis, st.booleans())

    return draw_shape.flatmap(with_axis)


def _written_into(a: Tensor, index, w: Tensor) -> Tensor:
    """buf[index] = w recorded in the graph: both the kept part of buf and w get gradients."""
    buf = a * 1.5
    buf[index] = w
    return buf * buf


@st.composite
def conv_inputs(draw, one_d: bool = False):
    """Input, weight (and bias) with strides, padding, dilation, groups and odd sizes."""
    groups = draw(st.integers(1, 2))
    c, o = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    dims = 1 if one_d else 2
    k = [draw(st.integers(1, 3)) for _ in range(dims)]
    stride, dilation = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pad = draw(st.integers(0, 2))
    size = [max(1, dilation * (kk - 1) + 1 - 2 * pad) + draw(st.integers(0, 3)) for kk in k]
    n = draw(st.integers(1, 2))
    x = draw(floats(-2, 2, (n, c, *size)))
    w = draw(floats(-2, 2, (o, c // groups, *k)))
    params = dict(stride=stride, padding=pad, dilation=dilation, groups=groups)
    if one_d:
        return x, w, params
    return x, w, draw(floats(-2, 2, (o,))), params


@st.composite
def pool_inputs(draw):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pad = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    size = [kk + draw(st.integers(0, 4)) for kk in k]
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), *size)
    # Distinct values by construction (a shuffled grid): a max needs no tie to be avoided.
    order = draw(st.permutations(range(int(np.prod(shape)))))
    x = (np.array(order, dtype=np.float64).reshape(shape) - len(order) / 2) * 0.25
    return x, dict(kernel_size=k, stride=draw(st.sampled_from([None, 1, 2])), padding=pad)


@st.composite
def fold_inputs(draw):
    """Windows to add back into an image: fold2d is unfold2d's transpose (col2im)."""
    k, s, p, d = (draw(st.integers(1, 2)) for _ in range(4))
    p -= 1
    h, w = (d * (k - 1) + 1 + draw(st.integers(0, 3)) for _ in range(2))
    ho, wo = ((n + 2 * p - d * (k - 1) - 1) // s + 1 for n in (h, w))
    cols = draw(floats(-2, 2, (1, 2, ho, wo, k, k)))
    return cols, dict(
        shape=(1, 2, h, w), kernel=(k, k), stride=(s, s), padding=(p, p), dilation=(d, d)
    )


def distinct_values(min_dims: int = 1) -> st.SearchStrategy:
    """Nonzero values, no two equal in absolute value (a shuffled grid): sorting, max and
    norms are differentiable there, and no input is rejected."""

    def draw_for(shape):
        n = int(np.prod(shape))
        return st.tuples(
            st.permutations(range(n)), st.lists(st.booleans(), min_size=n, max_size=n)
        ).map(
            lambda p: (
                (np.array(p[0], dtype=np.float64) + 1) * 0.37 * np.where(p[1], 1, -1)
            ).reshape(shape)
        )

    return shapes(min_dims=min_dims).flatmap(lambda s: draw_for(s).map(lambda a: (a,)))


def with_axis(with_zeros: bool = False, allow_none: bool = False) -> st.SearchStrategy:
    """An array (exact zeros included when asked: products must handle them) and an axis."""

    def draw_for(shape):
        values = (
            hnp.arrays(
                np.float64, shape, elements=st.sampled_from([0.0, -1.5, 0.5, 2.0, 1.25, -0.75])
            )
            if with_zeros
            else floats(-3, 3, shape)
        )
        axes = st.integers(-len(shape), len(shape) - 1)
        return st.tuples(values, st.one_of(st.none(), axes) if allow_none else axes)

    return shapes(min_dims=1).flatmap(draw_for)


@dataclass
class Case:
    name: str
    fn: Callable  # (*tensors, *extras) -> Tensor
    inputs: st.SearchStrategy  # draws a tuple: arrays first, then non-tensor extras
    covers: tuple[str, ...]
    n_tensors: int = 1
    valid: Callable | None = None
    second_order: bool = True
    eps: float = 1e-6  # wider for a float32 round trip, whose rounding swamps a tiny step


CASES = [
    Case("add", lambda a, b: a + b, binary(), ("add",), 2),
    Case("sub", lambda a, b: a - b, binary(), ("sub",), 2),
    Case("mul", lambda a, b: a * b, binary(), ("mul",), 2),
    Case("div", lambda a, b: a / b, binary(-3, 3, 0.5, 3), ("div",), 2),
    Case("rdiv_scalar", lambda a: 2.0 / a, unary(0.5, 3), ("div",)),
    Case("neg", lambda a: -a, unary(), ("neg",)),
    Case(
        "pow_const",
        lambda a, e: a**e,
        unary(0.5, 3).flatmap(
            lambda t: st.tuples(st.just(t[0]), st.sampled_from([2, 3, -1, 0.5, 1.5, -2.5]))
        ),
        ("pow",),
    ),
    Case("pow_tensor", lambda a, b: a**b, binary(0.5, 3, -2, 2), ("pow_tensor",), 2),
    Case("rpow", lambda a: 2.0**a, unary(), ("pow_tensor",)),
    Case("exp", lambda a: a.exp(), unary(), ("exp",)),
    Case("log", lambda a: a.log(), unary(0.1, 5), ("log",)),
    Case("sqrt", lambda a: a.sqrt(), unary(0.1, 5), ("pow",)),
    Case("tanh", lambda a: a.tanh(), unary(), ("tanh",)),
    Case("sigmoid", lambda a: a.sigmoid(), unary(-6, 6), ("sigmoid",)),
    Case("relu", lambda a: a.relu(), unary(), ("relu",), valid=away_from(0.0)),
    Case("abs", lambda a: a.abs(), unary(), ("abs",), valid=away_from(0.0)),
    Case("clip", lambda a: a.clip(-1, 1), unary(), ("where",), valid=away_from((-1.0, 1.0))),
    Case(
        "cast",
        lambda a: a.astype(np.float32 if a.dtype == np.float64 else np.float64).astype(a.dtype),
        unary(),
        ("cast",),
        second_order=False,
        eps=1e-2,
    ),
    Case(
        "sum",
        lambda a, axis, keep: a.sum(axis=axis, keepdims=keep),
        reduce_axes(shapes()),
        ("sum",),
    ),
    Case(
        "mean",
        lambda a, axis, keep: a.mean(axis=axis, keepdims=keep),
        reduce_axes(shapes()),
        ("mean",),
    ),
    Case(
        "max",
        lambda a, axis, keep: a.max(axis=axis, keepdims=keep),
        reduce_axes(shapes()),
        ("max",),
        valid=distinct,
    ),
    Case(
        "min",
        lambda a, axis, keep: a.min(axis=axis, keepdims=keep),
        reduce_axes(shapes()),
        ("min",),
        valid=distinct,
    ),
    Case(
        "var",
        lambda a, axis, keep: a.var(axis=axis, keepdims=keep),
        reduce_axes(shapes()),
        ("sub", "mul"),
    ),
    Case(
        "logsumexp",
        lambda a, axis, keep: a.logsumexp(axis=axis, keepdims=keep),
        reduce_axes(shapes()),
        ("logsumexp",),
    ),
    Case("softmax", lambda a: a.softmax(axis=-1), unary(min_dims=1), ("logsumexp", "exp")),
    Case("log_softmax", lambda a: a.log_softmax(axis=0), unary(min_dims=1), ("logsumexp",)),
    Case("reshape", lambda a: a.reshape(-1), unary(), ("reshape",)),
    Case("flatten_2d", lambda a: a.reshape(a.shape[0], -1), unary(min_dims=2), ("reshape",)),
    Case("transpose", lambda a: a.T, unary(), ("transpose",)),
    Case("swapaxes", lambda a: a.swapaxes(0, -1), unary(min_dims=1), ("transpose",)),
    Case("broadcast_to", lambda a: a.broadcast_to((2,) + a.shape), unary(), ("broadcast_to",)),
    Case("getitem_slice", lambda a: a[::2, 1:], unary(min_dims=2), ("getitem",)),
    Case("getitem_int", lambda a: a[0], unary(min_dims=1), ("getitem", "scatter_add")),
    Case("getitem_repeated", lambda a: a[[0, 0, -1]], unary(min_dims=1), ("getitem",)),
    Case(
        "getitem_bool",
        lambda a: a[a.data > 0],
        unary(min_dims=1),
        ("getitem",),
        valid=away_from(0.0),
    ),
    Case("getitem_none_ellipsis", lambda a: a[None, ..., 0], unary(min_dims=1), ("getitem",)),
    Case(
        "where",
        lambda a, b: ad.where(a.data > 0, a, b),
        binary(),
        ("where",),
        2,
        valid=away_from(0.0),
    ),
    Case(
        "maximum",
        lambda a, b: ad.maximum(a, b),
        binary(),
        ("maximum",),
        2,
        valid=lambda t: np.all(np.abs(np.subtract(*np.broadcast_arrays(*t))) > 1e-3),
    ),
    Case(
        "minimum",
        lambda a, b: ad.minimum(a, b),
        binary(),
        ("minimum",),
        2,
        valid=lambda t: np.all(np.abs(np.subtract(*np.broadcast_arrays(*t))) > 1e-3),
    ),
    Case(
        "setitem_row",
        lambda a, w: _written_into(a, 0, w),
        shapes(min_dims=1, min_side=1).flatmap(
            lambda s: st.tuples(floats(-2, 2, s), floats(-2, 2, s[1:]))
        ),
        ("setitem",),
        2,
    ),
    Case(
        "setitem_broadcast",
        lambda a, w: _written_into(a, (..., slice(None, None, 2)), w),
        shapes(min_dims=1).flatmap(lambda s: st.tuples(floats(-2, 2, s), floats(-2, 2, ()))),
        ("setitem",),
        2,
    ),
    Case(
        "concatenate",
        lambda a, b: ad.concatenate([a, b, a], axis=-1),
        shapes(min_dims=1).flatmap(
            lambda s: st.tuples(floats(-3, 3, s), floats(-3, 3, s[:-1] + (2,)))
        ),
        ("concatenate",),
        2,
    ),
    Case(
        "stack",
        lambda a, b: ad.stack([a, b], axis=0),
        shapes().flatmap(lambda s: st.tuples(floats(-3, 3, s), floats(-3, 3, s))),
        ("concatenate", "reshape"),
        2,
    ),
    Case(
        "matmul",
        lambda a, b: a @ b,
        st.sampled_from(
            [
                ((3,), (3,)),
                ((2, 3), (3,)),
                ((3,), (3, 4)),
                ((2, 3), (3, 4)),
                ((5, 2, 3), (3, 4)),
                ((2, 3), (5, 3, 4)),
                ((1, 2, 3), (5, 3, 1)),
                ((3,), (2, 3, 4)),
                ((2, 2, 3), (3,)),
            ]
        ).flatmap(lambda s: st.tuples(floats(-2, 2, s[0]), floats(-2, 2, s[1]))),
        ("matmul",),
        2,
    ),
    Case(
        "linear",
        lambda x, w, b: ad.linear(x, w, b),
        st.sampled_from(
            [
                ((4, 3), (2, 3)),
                ((3,), (2, 3)),
                ((2, 4, 3), (5, 3)),
            ]
        ).flatmap(
            lambda s: st.tuples(floats(-2, 2, s[0]), floats(-2, 2, s[1]), floats(-2, 2, (s[1][0],)))
        ),
        ("linear",),
        3,
    ),
    Case(
        "softmax_cross_entropy",
        lambda x, y: ad.softmax_cross_entropy(x, y),
        st.tuples(st.integers(1, 5), st.integers(2, 5)).flatmap(
            lambda nc: st.tuples(
                floats(-4, 4, nc),
                hnp.arrays(np.int64, (nc[0],), elements=st.integers(0, nc[1] - 1)),
            )
        ),
        ("softmax_cross_entropy",),
    ),
    *[
        # Second order: numerical Hessians of these inputs are too big for the shared
        # second-order test; test_conv.py checks conv2d's second derivatives on small inputs.
        Case(
            "conv2d",
            lambda x, w, b, p: ad.conv2d(x, w, b, **p),
            conv_inputs(),
            ("unfold2d", "fold2d", "matmul", "transpose", "reshape"),
            3,
            second_order=False,
        ),
        Case(
            "conv1d",
            lambda x, w, p: ad.conv1d(x, w, **p),
            conv_inputs(one_d=True),
            ("unfold2d", "matmul"),
            2,
        ),
        Case("max_pool2d", lambda x, p: ad.max_pool2d(x, **p), pool_inputs(), ("unfold2d", "max")),
        Case("avg_pool2d", lambda x, p: ad.avg_pool2d(x, **p), pool_inputs(), ("unfold2d", "sum")),
        Case(
            "fold2d",
            lambda c, p: engine.apply(ad.conv.fold2d, (c,), **p),
            fold_inputs(),
            ("fold2d", "unfold2d"),
        ),
    ],
    # --- autodiff.functions: trigonometry, smooth activations, rounding, scans, selection ---
    Case("sin", lambda a: ad.sin(a), unary(), ("sin", "cos")),
    Case("cos", lambda a: a.cos(), unary(), ("cos", "sin")),
    Case("tan", lambda a: ad.tan(a), unary(-1.2, 1.2), ("tan",)),
    Case("arctan", lambda a: a.arctan(), unary(), ("arctan",)),
    Case("sinh_cosh", lambda a: ad.sinh(a) * ad.cosh(a), unary(), ("sinh", "cosh")),
    Case("log1p", lambda a: ad.log1p(a), unary(-0.9, 3), ("log1p",)),
    # binary cross-entropy's primitive, probabilities away from the floors at 0 and 1
    Case(
        "binary_cross_entropy",
        lambda p, y: engine.apply(bce_op, (p, y)),
        binary(0.05, 0.95, 0.0, 1.0),
        ("binary_cross_entropy",),
        2,
    ),
    Case("expm1", lambda a: a.expm1(), unary(), ("expm1",)),
    Case(
        "softplus",
        lambda a: ad.softplus(a) + ad.softplus(a, beta=2.0),
        unary(-20, 20),
        ("softplus", "sigmoid"),
    ),
    Case("gelu", lambda a: ad.gelu(a) + ad.gelu(a, approximate="tanh"), unary(), ("erf", "tanh")),
    Case(
        "elu_silu_leaky",
        lambda a: ad.elu(a) + ad.silu(a) + ad.leaky_relu(a, 0.1),
        unary(),
        ("where", "expm1"),
        valid=away_from(0.0),
    ),
    Case(
        "rounding",
        lambda a: ad.floor(a) + ad.ceil(a) + ad.round(a, 1) + ad.sign(a) + a,
        unary(),
        ("floor", "ceil", "round", "sign"),
        valid=lambda t: np.all(np.abs(t[0] * 20 - np.round(t[0] * 20)) > 1e-3),
    ),
    Case(
        "reciprocal_rsqrt_square",
        lambda a: ad.reciprocal(a) + ad.rsqrt(a) + ad.square(a),
        unary(0.3, 3),
        ("pow", "div", "mul"),
    ),
    Case(
        "floordiv_mod",
        lambda a, b: a // b + a % b,
        binary(-3, 3, 0.5, 2),
        ("floor_divide", "remainder"),
        2,
        valid=lambda t: np.all(np.abs(np.divide(*t) - np.round(np.divide(*t))) > 1e-3),
    ),
    Case("cumsum", lambda a, ax: ad.cumsum(a, ax), with_axis(), ("cumsum",)),
    Case("cumprod", lambda a, ax: ad.cumprod(a, ax), with_axis(with_zeros=True), ("cumprod",)),
    Case(
        "prod", lambda a, ax: ad.prod(a, ax), with_axis(with_zeros=True, allow_none=True), ("prod",)
    ),
    Case(
        "prod_keepdims",
        lambda a: a.prod(axis=-1, keepdims=True) + a.prod(keepdims=True),
        unary(min_dims=1),
        ("prod",),
    ),
    Case(
        "norm",
        lambda a: ad.norm(a) + ad.norm(a, 1) + ad.norm(a, np.inf, axis=-1).sum(),
        distinct_values(),
        ("where", "abs", "max"),
    ),
    Case(
        "sort_topk",
        lambda a: (
            ad.sort(a) * (np.arange(a.shape[-1]) + 1.0).astype(a.dtype)
            + ad.topk(a, 1, largest=False)[0].sum()
        ),
        distinct_values(),
        ("getitem",),
    ),
    Case(
        "gather_scatter",
        lambda a, b: (
            ad.gather(a, 0, np.zeros((2,) + a.shape[1:], int)).sum()
            + ad.scatter_add(a, 0, np.zeros(b.shape, int), b).sum(0)
        ),
        shapes(min_dims=1).flatmap(
            lambda s: st.tuples(floats(-3, 3, s), floats(-3, 3, (3,) + s[1:]))
        ),
        ("getitem", "scatter_add"),
        2,
    ),
    Case(
        "selection",
        lambda a: ad.masked_fill(a, a.data > 1, 0.5) + ad.flip(a) + ad.roll(a, 1),
        unary(min_dims=1),
        ("where", "getitem"),
        valid=away_from(1.0),
    ),
    Case("tril_triu", lambda a: ad.tril(a) * 2 + ad.triu(a, 1), unary(min_dims=2), ("where",)),
    Case(
        "repeat_tile",
        lambda a: ad.repeat(a, 2, 0).sum() + ad.tile(a, (2, 1)).sum(0),
        unary(min_dims=1),
        ("getitem",),
    ),
    Case(
        "split_chunk",
        lambda a: ad.split(a, [1], 0)[1].sum() * ad.chunk(a, 2, 0)[0].sum(),
        unary(min_dims=1),
        ("getitem",),
    ),
    Case(
        "pad",
        lambda a: ad.pad(a, 1, value=2.0) + ad.pad(a, 1, mode="reflect"),
        unary(min_dims=1).filter(lambda t: min(t[0].shape) >= 2),
        ("concatenate", "getitem"),
    ),
    Case(
        "einsum",
        lambda a, b: (
            ad.einsum("ij,jk->ik", a, b).sum(0)
            + ad.einsum("ij,ik->jk", a, a).sum()
            + ad.einsum("ij->", a)
        ),
        st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)).flatmap(
            lambda n: st.tuples(floats(-2, 2, (n[0], n[1])), floats(-2, 2, (n[1], n[2])))
        ),
        ("einsum",),
        2,
    ),
]
CASE_IDS = [c.name for c in CASES]


def test_every_primitive_has_a_domain():
    covered = {name for case in CASES for name in case.covers}
    missing = set(OPS) - covered
    assert not missing, f"primitives without a test domain: {sorted(missing)}"


def _split(case: Case, drawn: tuple):
    return list(drawn[: case.n_tensors]), drawn[case.n_tensors :]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@given(data=st.data())
def test_gradient_matches_numerical(case: Case, data):
    drawn = data.draw(case.inputs)
    if case.valid is not None:
        assume(case.valid(drawn[: case.n_tensors]))
    arrays, extras = _split(case, drawn)
    assert gradcheck(
        lambda *ts: case.fn(*ts, *extras),
        *arrays,
        eps=case.eps,
        atol=1e-5 if case.eps < 1e-3 else 1e-4,
    )


@pytest.mark.parametrize("case", [c for c in CASES if c.second_order], ids=lambda c: c.name)
# The size filter below rejects most pooling images (up to 196 numbers): expected, so the
# health check that counts rejections would fail those cases at random seeds.
@pytest.mark.slow  # second order over the whole table: the largest sweep (CI runs it)
@settings(suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(data=st.data())
def test_second_derivative_matches_numerical(case: Case, data):
    drawn = data.draw(case.inputs)
    if case.valid is not None:
        assume(case.valid(drawn[: case.n_tensors]))
    arrays, extras = _split(case, drawn)
    assume(all(a.size <= 12 for a in arrays))  # numerical Hessians grow fast
    assert gradgradcheck(lambda *ts: case.fn(*ts, *extras), *arrays, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@given(data=st.data())
def test_rules_keep_shape_dtype_and_never_write_upstream(case: Case, dtype, data):
    """Each gradient has its input's shape and dtype; the upstream gradient is read-only, so a
    rule that wrote into it would fail here."""
    drawn = data.draw(case.inputs)
    if case.valid is not None:
        assume(case.valid(drawn[: case.n_tensors]))
    arrays, extras = _split(case, drawn)
    tensors = [Tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    out = case.fn(*tensors, *extras)
    assert out.dtype == dtype
    upstream = np.asarray(np.random.default_rng(0).uniform(-1, 1, size=out.shape), dtype=dtype)
    upstream.flags.writeable = False
    engine.backward([out], [upstream])
    for t in tensors:
        assert t.grad is not None
        assert t.grad.shape == t.shape
        assert t.grad.dtype == dtype
        assert np.all(np.isfinite(t.grad.data))
