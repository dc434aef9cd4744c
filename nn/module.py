"""Module and Parameter: the registry that finds a model's weights by walking its attributes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from autodiff import Tensor, engine


class Parameter(Tensor):
    """A Tensor that is a model weight: always a leaf that requires grad. float32 by default."""

    __slots__ = ()

    def __init__(self, data: Any, dtype: Any = None, name: str | None = None) -> None:
        array = np.asarray(data.data if isinstance(data, Tensor) else data)
        if dtype is None:
            dtype = array.dtype if array.dtype.kind == "f" else np.float32
        super().__init__(np.array(array, dtype=dtype), requires_grad=True, name=name)

    def __repr__(self) -> str:
        return "Parameter" + super().__repr__()[len("Tensor"):]


class Module:
    """Base class of layers and models.

    Parameters and sub-modules assigned as attributes are registered, also inside lists,
    tuples and dicts (`self.layers = [Linear(2, 3), ...]` gives `layers.0.weight`).
    Call a module to run `forward`; the call is tagged on the tensors it creates, so graph
    drawings can group ops by module.
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)

    # Registration is found by walking __dict__ on demand (no second registry to keep in
    # sync), in insertion order, which is the order attributes were assigned.
    def _children_items(self) -> Iterator[tuple[str, Any]]:
        for name, value in vars(self).items():
            if isinstance(value, (Module, Tensor)):
                yield name, value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, (Module, Tensor)):
                        yield f"{name}.{i}", item
            elif isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(item, (Module, Tensor)):
                        yield f"{name}.{key}", item

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, value in self._children_items():
            if isinstance(value, Module):
                yield name, value

    def children(self) -> Iterator[Module]:
        for _, child in self.named_children():
            yield child

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        seen: set[int] = set()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = list(module.named_children())
            for child_name, child in reversed(children):
                stack.append((f"{name}.{child_name}" if name else child_name, child))

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs, each parameter once even when shared."""
        seen: set[int] = set()
        for module_name, module in self.named_modules():
            for name, value in module._children_items():
                if isinstance(value, Parameter) and id(value) not in seen:
                    seen.add(id(value))
                    yield (f"{module_name}.{name}" if module_name else name), value

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    # --- state ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameter name -> a copy of its values."""
        return {name: np.array(p.data, copy=True) for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Copy values into the parameters, checking names, shapes and dtypes first.

        Nothing is changed unless every check passes, so a failed load leaves the model as
        it was. With strict=False, missing and unexpected names are allowed (and skipped).
        """
        if not isinstance(state, dict):
            raise TypeError(
                f"load_state_dict: expected a dict of arrays, got {type(state).__name__}"
            )
        own = dict(self.named_parameters())
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing parameters {missing}")
            if unexpected:
                parts.append(f"unexpected parameters {unexpected}")
            raise KeyError(f"load_state_dict: {'; '.join(parts)} for {type(self).__name__}")
        updates = []
        for name, p in own.items():
            if name not in state:
                continue
            value = state[name]
            value = np.asarray(value.data if isinstance(value, Tensor) else value)
            if value.shape != p.shape:
                raise ValueError(
                    f"load_state_dict: parameter '{name}' has shape {p.shape} in the model "
                    f"but {value.shape} in the state dict"
                )
            if value.dtype != p.dtype:
                raise ValueError(
                    f"load_state_dict: parameter '{name}' has dtype {p.dtype} in the model "
                    f"but {value.dtype} in the state dict"
                )
            updates.append((p, value))
        for p, value in updates:
            if isinstance(p.data, np.ndarray):
                p.data[...] = value  # in place: optimizers holding p keep seeing the same array
            else:
                p.data = value[()]  # a 0-d parameter holds a numpy scalar
            p._bump_version()

    # --- calling ----------------------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # engine.module_scope written out: no context-manager object per module call, and
        # only the scope is restored (a grad-mode switch made inside forward stays made).
        st = engine.state
        enabled, anomaly, scope = st.mode
        st.mode = (enabled, anomaly, (self,) if scope is None else scope + (self,))
        try:
            return self.forward(*args, **kwargs)
        finally:
            enabled, anomaly, _ = st.mode
            st.mode = (enabled, anomaly, scope)

    # --- attributes -------------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: a clear error, never a silent None.
        raise AttributeError(f"'{type(self).__name__}' module has no attribute '{name}'")

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()})"]
        own = sum(p.size for _, p in self._children_items() if isinstance(p, Parameter))
        if own:
            lines[0] += f"  {own:,} params"
        for name, child in self.named_children():
            child_lines = repr(child).split("\n")
            lines.append(f"  ({name}): " + child_lines[0])
            lines.extend("  " + line for line in child_lines[1:])
        if len(lines) > 1 or not own:
            total = self.num_parameters()
            if total and len(lines) > 1:
                lines.append(f"Total: {total:,} parameters")
        return "\n".join(lines)
