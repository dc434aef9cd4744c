"""Layers (nn/layers.py): Linear, activations, Dropout, Flatten, the containers and MLP,
checked numerically and against PyTorch.
"""

from __future__ import annotations

import numpy as np
import pytest

import autodiff as ad
import nn
from autodiff import Tensor, engine
from autodiff.testing import gradcheck

RNG = np.random.default_rng(0)


def test_sequential_slices_are_sequentials_that_share_the_layers():
    model = nn.MLP(3, [4, 5], 2, rng=0)
    head = model[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is model[0]
    x = Tensor(np.ones((1, 3), np.float32))
    np.testing.assert_array_equal(model[2:](head(x)).data, model(x).data)


def test_parameters_are_float32_by_default_and_float64_on_request():
    assert nn.Linear(2, 3).weight.dtype == np.float32
    assert nn.Linear(2, 3, dtype=np.float64).weight.dtype == np.float64
    same_seed = nn.Linear(2, 3, rng=4), nn.Linear(2, 3, rng=4)
    np.testing.assert_array_equal(same_seed[0].weight.data, same_seed[1].weight.data)


def test_module_list_registers_indexes_and_grows():
    blocks = nn.ModuleList([nn.Linear(2, 3, rng=0), nn.ReLU()])
    blocks.append(nn.Linear(3, 1, rng=1))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = blocks

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return x

    net = Net()
    assert [n for n, _ in net.named_parameters()] == [
        "blocks.0.weight",
        "blocks.0.bias",
        "blocks.2.weight",
        "blocks.2.bias",
    ]
    assert len(blocks) == 3 and blocks[-1] is blocks[2] and isinstance(blocks[1], nn.ReLU)
    assert [type(m).__name__ for m in blocks[:2]] == ["Linear", "ReLU"]
    before = np.array(blocks[2].weight.data)
    opt = nn.optim.SGD(net.parameters(), lr=0.1)
    net(Tensor(np.ones((4, 2), np.float32))).sum().backward()
    opt.step()
    assert not np.array_equal(blocks[2].weight.data, before)  # trained through the list
    with pytest.raises(IndexError, match="ModuleList: index 3 is out of range for 3 modules"):
        blocks[3]
    with pytest.raises(TypeError, match="ModuleList: item 3 is a int, not a Module"):
        blocks.append(5)
    with pytest.raises(NotImplementedError, match="ModuleList is a container"):
        blocks(1)
    del blocks[1]
    assert [n for n, _ in net.named_parameters()][2] == "blocks.1.weight"


def test_module_dict_registers_by_key():
    heads = nn.ModuleDict({"cls": nn.Linear(4, 3, rng=0)})
    heads["box"] = nn.Linear(4, 2, rng=1)
    assert [n for n, _ in heads.named_parameters()] == [
        "cls.weight",
        "cls.bias",
        "box.weight",
        "box.bias",
    ]
    assert list(heads) == ["cls", "box"] and "box" in heads and len(heads) == 2
    assert heads["box"].out_features == 2
    with pytest.raises(KeyError, match=r"ModuleDict: no module named 'reg'.*\['cls', 'box'\]"):
        heads["reg"]
    with pytest.raises(KeyError, match="without '.'"):
        heads["a.b"] = nn.ReLU()
    with pytest.raises(TypeError, match="ModuleDict: item 'x' is a str"):
        heads["x"] = "relu"
    del heads["cls"]
    assert list(heads.keys()) == ["box"]


# --- layers and losses against numerical gradients --------------------------------------------


def _linear64(rng=0, n_in=3, n_out=2):
    return nn.Linear(n_in, n_out, dtype=np.float64, rng=rng)


@pytest.mark.parametrize(
    "layer",
    [
        nn.ReLU(),
        nn.Sigmoid(),
        nn.Tanh(),
        nn.LeakyReLU(0.1),
        nn.Softmax(),
        nn.Flatten(),
        nn.Identity(),
    ],
    ids=lambda m: type(m).__name__,
)
def test_activation_layers_gradcheck(layer):
    x = RNG.uniform(-2, 2, size=(3, 4))
    x[np.abs(x) < 1e-2] = 0.5  # away from the kinks of relu and leaky relu
    assert gradcheck(lambda t: layer(t), x)


def test_linear_gradcheck_all_inputs():
    layer = _linear64()
    x = RNG.normal(size=(5, 3))

    def fn(x_t, w, b):
        layer.weight.data, layer.bias.data = w.data, b.data  # route through the layer
        from autodiff import linear

        return linear(x_t, w, b)

    assert gradcheck(fn, x, layer.weight.data, layer.bias.data)


def test_dropout_train_scales_eval_is_identity():
    layer = nn.Dropout(0.25, rng=0)
    x = Tensor(np.ones((1000, 10)))
    out = layer(x).data
    kept = out != 0
    assert 0.7 < kept.mean() < 0.8
    np.testing.assert_allclose(out[kept], 1 / 0.75)
    layer.eval()
    assert layer(x) is x


def test_softmax_module_takes_pytorchs_dim():
    """A habit from micrograd, PyTorch or numpy (issue 10, items 8, 9, 10 and 12)."""
    import nn

    x = Tensor(np.array([[1.0, 2.0], [3.0, 5.0]]))
    np.testing.assert_allclose(nn.Softmax(dim=0)(x).data, x.softmax(axis=0).data)
    np.testing.assert_allclose(nn.Softmax(dim=1)(x).data.sum(axis=1), [1.0, 1.0])


def test_micrograds_spellings_label_and_mlp_sizes():
    """A habit from micrograd, PyTorch or numpy (issue 10, items 8, 9, 10 and 12)."""
    import nn

    a = Tensor(2.0, requires_grad=True, label="a")
    assert a.name == "a"
    with pytest.raises(TypeError, match="name= or label="):
        Tensor(1.0, name="x", label="y")
    model = nn.MLP(2, [16, 16, 1], rng=0)  # micrograd's MLP(nin, nouts)
    assert model.sizes == [2, 16, 16, 1]
    assert [type(m).__name__ for m in model.layers] == [
        "Linear",
        "ReLU",
        "Linear",
        "ReLU",
        "Linear",
    ]
    assert nn.MLP(2, [16, 16], 1, rng=0).sizes == [2, 16, 16, 1]
    with pytest.raises(TypeError, match="MLP: give out_features"):
        nn.MLP(2, [])


def test_sequential_tags_each_layer_call_as_its_own_call_would():
    """Guards a fast path of the lean engine (slots, chain shortcut, raw gradients)."""
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bias_gradient_is_the_column_sum_for_any_batch(dtype):
    """Guards a fast path of the lean engine (slots, chain shortcut, raw gradients)."""
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
