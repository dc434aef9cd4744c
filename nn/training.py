"""The training loop, with the stopping rules of the classic backpropagation algorithm."""

from __future__ import annotations

import functools
import math
import numbers
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from autodiff import Tensor, no_grad

from . import functional as F
from .data import DataLoader
from .functional import accuracy
from .losses import BCEWithLogitsLoss, CrossEntropyLoss
from .lr_scheduler import OneCycleLR, ReduceLROnPlateau
from .module import Module
from .optim import Optimizer

Callback = Callable[[int, "History"], Any]


class History(dict):
    """Per-epoch lists: "loss", "accuracy", "val_loss", "val_accuracy", "max_update".

    `.epochs` is how many epochs ran, `.stopped_reason` why training stopped.
    """

    def __init__(self) -> None:
        super().__init__(loss=[], accuracy=[], val_loss=[], val_accuracy=[], max_update=[])
        self.stopped_reason = ""

    @property
    def epochs(self) -> int:
        return len(self["loss"])

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.items() if v}
        return f"History(epochs={self.epochs}, last={last}, stopped={self.stopped_reason!r})"


def _as_tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x))


def _batches(
    data: Any, batch_size: int | None, caller: str = "fit", what: str = "train_loader"
) -> DataLoader:
    """`data` as a DataLoader of (x, y) batches, or an error naming the caller and argument.

    `batch_size` batches an (x, y) pair (64 when None); a DataLoader has its own, so another
    one given beside it is refused rather than silently ignored.
    """
    if isinstance(data, DataLoader):
        if data.y is None:
            raise ValueError(
                f"{caller}: {what} is a DataLoader without targets (y=None): "
                f"training and evaluation need (x, y) batches"
            )
        if batch_size is not None and batch_size != data.batch_size:
            raise ValueError(
                f"{caller}: batch_size={batch_size} would be ignored: {what} is a "
                f"DataLoader with batch_size={data.batch_size}; set it there"
            )
        return data
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        got = (
            f"{type(data).__name__} of length {len(data)}"
            if isinstance(data, (tuple, list))
            else type(data).__name__
        )
        raise TypeError(
            f"{caller}: {what} must be a DataLoader or an (x, y) pair of arrays, got a {got}"
        )
    x, y = data
    if y is None:
        raise ValueError(f"{caller}: {what} has no targets (y is None)")
    return DataLoader(x, y, batch_size=64 if batch_size is None else batch_size)


def _check_number(
    name: str, value: Any, low: float | None = None, high: float | None = None
) -> None:
    """Refuse a stopping rule that could never work (not a number, NaN, out of range)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ValueError(f"fit: {name} must be a number, got {value!r}")
    # typeshed gives numbers.Real no comparison with float (the numeric tower is untyped).
    if (low is not None and value < low) or (high is not None and value > high):  # type: ignore[operator]
        wanted = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"fit: {name} must be {wanted}, got {value!r}")


class _Accuracy:
    """The default metric as fit and evaluate use it: `accuracy` with the threshold and
    ignore_index that suit the loss, added up over batches as counts (correct / counted
    labels over the whole set), not as one fraction per batch weighted by its size, which
    is wrong as soon as a batch holds ignored labels or several positions per sample."""

    def __init__(self, threshold: float = 0.5, ignore_index: int | None = None) -> None:
        self.threshold = threshold
        self.ignore_index = ignore_index

    def counts(self, outputs: Any, target: Any) -> tuple[int, int]:
        return F._accuracy_counts(
            outputs, target, threshold=self.threshold, ignore_index=self.ignore_index
        )

    def __call__(self, outputs: Any, target: Any) -> float:
        correct, count = self.counts(outputs, target)
        return correct / count if count else 0.0


_LABEL_LOSSES = (F.cross_entropy, F.nll_loss)


def _loss_options(loss_fn: Any) -> dict[str, Any]:
    """The options a loss was given: keywords of (nested) functools.partial layers, then a
    loss module's attributes. The outermost keyword wins, as when the partial is called."""
    options: dict[str, Any] = {}
    fn = loss_fn
    while isinstance(fn, functools.partial):
        for key, value in fn.keywords.items():
            options.setdefault(key, value)
        fn = fn.func
    for key in ("weight", "ignore_index", "reduction"):
        if hasattr(fn, key):
            options.setdefault(key, getattr(fn, key))
    return options


def _takes_labels(loss_fn: Any) -> bool:
    """cross_entropy or nll_loss, as a function, partial or module: a loss whose mean over
    integer labels is weighted (by class weight, and 0 for an ignored label)."""
    from .losses import NLLLoss

    loss = _innermost(loss_fn)
    return loss in _LABEL_LOSSES or isinstance(loss, (CrossEntropyLoss, NLLLoss))


class _LossTotal:
    """One loss value for a whole data set from its batches' values, as the loss defines it.

    A mean reduction is a weighted mean for cross_entropy and nll_loss: each batch's value
    is sum(w[y] * loss) / sum(w[y]) over its counted labels (w = 1 without `weight`, 0 for
    an ignored label), so the set's value is the sum of the batches' numerators over the sum
    of their denominators. Weighting each batch by its number of samples instead made the
    reported loss depend on batch_size. Any other mean loss counts each sample alike (its
    batch value times the batch's size); a "sum" loss is reported per sample, its batch sums
    added up and divided by the number of samples.
    """

    def __init__(self, loss_fn: Any) -> None:
        self.sums = _reduction(loss_fn) == "sum"
        self.labels = _takes_labels(loss_fn) and not self.sums
        options = _loss_options(loss_fn) if self.labels else {}
        weight = options.get("weight")
        self.weight = None if weight is None else np.asarray(getattr(weight, "_data", weight))
        self.ignore_index = options.get("ignore_index", -100)
        self.total = 0.0
        self.denominator = 0.0

    def batch_weight(self, target: Any, n: int) -> float:
        """What a batch's mean loss is divided by (0: a batch of ignored labels only)."""
        if not self.labels:
            return float(n)
        labels = np.asarray(getattr(target, "_data", target))
        if labels.dtype.kind not in "iu":  # class probabilities: a plain mean over rows
            return float(labels.size // labels.shape[1]) if labels.ndim >= 2 else 1.0
        kept = labels[labels != self.ignore_index]
        return float(kept.size if self.weight is None else self.weight[kept].sum())

    def add(self, value: float, weight: float, n: int) -> None:
        if self.sums:
            self.total += value
            self.denominator += n
        elif weight:  # else the batch's value is 0 / 0 and counts for nothing
            self.total += value * weight
            self.denominator += weight

    @property
    def value(self) -> float:
        return self.total / self.denominator if self.denominator else float("nan")


class _MetricTotal:
    """A metric over a whole data set: counts for the default accuracy, else each batch's
    value weighted by its number of samples."""

    def __init__(self, metric: Callable | None) -> None:
        self.metric = metric
        self.total = 0.0
        self.count = 0

    def add(self, outputs: Any, target: Any, n: int) -> None:
        if self.metric is None:
            return
        if isinstance(self.metric, _Accuracy):
            correct, counted = self.metric.counts(outputs, target)
            self.total += correct
            self.count += counted
        else:
            self.total += float(self.metric(outputs, target)) * n
            self.count += n

    @property
    def value(self) -> float:
        if self.metric is None:
            return float("nan")
        return self.total / self.count if self.count else 0.0


def _innermost(fn: Any) -> Any:
    # functools.partial(F.binary_cross_entropy_with_logits, reduction="sum") is still that loss.
    while isinstance(fn, functools.partial):
        fn = fn.func
    return fn


def _reduction(loss_fn: Any) -> str:
    """The loss's reduction when it says ("sum" from `reduction="sum"` given to a partial or
    a loss module), else "mean": how one batch's loss value relates to its samples."""
    fn = loss_fn
    while isinstance(fn, functools.partial):
        if "reduction" in fn.keywords:
            return str(fn.keywords["reduction"])
        fn = fn.func
    return str(getattr(fn, "reduction", "mean"))


def _loss_value(loss: Any, caller: str) -> float:
    """One batch's loss as a float, or an error naming the caller if it is not one number."""
    shape = getattr(loss, "shape", np.shape(loss))
    if math.prod(shape) != 1:
        raise ValueError(
            f"{caller}: loss_fn returned a loss of shape {shape}, not a single "
            f"number (with reduction='none' it gives one loss per sample: use "
            f"'mean' or 'sum')"
        )
    return float(loss.item() if hasattr(loss, "item") else loss)


def _default_metric(
    metric: Callable | None, loss_fn: Callable | None, y: Any
) -> tuple[Callable | None, str]:
    """The metric to use and, when there is none, why. Only `accuracy` (the default) is
    adapted; any other metric (or None) is the caller's choice and is used as it is.

    accuracy is only meaningful for class labels: one integer label per sample, targets that
    are all 0 or 1 (binary targets, one-hot rows), or class probabilities for cross_entropy.
    Other targets (continuous values: regression) get no accuracy. One score per sample is
    thresholded at 0 when the loss takes logits (binary_cross_entropy_with_logits,
    BCEWithLogitsLoss), at 0.5 otherwise (probabilities); (N, C) outputs use argmax.
    """
    if metric is not accuracy:
        return metric, ""
    loss = _innermost(loss_fn)
    values = np.asarray(y.raw() if isinstance(y, Tensor) else y)
    # One integer label per sample (shape (N,)) is a class index; anything else must be 0/1
    # (binary targets, one-hot rows) or class probabilities for cross_entropy. Integers of
    # shape (N, 1) beyond 0 and 1 are counts to regress on, not classes.
    labels = (
        values.dtype.kind in "biu"
        and values.ndim == 1
        or _takes_labels(loss_fn)
        or bool(((values == 0) | (values == 1)).all())
    )
    if not labels:
        finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        shown = (
            f"values from {finite.min():.4g} to {finite.max():.4g}"
            if finite.size
            else "no finite values"
        )
        return None, (
            f"the targets are not class labels ({values.dtype} of shape "
            f"{values.shape} with {shown}, not only 0 and 1), so there is no default "
            f"accuracy"
        )
    if loss is F.binary_cross_entropy_with_logits or isinstance(loss, BCEWithLogitsLoss):
        return _Accuracy(threshold=0.0), ""
    if _takes_labels(loss_fn):
        # The labels the loss leaves out are not scored either.
        return _Accuracy(ignore_index=_loss_options(loss_fn).get("ignore_index", -100)), ""
    return _Accuracy(), ""


def evaluate(
    model: Module,
    x: Any,
    y: Any,
    loss_fn: Callable | None = None,
    batch_size: int = 1000,
    metric: Callable | None = accuracy,
) -> tuple[float, float]:
    """(loss, metric) over a data set, in eval mode and without recording a graph.

    The loss is the whole set's, as the loss defines it (a weighted mean stays weighted, so
    the value does not depend on `batch_size`; see `fit`).

    The default metric, `accuracy`, is adapted to the loss and targets as in `fit`; where it
    does not apply (targets that are not class labels) the metric is NaN. Without a
    `loss_fn` the loss is NaN too (not 0.0, which would read as a perfect fit).
    """
    batches = _batches((x, y), batch_size, "evaluate", "(x, y)")  # checked before y is read
    metric, _ = _default_metric(metric, loss_fn, batches.y)
    return _evaluate(model, batches, loss_fn, metric)


def _modes(model: Module) -> list[tuple[Module, bool]]:
    """Every sub-module's own training flag, so evaluation can put each back as it was
    (model.train(was_training) would also switch on a BatchNorm the user froze with eval())."""
    return [(m, m.training) for m in model.modules()]


def _restore(modes: list[tuple[Module, bool]]) -> None:
    for m, mode in modes:
        object.__setattr__(m, "training", mode)


def _evaluate(
    model: Module, batches: DataLoader, loss_fn: Callable | None, metric: Callable | None
) -> tuple[float, float]:
    # fit calls this with the metric it chose for the training targets, so validation is
    # scored by the same rule.
    modes = _modes(model)
    model.eval()
    losses, metrics, count = _LossTotal(loss_fn), _MetricTotal(metric), 0
    try:
        with no_grad():
            for xb, yb in batches:
                out = model(_as_tensor(xb))
                n = len(xb)
                if loss_fn is not None:
                    value = _loss_value(loss_fn(out, yb), "evaluate")
                    losses.add(value, losses.batch_weight(yb, n), n)
                metrics.add(out, yb, n)
                count += n
    finally:
        _restore(modes)
    if count == 0:  # a mean over nothing: 0.0 would look like a perfect score
        raise ValueError(f"evaluate: no samples to evaluate (x has shape {np.shape(batches.x)})")
    return (losses.value if loss_fn is not None else float("nan"), metrics.value)


def predict(model: Module, x: Any, batch_size: int = 1000) -> np.ndarray:
    """The model's outputs as a numpy array, in eval mode and without a graph."""
    modes = _modes(model)
    model.eval()
    try:
        with no_grad():
            outs = [
                np.asarray(model(_as_tensor(xb)).raw())
                for xb in DataLoader(x, batch_size=batch_size)
            ]
    finally:
        _restore(modes)
    if not outs:
        raise ValueError(f"predict: no samples to predict (x has shape {np.shape(x)})")
    return np.concatenate(outs)


def fit(
    model: Module,
    loss_fn: Callable[[Tensor, Any], Tensor],
    optimizer: Optimizer,
    train_loader: DataLoader | tuple[Any, Any],
    epochs: int = 10,
    *,
    val_data: DataLoader | tuple[Any, Any] | None = None,
    metric: Callable | None = accuracy,
    loss_threshold: float | None = None,
    error_threshold: float | None = None,
    update_threshold: float | None = None,
    callbacks: Sequence[Callback] = (),
    scheduler: Any = None,
    progress: bool = True,
    batch_size: int | None = None,
    check_finite: bool = True,
) -> History:
    """Train for up to `epochs` epochs and return the History.

    Stopping rules, checked after every epoch (the classic algorithm's):
      * `epochs`: the maximum number of epochs;
      * `loss_threshold`: stop once the training loss is below it;
      * `error_threshold`: stop once the error rate (1 - metric) is below it;
      * `update_threshold`: stop once the largest change of any weight over the epoch is
        below it (the weights have stopped moving).
    A rule that cannot work is refused up front (`error_threshold` without a `metric`).
    `metric` (default `accuracy`) gives History's "accuracy"; the default adapts to the task:
    argmax for (N, C) outputs; one score per sample above 0 for logit losses
    (binary_cross_entropy_with_logits, BCEWithLogitsLoss), above 0.5 otherwise; and none at
    all for targets that are not class labels (continuous values: regression). Pass
    `metric=functools.partial(nn.F.accuracy, threshold=0.0)` for logits behind a custom loss.
    History's "loss" is the epoch's loss over all its samples as the loss defines it, so it
    does not depend on `batch_size`: cross_entropy's and nll_loss's weighted mean stays
    weighted (class `weight`, ignored labels left out), and a loss with reduction="sum"
    (given to a `functools.partial` or a loss module) is reported per sample (its batch
    sums added up and divided by the number of samples), so `loss_threshold` means the same
    for both. A batch whose labels are all ignored has nothing to learn: it takes no step.
    The default accuracy skips the labels the loss ignores.
    `callbacks` are called as `callback(epoch, history)` after each epoch. `scheduler`
    steps after each epoch (ReduceLROnPlateau with the validation loss, or the training
    loss without `val_data`), OneCycleLR after each batch. `batch_size`
    (default 64) batches an (x, y) pair; a DataLoader brings its own.

    With `check_finite` (the default), a NaN or infinite loss stops training with a
    FloatingPointError naming the epoch and step, before that step changes any weight.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 1:
        raise ValueError(f"fit: epochs must be a positive int, got {epochs!r}")
    _check_loss_and_optimizer(loss_fn, optimizer)
    callbacks = _checked_callbacks(callbacks, scheduler)
    epochs = int(epochs)
    for name, value, low, high in (
        ("loss_threshold", loss_threshold, None, None),
        ("error_threshold", error_threshold, 0.0, 1.0),
        ("update_threshold", update_threshold, 0.0, None),
    ):
        if value is not None:
            _check_number(name, value, low, high)
    _warn_double_squash(model, loss_fn)
    loader = _batches(train_loader, batch_size)
    metric, why_none = _default_metric(metric, loss_fn, loader.y)
    if error_threshold is not None and metric is None:
        raise ValueError(
            "fit: error_threshold needs a metric (the error rate is 1 - metric), "
            + (
                f"but {why_none}: pass a metric that suits your targets"
                if why_none
                else "but metric=None"
            )
        )
    if len(loader) == 0:
        raise ValueError(
            f"fit: the training data gives no batch ({len(loader.x)} samples, "
            f"batch_size={loader.batch_size}, drop_last={loader.drop_last}): "
            f"nothing to train on"
        )
    # validation is scored in batches of 1000 whatever the training batch size
    val = _batches(val_data, None, what="val_data") if val_data is not None else None
    history = History()
    params = model.parameters()
    own = {id(p) for p in params}
    if not any(id(p) in own for group in optimizer.param_groups for p in group["params"]):
        # Else the first step would say "step() called before backward()": backward reached
        # the model's parameters, just not the optimizer's.
        raise ValueError(
            "fit: the optimizer holds none of the model's parameters, so training "
            "would change nothing (was it made for another model, or before the "
            "model was built again?): make it from this model's parameters(), "
            "after building the model"
        )
    # OneCycleLR is a schedule over batches (PyTorch's convention); the others over epochs.
    per_batch = isinstance(scheduler, OneCycleLR)
    # One bar for the whole run (epochs x batches), its label naming the epoch: a bar per
    # epoch left a finished or frozen line behind for every epoch (in Jupyter, a column of
    # "0%" bars when epochs are quick).
    bar = _progress_bar(epochs, len(loader)) if progress else None
    try:
        for epoch in range(1, epochs + 1):
            model.train()
            before = (
                [np.array(p.raw(), copy=True) for p in params]
                if update_threshold is not None
                else None
            )
            losses, metrics = _LossTotal(loss_fn), _MetricTotal(metric)
            if bar is not None:
                bar.set_description(f"epoch {epoch}/{epochs}", refresh=False)
            for step, (xb, yb) in enumerate(loader, start=1):
                if bar is not None:
                    bar.update(1)
                out = model(_as_tensor(xb))
                loss = loss_fn(out, yb)
                value = _loss_value(loss, "fit")
                n = len(xb)
                weight = losses.batch_weight(yb, n)
                if weight == 0 and not losses.sums:
                    # Every label of the batch ignored: its loss is 0 / 0 (NaN, as PyTorch's)
                    # with a zero gradient. Nothing to learn, and no divergence to report.
                    metrics.add(out, yb, n)
                    continue
                if check_finite and not math.isfinite(value):
                    bad = "NaN or inf" if not np.all(np.isfinite(xb)) else "only finite values"
                    raise FloatingPointError(
                        f"fit: the loss is {value} at epoch {epoch}, step {step}; the weights are "
                        f"as before this step. The batch's inputs hold {bad}; with finite data, "
                        f"try a lower learning rate. Pass check_finite=False to train on anyway."
                    )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                if per_batch:
                    scheduler.step()
                losses.add(value, weight, n)
                metrics.add(out, yb, n)
                if bar is not None:
                    bar.set_postfix(loss=f"{value:.4f}", refresh=False)
            history["loss"].append(losses.value)
            if metric is not None:
                history["accuracy"].append(metrics.value)
            if val is not None:
                vx, vy = val.x, val.y
                val_loss, val_metric = _evaluate(
                    model, DataLoader(vx, vy, batch_size=1000), loss_fn, metric
                )
                history["val_loss"].append(val_loss)
                if metric is not None:
                    history["val_accuracy"].append(val_metric)
            if before is not None:
                history["max_update"].append(
                    max(
                        float(np.max(np.abs(np.asarray(p.raw()) - b))) if b.size else 0.0
                        for p, b in zip(params, before, strict=True)
                    )
                )
            if scheduler is not None and not per_batch:
                if isinstance(scheduler, ReduceLROnPlateau):
                    # It watches a number: the validation loss, else the training loss.
                    scheduler.step(
                        history["val_loss"][-1] if val is not None else history["loss"][-1]
                    )
                else:
                    scheduler.step()
            if bar is not None:
                bar.set_postfix(_epoch_summary(history), refresh=True)
            for callback in callbacks:
                callback(epoch, history)
            reason = _stop_reason(history, loss_threshold, error_threshold, update_threshold)
            if reason:
                history.stopped_reason = reason
                return history
    finally:
        if bar is not None:
            bar.close()
    history.stopped_reason = f"reached the maximum of {epochs} epochs"
    return history


def _progress_bar(epochs: int, batches: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=epochs * batches, desc=f"epoch 1/{epochs}", unit="batch", leave=True)


def _epoch_summary(history: History) -> dict[str, str]:
    """The last epoch's numbers, for the bar's postfix."""
    names = {"loss": "loss", "accuracy": "acc", "val_loss": "val_loss", "val_accuracy": "val_acc"}
    return {short: f"{history[key][-1]:.4f}" for key, short in names.items() if history[key]}


def _warn_double_squash(model: Module, loss_fn: Any) -> None:
    """Warn when a Sequential model ends in the squashing its loss applies itself: softmax
    before cross_entropy (which takes logits), sigmoid before a with-logits loss. Both train,
    badly and silently: the outputs are squashed twice, which flattens the gradients."""
    from .layers import Sequential, Sigmoid, Softmax

    last = model.layers[-1] if isinstance(model, Sequential) and len(model) else None
    loss = _innermost(loss_fn)
    takes_logits = {
        Softmax: loss is F.cross_entropy or isinstance(loss, CrossEntropyLoss),
        Sigmoid: (
            loss is F.binary_cross_entropy_with_logits or isinstance(loss, BCEWithLogitsLoss)
        ),
    }
    if last is not None and takes_logits.get(type(last), False):
        squash = type(last).__name__
        instead = (
            "nll_loss on log_softmax outputs"
            if squash == "Softmax"
            else "binary_cross_entropy on probabilities"
        )
        warnings.warn(
            f"fit: the model ends in {squash} but the loss takes logits (it applies "
            f"the {squash.lower()} itself), so the outputs are squashed twice and "
            f"the gradients flattened: drop the final {squash} (or use {instead})",
            stacklevel=3,
        )


def _checked_callbacks(callbacks: Any, scheduler: Any) -> list[Callback]:
    """The callbacks as a list (one callable alone is welcome), checked before the first
    epoch: a bad one used to fail only after that epoch had been trained."""
    if callable(callbacks):
        callbacks = [callbacks]
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Sequence):
        raise TypeError(
            f"fit: callbacks must be a list of functions called as "
            f"callback(epoch, history), got {type(callbacks).__name__}"
        )
    for i, callback in enumerate(callbacks):
        if not callable(callback):
            raise TypeError(
                f"fit: callback {i} is a {type(callback).__name__}, not a function "
                f"called as callback(epoch, history)"
            )
    if scheduler is not None and (
        isinstance(scheduler, Optimizer) or not callable(getattr(scheduler, "step", None))
    ):
        # an optimizer here would take a second, silent step each epoch
        raise TypeError(
            f"fit: scheduler must be a learning-rate schedule with step() (e.g. "
            f"nn.optim.StepLR(optimizer, step_size=10)), got "
            f"{type(scheduler).__name__}"
        )
    return list(callbacks)


def _check_loss_and_optimizer(loss_fn: Any, optimizer: Any) -> None:
    """Refuse, by name, the first-hour mix-ups that would otherwise fail mid-step with an
    error about something else."""
    if isinstance(loss_fn, type):
        raise TypeError(
            f"fit: loss_fn is the class {loss_fn.__name__}; pass an instance, {loss_fn.__name__}()"
        )
    if not callable(loss_fn) or isinstance(loss_fn, Optimizer):
        raise TypeError(
            f"fit: loss_fn must be a function or loss module called as "
            f"loss_fn(outputs, targets), got {type(loss_fn).__name__} (the order "
            f"is fit(model, loss_fn, optimizer, data))"
        )
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"fit: optimizer must be an nn.optim optimizer, e.g. "
            f"nn.optim.SGD(model.parameters(), lr=0.1), got "
            f"{type(optimizer).__name__}"
        )


def _stop_reason(
    history: History,
    loss_threshold: float | None,
    error_threshold: float | None,
    update_threshold: float | None,
) -> str:
    loss = history["loss"][-1]
    if loss_threshold is not None and loss < loss_threshold:
        return f"loss {loss:.4g} below threshold {loss_threshold}"
    if error_threshold is not None and history["accuracy"]:
        error = 1.0 - history["accuracy"][-1]
        if error < error_threshold:
            return f"error rate {error:.4g} below threshold {error_threshold}"
    if update_threshold is not None and history["max_update"]:
        update = history["max_update"][-1]
        if update < update_threshold:
            return f"largest weight update {update:.4g} below threshold {update_threshold}"
    return ""
