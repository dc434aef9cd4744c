"""Seeing backpropagation: graph drawings, a step-by-step backward table, and an animation
of the backward pass (an animated GIF, or an HTML page with a slider).

    from autodiff.viz import draw_graph, render, explain_backward, animate_backward
    draw_graph(loss)                          # a graphviz.Digraph; displays inline in Jupyter
    draw_graph(loss).render("graph", format="svg")      # or render(drawing, "graph", ...)
    explain_backward(loss)                    # the chain rule, one row per step, as a table
    animate_backward(loss, "backward.gif")

The drawing is made from `graph.trace`, the plain-data graph; every backward step shown
here comes from the engine's own `backward` through its `on_step` hook.
"""

from __future__ import annotations

import html
import io
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import graphviz
import numpy as np
import numpy.typing as npt
from graphviz.backend import dot_command, execute
from graphviz.backend import rendering as gv_rendering

from . import engine, rules
from .composites import op_name
from .dot import (
    COLORS,
    FONT,
    LEGEND,
    LEGEND_STYLE,
    GraphvizNotFound,
    _auto_rankdir,
    _box_of,
    _check_max_nodes,
    _run_dot,
    dot_executable,
)
from .graph import Graph, check_root, node_id, summarize, trace
from .page import Page, page  # viz.page: the step-through page (autodiff/page.py)
from .tensor import Tensor

# --- finding and running `dot` ----------------------------------------------------------------


def render(digraph: graphviz.Digraph, path: str | os.PathLike, format: str | None = None) -> Path:  # noqa: A002 - the name graphviz itself uses
    """Write a drawing to `path` as SVG or PNG (adding the suffix if it is missing). Without
    a format, a path ending in .png or .svg says which (render(g, "graph.png") wrote SVG into
    graph.png.svg); any other path gets SVG."""
    if format is None:
        suffix = Path(path).suffix.lower()
        format = suffix[1:] if suffix in (".png", ".svg") else "svg"  # noqa: A001
    if format not in ("svg", "png"):
        raise ValueError(f"render: format must be 'svg' or 'png', got {format!r}")
    path = _with_suffix(path, format)
    path.write_bytes(_run_dot(digraph.source, format))
    return path


def _with_suffix(path: str | os.PathLike, suffix: str) -> Path:
    path = Path(path)
    if path.suffix != f".{suffix}":
        path = path.with_name(f"{path.name}.{suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _dot_command(
    engine: str,
    format: str,
    renderer: str | None,  # noqa: A002
    formatter: str | None,
    neato_no_op: bool | int | None,
) -> list[Any]:
    """graphviz's own command line (it checks the engine and format names), with the program
    we found in place of its bare `dot`, which only a system Graphviz puts on PATH."""
    cmd = dot_command.command(
        engine, format, renderer=renderer, formatter=formatter, neato_no_op=neato_no_op
    )
    return [dot_executable(), *cmd[1:]]


def _pipe_lines(
    engine: str,
    format: str,
    input_lines: Any,
    *,  # noqa: A002
    input_encoding: str,
    renderer: str | None = None,
    formatter: str | None = None,
    neato_no_op: bool | int | None = None,
    quiet: bool = False,
) -> bytes:
    cmd = _dot_command(engine, format, renderer, formatter, neato_no_op)
    lines = (line.encode(input_encoding) for line in input_lines)
    return execute.run_check(cmd, input_lines=lines, capture_output=True, quiet=quiet).stdout


def _pipe_lines_string(
    engine: str,
    format: str,
    input_lines: Any,
    *,  # noqa: A002
    encoding: str,
    renderer: str | None = None,
    formatter: str | None = None,
    neato_no_op: bool | int | None = None,
    quiet: bool = False,
) -> str:
    cmd = _dot_command(engine, format, renderer, formatter, neato_no_op)
    return execute.run_check(
        cmd, input_lines=iter(input_lines), encoding=encoding, capture_output=True, quiet=quiet
    ).stdout


def _render_file(
    engine: str,
    format: str | None = None,  # noqa: A002
    filepath: str | os.PathLike | None = None,
    renderer: str | None = None,
    formatter: str | None = None,
    neato_no_op: bool | int | None = None,
    quiet: bool = False,
    *,
    outfile: str | os.PathLike | None = None,
    raise_if_result_exists: bool = False,
    overwrite_filepath: bool = False,
) -> str:
    """graphviz.render's contract (the output file's name, the checks), through our dot."""
    if outfile is not None:
        outfile = Path(outfile)
        format = gv_rendering.get_format(outfile, format=format)  # noqa: A001
        filepath = gv_rendering.get_filepath(outfile) if filepath is None else filepath
    if filepath is None or format is None:
        raise graphviz.RequiredArgumentError(
            "render: a filename (or outfile) and a format are needed"
        )
    filepath = Path(filepath)
    if outfile is None:
        outfile = gv_rendering.get_outfile(
            filepath, format=format, renderer=renderer, formatter=formatter
        )
    outfile = Path(outfile)  # graphviz is untyped: its get_outfile's answer as a Path
    if outfile.resolve() == filepath.resolve() and not overwrite_filepath:
        raise ValueError(f"render: the output {outfile} would overwrite the DOT source")
    if raise_if_result_exists and outfile.exists():
        raise graphviz.FileExistsError(f"output file exists: {os.fspath(outfile)!r}")
    cmd = _dot_command(engine, format, renderer, formatter, neato_no_op)
    execute.run_check(
        [*cmd, "-o", os.fspath(outfile), os.fspath(filepath)], capture_output=True, quiet=quiet
    )
    return os.fspath(outfile)


def _viewer_available() -> bool:
    if sys.platform in ("win32", "darwin"):
        return True
    # xdg-open on a machine without a display can wait for a terminal browser, or fail.
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return has_display and shutil.which("xdg-open") is not None


# What dot (system or graphviz-pure) writes that a learner names a file after.
_PICTURE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg")


class Drawing(graphviz.Digraph):
    """A graphviz.Digraph whose methods run through the `dot` we found: the system one, or
    the `graphviz-pure` binary that pip installs. `render`, `pipe`, `view`, `save` and
    Jupyter's inline display work without a system Graphviz; only `unflatten` needs Graphviz's
    own `unflatten` program, and says so.

    Two defaults differ from graphviz's, so that a first `render` does what a learner
    expects: the format is PNG (graphviz-pure has no PDF), and `render`/`view` remove the
    DOT source file they write beside the picture (`cleanup=False` keeps it). `view()`
    where no viewer can open (a server, CI) prints the rendered file's path instead.
    """

    summary = "a graph"  # what __repr__ says the drawing shows; draw_graph sets it
    _page_of: Any = None  # (root, options): draw_graph sets it, for .page()

    def page(self, path: str | os.PathLike | None = None, **options: Any) -> Page:
        """This graph's step-through page (viz.page): in Jupyter it shows, running, in the
        cell's output; with a path it is also written there."""
        if self._page_of is None:
            raise ValueError("page: only a drawing made by draw_graph knows its graph")
        root, made_with = self._page_of
        return page(root, path, **{**made_with, **options})

    # graphviz looks these up on the instance (its own tests mock them the same way).
    @property
    def _pipe_lines(self) -> Any:
        return _pipe_lines

    @property
    def _pipe_lines_string(self) -> Any:
        return _pipe_lines_string

    @property
    def _render(self) -> Any:
        return _render_file

    def render(
        self,
        filename: str | os.PathLike | None = None,
        directory: str | os.PathLike | None = None,
        view: bool = False,
        cleanup: bool = True,
        format: str | None = None,  # noqa: A002
        renderer: str | None = None,
        formatter: str | None = None,
        neato_no_op: bool | int | None = None,
        quiet: bool = False,
        quiet_view: bool = False,
        *,
        outfile: str | os.PathLike | None = None,
        engine: str | None = None,
        raise_if_result_exists: bool = False,
        overwrite_source: bool = False,
    ) -> str:
        """graphviz.Digraph.render: save the DOT source, render it, return the picture's path
        ("x" with format="png" gives "x.png"). The source file is removed unless cleanup=False,
        also when rendering fails. A filename ending in a picture's suffix, without a format,
        names the picture ("graph.png" gives graph.png, where graphviz writes the source
        there and the picture to graph.png.png)."""
        if (
            outfile is None
            and format is None
            and directory is None
            and filename is not None
            and Path(filename).suffix.lower() in _PICTURE_SUFFIXES
        ):
            filename, outfile = None, filename
        started = time.time()
        try:
            return super().render(
                filename,
                directory=directory,
                view=view,
                cleanup=cleanup,
                format=format,
                renderer=renderer,
                formatter=formatter,
                neato_no_op=neato_no_op,
                quiet=quiet,
                quiet_view=quiet_view,
                outfile=outfile,
                engine=engine,
                raise_if_result_exists=raise_if_result_exists,
                overwrite_source=overwrite_source,
            )
        except Exception:
            # graphviz saves the source (and points self.filepath at it) before it runs dot:
            # do not leave that file behind, but never delete one this call did not write.
            saved = Path(self.filepath)
            if cleanup and saved.is_file() and saved.stat().st_mtime >= started - 1:
                saved.unlink()
            raise

    def view(
        self,
        filename: str | os.PathLike | None = None,
        directory: str | os.PathLike | None = None,
        cleanup: bool = True,
        quiet: bool = False,
        quiet_view: bool = False,
    ) -> str:
        """Render and open the picture in the system's viewer; where there is none (no
        display), print where the picture is. Returns its path."""
        return self.render(
            filename,
            directory=directory,
            view=True,
            cleanup=cleanup,
            quiet=quiet,
            quiet_view=quiet_view,
        )

    def _view(
        self,
        filepath: str | os.PathLike,
        *,
        format: str,  # noqa: A002
        quiet: bool,
    ) -> None:
        if _viewer_available():
            try:
                super()._view(filepath, format=format, quiet=quiet)
                return
            except (OSError, RuntimeError):
                pass  # no program for this format: say where the file is instead
        print(f"drawing written to {os.path.abspath(filepath)} (no viewer to open it here)")

    def unflatten(
        self, stagger: int | None = None, fanout: bool = False, chain: int | None = None
    ) -> graphviz.Source:
        if shutil.which("unflatten") is None:
            raise GraphvizNotFound(
                "unflatten: needs the `unflatten` program of a system Graphviz (`apt install "
                "graphviz`); graphviz-pure has no unflatten. Drawing without it works."
            )
        return super().unflatten(stagger=stagger, fanout=fanout, chain=chain)

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None, **kwargs: Any
    ) -> dict[str, Any]:
        try:
            return super()._repr_mimebundle_(include, exclude, **kwargs)
        except (graphviz.ExecutableNotFound, graphviz.CalledProcessError) as exc:
            # A notebook shows this text instead of a traceback: the cure, and the DOT.
            return {"text/plain": f"{exc}\n\n{self.source}"}

    def copy(self) -> Drawing:
        twin = super().copy()
        twin.summary = self.summary
        twin._page_of = self._page_of
        return twin

    def __repr__(self) -> str:
        return (
            f"<Drawing of {self.summary}: .render('name', format='png') writes name.png, "
            f".source is the DOT text; Jupyter shows it inline; .page() steps through it>"
        )


# --- drawing ----------------------------------------------------------------------------------


def draw_graph(
    root: Tensor,
    *,
    model: Any = None,
    names: dict[int, str] | None = None,
    rankdir: str = "auto",
    show_values: bool = True,
    show_grads: bool = True,
    group_by_module: bool | str = False,
    max_nodes: int | None = 300,
) -> Drawing:
    """A graphviz drawing of everything `root` depends on.

    One record per tensor (label | shape dtype | value | grad), one ellipse per op, edges in
    argument order (numbered when an op has several inputs), colours by kind with a legend.
    `model` names parameters ("layers.0.weight") and module calls; `names` maps id(tensor)
    to a label. `group_by_module`: False; "cluster" (a frame around each module call) or
    "collapse" (each module call drawn as one box, its inputs in and its outputs out). A graph
    of more than `max_nodes` nodes (at least 2; None for no limit) is collapsed by module,
    with a note saying so, and past it even so only the nodes nearest the output are drawn.
    rankdir "LR" draws left to right, "TB" top down; "auto" (the default) draws expressions
    of scalars left to right, as micrograd does, and anything with arrays or more than
    AUTO_LR_DEPTH ops in a chain top down, where left to right gets screens wide.
    """
    check_root(root, "draw_graph")
    _check_rankdir(rankdir, "draw_graph")
    if group_by_module not in (False, True, "cluster", "collapse"):
        raise ValueError(
            f"draw_graph: group_by_module must be False, 'cluster' or 'collapse', "
            f"got {group_by_module!r}"
        )
    options = _Options(
        rankdir,
        show_values,
        show_grads,
        "cluster" if group_by_module is True else group_by_module,
        _check_max_nodes(max_nodes, "draw_graph"),
    )
    drawing = _draw(trace(root, names=names, model=model), options)
    drawing._page_of = (root, {"model": model, "names": names})
    return drawing


@dataclass
class _Options:
    rankdir: str = "LR"
    show_values: bool = True
    show_grads: bool = True
    group: str | bool = False
    max_nodes: float = 300


@dataclass
class _Frame:
    """What one animation frame adds to a drawing: the node being processed, the gradient
    known so far for each tensor (text), the contributions on its edges, and a caption."""

    current: str
    grads: dict[str, str]
    flows: dict[tuple[str, int], str]  # (parent id, argument index) -> contribution text
    caption: str


@dataclass
class _Scene:
    """The nodes and edges to emit, after collapsing and cutting: one place for both modes."""

    nodes: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> DOT attributes
    home: dict[str, str | None] = field(default_factory=dict)  # id -> cluster drawn in
    edges: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _check_rankdir(rankdir: str, who: str) -> None:
    if rankdir not in ("auto", "LR", "TB"):
        raise ValueError(f"{who}: rankdir must be 'auto', 'LR' or 'TB', got {rankdir!r}")


def _draw(graph: Graph, options: _Options, frame: _Frame | None = None) -> Drawing:
    if options.rankdir == "auto":
        options = replace(options, rankdir=_auto_rankdir(graph))
    group = options.group
    note = ""
    if len(graph) > options.max_nodes and group != "collapse":
        group = "collapse"
        what = "one box per module call" if graph.clusters else "no modules to collapse by"
        note = f"{len(graph)} nodes, more than max_nodes={options.max_nodes}: {what}"
    if group == "collapse":
        scene = _collapsed(graph, options, frame)
    else:
        scene = _full(graph, options, frame, clusters=group == "cluster")
    if note:
        scene.notes.insert(0, note)
    _cut(scene, graph, options.max_nodes)

    dot = Drawing(
        "autodiff",
        format="png",
        graph_attr={
            "rankdir": options.rankdir,
            "fontname": FONT,
            "fontsize": "11",
            "labelloc": "b",
            "nodesep": "0.25",
            "ranksep": "0.35",
        },
        node_attr={"fontname": FONT, "fontsize": "10"},
        edge_attr={
            "arrowsize": "0.7",
            "fontname": FONT,
            "fontsize": "9",
            "fontcolor": "#666666",
            "color": "#555555",
        },
    )
    n, m = len(graph.tensors), len(graph.ops)
    dot.summary = f"{n} tensor{'s' * (n != 1)} and {m} op{'s' * (m != 1)}" + (
        ", one box per module call" if group == "collapse" else ""
    )
    _emit_clusters(dot, graph, scene)
    for source, target, attrs in scene.edges:
        dot.edge(source, target, **attrs)
    caption = frame.caption if frame is not None else ""
    # The legend names what is drawn: a collapsed model shows no parameter records.
    present = {graph.tensors[n].kind for n in scene.nodes if n in graph.tensors}
    present |= {"op"} if any(n in graph.ops for n in scene.nodes) else set()
    if graph.clusters and group in ("cluster", "collapse"):
        present.add("module" if group == "collapse" else "frame")
    if frame is not None:
        present.add("current")
    dot.attr(label=_caption_and_legend(caption, scene.notes, present))
    return dot


def _shape_text(shape: tuple[int, ...]) -> str:
    return "scalar" if shape == () else "x".join(map(str, shape))


def _record(fields: list[str], rankdir: str, across: bool) -> str:
    """label | shape dtype | data | grad: side by side for scalars, as micrograd draws them;
    stacked for arrays (long summaries), so that a layer's record is not a screen wide."""
    if not across:
        fields = [f"{fields[0]}: {fields[1]}", *fields[2:]]
    # A newline inside a record field is no line break (graphviz-pure dropped it: "line1\nline2"
    # read "line1line2"); the escape backslash-n is, in every renderer.
    body = " | ".join(re.sub(r'([\\{}|<>"])', r"\\\1", f).replace("\n", "\\n") for f in fields)
    # Braces turn a record's fields a quarter turn; which way is "across" depends on rankdir.
    return "{" + body + "}" if across == (rankdir == "LR") else body


def _tensor_attrs(
    graph: Graph, tid: str, options: _Options, frame: _Frame | None
) -> dict[str, str]:
    node = graph.tensors[tid]
    fields = [node.label, f"{_shape_text(node.shape)} {node.dtype}"]
    if options.show_values:
        fields.append(f"data {node.value}")
    if options.show_grads:
        if frame is not None:
            if node.kind != "constant":  # a placeholder keeps the layout still between frames
                fields.append(f"grad {frame.grads.get(tid, '?')}")
        elif node.grad is not None:
            fields.append(f"grad {node.grad}")
    current = frame is not None and frame.current == tid
    # Decided without the gradient's text, so a record keeps its shape in every frame.
    across = math.prod(node.shape) <= 4 and max(map(len, fields[:3])) <= 24
    attrs = {
        "label": _record(fields, options.rankdir, across),
        "shape": "record",
        "style": "filled",
        "fillcolor": COLORS["current" if current else node.kind],
    }
    if node.kind == "output" or current:
        attrs["penwidth"] = "2"
    return attrs


def _op_attrs(graph: Graph, op_id: str, frame: _Frame | None) -> dict[str, str]:
    op = graph.ops[op_id]
    label = op.op + (f"\n{op.params_text}" if op.params else "")
    row = rules.OPS.get(op.primitive or op.op)
    attrs = {
        "label": label,
        "shape": "ellipse",
        "style": "filled",
        "fillcolor": COLORS["op"],
        "margin": "0.05,0.02",
        "height": "0.3",
    }
    if row is not None and row.formula:
        # The local derivative per input, from the row (shown on hover in SVG and notebooks).
        attrs["tooltip"] = "; ".join(
            f"d{row.name}/d(input {i}) = {text}" for i, text in enumerate(row.formula)
        )
    if frame is not None and frame.current == op.output:
        attrs.update(color=COLORS["current"], penwidth="3")
    return attrs


def _edge_attrs(
    graph: Graph, source: str, target: str, index: int | None, frame: _Frame | None
) -> dict[str, str]:
    attrs: dict[str, str] = {}
    if index is not None and len(graph.inputs(target)) > 1:
        attrs["label"] = str(index)  # argument order matters for sub, div, matmul, ...
    flow = frame.flows.get((source, index)) if frame is not None and index is not None else None
    if flow is not None and frame is not None and graph.ops[target].output == frame.current:
        # The gradient flowing back along this edge during the current step.
        attrs.update(
            color=COLORS["current"],
            penwidth="2.5",
            fontcolor="#c0392b",
            label=f"{attrs.get('label', '')}{': ' if 'label' in attrs else ''}sends {flow}",
        )
    return attrs


def _full(graph: Graph, options: _Options, frame: _Frame | None, clusters: bool) -> _Scene:
    scene = _Scene()
    for tid, node in graph.tensors.items():
        op_id = f"op{tid[1:]}"
        if op_id in graph.ops:
            scene.nodes[op_id] = _op_attrs(graph, op_id, frame)
            scene.home[op_id] = graph.ops[op_id].cluster if clusters else None
        scene.nodes[tid] = _tensor_attrs(graph, tid, options, frame)
        scene.home[tid] = node.cluster if clusters else None
    # One edge per argument: x * x reads x twice, and draws two edges, 0 and 1.
    scene.edges = [
        (e.source, e.target, _edge_attrs(graph, e.source, e.target, e.index, frame))
        for e in graph.edges
    ]
    return scene


def _collapsed(graph: Graph, options: _Options, frame: _Frame | None) -> _Scene:
    scene = _Scene()
    boxes = _box_of(graph)
    box: dict[str, str | None] = {}  # graph node id -> the box that swallows it, if any
    for op_id, op in graph.ops.items():
        box[op_id] = boxes.get(op.cluster) if op.cluster else None
    for tid, node in graph.tensors.items():
        box[tid] = boxes.get(node.cluster) if node.cluster else None
    readers: dict[str, set[str | None]] = {}
    for e in graph.edges:
        if e.index is not None:
            readers.setdefault(e.source, set()).add(box[e.target])
    visible: dict[str, str] = {}  # graph node id -> the scene node that stands for it
    for tid, node in graph.tensors.items():
        inside = box[tid]
        # A tensor stays visible unless its box makes it and only its box reads it.
        if inside is None or tid == graph.root or readers.get(tid, set()) - {inside}:
            visible[tid] = tid
            scene.nodes[tid] = _tensor_attrs(graph, tid, options, frame)
            scene.home[tid] = graph.clusters[inside].parent if inside else node.cluster
        else:
            visible[tid] = inside
    for op_id, op in graph.ops.items():
        if box[op_id] is None:
            visible[op_id] = op_id
            scene.nodes[op_id] = _op_attrs(graph, op_id, frame)
            scene.home[op_id] = op.cluster
        else:
            visible[op_id] = cast(str, box[op_id])  # not None: see the if
    for cid in dict.fromkeys(b for b in box.values() if b is not None):
        scene.nodes[cid] = _box_attrs(graph, cid, box, frame)
        scene.home[cid] = graph.clusters[cid].parent
    drawn = set()
    for e in graph.edges:
        source, target = visible[e.source], visible[e.target]
        # Skip edges inside a box, the edge back into the box that made a tensor, and repeats.
        if source == target or (e.index is not None and box[e.source] == target):
            continue
        if (source, target) not in drawn:
            drawn.add((source, target))
            scene.edges.append((source, target, {}))
    return scene


def _box_attrs(
    graph: Graph, cid: str, box: dict[str, str | None], frame: _Frame | None
) -> dict[str, str]:
    ops = [graph.ops[o].op for o, b in box.items() if b == cid and o in graph.ops]
    params = [n for t, n in graph.tensors.items() if box[t] == cid and n.kind == "leaf_param"]
    lines = [graph.clusters[cid].label, "ops: " + ", ".join(dict.fromkeys(ops))]
    for p in params:
        name = (p.name or p.label).rsplit(".", 1)[-1]  # the box already says which module
        lines.append(f"{name} {_shape_text(p.shape)}")
    current = frame is not None and box.get(frame.current) == cid
    return {
        "label": "\n".join(lines),
        "shape": "box3d",
        "style": "filled",
        "fillcolor": COLORS["current" if current else "module"],
    }


def _cut(scene: _Scene, graph: Graph, max_nodes: float) -> None:
    """Past max_nodes even after collapsing, keep the nodes nearest the output: dot takes
    minutes on thousands of nodes, and a learner reads the end of the graph first."""
    if len(scene.nodes) <= max_nodes:
        return
    into: dict[str, list[str]] = {}
    for source, target, _ in scene.edges:
        into.setdefault(target, []).append(source)
    keep: dict[str, None] = {}
    queue = [n for n in scene.nodes if n == graph.root] or list(scene.nodes)[-1:]
    while queue and len(keep) < max_nodes - 1:
        n = queue.pop(0)
        if n not in keep and n in scene.nodes:
            keep[n] = None
            queue.extend(into.get(n, []))
    dropped = len(scene.nodes) - len(keep)
    more = "more"
    scene.nodes = {n: a for n, a in scene.nodes.items() if n in keep}
    scene.nodes[more] = {"label": f"... {dropped} earlier nodes", "shape": "plaintext"}
    scene.home[more] = None
    edges: dict[tuple[str, str], dict[str, str]] = {}
    for source, target, attrs in scene.edges:
        if target in keep:
            edges.setdefault((source if source in keep else more, target), attrs)
    scene.edges = [(source, target, attrs) for (source, target), attrs in edges.items()]
    scene.notes.append(
        f"only the {len(keep)} node{'s' * (len(keep) != 1)} nearest the output "
        f"{'are' if len(keep) != 1 else 'is'} drawn"
    )


def _emit_clusters(dot: graphviz.Digraph, graph: Graph, scene: _Scene) -> None:
    members: dict[str | None, list[str]] = {}
    for n in scene.nodes:
        members.setdefault(scene.home.get(n), []).append(n)
    children: dict[str | None, list[str]] = {}
    for cid, c in graph.clusters.items():
        children.setdefault(c.parent, []).append(cid)

    def occupied(cid: str) -> bool:
        return bool(members.get(cid)) or any(occupied(k) for k in children.get(cid, []))

    def emit(target: graphviz.Digraph, cid: str | None) -> None:
        for n in members.get(cid, []):
            target.node(n, **scene.nodes[n])
        for child in children.get(cid, []):
            if child in scene.nodes or not occupied(child):
                continue  # drawn as a box, or nothing of it is left to frame
            with target.subgraph(name=child) as sub:
                sub.attr(
                    label=graph.clusters[child].label,
                    style="rounded,dashed",
                    color="#8a8a8a",
                    fontcolor="#333333",
                    fontsize="10",
                    labeljust="l",
                    labelloc="t",
                )
                emit(sub, child)

    emit(dot, None)


def _caption_and_legend(caption: str, notes: list[str], present: set[str]) -> str:
    """The graph's label, under the drawing: caption and notes, then a legend of what this
    drawing shows (kinds of node, module boxes or frames, the step being animated)."""
    kinds = {k: text for k, text in LEGEND.items() if k in present}
    cells = "".join(
        f'<td bgcolor="{COLORS.get(k, "#ffffff")}" border="1"{LEGEND_STYLE.get(k, "")}>'
        f"{html.escape(text)}</td>"
        for k, text in kinds.items()
    )
    rows = [
        f'<tr><td colspan="{len(kinds)}">{html.escape(line)}</td></tr>'
        for line in [caption, *notes]
        if line
    ]
    return (
        f'<<table border="0" cellspacing="4" cellpadding="3">{"".join(rows)}'
        f"<tr>{cells}</tr></table>>"
    )


# --- the backward pass, step by step ------------------------------------------------------------

# Ops whose output element i depends only on input element i: their local derivative is a
# number per element (a diagonal Jacobian), which a table can show. Read off the table's rows.
ELEMENTWISE = rules.ELEMENTWISE


@dataclass
class _Step:
    node: Tensor
    upstream: Any
    contributions: list[tuple[int, Tensor, Any]]


def _steps(root: Tensor, grad: Any, accumulate: bool, who: str) -> list[_Step]:
    """Run the engine's backward and keep what each step did (in the engine's own order)."""
    seed = root._seed(grad, who, False)
    steps: list[_Step] = []
    engine.backward(
        [root],
        [seed],
        accumulate=accumulate,
        on_step=lambda node, up, contribs: steps.append(_Step(node, up, contribs)),
    )
    return steps


def _plain(value: Any) -> Any:
    """A Python number for one-element values (what a learner compares with), else the array."""
    array = np.asarray(getattr(value, "_data", value))  # a Tensor's numbers, graph or not
    return array.reshape(()).item() if array.size == 1 else array


def _local_derivative(op: str, upstream: Any, contribution: Any) -> Any:
    """contribution / upstream, where that is the local derivative: for a scalar node (a row
    of the Jacobian) or an elementwise op without broadcasting (its diagonal); else None."""
    up = np.asarray(getattr(upstream, "_data", upstream))
    c = np.asarray(getattr(contribution, "_data", contribution))
    if not (up.size == 1 or (op in ELEMENTWISE and up.shape == c.shape)):
        return None
    if np.any(up == 0):  # the derivative is not recoverable where nothing flows
        return None
    return _plain(c / up)


def explain_backward(
    root: Tensor,
    grad: Any = None,
    *,
    print_rows: bool = False,
    accumulate: bool = False,
    model: Any = None,
    names: dict[int, str] | None = None,
) -> BackwardRows:
    """Run backward from `root` and return what each step did, as rows that display as a
    table (in a script: `print(explain_backward(loss))`, or print_rows=True).

    One row per (step, parent), in the engine's order: `step` (1, 2, ...), `node` (the tensor
    processed), `op`, `formula` ("c = mul(a, b)"), `upstream` (the gradient arriving at the
    node), `input` (the argument position), `parent`, `local` (the local derivative where it
    is a number or an elementwise array; None where only the vector-Jacobian product exists,
    as for matmul), `derivative` (the same as a formula in the op's input names, from its
    row of the table: "cos(x)" for sin, "b" for mul's input a), `contribution` (what is
    added into the parent's gradient: upstream times local), `total` (the parent's gradient
    so far), `paths` (contributions received so far), `uses` (how many it will receive:
    paths > 1 is the chain rule summing over paths) and `leaf` (the parent is a leaf that
    requires grad). One-element values are Python floats, others arrays. accumulate=False
    touches no `.grad`; True fills them as backward() does.
    """
    check_root(root, "explain_backward")
    graph = trace(root, names=names, model=model)
    uses = _uses(graph)
    totals: dict[str, Any] = {}
    paths: dict[str, int] = {}
    rows = BackwardRows()
    for number, step in enumerate(_steps(root, grad, accumulate, "explain_backward"), 1):
        assert step.node._op is not None  # a step is a computed node
        op = step.node._op.name  # the primitive: its rule says whether `local` is a number
        formula = _formula(graph, step.node)
        for index, parent, contribution in step.contributions:
            pid = node_id(parent)
            totals[pid] = contribution if pid not in totals else totals[pid] + contribution
            paths[pid] = paths.get(pid, 0) + 1
            rows.append(
                {
                    "step": number,
                    "node": graph.tensors[node_id(step.node)].label,
                    "op": op_name(step.node),
                    "formula": formula,
                    "upstream": _plain(step.upstream),
                    "input": index,
                    "parent": graph.tensors[pid].label,
                    "local": _local_derivative(op, step.upstream, contribution),
                    "derivative": _formula_of(step.node._op, index),
                    "contribution": _plain(contribution),
                    "total": _plain(totals[pid]),
                    "paths": paths[pid],
                    "uses": uses[pid],
                    "leaf": graph.tensors[pid].kind == "leaf_param",
                }
            )
    if print_rows:
        print(format_rows(rows))
    return rows


def _formula_of(op: Any, index: int) -> str | None:
    """The row's readable local derivative for input `index` ("cos(x)" for sin), or None
    for an op outside the table (a checkpoint's)."""
    formula = getattr(op, "formula", None)
    if not formula:
        return None
    return formula[min(index, len(formula) - 1)]  # a variadic row has one for all inputs


def _formula(graph: Graph, t: Tensor) -> str:
    args = ", ".join(graph.tensors[a].label for a in graph.inputs(f"op{id(t)}"))
    return f"{graph.tensors[node_id(t)].label} = {op_name(t)}({args})"


def _uses(graph: Graph) -> dict[str, int]:
    """How many gradient contributions each tensor receives: one per time an op reads it."""
    uses: dict[str, int] = {}
    for e in graph.edges:
        if e.index is not None:
            uses[e.source] = uses.get(e.source, 0) + 1
    return uses


def _text(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else summarize(value)


class BackwardRows(list):
    """explain_backward's rows: a list of dicts that shows itself as the table, so that a
    REPL or notebook cell prints the table once, not a wall of dicts."""

    def __repr__(self) -> str:
        return format_rows(self)

    __str__ = __repr__


def backward_steps(root: Tensor, grad: Any = None) -> BackwardRows:
    """The rows of explain_backward without printing (the name earlier versions used)."""
    return explain_backward(root, grad)


def format_rows(rows: list[dict[str, Any]]) -> str:
    """explain_backward's rows as an aligned table, and the leaves' gradients at the end."""
    table = [
        ["step", "node = op(inputs)", "upstream", "", "to", "local", "adds", "grad so far", ""]
    ]
    for i, r in enumerate(rows):
        first = i == 0 or rows[i - 1]["step"] != r["step"]  # the step's columns, once
        note = ""
        if r["uses"] > 1:
            note = f"path {r['paths']} of {r['uses']}" + (": summed" if r["paths"] > 1 else "")
        table.append(
            [
                str(r["step"]) if first else "",
                r["formula"] if first else "",
                _text(r["upstream"]) if first else "",
                "->",
                r["parent"],
                f"VJP of {r['op']}" if r["local"] is None else _text(r["local"]),
                _text(r["contribution"]),
                _text(r["total"]),
                note,
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]
    lines.insert(1, "-" * max(len(line) for line in lines))
    finals = {r["parent"]: r["total"] for r in rows if r["leaf"]}
    if finals:
        root = rows[0]["node"]
        lines.append(
            "gradients: "
            + ", ".join(f"d{root}/d{leaf} = {_text(total)}" for leaf, total in finals.items())
        )
    return "\n".join(lines)


# --- animation ------------------------------------------------------------------------------------


def animate_backward(
    root: Tensor,
    path: str | os.PathLike,
    *,
    fps: float = 1.0,
    format: str | Sequence[str] | None = None,  # noqa: A002 - as in render
    model: Any = None,
    names: dict[int, str] | None = None,
    rankdir: str = "auto",
    group_by_module: bool | str = False,
    max_nodes: int | None = 300,
) -> Path | list[Path]:
    """Draw the backward pass, one frame per step: the node being processed in orange, the
    gradient it sends along each input edge, and every gradient known so far ("?" before
    it arrives; "so far" while only some of its paths have delivered).

    format "gif": an animated GIF (frames rendered to PNG by dot); "html": one self-contained
    page of SVG frames with a slider; ("gif", "html"): both. Without a format, a path ending
    in .html or .gif says which (else "gif"). Returns the path or paths.
    Nothing is written into `.grad`.
    """
    check_root(root, "animate_backward")
    if format is None:  # "backward.html" wrote a GIF named backward.html.gif
        format = "html" if Path(path).suffix.lower() == ".html" else "gif"  # noqa: A001
    formats = [format] if isinstance(format, str) else list(format)
    for f in formats:
        if f not in ("gif", "html"):
            raise ValueError(f"animate_backward: format must be 'gif' or 'html', got {f!r}")
    _check_rankdir(rankdir, "animate_backward")
    if fps <= 0:
        raise ValueError(f"animate_backward: fps must be positive, got {fps}")
    limit = _check_max_nodes(max_nodes, "animate_backward")
    graph = trace(root, names=names, model=model)
    options = _Options(
        rankdir, True, True, "cluster" if group_by_module is True else group_by_module, limit
    )
    frames = _frames(graph, _steps(root, None, False, "animate_backward"))
    sources = [_draw(graph, options, frame).source for frame in frames]
    written = []
    for f in formats:
        target = _with_suffix(path, f)
        if f == "html":
            svgs = [_run_dot(s, "svg").decode() for s in sources]
            target.write_text(_slider_page(svgs, [fr.caption for fr in frames]), encoding="utf-8")
        else:
            _write_gif(target, [_run_dot(s, "png") for s in sources], fps)
        written.append(target)
    return written[0] if isinstance(format, str) else written


def _frames(graph: Graph, steps: list[_Step]) -> list[_Frame]:
    uses = _uses(graph)
    totals: dict[str, Any] = {}
    received: dict[str, int] = {}
    known: dict[str, str] = {}
    frames = []
    for number, step in enumerate(steps, 1):
        tid = node_id(step.node)
        known[tid] = summarize(step.upstream)  # complete: every path has delivered
        flows = {}
        sends = []
        for index, parent, contribution in step.contributions:
            pid = node_id(parent)
            totals[pid] = contribution if pid not in totals else totals[pid] + contribution
            received[pid] = received.get(pid, 0) + 1
            known[pid] = summarize(totals[pid])
            if received[pid] < uses[pid]:
                known[pid] += f" so far ({received[pid]} of {uses[pid]})"
            flows[(pid, index)] = summarize(contribution)
            sends.append(f"{graph.tensors[pid].label} += {summarize(contribution)}")
        caption = (
            f"step {number} of {len(steps)}: {_formula(graph, step.node)}, upstream "
            f"gradient {summarize(step.upstream)}: " + ", ".join(sends)
        )
        frames.append(_Frame(tid, dict(known), flows, caption))
    return frames


def _write_gif(path: Path, pngs: list[bytes], fps: float) -> None:
    import imageio.v2 as imageio  # only animations need it

    images = [imageio.imread(io.BytesIO(png)) for png in pngs]
    height = max(im.shape[0] for im in images)
    width = max(im.shape[1] for im in images)
    padded: list[npt.ArrayLike] = []
    for im in images:
        rgb = im[..., :3] if im.ndim == 3 else np.stack([im] * 3, axis=-1)
        # Frames differ a little in size as gradients fill in: centre each on a white canvas
        # of the largest size, since a GIF has one size for all frames.
        canvas = np.full((height, width, 3), 255, dtype=np.uint8)
        top, left = (height - rgb.shape[0]) // 2, (width - rgb.shape[1]) // 2
        canvas[top : top + rgb.shape[0], left : left + rgb.shape[1]] = rgb
        padded.append(canvas)
    imageio.mimsave(path, padded, duration=1000.0 / fps, loop=0)  # duration in ms per frame


def _slider_page(svgs: list[str], captions: list[str]) -> str:
    # Graphviz gives every SVG the same element ids; prefix them so that the frames, all in
    # one document, do not clash.
    bodies = [svg.replace(' id="', f' id="f{i}_') for i, svg in enumerate(svgs)]
    frames = "\n".join(
        f'<div class="frame" data-caption="{html.escape(caption)}"'
        f"{'' if i == 0 else ' hidden'}>{body}</div>"
        for i, (body, caption) in enumerate(zip(bodies, captions, strict=True))
    )
    last = len(svgs) - 1
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Backward pass, step by step</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }}
.frame svg {{ max-width: 100%; height: auto; }}
#caption {{ font-size: 1.05em; min-height: 2.5em; }}
</style></head>
<body>
<h2>Backward pass, step by step</h2>
<p>
<button id="prev" type="button">&larr; previous</button>
<input id="slider" type="range" min="0" max="{last}" value="0" style="width: 50%">
<button id="next" type="button">next &rarr;</button>
step <span id="number">1</span> of {len(svgs)}
</p>
<p id="caption"></p>
{frames}
<script>
const frames = document.querySelectorAll(".frame");
const slider = document.getElementById("slider");
function show(i) {{
  i = Math.max(0, Math.min({last}, i));
  slider.value = i;
  frames.forEach((f, k) => f.hidden = k !== i);
  document.getElementById("number").textContent = i + 1;
  document.getElementById("caption").textContent = frames[i].dataset.caption;
}}
slider.addEventListener("input", () => show(Number(slider.value)));
document.getElementById("prev").addEventListener("click", () => show(Number(slider.value) - 1));
document.getElementById("next").addEventListener("click", () => show(Number(slider.value) + 1));
document.addEventListener("keydown", e => {{
  if (e.key === "ArrowLeft") show(Number(slider.value) - 1);
  if (e.key === "ArrowRight") show(Number(slider.value) + 1);
}});
show(0);
</script>
</body></html>
"""
