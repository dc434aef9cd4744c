"""numpy functions on Tensors (autodiff/interop.py): np.exp(t), np.sum(t), np.matmul(a, b)."""

from __future__ import annotations

import numpy as np
import pytest

import autodiff as ad
from autodiff import Tensor
from autodiff.testing import gradcheck


def test_numpy_ufunc_error_is_reported_not_replaced_by_a_constructor_error():
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
    # Was "TypeError: _UFuncNoLoopError.__init__() missing 1 required positional argument".
    with pytest.raises(TypeError, match=r"^sign: .*(sign|bool)"):
        ad.sign(Tensor(np.array([True, False])))


def test_the_advice_for_a_numpy_linalg_function_names_it_where_it_lives():
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    # It said "call np.inv on t.data": numpy has no np.inv.
    t = Tensor(np.eye(2), requires_grad=True)
    with pytest.raises(TypeError, match=r"call np\.linalg\.inv on t\.data"):
        np.linalg.inv(t)
    with pytest.raises(TypeError, match=r"call np\.trace on t\.data"):
        np.trace(t)


def test_numpy_on_a_list_of_tensors_does_not_silently_drop_their_gradients():
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    a = Tensor(2.0, requires_grad=True)
    b = Tensor(3.0, requires_grad=True)
    try:
        loss = np.mean([a * a, b * b]) + b  # a numpy float plus b: a's gradient is lost
    except (TypeError, RuntimeError):
        return  # refused: as good as right
    loss.backward()
    assert a.grad is not None and a.grad.item() == pytest.approx(2.0)


# --- item 9: numpy functions on Tensors ------------------------------------------------------

RNG = np.random.default_rng(7)


A = RNG.uniform(0.5, 2.0, size=(3, 4))


B = RNG.normal(size=(4, 2))


C = RNG.normal(size=(3, 4))


@pytest.mark.parametrize(
    ("name", "fn", "inputs"),
    [
        ("exp", lambda a: np.exp(a), (A,)),
        ("log", lambda a: np.log(a), (A,)),
        ("sqrt", lambda a: np.sqrt(a), (A,)),
        ("tanh", lambda a: np.tanh(a), (C,)),
        ("abs", lambda c: np.abs(c), (C,)),
        ("square", lambda c: np.square(c), (C,)),
        ("reciprocal", lambda a: np.reciprocal(a), (A,)),
        ("negative", lambda c: np.negative(c) + np.positive(c) * 3, (C,)),
        ("add/sub/mul/div", lambda a, c: np.divide(np.multiply(np.add(a, c), c), a) - c, (A, C)),
        ("power", lambda a, c: np.power(a, c) + np.power(a, 3), (A, C)),
        ("array on the left", lambda c: np.subtract(A, c) * np.true_divide(A, c + 5), (C,)),
        ("maximum", lambda c: np.maximum(c, 0) + np.minimum(c, 0.3), (C,)),
        ("matmul", lambda a, b: np.matmul(a, b), (A, B)),
        ("dot", lambda a, b: np.dot(a, b) + np.dot(a[0], b), (A, B)),
        ("outer", lambda a, b: np.outer(a[0], b[:, 1]), (A, B)),
        ("sum", lambda c: np.sum(c) + np.sum(c, axis=0, keepdims=True), (C,)),
        ("mean", lambda c: np.mean(c, axis=1), (C,)),
        ("max/min", lambda c: np.max(c, axis=0) * np.amin(c, axis=1).sum(), (C,)),
        ("var/std", lambda c: np.var(c, axis=0, ddof=1) + np.std(c), (C,)),
        ("reshape/transpose", lambda c: np.transpose(np.reshape(c, (2, 6))) @ np.ones(2), (C,)),
        ("swapaxes/ravel", lambda c: np.ravel(np.swapaxes(c, 0, 1)) * np.arange(12.0), (C,)),
        (
            "concatenate/stack",
            lambda a, c: np.concatenate([a, c], axis=1) * np.stack([c, a]).sum(),
            (A, C),
        ),
        ("where", lambda a, c: np.where(c > 0, a, c * 2), (A, C)),
        ("clip", lambda c: np.clip(c, -0.5, 0.5) * c, (C,)),
        ("squeeze/expand_dims", lambda c: np.squeeze(np.expand_dims(c, (0, 2)), 0), (C,)),
        ("broadcast_to", lambda c: np.broadcast_to(c[0], (3, 4)) * c, (C,)),
        ("reduce", lambda c: np.add.reduce(c) * np.maximum.reduce(c, axis=1).sum(), (C,)),
        # numpy names for autodiff.functions
        (
            "trigonometry",
            lambda c: np.sin(c) * np.cos(c) + np.tan(c) + np.sinh(c) * np.cosh(c),
            (C,),
        ),
        ("log1p/expm1", lambda a: np.log1p(a) + np.expm1(a), (A,)),
        ("cumsum/cumprod", lambda a: np.cumsum(a) + np.ravel(np.cumprod(a, axis=1)), (A,)),
        ("prod", lambda a: np.prod(a, axis=1) + np.prod(a[0]), (A,)),
        ("sort", lambda c: np.sort(c) * np.arange(4.0) + np.sort(c, axis=None).sum(), (C,)),
        ("norm", lambda c: np.linalg.norm(c) + np.linalg.norm(c, 1, axis=1).sum(), (C,)),
        ("flip/roll/tile", lambda c: np.flip(c, 0) * np.roll(c, 1) + np.tile(c[:, :2], 2), (C,)),
        (
            "repeat/tril/triu",
            lambda c: np.repeat(c, 2, axis=0)[::2] + np.tril(c) - np.triu(c, 1),
            (C,),
        ),
        ("split/pad", lambda c: np.split(c, 2, axis=1)[1] * np.pad(c, 1)[1:-1, 1:3], (C,)),
        ("take_along_axis", lambda c: np.take_along_axis(c, np.array([[0], [3], [1]]), 1), (C,)),
        ("einsum", lambda a, b: np.einsum("ij,jk->ik", a, b), (A, B)),
        ("remainder", lambda a: np.remainder(a, 0.7) + np.floor_divide(a, 0.7) * a, (A,)),
    ],
)
def test_numpy_functions_on_tensors_are_differentiable(name, fn, inputs):
    """A habit from micrograd, PyTorch or numpy (issue 10, items 8, 9, 10 and 12)."""
    tensors = [Tensor(x, requires_grad=True) for x in inputs]
    out = fn(*tensors)
    assert isinstance(out, Tensor) and out.requires_grad, name
    np.testing.assert_allclose(out.data, fn(*inputs), rtol=1e-12, err_msg=name)  # = numpy's
    assert gradcheck(fn, *inputs)


def test_numpy_calls_keep_float32_and_put_arrays_on_either_side():
    """A habit from micrograd, PyTorch or numpy (issue 10, items 8, 9, 10 and 12)."""
    t = Tensor(np.array([-1.0, 2.0], np.float32), requires_grad=True)
    assert np.exp(t).dtype == np.float32 and np.maximum(t, 0).dtype == np.float32
    assert np.multiply(t, 0.5).dtype == np.float32
    left = np.ones(2, np.float32) + t
    assert isinstance(left, Tensor) and left.requires_grad and left.tolist() == [0.0, 3.0]
    assert isinstance(np.float32(2) * t, Tensor)
    np.maximum(t, 0).sum().backward()
    assert t.grad.tolist() == [0.0, 1.0]


def test_numpy_answers_without_a_gradient_are_constants_or_plain_values():
    """A habit from micrograd, PyTorch or numpy (issue 10, items 8, 9, 10 and 12)."""
    t = Tensor(np.array([[1.0, np.nan], [3.0, -2.0]]), requires_grad=True)
    nan = np.isnan(t)
    assert isinstance(nan, Tensor) and not nan.requires_grad
    assert nan.tolist() == [[False, True], [False, False]]
    assert np.greater(t, 0).tolist() == [[True, False], [True, False]]
    assert np.sign(t).data[1, 1] == -1.0 and not np.floor(t).requires_grad
    assert np.shape(t) == (2, 2) and np.ndim(t) == 2 and np.size(t) == 4
    assert np.argmax(Tensor([1.0, 5.0, 2.0])).item() == 1
    assert np.allclose(t, t.data, equal_nan=True) is True
    assert bool(np.any(np.isnan(t))) and not bool(np.all(np.isfinite(t)))
    assert [i.tolist() for i in np.where(Tensor([0.0, 2.0, 3.0]) > 1)] == [[1, 2]]
    np.testing.assert_allclose(Tensor([1.0, 2.0]), [1.0, 2.0])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda t: np.arcsin(t), r"numpy\.arcsin is not supported .* no differentiable arcsin"),
        (lambda t: np.log2(t), r"numpy\.log2 .* write t\.log\(\) / np\.log\(2\)"),
        (lambda t: np.linalg.norm(t.reshape(1, 2), 2), r"numpy\.linalg\.norm: ord=2 on shape"),
        (lambda t: np.diff(t), r"numpy\.diff is not supported"),
        (lambda t: np.sum(t, dtype=np.float32), "numpy.sum: option dtype is not supported"),
        (lambda t: np.exp(t, out=np.empty(2)), "numpy.exp: out= cannot receive"),
        (lambda t: np.add.accumulate(t), r"numpy\.add\.accumulate is not supported"),
        (lambda t: np.dot(t.reshape(1, 1, 2), t.reshape(2, 1)), "numpy.dot: .* autodiff.matmul"),
        (lambda t: np.clip(t, Tensor(0.0, requires_grad=True), 1), "numpy.clip: a bound"),
    ],
)
def test_unsupported_numpy_calls_say_what_to_use(call, message):
    """A habit from micrograd, PyTorch or numpy (issue 10, items 8, 9, 10 and 12)."""
    t = Tensor(np.array([0.5, 2.0]), requires_grad=True)
    with pytest.raises(TypeError, match=message):
        call(t)


def test_in_place_numpy_update_with_a_tensor_is_refused_clearly():
    """A habit from micrograd, PyTorch or numpy (issue 10, items 8, 9, 10 and 12)."""
    a = np.ones(2)
    with pytest.raises(TypeError, match=r"write `x = x \+ t` rather than `x \+= t`"):
        a += Tensor([1.0, 2.0])
    assert a.tolist() == [1.0, 1.0]  # untouched


def test_second_derivatives_through_numpy_calls():
    """A habit from micrograd, PyTorch or numpy (issue 10, items 8, 9, 10 and 12)."""
    from autodiff.testing import gradgradcheck

    def fn(x):
        return (
            np.exp(x) * np.sum(x, axis=1, keepdims=True)
            + np.maximum(x, 1.0) ** 2
            + np.matmul(x, np.transpose(x)).sum()
            + np.log(x).var(ddof=1)
        )

    assert gradgradcheck(fn, A)
