"""The Tensor: its operators, methods, indexing, dtypes and gradient bookkeeping."""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest

import autodiff as ad
import nn
from autodiff import Tensor
from autodiff.testing import gradcheck


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


def test_max_over_a_nonempty_axis_of_an_empty_tensor():
    """Found in the attack round (forward mode, transforms, conv, export)."""
    t = Tensor(np.zeros((0, 3)), requires_grad=True)
    assert t.max(axis=1).shape == (0,)  # numpy and torch.amax: shape (0,)
    assert t.min(axis=1).shape == (0,)


@pytest.mark.parametrize("base", [0.0, 2.2250738585072014e-309, 5e-324, 3.0])
def test_power_with_exponent_zero_has_zero_base_derivative_even_at_subnormal_bases(base):
    """a ** b with b = 0 is the constant 1 in a, so its derivative in a is 0. The formula
    b * a**(b-1) gave 0 * inf = NaN for a subnormal base (1/a overflows), not only at a = 0;
    found by the PyTorch sweep.

    Found in the attack round (forward mode, transforms, conv, export).
    """
    a = Tensor(np.array([base]), requires_grad=True)
    b = Tensor(np.array([0.0]), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        (a**b).sum().backward()
    assert a.grad.data.tolist() == [0.0]
    # d(a**b)/db = a**b log a; at a = 0 the engine's convention is 0 (see ops._log_base).
    np.testing.assert_allclose(b.grad.data, [np.log(base) if base else 0.0])
    # Second order in b is left exact where the first-order formula is finite.
    x = Tensor(np.array([3.0]), requires_grad=True)
    y = Tensor(np.array([0.0]), requires_grad=True)
    (gx,) = ad.grad(x**y, [x], create_graph=True)
    (gxy,) = ad.grad(gx.sum(), [y])
    np.testing.assert_allclose(gxy.data, [1 / 3])  # d/dy (y x**(y-1)) at y = 0 is 1/x


def test_clone_is_a_copy_that_stays_in_the_graph():
    """Found in the attack round (forward mode, transforms, conv, export)."""
    x = Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    y = x.clone()
    assert y.dtype == np.float32 and not np.shares_memory(y.data, x.data)
    (y * y).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [2.0, 4.0])
    s = Tensor(np.float64(3.0), requires_grad=True).clone()  # 0-d: a scalar copy
    assert s.item() == 3.0 and s.requires_grad


# --- PyTorch habits: dim= on the free functions and methods ----------------------------------

X = np.array([[3.0, -1.0, 2.0, 0.5], [-2.0, 4.0, 1.0, 1.5], [0.0, 2.5, -3.0, 5.0]])


DIM_CASES = {
    # name: (our call with dim=, the same with numpy's axis=)
    "argmax": (lambda t: ad.argmax(t, dim=1), lambda t: ad.argmax(t, axis=1)),
    "argmin keepdim": (
        lambda t: ad.argmin(t, dim=0, keepdim=True),
        lambda t: ad.argmin(t, axis=0, keepdims=True),
    ),
    "cumsum": (lambda t: ad.cumsum(t, dim=1), lambda t: ad.cumsum(t, axis=1)),
    "cumprod method": (lambda t: t.cumprod(dim=0), lambda t: t.cumprod(axis=0)),
    "prod keepdim": (lambda t: t.prod(dim=1, keepdim=True), lambda t: t.prod(1, True)),
    "sort": (lambda t: t.sort(dim=0), lambda t: t.sort(axis=0)),
    "topk": (lambda t: ad.topk(t, 2, dim=0)[0], lambda t: ad.topk(t, 2, axis=0)[0]),
    "flip dims": (lambda t: ad.flip(t, dims=(1,)), lambda t: ad.flip(t, axis=1)),
    "roll dims": (lambda t: ad.roll(t, 1, dims=1), lambda t: ad.roll(t, 1, axis=1)),
    "split": (lambda t: ad.split(t, 2, dim=1)[1], lambda t: ad.split(t, 2, axis=1)[1]),
    "chunk": (lambda t: ad.chunk(t, 3, dim=1)[0], lambda t: ad.chunk(t, 3, axis=1)[0]),
    "norm": (lambda t: t.norm(dim=1, keepdim=True), lambda t: t.norm(axis=1, keepdims=True)),
    "any": (lambda t: (t > 4).any(dim=1), lambda t: (t > 4).any(axis=1)),
    "all": (lambda t: ad.all(t > -2.5, dim=0), lambda t: ad.all(t > -2.5, axis=0)),
    "take_along_axis": (
        lambda t: ad.take_along_axis(t, np.zeros((3, 1), int), dim=1),
        lambda t: ad.take_along_axis(t, np.zeros((3, 1), int), 1),
    ),
}


def test_round_and_ravel_are_methods_as_on_arrays():
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    t = Tensor([[1.26, 2.5], [3.5, -0.5]], requires_grad=True)
    np.testing.assert_array_equal(t.round().data, np.round(t.data))
    np.testing.assert_array_equal(t.round(1).data, [[1.3, 2.5], [3.5, -0.5]])
    flat = t.ravel()
    assert flat.shape == (4,)
    (flat * Tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    np.testing.assert_array_equal(t.grad.data, [[1.0, 2.0], [3.0, 4.0]])


@pytest.mark.parametrize("name", DIM_CASES)
def test_pytorch_dim_is_numpy_axis(name):
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    with_dim, with_axis = DIM_CASES[name]
    got, expected = with_dim(Tensor(X)), with_axis(Tensor(X))
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_array_equal(got.data, expected.data)


def test_torch_argmax_over_classes_matches_pytorch(torch):
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    got = ad.argmax(Tensor(X), dim=1)
    assert got.tolist() == torch.argmax(torch.tensor(X), dim=1).tolist() == [0, 1, 3]
    assert got.dtype == np.int64


@pytest.mark.parametrize(
    "call",
    [
        lambda t: ad.cumsum(t, 0, dim=1),
        lambda t: ad.sort(t, 0, dim=1),
        lambda t: ad.argmax(t, 0, dim=1),
        lambda t: t.norm(axis=0, dim=1),
    ],
)
def test_axis_and_dim_together_are_refused(call):
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    with pytest.raises(TypeError, match="axis= or dim="):
        call(Tensor(X))


def test_pytorch_first_hour_methods_numel_dim_long_cpu():
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""

    model = nn.MLP(784, [128], 10)
    assert sum(p.numel() for p in model.parameters()) == 101770 == model.num_parameters()
    x = Tensor(np.ones((2, 3, 4)), requires_grad=True)
    assert x.dim() == 3 and x.numel() == 24 and isinstance(x.numel(), int)
    labels = Tensor([2.0, 0.0, 1.0]).long()
    assert labels.dtype == np.int64 and labels.tolist() == [2, 0, 1]
    out = (x * 2).sum(axis=0)
    np.testing.assert_array_equal(out.detach().cpu().numpy(), np.full((3, 4), 4.0))
    assert x.cpu() is x


def test_arange_of_integers_indexes_as_in_numpy_and_pytorch():
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    logits = Tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    picked = logits[ad.arange(3), np.array([0, 1, 1])]
    assert picked.tolist() == [0.0, 3.0, 5.0]
    assert ad.arange(3).dtype == np.arange(3).dtype


def test_a_tensor_built_from_a_list_of_graph_tensors_keeps_or_refuses_the_graph():
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    a = Tensor(2.0, requires_grad=True)
    b = Tensor(3.0, requires_grad=True)
    try:
        v = Tensor([a * 1, b * 2])
    except (TypeError, ValueError):
        return  # refused, naming stack: as good as kept
    (v * v).sum().backward()
    assert a.grad.item() == 4.0 and b.grad.item() == 24.0


# --- item 8: formatting and abs() ----------------------------------------------------------


def test_micrograd_readme_example_runs_unchanged_but_for_the_class():
    """A habit from micrograd, PyTorch or numpy (issue 10, items 8, 9, 10 and 12)."""

    def Value(x):  # noqa: N802 - micrograd's class name, the only change to its example
        return Tensor(x, requires_grad=True)

    a = Value(-4.0)
    b = Value(2.0)
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    assert f"{g.data:.4f}" == "24.7041"
    g.backward()
    assert f"{a.grad:.4f}" == "138.8338"
    assert f"{b.grad:.4f}" == "645.5773"


def test_format_of_scalars_and_arrays():
    """A habit from micrograd, PyTorch or numpy (issue 10, items 8, 9, 10 and 12)."""
    assert f"{Tensor(2.5):.3f}" == "2.500"
    assert f"{Tensor(np.float32(0.1)):.2e}" == "1.00e-01"
    assert f"{Tensor(7.0):>6}" == "   7.0"
    assert f"{Tensor(np.int64(3)):03d}" == "003"
    t = Tensor([1.0, 2.0], requires_grad=True)
    assert f"{t}" == str(t) == repr(t)  # no spec: the usual text
    with pytest.raises(TypeError):
        f"{t:.2f}"  # noqa: B018 - numpy refuses format specs for arrays, and so do we


def test_builtin_abs_is_differentiable():
    """A habit from micrograd, PyTorch or numpy (issue 10, items 8, 9, 10 and 12)."""
    x = Tensor([-2.0, 3.0], requires_grad=True)
    y = abs(x)
    assert y.tolist() == [2.0, 3.0]
    y.sum().backward()
    assert x.grad.tolist() == [-1.0, 1.0]


# --- item 10: PyTorch names ------------------------------------------------------------------


def test_argmax_argmin_give_integer_indices_without_gradient():
    """A habit from micrograd, PyTorch or numpy (issue 10, items 8, 9, 10 and 12)."""
    x = Tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]], requires_grad=True)
    assert x.argmax().item() == 3 and x.argmin().item() == 4
    assert x.argmax(dim=1).tolist() == [1, 0]
    assert x.argmin(axis=0).tolist() == [0, 1, 0]
    kept = x.argmax(dim=1, keepdim=True)
    assert kept.shape == (2, 1) and kept.dtype == np.int64 and not kept.requires_grad
    assert Tensor(4.0).argmax(dim=0).item() == 0
    with pytest.raises(ValueError, match="argmax: empty"):
        Tensor(np.zeros((0,))).argmax()
    with pytest.raises(ValueError, match="argmin: axis 2 is out of range"):
        x.argmin(2)


def test_shape_aliases_match_numpy_and_are_differentiable():
    """A habit from micrograd, PyTorch or numpy (issue 10, items 8, 9, 10 and 12)."""
    data = np.arange(6.0).reshape(2, 3)
    x = Tensor(data, requires_grad=True)
    assert x.unsqueeze(0).shape == (1, 2, 3) and x.unsqueeze(-1).shape == (2, 3, 1)
    assert x.unsqueeze(1).shape == (2, 1, 3)
    assert x.unsqueeze(0).squeeze().shape == (2, 3)
    assert Tensor(np.zeros((1, 3, 1))).squeeze(0).shape == (3, 1)
    assert Tensor(np.zeros((1, 3, 1))).squeeze((0, -1)).shape == (3,)
    with pytest.raises(ValueError, match=r"squeeze: axis 1 of shape \(2, 3\) has length 3"):
        x.squeeze(1)
    np.testing.assert_array_equal(x.permute(1, 0).data, data.T)
    np.testing.assert_array_equal(x.view(3, 2).data, data.reshape(3, 2))
    np.testing.assert_array_equal(x.view(-1).data, data.ravel())
    np.testing.assert_array_equal(x.clamp(1.0, 3.0).data, np.clip(data, 1, 3))
    np.testing.assert_array_equal(x.clamp(max=2.0).data, np.minimum(data, 2))
    np.testing.assert_array_equal(x.pow(2).data, data**2)
    with pytest.raises(TypeError, match="permute: give the new order"):
        x.permute()
    gradcheck(lambda t: t.unsqueeze(1).permute(2, 1, 0).view(-1) * np.arange(6.0), data)
    gradcheck(lambda t: t.clamp(0.5, 3.5).pow(3), data)


def test_float_and_double_convert_and_keep_the_gradient():
    """A habit from micrograd, PyTorch or numpy (issue 10, items 8, 9, 10 and 12)."""
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x.float()
    assert y.dtype == np.float32 and y.double().dtype == np.float64
    assert x.double() is x
    (y * 3).sum().backward()
    assert x.grad.dtype == np.float64 and x.grad.tolist() == [3.0, 3.0]
    assert float(Tensor(2.5)) == 2.5  # the builtin float() still takes a number out


def test_size_is_numpys_count_and_pytorchs_call():
    """A habit from micrograd, PyTorch or numpy (issue 10, items 8, 9, 10 and 12)."""
    x = Tensor(np.zeros((2, 3)))
    assert x.size == 6 and isinstance(x.size, int) and x.size * 2 == 12
    assert x.size() == (2, 3) and x.size(0) == 2 and x.size(-1) == 3
    assert Tensor(1.0).size == 1 and Tensor(1.0).size() == ()
    with pytest.raises(ValueError, match="size: axis 2 is out of range"):
        x.size(2)
    # Copies and pickles are plain ints, not a callable that remembers a shape.
    assert type(pickle.loads(pickle.dumps(x.size))) is int
    assert type(copy.deepcopy(x.size)) is int


def test_dim_and_keepdim_beside_axis_and_keepdims():
    """A habit from micrograd, PyTorch or numpy (issue 10, items 8, 9, 10 and 12)."""
    data = np.arange(12.0).reshape(3, 4)
    x = Tensor(data, requires_grad=True)
    for name in ("sum", "mean", "max", "min", "var", "std", "logsumexp"):
        torch_style = getattr(x, name)(dim=1, keepdim=True)
        numpy_style = getattr(x, name)(axis=1, keepdims=True)
        if name in ("max", "min"):  # PyTorch's (values, indices): see the test below
            torch_style = torch_style.values
        assert torch_style.shape == (3, 1), name
        np.testing.assert_allclose(torch_style.data, numpy_style.data, err_msg=name)
        assert getattr(x, name)(axis=0).shape == (4,)
    np.testing.assert_allclose(x.softmax(dim=0).data, x.softmax(axis=0).data)
    np.testing.assert_allclose(ad.softmax(x, dim=0).data, x.softmax(axis=0).data)
    np.testing.assert_allclose(ad.log_softmax(x, dim=0).data, x.log_softmax(axis=0).data)
    assert x.sum(dim=(0, 1)).item() == data.sum()
    with pytest.raises(TypeError, match="sum: pass axis= or dim="):
        x.sum(axis=0, dim=0)
    with pytest.raises(TypeError, match="log_softmax: pass axis= or dim="):
        x.log_softmax(axis=0, dim=1)


def test_var_and_std_take_ddof_and_correction():
    """A habit from micrograd, PyTorch or numpy (issue 10, items 8, 9, 10 and 12)."""
    data = np.array([[1.0, 4.0, 2.0, 8.0], [3.0, 3.5, -1.0, 0.0]])
    x = Tensor(data, requires_grad=True)
    np.testing.assert_allclose(x.var().item(), np.var(data))  # numpy's default, ddof=0
    np.testing.assert_allclose(x.var(ddof=1).item(), np.var(data, ddof=1))
    np.testing.assert_allclose(x.std(axis=1, ddof=1).data, np.std(data, axis=1, ddof=1))
    np.testing.assert_allclose(x.var(dim=1, correction=1).data, np.var(data, axis=1, ddof=1))
    np.testing.assert_allclose(x.std(dim=0, correction=0).data, np.std(data, axis=0))
    gradcheck(lambda t: t.var(axis=1, ddof=1), data)
    gradcheck(lambda t: t.std(dim=0, correction=1), data)
    with pytest.raises(TypeError, match="var: pass ddof= or correction="):
        x.var(ddof=1, correction=1)
    with pytest.raises(ValueError, match="std: ddof=2 leaves no degrees of freedom for 2 values"):
        x.std(axis=0, ddof=2)


def test_cat_and_manual_seed():
    """A habit from micrograd, PyTorch or numpy (issue 10, items 8, 9, 10 and 12)."""
    a, b = Tensor(np.ones((2, 2)), requires_grad=True), Tensor(np.zeros((2, 1)))
    out = ad.cat([a, b], dim=1)
    assert out.shape == (2, 3) and out.data[:, 2].tolist() == [0.0, 0.0]
    out.sum().backward()
    assert a.grad.tolist() == [[1.0, 1.0], [1.0, 1.0]]
    ad.manual_seed(123)
    first = (ad.randn(4).tolist(), ad.rand(2).tolist())

    weights = nn.Linear(3, 2).weight.data.copy()
    ad.manual_seed(123)
    assert (ad.randn(4).tolist(), ad.rand(2).tolist()) == first
    np.testing.assert_array_equal(nn.Linear(3, 2).weight.data, weights)
    ad.manual_seed(124)
    assert ad.randn(4).tolist() != first[0]
    with pytest.raises(TypeError, match="manual_seed: seed must be an int"):
        ad.manual_seed(1.5)


def test_grad_zero_resets_in_place_and_leaves_other_gradients_alone():
    """A habit from micrograd, PyTorch or numpy (issue 10, items 8, 9, 10 and 12)."""
    a = Tensor(np.ones(3), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)
    (a + b).sum().backward()  # the engine may hand a and b one gradient array
    grad_a = a.grad
    assert grad_a.zero_() is grad_a
    assert a.grad.tolist() == [0.0, 0.0, 0.0] and b.grad.tolist() == [1.0, 1.0, 1.0]
    (a * 2).sum().backward()  # accumulates into the zeroed gradient
    assert a.grad.tolist() == [2.0, 2.0, 2.0]
    s = Tensor(2.0, requires_grad=True)
    (s * s).backward()
    assert s.grad.zero_().item() == 0.0 and s.grad.shape == ()
    with pytest.raises(RuntimeError, match="zero_: cannot write into a tensor that requires"):
        a.zero_()


def test_sum_and_softmax_of_a_scalar_along_its_implicit_axis():
    """A habit from micrograd, PyTorch or numpy (issue 10, items 8, 9, 10 and 12)."""
    x = Tensor(3.0, requires_grad=True)
    for axis in (0, -1, (), (0,)):
        assert x.sum(axis=axis).item() == 3.0
    assert x.sum(dim=0, keepdim=True).shape == ()
    assert x.softmax(axis=0).item() == 1.0 and x.softmax(dim=-1).item() == 1.0
    assert x.log_softmax().item() == 0.0
    x.softmax(0).backward()
    assert x.grad.item() == 0.0
    with pytest.raises(ValueError, match="sum: axis 1 is out of range for a 0-d tensor"):
        x.sum(1)
    # On arrays, axis=() reduces nothing, as in numpy.
    np.testing.assert_array_equal(Tensor(np.arange(3.0)).sum(axis=()).data, np.arange(3.0))


def test_transpose_keeps_numpys_meaning_and_says_so():
    """A habit from micrograd, PyTorch or numpy (issue 10, items 8, 9, 10 and 12)."""
    x = Tensor(np.arange(6.0).reshape(2, 3))
    assert x.transpose(0, 1).shape == (2, 3)  # numpy: the identity permutation
    assert x.swapaxes(0, 1).shape == (3, 2)
    doc = Tensor.transpose.__doc__
    assert "swapaxes" in doc and "permute" in doc and "numpy" in doc


# --- item 12: no RuntimeWarning from inside the engine ---------------------------------------


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: Tensor(-1.0).log(), np.nan),
        (lambda: Tensor(0.0).log(), -np.inf),
        (lambda: Tensor(np.array([0.0, -1.0, 1.0])).log(), [-np.inf, np.nan, 0.0]),
        (lambda: Tensor(-4.0).sqrt(), np.nan),
        (lambda: Tensor(np.array([-4.0, 4.0], np.float32)).sqrt(), [np.nan, 2.0]),
        (lambda: Tensor(0.0) ** -1, np.inf),
        (lambda: Tensor(1.0) / 0, np.inf),
        (lambda: Tensor(np.array([1.0, 0.0])) / Tensor(np.array([0.0, 0.0])), [np.inf, np.nan]),
        (lambda: Tensor(-8.0) ** Tensor(1 / 3), np.nan),
        (lambda: ad.log(Tensor([-1.0])), [np.nan]),
    ],
)
def test_nan_and_inf_by_design_come_without_a_warning(make, expected):
    """A habit from micrograd, PyTorch or numpy (issue 10, items 8, 9, 10 and 12)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning fails the test
        out = make()
    np.testing.assert_array_equal(out.data, expected)


def test_max_and_min_with_dim_answer_values_and_indices_as_pytorch():
    """A habit from micrograd, PyTorch or numpy (issue 10, items 8, 9, 10 and 12)."""
    # `_, predicted = out.max(dim=1)` on a batch of two unpacked the two maxima silently.
    out = Tensor(np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]]), requires_grad=True)
    _, predicted = out.max(dim=1)
    assert predicted.tolist() == [1, 0]
    values, indices = out.min(dim=0, keepdim=True)
    assert values.tolist() == [[1.0, 0.0, 2.0]] and indices.tolist() == [[0, 1, 0]]
    assert out.max(dim=1).values.tolist() == [5.0, 7.0]
    out.max(dim=1).values.sum().backward()
    assert out.grad.tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    # numpy's axis= keeps numpy's answer: the values alone.
    assert out.max(axis=1).tolist() == [5.0, 7.0] and out.max(None).item() == 7.0
    # By position the two libraries disagree, and PyTorch's tutorial line would unpack this
    # batch of two into its two maxima without a word: refused, saying which name is which.
    for call in (lambda: out.max(1), lambda: out.min(0), lambda: out.max(1, True)):
        with pytest.raises(TypeError, match=r"name the axis, as axis= .*or dim= "):
            _, predicted = call()
    with pytest.raises(TypeError, match=r"max: dim= takes one axis"):
        out.max(dim=(0, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_against_zeros_matches_numpy_maximum(dtype):
    """Guards a fast path of the lean engine (slots, chain shortcut, raw gradients)."""
    x = np.array([[-np.inf, -1.5, -0.0, 0.0], [np.nan, 2.0, np.inf, 1e-30]], dtype=dtype)
    out = ad.relu(Tensor(x)).data
    expected = np.maximum(x, 0)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, expected)  # NaN stays NaN, -inf becomes 0
    assert not np.signbit(out[0, 2])  # relu(-0.0) is +0, as np.maximum(-0.0, 0) gives
    col = np.asfortranarray(np.linspace(-1, 1, 12, dtype=dtype).reshape(3, 4))
    np.testing.assert_array_equal(ad.relu(Tensor(col)).data, np.maximum(col, 0))
    # Another layout is kept, as np.maximum keeps it (a convolution's channels-last output
    # read by a pooling layer next: a C-ordered copy made the LeNet epoch 35% slower).
    transposed = Tensor(np.ascontiguousarray(col.T)).T
    assert transposed.data.flags.f_contiguous
    assert ad.relu(transposed).data.flags.f_contiguous


def test_relu_keeps_numpy_promotion_for_integers_and_scalars():
    """Guards a fast path of the lean engine (slots, chain shortcut, raw gradients)."""
    assert ad.relu(Tensor(np.array([-2, 3], dtype=np.int32))).data.tolist() == [0, 3]
    assert ad.relu(Tensor(np.array([-2, 3], dtype=np.int32))).dtype == np.int32
    assert ad.relu(Tensor(np.array([True, False]))).dtype == np.maximum(np.array([True]), 0).dtype
    s = Tensor(-2.5, requires_grad=True)
    assert ad.relu(s).item() == 0.0 and ad.relu(-s).item() == 2.5


def test_an_index_array_is_kept_as_given_only_where_no_node_keeps_it():
    """Guards a fast path of the lean engine (slots, chain shortcut, raw gradients)."""
    x = np.arange(12.0).reshape(3, 4)
    idx = np.array([2, 0])
    # A graph keeps its own copy: the caller reusing their array moves no gradient.
    t = Tensor(x, requires_grad=True)
    out = t[idx]
    idx[:] = 1
    out.backward(np.ones(out.shape))
    np.testing.assert_array_equal(t.grad.data, [[1.0] * 4, [0.0] * 4, [1.0] * 4])
    # A constant's rows are taken at once; nothing is left that could read the index later,
    # also under forward mode, whose tangent is taken in the same step.
    idx = np.array([2, 0])
    rows = Tensor(x)[idx]
    idx[:] = 1
    np.testing.assert_array_equal(rows.data, x[[2, 0]])
    assert not rows.requires_grad and rows.op is None
    idx = np.array([2, 0])
    value, tangent = ad.jvp(lambda a: a[idx] * 2.0, (Tensor(x),), (Tensor(np.ones_like(x)),))
    idx[:] = 1
    np.testing.assert_array_equal(value.data, 2 * x[[2, 0]])
    np.testing.assert_array_equal(tangent.data, np.full((2, 4), 2.0))


@pytest.mark.parametrize(
    ("index", "index_dtype"),
    [
        ([2, 0, -1, 2], np.int64),
        ([2, 0, -1, 2], np.int32),
        ([2, 0, 1, 2], np.uint8),
        ([], np.int64),
        ([[0, 1], [2, 2]], np.int64),
        ([[0, 1], [2, 2]], np.uint64),
    ],
)
def test_rows_gathered_by_an_integer_array_match_numpy_indexing(index, index_dtype):
    """getitem with an integer array takes the rows with ndarray.take (faster for a batch):
    the same values, shape, gradient and error as numpy's indexing.

    Guards a fast path of the lean engine (slots, chain shortcut, raw gradients).
    """
    x = np.arange(12.0).reshape(3, 4)
    idx = np.array(index, dtype=index_dtype)
    t = Tensor(x, requires_grad=True)
    out = t[idx]
    np.testing.assert_array_equal(out.data, x[idx])
    assert out.shape == x[idx].shape
    out.backward(np.ones(out.shape))
    expected = np.zeros_like(x)
    np.add.at(expected, idx, 1.0)
    np.testing.assert_array_equal(t.grad.data, expected)
    with pytest.raises(IndexError, match=r"getitem.*index 3 is out of bounds for axis 0"):
        t[np.array([0, 3])]
    with pytest.raises(IndexError):
        t[np.array([-4])]


# --- small semantics that reliability depends on --------------------------------------------


def test_detach_cuts_the_graph():
    x = Tensor(2.0, requires_grad=True)
    y = (x * 3).detach() * x
    y.backward()
    assert x.grad.item() == 6.0  # only the non-detached path


def test_augmented_assignment_is_out_of_place_and_differentiable():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * 3
    before = y
    y += x  # rebinds y to a new node; the old one is untouched
    y *= 2
    assert before.data.tolist() == [3.0, 6.0]
    y.sum().backward()
    assert x.grad.data.tolist() == [8.0, 8.0]
