"""Workload 6: LeNet-5 training steps on MNIST (batch 64, SGD lr 0.05), for every engine.

A fixed number of steps rather than a whole epoch keeps the suite's time bounded; seconds are
scaled to one epoch of 60,000 images. The engines start from the same weights and see the
same batches, and each reports its test accuracy afterwards, so one can see that they all
computed the same thing. The numpy engine is the hand-written im2col loop a numpy user would
write: windows as a matrix, one matmul per conv layer, col2im by one strided add per tap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

LR = 0.05
EPOCH = 60_000
# (name in nn.LeNet5's state dict, shape, fan_in): PyTorch's default init bound 1/sqrt(fan_in).
SHAPES = {
    "features.layers.0.weight": ((6, 1, 5, 5), 25),
    "features.layers.0.bias": ((6,), 25),
    "features.layers.3.weight": ((16, 6, 5, 5), 150),
    "features.layers.3.bias": ((16,), 150),
    "classifier.layers.1.weight": ((120, 400), 400),
    "classifier.layers.1.bias": ((120,), 400),
    "classifier.layers.3.weight": ((84, 120), 120),
    "classifier.layers.3.bias": ((84,), 120),
    "classifier.layers.5.weight": ((10, 84), 84),
    "classifier.layers.5.bias": ((10,), 84),
}


@dataclass
class Problem:
    x: np.ndarray  # (N, 1, 28, 28) float32
    y: np.ndarray
    xt: np.ndarray
    yt: np.ndarray
    batches: list[np.ndarray]
    weights: dict[str, np.ndarray]

    def images_per_epoch_scale(self) -> float:
        """Multiply the measured seconds by this to get seconds per 60,000-image epoch."""
        return EPOCH / sum(len(b) for b in self.batches)


def make_problem(
    x, y, xt, yt, batch_size: int = 64, steps: int = 200, test_size: int = 2000
) -> Problem:
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    batches = [order[i : i + batch_size] for i in range(0, len(x) - batch_size + 1, batch_size)]
    batches = (batches * (steps // max(len(batches), 1) + 1))[:steps]
    weights = {
        name: rng.uniform(-1 / np.sqrt(fan), 1 / np.sqrt(fan), shape).astype(np.float32)
        for name, (shape, fan) in SHAPES.items()
    }
    images = lambda a: np.ascontiguousarray(a.reshape(-1, 1, 28, 28), dtype=np.float32)  # noqa: E731
    return Problem(images(x), y, images(xt[:test_size]), yt[:test_size], batches, weights)


def _scores(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(test accuracy, test cross-entropy): the loss tells engines apart long before the
    accuracy does, after only a few steps."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    loss = np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(labels)), labels]
    return float((z.argmax(axis=1) == labels).mean()), float(loss.mean())


def ours(p: Problem) -> tuple[float, float, float]:
    import nn
    from autodiff import Tensor, no_grad

    model = nn.LeNet5(dtype=p.x.dtype)
    model.load_state_dict(p.weights)
    optimizer = nn.optim.SGD(model.parameters(), lr=LR)
    start = time.perf_counter()
    for idx in p.batches:
        loss = nn.F.cross_entropy(model(Tensor(p.x[idx])), p.y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    with no_grad():
        return seconds, *_scores(model(Tensor(p.xt)).data, p.yt)


def pytorch_eager(p: Problem) -> tuple[float, float, float]:
    import torch
    from torch import nn as tnn

    model = tnn.Sequential(
        tnn.Conv2d(1, 6, 5, padding=2),
        tnn.ReLU(),
        tnn.MaxPool2d(2),
        tnn.Conv2d(6, 16, 5),
        tnn.ReLU(),
        tnn.MaxPool2d(2),
        tnn.Flatten(),
        tnn.Linear(400, 120),
        tnn.ReLU(),
        tnn.Linear(120, 84),
        tnn.ReLU(),
        tnn.Linear(84, 10),
    )
    torch_names = [
        "0.weight",
        "0.bias",
        "3.weight",
        "3.bias",
        "7.weight",
        "7.bias",
        "9.weight",
        "9.bias",
        "11.weight",
        "11.bias",
    ]
    model.load_state_dict(
        {t: torch.from_numpy(p.weights[o].copy()) for t, o in zip(torch_names, SHAPES, strict=True)}
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    x, y = torch.from_numpy(p.x), torch.from_numpy(p.y.astype(np.int64))
    start = time.perf_counter()
    for idx in p.batches:
        index = torch.from_numpy(idx)
        loss = torch.nn.functional.cross_entropy(model(x[index]), y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        return seconds, *_scores(model(torch.from_numpy(p.xt)).numpy(), p.yt)


# --- the hand-written numpy loop ---------------------------------------------------------


def _conv_forward(x, w, b, pad):
    if pad:
        x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, c = x.shape[:2]
    o, _, kh, kw = w.shape
    windows = sliding_window_view(x, (kh, kw), axis=(2, 3))  # (N, C, Ho, Wo, kh, kw), a view
    ho, wo = windows.shape[2:4]
    cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * kh * kw)
    out = cols @ w.reshape(o, -1).T + b
    return out.reshape(n, ho, wo, o).transpose(0, 3, 1, 2), (cols, x.shape)


def _conv_backward(dout, w, saved, pad, need_dx=True):
    cols, padded_shape = saved
    n, o, ho, wo = dout.shape
    _, c, kh, kw = w.shape
    d = dout.transpose(0, 2, 3, 1).reshape(-1, o)
    dw, db = (d.T @ cols).reshape(w.shape), d.sum(axis=0)
    if not need_dx:
        return None, dw, db
    dcols = (d @ w.reshape(o, -1)).reshape(n, ho, wo, c, kh, kw).transpose(0, 3, 1, 2, 4, 5)
    dx = np.zeros(padded_shape, dtype=dout.dtype)
    for i in range(kh):  # col2im: one strided add per kernel tap
        for j in range(kw):
            dx[:, :, i : i + ho, j : j + wo] += dcols[..., i, j]
    h, w_ = padded_shape[2:]
    return dx[:, :, pad : h - pad, pad : w_ - pad], dw, db


def _pool_forward(x):
    n, c, h, w = x.shape
    blocks = x.reshape(n, c, h // 2, 2, w // 2, 2)
    out = blocks.max(axis=(3, 5))
    winners = blocks == out[:, :, :, None, :, None]
    # Ties share the gradient, as our max does (so the two engines take the same steps).
    share = winners / winners.sum(axis=(3, 5), keepdims=True)
    return out, share


def _pool_backward(dout, share):
    n, c, h2, _, w2, _ = share.shape
    return (share * dout[:, :, :, None, :, None]).reshape(n, c, h2 * 2, w2 * 2)


def _numpy_forward(W, x):
    a1, s1 = _conv_forward(x, W["c1w"], W["c1b"], 2)
    r1 = np.maximum(a1, 0)
    p1, m1 = _pool_forward(r1)
    a2, s2 = _conv_forward(p1, W["c2w"], W["c2b"], 0)
    r2 = np.maximum(a2, 0)
    p2, m2 = _pool_forward(r2)
    f = p2.reshape(len(x), -1)
    h1 = np.maximum(f @ W["f1w"].T + W["f1b"], 0)
    h2 = np.maximum(h1 @ W["f2w"].T + W["f2b"], 0)
    z = h2 @ W["f3w"].T + W["f3b"]
    return z, (a1, s1, m1, a2, s2, m2, p2, f, h1, h2)


def numpy_im2col(p: Problem) -> tuple[float, float, float]:
    """Forward and backward by hand with im2col: what this engine should be close to."""
    keys = ["c1w", "c1b", "c2w", "c2b", "f1w", "f1b", "f2w", "f2b", "f3w", "f3b"]
    W = {k: p.weights[name].copy() for k, name in zip(keys, SHAPES, strict=True)}
    start = time.perf_counter()
    for idx in p.batches:
        x, y = p.x[idx], p.y[idx]
        z, (a1, s1, m1, a2, s2, m2, p2, f, h1, h2) = _numpy_forward(W, x)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        total = e.sum(axis=1, keepdims=True)
        rows = np.arange(len(y))
        _loss = (np.log(total[:, 0]) - z[rows, y]).mean()  # every engine computes the loss
        dz = e / total
        dz[rows, y] -= 1
        dz /= len(y)
        g = {"f3w": dz.T @ h2, "f3b": dz.sum(axis=0)}
        dh2 = (dz @ W["f3w"]) * (h2 > 0)
        g["f2w"], g["f2b"] = dh2.T @ h1, dh2.sum(axis=0)
        dh1 = (dh2 @ W["f2w"]) * (h1 > 0)
        g["f1w"], g["f1b"] = dh1.T @ f, dh1.sum(axis=0)
        dp2 = (dh1 @ W["f1w"]).reshape(p2.shape)
        da2 = _pool_backward(dp2, m2) * (a2 > 0)
        dp1, g["c2w"], g["c2b"] = _conv_backward(da2, W["c2w"], s2, 0)
        da1 = _pool_backward(dp1, m1) * (a1 > 0)
        _, g["c1w"], g["c1b"] = _conv_backward(da1, W["c1w"], s1, 2, need_dx=False)
        for k in keys:
            W[k] -= LR * g[k]
    seconds = time.perf_counter() - start
    return seconds, *_scores(_numpy_forward(W, p.xt)[0], p.yt)


ENGINES: dict[str, Callable[[Problem], tuple[float, float, float]]] = {
    "numpy im2col (by hand)": numpy_im2col,
    "autodiff (ours)": ours,
    "PyTorch eager": pytorch_eager,
}
