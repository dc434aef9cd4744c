"""Optimizers: SGD (momentum, Nesterov, weight decay), Adam, AdamW, and a step-decay schedule.

Updates are written into each parameter's array in place (so the model keeps the same
arrays), under no graph, and stamp the parameter as modified: a backward pass through a graph
built before the step is then refused instead of silently using the new values. Gradients
are never written into (they may be shared between tensors).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from autodiff import Tensor, engine


class Optimizer:
    def __init__(self, params: Iterable[Tensor], lr: float) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        for i, p in enumerate(self.params):
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(
                    f"{type(self).__name__}: parameter {i} is not a Tensor that requires grad"
                )
        if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
            raise ValueError(f"{type(self).__name__}: lr must be a positive number, got {lr!r}")
        self.lr = float(lr)
        self.state: dict[int, dict[str, Any]] = {}

    def zero_grad(self) -> None:
        for p in self.params:
            p.zero_grad()

    def _with_grads(self) -> list[tuple[Tensor, np.ndarray]]:
        # The raw gradient arrays as backward stored them: reading `p.grad` would wrap each
        # in a Tensor first, an object per parameter per step that nobody keeps.
        pairs = []
        for p in self.params:
            g = p._grad
            if g is not None:
                pairs.append((p, g.data if isinstance(g, Tensor) else g))
        if not pairs:
            raise RuntimeError(
                f"{type(self).__name__}.step() called before backward(): no parameter has a "
                "gradient (call loss.backward() first)"
            )
        return pairs

    @staticmethod
    def _apply(p: Tensor, update: np.ndarray) -> None:
        if isinstance(p.data, np.ndarray):
            p.data -= update
        else:
            p.data = p.data - update
        engine.mark_written(p)

    def step(self) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with PyTorch's momentum and Nesterov conventions."""

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        if momentum < 0 or weight_decay < 0:
            raise ValueError("SGD: momentum and weight_decay must be >= 0")
        if nesterov and momentum == 0:
            raise ValueError("SGD: nesterov needs momentum > 0")
        self.momentum = float(momentum)
        self.nesterov = nesterov
        self.weight_decay = float(weight_decay)

    def step(self) -> None:
        for p, g in self._with_grads():
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            if self.momentum:
                state = self.state.setdefault(id(p), {})
                buf = state.get("momentum")
                if buf is None:
                    buf = np.array(g)  # our own copy: the buffer is updated in place below
                else:
                    buf *= self.momentum
                    buf += g
                state["momentum"] = buf
                g = g + self.momentum * buf if self.nesterov else buf
            self._apply(p, self.lr * g)


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015); weight_decay adds L2 to the gradient, as in PyTorch's Adam."""

    decoupled = False

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        if not all(0 <= b < 1 for b in betas):
            raise ValueError(f"{type(self).__name__}: betas must be in [0, 1), got {betas}")
        if eps <= 0 or weight_decay < 0:
            raise ValueError(f"{type(self).__name__}: eps must be > 0 and weight_decay >= 0")
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)

    def step(self) -> None:
        beta1, beta2 = self.betas
        for p, g in self._with_grads():
            if self.weight_decay and self.decoupled:
                self._apply(p, self.lr * self.weight_decay * p.data)
            elif self.weight_decay:
                g = g + self.weight_decay * p.data
            state = self.state.setdefault(id(p), {"t": 0, "m": 0.0, "v": 0.0})
            state["t"] += 1
            state["m"] = beta1 * state["m"] + (1 - beta1) * g
            state["v"] = beta2 * state["v"] + (1 - beta2) * (g * g)
            m_hat = state["m"] / (1 - beta1 ** state["t"])
            v_hat = state["v"] / (1 - beta2 ** state["t"])
            self._apply(p, self.lr * m_hat / (np.sqrt(v_hat) + self.eps))


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019): decay shrinks the weights
    directly instead of passing through the adaptive scaling."""

    decoupled = True

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)


class StepLR:
    """Multiply the optimizer's learning rate by `gamma` every `step_size` calls to step()."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        if step_size <= 0:
            raise ValueError(f"StepLR: step_size must be positive, got {step_size}")
        self.optimizer = optimizer
        self.step_size = int(step_size)
        self.gamma = float(gamma)
        self.base_lr = optimizer.lr
        self.epoch = 0

    def step(self) -> None:
        self.epoch += 1
        self.optimizer.lr = self.base_lr * self.gamma ** (self.epoch // self.step_size)

    def get_last_lr(self) -> float:
        return self.optimizer.lr
