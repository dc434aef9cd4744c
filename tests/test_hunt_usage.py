"""Defects met while using the project as a newcomer would (the README followed literally,
habits from micrograd, PyTorch and numpy, the testing kit, drawings, threads): each test
failed before its fix."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import autodiff as ad
from autodiff import Tensor

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_jvp_example_prints_the_value_its_comment_claims():
    # The comment said `Tensor(0.1413...) = 2 * 1 * (1 - tanh(1)**2)`; that product is
    # 0.8399, and so is what the line prints.
    line = next(li for li in README.splitlines() if li.startswith("print(dy)"))
    claimed = float(re.search(r"Tensor\(([-0-9.]+)", line).group(1))
    _, dy = ad.jvp(lambda x: (x * x).tanh().sum(), (np.array([1.0, 2.0]),), (np.array([1.0, 0.0]),))
    assert round(dy.item(), 4) == claimed
    assert claimed == round(2 * 1 * (1 - np.tanh(1.0) ** 2), 4)


def test_gradcheck_of_a_scalar_function_reports_its_true_derivatives():
    # The output was multiplied by a random weight (1.137) before differentiating, and the
    # failure message showed the weighted numbers: d/dx sum(sin(3x)) at 0.1 read "numerical
    # 3.258543" where it is 3 cos(0.3) = 2.866.
    from autodiff.testing import gradcheck

    def outside(x):  # sin(3x) computed outside the engine: no gradient flows
        return Tensor(np.sin(3 * x.numpy())).sum() + (x * 0).sum()

    with pytest.raises(AssertionError) as caught:
        gradcheck(outside, np.array([0.1, 0.2]))
    message = str(caught.value)
    numerical = float(re.search(r"vs numerical ([-0-9.e]+)", message).group(1))
    assert numerical == pytest.approx(3 * np.cos(0.3), rel=1e-6)
    assert "backprop 0 vs" in message and "w fixed random" not in message
    # a rule that ignores its upstream gradient is still caught behind a scalar output
    from autodiff.engine import apply
    from autodiff.rules import Op

    forgets_g = Op("cube", lambda x: x**3, lambda g, out, x: 3 * x**2)
    with pytest.raises(AssertionError, match=r"vs numerical 3 \("):
        gradcheck(lambda x: apply(forgets_g, (x,)), np.array(1.0))


def test_gradcheck_says_its_numbers_are_weighted_when_the_output_is_not_a_scalar():
    from autodiff.testing import gradcheck

    with pytest.raises(AssertionError, match=r"sum\(w \* fn\(\.\.\.\)\)"):
        gradcheck(lambda x: Tensor(np.sin(3 * x.numpy())) + x * 0, np.array([0.1, 0.2]))


def _svg_texts(drawing) -> list[str]:
    import html

    from autodiff.viz import _run_dot

    svg = _run_dot(drawing.source, "svg").decode()
    return [html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]


def test_a_tensor_name_with_a_newline_is_drawn_on_two_lines():
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


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_weight_heatmap_keeps_its_colour_scale_when_a_weight_is_nan_or_inf(bad):
    # The limit was max |w| over the weights: NaN or inf, which matplotlib replaced by
    # +-0.1, so every finite weight was drawn saturated under a colour bar of +-0.1.
    from nn import viz

    fig = viz.heatmap_figure({"w": np.array([[bad, 1.0], [-2.0, 1.0]])})
    image = fig.axes[0].images[0]
    assert (image.norm.vmin, image.norm.vmax) == (-2.0, 2.0)
    rgba = image.to_rgba(image.get_array())
    assert not np.allclose(rgba[0, 1], image.cmap(1.0))  # 1.0 is half way, not saturated
    import matplotlib.pyplot as plt

    plt.close(fig)


@pytest.mark.parametrize("first", [True, False])
def test_the_weight_gif_scale_ignores_a_nan_snapshot_wherever_it_is(first, tmp_path, monkeypatch):
    # Python's max() over frames gave NaN when the NaN frame came first (and not when last).
    from nn import viz

    seen = {}
    panels = viz._heatmap_panels

    def spy(snapshot, limits, image_shape):
        seen.update(limits)
        return panels(snapshot, limits, image_shape)

    monkeypatch.setattr(viz, "_heatmap_panels", spy)
    good = {"w": np.array([[1.0, -3.0], [0.5, 0.0]])}
    diverged = {"w": np.array([[np.nan, 1.0], [np.inf, 1.0]])}
    viz.weight_heatmaps([diverged, good] if first else [good, diverged], tmp_path / "w.gif")
    assert seen == {"w": 3.0}


def _chain(n: int) -> Tensor:
    y = Tensor(1.0, requires_grad=True)
    for i in range(n):
        y = y * 1.001 if i % 2 else y + 0.5
    return y


@pytest.mark.parametrize("max_nodes", [1, 0, -1])
def test_draw_graph_refuses_a_max_nodes_that_leaves_out_the_output(max_nodes, tmp_path):
    # max_nodes=1 (0, -1) drew one "... 1003 earlier nodes" box, noting "only the 0 nodes
    # nearest the output are drawn": not even the output.
    from autodiff.viz import animate_backward, draw_graph

    with pytest.raises(ValueError, match=f"max_nodes must be at least 2.*got {max_nodes}"):
        draw_graph(_chain(500), max_nodes=max_nodes)
    with pytest.raises(ValueError, match="animate_backward: max_nodes must be at least 2"):
        animate_backward(_chain(3), tmp_path / "b.gif", max_nodes=max_nodes)


def test_draw_graph_max_nodes_none_draws_everything_and_two_keeps_the_output():
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


def test_flatten_takes_pytorchs_start_and_end_dim():
    # x.flatten(1), the PyTorch habit in every CNN's forward, failed with "Tensor.flatten()
    # takes 1 positional argument but 2 were given".
    data = np.arange(24.0).reshape(2, 3, 4)
    x = Tensor(data, requires_grad=True)
    assert x.flatten().shape == (24,)
    out = x.flatten(1)
    assert out.shape == (2, 12)
    np.testing.assert_array_equal(out.numpy(), data.reshape(2, 12))
    assert x.flatten(0, 1).shape == (6, 4)
    assert x.flatten(-2, -1).shape == (2, 12)
    assert x.flatten(1, 1).shape == (2, 3, 4)
    assert Tensor(np.zeros((2, 0, 3))).flatten(1).shape == (2, 0)
    assert Tensor(5.0).flatten().shape == (1,)
    (out * Tensor(np.arange(24.0).reshape(2, 12))).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.arange(24.0).reshape(2, 3, 4))
    with pytest.raises(ValueError, match="start_dim 2 comes after end_dim 1"):
        x.flatten(2, 1)
    with pytest.raises(ValueError, match="flatten: axis 3 is out of range"):
        x.flatten(3)


def test_gradient_flow_says_when_a_layer_s_gradient_is_exactly_zero(recwarn):
    # On the log scale, zeros were dropped silently: a dead layer (all 0) was simply absent
    # from the plot, with matplotlib's "Data has no positive values" warning when every
    # layer was 0.
    import matplotlib.pyplot as plt

    from nn import viz

    fig = viz.gradient_flow(
        {"layers.0.weight": [0.0, 0.0, 0.0], "layers.2.weight": [1e-3, 0.0, 2e-3]}
    )
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == [
        "layers.0.weight (0 at all 3 steps: not drawable on a log scale)",
        "layers.2.weight (0 at 1 step, not drawn)",
    ]
    plt.close(fig)
    fig = viz.gradient_flow({"w": [0.0, 0.0]})
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [
        "w (0 at all 2 steps: not drawable on a log scale)"
    ]
    plt.close(fig)
    assert not [w for w in recwarn if "positive" in str(w.message)]


def test_check_jvp_and_check_vjp_say_that_several_inputs_are_a_tuple():
    from autodiff.testing import check_jvp, check_vjp

    x, y = Tensor(np.array([0.3, 0.5])), Tensor(np.array([1.5, -2.0]))
    for check in (check_jvp, check_vjp):
        # It failed with "missing 1 required positional argument", the list stacked into one.
        with pytest.raises(
            TypeError,
            match=rf"{check.__name__}: give several inputs as a "
            r"tuple",
        ):
            check(lambda a, b: (a * b).sum(), [x, y])
        assert check(lambda a, b: (a * b.tanh()).sum(), (x, y))
        assert check(lambda a: (a * a).sum(), [0.3, 0.5])  # a list of numbers: one input
