"""Tensor methods, reductions family: sum, mean, max, min, var, std, logsumexp, softmax,
argmax, the scans and products, norm, sort, any and all. They take numpy's axis=/keepdims=
and PyTorch's dim=/keepdim= (either, not both)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from . import functions, rules
from ._args import Axis, _axes, _axis, _lift, _named_axis_only, _torch_names
from .composites import _composite, where
from .engine import Node, apply

if TYPE_CHECKING:  # pragma: no cover
    from .tensor import Tensor


class ValuesIndices(NamedTuple):
    """What max(dim=) and min(dim=) return, as PyTorch's: `.values` and `.indices`."""

    values: Tensor
    indices: Tensor


class ReductionMethods(Node):
    """The reductions of Tensor."""

    __slots__ = ()

    if TYPE_CHECKING:  # pragma: no cover
        # Tensor's own (autodiff/tensor.py), which these methods are part of.
        @property
        def shape(self) -> tuple[int, ...]: ...
        @property
        def ndim(self) -> int: ...
        @property
        def dtype(self) -> np.dtype: ...
        def _floating(self) -> Tensor: ...
        def astype(self, dtype: Any) -> Tensor: ...

    def sum(
        self,
        axis: Axis = None,
        keepdims: bool = False,
        *,
        dim: Axis = None,
        keepdim: bool | None = None,
    ) -> Tensor:
        if dim is not None or keepdim is not None:
            axis, keepdims = _torch_names("sum", axis, keepdims, dim, keepdim)
        return apply(rules.sum_, (self,), axis=_axes(axis, self.ndim, "sum"), keepdims=keepdims)

    def mean(
        self,
        axis: Axis = None,
        keepdims: bool = False,
        *,
        dim: Axis = None,
        keepdim: bool | None = None,
    ) -> Tensor:
        if dim is not None or keepdim is not None:
            axis, keepdims = _torch_names("mean", axis, keepdims, dim, keepdim)
        axes = _axes(axis, self.ndim, "mean")
        count = self._data.size if axes is None else int(np.prod([self.shape[a] for a in axes]))
        if count == 0:
            raise ValueError(f"mean: no elements to average in shape {self.shape}")
        return apply(rules.mean, (self,), axis=axes, keepdims=keepdims, count=count)

    def max(
        self,
        *by_position: Any,
        axis: Axis = None,
        keepdims: bool = False,
        dim: int | None = None,
        keepdim: bool | None = None,
    ) -> Any:
        """The largest value over `axis` (numpy's meaning: a Tensor). With PyTorch's `dim=`,
        PyTorch's answer: `(values, indices)`, so `_, predicted = out.max(dim=1)` works.

        The axis must be named: `out.max(1)` is the values in numpy and the pair in PyTorch,
        and either reading can unpack a batch of two without an error into the wrong thing.
        """
        _named_axis_only("max", by_position)
        return self._extremum(rules.max_, axis, keepdims, dim, keepdim)

    def min(
        self,
        *by_position: Any,
        axis: Axis = None,
        keepdims: bool = False,
        dim: int | None = None,
        keepdim: bool | None = None,
    ) -> Any:
        """The smallest value: numpy's meaning with `axis=`, PyTorch's (values, indices)
        with `dim=` (see max)."""
        _named_axis_only("min", by_position)
        return self._extremum(rules.min_, axis, keepdims, dim, keepdim)

    def _extremum(
        self, op: rules.Op, axis: Axis, keepdims: bool, dim: Any = None, keepdim: bool | None = None
    ) -> Any:
        if dim is not None:
            # PyTorch's max(dim=) gives (values, indices): answering values alone would let
            # `_, predicted = out.max(dim=1)` unpack a batch of two silently into two maxima.
            if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
                raise TypeError(
                    f"{op.name}: dim= takes one axis (an int), as in PyTorch, got "
                    f"{dim!r}; for several axes use axis= (values only)"
                )
            axis, keepdims = _torch_names(op.name, axis, keepdims, dim, keepdim)
            values = self._extremum(op, axis, keepdims)
            pick = self.argmax if op is rules.max_ else self.argmin
            return ValuesIndices(values, pick(axis=int(dim), keepdims=keepdims))
        if keepdim is not None:
            keepdims = bool(keepdim)
        axes = _axes(axis, self.ndim, op.name)
        shape = self._data.shape
        # Only a reduction over an axis of length 0 has no answer: the max over a non-empty
        # axis of a (0, 3) tensor is an empty result, as in numpy and PyTorch.
        if self._data.size == 0 and (axes is None or any(shape[a] == 0 for a in axes)):
            raise ValueError(
                f"{op.name}: empty tensor of shape {shape} has no {op.name}"
                + ("" if axes is None else f" over axis {axis}")
            )
        return apply(op, (self,), axis=axes, keepdims=keepdims)

    def var(
        self,
        axis: Axis = None,
        keepdims: bool = False,
        ddof: int = 0,
        *,
        dim: Axis = None,
        keepdim: bool | None = None,
        correction: int | None = None,
    ) -> Tensor:
        """Variance: sum of squared deviations / (n - ddof).

        The default is numpy's ddof=0 (the population variance), also when called with
        PyTorch's dim=; pass ddof=1 or correction=1 (PyTorch's name) for the sample variance.
        """
        var = self._var("var", axis, keepdims, ddof, dim, keepdim, correction)
        return _composite(var.astype(np.float16) if self.dtype == np.float16 else var, "var")

    def std(
        self,
        axis: Axis = None,
        keepdims: bool = False,
        ddof: int = 0,
        *,
        dim: Axis = None,
        keepdim: bool | None = None,
        correction: int | None = None,
    ) -> Tensor:
        """Standard deviation, the square root of `var` (same ddof=0 default, see there)."""
        var = self._var("std", axis, keepdims, ddof, dim, keepdim, correction)
        # sqrt'(0) is infinite: where the spread is exactly 0 (a constant row, an axis of size
        # 1) the chain rule would give 0 * inf = NaN, and the mean inside var would spread it
        # into the whole tensor. There the gradient is taken as 0, a valid subgradient (as
        # PyTorch does). NaN variances stay NaN.
        spread = var._data != 0  # (a comparison, not numpy: vmap batches it)
        std = where(spread, where(spread, var, 1.0).sqrt(), 0.0)
        return _composite(std.astype(np.float16) if self.dtype == np.float16 else std, "std")

    def _var(
        self,
        who: str,
        axis: Axis,
        keepdims: bool,
        ddof: int,
        dim: Axis,
        keepdim: bool | None,
        correction: int | None,
    ) -> Tensor:
        if dim is not None or keepdim is not None:
            axis, keepdims = _torch_names(who, axis, keepdims, dim, keepdim)
        if correction is not None:
            if ddof:
                raise TypeError(f"{who}: pass ddof= or correction= (the same thing), not both")
            ddof = correction
        axes = _axes(axis, self.ndim, who)
        count = self._data.size if axes is None else int(np.prod([self.shape[a] for a in axes]))
        if count - ddof <= 0:
            raise ValueError(
                f"{who}: ddof={ddof} leaves no degrees of freedom for {count} values "
                f"(shape {self.shape}, axis {axis})"
            )
        # float16 computes in float32 (var and std cast the answer back): the squares overflow
        # 65504 long before the variance does, std([300., -300.]) = 300 had a square of 90000.
        x = self.astype(np.float32) if self.dtype == np.float16 else self
        centered = x - x.mean(axis=axes, keepdims=True)
        # The mean of the squares, rescaled for ddof, not their sum (as the variance, not the sum
        # of squares, is what has to fit in the dtype).
        spread = (centered * centered).mean(axis=axes, keepdims=keepdims)
        return spread if ddof == 0 else spread * (count / (count - ddof))

    def logsumexp(
        self,
        axis: Axis = None,
        keepdims: bool = False,
        *,
        dim: Axis = None,
        keepdim: bool | None = None,
    ) -> Tensor:
        if dim is not None or keepdim is not None:
            axis, keepdims = _torch_names("logsumexp", axis, keepdims, dim, keepdim)
        axes = _axes(axis, self.ndim, "logsumexp")
        return apply(rules.logsumexp, (self._floating(),), axis=axes, keepdims=keepdims)

    def log_softmax(self, axis: int = -1, *, dim: int | None = None) -> Tensor:
        if dim is not None:
            axis, _ = _torch_names("log_softmax", None if axis == -1 else axis, False, dim, None)
        _axis(axis, self.ndim, "log_softmax")
        x = self._floating()
        # Composite but stable: logsumexp shifts by the max, so nothing overflows.
        return _composite(x - x.logsumexp(axis=axis, keepdims=True), "log_softmax")

    def softmax(self, axis: int = -1, *, dim: int | None = None) -> Tensor:
        if dim is not None:
            axis, _ = _torch_names("softmax", None if axis == -1 else axis, False, dim, None)
        _axis(axis, self.ndim, "softmax")
        return _composite(self.log_softmax(axis=axis).exp(), "softmax")

    def argmax(
        self,
        axis: int | None = None,
        keepdims: bool = False,
        *,
        dim: int | None = None,
        keepdim: bool | None = None,
    ) -> Tensor:
        """Index of the largest value (an int64 Tensor, no gradient: an index has none)."""
        return self._arg(np.argmax, "argmax", axis, keepdims, dim, keepdim)

    def argmin(
        self,
        axis: int | None = None,
        keepdims: bool = False,
        *,
        dim: int | None = None,
        keepdim: bool | None = None,
    ) -> Tensor:
        """Index of the smallest value (an int64 Tensor, no gradient)."""
        return self._arg(np.argmin, "argmin", axis, keepdims, dim, keepdim)

    def _arg(
        self,
        fn: Any,
        who: str,
        axis: int | None,
        keepdims: bool,
        dim: int | None,
        keepdim: bool | None,
    ) -> Tensor:
        if dim is not None or keepdim is not None:
            axis, keepdims = _torch_names(who, axis, keepdims, dim, keepdim)
        if self._data.size == 0:
            raise ValueError(f"{who}: empty tensor of shape {self.shape} has no {who}")
        if axis is not None:
            axis = _axis(axis, self.ndim, who)
            if self.ndim == 0:
                axis = None
        result = fn(np.asarray(self._data), axis=axis, keepdims=keepdims)
        return _lift(np.asarray(result, dtype=np.int64))

    def cumsum(self, axis: int | None = None, *, dim: int | None = None) -> Tensor:
        """`autodiff.cumsum` on this tensor (see there)."""
        return functions.cumsum(self, axis, dim=dim)

    def cumprod(self, axis: int | None = None, *, dim: int | None = None) -> Tensor:
        """`autodiff.cumprod` on this tensor (see there)."""
        return functions.cumprod(self, axis, dim=dim)

    def prod(
        self,
        axis: Axis = None,
        keepdims: bool = False,
        *,
        dim: Axis = None,
        keepdim: bool | None = None,
    ) -> Tensor:
        """`autodiff.prod` on this tensor (see there)."""
        return functions.prod(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def norm(
        self,
        ord: float = 2,
        axis: Axis = None,
        keepdims: bool = False,
        *,
        dim: Axis = None,
        keepdim: bool | None = None,
    ) -> Tensor:  # noqa: A002
        """`autodiff.norm` on this tensor (see there)."""
        return functions.norm(self, ord, axis, keepdims, dim=dim, keepdim=keepdim)

    def sort(self, axis: int = -1, descending: bool = False, *, dim: int | None = None) -> Tensor:
        """`autodiff.sort` on this tensor (see there)."""
        return functions.sort(self, axis, descending, dim=dim)

    def argsort(
        self,
        axis: int = -1,
        descending: bool = False,
        *,
        dim: int | None = None,
    ) -> Tensor:
        """`autodiff.argsort` on this tensor (see there)."""
        return functions.argsort(self, axis, descending, dim=dim)

    def topk(
        self,
        k: int,
        axis: int = -1,
        largest: bool = True,
        *,
        dim: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        """`autodiff.topk` on this tensor (see there)."""
        return functions.topk(self, k, axis, largest, dim=dim)

    def any(
        self,
        axis: Axis = None,
        keepdims: bool = False,
        *,
        dim: Axis = None,
        keepdim: bool | None = None,
    ) -> Tensor:
        """`autodiff.any` on this tensor (see there)."""
        return functions.any_(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def all(
        self,
        axis: Axis = None,
        keepdims: bool = False,
        *,
        dim: Axis = None,
        keepdim: bool | None = None,
    ) -> Tensor:
        """`autodiff.all` on this tensor (see there)."""
        return functions.all_(self, axis, keepdims, dim=dim, keepdim=keepdim)
