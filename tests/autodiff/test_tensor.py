"""The Tensor: its operators, methods, indexing, dtypes and gradient bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest

import autodiff as ad
from autodiff import Tensor


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_power_by_numpy_float64_scalar_keeps_dtype_like_other_operators(dtype):
    """Found in hunt round 3 (dtypes and higher-order derivatives)."""
    # Convention: an np.float64 scalar is a Python float (a subclass), so like 2.5 it does not
    # upcast a float32 tensor: x * np.float64(2.5) was float32 but x ** np.float64(2.5) was
    # float64 (numpy's strong-scalar rule, applied to pow alone). PyTorch keeps float32 for
    # both; numpy would upcast both. Gradients stay in the leaf's dtype either way.
    x = Tensor(np.array([1.5, 2.0], dtype), requires_grad=True)
    e = np.float64(2.5)
    assert (x * e).dtype == dtype
    y = x**e
    assert y.dtype == dtype and x.pow(e).dtype == dtype
    np.testing.assert_allclose(y.data, np.array([1.5, 2.0], dtype) ** 2.5, rtol=1e-3)
    y.sum().backward()
    assert x.grad.dtype == dtype


def test_assigned_grad_keeps_the_tensors_dtype():
    """Found in hunt round 3 (dtypes and higher-order derivatives)."""
    # p.grad = float64 data on a float32 tensor stayed float64 (and later backward passes
    # accumulated into it in float64): data is now converted, a Tensor of another dtype refused.
    p = Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    p.grad = np.array([0.5, 0.25])
    assert p.grad.dtype == np.float32
    (p * 2).sum().backward()
    assert p.grad.dtype == np.float32
    np.testing.assert_array_equal(p.grad.data, np.array([2.5, 2.25], np.float32))
    p.grad = [1.0, 3.0]
    assert p.grad.dtype == np.float32
    with pytest.raises(TypeError, match="float64 gradient for a float32"):
        p.grad = Tensor(np.array([1.0, 2.0]))
    p.grad = Tensor(np.array([1.0, 2.0], np.float32))
    p.grad = None
    assert p.grad is None


def test_float16_var_and_std_do_not_overflow_in_their_squares():
    """Found in hunt round 3 (dtypes and higher-order derivatives)."""
    # std([300, -300]) in float16 was inf (its squares, 90000, overflow float16's 65504) and
    # var([300, -300, 0]) = 60000 was inf too; they compute in float32 and answer in float16,
    # as PyTorch (300 and 60000), with float16 gradients.
    x = Tensor(np.array([300.0, -300.0], np.float16), requires_grad=True)
    s = x.std()
    assert s.dtype == np.float16 and float(s.data) == 300.0
    s.backward()
    assert x.grad.dtype == np.float16
    np.testing.assert_allclose(x.grad.data.astype(np.float64), [0.5, -0.5])
    v = Tensor(np.array([300.0, -300.0, 0.0], np.float16)).var()
    assert v.dtype == np.float16 and float(v.data) == 60000.0
    v1 = Tensor(np.array([300.0, -300.0, 0.0, 0.0], np.float16)).var(ddof=1)
    assert float(v1.data) == 60000.0


def test_pow_mixed_second_derivative_at_zero_exponent_is_exact():
    """Found in hunt round 3 (dtypes and higher-order derivatives)."""
    # Convention (PyTorch is the odd one): d2(a**b)/da db = a**(b-1) (1 + b log a) is 1/a at
    # b = 0, where PyTorch's double backward gives 0 (it zeroes b * a**(b-1) where b == 0 and
    # so loses its derivative in b). Hence f(x) = (x + 1) ** (1.3 x) has f''(0) = 2.6 here (the
    # limit of f'' from either side), and 1.3 in PyTorch.
    a = Tensor(np.array([2.0, 0.5]), requires_grad=True)
    b = Tensor(np.array([0.0, 0.0]), requires_grad=True)
    (ga, _) = ad.grad((a**b).sum(), [a, b], create_graph=True)
    _, hab = ad.grad(ga.sum(), [a, b])
    np.testing.assert_allclose(hab.data, [0.5, 2.0])
    x = Tensor(np.array([0.0]), requires_grad=True)
    (g,) = ad.grad(((x + 1) ** (x * 1.3)).sum(), [x], create_graph=True)
    (h,) = ad.grad(g.sum(), [x])
    # f = exp(1.3 x log(1 + x)) = 1 + 1.3 x**2 + O(x**3), so f''(0) = 2.6
    np.testing.assert_allclose(h.data, [2.6], rtol=1e-12)


def test_float16_softmax_family_over_more_than_65504_entries():
    """Found in hunt round 3 (dtypes and higher-order derivatives)."""
    # A float16 softmax over 100000 equal logits was 0 everywhere, log_softmax and logsumexp
    # -inf / inf: the sum of the exponentials (100000) overflowed float16. It is taken in
    # float32 (as PyTorch) and the answers are float16: 1e-5, -11.51, 11.51.
    z = Tensor(np.zeros(100000, np.float16), requires_grad=True)
    lse = ad.logsumexp(z)
    assert lse.dtype == np.float16
    np.testing.assert_allclose(float(lse.data), np.log(1e5), rtol=1e-3)
    lse.backward()
    assert z.grad.dtype == np.float16
    np.testing.assert_allclose(z.grad.data[:3].astype(np.float64), 1e-5, rtol=1e-2)
    s = ad.softmax(Tensor(np.zeros(100000, np.float16)))
    assert s.dtype == np.float16
    np.testing.assert_allclose(s.data[:3].astype(np.float64), 1e-5, rtol=1e-2)
    ls = ad.log_softmax(Tensor(np.zeros((2, 100000), np.float16)), axis=1)
    np.testing.assert_allclose(ls.data[:, :3].astype(np.float64), -np.log(1e5), rtol=1e-3)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.bool_])
def test_clip_of_integers_to_fractional_bounds_stays_within_them(dtype):
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
    # Was [0, 1, 2] (int): 0 lies below the lower bound 0.5; numpy and PyTorch give fractions.
    x = Tensor(np.array([0, 1, 3]).astype(dtype))
    y = x.clip(0.5, 2.5)
    expected = np.clip(np.array([0, 1, 3]).astype(dtype), 0.5, 2.5)
    assert y.dtype.kind == "f"
    np.testing.assert_array_equal(y.data, expected)
    assert np.all(y.data >= 0.5) and np.all(y.data <= 2.5)


def test_clip_of_integers_to_integer_bounds_keeps_integers():
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
    y = Tensor(np.array([0, 1, 3], dtype=np.int32)).clip(1, 2)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y.data, [1, 1, 2])


def test_sqrt_of_a_scalar_is_the_same_as_of_an_array():
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
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
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
    x = Tensor(4.0, requires_grad=True)
    (g,) = ad.grad(x.sqrt(), [x], create_graph=True)
    assert g.item() == 0.25
    (h,) = ad.grad(g, [x])
    np.testing.assert_allclose(h.item(), -0.25 * 4.0**-1.5)


def test_float16_mean_accumulates_in_float32():
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
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


def test_indices_and_masks_given_as_lists_or_numbers():
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
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


def test_setitem_value_with_leading_ones_that_also_broadcasts():
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
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
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
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
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
    a = np.random.default_rng(1).standard_normal((5, 7))
    x = Tensor(a, requires_grad=True)
    np.testing.assert_allclose(x.var(axis=0, ddof=1).data, a.var(axis=0, ddof=1), rtol=1e-14)
    np.testing.assert_allclose(x.var().item(), a.var(), rtol=1e-15)
    x.var(axis=1, ddof=2).sum().backward()
    centered = a - a.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(x.grad.data, 2 * centered / (7 - 2), rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.uint8, np.int64])
def test_integer_power_one_half_stays_float64(dtype):
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
    # Guards the sqrt fix above: np.sqrt of small integers answers in float16.
    a = np.array([1, 4, 9]).astype(dtype)
    y = Tensor(a) ** 0.5
    assert y.dtype == (a**0.5).dtype == np.float64
    np.testing.assert_array_equal(y.data, np.sqrt(a.astype(np.float64)))


def test_zero_on_gradients_and_scalars_still_independent():
    """Found in hunt round 3 (graph semantics and memory)."""
    a = Tensor(np.ones(3), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)
    (a + b).sum().backward()
    a.grad.zero_()
    assert a.grad.tolist() == [0.0] * 3 and b.grad.tolist() == [1.0] * 3
    s = Tensor(2.0)
    assert s.zero_().item() == 0.0 and s.shape == ()
    c = Tensor(np.ones(3)).broadcast_to((2, 3))  # read-only memory: new zeros
    assert c.zero_().tolist() == [[0.0] * 3] * 2


def test_grad_setter_keeps_the_tensors_dtype():
    """Found in hunt round 3 (graph semantics and memory)."""
    # x.grad = float64 numbers on a float32 tensor stayed float64, and backward's
    # accumulation into it kept a float64 gradient from then on.
    x = Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    x.grad = np.array([1.0, 1.0])
    assert x.grad.dtype == np.float32
    (x * x).sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.tolist() == [3.0, 5.0]
    x.grad = [1, 2]  # plain integers too
    assert x.grad.dtype == np.float32 and x.grad.tolist() == [1.0, 2.0]
    with pytest.raises(TypeError, match=r"grad: a \w+ gradient for a float32 tensor; convert"):
        x.grad = Tensor([1, 2])  # a Tensor of another dtype is refused, as in PyTorch
    s = Tensor(np.float32(2.0), requires_grad=True)
    s.grad = 1.5
    assert s.grad.dtype == np.float32 and s.grad.shape == () and s.grad.item() == 1.5


def test_flatten_takes_pytorchs_start_and_end_dim():
    """Found using the project as a newcomer (README, habits, testing kit, drawings)."""
    # x.flatten(1), the PyTorch habit in every CNN's forward, failed with "Tensor.flatten()
    # takes 1 positional argument but 2 were given".
    data = np.arange(24.0).reshape(2, 3, 4)
    x = Tensor(data, requires_grad=True)
    assert x.flatten().shape == (24,)
    out = x.flatten(1)
    assert out.shape == (2, 12)
    np.testing.assert_array_equal(out.numpy(), data.reshape(2, 12))
    assert x.flatten(0, 1).shape == (6, 4)
    assert x.flatten(-2, -1).shape == (2, 12)
    assert x.flatten(1, 1).shape == (2, 3, 4)
    assert Tensor(np.zeros((2, 0, 3))).flatten(1).shape == (2, 0)
    assert Tensor(5.0).flatten().shape == (1,)
    (out * Tensor(np.arange(24.0).reshape(2, 12))).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.arange(24.0).reshape(2, 3, 4))
    with pytest.raises(ValueError, match="start_dim 2 comes after end_dim 1"):
        x.flatten(2, 1)
    with pytest.raises(ValueError, match="flatten: axis 3 is out of range"):
        x.flatten(3)
