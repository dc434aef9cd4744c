"""Seeing backpropagation: graph drawings (graphviz), a step-by-step backward table, and an
animation of the backward pass (GIF and an HTML page with a slider).

    from autodiff.viz import draw_graph, explain_backward, animate_backward
    draw_graph(loss)                      # displays inline in Jupyter
    render(draw_graph(loss), "graph", format="svg")
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from . import engine
from .graph import Graph, summarize, trace
from .tensor import Tensor

# Colours that say what a node is: learnable leaves, constants, computed values, the output.
COLORS = {
    "param": "#cfe8ff",  # blue: a leaf that requires grad (weights, inputs you differentiate)
    "constant": "#eeeeee",  # grey: data, no gradient
    "intermediate": "#ffffff",  # white: computed by an op
    "output": "#d9f2d0",  # green: the root you call backward on
    "op": "#ffe9b3",  # amber: an operation
    "current": "#ff9e80",  # orange: the node backward is processing (animations)
}


class GraphvizNotFound(RuntimeError):
    """No `dot` program: drawings can still be built and their DOT source read."""


def dot_executable() -> str:
    """The system `dot`, else the `graphviz-pure` binary that the PyPI package ships."""
    for name in ("dot", "graphviz-pure"):
        found = shutil.which(name)
        if found:
            return found
    candidate = Path(sys.prefix) / ("Scripts" if os.name == "nt" else "bin") / "graphviz-pure"
    if candidate.exists():
        return str(candidate)
    raise GraphvizNotFound(
        "rendering needs Graphviz's `dot`: install it with `apt install graphviz` (or your "
        "system's package manager), or `pip install graphviz-pure`. The DOT source is still "
        "available as `digraph.source`."
    )


def _run_dot(source: str, fmt: str) -> bytes:
    result = subprocess.run([dot_executable(), f"-T{fmt}"], input=source.encode(),
                            capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"dot failed: {result.stderr.decode(errors='replace')[:500]}")
    return result.stdout


def render(digraph: Any, path: str | os.PathLike, format: str = "svg") -> Path:  # noqa: A002
    """Write the drawing to `path` (the format's suffix is added if missing)."""
    if format not in ("svg", "png"):
        raise ValueError(f"render: format must be 'svg' or 'png', got {format!r}")
    path = Path(path)
    if path.suffix != f".{format}":
        path = path.with_name(path.name + f".{format}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_run_dot(digraph.source, format))
    return path


# --- drawing ---------------------------------------------------------------------------------


def _digraph_class() -> type:
    import graphviz

    class Drawing(graphviz.Digraph):
        """A graphviz.Digraph that renders through whichever `dot` we found (the system one
        or graphviz-pure), so it displays inline in Jupyter after `pip install` alone."""

        def _repr_mimebundle_(self, include: Any = None, exclude: Any = None,
                              **kwargs: Any) -> dict[str, str]:
            try:
                return {"image/svg+xml": _run_dot(self.source, "svg").decode()}
            except (GraphvizNotFound, RuntimeError) as exc:
                return {"text/plain": f"{exc}\n\n{self.source}"}

    return Drawing


def _record_text(text: str) -> str:
    # Characters with a meaning inside graphviz record labels must be escaped.
    for ch in "\\{}|<>\"":
        text = text.replace(ch, "\\" + ch)
    return text


def _tensor_label(node: Any, show_values: bool, show_grads: bool, grad: str | None) -> str:
    head = node.label or ("" if node.kind != "output" else "output")
    shape = "scalar" if node.shape == () else "x".join(str(n) for n in node.shape)
    fields = [f"{head} {shape} {node.dtype}".strip()]
    if show_values:
        fields.append(f"data {node.value}")
    if show_grads and grad is not None:
        fields.append(f"grad {grad}")
    return "{" + " | ".join(_record_text(f) for f in fields) + "}"


def _group(scope: tuple, model: Any) -> Any:
    """The module a node is drawn in: the innermost module call that created it."""
    scope = tuple(m for m in scope if m is not model)
    return scope[-1] if scope else None


def draw_graph(
    root: Tensor,
    *,
    model: Any = None,
    names: dict[int, str] | None = None,
    rankdir: str = "LR",
    show_values: bool = True,
    show_grads: bool = True,
    group_by_module: bool | str = False,
    max_nodes: int = 300,
    highlight: Iterable[int] = (),
    grads: dict[int, Any] | None = None,
) -> Any:
    """A graphviz.Digraph of everything `root` depends on.

    One record per tensor (label, shape, dtype, value, gradient when known), one box per op,
    edges in argument order (labelled when an op has several inputs). `model` names the
    parameters and modules. `group_by_module`: False, "cluster" (a labelled frame around each
    module's ops) or "collapse" (each module call drawn as one box). A graph of more than
    `max_nodes` nodes is collapsed by default, with a note saying so. `highlight` and `grads`
    (ids of tensors -> gradient) are used by `animate_backward`.
    """
    if rankdir not in ("LR", "TB"):
        raise ValueError(f"draw_graph: rankdir must be 'LR' or 'TB', got {rankdir!r}")
    if group_by_module not in (False, True, "cluster", "collapse"):
        raise ValueError("draw_graph: group_by_module must be False, 'cluster' or 'collapse'")
    graph = trace(root, names=names, model=model)
    note = ""
    size = len(graph.tensors) + len(graph.ops)
    if size > max_nodes and group_by_module != "collapse":
        group_by_module = "collapse"
        note = f"{size} nodes: collapsed by module (max_nodes={max_nodes})"
    if group_by_module is True:
        group_by_module = "cluster"
    highlight = set(highlight)
    dot = _digraph_class()("autodiff", graph_attr={"rankdir": rankdir, "fontsize": "10",
                                                   "fontname": "Helvetica"},
                           node_attr={"fontname": "Helvetica", "fontsize": "10"},
                           edge_attr={"arrowsize": "0.7"})
    if note:
        dot.attr(label=note, labelloc="t", fontcolor="#aa3300")
    if group_by_module == "collapse":
        _draw_collapsed(dot, graph, model, show_values, show_grads, grads, highlight)
    else:
        _draw_full(dot, graph, model, show_values, show_grads, grads, highlight,
                   clusters=group_by_module == "cluster")
    _legend(dot)
    return dot


def _grad_text(graph: Graph, tid: int, grads: dict[int, Any] | None) -> str | None:
    if grads is not None:
        return summarize(grads[tid]) if tid in grads else None
    return graph.tensors[tid].grad


def _draw_full(dot: Any, graph: Graph, model: Any, show_values: bool, show_grads: bool,
               grads: dict[int, Any] | None, highlight: set[int], clusters: bool) -> None:
    groups: dict[Any, list[tuple[str, dict[str, str]]]] = {}

    def place(key: Any, name: str, attrs: dict[str, str]) -> None:
        groups.setdefault(key, []).append((name, attrs))

    for tid in graph.order:
        node = graph.tensors[tid]
        fill = COLORS["current"] if tid in highlight else COLORS[node.kind]
        attrs = {"label": _tensor_label(node, show_values, show_grads,
                                        _grad_text(graph, tid, grads)),
                 "shape": "record", "style": "filled", "fillcolor": fill}
        if node.kind == "output":
            attrs["penwidth"] = "2"
        group = _group(node.scope, model) if clusters and node.kind != "param" else None
        place(id(group) if group is not None else None, f"t{tid}", attrs)
    for op_id, op in graph.ops.items():
        label = op.op + (f"\n{op.params}" if op.params else "")
        attrs = {"label": label, "shape": "box", "style": "rounded,filled",
                 "fillcolor": COLORS["op"]}
        group = _group(op.scope, model) if clusters else None
        place(id(group) if group is not None else None, op_id, attrs)
    for key, members in groups.items():
        if key is None:
            for name, attrs in members:
                dot.node(name, **attrs)
            continue
        with dot.subgraph(name=f"cluster_{key}") as sub:
            sub.attr(label=graph.modules.get(key, "module"), style="rounded,dashed",
                     color="#7a7a7a", fontcolor="#333333")
            for name, attrs in members:
                sub.node(name, **attrs)
    n_inputs = {op_id: 0 for op_id in graph.ops}
    for _, target, index in graph.edges:
        if index is not None:
            n_inputs[target] += 1
    for source, target, index in graph.edges:
        label = str(index) if index is not None and n_inputs.get(target, 0) > 1 else ""
        dot.edge(source, target, label=label, fontsize="8", fontcolor="#666666")


def _draw_collapsed(dot: Any, graph: Graph, model: Any, show_values: bool, show_grads: bool,
                    grads: dict[int, Any] | None, highlight: set[int]) -> None:
    """Each module call as one box; parameters used only inside a box are listed in it."""
    box_of: dict[str, str] = {}
    box_ops: dict[str, list[str]] = {}
    for op_id, op in graph.ops.items():
        group = _group(op.scope, model)
        if group is not None:
            box = f"m{id(group)}"
            box_of[op_id] = box
            box_of[f"t{op.output}"] = box
            box_ops.setdefault(box, []).append(op.op)
    consumers: dict[str, set[str]] = {}
    for source, target, index in graph.edges:
        if index is not None:
            consumers.setdefault(source, set()).add(box_of.get(target, target))
    box_params: dict[str, list[str]] = {}
    for tid, node in graph.tensors.items():
        name = f"t{tid}"
        users = consumers.get(name, set())
        if node.kind == "param" and len(users) == 1 and next(iter(users)).startswith("m"):
            box = next(iter(users))
            box_of[name] = box
            shape = "x".join(str(n) for n in node.shape) or "scalar"
            box_params.setdefault(box, []).append(f"{node.label or 'param'} {shape}")
    for tid in graph.order:
        name = f"t{tid}"
        if name in box_of:
            continue
        node = graph.tensors[tid]
        fill = COLORS["current"] if tid in highlight else COLORS[node.kind]
        dot.node(name, label=_tensor_label(node, show_values, show_grads,
                                           _grad_text(graph, tid, grads)),
                 shape="record", style="filled", fillcolor=fill)
    for op_id, op in graph.ops.items():
        if op_id not in box_of:
            dot.node(op_id, label=op.op, shape="box", style="rounded,filled",
                     fillcolor=COLORS["op"])
    for box, ops in box_ops.items():
        key = int(box[1:])
        out_shapes = [graph.tensors[int(t[1:])].shape for t, b in box_of.items()
                      if b == box and t.startswith("t") and graph.tensors[int(t[1:])].kind
                      in ("intermediate", "output")]
        lines = [graph.modules.get(key, "module"), f"ops: {', '.join(dict.fromkeys(ops))}"]
        lines += box_params.get(box, [])
        if out_shapes:
            lines.append("out " + ("x".join(str(n) for n in out_shapes[-1]) or "scalar"))
        dot.node(box, label="\n".join(lines), shape="box3d", style="filled",
                 fillcolor="#e8e0ff")
    drawn: set[tuple[str, str]] = set()
    for source, target, _ in graph.edges:
        a, b = box_of.get(source, source), box_of.get(target, target)
        if a != b and (a, b) not in drawn:
            drawn.add((a, b))
            dot.edge(a, b)


def _legend(dot: Any) -> None:
    with dot.subgraph(name="cluster_legend") as legend:
        legend.attr(label="legend", fontsize="9", style="dotted", color="#999999")
        for kind, text in (("param", "leaf that requires grad"), ("constant", "constant"),
                           ("intermediate", "computed"), ("output", "output"), ("op", "op")):
            legend.node(f"legend_{kind}", label=text, shape="box", style="filled",
                        fillcolor=COLORS[kind], fontsize="8", height="0.2")


# --- backpropagation step by step ----------------------------------------------------------------


def _labels(graph: Graph) -> dict[int, str]:
    """A readable name for every tensor: its own label, else op and a running number."""
    labels: dict[int, str] = {}
    counts: dict[str, int] = {}
    ops_by_output = {op.output: op.op for op in graph.ops.values()}
    for tid in graph.order:
        node = graph.tensors[tid]
        if node.label:
            labels[tid] = node.label
            continue
        base = ops_by_output.get(tid, "const" if node.kind == "constant" else "leaf")
        counts[base] = counts.get(base, 0) + 1
        labels[tid] = f"{base}{counts[base]}"
    return labels


def _number(value: Any) -> Any:
    array = np.asarray(getattr(value, "data", value))
    return array.reshape(()).item() if array.size == 1 else array


def backward_steps(root: Tensor, grad: Any = None) -> list[dict[str, Any]]:
    """The backward pass as rows, one per (node, parent) contribution, in execution order.

    Each row: step, node, op, upstream (the gradient arriving at the node), parent,
    local (the local derivative, for scalars; None where it is a matrix), contribution (what
    is added into the parent's gradient), total (the parent's gradient so far) and paths (how
    many contributions the parent has received: 2 or more means gradients were summed).
    Nothing is written into any `.grad`.
    """
    if not root.requires_grad:
        raise RuntimeError("explain_backward: the root does not require grad")
    graph = trace(root)
    labels = _labels(graph)
    seed = root._seed(grad, "explain_backward", False)
    rows: list[dict[str, Any]] = []
    totals: dict[int, Any] = {}
    paths: dict[int, int] = {}

    def on_step(node: Tensor, upstream: Any, contributions: list) -> None:
        step = len({r["step"] for r in rows}) + 1
        for index, parent, contrib in contributions:
            pid = id(parent)
            totals[pid] = contrib if pid not in totals else totals[pid] + contrib
            paths[pid] = paths.get(pid, 0) + 1
            up, c = _number(upstream), _number(contrib)
            local = None
            if np.ndim(up) == 0 and np.ndim(c) == 0 and up != 0:
                local = c / up
            rows.append({
                "step": step, "node": labels.get(id(node), "?"), "op": node._op.name,
                "upstream": up, "input": index, "parent": labels.get(pid, "?"),
                "local": local, "contribution": c, "total": _number(totals[pid]),
                "paths": paths[pid],
            })

    engine.backward([root], [seed], accumulate=False, on_step=on_step)
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "(vjp)"
    if np.ndim(value) == 0:
        return f"{float(value):.6g}"
    return summarize(value)


def explain_backward(root: Tensor, grad: Any = None, *, print_rows: bool = True
                     ) -> list[dict[str, Any]]:
    """Print (and return) each step of the backward pass: the node, the gradient arriving at
    it, the local derivative, and what is added into each parent, with running totals. A row
    marked "+" is a second (or later) path into the same parent: the chain rule sums them."""
    rows = backward_steps(root, grad)
    if print_rows:
        header = f"{'step':>4}  {'node':<12} {'upstream':>12}  {'parent':<10} " \
                 f"{'local':>10} {'adds':>12} {'total':>12}"
        print(header)
        print("-" * len(header))
        for r in rows:
            mark = " +" if r["paths"] > 1 else ""
            print(f"{r['step']:>4}  {r['node'] + ' (' + r['op'] + ')':<12} "
                  f"{_fmt(r['upstream']):>12}  {r['parent']:<10} {_fmt(r['local']):>10} "
                  f"{_fmt(r['contribution']):>12} {_fmt(r['total']):>12}{mark}")
    return rows


def animate_backward(root: Tensor, path: str | os.PathLike, *, fps: float = 1.0,
                     format: str = "gif", model: Any = None,  # noqa: A002
                     rankdir: str = "LR") -> Path:
    """Write the backward pass as frames: frame 0 is the graph before backward, then one frame
    per step with the processed node highlighted and the gradients known so far filled in.
    `format` "gif" writes an animated GIF; "html" a self-contained page with a slider."""
    if format not in ("gif", "html"):
        raise ValueError(f"animate_backward: format must be 'gif' or 'html', got {format!r}")
    seed = root._seed(None, "animate_backward", False)
    known: dict[int, Any] = {}
    frames_spec: list[tuple[set[int], dict[int, Any]]] = [(set(), {})]

    def on_step(node: Tensor, upstream: Any, contributions: list) -> None:
        known[id(node)] = upstream
        for _, parent, contrib in contributions:
            pid = id(parent)
            if parent._op is None:  # leaves: show the running sum as it grows
                known[pid] = contrib if pid not in known else known[pid] + contrib
        frames_spec.append(({id(node)}, dict(known)))

    engine.backward([root], [seed], accumulate=False, on_step=on_step)
    # Leaves get one last frame with their final gradients.
    sources = [draw_graph(root, model=model, highlight=h, grads=g, rankdir=rankdir).source
               for h, g in frames_spec]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if format == "html":
        svgs = [_run_dot(s, "svg").decode() for s in sources]
        path.write_text(_slider_page(svgs), encoding="utf-8")
        return path
    import io

    import imageio.v2 as imageio

    images = [imageio.imread(io.BytesIO(_run_dot(s, "png"))) for s in sources]
    height = max(im.shape[0] for im in images)
    width = max(im.shape[1] for im in images)
    padded = []
    for im in images:
        rgb = im[..., :3] if im.ndim == 3 else np.stack([im] * 3, axis=-1)
        canvas = np.full((height, width, 3), 255, dtype=np.uint8)
        canvas[: rgb.shape[0], : rgb.shape[1]] = rgb
        padded.append(canvas)
    imageio.mimsave(path, padded, duration=1000.0 / fps, loop=0)
    return path


def _slider_page(svgs: list[str]) -> str:
    frames = "\n".join(
        f'<div class="frame" style="display:{"block" if i == 0 else "none"}">{svg}</div>'
        for i, svg in enumerate(svgs)
    )
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Backward pass, step by step</title>
<style>body{{font-family:sans-serif}} .frame svg{{max-width:100%;height:auto}}</style></head>
<body>
<h3>Backward pass: step <span id="n">0</span> of {len(svgs) - 1}</h3>
<input id="slider" type="range" min="0" max="{len(svgs) - 1}" value="0" style="width:60%">
{frames}
<script>
const frames = document.querySelectorAll('.frame');
document.getElementById('slider').addEventListener('input', e => {{
  frames.forEach((f, i) => f.style.display = (i == e.target.value) ? 'block' : 'none');
  document.getElementById('n').textContent = e.target.value;
}});
</script>
<p>{html.escape("Orange: the node being processed. Gradients appear as they are computed.")}</p>
</body></html>
"""
