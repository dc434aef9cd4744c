"""Workload 2: per-op overhead. Five ops on 4x4 tensors (matmul, mul, tanh, add, sum) and a
backward pass, in microseconds per iteration."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

RNG = np.random.default_rng(0)
A, B = RNG.normal(size=(4, 4)), RNG.normal(size=(4, 4))


def _per_iteration(step: Callable[[], object], iterations: int) -> float:
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    return (time.perf_counter() - start) / iterations


def numpy_floor(iterations: int) -> float:
    def step():
        c = A @ B
        d = c * A
        e = np.tanh(d)
        f = e + B
        f.sum()
        gd = 1 - e * e  # d(sum)/df = 1; through tanh
        ga = gd * c + (gd * A) @ B.T
        gb = 1 + A.T @ (gd * A)
        return ga, gb

    return _per_iteration(step, iterations)


def ours(iterations: int) -> float:
    from autodiff import Tensor

    a, b = Tensor(A, requires_grad=True), Tensor(B, requires_grad=True)

    def step():
        a.zero_grad()
        b.zero_grad()
        (((a @ b) * a).tanh() + b).sum().backward()

    return _per_iteration(step, iterations)


def torch_eager(iterations: int) -> float:
    import torch

    a = torch.tensor(A, requires_grad=True)
    b = torch.tensor(B, requires_grad=True)

    def step():
        a.grad = b.grad = None
        (torch.tanh((a @ b) * a) + b).sum().backward()

    return _per_iteration(step, iterations)


def mygrad_engine(iterations: int) -> float:
    import mygrad as mg

    a, b = mg.Tensor(A), mg.Tensor(B)

    def step():
        (mg.tanh(mg.matmul(a, b) * a) + b).sum().backward()

    return _per_iteration(step, iterations)


def hips_autograd(iterations: int) -> float:
    import autograd.numpy as anp
    from autograd import grad

    g = grad(lambda a, b: anp.sum(anp.tanh(anp.dot(a, b) * a) + b), argnum=(0, 1))
    return _per_iteration(lambda: g(A, B), iterations)


ENGINES = {
    "numpy floor (by hand)": numpy_floor,
    "autodiff (ours)": ours,
    "PyTorch eager": torch_eager,
    "MyGrad": mygrad_engine,
    "HIPS autograd": hips_autograd,
}
