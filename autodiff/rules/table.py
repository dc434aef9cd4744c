"""The row type of the table of primitives, the registry, and the one dispatcher.

A primitive is one `Op`: everything the rest of the library needs to know about it sits in
its row (see `Op` for the columns). Rows are registered by `register`, one per primitive, in
the family files of this package (`elementwise.py`, `reductions.py`, ...); everything that
was once a separate list (which ops are elementwise, which numpy function maps to which op,
which Tensor methods exist) is read off the rows by `autodiff.rules`.

A VJP rule receives the upstream gradient `g`, the op's output `out` and its inputs, and returns
the gradient for one input. A JVP rule receives the tangent `t` of one input (the same
arguments otherwise) and returns that input's contribution to the output's tangent; the engine
adds the contributions of all inputs that carry a tangent. Both are written as if no
broadcasting happened: the engine sums each gradient back to its input's shape and broadcasts
each tangent up to the output's shape.

The same rule runs on numpy arrays (an ordinary, fast backward pass) and on Tensors (when
`create_graph=True`, so that the backward pass is recorded and can be differentiated again).
That is why rules use only operators both understand (`*`, `@`, `.T`, `.sum`, `.reshape`,
indexing) and `call(op, ...)`, which runs a primitive on either.

This module imports only the engine: it knows no Tensor class (a Tensor is recognised as an
`engine.Node`), so every module above it can use it without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypedDict

import numpy as np

from .. import engine

Node = engine.Node
ARRAY = (np.ndarray, np.generic)
PLAIN = (np.ndarray, np.generic, int, float)


class _Quiet(TypedDict):  # QUIET's keys and values, typed for np.errstate(**QUIET)
    divide: Literal["ignore"]
    invalid: Literal["ignore"]


# Where inf or NaN is the mathematical answer (1/0, log(0), log(-1), sqrt(-1)) numpy would
# warn from inside a rule file, far from the user's line: forwards answer quietly instead
# (overflow still warns) and `detect_anomaly` reports the line where the NaN is born.
QUIET: _Quiet = {"divide": "ignore", "invalid": "ignore"}

# A numpy entry of a row: the numpy callable, or (callable, how) where `how` names the calling
# convention interop uses for it (see autodiff/interop.py) or the Tensor method it goes to.
NumpyEntry = Callable | tuple[Callable, str]

# The onnx column of a row that needs more than an operator name: called by nn/export.py as
#     translate(e, names, out, *xs, **params) -> the ONNX name of the output
# with `e` the exporter's emitter (e.node(op_type, inputs, **attrs) -> output name,
# e.const(array) -> initialiser name, e.varying(i) / e.varying_out: the axes of
# input i / of the output that follow the batch size, e.static(reason): give up the symbolic
# batch axis, e.tensor_type(dtype): ONNX's code for a numpy dtype), `names` the ONNX names of
# the node's inputs, `out` and `xs` the traced arrays (for shapes and dtypes) and `params` the
# node's params. It raises `NoOnnx(reason)` for the cases it cannot write. Kept free of the
# onnx package: this table must import without it.
OnnxTranslation = Callable[..., str]
OnnxEntry = str | OnnxTranslation


class NoOnnx(Exception):
    """A translation function's refusal for one node: the reason goes into export's error."""


class Op:
    """A primitive: one row of the table, holding every fact about the op.

    Columns (every row has all of them; `tests/autodiff/test_rule_columns.py` checks it):

    - `name`: shown in drawings, errors and `Tensor.op`.
    - `forward(*arrays, **params)`: the numbers. An op that `saves` returns (output, saved)
      and its rules receive `saved=`, an intermediate they would otherwise compute again.
    - `vjps`: one VJP rule per input (reverse mode). A `variadic` op (concatenate) has one
      rule that also receives the input's index.
    - `jvps`: one JVP rule per input (forward mode); a variadic op's one rule receives the
      list of all tangents (zeros where none). A `linear` row may leave it out: its JVP is
      the op itself applied to the tangent (`linear_jvp`).
    - `elementwise`: output element i depends only on input element i (a diagonal
      Jacobian): drawings and `explain_backward` show its local derivative as numbers.
    - `linear`: the op is linear in its inputs (its own JVP; its VJP is its transpose).
    - `numpy`: the numpy functions and ufuncs it implements; `np.f(tensor)` routes here.
    - `method`: the Tensor method that runs it (None if it has none).
    - `formula`: the local derivative for each input, as plain text in the input names
      (`cos(x)` for sin, `1 - out^2` for tanh, `b` and `a` for mul): identifiers, numbers,
      `+ - * / ^`, calls and parentheses, so that it can be rendered (MathML, a drawing).
    - `onnx`: how `nn.export_onnx` writes it: the ONNX operator that computes it ("Sin",
      for a row whose node has no params and maps its inputs to the operator's in order),
      a translation function (an `OnnxTranslation`, defined beside its row, for a row that
      needs attributes, constant inputs or several operators), or "none: <reason>".
    - `batch`: `vmap`'s batching rule (autodiff/rules/batching.py); an elementwise row that
      gives none gets its category's default (autodiff/rules/__init__.py).
    """

    __slots__ = (
        "name",
        "forward",
        "vjps",
        "jvps",
        "variadic",
        "saves",
        "elementwise",
        "linear",
        "numpy",
        "method",
        "formula",
        "onnx",
        "batch",
    )

    def __init__(
        self,
        name: str,
        forward: Callable,
        *vjps: Callable,
        variadic: bool = False,
        saves: bool = False,
        jvp: Callable | tuple[Callable, ...] | None = None,
        elementwise: bool = False,
        linear: bool = False,
        numpy: tuple[NumpyEntry, ...] = (),
        method: str | None = None,
        formula: str | tuple[str, ...] | None = None,
        onnx: OnnxEntry | None = None,
        batch: Callable | None = None,
    ):
        self.name = name
        self.forward = forward
        self.vjps = vjps
        self.variadic = variadic
        self.saves = saves
        if jvp is None and linear:
            jvp = linear_jvp(self, len(vjps))
        self.jvps = (jvp,) if callable(jvp) else jvp
        self.elementwise = elementwise
        self.linear = linear
        self.numpy = tuple(numpy)
        self.method = method
        self.formula = (formula,) if isinstance(formula, str) else formula
        self.onnx = onnx
        self.batch = batch

    def __repr__(self) -> str:
        return f"Op({self.name})"


OPS: dict[str, Op] = {}


def register(name: str, forward: Callable, *vjps: Callable, **columns: Any) -> Op:
    """Add a primitive to the table: its forward, one VJP rule per input, and the other
    columns by keyword (see `Op`). Registering a name twice is refused: one row per op."""
    if name in OPS:
        raise ValueError(f"register: a primitive named {name!r} is already in the table")
    OPS[name] = op = Op(name, forward, *vjps, **columns)
    return op


def linear_jvp(op: Op, inputs: int) -> Callable | tuple[Callable, ...]:
    """The JVP of an op linear in its inputs: the op itself, run on the tangents."""
    if op.variadic:
        return lambda ts, out, *xs, **params: call(op, *ts, **params)
    if inputs == 1:
        return lambda t, out, x, **params: call(op, t, **params)
    raise ValueError(f"{op.name}: linear_jvp covers one-input and variadic ops; give jvp=")


# --- the dispatcher ------------------------------------------------------------------------


def call(op: Op, *inputs: Any, **params: Any) -> Any:
    """Run a primitive on whatever the rule has: numpy values go straight to its forward (a
    plain backward pass), and if any input is a Tensor (create_graph, forward mode on
    Tensors) the op is recorded by `engine.apply`, the other inputs lifted to constants."""
    for x in inputs:
        if not isinstance(x, Node):
            break
    else:  # all tensors: nn's layers, every step
        return engine.apply(op, inputs, **params)
    for like in inputs:
        if isinstance(like, Node):
            return engine.apply(op, tuple(lift(x, like) for x in inputs), **params)
    out = op.forward(*inputs, **params)
    return out[0] if op.saves else out


def lift(x: Any, like: Any) -> Any:
    """`x` as a constant Tensor; a Python number takes `like`'s float dtype (as
    `x * 0.5` keeps float32), numpy values keep theirs."""
    if isinstance(x, engine.Node):
        return x
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        dtype = like._data.dtype
        return engine.constant((dtype.type if dtype.kind == "f" else np.float64)(x))
    array = np.asarray(x)
    return engine.constant(array[()] if array.ndim == 0 else array)


# --- helpers that work on arrays and on Tensors ---------------------------------------------


def value(x: Any) -> Any:
    """The raw numbers, for masks and other values that carry no gradient."""
    return x._data if isinstance(x, engine.Node) else x


def keepdims(g: Any, shape: tuple[int, ...], axis: tuple[int, ...] | None, kept: bool) -> Any:
    """Give a reduction's gradient back the reduced axes (as size 1) so it broadcasts."""
    if kept:
        return g
    full = tuple(1 if (axis is None or i in axis) else n for i, n in enumerate(shape))
    return g.reshape(full)


def zeros_like(g: Any) -> Any:
    if isinstance(g, engine.Node):
        return engine.constant(np.zeros_like(g._data))
    return np.zeros_like(g)


def wide_sum(x: Any) -> Any:
    """The dtype to add up exponentials in: float32 for float16, whose sum of more than 65504
    ones (a softmax over 100k classes) overflows to inf, making the softmax 0; else x's own."""
    return np.float32 if np.result_type(x) == np.float16 else None


def is_basic_index(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, int | slice) for p in parts)


def swap(x: Any) -> Any:
    return x.swapaxes(-1, -2)
