"""Drawings of graphs, the step-by-step backward table, animations and training pictures."""

from __future__ import annotations

import numpy as np
import pytest

import nn
from autodiff import Tensor
from autodiff.graph import trace
from autodiff.viz import (
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


# --- graph as data ---------------------------------------------------------------------------


def test_trace_nodes_edges_and_argument_order():
    a, b, c, d = _expression()
    graph = trace(d)
    assert len(graph.tensors) == 4 and len(graph.ops) == 2
    kinds = {node.label or node.kind: node.kind for node in graph.tensors.values()}
    assert kinds["a"] == "param" and kinds["output"] == "output"
    mul = graph.ops[f"op{id(c)}"]
    assert mul.op == "mul"
    inputs = sorted((idx, src) for src, dst, idx in graph.edges if dst == mul.id)
    assert inputs == [(0, f"t{id(a)}"), (1, f"t{id(b)}")]
    assert graph.tensors[id(c)].value == "-6"


def test_trace_shows_constants_and_gradients():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True, name="x")
    y = (x * Tensor(np.array([3.0, 4.0]))).sum()
    y.backward()
    graph = trace(y)
    kinds = sorted(node.kind for node in graph.tensors.values())
    assert kinds == ["constant", "intermediate", "output", "param"]
    assert graph.tensors[id(x)].grad == "min 3 mean 3.5 max 4"


def test_model_clusters_and_collapse():
    model = nn.MLP(784, [128], 10, rng=0)
    x = Tensor(np.zeros((4, 784), np.float32))
    loss = nn.F.cross_entropy(model(x), np.array([0, 1, 2, 3]))
    clustered = draw_graph(loss, model=model, group_by_module="cluster").source
    assert clustered.count("subgraph cluster_") == 4  # three layers + the legend
    assert "layers.0: Linear(784 -&gt; 128)" in clustered or "Linear(784 -> 128)" in clustered
    assert "layers.0.weight 128x784" in clustered
    collapsed = draw_graph(loss, model=model, group_by_module="collapse").source
    assert "shape=box3d" in collapsed and collapsed.count("shape=box3d") == 3
    assert "layers.2.bias 10" in collapsed


def test_big_graph_collapses_by_default_with_a_note():
    model = nn.MLP(4, [3] * 60, 1, rng=0)
    out = model(Tensor(np.ones((2, 4), np.float32))).sum()
    source = draw_graph(out, model=model, max_nodes=100).source
    assert "collapsed by module" in source and "box3d" in source
    assert "collapsed by module" not in draw_graph(out, model=model, max_nodes=10_000).source


def test_draw_graph_options():
    _, _, _, d = _expression()
    d.backward()
    with_grads = draw_graph(d).source
    assert "grad 1" in with_grads and "rankdir=LR" in with_grads
    plain = draw_graph(d, rankdir="TB", show_values=False, show_grads=False).source
    assert "grad " not in plain and "data " not in plain and "rankdir=TB" in plain
    with pytest.raises(ValueError, match="rankdir"):
        draw_graph(d, rankdir="XY")


# --- explain ---------------------------------------------------------------------------------


def test_explain_backward_rows_match_hand_computed_chain_rule(capsys):
    a, b, c, d = _expression()
    rows = explain_backward(d)
    printed = capsys.readouterr().out
    assert "upstream" in printed and "+" in printed
    # step 1: d = c + a with upstream 1 -> c and a each get 1 (local derivative 1)
    # step 2: c = a * b with upstream 1 -> a gets b = -3, b gets a = 2
    assert [(r["step"], r["parent"], r["local"], r["contribution"]) for r in rows] == [
        (1, "mul1", 1.0, 1.0), (1, "a", 1.0, 1.0), (2, "a", -3.0, -3.0), (2, "b", 2.0, 2.0),
    ]
    by_parent = {}
    for r in rows:
        by_parent.setdefault(r["parent"], []).append(r)
    # a: 1 (direct) + b = 1 + (-3) = -2, arriving along two paths
    assert [r["contribution"] for r in by_parent["a"]] == [1.0, -3.0]
    assert by_parent["a"][-1]["total"] == -2.0 and by_parent["a"][-1]["paths"] == 2
    assert by_parent["b"][0]["local"] == 2.0 and by_parent["b"][0]["total"] == 2.0
    assert a.grad is None  # explaining does not write gradients


def test_backward_steps_for_tensors_reports_matrix_rules():
    w = Tensor(np.ones((2, 3)), requires_grad=True, name="w")
    y = (Tensor(np.ones((4, 2))) @ w).sum()
    rows = backward_steps(y)
    matmul_row = next(r for r in rows if r["op"] == "matmul")
    assert matmul_row["local"] is None
    np.testing.assert_array_equal(matmul_row["contribution"], np.full((2, 3), 4.0))


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
    assert len(frames) == steps + 1  # the graph before backward, then one per step
    page = animate_backward(d, tmp_path / "anim.html", format="html").read_text()
    assert page.count('class="frame"') == steps + 1 and 'type="range"' in page


def test_missing_dot_is_a_clear_error(monkeypatch):
    import autodiff.viz as viz

    monkeypatch.setattr(viz.shutil, "which", lambda name: None)
    monkeypatch.setattr(viz.sys, "prefix", "/nonexistent")
    _, _, _, d = _expression()
    digraph = draw_graph(d)
    assert "digraph" in digraph.source  # the DOT source still works
    with pytest.raises(GraphvizNotFound, match="pip install graphviz-pure"):
        render(digraph, "/tmp/never")


# --- training pictures ------------------------------------------------------------------------


def test_history_plot_panels(tmp_path):
    from nn import viz

    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.6], "accuracy": [0.5, 0.8],
               "val_accuracy": [0.4, 0.7]}
    fig = viz.plot_history(history)
    assert len(fig.axes) == 2
    assert len(viz.plot_history({"loss": [1.0, 0.5]}).axes) == 1
    path = tmp_path / "h.png"
    viz.plot_history(history, path)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_weight_heatmap_gif_has_one_frame_per_epoch(tmp_path):
    import imageio.v2 as imageio

    from nn import viz

    model = nn.MLP(2, [3], 1, rng=0)
    recorder = viz.WeightRecorder(model)
    nn.fit(model, nn.F.mse_loss, nn.optim.SGD(model.parameters(), lr=0.1),
           nn.data.make_xor(), epochs=4, metric=None, progress=False, callbacks=[recorder])
    assert len(recorder.snapshots) == 5 and recorder.epochs == [0, 1, 2, 3, 4]  # 0: init
    assert len(viz.heatmap_figure(recorder.snapshots[0]).axes) == 4  # 2 panels + 2 colorbars
    gif = viz.weight_heatmaps(recorder.snapshots, tmp_path / "w.gif")
    assert len(imageio.mimread(gif)) == 5


def test_prediction_gallery_highlights_exactly_the_mistakes():
    from nn import viz

    images = np.random.default_rng(0).random((6, 784))
    predicted, true = np.array([1, 2, 3, 4, 5, 6]), np.array([1, 0, 3, 0, 5, 6])
    fig = viz.prediction_gallery(images, predicted, true)
    red = [ax for ax in fig.axes if ax.title.get_color() == "red"]
    assert len(red) == 2 and {ax.get_title() for ax in red} == {"2 / 0", "4 / 0"}
    first = viz.prediction_gallery(images, predicted, true, mistakes_first=True)
    assert first.axes[0].get_title() == "2 / 0"


def test_decision_boundary_and_regression_fit(tmp_path):
    from nn import viz

    x, y = nn.data.make_moons(40, seed=0)
    two_class = viz.decision_boundary(lambda g: 1 / (1 + np.exp(-g[:, 0])), x, y,
                                      tmp_path / "b.png")
    assert (tmp_path / "b.png").exists() and two_class is not None
    multi = viz.decision_boundary(lambda g: np.stack([g[:, 0], g[:, 1], -g[:, 0]], 1), x, y)
    assert len(multi.axes) == 1
    xr, yr = nn.data.make_regression(30)
    fig = viz.regression_fit(lambda g: g, xr, yr)
    assert len(fig.axes[0].lines) == 1


def test_gradient_flow_uses_log_scale_and_records_layers():
    from nn import viz

    model = nn.MLP(2, [4, 4], 1, activation="sigmoid", rng=0)
    recorder = viz.GradientFlowRecorder(model)
    for _ in range(3):
        model.zero_grad()
        nn.F.mse_loss(model(Tensor(np.ones((5, 2), np.float32))),
                      np.zeros((5, 1), np.float32)).backward()
        recorder()
    assert sorted(recorder.history) == ["layers.0.weight", "layers.2.weight", "layers.4.weight"]
    assert all(len(v) == 3 for v in recorder.history.values())
    fig = viz.gradient_flow(recorder.history)
    assert fig.axes[0].get_yscale() == "log" and len(fig.axes[0].lines) == 3
