"""Convolution and pooling, built on two primitives: `unfold2d` (im2col) and its adjoint `fold2d`.

A convolution is a matrix product once every receptive field is laid out as a row: `unfold2d`
turns an (N, C, H, W) image into (N, C, Ho, Wo, kh, kw) windows, and the product with the
weights is an ordinary `matmul`. Pooling is a `max` or `mean` over the window axes. So the only
new derivative rules are these two, and they are each other's transpose:

    unfold2d's gradient  = fold2d   (add every window's gradient back where it was read: col2im)
    fold2d's gradient    = unfold2d

Everything else (conv2d, conv1d, max_pool2d, avg_pool2d) is a composite of ops already in the
table, so it is differentiable to any order and drawn, tested and exported like any other op.
The two rows are in the table with every other primitive (autodiff/rules/windows.py).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import engine
from ._args import _lift
from .composites import concatenate
from .rules.windows import fold2d, unfold2d  # noqa: F401 (fold2d: conv.fold2d, as before)
from .tensor import Tensor

Pair = tuple[int, int]


def _whole(value: Any) -> bool:
    """An int that can be a size (True is an int to Python, but never a size)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _pair(value: Any, name: str, who: str, minimum: int) -> Pair:
    """An int or a pair of ints (as PyTorch accepts), checked."""
    sequence = isinstance(value, (tuple, list)) or (
        isinstance(value, np.ndarray) and value.ndim == 1
    )
    pair = (value, value) if _whole(value) else (tuple(value) if sequence else (value,))
    if len(pair) != 2 or not all(_whole(v) and v >= minimum for v in pair):
        raise ValueError(
            f"{who}: {name} must be an int >= {minimum} or a pair of them, got {value!r}"
        )
    return int(pair[0]), int(pair[1])


def _out_size(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


def _image(x: Any, who: str, ndim: int = 4) -> Tensor:
    x = _lift(x)
    if x.ndim != ndim:
        layout = "(N, C, H, W)" if ndim == 4 else "(N, C, L)"
        raise ValueError(f"{who}: expected a {ndim}-d input {layout}, got shape {x.shape}")
    if x.dtype.kind not in "f":
        x = x.astype(np.float64 if x.dtype.itemsize > 2 else np.float32)
    return x


def unfold(
    x: Any, kernel_size: Any, stride: Any = 1, padding: Any = 0, dilation: Any = 1
) -> Tensor:
    """Every kh x kw window of an (N, C, H, W) image: shape (N, C, Ho, Wo, kh, kw) (im2col)."""
    who = "unfold"
    x = _image(x, who)
    window = dict(
        kernel=_pair(kernel_size, "kernel_size", who, 1),
        stride=_pair(stride, "stride", who, 1),
        padding=_pair(padding, "padding", who, 0),
        dilation=_pair(dilation, "dilation", who, 1),
    )
    _check_fits(x.shape, window, who)
    return engine.apply(unfold2d, (x,), **window)


def _check_fits(shape: tuple[int, ...], window: dict[str, Any], who: str) -> None:
    for axis, name in ((0, "height"), (1, "width")):
        size = shape[2 + axis]
        out = _out_size(
            size,
            window["kernel"][axis],
            window["stride"][axis],
            window["padding"][axis],
            window["dilation"][axis],
        )
        if out < 1:
            raise ValueError(
                f"{who}: input {name} {size} (padding {window['padding'][axis]}) is smaller "
                f"than the dilated kernel; input shape {shape}, kernel {window['kernel']}, "
                f"dilation {window['dilation']}"
            )


def conv2d(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    """2-D cross-correlation over an (N, C, H, W) batch, as `torch.nn.functional.conv2d`.

    weight: (out_channels, C // groups, kh, kw); bias: (out_channels,) or None.
    padding: an int, a pair, or "same" (stride 1) / "valid". Returns (N, out_channels, Ho, Wo).
    """
    who = "conv2d"
    x = _image(x, who)
    weight = _lift(weight)
    if weight.ndim != 4:
        raise ValueError(
            f"{who}: weight must be 4-d (out_channels, in_channels/groups, kh, kw), "
            f"got shape {weight.shape}"
        )
    if not _whole(groups) or groups < 1:
        raise ValueError(f"{who}: groups must be a positive int, got {groups!r}")
    n, c, _, _ = x.shape
    out_channels, per_group, kh, kw = weight.shape
    if c % groups or out_channels % groups or per_group * groups != c:
        raise ValueError(
            f"{who}: input shape {x.shape} and weight shape {weight.shape} do not match with "
            f"groups={groups} (need in_channels = groups * weight.shape[1] and out_channels "
            "divisible by groups)"
        )
    dilation = _pair(dilation, "dilation", who, 1)
    stride = _pair(stride, "stride", who, 1)
    padding, extra = _padding(padding, (kh, kw), dilation, stride, who)
    if extra != (0, 0):  # 'same' with an even dilated kernel: the odd row/column at the end
        x = _pad_end(x, *extra)
    window = dict(kernel=(kh, kw), stride=stride, padding=padding, dilation=dilation)
    _check_fits(x.shape, window, who)
    cols = engine.apply(unfold2d, (x,), **window)  # (N, C, Ho, Wo, kh, kw)
    ho, wo = cols.shape[2], cols.shape[3]
    if groups == 1:
        # Rows are receptive fields, columns the C*kh*kw taps: one (N*Ho*Wo, K) @ (K, O).
        rows = cols.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * kh * kw)
        # The tap count spelled out, not -1: with no output channels there is nothing to infer.
        out = rows @ weight.reshape(out_channels, c * kh * kw).T
        out = out.reshape(n, ho, wo, out_channels).transpose(0, 3, 1, 2)
    else:
        g, per_out = groups, out_channels // groups
        rows = cols.reshape(n, g, per_group, ho, wo, kh, kw).transpose(0, 1, 3, 4, 2, 5, 6)
        rows = rows.reshape(n, g, ho * wo, per_group * kh * kw)
        w = weight.reshape(g, per_out, per_group * kh * kw).swapaxes(1, 2)
        out = (rows @ w).swapaxes(2, 3).reshape(n, out_channels, ho, wo)
    if bias is not None:
        bias = _lift(bias)
        if bias.shape != (out_channels,):
            raise ValueError(f"{who}: bias must have shape ({out_channels},), got {bias.shape}")
        out = out + bias.reshape(1, out_channels, 1, 1)
    return out


def same_padding(kernel: Pair, dilation: Pair) -> tuple[Pair, Pair]:
    """padding='same' as PyTorch pads: the dilated span d * (k - 1) split in two, the odd
    one out at the end (bottom, right). Returns (before, after) per axis."""
    spans = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
    before = (spans[0] // 2, spans[1] // 2)
    return before, (spans[0] - before[0], spans[1] - before[1])


def _padding(
    padding: Any, kernel: Pair, dilation: Pair, stride: Pair, who: str
) -> tuple[Pair, Pair]:
    """The symmetric padding, and the extra zeros after it on each axis."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"{who}: padding='same' needs stride 1, got {stride}")
            before, after = same_padding(kernel, dilation)
            return before, (after[0] - before[0], after[1] - before[1])
        raise ValueError(
            f"{who}: padding must be an int, a pair, 'same' or 'valid', got {padding!r}"
        )
    return _pair(padding, "padding", who, 0), (0, 0)


def _pad_end(x: Tensor, rows: int, columns: int) -> Tensor:
    """Zeros after the last row and column (differentiable: a concatenation)."""
    n, c, h, w = x.shape
    if columns:
        x = concatenate([x, engine.constant(np.zeros((n, c, h, columns), x.dtype))], axis=3)
    if rows:
        x = concatenate([x, engine.constant(np.zeros((n, c, rows, w + columns), x.dtype))], axis=2)
    return x


def conv1d(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: int = 1,
    padding: Any = 0,
    dilation: int = 1,
    groups: int = 1,
) -> Tensor:
    """1-D cross-correlation over (N, C, L), as `torch.nn.functional.conv1d` (a conv2d, H = 1)."""
    who = "conv1d"
    x = _image(x, who, ndim=3)
    weight = _lift(weight)
    if weight.ndim != 3:
        raise ValueError(
            f"{who}: weight must be 3-d (out_channels, in_channels/groups, k), "
            f"got shape {weight.shape}"
        )
    # PyTorch's Conv1d keeps these as 1-tuples ((2,)): take those as well as ints.
    stride, dilation = _single(stride, "stride", who, 1), _single(dilation, "dilation", who, 1)
    pad: Any = padding if isinstance(padding, str) else (0, _single(padding, "padding", who, 0))
    if pad == "same" and stride != 1:
        raise ValueError(f"{who}: padding='same' needs stride 1, got {stride}")
    out = conv2d(
        x.reshape(x.shape[0], x.shape[1], 1, x.shape[2]),
        weight.reshape(weight.shape[0], weight.shape[1], 1, weight.shape[2]),
        bias,
        stride=(1, stride),
        padding=pad,
        dilation=(1, dilation),
        groups=groups,
    )
    return out.reshape(out.shape[0], out.shape[1], out.shape[3])


def _single(value: Any, name: str, who: str, minimum: int) -> int:
    """An int, or a 1-tuple of one (as PyTorch's Conv1d keeps them), checked."""
    one = value[0] if isinstance(value, (tuple, list)) and len(value) == 1 else value
    if not _whole(one) or one < minimum:
        raise ValueError(
            f"{who}: {name} must be an int >= {minimum} (or a 1-tuple of one), got {value!r}"
        )
    return int(one)


def _pool_window(
    who: str, x: Tensor, kernel_size: Any, stride: Any, padding: Any
) -> dict[str, Any]:
    kernel = _pair(kernel_size, "kernel_size", who, 1)
    stride = kernel if stride is None else _pair(stride, "stride", who, 1)
    padding = _pair(padding, "padding", who, 0)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{who}: padding {padding} must be at most half the kernel {kernel}")
    window = dict(kernel=kernel, stride=stride, padding=padding, dilation=(1, 1))
    _check_fits(x.shape, window, who)
    return window


def max_pool2d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Tensor:
    """The largest value of each window (stride defaults to the kernel size, as in PyTorch).

    Padding counts as -inf, so it never beats a value. Ties inside a window share the
    gradient equally (as `max` does everywhere in this engine); PyTorch gives it to one of
    them. So a window whose values are all -inf ties with its padding too, and the padding's
    share goes nowhere, as relu'(0) = 0 sends nothing through a tie with the constant 0.
    """
    who = "max_pool2d"
    x = _image(x, who)
    window = _pool_window(who, x, kernel_size, stride, padding)
    if window["padding"] != (0, 0):
        # Pad with -inf by hand (unfold pads with zeros, which could win the max).
        ph, pw = window["padding"]
        x = _pad_constant(x, ph, pw, -math.inf)
        window["padding"] = (0, 0)
    cols = engine.apply(unfold2d, (x,), **window)
    return cols.max(axis=(4, 5))


def avg_pool2d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Tensor:
    """The mean of each window; zero padding is counted in the mean (PyTorch's default)."""
    who = "avg_pool2d"
    x = _image(x, who)
    window = _pool_window(who, x, kernel_size, stride, padding)
    cols = engine.apply(unfold2d, (x,), **window)
    return cols.mean(axis=(4, 5))


def _pad_constant(x: Tensor, ph: int, pw: int, value: float) -> Tensor:
    n, c, h, w = x.shape
    if pw:
        side = engine.constant(np.full((n, c, h, pw), value, dtype=x.dtype))
        x = concatenate([side, x, side], axis=3)
    if ph:
        top = engine.constant(np.full((n, c, ph, w + 2 * pw), value, dtype=x.dtype))
        x = concatenate([top, x, top], axis=2)
    return x
