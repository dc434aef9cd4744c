"""Malformed files for every reader (IDX raw and gzipped, MNIST, .npz, .safetensors),
hypothesis-drawn, in a child process whose address space is capped below the 512 MiB its gzip
bombs inflate to: a reader that trusts a header or inflates a bomb fails here with MemoryError
(tests/fuzz/capped.py says what each property checks). Reverting read_idx's header-first
reading makes the first property fail this way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CAPPED = Path(__file__).resolve().parent / "capped.py"


@pytest.mark.slow
@pytest.mark.skipif(
    not Path("/proc/self/status").exists() or sys.platform != "linux",
    reason="the memory cap uses RLIMIT_AS and /proc (Linux)",
)
def test_every_reader_refuses_malformed_files_within_a_memory_cap(tmp_path):
    examples = 30 if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else 15
    # One BLAS thread: fewer per-thread buffers counted against the cap.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(CAPPED), str(tmp_path), "384", str(examples)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-6000:]
    passed = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("ok ")]
    assert passed == [
        "idx_bomb_behind_a_small_header",
        "idx_huge_header_with_a_bomb_under_max_bytes",
        "idx_mutated_files",
        "mnist_files",
        "npz_mutated_files",
        "npz_crafted_headers",
        "npz_deflated_bomb",
        "safetensors_mutated_files",
        "safetensors_crafted_headers",
    ]
