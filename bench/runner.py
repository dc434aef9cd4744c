"""Timing that is fair on a small, noisy machine: engines interleaved, medians and ranges."""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Timing:
    samples: list[float] = field(default_factory=list)
    error: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    def cell(self, unit: float = 1.0, digits: int = 3) -> str:
        if self.error:
            return self.error
        lo, hi = min(self.samples) * unit, max(self.samples) * unit
        return f"{self.median * unit:.{digits}g} ({lo:.{digits}g}-{hi:.{digits}g})"


def paired_ratio(a: Timing, b: Timing) -> float:
    """Median over rounds of a's time / b's time in the same round.

    Engines of one round run seconds apart, so a slow spell of the machine (another process
    on one of two cores) mostly hits both sides of a pair; the ratio of the two medians
    would mix samples from different spells.
    """
    pairs = [x / y for x, y in zip(a.samples, b.samples, strict=False)]
    return statistics.median(pairs) if pairs else float("nan")


def interleaved(
    candidates: dict[str, Callable[[], float | None]], repeats: int
) -> dict[str, Timing]:
    """Run A B C, A B C, ... so that a slow spell of the machine hits every engine alike.

    A candidate returns its own measured seconds (to exclude set-up), or None to be timed
    whole. An exception marks the engine as failed with the error's name; it is not retried.
    """
    results = {name: Timing() for name in candidates}
    for _ in range(repeats):
        for name, run in candidates.items():
            timing = results[name]
            if timing.error:
                continue
            # Collect the previous engine's garbage first (micrograd's nodes are reference
            # cycles): otherwise the next engine pays for collecting it.
            gc.collect()
            start = time.perf_counter()
            try:
                measured = run()
            except Exception as exc:  # noqa: BLE001 - a peer failing is a result to report
                timing.error = f"fails: {type(exc).__name__}"
                continue
            timing.samples.append(measured if measured is not None else time.perf_counter() - start)
    return results


def child(code: str, threads: int) -> Any:
    """Run `code` in a fresh interpreter with `threads` BLAS threads; its last stdout line is
    JSON. A failure raises RuntimeError naming the child's own error."""
    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(threads),
        OPENBLAS_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=1800
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["no output"]
        raise RuntimeError(lines[-1][:80])
    return json.loads(result.stdout.strip().splitlines()[-1])


_CALL = """
import json, sys
sys.path.insert(0, {root!r})
from bench.{module} import {function}
print(json.dumps({function}(*{args!r})))
"""


def isolated(module: str, function: str, args: list, threads: int) -> Any:
    """bench.<module>.<function>(*args), called in a fresh interpreter.

    For the scalar workloads, where Python's cycle collector takes a quarter of the time or
    more: a full collection scans every object on the heap, and a process that has imported
    PyTorch holds some 400,000 more of them (numpy alone: 20,000), which made a chain of
    scalar ops about 40% slower. In a fresh process each engine sees only its own imports,
    as a user's script would.
    """
    return child(_CALL.format(root=str(ROOT), module=module, function=function, args=args), threads)


def machine_facts(threads: int) -> dict[str, str]:
    import numpy as np

    blas = "unknown"
    try:
        config = np.show_config(mode="dicts")
        info = config.get("Build Dependencies", {}).get("blas", {})
        blas = f"{info.get('name', '?')} {info.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - older numpy: leave it unknown
        pass
    facts = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "python": platform.python_version(),
        "numpy": f"{np.__version__} ({blas})",
        "threads": f"{threads} (OMP/OPENBLAS/MKL_NUM_THREADS and torch.set_num_threads)",
    }
    try:
        import torch

        facts["torch"] = f"{torch.__version__}, {torch.get_num_threads()} intra-op threads"
    except ImportError:
        pass
    return facts


def load_average() -> str:
    """Other processes' load at this moment: on 2 cores one busy neighbour shifts every timing,
    so the table records it rather than pretending the machine was idle."""
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg()) + " (1 / 5 / 15 min)"
    except OSError:
        return "unknown"
