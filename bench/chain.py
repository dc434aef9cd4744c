"""Workload 4: deep chains of scalar ops, forward + backward, and whether memory comes back."""

from __future__ import annotations

import gc
import time
import tracemalloc


def _chain(n: int):
    from autodiff import Tensor

    x = Tensor(1.0, requires_grad=True)
    y = x
    for _ in range(n):
        y = y * 1.0000001 + 1e-9
    y.backward()
    return y


def ours(n: int) -> dict[str, float]:
    """Time without tracing (tracemalloc slows every allocation), then memory with it."""
    start = time.perf_counter()
    y = _chain(n)
    seconds = time.perf_counter() - start
    del y
    tracemalloc.start()
    y = _chain(n)
    peak = tracemalloc.get_traced_memory()[1]
    del y
    gc.collect()
    left = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return {"us_per_op": seconds / (2 * n) * 1e6, "peak_mb": peak / 2**20,
            "left_mb": left / 2**20}


def micrograd(n: int) -> dict[str, float]:
    from micrograd.engine import Value

    x = Value(1.0)
    start = time.perf_counter()
    y = x
    for _ in range(n):
        y = y * 1.0000001 + 1e-9
    y.backward()  # recursive topological sort: RecursionError past ~1,000 nodes
    return {"us_per_op": (time.perf_counter() - start) / (2 * n) * 1e6}
