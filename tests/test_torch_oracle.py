"""PyTorch as an oracle: random compositions of ops, compared output by output and gradient by
gradient (float64), plus Hessian-vector products and a float32 run."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autodiff as ad
from autodiff import Tensor, grad

torch = pytest.importorskip("torch", reason="PyTorch is the optional oracle: "
                                            "pip install torch==2.13.0 to run these tests")

# Each step maps (ours, theirs) of a running value `v` and a second input `w` (same shape) to
# new values; both sides are written with their own library's API. Inputs stay in safe
# ranges (log of positives, division by values away from zero).
STEPS = {
    "add": (lambda v, w: v + w, lambda v, w: v + w),
    "sub": (lambda v, w: v - w * 0.5, lambda v, w: v - w * 0.5),
    "mul": (lambda v, w: v * w, lambda v, w: v * w),
    "div": (lambda v, w: v / (w * w + 1), lambda v, w: v / (w * w + 1)),
    "exp": (lambda v, w: (v.tanh()).exp(), lambda v, w: torch.tanh(v).exp()),
    "log": (lambda v, w: (v * v + 0.5).log(), lambda v, w: torch.log(v * v + 0.5)),
    "sigmoid": (lambda v, w: v.sigmoid(), lambda v, w: torch.sigmoid(v)),
    "tanh": (lambda v, w: v.tanh(), lambda v, w: torch.tanh(v)),
    "relu": (lambda v, w: (v + 0.3).relu(), lambda v, w: torch.relu(v + 0.3)),
    "abs": (lambda v, w: (v + 0.3).abs(), lambda v, w: torch.abs(v + 0.3)),
    "pow": (lambda v, w: (v * v + 1) ** 1.5, lambda v, w: (v * v + 1) ** 1.5),
    "pow_tensor": (lambda v, w: (v * v + 1) ** w.tanh(), lambda v, w: (v * v + 1) ** torch.tanh(w)),
    "sqrt": (lambda v, w: (v * v + 1).sqrt(), lambda v, w: torch.sqrt(v * v + 1)),
    "softmax": (lambda v, w: v.softmax(axis=-1), lambda v, w: torch.softmax(v, dim=-1)),
    "log_softmax": (lambda v, w: v.log_softmax(axis=0), lambda v, w: torch.log_softmax(v, 0)),
    "lse_keep": (lambda v, w: v.logsumexp(axis=1, keepdims=True) + w,
                 lambda v, w: torch.logsumexp(v, 1, keepdim=True) + w),
    "mean_keep": (lambda v, w: v.mean(axis=0, keepdims=True) * w,
                  lambda v, w: v.mean(0, keepdim=True) * w),
    "max_keep": (lambda v, w: v.max(axis=1, keepdims=True) + w,
                 lambda v, w: torch.amax(v, 1, keepdim=True) + w),
    "matmul": (lambda v, w: v @ w.T, lambda v, w: v @ w.T),
    "transpose": (lambda v, w: (v.T @ w), lambda v, w: v.T @ w),
    "getitem": (lambda v, w: ad.concatenate([v[:, ::-1][:, :1], v[:, 1:]], axis=1),
                lambda v, w: torch.cat([v.flip(1)[:, :1], v[:, 1:]], 1)),
    "index_repeat": (lambda v, w: v[[0, 0, 1]][:2] * w[:2] if len(v) > 1 else v * w,
                     lambda v, w: v[[0, 0, 1]][:2] * w[:2] if len(v) > 1 else v * w),
    "where": (lambda v, w: ad.where(v.data > w.data, v, w * 2),
              lambda v, w: torch.where(v > w, v, w * 2)),
    "maximum": (lambda v, w: ad.maximum(v, w + 0.05), lambda v, w: torch.maximum(v, w + 0.05)),
    "reshape": (lambda v, w: v.reshape(-1).reshape(v.shape) * w,
                lambda v, w: v.reshape(-1).reshape(v.shape) * w),
}
NAMES = sorted(STEPS)


def _run(names, v_ours, w_ours, v_torch, w_torch):
    for name in names:
        ours, theirs = STEPS[name]
        new_ours, new_theirs = ours(v_ours, w_ours), theirs(v_torch, w_torch)
        if new_ours.shape != w_ours.shape:  # keep the second input's shape in step
            w_ours, w_torch = ours(w_ours, w_ours), theirs(w_torch, w_torch)
            if w_ours.shape != new_ours.shape:
                return v_ours, v_torch
        v_ours, v_torch = new_ours, new_theirs
    return v_ours, v_torch


@given(
    names=st.lists(st.sampled_from(NAMES), min_size=3, max_size=8),
    rows=st.integers(2, 4),
    cols=st.integers(2, 4),
    seed=st.integers(0, 2**16),
)
def test_random_compositions_match_pytorch(names, rows, cols, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(-1.5, 1.5, size=(2, rows, cols))
    # keep clear of kinks and ties, where a derivative is a convention, not a fact
    a[np.abs(a + 0.3) < 1e-3] += 0.01
    x, y = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    tx = torch.tensor(a, requires_grad=True)
    ty = torch.tensor(b, requires_grad=True)
    ours, theirs = _run(names, x, y, tx, ty)
    np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-9, atol=1e-11)
    weights = rng.normal(size=ours.shape)
    (ours * weights).sum().backward()
    (theirs * torch.tensor(weights)).sum().backward()
    for mine, ref in ((x, tx), (y, ty)):
        expected = np.zeros_like(a) if ref.grad is None else ref.grad.numpy()
        got = np.zeros_like(a) if mine.grad is None else mine.grad.data
        np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-10)


@given(names=st.lists(st.sampled_from(["mul", "tanh", "sigmoid", "log", "exp", "softmax",
                                       "matmul", "pow", "div", "lse_keep"]),
                      min_size=2, max_size=5),
       seed=st.integers(0, 2**16))
def test_hessian_vector_products_match_pytorch(names, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(-1, 1, size=(2, 3, 3))
    v = rng.normal(size=(3, 3))
    x = Tensor(a, requires_grad=True)
    tx = torch.tensor(a, requires_grad=True)
    out, tout = _run(names, x, Tensor(b), tx, torch.tensor(b))
    (g,) = grad(out.sum(), [x], create_graph=True)
    (hv,) = grad((g * v).sum(), [x]) if g.requires_grad else (Tensor(np.zeros_like(a)),)
    (tg,) = torch.autograd.grad(tout.sum(), [tx], create_graph=True)
    if tg.requires_grad:
        (thv,) = torch.autograd.grad((tg * torch.tensor(v)).sum(), [tx], allow_unused=True)
        thv = np.zeros_like(a) if thv is None else thv.numpy()
    else:
        thv = np.zeros_like(a)
    np.testing.assert_allclose(g.data, tg.detach().numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(hv.data, thv, rtol=1e-7, atol=1e-9)


def test_float32_network_matches_pytorch_within_float32_tolerance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 20)).astype(np.float32)
    w1 = rng.normal(0, 0.3, size=(32, 20)).astype(np.float32)
    w2 = rng.normal(0, 0.3, size=(5, 32)).astype(np.float32)
    labels = rng.integers(0, 5, size=16)
    W1, W2 = Tensor(w1, requires_grad=True), Tensor(w2, requires_grad=True)
    loss = ad.softmax_cross_entropy(ad.linear(ad.linear(Tensor(x), W1).tanh(), W2), labels)
    loss.backward()
    T1 = torch.tensor(w1, requires_grad=True)
    T2 = torch.tensor(w2, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(torch.tanh(torch.tensor(x) @ T1.T) @ T2.T,
                                            torch.tensor(labels))
    ref.backward()
    assert loss.dtype == np.float32 and W1.grad.dtype == np.float32
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    np.testing.assert_allclose(W1.grad.data, T1.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(W2.grad.data, T2.grad.numpy(), rtol=1e-4, atol=1e-6)
