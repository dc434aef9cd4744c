"""The engine's semantics: reuse, accumulation, deep graphs, grad modes, higher orders."""

from __future__ import annotations

import copy
import gc
import operator
import pickle
import threading
import warnings
import weakref
from pathlib import Path

import numpy as np
import pytest

import autodiff as ad
import nn
from autodiff import Tensor, grad, no_grad, tracked
from autodiff.testing import gradcheck


def test_micrograd_style_scalar_expression():
    a = Tensor(2.0, requires_grad=True)
    b = a * -3 + a**2
    b.backward()
    assert b.item() == -2.0
    assert a.grad.item() == -3 + 2 * 2.0


def test_micrograd_readme_expression_matches_closed_form():
    # The expression from micrograd's README; the reference values are PyTorch's (float64).
    a = Tensor(-4.0, requires_grad=True)
    b = Tensor(2.0, requires_grad=True)
    c = a + b
    d = a * b + b**3
    c = c + c + 1
    c = c + 1 + c + (-a)
    d = d + d * 2 + (b + a).relu()
    d = d + 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g = g + 10.0 / f
    g.backward()
    assert g.item() == pytest.approx(24.70408163265306, abs=1e-12)
    assert a.grad.item() == pytest.approx(138.83381924198252, abs=1e-10)
    assert b.grad.item() == pytest.approx(645.5772594752186, abs=1e-10)


def test_value_used_twice_sums_both_paths():
    x = Tensor(3.0, requires_grad=True)
    (x * x).backward()
    assert x.grad.item() == 6.0


def test_diamond_graph():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    a = x.exp()
    b = x * 2
    y = (a * b).sum()  # d/dx (2x e^x) = 2e^x + 2x e^x
    y.backward()
    np.testing.assert_allclose(x.grad.data, 2 * np.exp(x.data) * (1 + x.data))


def test_leaf_gradients_accumulate_across_calls_and_zero_grad_resets():
    x = Tensor(2.0, requires_grad=True)
    (x * 3).backward()
    (x * 3).backward()
    assert x.grad.item() == 6.0
    x.zero_grad()
    assert x.grad is None
    (x * 3).backward()
    assert x.grad.item() == 3.0


def test_backward_twice_on_same_graph_accumulates_the_same_amount():
    x = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    y = (x * x).sum()
    y.backward()
    first = x.grad.data.copy()
    y.backward()
    np.testing.assert_array_equal(x.grad.data, 2 * first)


def test_intermediate_gradients_are_never_stale():
    x = Tensor(1.0, requires_grad=True)
    h = x * 2
    (h * 5).backward()
    assert h.grad.item() == 5.0
    (h * 7).backward()  # a new graph over the same intermediate: its grad is replaced
    assert h.grad.item() == 7.0
    assert x.grad.item() == 2 * 5 + 2 * 7


def test_gradient_of_x_does_not_alias_gradient_of_y():
    x = Tensor(np.ones(2), requires_grad=True)
    y = Tensor(np.ones(2), requires_grad=True)
    (x + y).sum().backward()
    (x * 1).sum().backward()  # accumulates into x only
    np.testing.assert_array_equal(x.grad.data, [2, 2])
    np.testing.assert_array_equal(y.grad.data, [1, 1])


def test_user_seed_is_copied_not_aliased():
    x = Tensor(np.ones(3), requires_grad=True)
    seed = np.array([1.0, 2.0, 3.0])
    (x * 1).backward(seed)
    seed[:] = 0
    np.testing.assert_array_equal(x.grad.data, [1, 2, 3])


@pytest.mark.slow
def test_million_op_chain_differentiates_without_recursion_and_is_freed():
    x = Tensor(1.0, requires_grad=True)
    y = x
    for _ in range(1_000_000):
        y = y + 1e-6
    y.backward()
    assert x.grad.item() == 1.0
    assert y.item() == pytest.approx(2.0)
    middle = weakref.ref(y._parents[0]._parents[0])
    del y
    gc.collect()
    assert middle() is None


def test_graph_memory_is_released_without_the_cycle_collector():
    gc.disable()
    try:
        x = Tensor(np.ones(1000), requires_grad=True)
        y = (x * 2).exp().sum()
        y.backward()
        inner = weakref.ref(y._parents[0])
        del y
        assert inner() is None  # reference counting alone frees it: no cycles
    finally:
        gc.enable()


def test_no_grad_context_and_decorator():
    x = Tensor(1.0, requires_grad=True)
    with no_grad():
        y = x * 2
    assert not y.requires_grad and y.is_leaf

    @no_grad()
    def double(t):
        return t * 2

    assert not double(x).requires_grad
    assert (x * 2).requires_grad
    assert ad.is_grad_enabled()


def test_no_grad_is_per_thread():
    x = Tensor(1.0, requires_grad=True)
    seen = {}
    inside = threading.Event()
    release = threading.Event()

    def other():
        with no_grad():
            inside.set()
            release.wait(5)
            seen["other"] = (x * 2).requires_grad

    thread = threading.Thread(target=other)
    thread.start()
    inside.wait(5)
    seen["main"] = (x * 2).requires_grad
    release.set()
    thread.join()
    assert seen == {"main": True, "other": False}


def test_detach_and_requires_grad_():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    np.testing.assert_array_equal(d.data, [2, 4])
    z = Tensor(np.ones(2)).requires_grad_()
    assert z.requires_grad
    with pytest.raises(TypeError, match="floating-point"):
        Tensor(np.array([1, 2])).requires_grad_()


def test_grad_function_does_not_touch_dot_grad():
    x = Tensor(2.0, requires_grad=True)
    y = Tensor(5.0, requires_grad=True)
    gx, gy = grad(x * y + x, [x, y])
    assert gx.item() == 6.0 and gy.item() == 2.0
    assert x.grad is None and y.grad is None


def test_grad_of_unused_input_is_zero():
    x = Tensor(np.ones(3), requires_grad=True)
    y = Tensor(np.ones(2), requires_grad=True)
    gx, gy = grad((x * 2).sum(), [x, y])
    np.testing.assert_array_equal(gx.data, [2, 2, 2])
    np.testing.assert_array_equal(gy.data, [0, 0])


def test_grad_with_several_outputs_and_grad_outputs():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (g,) = grad([x * 2, x * x], [x], grad_outputs=[np.ones(2), np.array([1.0, 10.0])])
    np.testing.assert_allclose(g.data, [2 + 2 * 1, 2 + 10 * 2 * 2])


def test_second_and_third_derivatives_closed_form():
    x = Tensor(0.7, requires_grad=True)
    y = (x * 2).tanh()
    (d1,) = grad(y, [x], create_graph=True)
    (d2,) = grad(d1, [x], create_graph=True)
    (d3,) = grad(d2, [x])
    t = np.tanh(1.4)
    assert d1.item() == pytest.approx(2 * (1 - t**2))
    assert d2.item() == pytest.approx(-8 * t * (1 - t**2))
    assert d3.item() == pytest.approx(-16 * (1 - t**2) * (1 - 3 * t**2))
    (s1,) = grad((x * 2).sin(), [x], create_graph=True)
    (s2,) = grad(s1, [x], create_graph=True)
    (s3,) = grad(s2, [x])
    assert [s1.item(), s2.item(), s3.item()] == pytest.approx(
        [2 * np.cos(1.4), -4 * np.sin(1.4), -8 * np.cos(1.4)]
    )


def test_hessian_vector_product():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3))
    a = a + a.T
    x = Tensor(rng.normal(size=3), requires_grad=True)
    v = rng.normal(size=3)
    f = 0.5 * (x @ (Tensor(a) @ x)) + (x**3).sum()
    (g,) = grad(f, [x], create_graph=True)
    (hv,) = grad((g * v).sum(), [x])
    hessian = a + np.diag(6 * x.data)
    np.testing.assert_allclose(hv.data, hessian @ v, rtol=1e-10)


def test_backward_with_create_graph_gives_differentiable_leaf_grad():
    x = Tensor(3.0, requires_grad=True)
    (x**3).backward(create_graph=True)
    assert x.grad.item() == 27.0 and x.grad.requires_grad
    (g2,) = grad(x.grad, [x])
    assert g2.item() == 18.0


def test_float32_stays_float32_end_to_end():
    rng = np.random.default_rng(0)
    x = Tensor(rng.normal(size=(4, 3)).astype(np.float32))
    w = Tensor(rng.normal(size=(2, 3)).astype(np.float32), requires_grad=True)
    b = Tensor(np.zeros(2, np.float32), requires_grad=True)
    loss = ad.softmax_cross_entropy(ad.linear(x, w, b).relu() * 0.5 + 1, np.array([0, 1, 1, 0]))
    loss.backward()
    assert loss.dtype == np.float32
    assert w.grad.dtype == np.float32 and b.grad.dtype == np.float32


def test_mixed_precision_promotes_like_numpy_and_grads_keep_input_dtype():
    a = Tensor(np.ones(2, np.float32), requires_grad=True)
    b = Tensor(np.ones(2, np.float64), requires_grad=True)
    c = (a * b).sum()
    assert c.dtype == np.float64
    c.backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64


def test_python_numbers_and_lists_are_float64_integers_stay_constants():
    assert Tensor(3).dtype == np.float64
    assert Tensor([1, 2]).dtype == np.float64
    assert Tensor(np.array([1, 2])).dtype == np.int64
    assert Tensor([True, False]).dtype == np.bool_
    idx = Tensor(np.array([1, 2]))
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * idx).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [1, 2])


def test_numpy_array_on_the_left_gives_a_tensor():
    t = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    for result in (
        np.ones(3) + t,
        np.ones(3) * t,
        np.ones(3) - t,
        np.ones(3) / t,
        np.ones((2, 3)) @ t,
    ):
        assert isinstance(result, Tensor)
        assert result.requires_grad


def test_comparisons_return_boolean_tensors_without_grad():
    t = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    for result in (t > 2, t >= 2, t < 2, t <= 2, t == 2, t != 2):
        assert isinstance(result, Tensor)
        assert result.dtype == np.bool_ and not result.requires_grad
    np.testing.assert_array_equal((t > 1.5).data, [False, True, True])
    assert {t: 1}[t] == 1  # still hashable by identity


def test_tensor_exponent_and_reflected_power():
    a = Tensor(2.0, requires_grad=True)
    b = Tensor(3.0, requires_grad=True)
    (a**b).backward()
    assert a.grad.item() == pytest.approx(12.0)
    assert b.grad.item() == pytest.approx(8 * np.log(2))
    c = Tensor(2.0, requires_grad=True)
    (3.0**c).backward()
    assert c.grad.item() == pytest.approx(9 * np.log(3))


def test_attributes_and_repr():
    t = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True, name="w")
    assert t.shape == (2, 2) and t.ndim == 2 and t.size == 4 and t.dtype == np.float64
    assert t.is_leaf and len(t) == 2
    np.testing.assert_array_equal(t.T.data, [[1, 3], [2, 4]])
    np.testing.assert_array_equal(np.asarray(t), t.data)
    assert np.shares_memory(t.numpy(), t.data) and isinstance(t.numpy(), np.ndarray)
    assert Tensor(5.0).item() == 5.0
    assert "requires_grad=True" in repr(t) and "name='w'" in repr(t)
    assert "op=mul" in repr(t * 2)
    t.sum().backward()
    np.testing.assert_array_equal(np.asarray(t.grad), np.ones((2, 2)))


def test_reshape_transpose_flatten_forms():
    t = Tensor(np.arange(6.0))
    assert t.reshape(2, -1).shape == (2, 3)
    assert t.reshape((2, -1)).shape == (2, 3)
    m = Tensor(np.zeros((2, 3, 4)))
    assert m.transpose(1, 0, 2).shape == (3, 2, 4)
    assert m.transpose((2, 0, 1)).shape == (4, 2, 3)
    assert m.T.shape == (4, 3, 2)
    assert m.flatten().shape == (24,)


def test_indexing_with_repeated_indices_accumulates():
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    x[np.array([0, 0, 2, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad.data, [3, 0, 1])


def test_constructors_are_reproducible_with_seed_or_generator():
    np.testing.assert_array_equal(ad.randn(3, rng=1).data, ad.randn(3, rng=1).data)
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(ad.rand(2, 2, rng=g1).data, ad.rand((2, 2), rng=g2).data)
    assert ad.zeros(2, 3).shape == (2, 3) and ad.ones(4).data.sum() == 4
    assert ad.full((2,), 7.0).data.tolist() == [7.0, 7.0]
    assert ad.arange(3).data.tolist() == [0.0, 1.0, 2.0]
    assert ad.randn(2, dtype=np.float32).dtype == np.float32
    assert ad.zeros(2, requires_grad=True).requires_grad


def test_stable_functions_at_large_magnitude_without_warnings():
    for dtype in (np.float32, np.float64):
        x = Tensor(
            np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], dtype=dtype), requires_grad=True
        )
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            for fn in (
                lambda t: t.sigmoid(),
                lambda t: t.softmax(),
                lambda t: t.log_softmax(),
                lambda t: t.logsumexp(axis=1),
            ):
                x.zero_grad()
                out = fn(x)
                weights = np.arange(out.size, dtype=dtype).reshape(out.shape)
                (out * weights).sum().backward()
                assert np.all(np.isfinite(out.data)), out
                assert np.all(np.isfinite(x.grad.data))
                assert out.dtype == dtype and x.grad.dtype == dtype
    np.testing.assert_allclose(Tensor(np.array([1e4, 0.0, -1e4])).softmax().data, [1, 0, 0])
    assert Tensor(np.array([1e4, 1e4])).logsumexp().item() == pytest.approx(1e4 + np.log(2))


def test_in_place_write_after_use_is_detected_at_backward():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    c = Tensor(np.array([3.0, 4.0]))
    y = (x * c).sum()
    c[0] = 10.0  # mul saved c: its gradient for x would now be wrong
    with pytest.raises(RuntimeError, match="mul: a tensor this op saved"):
        y.backward()


def test_optimizer_style_update_after_forward_is_detected():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    loss = (w * w).sum()
    with no_grad():
        w.data -= 0.1
        w._bump_version()
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_setitem_on_a_tensor_in_a_graph_is_refused():
    x = Tensor(np.zeros(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="setitem"):
        x[0] = 1.0
    with no_grad():
        x[0] = 1.0
    assert x.data[0] == 1.0


def test_detect_anomaly_names_op_and_line():
    x = Tensor(np.array([0.0, 1.0]), requires_grad=True)
    with (
        ad.detect_anomaly(),
        pytest.raises(FloatingPointError) as info,
        np.errstate(divide="ignore"),
    ):
        x.log()
    message = str(info.value)
    assert "log forward" in message and "(2,)" in message and "x.log()" in message


def test_detect_anomaly_catches_nan_in_backward():
    x = Tensor(np.array([0.0, 4.0]), requires_grad=True)
    with ad.detect_anomaly():
        y = x.sqrt().sum()  # finite forward, infinite derivative at 0
        with (
            pytest.raises(FloatingPointError, match="pow backward"),
            np.errstate(divide="ignore", invalid="ignore"),
        ):
            y.backward()


def test_clip_where_maximum_minimum_values():
    x = Tensor(np.array([-2.0, 0.5, 3.0]), requires_grad=True)
    y = x.clip(-1, 1)
    np.testing.assert_array_equal(y.data, [-1, 0.5, 1])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0, 1, 0])
    np.testing.assert_array_equal(ad.maximum(x, 0.0).data, [0, 0.5, 3])
    np.testing.assert_array_equal(ad.minimum(x, 0.0).data, [-2, 0, 0])


def test_astype_to_integers_is_a_constant_and_strings_are_refused():
    x = Tensor(np.array([1.7, -2.2]), requires_grad=True)
    rounded = x.astype(np.int64)
    assert rounded.dtype == np.int64 and not rounded.requires_grad
    assert rounded.data.tolist() == [1, -2]
    assert x.astype(np.float32).requires_grad
    with pytest.raises(TypeError, match="astype: unsupported dtype"):
        x.astype("U3")


# --- issue 9: each silently wrong gradient, pinned with its exact expected value -------------


def test_bce_with_logits_at_zero_has_gradient_sigmoid_minus_target():

    logits = Tensor(np.zeros(3), requires_grad=True)
    target = np.array([0.0, 1.0, 0.3])
    nn.F.binary_cross_entropy_with_logits(logits, target, reduction="sum").backward()
    np.testing.assert_allclose(logits.grad.data, 0.5 - target, atol=1e-15)
    big = Tensor(np.array([-800.0, 800.0]), requires_grad=True)
    loss = nn.F.binary_cross_entropy_with_logits(big, np.array([1.0, 0.0]), reduction="none")
    np.testing.assert_allclose(loss.data, [800.0, 800.0])
    loss.sum().backward()
    np.testing.assert_allclose(big.grad.data, [-1.0, 1.0])


@pytest.mark.parametrize(
    "alias", ["detach", "view_of_constant", "reshape_of_constant", "same_array", "setitem_on_view"]
)
def test_writes_through_shared_memory_are_caught(alias):
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    base = np.array([2.0, 3.0, 4.0, 5.0])
    if alias == "detach":
        saved = x
        y = (x * x).sum()
        writer = x.detach()
    elif alias in ("view_of_constant", "setitem_on_view"):
        c = Tensor(base)
        saved = c[:2]
        y = (x * saved).sum()
        writer = c if alias == "view_of_constant" else c[0:1]
    elif alias == "reshape_of_constant":
        c = Tensor(base.reshape(2, 2))
        saved = c.reshape(4)[:2]
        y = (x * saved).sum()
        writer = c
    else:
        saved = Tensor(base[:2])  # a view of the user's array, as Tensor's own copy
        y = (x * saved).sum()
        writer = Tensor(base)
    writer[0] = 100.0
    if alias == "same_array":
        y.backward()  # Tensor(array) copies, as torch.tensor does: the write is harmless
        assert x.grad.tolist() == [2.0, 3.0]
        return
    with pytest.raises(RuntimeError, match="^mul: a tensor this op saved"):
        y.backward()


WRITES_THROUGH_DATA = {
    "setitem": lambda t: t.data.__setitem__(0, 100.0),
    "iadd": lambda t: setattr(t, "data", _iadd(t.data)),
    "ufunc_out": lambda t: np.multiply(t.data, 50.0, out=t.data),
    "ufunc_at": lambda t: np.add.at(t.data, [0, 0], 1.0),
    "copyto": lambda t: np.copyto(t.data, [7.0, 8.0]),
    "fill": lambda t: t.data.fill(3.0),
    "view_setitem": lambda t: t.data[:1].__setitem__(0, 9.0),
    "transpose_view": lambda t: t.data.T.__setitem__(0, 9.0),
    "numpy_method": lambda t: t.numpy().__setitem__(0, 9.0),
    "rebind": lambda t: setattr(t, "data", np.array([5.0, 6.0])),
    "rebind_number": lambda t: setattr(t, "data", 4.0),
    "dot_out": lambda t: np.dot(np.eye(2), np.array([1.0, 1.0]), t.data),
    "sum_out": lambda t: np.sum(np.ones((3, 2)), axis=0, out=t.data),
}


def _iadd(array):
    array += 1.0
    return array


@pytest.mark.parametrize("how", sorted(WRITES_THROUGH_DATA))
def test_numpy_writes_through_data_are_caught(how):
    """Every numpy way of writing into `t.data` (or rebinding it) is seen by backward."""
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    WRITES_THROUGH_DATA[how](x)
    with pytest.raises(RuntimeError, match="^mul: a tensor this op saved"):
        y.backward()
    # Without a pending graph the same write is an ordinary update, used by the next graph.
    z = (x * x).sum()
    z.backward()
    np.testing.assert_allclose(x.grad.data, 2 * np.asarray(x.data))


UNRECORDABLE_WRITES = {
    "flat": lambda t: t.data.flat.__setitem__(0, 9.0),
    "generator_shuffle": lambda t: np.random.default_rng(0).shuffle(t.data),
    "generator_out": lambda t: np.random.default_rng(0).random(out=t.data),
    "asarray_of_data": lambda t: np.asarray(t.data).__setitem__(0, 9.0),
    "asarray_of_tensor": lambda t: np.asarray(t).__setitem__(0, 9.0),
    "reshape_function_view": lambda t: np.reshape(t.data, (2, 1)).__setitem__((0, 0), 9.0),
    "split_view": lambda t: np.split(t.data, 2)[0].__setitem__(0, 9.0),
    "flip_view": lambda t: np.flip(t.data).__setitem__(0, 9.0),
    "broadcast_arrays": lambda t: np.broadcast_arrays(t.data, 1.0)[0].__setitem__(0, 9.0),
}


@pytest.mark.parametrize("how", sorted(UNRECORDABLE_WRITES))
def test_numpy_writes_that_cannot_be_recorded_fail_loudly(how):
    """Ways numpy writes without telling the view (iterators, generators, plain views made by
    numpy functions) find the memory read-only: an error at once, never a silent change."""
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    with pytest.raises(ValueError, match="read-only|writable|WRITEABLE"):
        UNRECORDABLE_WRITES[how](x)
    y.backward()
    assert x.data.tolist() == [1.0, 2.0] and x.grad.tolist() == [2.0, 4.0]


def test_copying_from_data_into_another_array_is_a_read():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    destination = np.zeros(2)
    np.copyto(destination, x.data)
    np.copyto(src=x.data, dst=destination)
    y.backward()  # x was only read: no refusal
    assert destination.tolist() == [1.0, 2.0] and x.grad.tolist() == [2.0, 4.0]


def test_reading_data_gives_plain_arrays_and_asarray_is_read_only():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    snapshot = x.data.copy()
    for result in (
        x.data * 2,
        x.data.sum(),
        np.exp(x.data),
        x.data.copy(),
        np.stack([x.data]),
        x.data.astype(np.float32),
    ):
        assert type(result) in (np.ndarray, np.float64)
    assert repr(x.data) == "array([1., 2.])" and type(snapshot) is np.ndarray
    with pytest.raises(ValueError, match="read-only"):
        np.asarray(x)[0] = 5.0
    y.backward()  # nothing above wrote into x
    assert x.grad.tolist() == [2.0, 4.0]
    # micrograd's update, on a scalar and on an array: .data stays numbers, never a Tensor
    for shape in ((), (2,)):
        p = Tensor(np.ones(shape), requires_grad=True)
        (p * 3.0).sum().backward()
        p.data += -0.1 * p.grad
        assert type(p.data) in (np.float64, tracked.DataArray) and np.allclose(p.data, 0.7)
        p.data -= 0.1 * p.grad.data
        assert np.allclose(p.data, 0.4)


def test_setitem_of_a_tensor_requiring_grad_is_recorded():
    w = Tensor(2.0, requires_grad=True)
    buf = Tensor(np.zeros(3))
    buf[1] = w
    (buf * buf).sum().backward()
    assert w.grad.item() == 4.0
    assert buf.op == "setitem" and buf.data.tolist() == [0.0, 2.0, 0.0]
    # Writing into a computed tensor: the overwritten place gets no gradient, the rest does.
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    v = Tensor(np.array([5.0]), requires_grad=True)
    y = x * 2
    y[0:1] = v
    (y * np.array([1.0, 10.0, 100.0])).sum().backward()
    assert x.grad.data.tolist() == [0.0, 20.0, 200.0]
    assert v.grad.data.tolist() == [1.0]


def test_setitem_recorded_after_use_is_refused_for_the_earlier_user():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * 3
    z = (y * y).sum()  # saved y
    y[0] = Tensor(7.0, requires_grad=True)
    with pytest.raises(RuntimeError, match="^mul: a tensor this op saved"):
        z.backward()


def test_grad_of_an_input_listed_twice_is_given_at_both_places():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    g1, g2 = grad((x * x).sum(), [x, x])
    assert g1.data.tolist() == [2.0, 4.0] and g2.data.tolist() == [2.0, 4.0]
    assert not np.shares_memory(g1.data, g2.data)


@pytest.mark.parametrize(
    "expr,expected",
    [
        (lambda x: x**0, [0.0, 0.0]),
        (lambda x: x ** Tensor(np.array([0.0, 1.0])), [0.0, 1.0]),
        (lambda x: x ** Tensor(np.array([2.0, 0.0])), [0.0, 0.0]),
    ],
)
def test_powers_at_zero_have_finite_gradients(expr, expected):
    x = Tensor(np.zeros(2), requires_grad=True)
    expr(x).sum().backward()
    assert x.grad.data.tolist() == expected


def test_power_gradient_in_the_exponent_at_base_zero_matches_pytorch():
    y = Tensor(np.array([-1.0, 0.0, 2.0]), requires_grad=True)
    with np.errstate(divide="ignore"):
        (Tensor(np.zeros(3)) ** y).sum().backward()
    assert y.grad.data.tolist() == [-np.inf, 0.0, 0.0]


def test_std_of_a_constant_row_has_zero_gradient_and_spreads_no_nan():
    x = Tensor(np.array([[1.0, 1.0, 1.0], [1.0, 2.0, 4.0]]), requires_grad=True)
    s = x.std(axis=1)
    s.sum().backward()
    assert x.grad.data[0].tolist() == [0.0, 0.0, 0.0]
    assert np.all(np.isfinite(x.grad.data))
    centered = x.data[1] - x.data[1].mean()
    np.testing.assert_allclose(x.grad.data[1], centered / (3 * s.data[1]))
    one = Tensor(np.ones((2, 1)), requires_grad=True)
    one.std(axis=1).sum().backward()
    assert one.grad.data.tolist() == [[0.0], [0.0]]


@pytest.mark.parametrize(
    "fn", [ad.sigmoid, ad.softmax, ad.log_softmax, ad.logsumexp, ad.exp, ad.tanh, ad.log, ad.sqrt]
)
def test_unsigned_inputs_compute_in_floating_point(fn):
    pixels = np.array([1, 2, 200], np.uint8)
    with np.errstate(divide="ignore"):
        got = fn(Tensor(pixels))
        expected = fn(Tensor(pixels.astype(np.float64)))
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got.data, expected.data)


def test_arrays_kept_for_backward_are_copied_at_record_time():
    x = Tensor(np.arange(4.0), requires_grad=True)
    index = np.array([0, 1])
    mask = np.array([True, False, True, False])
    labels = np.array([0, 1])
    y = (
        x[index].sum()
        + ad.where(mask, x, 0.0).sum()
        + ad.softmax_cross_entropy(x.reshape(2, 2), labels)
    )
    index[:] = 3
    mask[:] = False
    labels[:] = 0
    y.backward()
    x2 = Tensor(np.arange(4.0), requires_grad=True)
    (
        x2[np.array([0, 1])].sum()
        + ad.where(np.array([True, False, True, False]), x2, 0.0).sum()
        + ad.softmax_cross_entropy(x2.reshape(2, 2), np.array([0, 1]))
    ).backward()
    np.testing.assert_array_equal(x.grad.data, x2.grad.data)


def test_gradients_handed_out_never_share_memory():
    a = Tensor(np.ones(3), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)
    y = a + b
    z = y.reshape(3)
    z.sum().backward()
    grads = [a.grad.data, b.grad.data, y.grad.data, z.grad.data]
    for i, g in enumerate(grads):
        for h in grads[i + 1 :]:
            assert not np.shares_memory(g, h)
    a.grad.data[0] = 99.0
    assert b.grad.data[0] == 1.0


def test_maximum_minimum_keep_float32_and_split_ties_like_max():
    x = Tensor(np.array([-1.0, 0.0, 2.0], np.float32), requires_grad=True)
    m = ad.maximum(x, 0)
    assert m.dtype == np.float32 and ad.minimum(x, 0.5).dtype == np.float32
    m.sum().backward()
    assert x.grad.data.tolist() == [0.0, 0.5, 1.0]
    a = Tensor(np.array([1.0, 3.0]), requires_grad=True)
    b = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    ad.minimum(a, b).sum().backward()
    assert a.grad.data.tolist() == [0.5, 0.0] and b.grad.data.tolist() == [0.5, 1.0]
    t = Tensor(np.array([2.0, 2.0]), requires_grad=True)
    t.max().backward()
    assert t.grad.data.tolist() == [0.5, 0.5]


def test_set_grad_enabled_as_a_plain_call_switches_this_thread():
    try:
        ad.set_grad_enabled(False)
        assert not ad.is_grad_enabled()
        seen = []
        worker = threading.Thread(target=lambda: seen.append(ad.is_grad_enabled()))
        worker.start()
        worker.join()
        assert seen == [True]  # another thread keeps its own mode
    finally:
        ad.set_grad_enabled(True)
    assert ad.is_grad_enabled()
    with ad.set_grad_enabled(False):
        assert not ad.is_grad_enabled()
    assert ad.is_grad_enabled()

    @ad.set_grad_enabled(False)
    def off():
        return ad.is_grad_enabled()

    assert ad.is_grad_enabled() and off() is False and ad.is_grad_enabled()


def test_no_grad_decorator_shared_by_threads_restores_each_threads_mode():
    # Both threads run the same decorated function at the same time (the barrier), then
    # leave it in either order: each must get its own mode back, never the other's.
    barrier = threading.Barrier(2, timeout=10)
    errors = []

    @no_grad()
    def inside():
        barrier.wait()
        return ad.is_grad_enabled()

    def run(mode):
        try:
            with ad.set_grad_enabled(mode):
                for _ in range(50):
                    assert inside() is False
                    assert ad.is_grad_enabled() is mode
        except Exception as exc:
            errors.append(exc)
            barrier.abort()  # release the other thread instead of leaving it waiting

    threads = [threading.Thread(target=run, args=(mode,)) for mode in (True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_empty_list_index_selects_nothing_and_numpy_weights_are_constants():
    x = Tensor(np.arange(3.0), requires_grad=True)
    empty = x[[]]
    assert empty.shape == (0,)
    (empty.sum() + x.sum()).backward()
    assert x.grad.data.tolist() == [1.0, 1.0, 1.0]
    w = np.ones((2, 3))
    out = ad.linear(x, w, np.array([1.0, 2.0]))
    assert out.data.tolist() == [4.0, 5.0]
    out.sum().backward()


def test_clip_with_array_bounds():
    x = Tensor(np.array([-2.0, 0.5, 3.0]), requires_grad=True)
    y = x.clip(np.array([-1.0, 1.0, 0.0]), Tensor(np.array([1.0, 2.0, 2.0])))
    assert y.data.tolist() == [-1.0, 1.0, 2.0]
    y.sum().backward()
    assert x.grad.data.tolist() == [0.0, 0.0, 0.0]


def test_anomaly_names_user_code_in_a_folder_called_nn(tmp_path):
    folder = tmp_path / "myproject" / "nn"
    folder.mkdir(parents=True)
    (folder / "model.py").write_text("def build(x):\n    return x.log()\n")
    import importlib.util

    spec = importlib.util.spec_from_file_location("user_model", folder / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x = Tensor(np.array([0.0]), requires_grad=True)
    with (
        ad.detect_anomaly(),
        np.errstate(divide="ignore"),
        pytest.raises(FloatingPointError) as info,
    ):
        module.build(x)
    assert str(folder / "model.py") in str(info.value)


def test_setitem_with_a_repeated_index_sends_gradient_only_to_the_write_that_lands():
    """buf[[1, 1, 2]] = w keeps one of w[0], w[1] in buf[1] (numpy's choice): the other has no
    effect on the result, so its gradient is 0, as central differences say."""
    index = np.array([1, 1, 2])

    def f(w):
        buf = Tensor(np.zeros(4))
        buf[index] = w
        return buf * Tensor(np.array([1.0, 10.0, 100.0, 1000.0]))

    w = np.array([1.0, 2.0, 3.0])
    assert gradcheck(f, w)
    t = Tensor(w, requires_grad=True)
    f(t).sum().backward()
    kept = np.zeros(4)
    kept[index] = [0, 1, 2]  # which of w's entries numpy keeps in buf[1]
    expected = np.zeros(3)
    expected[int(kept[1])] = 10.0
    expected[2] = 100.0
    np.testing.assert_array_equal(t.grad.data, expected)


def test_leaves_and_models_deep_copy_and_pickle_as_independent_numbers():

    import nn

    t = Tensor([1.0, 2.0], requires_grad=True, name="w")
    (t * t).sum().backward()
    for clone in (copy.deepcopy(t), pickle.loads(pickle.dumps(t)), copy.copy(t)):
        assert clone.requires_grad and clone.name == "w" and clone.grad.tolist() == [2.0, 4.0]
        clone.data[0] = 9.0
        assert t.data.tolist() == [1.0, 2.0]  # the copy owns its numbers
    with pytest.raises(TypeError, match="computed tensor .made by mul"):
        copy.deepcopy(t * 2)
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    best = copy.deepcopy(model)  # early stopping keeps a copy of the best weights
    nn.optim.SGD(model.parameters(), lr=0.1).zero_grad()
    model(Tensor(np.ones((4, 2), np.float32))).sum().backward()
    nn.optim.SGD(model.parameters(), lr=0.1).step()
    assert type(best[0].weight) is nn.Parameter
    assert not np.allclose(best[2].bias.data, model[2].bias.data)  # its gradient is 4
    assert type(pickle.loads(pickle.dumps(t.data))) is np.ndarray


def test_in_place_operators_update_parameters_under_no_grad_as_pytorch_does():

    model = nn.Linear(3, 1, rng=0)
    twin = nn.Linear(3, 1, rng=0)
    x = Tensor(np.arange(12, dtype=np.float32).reshape(4, 3) / 10)
    optimizer = nn.optim.SGD(twin.parameters(), lr=0.1)
    losses = []
    for _ in range(3):
        loss = (model(x) ** 2).mean()
        losses.append(loss.item())
        model.zero_grad()
        loss.backward()
        arrays = [p._data for p in model.parameters()]
        with no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad  # the PyTorch idiom: in place, the model keeps its arrays
        assert all(p._data is a for p, a in zip(model.parameters(), arrays, strict=True))
        twin_loss = (twin(x) ** 2).mean()
        optimizer.zero_grad()
        twin_loss.backward()
        optimizer.step()
    assert losses[2] < losses[1] < losses[0]
    for mine, theirs in zip(model.parameters(), twin.parameters(), strict=True):
        np.testing.assert_array_equal(mine.data, theirs.data)
    with pytest.raises(RuntimeError, match="^-=: cannot update a leaf tensor that requires grad"):
        w = model.weight
        w -= 1.0


@pytest.mark.parametrize("op", ["+=", "-=", "*=", "/=", "**="])
def test_recorded_in_place_operators_give_the_out_of_place_gradient(op):
    apply_op = {
        "+=": lambda a, b: a + b,
        "-=": lambda a, b: a - b,
        "*=": lambda a, b: a * b,
        "/=": lambda a, b: a / b,
        "**=": lambda a, b: a**b,
    }[op]
    values = np.array([0.5, 1.5, 2.0])
    expected = []
    for in_place in (False, True):
        h = Tensor(values, requires_grad=True)
        y = h * 2 + 1
        if in_place:  # `y op= h` is `y = operator.iop(y, h)`
            update = {
                "+=": operator.iadd,
                "-=": operator.isub,
                "*=": operator.imul,
                "/=": operator.itruediv,
                "**=": operator.ipow,
            }[op]
            y = update(y, h)
            y = update(y, y)
        else:
            y = apply_op(y, h)
            y = apply_op(y, y)
        y.sum().backward()
        expected.append(h.grad.data.copy())
    np.testing.assert_allclose(expected[1], expected[0], rtol=1e-12)


def test_in_place_operators_keep_shape_and_dtype_and_see_pending_graphs():
    ints = Tensor(np.array([1, 2]))
    with pytest.raises(TypeError, match=r"^\+=: the result \(float64 \(2,\)\) cannot be stored"):
        ints += 1.5
    ints += 1
    assert ints.dtype == np.int64 and ints.tolist() == [2, 3]
    square = Tensor(np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"\+=: the result .* \(3, 2, 2\)"):
        square += np.ones((3, 2, 2))
    scalar = Tensor(np.float32(3.0))
    scalar += 1.0
    assert type(scalar._data) is np.float32 and scalar.item() == 4.0
    w = Tensor(np.ones(3))
    view = w[:2]
    loss = (Tensor([1.0, 2.0, 3.0], requires_grad=True) * w).sum()
    w += 1.0  # no graph records it: written into w's memory
    assert w.tolist() == [2.0, 2.0, 2.0] and view.tolist() == [2.0, 2.0]  # views see it
    with pytest.raises(RuntimeError, match="^mul: a tensor this op saved"):
        loss.backward()
    # Recorded updates rebind (micrograd's `c += c + 1`): nodes that used the old c stay valid.
    h = Tensor([1.0, 2.0], requires_grad=True)
    y = h * 2
    old = y
    reversed_y = y[::-1]
    y *= reversed_y
    y += y + 1
    assert old.tolist() == [2.0, 4.0] and y.tolist() == [17.0, 17.0]
    y.sum().backward()
    assert h.grad.tolist() == [32.0, 16.0]  # the sum is 16 h0 h1 + 2


def test_no_grad_decorates_generators_and_works_without_parentheses():
    w = Tensor([1.0], requires_grad=True)

    @no_grad()
    def generate():
        for _ in range(2):
            received = yield (w * 2).requires_grad
            assert received is None or received == "sent"

    @no_grad
    def plain():
        return (w * 2).requires_grad

    gen = generate()
    assert next(gen) is False
    assert (w * 2).requires_grad  # between resumptions the caller's mode holds
    assert gen.send("sent") is False
    with pytest.raises(StopIteration):
        next(gen)
    assert plain() is False and (w * 2).requires_grad

    @ad.enable_grad
    def inside():
        return (w * 2).requires_grad

    with no_grad():
        assert inside() is True


def test_manual_seed_reaches_dropout_made_before_it_and_checkpoint_replays_the_mask():
    from autodiff.func import checkpoint

    dropout = nn.Dropout(0.5)
    x = Tensor(np.ones(64))
    ad.manual_seed(3)
    first = dropout(x).data.copy()
    ad.manual_seed(3)
    np.testing.assert_array_equal(dropout(x).data, first)

    def block():
        return nn.Sequential(
            nn.Linear(6, 6, rng=1), nn.Dropout(0.5, rng=7), nn.ReLU(), nn.Linear(6, 1, rng=2)
        )

    inputs = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    grads = []
    for wrap in (lambda m: m, checkpoint):
        model = block()
        wrap(model)(Tensor(inputs)).sum().backward()
        grads.append([p.grad.data.copy() for p in model.parameters()])
        after = model.layers[1]._rng.random()  # recomputing did not advance the stream
        grads[-1].append(np.array(after))
    for plain, checkpointed in zip(*grads, strict=True):
        np.testing.assert_allclose(checkpointed, plain, rtol=1e-6)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: ad.repeat(Tensor(np.ones(3)), -1), "^repeat: repeats must be non-negative"),
        (lambda: ad.tile(Tensor(np.ones(3)), -1), "^tile: reps must be non-negative"),
        (lambda: ad.eye(-1), "^eye: the sizes must be non-negative"),
        (lambda: ad.full((2,), "x"), "^full: fill_value must be a number"),
        (lambda: ad.argmax(Tensor(np.ones((2, 3))), axis=4), "argmax"),
        (
            lambda: ad.conv1d(
                Tensor(np.ones((1, 1, 5))), Tensor(np.ones((1, 1, 2))), padding="same", stride=2
            ),
            "^conv1d: padding='same' needs stride 1, got 2",
        ),
    ],
)
def test_more_bad_arguments_name_the_op(call, message):
    with pytest.raises((ValueError, TypeError, IndexError), match=message):
        call()


def test_edge_values_answer_quietly_and_pytorch_spellings_exist():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ad.log1p(Tensor(-1.0)).item() == -np.inf
        assert Tensor(np.ones((0, 3))).logsumexp(axis=0).tolist() == [-np.inf] * 3
    h = Tensor([1.0, 2.0], requires_grad=True) * 3
    h.retain_grad()  # every reached tensor keeps its gradient here already
    h.sum().backward()
    assert h.grad.tolist() == [1.0, 1.0]
    assert nn.Flatten(start_dim=2)(Tensor(np.ones((2, 3, 4, 5)))).shape == (2, 3, 20)


def test_cached_number_constants_cannot_be_changed():
    x = Tensor(np.float32(2.0), requires_grad=True)
    shared = (x * 0.1).parents[1]  # the one constant every `* 0.1` on float32 uses
    for change in (
        lambda: setattr(shared, "data", 5.0),
        lambda: shared.__setitem__((), 5.0),
        lambda: shared.__iadd__(1.0),
    ):
        with pytest.raises(RuntimeError, match="constant is shared by every expression"):
            change()
    assert (x * 0.1).item() == pytest.approx(0.2)
    assert (x * -0.0).parents[1].data == 0.0 and np.signbit((x * -0.0).parents[1].data)


@pytest.mark.parametrize(
    "make",
    [
        lambda a: [a * 1, a * 2],
        lambda a: [[1.0, 2.0], [3.0, a * 1]],
        lambda a: (0.0, (1.0, a)),
    ],
)
def test_a_tensor_from_a_list_holding_graph_tensors_is_refused_naming_stack(make):
    # Tensor() copies numbers: from tensors that require grad it would silently cut the graph.
    a = Tensor(2.0, requires_grad=True)
    with pytest.raises(TypeError, match=r"Tensor: .*require grad.*autodiff\.stack"):
        Tensor(make(a))
    # Constants in a list are fine, and stack keeps the graph.
    assert Tensor([Tensor(1.0), 2.0]).data.tolist() == [1.0, 2.0]
    v = ad.stack([a * 1, a * 3])
    (v * v).sum().backward()
    assert a.grad.item() == 2 * 2.0 + 2 * 6.0 * 3


def test_numpy_taking_the_numbers_of_a_computed_tensor_is_refused_while_recording():
    w = Tensor(np.ones(3), requires_grad=True)
    loss = (w * w).sum()
    with pytest.raises(TypeError, match=r"numpy would take the numbers.*\.item\(\)"):
        np.asarray([loss, loss])  # plt.plot(losses) does this
    with pytest.raises(TypeError, match="drop the graph"):
        np.mean([w * 2, w * 3])
    # A leaf's numbers (a weight to plot), a constant, .item(), and under no_grad: plain numbers.
    np.testing.assert_array_equal(np.asarray(w), np.ones(3))
    assert np.asarray([loss.item(), loss.detach()]).tolist() == [3.0, 3.0]
    with no_grad():
        assert np.asarray(loss) == 3.0


def test_from_numpy_shares_memory_and_makes_the_array_read_only():
    data = np.arange(12.0).reshape(3, 4).copy()
    x = ad.from_numpy(data)
    assert np.shares_memory(x.data, data) and not x.requires_grad
    with pytest.raises(ValueError, match="read-only"):
        data[0, 0] = 5.0  # a write that a graph could not see: refused at once
    batch = x[np.array([2, 0])]
    assert batch.tolist() == [[8.0, 9.0, 10.0, 11.0], [0.0, 1.0, 2.0, 3.0]]
    with pytest.raises(ValueError, match=r"from_numpy: .*could still be written"):
        ad.from_numpy(np.arange(6.0).reshape(2, 3))  # its owner is writable
    with pytest.raises(ValueError, match=r"from_numpy: .*could still be written"):
        ad.from_numpy(np.frombuffer(bytearray(16)))  # so is the bytearray
    assert ad.from_numpy(data.reshape(4, 3)).shape == (4, 3)  # a view of a shared, read-only one
    assert ad.from_numpy(np.frombuffer(bytes(16))).tolist() == [0.0, 0.0]
    with pytest.raises(TypeError, match="from_numpy: expected a numpy array"):
        ad.from_numpy([1.0, 2.0])
    w = Tensor(np.ones(4), requires_grad=True)
    (x @ w).sum().backward()
    assert w.grad.tolist() == [12.0, 15.0, 18.0, 21.0]


def test_from_numpy_shares_a_read_only_memory_map(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.arange(12.0).reshape(3, 4))
    x = ad.from_numpy(np.load(path, mmap_mode="r"))
    assert x[np.array([2, 0])].tolist() == [[8.0, 9.0, 10.0, 11.0], [0.0, 1.0, 2.0, 3.0]]
    with pytest.raises(ValueError, match="could still be written"):
        ad.from_numpy(np.load(path, mmap_mode="r+"))


def test_a_cached_number_constant_cannot_be_changed_through_a_graph():
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
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


def test_grad_with_create_graph_gives_each_input_its_own_gradient():
    """Found in hunt round 1 (silent wrong answers in the engine and ops)."""
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


def test_create_graph_seed_is_not_the_callers_tensor():
    """Found in hunt round 3 (graph semantics and memory)."""
    # With create_graph=True the seed was kept as the caller's Tensor itself: a leaf root's
    # .grad *was* g, and a non-leaf root's .grad (and its parents' through reshape) viewed
    # g's memory, so writing a gradient (zero_, -= under no_grad, .data) changed g.
    x = Tensor([3.0, 4.0], requires_grad=True)
    g = Tensor([2.0, 2.0])
    x.backward(g, create_graph=True)
    assert x.grad is not g
    x.grad.zero_()
    assert g.tolist() == [2.0, 2.0]
    x = Tensor([3.0, 4.0], requires_grad=True)
    y = x.reshape(2)
    y.backward(g, create_graph=True)
    y.grad.data[0] = 99.0
    x.grad.data[1] = 98.0
    assert g.tolist() == [2.0, 2.0] and x.grad.tolist() == [2.0, 98.0]
    # The seed stays differentiable: d/dv of (v . d(x*x)/dx) is 2x.
    v = Tensor([1.0, 1.0], requires_grad=True)
    (gx,) = ad.grad(x * x, [x], grad_outputs=[v], create_graph=True)
    assert gx.tolist() == [6.0, 8.0]
    assert ad.grad(gx.sum(), [v])[0].tolist() == [6.0, 8.0]
    (same,) = ad.grad(x, [x], grad_outputs=[g], create_graph=True)
    same.data[0] = 7.0
    assert g.tolist() == [2.0, 2.0]


def test_detect_anomaly_with_create_graph_checks_the_tensor_gradients():
    """Found in hunt round 3 (graph semantics and memory)."""
    # With create_graph the gradients are Tensors: the finiteness check called np.asarray on
    # them and stopped with numpy's "would drop the graph" TypeError instead of checking.
    x = Tensor([0.0, 1.0], requires_grad=True)
    with ad.detect_anomaly():
        (g,) = ad.grad((x**1.5).sum(), [x], create_graph=True)
        assert g.tolist() == [0.0, 1.5]
        with pytest.raises(FloatingPointError, match="pow backward") as info:
            ad.grad(g.sum(), [x])
    # The node was made by the backward pass that line 1 of this block ran: that line is
    # named, not numpy's np.errstate wrapper around the engine's backward.
    assert __file__ in str(info.value) and "_ufunc_config" not in str(info.value)
    assert "ad.grad((x**1.5).sum(), [x], create_graph=True)" in str(info.value)


def test_grad_is_differentiable_in_its_grad_outputs(torch):
    """Found in the attack round (forward mode, transforms, conv, export)."""
    x = Tensor(np.array([0.5, -1.0]), requires_grad=True)
    u = Tensor(np.array([2.0, 3.0]), requires_grad=True)
    (g,) = ad.grad(x.tanh(), [x], grad_outputs=[u], create_graph=True)
    g.sum().backward()
    np.testing.assert_allclose(u.grad.data, 1 - np.tanh(x.data) ** 2)


# --- reported by the adversarial hunt of this round, in code the hunters left alone ---------


def test_a_broadcast_gradient_never_shares_memory_with_another_tensors_grad():
    """sum's gradient is a read-only broadcast view of the upstream gradient (no copy for a
    large array); the upstream gradient is also an intermediate's .grad, which the user may
    write into. The leaf's gradient must not change with it.

    Found in the attack round (forward mode, transforms, conv, export).
    """
    x = Tensor(np.ones((300, 300)), requires_grad=True)
    c = Tensor(np.arange(300.0))
    s = x.sum(axis=0)
    (s * c).sum().backward()
    s.grad.data[:] = 0
    np.testing.assert_array_equal(x.grad.data[0, :3], [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(x.grad.data[-1], np.arange(300.0))
    # Nothing handed out is shared with an array another tensor was given, the other way
    # round either: a view kept for one tensor marks its memory as taken.
    y = Tensor(np.ones((300, 300)), requires_grad=True)
    t = y.sum(axis=0)
    u = t * 1.0
    (u * c).sum().backward()
    t.grad.data[:] = -1
    u.grad.data[:] = -2
    np.testing.assert_array_equal(y.grad.data[0, :3], [0.0, 1.0, 2.0])


def test_create_graph_gives_each_leaf_a_gradient_of_its_own():
    """add hands one gradient Tensor to both inputs: with create_graph both leaves held the
    same object, so an update of one's gradient changed the other's.

    Found in the attack round (forward mode, transforms, conv, export).
    """
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([3.0, 4.0], requires_grad=True)
    ((a + b) * 1.0).sum().backward(create_graph=True)
    assert a.grad is not b.grad and not np.shares_memory(a.grad.data, b.grad.data)
    with ad.no_grad():
        a.grad += 1
    np.testing.assert_array_equal(b.grad.data, [1.0, 1.0])
    np.testing.assert_array_equal(a.grad.data, [2.0, 2.0])
    # Both stay differentiable: d/da of sum(d(a * b)/da) = d/da sum(b) = 0, d/db = 1.
    a.zero_grad(), b.zero_grad()
    (a * b + a * b).sum().backward(create_graph=True)
    (gb,) = ad.grad(a.grad.sum(), [b])
    np.testing.assert_array_equal(gb.data, [2.0, 2.0])
    # Intermediates get detached gradients, also of their own.
    p = Tensor([1.0, 2.0], requires_grad=True)
    q, r = p * 2.0, p * 3.0
    (q + r).sum().backward(create_graph=True)
    assert not np.shares_memory(q.grad.data, r.grad.data)


def test_backward_of_a_loss_made_under_no_grad_names_no_grad():
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""

    model = nn.Linear(3, 2, rng=0)
    with ad.no_grad():
        loss = model(np.ones((1, 3))).sum()
    with pytest.raises(RuntimeError, match="no_grad"):
        loss.backward()


def test_backward_through_a_singular_point_is_quiet_and_anomaly_mode_still_catches_it():
    """A habit from micrograd, PyTorch or numpy (issue 10, items 8, 9, 10 and 12)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = Tensor(np.array([0.0, 4.0]), requires_grad=True)
        x.sqrt().sum().backward()
        assert x.grad.tolist() == [np.inf, 0.25]
        y = Tensor(0.0, requires_grad=True)
        (dy,) = ad.grad(y.log(), [y])
        assert dy.item() == np.inf
        with ad.detect_anomaly(), pytest.raises(FloatingPointError, match="log forward"):
            Tensor(-1.0, requires_grad=True).log()
    # Overflow is not an answer by design: numpy still warns about it.
    with pytest.warns(RuntimeWarning, match="overflow"):
        Tensor(1000.0).exp()


def test_parents_are_ordered_read_only_and_params_shared():
    """Guards a fast path of the lean engine (slots, chain shortcut, raw gradients)."""
    a = Tensor(np.ones(3), requires_grad=True)
    b = Tensor(np.full(3, 2.0), requires_grad=True)
    w = Tensor(np.ones((2, 3)), requires_grad=True)
    bias = Tensor(np.zeros(2), requires_grad=True)
    assert (a - b).parents == (a, b) and (b - a).parents == (b, a)
    assert a.exp().parents == (a,)
    assert ad.linear(a, w, bias).parents == (a, w, bias)
    assert a.parents == () and a._parents == ()
    with pytest.raises(AttributeError):
        (a + b).parents = (b,)
    # Nodes without params share one read-only mapping instead of an empty dict each.
    first, second = a + b, a * b
    assert first._params is second._params and len(first._params) == 0
    with pytest.raises(TypeError):
        first._params["x"] = 1
    # A constant result keeps no parents, so its inputs can be freed.
    with ad.no_grad():
        assert (a * b).parents == ()


def test_chain_shortcut_and_heap_agree_with_the_recurrence():
    """Guards a fast path of the lean engine (slots, chain shortcut, raw gradients)."""
    # y[k+1] = 0.7 y[k] + 0.3 y[k-2]: every node is reached first by its chain successor and
    # again through a skip connection, so the shortcut must give way to the heap correctly.
    x = Tensor(0.3, requires_grad=True)
    ys = [x, x * 1.0, x * 1.0]
    deriv = [1.0, 1.0, 1.0]
    for _ in range(3000):
        ys.append(ys[-1] * 0.7 + ys[-3] * 0.3)
        deriv.append(deriv[-1] * 0.7 + deriv[-3] * 0.3)
    ys[-1].backward()
    assert x.grad.item() == pytest.approx(deriv[-1], rel=1e-9)
    # y[N-3] reaches y[N] directly (0.3) and through y[N-2], y[N-1] (0.7 ** 3).
    assert ys[-4].grad.item() == pytest.approx(0.3 + 0.7**3, rel=1e-12)


def test_two_threads_backward_over_shared_nodes():
    """Guards a fast path of the lean engine (slots, chain shortcut, raw gradients)."""
    rng = np.random.default_rng(0)
    x = Tensor(rng.normal(size=(4, 3)), requires_grad=True)
    w = Tensor(rng.normal(size=(3, 3)), requires_grad=True)
    shared = (x @ w).tanh()  # both losses go through these nodes
    losses = [(shared * shared).sum(), (shared * 3.0).sum()]
    expected = [ad.grad(loss, [x, w]) for loss in losses]
    barrier = threading.Barrier(2)
    errors: list[str] = []

    def work(i: int) -> None:
        barrier.wait()
        for _ in range(200):
            gx, gw = ad.grad(losses[i], [x, w])
            if not (
                np.allclose(gx.data, expected[i][0].data)
                and np.allclose(gw.data, expected[i][1].data)
            ):
                errors.append(f"thread {i} got another pass's gradient")
                return

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


THIS_FILE = str(Path(__file__).resolve())


# --- graphs are freed by reference counting alone -------------------------------------------


def _freed_without_gc(make_graph) -> bool:
    """Build a graph, drop it, and report whether every node died with the cycle collector off:
    then reference counting alone freed it, so the graph held no reference cycles."""
    gc.collect()
    gc.disable()
    try:
        refs = make_graph()
        return all(r() is None for r in refs)
    finally:
        gc.enable()


# --- anomaly mode ---------------------------------------------------------------------------


def test_anomaly_forward_names_op_shapes_and_the_users_line():
    x = Tensor(np.array([[1000.0, 1.0]]), requires_grad=True)
    with ad.detect_anomaly(), pytest.raises(FloatingPointError) as info, np.errstate(over="ignore"):
        x.exp()  # overflows to infinity
    message = str(info.value)
    assert message.startswith("detect_anomaly: exp forward")
    assert "(1, 2)" in message and "infinity" in message
    assert THIS_FILE in message and "x.exp()  # overflows to infinity" in message


def test_anomaly_backward_names_op_shapes_and_the_line_that_made_the_node():
    x = Tensor(np.array([0.0, 4.0]), requires_grad=True)
    with ad.detect_anomaly(), np.errstate(divide="ignore"):
        root = x.sqrt()  # finite forward; d sqrt/dx at 0 is infinite
        loss = (root * 3).sum()
        with pytest.raises(FloatingPointError) as info:
            loss.backward()
    message = str(info.value)
    assert "backward, gradient for input 0" in message and "(2,)" in message
    assert "infinity" in message
    assert "root = x.sqrt()" in message and THIS_FILE in message
    assert x.grad is None  # stopped before anything reached the leaf


def test_anomaly_in_a_module_points_at_the_callers_line_not_inside_nn():
    layer = nn.Linear(2, 2)
    with ad.no_grad():
        layer.weight.data[...] = 3e38  # float32: the products overflow
    with (
        ad.detect_anomaly(),
        pytest.raises(FloatingPointError) as info,
        np.errstate(over="ignore", invalid="ignore"),
    ):
        layer(Tensor(np.full((1, 2), 10.0, np.float32)))
    message = str(info.value)
    assert "linear forward" in message and "(1, 2), (2, 2), (2,)" in message
    assert f'File "{THIS_FILE}"' in message  # the test's line, not nn/layers.py


def test_anomaly_reports_where_nan_is_born_not_where_it_spreads():
    x = Tensor(np.array([-1.0, 4.0]), requires_grad=True)
    with (
        ad.detect_anomaly(),
        pytest.raises(FloatingPointError) as info,
        np.errstate(invalid="ignore"),
    ):
        y = x.log()  # NaN is born here...
        y * 2  # ...and would spread here
    assert "log forward" in str(info.value) and "NaN" in str(info.value)
    # Values already NaN on the way in are not blamed on the next op.
    with ad.detect_anomaly():
        z = Tensor(np.array([np.nan, 1.0]), requires_grad=True) * 2
    assert np.isnan(z.data[0])


def test_anomaly_mode_is_per_thread_and_restored():
    seen = {}

    def plain_thread():
        with np.errstate(divide="ignore"):
            seen["plain"] = np.isinf(Tensor(np.array([0.0]), requires_grad=True).log().data).all()

    def anomaly_thread():
        with ad.detect_anomaly(), np.errstate(divide="ignore"):
            try:
                Tensor(np.array([0.0]), requires_grad=True).log()
            except FloatingPointError:
                seen["anomaly"] = "raised"

    with ad.detect_anomaly():
        worker = threading.Thread(target=plain_thread)  # the main thread's mode is not its
        worker.start()
        worker.join()
    worker = threading.Thread(target=anomaly_thread)  # nor is a worker's mode the main one's
    worker.start()
    worker.join()
    with np.errstate(divide="ignore"):
        assert np.isinf(Tensor(np.array([0.0]), requires_grad=True).log().data).all()
    assert seen == {"plain": True, "anomaly": "raised"}
    assert not ad.engine.state.anomaly  # left as found, even after an error inside


# --- exact accumulation -----------------------------------------------------------------------


def test_double_backward_accumulates_exactly_twice():
    model = nn.MLP(4, [6], 3, rng=2)
    x = Tensor(np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32))
    hidden = model[0](x)
    loss = nn.F.cross_entropy(model[2](model[1](hidden)), np.arange(5) % 3)
    loss.backward()
    once = [p.grad.data.copy() for p in model.parameters()]
    hidden_once = hidden.grad.data.copy()
    loss.backward()
    for p, g in zip(model.parameters(), once, strict=True):
        np.testing.assert_array_equal(p.grad.data, 2 * g)  # g + g is exact in floating point
    # An intermediate holds this pass's gradient, it does not accumulate.
    np.testing.assert_array_equal(hidden.grad.data, hidden_once)


def test_graph_is_freed_when_the_output_goes():
    def build():
        x = Tensor(np.ones((3, 3)), requires_grad=True)
        nodes = [x.exp()]
        for _ in range(50):
            nodes.append((nodes[-1] @ x).tanh() + nodes[-1][0])
        loss = nodes[-1].sum()
        loss.backward()
        return [weakref.ref(t) for t in (*nodes, loss, x)]

    assert _freed_without_gc(build)


def test_second_order_graphs_are_freed_too():
    def build():
        x = Tensor(np.linspace(-1, 1, 4), requires_grad=True)
        y = (x.sigmoid() * x).sum()
        (g,) = ad.grad(y, [x], create_graph=True)
        (h,) = ad.grad((g * g).sum(), [x])
        assert h.shape == (4,)
        return [weakref.ref(t) for t in (x, y, g, h)]

    assert _freed_without_gc(build)


def test_graph_of_a_failed_backward_is_freed():
    def build():
        x = Tensor(np.array([0.0, 1.0]), requires_grad=True)
        y = x.sqrt().sum()
        with ad.detect_anomaly(), np.errstate(divide="ignore"), pytest.raises(FloatingPointError):
            y.backward()
        return [weakref.ref(x), weakref.ref(y)]

    assert _freed_without_gc(build)


def test_training_graph_is_freed_every_step():
    model = nn.MLP(4, [8], 2, rng=0)
    opt = nn.optim.SGD(model.parameters(), lr=0.1)
    refs = []
    gc.disable()
    try:
        for _ in range(3):
            out = model(Tensor(np.ones((5, 4), np.float32)))
            loss = nn.F.cross_entropy(out, np.zeros(5, dtype=np.int64))
            opt.zero_grad()
            loss.backward()
            opt.step()
            refs.append(weakref.ref(out))
        del out, loss
        assert all(r() is None for r in refs)
    finally:
        gc.enable()


def test_no_grad_is_per_thread_reliability():
    seen = {}
    inside = threading.Event()
    release = threading.Event()

    def worker():
        with ad.no_grad():
            inside.set()
            release.wait(5)
            seen["worker"] = (Tensor(1.0, requires_grad=True) * 2).requires_grad

    thread = threading.Thread(target=worker)
    thread.start()
    inside.wait(5)
    seen["main"] = (Tensor(1.0, requires_grad=True) * 2).requires_grad  # while worker is in
    release.set()
    thread.join()
    assert seen == {"worker": False, "main": True}
