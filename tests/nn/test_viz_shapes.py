"""nn.viz given the wrong thing says so by name (issue #22), shows a figure once in
Jupyter, and draws a logit model's decision boundary as probabilities."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import nn
from nn import viz

plt = pytest.importorskip("matplotlib.pyplot")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("seed", range(6))
def test_decision_boundary_needs_two_features(seed):
    rng = np.random.default_rng(seed)
    features = int(rng.choice([1, 3, 4, 7]))
    n = int(rng.integers(2, 30))
    x, y = rng.normal(size=(n, features)), rng.integers(0, 2, size=n)
    with pytest.raises(
        ValueError, match=rf"^decision_boundary: x must be \(N, 2\).*\({n}, {features}\)"
    ):
        viz.decision_boundary(lambda p: p[:, 0], x, y)
    with pytest.raises(
        ValueError, match=rf"^decision_boundary: y must hold one target per point, shape \({n},\)"
    ):
        viz.decision_boundary(lambda p: p[:, 0], rng.normal(size=(n, 2)), np.zeros(n + 1))
    with pytest.raises(ValueError, match=r"^decision_boundary: the model gave shape"):
        viz.decision_boundary(lambda p: p[: n % 5], rng.normal(size=(n, 2)), y, resolution=10)


@pytest.mark.parametrize("seed", range(6))
def test_prediction_gallery_names_the_image_shape_it_needs(seed):
    rng = np.random.default_rng(seed)
    side = int(rng.integers(3, 12))
    n = int(rng.integers(1, 6))
    images = rng.random((n, side * side))
    labels = rng.integers(0, 10, size=n)
    with pytest.raises(
        ValueError,
        match=rf"^prediction_gallery: images must be \(N, 784\).*\({n}, {side * side}\).*"
        rf"image_shape=\({side}, {side}\)",
    ):
        viz.prediction_gallery(images, labels, labels)
    plt.close(viz.prediction_gallery(images, labels, labels, image_shape=(side, side)))
    with pytest.raises(
        TypeError, match=r"^prediction_gallery: image_shape must be \(height, width\)"
    ):
        viz.prediction_gallery(images, labels, labels, image_shape=side * side)


def test_regression_fit_needs_one_feature():
    x = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(
        ValueError, match=r"^regression_fit: x must be \(N,\) or \(N, 1\).*\(10, 3\)"
    ):
        viz.regression_fit(lambda p: p, x, np.zeros(10))


def test_state_dict_where_a_module_is_expected_is_named():
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
    sd = model.state_dict()
    x, y = nn.data.make_moons(20, seed=0)
    cases = [
        (lambda: viz.decision_boundary(sd, x, y), "decision_boundary"),
        (lambda: viz.regression_fit(sd, x[:, :1], y), "regression_fit"),
        (lambda: viz.WeightRecorder(sd), "WeightRecorder"),
        (lambda: viz.GradientFlowRecorder(sd), "GradientFlowRecorder"),
        (lambda: viz.feature_maps(sd, np.zeros((28, 28))), "feature_maps"),
        (lambda: viz.conv_filters(sd), "conv_filters"),
        (lambda: viz.weight_heatmaps(sd, "unused.gif"), "weight_heatmaps"),
        (lambda: viz.heatmap_figure(model), "heatmap_figure"),
        (lambda: viz.gradient_flow(model), "gradient_flow"),
        (lambda: viz.plot_history(model), "plot_history"),
    ]
    for call, who in cases:
        with pytest.raises(TypeError, match=rf"^{who}: ") as info:
            call()
        assert "got " in str(info.value)
    # A state_dict *is* a snapshot for heatmap_figure: its 2-D matrices are drawn.
    fig = viz.heatmap_figure(sd)
    assert len([a for a in fig.axes if a.images]) == 2


def test_decision_boundary_of_logits_is_coloured_as_probabilities():
    # A steep logit model: scores from about -150 to 90 over the plane.
    x = np.random.default_rng(0).uniform(-1, 2, size=(40, 2))
    y = (x[:, 0] > 0.5).astype(np.int64)
    fig = viz.decision_boundary(lambda p: 60 * (p[:, 0] - 0.5), x, y, resolution=40)
    fills = [c for c in fig.axes[0].collections if hasattr(c, "levels") and len(c.levels) > 1]
    assert fills and min(fills[0].levels) >= 0.0 and max(fills[0].levels) <= 1.0
    assert fig.axes[1].get_ylabel() == "P(class 1)"


def test_figures_are_shown_once_in_jupyter():
    # Under the inline backend, a figure still held by pyplot is shown again when the cell
    # ends, besides the returned Figure: the functions release it.
    code = (
        "import matplotlib; matplotlib.use('module://matplotlib_inline.backend_inline')\n"
        "import matplotlib.pyplot as plt, numpy as np\n"
        "from nn import viz\n"
        "fig = viz.plot_history({'loss': [1.0, 0.5], 'accuracy': [0.5, 0.9]})\n"
        "fig2 = viz.conv_filters(np.ones((2, 1, 3, 3)))\n"
        "print(len(plt.get_fignums()), type(fig).__name__, type(fig2).__name__)\n"
    )
    pytest.importorskip("matplotlib_inline")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split() == ["0", "Figure", "Figure"]
    # Outside Jupyter pyplot keeps them, so plt.show() in a script still shows them.
    fig = viz.plot_history({"loss": [1.0, 0.5]})
    assert fig.number in plt.get_fignums()
