"""A computation graph as plain data: what `viz` draws, and what tests can inspect.

`trace(root)` walks the graph once (through `engine.toposort`) and returns tensor nodes, op
nodes and edges in argument order. It imports no drawing library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import engine
from .tensor import Tensor


@dataclass
class TensorNode:
    id: int
    label: str
    shape: tuple[int, ...]
    dtype: str
    value: str
    grad: str | None
    kind: str  # "param" (leaf requiring grad), "constant", "intermediate" or "output"
    scope: tuple[Any, ...] = ()


@dataclass
class OpNode:
    id: str
    op: str
    params: str
    output: int
    scope: tuple[Any, ...] = ()


@dataclass
class Graph:
    tensors: dict[int, TensorNode] = field(default_factory=dict)
    ops: dict[str, OpNode] = field(default_factory=dict)
    # (source, target, argument index or None): tensor -> op ("t123" -> "op123") and op -> tensor
    edges: list[tuple[str, str, int | None]] = field(default_factory=list)
    order: list[int] = field(default_factory=list)  # tensor ids, parents before children
    modules: dict[int, str] = field(default_factory=dict)  # id(module) -> label


def summarize(value: Any) -> str:
    """A number for scalars; shape and min/mean/max for arrays (a drawing stays readable)."""
    array = np.asarray(value)
    if array.size == 1:
        number = array.reshape(()).item()
        return f"{number:.4g}" if isinstance(number, float) else str(number)
    if array.size == 0:
        return "empty"
    if array.dtype.kind == "b":
        return f"{int(array.sum())} of {array.size} true"
    return f"min {array.min():.3g} mean {array.mean():.3g} max {array.max():.3g}"


def _format_params(params: dict[str, Any]) -> str:
    parts = []
    for key, value in params.items():
        if key in ("cond", "labels", "index") and isinstance(value, np.ndarray | tuple):
            shown = f"array{np.shape(value)}" if isinstance(value, np.ndarray) else "..."
        elif isinstance(value, np.dtype):
            shown = str(value)
        else:
            shown = repr(value)
        if value is None or key == "saved" or (key == "keepdims" and value is False):
            continue
        parts.append(f"{key}={shown}")
    return ", ".join(parts)


def module_label(module: Any, name: str | None = None) -> str:
    """`Linear(784 -> 128)` from a module's own label or repr, with its name in the model."""
    if hasattr(module, "label") and callable(module.label):
        text = module.label()
    else:
        text = repr(module).split("\n")[0].split("  ")[0]
    return f"{name}: {text}" if name else text


def trace(root: Tensor, names: dict[int, str] | None = None, model: Any = None) -> Graph:
    """Tensors and ops that `root` depends on, with labels, values, gradients and scopes.

    `names` maps id(tensor) -> label; `model` (an nn.Module) adds its parameter names and
    the names of its sub-modules for clusters.
    """
    names = dict(names or {})
    module_names: dict[int, str] = {}
    if model is not None:
        for name, p in model.named_parameters():
            names.setdefault(id(p), name)
        for name, m in model.named_modules():
            module_names[id(m)] = name
    graph = Graph()
    computed = engine.toposort(root) if root.requires_grad else [root]
    # toposort holds tensors that require grad; their constant parents are drawn too.
    ordered: list[Tensor] = []
    seen: set[int] = set()
    for t in computed:
        for p in t._parents:
            if id(p) not in seen:
                seen.add(id(p))
                ordered.append(p)
        if id(t) not in seen:
            seen.add(id(t))
            ordered.append(t)
    for t in ordered:
        scope = tuple(t._scope or ())
        for m in scope:
            graph.modules.setdefault(id(m), module_label(m, module_names.get(id(m))))
        if t is root:
            kind = "output"
        elif t._op is not None:
            kind = "intermediate"
        elif t.requires_grad:
            kind = "param"
        else:
            kind = "constant"
        grad = t._grad
        graph.tensors[id(t)] = TensorNode(
            id=id(t),
            label=t.name or names.get(id(t), ""),
            shape=tuple(np.shape(t.data)),
            dtype=str(t.dtype),
            value=summarize(t.data),
            grad=None if grad is None else summarize(getattr(grad, "data", grad)),
            kind=kind,
            scope=scope,
        )
        graph.order.append(id(t))
        if t._op is not None:
            op_id = f"op{id(t)}"
            graph.ops[op_id] = OpNode(op_id, t._op.name, _format_params(t._params), id(t), scope)
            for index, parent in enumerate(t._parents):
                graph.edges.append((f"t{id(parent)}", op_id, index))
            graph.edges.append((op_id, f"t{id(t)}", None))
    return graph
