"""Learning-rate schedules, as PyTorch's `torch.optim.lr_scheduler` computes them.

Call `step()` once per epoch (OneCycleLR: once per batch; ReduceLROnPlateau:
`step(val_loss)`). The multiplicative schedules (StepLR, MultiStepLR, ExponentialLR,
CosineAnnealingLR) scale the optimizer's *current* rate at each step, as PyTorch's do: a
rate the user set by hand, or one an optimizer restored from a checkpoint, is carried on
from, not overwritten by a formula of the starting rate. LambdaLR and OneCycleLR are
functions of the step count, as in PyTorch.

`get_last_lr()` is a list with one rate per parameter group (our optimizers have one), as
PyTorch's. `state_dict()` is a flat dict of arrays (`nn.save` writes it); it holds the
schedule's progress, not its settings (build the scheduler with the same arguments, then
load).
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .optim import Optimizer, _number


def _count(owner: str, name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        wanted = "a positive int" if low == 1 else f"an int >= {low}"
        raise ValueError(f"{owner}: {name} must be {wanted}, got {value!r}")
    return int(value)


class LRScheduler:
    """Base class: holds the optimizer, the starting rate and the number of steps taken.

    Subclasses give `_next_lr()`, the rate for step `self.epoch` (already advanced), from
    the optimizer's current rate or from `base_lr`.
    """

    # Extra per-schedule progress kept by state_dict: name -> "count" or "float".
    _progress: dict[str, str] = {}

    def __init__(self, optimizer: Optimizer) -> None:
        name = type(self).__name__
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{name}: expected an optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)
        self.epoch = 0
        self._last_lr = [float(optimizer.lr)]

    def _start(self) -> None:
        """PyTorch's step 0, taken by the constructor: the rate for epoch 0 is set."""
        self._set(self._initial_lr())

    def _initial_lr(self) -> float:
        return float(self.optimizer.lr)

    def _next_lr(self) -> float:
        raise NotImplementedError

    def _set(self, lr: float) -> None:
        # A rate computed below 0 (float rounding near eta_min = 0) would be refused by the
        # optimizer's check: clamp to 0, the rate it stands for.
        self.optimizer.lr = max(float(lr), 0.0)
        self._last_lr = [float(self.optimizer.lr)]

    @property
    def last_epoch(self) -> int:
        """PyTorch's name for the number of steps taken."""
        return self.epoch

    def step(self) -> None:
        self.epoch += 1
        self._set(self._next_lr())

    def get_last_lr(self) -> list[float]:
        """The rate the last step set, one per parameter group, as PyTorch's."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The steps taken, the starting and last rates (and the schedule's own progress):
        enough to resume it (with the optimizer's own state_dict for its current rate)."""
        state = {
            "epoch": np.array(self.epoch),
            "base_lr": np.array(self.base_lr),
            "last_lr": np.array(self._last_lr[0]),
        }
        for key in self._progress:
            state[key] = np.array(getattr(self, key))
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what state_dict() gave; everything is checked before anything changes.
        ("last_lr" and the schedule's own entries may be missing: files written before they
        existed hold only "epoch" and "base_lr".)"""
        name = f"{type(self).__name__}.load_state_dict"
        allowed = {"epoch", "base_lr", "last_lr", *self._progress}
        if not isinstance(state, dict) or not {"epoch", "base_lr"} <= set(state) <= allowed:
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise KeyError(f"{name}: expected entries {sorted(allowed)}, got {got}")
        values = {k: np.asarray(getattr(v, "_data", v)) for k, v in state.items()}
        epoch = values["epoch"]
        if not (epoch.ndim == 0 and epoch.dtype.kind in "iu" and epoch >= 0):
            # int() would take 2.7 as 2, and a negative count would mean steps never taken
            raise ValueError(
                f"{name}: epoch is a count of steps, a whole number >= 0, got "
                f"{epoch.dtype} {epoch.tolist()!r}"
            )
        for key in ("base_lr", "last_lr"):
            if key in values and (values[key].ndim != 0 or values[key].dtype.kind not in "fiu"):
                raise ValueError(
                    f"{name}: {key} must be one number, got {values[key].dtype} of "
                    f"shape {values[key].shape}"
                )
        base = _number(name, "base_lr", values["base_lr"][()], low_ok=False)
        last = _number(name, "last_lr", values["last_lr"][()]) if "last_lr" in values else None
        extra: dict[str, Any] = {}
        for key, kind in self._progress.items():
            if key not in values:
                continue
            value = values[key]
            if kind == "count":
                if not (value.ndim == 0 and value.dtype.kind in "iu" and value >= 0):
                    raise ValueError(
                        f"{name}: {key} is a count, a whole number >= 0, got "
                        f"{value.dtype} {value.tolist()!r}"
                    )
                extra[key] = int(value)
            else:
                if value.ndim != 0 or value.dtype.kind not in "fiu" or np.isnan(value):
                    raise ValueError(f"{name}: {key} must be one number, got {value.tolist()!r}")
                extra[key] = float(value)
        self.epoch, self.base_lr = int(epoch), base
        if last is not None:
            self._last_lr = [last]
        for key, value in extra.items():
            setattr(self, key, value)


class StepLR(LRScheduler):
    """Multiply the optimizer's rate by `gamma` every `step_size` steps."""

    step_size: int
    gamma: float

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        if (
            isinstance(step_size, bool)
            or not isinstance(step_size, numbers.Integral)
            or step_size <= 0
        ):
            raise ValueError(
                f"StepLR: step_size must be a positive int (a number of steps), got {step_size!r}"
            )
        self.step_size = int(step_size)
        self.gamma = _number("StepLR", "gamma", gamma, low_ok=False)
        self._start()

    def _next_lr(self) -> float:
        lr = self.optimizer.lr
        return lr * self.gamma if self.epoch % self.step_size == 0 else lr


class MultiStepLR(LRScheduler):
    """Multiply the optimizer's rate by `gamma` at each of the `milestones` (step counts; a
    milestone listed twice multiplies twice)."""

    def __init__(self, optimizer: Optimizer, milestones: Iterable[int], gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Iterable):
            raise TypeError(
                f"MultiStepLR: milestones must be a list of step counts, got "
                f"{type(milestones).__name__}"
            )
        marks = [_count("MultiStepLR", "each milestone", m, low=0) for m in milestones]
        self.milestones = Counter(marks)
        self.gamma = _number("MultiStepLR", "gamma", gamma, low_ok=False)
        self._start()

    def _next_lr(self) -> float:
        return self.optimizer.lr * self.gamma ** self.milestones.get(self.epoch, 0)


class ExponentialLR(LRScheduler):
    """Multiply the optimizer's rate by `gamma` at every step."""

    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        super().__init__(optimizer)
        self.gamma = _number("ExponentialLR", "gamma", gamma, low_ok=False)
        self._start()

    def _next_lr(self) -> float:
        return self.optimizer.lr * self.gamma


class LambdaLR(LRScheduler):
    """The rate at step t is `base_lr * lr_lambda(t)` (the starting rate times a factor)."""

    def __init__(self, optimizer: Optimizer, lr_lambda: Callable[[int], float]) -> None:
        super().__init__(optimizer)
        if not callable(lr_lambda):
            raise TypeError(
                f"LambdaLR: lr_lambda must be a function of the step count, got "
                f"{type(lr_lambda).__name__}"
            )
        self.lr_lambda = lr_lambda
        self._start()

    def _factor(self) -> float:
        factor = self.lr_lambda(self.epoch)
        return _number("LambdaLR", f"lr_lambda({self.epoch})", factor)

    def _initial_lr(self) -> float:
        return self.base_lr * self._factor()

    def _next_lr(self) -> float:
        return self.base_lr * self._factor()


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from the starting rate down to `eta_min` over `T_max` steps (then
    back up, as PyTorch's), applied as a ratio to the current rate at each step."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:  # noqa: N803
        super().__init__(optimizer)
        self.T_max = _count("CosineAnnealingLR", "T_max", T_max)
        self.eta_min = _number("CosineAnnealingLR", "eta_min", eta_min)
        self._start()

    def _next_lr(self) -> float:
        t, period, low = self.epoch, self.T_max, self.eta_min
        lr = self.optimizer.lr
        if (t - 1 - period) % (2 * period) == 0:
            # Leaving the bottom of the curve, where the ratio below would be 0 / 0.
            return lr + (self.base_lr - low) * (1 - math.cos(math.pi / period)) / 2
        ratio = (1 + math.cos(math.pi * t / period)) / (1 + math.cos(math.pi * (t - 1) / period))
        return ratio * (lr - low) + low


class ReduceLROnPlateau(LRScheduler):
    """Multiply the rate by `factor` once the watched number (`step(value)`) has not improved
    for more than `patience` steps; `mode="max"` for a number that should grow (accuracy).

    An improvement beats the best so far by more than `threshold` (relative, or absolute
    with `threshold_mode="abs"`); after a reduction, `cooldown` steps pass before bad steps
    count again; the rate never goes below `min_lr`, and a change smaller than `eps` is
    skipped.
    """

    _progress = {"best": "float", "num_bad_epochs": "count", "cooldown_counter": "count"}

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        super().__init__(optimizer)
        owner = "ReduceLROnPlateau"
        if mode not in ("min", "max"):
            raise ValueError(f"{owner}: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(
                f"{owner}: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}"
            )
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor = _number(owner, "factor", factor, high=1.0)
        self.patience = _count(owner, "patience", patience, low=0)
        self.threshold = _number(owner, "threshold", threshold)
        self.cooldown = _count(owner, "cooldown", cooldown, low=0)
        self.min_lr = _number(owner, "min_lr", min_lr)
        self.eps = _number(owner, "eps", eps)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def _better(self, value: float) -> bool:
        best, th = self.best, self.threshold
        if self.mode == "min":
            return value < (best * (1 - th) if self.threshold_mode == "rel" else best - th)
        return value > (best * (1 + th) if self.threshold_mode == "rel" else best + th)

    def step(self, metrics: Any = None) -> None:
        """One step with the watched number (the validation loss, say)."""
        if metrics is None:
            raise TypeError(
                "ReduceLROnPlateau.step: give it the number to watch, step(val_loss) "
                "(nn.fit passes the validation loss, or the training loss without val_data)"
            )
        value = float(np.asarray(getattr(metrics, "_data", metrics)))
        self.epoch += 1
        if self._better(value):
            self.best = value
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1  # NaN never improves: it counts as a bad step
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            old = float(self.optimizer.lr)
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                self.optimizer.lr = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [float(self.optimizer.lr)]


class OneCycleLR(LRScheduler):
    """The one-cycle policy, stepped once per batch: the rate rises from max_lr / div_factor
    to `max_lr` over the first `pct_start` of `total_steps`, then falls to the starting rate
    / `final_div_factor` (`three_phase`: back to the start first, then down). With
    `cycle_momentum`, SGD's momentum (Adam's beta1) moves the opposite way, between
    `base_momentum` and `max_momentum`. `total_steps` or `epochs` and `steps_per_epoch`.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float,
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
    ) -> None:
        super().__init__(optimizer)
        owner = "OneCycleLR"
        if total_steps is not None:
            self.total_steps = _count(owner, "total_steps", total_steps)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = _count(owner, "epochs", epochs) * _count(
                owner, "steps_per_epoch", steps_per_epoch
            )
        else:
            raise ValueError(f"{owner}: give total_steps, or epochs and steps_per_epoch")
        pct = _number(owner, "pct_start", pct_start)
        if pct > 1:
            raise ValueError(f"{owner}: pct_start must be in [0, 1], got {pct_start!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(
                f"{owner}: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}"
            )
        self.anneal_strategy = anneal_strategy
        self.max_lr = _number(owner, "max_lr", max_lr, low_ok=False)
        self.initial_lr = self.max_lr / _number(owner, "div_factor", div_factor, low_ok=False)
        self.min_lr = self.initial_lr / _number(
            owner, "final_div_factor", final_div_factor, low_ok=False
        )
        self.base_lr = self.initial_lr
        up = pct * self.total_steps - 1
        last = self.total_steps - 1
        lr0, top, low = self.initial_lr, self.max_lr, self.min_lr
        hi_m = _number(owner, "max_momentum", max_momentum)
        lo_m = _number(owner, "base_momentum", base_momentum)
        # (last step of the phase, rate from, rate to, momentum from, momentum to)
        self._phases = (
            [(up, lr0, top, hi_m, lo_m), (2 * pct * self.total_steps - 2, top, lr0, lo_m, hi_m)]
            + [(last, lr0, low, hi_m, hi_m)]
            if three_phase
            else [(up, lr0, top, hi_m, lo_m), (last, top, low, lo_m, hi_m)]
        )
        self.cycle_momentum = bool(cycle_momentum)
        if self.cycle_momentum:
            group = optimizer.param_groups[0]
            if "momentum" not in group and "betas" not in group:
                raise ValueError(
                    f"{owner}: cycle_momentum needs an optimizer with momentum (SGD) or "
                    f"betas (Adam); pass cycle_momentum=False for {type(optimizer).__name__}"
                )
            self._set_momentum(hi_m)
        self._start()

    def _set_momentum(self, value: float) -> None:
        group = self.optimizer.param_groups[0]
        if "betas" in group:
            group["betas"] = (value, *tuple(group["betas"])[1:])
        else:
            group["momentum"] = value

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _lr_at(self, t: int) -> float:
        if t > self.total_steps:
            raise ValueError(
                f"OneCycleLR: stepped {t} times, past total_steps={self.total_steps} "
                f"(one step per batch: total_steps = epochs * batches per epoch)"
            )
        begin = 0.0
        for i, (end, lr_from, lr_to, m_from, m_to) in enumerate(self._phases):
            if t <= end or i == len(self._phases) - 1:
                pct = (t - begin) / (end - begin)
                if self.cycle_momentum:
                    self._set_momentum(self._anneal(m_from, m_to, pct))
                return self._anneal(lr_from, lr_to, pct)
            begin = end
        raise AssertionError("unreachable: the last phase always answers")

    def _initial_lr(self) -> float:
        return self._lr_at(0)

    def _next_lr(self) -> float:
        return self._lr_at(self.epoch)
