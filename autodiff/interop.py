"""numpy functions on Tensors: `np.exp(t)`, `np.sum(t)`, `np.maximum(t, 0)`, `np.matmul(a, b)`.

numpy hands a call to the Tensor among its arguments: ufuncs through `Tensor.__array_ufunc__`,
the other functions through `Tensor.__array_function__`. Which numpy callable runs which
primitive is the `numpy` column of the table's rows (`rules.NUMPY`); this module adds how
numpy's arguments become the Tensor call (a few calling conventions, one per kind of numpy
signature) and the numpy functions autodiff computes by composites, so the answer is a
differentiable Tensor. Callables whose answer carries no gradient (comparisons, argmax,
allclose, shape, ...) run on the numbers; their arrays come back as constant Tensors (as the
comparison operators do) and their plain answers (bools, shapes) as they are. Anything else
raises a TypeError that says what to write instead: running it on the numbers would silently
drop the gradient.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from . import functions as fn
from . import rules
from ._args import _axis, _lift, _operand
from .composites import concatenate, matmul, stack, where
from .engine import Node

if TYPE_CHECKING:  # pragma: no cover
    from .tensor import Tensor

# --- calling conventions -----------------------------------------------------------------------
# Which numpy callable goes to which primitive is a column of the table (`numpy` on each row,
# collected in `rules.NUMPY`). How numpy's arguments become the Tensor call is one of a few
# calling conventions, named by the rows and defined here, one per kind of numpy signature.


def _ufunc(method: str) -> Callable[..., Tensor]:
    """A ufunc called on Tensors: the Tensor method of the same meaning. A binary ufunc runs
    with a Tensor on the left (an array there would hand the call straight back to numpy,
    and to us, forever), a number taking the other side's dtype (float32 stays float32)."""

    def run(*inputs: Any) -> Tensor:
        first = inputs[0]
        if len(inputs) == 1:
            return getattr(_lift(first), method)()
        a, b = inputs
        if not isinstance(a, Node):
            a = _operand(a, b)
        return getattr(a, method)(b)

    return run


# Answers with no gradient: a comparison, a predicate, or a step function (derivative 0
# wherever it exists). They run on the numbers and give constant Tensors.
_CONSTANT_UFUNCS = {
    np.equal,
    np.not_equal,
    np.less,
    np.less_equal,
    np.greater,
    np.greater_equal,
    np.isfinite,
    np.isnan,
    np.isinf,
    np.signbit,
    np.sign,
    np.floor,
    np.ceil,
    np.trunc,
    np.rint,
    np.logical_and,
    np.logical_or,
    np.logical_xor,
    np.logical_not,
}

# What to write instead, for numpy callables that have no differentiable counterpart here.
_HINTS = {
    "log2": "t.log() / np.log(2)",
    "log10": "t.log() / np.log(10)",
    "exp2": "2.0 ** t",
    "float_power": "t ** p",
    "true_divide": "t / u",
    "logaddexp": "autodiff.logsumexp(autodiff.stack([a, b]), axis=0)",
    "fmax": "autodiff.maximum(a, b)",
    "fmin": "autodiff.minimum(a, b)",
    "copy": "t.detach() (a constant copy) or t * 1 (a differentiable one)",
    "array_split": "autodiff.chunk(t, n) or autodiff.split(t, indices)",
    "tensordot": "autodiff.einsum, or autodiff.matmul with reshape and transpose",
    "norm": "autodiff.norm(t, ord, axis) (vector norms; (t * t).sum().sqrt() for Frobenius)",
    "average": "(t * w).sum() / w.sum()",
    "linspace": "autodiff.Tensor(np.linspace(...))",
}


def _name(func: Any) -> str:
    module = "numpy" if isinstance(func, np.ufunc) else getattr(func, "__module__", "numpy")
    return f"{module}.{func.__name__}"


def unsupported(func: Any, detail: str = "") -> TypeError:
    """The error for a numpy callable we cannot differentiate through."""
    name = _name(func)
    short = func.__name__
    hint = _HINTS.get(short)
    advice = (
        f"write {hint}"
        if hint
        else (
            f"autodiff has no differentiable {short}; to use the numbers without a gradient, call "
            f"np.{name.removeprefix('numpy.')} on t.data (or t.detach())"
        )
    )
    return TypeError(f"{name}{detail} is not supported on autodiff Tensors: {advice}")


def _no_extra_options(func: Any, options: dict[str, Any]) -> None:
    """Refuse out=, dtype=, where= and friends: the result is a new Tensor in the graph."""
    if options.get("out") is not None:
        raise TypeError(
            f"{_name(func)}: out= cannot receive a Tensor result (the graph needs a new "
            "tensor); write `x = x + t` rather than `x += t` for a numpy array x"
        )
    extra = sorted(k for k, v in options.items() if k != "out" and v is not None)
    if extra:
        raise TypeError(
            f"{_name(func)}: option {', '.join(extra)} is not supported on autodiff Tensors"
        )


def _data(x: Any) -> Any:
    if isinstance(x, Node):
        return x._data
    if isinstance(x, (list, tuple)):
        return type(x)(_data(v) for v in x)
    return x


def _constant(value: Any) -> Any:
    """Arrays of numbers come back as constant Tensors; everything else unchanged."""
    if isinstance(value, (np.ndarray, np.generic)) and value.dtype.kind in "biuf":
        return _lift(value)
    return value


def array_ufunc(ufunc: np.ufunc, method: str, inputs: tuple, kwargs: dict) -> Any:
    """Tensor.__array_ufunc__: a numpy ufunc on Tensors (see the module docstring)."""
    if "out" in kwargs:
        out = kwargs.pop("out")
        _no_extra_options(ufunc, {"out": out if any(o is not None for o in out) else None})
    if method == "__call__":
        if ufunc in _CONSTANT_UFUNCS:
            return _constant(ufunc(*_data(inputs), **kwargs))
        rule = _UFUNCS.get(ufunc)
        if rule is None:
            raise unsupported(ufunc)
        _no_extra_options(ufunc, kwargs)
        return rule(*inputs)
    rule = _UFUNCS.get(getattr(ufunc, method))
    if method == "reduce" and rule is not None and isinstance(inputs[0], Node):
        return rule(inputs[0], **kwargs)
    raise TypeError(
        f"numpy.{ufunc.__name__}.{method} is not supported on autodiff Tensors: of the ufunc "
        "methods only add.reduce, maximum.reduce and minimum.reduce have counterparts "
        "(t.sum, t.max, t.min)"
    )


# --- other numpy functions ---------------------------------------------------------------------


def _reduce_method(method: str) -> Callable[..., Tensor]:
    """ufunc.reduce (np.add.reduce): the reduction, with numpy's default axis=0."""

    def run(a: Tensor, axis: Any = 0, keepdims: bool = False, **options: Any) -> Tensor:
        _no_extra_options(getattr(np, method, np.sum), options)
        return getattr(a, method)(axis=axis, keepdims=keepdims)

    return run


def _reduction(method: str, func: Callable) -> Callable[..., Tensor]:
    def run(
        a: Any,
        axis: Any = None,
        dtype: Any = None,
        out: Any = None,
        keepdims: bool = False,
        **options: Any,
    ) -> Tensor:
        _no_extra_options(func, {"dtype": dtype, "out": out, **options})
        return getattr(_lift(a), method)(axis=axis, keepdims=keepdims)

    return run


def _extremum(method: str, func: Callable) -> Callable[..., Tensor]:
    def run(
        a: Any, axis: Any = None, out: Any = None, keepdims: bool = False, **options: Any
    ) -> Tensor:
        _no_extra_options(func, {"out": out, **options})
        return getattr(_lift(a), method)(axis=axis, keepdims=keepdims)

    return run


def _scan(method: str, func: Callable) -> Callable[..., Tensor]:
    """A scan with numpy's default axis=None: over the flattened array (as the method)."""

    def run(a: Any, axis: Any = None, dtype: Any = None, out: Any = None) -> Tensor:
        _no_extra_options(func, {"dtype": dtype, "out": out})
        return getattr(_lift(a), method)(axis)

    return run


def _method(method: str, func: Callable) -> Callable[..., Tensor]:
    """The method on the first argument, the others passed as numpy received them."""

    def run(a: Any, *args: Any, **kwargs: Any) -> Tensor:
        return getattr(_lift(a), method)(*args, **kwargs)

    return run


def _spread(method: str) -> Callable[..., Tensor]:
    def run(
        a: Any,
        axis: Any = None,
        dtype: Any = None,
        out: Any = None,
        ddof: int = 0,
        keepdims: bool = False,
        *,
        correction: Any = None,
        **options: Any,
    ) -> Tensor:
        _no_extra_options(getattr(np, method), {"dtype": dtype, "out": out, **options})
        return getattr(_lift(a), method)(
            axis=axis, keepdims=keepdims, ddof=ddof, correction=correction
        )

    return run


def _reshape(
    a: Any, shape: Any = None, order: str = "C", *, newshape: Any = None, copy: Any = None
) -> Tensor:
    if order != "C":
        raise TypeError(f"numpy.reshape: order={order!r} is not supported (only 'C')")
    return _lift(a).reshape(shape if shape is not None else newshape)


def _transpose(a: Any, axes: Any = None) -> Tensor:
    return _lift(a).transpose() if axes is None else _lift(a).transpose(axes)


def _concatenate(arrays: Any, axis: Any = 0, out: Any = None, **options: Any) -> Tensor:
    _no_extra_options(np.concatenate, {"out": out, **options})
    if axis is None:  # numpy: flatten every input first
        return concatenate([_lift(a).reshape(-1) for a in arrays], axis=0)
    return concatenate(arrays, axis=axis)


def _stack(arrays: Any, axis: int = 0, out: Any = None, **options: Any) -> Tensor:
    _no_extra_options(np.stack, {"out": out, **options})
    return stack(arrays, axis=axis)


def _where(condition: Any, *values: Any) -> Any:
    if not values:  # np.where(cond) is np.nonzero(cond): indices, no gradient
        return np.nonzero(_data(condition))
    if len(values) != 2:
        raise TypeError("numpy.where: give the condition alone, or with both x and y")
    return where(condition, *values)


def _clip(
    a: Any,
    a_min: Any = None,
    a_max: Any = None,
    out: Any = None,
    *,
    min: Any = None,  # noqa: A002
    max: Any = None,
    **options: Any,
) -> Tensor:  # noqa: A002
    _no_extra_options(np.clip, {"out": out, **options})
    low = a_min if a_min is not None else min
    high = a_max if a_max is not None else max
    for bound in (low, high):
        if isinstance(bound, Node) and bound.requires_grad:
            raise TypeError(
                "numpy.clip: a bound that requires grad would get no gradient from clip; "
                "write autodiff.minimum(autodiff.maximum(t, low), high)"
            )
    return _lift(a).clip(_data(low), _data(high))


def _squeeze(a: Any, axis: Any = None) -> Tensor:
    return _lift(a).squeeze(axis)


def _expand_dims(a: Any, axis: Any) -> Tensor:
    a = _lift(a)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    ndim = a.ndim + len(axes)
    new = {_axis(x, ndim, "expand_dims") for x in axes}
    if len(new) != len(axes):
        raise ValueError(f"numpy.expand_dims: repeated axis in {axis}")
    sizes = iter(a.shape)
    return a.reshape(tuple(1 if i in new else next(sizes) for i in range(ndim)))


def _ravel(a: Any, order: str = "C") -> Tensor:
    if order != "C":
        raise TypeError(f"numpy.ravel: order={order!r} is not supported (only 'C')")
    return _lift(a).reshape(-1)


def _dot(a: Any, b: Any, out: Any = None) -> Tensor:
    _no_extra_options(np.dot, {"out": out})
    a, b = _lift(a), _lift(b)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    if a.ndim > 2 or b.ndim > 2:
        # np.dot's N-d rule (a sum over a's last and b's second-to-last axis, every pair of
        # batches) is not matmul's; refusing beats a silently different answer.
        raise TypeError(
            f"numpy.dot: for inputs with more than 2 axes ({a.shape}, {b.shape}) use "
            "autodiff.matmul (batched, as np.matmul)"
        )
    return matmul(a, b)


def _outer(a: Any, b: Any, out: Any = None) -> Tensor:
    _no_extra_options(np.outer, {"out": out})
    return _lift(a).reshape(-1, 1) * _lift(b).reshape(1, -1)


def _sort(
    a: Any, axis: Any = -1, kind: Any = None, order: Any = None, *, stable: Any = None
) -> Tensor:
    _no_extra_options(np.sort, {"order": order})
    a = _lift(a)
    return fn.sort(a.reshape(-1), 0) if axis is None else fn.sort(a, axis)


def _norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Tensor:  # noqa: A002
    x = _lift(x)
    vector = isinstance(axis, (int, np.integer)) or (axis is None and x.ndim == 1)
    if ord is None:  # numpy: the 2-norm of a vector, Frobenius of a matrix (all elements)
        return fn.norm(x, 2, axis, keepdims)
    if vector and ord in (1, 2, np.inf):
        return fn.norm(x, ord, axis, keepdims)
    raise TypeError(
        f"numpy.linalg.norm: ord={ord!r} on shape {x.shape} (axis {axis}) is not supported on "
        "autodiff Tensors: autodiff.norm has the vector norms 1, 2 and inf along one axis"
    )


def _pad(
    array: Any, pad_width: Any, mode: str = "constant", *, constant_values: Any = 0, **options: Any
) -> Tensor:
    _no_extra_options(np.pad, options)
    if not isinstance(constant_values, (int, float, np.number)):
        raise TypeError(
            "numpy.pad: only a single constant_values number is supported on autodiff Tensors"
        )
    return fn.pad(array, pad_width, mode, float(constant_values))


def _einsum(subscripts: Any, *operands: Any, out: Any = None, **options: Any) -> Tensor:
    _no_extra_options(np.einsum, {"out": out})  # optimize= only changes numpy's own schedule
    return fn.einsum(subscripts, *operands)


# numpy functions that autodiff computes by a composite of primitives (no row of their own).
_COMPOSITES: dict[Callable, Callable[..., Any]] = {
    np.positive: operator.pos,
    np.var: _spread("var"),
    np.std: _spread("std"),
    np.stack: _stack,
    np.clip: _clip,
    np.squeeze: _squeeze,
    np.expand_dims: _expand_dims,
    np.dot: _dot,
    np.outer: _outer,
    np.sort: _sort,
    np.linalg.norm: _norm,
    np.flip: lambda m, axis=None: fn.flip(m, axis),
    np.roll: lambda a, shift, axis=None: fn.roll(a, shift, axis),
    np.repeat: lambda a, repeats, axis=None: fn.repeat(a, repeats, axis),
    np.tile: lambda A, reps: fn.tile(A, reps),  # noqa: N803 - numpy's parameter name
    np.tril: lambda m, k=0: fn.tril(m, k),
    np.triu: lambda m, k=0: fn.triu(m, k),
    np.split: lambda ary, indices_or_sections, axis=0: fn.split(ary, indices_or_sections, axis),
    np.take_along_axis: lambda arr, indices, axis: fn.take_along_axis(arr, indices, axis),
    np.pad: _pad,
}

# The calling conventions rows name: (Tensor method, numpy callable) -> the adapter.
_CONVENTIONS: dict[str, Callable[[Any, Callable], Callable[..., Any]]] = {
    "ufunc": lambda method, func: _ufunc(method),
    "ufunc.reduce": lambda method, func: _reduce_method(method),
    "reduce": _reduction,
    "extremum": _extremum,
    "scan": _scan,
    "method": _method,
    "reshape": lambda method, func: _reshape,
    "ravel": lambda method, func: _ravel,
    "transpose": lambda method, func: _transpose,
    "where": lambda method, func: _where,
    "concatenate": lambda method, func: _concatenate,
    "einsum": lambda method, func: _einsum,
}


def _routes() -> tuple[dict[Any, Callable[..., Any]], dict[Callable, Callable[..., Any]]]:
    """The ufunc and function tables, from the rows' numpy column (rules.NUMPY)."""
    ufuncs: dict[Any, Callable[..., Any]] = {np.positive: operator.pos}
    functions: dict[Callable, Callable[..., Any]] = {
        f: run for f, run in _COMPOSITES.items() if not isinstance(f, np.ufunc)
    }
    for func, (_op, convention, method) in rules.NUMPY.items():
        run = _CONVENTIONS[convention](method, func)
        if isinstance(func, np.ufunc) or convention == "ufunc.reduce":
            ufuncs[func] = run
        else:
            functions[func] = run
    return ufuncs, functions


_UFUNCS, _FUNCTIONS = _routes()

# Functions whose answer has no gradient (indices, truth values, shapes, rounding): they run
# on the numbers.
_CONSTANT_FUNCTIONS = {
    np.shape,
    np.ndim,
    np.size,
    np.allclose,
    np.isclose,
    np.array_equal,
    np.array_equiv,
    np.argmax,
    np.argmin,
    np.argsort,
    np.any,
    np.all,
    np.count_nonzero,
    np.nonzero,
    np.round,
    np.around,
    np.result_type,
    np.iscomplexobj,
    np.isrealobj,
}


def array_function(func: Callable, types: tuple, args: tuple, kwargs: dict) -> Any:
    """Tensor.__array_function__: a numpy function on Tensors (see the module docstring)."""
    if not all(issubclass(t, (Node, np.ndarray)) for t in types):
        return NotImplemented  # another library's array type: let it answer
    if func in _CONSTANT_FUNCTIONS:
        return _constant(func(*_data(args), **{k: _data(v) for k, v in kwargs.items()}))
    rule = _FUNCTIONS.get(func)
    if rule is None:
        raise unsupported(func)
    return rule(*args, **kwargs)
