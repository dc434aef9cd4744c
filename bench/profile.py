"""`python -m bench --profile WORKLOAD`: where one workload's time goes, by function.

Runs a small version of the workload under cProfile in this process and prints the functions
with the most time of their own, plus the share of time the cycle collector took (cProfile
cannot see it: it runs inside whatever allocation triggered it). Meant for the next person
who wants to make something faster, so they start from a measurement rather than a guess.
"""

from __future__ import annotations

import cProfile
import gc
import io
import pstats
import time
from collections.abc import Callable

PROFILES = ("mnist", "ops", "micrograd", "micrograd-batched", "chain")


def _workload(name: str) -> Callable[[], object]:
    if name == "mnist":
        import numpy as np

        from bench import mnist

        rng = np.random.default_rng(0)
        x = rng.random((128 * 40, 784), dtype=np.float32)
        y = rng.integers(0, 10, len(x))
        problem = mnist.make_problem(x, y, x[:256], y[:256], 128, None).cast(np.float32)
        return lambda: mnist.ours(problem)
    if name == "ops":
        from bench import small_ops

        return lambda: small_ops.ours(2000)
    if name == "micrograd":
        from bench import micrograd_demo

        return lambda: micrograd_demo.ours_scalar_step(1)
    if name == "micrograd-batched":
        from bench import micrograd_demo

        return lambda: micrograd_demo.ours_batched_step(300)
    if name == "chain":
        from bench import chain

        return lambda: chain._chain(100_000)
    raise ValueError(f"--profile: unknown workload {name!r}; choose from {PROFILES}")


def _collector_seconds(run: Callable[[], object]) -> tuple[float, float]:
    """Wall time of one run, and the part of it spent in the cycle collector."""
    spent = [0.0]
    started = [0.0]

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            spent[0] += time.perf_counter() - started[0]

    gc.callbacks.append(callback)
    try:
        start = time.perf_counter()
        run()
        total = time.perf_counter() - start
    finally:
        gc.callbacks.remove(callback)
    return total, spent[0]


def profile(name: str, top: int = 25) -> str:
    run = _workload(name)
    run()  # warm up: imports, first-call caches
    total, collector = _collector_seconds(run)
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    out = io.StringIO()
    out.write(
        f"workload {name}: {total * 1e3:.1f} ms unprofiled, of which the cycle collector "
        f"{collector * 1e3:.1f} ms ({collector / total:.0%})\n"
    )
    out.write("(profiled times below are inflated by cProfile's own per-call cost)\n")
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()
