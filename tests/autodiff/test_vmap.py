"""vmap: every row of the table batched, compositions with the derivative transforms in both
orders, nested levels, in_axes/out_axes trees, axis_size, and the errors.

The oracle everywhere is the Python loop: vmap(f)(xs) must equal stack([f(x) for x in xs]),
in float64 and to rounding; jax is a second oracle where it is installed.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import autodiff as ad
from autodiff import conv, engine, rules
from autodiff import functions as F
from autodiff import vmap as vmap_module_function
from autodiff.func import grad, hessian, jacfwd, jacrev, jvp, vjp
from tests.autodiff.test_rules import CASES as RULE_CASES

vmod = __import__("autodiff.vmap", fromlist=["LOOP_FALLBACK"])
vmap = vmap_module_function
B = 4


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _window() -> dict:
    return dict(kernel=(2, 2), stride=(1, 1), padding=(0, 0), dilation=(1, 1))


# One case per primitive (the row it exercises is the key): f of per-example Tensors, and the
# per-example shapes of its arguments.
CASES: dict[str, tuple] = {
    "add": (lambda a, b: a + b, [(3,), (2, 3)]),
    "sub": (lambda a, b: a - b, [(2, 3), (3,)]),
    "mul": (lambda a, b: a * b, [(3,), ()]),
    "div": (lambda a, b: a / (b * b + 1), [(3,), (3,)]),
    "neg": (lambda a: -a, [(3,)]),
    "pow": (lambda a: a**3, [(2, 3)]),
    "pow_tensor": (lambda a, b: (a * a + 0.5) ** b, [(3,), (3,)]),
    "exp": (lambda a: a.exp(), [(3,)]),
    "log": (lambda a: (a * a + 0.1).log(), [(3,)]),
    "tanh": (lambda a: a.tanh(), [(3,)]),
    "sigmoid": (lambda a: a.sigmoid(), [(3,)]),
    "relu": (lambda a: a.relu(), [(3,)]),
    "abs": (lambda a: a.abs(), [(3,)]),
    "where": (lambda a, b: ad.where(a > b, a, b * 2), [(3,), (3,)]),
    "maximum": (lambda a, b: ad.maximum(a, b), [(3,), (3,)]),
    "minimum": (lambda a, b: ad.minimum(a, b), [(2, 3), (3,)]),
    "cast": (lambda a: a.astype(np.float32).astype(np.float64), [(3,)]),
    "sum": (lambda a: a.sum(axis=0) + a.sum(), [(2, 3)]),
    "mean": (lambda a: a.mean(axis=-1, keepdims=True), [(2, 3)]),
    "max": (lambda a: a.max(axis=0), [(2, 3)]),
    "min": (lambda a: a.min(), [(2, 3)]),
    "logsumexp": (lambda a: ad.logsumexp(a, axis=1), [(2, 3)]),
    "reshape": (lambda a: a.reshape(3, 2), [(2, 3)]),
    "transpose": (lambda a: a.T, [(2, 3)]),
    "broadcast_to": (lambda a: a.broadcast_to((4, 3)), [(3,)]),
    "setitem": (lambda a, b: _written(a, b), [(3, 2), (2,)]),
    "getitem": (lambda a: a[1:, [0, 2]] * a[[0, 2], 1], [(3, 3)]),
    "scatter_add": (
        lambda a: engine.apply(rules.scatter_add, (a,), shape=(4, 3), index=(np.array([0, 2, 0]),)),
        [(3, 3)],
    ),
    "concatenate": (lambda a, b: ad.concatenate([a, b], axis=0), [(2, 3), (1, 3)]),
    "matmul": (lambda a, b: a @ b, [(2, 3), (3, 4)]),
    "linear": (lambda x, w, b: ad.linear(x, w, b), [(5, 3), (2, 3), (2,)]),
    "softmax_cross_entropy": (
        lambda a: ad.softmax_cross_entropy(a, np.array([0, 2, 1, 1])),
        [(4, 3)],
    ),
    "sin": (lambda a: F.sin(a), [(3,)]),
    "cos": (lambda a: F.cos(a), [(3,)]),
    "sinh": (lambda a: F.sinh(a), [(3,)]),
    "cosh": (lambda a: F.cosh(a), [(3,)]),
    "tan": (lambda a: F.tan(a * 0.3), [(3,)]),
    "log1p": (lambda a: F.log1p(a * a), [(3,)]),
    "expm1": (lambda a: F.expm1(a), [(3,)]),
    "softplus": (lambda a: F.softplus(a), [(3,)]),
    "erf": (lambda a: F.erf(a), [(3,)]),
    "binary_cross_entropy": (
        lambda a, b: engine.apply(rules.binary_cross_entropy, (a.sigmoid(), b.sigmoid())),
        [(3,), (3,)],
    ),
    "floor": (lambda a: F.floor(a * 3), [(3,)]),
    "ceil": (lambda a: F.ceil(a * 3), [(3,)]),
    "round": (lambda a: F.round_(a * 3), [(3,)]),
    "sign": (lambda a: F.sign(a), [(3,)]),
    "floor_divide": (lambda a, b: F.floor_divide(a * 5, b * b + 1), [(3,), (3,)]),
    "remainder": (lambda a, b: F.remainder(a * 5, b * b + 1), [(3,), (3,)]),
    "cumsum": (lambda a: F.cumsum(a, axis=1), [(2, 3)]),
    "prod": (lambda a: F.prod(a, axis=0), [(2, 3)]),
    "cumprod": (lambda a: F.cumprod(a, axis=-1), [(2, 3)]),
    "einsum": (lambda a, b: F.einsum("ij,jk->ki", a, b), [(2, 3), (3, 4)]),
    "unfold2d": (lambda a: conv.unfold(a, 2), [(1, 2, 4, 4)]),
    "fold2d": (
        lambda a: engine.apply(rules.fold2d, (a,), shape=(1, 2, 4, 4), **_window()),
        [(1, 2, 3, 3, 2, 2)],
    ),
}


def _written(a: ad.Tensor, b: ad.Tensor) -> ad.Tensor:
    c = a + 0.0 * b.sum()  # batched when either is: a batched value cannot go into a plain one
    c[1] = b * 2
    return c


def _batch(shapes: list, axes: tuple, seed: int = 0) -> list[ad.Tensor]:
    """Arguments for vmap: a batched one has B examples on its axis, an unbatched one is one
    example."""
    rng = _rng(seed)
    out = []
    for shape, ax in zip(shapes, axes, strict=True):
        if ax is None:
            out.append(ad.tensor(rng.normal(size=shape)))
        else:
            data = rng.normal(size=(B, *shape))
            out.append(ad.tensor(np.moveaxis(data, 0, ax)))
    return out


def _loop(f, args: list, axes: tuple, out_axis: int = 0) -> np.ndarray:
    """The oracle: f once per example, stacked."""
    rows = []
    for i in range(B):
        call = [
            a if ax is None else ad.tensor(np.take(a.numpy(), i, axis=ax))
            for a, ax in zip(args, axes, strict=True)
        ]
        rows.append(np.asarray(f(*call).detach().numpy()))
    return np.moveaxis(np.stack(rows), 0, out_axis)


def _axes_variants(count: int) -> list[tuple]:
    variants = [(0,) * count, (-1,) * count]
    for i in range(count):
        variants.append(tuple(None if j == i else 0 for j in range(count)))
    return variants


def test_every_row_has_a_rule_or_a_documented_loop():
    missing = {name for name, op in rules.OPS.items() if op.batch is None}
    missing -= vmod.LOOP_FALLBACK
    assert not missing, f"primitives without a batching rule: {sorted(missing)}"
    # the category default reaches every elementwise row; the others name their own
    default = rules.batching.elementwise
    for op in rules.OPS.values():
        assert (op.batch is default) == op.elementwise, op.name


def test_every_row_has_a_sweep_case():
    # here, or through its Case in test_rules (swept below by test_every_rules_case_...)
    covered = set(CASES) | {name for case in RULE_CASES for name in case.covers}
    assert set(rules.OPS) <= covered, sorted(set(rules.OPS) - covered)


def _ops_of(f, args) -> set[str]:
    """The primitives f applies (to check each case exercises its row): every module of the
    package that bound engine.apply under its own name sees the spy."""
    import sys

    seen: set[str] = set()
    real = engine.apply

    def spy(op, parents, **params):
        seen.add(op.name)
        return real(op, parents, **params)

    holders = [
        m
        for name, m in list(sys.modules.items())
        if name.startswith("autodiff") and getattr(m, "apply", None) is real
    ]
    for m in holders:
        m.apply = spy
    try:
        f(*args)
    finally:
        for m in holders:
            m.apply = real
    return seen


@pytest.mark.parametrize("name", sorted(CASES))
def test_sweep_matches_the_loop(name):
    f, shapes = CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a loop fallback would warn: every row has a rule
        for axes in _axes_variants(len(shapes)):
            if all(a is None for a in axes):
                continue
            args = _batch(shapes, axes)
            got = vmap(f, in_axes=axes)(*args)
            want = _loop(f, args, axes)
            np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-12, atol=1e-12)
        args = _batch(shapes, (0,) * len(shapes))
        got = vmap(f, out_axes=-1)(*args)
        np.testing.assert_allclose(
            got.detach().numpy(), _loop(f, args, (0,) * len(shapes), -1), rtol=1e-12, atol=1e-12
        )


def test_sweep_cases_exercise_their_rows():
    for name, (f, shapes) in CASES.items():
        args = _batch(shapes, (0,) * len(shapes))
        assert name in _ops_of(vmap(f), args), name


_SMOOTH = sorted(set(CASES) - {"floor", "ceil", "round", "sign", "floor_divide", "remainder"})


@pytest.mark.parametrize("name", _SMOOTH)
def test_sweep_gradients_both_orders(name):
    """vmap(grad(f)) and grad(vmap(f)) against the loop of grad(f), for every smooth row."""
    f, shapes = CASES[name]
    weights = _rng(1).normal(size=np.shape(f(*_batch(shapes, (None,) * len(shapes))).numpy()))

    def scalar(*xs):
        return (f(*xs) * weights).sum()

    axes = (0,) * len(shapes)
    args = _batch(shapes, axes)
    per_example = vmap(grad(scalar))(*args)
    want = _loop(grad(scalar), args, axes)
    np.testing.assert_allclose(per_example.numpy(), want, rtol=1e-10, atol=1e-12)
    # grad of the batched computation: the sum of the examples' losses has, with respect to
    # the batched first argument, each example's gradient in its row.
    outer = grad(lambda x0, *rest: vmap(scalar)(x0, *rest).sum())(*args)
    np.testing.assert_allclose(outer.numpy(), want, rtol=1e-10, atol=1e-12)


# --- hypothesis: broadcasting against unbatched values, axes, out_axes -----------------------

_shapes = st.lists(st.integers(1, 3), min_size=0, max_size=3).map(tuple)


@given(
    a=_shapes,
    b=_shapes,
    op=st.sampled_from(["add", "mul", "maximum", "where", "sub"]),
    a_axis=st.sampled_from([0, -1, None]),
    b_axis=st.sampled_from([0, None]),
    out_axis=st.sampled_from([0, -1]),
)
def test_binary_broadcast_property(a, b, op, a_axis, b_axis, out_axis):
    try:
        np.broadcast_shapes(a, b)
    except ValueError:
        return
    if a_axis is None and b_axis is None:
        b_axis = 0
    fs = {
        "add": lambda x, y: x + y,
        "mul": lambda x, y: x * y,
        "sub": lambda x, y: y - x,
        "maximum": ad.maximum,
        "where": lambda x, y: ad.where(x > y, x, y),
    }
    f = fs[op]
    if a_axis == -1 and len(a) == 0:
        a_axis = 0
    args = _batch([a, b], (a_axis, b_axis), seed=len(a) + 3 * len(b))
    got = vmap(f, in_axes=(a_axis, b_axis), out_axes=out_axis)(*args)
    out_ndim = len(np.broadcast_shapes(a, b)) + 1
    want = _loop(f, args, (a_axis, b_axis), out_axis % out_ndim)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-13, atol=1e-13)


@given(
    shape=st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple),
    data=st.data(),
    reduce=st.sampled_from(["sum", "mean", "max", "min", "logsumexp", "prod"]),
    keepdims=st.booleans(),
)
def test_reduction_axes_property(shape, data, reduce, keepdims):
    n = len(shape)
    axis = data.draw(
        st.one_of(
            st.none(),
            st.integers(-n, n - 1),
            st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True).map(tuple),
        )
    )
    if reduce == "logsumexp":

        def f(x):
            return ad.logsumexp(x, axis=axis, keepdims=keepdims)
    elif reduce == "prod":

        def f(x):
            return F.prod(x, axis=axis, keepdims=keepdims)
    else:

        def f(x):
            return getattr(x, reduce)(axis=axis, keepdims=keepdims)

    if reduce == "prod" and isinstance(axis, tuple):
        return  # prod takes one axis or all
    args = _batch([shape], (0,))
    np.testing.assert_allclose(vmap(f)(*args).numpy(), _loop(f, args, (0,)), rtol=1e-12)


# --- more rules: matmul's 1-d cases, indexing, linear with batched weights --------------------


@pytest.mark.parametrize(
    ("sa", "sb"),
    [((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)), ((5, 2, 3), (3,)), ((3,), (5, 3, 4))],
)
@pytest.mark.parametrize("axes", [(0, 0), (0, None), (None, 0)])
def test_matmul_one_d_cases(sa, sb, axes):
    args = _batch([sa, sb], axes)
    f = ad.matmul
    np.testing.assert_allclose(vmap(f, in_axes=axes)(*args).numpy(), _loop(f, args, axes))


@pytest.mark.parametrize(
    "index",
    [
        (slice(None), [0, 2]),
        ([0, 2], slice(None), [1, 0]),  # advanced indices separated by a slice
        (Ellipsis, 1),
        (None, 0),
        (np.array([[0, 1], [2, 2]]),),
        (np.array([True, False, True]),),
    ],
)
def test_getitem_indices(index):
    def f(a):
        return a[index]

    args = _batch([(3, 3, 2)], (0,))
    np.testing.assert_allclose(vmap(f)(*args).numpy(), _loop(f, args, (0,)))
    np.testing.assert_allclose(
        vmap(grad(lambda a: (f(a) ** 2).sum()))(*args).numpy(),
        _loop(grad(lambda a: (f(a) ** 2).sum()), args, (0,)),
    )


@pytest.mark.parametrize("axes", [(0, 0, 0), (None, 0, None), (0, None, 0), (None, None, 0)])
def test_linear_batched_weights(axes):
    args = _batch([(3,), (2, 3), (2,)], axes)
    np.testing.assert_allclose(
        vmap(ad.linear, in_axes=axes)(*args).numpy(), _loop(ad.linear, args, axes)
    )


def test_cross_entropy_with_batched_labels():
    rng = _rng(3)
    logits = ad.tensor(rng.normal(size=(B, 2, 5)))
    labels = ad.tensor(rng.integers(0, 5, size=(B, 2)))
    got = vmap(ad.softmax_cross_entropy)(logits, labels)
    want = [ad.softmax_cross_entropy(logits[i], labels[i].numpy()).item() for i in range(B)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-13)
    g = vmap(grad(ad.softmax_cross_entropy))(logits, labels)
    for i in range(B):
        gi = grad(ad.softmax_cross_entropy)(logits[i], labels[i].numpy())
        np.testing.assert_allclose(g.numpy()[i], gi.numpy(), rtol=1e-12)


def test_masks_and_comparisons_are_batched_not_mixed():
    x = ad.tensor(_rng(4).normal(size=(B, 5)))
    t = ad.tensor(_rng(5).normal(size=5))

    def f(a):
        m = a > 0
        a = F.masked_fill(a, m, 0.0)  # batched mask
        a = ad.where(t < a, a, t)  # unbatched < batched: the reflected method batches it
        return a.clip(-0.5, 0.5) + (a == a).astype(np.float64) + a.argmax()

    np.testing.assert_allclose(vmap(f)(x).numpy(), _loop(f, [x], (0,)))


# --- compositions ---------------------------------------------------------------------------


def _f(a):
    w = np.array([0.5, -1.0, 2.0])
    return ((a * a * w).sum() + a[0] * a[2]).tanh()


def _vec(a):
    return (a * np.array([1.0, 2.0, -1.0])).sin() * a.sum()


X = ad.tensor(_rng(6).normal(size=(B, 3)))


def _each(h):
    return np.stack([np.asarray(h(X[i]).detach().numpy()) for i in range(B)])


@pytest.mark.parametrize(
    ("name", "batched", "looped"),
    [
        ("grad", lambda: vmap(grad(_f))(X), lambda: _each(grad(_f))),
        ("jacrev", lambda: vmap(jacrev(_vec))(X), lambda: _each(jacrev(_vec))),
        ("jacfwd", lambda: vmap(jacfwd(_vec))(X), lambda: _each(jacfwd(_vec))),
        ("hessian", lambda: vmap(hessian(_f))(X), lambda: _each(hessian(_f))),
        (
            "jvp",
            lambda: vmap(lambda a: jvp(_vec, (a,), (ad.tensor(np.ones(3)),))[1])(X),
            lambda: _each(lambda a: jvp(_vec, (a,), (ad.tensor(np.ones(3)),))[1]),
        ),
        (
            "vjp",
            lambda: vmap(lambda a: vjp(_vec, a)[1](ad.tensor(np.ones(3)))[0])(X),
            lambda: _each(lambda a: vjp(_vec, a)[1](ad.tensor(np.ones(3)))[0]),
        ),
        (
            "vjp with batched cotangent",
            lambda: vmap(lambda a, u: vjp(_vec, a)[1](u)[0])(X, X * 2),
            lambda: np.stack([vjp(_vec, X[i])[1](X[i] * 2)[0].numpy() for i in range(B)]),
        ),
    ],
)
def test_transforms_inside_vmap(name, batched, looped):
    np.testing.assert_allclose(np.asarray(batched().numpy()), looped(), rtol=1e-12, atol=1e-14)


def test_transforms_outside_vmap():
    per = _each(grad(_f))
    np.testing.assert_allclose(grad(lambda x: vmap(_f)(x).sum())(X).numpy(), per, rtol=1e-12)
    block = np.einsum("ij,ik->ijk", np.eye(B), per)
    np.testing.assert_allclose(jacrev(vmap(_f))(X).numpy(), block, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(jacfwd(vmap(_f))(X).numpy(), block, rtol=1e-12, atol=1e-15)
    h = hessian(lambda x: vmap(_f)(x).sum())(X).numpy().reshape(B * 3, B * 3)
    for i in range(B):
        np.testing.assert_allclose(
            h[3 * i : 3 * i + 3, 3 * i : 3 * i + 3], hessian(_f)(X[i]).numpy(), rtol=1e-12
        )
    _, tangent = jvp(vmap(_f), (X,), (ad.tensor(np.ones((B, 3))),))
    np.testing.assert_allclose(tangent.numpy(), per.sum(axis=1), rtol=1e-12)


def test_per_example_gradients_of_shared_parameters():
    rng = _rng(7)
    w = ad.tensor(rng.normal(size=(3, 2)))
    xs = ad.tensor(rng.normal(size=(B, 3)))

    def loss(w, x):
        return ((x @ w).tanh() ** 2).sum()

    got = vmap(grad(loss), in_axes=(None, 0))(w, xs)
    want = np.stack([grad(loss)(w, xs[i]).numpy() for i in range(B)])
    assert got.shape == (B, 3, 2)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_grad_inside_vmap_of_a_closed_over_batched_value():
    ys = ad.tensor(_rng(8).normal(size=(B, 3)))
    x0 = ad.tensor(np.array([0.3, -0.2, 0.9]))
    got = vmap(lambda y: grad(lambda x: (x * y).sin().sum())(x0))(ys)
    np.testing.assert_allclose(got.numpy(), ys.numpy() * np.cos(x0.numpy() * ys.numpy()))


def test_nested_vmaps():
    a = ad.tensor(_rng(9).normal(size=(B, 3)))
    b = ad.tensor(_rng(10).normal(size=(5, 3)))
    outer = vmap(vmap(lambda x, y: (x * y).sum(), in_axes=(None, 0)), in_axes=(0, None))(a, b)
    np.testing.assert_allclose(outer.numpy(), a.numpy() @ b.numpy().T, rtol=1e-13)
    sq = vmap(vmap(grad(lambda x: x**3)))(a)
    np.testing.assert_allclose(sq.numpy(), 3 * a.numpy() ** 2)
    inner_grad = vmap(grad(lambda x: vmap(lambda y: y.sin())(x).sum()))(a)
    np.testing.assert_allclose(inner_grad.numpy(), np.cos(a.numpy()))
    # a mask made at the outer level used inside the inner one
    got = vmap(lambda x: vmap(lambda y: ad.where(x > 0, y, -y))(b))(a)
    want = np.where(a.numpy()[:, None, :] > 0, b.numpy()[None], -b.numpy()[None])
    np.testing.assert_allclose(got.numpy(), want)


def test_in_axes_trees_out_axes_and_axis_size():
    rng = _rng(11)
    p = {"w": ad.tensor(rng.normal(size=(3,))), "b": ad.tensor(rng.normal(size=(B,)))}
    x = ad.tensor(rng.normal(size=(3, B)))

    def f(params, x):
        return {"y": (params["w"] * x).sum() + params["b"], "w": params["w"]}

    out = vmap(f, in_axes=({"w": None, "b": 0}, 1), out_axes={"y": 0, "w": None})(p, x)
    np.testing.assert_allclose(
        out["y"].numpy(), (p["w"].numpy()[:, None] * x.numpy()).sum(0) + p["b"].numpy()
    )
    assert out["w"] is p["w"]
    pair = vmap(lambda a: (a, a * 2), out_axes=(0, 1))(ad.tensor(np.ones((B, 2))))
    assert pair[0].shape == (B, 2) and pair[1].shape == (2, B)
    made = vmap(lambda: ad.tensor(np.arange(3.0)), axis_size=5)()
    np.testing.assert_allclose(made, np.tile(np.arange(3.0), (5, 1)))
    arrays = vmap(lambda a: a * 2)(np.ones((B, 2)))
    assert type(arrays) is np.ndarray and arrays.shape == (B, 2)


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        lambda x: 1.0 if x.sum() > 0 else 0.0,
        lambda x: float(x.sum()),
        lambda x: x.sum().item(),
        lambda x: np.asarray(x),
        lambda x: int(x[0]),
        lambda x: x.tolist(),
    ],
)
def test_data_dependent_python_raises_naming_vmap_and_the_line(body):
    with pytest.raises(TypeError, match="vmap") as info:
        vmap(body)(ad.tensor(np.ones((B, 3))))
    assert "test_vmap.py" in str(info.value)


def test_errors_name_the_problem():
    x = ad.tensor(np.ones((B, 3)))
    with pytest.raises(ValueError, match="different sizes"):
        vmap(lambda a, b: a + b)(x, ad.tensor(np.ones((B + 1, 3))))
    with pytest.raises(ValueError, match="out_axes is None"):
        vmap(lambda a: a, out_axes=None)(x)
    with pytest.raises(ValueError, match="axis_size"):
        vmap(lambda a: a, in_axes=None)(x)
    with pytest.raises(ValueError, match="in_axes"):
        vmap(lambda a, b: a, in_axes=(0,))(x, x)
    with pytest.raises(TypeError, match="batched index"):
        vmap(lambda a, i: a[:, i])(
            ad.tensor(np.ones((B, 3, 3))), ad.tensor(np.zeros((B, 2), dtype=np.int64))
        )
    with pytest.raises(RuntimeError, match="vmap"):
        vmap(lambda a: a.sum().backward())(x)
    with pytest.raises(ValueError, match="scalar"):
        vmap(grad(lambda a: a * 2))(x)
    shared = ad.tensor(np.zeros(3))
    with pytest.raises(TypeError, match="shared by every example"):
        vmap(lambda a: shared.__setitem__(0, a[1]))(x)


def test_an_op_without_a_rule_loops_with_a_warning_naming_it():
    twice = rules.Op("twice_unregistered", lambda x: 2 * x, lambda g, out, x: 2 * g)
    x = ad.tensor(_rng(12).normal(size=(B, 3)), requires_grad=True)
    with pytest.warns(UserWarning, match="twice_unregistered"):
        out = vmap(lambda a: engine.apply(twice, (a,)))(x)
    np.testing.assert_allclose(out.numpy(), 2 * x.numpy())
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full((B, 3), 2.0))


def test_no_interpreter_left_behind_after_an_error():
    with pytest.raises(TypeError):
        vmap(lambda a: float(a))(ad.tensor(np.ones(B)))
    assert engine.state.interpreters == ()
    assert engine.interpreting == 0


# --- jax as a second oracle -------------------------------------------------------------------


def test_against_jax_per_example_gradients_and_axes():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    rng = _rng(13)
    w1, w2 = rng.normal(size=(3, 4)), rng.normal(size=(4,))
    xs, ys = rng.normal(size=(3, B)), rng.normal(size=(B,))

    def ours(w1, w2, x, y):
        h = (x @ w1).tanh()
        return ((h @ w2 - y) ** 2).sum()

    def theirs(params, x, y):
        h = jnp.tanh(x @ params[0])
        return jnp.sum((h @ params[1] - y) ** 2)

    # the batch on axis 1 of x; parameters shared; the gradient's batch axis put last
    got = vmap(grad(ours, argnums=(0, 1)), in_axes=(None, None, 1, 0), out_axes=-1)(
        ad.tensor(w1), ad.tensor(w2), ad.tensor(xs), ad.tensor(ys)
    )
    want = jax.vmap(jax.grad(theirs), in_axes=(None, 1, 0), out_axes=-1)(
        (jnp.asarray(w1), jnp.asarray(w2)), jnp.asarray(xs), jnp.asarray(ys)
    )
    for g, h in zip(got, want, strict=True):
        np.testing.assert_allclose(g.numpy(), np.asarray(h), rtol=1e-12, atol=1e-14)
    hess = vmap(hessian(lambda x: (x.sin() * x).sum()))(ad.tensor(xs.T.copy()))
    jhess = jax.vmap(jax.hessian(lambda x: jnp.sum(jnp.sin(x) * x)))(jnp.asarray(xs.T.copy()))
    np.testing.assert_allclose(hess.numpy(), np.asarray(jhess), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("x_axis", [0, None])
def test_batched_integer_index_gathers_per_example(x_axis):
    rng = _rng(14)
    x = ad.tensor(rng.normal(size=(B, 5, 2)) if x_axis == 0 else rng.normal(size=(5, 2)))
    i = ad.tensor(rng.integers(0, 5, size=(B, 3)))
    j = ad.tensor(rng.integers(0, 2, size=(B, 3)))

    def f(a, i, j):
        return a[i] * 2 + a[i, j][:, None] + a[i, 1][:, None]

    got = vmap(f, in_axes=(x_axis, 0, 0))(x, i, j)
    want = [f(x[k] if x_axis == 0 else x, i[k].numpy(), j[k].numpy()).numpy() for k in range(B)]
    np.testing.assert_allclose(got.numpy(), np.stack(want))
    if x_axis == 0:
        g = vmap(grad(lambda a, i, j: f(a, i, j).sum()))(x, i, j)
        gw = [
            grad(lambda a, k=k: f(a, i[k].numpy(), j[k].numpy()).sum())(x[k]).numpy()
            for k in range(B)
        ]
        np.testing.assert_allclose(g.numpy(), np.stack(gw))


# Library functions built on the rows, some of which read their input's numbers (masks, sort
# orders, norms' scales): each must give the loop's answer inside vmap, not a silent mix.
COMPOSITES: dict[str, tuple] = {
    "softmax": (lambda a: ad.softmax(a, axis=-1), [(2, 4)]),
    "log_softmax": (lambda a: ad.log_softmax(a), [(2, 4)]),
    "conv2d": (lambda a, w: conv.conv2d(a, w, padding=1), [(1, 2, 5, 5), (3, 2, 3, 3)]),
    "conv1d": (lambda a, w: conv.conv1d(a, w), [(1, 2, 6), (3, 2, 3)]),
    "max_pool2d": (lambda a: conv.max_pool2d(a, 2), [(1, 2, 4, 4)]),
    "avg_pool2d": (lambda a: conv.avg_pool2d(a, 2), [(1, 2, 4, 4)]),
    "gather": (lambda a: F.gather(a, 1, np.array([[0, 2], [1, 1]])), [(2, 3)]),
    "take_along_axis": (
        lambda a: F.take_along_axis(a, np.array([[0, 2], [1, 1]]), 1),
        [(2, 3)],
    ),
    "sort": (lambda a: F.sort(a, axis=0, descending=True), [(2, 3)]),
    "argsort": (lambda a: F.argsort(a).astype(np.float64), [(2, 3)]),
    "topk": (lambda a: F.topk(a, 2)[0] + F.topk(a, 2)[1], [(2, 3)]),
    "argmax": (lambda a: F.argmax(a, axis=1) + a.argmin(), [(2, 3)]),
    "norm": (lambda a: F.norm(a) + F.norm(a, axis=1) + F.norm(a, ord=1), [(2, 3)]),
    "any_all": (lambda a: F.any_(a > 1, axis=0) * 1.0 + F.all_(a > -1) * 2.0, [(2, 3)]),
    "tril": (lambda a: F.tril(a), [(3, 3)]),
    "pad": (lambda a: F.pad(a, (1, 1)), [(2, 3)]),
    "roll": (lambda a: F.roll(a, 1, 1), [(2, 3)]),
    "flip": (lambda a: F.flip(a, 1), [(2, 3)]),
    "repeat": (lambda a: F.repeat(a, 2, 1), [(2, 3)]),
    "tile": (lambda a: F.tile(a, (2, 1)), [(2, 3)]),
    "split_chunk": (lambda a: F.split(a, 2, 0)[1] + F.chunk(a, 3, 1)[2], [(2, 3)]),
    "stack": (lambda a, b: ad.stack([a, b], axis=1), [(2, 3), (2, 3)]),
    "scatter_add": (
        lambda a, s: F.scatter_add(a, 1, np.array([[0, 2], [1, 1]]), s),
        [(2, 3), (2, 2)],
    ),
    "gelu_silu_elu": (lambda a: F.gelu(a) + F.silu(a) + F.elu(a) + F.leaky_relu(a), [(3,)]),
    "var_std": (lambda a: a.var(axis=0) + a.std(), [(2, 3)]),
    "squeeze_flatten": (lambda a: a.unsqueeze(0).squeeze(0).flatten(), [(2, 3)]),
    "eye": (lambda a: a @ ad.eye(3), [(2, 3)]),
}


@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_library_functions_inside_vmap(name):
    f, shapes = COMPOSITES[name]
    axes = (0,) * len(shapes)
    args = _batch(shapes, axes, seed=21)
    got = vmap(f)(*args)
    np.testing.assert_allclose(got.detach().numpy(), _loop(f, args, axes), rtol=1e-12)


# --- per-example gradients of the MNIST MLP, and the DP-SGD example ----------------------------


def _mlp_loss(w1, b1, w2, b2, image, label):
    logits = ad.linear(ad.linear(image, w1, b1).relu(), w2, b2)
    return ad.softmax_cross_entropy(logits.reshape(1, 10), label.reshape(1))


def test_per_example_gradients_of_the_mnist_mlp_match_the_loop():
    import nn

    (x, y), _ = nn.data.load_mini_mnist()
    x = (x.reshape(len(x), -1)[:16] / 255).astype(np.float32)
    ad.manual_seed(0)
    first, second = nn.Linear(784, 128), nn.Linear(128, 10)
    params = [ad.tensor(p.numpy()) for p in (first.weight, first.bias, second.weight, second.bias)]
    images, labels = ad.tensor(x), ad.tensor(y[:16].astype(np.int64))
    grads = vmap(grad(_mlp_loss, argnums=(0, 1, 2, 3)), in_axes=(None,) * 4 + (0, 0))(
        *params, images, labels
    )
    one = grad(_mlp_loss, argnums=(0, 1, 2, 3))
    rows = [one(*params, images[i], labels[i]) for i in range(16)]
    for k, g in enumerate(grads):
        assert g.shape == (16, *params[k].shape) and g.dtype == np.float32
        want = np.stack([r[k].numpy() for r in rows])
        np.testing.assert_allclose(g.numpy(), want, rtol=1e-5, atol=1e-7)
    # the mean of the per-example gradients is the batch gradient
    batch = grad(
        lambda *p: ad.softmax_cross_entropy(
            ad.linear(ad.linear(images, p[0], p[1]).relu(), p[2], p[3]), labels.numpy()
        ),
        argnums=(0, 1, 2, 3),
    )(*params)
    for g, b in zip(grads, batch, strict=True):
        np.testing.assert_allclose(g.numpy().mean(axis=0), b.numpy(), rtol=1e-4, atol=1e-6)


def test_per_example_gradients_against_torch_func():
    torch = pytest.importorskip("torch")
    from torch.func import functional_call
    from torch.func import grad as tgrad
    from torch.func import vmap as tvmap

    rng = _rng(15)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 10))
    tparams = {k: v.detach().double() for k, v in model.named_parameters()}
    x, y = rng.normal(size=(B, 6)), rng.integers(0, 10, B)

    def tloss(p, image, label):
        return torch.nn.functional.cross_entropy(
            functional_call(model.double(), p, (image[None],)), label[None]
        )

    theirs = tvmap(tgrad(tloss), in_dims=(None, 0, 0))(tparams, torch.tensor(x), torch.tensor(y))
    params = [ad.tensor(v.numpy()) for v in tparams.values()]
    ours = vmap(grad(_mlp_loss, argnums=(0, 1, 2, 3)), in_axes=(None,) * 4 + (0, 0))(
        *params, ad.tensor(x), ad.tensor(y)
    )
    for g, name in zip(ours, tparams, strict=True):
        np.testing.assert_allclose(g.numpy(), theirs[name].numpy(), rtol=1e-12, atol=1e-14)


def test_dp_sgd_example_learns():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "examples/dp_sgd_mnist.py", "--steps", "30"],
        cwd=root,
        env={**__import__("os").environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    final = float(result.stdout.strip().splitlines()[-1].split("test accuracy ")[1].split()[0])
    assert final > 0.5, result.stdout  # from 0.07 before training; 0.64 measured


@pytest.mark.parametrize("x_axis", [0, None])
def test_batched_indices_along_an_axis(x_axis):
    """take_along_axis, gather and scatter_add with per-example indices (which they read as
    numbers): each example uses its own."""
    rng = _rng(16)
    x = ad.tensor(rng.normal(size=(B, 2, 3)) if x_axis == 0 else rng.normal(size=(2, 3)))
    i = ad.tensor(rng.integers(0, 3, size=(B, 2, 2)))
    s = ad.tensor(rng.normal(size=(B, 2, 2)))

    def f(a, idx, src):
        return (
            F.take_along_axis(a, idx, 1).sum()
            + F.gather(a, 1, idx)
            + F.scatter_add(a, 1, idx, src)[:, :2]
        )

    got = vmap(f, in_axes=(x_axis, 0, 0))(x, i, s)
    want = [f(x[k] if x_axis == 0 else x, i[k].numpy(), s[k]).numpy() for k in range(B)]
    np.testing.assert_allclose(got.numpy(), np.stack(want))
    g = vmap(grad(lambda src, a, idx: (f(a, idx, src) ** 2).sum()), in_axes=(0, x_axis, 0))(s, x, i)
    gw = [
        grad(lambda src, k=k: (f(x[k] if x_axis == 0 else x, i[k].numpy(), src) ** 2).sum())(
            s[k]
        ).numpy()
        for k in range(B)
    ]
    np.testing.assert_allclose(g.numpy(), np.stack(gw))


def test_trees_of_parameters_through_grad_vjp_and_jvp_inside_vmap():
    from collections import namedtuple

    rng = _rng(17)
    params = {"w": ad.tensor(rng.normal(size=(3, 2))), "b": ad.tensor(rng.normal(size=2))}
    xs = ad.tensor(rng.normal(size=(B, 3)))

    def loss(p, x):
        return ((x @ p["w"] + p["b"]).tanh() ** 2).sum()

    got = vmap(grad(loss), in_axes=(None, 0))(params, xs)
    assert sorted(got) == ["b", "w"] and got["w"].shape == (B, 3, 2)
    for i in range(B):
        want = grad(loss)(params, xs[i])
        for k in ("w", "b"):
            np.testing.assert_allclose(got[k].numpy()[i], want[k].numpy(), rtol=1e-12)

    # vjp and jvp of a tree-valued function of a tree, per example
    def f(p, x):
        return {"y": x @ p["w"], "z": (p["b"] * x[0]).sin()}

    def pulled(x):
        out, pull = vjp(lambda p: f(p, x), params)
        return pull({"y": out["y"], "z": ad.tensor(np.ones(2))})[0]

    def pushed(x):
        return jvp(lambda p: f(p, x), (params,), (params,))[1]

    for fn in (pulled, pushed):
        batched = vmap(fn)(xs)
        for i in range(B):
            one = fn(xs[i])
            for k in one:
                np.testing.assert_allclose(batched[k].numpy()[i], one[k].numpy(), rtol=1e-12)
    # a namedtuple argument, its fields given their own axes
    Pair = namedtuple("Pair", "a b")
    pair = Pair(ad.tensor(rng.normal(size=(3, B))), ad.tensor(rng.normal(size=3)))
    out = vmap(lambda p: p.a * p.b, in_axes=(Pair(1, None),))(pair)
    np.testing.assert_allclose(out.numpy(), pair.a.numpy().T * pair.b.numpy())


# --- every case of the rules' table (tests/autodiff/test_rules.py), batched -------------------
# A row added by the checklist in CONTRIBUTING.md is swept here through its test_rules Case,
# with no entry of its own: its drawn inputs, and two variations of them, make a batch of 3.


# Cases no batching can exist for, refused with an error naming vmap: a boolean mask as an
# index picks a different number of elements in each example (a ragged result).
_NO_BATCH = {"getitem_bool"}


def _variations(arrays: list, case) -> list[np.ndarray] | None:
    batch = []
    for a in arrays:
        a = np.asarray(a)
        if a.dtype.kind == "f":
            batch.append(np.stack([a * (1 + 0.01 * k) for k in range(3)]))
        else:
            batch.append(np.stack([a] * 3))
    if case.valid is not None:
        for k in range(3):
            if not case.valid(tuple(b[k] for b in batch)):
                return None
    return batch


@pytest.mark.parametrize("case", RULE_CASES, ids=lambda c: c.name)
@settings(max_examples=8, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_every_rules_case_batches_like_the_loop(case, data):
    if case.name in _NO_BATCH:  # its output's shape depends on each example's numbers
        x = ad.tensor(np.ones((3, 2)))
        with pytest.raises(TypeError, match="vmap"):
            vmap(lambda a: case.fn(a))(x)
        return
    drawn = data.draw(case.inputs)
    arrays, extras = list(drawn[: case.n_tensors]), drawn[case.n_tensors :]
    batch = _variations(arrays, case)
    assume(batch is not None)

    def f(*ts):
        return case.fn(*ts, *extras)

    tensors = [ad.tensor(b) for b in batch]
    for axes in [(0,) * len(tensors)] + (
        [(0,) + (None,) * (len(tensors) - 1)] if len(tensors) > 1 else []
    ):
        args = [
            t if ax == 0 else ad.tensor(np.asarray(arrays[i]))
            for i, (t, ax) in enumerate(zip(tensors, axes, strict=True))
        ]
        got = vmap(f, in_axes=axes)(*args).detach().numpy()
        want = np.stack(
            [
                f(*[a[k] if ax == 0 else a for a, ax in zip(args, axes, strict=True)])
                .detach()
                .numpy()
                for k in range(3)
            ]
        )
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, equal_nan=True)
    if (
        tensors[0].dtype.kind == "f"
        and np.asarray(f(*[t[0] for t in tensors])._data).dtype.kind == "f"
    ):

        def scalar(*ts):
            return f(*ts).sum()

        g = vmap(grad(scalar))(*tensors).numpy()
        gw = np.stack([grad(scalar)(*[t[k] for t in tensors]).numpy() for k in range(3)])
        np.testing.assert_allclose(g, gw, rtol=1e-9, atol=1e-12, equal_nan=True)
