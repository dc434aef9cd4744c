"""nn.viz: training pictures (curves, weight heatmaps and GIFs, predictions,
boundaries, gradient flow) on matplotlib.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

import nn
from autodiff import Tensor


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_weight_heatmap_keeps_its_colour_scale_when_a_weight_is_nan_or_inf(bad):
    """Found using the project as a newcomer (README, habits, testing kit, drawings)."""
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
    """Found using the project as a newcomer (README, habits, testing kit, drawings)."""
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


def test_gradient_flow_says_when_a_layer_s_gradient_is_exactly_zero(recwarn):
    """Found using the project as a newcomer (README, habits, testing kit, drawings)."""
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


# --- pictures --------------------------------------------------------------------------------


def test_weight_heatmaps_takes_the_recorder_itself(tmp_path):
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    # weight_heatmaps(recorder, path) failed: "object of type 'WeightRecorder' has no len()".
    import nn
    from nn import viz

    x, y = nn.data.make_xor()
    model = nn.MLP(2, [3], 1, activation="sigmoid", rng=0)
    recorder = viz.WeightRecorder(model)
    nn.fit(
        model,
        nn.F.mse_loss,
        nn.optim.SGD(model.parameters(), lr=0.5),
        (x, y),
        epochs=3,
        progress=False,
        callbacks=[recorder],
    )
    from PIL import Image

    direct = viz.weight_heatmaps(recorder, tmp_path / "a.gif")
    spelled = viz.weight_heatmaps(recorder.snapshots, tmp_path / "b.gif", labels=recorder.epochs)
    with Image.open(direct) as gif:
        assert gif.n_frames == 4  # the initial weights and three epochs
    assert direct.read_bytes() == spelled.read_bytes()  # titled by epoch, as spelled out
    # a name without a suffix gets .gif (PIL said "unknown file extension")
    bare = viz.weight_heatmaps(recorder, tmp_path / "weights")
    assert bare == tmp_path / "weights.gif" and bare.read_bytes() == direct.read_bytes()


@pytest.mark.slow
def test_conv_pictures_take_a_batch_of_one_and_name_a_whole_model():
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    # feature_maps(model.features, x_test[:1]) read the row as a 1 x 784 picture and failed in
    # max_pool2d; conv_filters(model) said "got shape ()"; feature_maps(model, ...) said
    # "'LeNet5' object is not iterable".
    import matplotlib.pyplot as plt

    import nn
    from nn import viz

    model = nn.LeNet5(rng=0)
    row = np.random.default_rng(0).random((1, 784)).astype(np.float32)
    one = viz.feature_maps(model.features, row[0])
    batch = viz.feature_maps(model.features, row)
    grid = viz.feature_maps(model.features, row.reshape(1, 1, 28, 28))
    pictures = [
        [np.asarray(image.get_array()) for ax in f.axes for image in ax.get_images()]
        for f in (one, batch, grid)
    ]  # the input, then every channel of every layer
    assert len(pictures[0]) > 1 + 6 + 16  # at least one row per conv layer
    for other in pictures[1:]:
        assert len(other) == len(pictures[0])
        for a, b in zip(pictures[0], other, strict=True):
            np.testing.assert_array_equal(a, b)
    for fig in (one, batch, grid):
        plt.close(fig)
    with pytest.raises(
        TypeError,
        match=r"conv_filters: got a LeNet5; pass one Conv2d layer "
        r"\(e\.g\. model\.features\[0\]\)",
    ):
        viz.conv_filters(model)
    with pytest.raises(
        TypeError,
        match=r"feature_maps: layers must be a sequence of layers "
        r"applied in order \(its \.features\), got a LeNet5",
    ):
        viz.feature_maps(model, row[0])


def test_gradient_flow_takes_the_recorder_itself():
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    # gradient_flow(recorder) failed: "'GradientFlowRecorder' object is not iterable".
    import matplotlib.pyplot as plt

    import nn
    from nn import viz

    x, y = nn.data.make_moons(40, seed=0)
    model = nn.MLP(2, [4, 4], 2, activation="sigmoid", rng=0)
    recorder = viz.GradientFlowRecorder(model)
    nn.fit(
        model,
        nn.F.cross_entropy,
        nn.optim.SGD(model.parameters(), lr=0.1),
        (x, y),
        epochs=3,
        progress=False,
        callbacks=[recorder],
    )
    fig = viz.gradient_flow(recorder)
    lines = {line.get_label(): list(line.get_ydata()) for line in fig.axes[0].get_lines()}
    assert lines == recorder.history and len(lines) == 3
    assert all(len(v) == 3 and all(g > 0 for g in v) for v in lines.values())
    plt.close(fig)


def test_decision_boundary_of_logits_is_drawn_where_their_sign_changes():
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    # One logit per point was contoured at 0.5, not at 0 where the model's decision flips.
    import matplotlib.pyplot as plt

    from nn import viz

    x = np.array([[-1.0, 0.0], [1.0, 0.0], [0.6, 1.0], [0.1, -1.0]])
    y = np.array([0, 1, 1, 0])  # class 1 where x1 > 0.3

    def level(fig):
        (contour,) = [
            c for c in fig.axes[0].collections if hasattr(c, "levels") and len(c.levels) == 1
        ]
        return float(contour.levels[0])

    logits = viz.decision_boundary(lambda p: 4 * (p[:, 0] - 0.3), x, y)
    assert level(logits) == 0.0
    probabilities = viz.decision_boundary(lambda p: 1 / (1 + np.exp(-4 * p[:, 0])), x, y)
    assert level(probabilities) == 0.5
    # a linear output fitted to 0/1 targets leaves [0, 1] on the padded grid but still
    # decides at 0.5: it splits the points right there and wrongly at 0
    regressed = viz.decision_boundary(lambda p: 0.8 * p[:, 0] + 0.26, x, y)
    assert level(regressed) == 0.5
    chosen = viz.decision_boundary(lambda p: p[:, 0], x, y, threshold=0.25)
    assert level(chosen) == 0.25
    for fig in (logits, probabilities, regressed, chosen):
        plt.close(fig)


def test_decision_boundary_runs_a_model_in_eval_mode():
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    # A model passed as it is ran in training mode (Dropout on) and recorded a graph.
    import matplotlib.pyplot as plt

    import nn
    from nn import viz

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 2, rng=0)
            self.seen = []

        def forward(self, x):
            out = self.linear(x)
            self.seen.append((self.training, out.requires_grad))
            return out

    model = Spy()
    x, y = nn.data.make_moons(20, seed=0)
    plt.close(viz.decision_boundary(model, x, y, resolution=30))
    assert model.seen and set(model.seen) == {(False, False)}
    assert model.training  # put back as it was
    model.linear = nn.Linear(1, 1, rng=0)
    model.seen.clear()
    plt.close(viz.regression_fit(model, x[:, :1], y))
    assert model.seen and set(model.seen) == {(False, False)} and model.training


def test_prediction_gallery_takes_scores_and_refuses_a_model():
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    import matplotlib.pyplot as plt

    import nn
    from nn import viz

    images = np.random.default_rng(0).random((4, 784))
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    fig = viz.prediction_gallery(images, scores, np.array([1, 0, 0, 0]))
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["1 / 1", "0 / 0", "1 / 0", "0 / 0"]  # argmax of each row
    assert "1 of 4 wrong" in fig._suptitle.get_text()
    plt.close(fig)
    with pytest.raises(TypeError, match="prediction_gallery: images must be the images"):
        viz.prediction_gallery(nn.MLP(784, [8], 2), images, np.zeros(4))
    # it was numpy's "operands could not be broadcast together"
    with pytest.raises(ValueError, match=r"one predicted and one true label per image.*\(3,\)"):
        viz.prediction_gallery(images, np.zeros(4, int), np.zeros(3, int))


def _pixels(path: Path) -> np.ndarray:
    return mpimg.imread(path)[..., :3]


def _count(image: np.ndarray, colour: str) -> int:
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    if colour == "red":
        return int(np.sum((r > 0.6) & (g < 0.25) & (b < 0.25)))
    return int(np.sum((b > 0.5) & (r < 0.35) & (g < 0.35)))  # coolwarm's deep blue


def test_conv_filters_draws_each_kernel_with_its_sign(tmp_path):
    w = np.zeros((2, 1, 5, 5), np.float32)
    w[0] = 1.0  # an all-positive kernel: deep red tile
    path = tmp_path / "filters.png"
    nn.viz.conv_filters(w, path)
    red_only = _pixels(path)
    assert _count(red_only, "red") > 200 and _count(red_only, "blue") < 50
    w[1] = -1.0  # now a second, all-negative tile: as much deep blue as red
    nn.viz.conv_filters(w, path)
    both = _pixels(path)
    assert _count(both, "blue") > 200
    assert abs(_count(both, "blue") - _count(both, "red")) < 0.25 * _count(both, "red")
    # A Conv2d is accepted as well as its weight; 6 tiles make a wider picture than 2.
    nn.viz.conv_filters(nn.Conv2d(1, 6, 5, rng=0), tmp_path / "six.png")
    assert _pixels(tmp_path / "six.png").shape[1] > both.shape[1] * 1.5


def test_conv_filters_refuses_a_matrix():
    with pytest.raises(ValueError, match=r"conv_filters: .*shape \(3, 4\)"):
        nn.viz.conv_filters(np.zeros((3, 4)))


@pytest.mark.slow
def test_feature_maps_one_row_per_4d_layer(tmp_path):
    model = nn.LeNet5(rng=0)
    image = np.zeros(784, np.float32)
    image.reshape(28, 28)[4:24, 13:15] = 1.0  # a vertical stroke
    fig = nn.viz.feature_maps(model.features, image)
    # input row + 6 layers (conv, relu, pool, conv, relu, pool), 16 columns (the widest).
    assert len(fig.axes) == 7 * 16
    titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_title(loc="left")]
    assert titles == [
        "0: Conv2d(1 -> 6, 5x5)",
        "1: ReLU",
        "2: MaxPool2d",
        "3: Conv2d(6 -> 16, 5x5)",
        "4: ReLU",
        "5: MaxPool2d",
    ]
    # The first tile of the first row is the first channel of the first conv's output.
    shown = fig.axes[16].images[0].get_array()
    expected = np.asarray(model.features[0](Tensor(image.reshape(1, 1, 28, 28))).data)[0, 0]
    np.testing.assert_allclose(shown, expected, rtol=1e-6)
    nn.viz.plt.close(fig)
    path = tmp_path / "maps.png"
    nn.viz.feature_maps(model.features, image, path, max_channels=4)
    assert _pixels(path).shape[0] > _pixels(path).shape[1]  # 7 rows of 4: taller than wide


def test_feature_maps_refuses_a_batch():
    with pytest.raises(ValueError, match=r"feature_maps: .*shape \(2, 1, 28, 28\)"):
        nn.viz.feature_maps(nn.LeNet5(rng=0).features, np.zeros((2, 1, 28, 28)))


# --- training pictures ------------------------------------------------------------------------


@pytest.mark.slow
def test_history_plot_panels(tmp_path):
    from nn import viz

    history = {
        "loss": [1.0, 0.5],
        "val_loss": [1.1, 0.6],
        "accuracy": [0.5, 0.8],
        "val_accuracy": [0.4, 0.7],
    }
    fig = viz.plot_history(history)
    assert len(fig.axes) == 2
    assert len(viz.plot_history({"loss": [1.0, 0.5]}).axes) == 1
    path = tmp_path / "h.png"
    viz.plot_history(history, path)
    assert path.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_weight_heatmap_gif_has_one_frame_per_epoch(tmp_path):
    import imageio.v2 as imageio

    from nn import viz

    model = nn.MLP(2, [3], 1, rng=0)
    recorder = viz.WeightRecorder(model)
    nn.fit(
        model,
        nn.F.mse_loss,
        nn.optim.SGD(model.parameters(), lr=0.1),
        nn.data.make_xor(),
        epochs=4,
        metric=None,
        progress=False,
        callbacks=[recorder],
    )
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
    two_class = viz.decision_boundary(
        lambda g: 1 / (1 + np.exp(-g[:, 0])), x, y, tmp_path / "b.png"
    )
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
        nn.F.mse_loss(
            model(Tensor(np.ones((5, 2), np.float32))), np.zeros((5, 1), np.float32)
        ).backward()
        recorder()
    assert sorted(recorder.history) == ["layers.0.weight", "layers.2.weight", "layers.4.weight"]
    assert all(len(v) == 3 for v in recorder.history.values())
    fig = viz.gradient_flow(recorder.history)
    assert fig.axes[0].get_yscale() == "log" and len(fig.axes[0].lines) == 3


def test_pictures_take_tensors_computed_with_gradients():
    # np.asarray refuses those (numpy computing with them would drop the graph); a picture
    # only draws the numbers, so it takes them as they are.
    import nn
    from autodiff import Tensor

    x, y = nn.data.make_moons(40, noise=0.1, seed=0)
    model = nn.MLP(2, [8], 1, rng=0)
    assert nn.viz.decision_boundary(lambda p: model(Tensor(p)), x, y) is not None
    images = np.random.default_rng(0).random((4, 28, 28)).astype(np.float32)
    scores = nn.MLP(784, [8], 10, rng=0)(Tensor(images.reshape(4, -1)))
    assert scores.requires_grad
    assert nn.viz.prediction_gallery(images, scores, np.array([1, 2, 3, 4])) is not None
