"""Every row of the table of primitives has every column, and the lists read off the rows
(numpy routes, Tensor methods, elementwise ops) agree with what the library does."""

import re

import numpy as np
import pytest

import autodiff as ad
from autodiff import Tensor, rules
from autodiff.viz import explain_backward

try:  # the export extra: without it the ONNX names are checked for form only
    import onnx.defs as ONNX_DEFS
except ImportError:  # pragma: no cover - CI installs it
    ONNX_DEFS = None

ROWS = sorted(rules.OPS.items())
NAMES = [name for name, _ in ROWS]

# A formula is plain text a page can render: identifiers, numbers, + - * / ^, calls, parens.
FORMULA = re.compile(r"^[A-Za-z_][A-Za-z_0-9]*|^\d+(\.\d+)?|^[-+*/^(),]|^\s+")


def _tokens_ok(text: str) -> bool:
    rest = text
    while rest:
        match = FORMULA.match(rest)
        if match is None or not match.group(0):
            return False
        rest = rest[match.end() :]
    return bool(text.strip())


def test_the_table_is_not_empty_and_every_name_is_its_key():
    assert len(ROWS) >= 54
    for name, op in ROWS:
        assert op.name == name


@pytest.mark.parametrize("name", NAMES)
def test_every_row_has_every_column(name):
    op = rules.OPS[name]
    assert callable(op.forward)
    assert op.vjps and all(callable(r) for r in op.vjps)
    inputs = 1 if op.variadic else len(op.vjps)
    assert op.jvps is not None and len(op.jvps) == inputs and all(callable(r) for r in op.jvps)
    assert isinstance(op.elementwise, bool) and isinstance(op.linear, bool)
    assert isinstance(op.numpy, tuple)
    assert op.method is None or isinstance(op.method, str)
    # One readable local derivative per input, in the syntax a page can render.
    assert isinstance(op.formula, tuple) and len(op.formula) == inputs, op.formula
    assert all(isinstance(f, str) and _tokens_ok(f) for f in op.formula), op.formula
    # An ONNX operator that exists, a translation function beside the row (in its family
    # file: nn/export.py keeps no list of its own), or an explicit reason why there is none.
    if callable(op.onnx):
        family = op.onnx.__module__
        assert family.startswith("autodiff.rules.") and family != "autodiff.rules.table", family
    elif op.onnx.startswith("none: "):
        assert len(op.onnx) > len("none: ") + 10
    else:
        assert isinstance(op.onnx, str) and op.onnx[:1].isupper(), op.onnx
        # The operator exists in the standard (checked where the export extra is installed).
        if ONNX_DEFS is not None:
            assert ONNX_DEFS.has(op.onnx), op.onnx
    # vmap's batching rule: every row has one (its own, or its category's default).
    assert callable(op.batch), op.name


@pytest.mark.parametrize("name", [n for n in NAMES if rules.OPS[n].method is not None])
def test_each_rows_method_exists_on_tensor(name):
    method = rules.OPS[name].method
    assert callable(getattr(Tensor, method, None)), method
    assert rules.OPS[name] in rules.METHODS[method]


def test_derived_lists_come_from_the_rows():
    assert {n for n, op in ROWS if op.elementwise} == rules.ELEMENTWISE
    assert {"sin", "cos", "tanh", "exp", "mul"} <= rules.ELEMENTWISE
    assert not {"matmul", "sum", "reshape", "linear"} & rules.ELEMENTWISE
    assert {"add", "sum", "reshape", "getitem", "concatenate", "unfold2d"} <= rules.LINEAR
    assert ad.viz.ELEMENTWISE is rules.ELEMENTWISE


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="already in the table"):
        rules.register("sin", np.sin, lambda g, out, x: g)


# --- the numpy column: every numpy callable reaches its row ---------------------------------

RNG = np.random.default_rng(0)
T = Tensor(RNG.uniform(0.2, 0.9, (2, 3)), requires_grad=True)
U = Tensor(RNG.uniform(0.2, 0.9, (2, 3)), requires_grad=True)

# Arguments for numpy callables whose signature is not "the tensor (and another)".
CALLS = {
    "broadcast_to": lambda f: f(T, (4, 2, 3)),
    "swapaxes": lambda f: f(T, 0, 1),
    "reshape": lambda f: f(T, (3, 2)),
    "where": lambda f: f(np.array([[True, False, True]] * 2), T, U),
    "concatenate": lambda f: f([T, U]),
    "einsum": lambda f: f("ij,kj->ik", T, U),
    "matmul": lambda f: f(T, U.T),
    "power": lambda f: f(T, U),
}


_PARAMS = {"round": {"decimals": 0}}


def _name(func):
    return getattr(func, "__name__", str(func))


@pytest.mark.parametrize(
    "func",
    list(rules.NUMPY),
    ids=[f"{_name(f)}-{op.name}" for f, (op, _, _) in rules.NUMPY.items()],
)
def test_each_numpy_function_routes_to_its_row(func):
    op, convention, _ = rules.NUMPY[func]
    if convention == "constant":
        # A step function (floor, sign, round): numpy's call answers its numbers, a constant.
        out = func(T)
        assert isinstance(out, Tensor) and not out.requires_grad
        np.testing.assert_array_equal(out.raw(), op.forward(T.raw(), **_PARAMS.get(op.name, {})))
        return
    call = CALLS.get(_name(func))
    if call is not None:
        out = call(func)
    elif isinstance(func, np.ufunc) and func.nin == 2:
        out = func(T, U)
    else:
        out = func(T)
    assert isinstance(out, Tensor) and out._op is op, (out, op)
    assert out.requires_grad  # differentiable: the numpy call went through the row


def test_a_numpy_function_on_an_array_on_the_left_also_routes():
    out = np.multiply(np.ones((2, 3)), T)
    assert out._op is rules.mul


# --- the formula column says what the rule computes ----------------------------------------

_NAMESPACE = {
    "sin": np.sin,
    "cos": np.cos,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "sign": np.sign,
    "floor": np.floor,
    "step": lambda v: (np.asarray(v) > 0).astype(float),
    "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
    "pi": np.pi,
}


def _evaluate(formula: str, values: dict) -> np.ndarray:
    return eval(formula.replace("^", "**"), {"__builtins__": {}}, {**_NAMESPACE, **values})  # noqa: S307


ELEMENTWISE_PLAIN = [
    n for n in NAMES if rules.OPS[n].elementwise and n not in ("where", "cast", "round", "pow")
]


@pytest.mark.parametrize("name", ELEMENTWISE_PLAIN)
def test_an_elementwise_formula_is_the_rules_local_derivative(name):
    op = rules.OPS[name]
    x = RNG.uniform(0.2, 0.9, 5)
    y = RNG.uniform(0.2, 0.9, 5)
    inputs = (x,) if len(op.vjps) == 1 else (x, y)
    out = op.forward(*inputs)
    names = {1: ("x",), 2: ("a", "b")}[len(inputs)]
    if name == "binary_cross_entropy":
        names = ("p", "y")
    values = dict(zip(names, inputs, strict=True), out=out)
    for i, formula in enumerate(op.formula):
        local = op.vjps[i](np.ones(5), out, *inputs)
        expected = np.broadcast_to(_evaluate(formula, values), (5,))
        np.testing.assert_allclose(local, expected, rtol=1e-9, err_msg=f"{name} input {i}")


def test_pow_formula_uses_the_exponent_param():
    x = np.array([0.5, 2.0])
    out = rules.pow_const.forward(x, exponent=3.0)
    local = rules.pow_const.vjps[0](np.ones(2), out, x, exponent=3.0)
    expected = _evaluate(rules.pow_const.formula[0], {"x": x, "exponent": 3.0})
    np.testing.assert_allclose(local, expected)


def test_explain_backward_shows_the_local_derivative_of_every_elementwise_op():
    # sin was missing from viz's own list once, so its local derivative was not shown.
    x = Tensor(np.array([0.3, 1.2]), requires_grad=True)
    rows = explain_backward(ad.sin(x).sum())
    step = next(r for r in rows if r["op"] == "sin")
    np.testing.assert_allclose(step["local"], np.cos([0.3, 1.2]))
