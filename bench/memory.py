"""Workload 5: memory. Peak RSS of one MNIST epoch per engine (each in a fresh process, so
they do not pollute each other), and our RSS after 1,000 and 10,000 training steps."""

from __future__ import annotations

from bench.runner import ROOT, child

# Peak RSS from VmHWM: unlike getrusage's ru_maxrss, which Linux carries over from the parent
# through fork and exec, the high-water mark belongs to the child's own address space.
_HWM = """
def hwm_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
"""

_EPOCH = (
    _HWM
    + """
import json, sys
import numpy as np
sys.path.insert(0, {root!r})
from bench import mnist
arrays = np.load({arrays!r})
x, y, xt, yt = (arrays[k] for k in ("x", "y", "xt", "yt"))
problem = mnist.make_problem(x, y, xt, yt, 128, {max_batches!r}).cast(np.float32)
del arrays
base = hwm_mb()
mnist.ENGINES[{engine!r}](problem)
peak = hwm_mb()
print(json.dumps({{"peak_mb": peak, "above_data_mb": peak - base}}))
"""
)

_STEPS = """
import json, sys
import numpy as np
sys.path.insert(0, {root!r})
import nn
from autodiff import Tensor

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

rng = np.random.default_rng(0)
x = rng.random((128, 784), dtype=np.float32)
y = rng.integers(0, 10, 128)
model = nn.MLP(784, [128], 10, rng=0)
opt = nn.optim.SGD(model.parameters(), lr=0.01)
marks = {{}}
for step in range(1, {steps} + 1):
    loss = nn.F.cross_entropy(model(Tensor(x)), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step in (100, 1000, {steps}):
        marks[step] = rss_mb()
print(json.dumps(marks))
"""


def _run(code: str, threads: int) -> dict:
    try:
        return child(code, threads)
    except RuntimeError as exc:
        return {"error": str(exc)}


def epoch_peak(engine: str, arrays: str, max_batches: int | None, threads: int) -> dict:
    """`arrays` is an .npz of x, y, xt, yt written once by the caller, so that every child
    starts from the same few hundred MB instead of re-decoding the gzipped files."""
    return _run(
        _EPOCH.format(root=str(ROOT), arrays=arrays, max_batches=max_batches, engine=engine),
        threads,
    )


def steady_state(steps: int, threads: int) -> dict:
    return _run(_STEPS.format(root=str(ROOT), steps=steps), threads)
