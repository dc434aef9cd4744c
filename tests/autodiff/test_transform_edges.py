"""Edges of the function transforms (issue #22): values turned into plain numbers inside a
transform, results that leak graphs, the create_graph cycle, error names, wrong-shape rules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autodiff
from autodiff import Tensor
from autodiff.func import (
    checkpoint,
    elementwise_grad,
    grad,
    grad_and_aux,
    hessian,
    hvp,
    jacfwd,
    jacobian,
    jacrev,
    jvp,
    value_and_grad,
    vjp,
)

# --- item 1: numpy / float() on a value a transform differentiates ---------------------------

# Each makes plain numbers of x (or of a value computed from it); the derivative would be lost.
CONCRETIZING = {
    "np.array": lambda x: np.array([x, 2 * x]).sum(),
    "np.asarray of the variable": lambda x: np.asarray(x).sum() * x,
    "np.r_": lambda x: Tensor(np.r_[x, x]).sum(),
    "np.c_": lambda x: Tensor(np.c_[x, x]).sum(),
    "list appends made an array": lambda x: np.array([x * k for k in range(3)]).sum(),
    "float": lambda x: x * float(x.sum()),
    "item": lambda x: x * x.sum().item(),
    "float of an element": lambda x: x * float(x.reshape(-1)[0]),
    "int": lambda x: x * int(x.sum()),
    "tolist": lambda x: Tensor(x.tolist()).sum(),
}


def _grad_mode(f, x):
    return grad(lambda v: f(v).sum())(x)


def _jvp_mode(f, x):
    return jvp(lambda v: f(v), (x,), (np.ones_like(x),))


def _jvp_inside_grad(f, x):
    return grad(lambda v: jvp(lambda u: f(u).sum(), (v,), (np.ones_like(x),))[1])(x)


def _hessian_mode(f, x):
    return hessian(lambda v: f(v).sum())(x)


MODES = {
    "grad": _grad_mode,
    "jvp": _jvp_mode,
    "jvp inside grad": _jvp_inside_grad,
    "jacrev": lambda f, x: jacrev(lambda v: f(v))(x),
    "jacfwd": lambda f, x: jacfwd(lambda v: f(v))(x),
    "hessian": _hessian_mode,
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", CONCRETIZING)
def test_every_path_to_plain_numbers_is_refused_in_every_mode(path, mode):
    # Before: jvp of np.array([x, 2x]).sum() gave a tangent of 0 and grad of x * float(x)
    # gave x instead of 2x, silently.
    x = np.array([1.5, 2.0]) if path != "float of an element" else np.array([[1.5, 2.0]])
    with pytest.raises(TypeError, match="running transform .* differentiates|drop the graph"):
        MODES[mode](CONCRETIZING[path], x)


def test_jvp_of_np_array_names_the_fix():
    with pytest.raises(TypeError, match=r"autodiff.stack\(\[...\]\) instead of np.array"):
        jvp(lambda x: np.array([x, 2 * x]).sum(), (Tensor(1.0),), (Tensor(1.0),))


def test_float_of_an_element_inside_grad_is_refused():
    with pytest.raises(TypeError, match=r"float\(\), int\(\) or .item\(\)"):
        grad(lambda x: (x * float(x[0])).sum())(np.array([2.0, 3.0]))


def test_values_that_do_not_depend_on_the_variable_may_become_numbers():
    w = Tensor(np.array([2.0, 3.0]), requires_grad=True)  # a model's weight in a closure
    c = Tensor(4.0)

    def f(x):
        scale = float(w.sum()) + c.item() + float(x.detach().sum())  # constants, on purpose
        return (x * scale).sum()

    x = np.array([1.0, 2.0])
    np.testing.assert_allclose(grad(f)(x), np.full(2, 5.0 + 4.0 + 3.0))
    out, tangent = jvp(f, (x,), (np.array([1.0, 0.0]),))
    np.testing.assert_allclose(float(np.asarray(tangent)), 12.0)
    # Outside a transform nothing changes: a leaf's numbers, a result's .item().
    assert float(w.sum()) == 5.0
    assert np.asarray(w).tolist() == [2.0, 3.0]


def test_conversions_outside_transforms_are_untouched():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    loss = (x * x).sum()
    loss.backward()
    assert loss.item() == 5.0 and float(loss) == 5.0
    with autodiff.no_grad():
        assert np.asarray(x * 2).tolist() == [2.0, 4.0]


@given(
    st.lists(st.floats(-3, 3), min_size=1, max_size=5),
    st.sampled_from(sorted(CONCRETIZING)),
)
def test_property_forward_and_reverse_agree_or_both_refuse(values, path):
    """Over random points: for every concretizing path, grad and jvp both refuse; for the same
    computation written with Tensor ops, the directional derivative of jvp equals grad . v."""
    x = np.array(values)
    f = CONCRETIZING[path]
    refused = []
    for mode in (_grad_mode, _jvp_mode):
        try:
            mode(f, x[None] if path == "float of an element" else x)
        except TypeError:
            refused.append(True)
    assert refused == [True, True]
    # The Tensor-only spelling of the first path: both modes agree with the true derivative.
    g = grad(lambda v: autodiff.stack([v, 2 * v]).sum())(x)
    v = np.linspace(-1, 1, x.size)
    _, t = jvp(lambda u: autodiff.stack([u, 2 * u]).sum(), (x,), (v,))
    np.testing.assert_allclose(g, np.full_like(x, 3.0))
    np.testing.assert_allclose(t, g @ v, atol=1e-12)


# --- item 2: results answer in the kind of the inputs, without leaked graphs ------------------


def _cube(x):
    return (x**3).sum()


TRANSFORMS = {
    "grad": lambda x: grad(_cube)(x),
    "value_and_grad": lambda x: value_and_grad(_cube)(x)[1],
    "jacrev": lambda x: jacrev(lambda v: v * v)(x),
    "jacfwd": lambda x: jacfwd(lambda v: v * v)(x),
    "hessian": lambda x: hessian(_cube)(x),
    "hvp": lambda x: hvp(_cube, x, x * 0 + 1),
    "hvp reverse-over-forward": lambda x: hvp(_cube, x, x * 0 + 1, mode="reverse-over-forward"),
    "jvp": lambda x: jvp(lambda v: v * v, (x,), (x * 0 + 1,))[1],
    "jvp value": lambda x: jvp(lambda v: v * v, (x,), (x * 0 + 1,))[0],
    "vjp": lambda x: vjp(lambda v: v * v, x)[1](x * 0 + 1)[0],
    "vjp value": lambda x: vjp(lambda v: v * v, x)[0],
}
EXPECTED = {
    "grad": lambda a: 3 * a**2,
    "value_and_grad": lambda a: 3 * a**2,
    "jacrev": lambda a: np.diag(2 * a),
    "jacfwd": lambda a: np.diag(2 * a),
    "hessian": lambda a: np.diag(6 * a),
    "hvp": lambda a: 6 * a,
    "hvp reverse-over-forward": lambda a: 6 * a,
    "jvp": lambda a: 2 * a,
    "jvp value": lambda a: a * a,
    "vjp": lambda a: 2 * a,
    "vjp value": lambda a: a * a,
}


@given(st.lists(st.floats(-2, 2), min_size=1, max_size=4), st.sampled_from(sorted(TRANSFORMS)))
def test_property_results_answer_in_kind(values, name):
    # Before: hessian and hvp of a plain Tensor gave a Tensor that required grad (so np.asarray
    # of it raised), and jvp of arrays gave Tensors where grad, jacrev and vjp gave arrays.
    a = np.array(values)
    want = EXPECTED[name](a)
    from_array = TRANSFORMS[name](a)
    assert type(from_array) is np.ndarray
    np.testing.assert_allclose(from_array, want, rtol=1e-12, atol=1e-12)
    from_tensor = TRANSFORMS[name](Tensor(a))
    assert isinstance(from_tensor, Tensor) and not from_tensor.requires_grad
    np.testing.assert_allclose(np.asarray(from_tensor), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["grad", "jvp", "hessian", "hvp"])
def test_numbers_in_give_numpy_out(name):
    f = {
        "grad": lambda: grad(lambda x: x**3)(2.0),
        "jvp": lambda: jvp(lambda x: x**3, 2.0, 1.0)[1],
        "hessian": lambda: hessian(lambda x: x**3)(2.0),
        "hvp": lambda: hvp(lambda x: x**3, 2.0, 1.0),
    }[name]
    out = f()
    assert isinstance(out, np.floating | np.ndarray) and not isinstance(out, Tensor)
    assert float(np.asarray(out)) == {"grad": 12.0, "jvp": 12.0, "hessian": 12.0, "hvp": 12.0}[name]


def test_a_tensor_that_requires_grad_keeps_its_graph_through_every_transform():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = hessian(_cube)(x)  # diag(6x): its derivative is 6 on the diagonal
    assert h.requires_grad
    h.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 6.0])
    x.grad = None
    p = hvp(_cube, x, Tensor(np.array([1.0, 1.0])))  # 6x
    p.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 6.0])


def test_nested_transforms_still_see_the_outer_variable():
    # grad of a hessian-based quantity: the inner results stay connected to the outer leaf.
    outer = grad(lambda w: hessian(lambda x: (w * x**3).sum())(np.array([1.0, 2.0])).sum())
    np.testing.assert_allclose(outer(2.0), 6.0 * 3.0)
    # jvp over hessian (forward over the detached result keeps the tangent).
    _, t = jvp(lambda w: hessian(lambda x: (w * x**3).sum())(np.array([1.0, 2.0])), 2.0, 1.0)
    np.testing.assert_allclose(t, np.diag([6.0, 12.0]))


# --- item 7: backward(create_graph=True) and the reference cycle -------------------------------


def test_backward_create_graph_warns_of_the_cycle_and_grad_makes_none():
    import gc
    import warnings
    import weakref

    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with pytest.warns(UserWarning, match="reference cycle"):
        (x**3).sum().backward(create_graph=True)
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 12.0])
    ref = weakref.ref(x)
    gc.disable()
    try:
        del x
        assert ref() is not None  # held by the cycle leaf -> grad -> graph -> leaf
    finally:
        gc.enable()
    gc.collect()
    assert ref() is None

    # The functional form makes no cycle: freed by reference counting alone, no warning.
    y = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (g,) = autodiff.grad((y**3).sum(), [y], create_graph=True)
        (dg,) = autodiff.grad(g.sum(), [y])
    np.testing.assert_allclose(dg.numpy(), [6.0, 12.0])
    ref = weakref.ref(y)
    gc.disable()
    try:
        del y, g
        assert ref() is None
    finally:
        gc.enable()


def test_a_constant_gradient_is_no_cycle_and_is_not_warned_of():
    import warnings

    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (3 * x).sum().backward(create_graph=True)
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


# --- item 10: errors name the transform called; checkpoint passes keywords --------------------


def _two_draws(x):
    return x * np.random.default_rng().standard_normal()  # different on every pass


NAMED_ERRORS = [
    ("hvp", lambda: hvp(lambda x: x * 2, np.ones(2), np.ones(2)), "f must return a scalar"),
    ("hvp", lambda: hvp(_cube, "x", np.ones(2)), "argument 0"),
    ("hvp", lambda: hvp(_cube, {"a": np.ones(2)}, {"b": np.ones(2)}), "structure"),
    ("hessian", lambda: hessian(lambda x: "y")(np.ones(2)), "f must return"),
    ("hessian", lambda: hessian(lambda x: _two_draws(x).sum())(np.ones(2)), "different value"),
    ("hessian", lambda: hessian(_cube)(np.array([1, 2])), "dtype"),
    ("jacobian", lambda: jacobian(lambda x: None)(np.ones(2)), "f must return"),
    ("value_and_grad", lambda: value_and_grad(lambda x: x)(np.ones(2)), "scalar"),
    ("elementwise_grad", lambda: elementwise_grad(lambda x: "y")(np.ones(2)), "f must return"),
    ("grad_and_aux", lambda: grad_and_aux(lambda x: x.sum())(np.ones(2)), "pair"),
    ("checkpoint", lambda: checkpoint(lambda x: "y")(np.ones(2)), "f must return"),
    ("checkpoint", lambda: checkpoint(lambda x: x)("x"), "argument 0"),
]


@pytest.mark.parametrize(("who", "call", "what"), NAMED_ERRORS)
def test_errors_name_the_transform_the_user_called(who, call, what):
    # Before: hvp's errors said "grad:" or "jvp:", hessian's "jacfwd:" or "jacrev:", and
    # checkpoint's "f must return one Tensor" named no transform.
    with pytest.raises((TypeError, ValueError, RuntimeError)) as info:
        call()
    assert str(info.value).startswith(f"{who}: "), str(info.value)
    assert what in str(info.value)


def test_checkpoint_passes_keyword_arguments_through():
    def block(x, w, *, scale, power=2):
        return ((x @ w).tanh() * scale) ** power

    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 2)), requires_grad=True)
    out = checkpoint(block)(x, w, scale=2.0, power=3)
    out.sum().backward()
    got = (x.grad.numpy().copy(), w.grad.numpy().copy())
    x.grad = w.grad = None
    ref = block(x, w, scale=2.0, power=3)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-12)
    ref.sum().backward()
    np.testing.assert_allclose(got[0], x.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(got[1], w.grad.numpy(), rtol=1e-12)
    # A Tensor passed by keyword is an input too: it gets its gradient.
    x.grad = w.grad = None
    checkpoint(lambda x, *, w: (x @ w).sum())(x, w=w).backward()
    np.testing.assert_allclose(w.grad.numpy(), np.repeat(x.numpy().sum(0)[:, None], 2, 1))


def test_checkpoint_returns_a_tree():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    out = checkpoint(lambda t: {"sq": t * t, "pair": (t.sum(), t * 3)})(x)
    assert set(out) == {"pair", "sq"} and isinstance(out["pair"], tuple)
    (out["sq"].sum() + out["pair"][0] + out["pair"][1].sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() + 1 + 3)


# --- item 12: a rule's gradient of the wrong shape --------------------------------------------


def _op_with_gradient_shape(shape, name="bad_rule"):
    return autodiff.ops.Op(
        name,
        lambda x: 2 * x,
        lambda g, out, x: np.ones(shape),
        jvp=lambda t, out, x: np.ones(shape),
    )


def test_a_wrong_gradient_shape_names_the_op_and_both_shapes():
    x = Tensor(np.ones(3), requires_grad=True)
    op = _op_with_gradient_shape((7,), "my_double")
    with pytest.raises(
        ValueError, match=r"my_double: .* shape \(7,\), but input 0 has shape \(3,\)"
    ):
        autodiff.engine.apply(op, (x,)).sum().backward()
    with pytest.raises(ValueError, match=r"my_double: .* \(7,\).*\(3,\)"):
        autodiff.grad(autodiff.engine.apply(op, (x,)).sum(), [x], create_graph=True)
    with pytest.raises(ValueError, match=r"my_double: the JVP rule .* \(7,\).*\(3,\)"):
        jvp(lambda v: autodiff.engine.apply(op, (v,)), (np.ones(3),), (np.ones(3),))
    # Silent before: (4,) reshaped into (2, 2), and (2, 3) summed into a (3,) gradient.
    for shape, wrong in (((2, 2), (4,)), ((3,), (2, 3))):
        y = Tensor(np.ones(shape), requires_grad=True)
        with pytest.raises(ValueError, match="bad_rule: the gradient rule for input 0"):
            autodiff.engine.apply(_op_with_gradient_shape(wrong), (y,)).sum().backward()


@given(
    st.lists(st.integers(1, 3), min_size=0, max_size=3),
    st.lists(st.integers(1, 3), min_size=0, max_size=3),
)
def test_property_a_gradient_is_used_only_if_the_input_broadcasts_to_it(in_shape, g_shape):
    in_shape, g_shape = tuple(in_shape), tuple(g_shape)
    x = Tensor(np.ones(in_shape), requires_grad=True)
    fits = len(g_shape) == len(in_shape) and all(
        i == g or i == 1 for i, g in zip(in_shape, g_shape, strict=True)
    )
    try:
        autodiff.engine.apply(_op_with_gradient_shape(g_shape), (x,)).sum().backward()
    except ValueError as exc:
        assert not fits
        assert str(g_shape) in str(exc) and str(in_shape) in str(exc)
    else:
        assert fits
        np.testing.assert_array_equal(
            x.grad.numpy(),
            np.ones(g_shape).sum(
                axis=tuple(k for k, n in enumerate(in_shape) if n == 1 and g_shape[k] != 1),
                keepdims=True,
            ),
        )


# --- item 14: gradcheck ------------------------------------------------------------------------


_WRONG = autodiff.ops.Op(
    "wrong_square",
    lambda x: x * x,
    lambda g, out, x: g * 3 * x,  # should be 2x
    jvp=lambda t, out, x: 2 * t * x,
)


def test_gradcheck_refuses_an_input_the_function_ignores():
    import nn
    from autodiff.testing import gradcheck

    model = nn.Linear(3, 2, dtype=np.float64, rng=0)
    x = Tensor(np.ones((2, 3)))
    # Before: passed, checking nothing (the weights are read through the closure).
    with pytest.raises(AssertionError, match="does not use input 0"):
        gradcheck(lambda w: model(x).sum(), model.weight.data.copy())
    assert gradcheck(lambda w, v: (v * v).sum(), np.ones(2), np.ones(3), allow_unused=True)


@given(st.lists(st.floats(0.5, 3), min_size=1, max_size=4))
def test_property_gradcheck_reports_real_jacobian_entries(values):
    import re

    from autodiff.testing import gradcheck

    x = np.array(values)
    with pytest.raises(AssertionError) as info:
        gradcheck(lambda v: autodiff.engine.apply(_WRONG, (v,)), x)
    message = str(info.value)
    found = re.search(
        r"d out\[(\d+)\] / d input 0\[(\d+)\]: backprop (\S+) vs numerical (\S+)", message
    )
    assert found, message
    row, col, analytic, numeric = found.groups()
    assert row == col  # an elementwise op: only the diagonal is nonzero
    k = int(row)
    np.testing.assert_allclose(float(analytic), 3 * x[k], rtol=1e-7)
    np.testing.assert_allclose(float(numeric), 2 * x[k], rtol=1e-6)
    # The worst entry is the largest error, |3x - 2x| = x: at the largest element.
    assert x[k] == x.max()


def test_gradcheck_module_checks_every_parameter_in_one_call():
    import nn
    from autodiff.testing import gradcheck_module

    model = nn.MLP(3, [4], 2, activation="tanh", dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((5, 3))
    before = [p.data.copy() for p in model.parameters()]
    assert gradcheck_module(model, lambda m, x: m(x), x, check_inputs=True)
    for p, b in zip(model.parameters(), before, strict=True):
        np.testing.assert_array_equal(p.data, b)

    class Wrong(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(np.array([[1.0, 2.0]]))

        def forward(self, x):
            return autodiff.engine.apply(_WRONG, (x * self.w,))

    with pytest.raises(AssertionError, match=r"parameter 'w' .* d out\[0, 1\] / d w\[0, 1\]"):
        gradcheck_module(Wrong(), lambda m, x: m(x), np.ones((1, 2)))


def test_aux_tensors_come_back_without_the_transforms_graph():
    # Before: the aux Tensor (predictions computed from x) still required grad, so
    # np.asarray(aux) raised; values that are not Tensors come back untouched.
    g, aux = grad(lambda x: ((x * x).sum(), {"pred": x * 2, "tag": "t"}), has_aux=True)(
        np.array([1.0, 2.0])
    )
    assert aux["tag"] == "t" and not aux["pred"].requires_grad
    np.testing.assert_allclose(np.asarray(aux["pred"]), [2.0, 4.0])
    np.testing.assert_allclose(g, [2.0, 4.0])
    _, _, aux = vjp(lambda x: (x * x, x.sum()), np.array([1.0, 2.0]), has_aux=True)
    np.testing.assert_allclose(np.asarray(aux), 3.0)
