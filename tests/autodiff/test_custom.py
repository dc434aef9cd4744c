"""Custom operations (autodiff.custom_op): a user's primitive under every transform.

Three user ops: a numerically stable log(1 + e^x) with only a VJP (forward mode derives its
JVP), a scaled product of two inputs (broadcasting, a parameter) with its own JVP, and a
clipped-gradient identity (its VJP is not linear in g, so it must bring its JVP). Values are
checked against closed forms and central differences, never against the op itself."""

from __future__ import annotations

import textwrap
import warnings

import numpy as np
import pytest

import autodiff as ad
from autodiff import func, rules
from autodiff.testing import gradcheck, gradgradcheck, numerical_grad
from autodiff.viz import draw_graph, explain_backward


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def log1pexp_vjp(g, out, x):
    return g * ad.sigmoid(x)


@ad.custom_op(vjp=log1pexp_vjp, formula="sigmoid(x)", elementwise=True)
def log1pexp(x):
    """log(1 + e^x) without overflow."""
    return np.logaddexp(0.0, x)


@ad.custom_op(name="scaled_mul")
def smul(a, b, *, scale=1.0):
    return scale * a * b


@smul.defvjp
def _smul_vjp(g, out, a, b, *, scale=1.0):
    # b's gradient is left output-shaped: the engine sums it down to b's broadcast shape.
    return g * b * scale, g * a * scale


@smul.defjvp
def _smul_jvp(tangents, out, a, b, *, scale=1.0):
    ta, tb = tangents
    return scale * (ta * b + a * tb)


@ad.custom_op(
    vjp=lambda g, out, x: ad.where(g > 1.0, 1.0, ad.where(g < -1.0, -1.0, g)),
    jvp=lambda tangents, out, x: tangents[0],
)
def clip_grad(x):
    return np.array(x, copy=True)


X = np.array([-2.0, -0.3, 0.0, 0.7, 1.9])
A = np.array([[0.5, -1.2, 2.0], [1.5, 0.3, -0.7]])
B = np.array([0.9, -0.4, 1.1])


def _smul2(a, b):
    return smul(a, b, scale=2.0)


# --- the op itself ------------------------------------------------------------------------------


def test_forward_is_stable_and_named():
    x = ad.tensor([-800.0, 0.0, 800.0], requires_grad=True)
    y = log1pexp(x)
    np.testing.assert_allclose(y.data, [0.0, np.log(2.0), 800.0])
    assert y.op == "log1pexp"
    assert log1pexp.op.name == "log1pexp" and smul.op.name == "scaled_mul"
    assert log1pexp.inputs == ("x",) and smul.inputs == ("a", "b")
    assert log1pexp.__doc__ == "log(1 + e^x) without overflow."
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, [0.0, 0.5, 1.0])


def test_rows_are_of_the_table_type_but_not_in_the_table():
    assert isinstance(log1pexp.op, rules.Op)
    assert log1pexp.op.formula == ("sigmoid(x)",) and log1pexp.op.elementwise
    assert "log1pexp" not in rules.OPS and "scaled_mul" not in rules.OPS
    assert all(op is not log1pexp.op for op in rules.OPS.values())


def test_arrays_and_numbers_are_lifted():
    y = smul(A.astype(np.float32), 2, scale=0.5)
    assert isinstance(y, ad.Tensor) and y.dtype == np.float32
    np.testing.assert_allclose(y.data, A.astype(np.float32))
    assert not y.requires_grad and y.op is None


def test_the_module_example_runs():
    doc = ad.custom.__doc__
    code = doc[doc.index("    import numpy as np") : doc.index("\nThe pieces")]
    assert "@ad.custom_op" in code and "gradcheck" in code
    namespace: dict = {}
    exec(textwrap.dedent(code), namespace)  # noqa: S102 - our own docstring's example
    assert namespace["log1pexp"].op.name == "log1pexp"


# --- reverse mode -------------------------------------------------------------------------------


def test_grad_and_value_and_grad():
    g = func.grad(lambda x: log1pexp(x).sum())(X)
    np.testing.assert_allclose(g.data, _sigmoid(X), rtol=1e-12)
    value, g2 = func.value_and_grad(lambda x: (log1pexp(x) * log1pexp(x)).sum())(X)
    np.testing.assert_allclose(value.data, np.sum(np.logaddexp(0, X) ** 2))
    np.testing.assert_allclose(g2.data, 2 * np.logaddexp(0, X) * _sigmoid(X), rtol=1e-12)


def test_two_inputs_broadcast_and_parameters():
    ga, gb = func.grad(lambda a, b: _smul2(a, b).sum(), argnums=(0, 1))(A, B)
    np.testing.assert_allclose(ga.data, 2.0 * np.broadcast_to(B, A.shape))
    np.testing.assert_allclose(gb.data, 2.0 * A.sum(axis=0))  # summed down to b's shape
    assert gb.shape == B.shape


def test_vjp_transform():
    out, pullback = func.vjp(_smul2, A, B)
    u = np.arange(6.0).reshape(2, 3)
    ga, gb = pullback(u)
    np.testing.assert_allclose(out.data, 2 * A * B)
    np.testing.assert_allclose(ga.data, 2 * u * B)
    np.testing.assert_allclose(gb.data, 2 * (u * A).sum(axis=0))


def test_one_vjp_call_serves_every_input():
    calls = []

    def counted(g, out, a, b):
        calls.append(1)
        return g * b, g * a

    op = ad.custom_op(lambda a, b: a * b, vjp=counted, name="counted_mul")
    a = ad.tensor(A, requires_grad=True)
    b = ad.tensor(B, requires_grad=True)
    op(a, b).sum().backward()
    assert len(calls) == 1
    np.testing.assert_allclose(b.grad.data, A.sum(axis=0))


def test_clipped_gradient_identity():
    x = ad.tensor(X, requires_grad=True)
    (3.0 * clip_grad(x)).sum().backward()
    np.testing.assert_allclose(x.grad.data, np.ones(5))  # 3 clipped to 1
    x.grad = None
    (0.25 * clip_grad(x)).sum().backward()
    np.testing.assert_allclose(x.grad.data, np.full(5, 0.25))


def test_none_is_a_zero_gradient():
    op = ad.custom_op(lambda a, b: a + 0 * b, vjp=lambda g, out, a, b: (g, None), name="first")
    ga, gb = func.grad(lambda a, b: op(a, b).sum(), argnums=(0, 1))(X, X)
    np.testing.assert_allclose(ga.data, np.ones(5))
    np.testing.assert_allclose(gb.data, np.zeros(5))


def test_create_graph_grad_of_grad():
    x = ad.tensor(X, requires_grad=True)
    (g,) = ad.grad(log1pexp(x).sum(), [x], create_graph=True)
    assert g.requires_grad
    (gg,) = ad.grad(g.sum(), [x])
    s = _sigmoid(X)
    np.testing.assert_allclose(gg.data, s * (1 - s), rtol=1e-12)


def test_no_grad_records_nothing():
    x = ad.tensor(X, requires_grad=True)
    with ad.no_grad():
        y = log1pexp(x)
    assert not y.requires_grad and y.op is None
    np.testing.assert_allclose(y.data, np.logaddexp(0, X))


# --- forward mode and compositions --------------------------------------------------------------


def test_jvp_derived_from_the_vjp():
    v = np.array([1.0, -2.0, 0.5, 3.0, 0.1])
    y, dy = ad.jvp(log1pexp, (X,), (v,))
    np.testing.assert_allclose(y.data, np.logaddexp(0, X))
    np.testing.assert_allclose(dy.data, _sigmoid(X) * v, rtol=1e-12)
    # The Jacobian is diagonal, so J v is the gradient of <f(x), v>: by central differences.
    numeric = numerical_grad(lambda xs: float(np.logaddexp(0, xs[0]) @ v), [X.copy()], 1e-6)[0]
    np.testing.assert_allclose(dy.data, numeric, atol=1e-6)


def test_derived_jvp_of_an_output_shaped_vjp_matches_the_given_one():
    derived = ad.custom_op(lambda a, b: a * b, vjp=lambda g, out, a, b: (g * b, g * a))
    ta, tb = np.ones_like(A) * 0.3, np.array([1.0, -1.0, 2.0])
    _, d1 = ad.jvp(derived, (A, B), (ta, tb))
    _, d2 = ad.jvp(smul, (A, B), (ta, tb))
    np.testing.assert_allclose(d1.data, ta * B + A * tb)
    np.testing.assert_allclose(d2.data, d1.data)


def test_jacrev_jacfwd_hessian():
    x = np.array([0.3, -1.2, 2.0])
    s = _sigmoid(x)
    np.testing.assert_allclose(func.jacrev(log1pexp)(x).data, np.diag(s), rtol=1e-12)
    np.testing.assert_allclose(func.jacfwd(log1pexp)(x).data, np.diag(s), rtol=1e-12)
    hess = np.diag(s * (1 - s))
    np.testing.assert_allclose(func.hessian(lambda z: log1pexp(z).sum())(x).data, hess)
    # reverse over forward: the derived JVP, recorded, differentiated again
    rof = func.jacrev(func.jacfwd(lambda z: log1pexp(z).sum()))(x)
    np.testing.assert_allclose(rof.data, hess, rtol=1e-12)
    jac_b = func.jacfwd(_smul2, argnums=1)(A, B)
    np.testing.assert_allclose(jac_b.data, 2 * A[:, :, None] * np.eye(3)[None], atol=0)


def test_nested_jvp_second_derivative():
    x, v = np.array([0.4, -0.9]), np.array([1.0, 2.0])

    def dir_deriv(z):
        return ad.jvp(log1pexp, (z,), (v,))[1]

    _, ddy = ad.jvp(dir_deriv, (x,), (v,))
    s = _sigmoid(x)
    np.testing.assert_allclose(ddy.data, s * (1 - s) * v * v, rtol=1e-12)


def test_gradcheck_and_gradgradcheck():
    assert gradcheck(log1pexp, X, modes=("rev", "fwd"), order=2)
    assert gradcheck(_smul2, A, B, modes=("rev", "fwd"), order=2)
    assert gradgradcheck(log1pexp, X)
    assert gradgradcheck(_smul2, A, B)
    assert gradcheck(lambda x: log1pexp(x * x), X, modes=("rev", "fwd"))


def test_gradcheck_catches_a_wrong_vjp():
    wrong = ad.custom_op(lambda x: np.sin(x), vjp=lambda g, out, x: g * ad.sin(x), name="bad_sin")
    with pytest.raises(AssertionError, match="backprop"):
        gradcheck(wrong, X)


# --- drawings and explanations ------------------------------------------------------------------


def test_draw_graph_shows_the_name():
    x = ad.tensor(X, requires_grad=True, name="x")
    source = draw_graph(_smul2(log1pexp(x), 2.0).sum()).source
    assert "log1pexp" in source and "scaled_mul" in source


def test_explain_backward():
    x = ad.tensor(0.5, requires_grad=True, name="x")
    rows = explain_backward(log1pexp(x))
    assert [r["op"] for r in rows] == ["log1pexp"]
    assert rows[0]["local"] == pytest.approx(_sigmoid(0.5))
    assert rows[0]["contribution"] == pytest.approx(_sigmoid(0.5))
    assert "log1pexp" in str(rows)


def test_page_shows_the_name_and_the_formula():
    from autodiff.page import page

    x = ad.tensor([0.5, -1.0], requires_grad=True, name="x")
    html = page(_smul2(log1pexp(x), 3.0).sum()).html
    assert "log1pexp" in html and "scaled_mul" in html
    assert "sigmoid" in html  # log1pexp's formula column: nothing else in this graph says it


def test_explain_forward():
    rows = ad.explain_forward(log1pexp, (np.array(0.5),), (np.array(2.0),), print_rows=False)
    step = rows[-1]
    assert step["op"] == "log1pexp"
    assert step["value"] == pytest.approx(np.logaddexp(0, 0.5))
    assert step["parts"][0]["local"] == pytest.approx(_sigmoid(0.5))  # the derived JVP
    assert step["tangent"] == pytest.approx(2 * _sigmoid(0.5))


# --- errors -------------------------------------------------------------------------------------


def test_wrong_gradient_shape_names_op_and_shapes():
    bad = ad.custom_op(lambda x: 2 * x, vjp=lambda g, out, x: g[:2], name="bad_shape")
    x = ad.tensor(X, requires_grad=True)
    with pytest.raises(ValueError, match=r"bad_shape.*vjp.*\(2,\).*\(5,\)"):
        bad(x).sum().backward()


def test_wrong_tangent_shape_names_op_and_shapes():
    bad = ad.custom_op(
        lambda x: 2 * x, vjp=lambda g, out, x: 2 * g, jvp=lambda ts, out, x: ts[0][:2], name="bj"
    )
    with pytest.raises(ValueError, match=r"bj.*jvp.*\(2,\).*\(5,\)"):
        ad.jvp(bad, (X,), (X,))


def test_wrong_number_of_gradients():
    bad = ad.custom_op(lambda a, b: a * b, vjp=lambda g, out, a, b: g * b, name="one_grad")
    with pytest.raises(TypeError, match=r"one_grad.*one gradient per input \(2: a, b\)"):
        func.grad(lambda a, b: bad(a, b).sum())(X, X)


def test_missing_vjp_is_named():
    bare = ad.custom_op(lambda x: x * 3, name="no_rule")
    with pytest.raises(NotImplementedError, match=r"no_rule.*vjp"):
        func.grad(lambda x: bare(x).sum())(X)


def test_underivable_jvp_is_named():
    # A VJP computed with numpy on the numbers: right for grad, opaque to differentiation.
    opaque = ad.custom_op(np.sin, vjp=lambda g, out, x: np.cos(x.data) * g.data, name="opaque_sin")
    g = func.grad(lambda x: opaque(x).sum())(X)
    np.testing.assert_allclose(g.data, np.cos(X))
    with pytest.raises(NotImplementedError, match=r"opaque_sin.*jvp"):
        ad.jvp(opaque, (X,), (np.ones(5),))
    with pytest.raises(RuntimeError, match=r"opaque_sin.*autodiff operations"):
        func.hessian(lambda x: (opaque(x) * opaque(x)).sum())(X)


def test_calls_and_definitions_are_checked():
    with pytest.raises(TypeError, match=r"scaled_mul.*2 input\(s\) \(a, b\).*got 1"):
        smul(A)
    with pytest.raises(TypeError, match=r"custom_op star.*\*args"):
        ad.custom_op(lambda *xs: xs[0], vjp=lambda g, out, *xs: g, name="star")
    with pytest.raises(TypeError, match=r"tensor_out.*forward returned a Tensor"):
        ad.custom_op(lambda x: ad.tensor(x), vjp=lambda g, out, x: g, name="tensor_out")(X)


def test_a_built_in_name_is_refused():
    with pytest.raises(ValueError, match="'tanh' is the name of a built-in primitive"):
        ad.custom_op(np.tanh, vjp=lambda g, out, x: g * (1 - out * out))
    own = ad.custom_op(np.tanh, vjp=lambda g, out, x: g * (1 - out * out), name="my_tanh")
    assert gradcheck(own, X, modes=("rev", "fwd"), order=2)


def test_forward_errors_name_the_op():
    op = ad.custom_op(lambda a, b: a @ b, vjp=lambda g, out, a, b: (g, g), name="my_matmul")
    with pytest.raises(ValueError, match=r"my_matmul.*\(2, 3\), \(2, 3\)"):
        op(ad.tensor(A), ad.tensor(A))


# --- vmap ---------------------------------------------------------------------------------------


def test_elementwise_batching_rule_runs_the_op_on_the_whole_batch():
    batch = log1pexp.op.batch
    assert batch is not None and smul.op.batch is None  # smul: vmap's own loop
    xs = ad.tensor(np.arange(6.0).reshape(3, 2) - 2.5)
    out = batch(log1pexp.op, [xs], [0], 3)
    np.testing.assert_allclose(out.data, np.logaddexp(0, xs.data))
    two = ad.custom_op(
        lambda a, b: a * b, vjp=lambda g, out, a, b: (g * b, g * a), elementwise=True
    )
    scalars = ad.tensor([1.0, 2.0, 3.0])  # a batch of 0-d examples, against a (2,) constant
    out = two.op.batch(two.op, [scalars, ad.tensor([10.0, 20.0])], [0, None], 3)
    np.testing.assert_allclose(out.data, [[10, 20], [20, 40], [30, 60]])


def test_given_batching_rule_is_stored_and_called():
    seen = []

    def rule(inputs, dims, size, **params):
        seen.append((dims, size))
        return smul(*inputs, **params)

    op = ad.custom_op(lambda a, b: a * b, vjp=lambda g, out, a, b: (g * b, g * a), batch=rule)
    out = op.op.batch(op.op, [ad.tensor(A), ad.tensor(B)], [0, None], 2)
    assert seen == [([0, None], 2)]
    np.testing.assert_allclose(out.data, A * B)


@pytest.mark.skipif(not hasattr(ad, "vmap"), reason="vmap not available")
def test_vmap_and_its_compositions():
    xs = np.linspace(-2, 2, 12).reshape(4, 3)
    s = _sigmoid(xs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the derived elementwise rule: no one-by-one loop
        np.testing.assert_allclose(ad.vmap(log1pexp)(xs).data, np.logaddexp(0, xs))
        np.testing.assert_allclose(ad.vmap(log1pexp, in_axes=1)(xs).data, np.logaddexp(0, xs).T)
        per_example = ad.vmap(func.grad(lambda x: log1pexp(x).sum()))(xs)
        np.testing.assert_allclose(per_example.data, s, rtol=1e-12)
        g = func.grad(lambda x: ad.vmap(log1pexp)(x).sum())(xs)
        np.testing.assert_allclose(g.data, s, rtol=1e-12)
        _, tangent = ad.jvp(ad.vmap(log1pexp), (xs,), (np.ones_like(xs),))
        np.testing.assert_allclose(tangent.data, s, rtol=1e-12)
        hessians = ad.vmap(func.hessian(lambda x: log1pexp(x).sum()))(xs)
        np.testing.assert_allclose(hessians.data, np.stack([np.diag(r * (1 - r)) for r in s]))


@pytest.mark.skipif(not hasattr(ad, "vmap"), reason="vmap not available")
def test_vmap_uses_the_given_rule_or_says_it_loops():
    seen = []

    def rule(inputs, dims, size, **params):
        seen.append((dims, size))
        return smul(*inputs, **params)  # b, unbatched, broadcasts against a's trailing axes

    batched = ad.custom_op(smul.forward, vjp=_smul_vjp, batch=rule, name="batched_mul")
    stacked = np.stack([A, 2 * A])
    out = ad.vmap(lambda a, b: batched(a, b, scale=2.0), in_axes=(0, None))(stacked, B)
    np.testing.assert_allclose(out.data, 2 * stacked * B)
    assert seen == [([0, None], 2)]
    # no batching rule: vmap computes it one example at a time, and names the op
    with pytest.warns(UserWarning, match="scaled_mul"):
        out = ad.vmap(_smul2, in_axes=(0, None))(stacked, B)
    np.testing.assert_allclose(out.data, 2 * stacked * B)
