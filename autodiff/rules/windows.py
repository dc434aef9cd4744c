"""The two primitives under convolution and pooling: `unfold2d` (im2col) and its adjoint
`fold2d` (col2im). Each is linear, so each is its own JVP, and each is the other's VJP:

    unfold2d's gradient  = fold2d   (add every window's gradient back where it was read)
    fold2d's gradient    = unfold2d

Everything else (conv2d, conv1d, max_pool2d, avg_pool2d in autodiff/conv.py) is a composite
of these and of ops already in the table.
"""

from __future__ import annotations

import numpy as np

from . import batching
from .table import Op, call, register

Pair = tuple[int, int]


def _unfold_forward(
    x: np.ndarray, *, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair
) -> np.ndarray:
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    # A view: (N, C, H', W', span_h, span_w); striding picks the output positions and the
    # dilated kernel taps without copying anything.
    windows = np.lib.stride_tricks.sliding_window_view(x, (span_h, span_w), axis=(2, 3))
    return windows[:, :, ::sh, ::sw, ::dh, ::dw]


def _fold_forward(
    cols: np.ndarray,
    *,
    shape: tuple[int, ...],
    kernel: Pair,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
) -> np.ndarray:
    """col2im: add each window's values back at the pixels it was read from."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    n, c, h, w = shape
    ho, wo = cols.shape[2], cols.shape[3]
    image = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    # One strided slice per kernel tap (25 for a 5x5 kernel), not one per output pixel.
    for i in range(kh):
        rows = slice(i * dh, i * dh + sh * (ho - 1) + 1, sh)
        for j in range(kw):
            image[:, :, rows, slice(j * dw, j * dw + sw * (wo - 1) + 1, sw)] += cols[..., i, j]
    return image[:, :, ph : ph + h, pw : pw + w]


unfold2d = register(
    "unfold2d",
    _unfold_forward,
    lambda g, out, x, **window: call(fold2d, g, shape=x.shape, **window),
    linear=True,
    formula="1",
    onnx="none: ONNX has no im2col; nn/export translates Conv and pooling modules whole",
    batch=batching.windows,
)
fold2d: Op = register(  # typed: unfold2d's rule names it before it is defined
    "fold2d",
    _fold_forward,
    lambda g, out, cols, *, shape, **window: call(unfold2d, g, **window),
    linear=True,
    formula="1",
    onnx="none: ONNX's Col2Im needs opset 18 and export writes 17; fold2d is met in backward",
    batch=batching.windows,
)
