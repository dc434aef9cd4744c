"""Regression tests for silent wrong answers found by adversarial testing of the engine and ops.

Each test pins one bug: the input, and the value or gradient it must give (checked against
PyTorch, or against the mathematics where PyTorch is the odd one out).
"""

import numpy as np
import pytest

import autodiff as ad
from autodiff import Tensor


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([1.0, np.nan, 0.0], np.nan),  # was 0.0: the NaN vanished from the norm
        ([1.0, np.inf, 0.0], np.inf),  # was NaN: x / inf made every element NaN
        ([-np.inf, 3.0], np.inf),
    ],
)
def test_norm_of_non_finite_vector(data, expected):
    x = Tensor(data, requires_grad=True)
    n = ad.norm(x)
    np.testing.assert_equal(n.item(), expected)
    n.backward()
    # Gradient x / |x|: 0 for finite entries next to an inf, NaN where undefined (as PyTorch).
    if np.isinf(expected):
        finite = np.isfinite(np.asarray(data))
        np.testing.assert_equal(x.grad.data[finite], 0.0)


def test_norm_of_non_finite_row_leaves_other_rows_scaled():
    x = Tensor([[np.inf, 1.0], [3e300, 4e300], [np.nan, 0.0]], requires_grad=True)
    n = ad.norm(x, axis=1)
    np.testing.assert_allclose(n.data[:2], [np.inf, 5e300])
    assert np.isnan(n.data[2])
    n[1].backward()
    np.testing.assert_allclose(x.grad.data[1], [0.6, 0.8])


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.bool_])
def test_clip_of_integers_to_fractional_bounds_stays_within_them(dtype):
    # Was [0, 1, 2] (int): 0 lies below the lower bound 0.5; numpy and PyTorch give fractions.
    x = Tensor(np.array([0, 1, 3]).astype(dtype))
    y = x.clip(0.5, 2.5)
    expected = np.clip(np.array([0, 1, 3]).astype(dtype), 0.5, 2.5)
    assert y.dtype.kind == "f"
    np.testing.assert_array_equal(y.data, expected)
    assert np.all(y.data >= 0.5) and np.all(y.data <= 2.5)


def test_clip_of_integers_to_integer_bounds_keeps_integers():
    y = Tensor(np.array([0, 1, 3], dtype=np.int32)).clip(1, 2)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y.data, [1, 1, 2])


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.bool_, np.float32])
@pytest.mark.parametrize("which", ["tril", "triu"])
def test_tril_triu_keep_the_dtype(dtype, which):
    # Were float64 for integer and boolean input (numpy and PyTorch keep the dtype).
    a = (np.arange(12).reshape(3, 4) % 3).astype(dtype)
    out = getattr(ad, which)(Tensor(a), 1)
    expected = getattr(np, which)(a, 1)
    assert out.dtype == expected.dtype
    np.testing.assert_array_equal(out.data, expected)


def test_tril_gradient_is_the_mask():
    x = Tensor(np.ones((2, 3, 3), dtype=np.float32), requires_grad=True)
    ad.tril(x, -1).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(
        x.grad.data, np.broadcast_to(np.tril(np.ones((3, 3)), -1), (2, 3, 3))
    )


@pytest.mark.parametrize("dtype", [np.uint8, np.uint32, np.int8, np.float64])
def test_descending_order_of_unsigned_and_extreme_integers(dtype):
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
    values, indices = ad.topk(Tensor(np.array([False, True, False, True])), 2)
    np.testing.assert_array_equal(values.data, [True, True])
    np.testing.assert_array_equal(indices.data, [1, 3])


def test_remainder_and_floor_divide_match_python():
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
    a, b = Tensor([7.0, -2.5], requires_grad=True), Tensor([2.0, 0.75], requires_grad=True)
    (gb,) = ad.grad(ad.remainder(a, b * b).sum(), [b], create_graph=True)
    np.testing.assert_allclose(gb.data, -2 * np.array([2.0, 0.75]) * np.array([1.0, -5.0]))
    (h,) = ad.grad(gb.sum(), [b])  # d/db (-2 b q) = -2 q (q constant between its jumps)
    np.testing.assert_allclose(h.data, [-2.0, 10.0])
    _, t = ad.jvp(lambda x, y: x % y, (Tensor([5.0]), Tensor([0.1])), (np.ones(1), np.ones(1)))
    np.testing.assert_allclose(t.data, [1.0 - 49.0])


def test_remainder_dtypes_and_division_by_zero():
    x = Tensor(np.array([5.0, 1.0], dtype=np.float32))
    assert (x % 0.3).dtype == np.float32 and (3.0 // x).dtype == np.float32
    i = Tensor(np.array([7, -7]))
    assert (i % 3).dtype == np.int64 and (i // 3).tolist() == [2, -3]
    with np.errstate(all="raise"):  # quiet, as 1.0 / 0.0 is
        assert np.isnan((Tensor([1.0]) % 0.0).item())
        assert (Tensor([1.0]) // 0.0).item() == np.inf


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sinh_cosh_accurate_near_zero_and_large(dtype):
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
    x = Tensor([0.3, -1.2], requires_grad=True)
    (g,) = ad.grad(ad.sinh(x).sum(), [x], create_graph=True)
    (h,) = ad.grad(g.sum(), [x])  # sinh'' = sinh
    np.testing.assert_allclose(h.data, np.sinh([0.3, -1.2]))
    _, t = ad.jvp(ad.cosh, (Tensor([0.3, -1.2]),), (np.array([2.0, 1.0]),))
    np.testing.assert_allclose(t.data, np.sinh([0.3, -1.2]) * [2.0, 1.0])


def test_sqrt_of_a_scalar_is_the_same_as_of_an_array():
    # A 0-d tensor went through C's pow: sqrt(-inf) was inf (an array gave NaN, as PyTorch),
    # and about 1 in 1000 roots differed from np.sqrt in the last bit.
    for v in [-np.inf, -0.0, -4.0, np.inf, 0.0]:
        got = Tensor(v).sqrt().item()
        with np.errstate(invalid="ignore"):
            expected = np.sqrt(np.array([v]))[0]
        np.testing.assert_equal(got, expected)
        np.testing.assert_equal((Tensor(v) ** 0.5).item(), got)
    values = np.random.default_rng(0).random(5000) * 100
    roots = np.array([Tensor(v).sqrt().item() for v in values])
    np.testing.assert_array_equal(roots, np.sqrt(values))
    np.testing.assert_array_equal(
        Tensor(values.astype(np.float32)).sqrt().data, np.sqrt(values.astype(np.float32))
    )


def test_sqrt_gradient_unchanged():
    x = Tensor(4.0, requires_grad=True)
    (g,) = ad.grad(x.sqrt(), [x], create_graph=True)
    assert g.item() == 0.25
    (h,) = ad.grad(g, [x])
    np.testing.assert_allclose(h.item(), -0.25 * 4.0**-1.5)


def test_float16_mean_accumulates_in_float32():
    # The float16 sum overflowed: the mean of 10,000 tens was inf (numpy, PyTorch: 10).
    a = np.full((100, 100), 10.0, dtype=np.float16)
    x = Tensor(a, requires_grad=True)
    m = x.mean()
    assert m.dtype == np.float16 and m.item() == 10.0
    np.testing.assert_array_equal(x.mean(axis=0).data, np.full(100, 10.0, np.float16))
    assert x.mean(axis=(0, 1), keepdims=True).shape == (1, 1)
    assert x.var().item() == 0.0 and x.std().item() == 0.0
    m.backward()
    assert x.grad.dtype == np.float16
    np.testing.assert_allclose(x.grad.data, np.float16(1e-4))
    _, tangent = ad.jvp(lambda t: t.mean(), (Tensor(a),), (a,))
    assert tangent.dtype == np.float16 and tangent.item() == 10.0


def test_numpy_ufunc_error_is_reported_not_replaced_by_a_constructor_error():
    # Was "TypeError: _UFuncNoLoopError.__init__() missing 1 required positional argument".
    with pytest.raises(TypeError, match=r"^sign: .*(sign|bool)"):
        ad.sign(Tensor(np.array([True, False])))


def test_indices_and_masks_given_as_lists_or_numbers():
    # Were AttributeError: 'list' object has no attribute '_data'.
    x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    np.testing.assert_array_equal(
        ad.masked_fill(x, [[True, False], [False, True]], 0.0).data, [[0.0, 2.0], [3.0, 0.0]]
    )
    np.testing.assert_array_equal(ad.masked_fill(x, True, 5.0).data, np.full((2, 2), 5.0))
    taken = ad.take_along_axis(x, [[1], [1]], 1)
    np.testing.assert_array_equal(taken.data, [[2.0], [4.0]])
    added = ad.scatter_add(x, 1, [[0, 0], [1, 1]], Tensor([[1.0, 1.0], [2.0, 2.0]]))
    np.testing.assert_array_equal(added.data, [[3.0, 2.0], [3.0, 8.0]])
    (taken.sum() + added.sum()).backward()
    np.testing.assert_array_equal(x.grad.data, [[1.0, 2.0], [1.0, 2.0]])


def test_a_cached_number_constant_cannot_be_changed_through_a_graph():
    # `x * 3.0` shares one cached constant 3.0 with every other expression using it: zero_()
    # on it (reached as y.parents[1]) made every later `t * 3.0` zero, and requires_grad_()
    # made every `t * 7.0` require grad and pile gradients into the shared constant.
    x = Tensor([1.0, 2.0], requires_grad=True)
    three = (x * 3.0).parents[1]
    with pytest.raises(RuntimeError, match="shared"), ad.no_grad():
        three.zero_()
    seven = (x * 7.0).parents[1]
    with pytest.raises(RuntimeError, match="shared"):
        seven.requires_grad_(True)
    assert (Tensor([5.0]) * 3.0).item() == 15.0
    assert not (Tensor([1.0]) * 7.0).requires_grad
    seven.requires_grad_(False)  # asking for what it already is stays allowed


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_elu_gradient_finite_for_large_inputs(dtype):
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
    # The rule was (expm1(x) + 1), which is 0 once exp(x) < eps: elu'(-30) in float32 was 0.
    x = Tensor(np.array([-30.0, -50.0, -1.0, 2.0], dtype=dtype), requires_grad=True)
    ad.expm1(x).sum().backward()
    np.testing.assert_allclose(x.grad.data, np.exp(x.data), rtol=4 * np.finfo(dtype).eps)
    assert x.grad.data[1] > 0
    _, t = ad.jvp(ad.expm1, (Tensor(np.array([-50.0], dtype=dtype)),), (np.ones(1, dtype),))
    np.testing.assert_allclose(t.data, np.exp(np.array([-50.0], dtype)), rtol=1e-6)


def test_setitem_value_with_leading_ones_that_also_broadcasts():
    # x[:] = v with v of shape (1, 1) into a slot of 3: the rule reshaped the slot's (3,)
    # gradient to (1, 1) and failed; PyTorch gives v the sum, 6.
    v = Tensor(np.array([[2.0]]), requires_grad=True)
    x = ad.zeros(3)
    x[:] = v
    (x * Tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(v.grad.data, [[6.0]])
    w = Tensor(np.array([[[1.0], [2.0]]]), requires_grad=True)  # (1, 2, 1) into (2, 3)
    y = ad.zeros(4, 2, 3)
    y[1] = w
    (y * Tensor(np.arange(24.0).reshape(4, 2, 3))).sum().backward()
    np.testing.assert_array_equal(w.grad.data, [[[6.0 + 7 + 8], [9.0 + 10 + 11]]])


def test_float16_var_and_cumsum_accumulate_in_float32():
    # var summed 32,768 float16 squares (~16 each) to inf; cumsum rounded every running sum
    # to float16 and drifted by about 1 after 500 terms. PyTorch accumulates in float32.
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((64, 512)) * 4).astype(np.float16)
    exact = a.astype(np.float64)
    x = Tensor(a, requires_grad=True)
    v = x.var()
    assert v.dtype == np.float16
    np.testing.assert_allclose(v.item(), exact.var(), rtol=2e-3)
    np.testing.assert_allclose(x.std(axis=1, ddof=1).data, exact.std(axis=1, ddof=1), rtol=2e-3)
    c = ad.cumsum(x, axis=1)
    assert c.dtype == np.float16
    np.testing.assert_allclose(c.data, np.cumsum(exact, axis=1), atol=0.07)  # one float16 ulp
    (g,) = ad.grad(c, [x], grad_outputs=np.ones(a.shape, np.float16))
    np.testing.assert_allclose(g.data, np.arange(512, 0, -1)[None].repeat(64, 0), rtol=1e-3)


def test_var_with_ddof_unchanged_in_float64():
    a = np.random.default_rng(1).standard_normal((5, 7))
    x = Tensor(a, requires_grad=True)
    np.testing.assert_allclose(x.var(axis=0, ddof=1).data, a.var(axis=0, ddof=1), rtol=1e-14)
    np.testing.assert_allclose(x.var().item(), a.var(), rtol=1e-15)
    x.var(axis=1, ddof=2).sum().backward()
    centered = a - a.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(x.grad.data, 2 * centered / (7 - 2), rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_erf_and_gelu_keep_the_dtype(dtype):
    # float16 came out float32 (PyTorch keeps float16), and a 0-d erf held a 0-d array.
    x = Tensor(np.array([0.5, -1.0], dtype=dtype), requires_grad=True)
    y = ad.erf(x)
    assert y.dtype == dtype and ad.gelu(x).dtype == dtype
    np.testing.assert_allclose(y.data, [0.5204998778, -0.8427007929], rtol=1e-3)
    y.sum().backward()
    assert x.grad.dtype == dtype
    assert type(ad.erf(Tensor(dtype(0.5)))._data) is np.dtype(dtype).type


def test_split_and_chunk_of_an_empty_axis_give_every_piece():
    # An empty axis gave one piece: `a, b = split(empty, 2)` failed to unpack.
    empty = Tensor(np.zeros((0, 2)))
    assert [p.shape for p in ad.split(empty, 3)] == [(0, 2)] * 3
    assert [p.shape for p in ad.chunk(empty, 3)] == [(0, 2)] * 3
    assert [p.shape for p in ad.chunk(Tensor(np.zeros((5, 2))), 3)] == [(2, 2), (2, 2), (1, 2)]
    assert [p.shape for p in ad.chunk(Tensor(np.zeros((2, 2))), 5)] == [(1, 2), (1, 2)]


def test_scatter_add_of_floats_into_integers_neither_truncates_nor_cuts_the_gradient():
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


def test_grad_with_create_graph_gives_each_input_its_own_gradient():
    # add gives the same gradient Tensor to both parents: grad(..., [a, b], create_graph=True)
    # returned one object twice, so updating a's gradient in place changed b's.
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([3.0, 4.0], requires_grad=True)
    ga, gb = ad.grad((a + b) * 1.0, [a, b], grad_outputs=np.ones(2), create_graph=True)
    assert ga is not gb and not np.shares_memory(ga.data, gb.data)
    with ad.no_grad():
        ga += 1
    np.testing.assert_array_equal(gb.data, [1.0, 1.0])
    # Still differentiable: d/da of sum(ga * a) with ga = 1 (+1 for the update is a constant).
    c = Tensor([1.0, 2.0], requires_grad=True)
    gc, gc2 = ad.grad((c * c).sum(), [c, c], create_graph=True)
    assert gc is not gc2
    (h,) = ad.grad((gc * gc2).sum(), [c])
    np.testing.assert_allclose(h.data, 8 * np.array([1.0, 2.0]))  # d/dc (2c)^2 = 8c
    s = Tensor(2.0, requires_grad=True)  # 0-d gradients (numpy scalars) too
    gs1, gs2 = ad.grad(s + s * 0.0, [s, s], create_graph=True)
    assert gs1 is not gs2


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.uint8, np.int64])
def test_integer_power_one_half_stays_float64(dtype):
    # Guards the sqrt fix above: np.sqrt of small integers answers in float16.
    a = np.array([1, 4, 9]).astype(dtype)
    y = Tensor(a) ** 0.5
    assert y.dtype == (a**0.5).dtype == np.float64
    np.testing.assert_array_equal(y.data, np.sqrt(a.astype(np.float64)))
