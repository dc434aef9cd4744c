"""Optimizers: SGD (momentum, Nesterov, weight decay), Adam, AdamW; the schedules of
nn/lr_scheduler.py are reachable here too (nn.optim.StepLR, nn.optim.lr_scheduler).

Updates are written into each parameter's array in place (so the model keeps the same
arrays), under no graph, and stamp the parameter as modified: a backward pass through a graph
built before the step is then refused instead of silently using the new values. Gradients
are never written into (they may be shared between tensors).
"""

from __future__ import annotations

import math
import numbers
import operator
import re
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from autodiff import Tensor
from autodiff.extend import mark_written

_first = operator.itemgetter(0)  # the parameter of a (parameter, gradient) pair, in C

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "ExponentialLR",
    "LambdaLR",
    "LRScheduler",
    "MultiStepLR",
    "OneCycleLR",
    "Optimizer",
    "ReduceLROnPlateau",
    "StepLR",
    "lr_scheduler",
]


def __dir__() -> list[str]:
    # dir() of a module lists its imports and helpers too; show what a user may call.
    return sorted(__all__)


def _number(
    owner: str,
    name: str,
    value: Any,
    *,
    low: float = 0.0,
    low_ok: bool = True,
    high: float = math.inf,
) -> float:
    """`value` as a float if it is a real number (numpy scalars included; bool is not) in
    [low, high) (or (low, high) without low_ok), else an error naming the owner."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{owner}: {name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not (math.isfinite(value) and (low <= value if low_ok else low < value) and value < high):
        if high < math.inf:
            wanted = f"in {'[' if low_ok else '('}{low:g}, {high:g})"
        elif low == 0:
            wanted = "a number >= 0" if low_ok else "a positive number"
        else:
            wanted = f"a number {'>=' if low_ok else '>'} {low:g}"
        raise ValueError(f"{owner}: {name} must be {wanted}, got {value!r}")
    return value


def _group_setting(key: str) -> property:
    """An attribute that reads and writes the setting `key` of the (single) parameter group,
    so `opt.lr = 0.01` and `opt.param_groups[0]["lr"] = 0.01` are the same thing."""

    def get(self: Optimizer) -> Any:
        return self.param_groups[0][key]

    def set_(self: Optimizer, value: Any) -> None:
        # Checked as the constructor checks it: `opt.lr = args.lr` with a string, or a
        # negative rate, would otherwise fail deep in numpy at the next step, or ascend.
        # A rate of 0 is allowed here (a warm-up starts from it, a long decay ends near it).
        owner, group = f"{type(self).__name__}.{key}", self.param_groups[0]
        if key == "lr":
            group["lr"] = _number(owner, "lr", value)
            return
        settings = {k: v for k, v in group.items() if k != "params"}
        group.update(self._checked_settings(owner, {**settings, key: value}))

    return property(get, set_, doc=f"The parameter group's {key!r}.")


class Optimizer:
    """Base class: holds the parameters (once each) and their per-parameter state.

    `param_groups` is a list with one dict, `{"params": [...], "lr": ..., ...}`, as in
    PyTorch, so `for g in opt.param_groups: g["lr"] *= 0.5` works; `state_dict()` and
    `load_state_dict()` carry the settings and every buffer (momentum, Adam's moments and
    step count), so a run resumed from them continues exactly as if it had never stopped.
    """

    lr = _group_setting("lr")
    # Each per-parameter buffer's kind: "count" (a step counter, a 0-d int) or "array" (one
    # float per element of the parameter), so load_state_dict can refuse a state it would
    # otherwise take and misuse (a 0-d momentum, an array of step counts). None: unchecked.
    _buffers: dict[str, str] | None = None

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | None = None,
        **defaults: Any,
    ) -> None:
        """`params` is an iterable of parameters, or PyTorch's list of one group dict,
        `[{"params": [...], "lr": 0.5, ...}]`, whose own settings override the keyword
        arguments (the defaults). Subclasses pass their settings as `defaults` and check them
        in `_checked_settings`, which the constructor, a group dict and `load_state_dict` all
        go through, so a setting is validated the same way whatever its source."""
        name = type(self).__name__
        if isinstance(params, Tensor):
            raise TypeError(
                f"{name}: params must be an iterable of parameters (e.g. "
                f"model.parameters()), got a single Tensor"
            )
        if hasattr(params, "parameters") and hasattr(params, "forward"):  # a Module
            raise TypeError(
                f"{name}: pass the model's parameters, {name}(model.parameters(), "
                f"lr=...), not the {type(params).__name__} module itself"
            )
        if callable(params) and not isinstance(params, Iterable):
            # SGD(model.parameters, ...): the method, not its result ("'method' object is not
            # iterable" named neither the optimizer nor the missing parentheses).
            what = getattr(params, "__name__", type(params).__name__)
            raise TypeError(
                f"{name}: params is the function {what} itself, not what it "
                f"returns; call it: {name}(model.{what}(), lr=...)"
            )
        items: list[Any] = list(params)  # a list of its own: len() and [0] below
        settings: dict[str, Any] = {"lr": lr, **defaults}
        if items and all(isinstance(g, dict) for g in items):
            if len(items) > 1:
                raise ValueError(
                    f"{name}: only one parameter group is supported, got "
                    f"{len(items)}; make one optimizer per group"
                )
            group = dict(items[0])
            if "params" not in group:
                raise KeyError(f"{name}: the parameter group has no 'params' entry")
            params = group.pop("params")
            # PyTorch takes a lone tensor as a group's params; list() would split it in rows.
            items = [params] if isinstance(params, Tensor) else list(params)
            unknown = sorted(set(group) - set(settings), key=str)
            if unknown:
                raise ValueError(
                    f"{name}: unknown setting(s) {unknown} in the parameter group; "
                    f"{name} takes {sorted(settings)}"
                )
            # The group's own settings win over the constructor's, as in PyTorch.
            settings.update(group)
        if settings["lr"] is None:
            raise TypeError(
                f"{name}: no learning rate: pass lr= or give the parameter group an 'lr'"
            )
        if not items:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        for i, p in enumerate(items):
            # A frozen Parameter (requires_grad_(False)) is welcome: it gets no gradient,
            # so steps leave it alone, and it trains again once unfrozen.
            if not isinstance(p, Tensor) or not (
                p.requires_grad or p.is_leaf and p.dtype.kind == "f" and _is_param(p)
            ):
                raise TypeError(
                    f"{type(self).__name__}: parameter {i} is not a Tensor that requires grad"
                )
        # A weight shared by two layers, listed twice, must still get one update per step.
        unique = list({id(p): p for p in items}.values())
        if len(unique) < len(items):
            warnings.warn(
                f"{name}: {len(items) - len(unique)} parameter(s) were listed more "
                f"than once (shared weights?); each is updated once per step",
                stacklevel=3,
            )
        self.param_groups: list[dict[str, Any]] = [
            {"params": unique, **self._checked_settings(name, settings)}
        ]
        # Buffers keyed by the parameter object itself, as PyTorch does (a Tensor hashes by
        # identity): copy.deepcopy and pickle then carry each buffer over to the copied
        # parameter, where an id() key would point at the original's address.
        self.state: dict[Tensor, dict[str, Any]] = {}

    def _checked_settings(self, owner: str, settings: dict[str, Any]) -> dict[str, Any]:
        """`settings` validated and normalised (floats, bools, tuples), or an error naming
        `owner` and the setting. Subclasses extend this with their own settings."""
        return {**settings, "lr": _number(owner, "lr", settings["lr"], low_ok=False)}

    @property
    def params(self) -> list[Tensor]:
        return self.param_groups[0]["params"]

    def _settings(self) -> dict[str, Any]:
        return {k: v for k, v in self.param_groups[0].items() if k != "params"}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Settings and buffers as a flat dict of name -> array, so `nn.save` can write it:
        `param_groups.0.<setting>` and `state.<parameter index>.<buffer>`."""
        state: dict[str, np.ndarray] = {
            f"param_groups.0.{key}": np.array(value) for key, value in self._settings().items()
        }
        state["param_groups.0.params"] = np.arange(len(self.params))
        for i, p in enumerate(self.params):
            for key, value in self.state.get(p, {}).items():
                state[f"state.{i}.{key}"] = np.array(value, copy=True)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict()` gave (from this optimizer type, for parameters of the
        same shapes in the same order). Everything is checked before anything changes."""
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, dict):
            raise TypeError(f"{name}: expected a dict of arrays, got {type(state).__name__}")
        own = set(self._settings())
        settings: dict[str, Any] = {}
        buffers: dict[int, dict[str, Any]] = {}
        for key, value in state.items():
            value = np.asarray(value.raw() if isinstance(value, Tensor) else value)
            match = re.fullmatch(r"param_groups\.0\.(\w+)|state\.(\d+)\.(\w+)", str(key))
            if match is None:
                raise KeyError(f"{name}: unexpected entry {key!r}")
            if match[1] == "params":
                if value.shape != (len(self.params),):
                    raise ValueError(
                        f"{name}: the state is for {value.size} parameters, this "
                        f"optimizer has {len(self.params)}"
                    )
            elif match[1] is not None:
                settings[match[1]] = value
            else:
                index = int(match[2])
                if index >= len(self.params):
                    raise ValueError(
                        f"{name}: {key!r} is for parameter {index}, but there "
                        f"are {len(self.params)}"
                    )
                shape = self.params[index].shape
                kind = None if self._buffers is None else self._buffers.get(match[3])
                if self._buffers is not None and kind is None:
                    raise KeyError(
                        f"{name}: unexpected entry {key!r} ({type(self).__name__} "
                        f"keeps {sorted(self._buffers)} per parameter)"
                    )
                if kind == "count" and not (
                    value.ndim == 0 and value.dtype.kind in "iu" and value >= 0
                ):
                    raise ValueError(
                        f"{name}: {key!r} is a step count, a whole number >= 0, "
                        f"got {value.dtype} of shape {value.shape}"
                    )
                if (value.ndim or kind == "array") and value.shape != shape:
                    raise ValueError(
                        f"{name}: {key!r} has shape {value.shape}, parameter {index} has {shape}"
                    )
                if kind == "array" and value.dtype.kind != "f":
                    raise ValueError(f"{name}: {key!r} has dtype {value.dtype}; it holds floats")
                buffers.setdefault(index, {})[match[3]] = value
        for index, entries in buffers.items():
            if self._buffers is not None and set(entries) != set(self._buffers):
                raise KeyError(
                    f"{name}: the state of parameter {index} has "
                    f"{sorted(entries)}, {type(self).__name__} needs "
                    f"{sorted(self._buffers)}"
                )
        if set(settings) != own:
            raise KeyError(
                f"{name}: the state has settings {sorted(settings)}, "
                f"{type(self).__name__} has {sorted(own)} (another optimizer type?)"
            )
        if "param_groups.0.params" not in state:
            raise KeyError(f"{name}: no 'param_groups.0.params' entry")
        converted: dict[str, Any] = {}
        for key, value in settings.items():
            current = self.param_groups[0][key]
            if isinstance(current, tuple) and value.shape == (len(current),):
                converted[key] = tuple(value.tolist())
            elif isinstance(current, bool) and value.ndim == 0:
                converted[key] = bool(value)
            elif isinstance(current, float) and value.ndim == 0 and value.dtype.kind in "fiu":
                converted[key] = value[()]
            else:
                raise ValueError(
                    f"{name}: setting {key!r} is {value.dtype} {value.shape}, "
                    f"expected one like {current!r}"
                )
        # A file could hold anything: the same checks as the constructor's.
        checked = self._checked_settings(name, {**self._settings(), **converted})
        self.param_groups[0].update(checked)
        self.state = {}
        for index, entries in buffers.items():
            # 0-d integer entries are step counters, kept as Python ints; arrays are copied
            # so the optimizer never shares a buffer with the dict it was given.
            self.state[self.params[index]] = {
                key: int(value)
                if value.ndim == 0 and value.dtype.kind in "iu"
                else np.array(value, copy=True)
                for key, value in entries.items()
            }

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: None (PyTorch's default), or zeros with set_to_none=False."""
        for p in self.param_groups[0]["params"]:
            # The slot itself (what Tensor.zero_grad sets): this runs every step. A frozen
            # weight keeps None, as in PyTorch: a zero gradient would let weight decay and
            # momentum move it.
            p._grad = (
                None if set_to_none or not p.requires_grad else np.zeros(p.shape, dtype=p.dtype)
            )

    def _with_grads(self) -> list[tuple[Tensor, np.ndarray]]:
        # The raw gradient arrays as backward stored them: reading `p.grad` would wrap each
        # in a Tensor first, an object per parameter per step that nobody keeps.
        pairs = []
        for p in self.param_groups[0]["params"]:
            g = p.raw_grad()
            if g is not None:
                pairs.append((p, g))
        if not pairs:
            raise self._no_gradient_error()
        return pairs

    def _no_gradient_error(self) -> RuntimeError:
        return RuntimeError(
            f"{type(self).__name__}.step() called before backward(): no parameter has a "
            "gradient (call loss.backward() first)"
        )

    @staticmethod
    def _apply(p: Tensor, update: np.ndarray) -> None:
        """Subtract `update` from p's numbers, in place (the model keeps its arrays). The
        caller stamps the written tensors once per step (autodiff.mark_written)."""
        data = p.raw()
        if isinstance(data, np.ndarray):
            data -= update
        else:
            p.data = data - update  # a 0-d tensor's numpy scalar: new numbers

    def step(self) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with PyTorch's momentum and Nesterov conventions."""

    _buffers = {"momentum": "array"}
    momentum = _group_setting("momentum")
    nesterov = _group_setting("nesterov")
    weight_decay = _group_setting("weight_decay")

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float | None = None,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(
            params, lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
        )

    def _checked_settings(self, owner: str, settings: dict[str, Any]) -> dict[str, Any]:
        settings = super()._checked_settings(owner, settings)
        if not isinstance(settings["nesterov"], (bool, np.bool_)):
            # bool("no") is True: a flag given as anything but a bool is a mistake, not a yes.
            raise ValueError(
                f"{owner}: nesterov must be True or False, got "
                f"{type(settings['nesterov']).__name__} {settings['nesterov']!r}"
            )
        settings.update(
            momentum=_number(owner, "momentum", settings["momentum"]),
            nesterov=bool(settings["nesterov"]),
            weight_decay=_number(owner, "weight_decay", settings["weight_decay"]),
        )
        if settings["nesterov"] and settings["momentum"] == 0:
            raise ValueError(f"{owner}: nesterov needs momentum > 0")
        return settings

    def step(self) -> None:
        # The settings read once per step from the group itself (not through the properties,
        # a Python call each).
        group = self.param_groups[0]
        lr, momentum, nesterov = group["lr"], group["momentum"], group["nesterov"]
        weight_decay = group["weight_decay"]
        if not (weight_decay or momentum):
            # Plain SGD, the tutorials' optimizer: one pass over the parameters, nothing per
            # parameter but the arithmetic (the loop below does the same with options, on
            # the pairs _with_grads collects).
            written = []
            for p in group["params"]:
                g = p.raw_grad()
                if g is not None:
                    data = p.raw()
                    if type(data) is np.ndarray and type(g) is np.ndarray:
                        data -= lr * g
                    else:  # a numpy scalar
                        self._apply(p, lr * g)
                    written.append(p)
            if not written:
                raise self._no_gradient_error()
            mark_written(*written)
            return
        pairs = self._with_grads()
        for p, g in pairs:
            if weight_decay:
                g = g + weight_decay * p.raw()
            if momentum:
                state = self.state.setdefault(p, {})
                buf = state.get("momentum")
                if buf is None:
                    buf = np.array(g)  # our own copy: the buffer is updated in place below
                else:
                    buf *= momentum
                    buf += g
                state["momentum"] = buf
                g = g + momentum * buf if nesterov else buf
            self._apply(p, lr * g)
        mark_written(*map(_first, pairs))


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015); weight_decay adds L2 to the gradient, as in PyTorch's Adam."""

    decoupled = False
    _buffers = {"t": "count", "m": "array", "v": "array"}
    betas = _group_setting("betas")
    eps = _group_setting("eps")
    weight_decay = _group_setting("weight_decay")

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def _checked_settings(self, owner: str, settings: dict[str, Any]) -> dict[str, Any]:
        settings = super()._checked_settings(owner, settings)
        betas = settings["betas"]
        if not (isinstance(betas, (tuple, list, np.ndarray)) and len(betas) == 2):
            raise ValueError(f"{owner}: betas must be a pair (beta1, beta2), got {betas!r}")
        if not all(
            # typeshed gives numbers.Real no comparison with int (the numeric tower is untyped).
            isinstance(b, numbers.Real) and not isinstance(b, bool) and 0 <= b < 1  # type: ignore[operator]
            for b in betas
        ):
            raise ValueError(f"{owner}: betas must be in [0, 1), got {tuple(betas)}")
        settings.update(
            betas=(float(betas[0]), float(betas[1])),
            eps=_number(owner, "eps", settings["eps"], low_ok=False),
            weight_decay=_number(owner, "weight_decay", settings["weight_decay"]),
        )
        return settings

    def step(self) -> None:
        beta1, beta2 = self.betas
        pairs = self._with_grads()
        for p, g in pairs:
            if self.weight_decay and self.decoupled:
                self._apply(p, self.lr * self.weight_decay * p.raw())
            elif self.weight_decay:
                g = g + self.weight_decay * p.raw()
            state = self.state.setdefault(p, {"t": 0, "m": 0.0, "v": 0.0})
            state["t"] += 1
            state["m"] = beta1 * state["m"] + (1 - beta1) * g
            state["v"] = beta2 * state["v"] + (1 - beta2) * (g * g)
            m_hat = state["m"] / (1 - beta1 ** state["t"])
            v_hat = state["v"] / (1 - beta2 ** state["t"])
            self._apply(p, self.lr * m_hat / (np.sqrt(v_hat) + self.eps))
        mark_written(*map(_first, pairs))


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019): decay shrinks the weights
    directly instead of passing through the adaptive scaling."""

    decoupled = True

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)


def _is_param(p: Tensor) -> bool:
    from .module import Parameter  # module imports nothing from here; import on use anyway

    return isinstance(p, Parameter)


# The schedules live in nn/lr_scheduler.py (they need Optimizer, defined above); they are
# also reachable here, as nn.optim.StepLR and nn.optim.lr_scheduler.StepLR (PyTorch's path).
from . import lr_scheduler  # noqa: E402
from .lr_scheduler import (  # noqa: E402
    CosineAnnealingLR,
    ExponentialLR,
    LambdaLR,
    LRScheduler,
    MultiStepLR,
    OneCycleLR,
    ReduceLROnPlateau,
    StepLR,
)
