"""Workload 1: one epoch of the 784-128-10 MLP on MNIST, SGD lr 0.1, for every engine.

Same data, initial weights and batch order everywhere; each engine also reports the test
accuracy it reaches, so one can see that all of them computed the same thing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

LR = 0.1


@dataclass
class Problem:
    x: np.ndarray
    y: np.ndarray
    xt: np.ndarray
    yt: np.ndarray
    batches: list[np.ndarray]  # index arrays, the epoch's batch order
    weights: dict[str, np.ndarray]  # W1 (128, 784), b1, W2 (10, 128), b2

    def cast(self, dtype) -> Problem:
        # The images in an array of their own (not a view of the loader's), so an engine can
        # share their memory (autodiff.from_numpy) without a copy.
        x = self.x.astype(dtype, copy=False)
        return Problem(
            x if x.base is None else x.copy(),
            self.y,
            self.xt.astype(dtype, copy=False),
            self.yt,
            self.batches,
            {k: v.astype(dtype) for k, v in self.weights.items()},
        )


def make_problem(x, y, xt, yt, batch_size: int, max_batches: int | None) -> Problem:
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    batches = [order[i : i + batch_size] for i in range(0, len(x), batch_size)]
    if max_batches:
        batches = batches[:max_batches]
    bound1, bound2 = 1 / np.sqrt(784), 1 / np.sqrt(128)
    weights = {
        "W1": rng.uniform(-bound1, bound1, (128, 784)),
        "b1": rng.uniform(-bound1, bound1, 128),
        "W2": rng.uniform(-bound2, bound2, (10, 128)),
        "b2": rng.uniform(-bound2, bound2, 10),
    }
    return Problem(x, y, xt, yt, batches, weights)


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == labels).mean())


def numpy_floor(p: Problem) -> tuple[float, float]:
    """Forward and backward by hand: the best any numpy-backed engine can do."""
    W1, b1, W2, b2 = (p.weights[k].copy() for k in ("W1", "b1", "W2", "b2"))
    start = time.perf_counter()
    for idx in p.batches:
        x, y = p.x[idx], p.y[idx]
        h = x @ W1.T + b1
        r = np.maximum(h, 0)
        z = r @ W2.T + b2
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        total = e.sum(axis=1, keepdims=True)
        rows = np.arange(len(y))
        # The loss value is part of the forward pass: every engine computes it (backward
        # starts from it), so the floor does too.
        _loss = (np.log(total[:, 0]) - z[rows, y]).sum() / len(y)
        dz = e / total
        dz[rows, y] -= 1
        dz /= len(y)
        dW2, db2 = dz.T @ r, dz.sum(axis=0)
        dh = (dz @ W2) * (h > 0)
        dW1, db1 = dh.T @ x, dh.sum(axis=0)
        W1 -= LR * dW1
        b1 -= LR * db1
        W2 -= LR * dW2
        b2 -= LR * db2
    seconds = time.perf_counter() - start
    return seconds, _accuracy(np.maximum(p.xt @ W1.T + b1, 0) @ W2.T + b2, p.yt)


def matmul_floor(p: Problem) -> tuple[float, float]:
    """Only the epoch's five matrix products per step, same shapes and layouts as the floor's;
    gathering the batch is left out of the clock. No engine can beat this."""
    W1, W2 = p.weights["W1"], p.weights["W2"]
    seconds = 0.0
    for idx in p.batches:
        x = p.x[idx]
        start = time.perf_counter()
        h = x @ W1.T
        z = h @ W2.T
        _ = z.T @ h, z @ W2, h.T @ x
        seconds += time.perf_counter() - start
    return seconds, float("nan")


def ours(p: Problem) -> tuple[float, float]:
    import nn
    from autodiff import from_numpy

    model = nn.MLP(784, [128], 10, dtype=p.x.dtype)
    model.load_state_dict(
        {
            "layers.0.weight": p.weights["W1"],
            "layers.0.bias": p.weights["b1"],
            "layers.2.weight": p.weights["W2"],
            "layers.2.bias": p.weights["b2"],
        }
    )
    optimizer = nn.optim.SGD(model.parameters(), lr=LR)
    # The images as one Tensor over the same memory, batches gathered by indexing it: the
    # PyTorch run below does the same (from_numpy, then x[idx]). Tensor(p.x[idx]) would also
    # copy each batch, since a Tensor owns its numbers; Tensor(p.x) would hold the set twice.
    x = from_numpy(p.x)
    start = time.perf_counter()
    for idx in p.batches:
        loss = nn.F.cross_entropy(model(x[idx]), p.y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    return seconds, _accuracy(nn.predict(model, p.xt), p.yt)


def torch_eager(p: Problem) -> tuple[float, float]:
    import torch

    dtype = torch.float32 if p.x.dtype == np.float32 else torch.float64
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)
    ).to(dtype)
    with torch.no_grad():
        for layer, (w, b) in zip((model[0], model[2]), (("W1", "b1"), ("W2", "b2")), strict=True):
            layer.weight.copy_(torch.from_numpy(p.weights[w]))
            layer.bias.copy_(torch.from_numpy(p.weights[b]))
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    x, y = torch.from_numpy(p.x), torch.from_numpy(p.y)
    batches = [torch.from_numpy(idx) for idx in p.batches]
    start = time.perf_counter()
    for idx in batches:
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        logits = model(torch.from_numpy(p.xt)).numpy()
    return seconds, _accuracy(logits, p.yt)


def mygrad_engine(p: Problem) -> tuple[float, float]:
    import mygrad as mg
    from mygrad.nnet.losses import softmax_crossentropy

    params = {k: mg.Tensor(v.copy()) for k, v in p.weights.items()}
    start = time.perf_counter()
    for idx in p.batches:
        x = p.x[idx]
        h = mg.matmul(x, params["W1"].T) + params["b1"]
        z = mg.matmul(mg.maximum(h, 0), params["W2"].T) + params["b2"]
        loss = softmax_crossentropy(z, p.y[idx])
        loss.backward()
        for t in params.values():
            t.data -= LR * t.grad
    seconds = time.perf_counter() - start
    d = {k: v.data for k, v in params.items()}
    return seconds, _accuracy(np.maximum(p.xt @ d["W1"].T + d["b1"], 0) @ d["W2"].T + d["b2"], p.yt)


def hips_autograd(p: Problem) -> tuple[float, float]:
    import autograd.numpy as anp
    from autograd import grad

    def loss_fn(params, x, y):
        W1, b1, W2, b2 = params
        z = anp.maximum(anp.dot(x, W1.T) + b1, 0)
        z = anp.dot(z, W2.T) + b2
        z = z - anp.max(z, axis=1, keepdims=True)
        log_p = z - anp.log(anp.sum(anp.exp(z), axis=1, keepdims=True))
        return -anp.mean(log_p[anp.arange(len(y)), y])

    gradient = grad(loss_fn)
    params = [p.weights[k].copy() for k in ("W1", "b1", "W2", "b2")]
    start = time.perf_counter()
    for idx in p.batches:
        grads = gradient(params, p.x[idx], p.y[idx])
        params = [w - LR * g for w, g in zip(params, grads, strict=True)]
    seconds = time.perf_counter() - start
    W1, b1, W2, b2 = params
    return seconds, _accuracy(np.maximum(p.xt @ W1.T + b1, 0) @ W2.T + b2, p.yt)


ENGINES: dict[str, Callable[[Problem], tuple[float, float]]] = {
    "numpy floor (by hand)": numpy_floor,
    "matmul-only floor": matmul_floor,
    "autodiff (ours)": ours,
    "PyTorch eager": torch_eager,
    "MyGrad": mygrad_engine,
    "HIPS autograd": hips_autograd,
}
