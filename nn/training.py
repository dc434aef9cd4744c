"""The training loop, with the stopping rules of the classic backpropagation algorithm."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from autodiff import Tensor, no_grad

from .data import DataLoader
from .functional import accuracy
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


def _batches(data: Any, batch_size: int) -> Iterable[tuple[Any, Any]]:
    if isinstance(data, DataLoader):
        return data
    x, y = data
    return DataLoader(x, y, batch_size=batch_size)


def evaluate(model: Module, x: Any, y: Any, loss_fn: Callable | None = None,
             batch_size: int = 1000, metric: Callable | None = accuracy) -> tuple[float, float]:
    """(mean loss, metric) over a data set, in eval mode and without recording a graph."""
    was_training = model.training
    model.eval()
    total_loss, total_metric, count = 0.0, 0.0, 0
    try:
        with no_grad():
            for xb, yb in _batches((x, y), batch_size):
                out = model(_as_tensor(xb))
                n = len(xb)
                if loss_fn is not None:
                    total_loss += float(loss_fn(out, yb).item()) * n
                if metric is not None:
                    total_metric += float(metric(out, yb)) * n
                count += n
    finally:
        model.train(was_training)
    count = max(count, 1)
    return total_loss / count, (total_metric / count if metric is not None else float("nan"))


def predict(model: Module, x: Any, batch_size: int = 1000) -> np.ndarray:
    """The model's outputs as a numpy array, in eval mode and without a graph."""
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            outs = [np.asarray(model(_as_tensor(xb)).data)
                    for xb in DataLoader(x, batch_size=batch_size)]
    finally:
        model.train(was_training)
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
    batch_size: int = 64,
) -> History:
    """Train for up to `epochs` epochs and return the History.

    Stopping rules, checked after every epoch (the classic algorithm's):
      * `epochs`: the maximum number of epochs;
      * `loss_threshold`: stop once the training loss is below it;
      * `error_threshold`: stop once the error rate (1 - metric) is below it;
      * `update_threshold`: stop once the largest change of any weight over the epoch is
        below it (the weights have stopped moving).
    `callbacks` are called as `callback(epoch, history)` after each epoch.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"fit: epochs must be a positive int, got {epochs!r}")
    loader = _batches(train_loader, batch_size)
    history = History()
    params = model.parameters()
    for epoch in range(1, epochs + 1):
        model.train()
        before = [np.array(p.data, copy=True) for p in params] if update_threshold else None
        total_loss, total_metric, count = 0.0, 0.0, 0
        batches = loader
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = batches = tqdm(loader, desc=f"epoch {epoch}/{epochs}", leave=False,
                                 total=len(loader) if hasattr(loader, "__len__") else None)
        for xb, yb in batches:
            out = model(_as_tensor(xb))
            loss = loss_fn(out, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            n = len(xb)
            value = float(loss.item())
            total_loss += value * n
            if metric is not None:
                total_metric += float(metric(out, yb)) * n
            count += n
            if bar is not None:
                bar.set_postfix(loss=f"{value:.4f}", refresh=False)
        if bar is not None:
            bar.close()
        history["loss"].append(total_loss / max(count, 1))
        if metric is not None:
            history["accuracy"].append(total_metric / max(count, 1))
        if val_data is not None:
            vx, vy = (val_data.x, val_data.y) if isinstance(val_data, DataLoader) else val_data
            val_loss, val_metric = evaluate(model, vx, vy, loss_fn, metric=metric)
            history["val_loss"].append(val_loss)
            if metric is not None:
                history["val_accuracy"].append(val_metric)
        if before is not None:
            history["max_update"].append(max(
                float(np.max(np.abs(np.asarray(p.data) - b))) if b.size else 0.0
                for p, b in zip(params, before, strict=True)
            ))
        if scheduler is not None:
            scheduler.step()
        for callback in callbacks:
            callback(epoch, history)
        reason = _stop_reason(history, loss_threshold, error_threshold, update_threshold)
        if reason:
            history.stopped_reason = reason
            return history
    history.stopped_reason = f"reached the maximum of {epochs} epochs"
    return history


def _stop_reason(history: History, loss_threshold: float | None,
                 error_threshold: float | None, update_threshold: float | None) -> str:
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
