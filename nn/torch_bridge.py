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

from . import conv as _convs
from . import layers
from .module import Module, Parameter


def _torch(who: str) -> Any:
    try:
        import torch
    except ImportError:
        raise ImportError(f"{who} needs PyTorch: pip install torch") from None
    return torch


def _unsupported(who: str, where: str, module: Any, supported: list[type]) -> TypeError:
    names = ", ".join(sorted(t.__name__ for t in supported))
    return TypeError(
        f"{who}: module {where or '(the model itself)'!r} is a "
        f"{type(module).__name__}, which has no counterpart; supported: {names}"
    )


# --- ours -> PyTorch -------------------------------------------------------------------------


def _linear_to_torch(torch: Any, m: layers.Linear) -> Any:
    weight = torch.from_numpy(np.array(m.weight.raw(), copy=True))
    out = torch.nn.Linear(
        m.in_features, m.out_features, bias=m.bias is not None, dtype=weight.dtype
    )
    with torch.no_grad():
        out.weight.copy_(weight)
        if m.bias is not None:
            out.bias.copy_(torch.from_numpy(np.array(m.bias.raw(), copy=True)))
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


def _copy_into(torch: Any, target: Any, source: Any, names: tuple[str, ...]) -> None:
    """Copy the named tensors (those present on both sides) from our module into torch's."""
    with torch.no_grad():
        for name in names:
            ours, theirs = getattr(source, name, None), getattr(target, name, None)
            if ours is not None and theirs is not None:
                theirs.copy_(torch.from_numpy(np.array(ours.raw(), copy=True)))


def _conv_to_torch(torch: Any, m: Any) -> Any:
    cls = torch.nn.Conv2d if len(m.kernel_size) == 2 else torch.nn.Conv1d
    out = cls(
        m.in_channels,
        m.out_channels,
        m.kernel_size,
        stride=m.stride,
        padding=m.padding,
        dilation=m.dilation,
        groups=m.groups,
        bias=m.bias is not None,
        dtype=torch.from_numpy(np.asarray(m.weight.raw())).dtype,
    )
    _copy_into(torch, out, m, ("weight", "bias"))
    return out


def _float_dtype(m: Any, names: tuple[str, ...], default: Any = None) -> Any:
    """The dtype of a module's first floating-point tensor among `names` (`default` if it has
    none), so that a float64 module is not rebuilt in the other library's default float32."""
    for name in names:
        value = getattr(m, name, None)
        if value is not None:
            dtype = np.dtype(
                value.detach().numpy().dtype if hasattr(value, "detach") else value.dtype
            )
            if dtype.kind == "f":
                return dtype
    return default


def _torch_dtype(torch: Any, m: Any, names: tuple[str, ...]) -> Any:
    dtype = _float_dtype(m, names)
    return None if dtype is None else torch.from_numpy(np.zeros(0, dtype)).dtype


def _batch_norm_to_torch(torch: Any, m: Any) -> Any:
    cls = {"BatchNorm1d": torch.nn.BatchNorm1d, "BatchNorm2d": torch.nn.BatchNorm2d}
    out = cls[type(m).__name__](
        m.num_features,
        eps=m.eps,
        momentum=m.momentum,
        affine=m.affine,
        track_running_stats=m.track_running_stats,
        dtype=_torch_dtype(torch, m, ("weight", "running_mean")),
    )
    _copy_into(
        torch, out, m, ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    )
    return out


def _layer_norm_to_torch(torch: Any, m: Any) -> Any:
    out = torch.nn.LayerNorm(
        m.normalized_shape,
        eps=m.eps,
        elementwise_affine=m.weight is not None,
        dtype=_torch_dtype(torch, m, ("weight",)),
    )
    _copy_into(torch, out, m, ("weight", "bias"))
    return out


# Convolutions and normalisation (nn/conv.py).
_TO_TORCH.update(
    {
        _convs.Conv2d: _conv_to_torch,
        _convs.Conv1d: _conv_to_torch,
        _convs.MaxPool2d: lambda torch, m: torch.nn.MaxPool2d(m.kernel_size, m.stride, m.padding),
        _convs.AvgPool2d: lambda torch, m: torch.nn.AvgPool2d(m.kernel_size, m.stride, m.padding),
        _convs.BatchNorm1d: _batch_norm_to_torch,
        _convs.BatchNorm2d: _batch_norm_to_torch,
        _convs.LayerNorm: _layer_norm_to_torch,
    }
)


def to_torch(model: Module) -> Any:
    """An equivalent `torch.nn.Module` holding copies of the weights, in the same training
    mode. Sequential and MLP become `torch.nn.Sequential`; a module used twice stays shared,
    and so does a Parameter two modules hold (tied weights), so PyTorch counts it once.
    Raises TypeError naming any module without a PyTorch counterpart."""
    torch = _torch("to_torch")
    made: dict[int, Any] = {}
    # A Parameter held by two different modules (tied weights: a decoder reusing the
    # encoder's matrix) must come out as one torch Parameter, else training the copy unties
    # them and PyTorch counts the weight twice.
    tied: dict[int, Any] = {}

    def convert(m: Any, where: str) -> Any:
        if id(m) in made:
            return made[id(m)]
        if type(m) in _CONTAINERS:
            out = torch.nn.Sequential(
                *(
                    convert(layer, f"{where}.layers.{i}".lstrip("."))
                    for i, layer in enumerate(m.layers)
                )
            )
        elif type(m) in _TO_TORCH:  # exact types: a subclass may compute something else
            out = _TO_TORCH[type(m)](torch, m)
        else:
            raise _unsupported("to_torch", where, m, [*_TO_TORCH, *_CONTAINERS])
        out.training = m.training  # this module only: its children were set already
        for name, p in m._children_items():  # frozen weights stay frozen
            theirs = getattr(out, name, None) if isinstance(p, Parameter) else None
            if isinstance(theirs, torch.nn.Parameter):
                if id(p) in tied:
                    setattr(out, name, tied[id(p)])  # registers the shared one in its place
                else:
                    tied[id(p)] = theirs
                    theirs.requires_grad_(p.requires_grad)
        made[id(m)] = out
        return out

    return convert(model, "")


# --- PyTorch -> ours -------------------------------------------------------------------------


def _linear_from_torch(torch: Any, m: Any, where: str) -> layers.Linear:
    weight = m.weight.detach().cpu().numpy().copy()
    out = layers.Linear(m.in_features, m.out_features, bias=m.bias is not None, dtype=weight.dtype)
    state = {"weight": weight}
    if m.bias is not None:
        state["bias"] = m.bias.detach().cpu().numpy().copy()
    out.load_state_dict(state)
    return out


def _flatten_from_torch(torch: Any, m: Any, where: str) -> layers.Flatten:
    if m.end_dim != -1:
        raise TypeError(
            f"from_torch: module {where!r} is Flatten(end_dim={m.end_dim}); only "
            f"end_dim=-1 (flatten to the last axis) has a counterpart"
        )
    return layers.Flatten(m.start_dim)


def _softmax_from_torch(torch: Any, m: Any, where: str) -> layers.Softmax:
    if m.dim is None:
        raise TypeError(f"from_torch: module {where!r} is Softmax without dim; give it a dim")
    return layers.Softmax(axis=m.dim)


def _copy_from(torch: Any, target: Module, source: Any, names: tuple[str, ...]) -> Module:
    """Load the named tensors of a torch module into ours (checked by load_state_dict)."""
    state = {
        name: getattr(source, name).detach().cpu().numpy().copy()
        for name in names
        if getattr(source, name, None) is not None
    }
    target.load_state_dict(state)
    return target


def _conv_from_torch(torch: Any, m: Any, where: str) -> Module:
    cls = _convs.Conv2d if isinstance(m, torch.nn.Conv2d) else _convs.Conv1d
    if m.padding_mode != "zeros":
        raise TypeError(
            f"from_torch: module {where!r} pads with {m.padding_mode!r}; only "
            f"zero padding has a counterpart"
        )
    unwrap = (lambda v: v[0]) if cls is _convs.Conv1d else tuple
    padding = m.padding if isinstance(m.padding, str) else unwrap(m.padding)
    out = cls(
        m.in_channels,
        m.out_channels,
        m.kernel_size,
        stride=unwrap(m.stride),
        padding=padding,
        dilation=unwrap(m.dilation),
        groups=m.groups,
        bias=m.bias is not None,
        dtype=m.weight.detach().numpy().dtype,
    )
    return _copy_from(torch, out, m, ("weight", "bias"))


def _pool_from_torch(torch: Any, m: Any, where: str) -> Module:
    options = {
        "ceil_mode": False,
        "dilation": 1,
        "return_indices": False,
        "count_include_pad": True,
        "divisor_override": None,
    }
    odd = [
        f"{k}={getattr(m, k)!r}"
        for k, default in options.items()
        if hasattr(m, k) and getattr(m, k) != default
    ]
    if odd:
        raise TypeError(
            f"from_torch: module {where!r} is {type(m).__name__} with "
            f"{', '.join(odd)}, which has no counterpart"
        )
    cls = _convs.MaxPool2d if isinstance(m, torch.nn.MaxPool2d) else _convs.AvgPool2d
    return cls(m.kernel_size, m.stride, m.padding)


def _batch_norm_from_torch(torch: Any, m: Any, where: str) -> Module:
    cls = _convs.BatchNorm2d if isinstance(m, torch.nn.BatchNorm2d) else _convs.BatchNorm1d
    out = cls(
        m.num_features,
        eps=m.eps,
        momentum=m.momentum,
        affine=m.affine,
        track_running_stats=m.track_running_stats,
        dtype=_float_dtype(m, ("weight", "running_mean"), np.float32),
    )
    return _copy_from(
        torch, out, m, ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    )


def _layer_norm_from_torch(torch: Any, m: Any, where: str) -> Module:
    if m.weight is not None and m.bias is None:
        raise TypeError(
            f"from_torch: module {where!r} is LayerNorm with a weight but no bias, "
            f"which has no counterpart"
        )
    out = _convs.LayerNorm(
        m.normalized_shape,
        eps=m.eps,
        elementwise_affine=m.weight is not None,
        dtype=_float_dtype(m, ("weight",), np.float32),
    )
    return _copy_from(torch, out, m, ("weight", "bias"))


def _from_table(torch: Any) -> dict[type, Callable[[Any, Any, str], Module]]:
    tn = torch.nn
    if _convs is not None:
        convs = {
            tn.Conv2d: _conv_from_torch,
            tn.Conv1d: _conv_from_torch,
            tn.MaxPool2d: _pool_from_torch,
            tn.AvgPool2d: _pool_from_torch,
            tn.BatchNorm1d: _batch_norm_from_torch,
            tn.BatchNorm2d: _batch_norm_from_torch,
            tn.LayerNorm: _layer_norm_from_torch,
        }
    else:
        convs = {}
    return {
        **convs,
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


def _numpy_dtypes(torch: Any, m: Any, where: str) -> None:
    """Refuse by name a module whose weights numpy cannot hold (bfloat16, the float8 types):
    else torch's own "Got unsupported ScalarType BFloat16" comes out of .numpy(), naming
    neither the module nor the way out."""
    for name, t in [*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)]:
        try:
            torch.empty(0, dtype=t.dtype).numpy()
        except TypeError:
            raise TypeError(
                f"from_torch: {where or '(the model itself)'!r}.{name} is "
                f"{t.dtype}, which numpy cannot hold; convert the module first "
                f"(module.float())"
            ) from None


def from_torch(module: Any) -> Module:
    """Our equivalent of a `torch.nn.Module` built from Sequential, Linear, the activations,
    Flatten and Dropout, with copies of its weights and in the same training mode. A module
    or Parameter used twice (tied weights) stays one here too.
    Raises TypeError naming any module without a counterpart here."""
    torch = _torch("from_torch")
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch: expected a torch.nn.Module, got {type(module).__name__}")
    table = _from_table(torch)
    made: dict[int, Module] = {}
    tied: dict[int, Parameter] = {}  # torch Parameter -> ours, to keep tied weights tied

    def convert(m: Any, where: str) -> Module:
        if id(m) in made:
            return made[id(m)]
        if type(m) is torch.nn.Sequential:
            # Not named_children(): it lists a module used twice only once, which would drop
            # its second use from the model (torch.nn.Sequential(lin, relu, lin)).
            out: Module = layers.Sequential(
                *(
                    convert(child, f"{where}.{name}".lstrip("."))
                    for name, child in m._modules.items()
                )
            )
        elif type(m) in table:
            _numpy_dtypes(torch, m, where)
            out = table[type(m)](torch, m, where)
        else:
            raise _unsupported("from_torch", where, m, [*table, torch.nn.Sequential])
        object.__setattr__(out, "training", m.training)  # this module only, as above
        for name, p in m.named_parameters(recurse=False):  # frozen weights stay frozen
            ours = vars(out).get(name)
            if isinstance(ours, Parameter):
                if id(p) in tied:
                    object.__setattr__(out, name, tied[id(p)])
                else:
                    tied[id(p)] = ours
                    ours.requires_grad = p.requires_grad
        made[id(m)] = out
        return out

    return convert(module, "")
