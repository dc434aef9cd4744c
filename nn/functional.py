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


def _constant(value: Any, who: str, name: str, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A constant weight that broadcasts to `shape`, as a numpy array of `dtype`."""
    if isinstance(value, Tensor) and value.requires_grad:
        raise TypeError(f"{who}: {name} is a constant; pass {name}.detach()")
    w = np.asarray(value.raw() if isinstance(value, Tensor) else value, dtype=dtype)
    try:
        fits = np.broadcast_shapes(w.shape, shape) == shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"{who}: {name} of shape {w.shape} does not broadcast to the input's shape {shape}"
        )
    return w


def binary_cross_entropy_with_logits(
    logits: Tensor,
    target: Any,
    reduction: str = "mean",
    *,
    weight: Any = None,
    pos_weight: Any = None,
) -> Tensor:
    """BCE on logits: softplus(x) - x*y, finite for any logit, gradient sigmoid(x) - y.

    `pos_weight` (keyword-only, a constant broadcasting along the last axis, one per class
    as in PyTorch) scales the loss of the positive targets: -[p y log s(x) + (1-y) log(1-s(x))]
    (p > 1 trades precision for recall on a rare class). `weight` scales each element's loss.
    """
    logits, target = _tensor(logits), _tensor(target)
    _same_shape(logits, target, "binary_cross_entropy_with_logits")
    if logits.dtype.kind != "f":
        logits = logits.astype(np.float64)
    target = target.astype(logits.dtype)
    # softplus(x) = log(1 + e^x) = logsumexp over the pair (0, x): logsumexp shifts by the max,
    # so it is finite for any logit, and its gradient is exactly sigmoid(x) everywhere. The
    # textbook max(x, 0) + log(1 + exp(-|x|)) has the same value, but goes through relu and
    # abs, whose kinks at 0 give gradient -y instead of 0.5 - y at a logit of exactly 0 (where
    # a zero-initialised model starts).
    if pos_weight is None:
        pair = ad.stack([ad.zeros_like(logits), logits], axis=-1)
        loss = pair.logsumexp(axis=-1) - logits * target
    else:
        p = _constant(
            pos_weight, "binary_cross_entropy_with_logits", "pos_weight", logits.dtype, logits.shape
        )
        # -[p y log s(x) + (1 - y) log(1 - s(x))] with log s(x) = -softplus(-x) and
        # log(1 - s(x)) = -x - softplus(-x): (1 - y) x + (1 + (p - 1) y) softplus(-x).
        minus = ad.stack([ad.zeros_like(logits), -logits], axis=-1).logsumexp(axis=-1)
        loss = (1 - target) * logits + (1 + (Tensor(p) - 1) * target) * minus
    if weight is not None:
        w = _constant(
            weight, "binary_cross_entropy_with_logits", "weight", logits.dtype, logits.shape
        )
        loss = loss * Tensor(w)
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


def _class_labels(target: Any, n: int, classes: int, who: str) -> np.ndarray:
    labels = _integer_labels(target, who)
    if labels.shape != (n,):
        raise ValueError(f"{who}: integer labels must have shape ({n},), got {labels.shape}")
    return _labels_in_range(who, labels, classes)


def _integer_labels(target: Any, who: str) -> np.ndarray:
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
    return labels


def _class_weight(weight: Any, classes: int, dtype: Any, who: str) -> np.ndarray | None:
    if weight is None:
        return None
    if isinstance(weight, Tensor) and weight.requires_grad:
        raise TypeError(f"{who}: weight is a constant; pass weight.detach()")
    w = np.asarray(weight.raw() if isinstance(weight, Tensor) else weight, dtype=dtype)
    if w.shape != (classes,):
        raise ValueError(f"{who}: weight must have shape ({classes},), got {w.shape}")
    return w


def _rows(x: Tensor) -> Tensor:
    """(N, C, d1, ..., dk) scores as (N * d1 * ... * dk, C) rows, one per position."""
    if x.ndim == 2:
        return x
    order = (0, *range(2, x.ndim), 1)  # the class axis last, then one row per position
    return x.transpose(order).reshape(-1, x.shape[1])


def _spatial_labels(labels: np.ndarray, scores: tuple[int, ...], who: str) -> np.ndarray:
    """Labels (N, d1, ..., dk) for scores (N, C, d1, ..., dk), flattened as `_rows` orders."""
    want = scores[:1] + scores[2:]
    if labels.shape != want:
        one_hot = len(scores) == 2 and labels.shape == scores  # F.one_hot's int64 rows, say
        raise ValueError(
            f"{who}: integer labels for input of shape {scores} must have shape "
            f"{want}, got {labels.shape}"
            + (
                " (one-hot rows? pass the labels themselves, or the rows as "
                "class probabilities in floats, .astype(np.float32))"
                if one_hot
                else ""
            )
        )
    return labels.reshape(-1)


def _label_loss(
    rows: Tensor,
    labels: np.ndarray,
    w: np.ndarray | None,
    ignore_index: int,
    smoothing: float,
    who: str,
    *,
    logits: bool,
) -> tuple[Tensor, Any]:
    """Per-row loss of integer labels over (M, C) rows, and the weighted mean's denominator.

    A row whose label is `ignore_index` is left out before anything is computed from it: its
    loss is an exact 0 and its gradient 0, whatever it holds (NaN, -inf), as in PyTorch. Only
    picking it with a stand-in label and weighting it by 0 would turn an -inf or NaN there
    into a NaN loss (0 * inf), and a NaN gradient for every parameter.
    """
    m, classes = rows.shape
    keep = labels != ignore_index
    kept = np.flatnonzero(keep)
    picked = _labels_in_range(who, labels[kept], classes)
    every_row = kept.size == m
    sub = rows if every_row else rows[kept]
    log_probs = sub.log_softmax(axis=1) if logits else sub
    index = np.arange(kept.size)
    if w is None:
        label_weight = np.ones(kept.size, rows.dtype)
        loss = -log_probs[index, picked]
    else:
        label_weight = w[picked]
        loss = -log_probs[index, picked] * Tensor(label_weight)
    if smoothing:
        # PyTorch's form: (1 - e) * nll + e / C * (the loss against every class, weighted).
        every = -(log_probs if w is None else log_probs * Tensor(w)).sum(axis=1)
        loss = loss * (1 - smoothing) + every * (smoothing / classes)
    if not every_row:
        # Back to one entry per row: the ignored rows point at an appended exact zero.
        where = np.full(m, kept.size)
        where[kept] = index
        loss = ad.concatenate([loss, Tensor(np.zeros(1, rows.dtype))])[where]
    return loss, label_weight.sum()


def _reduce_weighted(
    loss: Tensor, total: Any, reduction: str, shape: tuple[int, ...], dtype: Any
) -> Tensor:
    """'none' as `shape`, 'sum', or the mean weighted by `total` (PyTorch's for labels)."""
    if reduction == "none":
        return loss.reshape(shape)
    if reduction == "sum":
        return loss.sum()
    if total == 0:
        # Every label ignored: the mean is 0 / 0 = NaN (as PyTorch), but the gradient is 0 (as
        # PyTorch), not NaN spread into every weight by the division.
        return loss.sum() * 0.0 + Tensor(np.asarray(np.nan, dtype=dtype))
    return loss.sum() / Tensor(np.asarray(total, dtype=dtype))


def nll_loss(
    log_probs: Tensor,
    target: Any,
    reduction: str = "mean",
    *,
    weight: Any = None,
    ignore_index: int = -100,
) -> Tensor:
    """Negative log-likelihood of integer labels under log-probabilities, as PyTorch's.

    Inputs are (N, C) with labels (N,), one row (C,) with one label, or (N, C, d1, ...)
    with labels (N, d1, ...). `weight` (C,) scales each class's loss, labels equal to
    `ignore_index` add nothing (their rows are not read), and the mean is weighted,
    sum(w[y] * loss) / sum(w[y]) (NaN if every label is ignored, as in PyTorch).
    """
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"nll_loss: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    log_probs = _tensor(log_probs)
    if log_probs.ndim == 0:
        raise ValueError(f"nll_loss: log-probabilities must be (N, C), got {log_probs.shape}")
    labels = _integer_labels(target, "nll_loss")
    unbatched = log_probs.ndim == 1
    if unbatched:
        if labels.shape != ():
            raise ValueError(
                f"nll_loss: log-probabilities must be (N, C) with labels (N,), or one row "
                f"(C,) with one label (shape ()): got {log_probs.shape} with labels of shape "
                f"{labels.shape}"
            )
        log_probs, labels = log_probs.reshape(1, -1), labels.reshape(1)
    scores = log_probs.shape
    flat = _spatial_labels(labels, scores, "nll_loss")
    w = _class_weight(weight, scores[1], log_probs.dtype, "nll_loss")
    loss, total = _label_loss(
        _rows(log_probs), flat, w, ignore_index, 0.0, "nll_loss", logits=False
    )
    out = () if unbatched else scores[:1] + scores[2:]
    if reduction == "mean" and flat.size == 0:
        raise ValueError(
            f"nll_loss: the batch is empty (input of shape {scores}), so it has no mean; "
            f"reduction='sum' gives 0 for it"
        )
    return _reduce_weighted(loss, total, reduction, out, log_probs.dtype)


def cross_entropy(
    logits: Tensor,
    target: Any,
    reduction: str = "mean",
    *,
    weight: Any = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
) -> Tensor:
    """Softmax cross-entropy of logits, as PyTorch's.

    Logits are (N, C), one unbatched row (C,), or (N, C, d1, ..., dk) (a class score per
    position, e.g. per pixel). `target` is integer labels (N,), a single int for a (C,) row,
    (N, d1, ..., dk) for the spatial form, or class probabilities of the logits' shape.
    `weight` (C,) scales each class's loss; labels equal to `ignore_index` add nothing and
    their rows are never read (NaN or -inf there cannot leak into the loss or gradient);
    `label_smoothing` mixes each one-hot target with the uniform distribution. The mean over
    labels is weighted, sum(w[y] * loss) / sum(w[y]), so a batch whose labels are all
    ignored gives NaN (0 / 0), as in PyTorch.

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
    if logits.ndim < 2:
        raise ValueError(
            f"cross_entropy: logits must be (N, C), (C,) or (N, C, d1, ...), got {logits.shape}"
        )
    scores = logits.shape
    classes = scores[1]
    out = () if unbatched else scores[:1] + scores[2:]
    w = _class_weight(weight, classes, logits.dtype, "cross_entropy")
    if target_data.dtype.kind in "iu":
        flat = _spatial_labels(target_data, scores, "cross_entropy")
        loss, total = _label_loss(
            _rows(logits), flat, w, ignore_index, label_smoothing, "cross_entropy", logits=True
        )
    elif target_data.dtype.kind == "f" and target_data.shape == scores:
        if ignore_index != -100:
            raise ValueError(
                "cross_entropy: ignore_index applies to integer labels only, not "
                "to class probabilities"
            )
        # A Tensor target keeps its gradient path (PyTorch differentiates in the target too).
        probs = _rows(_tensor(target).astype(logits.dtype).reshape(scores))
        if label_smoothing:
            probs = probs * (1 - label_smoothing) + label_smoothing / classes
        weighted = probs if w is None else probs * w
        loss = -(_rows(logits).log_softmax(axis=1) * weighted).sum(axis=1)
        total = loss.shape[0]  # probability targets: a plain mean, as in PyTorch
    else:
        want = "()" if unbatched else str(out)
        raise ValueError(
            f"cross_entropy: targets must be integer labels {want} or probabilities "
            f"{(classes,) if unbatched else scores}, got {target_data.dtype} "
            f"{target_data.shape[1:] if unbatched else target_data.shape}"
        )
    return _reduce_weighted(loss, total, reduction, out, logits.dtype)


# --- metrics -------------------------------------------------------------------------------


def accuracy(
    outputs: Any, target: Any, *, threshold: float = 0.5, ignore_index: int | None = None
) -> float:
    """Fraction correct: argmax for (N, C) outputs; for one score per sample ((N,) or (N, 1)
    outputs), the score above `threshold` means class 1: 0.5 for probabilities (the default),
    0.0 for logits (`threshold=0.0`, what `nn.fit` uses with the with-logits losses).

    Targets may be integer labels or one-hot rows for (N, C) outputs, and must be 0 or 1 for
    one score per sample (other values are not binary labels: an error, not a guess). Scores
    (N, C, d1, ...) with labels (N, d1, ...) count every position. Labels equal to
    `ignore_index` are not counted at all (as cross_entropy leaves them out of the loss).
    """
    correct, count = _accuracy_counts(
        outputs, target, threshold=threshold, ignore_index=ignore_index
    )
    return correct / count if count else 0.0


def _accuracy_counts(
    outputs: Any, target: Any, *, threshold: float = 0.5, ignore_index: int | None = None
) -> tuple[int, int]:
    """`accuracy` as (number correct, number counted), for adding up over batches."""
    out = np.asarray(outputs.raw() if isinstance(outputs, Tensor) else outputs)
    tgt = np.asarray(target.raw() if isinstance(target, Tensor) else target)
    if out.ndim > 2 and out.shape[1] > 1 and tgt.dtype.kind in "iu" and tgt.ndim == out.ndim - 1:
        # (N, C, d1, ...) scores and (N, d1, ...) labels: a class per position, as
        # cross_entropy's spatial form.
        predicted = out.argmax(axis=1).reshape(-1)
        labels = tgt.reshape(-1)
    elif out.ndim == 2 and out.shape[1] > 1:
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
    if ignore_index is not None and labels.dtype.kind in "iu":
        keep = labels != ignore_index
        predicted, labels = predicted[keep], labels[keep]
    return int(np.count_nonzero(predicted == labels)), int(labels.size)


# --- pooling with PyTorch's options ------------------------------------------------------------


def _two(value: Any, name: str, who: str, minimum: int) -> tuple[int, int]:
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= minimum for v in pair
    ):
        raise ValueError(
            f"{who}: {name} must be an int >= {minimum} or a pair of them, got {value!r}"
        )
    return int(pair[0]), int(pair[1])


def _pool_geometry(
    who: str,
    shape: tuple[int, ...],
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: bool,
) -> tuple[tuple[int, int], ...]:
    """(kernel, stride, padding, dilation, output size, extra end padding) per spatial axis,
    by PyTorch's rules: the output size rounds up with ceil_mode, but a last window that
    would start in the right padding (or beyond) is dropped."""
    if len(shape) != 4:
        raise ValueError(f"{who}: expected an (N, C, H, W) input, got shape {shape}")
    kernel = _two(kernel_size, "kernel_size", who, 1)
    step = kernel if stride is None or stride == () else _two(stride, "stride", who, 1)
    pad = _two(padding, "padding", who, 0)
    dil = _two(dilation, "dilation", who, 1)
    out, extra = [], []
    for axis in range(2):
        k, s, p, d, size = kernel[axis], step[axis], pad[axis], dil[axis], shape[2 + axis]
        if p > k // 2:
            raise ValueError(f"{who}: padding {pad} must be at most half the kernel size {kernel}")
        span = size + 2 * p - d * (k - 1) - 1
        if span < 0:
            raise ValueError(
                f"{who}: input of shape {shape} (padding {pad}) is smaller than the "
                f"kernel {kernel} with dilation {dil}"
            )
        n = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (n - 1) * s >= size + p:
            n -= 1
        out.append(n)
        extra.append(max(0, (n - 1) * s + d * (k - 1) + 1 - (size + 2 * p)))
    return kernel, step, pad, dil, (out[0], out[1]), (extra[0], extra[1])


def _padded(x: Tensor, pad: tuple[int, int], extra: tuple[int, int], value: float) -> Tensor:
    widths = ((0, 0), (0, 0), (pad[0], pad[0] + extra[0]), (pad[1], pad[1] + extra[1]))
    if not any(a or b for a, b in widths):
        return x
    return ad.pad(x, widths, value=value)


def max_pool2d(
    x: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """Max pooling with PyTorch's options: `dilation` spreads the window, `ceil_mode` keeps a
    last partial window, and `return_indices` also gives each maximum's position in its
    (H * W) input plane, as `max_unpool2d` takes. Ties inside a window share the gradient,
    as `autodiff.max_pool2d` (PyTorch picks one); the index is the first maximum."""
    who = "max_pool2d"
    x = _tensor(x)
    kernel, step, pad, dil, out, extra = _pool_geometry(
        who, x.shape, kernel_size, stride, padding, dilation, ceil_mode
    )
    if dil == (1, 1) and extra == (0, 0) and not return_indices:
        return ad.max_pool2d(x, kernel, step, pad)
    # -inf, so padding never wins a window (every window holds an input element).
    cols = ad.unfold(_padded(x, pad, extra, -np.inf), kernel, step, 0, dil)
    pooled = cols.max(axis=(4, 5))
    if not return_indices:
        return pooled
    n, c = x.shape[:2]
    flat = np.asarray(cols.raw()).reshape(n, c, out[0], out[1], kernel[0] * kernel[1])
    first = flat.argmax(axis=-1)  # the first maximum (NaN, if any, counts as the maximum)
    dr, dc = np.divmod(first, kernel[1])
    rows = np.arange(out[0])[:, None] * step[0] - pad[0] + dr * dil[0]
    columns = np.arange(out[1])[None, :] * step[1] - pad[1] + dc * dil[1]
    return pooled, rows * x.shape[3] + columns


def avg_pool2d(
    x: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Tensor:
    """Average pooling with PyTorch's options: `ceil_mode` keeps a last partial window, and
    `count_include_pad=False` divides by the input elements a window covers, not counting
    its zero padding. (A window hanging past the padded input, from ceil_mode, divides by
    what lies inside it, as PyTorch does.)"""
    who = "avg_pool2d"
    x = _tensor(x)
    kernel, step, pad, dil, out, extra = _pool_geometry(
        who, x.shape, kernel_size, stride, padding, 1, ceil_mode
    )
    if extra == (0, 0) and count_include_pad:
        return ad.avg_pool2d(x, kernel, step, pad)
    sums = ad.unfold(_padded(x, pad, extra, 0.0), kernel, step, 0, 1).sum(axis=(4, 5))
    counts = []
    for axis in range(2):
        size, k, s, p = x.shape[2 + axis], kernel[axis], step[axis], pad[axis]
        begin = np.arange(out[axis]) * s - p
        end = begin + k
        if count_include_pad:  # the padding counts, what lies beyond it does not
            counts.append(np.minimum(end, size + p) - np.maximum(begin, -p))
        else:
            counts.append(np.minimum(end, size) - np.maximum(begin, 0))
    divisor = (counts[0][:, None] * counts[1][None, :]).astype(sums.dtype)
    return sums / Tensor(divisor)


def max_unpool2d(
    x: Any,
    indices: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    output_size: Any = None,
) -> Tensor:
    """The inverse of `max_pool2d(..., return_indices=True)`: each value put back at its index
    in an (H * W) plane of zeros. The plane is (H_in - 1) * stride - 2 * padding + kernel on
    each axis, or `output_size` ((H, W), or (N, C, H, W), as PyTorch takes)."""
    who = "max_unpool2d"
    x = _tensor(x)
    index = np.asarray(getattr(indices, "_data", indices))
    if x.ndim != 4:
        raise ValueError(f"{who}: expected an (N, C, H, W) input, got shape {x.shape}")
    if index.shape != x.shape or index.dtype.kind not in "iu":
        raise ValueError(
            f"{who}: indices must be integers of the input's shape {x.shape}, got "
            f"{index.dtype} {index.shape}"
        )
    kernel = _two(kernel_size, "kernel_size", who, 1)
    step = kernel if stride is None else _two(stride, "stride", who, 1)
    pad = _two(padding, "padding", who, 0)
    if output_size is None:
        size = tuple((x.shape[2 + a] - 1) * step[a] - 2 * pad[a] + kernel[a] for a in range(2))
    else:
        size = tuple(int(v) for v in tuple(output_size)[-2:])
    n, c = x.shape[:2]
    plane = size[0] * size[1]
    flat = index.reshape(n, c, -1)
    if flat.size and (flat.min() < 0 or flat.max() >= plane):
        raise ValueError(
            f"{who}: indices must lie in [0, {plane}) for an output of {size[0]}x{size[1]}, "
            f"got values from {flat.min()} to {flat.max()}"
        )
    # Each output position takes one value (of a position picked by two windows, the same
    # input element twice: once, as PyTorch's assignment): a gather from x plus one zero.
    values = ad.concatenate([x.reshape(n, c, -1), ad.zeros((n, c, 1), dtype=x.dtype)], axis=2)
    source = np.full((n, c, plane), flat.shape[2], dtype=np.int64)
    batch, channel = np.indices(flat.shape[:2])
    for j in range(flat.shape[2] - 1, -1, -1):  # the first window wins, as written last
        source[batch, channel, flat[:, :, j]] = j
    return ad.take_along_axis(values, source, axis=2).reshape(n, c, size[0], size[1])
