"""nn.functional_call (issue #23 item 1): a model's loss differentiated with respect to a tree
of parameters, without changing the model; checked against torch.func where torch installs."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autodiff
import nn
from autodiff import Tensor
from autodiff.func import grad, hessian, jacrev, value_and_grad
from nn.functional_call import functional_call, swapped


def _mlp(seed=0):
    return nn.MLP(3, [5, 4], 2, activation="tanh", dtype=np.float64, rng=seed)


def _loss(model):
    def loss(params, x, y):
        out = functional_call(model, params, (x,))
        return ((out - y) ** 2).mean()

    return loss


def test_grad_of_a_loss_with_respect_to_a_dict_of_parameters_matches_backward():
    model = _mlp()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    before = {k: p.data.copy() for k, p in model.named_parameters()}
    params = {k: p.data.copy() * 1.5 for k, p in model.named_parameters()}
    g = grad(_loss(model))(params, x, y)
    assert set(g) == set(params) and all(type(v) is np.ndarray for v in g.values())
    # The reference: the same weights set in a copy of the model, then backward.
    ref = _mlp()
    ref.load_state_dict(params)
    ((ref(Tensor(x)) - Tensor(y)) ** 2).mean().backward()
    for k, p in ref.named_parameters():
        np.testing.assert_allclose(g[k], p.grad.numpy(), rtol=1e-12, atol=1e-14)
    # The model was not changed: its own parameters are back, with no gradients.
    for k, p in model.named_parameters():
        assert isinstance(p, nn.Parameter)
        np.testing.assert_array_equal(p.data, before[k])
        assert p.grad is None


def test_parameters_as_they_are_and_partial_dicts():
    model = _mlp()
    x = np.ones((2, 3))
    params = dict(model.named_parameters())  # the Parameters themselves: a tree of Tensors
    g = grad(lambda p: functional_call(model, p, x).sum())(params)
    assert isinstance(g["layers.0.weight"], Tensor)  # Tensors in, Tensors out
    g_arrays = grad(lambda p: functional_call(model, p, x).sum())(
        {k: v.data.copy() for k, v in params.items()}
    )
    for k in params:
        np.testing.assert_allclose(np.asarray(g[k].detach()), g_arrays[k], rtol=1e-12)
    # Only some names: the others keep the model's own values.
    only_last = {"layers.4.bias": np.zeros(2)}
    out = functional_call(model, only_last, (x,))
    with autodiff.no_grad():
        want = model(Tensor(x)).numpy() - model.layers[4].bias.numpy()
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12)
    with pytest.raises(KeyError, match="no parameter or buffer named 'nope'"):
        functional_call(model, {"nope": np.zeros(1)}, (x,))
    with pytest.raises(KeyError, match="strict=True"):
        functional_call(model, only_last, (x,), strict=True)
    with pytest.raises(ValueError, match="has shape"):
        functional_call(model, {"layers.4.bias": np.zeros(3)}, (x,))


def test_the_model_is_restored_when_the_call_raises():
    model = _mlp()
    own = dict(model.named_parameters())
    with pytest.raises(ValueError):
        functional_call(model, {"layers.0.bias": np.zeros(5)}, (np.ones((2, 7)),))
    assert dict(model.named_parameters()) == own  # the same objects, by identity
    assert all(a is b for a, b in zip(own.values(), model.parameters(), strict=True))


def test_tied_weights_are_replaced_everywhere_and_buffers_too():
    shared = nn.Linear(2, 2, dtype=np.float64, rng=0)
    model = nn.Sequential(shared, nn.Tanh(), shared)  # one Parameter used twice
    names = [k for k, _ in model.named_parameters()]
    assert names == ["layers.0.weight", "layers.0.bias"]
    x = np.array([[0.5, -1.0]])
    zero = {k: np.zeros_like(p.data) for k, p in model.named_parameters()}
    np.testing.assert_array_equal(functional_call(model, zero, (x,)).numpy(), [[0.0, 0.0]])
    bn = nn.BatchNorm1d(2, dtype=np.float64).eval()
    means = np.array([1.0, -1.0])
    out = functional_call(bn, {"running_mean": means}, (np.zeros((1, 2)),))
    np.testing.assert_allclose(out.numpy(), [-means / np.sqrt(1 + bn.eps)], rtol=1e-6)
    assert np.all(bn.running_mean.numpy() == 0)


def test_hessian_and_jacobian_over_parameter_trees():
    model = nn.Linear(2, 1, dtype=np.float64, rng=0)
    x = np.array([[1.0, 2.0], [3.0, -1.0]])
    params = {k: p.data.copy() for k, p in model.named_parameters()}
    h = hessian(lambda p: (functional_call(model, p, (x,)) ** 2).sum())(params)
    # loss = sum_i (x_i w + b)^2: d2/dw2 = 2 X^T X, d2/db2 = 2 n, d2/dw db = 2 sum x.
    np.testing.assert_allclose(h["weight"]["weight"].reshape(2, 2), 2 * x.T @ x)
    np.testing.assert_allclose(h["bias"]["bias"].reshape(()), 2 * len(x))
    np.testing.assert_allclose(h["weight"]["bias"].reshape(2), 2 * x.sum(0))
    jac = jacrev(lambda p: functional_call(model, p, (x,)))(params)
    np.testing.assert_allclose(jac["bias"].reshape(2), [1.0, 1.0])


def test_concurrent_calls_on_one_model_do_not_mix_their_values():
    model = nn.Linear(3, 1, dtype=np.float64, rng=0)
    x = np.ones((1, 3))
    results: dict[int, float] = {}

    def work(k: int) -> None:
        values = {"weight": np.full((1, 3), float(k)), "bias": np.zeros(1)}
        for _ in range(50):
            results[k] = float(functional_call(model, values, (x,)).numpy().item())

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {k: 3.0 * k for k in range(4)}


def test_swapped_runs_any_code_with_the_values():
    model = _mlp()
    x = np.ones((2, 3))
    params = {k: np.zeros_like(p.data) for k, p in model.named_parameters()}
    with swapped(model, params):
        assert np.all(model(Tensor(x)).numpy() == 0)
    assert not np.all(model(Tensor(x)).numpy() == 0)


@given(st.integers(0, 10_000))
def test_property_grad_of_functional_call_matches_torch_func(seed):
    torch = pytest.importorskip("torch")
    from torch.func import functional_call as torch_call
    from torch.func import grad as torch_grad

    model = _mlp(seed)
    reference = nn.to_torch(model).double()
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    params = {k: p.data + 0.1 * rng.standard_normal(p.shape) for k, p in model.named_parameters()}
    value, ours = value_and_grad(_loss(model))(params, x, y)
    names = [k for k, _ in reference.named_parameters()]
    theirs_params = {
        t: torch.tensor(params[k]) for t, k in zip(names, params, strict=True)
    }  # same order: the layers in sequence, weight before bias

    def torch_loss(p, x, y):
        return ((torch_call(reference, p, (x,)) - y) ** 2).mean()

    theirs = torch_grad(torch_loss)(theirs_params, torch.tensor(x), torch.tensor(y))
    np.testing.assert_allclose(
        value, torch_loss(theirs_params, torch.tensor(x), torch.tensor(y)).item(), rtol=1e-12
    )
    for t, k in zip(names, params, strict=True):
        np.testing.assert_allclose(ours[k], theirs[t].numpy(), rtol=1e-10, atol=1e-13)
