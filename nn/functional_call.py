"""`functional_call`: run a module with other values for its parameters and buffers.

    params = dict(model.named_parameters())           # a tree: name -> Parameter
    loss = lambda p, x, y: F.mse_loss(functional_call(model, p, (x,)), y)
    grads = autodiff.func.grad(loss)(params, x, y)    # a dict of the same names

As `torch.func.functional_call`: the transforms differentiate with respect to their
arguments, and a model's weights are attributes, not arguments. `functional_call` puts the
given values in place of the named parameters and buffers for one call and puts the model's
own back afterwards (also when the call raises), so the model is left as it was.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from autodiff import Tensor

from .module import Module

__all__ = ["functional_call", "swapped"]

# One lock per model: two functional_calls on one model from two threads would otherwise
# swap each other's values in and out mid-call. (A plain model(x) running in another thread
# meanwhile still sees the swapped values: give each thread its own copy of the model.)
_locks: weakref.WeakKeyDictionary[Module, threading.RLock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def _lock_for(module: Module) -> threading.RLock:
    with _locks_guard:
        lock = _locks.get(module)
        if lock is None:
            lock = _locks[module] = threading.RLock()
        return lock


def functional_call(
    module: Module,
    parameters_and_buffers: Mapping[str, Any] | tuple[Mapping[str, Any], ...],
    args: Any = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    strict: bool = False,
) -> Any:
    """`module(*args, **kwargs)` with the given values for the named parameters and buffers.

    `parameters_and_buffers` maps dotted names (those of `named_parameters()` and
    `named_buffers()`) to Tensors, arrays or numbers; a tuple of such dicts is merged (a
    name given twice is an error). Names left out keep the module's own values, unless
    `strict`, which asks for every parameter and buffer. A parameter shared by several
    layers (tied weights) is replaced everywhere it is used. `args` is one argument or a
    tuple of them. The module's own parameters are put back when the call returns or raises.

    Not thread-safe for one model: calls on the same module are serialized, but a plain
    `module(x)` in another thread during the call sees the given values.
    """
    call_args = args if isinstance(args, tuple) else (args,)
    with swapped(module, parameters_and_buffers, strict=strict):
        return module(*call_args, **(kwargs or {}))


@contextlib.contextmanager
def swapped(
    module: Module,
    parameters_and_buffers: Mapping[str, Any] | tuple[Mapping[str, Any], ...],
    *,
    strict: bool = False,
) -> Iterator[Module]:
    """`with swapped(model, values):` runs the block with the given values in place of the
    named parameters and buffers (as `functional_call`, for code that calls the module
    itself, several times or inside a loss), and puts the module's own back on exit."""
    values = _merged(parameters_and_buffers)
    known: dict[str, Tensor] = dict(module.named_parameters())
    known.update(dict(module.named_buffers()))
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise KeyError(
            f"functional_call: {type(module).__name__} has no parameter or buffer named "
            f"{', '.join(repr(k) for k in unknown)} (its names: {', '.join(known) or 'none'})"
        )
    if strict:
        missing = [k for k in known if k not in values]
        if missing:
            raise KeyError(f"functional_call: strict=True, but no value for {', '.join(missing)}")
    replacement: dict[int, Tensor] = {}
    for name, value in values.items():
        old = known[name]
        new = value if isinstance(value, Tensor) else Tensor(np.asarray(value))
        if new.shape != old.shape:
            raise ValueError(
                f"functional_call: '{name}' has shape {old.shape}, but the value given has "
                f"shape {new.shape}"
            )
        replacement[id(old)] = new
    with _lock_for(module):
        undo: list[tuple[Any, Any, Any]] = []
        try:
            for m in module.modules():
                _swap(m, replacement, undo)
            yield module
        finally:
            for owner, key, old in reversed(undo):
                _put(owner, key, old)


def _merged(given: Mapping[str, Any] | tuple[Mapping[str, Any], ...]) -> dict[str, Any]:
    dicts = given if isinstance(given, tuple | list) else (given,)
    merged: dict[str, Any] = {}
    for d in dicts:
        if not isinstance(d, Mapping):
            raise TypeError(
                "functional_call: parameters_and_buffers must be a dict of name -> value "
                f"(or a tuple of such dicts), got {type(d).__name__}"
            )
        for k, v in d.items():
            if k in merged:
                raise ValueError(f"functional_call: '{k}' is given twice")
            merged[k] = v
    return merged


def _put(owner: Any, key: Any, value: Any) -> None:
    # Past Module.__setattr__, which (rightly, elsewhere) refuses a plain Tensor in place
    # of a Parameter: here the swap is for one call and undone.
    if isinstance(owner, Module):
        object.__setattr__(owner, key, value)
    else:
        owner[key] = value


def _swap(module: Module, replacement: dict[int, Tensor], undo: list) -> None:
    """Put the replacements in place of the old tensors in this module's attributes,
    including inside the lists and dicts it holds (as named_parameters finds them)."""
    for name, value in list(vars(module).items()):
        if isinstance(value, Tensor):
            if id(value) in replacement:
                undo.append((module, name, value))
                _put(module, name, replacement[id(value)])
        elif isinstance(value, list | dict | tuple) and not isinstance(value, Module):
            new = _swap_in(value, replacement, undo)
            if new is not value:  # a tuple, rebuilt: put the new one in the attribute
                undo.append((module, name, value))
                _put(module, name, new)


def _swap_in(container: Any, replacement: dict[int, Tensor], undo: list) -> Any:
    items = container.items() if isinstance(container, dict) else enumerate(container)
    if isinstance(container, tuple):
        rebuilt = []
        changed = False
        for _, item in items:
            new = _replaced(item, replacement, undo)
            changed = changed or new is not item
            rebuilt.append(new)
        if not changed:
            return container
        return type(container)(*rebuilt) if hasattr(container, "_fields") else tuple(rebuilt)
    for key, item in list(items):
        new = _replaced(item, replacement, undo)
        if new is not item:  # a tensor replaced, or a tuple inside rebuilt
            undo.append((container, key, item))
            container[key] = new
    return container


def _replaced(item: Any, replacement: dict[int, Tensor], undo: list) -> Any:
    if isinstance(item, Tensor):
        return replacement.get(id(item), item)
    if isinstance(item, list | dict | tuple) and not isinstance(item, Module):
        return _swap_in(item, replacement, undo)
    return item
