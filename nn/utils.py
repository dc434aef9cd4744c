"""Gradient clipping, as PyTorch's `torch.nn.utils`: between `loss.backward()` and
`optimizer.step()`, to keep one bad batch from throwing the weights far away."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, cast

import numpy as np

from autodiff import Tensor


def _parameters_with_grads(parameters: Iterable[Tensor] | Tensor, who: str) -> list[Tensor]:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(
                f"{who}: expected parameters (Tensors), e.g. model.parameters(), "
                f"got {type(p).__name__}"
            )
    return [p for p in params if p.grad is not None]


def clip_grad_norm_(
    parameters: Iterable[Tensor] | Tensor,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> Tensor:
    """Scale all gradients together so that their joint norm is at most `max_norm`.

    The norm is taken over every gradient as if concatenated into one vector (`norm_type` 2,
    1, or `math.inf` for the largest absolute value). Returns that norm from before clipping.
    Gradients already within the limit are left as they are; with a NaN or infinite norm they
    are left too (scaling by NaN would only spread it), or an error with
    error_if_nonfinite=True.
    """
    max_norm = float(max_norm)
    if not max_norm > 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be positive, got {max_norm}")
    norm_type = float(norm_type)
    if not (norm_type > 0):
        raise ValueError(f"clip_grad_norm_: norm_type must be positive or inf, got {norm_type}")
    params = _parameters_with_grads(parameters, "clip_grad_norm_")
    grads = [np.asarray(cast(Tensor, p.grad).data, dtype=np.float64) for p in params]
    if not grads:
        return Tensor(0.0)
    if norm_type == math.inf:
        total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    else:
        total = sum(float(np.sum(np.abs(g) ** norm_type)) for g in grads) ** (1.0 / norm_type)
    if not math.isfinite(total):
        if error_if_nonfinite:
            raise FloatingPointError(
                f"clip_grad_norm_: the gradients' {norm_type:g}-norm is {total}; find where it "
                "starts with autodiff.detect_anomaly()"
            )
        return Tensor(total)
    # The small epsilon is PyTorch's: a norm at the limit scales by slightly under 1.
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for p in params:
            g = p.grad
            assert g is not None  # only parameters with gradients
            p.grad = Tensor((g.data * scale).astype(g.dtype, copy=False))
    return Tensor(total)


def clip_grad_value_(parameters: Iterable[Tensor] | Tensor, clip_value: float) -> None:
    """Clip every gradient element into [-clip_value, clip_value]."""
    clip_value = float(clip_value)
    if not clip_value >= 0:
        raise ValueError(f"clip_grad_value_: clip_value must be >= 0, got {clip_value}")
    for p in _parameters_with_grads(parameters, "clip_grad_value_"):
        g = p.grad
        assert g is not None  # only parameters with gradients
        p.grad = Tensor(np.clip(g.data, -clip_value, clip_value).astype(g.dtype, copy=False))


def one_hot(labels: Any, num_classes: int = -1) -> Tensor:
    """Integer labels (any shape) as one-hot rows along a new last axis, int64, as PyTorch's
    `F.one_hot`; `num_classes=-1` takes the largest label plus one."""
    values = np.asarray(labels.raw() if isinstance(labels, Tensor) else labels)
    if values.dtype.kind not in "iu":
        raise TypeError(f"one_hot: labels must be integers, got dtype {values.dtype}")
    if values.size and values.min() < 0:
        raise ValueError(f"one_hot: labels must be >= 0, got {values.min()}")
    largest = int(values.max()) if values.size else -1
    if num_classes == -1:
        num_classes = largest + 1
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 0:
        raise ValueError(f"one_hot: num_classes must be a positive int or -1, got {num_classes}")
    if largest >= num_classes:
        raise ValueError(f"one_hot: label {largest} does not fit num_classes={num_classes}")
    return Tensor(np.eye(num_classes, dtype=np.int64)[values])
