"""The ops people reach for after the basics: trigonometry, smooth activations, rounding, scans,
products, norms, sorting, selection, padding and einsum.

New primitives (each a row of the same table, autodiff/rules/, with its forward and VJP rules
side by side) are kept to what cannot be composed well: sin/cos/tan, log1p/expm1 (accuracy near 0),
softplus and erf (stability), binary cross-entropy (PyTorch's gradient), the piecewise-constant
rounding ops (zero gradient), cumsum, cumprod, prod (correct with zeros) and einsum. Everything
else is a composite of primitives, so it is differentiable to any order and drawn like any
other op.
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from . import engine, rules
from ._args import Axis, _axes, _axis, _count, _dim, _float, _keep, _lift, _pair
from .composites import concatenate, where
from .engine import Node
from .rules.batching import along_axis, over_axis  # (read numbers: batched inside vmap)
from .rules.linalg import parse_einsum as _parse_einsum

if TYPE_CHECKING:  # pragma: no cover
    from .tensor import Tensor


def sin(x: Any) -> Tensor:
    return engine.apply(rules.sin, (_float(x),))


def cos(x: Any) -> Tensor:
    return engine.apply(rules.cos, (_float(x),))


def tan(x: Any) -> Tensor:
    return engine.apply(rules.tan, (_float(x),))


def sinh(x: Any) -> Tensor:
    """sinh(x), accurate for tiny x: (exp(x) - exp(-x)) / 2 cancels to 0 at x = 1e-20."""
    return engine.apply(rules.sinh, (_float(x),))


def cosh(x: Any) -> Tensor:
    return engine.apply(rules.cosh, (_float(x),))


def log1p(x: Any) -> Tensor:
    """log(1 + x), accurate for tiny x."""
    return engine.apply(rules.log1p, (_float(x),))


def expm1(x: Any) -> Tensor:
    """exp(x) - 1, accurate for tiny x."""
    return engine.apply(rules.expm1, (_float(x),))


def erf(x: Any) -> Tensor:
    return engine.apply(rules.erf, (_float(x),))


def softplus(x: Any, beta: float = 1.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, stable for large |x| (a smooth relu)."""
    x = _float(x)
    if beta == 1.0:
        return engine.apply(rules.softplus, (x,))
    return engine.apply(rules.softplus, (x * beta,)) * (1.0 / beta)


def gelu(x: Any, approximate: str = "none") -> Tensor:
    """x * Phi(x) (exact, with erf) or its tanh approximation, as PyTorch's `approximate=`."""
    x = _float(x)
    if approximate == "none":
        return x * (erf(x * (1 / math.sqrt(2))) + 1) * 0.5
    if approximate == "tanh":
        inner = (x + x * x * x * 0.044715) * math.sqrt(2 / math.pi)
        return x * (inner.tanh() + 1) * 0.5
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def elu(x: Any, alpha: float = 1.0) -> Tensor:
    x = _float(x)
    positive = x._data > 0
    # expm1 of the non-positive values only: expm1(1000) is inf, and the unused branch's
    # gradient, 0 * inf, would be NaN (elu'(1000) came out NaN instead of 1).
    return where(positive, x, expm1(where(positive, 0.0, x)) * alpha)


def silu(x: Any) -> Tensor:
    """x * sigmoid(x) (also called swish)."""
    x = _float(x)
    return x * x.sigmoid()


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Tensor:
    x = _float(x)
    return where(x._data > 0, x, x * negative_slope)


def floor(x: Any) -> Tensor:
    """Rounded down; its gradient is 0 (piecewise constant)."""
    return engine.apply(rules.floor, (_lift(x),))


def ceil(x: Any) -> Tensor:
    """Rounded up; its gradient is 0 (piecewise constant)."""
    return engine.apply(rules.ceil, (_lift(x),))


def round_(x: Any, decimals: int = 0) -> Tensor:
    """Rounded half to even, as numpy and PyTorch; its gradient is 0."""
    return engine.apply(rules.round_, (_lift(x),), decimals=int(decimals))


def sign(x: Any) -> Tensor:
    """-1, 0 or 1; its gradient is 0."""
    return engine.apply(rules.sign, (_lift(x),))


def reciprocal(x: Any) -> Tensor:
    return 1.0 / _float(x)


def rsqrt(x: Any) -> Tensor:
    return _float(x) ** -0.5


def square(x: Any) -> Tensor:
    x = _lift(x)
    return x * x


def floor_divide(a: Any, b: Any) -> Tensor:
    """a // b (rounded toward minus infinity, as Python and numpy); its gradient is 0."""
    a, b = _pair(a, b)  # a Python number takes the tensor's dtype: 3.0 // x stays float32
    return engine.apply(rules.floor_divide, (a, b))


def remainder(a: Any, b: Any) -> Tensor:
    """a % b with the sign of b (Python's and numpy's %): a - b * (a // b).

    Its gradient is 1 for a and -(a // b) for b, as in PyTorch.
    """
    a, b = _pair(a, b)  # a Python number takes the tensor's dtype: 3.0 % x stays float32
    return engine.apply(rules.remainder, (a, b))


def _scan(op: Any, who: str, x: Any, axis: int | None, dim: int | None) -> Tensor:
    x = _lift(x)
    axis = _dim(who, axis, dim)
    if axis is None:  # numpy's default: over the flattened array (a.cumsum() is 1-D)
        x, axis = x.reshape(-1), 0
    # Checked on a 0-d tensor too: its one implicit axis is 0 or -1 (as PyTorch; numpy sees
    # it as 1-d), and any other axis is an error there as on a 1-d tensor.
    ax = _axis(axis, x.ndim, who)
    return engine.apply(op, (x,), axis=ax) if x.ndim else x


def cumsum(x: Any, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Running sum along `axis` (`dim`); without one, over the flattened array, as numpy."""
    return _scan(rules.cumsum, "cumsum", x, axis, dim)


def cumprod(x: Any, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Running product along `axis` (`dim`); without one, over the flattened array."""
    return _scan(rules.cumprod, "cumprod", x, axis, dim)


def prod(
    x: Any,
    axis: Axis = None,
    keepdims: bool = False,
    *,
    dim: Axis = None,
    keepdim: bool | None = None,
) -> Tensor:
    """Product of the elements (over one axis, several, or all); the gradient is right with
    zeros."""
    x = _lift(x)
    axis, keepdims = _dim("prod", axis, dim), _keep(keepdims, keepdim)
    if isinstance(axis, (tuple, list)) and x.ndim:
        # Several axes, as numpy's a.prod(axis=(0, 2)): move them last, merge them into one,
        # and take the product along it (the one-axis rule, right with zeros, does the rest).
        axes = _axes(axis, x.ndim, "prod") or ()
        kept = [i for i in range(x.ndim) if i not in axes]
        merged = x.transpose(kept + list(axes)).reshape(tuple(x.shape[i] for i in kept) + (-1,))
        out = engine.apply(rules.prod, (merged,), axis=len(kept), keepdims=False)
        return (
            out.reshape(tuple(1 if i in axes else n for i, n in enumerate(x.shape)))
            if keepdims
            else out
        )
    ax = None if axis is None or x.ndim == 0 else _axis(axis, x.ndim, "prod")
    if axis is None and keepdims:
        return engine.apply(rules.prod, (x.reshape(-1),), axis=0, keepdims=False).reshape(
            (1,) * x.ndim
        )
    return engine.apply(rules.prod, (x,), axis=ax, keepdims=keepdims)


def argmax(
    x: Any,
    axis: int | None = None,
    keepdims: bool = False,
    *,
    dim: int | None = None,
    keepdim: bool | None = None,
) -> Tensor:
    """Index of the largest value (an int64 constant: it has no gradient), as the method."""
    return _lift(x).argmax(axis, keepdims, dim=dim, keepdim=keepdim)


def argmin(
    x: Any,
    axis: int | None = None,
    keepdims: bool = False,
    *,
    dim: int | None = None,
    keepdim: bool | None = None,
) -> Tensor:
    """Index of the smallest value (an int64 constant), as the method."""
    return _lift(x).argmin(axis, keepdims, dim=dim, keepdim=keepdim)


@over_axis
def any_(
    x: Any,
    axis: Axis = None,
    keepdims: bool = False,
    *,
    dim: Axis = None,
    keepdim: bool | None = None,
) -> Tensor:
    return _truth(np.any, "any", x, axis, keepdims, dim, keepdim)


@over_axis
def all_(
    x: Any,
    axis: Axis = None,
    keepdims: bool = False,
    *,
    dim: Axis = None,
    keepdim: bool | None = None,
) -> Tensor:
    return _truth(np.all, "all", x, axis, keepdims, dim, keepdim)


def _truth(
    reduce: Any, who: str, x: Any, axis: Axis, keepdims: bool, dim: Axis, keepdim: bool | None
) -> Tensor:
    """any / all: numpy's reduction of the truth values (a constant: no gradient), with
    PyTorch's dim= and keepdim= spellings accepted."""
    x = _lift(x)
    axis, keepdims = _dim(who, axis, dim), _keep(keepdims, keepdim)
    return _lift(reduce(x._data, axis=_axes(axis, x.ndim, who), keepdims=keepdims))


@over_axis
def norm(
    x: Any,
    ord: float = 2,
    axis: Axis = None,
    keepdims: bool = False,
    *,  # noqa: A002
    dim: Axis = None,
    keepdim: bool | None = None,
) -> Tensor:
    """Vector norm over `axis` (all elements by default): ord 1, 2, inf, -inf, 0 (the count
    of nonzeros) or any other p, (sum |x|^p)^(1/p); 'fro' is the 2-norm of all elements of
    the matrices, and 'nuc' the nuclear norm (the sum of singular values) of a matrix (or of
    the matrices on the two axes `axis` names).

    The p-norm's gradient at the zero vector is 0 (a valid subgradient, as PyTorch), not NaN.
    The nuclear norm's gradient is U V^T from the SVD; its second derivative is not
    implemented (refused, not silently 0).
    """
    x = _float(x)
    axis, keepdims = _dim("norm", axis, dim), _keep(keepdims, keepdim)
    if isinstance(ord, str) and ord in ("nuc", "fro"):
        return _matrix_norm(x, ord, axis, keepdims)
    if isinstance(ord, bool) or not isinstance(ord, (int, float, np.integer, np.floating, str)):
        raise ValueError(f"norm: ord must be a number, inf, 'fro' or 'nuc', got {ord!r}")
    if isinstance(ord, str):
        if ord not in ("inf", "-inf"):
            raise ValueError(f"norm: ord must be a number, inf, 'fro' or 'nuc', got {ord!r}")
        ord = float(ord)
    if ord == 1:
        return x.abs().sum(axis=axis, keepdims=keepdims)
    if ord == math.inf:
        return x.abs().max(axis=axis, keepdims=keepdims)
    if ord == -math.inf:
        return x.abs().min(axis=axis, keepdims=keepdims)
    if ord == 0:  # how many are nonzero: piecewise constant, its gradient is 0
        return (x != 0).astype(x.dtype).sum(axis=axis, keepdims=keepdims)
    if math.isnan(ord):
        raise ValueError(f"norm: ord must be a number, inf, 'fro' or 'nuc', got {ord!r}")
    return _p_norm(x, float(ord), axis, keepdims)


def _matrix_norm(x: Tensor, ord: str, axis: Axis, keepdims: bool) -> Tensor:
    """'fro' and 'nuc' over two axes: the last two of a 2-d or wider tensor by default."""
    if axis is None:
        if x.ndim != 2:
            raise ValueError(
                f"norm: ord={ord!r} is a matrix norm; give the two matrix axes (axis=(-2, -1)) "
                f"for a tensor of shape {x.shape}"
            )
        axis = (0, 1)
    axes = _axes(axis, x.ndim, "norm")
    if axes is None or len(axes) != 2:
        raise ValueError(f"norm: ord={ord!r} needs two axes, got axis={axis!r}")
    if ord == "fro":
        return _p_norm(x, 2.0, axes, keepdims)
    kept = [i for i in range(x.ndim) if i not in axes]
    out = engine.apply(rules.nuclear_norm, (x.transpose([*kept, *axes]),))
    if keepdims:
        out = out.reshape(tuple(1 if i in axes else n for i, n in enumerate(x.shape)))
    return out


def _p_norm(x: Tensor, p: float, axis: Axis, keepdims: bool) -> Tensor:
    # Scaled by the largest |x| (a constant: m * |x / m| is the norm for any m > 0, so the
    # gradient is unchanged), so x * x neither underflows for tiny x nor overflows for huge x.
    axes = _axes(axis, x.ndim, "norm")
    magnitude = np.abs(np.asarray(x._data))
    largest = (
        np.max(magnitude, axis=axes, keepdims=True)
        if magnitude.size
        else np.ones((1,) * x.ndim, dtype=magnitude.dtype)
    )
    # Only a finite, positive scale: an inf or NaN element would make x / m NaN everywhere
    # (the norm of [1, inf] is inf, of [1, nan] NaN); those rows are not scaled at all.
    usable = (largest > 0) & np.isfinite(largest)
    largest = np.where(usable, largest, 1).astype(magnitude.dtype)
    scaled = x / largest
    # Each scaled square is at most 1, but float16 overflows once more than 65504 of them add
    # up (the norm of 100000 ones, 316, was inf): float16 adds them in float32.
    if scaled.dtype == np.float16:
        scaled = scaled.astype(np.float32)
    if p == 2:
        squares = (scaled * scaled).sum(axis=axis, keepdims=keepdims)
    else:  # |x|^p: each scaled term is at most 1 for p > 0 (for p < 0, 0 gives inf, as numpy)
        squares = (scaled.abs() ** p).sum(axis=axis, keepdims=keepdims)
    # "!= 0", not "> 0": a NaN sum must reach sqrt and stay NaN, not become a norm of 0.
    positive = squares._data != 0
    # Two wheres: the root never sees a 0, so its infinite slope never meets a zero gradient.
    inner = where(positive, squares, 1.0)
    root = where(positive, inner.sqrt() if p == 2 else inner ** (1.0 / p), 0.0).astype(x.dtype)
    return root * (largest if keepdims else largest.reshape(np.shape(root._data)))


def _order(data: Any, axis: int, descending: bool) -> np.ndarray:
    """Stable argsort along `axis`, ascending or descending.

    Descending is not argsort(-x): negation wraps around for unsigned integers (-1 is 255 in
    uint8) and for the most negative signed one, fails for booleans, and leaves NaN last.
    Sorting the reversed axis and reversing back keeps equal values in their order and puts
    NaN first, as PyTorch's descending sort does.
    """
    if not descending:
        return np.argsort(data, axis=axis, kind="stable")
    n = np.shape(data)[axis]
    reversed_order = np.argsort(np.flip(data, axis), axis=axis, kind="stable")
    return np.flip(n - 1 - reversed_order, axis)


@over_axis
def sort(x: Any, axis: int = -1, descending: bool = False, *, dim: int | None = None) -> Tensor:
    """Sorted values; each value's gradient goes back to where it came from.

    Only the values, unlike PyTorch's (values, indices): numpy's sort gives the values.
    """
    x = _lift(x)
    axis = _dim("sort", axis, dim, -1)
    if x.ndim == 0:
        return x
    ax = _axis(axis, x.ndim, "sort")
    return take_along_axis(x, _order(x._data, ax, descending), ax)


@over_axis
def argsort(x: Any, axis: int = -1, descending: bool = False, *, dim: int | None = None) -> Tensor:
    """The indices that sort `x` along `axis` (stable; an int64 constant, no gradient), as
    numpy's a.argsort() and PyTorch's t.argsort(dim=, descending=)."""
    x = _lift(x)
    axis = _dim("argsort", axis, dim, -1)
    if x.ndim == 0:
        return _lift(np.int64(0))
    ax = _axis(axis, x.ndim, "argsort")
    return _lift(np.asarray(_order(x._data, ax, descending), dtype=np.int64))


@over_axis
def topk(
    x: Any, k: int, axis: int = -1, largest: bool = True, *, dim: int | None = None
) -> tuple[Tensor, Tensor]:
    """The k largest (or smallest) values along `axis` and their indices, largest first."""
    x = _lift(x)
    axis = _dim("topk", axis, dim, -1)
    ax = _axis(axis, x.ndim, "topk")
    if not isinstance(k, (int, np.integer)) or not 0 <= k <= x.shape[ax]:
        raise ValueError(
            f"topk: k must be an int in [0, {x.shape[ax]}] for shape {x.shape}, got {k!r}"
        )
    index = np.take(_order(x._data, ax, largest), np.arange(k), axis=ax)
    return take_along_axis(x, index, ax), _lift(index)


# --- selection and shape ---------------------------------------------------------------------


def _numbers(x: Any) -> Any:
    """A Tensor's numbers; lists, arrays and numbers as they are (indices and masks)."""
    return x._data if isinstance(x, Node) else x


def _full_index(index: np.ndarray, axis: int, shape: tuple[int, ...]) -> tuple:
    """Turn per-axis indices into an advanced index that selects along one axis only."""
    grids = np.ogrid[tuple(slice(n) for n in index.shape)]
    parts = list(grids)
    parts[axis] = index
    return tuple(parts)


@along_axis("x", "indices", axis="axis")
def take_along_axis(
    x: Any, indices: Any, axis: int | None = None, *, dim: int | None = None
) -> Tensor:
    """numpy's take_along_axis (PyTorch's gather): gradients add up at repeated indices."""
    x = _lift(x)
    axis = _dim("take_along_axis", axis, dim)
    if axis is None:
        raise TypeError("take_along_axis: give the axis (axis= or dim=)")
    index = np.asarray(_numbers(indices))
    ax = _axis(axis, x.ndim, "take_along_axis")
    if index.dtype.kind not in "iu" or index.ndim != x.ndim:
        raise ValueError(
            f"take_along_axis: indices must be integers with {x.ndim} axes like "
            f"the input {x.shape}, got {index.dtype} {index.shape}"
        )
    for i, (n, m) in enumerate(zip(index.shape, x.shape, strict=True)):
        if i != ax and n not in (1, m):
            raise ValueError(
                f"take_along_axis: indices shape {index.shape} does not fit input "
                f"shape {x.shape} outside axis {ax}"
            )
    if index.size and (index.min() < -x.shape[ax] or index.max() >= x.shape[ax]):
        raise IndexError(f"take_along_axis: index out of range for axis {ax} of size {x.shape[ax]}")
    index = np.broadcast_to(
        index, tuple(index.shape[i] if i == ax else x.shape[i] for i in range(x.ndim))
    ).copy()
    return x[_full_index(index, ax, x.shape)]


def gather(x: Any, dim: int, index: Any) -> Tensor:
    """PyTorch's gather: out[i][j] = x[index[i][j]][j] for dim 0, and so on."""
    return take_along_axis(x, index, dim)


@along_axis("x", "index", "src", axis="dim")
def scatter_add(x: Any, dim: int, index: Any, src: Any) -> Tensor:
    """PyTorch's scatter_add: a copy of x with src added at index along dim (repeats add up)."""
    x, src = _lift(x), _lift(src)
    # A copy: the node keeps the index for backward, and a caller reusing their index array
    # (writing into it before backward) moved src's gradient to other positions unseen.
    index = np.array(_numbers(index))
    ax = _axis(dim, x.ndim, "scatter_add")
    if index.shape != src.shape[: index.ndim] or index.ndim != x.ndim:
        raise ValueError(
            f"scatter_add: index shape {index.shape} must match src shape "
            f"{src.shape} and have {x.ndim} axes like the input {x.shape}"
        )

    full = _full_index(index, ax, x.shape)
    if src.shape != index.shape:
        src = src[tuple(slice(n) for n in index.shape)]
    added = engine.apply(rules.scatter_add, (src,), shape=x.shape, index=full)
    if added.dtype != x.dtype and x.dtype.kind == "f":
        added = added.astype(x.dtype)  # float64 src into a float32 x: x's dtype stays
    # Into an integer x, float src promotes (as x + src would): cast to the integers it was
    # truncated (0.5 added as 0) and, being an integer cast, cut src's gradient.
    return x + added


def masked_fill(x: Any, mask: Any, value: float) -> Tensor:
    """x with value where mask is true (the gradient there is 0)."""
    x = _lift(x)
    if getattr(mask, "_batched", False):  # a mask batched by vmap: where batches it
        return where(mask, value, x)
    return where(np.asarray(_numbers(mask), dtype=bool), value, x)


def _zero_of(x: Tensor) -> Tensor:
    """A zero in x's own dtype: a float 0.0 would turn an integer or boolean x into float64."""
    return _lift(np.zeros((), dtype=x.dtype))


def tril(x: Any, k: int = 0) -> Tensor:
    x = _lift(x)
    return where(np.tril(np.ones(x.shape[-2:], dtype=bool), k), x, _zero_of(x))


def triu(x: Any, k: int = 0) -> Tensor:
    x = _lift(x)
    return where(np.triu(np.ones(x.shape[-2:], dtype=bool), k), x, _zero_of(x))


def flip(x: Any, axis: Axis = None, *, dims: Axis = None) -> Tensor:
    """Reverse the order along `axis` (PyTorch's `dims`); along every axis by default."""
    x = _lift(x)
    axis = _dim("flip", axis, dims)
    axes: Sequence[int] | None = _axes(axis, x.ndim, "flip")
    axes = range(x.ndim) if axes is None else axes
    return x[tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(x.ndim))]


def _whole_numbers(value: Any, who: str, what: str) -> np.ndarray:
    """An int or an integer array-like (a list, tuple or array of ints) as an integer array.

    numpy also takes floats (np.repeat(x, 2.5) repeats twice) and booleans here; they are
    refused, as PyTorch refuses them, because a truncated count is a silently wrong answer.
    """
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{who}: {what} must be integers, got {value!r}")
    array = np.asarray(_numbers(value))
    if array.size == 0 and array.dtype.kind == "f":
        array = array.astype(np.intp)  # [] is no integers, not floats
    if array.dtype.kind not in "iu":
        raise TypeError(f"{who}: {what} must be integers, got {value!r}")
    return array


def roll(x: Any, shift: Any, axis: Axis = None, *, dims: Axis = None) -> Tensor:
    """numpy's roll: elements shifted along `axis` (`dims`), coming back at the other end.

    `shift` and `axis` may be tuples (one shift per axis, or broadcast against each other,
    as numpy and PyTorch take them); without an axis, the flattened array is rolled.
    """
    x = _lift(x)
    axis = _dim("roll", axis, dims)
    shifts = _whole_numbers(shift, "roll", "shifts")
    if axis is not None:
        _whole_numbers(axis, "roll", "axes")
    # numpy rolls the positions, and so checks shapes and axes exactly as it does for arrays.
    try:
        index = np.roll(np.arange(x.size).reshape(x.shape), shifts, axis)
    except (ValueError, TypeError, IndexError) as exc:
        raise ValueError(
            f"roll: {exc} (shift {shift!r}, axis {axis!r}, tensor of shape {x.shape})"
        ) from None
    return x.reshape(-1)[index.reshape(-1)].reshape(x.shape)


def repeat(x: Any, repeats: Any, axis: int | None = None) -> Tensor:
    """numpy's repeat: each element `repeats` times along axis (flattened when None);
    `repeats` may give one count per element (a list or an integer array)."""
    x = _lift(x)
    counts = _whole_numbers(repeats, "repeat", "repeats")
    if np.any(counts < 0):
        raise ValueError(f"repeat: repeats must be non-negative integers, got {repeats!r}")
    if axis is None:
        x, axis = x.reshape(-1), 0
    ax = _axis(axis, x.ndim, "repeat")
    try:
        index = np.repeat(np.arange(x.shape[ax]), counts)
    except ValueError as exc:
        raise ValueError(
            f"repeat: {exc} (repeats {repeats!r} for axis {ax} of size {x.shape[ax]})"
        ) from None
    return x[(slice(None),) * ax + (index,)]


def tile(x: Any, reps: int | Sequence[int]) -> Tensor:
    """numpy's tile: the whole array repeated `reps` times along each axis."""
    x = _lift(x)
    reps = (reps,) if isinstance(reps, (int, np.integer)) else tuple(reps)
    _count(reps, "tile", "reps")
    ndim = max(x.ndim, len(reps))
    x = x.reshape((1,) * (ndim - x.ndim) + x.shape)
    reps = (1,) * (ndim - len(reps)) + reps
    index = tuple(
        np.tile(np.arange(n), r).reshape((-1,) + (1,) * (ndim - 1 - i))
        for i, (n, r) in enumerate(zip(x.shape, cast("tuple[int, ...]", reps), strict=True))
    )
    return x[index]


def split(
    x: Any, sections: int | Sequence[int], axis: int = 0, *, dim: int | None = None
) -> list[Tensor]:
    """numpy's split: into equal sections, or at the given indices.

    (PyTorch's split takes section *sizes*; numpy's, this one, a count or cut indices.)
    """
    x = _lift(x)
    axis = _dim("split", axis, dim, 0)
    ax = _axis(axis, x.ndim, "split")
    n = x.shape[ax]
    if isinstance(sections, (int, np.integer)):
        if sections <= 0 or n % sections:
            raise ValueError(
                f"split: axis {ax} of size {n} does not split into {sections} "
                "equal sections (use chunk, or give the indices)"
            )
        # An empty axis splits into `sections` empty pieces, as in numpy (not into one).
        cuts = list(range(0, n + 1, n // sections)) if n else [0] * (sections + 1)
    else:
        cuts = [0, *sections, n]
    return [
        x[(slice(None),) * ax + (slice(a, b),)] for a, b in zip(cuts[:-1], cuts[1:], strict=True)
    ]


def chunk(x: Any, chunks: int, axis: int = 0, *, dim: int | None = None) -> list[Tensor]:
    """PyTorch's chunk: at most `chunks` pieces of ceil(n / chunks) (the last may be smaller)."""
    x = _lift(x)
    axis = _dim("chunk", axis, dim, 0)
    ax = _axis(axis, x.ndim, "chunk")
    if not isinstance(chunks, (int, np.integer)) or chunks <= 0:
        raise ValueError(f"chunk: chunks must be a positive int, got {chunks!r}")
    if x.shape[ax] == 0:
        return split(x, chunks, ax)  # `chunks` empty pieces, as PyTorch
    size = -(-x.shape[ax] // chunks)
    return split(x, list(range(size, x.shape[ax], size)), ax)


_PAD_MODES = {"edge": "edge", "replicate": "edge", "wrap": "wrap", "circular": "wrap"}


def _pad_index(n: int, before: int, after: int, mode: str, axis: int) -> np.ndarray:
    """The source position of each output position along one axis, for the index modes.

    A negative width crops that side (as torch.nn.functional.pad). 'edge' and 'reflect'
    read the uncropped axis (the values PyTorch gives); 'wrap' wraps around what is left
    after cropping, as PyTorch's 'circular' does.
    """
    if mode == "wrap":
        start, stop = max(-before, 0), n - max(-after, 0)
        kept = stop - start
        if kept <= 0 and (before > 0 or after > 0):
            raise ValueError(
                f"pad: mode 'wrap' needs a non-empty axis after cropping, got widths "
                f"({before}, {after}) on axis {axis} of size {n}"
            )
        return start + np.arange(-max(before, 0), kept + max(after, 0)) % max(kept, 1)
    if n == 0:
        raise ValueError(f"pad: mode {mode!r} cannot extend the empty axis {axis}")
    positions = np.arange(-before, n + after)
    if mode == "edge":
        return np.clip(positions, 0, n - 1)
    # reflect: the mirror image about the first and last element (which are not repeated).
    if before >= n or after >= n:
        raise ValueError(
            f"pad: reflect needs widths smaller than the axis ({n}), "
            f"got {before}, {after} on axis {axis}"
        )
    positions = np.abs(positions)
    return np.where(positions > n - 1, 2 * (n - 1) - positions, positions)


def pad(x: Any, pad_width: Any, mode: str = "constant", value: float = 0.0) -> Tensor:
    """numpy's pad (pad_width as numpy takes it) for modes 'constant', 'reflect', 'edge'
    and 'wrap', under PyTorch's names 'replicate' and 'circular' too.

    A negative width removes that many elements from that side instead (cropping, as
    torch.nn.functional.pad does; numpy refuses negative widths).
    """
    x = _lift(x)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (x.ndim, 2))
    name = mode
    mode = _PAD_MODES.get(mode, mode)
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise ValueError(
            "pad: mode must be 'constant', 'reflect', 'edge' (PyTorch's 'replicate') or "
            f"'wrap' (PyTorch's 'circular'), got {name!r}"
        )
    for ax, (before, after) in enumerate(widths.tolist()):
        n = x.shape[ax]
        if n + min(before, 0) + min(after, 0) < 0:
            raise ValueError(
                f"pad: widths ({before}, {after}) crop more than the {n} elements of axis {ax}"
            )
        if mode != "constant":
            if before or after:
                x = x[(slice(None),) * ax + (_pad_index(n, before, after, mode, ax),)]
            continue
        if before < 0 or after < 0:  # crop first; constants added on the other side stay
            x = x[(slice(None),) * ax + (slice(max(-before, 0), n - max(-after, 0)),)]
            before, after = max(before, 0), max(after, 0)
        parts = []
        for width in (before, after):
            shape = list(x.shape)
            shape[ax] = width
            parts.append(_lift(np.full(shape, value, dtype=x.dtype)))
        if before or after:
            x = concatenate([parts[0], x, parts[1]], axis=ax)
    return x


def _sublist_subscripts(args: tuple) -> tuple[str, tuple]:
    """numpy's second form, einsum(a, [0, 1], b, [1, 2], [0, 2]), as its subscripts string:
    integers 0-25 are 'A'-'Z' and 26-51 'a'-'z' (numpy's order), Ellipsis is '...'."""

    def letters(sublist: Any) -> str:
        out = []
        for item in sublist:
            if item is Ellipsis:
                out.append("...")
            elif (
                isinstance(item, (int, np.integer))
                and not isinstance(item, bool)
                and 0 <= item < 52
            ):
                out.append(string.ascii_letters[(int(item) + 26) % 52])
            else:
                raise ValueError(
                    f"einsum: a sublist holds integers in [0, 52) or Ellipsis, got {item!r}"
                )
        return "".join(out)

    pairs, output = (args[:-1], args[-1]) if len(args) % 2 else (args, None)
    inputs = ",".join(letters(t) for t in pairs[1::2])
    return (inputs if output is None else inputs + "->" + letters(output)), pairs[0::2]


def _einsum_plain(subscripts: str, tensors: tuple) -> tuple[str, tuple]:
    """Rewrite numpy's full einsum language into one letter per axis of each operand, which
    the einsum row takes: '...' becomes unused letters (right-aligned, broadcasting), a
    letter repeated in one operand takes that diagonal (indexing, so its gradient is
    right), and an axis of length 1 against a longer one broadcasts (is dropped)."""
    subscripts = subscripts.replace(" ", "")
    inputs, arrow, output = subscripts.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(tensors):
        raise ValueError(f"einsum: {subscripts!r} names {len(terms)} operands, got {len(tensors)}")
    named = "".join(terms).replace("...", "") + output.replace("...", "")
    if not all(c in string.ascii_letters for c in named):
        raise ValueError(f"einsum: subscripts must be letters (and '...'), got {subscripts!r}")
    if any(t.count("...") > 1 or ("." in t.replace("...", "")) for t in [*terms, output]):
        raise ValueError(f"einsum: an ellipsis is written '...', once per operand: {subscripts!r}")
    spare = iter(c for c in string.ascii_letters if c not in named)
    dims = [
        t.ndim - len(term.replace("...", "")) if "..." in term else 0
        for term, t in zip(terms, tensors, strict=True)
    ]
    ellipsis = "".join(next(spare) for _ in range(max(dims, default=0)))
    terms = [
        term.replace("...", ellipsis[len(ellipsis) - k :] if k > 0 else "")
        for term, k in zip(terms, dims, strict=True)
    ]
    letters = "".join(terms)
    if not arrow:  # implicit output: broadcast axes, then the letters used once, sorted
        once = sorted(c for c in set(letters) if c not in ellipsis and letters.count(c) == 1)
        output = ellipsis + "".join(once)
    elif "..." in output:
        output = output.replace("...", ellipsis)
    elif ellipsis:
        raise ValueError(
            f"einsum: {subscripts!r} broadcasts axes by '...' but its output has no '...' "
            "to put them in"
        )
    if len(set(output)) != len(output):
        raise ValueError(f"einsum: the output {output!r} repeats a letter")
    plain = []
    for term, t in zip(terms, tensors, strict=True):
        if len(term) != t.ndim:
            raise ValueError(
                f"einsum: {term!r} names {len(term)} axes but the operand has shape {t.shape}"
            )
        for c in sorted(set(term), key=term.index):
            while term.count(c) > 1:  # the diagonal of the first two axes named c, put last
                i = term.index(c)
                j = term.index(c, i + 1)
                if t.shape[i] != t.shape[j]:
                    raise ValueError(
                        f"einsum: axis {c!r} repeated in {term!r} has sizes {t.shape[i]} and "
                        f"{t.shape[j]} (shape {t.shape}); a diagonal needs equal sizes"
                    )
                rest = [k for k in range(t.ndim) if k not in (i, j)]
                diagonal = np.arange(t.shape[i])
                t = t.transpose([*rest, i, j])[..., diagonal, diagonal]
                term = "".join(term[k] for k in rest) + c
        plain.append([term, t])
    sizes: dict[str, list[int]] = {}  # each letter's sizes, in the order met
    for term, t in plain:
        for c, n in zip(term, t.shape, strict=True):
            if n not in sizes.setdefault(c, []):
                sizes[c].append(n)
    for c, seen in sizes.items():
        longer = set(seen) - {1}
        if len(longer) > 1:
            shapes = [t.shape for t in tensors]
            raise ValueError(
                f"einsum: axis {c!r} has sizes {' and '.join(map(str, seen))} in "
                f"{subscripts!r} (shapes {shapes})"
            )
        if longer and 1 in seen:  # broadcast: drop the length-1 axes named c
            for pair in plain:
                term, t = pair
                if c in term and t.shape[term.index(c)] == 1:
                    k = term.index(c)
                    pair[0] = term[:k] + term[k + 1 :]
                    pair[1] = t.reshape(t.shape[:k] + t.shape[k + 1 :])
    final = [term for term, _ in plain]
    missing = set(output) - set("".join(final))
    if missing:
        raise ValueError(f"einsum: output letters {sorted(missing)} name no operand axis")
    return ",".join(final) + "->" + output, tuple(t for _, t in plain)


def einsum(subscripts: Any, *operands: Any) -> Tensor:
    """Einstein summation, as numpy's: 'ij,jk->ik' is a matmul, 'ii->' a trace, 'ii->i' a
    diagonal, '...ij,...jk->...ik' a batched matmul; numpy's sublist form
    einsum(a, [0, 1], b, [1, 2], [0, 2]) is taken too.

    Its gradients are einsums (and, for diagonals, indexing), so it is differentiable to
    any order.
    """
    if not isinstance(subscripts, str):
        if isinstance(subscripts, (bytes, dict, set)) or subscripts is None:
            raise TypeError(
                "einsum: the first argument must be the subscripts string (or an operand, "
                f"in numpy's sublist form), got {type(subscripts).__name__}"
            )
        subscripts, operands = _sublist_subscripts((subscripts, *operands))
    tensors = tuple(_lift(x) for x in operands)
    spec, tensors = _einsum_plain(subscripts, tensors)
    _parse_einsum(spec, len(tensors))  # the row's own checks
    return engine.apply(rules.einsum, tensors, subscripts=spec)
