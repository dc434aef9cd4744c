"""Moving a model to PyTorch and back: `to_torch(model)` and `from_torch(module)`.

Each of our modules has a PyTorch twin computing the same function with the same weight
layout (Linear keeps its weight as (out_features, in_features)), so converting copies values
and never transposes. Our Sequential keeps its children in `layers`, so a weight that is
"layers.0.weight" here is "0.weight" in the torch.nn.Sequential; everything below the
containers has the same names.

PyTorch is optional: it is imported inside the functions, which raise ImportError with the
install command when it is absent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import layers
from .module import Module


def _torch(who: str) -> Any:
    try:
        import torch
    except ImportError:
        raise ImportError(f"{who} needs PyTorch: pip install torch") from None
    return torch


def _unsupported(who: str, where: str, module: Any, supported: list[type]) -> TypeError:
    names = ", ".join(sorted(t.__name__ for t in supported))
    return TypeError(f"{who}: module {where or '(the model itself)'!r} is a "
                     f"{type(module).__name__}, which has no counterpart; supported: {names}")


# --- ours -> PyTorch -------------------------------------------------------------------------


def _linear_to_torch(torch: Any, m: layers.Linear) -> Any:
    weight = torch.from_numpy(np.array(m.weight.data, copy=True))
    out = torch.nn.Linear(m.in_features, m.out_features, bias=m.bias is not None,
                          dtype=weight.dtype)
    with torch.no_grad():
        out.weight.copy_(weight)
        if m.bias is not None:
            out.bias.copy_(torch.from_numpy(np.array(m.bias.data, copy=True)))
    return out


_TO_TORCH: dict[type, Callable[[Any, Any], Any]] = {
    layers.Linear: _linear_to_torch,
    layers.ReLU: lambda torch, m: torch.nn.ReLU(),
    layers.Sigmoid: lambda torch, m: torch.nn.Sigmoid(),
    layers.Tanh: lambda torch, m: torch.nn.Tanh(),
    layers.LeakyReLU: lambda torch, m: torch.nn.LeakyReLU(m.negative_slope),
    layers.Softmax: lambda torch, m: torch.nn.Softmax(dim=m.axis),
    layers.Identity: lambda torch, m: torch.nn.Identity(),
    layers.Flatten: lambda torch, m: torch.nn.Flatten(start_dim=m.start_axis, end_dim=-1),
    layers.Dropout: lambda torch, m: torch.nn.Dropout(m.p),
}
_CONTAINERS = (layers.Sequential, layers.MLP)


def to_torch(model: Module) -> Any:
    """An equivalent `torch.nn.Module` holding copies of the weights, in the same training
    mode. Sequential and MLP become `torch.nn.Sequential`; a module used twice stays shared.
    Raises TypeError naming any module without a PyTorch counterpart."""
    torch = _torch("to_torch")
    made: dict[int, Any] = {}

    def convert(m: Any, where: str) -> Any:
        if id(m) in made:
            return made[id(m)]
        if type(m) in _CONTAINERS:
            out = torch.nn.Sequential(*(convert(layer, f"{where}.layers.{i}".lstrip("."))
                                        for i, layer in enumerate(m.layers)))
        elif type(m) in _TO_TORCH:  # exact types: a subclass may compute something else
            out = _TO_TORCH[type(m)](torch, m)
        else:
            raise _unsupported("to_torch", where, m, [*_TO_TORCH, *_CONTAINERS])
        out.training = m.training  # this module only: its children were set already
        made[id(m)] = out
        return out

    return convert(model, "")


# --- PyTorch -> ours -------------------------------------------------------------------------


def _linear_from_torch(torch: Any, m: Any, where: str) -> layers.Linear:
    weight = m.weight.detach().cpu().numpy().copy()
    out = layers.Linear(m.in_features, m.out_features, bias=m.bias is not None,
                        dtype=weight.dtype)
    state = {"weight": weight}
    if m.bias is not None:
        state["bias"] = m.bias.detach().cpu().numpy().copy()
    out.load_state_dict(state)
    return out


def _flatten_from_torch(torch: Any, m: Any, where: str) -> layers.Flatten:
    if m.end_dim != -1:
        raise TypeError(f"from_torch: module {where!r} is Flatten(end_dim={m.end_dim}); only "
                        f"end_dim=-1 (flatten to the last axis) has a counterpart")
    return layers.Flatten(m.start_dim)


def _softmax_from_torch(torch: Any, m: Any, where: str) -> layers.Softmax:
    if m.dim is None:
        raise TypeError(f"from_torch: module {where!r} is Softmax without dim; give it a dim")
    return layers.Softmax(axis=m.dim)


def _from_table(torch: Any) -> dict[type, Callable[[Any, Any, str], Module]]:
    tn = torch.nn
    return {
        tn.Linear: _linear_from_torch,
        tn.ReLU: lambda torch, m, where: layers.ReLU(),
        tn.Sigmoid: lambda torch, m, where: layers.Sigmoid(),
        tn.Tanh: lambda torch, m, where: layers.Tanh(),
        tn.LeakyReLU: lambda torch, m, where: layers.LeakyReLU(m.negative_slope),
        tn.Softmax: _softmax_from_torch,
        tn.Identity: lambda torch, m, where: layers.Identity(),
        tn.Flatten: _flatten_from_torch,
        tn.Dropout: lambda torch, m, where: layers.Dropout(m.p),
    }


def from_torch(module: Any) -> Module:
    """Our equivalent of a `torch.nn.Module` built from Sequential, Linear, the activations,
    Flatten and Dropout, with copies of its weights and in the same training mode.
    Raises TypeError naming any module without a counterpart here."""
    torch = _torch("from_torch")
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch: expected a torch.nn.Module, got {type(module).__name__}")
    table = _from_table(torch)
    made: dict[int, Module] = {}

    def convert(m: Any, where: str) -> Module:
        if id(m) in made:
            return made[id(m)]
        if type(m) is torch.nn.Sequential:
            out: Module = layers.Sequential(*(convert(child, f"{where}.{name}".lstrip("."))
                                              for name, child in m.named_children()))
        elif type(m) in table:
            out = table[type(m)](torch, m, where)
        else:
            raise _unsupported("from_torch", where, m, [*table, torch.nn.Sequential])
        object.__setattr__(out, "training", m.training)  # this module only, as above
        made[id(m)] = out
        return out

    return convert(module, "")
