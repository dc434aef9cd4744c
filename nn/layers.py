"""Layers: Linear, activations, Dropout, Flatten, containers (Sequential, ModuleList,
ModuleDict) and a ready-made MLP."""

from __future__ import annotations

import math
import numbers
from collections.abc import (
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    Sequence,
    ValuesView,
)
from typing import Any

import numpy as np

import autodiff as ad
from autodiff import Tensor, rules
from autodiff.extend import apply, enter_scope, exit_scope

from . import functional as F
from . import init
from .module import Module, Parameter

# No scope entered yet (None is a scope: the top level).
_NO_SCOPE = object()


class Linear(Module):
    """y = x @ W.T + b, with W of shape (out_features, in_features) as in PyTorch.

    Weights and bias start uniform in ±1/sqrt(in_features) (PyTorch's default), float32
    unless `dtype` says otherwise; `rng` (seed or Generator) makes them reproducible.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        dtype: Any = np.float32,
        rng: Any = None,
    ) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"Linear: {name} must be a positive int, got {value!r}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        generator = init._generator(rng)
        bound = 1.0 / math.sqrt(in_features)
        self.weight = Parameter(np.zeros((out_features, in_features)), dtype=dtype)
        init.uniform_(self.weight, -bound, bound, generator)
        self.bias = None
        if bias:
            self.bias = Parameter(np.zeros(out_features), dtype=dtype)
            init.uniform_(self.bias, -bound, bound, generator)

    def forward(self, x: Any) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(np.asarray(x))
        # Shapes read from the arrays, not through Tensor.shape: every layer of every step.
        shape = x.raw().shape
        if not shape or shape[-1] != self.in_features:
            raise ValueError(
                f"{self.label()}: expected input with last axis {self.in_features}, "
                f"got shape {shape}"
            )
        weight, bias = self.weight, self.bias
        if (
            isinstance(weight, Tensor)
            and weight.raw().shape == (self.out_features, shape[-1])
            and (
                bias is None
                or isinstance(bias, Tensor)
                and bias.raw().shape == (self.out_features,)
            )
        ):
            # The shapes ad.linear would check again, checked here: straight to the node.
            return (
                apply(rules.linear, x, weight)
                if bias is None
                else apply(rules.linear, x, weight, bias)
            )
        return ad.linear(x, weight, bias)  # replaced weights: its checks name the shapes

    def label(self) -> str:
        return f"Linear({self.in_features} -> {self.out_features})"

    def extra_repr(self) -> str:
        suffix = "" if self.bias is not None else ", no bias"
        return f"{self.in_features} -> {self.out_features}{suffix}"


class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return apply(rules.relu, x) if isinstance(x, Tensor) else F.relu(x)


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class LeakyReLU(Module):
    negative_slope: float

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, numbers.Real):
            raise TypeError(
                f"LeakyReLU: negative_slope must be a number, got "
                f"{type(negative_slope).__name__} {negative_slope!r}"
            )
        self.negative_slope = float(negative_slope)

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Softmax(Module):
    """softmax along `axis` (PyTorch's `dim=` is accepted too: `nn.Softmax(dim=1)`)."""

    def __init__(self, axis: int = -1, *, dim: int | None = None) -> None:
        super().__init__()
        self.axis = axis if dim is None else dim

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, axis=self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class Identity(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x


class Flatten(Module):
    """Flattens all axes from `start_axis` on: (N, 28, 28) -> (N, 784). `start_dim` is
    PyTorch's name for it."""

    def __init__(self, start_axis: int = 1, *, start_dim: int | None = None) -> None:
        super().__init__()
        if start_dim is not None:
            if start_axis != 1 and start_axis != start_dim:
                raise ValueError(
                    f"Flatten: start_axis={start_axis} and start_dim={start_dim} "
                    "disagree (they are one setting)"
                )
            start_axis = start_dim
        if not isinstance(start_axis, (int, np.integer)) or isinstance(start_axis, bool):
            raise TypeError(f"Flatten: start_axis must be an int, got {start_axis!r}")
        self.start_axis = int(start_axis)

    def forward(self, x: Tensor) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(np.asarray(x))
        # An input without the axes before start_axis (a single unbatched sample) would
        # silently gain one; say so instead, as PyTorch does.
        if not -x.ndim <= self.start_axis < x.ndim:
            raise ValueError(
                f"Flatten: start_axis={self.start_axis} needs an input with more "
                f"than {self.start_axis} axes, got shape {x.shape}"
            )
        return x.reshape(x.shape[: self.start_axis % x.ndim] + (-1,))


class Dropout(Module):
    """Zeroes each value with probability p while training and scales the rest by 1/(1-p),
    so nothing needs rescaling at evaluation time, where it does nothing."""

    def __init__(self, p: float = 0.5, rng: Any = None) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = float(p)
        self._rng = init._generator(rng)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = self._rng.random(x.shape) >= self.p
        scale = np.asarray(keep / (1.0 - self.p), dtype=x.dtype)
        return x * scale

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Sequential(Module):
    """Runs its modules in order; indexable and iterable."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: item {i} is a {type(m).__name__}, not a Module")
        self.layers = list(modules)

    def forward(self, x: Any) -> Any:
        # layer(x) for each layer, with Module.__call__'s scope switch done here: one
        # thread-local write per layer instead of a call frame with a try/finally and four
        # thread-local accesses (those calls were a fifth of the Python time of an MNIST
        # step). The mode is read again per layer, so a grad-mode switch made by one layer
        # stays made, as it does across calls; a layer with a __call__ of its own gets it.
        outer: Any = _NO_SCOPE  # this Sequential's own scope, once a layer has entered
        try:
            for layer in self.layers:
                if type(layer).__call__ is not Module.__call__:
                    x = layer(x)
                    continue
                outer = enter_scope(layer)
                x = layer.forward(x)
                exit_scope(outer)
        finally:
            if outer is not _NO_SCOPE:
                exit_scope(outer)  # also when a layer raised
        return x

    def __getitem__(self, index: int | slice) -> Module:
        index = _index(type(self).__name__, index, len(self.layers))
        if isinstance(index, slice):  # a Sequential of those layers, as in PyTorch
            return Sequential(*self.layers[index])
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)


def _index(owner: str, index: Any, length: int) -> Any:
    """`index` if it picks an item of a container of `length` modules (ints and slices, as a
    list takes them), else an error naming the container."""
    if isinstance(index, slice):
        return index
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise TypeError(
            f"{owner}: indices must be ints or slices, got {type(index).__name__} {index!r}"
        )
    if not -length <= index < length:
        raise IndexError(f"{owner}: index {index} is out of range for {length} modules")
    return int(index)


def _module(owner: str, what: str, value: Any) -> Module:
    if not isinstance(value, Module):
        raise TypeError(f"{owner}: {what} is a {type(value).__name__}, not a Module")
    return value


class ModuleList(Module):
    """A list of modules that registers them (`blocks.0.weight`, ...), as PyTorch's does.

    Indexing, slicing, len, iteration, append, extend, insert and del work as on a list.
    It has no forward of its own: loop over it in the owner's forward.
    """

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        super().__init__()
        self._items: list[Module] = []
        self.extend(modules)

    def _children_items(self) -> Iterator[tuple[str, Any]]:
        return ((str(i), m) for i, m in enumerate(self._items))

    def __getitem__(self, index: int | slice) -> Any:
        index = _index("ModuleList", index, len(self._items))
        if isinstance(index, slice):
            return ModuleList(self._items[index])
        return self._items[index]

    def __setitem__(self, index: int, module: Module) -> None:
        index = _index("ModuleList", index, len(self._items))
        if isinstance(index, slice):
            raise TypeError("ModuleList: assign one module at a time, not to a slice")
        self._items[index] = _module("ModuleList", f"item {index}", module)

    def __delitem__(self, index: int | slice) -> None:
        del self._items[_index("ModuleList", index, len(self._items))]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._items)

    def append(self, module: Module) -> ModuleList:
        self._items.append(_module("ModuleList", f"item {len(self._items)}", module))
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        if isinstance(modules, (Module, str)) or not isinstance(modules, Iterable):
            raise TypeError(
                f"ModuleList: expected an iterable of modules, got {type(modules).__name__}"
            )
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        self._items.insert(index, _module("ModuleList", f"item {index}", module))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "ModuleList is a container without forward(): call its "
            "modules in a loop in your own forward()"
        )


class ModuleDict(Module):
    """A dict of modules, by string key, that registers them (`heads.cls.weight`, ...).

    Keys are non-empty strings without dots (a dot would make saved names ambiguous); the
    order is insertion order, as in a dict.
    """

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] = ()) -> None:
        super().__init__()
        self._items: dict[str, Module] = {}
        self.update(modules)

    def _children_items(self) -> Iterator[tuple[str, Any]]:
        return iter(list(self._items.items()))

    def __getitem__(self, key: str) -> Module:
        if key not in self._items:
            raise KeyError(f"ModuleDict: no module named {key!r} (it has {list(self._items)})")
        return self._items[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(key, str) or not key or "." in key:
            raise KeyError(f"ModuleDict: keys must be non-empty strings without '.', got {key!r}")
        self._items[key] = _module("ModuleDict", f"item {key!r}", module)

    def __delitem__(self, key: str) -> None:
        self.pop(key)

    def pop(self, key: str) -> Module:
        module = self[key]  # the KeyError that names ModuleDict and its keys
        del self._items[key]
        return module

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def keys(self) -> KeysView[str]:
        return self._items.keys()

    def values(self) -> ValuesView[Module]:
        return self._items.values()

    def items(self) -> ItemsView[str, Module]:
        return self._items.items()

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        pairs = modules.items() if isinstance(modules, Mapping) else modules
        for pair in pairs:
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise TypeError(
                    f"ModuleDict: expected a mapping or (key, module) pairs, got an item {pair!r}"
                )
            self[pair[0]] = pair[1]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "ModuleDict is a container without forward(): call its "
            "modules by key in your own forward()"
        )


_ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh, "leaky_relu": LeakyReLU}


class MLP(Sequential):
    """A multi-layer perceptron: Linear layers with an activation between them.

    `MLP(784, [128], 10)` is the classic tutorial network (micrograd's spelling, the output
    size last in the list, `MLP(2, [16, 16, 1])`, works too); `activation` is "relu", "sigmoid",
    "tanh", "leaky_relu" or None; `output_activation` likewise (e.g. "sigmoid" for the
    squared-error variant). `rng` (seed or Generator) makes the initial weights reproducible.

    With a ReLU-family activation the weights start with He (Kaiming) initialisation, whose
    variance 2/fan_in keeps the signal from halving at every ReLU; otherwise Linear's default.
    (Measured on MNIST, 784-128-10, 10 epochs, SGD 0.1: 97.6% instead of 97.4% test accuracy.)
    """

    def __init__(
        self,
        in_features: int,
        hidden_sizes: Sequence[int],
        out_features: int | None = None,
        activation: str | None = "relu",
        output_activation: str | None = None,
        dtype: Any = np.float32,
        rng: Any = None,
    ) -> None:
        for name, value in (("activation", activation), ("output_activation", output_activation)):
            if value is not None and value not in _ACTIVATIONS:
                raise ValueError(
                    f"MLP: unknown {name} {value!r}; choose from {sorted(_ACTIVATIONS)} or None"
                )
        if isinstance(hidden_sizes, int):
            hidden_sizes = [hidden_sizes]
        if out_features is None:
            # micrograd's MLP(2, [16, 16, 1]): the list's last size is the output layer's.
            if not hidden_sizes:
                raise TypeError(
                    "MLP: give out_features, or sizes ending with the output's, "
                    "as micrograd's MLP(2, [16, 16, 1])"
                )
            *hidden_sizes, out_features = hidden_sizes
        generator = init._generator(rng)
        sizes = [in_features, *hidden_sizes, out_features]
        layers: list[Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            linear = Linear(n_in, n_out, dtype=dtype, rng=generator)
            if activation in ("relu", "leaky_relu"):
                init.kaiming_uniform_(linear.weight, nonlinearity=activation, rng=generator)
            layers.append(linear)
            last = i == len(sizes) - 2
            act = output_activation if last else activation
            if act is not None:
                layers.append(_ACTIVATIONS[act]())
        super().__init__(*layers)
        self.sizes = sizes

    def extra_repr(self) -> str:
        return " -> ".join(str(s) for s in self.sizes)
