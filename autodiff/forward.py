"""Forward mode: Jacobian-vector products in one pass that carries a tangent beside each value.

    y, dy = autodiff.jvp(f, (x,), (v,))     # y = f(x), dy = J_f(x) @ v

Reverse mode asks "how does the output change with each input?" and answers for all inputs at
once, in a backward pass over a recorded graph. Forward mode asks "how does everything change
when the inputs move along v?" and answers while the values are computed: every op's output
gets a tangent from its inputs' tangents by the op's JVP rule (in `autodiff/rules/`, beside its VJP
rules). Nothing is recorded for it and nothing is kept once a value is no longer needed.

There is no second engine. `engine.apply`, which runs every op, checks one per-thread switch
(`state.forward`); when `jvp` has turned it on, apply calls `carry_tangents` below. A tangent
is stored per *level* (one level per active `jvp` call, so `jvp` inside `jvp` keeps its
perturbations apart), keyed by the tensor's identity and dropped when the tensor dies.

Tangents are numpy arrays on the fast path. They become Tensors, whose arithmetic is itself
recorded, when something must differentiate them again: reverse mode through `jvp` (the
tangent depends on inputs that require grad) or an enclosing `jvp` (nested levels). That is
what makes forward-over-reverse and reverse-over-forward compose (Hessian-vector products).
"""

from __future__ import annotations

import importlib
import numbers
import weakref
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from . import engine, rules
from .tensor import Tensor

__all__ = ["jvp", "tangent_of"]


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


def carry_tangents(op: rules.Op, parents: tuple[Tensor, ...], out: Tensor, params: dict) -> None:
    """Called by `engine.apply` in forward mode: the output's tangent at every active level.

    `params` are the op's parameters (an untracked output does not keep them)."""
    st = engine.state
    levels = st.forward
    if np.result_type(out._data).kind != "f":
        return  # integer and boolean results are constants
    for depth, level in enumerate(levels):
        tangents = [level.get(p) for p in parents]
        if all(t is None for t in tangents):
            continue
        if op.jvps is None:
            raise NotImplementedError(
                f"{op.name}: this op has no JVP rule, so forward mode cannot go through it "
                f"(input shapes {engine._shapes([p._data for p in parents])})"
            )
        # The rule's own ops carry the tangents of the enclosing levels only: a tangent is a
        # value to them, which they may perturb, but this level's perturbation is the tangent.
        st.forward = levels[:depth]
        try:
            # A rule at a point where the derivative is infinite or undefined (sqrt at 0)
            # answers inf or NaN quietly, as the forwards and the backward pass do.
            with np.errstate(divide="ignore", invalid="ignore"):
                tangent = _push(op, parents, out, params, tangents, depth)
        finally:
            st.forward = levels
        level.set(out, tangent)
        if level.observer is not None:
            level.observer(op, parents, out, params, tangents, tangent)


def _push(
    op: rules.Op, parents: tuple[Tensor, ...], out: Tensor, params: dict, tangents: list, depth: int
) -> Any:
    # On Tensors (recorded) when the result must be differentiated again; on arrays otherwise.
    symbolic = depth > 0 or (
        engine.state.grad_enabled
        and (out.requires_grad or any(isinstance(t, Tensor) and t.requires_grad for t in tangents))
    )
    if symbolic:
        args: Any = parents
        result: Any = out
        ts = [t if t is None or isinstance(t, Tensor) else engine.constant(t) for t in tangents]
    else:
        args = [p._data for p in parents]
        result = out._data
        ts = [t._data if isinstance(t, Tensor) else t for t in tangents]
    if op.variadic:
        zeros = [np.zeros_like(p._data) for p in parents]
        filled = [z if t is None else t for t, z in zip(ts, zeros, strict=True)]
        total = op.jvps[0](filled, result, *args, **params)
    else:
        total = None
        # zip stops at the shorter: linear's bias rule goes unused when there is no bias.
        for rule, t in zip(op.jvps, ts, strict=False):
            if t is not None:
                part = rule(t, result, *args, **params)
                total = part if total is None else total + part
    return _fit(total, out._data)


def _fit(tangent: Any, like: Any) -> Any:
    """A tangent in its output's shape and dtype: the forward counterpart of unbroadcast."""
    shape, dtype = np.shape(like), np.result_type(like)
    if isinstance(tangent, Tensor):
        if tangent.shape != shape:
            tangent = engine.apply(rules.broadcast_to, (tangent,), shape=shape)
        return tangent if tangent.dtype == dtype else tangent.astype(dtype)
    if np.shape(tangent) != shape:
        tangent = np.broadcast_to(tangent, shape)
    if np.result_type(tangent) != dtype:
        tangent = np.asarray(tangent).astype(dtype)
    return tangent


engine.carry_tangents = carry_tangents


def write_tangents(target: Tensor, index: Any, value: Any) -> None:
    """Called by `Tensor.__setitem__` in forward mode: `target[index] = value` writes the
    value's tangent into the target's tangent the same way (setitem is linear in both)."""
    st = engine.state
    levels = st.forward
    for depth, level in enumerate(levels):
        old = level.get(target)
        new = level.get(value) if isinstance(value, Tensor) else None
        if old is None and new is None:
            continue
        dtype = np.result_type(target._data)
        old = np.zeros(np.shape(target._data), dtype) if old is None else old
        if new is None:  # a constant written in (a Tensor without tangent, or a number)
            new = np.zeros(np.shape(value._data if isinstance(value, Tensor) else value), dtype)
        if isinstance(old, Tensor) or isinstance(new, Tensor):
            st.forward = levels[:depth]
            try:
                lifted = [t if isinstance(t, Tensor) else engine.constant(t) for t in (old, new)]
                tangent = engine.apply(rules.setitem, tuple(lifted), index=index)
            finally:
                st.forward = levels
        else:
            tangent = rules.setitem.forward(old, np.asarray(new, dtype), index=index)
        level.set(target, tangent)


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
        value = t if t.dtype == x.dtype else t.astype(x.dtype)
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


def check_outputs(result: Any, who: str, several: bool = True) -> bool:
    """Whether f returned several outputs (a tuple or list), after checking each is a Tensor,
    a number or an array (a constant). Anything else (a dict, a nested tuple, None) is refused
    by name: taken as a constant, its derivative would silently be zero."""
    items = result if several and isinstance(result, tuple | list) else (result,)
    for item in items:
        if (
            not isinstance(item, Tensor | numbers.Number | np.ndarray | np.number | np.bool_)
            or isinstance(item, np.ndarray)
            and item.dtype.kind not in "biuf"
        ):
            what = "one Tensor" if not several else "a Tensor or a flat tuple or list of Tensors"
            raise TypeError(f"{who}: f must return {what}, got {_describe(result)}")
    return items is result


def _describe(value: Any) -> str:
    if isinstance(value, tuple | list):
        inner = ", ".join(type(v).__name__ for v in value[:4])
        return f"a {type(value).__name__} of ({inner}{', ...' if len(value) > 4 else ''})"
    return "None" if value is None else f"a {type(value).__name__}"


def same_kind(like: tuple | list, items: Any) -> tuple | list:
    """`items` in the container type of f's result: a tuple, a list or a namedtuple (whose
    constructor takes the fields one by one, not an iterable)."""
    items = list(items)
    return type(like)(*items) if hasattr(like, "_fields") else type(like)(items)


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


def jvp(f: Callable[..., Any], primals: Any, tangents: Any) -> tuple[Any, Any]:
    """f's outputs and their tangents J_f(primals) @ tangents, in one forward pass.

    `primals` and `tangents` are tuples (or a single value each) of Tensors, arrays or
    numbers, with matching shapes; f takes one Tensor per primal and returns a Tensor or a
    tuple of Tensors. Returns (outputs, output_tangents) with the same structure as f's result.
    Works inside `grad` (forward over reverse) and under `grad` (reverse over forward).
    """
    primals, tangents = _as_tuple(primals), _as_tuple(tangents)
    if engine.interpreting:  # inside vmap: the jvp of the batched computation (vmap.py)
        vmap = importlib.import_module(".vmap", __package__)
        if (batched := vmap.lowering_level()) is not None:
            out, tangent = vmap.jvp(batched, f, primals, tangents)
            return out, tangent
    level, inputs, saved = enter(primals, tangents, "jvp")
    try:
        outputs = f(*inputs)
    finally:
        leave(saved)
    if check_outputs(outputs, "jvp"):
        return outputs, same_kind(outputs, (output_tangent(o, level) for o in outputs))
    return outputs, output_tangent(outputs, level)
