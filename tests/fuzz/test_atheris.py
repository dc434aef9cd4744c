"""A short run of each coverage-guided fuzz target (tests/fuzz/targets.py), when atheris is
installed; longer runs are for the command line (see that file)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip(
    "atheris",
    reason="atheris is optional (pip install atheris): coverage-guided fuzzing is skipped",
)

TARGETS = Path(__file__).resolve().parent / "targets.py"


@pytest.mark.parametrize("target", ["read_idx", "load", "state_dict"])
def test_fuzz_target_finds_nothing_in_a_short_run(tmp_path, target):
    runs = 3000
    done = subprocess.run(
        [
            sys.executable,
            str(TARGETS),
            target,
            f"-runs={runs}",
            "-max_len=4096",
            "-seed=1",
            f"-artifact_prefix={tmp_path}/",
        ],
        env={**os.environ, "AUTODIFF_FUZZ_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"Done {runs} runs" in done.stderr
    assert not list(tmp_path.glob("crash-*"))  # libFuzzer saves any failing input here
