"""THE table of primitives: one row (`Op`) per primitive holding every fact about it, and the
lists the rest of the library reads off the rows.

The rows live by family (`elementwise`, `reductions`, `shape`, `linalg`, `windows`,
`losses`); the row type, `register` and the dispatcher `call` in `table`. Nothing about a
particular op is kept anywhere else: interop's numpy routes (`NUMPY`), the elementwise ops
whose local derivative drawings show as numbers (`ELEMENTWISE`), the Tensor methods backed by a
primitive (`METHODS`) are all derived here from the rows. To add a primitive, see
CONTRIBUTING.md (Adding a primitive).

`batch` is vmap's batching rule (autodiff/rules/batching.py): given on the rows that need
their own, and for every other elementwise row the category's default, filled in below.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import batching, elementwise, linalg, losses, reductions, shape, windows
from .elementwise import (
    abs_,
    add,
    arctan,
    cast,
    ceil,
    cos,
    cosh,
    div,
    erf,
    exp,
    expm1,
    floor,
    floor_divide,
    log,
    log1p,
    maximum,
    minimum,
    mul,
    neg,
    pow_const,
    pow_tensor,
    relu,
    remainder,
    round_,
    sigmoid,
    sign,
    sin,
    sinh,
    softplus,
    sub,
    tan,
    tanh,
    where,
)
from .linalg import einsum, linear, matmul, nuclear_norm
from .losses import binary_cross_entropy, softmax_cross_entropy
from .reductions import cumprod, cumsum, logsumexp, max_, mean, min_, prod, sum_
from .shape import broadcast_to, concatenate, getitem, reshape, scatter_add, setitem, transpose
from .table import OPS, Op, call, linear_jvp, register
from .windows import fold2d, unfold2d

# --- lists derived from the rows ----------------------------------------------------------------

# Every row is `rules.<its name in its family file>`: the imports above name the rows of this
# version for readers and type checkers; this loop makes a row added later reachable the same
# way with no edit here (see CONTRIBUTING.md (Adding a primitive)).
for _family in (elementwise, reductions, shape, linalg, windows, losses):
    for _name, _row in vars(_family).items():
        if isinstance(_row, Op) and not _name.startswith("_"):
            globals().setdefault(_name, _row)

# The batching column's category default: an elementwise op batches by broadcasting (the batch
# axis in front, unbatched inputs aligned on the right); rows with other needs name their rule.
for _op in OPS.values():
    if _op.batch is None and _op.elementwise:
        _op.batch = batching.elementwise

#: Ops whose output element i depends only on input element i (a diagonal Jacobian).
ELEMENTWISE: frozenset[str] = frozenset(name for name, op in OPS.items() if op.elementwise)
#: Ops linear in their inputs (their own JVP).
LINEAR: frozenset[str] = frozenset(name for name, op in OPS.items() if op.linear)
#: Tensor method name -> the rows it runs (pow and pow_tensor share `__pow__`).
METHODS: dict[str, tuple[Op, ...]] = {}
for _op in OPS.values():
    if _op.method is not None:
        METHODS[_op.method] = (*METHODS.get(_op.method, ()), _op)


def numpy_routes() -> dict[Callable, tuple[Op, str, str | None]]:
    """numpy callable -> (row, calling convention, Tensor method), from every row's `numpy`.

    An entry is the callable alone (a ufunc goes to the row's method with the ufunc
    convention, any other function to it with the "method" convention) or (callable, how):
    how is "convention" or "convention:method" (np.sqrt is `pow`'s, through Tensor.sqrt).
    """
    routes: dict[Callable, tuple[Op, str, str | None]] = {}
    for op in OPS.values():
        for entry in op.numpy:
            func, how = entry if isinstance(entry, tuple) else (entry, None)
            if how is None:
                how = "ufunc" if isinstance(func, np.ufunc) else "method"
            convention, _, method = how.partition(":")
            if func in routes:
                raise ValueError(f"{func} is routed to both {routes[func][0]} and {op}")
            routes[func] = (op, convention, method or op.method)
    return routes


NUMPY = numpy_routes()

__all__ = [
    "ELEMENTWISE",
    "LINEAR",
    "METHODS",
    "NUMPY",
    "OPS",
    "Op",
    "_op",
    "abs_",
    "add",
    "arctan",
    "batching",
    "binary_cross_entropy",
    "broadcast_to",
    "call",
    "cast",
    "ceil",
    "concatenate",
    "cos",
    "cosh",
    "cumprod",
    "cumsum",
    "div",
    "einsum",
    "elementwise",
    "erf",
    "exp",
    "expm1",
    "floor",
    "floor_divide",
    "fold2d",
    "getitem",
    "linalg",
    "linear",
    "linear_jvp",
    "log",
    "log1p",
    "logsumexp",
    "losses",
    "matmul",
    "max_",
    "maximum",
    "mean",
    "min_",
    "minimum",
    "mul",
    "neg",
    "nuclear_norm",
    "numpy_routes",
    "pow_const",
    "pow_tensor",
    "prod",
    "reductions",
    "register",
    "relu",
    "remainder",
    "reshape",
    "round_",
    "scatter_add",
    "setitem",
    "shape",
    "sigmoid",
    "sign",
    "sin",
    "sinh",
    "softmax_cross_entropy",
    "softplus",
    "sub",
    "sum_",
    "tan",
    "tanh",
    "transpose",
    "unfold2d",
    "where",
    "windows",
]
__all__ += sorted(
    name for name, row in globals().items() if isinstance(row, Op) and name not in __all__
)
