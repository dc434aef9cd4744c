"""The scripts in examples/, run as a newcomer would run them. The main job is tested in
tests/nn/test_main.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("script", ["xor.py", "regression.py", "moons.py", "layers_by_hand.py"])
def test_example_runs(script, tmp_path):
    result = _run(f"examples/{script}")
    assert result.returncode == 0, result.stderr + result.stdout


@pytest.mark.slow
def test_mnist_example_shortened(mnist_dir):
    result = _run("examples/mnist_mlp.py", "--data-dir", str(mnist_dir), "--epochs", "1")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "test accuracy" in line]
    assert len(lines) == 2
    relu_accuracy = float(lines[0].split("test accuracy ")[1].split("%")[0])
    assert relu_accuracy > 92  # one epoch of plain SGD; ten reach 97.5% (see README)


def test_mnist_example_offline_without_data_says_what_to_do(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "AUTODIFF_DATA"}
    env.update(PYTHONPATH=str(ROOT), XDG_CACHE_HOME=str(tmp_path), AUTODIFF_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, "examples/mnist_mlp.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "pass --mini" in result.stderr and "--data-dir FOLDER" in result.stderr
    assert "train-images-idx3-ubyte.gz" in result.stderr and str(tmp_path) in result.stderr


def test_mnist_example_mini_offline():
    result = _run("examples/mnist_mlp.py", "--mini", "--epochs", "1", "--variants", "relu-ce")
    assert result.returncode == 0, result.stderr
    assert "1 BLAS thread(s)" in result.stdout
    accuracy = float(result.stdout.split("test accuracy ")[1].split("%")[0])
    assert accuracy > 75  # 77.1%: one epoch, ending on the noisy 8-example batch


# --- examples/, run as a newcomer runs them --------------------------------------------------


def _example(*args: str):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root), MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "script", ["xor", "regression", "moons", "layers_by_hand", "readme_figures"]
)
def test_an_example_answers_help_without_running(script):
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    # --help trained the network (and readme_figures redrew docs/) instead of answering.
    result = _example(f"examples/{script}.py", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {script}.py")
    assert "epochs" not in result.stdout and "wrote" not in result.stdout


def test_an_example_plot_option_without_its_file_is_a_usage_error():
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    # It was "IndexError: list index out of range", after the whole training.
    result = _example("examples/moons.py", "--plot")
    assert result.returncode == 2
    assert "--plot: expected one argument" in result.stderr
    assert "Traceback" not in result.stderr


def _run_lenet(*args: str) -> subprocess.CompletedProcess:
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


@pytest.mark.slow
def test_lenet_example_runs_on_mini_mnist(tmp_path):
    result = _run_lenet(
        "examples/lenet_mnist.py", "--mini", "--epochs", "1", "--out", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("test accuracy"))
    assert float(line.split()[2].rstrip("%")) > 60
    assert (tmp_path / "filters.png").stat().st_size > 0
    assert (tmp_path / "feature_maps.png").stat().st_size > 0
