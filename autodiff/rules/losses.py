"""Fused losses: softmax cross-entropy on integer labels, binary cross-entropy on
probabilities. Each is one node whose gradient is the exact, stable closed form rather than
the chain rule through a composite."""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from . import batching
from .elementwise import log, log1p, maximum
from .linalg import grown
from .table import ARRAY, call, register, value, wide_sum

_row_cache = np.arange(0)


def _row_index(n: int) -> np.ndarray:
    """np.arange(n), sliced from a cached, read-only array (every training step needs one)."""
    global _row_cache
    _row_cache = grown(_row_cache, n, np.arange)
    return _row_cache[:n]


def _softmax(x: Any, axis: int = -1) -> Any:
    """softmax on an array, or the differentiable composite on a Tensor (create_graph)."""
    if isinstance(x, ARRAY):
        z = x - x.max(axis=axis, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=axis, keepdims=True, dtype=wide_sum(x))).astype(
            np.result_type(x), copy=False
        )
    return x.softmax(axis=axis)


def _cross_entropy_forward(logits: np.ndarray, *, labels: np.ndarray):
    # Computed class-major, on a (classes, n) copy of the logits: numpy reduces an (n, 10)
    # array along its rows one short row at a time, about 3x slower than it combines the
    # rows of a (10, n) one, and the copy costs less than the difference. Written out rather
    # than through logsumexp's forward (the rule reuses the probabilities); ufunc reductions
    # called directly (ndarray.max and .sum add a Python wrapper each).
    if logits.dtype.char == "e":
        # float16: its sums overflow at 65504 (the exponentials of 100,000 equal logits, the
        # losses of a batch of 30,000), so computed in float32 and answered in float16.
        loss, (probabilities, at) = _cross_entropy_forward(logits.astype(np.float32), labels=labels)
        return loss.astype(np.float16), (probabilities.astype(np.float16), at)
    n = len(labels)
    shifted = logits.T.copy()
    shifted -= np.maximum.reduce(shifted, 0)
    # Each sample's label as a flat position in that layout: numpy indexes with one integer
    # array several times faster than with a (labels, samples) pair, and the rule indexes
    # there too. In intp whatever the labels' type; they are in range (checked by the caller).
    at = np.multiply(labels, n, dtype=np.intp, casting="unsafe")
    at += _row_cache[:n] if len(_row_cache) >= n else _row_index(n)
    exp = np.exp(shifted)
    total = np.add.reduce(exp, 0)
    loss = np.add.reduce(np.log(total) - shifted.ravel()[at])
    # The mean; of an empty batch, NaN (as in PyTorch) without numpy's warning about 0 / 0.
    loss = loss / n if n else loss.dtype.type(np.nan)
    exp /= total  # exp is ours: the probabilities in place, one array fewer
    return loss, (exp, at)


def _cross_entropy_vjp(
    g: Any, out: Any, logits: Any, *, labels: np.ndarray, saved: tuple[np.ndarray, np.ndarray]
) -> Any:
    n = len(labels) or 1  # an empty batch has an empty gradient: any scale will do
    if isinstance(logits, ARRAY):
        # (softmax - onehot) / n without building the one-hot: scale a copy of the saved
        # probabilities (never the saved array itself: backward may run twice), then take
        # the scale off at each sample's label; then back to (n, classes), as a view.
        probabilities, at = saved
        scale = g / n
        grad = probabilities * scale
        grad.ravel()[at] -= scale
        return grad.T
    # On Tensors (create_graph) the softmax is recomputed as a differentiable expression, so
    # second derivatives flow through it.
    onehot = np.zeros(logits.shape, dtype=np.result_type(value(logits)))
    onehot[_row_index(len(labels)), labels] = 1
    return (_softmax(logits, axis=1) - onehot) * (g / n)


def _cross_entropy_jvp(
    t: Any, out: Any, logits: Any, *, labels: np.ndarray, saved: tuple[np.ndarray, np.ndarray]
) -> Any:
    # The scalar loss moves by <gradient, tangent>: the VJP rule with g = 1, dotted with t.
    return (_cross_entropy_vjp(1.0, out, logits, labels=labels, saved=saved) * t).sum()


# ONNX's SoftmaxCrossEntropyLoss is the same fused loss (mean over the batch by default); the
# labels are a param, so the file holds them as a constant.
def _cross_entropy_onnx(
    e: Any, names: list[str], out: Any, logits: Any, *, labels: Any, saved: Any
) -> str:
    target = e.const(np.asarray(labels, dtype=np.int64))
    return e.node("SoftmaxCrossEntropyLoss", [names[0], target], reduction="mean")


# Fused log-softmax + negative log-likelihood (mean over the batch, integer labels): its
# gradient (softmax - onehot) / N is exact and stable, and it saves four nodes per step.
softmax_cross_entropy = register(
    "softmax_cross_entropy",
    _cross_entropy_forward,
    _cross_entropy_vjp,
    saves=True,
    jvp=_cross_entropy_jvp,
    formula="(softmax(logits) - onehot(labels)) / n",
    onnx=_cross_entropy_onnx,
    batch=batching.cross_entropy,
)


# Binary cross-entropy on probabilities, -[y log p + (1-y) log(1-p)] with each log floored at
# -100, as PyTorch computes it (nn.functional.binary_cross_entropy validates and reduces).
# A primitive, because its gradient in p is not the derivative of that formula but PyTorch's
# G = (p - y) / max(p (1 - p), 1e-12) (finite at p = 0 or 1, no cancellation as p nears y).
# Rules written with G as a differentiable expression give every higher derivative too:
# d2/dp2 = dG/dp, d3/dp3 = d2G/dp2, d2/dp dy = dG/dy, as PyTorch's double backward. (A
# composite (p - p.detach()) * G' that is 0 forward can match G and one derivative of it,
# not all of them: its third derivative in p came out 1.5 d2G/dp2.)
BCE_LOG_FLOOR = -100.0
BCE_GRAD_FLOOR = float(np.float32(1e-12))  # PyTorch's 1e-12 is a float32 in every dtype


def _bce_logs(p: Any) -> tuple[Any, Any]:
    """log p and log(1 - p), each floored at -100; on arrays or (create_graph) Tensors."""
    floor = BCE_LOG_FLOOR
    if isinstance(p, ARRAY):
        with np.errstate(divide="ignore"):  # log(0) = -inf, floored just below
            return (
                np.maximum(np.log(p), p.dtype.type(floor)),
                np.maximum(np.log1p(-cast("np.ndarray | np.number", p)), p.dtype.type(floor)),
            )
    return (
        call(maximum, call(log, p), p.dtype.type(floor)),
        call(maximum, call(log1p, -p), p.dtype.type(floor)),
    )


def _bce_forward(p: Any, y: Any) -> Any:
    log_p, log_q = _bce_logs(p)
    return -(y * log_p + (1 - y) * log_q)


def _bce_slope_p(g: Any, out: Any, p: Any, y: Any) -> Any:
    floor = np.result_type(value(p)).type(BCE_GRAD_FLOOR)
    return g * ((p - y) / call(maximum, p * (1 - p), floor))


def _bce_slope_y(g: Any, out: Any, p: Any, y: Any) -> Any:
    log_p, log_q = _bce_logs(p)
    return g * (log_q - log_p)


# ONNX has no such loss: composed of the operators its forward is written with. Log(1 - p)
# stands for log1p(-p); the two differ only for p below float epsilon, where both are ~ -p.
def _bce_onnx(e: Any, names: list[str], out: Any, p: Any, y: Any) -> str:
    dtype = np.result_type(out)
    one, floor = (e.const(np.asarray(v, dtype=dtype)) for v in (1.0, BCE_LOG_FLOOR))
    p_name, y_name = names
    log_p = e.node("Max", [e.node("Log", [p_name]), floor])
    log_q = e.node("Max", [e.node("Log", [e.node("Sub", [one, p_name])]), floor])
    q_y = e.node("Sub", [one, y_name])
    total = e.node("Add", [e.node("Mul", [y_name, log_p]), e.node("Mul", [q_y, log_q])])
    return e.node("Neg", [total])


binary_cross_entropy = register(
    "binary_cross_entropy",
    _bce_forward,
    _bce_slope_p,
    _bce_slope_y,
    jvp=(_bce_slope_p, _bce_slope_y),
    elementwise=True,
    formula=("(p - y) / (p * (1 - p))", "log(1 - p) - log(p)"),
    onnx=_bce_onnx,
)
