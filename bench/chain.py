"""Workload 4: deep chains of scalar ops, forward + backward, and whether memory comes back."""

from __future__ import annotations

import gc
import time
import tracemalloc


def _chain(n: int) -> tuple[float, float]:
    """Seconds of the forward and of the backward pass of a chain of 2n scalar ops."""
    from autodiff import Tensor

    x = Tensor(1.0, requires_grad=True)
    start = time.perf_counter()
    y = x
    for _ in range(n):
        y = y * 1.0000001 + 1e-9
    middle = time.perf_counter()
    y.backward()
    return middle - start, time.perf_counter() - middle


def ours(n: int, repeats: int = 1) -> dict:
    """Seconds per op of each repeat (forward, backward, both), then memory in one more run
    (tracemalloc slows every allocation, so it is not on while timing). The graph dies when
    `_chain` returns; freeing it is not timed."""
    forward, backward = [], []
    for _ in range(repeats):
        gc.collect()  # the previous chain's garbage is not this one's cost
        f, b = _chain(n)
        forward.append(f / (2 * n))
        backward.append(b / (2 * n))
    gc.collect()
    tracemalloc.start()
    _chain(n)
    peak = tracemalloc.get_traced_memory()[1]
    gc.collect()
    left = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return {
        "forward": forward,
        "backward": backward,
        "total": [f + b for f, b in zip(forward, backward, strict=True)],
        "peak_mb": peak / 2**20,
        "left_mb": left / 2**20,
    }


def micrograd(n: int) -> dict[str, float]:
    from micrograd.engine import Value

    x = Value(1.0)
    start = time.perf_counter()
    y = x
    for _ in range(n):
        y = y * 1.0000001 + 1e-9
    y.backward()  # recursive topological sort: RecursionError past ~1,000 nodes
    return {"us_per_op": (time.perf_counter() - start) / (2 * n) * 1e6}
