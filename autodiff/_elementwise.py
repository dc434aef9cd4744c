"""Tensor methods, elementwise family: exp, log, activations, trigonometry, rounding, clip
and dtype casts. `Tensor` inherits them (autodiff/tensor.py); each is defined here, in the
class body, so readers and type checkers see it; the numbers come from the table's rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np

from . import functions, rules
from ._args import ArrayLike, _clip_bound, _lift
from .composites import maximum, minimum, where
from .engine import Node, apply

if TYPE_CHECKING:  # pragma: no cover
    from .tensor import Tensor


class ElementwiseMethods(Node):
    """The elementwise methods of Tensor."""

    __slots__ = ()

    if TYPE_CHECKING:  # pragma: no cover
        # Tensor's own (autodiff/tensor.py), which these methods are part of.
        @property
        def shape(self) -> tuple[int, ...]: ...
        @property
        def ndim(self) -> int: ...
        @property
        def dtype(self) -> np.dtype: ...

    def _floating(self) -> Tensor:
        """This tensor, or its numbers in float64 if they are integers or booleans.

        Floating-point ops (exp, sigmoid, softmax, ...) must not compute in the input's integer
        type: -x and x - max(x) wrap around in uint8 (MNIST pixels), and numpy would pick
        float16 for exp of uint8. Integer tensors are constants, so nothing is lost.
        """
        if self._data.dtype.kind == "f":
            return cast("Tensor", self)  # a mixin of Tensor: self is one
        return _lift(np.asarray(self._data).astype(np.float64))

    def exp(self) -> Tensor:
        return apply(rules.exp, (self._floating(),))

    def log(self) -> Tensor:
        return apply(rules.log, (self._floating(),))

    def sqrt(self) -> Tensor:
        return apply(rules.pow_const, (self._floating(),), exponent=0.5)

    def tanh(self) -> Tensor:
        return apply(rules.tanh, (self._floating(),))

    def sigmoid(self) -> Tensor:
        return apply(rules.sigmoid, (self._floating(),))

    def relu(self) -> Tensor:
        return apply(rules.relu, (self,))

    def arctan(self) -> Tensor:
        """The angle whose tangent is x, in radians (numpy's arctan, PyTorch's atan)."""
        return apply(rules.arctan, (self._floating(),))

    def abs(self) -> Tensor:
        return apply(rules.abs_, (self,))

    def clip(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
        """Values limited to [min, max]; the gradient is 1 inside and 0 where clipped.

        The bounds are numbers or arrays (constants) that broadcast to this tensor's shape.
        """
        lo, hi = (_clip_bound(b, name, self.shape) for b, name in ((min, "min"), (max, "max")))
        if lo is None and hi is None:
            return cast("Tensor", self)
        data = np.clip(self._data, lo, hi)
        if self._data.dtype.kind != "f" and data.dtype.kind == "f":
            # Integers or booleans clipped to fractional bounds: the answer has fractions
            # (numpy's and PyTorch's [0.5, 2.5] for [0, 3] in [0.5, 2.5]); cast back to
            # integers it would fall outside the bounds. A constant, as integer tensors are.
            return _lift(data)
        inside = data == self._data
        return where(inside, self, _lift(data.astype(self.dtype, copy=False)))

    def astype(self, dtype: Any) -> Tensor:
        """A copy in another dtype; gradients flow back and are cast to this tensor's dtype.

        Casting to an integer or boolean dtype gives a constant: rounding has no useful
        derivative, so no gradient flows through it (rather than a silently wrong one).
        """
        try:
            target = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"astype: {dtype!r} is not a numpy dtype") from None
        if target.kind not in "biuf":
            raise TypeError(f"astype: unsupported dtype {target} (numbers only)")
        if target == self.dtype:
            return cast("Tensor", self)
        if target.kind != "f":
            return _lift(np.asarray(self._data).astype(target))
        return apply(rules.cast, (self,), dtype=target)

    def maximum(self, other: ArrayLike) -> Tensor:
        """Elementwise max with `other` (autodiff.maximum; PyTorch's `t.maximum(u)`)."""
        return maximum(self, other)

    def minimum(self, other: ArrayLike) -> Tensor:
        """Elementwise min with `other` (autodiff.minimum; PyTorch's `t.minimum(u)`)."""
        return minimum(self, other)

    def __abs__(self) -> Tensor:
        return self.abs()

    def clamp(self, min: float | None = None, max: float | None = None) -> Tensor:  # noqa: A002
        """PyTorch's name for `clip`."""
        return self.clip(min, max)

    def pow(self, exponent: ArrayLike) -> Tensor:
        return self**exponent

    def sin(self) -> Tensor:
        """`autodiff.sin` on this tensor (see there)."""
        return functions.sin(self)

    def cos(self) -> Tensor:
        """`autodiff.cos` on this tensor (see there)."""
        return functions.cos(self)

    def tan(self) -> Tensor:
        """`autodiff.tan` on this tensor (see there)."""
        return functions.tan(self)

    def sinh(self) -> Tensor:
        """`autodiff.sinh` on this tensor (see there)."""
        return functions.sinh(self)

    def cosh(self) -> Tensor:
        """`autodiff.cosh` on this tensor (see there)."""
        return functions.cosh(self)

    def log1p(self) -> Tensor:
        """log(1 + x), accurate for tiny x: `autodiff.log1p` on this tensor."""
        return functions.log1p(self)

    def expm1(self) -> Tensor:
        """exp(x) - 1, accurate for tiny x: `autodiff.expm1` on this tensor."""
        return functions.expm1(self)

    def floor(self) -> Tensor:
        """Rounded down; its gradient is 0 (piecewise constant): `autodiff.floor` on this tensor."""
        return functions.floor(self)

    def ceil(self) -> Tensor:
        """Rounded up; its gradient is 0 (piecewise constant): `autodiff.ceil` on this tensor."""
        return functions.ceil(self)

    def sign(self) -> Tensor:
        """-1, 0 or 1; its gradient is 0: `autodiff.sign` on this tensor."""
        return functions.sign(self)

    def round(self, decimals: int = 0) -> Tensor:
        """`autodiff.round` on this tensor (see there)."""
        return functions.round_(self, decimals)

    def __round__(self, ndigits: int | None = None) -> Tensor:
        """The builtin round(t) (and round(t, 2)): a Tensor, as t.round() gives; neither
        numpy's arrays nor PyTorch's tensors have it, so code written for either runs."""
        return functions.round_(self, 0 if ndigits is None else ndigits)

    def reciprocal(self) -> Tensor:
        """`autodiff.reciprocal` on this tensor (see there)."""
        return functions.reciprocal(self)

    def rsqrt(self) -> Tensor:
        """`autodiff.rsqrt` on this tensor (see there)."""
        return functions.rsqrt(self)

    def square(self) -> Tensor:
        """`autodiff.square` on this tensor (see there)."""
        return functions.square(self)

    # The operators // and %, with Python's meaning (floor division, remainder with b's sign).
    def __floordiv__(self, other: ArrayLike) -> Tensor:
        return functions.floor_divide(self, other)

    def __rfloordiv__(self, other: ArrayLike) -> Tensor:
        return functions.floor_divide(other, self)

    def __mod__(self, other: ArrayLike) -> Tensor:
        return functions.remainder(self, other)

    def __rmod__(self, other: ArrayLike) -> Tensor:
        return functions.remainder(other, self)
