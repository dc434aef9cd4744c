"""Round 3 (graph semantics and memory): in-place writes, gradient bookkeeping, leaks."""

from __future__ import annotations

import numpy as np
import pytest

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
