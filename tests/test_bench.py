"""The benchmark suite runs and produces its table; engines agree on what they computed.

No timing is asserted here: speed is judged by ratios in bench/RESULTS.md, not by tests.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import nn
from bench import chain, micrograd_demo, mnist, small_ops
from bench.__main__ import main


def _installed(engine_name: str) -> bool:
    from bench.__main__ import PEER_MODULES

    module = PEER_MODULES.get(engine_name)
    return module is None or importlib.util.find_spec(module) is not None


@pytest.mark.slow
def test_quick_suite_writes_every_section(tmp_path):
    out = tmp_path / "RESULTS.md"
    assert main(["--quick", "--workloads", "ops,chain", "--out", str(out)]) == 0
    text = out.read_text()
    assert "## 2. Per-op overhead" in text and "## 4. Deep chains" in text
    assert "| autodiff (ours) |" in text and "threads: 1" in text
    assert "load average before" in text
    # The targets these workloads measure are summarized, met or not, with their ratio.
    assert "## Targets" in text and "| per-op overhead | <= 5x numpy floor |" in text
    assert "| longest chain, us per op | <= 3 us per op |" in text
    assert "| longest chain, peak MB |" in text
    for n in ("1,000", "10,000", "100,000"):
        assert f"| {n} |" in text


def test_mnist_engines_compute_the_same_model():
    rng = np.random.default_rng(0)
    x = rng.random((600, 784), dtype=np.float32)
    y = rng.integers(0, 10, 600)
    problem = mnist.make_problem(x, y, x[:100], y[:100], 64, None).cast(np.float32)
    _, floor_accuracy = mnist.numpy_floor(problem)
    for name, engine in mnist.ENGINES.items():
        if name == "matmul-only floor" or not _installed(name):
            continue
        _, accuracy = engine(problem)
        assert accuracy == pytest.approx(floor_accuracy, abs=0.02), name


def test_small_ops_engines_all_run():
    for name, fn in small_ops.ENGINES.items():
        if _installed(name):
            assert fn(3) > 0, name


def test_scalar_and_batched_demo_steps_run():
    assert micrograd_demo.ours_scalar_step(1) > 0
    assert micrograd_demo.ours_batched_step(2) > 0
    assert micrograd_demo.numpy_batched_step(2) > 0


def test_chain_frees_its_memory():
    result = chain.ours(5_000)
    assert result["left_mb"] < 0.05 and result["peak_mb"] > 0.5


def test_profile_prints_where_the_time_goes(capsys):
    assert main(["--profile", "ops"]) == 0
    out = capsys.readouterr().out
    assert "workload ops:" in out and "cycle collector" in out
    assert "engine.py" in out and "(backward)" in out  # the engine's own functions are listed
    assert main(["--profile", "nope"]) == 2


@pytest.mark.slow
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
