"""Backpropagation you can step through: one self-contained, offline HTML page.

    from autodiff.viz import page
    page(loss, "backward.html")        # open it in a browser (file:// works, no network)
    page(loss)                         # in Jupyter: the page itself, in the cell's output

The page holds the graph as inline SVG (laid out by the `dot` the drawings use), every step
as JSON data and a small script: next / previous / play, a slider, the arrow keys, and three
phases, the forward pass, the backward pass and forward mode (tangents). A backward step shows
the chain rule at one node: the upstream gradient, each input's local derivative (a formula in
MathML and, where it is a number per element, its numbers), their product, the running sum
when several paths reach a tensor, and the sum that undoes broadcasting. Every number comes
from the engine: the backward pass through its `on_step` hook, the forward-mode tangents from
the ops' own JVP rules on the recorded values. The script only shows them.

Module calls are drawn collapsed, one box each, and open on a click; a small tensor op (a
2x3 @ 3x2 matmul, a broadcast add, a sum) can be opened as its graph of scalars.
"""

from __future__ import annotations

import html
import inspect
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from . import engine
from .composites import op_name
from .dot import COLORS, FONT, _auto_rankdir, _box_of, _check_max_nodes, _run_dot
from .graph import Graph, node_id, trace
from .tensor import Tensor

__all__ = ["Page", "page", "to_mathml"]

# --- formulas: plain text to MathML ------------------------------------------------------------


def _formula(op: Any, index: int) -> str | None:
    """The local derivative of `op` for input `index` as plain text, or None if unknown:
    the `formula` column of the op's row in the rules table (one entry per input)."""
    column = getattr(op, "formula", None)
    if column is None or index >= len(column):
        return None
    return column[index]


def _input_names(op: Any, count: int) -> list[str]:
    """The names the formula uses for the op's inputs: the parameter names of the row's VJP
    rules (`lambda g, out, a, b: ...` names them a and b); x0, x1, ... when they say none."""
    names: list[str] = []
    rules = getattr(op, "vjps", ())
    if rules and not getattr(op, "variadic", False):
        parameters: Iterable[inspect.Parameter]
        try:
            parameters = inspect.signature(rules[0]).parameters.values()
        except (TypeError, ValueError):
            parameters = []
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        names = [p.name for p in parameters if p.kind in positional][2:]  # after g and out
    return [names[i] if i < len(names) else f"x{i}" for i in range(count)]


_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)|([A-Za-z_][A-Za-z_0-9]*)|(\S))")
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}
_MO = {"+": "+", "-": "&#x2212;", "*": "&#x22C5;"}


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:  # pragma: no cover - the pattern matches any non-space character
            break
        number, name, other = m.groups()
        if other is not None and other not in "+-*/^(),":
            raise ValueError(f"to_mathml: unexpected {other!r} at {m.start(3)} in {text!r}")
        kind = "num" if number else "id" if name else other
        out.append((kind, number or name or other, m.start(m.lastindex or 0)))
        pos = m.end()
    return out


class _Parser:
    """Recursive descent: expr = term (+|- term)*; term = unary (*|/ unary)*;
    unary = -unary | power; power = atom (^ unary)?; atom = number | name | name(args) | (expr).
    The tree is tuples: ("num", s), ("id", s), ("neg", x), ("bin", op, a, b), ("call", f, args).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> str | None:
        return self.toks[self.i][0] if self.i < len(self.toks) else None

    def take(self, kind: str) -> str:
        if self.peek() != kind:
            where = self.toks[self.i][2] if self.i < len(self.toks) else len(self.text)
            found = self.toks[self.i][1] if self.i < len(self.toks) else "the end"
            raise ValueError(
                f"to_mathml: expected {kind!r} at {where}, found {found!r} in {self.text!r}"
            )
        self.i += 1
        return self.toks[self.i - 1][1]

    def parse(self) -> tuple:
        if not self.toks:
            raise ValueError("to_mathml: empty formula")
        tree = self.expr()
        if self.i != len(self.toks):
            where, found = self.toks[self.i][2], self.toks[self.i][1]
            raise ValueError(
                f"to_mathml: expected an operator at {where}, found {found!r} in {self.text!r}"
            )
        return tree

    def expr(self) -> tuple:
        tree = self.term()
        while self.peek() in ("+", "-"):
            op = self.take(self.peek())  # type: ignore[arg-type]
            tree = ("bin", op, tree, self.term())
        return tree

    def term(self) -> tuple:
        tree = self.unary()
        while self.peek() in ("*", "/"):
            op = self.take(self.peek())  # type: ignore[arg-type]
            tree = ("bin", op, tree, self.unary())
        return tree

    def unary(self) -> tuple:
        if self.peek() == "-":
            self.take("-")
            return ("neg", self.unary())
        return self.power()

    def power(self) -> tuple:
        base = self.atom()
        if self.peek() == "^":
            self.take("^")
            return ("bin", "^", base, self.unary())  # right-associative: a^b^c = a^(b^c)
        return base

    def atom(self) -> tuple:
        kind = self.peek()
        if kind == "num":
            return ("num", self.take("num"))
        if kind == "id":
            name = self.take("id")
            if self.peek() != "(":
                return ("id", name)
            self.take("(")
            args = [self.expr()]
            while self.peek() == ",":
                self.take(",")
                args.append(self.expr())
            self.take(")")
            return ("call", name, args)
        if kind == "(":
            self.take("(")
            tree = self.expr()
            self.take(")")
            return tree
        self.take("a number, a name or (")
        raise AssertionError("unreachable")  # pragma: no cover


def _prec(tree: tuple) -> int:
    """How tightly a subtree binds: 1 sums, 2 products and negation, 5 a fraction or a power
    (boxes that need no parentheses, except as the base of a power), 6 a name, number or call."""
    if tree[0] == "bin":
        return 5 if tree[1] in ("/", "^") else _PREC[tree[1]]
    return 2 if tree[0] == "neg" else 6


def _ml(tree: tuple, need: int = 0) -> str:
    kind = tree[0]
    if kind == "num":
        body = f"<mn>{tree[1]}</mn>"
    elif kind == "id":
        body = f"<mi>{html.escape(tree[1])}</mi>"
    elif kind == "neg":
        body = f"<mo>&#x2212;</mo>{_ml(tree[1], 2)}"
    elif kind == "call":
        args = "<mo>,</mo>".join(_ml(a) for a in tree[2])
        body = (
            f"<mi>{html.escape(tree[1])}</mi><mo>&#x2061;</mo>"
            f"<mrow><mo>(</mo>{args}<mo>)</mo></mrow>"
        )
    else:
        op, a, b = tree[1], tree[2], tree[3]
        if op == "/":
            body = f"<mfrac><mrow>{_ml(a)}</mrow><mrow>{_ml(b)}</mrow></mfrac>"
        elif op == "^":
            body = f"<msup><mrow>{_ml(a, 6)}</mrow><mrow>{_ml(b)}</mrow></msup>"
        else:
            # a - (b + c) and a * (b + c) keep their parentheses; a + (b + c) needs none.
            right = _PREC[op] + (op in ("-", "*"))
            body = f"{_ml(a, _PREC[op])}<mo>{_MO[op]}</mo>{_ml(b, right)}"
    if _prec(tree) < need:
        return f"<mrow><mo>(</mo>{body}<mo>)</mo></mrow>"
    return f"<mrow>{body}</mrow>" if kind in ("bin", "neg") else body


def to_mathml(text: str, lhs: tuple[str, str] | None = None) -> str:
    """A plain-text formula as MathML markup: identifiers, numbers, + - * / ^, function calls
    and parentheses (`1 - out^2`, `exponent*x^(exponent - 1)`, `cos(x)`). With lhs=(out, x)
    it reads d out / d x = formula. Raises ValueError naming the position of a syntax error."""
    body = _ml(_Parser(text).parse())
    if lhs is not None:
        top, bottom = (html.escape(s) for s in lhs)
        body = (
            f"<mfrac><mrow><mo>&#x2202;</mo><mi>{top}</mi></mrow>"
            f"<mrow><mo>&#x2202;</mo><mi>{bottom}</mi></mrow></mfrac><mo>=</mo>{body}"
        )
    return f'<math display="inline">{body}</math>'


# --- numbers as JSON -----------------------------------------------------------------------------

# Arrays of up to this many elements are written out in full; larger ones as a summary (shape,
# min, mean, max and the first few values), which keeps a 784-128-10 network's page small.
FULL_ELEMENTS = 64
_HEAD = 6


def _num(x: Any) -> Any:
    """One number for JSON: 6 significant digits (what the page shows); inf and NaN as text."""
    if isinstance(x, (bool, np.bool_)):
        return int(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    x = float(x)
    if math.isfinite(x):
        return float(f"{x:.6g}")
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def _array(value: Any, full: int) -> dict[str, Any] | None:
    """An array for the page: {"s": shape, "d": flat values} or, past `full` elements,
    {"s": shape, "min", "mean", "max", "head": the first values}."""
    if value is None:
        return None
    a = np.asarray(getattr(value, "_data", value))
    if a.dtype.kind == "c":
        a = a.real
    out: dict[str, Any] = {"s": list(a.shape)}
    flat = a.reshape(-1)
    if a.size <= full:
        out["d"] = [_num(v) for v in flat.tolist()]
        return out
    f = flat.astype(np.float64)
    with np.errstate(all="ignore"):
        out.update(
            min=_num(np.min(f)),
            mean=_num(np.mean(f)),
            max=_num(np.max(f)),
            head=[_num(v) for v in flat[:_HEAD].tolist()],
        )
    return out


def _shape_text(shape: tuple[int, ...]) -> str:
    return "scalar" if shape == () else "x".join(map(str, shape))


# --- one graph's data: nodes, steps of the three phases, drawings ------------------------------

# Ops whose output element i depends on input element i only (after broadcasting): their
# local derivative is one number per element, which the page can show.
_ELEMENTWISE = frozenset(
    {
        "add", "sub", "mul", "div", "neg", "pow", "pow_tensor", "exp", "log", "tanh",
        "sigmoid", "relu", "abs", "where", "cast", "sin", "cos", "sinh", "cosh", "tan",
        "log1p", "expm1", "softplus", "erf", "maximum", "minimum",
    }
)  # fmt: skip


@dataclass
class _Limits:
    full: int = FULL_ELEMENTS
    max_nodes: float = 300
    scalar_elements: int = 12  # the largest input or output a "scalar view" expands
    # Bytes of SVG past which a module call gets no drawing of its own (clicking its box
    # opens the drawing of every node instead): LeNet-5's 12 views were 365 KB of SVG.
    view_budget: int = 160_000
    scalar_budget: int = 80_000  # bytes of the scalar views (drawings and data) together


@dataclass
class _GraphData:
    key: str
    title: str
    graph: Graph
    tensors: dict[str, Tensor]
    short: dict[str, str] = field(default_factory=dict)  # graph id -> page id (n0, o0, b0)
    grads: dict[str, Any] = field(default_factory=dict)  # graph id -> its gradient (arrays)
    mathml: dict[str, int] = field(default_factory=dict)  # each formula once: index in "ml"
    data: dict[str, Any] = field(default_factory=dict)  # what the page's script reads

    def formula(self, op: Any, index: int, names: list[str]) -> int | None:
        """The MathML of op's local derivative for input `index`, as an index into the
        page's formula list (a 200-node page repeats a handful of formulas)."""
        text = _formula(op, index)
        if not text:
            return None
        try:
            markup = to_mathml(text, ("out", names[index]))
        except ValueError:
            return None  # a malformed table entry must not cost the whole page
        return self.mathml.setdefault(markup, len(self.mathml))


def _tensors_of(roots: list[Tensor]) -> dict[str, Tensor]:
    """graph id -> tensor, for everything the roots depend on (as `trace` walks it)."""
    found: dict[str, Tensor] = {}
    for root in roots:
        computed = engine.toposort(root) if root.requires_grad else [root]
        for t in computed:
            for p in t.parents:
                found.setdefault(node_id(p), cast(Tensor, p))
            found.setdefault(node_id(t), cast(Tensor, t))
    return found


def _local(op: Any, index: int, parents: tuple, out: Any, params: Mapping[str, Any]) -> Any:
    """The local derivative of an elementwise op for one input, as numbers (output-shaped):
    the op's own JVP rule applied to a tangent of ones, which is exact (no division by the
    upstream gradient, which may be 0). None for other ops (their Jacobian is a matrix)."""
    if op.name not in _ELEMENTWISE or op.jvps is None or op.variadic or index >= len(op.jvps):
        return None
    data = [p._data for p in parents]
    with np.errstate(divide="ignore", invalid="ignore"):
        local = op.jvps[index](
            np.ones_like(data[index], dtype=np.result_type(out)), out, *data, **params
        )
    return np.broadcast_to(local, np.shape(out))


def _unbroadcast_axes(out_shape: tuple[int, ...], shape: tuple[int, ...]) -> list[int]:
    """The axes the engine sums to bring an output-shaped gradient to an input's shape (as
    engine.unbroadcast does)."""
    extra = len(out_shape) - len(shape)
    return list(range(extra)) + [
        extra + i for i, n in enumerate(shape) if n == 1 and out_shape[extra + i] != 1
    ]


def _backward_steps(gd: _GraphData, roots: list[Tensor], seeds: list[Any], lim: _Limits) -> dict:
    """Run the engine's backward pass (nothing written into .grad) and keep each step."""
    graph, short = gd.graph, gd.short
    recorded: list[tuple[Tensor, Any, list]] = []
    engine.backward(
        roots,
        seeds,
        accumulate=False,
        on_step=lambda node, up, contribs: recorded.append((node, up, contribs)),
    )
    uses: dict[str, int] = {}
    for e in graph.edges:
        if e.index is not None:
            uses[e.source] = uses.get(e.source, 0) + 1
    totals: dict[str, Any] = {}
    paths: dict[str, int] = {}
    grads: dict[str, Any] = {node_id(r): s for r, s in zip(roots, seeds, strict=True)}
    steps = []
    for node, upstream, contribs in recorded:
        tid = node_id(node)
        grads[tid] = upstream
        op: Any = node._op  # set on every node backward processes
        params = node._params
        parents = node.parents
        names = _input_names(op, len(parents))
        out_shape = np.shape(node._data)
        parts = []
        for index, parent, contribution in contribs:
            pid = node_id(parent)
            totals[pid] = contribution if pid not in totals else totals[pid] + contribution
            paths[pid] = paths.get(pid, 0) + 1
            text = _formula(op, index)
            formula = gd.formula(op, index, names)
            local = _local(op, index, parents, node._data, params)
            shape = np.shape(parent._data)
            part: dict[str, Any] = {
                "i": index,
                "p": short[pid],
                "name": names[index],
                "f": text,
                "ml": formula,
                "local": _array(local, lim.full),
                "prod": _array(contribution, lim.full),
                "total": _array(totals[pid], lim.full),
                "path": paths[pid],
                "paths": uses.get(pid, 1),
            }
            if shape != out_shape and local is not None:
                # Broadcasting: upstream x local has the output's shape; the engine sums it
                # down to the input's shape. The product before that sum, by the op's rule.
                rule = op.vjps[index]
                parent_data = [p._data for p in parents]
                with np.errstate(divide="ignore", invalid="ignore"):
                    raw = rule(upstream, node._data, *parent_data, **params)
                part["raw"] = _array(np.broadcast_to(raw, out_shape), lim.full)
                part["axes"] = _unbroadcast_axes(out_shape, shape)
            parts.append(part)
        steps.append({"n": short[tid], "up": _array(upstream, lim.full), "parts": parts})
    for pid, total in totals.items():
        grads.setdefault(pid, total)  # leaves: their gradient is the sum of all paths
    return {"steps": steps, "grads": grads}


def _tangent_steps(gd: _GraphData, wrt: Tensor | None, lim: _Limits) -> dict[str, Any]:
    """Forward mode over the recorded graph: the tangent of `wrt` is ones, every other leaf's
    zero, and each node's tangent is the sum over its inputs of the op's JVP rule applied to
    that input's tangent (the rules `autodiff.jvp` uses, on the values the graph recorded)."""

    graph, tensors, short = gd.graph, gd.tensors, gd.short
    # By default the first leaf the computation read (x1 in x1*w1 + x2*w2 + b).
    leaves = [
        p
        for tid in graph.tensors
        if f"op{tid[1:]}" in graph.ops
        for p in graph.inputs(f"op{tid[1:]}")
        if graph.tensors[p].kind == "leaf_param"
    ]
    if wrt is None:
        if not leaves:
            return {"steps": [], "wrt": None, "tangents": {}, "note": "no leaf requires grad"}
        seed_id = leaves[0]
    else:
        seed_id = node_id(wrt)
        if seed_id not in graph.tensors:
            raise ValueError("page: wrt= must be a tensor the graph uses")
    seed = tensors[seed_id]
    tangents: dict[str, Any] = {
        seed_id: np.ones_like(seed._data, dtype=np.result_type(seed._data, np.float32))
    }
    steps: list[dict[str, Any]] = []
    note = ""
    for tid in graph.tensors:
        t = tensors[tid]
        if t._op is None or tid == seed_id:
            continue
        op, params, parents = t._op, t._params, t.parents
        ts = [tangents.get(node_id(p)) for p in parents]
        if all(x is None for x in ts) or np.result_type(t._data).kind != "f":
            continue
        if op.jvps is None:
            note = f"forward mode stops at {graph.tensors[tid].label}: {op.name} has no JVP rule"
            break
        data = [p._data for p in parents]
        names = _input_names(op, len(parents))
        parts = []
        total = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if op.variadic:
                filled = [
                    np.zeros_like(d) if x is None else x for d, x in zip(data, ts, strict=True)
                ]
                total = op.jvps[0](filled, t._data, *data, **params)
                parts = [
                    {"i": i, "p": short[node_id(p)], "name": names[i], "tan": _array(x, lim.full)}
                    for i, (p, x) in enumerate(zip(parents, ts, strict=True))
                    if x is not None
                ]
            else:
                for i, (p, x) in enumerate(zip(parents, ts, strict=False)):
                    if x is None or i >= len(op.jvps):
                        continue
                    contribution = op.jvps[i](x, t._data, *data, **params)
                    total = contribution if total is None else total + contribution
                    formula = gd.formula(op, i, names)
                    parts.append(
                        {
                            "i": i,
                            "p": short[node_id(p)],
                            "name": names[i],
                            "ml": formula,
                            "local": _array(_local(op, i, parents, t._data, params), lim.full),
                            "tan": _array(x, lim.full),
                            "prod": _array(engine.fit_tangent(contribution, t._data), lim.full),
                        }
                    )
        tangents[tid] = engine.fit_tangent(total, t._data)
        steps.append({"n": short[tid], "parts": parts, "tan": _array(tangents[tid], lim.full)})
    return {"steps": steps, "wrt": short[seed_id], "tangents": tangents, "note": note}


def _collect(
    gd: _GraphData, roots: list[Tensor], seeds: list[Any], wrt: Tensor | None, lim: _Limits
) -> None:
    graph, tensors = gd.graph, gd.tensors
    for k, tid in enumerate(graph.tensors):
        gd.short[tid] = f"n{k}"
        gd.short[f"op{tid[1:]}"] = f"o{k}"
    for k, cid in enumerate(graph.clusters):
        gd.short[cid] = f"b{k}"
    back = _backward_steps(gd, roots, seeds, lim)
    gd.grads = back["grads"]
    fwd = _tangent_steps(gd, wrt, lim)
    nodes = {}
    for tid, n in graph.tensors.items():
        t = tensors[tid]
        op_id = f"op{tid[1:]}"
        entry: dict[str, Any] = {
            "l": n.label,
            "s": list(n.shape),
            "dt": n.dtype,
            "k": n.kind,
            "v": _array(t._data, lim.full),
            "g": _array(back["grads"].get(tid), lim.full),
            "t": _array(fwd["tangents"].get(tid), lim.full),
        }
        if op_id in graph.ops:
            o = graph.ops[op_id]
            entry["op"] = o.op
            if o.params:
                entry["pa"] = o.params_text
            entry["in"] = [gd.short[p] for p in graph.inputs(op_id)]
            entry["names"] = _input_names(t._op, len(entry["in"]))
        nodes[gd.short[tid]] = entry
    gd.data = {
        "key": gd.key,
        "title": gd.title,
        "nodes": nodes,
        "order": [gd.short[tid] for tid in graph.tensors],
        "root": [gd.short[node_id(r)] for r in roots],
        "backward": back["steps"],
        "forward": [
            gd.short[tid] for tid, n in graph.tensors.items() if tensors[tid]._op is not None
        ],
        "tangent": fwd["steps"],
        "wrt": fwd["wrt"],
        "tnote": fwd["note"],
        "boxes": {gd.short[cid]: c.label for cid, c in graph.clusters.items()},
        "scalar": {},
        "views": [],
        "ml": list(gd.mathml),
    }


# --- drawings: one SVG per view (all nodes, modules collapsed, one module opened) ---------------

_ASSETS = Path(__file__).with_name("_page")


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _scene(gd: _GraphData, box: dict[str, str | None], frames: set[str]) -> dict[str, Any]:
    """The DOT source of one view: nodes whose box is None are drawn, others stand in their
    box; a tensor stays visible if something outside its box reads it. `frames`: the module
    calls drawn as dashed frames around their (visible) members."""

    graph, short = gd.graph, gd.short
    readers: dict[str, set[str | None]] = {}
    for e in graph.edges:
        if e.index is not None:
            readers.setdefault(e.source, set()).add(box.get(e.target))
    visible: dict[str, str] = {}
    lines: dict[str | None, list[str]] = {}  # frame (cluster id) -> its node lines

    def home(cid: str | None) -> str | None:
        while cid is not None and cid not in frames:
            cid = graph.clusters[cid].parent
        return cid

    for tid, n in graph.tensors.items():
        inside = box.get(tid)
        if inside is None or tid == graph.root or readers.get(tid, set()) - {inside}:
            visible[tid] = short[tid]
            value = f" = {_short_value(gd.tensors[tid])}" if math.prod(n.shape) == 1 else ""
            text = f"{n.label}{value}\n{_shape_text(n.shape)}" if n.shape else f"{n.label}{value}"
            attrs = f'label={_dot_text(text)} shape=box style="filled" fillcolor="{COLORS[n.kind]}"'
            if n.kind == "output":
                attrs += " penwidth=2"
            lines.setdefault(home(n.cluster), []).append(f"{short[tid]} [id=@{short[tid]} {attrs}]")
        else:
            visible[tid] = short[inside]
    for op_id, o in graph.ops.items():
        inside = box.get(op_id)
        if inside is None:
            visible[op_id] = short[op_id]
            text = o.op + (f"\n{o.params_text}" if o.params and len(o.params_text) <= 30 else "")
            attrs = f'label={_dot_text(text)} shape=ellipse style=filled fillcolor="{COLORS["op"]}"'
            attrs += ' margin="0.05,0.02" height=0.3'
            lines.setdefault(home(o.cluster), []).append(
                f"{short[op_id]} [id=@{short[op_id]} {attrs}]"
            )
        else:
            visible[op_id] = short[inside]
    boxes = list(dict.fromkeys(b for b in box.values() if b is not None))
    for cid in boxes:
        text = graph.clusters[cid].label + "\n(click to open)"
        attrs = f'label={_dot_text(text)} shape=box3d style=filled fillcolor="{COLORS["module"]}"'
        lines.setdefault(home(graph.clusters[cid].parent), []).append(
            f"{short[cid]} [id=@{short[cid]} {attrs}]"
        )
    edges = []
    drawn = set()
    for e in graph.edges:
        source, target = visible[e.source], visible[e.target]
        if source == target or (
            e.index is not None and short.get(box.get(e.source) or "") == target
        ):
            continue
        if (source, target, e.index) in drawn or (source, target, None) in drawn:
            continue
        several = (
            e.index is not None and len(graph.inputs(e.target)) > 1 and box.get(e.target) is None
        )
        drawn.add((source, target, e.index if several else None))
        edges.append(f"{source} -> {target}" + (f' [label="{e.index}"]' if several else ""))
    children: dict[str | None, list[str]] = {}
    for cid in frames:
        children.setdefault(home(graph.clusters[cid].parent), []).append(cid)

    def emit(cid: str | None, depth: int) -> list[str]:
        out = list(lines.get(cid, []))
        for child in sorted(children.get(cid, []), key=list(graph.clusters).index):
            inner = emit(child, depth + 1)
            if inner:
                label = _dot_text(graph.clusters[child].label)
                out += [
                    f"subgraph cluster_{short[child]} {{",
                    f"id=@{short[child]} label={label}",
                    'style="rounded,dashed" color="#8a8a8a" fontsize=10 labeljust=l',
                    *inner,
                    "}",
                ]
        return out

    body = emit(None, 0)
    count = sum(len(v) for v in lines.values())
    return {"body": body, "edges": edges, "where": visible, "count": count, "boxes": boxes}


def _short_value(t: Tensor) -> str:
    v = np.asarray(t._data).reshape(-1)[0]
    return f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v)


def _svg(gd: _GraphData, scene: dict[str, Any], prefix: str, rankdir: str) -> str:

    source = "\n".join(
        [
            "digraph page {",
            f'rankdir={rankdir} nodesep=0.25 ranksep=0.35 fontname="{FONT}" bgcolor=transparent',
            f'node [fontname="{FONT}" fontsize=10]',
            'edge [arrowsize=0.7 fontsize=9 fontcolor="#666666" color="#555555"]',
            *scene["body"],
            *scene["edges"],
            "}",
        ]
    ).replace("id=@", f"id={prefix}")
    svg = _run_dot(source, "svg").decode()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<!--.*?-->\n?", "", svg, flags=re.S)
    return re.sub(r"<title>.*?</title>\n?", "", svg)  # node names: noise, and bytes


def _views(gd: _GraphData, lim: _Limits) -> list[str]:
    """Fill gd.data["views"] (and the default view); return the SVG of each view."""

    graph = gd.graph
    boxes = _box_of(graph) if graph.clusters else {}
    boxed: dict[str, str | None] = {}
    for tid, n in graph.tensors.items():
        boxed[tid] = boxes.get(n.cluster) if n.cluster else None
    for op_id, o in graph.ops.items():
        boxed[op_id] = boxes.get(o.cluster) if o.cluster else None
    plans: list[tuple[str, dict[str, str | None], set[str]]] = []
    if len(graph) <= lim.max_nodes:
        plans.append(("every node", {}, set(graph.clusters)))
    if any(b is not None for b in boxed.values()):
        plans.insert(0, ("modules collapsed", boxed, set()))
        order = list(graph.clusters)  # the modules in the order they ran
        for cid in sorted({b for b in boxed.values() if b is not None}, key=order.index):
            opened = {k: (None if b == cid else b) for k, b in boxed.items()}
            inside = {c for c in graph.clusters if c == cid or boxes.get(c) == cid}
            plans.append((f"{graph.clusters[cid].label} opened", opened, inside))
    svgs: list[str] = []
    views = gd.data["views"]
    rankdir = _auto_rankdir(graph)
    for name, box, frames in plans:
        if name.endswith(" opened") and sum(map(len, svgs)) > lim.view_budget:
            continue
        scene = _scene(gd, box, frames)
        if scene["count"] > lim.max_nodes:
            continue
        prefix = f"{gd.key}v{len(views)}_"
        svgs.append(_svg(gd, scene, prefix, rankdir if not box else "TB"))
        short = gd.short
        where = {short[k]: v for k, v in scene["where"].items() if short[k] != v}
        views.append(
            {
                "label": name,
                "prefix": prefix,
                "where": where,
                "expand": {},
                "boxes": [gd.short[b] for b in scene["boxes"]],
            }
        )
    labels = [v["label"] for v in views]
    for v in views:
        for b in v.pop("boxes"):
            label = f"{graph.clusters[_long(gd, b)].label} opened"
            if label in labels:
                v["expand"][b] = labels.index(label)
            elif "every node" in labels:  # no drawing of its own: the one of every node
                v["expand"][b] = labels.index("every node")
    if "modules collapsed" in labels:
        gd.data["collapsed"] = labels.index("modules collapsed")
    if "every node" in labels:
        gd.data["all"] = labels.index("every node")
    gd.data["start"] = 0
    if not views:
        gd.data["message"] = (
            f"{len(graph)} nodes: too many to draw (max_nodes={lim.max_nodes:g})"
            + (
                ", even with each module call collapsed"
                if graph.clusters
                else " and no modules to collapse by"
            )
            + ". Every step and number is still here: step through them on the right."
        )
    elif len(graph) > lim.max_nodes:
        gd.data["message"] = ""
        views[0]["label"] += (
            f"; {len(graph)} nodes are too many to draw each (max_nodes={lim.max_nodes:g})"
        )
    return svgs


def _long(gd: _GraphData, short: str) -> str:
    return next(k for k, v in gd.short.items() if v == short)


# --- the scalar view: one small tensor op as its graph of scalars ------------------------------

_SCALAR_OPS: dict[str, Any] = {
    "matmul": lambda a, b, **_: np.matmul(a, b),
    "add": lambda a, b, **_: a + b,
    "sub": lambda a, b, **_: a - b,
    "mul": lambda a, b, **_: a * b,
    "div": lambda a, b, **_: a / b,
    "sum": lambda x, *, axis, keepdims, **_: np.add.reduce(x, axis=axis, keepdims=keepdims),
}


def _scalar_view(
    gd: _GraphData, tid: str, upstream: Any, key: str, lim: _Limits
) -> _GraphData | None:
    """The op that made `tid` redone on scalars (each element its own tensor), micrograd
    style, so its backward pass runs element by element: for the op's real upstream gradient
    its leaves get exactly the gradients the tensor op sent its inputs."""
    t = gd.tensors[tid]
    op = t._op
    if op is None or op.name not in _SCALAR_OPS or upstream is None:
        return None
    parents = t.parents
    sizes = [np.size(p._data) for p in parents] + [np.size(t._data)]
    if max(sizes) > lim.scalar_elements or max(sizes) == 1 or np.ndim(t._data) > 2:
        return None
    labels = [gd.graph.tensors[node_id(p)].label for p in parents]
    arrays = []
    for p, name in zip(parents, labels, strict=True):
        a = np.empty(np.shape(p._data), dtype=object)
        for idx in np.ndindex(a.shape):
            s = Tensor(np.asarray(p._data)[idx], requires_grad=p.requires_grad)
            s.name = f"{name}[{','.join(map(str, idx))}]" if idx else name
            a[idx] = s
        arrays.append(a)
    params = {k: v for k, v in t._params.items() if k != "saved"}
    result = _SCALAR_OPS[op.name](*arrays, **params)
    if isinstance(result, Tensor):
        result, single = np.empty((), dtype=object), result
        result[()] = single
    out_label = gd.graph.tensors[tid].label
    roots, seeds = [], []
    up = np.asarray(upstream)
    for idx in np.ndindex(result.shape):
        r = result[idx]
        r.name = f"{out_label}[{','.join(map(str, idx))}]" if idx else out_label
        if r.requires_grad:
            roots.append(r)
            seeds.append(up[idx] if up.shape else up[()])
    if not roots:
        return None
    tensors = _tensors_of(roots)
    counters: dict[str, int] = {}
    for s in sorted(tensors.values(), key=lambda s: s._clock):
        if s._op is not None and s.name is None:
            counters[s._op.name] = counters.get(s._op.name, 0) + 1
            s.name = f"{s._op.name}{counters[s._op.name]}"
    graph = _merged_trace(roots)
    title = f"scalar view of {out_label} = {op_name(t)}({', '.join(labels)})"
    sub = _GraphData(key, title, graph, tensors)
    _collect(sub, roots, seeds, None, lim)
    return sub


def _interest(gd: _GraphData, tid: str) -> int:
    """Which small ops most deserve a scalar view: a matmul (its sum over k is what a scalar
    view shows best), then broadcasting, then reductions, then the rest."""
    t = gd.tensors[tid]
    if t._op is None:
        return 9
    if t._op.name == "matmul":
        return 0
    if any(np.shape(p._data) != np.shape(t._data) for p in t.parents):
        return 1 if t._op.name in _ELEMENTWISE else 2
    return 3


def _merged_trace(roots: list[Tensor]) -> Graph:
    """One Graph for several outputs (a scalar view has one per element)."""
    merged = Graph(root=node_id(roots[-1]))
    seen = set()
    for r in roots:
        g = trace(r)
        for tid, n in g.tensors.items():
            merged.tensors.setdefault(tid, n)
        for oid, o in g.ops.items():
            merged.ops.setdefault(oid, o)
        for e in g.edges:
            if e not in seen:
                seen.add(e)
                merged.edges.append(e)
    return merged


# --- the page -----------------------------------------------------------------------------------


@dataclass
class Page:
    """A written (or in-memory) step-through page: `.html` is the whole document, `.path`
    where it was written (None if not). In Jupyter it shows itself, running, in the output."""

    html: str
    path: Path | None = None
    nodes: int = 0
    steps: int = 0

    def save(self, path: str | os.PathLike) -> Path:
        target = Path(path)
        if target.suffix.lower() not in (".html", ".htm"):
            target = target.with_name(target.name + ".html")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.html, encoding="utf-8")
        self.path = target
        return target

    @property
    def size(self) -> int:
        """The page's size in bytes (UTF-8)."""
        return len(self.html.encode())

    def _repr_html_(self) -> str:
        # An iframe of its own: the page's script and ids stay apart from the notebook's.
        return (
            f'<iframe srcdoc="{html.escape(self.html, quote=True)}" '
            'style="width: 100%; height: 720px; border: 1px solid #ddd"></iframe>'
        )

    def __repr__(self) -> str:
        where = f"written to {self.path}" if self.path else "not written (.save(path))"
        steps = f"{self.steps} backward steps"
        return f"<Page: {self.nodes} tensors, {steps}, {self.size:,} bytes, {where}>"


def page(
    root: Tensor,
    path: str | os.PathLike | None = None,
    *,
    grad: Any = None,
    model: Any = None,
    names: dict[int, str] | None = None,
    wrt: Tensor | None = None,
    title: str | None = None,
    max_nodes: int | None = 300,
    full_elements: int = FULL_ELEMENTS,
    scalar_views: int = 8,
) -> Page:
    """One self-contained HTML page to step through `root`'s forward pass, backward pass and
    forward mode, node by node (no network: it works from file:// and in Jupyter).

    `grad`: the upstream gradient of a non-scalar root. `model` and `names` label tensors as
    in draw_graph. `wrt`: the leaf whose tangent forward mode sets to ones (the first leaf that
    requires grad by default). Arrays of up to `full_elements` elements are stored in full,
    larger ones summarised. A graph of more than `max_nodes` nodes is drawn only with each
    module call collapsed (or not drawn, with a message). Up to `scalar_views` small tensor
    ops get a scalar view (matmuls first, then broadcasting ops, then sums; within a budget
    of bytes). Nothing is written into any `.grad`. Returns a Page; with `path`,
    the page is also written there (".html" added if missing).
    """
    from .graph import check_root

    check_root(root, "page")
    limit = _check_max_nodes(max_nodes, "page")
    if full_elements < 1:
        raise ValueError(f"page: full_elements must be at least 1, got {full_elements}")
    lim = _Limits(full=full_elements, max_nodes=limit)
    seed = root._seed(grad, "page", False)
    graph = trace(root, names=names, model=model)
    main = _GraphData(
        "g",
        title or f"{graph.tensors[graph.root].label}: backpropagation step by step",
        graph,
        _tensors_of([root]),
    )
    _collect(main, [root], [seed], wrt, lim)
    graphs = [main]
    svgs = {"g": _views(main, lim)}
    spent = 0
    for tid in sorted(graph.tensors, key=lambda tid: _interest(main, tid)):
        if len(graphs) > scalar_views or spent > lim.scalar_budget:
            break
        key = f"s{len(graphs)}"
        sub = _scalar_view(main, tid, main.grads.get(tid), key, lim)
        if sub is not None:
            svgs[key] = _views(sub, lim)
            spent += sum(map(len, svgs[key])) + len(json.dumps(sub.data))
            main.data["scalar"][main.short[tid]] = key
            graphs.append(sub)
    data = {"main": "g", "graphs": {g.key: g.data for g in graphs}}
    divs = "\n".join(
        f'<div class="view" data-graph="{key}" data-view="{k}" hidden>{svg}</div>'
        for key, items in svgs.items()
        for k, svg in enumerate(items)
    )
    document = _TEMPLATE.format(
        title=html.escape(main.title),
        css=(_ASSETS / "page.css").read_text(encoding="utf-8"),
        js=(_ASSETS / "page.js").read_text(encoding="utf-8"),
        views=divs,
        data=json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/"),
    )
    result = Page(document, None, len(graph.tensors), len(main.data["backward"]))
    if path is not None:
        result.save(path)
    return result


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{title}</title>
<style>
{css}</style></head>
<body>
<header>
<h1>{title}</h1>
<div id="phases">
<button type="button" data-phase="forward">forward pass</button>
<button type="button" data-phase="backward">backward pass</button>
<button type="button" data-phase="tangent">forward mode (tangents)</button>
</div>
<div id="controls">
<button id="prev" type="button">&larr; previous</button>
<button id="play" type="button">&#x25b6; play</button>
<button id="next" type="button">next &rarr;</button>
<input id="slider" type="range" min="0" max="0" value="0" aria-label="step">
<span id="counter"></span>
<span class="note">(keys: &larr; &rarr; step, space plays; click a node for its arrays)</span>
</div>
<div id="graphbar">
<span id="where"></span>
<button id="scalar" type="button" hidden>scalar view of this op</button>
<button id="back" type="button" hidden>back to the tensor graph</button>
<button id="collapse" type="button" hidden>collapse modules</button>
<button id="expandall" type="button" hidden>open every module</button>
</div>
</header>
<main>
<section id="drawing">
<p id="toobig" class="message" hidden></p>
{views}
</section>
<aside>
<div id="step"></div>
<div id="detail"></div>
<h3>Leaves</h3>
<table id="leaves"></table>
</aside>
</main>
<script type="application/json" id="data">{data}</script>
<script>
{js}</script>
</body></html>
"""
