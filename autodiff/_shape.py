"""Tensor methods, shape family: reshape, flatten, transpose, swapaxes, broadcast_to,
unsqueeze, squeeze, permute, view, and the index composites flip, roll, repeat, tile,
masked_fill, tril, triu."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import functions, rules
from ._args import Axis, _axes, _axis
from .engine import Node, apply

if TYPE_CHECKING:  # pragma: no cover
    from .tensor import Tensor


class ShapeMethods(Node):
    """The shape methods of Tensor."""

    __slots__ = ()

    if TYPE_CHECKING:  # pragma: no cover
        # Tensor's own (autodiff/tensor.py), which these methods are part of.
        @property
        def shape(self) -> tuple[int, ...]: ...
        @property
        def ndim(self) -> int: ...
        @property
        def dtype(self) -> np.dtype: ...

    def reshape(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        try:
            shape = tuple(int(n) for n in shape)
        except (TypeError, ValueError):
            raise TypeError(f"reshape: shape must be integers, got {shape}") from None
        return apply(rules.reshape, (self,), shape=shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        """All axes into one, as numpy's flatten(); PyTorch's `flatten(start_dim, end_dim)`
        merges only those: `x.flatten(1)` keeps the batch axis ((N, C, H, W) -> (N, C*H*W)).
        (Without the arguments, `x.flatten(1)` failed with "takes 1 positional argument".)"""
        if self.ndim == 0:
            _axis(start_dim, 0, "flatten")
            _axis(end_dim, 0, "flatten")
            return self.reshape(-1)
        start = _axis(start_dim, self.ndim, "flatten")
        end = _axis(end_dim, self.ndim, "flatten")
        if start > end:
            raise ValueError(
                f"flatten: start_dim {start_dim} comes after end_dim {end_dim} "
                f"for a tensor with {self.ndim} axes"
            )
        shape = self.shape
        return self.reshape(*shape[:start], math.prod(shape[start : end + 1]), *shape[end + 1 :])

    def transpose(self, *axes: Any) -> Tensor:
        """numpy's transpose: `transpose()` reverses the axes, `transpose(axes)` permutes them.

        Note for PyTorch users: `t.transpose(0, 1)` has numpy's meaning, a full permutation:
        on a 2-D tensor it is the identity (no swap!) and on 3 or more axes it is an error. To
        swap two axes use `swapaxes(0, 1)` (or `.T` for 2-D); `permute(2, 0, 1)` is PyTorch's
        name for a permutation.
        """
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        if not axes:
            axes = tuple(reversed(range(self.ndim)))
        elif sorted(_axis(a, self.ndim, "transpose") for a in axes) != list(range(self.ndim)):
            raise ValueError(
                f"transpose: axes {axes} are not a permutation of the {self.ndim} axes of a "
                f"tensor of shape {self.shape}"
            )
        axes = tuple(_axis(a, self.ndim, "transpose") for a in axes)
        return apply(rules.transpose, (self,), axes=axes)

    def swapaxes(self, axis1: int, axis2: int) -> Tensor:
        axes = list(range(self.ndim))
        a, b = _axis(axis1, self.ndim, "swapaxes"), _axis(axis2, self.ndim, "swapaxes")
        axes[a], axes[b] = axes[b], axes[a]
        return apply(rules.transpose, (self,), axes=tuple(axes))

    def broadcast_to(self, shape: int | Sequence[int]) -> Tensor:
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        return apply(rules.broadcast_to, (self,), shape=shape)

    def unsqueeze(self, dim: int) -> Tensor:
        """A new axis of length 1 at position `dim` (numpy's expand_dims)."""
        ax = _axis(dim, self.ndim + 1, "unsqueeze")
        return self.reshape(self.shape[:ax] + (1,) + self.shape[ax:])

    def squeeze(self, dim: Axis = None) -> Tensor:
        """Drop axes of length 1: all of them, or the given ones (which must have length 1)."""
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        axes = _axes(dim, self.ndim, "squeeze") or ()
        for a in axes:
            if self.shape[a] != 1:
                raise ValueError(
                    f"squeeze: axis {a} of shape {self.shape} has length {self.shape[a]}, not 1"
                )
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if i not in axes))

    def permute(self, *dims: Any) -> Tensor:
        """PyTorch's name for a permutation of the axes: numpy's `transpose(dims)`."""
        if not dims:
            raise TypeError(f"permute: give the new order of the {self.ndim} axes")
        return self.transpose(*dims)

    def view(self, *shape: Any) -> Tensor:
        """PyTorch's name for `reshape` (here a reshape of the data, never shared writes)."""
        return self.reshape(*shape)

    def flip(self, axis: Axis = None, *, dims: Axis = None) -> Tensor:
        """`autodiff.flip` on this tensor (see there)."""
        return functions.flip(self, axis, dims=dims)

    def roll(self, shift: int, axis: int | None = None, *, dims: int | None = None) -> Tensor:
        """`autodiff.roll` on this tensor (see there)."""
        return functions.roll(self, shift, axis, dims=dims)

    def repeat(self, repeats: int, axis: int | None = None) -> Tensor:
        """`autodiff.repeat` on this tensor (see there)."""
        return functions.repeat(self, repeats, axis)

    def tile(self, reps: int | Sequence[int]) -> Tensor:
        """`autodiff.tile` on this tensor (see there)."""
        return functions.tile(self, reps)

    def masked_fill(self, mask: Any, value: float) -> Tensor:
        """`autodiff.masked_fill` on this tensor (see there)."""
        return functions.masked_fill(self, mask, value)

    def tril(self, k: int = 0) -> Tensor:
        """`autodiff.tril` on this tensor (see there)."""
        return functions.tril(self, k)

    def triu(self, k: int = 0) -> Tensor:
        """`autodiff.triu` on this tensor (see there)."""
        return functions.triu(self, k)

    def ravel(self) -> Tensor:
        """All axes into one (numpy's ravel, PyTorch's flatten())."""
        return self.reshape(-1)
