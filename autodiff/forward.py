"""Forward mode: Jacobian-vector products in one pass that carries a tangent beside each value.

    y, dy = autodiff.jvp(f, (x,), (v,))     # y = f(x), dy = J_f(x) @ v  (autodiff/func.py)

Reverse mode asks "how does the output change with each input?" and answers for all inputs at
once, in a backward pass over a recorded graph. Forward mode asks "how does everything change
when the inputs move along v?" and answers while the values are computed: every op's output
gets a tangent from its inputs' tangents by the op's JVP rule (in `autodiff/rules/`, beside its VJP
rules). Nothing is recorded for it and nothing is kept once a value is no longer needed.

There is no second engine. `engine.apply`, which runs every op, checks one per-thread switch
(`state.forward`); when `jvp` has turned it on, apply calls `engine.carry_tangents`. A tangent
is stored per *level* (one level per active `jvp` call, so `jvp` inside `jvp` keeps its
perturbations apart), keyed by the tensor's identity and dropped when the tensor dies.

Tangents are numpy arrays on the fast path. They become Tensors, whose arithmetic is itself
recorded, when something must differentiate them again: reverse mode through `jvp` (the
tangent depends on inputs that require grad) or an enclosing `jvp` (nested levels). That is
what makes forward-over-reverse and reverse-over-forward compose (Hessian-vector products).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from . import engine, rules
from . import tensor as tensor_module
from .tensor import Tensor

__all__ = ["tangent_of"]


class Level:
    """The tangents of one `jvp` call: tensor identity -> tangent (array or Tensor)."""

    __slots__ = ("tangents", "_refs", "observer", "__weakref__")

    def __init__(self) -> None:
        self.tangents: dict[int, Any] = {}
        self._refs: dict[int, weakref.ref] = {}
        # observer(op, parents, out, params, tangents_in, tangent_out), for explain_forward.
        self.observer: Callable | None = None

    def get(self, t: Tensor) -> Any:
        return self.tangents.get(id(t))

    def set(self, t: Tensor, tangent: Any) -> None:
        key = id(t)
        if key not in self._refs:
            # When the tensor dies its id may be reused by a new tensor: forget it first.
            self._refs[key] = weakref.ref(t, partial(_forget, weakref.ref(self), key))
        self.tangents[key] = tangent


def _forget(level_ref: weakref.ref, key: int, _dead: Any) -> None:
    level = level_ref()
    if level is not None:
        level.tangents.pop(key, None)
        level._refs.pop(key, None)


def tangent_of(t: Tensor) -> Any:
    """The tangent of `t` in the innermost active `jvp` (None outside, or if it has none)."""
    levels = engine.state.forward
    return levels[-1].get(t) if levels else None


def copy_tangents(source: Tensor, target: Tensor) -> None:
    """Give `target` the tangents `source` has at every active level (for fresh leaves)."""
    for level in engine.state.forward:
        tangent = level.get(source)
        if tangent is not None:
            level.set(target, tangent)


# carry_tangents, the step `engine.apply` takes for every op inside `jvp`, is the engine's
# (it reads only the op's row); `Tensor.__setitem__` writes tangents itself (tensor.py).
carry_tangents = engine.carry_tangents
write_tangents = tensor_module.write_tangents


# --- the user-facing transform ----------------------------------------------------------------


def _as_tuple(x: Any) -> tuple:
    return x if isinstance(x, tuple) else (x,)  # a list is one primal (a vector), as in numpy


def enter(
    primals: Sequence[Any], tangents: Sequence[Any], who: str
) -> tuple[Level, list[Tensor], tuple]:
    """Start a level: fresh input nodes carrying the given tangents. Returns the level, the
    inputs to call f with, and the state to restore with `leave`."""
    if len(primals) != len(tangents):
        raise ValueError(f"{who}: {len(primals)} primals but {len(tangents)} tangents")
    inputs = [_fresh_input(p, i, who) for i, p in enumerate(primals)]
    level = Level()
    for i, (x, t) in enumerate(zip(inputs, tangents, strict=True)):
        level.set(x, _tangent_for(x, t, i, who))
    saved = engine.state.forward
    engine.state.forward = saved + (level,)
    return level, inputs, saved


def leave(saved: tuple) -> None:
    engine.state.forward = saved


def _fresh_input(p: Any, i: int, who: str) -> Tensor:
    if isinstance(p, Tensor):
        if p.dtype.kind != "f":
            raise TypeError(f"{who}: primal {i} has dtype {p.dtype}; forward mode needs floats")
        if p.requires_grad or any(level.get(p) is not None for level in engine.state.forward):
            # A new node, connected to p (so outer transforms see through it) but distinct
            # from p, so this level's tangent cannot leak to other uses of p in a closure.
            return engine.apply(rules.reshape, (p,), shape=p.shape)
        return engine.constant(p._data)
    try:
        t = Tensor(p)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{who}: primal {i} is not a number, array or Tensor: {exc}") from None
    if t.dtype.kind != "f":
        raise TypeError(f"{who}: primal {i} has dtype {t.dtype}; forward mode needs floats")
    return t


def _tangent_for(x: Tensor, t: Any, i: int, who: str) -> Any:
    if isinstance(t, Tensor):
        value: Any = t if t.dtype == x.dtype else t.astype(x.dtype)
    else:
        # A copy, as Tensor(x) copies the primal: a tangent that comes out as a view of this
        # one (f = reshape) may be written into by the caller, never into their array.
        value = np.array(t, dtype=x.dtype)
        value = value[()] if value.ndim == 0 else value
    if np.shape(value) != x.shape:
        raise ValueError(
            f"{who}: tangent {i} has shape {np.shape(value)} but primal {i} has shape {x.shape}"
        )
    return value


def _describe(value: Any) -> str:
    if isinstance(value, tuple | list):
        inner = ", ".join(type(v).__name__ for v in value[:4])
        return f"a {type(value).__name__} of ({inner}{', ...' if len(value) > 4 else ''})"
    return "None" if value is None else f"a {type(value).__name__}"


def output_tangent(out: Any, level: Level) -> Any:
    """The tangent of one output of f at `level` (zeros for outputs not depending on inputs)."""
    if not isinstance(out, Tensor):
        return np.zeros_like(np.asarray(out, dtype=np.float64))
    t = level.get(out)
    if t is None:
        return engine.constant(np.zeros_like(out._data))
    if isinstance(t, Tensor):
        return t
    if isinstance(t, np.ndarray) and not t.flags.writeable:
        t = np.array(t)  # a broadcast view: give the caller an array of its own
    return engine.constant(t)
