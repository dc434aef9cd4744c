"""Round 3 (graph semantics and memory): in-place writes, gradient bookkeeping, leaks."""

from __future__ import annotations

import numpy as np
import pytest

import autodiff as ad
from autodiff import Tensor


def test_zero_writes_into_memory_shared_by_views_and_detached_aliases():
    # zero_() made new zeros, so a view or detach() alias made before kept the old numbers,
    # unlike `t -= t`, `t[:] = 0` here and PyTorch's zero_.
    w = Tensor([1.0, 2.0, 3.0, 4.0])
    view, alias = w[1:], w.detach()
    assert w.zero_() is w
    assert view.tolist() == [0.0, 0.0, 0.0] and alias.tolist() == [0.0] * 4
    # A graph that saved the view is refused (its numbers changed), naming the op.
    x = Tensor([1.0, 1.0, 1.0], requires_grad=True)
    w = Tensor([1.0, 2.0, 3.0])
    loss = (x * w.reshape(3)).sum()
    w.zero_()
    with pytest.raises(RuntimeError, match="mul: a tensor this op saved"):
        loss.backward()


def test_zero_on_gradients_and_scalars_still_independent():
    a = Tensor(np.ones(3), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)
    (a + b).sum().backward()
    a.grad.zero_()
    assert a.grad.tolist() == [0.0] * 3 and b.grad.tolist() == [1.0] * 3
    s = Tensor(2.0)
    assert s.zero_().item() == 0.0 and s.shape == ()
    c = Tensor(np.ones(3)).broadcast_to((2, 3))  # read-only memory: new zeros
    assert c.zero_().tolist() == [[0.0] * 3] * 2


def test_create_graph_seed_is_not_the_callers_tensor():
    # With create_graph=True the seed was kept as the caller's Tensor itself: a leaf root's
    # .grad *was* g, and a non-leaf root's .grad (and its parents' through reshape) viewed
    # g's memory, so writing a gradient (zero_, -= under no_grad, .data) changed g.
    x = Tensor([3.0, 4.0], requires_grad=True)
    g = Tensor([2.0, 2.0])
    x.backward(g, create_graph=True)
    assert x.grad is not g
    x.grad.zero_()
    assert g.tolist() == [2.0, 2.0]
    x = Tensor([3.0, 4.0], requires_grad=True)
    y = x.reshape(2)
    y.backward(g, create_graph=True)
    y.grad.data[0] = 99.0
    x.grad.data[1] = 98.0
    assert g.tolist() == [2.0, 2.0] and x.grad.tolist() == [2.0, 98.0]
    # The seed stays differentiable: d/dv of (v . d(x*x)/dx) is 2x.
    v = Tensor([1.0, 1.0], requires_grad=True)
    (gx,) = ad.grad(x * x, [x], grad_outputs=[v], create_graph=True)
    assert gx.tolist() == [6.0, 8.0]
    assert ad.grad(gx.sum(), [v])[0].tolist() == [6.0, 8.0]
    (same,) = ad.grad(x, [x], grad_outputs=[g], create_graph=True)
    same.data[0] = 7.0
    assert g.tolist() == [2.0, 2.0]


def test_grad_setter_keeps_the_tensors_dtype():
    # x.grad = float64 numbers on a float32 tensor stayed float64, and backward's
    # accumulation into it kept a float64 gradient from then on.
    x = Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    x.grad = np.array([1.0, 1.0])
    assert x.grad.dtype == np.float32
    (x * x).sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.tolist() == [3.0, 5.0]
    x.grad = [1, 2]  # plain integers too
    assert x.grad.dtype == np.float32 and x.grad.tolist() == [1.0, 2.0]
    with pytest.raises(TypeError, match=r"grad: a \w+ gradient for a float32 tensor; convert"):
        x.grad = Tensor([1, 2])  # a Tensor of another dtype is refused, as in PyTorch
    s = Tensor(np.float32(2.0), requires_grad=True)
    s.grad = 1.5
    assert s.grad.dtype == np.float32 and s.grad.shape == () and s.grad.item() == 1.5


def test_scatter_add_keeps_its_own_index_for_backward():
    # scatter_add's node kept the caller's index array: writing into it between forward and
    # backward (reusing a buffer) gave src the gradient of other positions, silently.
    x = Tensor(np.zeros((1, 3)))
    src = Tensor([[1.0, 1.0]], requires_grad=True)
    index = np.array([[2, 0]])
    out = ad.scatter_add(x, 1, index, src)
    (out * Tensor([[10.0, 20.0, 30.0]])).sum().backward()
    expected = src.grad.tolist()
    assert expected == [[30.0, 10.0]]
    src.grad = None
    out = ad.scatter_add(x, 1, index, src)
    loss = (out * Tensor([[10.0, 20.0, 30.0]])).sum()
    index[...] = 1
    loss.backward()
    assert src.grad.tolist() == expected


def test_detect_anomaly_with_create_graph_checks_the_tensor_gradients():
    # With create_graph the gradients are Tensors: the finiteness check called np.asarray on
    # them and stopped with numpy's "would drop the graph" TypeError instead of checking.
    x = Tensor([0.0, 1.0], requires_grad=True)
    with ad.detect_anomaly():
        (g,) = ad.grad((x**1.5).sum(), [x], create_graph=True)
        assert g.tolist() == [0.0, 1.5]
        with pytest.raises(FloatingPointError, match="pow backward") as info:
            ad.grad(g.sum(), [x])
    # The node was made by the backward pass that line 1 of this block ran: that line is
    # named, not numpy's np.errstate wrapper around the engine's backward.
    assert __file__ in str(info.value) and "_ufunc_config" not in str(info.value)
    assert "ad.grad((x**1.5).sum(), [x], create_graph=True)" in str(info.value)
