"""Weight initialisers. Each fills a tensor's values in place and returns it.

`rng` is None (autodiff's default generator, which autodiff.manual_seed seeds), an int seed,
or a numpy Generator: pass the same seed or Generator to get the same weights, run after run.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from autodiff import Tensor
from autodiff.creation import as_generator
from autodiff.extend import mark_written

_GAINS = {
    "linear": 1.0,
    "sigmoid": 1.0,
    "tanh": 5.0 / 3.0,
    "relu": math.sqrt(2.0),
}


_generator = as_generator  # one place turns a seed or a Generator into a Generator


def gain(nonlinearity: str = "linear", negative_slope: float = 0.01) -> float:
    """The factor that keeps activations' variance steady through a layer with this activation."""
    if nonlinearity == "leaky_relu":
        return math.sqrt(2.0 / (1 + negative_slope**2))
    if nonlinearity not in _GAINS:
        raise ValueError(
            f"gain: unknown nonlinearity {nonlinearity!r}; "
            f"choose from {sorted(_GAINS) + ['leaky_relu']}"
        )
    return _GAINS[nonlinearity]


def _fill(t: Tensor, values: np.ndarray) -> Tensor:
    values = values.astype(t.dtype, copy=False)
    if isinstance(t.raw(), np.ndarray):
        t.raw()[...] = values
        mark_written(t)
    else:
        t.data = values[()]  # a 0-d tensor holds a numpy scalar: new numbers (and recorded)
    return t


def _fans(t: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight stored (out_features, in_features), as in Linear."""
    if t.ndim < 2:
        raise ValueError(f"init: fan in/out need a weight with at least 2 axes, got {t.shape}")
    receptive = int(np.prod(t.shape[2:])) if t.ndim > 2 else 1
    return t.shape[1] * receptive, t.shape[0] * receptive


def uniform_(t: Tensor, a: float = 0.0, b: float = 1.0, rng: Any = None) -> Tensor:
    return _fill(t, _generator(rng).uniform(a, b, size=t.shape))


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0, rng: Any = None) -> Tensor:
    return _fill(t, _generator(rng).normal(mean, std, size=t.shape))


def constant_(t: Tensor, value: float) -> Tensor:
    return _fill(t, np.full(t.shape, value))


def zeros_(t: Tensor) -> Tensor:
    return constant_(t, 0.0)


def ones_(t: Tensor) -> Tensor:
    return constant_(t, 1.0)


def xavier_uniform_(t: Tensor, gain: float = 1.0, rng: Any = None) -> Tensor:
    """Glorot & Bengio (2010): keeps variance equal forwards and backwards."""
    fan_in, fan_out = _fans(t)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -bound, bound, rng)


def xavier_normal_(t: Tensor, gain: float = 1.0, rng: Any = None) -> Tensor:
    fan_in, fan_out = _fans(t)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), rng)


def _kaiming_std(
    t: Tensor, nonlinearity: str | None, negative_slope: float, a: float | None, mode: str, who: str
) -> float:
    """gain / sqrt(fan). PyTorch's spellings too: `a` is its name for the negative slope and,
    given without a nonlinearity, means leaky_relu as there (`kaiming_uniform_(w,
    a=math.sqrt(5))`, PyTorch's own Linear init); `mode="fan_out"` keeps the backward pass's
    variance instead of the forward's."""
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"{who}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    if a is not None:
        negative_slope = a
        nonlinearity = nonlinearity or "leaky_relu"
    fan_in, fan_out = _fans(t)
    return gain(nonlinearity or "relu", negative_slope) / math.sqrt(
        fan_in if mode == "fan_in" else fan_out
    )


def kaiming_uniform_(
    t: Tensor,
    nonlinearity: str | None = None,
    negative_slope: float = 0.01,
    rng: Any = None,
    *,
    a: float | None = None,
    mode: str = "fan_in",
) -> Tensor:
    """He et al. (2015): variance 2 / fan_in keeps ReLU activations from shrinking
    (nonlinearity "relu" unless given, or `a` is)."""
    bound = math.sqrt(3.0) * _kaiming_std(
        t, nonlinearity, negative_slope, a, mode, "kaiming_uniform_"
    )
    return uniform_(t, -bound, bound, rng)


def kaiming_normal_(
    t: Tensor,
    nonlinearity: str | None = None,
    negative_slope: float = 0.01,
    rng: Any = None,
    *,
    a: float | None = None,
    mode: str = "fan_in",
) -> Tensor:
    return normal_(
        t, 0.0, _kaiming_std(t, nonlinearity, negative_slope, a, mode, "kaiming_normal_"), rng
    )
