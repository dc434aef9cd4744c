"""Forward mode: every primitive's JVP rule against numerical derivatives and against its own VJP.

The cases are the table of test_rules.py (same domains, same hypothesis shapes), so an op
added there is checked in both directions here; `test_every_primitive_has_a_jvp` fails when a
primitive of `autodiff.ops.OPS` has no JVP rule.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import autodiff as ad
from autodiff import Tensor, engine, ops
from autodiff import func as F
from autodiff.forward import tangent_of
from autodiff.func import grad, jacfwd, jacrev, vjp
from tests.autodiff.test_rules import CASE_IDS, CASES, Case, _split


def _draw(case: Case, data) -> tuple[list[np.ndarray], tuple]:
    drawn = data.draw(case.inputs)
    if case.valid is not None:
        assume(case.valid(drawn[: case.n_tensors]))
    return _split(case, drawn)


def _random_like(arrays: list[np.ndarray], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(a.shape) for a in arrays]


def test_every_primitive_has_a_jvp():
    missing = [name for name, op in OPS_ITEMS if op.jvps is None]
    assert not missing, f"primitives without a JVP rule: {missing}"
    for name, op in OPS_ITEMS:
        expected = 1 if op.variadic else len(op.vjps)
        assert len(op.jvps) == expected, f"{name}: {len(op.jvps)} JVP rules for {expected} inputs"


OPS_ITEMS = sorted(ops.OPS.items())


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@given(data=st.data())
def test_jvp_matches_numerical(case: Case, data):
    """J v from one forward pass against central differences of f along v, elementwise."""
    arrays, extras = _draw(case, data)
    v = _random_like(arrays, 0)

    def f(*ts):
        return case.fn(*ts, *extras)

    out, tangent = ad.jvp(f, tuple(arrays), tuple(v))
    assert tangent.shape == out.shape and tangent.dtype == out.dtype
    eps = case.eps

    def at(shifted: list[np.ndarray]) -> np.ndarray:
        return np.asarray(f(*[Tensor(a) for a in shifted]).data, dtype=np.float64)

    # J v as the sum of numerical Jacobian columns times v's entries: one coordinate moves at
    # a time, as in gradcheck. (Moving along v all at once adds cross terms of third order,
    # which are large for a product of many factors around a repeated zero.)
    numeric = np.zeros(np.shape(out.data))
    for i, (a, d) in enumerate(zip(arrays, v, strict=True)):
        for j in range(a.size):
            up = [b.copy() for b in arrays]
            down = [b.copy() for b in arrays]
            up[i].reshape(-1)[j] += eps
            down[i].reshape(-1)[j] -= eps
            numeric = numeric + d.reshape(-1)[j] * (at(up) - at(down)) / (2 * eps)
    atol = 1e-5 if eps < 1e-3 else 1e-3
    np.testing.assert_allclose(tangent.data, numeric, atol=atol, rtol=1e-4)
    np.testing.assert_allclose(out.data, f(*[Tensor(a) for a in arrays]).data)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@given(data=st.data())
def test_jvp_is_the_transpose_of_vjp(case: Case, data):
    """<u, J v> == <J^T u, v> for random u, v: each rule's two directions agree exactly."""
    arrays, extras = _draw(case, data)
    v = _random_like(arrays, 1)

    def f(*ts):
        return case.fn(*ts, *extras)

    out, jv = ad.jvp(f, tuple(arrays), tuple(v))
    u = np.random.default_rng(2).standard_normal(out.shape)
    _, pullback = vjp(f, *arrays)
    jtu = pullback(u)
    left = float(np.sum(u * jv.data))
    right = float(sum(np.sum(g * d) for g, d in zip(jtu, v, strict=True)))
    tol = 1e-9 if case.eps < 1e-3 else 1e-4  # the float32 round trip (cast) rounds both sides
    assert abs(left - right) <= tol * (1 + abs(left)), (left, right)


@pytest.mark.slow  # a second-order sweep over the table, like test_rules' (CI runs it)
@pytest.mark.parametrize("case", [c for c in CASES if c.second_order], ids=lambda c: c.name)
@given(data=st.data())
def test_hessian_vector_products_agree_three_ways(case: Case, data):
    """H v by forward over reverse, reverse over forward, and reverse over reverse."""
    arrays, extras = _draw(case, data)
    assume(all(a.size <= 24 for a in arrays))
    v = tuple(_random_like(arrays, 3))
    weights = np.random.default_rng(4).uniform(
        0.5, 1.5, case.fn(*[Tensor(a) for a in arrays], *extras).shape
    )

    def scalar(*ts):
        return (case.fn(*ts, *extras) * weights).sum()

    nums = tuple(range(len(arrays)))
    fwd_rev = ad.jvp(lambda *xs: grad(scalar, nums)(*xs), tuple(arrays), v)[1]
    rev_fwd = grad(lambda *xs: ad.jvp(scalar, xs, v)[1], nums)(*arrays)

    def directional(*xs):
        gs = grad(scalar, nums)(*xs)
        return sum(((g * d).sum() for g, d in zip(gs, v, strict=True)), Tensor(0.0))

    rev_rev = grad(directional, nums)(*arrays)
    for a, b, c in zip(fwd_rev, rev_fwd, rev_rev, strict=True):
        np.testing.assert_allclose(np.asarray(a.data), b, atol=1e-9, rtol=1e-7)
        np.testing.assert_allclose(b, c, atol=1e-9, rtol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tangents_take_the_output_dtype(dtype):
    x = np.linspace(-1, 1, 6, dtype=dtype).reshape(2, 3)
    out, t = ad.jvp(lambda a: (a * 2.0).tanh().sum(axis=0), (x,), (np.ones_like(x),))
    assert out.dtype == dtype and t.dtype == dtype
    np.testing.assert_allclose(t.data, (2 / np.cosh(2 * x) ** 2).sum(axis=0), rtol=1e-5)


def test_scalar_dual_numbers_micrograd_style():
    # b = -3a + a^2 at a = 2: b = -2, db/da = -3 + 2a = 1.
    b, db = ad.jvp(lambda a: a * -3 + a**2, 2.0, 1.0)
    assert b.item() == -2.0 and db.item() == 1.0
    assert b.shape == () and db.shape == ()


def test_broadcasting_tangent_of_a_broadcast_input():
    x = np.array([[1.0], [2.0]])  # (2, 1) against (3,): the output is (2, 3)
    y = np.array([10.0, 20.0, 30.0])
    out, t = ad.jvp(lambda a, b: a * b, (x, y), (np.ones((2, 1)), np.zeros(3)))
    assert t.shape == (2, 3)
    np.testing.assert_array_equal(t.data, np.broadcast_to(y, (2, 3)))
    # Only b moves: the tangent of a + b is b's tangent broadcast to the output's shape.
    _, t = ad.jvp(lambda a, b: a + b, (x, y), (np.zeros((2, 1)), np.array([1.0, 2.0, 3.0])))
    np.testing.assert_array_equal(t.data, [[1, 2, 3], [1, 2, 3]])


def test_outputs_not_depending_on_the_inputs_get_zero_tangents():
    c = Tensor(np.ones(3))
    outs, tangents = ad.jvp(lambda x: (x * 2, c * 3), (np.ones(2),), (np.ones(2),))
    np.testing.assert_array_equal(tangents[0].data, [2, 2])
    np.testing.assert_array_equal(tangents[1].data, [0, 0, 0])


def test_forward_over_forward_second_derivative():
    # f = x^3: f'' = 6x = 12 at x = 2, as the forward-mode derivative of the forward-mode one.
    def first(x):
        return ad.jvp(lambda y: y**3, (x,), (1.0,))[1]

    _, second = ad.jvp(first, (2.0,), (1.0,))
    assert second.item() == pytest.approx(12.0)


def test_nested_jvp_keeps_perturbations_apart():
    # d/dx [x * (d/dy (x * y))] = d/dx [x * x] = 2x; confusing the levels would give 4x.
    def outer(x):
        inner = ad.jvp(lambda y: x * y, (x,), (1.0,))[1]
        return x * inner

    _, d = ad.jvp(outer, (3.0,), (1.0,))
    assert d.item() == pytest.approx(6.0)


def test_tensor_tangent_requiring_grad_makes_jvp_differentiable_in_v():
    # jvp is linear in v: its gradient with respect to v is J^T u (the VJP), exactly.
    w = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    x = np.array([0.5, -0.5])
    v = Tensor(np.array([1.0, 1.0]), requires_grad=True)
    _, jv = ad.jvp(lambda a: (Tensor(w) @ a).tanh(), (x,), (v,))
    (g,) = ad.grad(jv.sum(), [v])
    expected = w.T @ (1 - np.tanh(w @ x) ** 2)
    np.testing.assert_allclose(g.data, expected)


def test_forward_mode_is_switched_off_after_jvp_even_on_error():
    with pytest.raises(ZeroDivisionError):
        ad.jvp(lambda x: 1 / 0, (1.0,), (1.0,))
    assert engine.state.forward == ()
    x = Tensor(1.0)
    assert tangent_of(x * 2) is None


def test_forward_mode_is_per_thread():
    seen = []
    ready, done = threading.Event(), threading.Event()

    def other():
        ready.wait()
        seen.append(engine.state.forward)
        done.set()

    thread = threading.Thread(target=other)
    thread.start()

    def f(x):
        ready.set()
        done.wait(5)
        return x * 2

    ad.jvp(f, (1.0,), (1.0,))
    thread.join()
    assert seen == [()]


def test_bad_tangents_are_named():
    with pytest.raises(
        ValueError,
        match=r"jvp: tangent 0 has shape \(2,\) but primal 0 has "
        r"shape \(3,\)",
    ):
        ad.jvp(lambda x: x, (np.ones(3),), (np.ones(2),))
    with pytest.raises(ValueError, match="jvp: 2 primals but 1 tangents"):
        ad.jvp(lambda x, y: x, (1.0, 2.0), (1.0,))
    with pytest.raises(TypeError, match="jvp: primal 0 has dtype int64"):
        ad.jvp(lambda x: x, (np.arange(3),), (np.ones(3),))


def test_an_op_without_a_jvp_rule_is_named():
    op = ops.Op("mystery", lambda x: x * 2, lambda g, out, x: g * 2)  # no jvp=
    with pytest.raises(NotImplementedError, match=r"mystery: this op has no JVP rule.*\(3,\)"):
        ad.jvp(lambda x: engine.apply(op, (x,)), (np.ones(3),), (np.ones(3),))


def test_ordinary_ops_carry_no_tangents_outside_jvp():
    x = Tensor(np.ones(2), requires_grad=True)
    y = (x * 3).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad.data, [3, 3])
    assert engine.state.forward == ()


def test_explain_forward_prints_the_tangent_trace(capsys):
    rows = ad.explain_forward(lambda a, b: a * b + b.tanh(), (2.0, 0.5), (1.0, 0.0))
    printed = capsys.readouterr().out
    assert "= 0.5 x da + 2 x db" in printed  # d(ab) = b da + a db
    assert [r["op"] for r in rows] == ["input", "input", "mul", "tanh", "add"]
    mul, tanh = rows[2], rows[3]
    assert mul["inputs"] == ["a", "b"] and mul["tangent"] == 0.5
    assert tanh["parts"][0]["local"] == pytest.approx(1 - np.tanh(0.5) ** 2)
    # The last tangent is d/da of the whole expression: what backward finds for a.
    a, b = Tensor(2.0, requires_grad=True), Tensor(0.5, requires_grad=True)
    (a * b + b.tanh()).backward()
    assert rows[-1]["tangent"] == pytest.approx(a.grad.item())
    assert engine.state.forward == ()


def test_writes_into_a_buffer_carry_their_tangents():
    # buf[0] = 2 x1; buf[1:] = tanh(x[:2]): the tangent follows each write (forward mode has
    # no graph to consult, so __setitem__ must move tangents itself).
    def f(x):
        buf = ad.zeros(3)
        buf[0] = x[1] * 2
        buf[1:] = x.tanh()[:2]
        return buf * x

    x = np.array([0.3, 0.5, 0.7])
    _, t = ad.jvp(f, (x,), (np.array([1.0, 0.0, 0.0]),))
    t_expected = [2 * x[1], (1 - np.tanh(x[0]) ** 2) * x[1], 0.0]
    np.testing.assert_allclose(t.data, t_expected)
    np.testing.assert_allclose(jacfwd(f)(x), jacrev(f)(x), atol=1e-12)


def test_in_place_operators_carry_tangents_like_their_out_of_place_op():
    def in_place(x):
        y = x * 2
        y += x
        y *= x
        return y

    def out_of_place(x):
        y = x * 2
        y = y + x
        return y * x

    primal, tangent = np.array([1.0, 2.0]), np.array([1.0, -0.5])
    ours = ad.jvp(in_place, (primal,), (tangent,))
    expected = ad.jvp(out_of_place, (primal,), (tangent,))
    np.testing.assert_allclose(ours[0].data, expected[0].data)
    np.testing.assert_allclose(ours[1].data, expected[1].data)  # 6 x t
    np.testing.assert_allclose(ours[1].data, 6 * primal * tangent)


def _np(value):
    return np.asarray(value.data if isinstance(value, Tensor) else value)


# --- forward mode and transforms ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_jvp_at_an_infinite_derivative_is_quiet_and_matches_torch(torch, dtype):
    """sqrt'(0) = inf: jvp answered it with a numpy RuntimeWarning from inside the pow rule,
    where the backward pass (and the README) promise the answer quietly.

    Found in the attack round (forward mode, transforms, conv, export).
    """
    x = np.array([0.0, 4.0, 0.0], dtype=dtype)
    v = np.array([1.0, 1.0, -2.0], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        y, dy = ad.jvp(lambda a: a.sqrt(), (x,), (v,))
        _, dz = ad.jvp(lambda a: abs(a) ** 0.5, (x,), (v,))
    _, expected = torch.func.jvp(torch.sqrt, (torch.tensor(x),), (torch.tensor(v),))
    np.testing.assert_array_equal(_np(dy), expected.numpy())  # inf, 0.25, -inf
    _, expected = torch.func.jvp(lambda a: a.abs() ** 0.5, (torch.tensor(x),), (torch.tensor(v),))
    np.testing.assert_array_equal(_np(dz), expected.numpy())  # 0 * inf = NaN at 0, as torch
    assert _np(dy).dtype == dtype


def test_explain_forward_shows_each_value_as_it_was_at_its_step():
    """Rows held views of the tensors' memory, so a later write into a tensor (b[0] = ...)
    changed the value printed for an earlier step: v1 = a * 1 showed [4, 2] for a = [1, 2].
    And the observer's own rule call warned at sqrt(0), where jvp is quiet.

    Found in the attack round (forward mode, transforms, conv, export).
    """

    def f(a):
        b = a * 1
        b[0] = a[1] * 2
        return b.sqrt()

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        rows = ad.explain_forward(f, (np.array([0.0, 2.0]),), (np.ones(2),), print_rows=False)
        ad.explain_forward(lambda a: a.sqrt(), (0.0,), (1.0,), print_rows=False)
    first = next(r for r in rows if r["op"] == "mul")
    np.testing.assert_array_equal(first["value"], [0.0, 2.0])
    assert rows[-1]["op"] == "pow"
    np.testing.assert_allclose(rows[-1]["value"], [2.0, np.sqrt(2.0)])


def test_jvp_tangent_is_not_a_view_of_the_callers_array():
    """The primal is copied (Tensor(x)), the tangent was not: for f = reshape the output
    tangent was a view of the caller's v, and `dy += 1` (written in place on a constant)
    changed v.

    Found in the attack round (forward mode, transforms, conv, export).
    """
    x, v = np.ones(4), np.arange(4.0)
    y, dy = ad.jvp(lambda a: a.reshape(2, 2), (x,), (v,))
    y += 1
    dy += 1
    np.testing.assert_array_equal(x, np.ones(4))
    np.testing.assert_array_equal(v, np.arange(4.0))
    np.testing.assert_array_equal(dy.data, [[1.0, 2.0], [3.0, 4.0]])


@pytest.mark.slow
def test_jvp_through_writing_numbers_and_arrays_into_a_tensor_matches_torch(torch):
    """Inside jvp, `b[1] = 7.0` (a number, not a Tensor, written into a tensor that carries a
    tangent) failed with "'float' object has no attribute '_data'" in write_tangents.

    Found in the attack round (forward mode, transforms, conv, export).
    """

    def f(a, ones, zeros, tensor):
        b = a + zeros(3)  # its tangent is a broadcast (read-only) view
        b[0] = a * 5
        b[1] = 7.0
        b[2:] = tensor([1.5])
        c = a * ones(2)
        c[...] = 3.0
        return b.sum() * a + c.sum()

    def ours(a):
        return f(a, np.ones, np.zeros, np.array)

    def theirs(a):
        return f(
            a,
            lambda n: torch.ones(n, dtype=torch.float64),
            lambda n: torch.zeros(n, dtype=torch.float64),
            lambda v: torch.tensor(v, dtype=torch.float64),
        )

    y, dy = ad.jvp(ours, (2.0,), (1.0,))
    ty, tdy = torch.func.jvp(
        theirs, (torch.tensor(2.0, dtype=torch.float64),), (torch.tensor(1.0, dtype=torch.float64),)
    )
    assert y.item() == ty.item() and dy.item() == tdy.item()
    for nested in (lambda a: ad.jvp(ours, (a,), (1.0,))[1], F.grad(ours)):
        np.testing.assert_allclose(_np(ad.jvp(nested, (2.0,), (1.0,))[1]), 10.0)


# --- state: threads and exceptions --------------------------------------------------------------


def test_forward_mode_and_no_grad_in_two_threads_at_once():
    """Found in the attack round (forward mode, transforms, conv, export)."""
    import threading

    from autodiff import engine

    errors: list[str] = []
    start = threading.Barrier(2)

    def forward_mode():
        try:
            start.wait(5)
            for i in range(60):
                x = np.array([1.0, 2.0]) * (i + 1)
                _, dy = ad.jvp(lambda a: (a * a).sum(), (x,), (np.ones(2),))
                assert dy.item() == 2 * x.sum()
                np.testing.assert_array_equal(F.hessian(lambda a: (a**3).sum())(x), np.diag(6 * x))
        except Exception as exc:  # reported below, with the thread's name
            errors.append(f"forward: {exc!r}")

    def no_grad_and_backward():
        try:
            start.wait(5)
            for _ in range(60):
                w = Tensor(np.ones(2), requires_grad=True)
                with ad.no_grad():
                    assert not (w * w).requires_grad
                    assert engine.state.forward == ()
                (w * w).sum().backward()
                np.testing.assert_array_equal(w.grad.data, [2.0, 2.0])
        except Exception as exc:
            errors.append(f"no_grad: {exc!r}")

    threads = [threading.Thread(target=t) for t in (forward_mode, no_grad_and_backward)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert engine.state.forward == () and engine.is_grad_enabled()
