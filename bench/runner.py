"""Timing that is fair on a small, noisy machine: engines interleaved, medians and ranges."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


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


def interleaved(candidates: dict[str, Callable[[], float | None]], repeats: int
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
            timing.samples.append(measured if measured is not None
                                  else time.perf_counter() - start)
    return results


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
