"""The public functions around the primitives: wrappers that lift their arguments and
call a method or record a primitive (where, maximum, concatenate, matmul, linear, ...), and
the composites built from them (stack, softmax, log_softmax). A composite's last node can
carry the composite's name (`_composite`), so drawings read as the code does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from . import rules
from ._args import ArrayLike, Axis, _axis, _lift, _pair
from .engine import Node, apply

if TYPE_CHECKING:  # pragma: no cover
    from .tensor import Tensor


def _composite(out: Tensor, name: str) -> Tensor:
    """Name the last node of a composite (mean is a sum, then a mul): repr and drawings show
    `name` for it rather than its primitive's name, so the graph reads as the code does."""
    if out._op is not None:
        out._composite = (name, out._op)  # the op too: a later in-place write replaces it
    return out


def op_name(t: Tensor) -> str:
    """The name of the op that made `t` as the user wrote it: a composite's ("mean") while
    `t` still holds the node the composite made, else the engine's op ("mul")."""
    named = getattr(t, "_composite", None)
    if named is not None and named[1] is t._op:
        return named[0]
    assert t._op is not None, "op_name of a leaf"
    return t._op.name


def exp(x: ArrayLike) -> Tensor:
    return _lift(x).exp()


def log(x: ArrayLike) -> Tensor:
    return _lift(x).log()


def sqrt(x: ArrayLike) -> Tensor:
    return _lift(x).sqrt()


def tanh(x: ArrayLike) -> Tensor:
    return _lift(x).tanh()


def sigmoid(x: ArrayLike) -> Tensor:
    return _lift(x).sigmoid()


def relu(x: ArrayLike) -> Tensor:
    return _lift(x).relu()


def abs(x: ArrayLike) -> Tensor:  # noqa: A001
    return _lift(x).abs()


def softmax(x: ArrayLike, axis: int = -1, *, dim: int | None = None) -> Tensor:
    return _lift(x).softmax(axis=axis, dim=dim)


def log_softmax(x: ArrayLike, axis: int = -1, *, dim: int | None = None) -> Tensor:
    return _lift(x).log_softmax(axis=axis, dim=dim)


def logsumexp(
    x: ArrayLike,
    axis: Axis = None,
    keepdims: bool = False,
    *,
    dim: Axis = None,
    keepdim: bool | None = None,
) -> Tensor:
    return _lift(x).logsumexp(axis=axis, keepdims=keepdims, dim=dim, keepdim=keepdim)


def matmul(a: ArrayLike, b: ArrayLike) -> Tensor:
    a, b = _lift(a), _lift(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least 1 axis, got {a.shape} @ {b.shape}")
    inner_a = a.shape[-1]
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if inner_a != inner_b:
        raise ValueError(
            f"matmul: inner sizes do not match: {a.shape} @ {b.shape} ({inner_a} != {inner_b})"
        )
    return apply(rules.matmul, (a, b))


def linear(x: ArrayLike, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias in one node (weight has shape (out_features, in_features))."""
    # numpy weights and biases take part as constants, as arrays do in every other op.
    x, weight = _lift(x), _lift(weight)
    bias = None if bias is None else _lift(bias)
    if weight.ndim != 2 or x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input of shape {x.shape} does not fit a weight of shape {weight.shape} "
            f"(expected last axis {weight.shape[-1] if weight.ndim else '?'})"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias shape {bias.shape} != ({weight.shape[0]},)")
    parents = (x, weight) if bias is None else (x, weight, bias)
    return apply(rules.linear, parents)


_UNSIGNED: dict[np.dtype, np.dtype] = {}


def _unsigned(dtype: np.dtype) -> np.dtype:
    """The unsigned integer dtype of the same size and byte order (cached: every step asks)."""
    unsigned = _UNSIGNED.get(dtype)
    if unsigned is None:
        unsigned = _UNSIGNED[dtype] = np.dtype(dtype.str.replace("i", "u"))
    return unsigned


def softmax_cross_entropy(logits: Tensor, labels: ArrayLike) -> Tensor:
    """Mean cross-entropy of integer class labels under softmax(logits), fused and stable."""
    if getattr(labels, "_batched", False):  # labels batched by vmap (autodiff/vmap.py)
        return labels._vmap_cross_entropy(logits)
    logits = _lift(logits)
    labels = np.asarray(labels._data if isinstance(labels, Node) else labels)
    shape = logits._data.shape  # the array's, not Tensor.shape: this runs every step
    if len(shape) != 2:
        raise ValueError(f"softmax_cross_entropy: logits must be (N, C), got {shape}")
    if labels.shape != shape[:1] or labels.dtype.kind not in "iu":
        raise ValueError(
            f"softmax_cross_entropy: labels must be integers of shape ({shape[0]},), "
            f"got {labels.dtype} {labels.shape}"
        )
    return apply(
        rules.softmax_cross_entropy,
        (logits,),
        labels=class_labels("softmax_cross_entropy", labels, shape[1]),
    )


def class_labels(who: str, labels: np.ndarray, classes: int) -> np.ndarray:
    """A copy of integer `labels` (the node keeps them for backward, and the caller may reuse
    their array), checked to lie in [0, classes); `who` names the op in the error. Shared by
    softmax_cross_entropy and nn's cross_entropy, which checks the shapes itself."""
    labels = np.array(labels)
    # One reduction for both bounds: seen as unsigned, a negative label is huge.
    unsigned = _UNSIGNED.get(labels.dtype) or _unsigned(labels.dtype)
    if labels.size and np.maximum.reduce(labels.view(unsigned)) >= classes:
        raise ValueError(
            f"{who}: labels must lie in [0, {classes}), "
            f"got values from {labels.min()} to {labels.max()}"
        )
    return labels


def where(condition: ArrayLike, a: ArrayLike, b: ArrayLike) -> Tensor:
    if getattr(condition, "_batched", False):  # a mask inside vmap: batched (autodiff/vmap.py)
        return condition._vmap_where(a, b)
    # A copy of the mask: the node keeps it for backward, and the caller may reuse their array.
    cond = np.array(condition._data if isinstance(condition, Node) else condition, dtype=bool)
    a_t, b_t = _pair(a, b)
    try:
        values = np.broadcast_shapes(a_t.shape, b_t.shape)
    except ValueError:
        values = None  # the op names both shapes itself
    if values is not None:
        try:
            np.broadcast_shapes(cond.shape, values)
        except ValueError:
            raise ValueError(
                f"where: the condition's shape {cond.shape} does not broadcast with the values' "
                f"shape {values} (shapes {a_t.shape}, {b_t.shape})"
            ) from None
    return apply(rules.where, (a_t, b_t), cond=cond)


def maximum(a: ArrayLike, b: ArrayLike) -> Tensor:
    """Elementwise max. On a tie each side gets half the gradient, as `max()` splits ties (and
    as PyTorch does): the result is symmetric in its arguments."""
    return apply(rules.maximum, _pair(a, b))


def minimum(a: ArrayLike, b: ArrayLike) -> Tensor:
    """Elementwise min; ties split the gradient equally, as in `maximum`."""
    return apply(rules.minimum, _pair(a, b))


def concatenate(tensors: Sequence[ArrayLike], axis: int = 0) -> Tensor:
    parts = tuple(_lift(t) for t in tensors)
    if not parts:
        raise ValueError("concatenate: needs at least one tensor")
    ndim = parts[0].ndim
    if ndim == 0:
        raise ValueError("concatenate: 0-d tensors cannot be concatenated; use stack")
    return apply(rules.concatenate, parts, axis=_axis(axis, ndim, "concatenate"))


def cat(tensors: Sequence[ArrayLike], dim: int = 0) -> Tensor:
    """PyTorch's name for `concatenate`."""
    return concatenate(tensors, axis=dim)


def stack(tensors: Sequence[ArrayLike], axis: int = 0) -> Tensor:
    parts = [_lift(t) for t in tensors]
    if not parts:
        raise ValueError("stack: needs at least one tensor")
    shapes = {p.shape for p in parts}
    if len(shapes) != 1:
        raise ValueError(f"stack: all tensors must have the same shape, got {sorted(shapes)}")
    ax = _axis(axis, parts[0].ndim + 1, "stack")
    expanded = [p.reshape(p.shape[:ax] + (1,) + p.shape[ax:]) for p in parts]
    return concatenate(expanded, axis=ax)
