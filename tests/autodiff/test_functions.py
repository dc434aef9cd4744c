"""autodiff.functions against PyTorch: values, gradients under random upstream gradients,
dtypes, and the edge cases (zeros in products, the zero vector's norm, ties, integers).

Numerical gradient checks (first and second order) for the same functions are rows of the
table in test_rules.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import autodiff as ad
from autodiff import Tensor
from tests.oracle import torch_if_installed

# The table names torch's functions when it is installed; its test takes the `torch` fixture,
# so it skips without it.
torch = torch_if_installed()

# name: (ours, theirs, input domain)
UNARY = {
    "sin": (ad.sin, torch and torch.sin, (-3, 3)),
    "cos": (ad.cos, torch and torch.cos, (-3, 3)),
    "tan": (ad.tan, torch and torch.tan, (-1.25, 1.25)),
    "sinh": (ad.sinh, torch and torch.sinh, (-3, 3)),
    "cosh": (ad.cosh, torch and torch.cosh, (-3, 3)),
    "log1p": (ad.log1p, torch and torch.log1p, (-0.875, 3)),
    "expm1": (ad.expm1, torch and torch.expm1, (-3, 3)),
    "softplus": (ad.softplus, torch and torch.nn.functional.softplus, (-30, 30)),
    "gelu": (ad.gelu, torch and torch.nn.functional.gelu, (-4, 4)),
    "gelu_tanh": (
        lambda x: ad.gelu(x, "tanh"),
        torch and (lambda x: torch.nn.functional.gelu(x, approximate="tanh")),
        (-4, 4),
    ),
    "elu": (ad.elu, torch and torch.nn.functional.elu, (-3, 3)),
    "silu": (ad.silu, torch and torch.nn.functional.silu, (-3, 3)),
    "leaky_relu": (
        lambda x: ad.leaky_relu(x, 0.2),
        torch and (lambda x: torch.nn.functional.leaky_relu(x, 0.2)),
        (-3, 3),
    ),
    "erf": (ad.erf, torch and torch.erf, (-3, 3)),
    "floor": (ad.floor, torch and torch.floor, (-3, 3)),
    "ceil": (ad.ceil, torch and torch.ceil, (-3, 3)),
    "round": (ad.round, torch and torch.round, (-3, 3)),
    "sign": (ad.sign, torch and torch.sign, (-3, 3)),
    "reciprocal": (ad.reciprocal, torch and torch.reciprocal, (0.25, 3)),
    "rsqrt": (ad.rsqrt, torch and torch.rsqrt, (0.25, 3)),
    "square": (ad.square, torch and torch.square, (-3, 3)),
    "cumsum": (lambda x: ad.cumsum(x, -1), torch and (lambda x: torch.cumsum(x, -1)), (-3, 3)),
    "cumprod": (lambda x: ad.cumprod(x, 0), torch and (lambda x: torch.cumprod(x, 0)), (-2, 2)),
    "prod": (lambda x: ad.prod(x, -1), torch and (lambda x: torch.prod(x, -1)), (-2, 2)),
    "prod_all": (ad.prod, torch and torch.prod, (-1.5, 1.5)),
    "norm2": (
        lambda x: ad.norm(x, 2, axis=-1),
        torch and (lambda x: torch.linalg.vector_norm(x, 2, dim=-1)),
        (-3, 3),
    ),
    "norm1": (
        lambda x: ad.norm(x, 1),
        torch and (lambda x: torch.linalg.vector_norm(x, 1)),
        (-3, 3),
    ),
    "norm_inf": (
        lambda x: ad.norm(x, np.inf, axis=-1),
        torch and (lambda x: torch.linalg.vector_norm(x, float("inf"), dim=-1)),
        (-3, 3),
    ),
    "sort": (
        lambda x: ad.sort(x, descending=True),
        torch and (lambda x: torch.sort(x, descending=True).values),
        (-3, 3),
    ),
    "topk": (lambda x: ad.topk(x, 2)[0], torch and (lambda x: torch.topk(x, 2).values), (-3, 3)),
    "flip": (lambda x: ad.flip(x, 0), torch and (lambda x: torch.flip(x, (0,))), (-3, 3)),
    "roll": (lambda x: ad.roll(x, 2, -1), torch and (lambda x: torch.roll(x, 2, -1)), (-3, 3)),
    "tril": (ad.tril, torch and torch.tril, (-3, 3)),
    "triu": (lambda x: ad.triu(x, 1), torch and (lambda x: torch.triu(x, 1)), (-3, 3)),
    "repeat": (
        lambda x: ad.repeat(x, 3, 1),
        torch and (lambda x: torch.repeat_interleave(x, 3, 1)),
        (-3, 3),
    ),
    "tile": (lambda x: ad.tile(x, (2, 3)), torch and (lambda x: x.repeat(2, 3)), (-3, 3)),
    "pad_reflect": (
        lambda x: ad.pad(x, ((0, 0), (2, 1)), mode="reflect"),
        torch and (lambda x: torch.nn.functional.pad(x[None], (2, 1), mode="reflect")[0]),
        (-3, 3),
    ),
    "pad_constant": (
        lambda x: ad.pad(x, ((1, 0), (2, 1)), value=0.5),
        torch and (lambda x: torch.nn.functional.pad(x, (2, 1, 1, 0), value=0.5)),
        (-3, 3),
    ),
    "masked_fill": (
        lambda x: ad.masked_fill(x, x.data > 0.5, -1.0),
        torch and (lambda x: x.masked_fill(x > 0.5, -1.0)),
        (-3, 3),
    ),
}


@st.composite
def matrices(draw, low: float, high: float, zeros: bool):
    shape = (draw(st.integers(1, 4)), draw(st.integers(3, 5)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    # No subnormals: PyTorch's cumprod gradient divides by x when the input has no zero in
    # that slice, and at x ~ 1e-44 (float32) the quotient keeps a few bits (0.6154 = 8/13
    # where the exact answer, ours, is 0.6404), so the oracle itself would be wrong there.
    elements = st.floats(low, high, width=32, allow_subnormal=False)
    if zeros:  # products must be right with exact zeros, one or several
        elements = st.one_of(elements, st.just(0.0))
    return draw(hnp.arrays(dtype, shape, elements=elements, unique=not zeros)), draw(
        st.integers(0, 2**16)
    )


@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data())
def test_matches_pytorch_value_gradient_and_dtype(torch, name, data):
    ours, theirs, (low, high) = UNARY[name]
    zeros = name.startswith(("prod", "cumprod"))
    x, seed = data.draw(matrices(low, high, zeros))
    if name in ("floor", "ceil", "round", "sign"):  # torch and numpy agree, but not at a jump
        x = np.where(np.abs(x * 2 - np.round(x * 2)) < 1e-3, x + 0.1, x).astype(x.dtype)
    mine = Tensor(x, requires_grad=True)
    out = ours(mine)
    ref = torch.tensor(x, requires_grad=True)
    expected = theirs(ref)
    tol = 2e-5 if x.dtype == np.float32 else 1e-9
    assert out.shape == tuple(expected.shape) and out.dtype == x.dtype
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=tol, atol=tol)
    upstream = np.random.default_rng(seed).normal(size=out.shape).astype(x.dtype)
    out.backward(upstream)
    expected.backward(torch.tensor(upstream))
    assert mine.grad.dtype == x.dtype
    np.testing.assert_allclose(mine.grad.data, ref.grad.numpy(), rtol=tol * 10, atol=tol * 10)


def test_gather_scatter_and_einsum_match_pytorch(torch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4))
    index = rng.integers(0, 3, size=(5, 4))
    src = rng.normal(size=(5, 4))
    ours = [Tensor(v, requires_grad=True) for v in (x, src)]
    theirs = [torch.tensor(v, requires_grad=True) for v in (x, src)]
    out = ad.gather(ours[0], 0, index) * 2 + ad.scatter_add(ours[0], 0, index, ours[1]).sum()
    expected = (
        torch.gather(theirs[0], 0, torch.tensor(index)) * 2
        + theirs[0].scatter_add(0, torch.tensor(index), theirs[1]).sum()
    )
    np.testing.assert_allclose(out.data, expected.detach().numpy())
    g = rng.normal(size=out.shape)
    out.backward(g)
    expected.backward(torch.tensor(g))
    for mine, ref in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mine.grad.data, ref.grad.numpy(), atol=1e-12)

    a, b, c = rng.normal(size=(2, 3)), rng.normal(size=(3, 4)), rng.normal(size=(4,))
    ours = [Tensor(v, requires_grad=True) for v in (a, b, c)]
    theirs = [torch.tensor(v, requires_grad=True) for v in (a, b, c)]
    out = ad.einsum("ij,jk,k->ij", *ours)
    expected = torch.einsum("ij,jk,k->ij", *theirs)
    np.testing.assert_allclose(out.data, expected.detach().numpy())
    g = rng.normal(size=out.shape)
    out.backward(g)
    expected.backward(torch.tensor(g))
    for mine, ref in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mine.grad.data, ref.grad.numpy(), atol=1e-12)


def test_products_with_zeros_have_the_right_gradient():
    x = Tensor([2.0, 0.0, 3.0, 0.5], requires_grad=True)
    ad.prod(x).backward()
    assert x.grad.tolist() == [0.0, 3.0, 0.0, 0.0]  # only the zero's neighbours' product
    x = Tensor([2.0, 0.0, 3.0, 0.0], requires_grad=True)
    ad.prod(x).backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0, 0.0]  # two zeros: every partial product is 0
    x = Tensor([2.0, 0.0, 3.0], requires_grad=True)
    ad.cumprod(x).sum().backward()  # outputs 2, 0, 0
    assert x.grad.tolist() == [1.0, 2.0 + 6.0, 0.0]


def test_zero_vector_norm_has_zero_gradient_not_nan():
    x = Tensor(np.zeros((2, 3)), requires_grad=True)
    ad.norm(x, axis=1).sum().backward()
    assert np.all(x.grad.data == 0)


def test_integer_input_to_floating_functions_computes_in_floating_point():
    pixels = np.array([0, 128, 255], dtype=np.uint8)
    assert ad.sin(pixels).dtype == np.float64
    np.testing.assert_allclose(ad.softplus(pixels).data, np.logaddexp(0, pixels.astype(float)))
    assert (Tensor(pixels) // 100).tolist() == [0, 1, 2]
    assert (Tensor(np.array([-7, 7])) % 3).tolist() == [2, 1]  # Python's sign rule


def test_floor_division_and_remainder_follow_python():
    a, b = np.array([7.5, -7.5, 3.0]), np.array([2.0, 2.0, -2.0])
    np.testing.assert_array_equal((Tensor(a) // b).data, a // b)
    np.testing.assert_array_equal((Tensor(a) % b).data, a % b)
    x = Tensor(a, requires_grad=True)
    y = Tensor(b, requires_grad=True)
    (x % y).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]
    assert y.grad.tolist() == list(-np.floor(a / b))


def test_argmax_any_all_are_constants():
    x = Tensor([[1.0, 5.0], [7.0, 2.0]], requires_grad=True)
    assert ad.argmax(x, axis=1).tolist() == [1, 0] and not ad.argmax(x).requires_grad
    assert x.argmin().item() == 0
    assert ad.any(x.data > 6).item() and not ad.all(x.data > 1).item()


def test_split_and_chunk_follow_numpy_and_pytorch():
    x = Tensor(np.arange(10.0), requires_grad=True)
    assert [p.shape for p in ad.split(x, 5)] == [(2,)] * 5
    assert [p.shape for p in ad.split(x, [3, 4])] == [(3,), (1,), (6,)]
    assert [p.shape for p in ad.chunk(x, 3)] == [(4,), (4,), (2,)]
    with pytest.raises(ValueError, match="split.*10.*3"):
        ad.split(x, 3)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: ad.einsum("ii->i", np.eye(2)), ValueError, "einsum.*diagonal"),
        (
            lambda: ad.einsum("ij,jk->ik", np.ones((2, 3)), np.ones((2, 3))),
            ValueError,
            r"einsum.*'j'.*3 and 2",
        ),
        (lambda: ad.einsum("ij", np.ones(2)), ValueError, r"einsum.*'ij'.*\(2,\)"),
        (lambda: ad.topk(np.ones(3), 5), ValueError, "topk.*k"),
        (
            lambda: ad.take_along_axis(np.ones((2, 3)), np.ones((2, 3)), 1),
            ValueError,
            "take_along_axis.*integers",
        ),
        (
            lambda: ad.take_along_axis(np.ones((2, 3)), np.full((2, 1), 3), 1),
            IndexError,
            "take_along_axis.*range",
        ),
        (lambda: ad.pad(np.ones(3), 3, mode="reflect"), ValueError, "pad.*reflect"),
        (lambda: ad.pad(np.ones(3), 1, mode="wrap"), ValueError, "pad.*mode"),
        (lambda: ad.norm(np.ones(3), 3), ValueError, "norm.*ord"),
        (lambda: ad.gelu(np.ones(3), "fast"), ValueError, "gelu.*approximate"),
    ],
)
def test_bad_arguments_get_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_norm_neither_underflows_nor_overflows(scale):
    """x * x would be 0 (or inf) at these scales; the norm is rescaled by the largest |x|."""
    x = Tensor(np.array([3.0, 4.0]) * scale, requires_grad=True)
    n = ad.norm(x)
    n.backward()
    assert n.item() == pytest.approx(5 * scale)
    np.testing.assert_allclose(x.grad.data, [0.6, 0.8])


def test_cumprod_gradient_exact_at_subnormal_inputs():
    # Found against PyTorch, whose quotient formula loses the bits here: with x ~ 1e-44 the
    # gradient of row 0 is the upstream row itself (later rows multiply it by ~0).
    tiny = np.float32(1.8e-44)
    x = Tensor(np.array([[0, tiny, tiny], [tiny, tiny, tiny]], np.float32), requires_grad=True)
    upstream = np.array([[0.3, -0.1321, 0.64], [1.0, 1.0, 1.0]], np.float32)
    ad.cumprod(x, 0).backward(upstream)
    np.testing.assert_array_equal(x.grad.data[0], upstream[0])
    np.testing.assert_allclose(x.grad.data[1], [0.0, tiny, tiny], rtol=0, atol=1e-45)


@pytest.mark.parametrize(
    "x, upstream, expected",
    [
        # No zero, but subnormal numbers: reverse-cumsum(g * out) / x would keep 4 bits.
        (
            np.full(3, 1.8e-44, np.float32),
            np.array([0.3, -0.1321, 0.64], np.float32),
            np.array([0.3, -0.1321 * 1.8e-44, 0.64 * 1.8e-44**2], np.float64),
        ),
        # Normal numbers whose products underflow to 0: dividing 0 back gives nothing.
        (np.full(3, 1e-200), np.array([1.0, 2.0, 3.0]), np.array([1.0, 2e-200, 0.0])),
    ],
)
def test_cumprod_gradient_exact_when_products_underflow(x, upstream, expected):
    t = Tensor(x, requires_grad=True)
    ad.cumprod(t, 0).backward(upstream)
    np.testing.assert_allclose(t.grad.data, expected.astype(x.dtype), rtol=1e-6, atol=0)
    # Forward mode takes the same care: the tangent of out_2 is t0 x1 x2 + x0 t1 x2 + x0 x1 t2.
    _, tangent = ad.jvp(lambda v: ad.cumprod(v, 0), (Tensor(x),), (Tensor(upstream),))
    assert tangent.data[0] == upstream[0]


def test_float16_norm_of_many_entries():
    """Found in hunt round 3 (dtypes and higher-order derivatives)."""
    # The 2-norm of 100000 float16 ones was inf (the sum of squares overflowed float16); the
    # squares now add in float32: 316.2, in float16, with a float16 gradient of 1/316.2.
    x = Tensor(np.ones(100000, np.float16), requires_grad=True)
    n = ad.norm(x)
    assert n.dtype == np.float16
    np.testing.assert_allclose(float(n.data), np.sqrt(1e5), rtol=1e-3)
    n.backward()
    assert x.grad.dtype == np.float16
    np.testing.assert_allclose(x.grad.data[:3].astype(np.float64), 1 / np.sqrt(1e5), rtol=1e-2)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([1.0, np.nan, 0.0], np.nan),  # was 0.0: the NaN vanished from the norm
        ([1.0, np.inf, 0.0], np.inf),  # was NaN: x / inf made every element NaN
        ([-np.inf, 3.0], np.inf),
    ],
)
def test_norm_of_non_finite_vector(data, expected):
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
    x = Tensor(data, requires_grad=True)
    n = ad.norm(x)
    np.testing.assert_equal(n.item(), expected)
    n.backward()
    # Gradient x / |x|: 0 for finite entries next to an inf, NaN where undefined (as PyTorch).
    if np.isinf(expected):
        finite = np.isfinite(np.asarray(data))
        np.testing.assert_equal(x.grad.data[finite], 0.0)


def test_norm_of_non_finite_row_leaves_other_rows_scaled():
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
    x = Tensor([[np.inf, 1.0], [3e300, 4e300], [np.nan, 0.0]], requires_grad=True)
    n = ad.norm(x, axis=1)
    np.testing.assert_allclose(n.data[:2], [np.inf, 5e300])
    assert np.isnan(n.data[2])
    n[1].backward()
    np.testing.assert_allclose(x.grad.data[1], [0.6, 0.8])


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.bool_, np.float32])
@pytest.mark.parametrize("which", ["tril", "triu"])
def test_tril_triu_keep_the_dtype(dtype, which):
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
    # Were float64 for integer and boolean input (numpy and PyTorch keep the dtype).
    a = (np.arange(12).reshape(3, 4) % 3).astype(dtype)
    out = getattr(ad, which)(Tensor(a), 1)
    expected = getattr(np, which)(a, 1)
    assert out.dtype == expected.dtype
    np.testing.assert_array_equal(out.data, expected)


def test_tril_gradient_is_the_mask():
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
    x = Tensor(np.ones((2, 3, 3), dtype=np.float32), requires_grad=True)
    ad.tril(x, -1).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(
        x.grad.data, np.broadcast_to(np.tril(np.ones((3, 3)), -1), (2, 3, 3))
    )


@pytest.mark.parametrize("dtype", [np.uint8, np.uint32, np.int8, np.float64])
def test_descending_order_of_unsigned_and_extreme_integers(dtype):
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
    # argsort(-x) wrapped around: uint8 topk(2) of [0, 1, 2, 200] gave [0, 200], and int8
    # topk(1) of [-128, 1, 2] gave -128 (-(-128) is -128 in int8).
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    low = info.min if info is not None else -1e300
    a = np.array([0, 1, low, 2, 100]).astype(dtype)
    expected = np.argsort(-a.astype(np.float64), kind="stable")
    values, indices = ad.topk(Tensor(a), 2)
    np.testing.assert_array_equal(indices.data, expected[:2])
    np.testing.assert_array_equal(values.data, a[expected[:2]])
    np.testing.assert_array_equal(Tensor(a).argsort(descending=True).data, expected)
    np.testing.assert_array_equal(ad.sort(Tensor(a), descending=True).data, a[expected])


def test_descending_order_is_stable_and_puts_nan_first():
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
    a = np.array([1.0, 3.0, np.nan, 1.0, 3.0])
    # As PyTorch's stable descending sort: NaN first, ties in their original order.
    np.testing.assert_array_equal(Tensor(a).argsort(descending=True).data, [2, 1, 4, 0, 3])
    values, indices = ad.topk(Tensor(a), 2)
    np.testing.assert_array_equal(indices.data, [2, 1])
    # Each value's gradient goes back to where it came from, ties in order.
    x = Tensor(a, requires_grad=True)
    (ad.sort(x, descending=True) * Tensor([10.0, 20.0, 30.0, 40.0, 50.0])).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [40.0, 20.0, 10.0, 50.0, 30.0])


def test_topk_of_booleans():
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
    values, indices = ad.topk(Tensor(np.array([False, True, False, True])), 2)
    np.testing.assert_array_equal(values.data, [True, True])
    np.testing.assert_array_equal(indices.data, [1, 3])


def test_remainder_and_floor_divide_match_python():
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
    # floor(a / b) rounded a / b first: 5.0 % 0.1 was 0.0 and 5.0 // 0.1 was 50.0.
    a_values = [5.0, -7.5, 1e17, 3.0, -1.0]
    b_values = [0.1, 2.0, 3.0, 0.7, 0.3]
    pairs = list(zip(a_values, b_values, strict=True))
    a = Tensor(a_values, requires_grad=True)
    b = Tensor(b_values, requires_grad=True)
    r = ad.remainder(a, b)
    np.testing.assert_array_equal(r.data, [x % y for x, y in pairs])
    np.testing.assert_array_equal((a // b).data, [x // y for x, y in pairs])
    np.testing.assert_array_equal((a % b).data, r.data)
    r.sum().backward()
    # d(a % b)/da = 1, d(a % b)/db = -(a // b): -49 at (5.0, 0.1), as PyTorch.
    np.testing.assert_array_equal(a.grad.data, np.ones(5))
    np.testing.assert_array_equal(b.grad.data, [-(x // y) for x, y in pairs])


def test_remainder_second_order_and_forward_mode():
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
    a, b = Tensor([7.0, -2.5], requires_grad=True), Tensor([2.0, 0.75], requires_grad=True)
    (gb,) = ad.grad(ad.remainder(a, b * b).sum(), [b], create_graph=True)
    np.testing.assert_allclose(gb.data, -2 * np.array([2.0, 0.75]) * np.array([1.0, -5.0]))
    (h,) = ad.grad(gb.sum(), [b])  # d/db (-2 b q) = -2 q (q constant between its jumps)
    np.testing.assert_allclose(h.data, [-2.0, 10.0])
    _, t = ad.jvp(lambda x, y: x % y, (Tensor([5.0]), Tensor([0.1])), (np.ones(1), np.ones(1)))
    np.testing.assert_allclose(t.data, [1.0 - 49.0])


def test_remainder_dtypes_and_division_by_zero():
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
    x = Tensor(np.array([5.0, 1.0], dtype=np.float32))
    assert (x % 0.3).dtype == np.float32 and (3.0 // x).dtype == np.float32
    i = Tensor(np.array([7, -7]))
    assert (i % 3).dtype == np.int64 and (i // 3).tolist() == [2, -3]
    with np.errstate(all="raise"):  # quiet, as 1.0 / 0.0 is
        assert np.isnan((Tensor([1.0]) % 0.0).item())
        assert (Tensor([1.0]) // 0.0).item() == np.inf


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sinh_cosh_accurate_near_zero_and_large(dtype):
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
    # (exp(x) - exp(-x)) / 2 cancelled: sinh(1e-20) was 0, and float32 sinh(1e-5) was off by
    # 0.1%; exp(710) overflowed where sinh(710) and cosh(710) are finite.
    x = np.array([1e-20, -1e-10, 1e-5, 0.5, -3.0, 20.0], dtype=dtype)
    if dtype == np.float64:
        x = np.append(x, 710.0)
    t = Tensor(x, requires_grad=True)
    np.testing.assert_allclose(ad.sinh(t).data, np.sinh(x), rtol=4 * np.finfo(dtype).eps)
    np.testing.assert_allclose(ad.cosh(t).data, np.cosh(x), rtol=4 * np.finfo(dtype).eps)
    (gs,) = ad.grad(ad.sinh(t).sum(), [t])
    (gc,) = ad.grad(ad.cosh(t).sum(), [t])
    np.testing.assert_allclose(gs.data, np.cosh(x), rtol=4 * np.finfo(dtype).eps)
    np.testing.assert_allclose(gc.data, np.sinh(x), rtol=4 * np.finfo(dtype).eps)
    assert gs.dtype == gc.dtype == dtype


def test_sinh_cosh_higher_order_and_forward_mode():
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
    x = Tensor([0.3, -1.2], requires_grad=True)
    (g,) = ad.grad(ad.sinh(x).sum(), [x], create_graph=True)
    (h,) = ad.grad(g.sum(), [x])  # sinh'' = sinh
    np.testing.assert_allclose(h.data, np.sinh([0.3, -1.2]))
    _, t = ad.jvp(ad.cosh, (Tensor([0.3, -1.2]),), (np.array([2.0, 1.0]),))
    np.testing.assert_allclose(t.data, np.sinh([0.3, -1.2]) * [2.0, 1.0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_elu_gradient_finite_for_large_inputs(dtype):
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
    # expm1 ran on every element: at x = 1000 (float32: 100) it overflowed, and the gradient
    # of the branch where() did not take, 0 * inf, made elu'(x) NaN instead of 1.
    x = Tensor(np.array([1000.0, 100.0, 1.0, -1.0, -1000.0], dtype=dtype), requires_grad=True)
    with np.errstate(all="raise"):
        y = ad.elu(x, alpha=0.5)
    np.testing.assert_allclose(y.data, [1000.0, 100.0, 1.0, 0.5 * np.expm1(-1.0), -0.5], rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, [1.0, 1.0, 1.0, 0.5 * np.exp(-1.0), 0.0], rtol=1e-6)
    _, t = ad.jvp(
        ad.elu, (Tensor(np.array([1000.0, -1.0], dtype=dtype)),), (np.ones(2, dtype=dtype),)
    )
    np.testing.assert_allclose(t.data, [1.0, np.exp(-1.0)], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_expm1_gradient_keeps_precision_far_below_zero(dtype):
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
    # The rule was (expm1(x) + 1), which is 0 once exp(x) < eps: elu'(-30) in float32 was 0.
    x = Tensor(np.array([-30.0, -50.0, -1.0, 2.0], dtype=dtype), requires_grad=True)
    ad.expm1(x).sum().backward()
    np.testing.assert_allclose(x.grad.data, np.exp(x.data), rtol=4 * np.finfo(dtype).eps)
    assert x.grad.data[1] > 0
    _, t = ad.jvp(ad.expm1, (Tensor(np.array([-50.0], dtype=dtype)),), (np.ones(1, dtype),))
    np.testing.assert_allclose(t.data, np.exp(np.array([-50.0], dtype)), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_erf_and_gelu_keep_the_dtype(dtype):
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
    # float16 came out float32 (PyTorch keeps float16), and a 0-d erf held a 0-d array.
    x = Tensor(np.array([0.5, -1.0], dtype=dtype), requires_grad=True)
    y = ad.erf(x)
    assert y.dtype == dtype and ad.gelu(x).dtype == dtype
    np.testing.assert_allclose(y.data, [0.5204998778, -0.8427007929], rtol=1e-3)
    y.sum().backward()
    assert x.grad.dtype == dtype
    assert type(ad.erf(Tensor(dtype(0.5)))._data) is np.dtype(dtype).type


def test_split_and_chunk_of_an_empty_axis_give_every_piece():
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
    # An empty axis gave one piece: `a, b = split(empty, 2)` failed to unpack.
    empty = Tensor(np.zeros((0, 2)))
    assert [p.shape for p in ad.split(empty, 3)] == [(0, 2)] * 3
    assert [p.shape for p in ad.chunk(empty, 3)] == [(0, 2)] * 3
    assert [p.shape for p in ad.chunk(Tensor(np.zeros((5, 2))), 3)] == [(2, 2), (2, 2), (1, 2)]
    assert [p.shape for p in ad.chunk(Tensor(np.zeros((2, 2))), 5)] == [(1, 2), (1, 2)]


def test_scatter_add_of_floats_into_integers_neither_truncates_nor_cuts_the_gradient():
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
    # Was [0, 0, 0] (int): 0.5 + 0.25 cast to int, and src got no gradient.
    x = Tensor(np.zeros(3, dtype=np.int64))
    src = Tensor([0.5, 0.25, 2.0], requires_grad=True)
    out = ad.scatter_add(x, 0, np.array([0, 0, 2]), src)
    np.testing.assert_array_equal(out.data, [0.75, 0.0, 2.0])
    (out * Tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(src.grad.data, [1.0, 1.0, 3.0])
    # A float32 x keeps its dtype with float64 src, and the gradient comes back in float64.
    x32 = Tensor(np.zeros(3, dtype=np.float32))
    src64 = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    out32 = ad.scatter_add(x32, 0, np.array([2, 1, 0]), src64)
    assert out32.dtype == np.float32
    out32.sum().backward()
    assert src64.grad.dtype == np.float64


def test_scatter_add_keeps_its_own_index_for_backward():
    """Found in hunt round 3 (graph semantics and memory)."""
    # scatter_add's node kept the caller's index array: writing into it between forward and
    # backward (reusing a buffer) gave src the gradient of other positions, silently.
    x = Tensor(np.zeros((1, 3)))
    src = Tensor([[1.0, 1.0]], requires_grad=True)
    index = np.array([[2, 0]])
    out = ad.scatter_add(x, 1, index, src)
    (out * Tensor([[10.0, 20.0, 30.0]])).sum().backward()
    expected = src.grad.tolist()
    assert expected == [[30.0, 10.0]]
    src.grad = None
    out = ad.scatter_add(x, 1, index, src)
    loss = (out * Tensor([[10.0, 20.0, 30.0]])).sum()
    index[...] = 1
    loss.backward()
    assert src.grad.tolist() == expected


A = np.arange(1.0, 13.0).reshape(3, 4)


# --- numpy habits ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
def test_scan_without_axis_runs_over_the_flattened_array_as_numpy(name):
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    # a.cumsum() in numpy is 1-D over every element; ours scanned axis 0 (a silent 3x4 answer).
    expected = getattr(A, name)()
    t = Tensor(A, requires_grad=True)
    for got in (getattr(t, name)(), getattr(ad, name)(t)):
        assert got.shape == (12,)
        np.testing.assert_allclose(got.data, expected)
    getattr(t, name)().sum().backward()
    # d/dx_i of sum_k cumsum_k = the number of running sums x_i is in (12 - flat index)
    if name == "cumsum":
        np.testing.assert_allclose(t.grad.data, np.arange(12, 0, -1).reshape(3, 4))
    # an axis still scans along it
    np.testing.assert_allclose(getattr(ad, name)(A, 1).data, getattr(np, name)(A, axis=1))


@pytest.mark.parametrize("keepdims", [False, True])
def test_prod_over_several_axes_as_numpy(keepdims):
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    # a.prod(axis=(0, 2)) was refused ("prod: axis must be an int, got tuple"), unlike sum/mean.
    a = np.random.default_rng(1).normal(size=(2, 3, 4))
    a[0, 1, 2] = 0.0  # a zero: its neighbours' product is its gradient
    t = Tensor(a, requires_grad=True)
    out = t.prod(axis=(0, 2), keepdims=keepdims)
    np.testing.assert_allclose(out.data, a.prod(axis=(0, 2), keepdims=keepdims))
    out.sum().backward()
    expected = np.empty_like(a)
    for j in range(3):
        block = a[:, j, :]
        for i, k in np.ndindex(2, 4):
            others = np.delete(block.ravel(), i * 4 + k)
            expected[i, j, k] = others.prod()
    np.testing.assert_allclose(t.grad.data, expected)
    np.testing.assert_allclose(np.prod(t, axis=(2, 0)).data, a.prod(axis=(0, 2)))


def test_argsort_method_and_in_as_numpy_and_pytorch(torch):
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    # t.argsort() was an AttributeError; `3.0 in t` for a 2-D t asked a row for its truth.
    a = np.array([[3.0, -1.0, 2.0], [0.0, 5.0, 2.0]])
    t = Tensor(a, requires_grad=True)
    order = t.argsort()
    assert order.dtype == np.int64 and order.tolist() == np.argsort(a, kind="stable").tolist()
    assert t.argsort(axis=0).tolist() == np.argsort(a, axis=0, kind="stable").tolist()
    assert (
        t.argsort(dim=1, descending=True).tolist()
        == torch.argsort(torch.tensor(a), dim=1, descending=True, stable=True).tolist()
    )
    assert 5.0 in t and -1 in t and 4.0 not in t
    assert (5.0 in t) == (5.0 in a) and (4.0 in t) == (4.0 in a)


def test_argmax_function_of_an_empty_tensor_names_the_op():
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    # the function went straight to numpy ("attempt to get argmax of an empty sequence")
    with pytest.raises(ValueError, match=r"argmax: empty tensor of shape \(0, 3\)"):
        ad.argmax(Tensor(np.zeros((0, 3))))
