"""Losses as modules, PyTorch style: `criterion = nn.CrossEntropyLoss(); criterion(logits, y)`.

Each module holds its options and calls the function of the same name in `nn.functional`, so
the two forms give identical numbers and gradients.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autodiff import Tensor

from . import functional as F
from .module import Module

_REDUCTIONS = ("mean", "sum", "none")


class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:  # refused here, not at the first training step
            raise ValueError(
                f"{type(self).__name__}: reduction must be one of {_REDUCTIONS}, got {reduction!r}"
            )
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    """Squared error, `F.mse_loss`."""

    def forward(self, pred: Any, target: Any) -> Any:
        return F.mse_loss(pred, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Absolute error, `F.l1_loss`."""

    def forward(self, pred: Any, target: Any) -> Any:
        return F.l1_loss(pred, target, reduction=self.reduction)


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities in [0, 1], `F.binary_cross_entropy`.

    `weight` (broadcast to the input's shape) is kept as a constant numpy array, as in
    CrossEntropyLoss: neither trained nor saved.
    """

    def __init__(self, weight: Any = None, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.weight = (
            None
            if weight is None
            else np.array(weight.raw() if isinstance(weight, Tensor) else weight)
        )

    def forward(self, probs: Any, target: Any) -> Any:
        return F.binary_cross_entropy(probs, target, reduction=self.reduction, weight=self.weight)

    def extra_repr(self) -> str:
        weight = [] if self.weight is None else [f"weight={self.weight.tolist()}"]
        return ", ".join(weight + [super().extra_repr()])


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of logits (the sigmoid inside, stable for any logit).

    `weight` and `pos_weight` (see `F.binary_cross_entropy_with_logits`) are kept as
    constant numpy arrays, neither trained nor saved.
    """

    def __init__(self, weight: Any = None, reduction: str = "mean", pos_weight: Any = None) -> None:
        super().__init__(reduction)
        self.weight = None if weight is None else np.array(getattr(weight, "data", weight))
        self.pos_weight = (
            None if pos_weight is None else np.array(getattr(pos_weight, "data", pos_weight))
        )

    def forward(self, logits: Any, target: Any) -> Any:
        return F.binary_cross_entropy_with_logits(
            logits, target, reduction=self.reduction, weight=self.weight, pos_weight=self.pos_weight
        )

    def extra_repr(self) -> str:
        parts = [] if self.weight is None else [f"weight={self.weight.tolist()}"]
        if self.pos_weight is not None:
            parts.append(f"pos_weight={self.pos_weight.tolist()}")
        return ", ".join(parts + [super().extra_repr()])


class NLLLoss(_Loss):
    """Negative log-likelihood of integer labels under log-probabilities, `F.nll_loss`.

    `weight` (one number per class) is a constant numpy array, as in CrossEntropyLoss.
    """

    def __init__(
        self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean"
    ) -> None:
        super().__init__(reduction)
        self.weight = None if weight is None else np.array(getattr(weight, "data", weight))
        self.ignore_index = ignore_index

    def forward(self, log_probs: Any, target: Any) -> Any:
        return F.nll_loss(
            log_probs,
            target,
            reduction=self.reduction,
            weight=self.weight,
            ignore_index=self.ignore_index,
        )

    def extra_repr(self) -> str:
        parts = [] if self.weight is None else [f"weight={self.weight.tolist()}"]
        if self.ignore_index != -100:
            parts.append(f"ignore_index={self.ignore_index}")
        return ", ".join(parts + [super().extra_repr()])


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy of logits, `F.cross_entropy` (see there for every option).

    `weight` (one number per class) is kept as a constant numpy array, not a parameter: it
    is neither trained nor saved with the model's weights.
    """

    def __init__(
        self,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(
                f"CrossEntropyLoss: label_smoothing must lie in [0, 1], got {label_smoothing}"
            )
        self.weight = None if weight is None else np.array(getattr(weight, "data", weight))
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, logits: Any, target: Any) -> Any:
        return F.cross_entropy(
            logits,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )

    def extra_repr(self) -> str:
        parts = [] if self.weight is None else [f"weight={self.weight.tolist()}"]
        if self.ignore_index != -100:
            parts.append(f"ignore_index={self.ignore_index}")
        if self.label_smoothing:
            parts.append(f"label_smoothing={self.label_smoothing}")
        return ", ".join(parts + [super().extra_repr()])
