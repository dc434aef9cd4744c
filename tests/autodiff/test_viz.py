"""autodiff.viz and autodiff.graph: drawings of graphs, the step-by-step backward table and
animations of the backward pass. Training pictures (nn.viz) are in tests/nn/test_viz.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import graphviz
import numpy as np
import pytest

import autodiff.dot
import nn
from autodiff import Tensor
from autodiff.graph import node_id, trace
from autodiff.viz import (
    Drawing,
    GraphvizNotFound,
    animate_backward,
    backward_steps,
    dot_executable,
    draw_graph,
    explain_backward,
    render,
)


def _dot_available() -> bool:
    try:
        dot_executable()
        return True
    except GraphvizNotFound:
        return False


needs_dot = pytest.mark.skipif(not _dot_available(), reason="no dot binary (graphviz)")


def _expression():
    a = Tensor(2.0, requires_grad=True, name="a")
    b = Tensor(-3.0, requires_grad=True, name="b")
    c = a * b
    d = c + a  # a reaches d along two paths: directly, and through c
    return a, b, c, d


def _svg_size(svg: str) -> tuple[float, float]:
    width, height = re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg).groups()
    return float(width), float(height)


# --- graph as data ---------------------------------------------------------------------------


def test_trace_nodes_edges_and_argument_order():
    a, b, c, d = _expression()
    graph = trace(d)
    assert len(graph.tensors) == 4 and len(graph.ops) == 2
    kinds = {node.label: node.kind for node in graph.tensors.values()}
    assert kinds == {"a": "leaf_param", "b": "leaf_param", "mul1": "intermediate", "add1": "output"}
    mul = graph.ops[f"op{id(c)}"]
    assert mul.op == "mul" and mul.output == node_id(c)
    assert graph.inputs(mul.id) == [node_id(a), node_id(b)]
    assert graph.tensors[node_id(c)].value == "-6"


def test_trace_shows_constants_and_gradients():
    x = Tensor(np.array([1.0, 2.0, 5.0]), requires_grad=True, name="x")
    y = (x * Tensor(np.array([3.0, 4.0, 5.0]))).sum()
    y.backward()
    graph = trace(y)
    kinds = sorted(node.kind for node in graph.tensors.values())
    assert kinds == ["constant", "intermediate", "leaf_param", "output"]
    assert graph.tensors[node_id(x)].grad == "[3, 4, 5]"


def test_unnamed_leaves_are_inputs_numbered_in_creation_order():
    a = Tensor(2.0, requires_grad=True)
    b = Tensor(-3.0, requires_grad=True)
    d = b * a * 2  # b is used first, but a was made first
    labels = {key: node.label for key, node in trace(d).tensors.items()}
    assert labels[node_id(a)] == "input1" and labels[node_id(b)] == "input2"
    assert sorted(labels.values()) == ["2", "input1", "input2", "mul1", "mul2"]
    # one unnamed input needs no number; a named one keeps its name
    x = Tensor(np.ones((3, 2)), name="x")
    w = Tensor(np.ones((2, 1)), requires_grad=True)
    labels = {node.label for node in trace((x @ w).sum()).tensors.values()}
    assert labels == {"x", "input", "matmul1", "sum1"}
    w.name = "w"
    source = draw_graph((Tensor(np.ones(3)) * w.sum()).sum()).source
    assert "{input | 3 float64 | data [1, 1, 1]}" in source


def test_model_clusters_and_collapse():
    model = nn.MLP(784, [128], 10, rng=0)
    x = Tensor(np.zeros((4, 784), np.float32), name="x")
    loss = nn.F.cross_entropy(model(x), np.array([0, 1, 2, 3]))
    clustered = draw_graph(loss, model=model, group_by_module="cluster").source
    # the MLP call, and inside it its three layers
    assert clustered.count("subgraph cluster_") == 4
    assert 'label="layers.0: Linear(784 -> 128)"' in clustered
    assert "layers.0.weight: 128x784 float32" in clustered
    assert "x: 4x784 float32" in clustered
    collapsed = draw_graph(loss, model=model, group_by_module="collapse").source
    assert collapsed.count("shape=box3d") == 3
    assert "layers.2: Linear(128 -> 10)\nops: linear\nweight 10x128\nbias 10" in collapsed


def test_big_graph_collapses_by_default_with_a_note():
    model = nn.MLP(4, [3] * 60, 1, rng=0)
    out = model(Tensor(np.ones((2, 4), np.float32))).sum()
    source = draw_graph(out, model=model, max_nodes=100).source
    assert "more than max_nodes=100: one box per module call" in source and "box3d" in source
    assert "max_nodes" not in draw_graph(out, model=model, max_nodes=10_000).source


def test_draw_graph_options():
    _, _, _, d = _expression()
    d.backward()
    with_grads = draw_graph(d).source
    assert "grad 1" in with_grads and "rankdir=LR" in with_grads
    plain = draw_graph(d, rankdir="TB", show_values=False, show_grads=False).source
    assert "grad " not in plain and "data " not in plain and "rankdir=TB" in plain
    with pytest.raises(ValueError, match="draw_graph: rankdir"):
        draw_graph(d, rankdir="XY")


def test_legend_lists_what_the_drawing_shows():
    model = nn.MLP(2, [3], 1, rng=0)
    loss = model(Tensor(np.ones((2, 2)), name="x")).sum()
    legend = draw_graph(loss, model=model).source.split("<table")[-1]
    assert "parameter (requires grad)" in legend and "constant" in legend
    assert "module call" not in legend and "backward is here" not in legend
    assert ">module call<" in draw_graph(loss, model=model, group_by_module="cluster").source
    collapsed = draw_graph(loss, model=model, group_by_module="collapse").source
    assert ">module call (collapsed)<" in collapsed
    assert "parameter" not in collapsed.split("<table")[-1]  # they are inside the boxes
    _, _, _, d = _expression()
    assert "constant" not in draw_graph(d).source.split("<table")[-1]  # d has none


def test_auto_layout_draws_a_network_top_down_and_expressions_left_to_right():
    a, b, c, d = _expression()
    assert "rankdir=LR" in draw_graph(d.tanh()).source  # micrograd's direction
    model = nn.MLP(2, [16], 2, rng=0)
    loss = nn.F.cross_entropy(model(Tensor(np.ones((4, 2)), name="x")), np.array([0, 1, 0, 1]))
    assert "rankdir=TB" in draw_graph(loss, model=model).source


@needs_dot
def test_a_2_16_2_network_drawing_fits_a_screen():
    model = nn.MLP(2, [16], 2, rng=0)
    loss = nn.F.cross_entropy(model(Tensor(np.ones((4, 2)), name="x")), np.array([0, 1, 0, 1]))
    for group in (False, "cluster", "collapse"):
        width, height = _svg_size(
            draw_graph(loss, model=model, group_by_module=group).pipe(
                format="svg", encoding="utf-8"
            )
        )
        assert width <= 900 and height <= 900, (group, width, height)
    # left to right, as every drawing was before, it is about twice as wide as a screen
    wide, _ = _svg_size(
        draw_graph(loss, model=model, rankdir="LR").pipe(format="svg", encoding="utf-8")
    )
    assert wide > 1400


# --- composites keep their name ----------------------------------------------------------------


def test_composites_show_under_their_own_names_in_repr_drawings_and_tables():
    x = Tensor(np.array([1.0, 2.0, 6.0]), requires_grad=True, name="x")
    m = x.mean()  # a primitive (one node), named as written
    assert repr(m) == "Tensor(3., op=mean)" and m.op == "mean"
    rows = explain_backward(m)
    assert rows[0]["op"] == "mean" and rows[0]["formula"] == "mean1 = mean(x)"
    assert rows[-1]["parent"] == "x" and np.allclose(rows[-1]["total"], [1 / 3] * 3)
    s = x.softmax()  # a composite: log_softmax, then exp
    assert repr(s).endswith("op=softmax)") and s.op == "exp"  # the engine's primitive
    graph = trace(s)
    assert [op.op for op in graph.ops.values()] == ["logsumexp", "log_softmax", "softmax"]
    assert graph.ops[f"op{id(s)}"].primitive == "exp"
    source = draw_graph(s).source
    assert "[label=softmax " in source and "label=exp" not in source
    assert "op=std" in repr(x.std()) and "op=var" in repr(x.var())
    # the name belongs to the node the composite made: an in-place write replaces that node
    probs = (x * 1).softmax(axis=0)
    probs[0] = 5.0
    assert "op=setitem" in repr(probs) and "op=softmax" not in repr(probs)


# --- explain ---------------------------------------------------------------------------------


def test_explain_backward_rows_match_hand_computed_chain_rule(capsys):
    a, b, c, d = _expression()
    rows = explain_backward(d)
    assert capsys.readouterr().out == ""  # returned, not printed: a REPL shows it once
    # step 1: d = c + a with upstream 1 -> c and a each get 1 (local derivative 1)
    # step 2: c = a * b with upstream 1 -> a gets b = -3, b gets a = 2
    assert [(r["step"], r["parent"], r["local"], r["contribution"]) for r in rows] == [
        (1, "mul1", 1.0, 1.0),
        (1, "a", 1.0, 1.0),
        (2, "a", -3.0, -3.0),
        (2, "b", 2.0, 2.0),
    ]
    by_parent = {}
    for r in rows:
        by_parent.setdefault(r["parent"], []).append(r)
    # a: 1 (direct) + b = 1 + (-3) = -2, arriving along two paths
    assert [r["contribution"] for r in by_parent["a"]] == [1.0, -3.0]
    assert by_parent["a"][-1]["total"] == -2.0 and by_parent["a"][-1]["paths"] == 2
    assert by_parent["b"][0]["local"] == 2.0 and by_parent["b"][0]["total"] == 2.0
    assert a.grad is None  # explaining does not write gradients
    table = repr(rows)
    assert table.splitlines()[0].startswith("step  node = op(inputs)")
    assert "path 2 of 2: summed" in table and "dadd1/da = -2, dadd1/db = 2" in table
    assert str(rows) == table and "{" not in table
    pretty = pytest.importorskip("IPython.lib.pretty")
    assert pretty.pretty(rows) == table  # what a notebook cell or IPython shows
    explain_backward(d, print_rows=True)
    assert capsys.readouterr().out == table + "\n"


def test_explain_backward_numbers_unnamed_leaves_in_creation_order():
    a = Tensor(2.0, requires_grad=True)
    b = Tensor(-3.0, requires_grad=True)
    rows = explain_backward(b * a)
    assert rows[0]["formula"] == "mul1 = mul(input2, input1)"
    assert [(r["parent"], r["total"]) for r in rows] == [("input2", 2.0), ("input1", -3.0)]


def test_backward_steps_for_tensors_reports_matrix_rules():
    w = Tensor(np.ones((2, 3)), requires_grad=True, name="w")
    y = (Tensor(np.ones((4, 2))) @ w).sum()
    rows = backward_steps(y)  # the older name: the rows, not printed
    matmul_row = next(r for r in rows if r["op"] == "matmul")
    assert matmul_row["local"] is None
    np.testing.assert_array_equal(matmul_row["contribution"], np.full((2, 3), 4.0))


# --- rendering through the dot we found ----------------------------------------------------------


@pytest.fixture
def no_system_dot(monkeypatch):
    """Hide any system `dot` (and graphviz-pure from PATH): only the wheel's binary is left."""
    import autodiff.viz as viz

    real_which = viz.shutil.which
    monkeypatch.setattr(
        viz.shutil,
        "which",
        lambda name, *a, **k: (
            None if name in ("dot", "graphviz-pure") else real_which(name, *a, **k)
        ),
    )
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if viz._graphviz_pure() is None:
        pytest.skip("graphviz-pure is not installed")
    return viz


def test_digraph_methods_work_without_a_system_dot(no_system_dot, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _, _, _, d = _expression()
    drawing = draw_graph(d)
    assert isinstance(drawing, graphviz.Digraph) and isinstance(drawing, Drawing)
    assert repr(drawing).startswith("<Drawing of 4 tensors and 2 ops: .render('name'")
    assert drawing.render("x", format="png") == "x.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]  # no DOT file left
    assert (tmp_path / "x.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert drawing.render(outfile="sub/y.svg") == "sub/y.svg"
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["y.svg"]
    assert drawing.pipe(format="svg").startswith(b"<?xml")
    assert drawing.pipe(format="svg", encoding="utf-8").startswith("<?xml")
    assert "<svg" in drawing._repr_image_svg_xml()
    assert drawing._repr_image_png()[:4] == b"\x89PNG"
    bundle = drawing._repr_mimebundle_()
    assert list(bundle) == ["image/svg+xml"] and "<svg" in bundle["image/svg+xml"]
    capsys.readouterr()
    viewed = drawing.view("v")  # headless: renders, says where, returns at once
    assert viewed == "v.png" and (tmp_path / "v.png").exists() and not (tmp_path / "v").exists()
    assert f"drawing written to {tmp_path / 'v.png'}" in capsys.readouterr().out
    copy = drawing.copy()
    assert isinstance(copy, Drawing) and repr(copy) == repr(drawing)
    with pytest.raises(graphviz.ExecutableNotFound, match="unflatten: needs the `unflatten`"):
        drawing.unflatten(stagger=3)


def test_render_failure_leaves_no_stray_file(no_system_dot, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, _, _, d = _expression()
    with pytest.raises(graphviz.CalledProcessError, match="ps"):
        draw_graph(d).render("x", format="ps")  # graphviz knows PostScript; graphviz-pure not
    assert list(tmp_path.iterdir()) == []


def test_missing_dot_is_a_clear_error(monkeypatch, tmp_path):
    import autodiff.viz as viz

    monkeypatch.setattr(viz.shutil, "which", lambda name, *a, **k: None)
    monkeypatch.setattr(autodiff.dot, "_graphviz_pure", lambda: None)
    monkeypatch.chdir(tmp_path)
    _, _, _, d = _expression()
    drawing = draw_graph(d)
    assert "digraph" in drawing.source  # the DOT source still works
    with pytest.raises(GraphvizNotFound, match="pip install graphviz-pure"):
        render(drawing, "never")
    # graphviz's own exception type, from graphviz's own methods, and no file left behind
    with pytest.raises(graphviz.ExecutableNotFound, match="pip install graphviz-pure"):
        drawing.render("x", format="png")
    assert list(tmp_path.iterdir()) == []
    bundle = drawing._repr_mimebundle_()
    assert "pip install graphviz-pure" in bundle["text/plain"] and "digraph" in bundle["text/plain"]


# --- rendering and animation -------------------------------------------------------------------


@needs_dot
def test_render_svg_and_png(tmp_path):
    _, _, _, d = _expression()
    svg = render(draw_graph(d), tmp_path / "g", format="svg")
    assert svg.suffix == ".svg" and svg.read_text().lstrip().startswith("<?xml")
    png = render(draw_graph(d), tmp_path / "g.png", format="png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_dot
def test_animation_has_one_frame_per_backward_step(tmp_path):
    import imageio.v2 as imageio

    _, _, _, d = _expression()
    steps = len({r["step"] for r in backward_steps(d)})
    gif = animate_backward(d, tmp_path / "anim.gif")
    frames = imageio.mimread(gif)
    assert len(frames) == steps  # one per step: the node being processed in orange
    page = animate_backward(d, tmp_path / "anim.html", format="html").read_text()
    assert page.count('class="frame"') == steps and 'type="range"' in page
    assert page.count("backward is here") == steps  # the legend names the orange node


def _svg_texts(drawing) -> list[str]:
    import html

    from autodiff.viz import _run_dot

    svg = _run_dot(drawing.source, "svg").decode()
    return [html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]


def _chain(n: int) -> Tensor:
    y = Tensor(1.0, requires_grad=True)
    for i in range(n):
        y = y * 1.001 if i % 2 else y + 0.5
    return y


def test_a_tensor_name_with_a_newline_is_drawn_on_two_lines():
    """Found using the project as a newcomer (README, habits, testing kit, drawings)."""
    # The raw newline went into the record label, and the picture read "line1line2".
    from autodiff.viz import draw_graph

    a = Tensor(np.ones(3), requires_grad=True, name="line1\nline2")
    loss = (a * 2).sum()
    loss.backward()
    texts = _svg_texts(draw_graph(loss))
    assert "line1line2" not in texts
    assert "line1" in texts and "line2" in texts
    # the other characters special to records still come out as they were written
    b = Tensor(np.ones(3), requires_grad=True, name='q"<&>{|}\\')
    texts = _svg_texts(draw_graph((b * 2).sum()))
    assert 'q"<&>{|}\\' in texts


@pytest.mark.parametrize("max_nodes", [1, 0, -1])
def test_draw_graph_refuses_a_max_nodes_that_leaves_out_the_output(max_nodes, tmp_path):
    """Found using the project as a newcomer (README, habits, testing kit, drawings)."""
    # max_nodes=1 (0, -1) drew one "... 1003 earlier nodes" box, noting "only the 0 nodes
    # nearest the output are drawn": not even the output.
    from autodiff.viz import animate_backward, draw_graph

    with pytest.raises(ValueError, match=f"max_nodes must be at least 2.*got {max_nodes}"):
        draw_graph(_chain(500), max_nodes=max_nodes)
    with pytest.raises(ValueError, match="animate_backward: max_nodes must be at least 2"):
        animate_backward(_chain(3), tmp_path / "b.gif", max_nodes=max_nodes)


def test_draw_graph_max_nodes_none_draws_everything_and_two_keeps_the_output():
    """Found using the project as a newcomer (README, habits, testing kit, drawings)."""
    # None ("no limit") failed with "'>' not supported between 'int' and 'NoneType'".
    from autodiff.viz import draw_graph

    root = _chain(200)
    source = draw_graph(root, max_nodes=None).source
    assert len(re.findall(r"^\t\S+ \[label", source, re.M)) == 403  # 1 + 200 * 2 + 2 constants
    assert "earlier nodes" not in source
    source = draw_graph(root, max_nodes=2).source
    assert "only the 1 node nearest the output is drawn" in source
    assert "... 402 earlier nodes" in source and f"t{id(root)} [label" in source
    with pytest.raises(TypeError, match="max_nodes must be an int"):
        draw_graph(root, max_nodes=2.5)


# --- micrograd habits: drawing ---------------------------------------------------------------


@pytest.mark.parametrize("root, hint", [(3.0, "float"), ([Tensor(1.0)], "list.*sum")])
@pytest.mark.parametrize("who", ["draw_graph", "explain_backward", "animate_backward"])
def test_drawing_something_that_is_not_a_tensor_says_so(who, root, hint, tmp_path):
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    # It failed with "'float' object has no attribute 'requires_grad'".
    from autodiff import viz

    args = (root, tmp_path / "b.gif") if who == "animate_backward" else (root,)
    with pytest.raises(TypeError, match=f"{who}: root must be a Tensor, got {hint}"):
        getattr(viz, who)(*args)


def test_a_picture_named_with_its_suffix_is_written_under_that_name(tmp_path, monkeypatch):
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    # g.render("graph.png") wrote graph.png.png (graphviz took the name for the DOT source),
    # and render(g, "graph.png") wrote SVG into graph.png.svg.
    from autodiff.viz import draw_graph, render

    monkeypatch.chdir(tmp_path)
    a = Tensor(2.0, requires_grad=True)
    drawing = draw_graph((a * a).tanh())
    assert drawing.render("graph.png") == "graph.png"
    assert render(drawing, "other.png") == Path("other.png")
    assert render(drawing, "vector.svg") == Path("vector.svg")
    assert drawing.render("sub/g.svg") == "sub/g.svg"
    assert (tmp_path / "graph.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "other.png").read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in (tmp_path / "vector.svg").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "graph.png",
        "other.png",
        "sub",
        "vector.svg",
    ]  # no source left
    # as before: a bare name gets the format's suffix, and render() defaults to SVG
    assert drawing.render("x", format="png") == "x.png"
    assert render(drawing, "y") == Path("y.svg")


def test_animate_backward_to_an_html_path_writes_the_page(tmp_path):
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    # animate_backward(d, "backward.html") wrote a GIF named backward.html.gif.
    from autodiff.viz import animate_backward

    a = Tensor(2.0, requires_grad=True)
    written = animate_backward((a * a).tanh(), tmp_path / "backward.html")
    assert written == tmp_path / "backward.html"
    assert written.read_text().lstrip().lower().startswith("<!doctype html")
    gif = animate_backward((a * a).tanh(), tmp_path / "steps")
    assert gif == tmp_path / "steps.gif" and gif.read_bytes().startswith(b"GIF8")


def test_collapsed_drawing_gives_each_conv_layer_its_own_box():
    model = nn.LeNet5(rng=0)
    loss = nn.F.cross_entropy(model(Tensor(np.zeros((2, 784), np.float32))), np.array([1, 2]))
    source = draw_graph(loss, model=model, group_by_module="collapse").source
    boxes = [line for line in source.splitlines() if "box3d" in line]
    # Twelve layers inside the two Sequentials, each one box, as an MLP's Linear layers are.
    assert len(boxes) == 12
    labels = [
        line.split('"')[1].split("\n")[0]
        for line in source.splitlines()
        if "[label=" in line and "cluster_" in line
    ]
    assert "features.layers.0: Conv2d(1 -> 6, kernel_size=(5, 5), padding=2)" in source
    assert "features.layers.3: Conv2d(6 -> 16, kernel_size=(5, 5))" in source
    assert "weight 16x6x5x5" in source and "weight 120x400" in source
    assert source.count("ops: unfold2d, max") == 2  # the two pooling layers
    # No box stands for a whole Sequential: it would swallow the layers above.
    assert not any(label.endswith(("features", "classifier")) for label in labels)
