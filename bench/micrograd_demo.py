"""Workload 3: micrograd's demo. MLP(2, [16, 16], 1) on 100 two-moons points, SVM hinge loss
plus L2, SGD. micrograd on its scalar graph; ours on the same scalar graph of 0-d Tensors
(structured exactly like micrograd's nn.py), and batched; and a batched numpy floor."""

from __future__ import annotations

import time

import numpy as np

SIZES = [2, 16, 16, 1]


def data():
    import nn

    x, y = nn.data.make_moons(100, noise=0.1, seed=0)
    return x, (y * 2 - 1).astype(np.float64)  # labels -1 / +1 for the hinge loss


def initial_weights():
    rng = np.random.default_rng(1)
    return [
        (rng.uniform(-1, 1, (n_out, n_in)), np.zeros(n_out))
        for n_in, n_out in zip(SIZES[:-1], SIZES[1:], strict=True)
    ]


def _scalar_graph_steps(steps: int, param, constant, reset, update) -> float:
    """micrograd's own training loop, with the engine's value type plugged in, so both
    engines build exactly the same scalar graph."""
    x, y = data()
    layers = [
        ([[param(w) for w in row] for row in W], [param(v) for v in b])
        for W, b in initial_weights()
    ]
    params = [v for W, b in layers for row in W for v in row] + [v for _, b in layers for v in b]

    def forward(row):
        act = [constant(v) for v in row]
        for i, (W, b) in enumerate(layers):
            outs = [
                sum((wi * ai for wi, ai in zip(w_row, act, strict=True)), bias)
                for w_row, bias in zip(W, b, strict=True)
            ]
            act = [o.relu() for o in outs] if i < len(layers) - 1 else outs
        return act[0]

    start = time.perf_counter()
    for _ in range(steps):
        scores = [forward(row) for row in x]
        losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores, strict=True)]
        total = sum(losses) * (1.0 / len(losses)) + 1e-4 * sum(p * p for p in params)
        for p in params:
            reset(p)
        total.backward()
        for p in params:
            update(p)
    return (time.perf_counter() - start) / steps


def micrograd_step(steps: int) -> float:
    from micrograd.engine import Value

    def update(p):
        p.data -= 0.01 * p.grad

    return _scalar_graph_steps(steps, Value, Value, lambda p: setattr(p, "grad", 0), update)


def ours_scalar_step(steps: int) -> float:
    from autodiff import Tensor

    def update(p):
        p.data = p.data - 0.01 * p.grad.data

    return _scalar_graph_steps(
        steps, lambda v: Tensor(v, requires_grad=True), Tensor, Tensor.zero_grad, update
    )


def ours_batched_step(steps: int) -> float:
    import nn
    from autodiff import Tensor

    x, y = data()
    model = nn.MLP(2, SIZES[1:-1], 1, dtype=np.float64)
    weights = initial_weights()
    model.load_state_dict(
        {
            f"layers.{2 * i}.{k}": v
            for i, (W, b) in enumerate(weights)
            for k, v in (("weight", W), ("bias", b))
        }
    )
    optimizer = nn.optim.SGD(model.parameters(), lr=0.01)
    xt, yt = Tensor(x), Tensor(y[:, None])
    start = time.perf_counter()
    for _ in range(steps):
        scores = model(xt)
        loss = (1 - yt * scores).relu().mean()
        loss = loss + 1e-4 * sum((p * p).sum() for p in model.parameters())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / steps


def numpy_batched_step(steps: int) -> float:
    x, y = data()
    params = [(W.copy(), b.copy()) for W, b in initial_weights()]
    start = time.perf_counter()
    for _ in range(steps):
        acts, pre = [x], []
        for i, (W, b) in enumerate(params):
            z = acts[-1] @ W.T + b
            pre.append(z)
            acts.append(np.maximum(z, 0) if i < len(params) - 1 else z)
        margin = 1 - y[:, None] * acts[-1]
        # The loss value (hinge mean plus the L2 term), as every engine computes it.
        _loss = np.maximum(margin, 0).sum() / len(y) + 1e-4 * sum(
            (W * W).sum() + (b * b).sum() for W, b in params
        )
        grad = -(y[:, None] * (margin > 0)) / len(y)
        new = []
        for i in reversed(range(len(params))):
            W, b = params[i]
            if i < len(params) - 1:
                grad = grad * (pre[i] > 0)
            gW, gb = grad.T @ acts[i] + 2e-4 * W, grad.sum(axis=0) + 2e-4 * b
            grad = grad @ W
            new.append((W - 0.01 * gW, b - 0.01 * gb))
        params = new[::-1]
    return (time.perf_counter() - start) / steps


ENGINES = {
    "micrograd (scalar graph)": micrograd_step,
    "autodiff (ours), scalar graph": ours_scalar_step,
    "autodiff (ours), batched": ours_batched_step,
    "numpy floor, batched": numpy_batched_step,
}
