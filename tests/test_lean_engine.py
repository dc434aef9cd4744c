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
    assert ys[-4].grad.item() == pytest.approx(0.3 + 0.7**3, rel=1e-12)


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
            if not (
                np.allclose(gx.data, expected[i][0].data)
                and np.allclose(gw.data, expected[i][1].data)
            ):
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


def test_sequential_tags_each_layer_call_as_its_own_call_would():
    seen = []

    class Spy(nn.Module):
        def forward(self, x):
            seen.append(engine.state.scope)
            return x * 2.0

    class OwnCall(nn.Module):  # a layer with a __call__ of its own still gets it
        def forward(self, x):
            return x + 1.0

        def __call__(self, x):
            seen.append("own call")
            return super().__call__(x)

    class GradOff(nn.Module):  # switches grad mode for what follows, as a plain call would
        def forward(self, x):
            ad.set_grad_enabled(False)
            return x

    first, second, own = Spy(), Spy(), OwnCall()
    model = nn.Sequential(first, own, second)
    y = model(Tensor(np.ones(2), requires_grad=True))
    assert seen[0] == (model, first) and seen[1] == "own call" and seen[2] == (model, second)
    assert seen[0] is not seen[2]  # a fresh scope per call: drawings tell calls apart
    assert y._scope == (model, second) and engine.state.scope is None
    np.testing.assert_array_equal(y.data, [6.0, 6.0])
    # Called directly, outside any module call, the layers still get their own scopes.
    seen.clear()
    nn.Sequential(first).forward(Tensor(np.ones(2)))
    assert seen == [(first,)] and engine.state.scope is None
    # A layer that fails leaves the scope as it was; one that switches grad mode keeps it.
    with pytest.raises(TypeError):
        nn.Sequential(first, nn.Linear(2, 2))(Tensor(np.ones(2)), "extra")
    with pytest.raises(ValueError, match="Linear"):
        nn.Sequential(first, nn.Linear(3, 2))(Tensor(np.ones(2)))
    assert engine.state.scope is None
    try:
        out = nn.Sequential(GradOff(), second)(Tensor(np.ones(2), requires_grad=True))
        assert not out.requires_grad and not engine.state.grad_enabled
    finally:
        ad.set_grad_enabled(True)
    assert engine.state.scope is None


# --- numpy fast paths in the rules (class-major cross-entropy, ReLU against zeros, bias
# gradients as ones @ g): same numbers as the plain numpy expressions, in every layout ------


def _reference_cross_entropy(z: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    z = z.astype(np.float64)
    probs = np.exp(z - z.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    n = len(labels)
    grad = probs.copy()
    grad[np.arange(n), labels] -= 1
    return float(-np.log(probs[np.arange(n), labels]).mean()), grad / n


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int32, np.uint64, np.int64])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_cross_entropy_any_label_type_and_logits_layout(dtype, layout):
    rng = np.random.default_rng(2)
    for n in (1, 3, 130, 7):  # growing and shrinking batches: the cached row index
        base = rng.normal(size=(n, 12)) * 5
        z = {"C": base, "F": np.asfortranarray(base), "strided": base[:, ::2]}[layout]
        labels = rng.integers(0, z.shape[1], n).astype(dtype)
        logits = Tensor(z, requires_grad=True)
        loss = nn.F.cross_entropy(logits, labels)
        loss.backward()
        want_loss, want_grad = _reference_cross_entropy(z, labels.astype(np.int64))
        assert loss.item() == pytest.approx(want_loss, rel=1e-12)
        np.testing.assert_allclose(logits.grad.data, want_grad, rtol=1e-12, atol=1e-15)
        assert logits.grad.shape == z.shape


def test_cross_entropy_extreme_logits_stay_finite():
    z = np.array([[1e4, 0.0, -1e4], [-1e4, -1e4, -1e4]], dtype=np.float32)
    logits = Tensor(z, requires_grad=True)
    loss = nn.F.cross_entropy(logits, np.array([1, 2]))
    loss.backward()
    assert loss.item() == pytest.approx((1e4 + np.log(3)) / 2, rel=1e-6)
    np.testing.assert_allclose(
        logits.grad.data, [[0.5, -0.5, 0.0], [1 / 6, 1 / 6, -1 / 3]], atol=1e-7
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_against_zeros_matches_numpy_maximum(dtype):
    x = np.array([[-np.inf, -1.5, -0.0, 0.0], [np.nan, 2.0, np.inf, 1e-30]], dtype=dtype)
    out = ad.relu(Tensor(x)).data
    expected = np.maximum(x, 0)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, expected)  # NaN stays NaN, -inf becomes 0
    assert not np.signbit(out[0, 2])  # relu(-0.0) is +0, as np.maximum(-0.0, 0) gives
    col = np.asfortranarray(np.linspace(-1, 1, 12, dtype=dtype).reshape(3, 4))
    np.testing.assert_array_equal(ad.relu(Tensor(col)).data, np.maximum(col, 0))
    # Another layout is kept, as np.maximum keeps it (a convolution's channels-last output
    # read by a pooling layer next: a C-ordered copy made the LeNet epoch 35% slower).
    transposed = Tensor(np.ascontiguousarray(col.T)).T
    assert transposed.data.flags.f_contiguous
    assert ad.relu(transposed).data.flags.f_contiguous


def test_relu_keeps_numpy_promotion_for_integers_and_scalars():
    assert ad.relu(Tensor(np.array([-2, 3], dtype=np.int32))).data.tolist() == [0, 3]
    assert ad.relu(Tensor(np.array([-2, 3], dtype=np.int32))).dtype == np.int32
    assert ad.relu(Tensor(np.array([True, False]))).dtype == np.maximum(np.array([True]), 0).dtype
    s = Tensor(-2.5, requires_grad=True)
    assert ad.relu(s).item() == 0.0 and ad.relu(-s).item() == 2.5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bias_gradient_is_the_column_sum_for_any_batch(dtype):
    rng = np.random.default_rng(3)
    layer = nn.Linear(5, 3, dtype=dtype)
    for n in (4, 1, 300, 2):  # the cached ones grow, and shorter batches use a prefix
        x = Tensor(rng.normal(size=(n, 5)).astype(dtype))
        g = rng.normal(size=(n, 3)).astype(dtype)
        layer.zero_grad()
        layer(x).backward(g)
        assert layer.bias.grad.dtype == dtype
        np.testing.assert_allclose(
            layer.bias.grad.data,
            g.astype(np.float64).sum(axis=0),
            rtol=1e-5 if dtype == np.float32 else 1e-12,
            atol=1e-5,
        )
    # Batched inputs of any rank reduce over every leading axis; inf and NaN propagate.
    x = Tensor(np.ones((2, 3, 5), dtype=dtype))
    g = np.ones((2, 3, 3), dtype=dtype)
    g[0, 0, 0], g[1, 2, 1] = np.inf, np.nan
    layer.zero_grad()
    layer(x).backward(g)
    got = layer.bias.grad.data
    assert got[0] == np.inf and np.isnan(got[1]) and got[2] == 6


def test_an_index_array_is_kept_as_given_only_where_no_node_keeps_it():
    x = np.arange(12.0).reshape(3, 4)
    idx = np.array([2, 0])
    # A graph keeps its own copy: the caller reusing their array moves no gradient.
    t = Tensor(x, requires_grad=True)
    out = t[idx]
    idx[:] = 1
    out.backward(np.ones(out.shape))
    np.testing.assert_array_equal(t.grad.data, [[1.0] * 4, [0.0] * 4, [1.0] * 4])
    # A constant's rows are taken at once; nothing is left that could read the index later,
    # also under forward mode, whose tangent is taken in the same step.
    idx = np.array([2, 0])
    rows = Tensor(x)[idx]
    idx[:] = 1
    np.testing.assert_array_equal(rows.data, x[[2, 0]])
    assert not rows.requires_grad and rows.op is None
    idx = np.array([2, 0])
    value, tangent = ad.jvp(lambda a: a[idx] * 2.0, (Tensor(x),), (Tensor(np.ones_like(x)),))
    idx[:] = 1
    np.testing.assert_array_equal(value.data, 2 * x[[2, 0]])
    np.testing.assert_array_equal(tangent.data, np.full((2, 4), 2.0))


@pytest.mark.parametrize(
    ("index", "index_dtype"),
    [
        ([2, 0, -1, 2], np.int64),
        ([2, 0, -1, 2], np.int32),
        ([2, 0, 1, 2], np.uint8),
        ([], np.int64),
        ([[0, 1], [2, 2]], np.int64),
        ([[0, 1], [2, 2]], np.uint64),
    ],
)
def test_rows_gathered_by_an_integer_array_match_numpy_indexing(index, index_dtype):
    """getitem with an integer array takes the rows with ndarray.take (faster for a batch):
    the same values, shape, gradient and error as numpy's indexing."""
    x = np.arange(12.0).reshape(3, 4)
    idx = np.array(index, dtype=index_dtype)
    t = Tensor(x, requires_grad=True)
    out = t[idx]
    np.testing.assert_array_equal(out.data, x[idx])
    assert out.shape == x[idx].shape
    out.backward(np.ones(out.shape))
    expected = np.zeros_like(x)
    np.add.at(expected, idx, 1.0)
    np.testing.assert_array_equal(t.grad.data, expected)
    with pytest.raises(IndexError, match=r"getitem.*index 3 is out of bounds for axis 0"):
        t[np.array([0, 3])]
    with pytest.raises(IndexError):
        t[np.array([-4])]
