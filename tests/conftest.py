"""Shared test set-up: hypothesis profiles, the shared MNIST files and the PyTorch oracle.

Tests are filed by subject: tests/autodiff/test_<module>.py and tests/nn/test_<module>.py
mirror the packages; files at this level cover what spans both (errors, examples, notebooks,
the README, the bench, the PyTorch sweeps). Tests over ~1.5 s are marked `slow`:

    python -m pytest -m "not slow" -n 2 -q      # the quick loop
    HYPOTHESIS_PROFILE=ci python -m pytest -q   # everything, as CI runs it (-n 2 works too)
"""

import os
from pathlib import Path

import matplotlib
import pytest
from hypothesis import HealthCheck, settings

from tests.oracle import require_torch

matplotlib.use("Agg")  # tests never open windows

# A quick profile for local runs, and a deterministic one with more examples for CI.
settings.register_profile(
    "default", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# For hunting rare edge cases by hand (HYPOTHESIS_PROFILE=hunt, with --hypothesis-seed=N to
# vary the draws): many more examples, random; what it finds becomes a pinned test.
settings.register_profile(
    "hunt",
    max_examples=400,
    deadline=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


@pytest.fixture
def mnist_dir() -> Path:
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"shared MNIST files not found at {MNIST_DIR}")
    return MNIST_DIR


@pytest.fixture(scope="session")
def torch():
    """PyTorch, the optional oracle: the test skips, saying why, when it is not installed.

    Session-scoped so that hypothesis tests may take it too (it holds no state).
    """
    return require_torch()
