"""Activations, losses and metrics as functions of Tensors (numerically stable composites)."""

from __future__ import annotations

from typing import Any

import numpy as np

import autodiff as ad

# The activations are the engine's own functions, under the names PyTorch users look for.
from autodiff import Tensor, log_softmax, relu, sigmoid, softmax, tanh  # noqa: F401

_REDUCTIONS = ("mean", "sum", "none")


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _reduce(loss: Tensor, reduction: str, who: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{who}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _same_shape(a: Tensor, b: Tensor, who: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{who}: input shape {a.shape} and target shape {b.shape} differ")


# --- activations ---------------------------------------------------------------------------


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    x = _tensor(x)
    return ad.where(x.data > 0, x, x * negative_slope)


# --- losses --------------------------------------------------------------------------------


def mse_loss(pred: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error (the classic tutorial's loss with sigmoid outputs)."""
    pred, target = _tensor(pred), _tensor(target)
    _same_shape(pred, target, "mse_loss")
    diff = pred - target
    return _reduce(diff * diff, reduction, "mse_loss")


def binary_cross_entropy(probs: Tensor, target: Any, reduction: str = "mean",
                         eps: float = 1e-7) -> Tensor:
    """-[y log p + (1-y) log(1-p)], with p clipped away from 0 and 1 so log stays finite."""
    probs, target = _tensor(probs), _tensor(target)
    _same_shape(probs, target, "binary_cross_entropy")
    p = probs.clip(eps, 1 - eps)
    loss = -(target * p.log() + (1 - target) * (1 - p).log())
    return _reduce(loss, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(logits: Tensor, target: Any,
                                     reduction: str = "mean") -> Tensor:
    """BCE on logits: softplus(x) - x*y, finite for any logit, gradient sigmoid(x) - y."""
    logits, target = _tensor(logits), _tensor(target)
    _same_shape(logits, target, "binary_cross_entropy_with_logits")
    # softplus(x) = log(1 + e^x) = logsumexp over the pair (0, x): logsumexp shifts by the max,
    # so it is finite for any logit, and its gradient is exactly sigmoid(x) everywhere. The
    # textbook max(x, 0) + log(1 + exp(-|x|)) has the same value, but goes through relu and
    # abs, whose kinks at 0 give gradient -y instead of 0.5 - y at a logit of exactly 0 (where
    # a zero-initialised model starts).
    pair = ad.stack([ad.zeros_like(logits), logits], axis=-1)
    loss = pair.logsumexp(axis=-1) - logits * target
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


def _class_labels(target: Any, n: int, classes: int, who: str) -> np.ndarray:
    labels = np.asarray(target.data if isinstance(target, Tensor) else target)
    if labels.shape != (n,):
        raise ValueError(f"{who}: integer labels must have shape ({n},), got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(
            f"{who}: labels must lie in [0, {classes}), got values from "
            f"{labels.min()} to {labels.max()}"
        )
    return labels


def nll_loss(log_probs: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of integer labels under log-probabilities (N, C)."""
    log_probs = _tensor(log_probs)
    if log_probs.ndim != 2:
        raise ValueError(f"nll_loss: log-probabilities must be (N, C), got {log_probs.shape}")
    n, classes = log_probs.shape
    labels = _class_labels(target, n, classes, "nll_loss")
    picked = log_probs[np.arange(n), labels]
    return _reduce(-picked, reduction, "nll_loss")


def cross_entropy(logits: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of logits (N, C) against integer labels (N,) or (N, C) targets.

    Integer labels with the mean reduction take the fused, stable `softmax_cross_entropy` node;
    the other forms go through log_softmax, which is stable too (finite for logits of 1e4).
    """
    logits = _tensor(logits)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be (N, C), got {logits.shape}")
    n, classes = logits.shape
    target_data = np.asarray(target.data if isinstance(target, Tensor) else target)
    if target_data.dtype.kind in "iu":
        if reduction == "mean" and target_data.shape == (n,):
            try:  # the fused node checks the labels itself: validating twice costs a step
                return ad.softmax_cross_entropy(logits, target_data)
            except ValueError as exc:
                raise ValueError(str(exc).replace("softmax_cross_entropy", "cross_entropy")) \
                    from None
        labels = _class_labels(target_data, n, classes, "cross_entropy")
        return nll_loss(logits.log_softmax(axis=1), labels, reduction)
    if target_data.shape != logits.shape:
        raise ValueError(
            f"cross_entropy: targets must be integer labels ({n},) or probabilities "
            f"{logits.shape}, got {target_data.dtype} {target_data.shape}"
        )
    loss = -(logits.log_softmax(axis=1) * _tensor(target)).sum(axis=1)
    return _reduce(loss, reduction, "cross_entropy")


# --- metrics -------------------------------------------------------------------------------


def accuracy(outputs: Any, target: Any) -> float:
    """Fraction correct: argmax for (N, C) outputs; threshold 0.5 for (N,) or (N, 1) outputs.

    Targets may be integer labels, one-hot rows, or 0/1 values for binary outputs.
    """
    out = np.asarray(outputs.data if isinstance(outputs, Tensor) else outputs)
    tgt = np.asarray(target.data if isinstance(target, Tensor) else target)
    if out.ndim == 2 and out.shape[1] > 1:
        predicted = out.argmax(axis=1)
        labels = tgt.argmax(axis=1) if tgt.ndim == 2 else tgt
    else:
        predicted = (out.reshape(-1) > 0.5).astype(np.int64)
        labels = (tgt.reshape(-1) > 0.5).astype(np.int64)
    if predicted.shape != labels.shape:
        raise ValueError(f"accuracy: outputs {out.shape} and targets {tgt.shape} do not match")
    return float(np.mean(predicted == labels)) if predicted.size else 0.0
