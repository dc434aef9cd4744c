"""Convolution, pooling and normalisation layers, with PyTorch's parameter names and shapes.

Parameter names and layouts match `torch.nn` (Conv2d.weight is (out, in/groups, kh, kw),
BatchNorm2d has weight, bias, running_mean, running_var, num_batches_tracked), so a state
dict moves between the two libraries unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from autodiff import Tensor, conv, no_grad
from autodiff.extend import mark_written

from . import init
from .module import Module, Parameter


def _positive(value: Any, name: str, who: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{who}: {name} must be a positive int, got {value!r}")
    return int(value)


def _check_eps(eps: Any, who: str) -> None:
    """eps is added to a variance before its square root: a negative one gives NaN outputs
    wherever the variance is smaller (a constant row), and 0 divides by zero there."""
    if isinstance(eps, bool) or not (
        isinstance(eps, (int, float, np.floating)) and math.isfinite(eps) and eps > 0
    ):
        raise ValueError(f"{who}: eps must be a positive number, got {eps!r}")


def _as_input(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x))


class _ConvNd(Module):
    _dims = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        dtype: Any = np.float32,
        rng: Any = None,
    ) -> None:
        super().__init__()
        who = type(self).__name__
        self.in_channels = _positive(in_channels, "in_channels", who)
        self.out_channels = _positive(out_channels, "out_channels", who)
        self.groups = _positive(groups, "groups", who)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{who}: in_channels {in_channels} and out_channels {out_channels} "
                f"must both be divisible by groups {groups}"
            )
        kernel = (
            (kernel_size,) * self._dims
            if isinstance(kernel_size, (int, np.integer))
            else tuple(kernel_size)
        )
        if len(kernel) != self._dims:
            raise ValueError(
                f"{who}: kernel_size must be an int or {self._dims} ints, got {kernel_size!r}"
            )
        self.kernel_size = tuple(_positive(k, "kernel_size", who) for k in kernel)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        generator = init._generator(rng)
        # PyTorch's default: uniform in +-1/sqrt(fan_in) for weight and bias alike.
        fan_in = in_channels // groups * math.prod(self.kernel_size)
        bound = 1.0 / math.sqrt(fan_in)
        shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = Parameter(np.zeros(shape), dtype=dtype)
        init.uniform_(self.weight, -bound, bound, generator)
        self.bias = None
        if bias:
            self.bias = Parameter(np.zeros(out_channels), dtype=dtype)
            init.uniform_(self.bias, -bound, bound, generator)

    def _check(self, x: Tensor) -> None:
        if x.ndim != self._dims + 2 or x.shape[1] != self.in_channels:
            layout = "(N, C, H, W)" if self._dims == 2 else "(N, C, L)"
            raise ValueError(
                f"{self.label()}: expected input {layout} with C = "
                f"{self.in_channels}, got shape {x.shape}"
            )

    def label(self) -> str:
        k = "x".join(map(str, self.kernel_size))
        return f"{type(self).__name__}({self.in_channels} -> {self.out_channels}, {k})"

    def extra_repr(self) -> str:
        parts = [f"{self.in_channels} -> {self.out_channels}", f"kernel_size={self.kernel_size}"]
        for name, default in (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1)):
            if getattr(self, name) != default:
                parts.append(f"{name}={getattr(self, name)}")
        if self.bias is None:
            parts.append("no bias")
        return ", ".join(parts)


class Conv2d(_ConvNd):
    """2-D convolution over (N, C, H, W), as `torch.nn.Conv2d` (cross-correlation, NCHW)."""

    def forward(self, x: Any) -> Tensor:
        x = _as_input(x)
        self._check(x)
        return conv.conv2d(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )


class Conv1d(_ConvNd):
    """1-D convolution over (N, C, L), as `torch.nn.Conv1d`."""

    _dims = 1

    def forward(self, x: Any) -> Tensor:
        x = _as_input(x)
        self._check(x)
        return conv.conv1d(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )


class MaxPool2d(Module):
    """The largest value of each window; stride defaults to the window size (as PyTorch)."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: Any) -> Tensor:
        return conv.max_pool2d(_as_input(x), self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}"


class AvgPool2d(MaxPool2d):
    """The mean of each window (zero padding counts, as PyTorch's default)."""

    def forward(self, x: Any) -> Tensor:
        return conv.avg_pool2d(_as_input(x), self.kernel_size, self.stride, self.padding)


class _BatchNorm(Module):
    """Normalise each channel by the batch's statistics while training, by running ones in eval.

    running_var is updated with the unbiased variance and the batch is normalised with the
    biased one, exactly as PyTorch does, so the two agree step by step.
    """

    # The buffers register_buffer makes (with track_running_stats), for type checkers.
    running_mean: Tensor
    running_var: Tensor
    num_batches_tracked: Tensor

    _ndims: tuple[int, ...] = (2,)

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        who = type(self).__name__
        self.num_features = _positive(num_features, "num_features", who)
        _check_eps(eps, who)
        if momentum is not None and not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"{who}: momentum must be in [0, 1] or None, got {momentum!r}")
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        self.weight = Parameter(np.ones(num_features), dtype=dtype) if affine else None
        self.bias = Parameter(np.zeros(num_features), dtype=dtype) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=dtype)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, dtype=dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.zeros((), dtype=np.int64)))

    def forward(self, x: Any) -> Tensor:
        x = _as_input(x)
        if x.ndim not in self._ndims or x.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}): expected input of "
                f"{' or '.join(f'{n}-d' for n in self._ndims)} with "
                f"{self.num_features} channels on axis 1, got shape {x.shape}"
            )
        axes = (0, *range(2, x.ndim))
        shape = (1, self.num_features) + (1,) * (x.ndim - 2)
        if self.training or not self.track_running_stats:
            count = x.size // self.num_features
            if self.training and count < 2:
                raise ValueError(
                    f"{type(self).__name__}: training needs more than one value "
                    f"per channel, got input shape {x.shape}"
                )
            mean = x.mean(axis=axes, keepdims=True)
            centred = x - mean
            # Tensor.var, not (centred * centred).mean(): the same numbers, but float16 squares
            # it takes in float32 (300 squared overflows float16 and zeroed the output).
            var = x.var(axis=axes, keepdims=True)
            if self.training and self.track_running_stats:
                self._update_running(mean.raw().reshape(-1), var.raw().reshape(-1), count)
        else:
            mean = self.running_mean.reshape(shape)
            var = self.running_var.reshape(shape)
            centred = x - mean
        out = centred / (var + self.eps).sqrt()
        if self.affine:
            assert self.weight is not None and self.bias is not None  # made with affine
            out = out * self.weight.reshape(shape) + self.bias.reshape(shape)
        return out

    def _update_running(self, mean: np.ndarray, var: np.ndarray, count: int) -> None:
        with no_grad():
            self.num_batches_tracked.data = self.num_batches_tracked.raw() + 1
            # momentum None means a cumulative average, as in PyTorch.
            m = (
                1.0 / float(self.num_batches_tracked.raw())
                if self.momentum is None
                else self.momentum
            )
            unbiased = var * (count / (count - 1))
            dtype = self.running_mean.dtype
            self.running_mean.raw()[...] = ((1 - m) * self.running_mean.raw() + m * mean).astype(
                dtype
            )
            self.running_var.raw()[...] = ((1 - m) * self.running_var.raw() + m * unbiased).astype(
                dtype
            )
            mark_written(self.running_mean, self.running_var)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L), as `torch.nn.BatchNorm1d`."""

    _ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over (N, C, H, W), as `torch.nn.BatchNorm2d`."""

    _ndims = (4,)


class LayerNorm(Module):
    """Normalise the last axes (`normalized_shape`) of every sample, as `torch.nn.LayerNorm`."""

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        shape = (
            (normalized_shape,)
            if isinstance(normalized_shape, (int, np.integer))
            else tuple(normalized_shape)
        )
        self.normalized_shape = tuple(_positive(n, "normalized_shape", "LayerNorm") for n in shape)
        _check_eps(eps, "LayerNorm")
        self.eps = float(eps)
        self.weight = self.bias = None
        if elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape), dtype=dtype)
            self.bias = Parameter(np.zeros(self.normalized_shape), dtype=dtype)

    def forward(self, x: Any) -> Tensor:
        x = _as_input(x)
        k = len(self.normalized_shape)
        if x.shape[x.ndim - k :] != self.normalized_shape:
            raise ValueError(
                f"LayerNorm{self.normalized_shape}: input shape {x.shape} does "
                "not end with the normalized shape"
            )
        axes = tuple(range(x.ndim - k, x.ndim))
        centred = x - x.mean(axis=axes, keepdims=True)
        var = x.var(axis=axes, keepdims=True)  # float16 safely, as in _BatchNorm.forward
        out = centred / (var + self.eps).sqrt()
        if self.weight is not None:
            out = out * self.weight + self.bias
        return out

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"


class LeNet5(Module):
    """LeNet-5 as taught today: two 5x5 conv layers with ReLU and 2x2 max pooling, then three
    fully connected layers (6 and 16 channels; 120, 84, 10 units), for 1x28x28 images."""

    def __init__(self, num_classes: int = 10, dtype: Any = np.float32, rng: Any = None) -> None:
        super().__init__()
        from .layers import Flatten, Linear, ReLU, Sequential

        g = init._generator(rng)
        self.features = Sequential(
            Conv2d(1, 6, 5, padding=2, dtype=dtype, rng=g),
            ReLU(),
            MaxPool2d(2),
            Conv2d(6, 16, 5, dtype=dtype, rng=g),
            ReLU(),
            MaxPool2d(2),
        )
        self.classifier = Sequential(
            Flatten(),
            Linear(16 * 5 * 5, 120, dtype=dtype, rng=g),
            ReLU(),
            Linear(120, 84, dtype=dtype, rng=g),
            ReLU(),
            Linear(84, num_classes, dtype=dtype, rng=g),
        )

    def forward(self, x: Any) -> Tensor:
        x = _as_input(x)
        if x.ndim == 2 and x.shape[1] == 28 * 28:  # flat (N, 784) rows, as load_mnist gives
            x = x.reshape(x.shape[0], 1, 28, 28)
        elif x.ndim == 3:  # (N, 28, 28) images: one channel
            x = x.reshape(x.shape[0], 1, x.shape[1], x.shape[2])
        if x.ndim != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(
                f"LeNet5: expected 28x28 images as (N, 784), (N, 28, 28) or "
                f"(N, 1, 28, 28), got shape {x.shape}"
            )
        return self.classifier(self.features(x))
