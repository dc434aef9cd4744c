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
