"""`explain_forward`: forward mode as a table, the counterpart of `viz.explain_backward`.

Forward mode is usually taught as two traces side by side (the "evaluation trace" and the
"tangent trace"): each intermediate v_i = op(inputs) gets its value and its tangent dv_i, the
sum over its inputs of (local derivative) x (input's tangent). This prints exactly that, from
a real `jvp` pass over your function.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from . import forward
from .graph import summarize
from .tensor import Tensor

__all__ = ["explain_forward", "forward_steps"]


def _number(value: Any) -> Any:
    # A copy: the row must show the value at its step, even if f later writes into the tensor.
    array = np.array(value._data if isinstance(value, Tensor) else value)
    return array.reshape(()).item() if array.size == 1 else array


def _fmt(value: Any) -> str:
    if value is None:
        return "(jvp)"
    if np.ndim(value) == 0:
        return f"{float(value):.6g}"
    return summarize(value)


def _input_names(f: Callable, count: int) -> list[str]:
    try:
        params = [
            p.name
            for p in inspect.signature(f).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    return params[:count] + [f"x{i}" for i in range(len(params), count)]


def forward_steps(f: Callable[..., Any], primals: Any, tangents: Any) -> list[dict[str, Any]]:
    """The forward pass of `jvp(f, primals, tangents)` as rows, one per op, in execution order.

    Each row: step, node (v1, v2, ... or the input's name), op, inputs (their labels), value,
    tangent (the node's tangent), and per input: its tangent, the local derivative (for
    scalars; None where it is a matrix) and its contribution (local x tangent, summed into
    the node's tangent). Inputs come first, as rows with op "input".
    """
    primals = primals if isinstance(primals, tuple) else (primals,)
    tangents = tangents if isinstance(tangents, tuple) else (tangents,)
    level, inputs, saved = forward.enter(primals, tangents, "explain_forward")
    labels: dict[int, str] = {}
    keep: list[Tensor] = []  # labels are keyed by id: keep every labelled tensor alive
    rows: list[dict[str, Any]] = []
    for name, x in zip(_input_names(f, len(inputs)), inputs, strict=True):
        labels[id(x)] = name
        keep.append(x)
        rows.append(
            {
                "step": 0,
                "node": name,
                "op": "input",
                "inputs": [],
                "value": _number(x),
                "tangent": _number(level.get(x)),
                "parts": [],
            }
        )

    def observe(
        op: Any, parents: tuple, out: Tensor, params: dict, tangents_in: list, tangent: Any
    ) -> None:
        step = len([r for r in rows if r["step"]]) + 1
        labels[id(out)] = f"v{step}"
        keep.append(out)
        parts = []
        rules = op.jvps
        data = [q._data for q in parents]

        def push(tangent: Any, i: int) -> Any:
            # Quietly, as forward mode itself: sqrt'(0) is inf, not a RuntimeWarning.
            with np.errstate(divide="ignore", invalid="ignore"):
                if op.variadic:
                    zeros = [np.zeros_like(d) for d in data]
                    zeros[i] = tangent
                    return rules[0](zeros, out._data, *data, **params)
                return rules[i](tangent, out._data, *data, **params)

        for i, (p, t) in enumerate(zip(parents, tangents_in, strict=True)):
            if t is None:
                continue
            t_data = t._data if isinstance(t, Tensor) else t
            contribution = push(t_data, i)
            t_num, c_num = _number(t_data), _number(contribution)
            scalar = np.ndim(t_num) == 0 and np.ndim(c_num) == 0
            # A JVP rule is linear in the tangent: pushing 1 through it gives the derivative.
            local = _number(push(np.ones_like(t_data), i)) if scalar else None
            parts.append(
                {
                    "input": labels.get(id(p), "const"),
                    "tangent": t_num,
                    "local": local,
                    "contribution": c_num,
                }
            )
        rows.append(
            {
                "step": step,
                "node": f"v{step}",
                "op": op.name,
                "inputs": [labels.get(id(p), _fmt(_number(p))) for p in parents],
                "value": _number(out),
                "tangent": _number(tangent),
                "parts": parts,
            }
        )

    level.observer = observe
    try:
        f(*inputs)
    finally:
        forward.leave(saved)
    return rows


def explain_forward(
    f: Callable[..., Any], primals: Any, tangents: Any, *, print_rows: bool = True
) -> list[dict[str, Any]]:
    """Print (and return) each step of forward mode on f: the node, its value, and its tangent
    as the sum of (local derivative x input tangent) over the inputs that carry a tangent.

        explain_forward(lambda a, b: a * b + b.tanh(), (2.0, 0.5), (1.0, 0.0))

    Compare `explain_backward`, which walks the same chain rule from the output back.
    """
    rows = forward_steps(f, primals, tangents)
    if print_rows:
        header = f"{'node':<5} {'op':<26} {'value':>12} {'tangent':>12}  = sum of local x tangent"
        print(header)
        print("-" * len(header))
        for r in rows:
            call = "input" if r["op"] == "input" else f"{r['op']}({', '.join(r['inputs'])})"
            terms = " + ".join(
                f"{_fmt(p['local'])} x d{p['input']}"
                if p["local"] is not None
                else f"jvp(d{p['input']})"
                for p in r["parts"]
            )
            print(
                f"{r['node']:<5} {call:<26} {_fmt(r['value']):>12} {_fmt(r['tangent']):>12}"
                + (f"  = {terms}" if terms else "")
            )
    return rows
