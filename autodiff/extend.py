"""The surface for libraries built on autodiff: what `nn` needs from the engine, and all of it.

    apply(op, *inputs, **params)   run a primitive (a row of `autodiff.rules`) on tensors:
                                   recorded for backward, carried by forward mode
    Tensor.raw()                   a tensor's own array (no copy, no tracking)
    mark_written(*tensors)         after writing into `t.raw()` in place: graphs that
                                   saved the old numbers are refused at backward
    enter_scope(m) / exit_scope(s) tag the tensors created inside a module call with the
                                   module (drawings group them by module)
    recorded(root)                 the recorded tensors root depends on, inputs first
    rule_of(t)                     the row that computed t (None for a leaf); with
                                   `t.op_params`, what an exporter translates, node by node
    scope_of(t)                    the module calls t was created inside, outermost first

With these a layer is `apply(rules.linear, x, weight, bias)`, an optimizer step writes into
`p.raw()` under `no_grad()` and calls `mark_written(*params)` once, and a module call is
`s = enter_scope(self); try: forward(...) finally: exit_scope(s)`. The rows themselves
(`autodiff.rules.OPS`, `register`) are public too: a library may add its own primitives.
"""

from __future__ import annotations

from typing import Any

from .engine import Node, enter_scope, exit_scope, mark_tensors_written, toposort
from .rules import OPS, Op, register
from .rules import call as apply

__all__ = [
    "OPS",
    "Op",
    "apply",
    "enter_scope",
    "exit_scope",
    "mark_written",
    "recorded",
    "register",
    "rule_of",
    "scope_of",
]


def mark_written(*tensors: Node) -> None:
    """Record that the numbers of `tensors` were changed in place (through `t.raw()`), under
    one tick: backward then refuses every graph recorded before that saved them, instead of
    computing a gradient from numbers that are gone."""
    mark_tensors_written(tensors)


def recorded(root: Node) -> list[Node]:
    """Every tensor `root` was computed from (itself included), each after its inputs: the
    graph an exporter walks. Leaves and constants are in it too (their `rule_of` is None)."""
    return toposort(root)


def rule_of(t: Node) -> Op | None:
    """The row of the table (or a custom op's row) that computed `t`; None for a leaf."""
    return t._op


def scope_of(t: Node) -> tuple[Any, ...]:
    """The modules whose calls were running when `t` was created, outermost first (empty
    outside any module): how a drawing or an exporter names where an op ran."""
    return t._scope or ()
