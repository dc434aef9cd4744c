"""The surface for libraries built on autodiff: what `nn` needs from the engine, and all of it.

    apply(op, *inputs, **params)   run a primitive (a row of `autodiff.rules`) on tensors:
                                   recorded for backward, carried by forward mode
    Tensor.raw()                   a tensor's own array (no copy, no tracking)
    mark_written(*tensors)         after writing into `t.raw()` in place: graphs that
                                   saved the old numbers are refused at backward
    enter_scope(m) / exit_scope(s) tag the tensors created inside a module call with the
                                   module (drawings group them by module)

With these a layer is `apply(rules.linear, x, weight, bias)`, an optimizer step writes into
`p.raw()` under `no_grad()` and calls `mark_written(*params)` once, and a module call is
`s = enter_scope(self); try: forward(...) finally: exit_scope(s)`. The rows themselves
(`autodiff.rules.OPS`, `register`) are public too: a library may add its own primitives.
"""

from __future__ import annotations

from .engine import Node, enter_scope, exit_scope, mark_tensors_written
from .rules import OPS, Op, register
from .rules import call as apply

__all__ = ["OPS", "Op", "apply", "enter_scope", "exit_scope", "mark_written", "register"]


def mark_written(*tensors: Node) -> None:
    """Record that the numbers of `tensors` were changed in place (through `t.raw()`), under
    one tick: backward then refuses every graph recorded before that saved them, instead of
    computing a gradient from numbers that are gone."""
    mark_tensors_written(tensors)
