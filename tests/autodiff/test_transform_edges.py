"""Edges of the function transforms (issue #22): values turned into plain numbers inside a
transform, results that leak graphs, the create_graph cycle, error names, wrong-shape rules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autodiff
from autodiff import Tensor
from autodiff.func import grad, hessian, hvp, jacfwd, jacrev, jvp, value_and_grad, vjp

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
