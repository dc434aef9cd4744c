"""The main job (`python -m nn`) and the examples, run as a newcomer would run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_main_job_default_trains_and_writes_artifacts(tmp_path):
    result = _run("-m", "nn", "--out", str(tmp_path), "--epochs", "3", "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["dataset"] == "mini-mnist" and summary["parameters"] == 101_770
    assert summary["test_accuracy"] > 0.8
    for name in ("weights.npz", "history.json", "loss_curve.png", "predictions.png",
                 "weights.gif", "graph.svg"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert "test_accuracy" in result.stdout


@pytest.mark.parametrize("dataset,extra", [
    ("xor", ["--epochs", "2000"]), ("moons", ["--epochs", "100"]),
    ("regression", ["--epochs", "50"]),
])
def test_main_job_other_datasets(tmp_path, dataset, extra):
    result = _run("-m", "nn", "--dataset", dataset, "--out", str(tmp_path), "--quiet",
                  "--no-plots", *extra)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    if dataset == "xor":
        assert summary["test_accuracy"] == 1.0
    if dataset == "moons":
        assert summary["test_accuracy"] > 0.9


@pytest.mark.parametrize("args,message", [
    (["--epochs", "0"], "expected a positive integer"),
    (["--lr", "-1"], "expected a positive number"),
    (["--dataset", "cifar"], "invalid choice"),
    (["--dataset", "mnist", "--data-dir", "/nonexistent-folder"], "error: load_mnist"),
])
def test_bad_arguments_give_usage_errors_not_tracebacks(args, message, tmp_path):
    env_args = ["--out", str(tmp_path), "--quiet"]
    result = subprocess.run(
        [sys.executable, "-m", "nn", *args, *env_args], cwd=ROOT, capture_output=True,
        text=True, timeout=120,
        env=dict(os.environ, PYTHONPATH=str(ROOT), XDG_CACHE_HOME=str(tmp_path),
                 AUTODIFF_DATA=str(tmp_path), AUTODIFF_OFFLINE="1"),
    )
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("script", ["xor.py", "regression.py", "moons.py",
                                    "layers_by_hand.py"])
def test_example_runs(script, tmp_path):
    result = _run(f"examples/{script}")
    assert result.returncode == 0, result.stderr + result.stdout


def test_mnist_example_shortened(mnist_dir):
    result = _run("examples/mnist_mlp.py", "--data-dir", str(mnist_dir), "--epochs", "1")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "test accuracy" in line]
    assert len(lines) == 2
    relu_accuracy = float(lines[0].split("test accuracy ")[1].split("%")[0])
    assert relu_accuracy > 92  # one epoch of plain SGD; ten reach 97.5% (see README)
