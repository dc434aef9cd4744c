"""Module and Parameter: the registry that finds a model's weights by walking its attributes."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from autodiff import Tensor
from autodiff.extend import enter_scope, exit_scope, mark_written


class Parameter(Tensor):
    """A Tensor that is a model weight: a leaf that requires grad (unless frozen with
    `module.requires_grad_(False)`). float32 by default."""

    __slots__ = ()

    def __init__(self, data: Any, dtype: Any = None, name: str | None = None) -> None:
        array = np.asarray(data.raw() if isinstance(data, Tensor) else data)
        if dtype is None:
            dtype = array.dtype if array.dtype.kind == "f" else np.float32
        super().__init__(np.array(array, dtype=dtype), requires_grad=True, name=name)

    def __repr__(self) -> str:
        return "Parameter" + super().__repr__()[len("Tensor") :]


_DEVICE_NAMES = ("cpu", "cuda", "mps", "xpu", "meta", "hip", "xla", "npu", "vulkan", "ipu")


def _is_device(value: Any) -> bool:
    """A device name ("cpu", "cuda:0") or a torch.device, rather than a dtype."""
    if isinstance(value, str):
        return value.split(":")[0].strip().lower() in _DEVICE_NAMES
    return type(value).__name__ == "device" and isinstance(getattr(value, "type", None), str)


def _check_cpu(who: str, device: Any) -> None:
    kind = device if isinstance(device, str) else getattr(device, "type", repr(device))
    if str(kind).split(":")[0].strip().lower() != "cpu":
        raise RuntimeError(
            f"{who}: device {str(device)!r} is not available: this library computes with "
            f"numpy, on the CPU only; use 'cpu' (or drop the .to(device) call)"
        )


def _numpy_dtype(who: str, dtype: Any) -> np.dtype:
    """A numpy dtype from numpy's names or types, or from a torch dtype (torch.float64)."""
    text = str(dtype)
    if text.startswith("torch."):
        text = text[len("torch.") :]
    try:
        return np.dtype(dtype if not str(dtype).startswith("torch.") else text)
    except TypeError:
        raise TypeError(f"{who}: expected a device ('cpu') or a dtype, got {dtype!r}") from None


class IncompatibleKeys(NamedTuple):
    """What `load_state_dict(strict=False)` skipped, as PyTorch returns it."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of layers and models.

    Parameters and sub-modules assigned as attributes are registered, also inside lists,
    tuples and dicts (`self.layers = [Linear(2, 3), ...]` gives `layers.0.weight`).
    Call a module to run `forward`; the call is tagged on the tensors it creates, so graph
    drawings can group ops by module.
    """

    # A class default as well as Module.__init__'s: a subclass whose __init__ skips
    # super().__init__() (a common slip) still has a mode, and works as one that did.
    training: bool = True

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)

    # Registration is found by walking __dict__ on demand (no second registry to keep in
    # sync), in insertion order, which is the order attributes were assigned. Lists, tuples
    # and dicts are walked at any depth (`self.blocks = [[a, b], {"head": c}]` gives
    # `blocks.0.1.weight`, `blocks.1.head.weight`), so no weight is silently left out of
    # training or saving; sets have no order to name their items by, so they are refused.
    def _children_items(self) -> Iterator[tuple[str, Any]]:
        for name, value in vars(self).items():
            if isinstance(value, (Module, Tensor)):
                yield name, value
            # Only containers need the walk; most attributes are numbers and flags, and
            # parameters() runs this for every module on every call (often once per step).
            elif isinstance(value, (list, tuple, dict, set, frozenset)):
                yield from _walk(type(self).__name__, name, value)

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

    def register_buffer(self, name: str, value: Any) -> None:
        """Keep a non-trained tensor (BatchNorm's running statistics) in the state dict."""
        object.__setattr__(self, name, value if isinstance(value, Tensor) else Tensor(value))
        names = vars(self).setdefault("_buffer_names", [])
        if name not in names:
            names.append(name)

    def named_buffers(self) -> Iterator[tuple[str, Tensor]]:
        for module_name, module in self.named_modules():
            for name in vars(module).get("_buffer_names", ()):
                value = vars(module).get(name)
                if value is not None:  # a buffer set to None is kept out, as in PyTorch
                    yield (f"{module_name}.{name}" if module_name else name), value

    def parameters(self) -> list[Parameter]:
        """The parameters in named_parameters' order, each once. The same walk without
        building the dotted names: training loops call this every step (an L2 term, a clip)."""
        found: list[Parameter] = []
        seen: set[int] = set()
        visited: set[int] = set()
        stack: list[Module] = [self]
        while stack:
            module = stack.pop()
            if id(module) in visited:
                continue
            visited.add(id(module))
            children = []
            for name, value in vars(module).items():
                if type(value) in _PLAIN:
                    continue  # most attributes: sizes, flags, names
                if isinstance(value, (list, tuple, dict, set, frozenset)):
                    values: Any = _member_values(type(module).__name__, name, value)
                else:
                    values = (value,)
                for item in values:
                    if isinstance(item, Parameter):
                        if id(item) not in seen:
                            seen.add(id(item))
                            found.append(item)
                    elif isinstance(item, Module):
                        children.append(item)
            stack.extend(reversed(children))
        return found

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient: None (the default, as in PyTorch), or zeros of
        the parameter's shape and dtype with set_to_none=False. A frozen parameter
        (requires_grad False) always gets None: a zero gradient would make optimizers step
        it (weight decay, momentum) though it is frozen."""
        for p in self.parameters():
            if set_to_none or not p.requires_grad:
                p.zero_grad()
            else:
                p.grad = np.zeros(p.shape, dtype=p.dtype)

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call `fn` on every sub-module, then on this one (PyTorch's order), e.g. to
        re-initialise weights; returns self."""
        for module in reversed(list(self.modules())):
            fn(module)
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze every parameter; frozen ones get no gradient, so
        optimizers leave them as they are. Returns self."""
        for p in self.parameters():
            p.requires_grad = bool(requires_grad)
        return self

    def to_dtype(self, dtype: Any) -> Module:
        """Convert every parameter (and its gradient) and floating-point buffer to the
        floating-point `dtype`, keeping the Parameter objects, so optimizers built before
        still update them. Returns self."""
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(
                f"{type(self).__name__}.to_dtype: parameters must stay floating-point, got {dtype}"
            )
        buffers = [b for _, b in self.named_buffers() if b.dtype.kind == "f"]
        for p in [*self.parameters(), *buffers]:  # running statistics follow the weights
            if p.dtype != dtype:
                # 0-d tensors hold a numpy scalar, not a 0-d array (see Tensor)
                # New numbers through the data setter, which records the write: a graph recorded
                # with the old array must not backward. 0-d tensors hold a numpy scalar.
                grad = p.grad
                p.data = dtype.type(p.raw()) if p.ndim == 0 else np.array(p.raw(), dtype=dtype)
                if grad is not None:
                    p.grad = np.asarray(grad.raw(), dtype=dtype)
        return self

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """PyTorch's `model.to(device)`, `.to(dtype)` or `.to(device, dtype)`: "cpu" (or a
        torch.device("cpu")) is where the weights already are, so it changes nothing; a
        float dtype converts as `to_dtype`. Any other device is an error, not a silent
        no-op: nothing here runs on a GPU. Returns self."""
        name = type(self).__name__
        unknown = sorted(set(kwargs) - {"device", "dtype", "non_blocking", "copy"})
        if unknown:
            raise TypeError(f"{name}.to: unexpected argument(s) {unknown}")
        if len(args) > 2:
            raise TypeError(f"{name}.to: takes a device and/or a dtype, got {len(args)} values")
        device, dtype = kwargs.get("device"), kwargs.get("dtype")
        for arg in args:
            if _is_device(arg):
                device = arg
            else:
                dtype = arg
        if device is not None:
            _check_cpu(f"{name}.to", device)
        if dtype is not None:
            self.to_dtype(_numpy_dtype(f"{name}.to", dtype))
        return self

    def cpu(self) -> Module:
        """PyTorch's `model.cpu()`: the weights are numpy arrays, on the CPU already."""
        return self

    def cuda(self, device: Any = None) -> Module:
        """There is no GPU here: an error naming the way out, not a silent no-op."""
        _check_cpu(f"{type(self).__name__}.cuda", "cuda" if device is None else f"cuda:{device}")
        return self

    def double(self) -> Module:
        """Parameters as float64 (exact gradient checks); returns self."""
        return self.to_dtype(np.float64)

    def float(self) -> Module:
        """Parameters as float32 (the default); returns self."""
        return self.to_dtype(np.float32)

    def train(self, mode: bool = True) -> Module:
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    # --- state ------------------------------------------------------------------------------

    def _named_state(self, who: str) -> dict[str, Tensor]:
        """Parameters and buffers by name, refusing two under one name: a dict attribute
        whose keys print alike ({1: a, "1": b}, or "x.0" beside "x": [..]) would otherwise
        keep only one of them in the state dict, so a save would silently lose the other."""
        tensors = [*self.named_parameters(), *self.named_buffers()]
        named = dict(tensors)
        if len({(name, id(t)) for name, t in tensors}) > len(named):  # same name, other tensor
            twice = sorted({name for name, t in tensors if named[name] is not t})
            raise ValueError(
                f"{who}: {type(self).__name__} has several tensors named "
                f"{twice}; rename the keys of the dict attribute that holds them "
                f"(keys are joined with '.', so 1 and '1', or 'a.0' and 'a': [..], "
                f"give the same name)"
            )
        return named

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameter (and buffer) name -> a copy of its values."""
        return {
            name: np.array(p.raw(), copy=True)
            for name, p in self._named_state("state_dict").items()
        }

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values into the parameters, checking names, shapes and dtypes first.

        Nothing is changed unless every check passes, so a failed load leaves the model as
        it was. With strict=False, missing and unexpected names are allowed (and skipped), and
        returned, as PyTorch's `(missing_keys, unexpected_keys)`; but a state that shares no
        name at all with the model is refused (it would load nothing: the names of another
        model, or of the same one under another prefix).
        """
        if not isinstance(state, dict):
            raise TypeError(
                f"load_state_dict: expected a dict of arrays, got {type(state).__name__}"
            )
        own = self._named_state("load_state_dict")
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing parameters {missing}")
            if unexpected:
                parts.append(f"unexpected parameters {unexpected}")
            hint = ""
            if any(name.replace("layers.", "") in state for name in missing):
                # PyTorch's Sequential names its children 0, 1, ...; ours keeps them in layers.
                hint = (
                    " (the state's names look like PyTorch's nn.Sequential ('0.weight'), "
                    "where this model's are 'layers.0.weight': convert the PyTorch module "
                    "with nn.from_torch, or rename the keys)"
                )
            raise KeyError(f"load_state_dict: {'; '.join(parts)} for {type(self).__name__}" + hint)
        if own and state and not set(own) & set(state):
            raise KeyError(
                f"load_state_dict: none of the {len(state)} names in the state "
                f"dict is a parameter of this {type(self).__name__}, so nothing "
                f"would load (strict=False skips only some): the state has "
                f"{sorted(state)[:4]}, the model {sorted(own)[:4]}"
            )
        updates = []
        for name, p in own.items():
            if name not in state:
                continue
            value = state[name]
            value = np.asarray(value.raw() if isinstance(value, Tensor) else value)
            if not value.dtype.isnative:
                # The same numbers in the other byte order (an .npz written on a big-endian
                # machine or by a tool that stores '>f4'): not another dtype, so convert.
                value = value.astype(value.dtype.newbyteorder("="))
            if value.shape != p.shape:
                raise ValueError(
                    f"load_state_dict: parameter '{name}' has shape {p.shape} in the model "
                    f"but {value.shape} in the state dict"
                )
            if value.dtype != p.dtype:
                raise ValueError(
                    f"load_state_dict: parameter '{name}' has dtype {p.dtype} in the model "
                    f"but {value.dtype} in the state dict"
                    + (
                        f" (convert the model first, model.to_dtype(np.{value.dtype}), or the "
                        f"arrays, .astype(np.{p.dtype}))"
                        if value.dtype.kind == p.dtype.kind == "f"
                        else ""
                    )
                )
            updates.append((p, value))
        for p, value in updates:
            if isinstance(p.raw(), np.ndarray):
                p.raw()[...] = value  # in place: optimizers holding p keep seeing the same array
                mark_written(p)
            else:
                p.data = value[()]  # a 0-d parameter holds a numpy scalar (recorded as written)
        return IncompatibleKeys(missing, unexpected)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write this module's weights to `path` (see `nn.save`); returns the path."""
        from .serialization import save

        return save(self, path)

    def load(self, path: str | os.PathLike[str], strict: bool = True) -> Module:
        """Read weights written by `save` into this module (see `nn.load`); returns self."""
        from .serialization import load

        return load(path, into=self, strict=strict)

    # --- calling ----------------------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Two calls rather than `with module_scope(self)`: no context-manager object per
        # module call, and only the scope is restored (a grad-mode switch made inside
        # forward stays made).
        scope = enter_scope(self)
        try:
            return self.forward(*args, **kwargs)
        finally:
            exit_scope(scope)

    # --- attributes -------------------------------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        # Registration is by attribute type, so replacing a Parameter with a plain Tensor or
        # an array would silently take the weight out of parameters(), training and
        # state_dict. PyTorch refuses that; so do we. None stays allowed (it removes the
        # parameter, as in PyTorch), as does any value for a name that held no Parameter.
        if value is not None:
            old = vars(self).get(name)
            if isinstance(old, Parameter) and not isinstance(value, Parameter):
                raise TypeError(
                    f"{type(self).__name__}: cannot assign {type(value).__name__} to "
                    f"parameter '{name}' (Parameter or None expected: wrap it, "
                    f"nn.Parameter(value), to keep it trained and saved)"
                )
            if name in vars(self).get("_buffer_names", ()) and not isinstance(value, Tensor):
                raise TypeError(
                    f"{type(self).__name__}: cannot assign {type(value).__name__} "
                    f"to buffer '{name}' (Tensor or None expected)"
                )
            if (
                type(value) is Tensor
                and value.requires_grad
                and value.is_leaf
                and name not in vars(self).get("_buffer_names", ())
            ):
                # micrograd's habit, Tensor(..., requires_grad=True) as a weight: only
                # Parameters are found by parameters() and state_dict, so this one would be
                # neither trained nor saved, without a word (as in PyTorch). Say it.
                warnings.warn(
                    f"{type(self).__name__}: attribute '{name}' is a Tensor that "
                    f"requires grad, not a Parameter, so parameters() (and so "
                    f"optimizers) and state_dict() leave it out: wrap it, "
                    f"nn.Parameter(value), to train and save it",
                    stacklevel=2,
                )
        object.__setattr__(self, name, value)

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


# Attribute types that never hold modules or tensors: skipped with one set lookup.
_PLAIN = frozenset({bool, int, float, str, type(None)})


def _member_values(owner: str, name: str, value: Any) -> list[Any]:
    """The Modules and Tensors in a container attribute, in `_walk`'s order, without names
    (parameters() runs this every step; building dotted names was half its time)."""
    found = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (Module, Tensor)):
            found.append(item)
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            stack.extend(reversed(item.values()))
        elif isinstance(item, (set, frozenset)):
            return [item for _, item in _walk(owner, name, value)]  # refused there, by name
    return found


def _walk(owner: str, name: str, value: Any) -> Iterator[tuple[str, Any]]:
    """(dotted name, item) for every Module or Tensor in `value`, through nested lists, tuples
    and dicts, depth first in order; an explicit stack, so any depth is fine."""
    stack: list[tuple[str, Any]] = [(name, value)]
    while stack:
        name, value = stack.pop()
        if isinstance(value, (Module, Tensor)):
            yield name, value
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{name}.{i}", item) for i, item in reversed(list(enumerate(value))))
        elif isinstance(value, dict):
            stack.extend((f"{name}.{key}", item) for key, item in reversed(value.items()))
        elif isinstance(value, (set, frozenset)) and any(
            isinstance(item, (Module, Tensor)) for item in value
        ):
            raise TypeError(
                f"{owner}: attribute '{name}' is a {type(value).__name__} holding "
                f"modules or tensors; a set has no order to name them by, so they "
                f"would be neither trained in a fixed order nor saved: use a list"
            )
