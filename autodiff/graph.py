"""A computation graph as plain data: what `viz` draws, and what tests can inspect.

`trace(root)` walks the graph once (through `engine.toposort`) and returns one node per
tensor, one op node per computed tensor, the edges in argument order, and one cluster per
module call. It imports no drawing library, so it works without graphviz.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, cast

import numpy as np

from . import engine
from .composites import op_name
from .tensor import Tensor

# What a tensor is, for colours and legends.
KINDS = ("leaf_param", "constant", "intermediate", "output")


@dataclass
class TensorNode:
    id: str  # "t<id(tensor)>", see node_id
    name: str | None  # the tensor's own name, else its parameter name in the model
    label: str  # the name, else a generated one ("mul1", "const2"): what tables print
    shape: tuple[int, ...]
    dtype: str
    value: str  # summarize(data)
    grad: str | None  # summarize(.grad), None until a backward pass has set it
    kind: str  # one of KINDS
    cluster: str | None = None  # id of the innermost module call it belongs to
    scope: tuple[str, ...] = ()  # labels of the module calls around it, outermost first


@dataclass
class OpNode:
    id: str  # "op<id(output tensor)>"
    op: str  # the op's name: "add", "matmul", "linear", ..., or a composite's ("softmax")
    params: dict[str, str]  # its non-tensor parameters, formatted ("axis": "1")
    output: str  # id of the tensor it computes
    cluster: str | None = None
    primitive: str = ""  # the engine's op, when `op` names a composite ("exp" for "softmax")

    @property
    def params_text(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.params.items())


class Edge(NamedTuple):
    source: str
    target: str
    # The field shadows tuple.index(), which mypy cannot accept; renaming it would break users.
    index: int | None  # type: ignore[assignment]  # argument position for tensor -> op; None for op -> its output


@dataclass
class Cluster:
    """One call of an nn.Module (a module called twice gives two clusters)."""

    id: str
    label: str  # "layers.0: Linear(784 -> 128)"
    module: Any
    parent: str | None  # the enclosing call's cluster id
    depth: int


@dataclass
class Graph:
    root: str
    tensors: dict[str, TensorNode] = field(default_factory=dict)  # parents before children
    ops: dict[str, OpNode] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    clusters: dict[str, Cluster] = field(default_factory=dict)
    _inputs: dict[str, list[str]] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.tensors) + len(self.ops)

    def inputs(self, op_id: str) -> list[str]:
        """The tensors an op reads, in argument order."""
        if not self._inputs:  # built once: drawings ask for every op
            for e in self.edges:  # edges are stored in argument order
                if e.index is not None:
                    self._inputs.setdefault(e.target, []).append(e.source)
        return self._inputs.get(op_id, [])


def node_id(t: engine.Node) -> str:
    return f"t{id(t)}"


def summarize(value: Any) -> str:
    """The number for scalars, the values for tiny arrays, else min/mean/max."""
    array = np.asarray(getattr(value, "data", value))
    if array.size == 1:
        return _number(array.reshape(()).item())
    if array.size == 0:
        return "empty"
    if array.dtype.kind == "b":
        return f"{int(array.sum())} of {array.size} true"
    if array.size <= 4 and array.ndim == 1:
        return "[" + ", ".join(_number(v) for v in array.tolist()) + "]"
    low, high = array.min(), array.max()
    if low == high:
        return f"all {_number(low.item())}"
    return f"min {low:.3g} mean {array.mean():.3g} max {high:.3g}"


def _number(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _format_params(params: Mapping[str, Any]) -> dict[str, str]:
    shown = {}
    for key, value in params.items():
        # `saved` is a forward intermediate, not a parameter; defaults are noise in a drawing.
        if key == "saved" or value is None or (key == "keepdims" and value is False):
            continue
        if isinstance(value, np.ndarray):
            shown[key] = f"{value.dtype}{list(value.shape)}"  # masks, labels: too big to show
        elif key == "index":
            shown[key] = _format_index(value)
        else:
            shown[key] = str(value)
    return shown


def _format_index(index: Any) -> str:
    def part(p: Any) -> str:
        if isinstance(p, slice):
            text = f"{'' if p.start is None else p.start}:{'' if p.stop is None else p.stop}"
            return text + (f":{p.step}" if p.step is not None else "")
        if p is Ellipsis:
            return "..."
        if isinstance(p, np.ndarray):
            return f"{p.dtype}{list(p.shape)}"
        return str(p)

    parts = index if isinstance(index, tuple) else (index,)
    return "[" + ", ".join(part(p) for p in parts) + "]"


def module_label(module: Any) -> str:
    """A short label for a module: `Linear(784 -> 128)`, `MLP(2 -> 16 -> 1)`, `ReLU`."""
    kind = type(module).__name__
    n_in = getattr(module, "in_features", None)
    n_out = getattr(module, "out_features", None)
    if n_in is not None and n_out is not None:
        return f"{kind}({n_in} -> {n_out})"
    extra_repr = getattr(module, "extra_repr", None)
    extra = extra_repr() if callable(extra_repr) else ""
    return f"{kind}({extra})" if extra else kind


def parameter_names(model: Any) -> dict[int, str]:
    """id(parameter) -> its path in the model ("layers.0.weight"), from named_parameters()."""
    named = getattr(model, "named_parameters", None)
    return {id(p): name for name, p in named()} if callable(named) else {}


class _Calls:
    """Turns the module stacks tensors carry (`t._scope`) into one cluster per module call.

    A scope tuple object is made fresh when a call starts and shared by every tensor created
    directly in that call, so it identifies the innermost call exactly. The enclosing calls
    are not recorded, so they are inferred while walking tensors in creation order: a call
    continues until its module starts a child it has already called, or meets tensors of a
    second direct scope; then the module has been called again. (A module that calls the
    same child twice within one call is therefore drawn as two calls.)
    """

    def __init__(self) -> None:
        self.clusters: dict[str, Cluster] = {}
        self._of_scope: dict[int, str] = {}  # id(scope tuple) -> cluster id
        self._open: dict[tuple[int, ...], dict[str, Any]] = {}  # module-id path -> latest call

    def cluster_of(self, scope: tuple | None) -> str | None:
        if not scope:
            return None
        key = id(scope)
        if key not in self._of_scope:
            self._of_scope[key] = self._call(scope, direct=key, child=None)
        return self._of_scope[key]

    def _call(self, modules: tuple, direct: int | None, child: int | None) -> str:
        """The call of modules[-1] that a direct scope or a starting child call belongs to."""
        path = tuple(map(id, modules))
        call = self._open.get(path)
        continues = call is not None and (
            call["direct"] is None if direct is not None else child not in call["children"]
        )
        if not continues:
            parent = self._call(modules[:-1], None, id(modules[-1])) if len(modules) > 1 else None
            # Calls inside the previous call of this module are finished.
            for other in [p for p in self._open if p[: len(path)] == path]:
                del self._open[other]
            cid = f"cluster_{len(self.clusters)}"
            self.clusters[cid] = Cluster(cid, "", modules[-1], parent, len(modules) - 1)
            call = self._open[path] = {"id": cid, "direct": None, "children": set()}
        assert call is not None  # found or made above
        if direct is not None:
            call["direct"] = direct
        if child is not None:
            call["children"].add(child)
        return call["id"]


def _label_clusters(clusters: dict[str, Cluster], roots: list[Any], model: Any) -> None:
    """`name: Linear(784 -> 128)`, with the module's path in its model, numbered if repeated."""
    names: dict[int, str] = {}
    for top in [*roots, model]:
        named = getattr(top, "named_modules", None)
        if callable(named):
            for name, m in named():
                names.setdefault(id(m), name)
    calls: dict[int, int] = {}
    for c in clusters.values():
        calls[id(c.module)] = calls.get(id(c.module), 0) + 1
    seen: dict[int, int] = {}
    for c in clusters.values():
        name = names.get(id(c.module))
        c.label = f"{name}: {module_label(c.module)}" if name else module_label(c.module)
        if calls[id(c.module)] > 1:
            seen[id(c.module)] = seen.get(id(c.module), 0) + 1
            c.label += f" (call {seen[id(c.module)]})"


def check_root(root: Any, who: str) -> None:
    """Refuse a root that is not a Tensor by name (it failed as "'float' object has no
    attribute 'requires_grad'"), saying what to pass for the usual mistakes."""
    if isinstance(root, Tensor):
        return
    if isinstance(root, (list, tuple)):
        hint = "; for several outputs, pass one of them or their sum"
    else:
        hint = ": the output of a computation on Tensors (e.g. the loss)"
    raise TypeError(f"{who}: root must be a Tensor, got {type(root).__name__}{hint}")


def trace(root: Tensor, names: dict[int, str] | None = None, model: Any = None) -> Graph:
    """Everything `root` depends on, as nodes, edges and module-call clusters.

    `names` maps id(tensor) -> label, for tensors without a `.name`; `model` (an nn.Module)
    names its parameters and sub-modules. Parameters of modules that appear in the graph's
    scopes are named from them too, so `model` is only needed for unusual set-ups.
    """
    check_root(root, "trace")
    # toposort holds the tensors that require grad; their constant parents are drawn too.
    computed = engine.toposort(root) if root.requires_grad else [root]
    ordered: dict[int, Tensor] = {}
    for t in computed:
        for p in t.parents:
            ordered.setdefault(id(p), cast(Tensor, p))
        ordered.setdefault(id(t), cast(Tensor, t))

    calls = _Calls()
    cluster_of = {key: calls.cluster_of(t._scope) for key, t in ordered.items()}
    roots = list({id(t._scope[0]): t._scope[0] for t in ordered.values() if t._scope}.values())
    _label_clusters(calls.clusters, roots, model)

    labels = dict(names or {})
    name: str | None
    for top in [model, *roots]:
        for key, name in parameter_names(top).items():
            labels.setdefault(key, name)

    graph = Graph(root=node_id(root), clusters=calls.clusters)
    generated = _generated_labels(
        [t for key, t in ordered.items() if not (t.name or labels.get(key))]
    )
    for key, t in ordered.items():
        if t is root:
            kind = "output"
        elif t._op is not None:
            kind = "intermediate"
        else:
            kind = "leaf_param" if t.requires_grad else "constant"
        name = t.name or labels.get(key)
        label = name or generated[key]
        grad = t._grad
        graph.tensors[node_id(t)] = TensorNode(
            id=node_id(t),
            name=name,
            label=label,
            shape=tuple(np.shape(t._data)),
            dtype=str(t.dtype),
            value=summarize(t._data),
            grad=None if grad is None else summarize(grad),
            kind=kind,
            cluster=cluster_of[key],
            scope=_scope_labels(calls.clusters, cluster_of[key]),
        )
        if t._op is not None:
            op_id = f"op{key}"
            graph.ops[op_id] = OpNode(
                op_id,
                op_name(t),
                _format_params(t._params),
                node_id(t),
                cluster_of[key],
                primitive=t._op.name,
            )
            for index, parent in enumerate(t._parents):
                graph.edges.append(Edge(node_id(parent), op_id, index))
            graph.edges.append(Edge(op_id, node_id(t), None))
    _place_parameters(graph)
    return graph


def _generated_labels(unnamed: list[Tensor]) -> dict[int, str]:
    """Labels for tensors without a name, so that tables and drawings can refer to each:
    computed ones by their op ("mul1", "mean2"), one-element constants by their value (the 2
    in `x * 2`), other leaves as "input" ("input1", "input2", ... when there are several),
    each kind numbered in creation order, so the first tensor the user made is input1."""

    def created(t: Tensor) -> int:
        return t._clock if t._op is not None else getattr(t, "_born", 0)

    labels: dict[int, str] = {}
    bases: dict[int, str] = {}
    for t in sorted(unnamed, key=created):
        if t._op is not None:
            bases[id(t)] = op_name(t)
        elif not t.requires_grad and np.size(t._data) == 1:
            labels[id(t)] = summarize(t._data)
        else:
            bases[id(t)] = "input"
    totals: dict[str, int] = {}
    for base in bases.values():
        totals[base] = totals.get(base, 0) + 1
    seen: dict[str, int] = {}
    for key, base in bases.items():
        seen[base] = seen.get(base, 0) + 1
        numbered = base != "input" or totals[base] > 1  # one input needs no number
        labels[key] = f"{base}{seen[base]}" if numbered else base
    return labels


def _scope_labels(clusters: dict[str, Cluster], cid: str | None) -> tuple[str, ...]:
    path = []
    while cid is not None:
        path.append(clusters[cid].label)
        cid = clusters[cid].parent
    return tuple(reversed(path))


def _place_parameters(graph: Graph) -> None:
    """Put a parameter in the frame of the module call that owns and uses it (the weight of
    a Linear inside the Linear), when exactly one call uses it; leaves carry no scope."""
    users: dict[str, set[str | None]] = {}
    for e in graph.edges:
        if e.index is not None:
            users.setdefault(e.source, set()).add(graph.ops[e.target].cluster)
    owned: dict[str, set[int]] = {}
    for node in graph.tensors.values():
        used_by = users.get(node.id, set())
        if node.kind != "leaf_param" or len(used_by) != 1:
            continue
        cid = next(iter(used_by))
        if cid is None:
            continue
        if cid not in owned:
            params = getattr(graph.clusters[cid].module, "parameters", None)
            owned[cid] = {id(p) for p in params()} if callable(params) else set()
        if int(node.id[1:]) in owned[cid]:
            node.cluster = cid
            node.scope = _scope_labels(graph.clusters, cid)
