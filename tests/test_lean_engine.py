"""The engine's fast paths keep every guarantee of the plain ones.

Parents live in slots (one object per node), backward takes a shortcut for chains and checks
for in-place writes only when one happened after a node was recorded, cross-entropy skips the
one-hot, optimizers work on raw gradient arrays. Each test here pins a property that one of
those shortcuts could break.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import autodiff as ad
import nn
from autodiff import Tensor, engine


def test_parents_are_ordered_read_only_and_params_shared():
    a = Tensor(np.ones(3), requires_grad=True)
    b = Tensor(np.full(3, 2.0), requires_grad=True)
    w = Tensor(np.ones((2, 3)), requires_grad=True)
    bias = Tensor(np.zeros(2), requires_grad=True)
    assert (a - b).parents == (a, b) and (b - a).parents == (b, a)
    assert a.exp().parents == (a,)
    assert ad.linear(a, w, bias).parents == (a, w, bias)
    assert a.parents == () and a._parents == ()
    with pytest.raises(AttributeError):
        (a + b).parents = (b,)
    # Nodes without params share one read-only mapping instead of an empty dict each.
    first, second = a + b, a * b
    assert first._params is second._params and len(first._params) == 0
    with pytest.raises(TypeError):
        first._params["x"] = 1
    # A constant result keeps no parents, so its inputs can be freed.
    with ad.no_grad():
        assert (a * b).parents == ()


def test_chain_shortcut_and_heap_agree_with_the_recurrence():
    # y[k+1] = 0.7 y[k] + 0.3 y[k-2]: every node is reached first by its chain successor and
    # again through a skip connection, so the shortcut must give way to the heap correctly.
    x = Tensor(0.3, requires_grad=True)
    ys = [x, x * 1.0, x * 1.0]
    deriv = [1.0, 1.0, 1.0]
    for _ in range(3000):
        ys.append(ys[-1] * 0.7 + ys[-3] * 0.3)
        deriv.append(deriv[-1] * 0.7 + deriv[-3] * 0.3)
    ys[-1].backward()
    assert x.grad.item() == pytest.approx(deriv[-1], rel=1e-9)
    # y[N-3] reaches y[N] directly (0.3) and through y[N-2], y[N-1] (0.7 ** 3).
    assert ys[-4].grad.item() == pytest.approx(0.3 + 0.7 ** 3, rel=1e-12)


def test_two_threads_backward_over_shared_nodes():
    rng = np.random.default_rng(0)
    x = Tensor(rng.normal(size=(4, 3)), requires_grad=True)
    w = Tensor(rng.normal(size=(3, 3)), requires_grad=True)
    shared = (x @ w).tanh()  # both losses go through these nodes
    losses = [(shared * shared).sum(), (shared * 3.0).sum()]
    expected = [ad.grad(loss, [x, w]) for loss in losses]
    barrier = threading.Barrier(2)
    errors: list[str] = []

    def work(i: int) -> None:
        barrier.wait()
        for _ in range(200):
            gx, gw = ad.grad(losses[i], [x, w])
            if not (np.allclose(gx.data, expected[i][0].data)
                    and np.allclose(gw.data, expected[i][1].data)):
                errors.append(f"thread {i} got another pass's gradient")
                return

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_a_write_after_a_later_unrelated_write_is_still_caught():
    # Backward checks inputs only for nodes older than the last write anywhere: a node made
    # after some unrelated write, whose own input is written afterwards, must still be refused.
    other = Tensor(np.ones(2))
    other[0] = 5.0  # an unrelated write
    w = Tensor(np.ones(2), requires_grad=True)
    y = (w * w).sum()  # recorded after that write
    with ad.no_grad():
        w[0] = 3.0  # now the node's own input changes
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()
    z = (w * w).sum()  # recorded after every write: fine
    z.backward()
    assert w.grad.data.tolist() == [6.0, 2.0]


def test_written_tick_only_grows_under_concurrent_writers():
    tensors = [Tensor(np.ones(3)) for _ in range(8)]

    def write(t: Tensor) -> None:
        for _ in range(500):
            t._bump_version()

    threads = [threading.Thread(target=write, args=(t,)) for t in tensors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert engine._last_write >= max(t._modified for t in tensors)


def test_cross_entropy_gradient_without_one_hot_and_twice():
    rng = np.random.default_rng(1)
    logits = Tensor(rng.normal(size=(5, 4)).astype(np.float32), requires_grad=True)
    labels = np.array([0, 3, 3, 1, 2], dtype=np.uint8)
    loss = nn.F.cross_entropy(logits, labels)
    z = logits.data.astype(np.float64)
    probs = np.exp(z - z.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    assert loss.item() == pytest.approx(-np.log(probs[np.arange(5), labels]).mean(), rel=1e-6)
    expected = probs.copy()
    expected[np.arange(5), labels] -= 1
    expected /= 5
    loss.backward()
    assert logits.grad.dtype == np.float32
    np.testing.assert_allclose(logits.grad.data, expected, rtol=1e-5, atol=1e-7)
    # The saved softmax is never written into: a second pass adds exactly the same again.
    loss.backward()
    np.testing.assert_allclose(logits.grad.data, 2 * expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("bad", [[0, -1], [0, 4], [7, 1]])
def test_cross_entropy_one_range_check_names_both_bounds(bad):
    logits = Tensor(np.zeros((2, 4)), requires_grad=True)
    with pytest.raises(ValueError, match=r"cross_entropy: labels must lie in \[0, 4\)") as info:
        nn.F.cross_entropy(logits, np.array(bad))
    assert f"from {min(bad)} to {max(bad)}" in str(info.value)


def test_sgd_momentum_updates_in_place_and_never_writes_the_gradient():
    p = nn.Parameter(np.array([1.0, -2.0]), dtype=np.float64)
    data = p._data
    opt = nn.optim.SGD([p], lr=0.1, momentum=0.9)
    (p * p).sum().backward()  # gradient 2p = [2, -4]
    grad = p.grad.data.copy()
    opt.step()
    assert p._data is data  # the model keeps the same array
    np.testing.assert_allclose(p.data, [1.0 - 0.2, -2.0 + 0.4])
    np.testing.assert_array_equal(p.grad.data, grad)  # the buffer is a copy, not the grad
    opt.step()  # buffer = 0.9 * g + g with the same gradient
    np.testing.assert_allclose(p.data, [0.8 - 0.1 * 1.9 * 2.0, -1.6 + 0.1 * 1.9 * 4.0])


def test_module_call_restores_the_scope_even_after_an_error():
    class Boom(nn.Module):
        def forward(self, x):
            raise ValueError("boom")

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Linear(2, 2, rng=0)

        def forward(self, x):
            return self.inner(x)

    with pytest.raises(ValueError, match="boom"):
        Boom()(Tensor(np.ones(2)))
    assert engine.state.scope is None
    outer = Outer()
    y = outer(Tensor(np.ones((1, 2))))
    assert y._scope == (outer, outer.inner)  # nested calls are both tagged
    assert engine.state.scope is None and engine.state.grad_enabled
