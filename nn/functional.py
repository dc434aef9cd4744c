"""Activations, losses and metrics as functions of Tensors (numerically stable composites)."""

from __future__ import annotations

from typing import Any

import numpy as np

import autodiff as ad

# The activations are the engine's own functions, under the names PyTorch users look for.
from autodiff import Tensor, log_softmax, relu, rules, sigmoid, softmax, tanh  # noqa: F401
from autodiff.composites import class_labels as _labels_in_range
from autodiff.extend import apply as _apply

from .utils import one_hot  # noqa: F401  (F.one_hot, as PyTorch's)

_REDUCTIONS = ("mean", "sum", "none")


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _reduce(loss: Tensor, reduction: str, who: str) -> Tensor:
    if reduction == "mean":
        if loss.raw().size == 0:  # else the engine's mean says "mean: no elements ..."
            raise ValueError(
                f"{who}: the batch is empty (loss of shape {loss.shape}), so it "
                f"has no mean; reduction='sum' gives 0 for it"
            )
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
    return ad.where(x.raw() > 0, x, x * negative_slope)


# --- losses --------------------------------------------------------------------------------


def mse_loss(pred: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error (the classic tutorial's loss with sigmoid outputs)."""
    pred, target = _tensor(pred), _tensor(target)
    _same_shape(pred, target, "mse_loss")
    diff = pred - target
    return _reduce(diff * diff, reduction, "mse_loss")


def l1_loss(pred: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Mean absolute error (its gradient is the sign of the error, 0 where it is exactly 0)."""
    pred, target = _tensor(pred), _tensor(target)
    _same_shape(pred, target, "l1_loss")
    return _reduce((pred - target).abs(), reduction, "l1_loss")


# PyTorch's two guards for probabilities at or next to 0 and 1: each log term of the loss is
# floored at -100 (so p = 0 or 1 costs 100, not infinity), and the gradient divides by
# max(p (1 - p), 1e-12) (so it stays finite there and never vanishes, however wrong the
# prediction). Clipping p itself instead would flatten the loss: a confident wrong prediction
# would get no gradient at all.


def binary_cross_entropy(
    probs: Tensor, target: Any, reduction: str = "mean", *, weight: Any = None
) -> Tensor:
    """-w [y log p + (1-y) log(1-p)] as PyTorch computes it, for probabilities p in [0, 1].

    Each log is floored at -100 (the value at p = 0 or 1 is 100, not infinite), and the
    gradient in p is PyTorch's, w (p - y) / max(p (1 - p), 1e-12): finite everywhere and
    never zero for a wrong prediction, however confident. `weight` (keyword-only, a constant)
    broadcasts to p's shape. The loss has p's dtype; targets are cast to it.
    """
    probs, target = _tensor(probs), _tensor(target)
    _same_shape(probs, target, "binary_cross_entropy")
    values = np.asarray(target.raw())
    if values.size and not ((values >= 0) & (values <= 1)).all():  # NaN fails both tests
        raise ValueError(
            f"binary_cross_entropy: targets must lie in [0, 1] (probabilities), got values "
            f"from {np.nanmin(values)} to {np.nanmax(values)}"
            + (" and NaN" if np.isnan(values).any() else "")
        )
    if probs.dtype.kind != "f":
        probs = probs.astype(np.float64)
    p = np.asarray(probs.raw())
    if p.size and ((p < 0) | (p > 1)).any():  # NaN passes: it makes a NaN loss, seen by fit
        raise ValueError(
            f"binary_cross_entropy: inputs must be probabilities in [0, 1], got values from "
            f"{np.nanmin(p)} to {np.nanmax(p)} (for logits use "
            f"binary_cross_entropy_with_logits)"
        )
    dtype = probs.dtype
    target = target.astype(dtype)
    # A primitive (autodiff.rules.binary_cross_entropy): the floored logs forward, PyTorch's
    # gradient (p - y) / max(p (1 - p), 1e-12) in p, and that gradient's derivatives to any
    # order.
    loss = _apply(rules.binary_cross_entropy, probs, target)
    if weight is not None:
        if isinstance(weight, Tensor) and weight.requires_grad:
            raise TypeError("binary_cross_entropy: weight is a constant; pass weight.detach()")
        w = np.asarray(weight.raw() if isinstance(weight, Tensor) else weight, dtype=dtype)
        try:
            fits = np.broadcast_shapes(w.shape, probs.shape) == probs.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"binary_cross_entropy: weight of shape {w.shape} does not "
                f"broadcast to the input's shape {probs.shape}"
            )
        loss = loss * Tensor(w)
    return _reduce(loss, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(
    logits: Tensor, target: Any, reduction: str = "mean"
) -> Tensor:
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
    labels = np.asarray(target.raw() if isinstance(target, Tensor) else target)
    if labels.size == 0 and labels.dtype.kind == "f":
        labels = labels.astype(np.int64)  # np.asarray([]) is float64: no labels, no doubt
    if labels.dtype.kind not in "iu":
        # Booleans would index as a mask (picking the wrong entries, silently) and floats
        # fail deep inside indexing: class labels are integers, as PyTorch's int64 targets.
        raise ValueError(
            f"{who}: labels must be integers (class indices), got dtype "
            f"{labels.dtype}"
            + (" (cast with .astype(np.int64))" if labels.dtype.kind in "bf" else "")
        )
    if labels.shape != (n,):
        raise ValueError(f"{who}: integer labels must have shape ({n},), got {labels.shape}")
    return _labels_in_range(who, labels, classes)


def nll_loss(log_probs: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of integer labels under log-probabilities (N, C)."""
    log_probs = _tensor(log_probs)
    if log_probs.ndim != 2:
        raise ValueError(f"nll_loss: log-probabilities must be (N, C), got {log_probs.shape}")
    n, classes = log_probs.shape
    labels = _class_labels(target, n, classes, "nll_loss")
    picked = log_probs[np.arange(n), labels]
    return _reduce(-picked, reduction, "nll_loss")


def cross_entropy(
    logits: Tensor,
    target: Any,
    reduction: str = "mean",
    *,
    weight: Any = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
) -> Tensor:
    """Softmax cross-entropy of logits (N, C) or one unbatched row (C,), as PyTorch's.

    `target` is integer labels (N,) (a single int for a (C,) row) or class probabilities of
    the logits' shape. `weight` (C,) scales each class's loss; labels equal to `ignore_index`
    add nothing; `label_smoothing` mixes each one-hot target with the uniform distribution.
    The mean over labels is weighted, sum(w[y] * loss) / sum(w[y]), so a batch whose labels
    are all ignored gives NaN (0 / 0), as in PyTorch.

    The options are keyword-only (PyTorch's third positional parameter is `weight`, ours
    is `reduction`, as for the other losses here): a misplaced one is an error, not a
    silently different loss.

    Plain integer labels with the mean reduction and no options take the fused, stable
    `softmax_cross_entropy` node; the other forms go through log_softmax, which is stable too
    (finite for logits of 1e4).
    """
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(
            f"cross_entropy: reduction must be one of {_REDUCTIONS}, got "
            + (repr(reduction) if isinstance(reduction, str) else f"a {type(reduction).__name__}")
            + " (weight=, ignore_index= and label_smoothing= are keyword-only)"
        )
    logits = logits if isinstance(logits, Tensor) else Tensor(logits)
    target_data = np.asarray(target.raw() if isinstance(target, Tensor) else target)
    shape = logits.raw().shape
    # The fused node knows no options; a negative ignore_index cannot match a valid label,
    # and a batch that contains it fails the node's label check and takes the long way.
    if (
        len(shape) == 2
        and reduction == "mean"
        and weight is None
        and not label_smoothing
        and ignore_index < 0
        and target_data.dtype.kind in "iu"
        and target_data.shape == shape[:1]
    ):
        try:  # shapes and dtype checked above: only the labels' range is left to check
            labels = _labels_in_range("cross_entropy", target_data, shape[1])
        except ValueError:
            if not (target_data == ignore_index).any():
                raise
        else:
            return _apply(rules.softmax_cross_entropy, logits, labels=labels)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(
            f"cross_entropy: label_smoothing must lie in [0, 1], got {label_smoothing}"
        )
    unbatched = logits.ndim == 1
    if unbatched:  # one row of C scores: a batch of one, with the batch axis removed again
        if target_data.dtype.kind in "iu" and target_data.shape != ():
            raise ValueError(
                f"cross_entropy: logits of shape {logits.shape} (one unbatched row) take one "
                f"integer label (shape ()), got shape {target_data.shape}"
            )
        logits = logits.reshape(1, -1)
        target_data = target_data.reshape((1,) + target_data.shape)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be (N, C) or (C,), got {logits.shape}")
    n, classes = logits.shape
    w = None
    if weight is not None:
        if isinstance(weight, Tensor) and weight.requires_grad:
            raise TypeError("cross_entropy: weight is a constant; pass weight.detach()")
        w = np.asarray(weight.raw() if isinstance(weight, Tensor) else weight, dtype=logits.dtype)
        if w.shape != (classes,):
            raise ValueError(f"cross_entropy: weight must have shape ({classes},), got {w.shape}")
    log_probs = logits.log_softmax(axis=1)
    if target_data.dtype.kind in "iu":
        loss, total = _label_cross_entropy(log_probs, target_data, w, ignore_index, label_smoothing)
    elif target_data.dtype.kind == "f" and target_data.shape == logits.shape:
        if ignore_index != -100:
            raise ValueError(
                "cross_entropy: ignore_index applies to integer labels only, not "
                "to class probabilities"
            )
        # A Tensor target keeps its gradient path (PyTorch differentiates in the target too).
        probs = _tensor(target).astype(logits.dtype).reshape(logits.shape)
        if label_smoothing:
            probs = probs * (1 - label_smoothing) + label_smoothing / classes
        weighted = probs if w is None else probs * w
        loss = -(log_probs * weighted).sum(axis=1)
        total = n  # probability targets: a plain mean over the batch, as in PyTorch
    else:
        shape = "()" if unbatched else f"({n},)"
        raise ValueError(
            f"cross_entropy: targets must be integer labels {shape} or probabilities "
            f"{(classes,) if unbatched else logits.shape}, got {target_data.dtype} "
            f"{target_data.shape[1:] if unbatched else target_data.shape}"
        )
    if reduction == "none":
        return loss.reshape(()) if unbatched else loss
    if reduction == "sum":
        return loss.sum()
    if total == 0:
        # Every label ignored: the mean is 0 / 0 = NaN (as PyTorch), but the gradient is 0 (as
        # PyTorch), not NaN spread into every weight by the division.
        return loss.sum() * 0.0 + Tensor(np.asarray(np.nan, dtype=logits.dtype))
    return loss.sum() / Tensor(np.asarray(total, dtype=logits.dtype))


def _label_cross_entropy(
    log_probs: Tensor, labels: np.ndarray, w: np.ndarray | None, ignore_index: int, smoothing: float
) -> tuple[Tensor, Any]:
    """Per-sample loss for integer labels and the mean's denominator (the weight in play)."""
    n, classes = log_probs.shape
    if labels.shape != (n,):
        one_hot = labels.shape == (n, classes)  # F.one_hot's int64 rows, say
        raise ValueError(
            f"cross_entropy: integer labels must have shape ({n},), got "
            f"{labels.shape}"
            + (
                " (one-hot rows? pass the labels themselves, or the rows as "
                "class probabilities in floats, .astype(np.float32))"
                if one_hot
                else ""
            )
        )
    keep = labels != ignore_index
    safe = np.where(keep, labels, 0)
    _class_labels(safe, n, classes, "cross_entropy")
    label_weight = (np.ones(n, log_probs.dtype) if w is None else w[safe]) * keep
    loss = -log_probs[np.arange(n), safe] * label_weight
    if smoothing:
        # PyTorch's form: (1 - e) * nll + e / C * (the loss against every class, weighted).
        every = -(log_probs if w is None else log_probs * w).sum(axis=1) * keep
        loss = loss * (1 - smoothing) + every * (smoothing / classes)
    return loss, label_weight.sum()


# --- metrics -------------------------------------------------------------------------------


def accuracy(outputs: Any, target: Any, *, threshold: float = 0.5) -> float:
    """Fraction correct: argmax for (N, C) outputs; for one score per sample ((N,) or (N, 1)
    outputs), the score above `threshold` means class 1: 0.5 for probabilities (the default),
    0.0 for logits (`threshold=0.0`, what `nn.fit` uses with the with-logits losses).

    Targets may be integer labels or one-hot rows for (N, C) outputs, and must be 0 or 1 for
    one score per sample (other values are not binary labels: an error, not a guess).
    """
    out = np.asarray(outputs.raw() if isinstance(outputs, Tensor) else outputs)
    tgt = np.asarray(target.raw() if isinstance(target, Tensor) else target)
    if out.ndim == 2 and out.shape[1] > 1:
        predicted = out.argmax(axis=1)
        if tgt.ndim == 2 and tgt.shape[1] == 1 and out.shape[1] > 1:
            # A column of labels, not one-hot rows of one class (argmax would say 0 for all).
            tgt = tgt[:, 0]
        labels = tgt.argmax(axis=1) if tgt.ndim == 2 else tgt
    else:
        flat = tgt.reshape(-1)
        if flat.size and not ((flat == 0) | (flat == 1)).all():
            raise ValueError(
                f"accuracy: outputs of shape {out.shape} give one score per sample (two "
                f"classes), so targets must be 0 or 1, got values from {np.nanmin(flat)} to "
                f"{np.nanmax(flat)}"
                + (" and NaN" if np.isnan(flat).any() else "")
                + " (for regression there is no accuracy: use metric=None)"
            )
        predicted = (out.reshape(-1) > threshold).astype(np.int64)
        labels = flat.astype(np.int64)
    if predicted.shape != labels.shape:
        raise ValueError(f"accuracy: outputs {out.shape} and targets {tgt.shape} do not match")
    return float(np.mean(predicted == labels)) if predicted.size else 0.0
