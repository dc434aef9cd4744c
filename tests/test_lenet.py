"""LeNet-5 end to end: the main job's --model lenet, its pictures, and its drawing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

import nn
from autodiff import Tensor
from autodiff.viz import draw_graph

ROOT = Path(__file__).resolve().parents[1]


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


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        MPLBACKEND="Agg",
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
    )
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def test_main_job_lenet_on_mini_mnist(tmp_path):
    result = _run(
        "-m", "nn", "--model", "lenet", "--epochs", "1", "--out", str(tmp_path), "--quiet"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["model"].startswith("LeNet5") and summary["parameters"] == 61_706
    assert summary["epochs"] == 1 and summary["test_accuracy"] > 0.6
    for name in (
        "weights.npz",
        "loss_curve.png",
        "predictions.png",
        "filters.png",
        "feature_maps.png",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    restored = nn.LeNet5().load(tmp_path / "weights.npz")
    assert restored.features[0].weight.shape == (6, 1, 5, 5)


def test_main_job_lenet_refuses_flat_datasets(tmp_path):
    result = _run("-m", "nn", "--model", "lenet", "--dataset", "moons", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "--model lenet needs 28x28 images" in result.stderr
    result = _run("-m", "nn", "--model", "lenet", "--hidden", "64", "--out", str(tmp_path))
    assert result.returncode == 2 and "--hidden sets the MLP's layers" in result.stderr


def test_lenet_bench_engines_take_the_same_steps():
    import importlib.util

    from bench import lenet

    (x, y), (xt, yt) = nn.data.load_mini_mnist()
    problem = lenet.make_problem(x, y, xt, yt, batch_size=16, steps=6, test_size=200)
    assert problem.x.shape == (len(x), 1, 28, 28) and len(problem.batches) == 6
    assert problem.images_per_epoch_scale() == 60_000 / 96
    _, accuracy, loss = lenet.numpy_im2col(problem)
    assert 0 < loss < 5 and 0 <= accuracy <= 1
    for name, engine in lenet.ENGINES.items():
        if name == "PyTorch eager" and importlib.util.find_spec("torch") is None:
            continue
        seconds, other_accuracy, other_loss = engine(problem)
        assert seconds > 0
        # Same weights, same batches, same SGD steps: the same test loss to float32 rounding.
        assert other_loss == pytest.approx(loss, rel=1e-4), name
        assert other_accuracy == accuracy, name


def test_lenet_bench_numpy_loop_gradient_is_right():
    """The hand-written loop's gradients against our engine's, one step, float64."""
    from bench import lenet

    rng = np.random.default_rng(1)
    x = rng.random((8, 784))
    y = rng.integers(0, 10, 8)
    problem = lenet.make_problem(x, y, x, y, batch_size=8, steps=1, test_size=8)
    problem.x, problem.xt = problem.x.astype(np.float64), problem.xt.astype(np.float64)
    problem.weights = {k: v.astype(np.float64) for k, v in problem.weights.items()}
    _, _, numpy_loss = lenet.numpy_im2col(problem)
    _, _, our_loss = lenet.ours(problem)
    assert numpy_loss == pytest.approx(our_loss, rel=1e-10)


def test_lenet_example_runs_on_mini_mnist(tmp_path):
    result = _run("examples/lenet_mnist.py", "--mini", "--epochs", "1", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("test accuracy"))
    assert float(line.split()[2].rstrip("%")) > 60
    assert (tmp_path / "filters.png").stat().st_size > 0
    assert (tmp_path / "feature_maps.png").stat().st_size > 0
