"""nn: modules, layers, losses and optimizers, checked numerically and against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import nn
from autodiff import Tensor
from autodiff.testing import gradcheck
from nn import functional as F

RNG = np.random.default_rng(0)


# --- modules -------------------------------------------------------------------------------


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(3, 4, rng=0), nn.ReLU()]
        self.heads = {"a": nn.Linear(4, 2, rng=1), "b": nn.Linear(4, 1, rng=2)}
        self.scale = nn.Parameter(np.ones(1))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.heads["a"](x) * self.scale


def test_registration_in_lists_dicts_and_nesting():
    model = Block()
    names = [name for name, _ in model.named_parameters()]
    assert names == ["scale", "layers.0.weight", "layers.0.bias", "heads.a.weight",
                     "heads.a.bias", "heads.b.weight", "heads.b.bias"]
    assert model.num_parameters() == 1 + 12 + 4 + 8 + 2 + 4 + 1
    assert [type(m).__name__ for m in model.modules()] == [
        "Block", "Linear", "ReLU", "Linear", "Linear"]


def test_shared_parameter_listed_once():
    layer = nn.Linear(2, 2)
    model = nn.Sequential(layer, layer)
    assert len(model.parameters()) == 2


def test_unknown_attribute_is_an_error():
    with pytest.raises(AttributeError, match="'Linear' module has no attribute 'weights'"):
        _ = nn.Linear(2, 2).weights


def test_train_eval_recursive():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    model.eval()
    assert all(not m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_state_dict_round_trip_and_strict_errors():
    a, b = nn.MLP(3, [4], 2, rng=0), nn.MLP(3, [4], 2, rng=1)
    b.load_state_dict(a.state_dict())
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        np.testing.assert_array_equal(p.data, q.data)
    state = a.state_dict()
    state["layers.0.weight"] = np.zeros((5, 3), np.float32)
    with pytest.raises(ValueError, match=r"'layers.0.weight' has shape \(4, 3\)"):
        b.load_state_dict(state)
    with pytest.raises(KeyError, match="missing parameters.*layers.2.bias"):
        b.load_state_dict({k: v for k, v in a.state_dict().items() if k != "layers.2.bias"})
    extra = dict(a.state_dict(), bogus=np.zeros(1))
    with pytest.raises(KeyError, match="unexpected parameters.*bogus"):
        b.load_state_dict(extra)
    b.load_state_dict(extra, strict=False)
    wrong_dtype = {k: v.astype(np.float64) for k, v in a.state_dict().items()}
    with pytest.raises(ValueError, match="dtype float32 in the model"):
        b.load_state_dict(wrong_dtype)


def test_repr_shows_tree_shapes_and_counts():
    text = repr(nn.MLP(784, [128], 10))
    assert "Linear(784 -> 128)  100,480 params" in text
    assert "Total: 101,770 parameters" in text


def test_parameters_are_float32_by_default_and_float64_on_request():
    assert nn.Linear(2, 3).weight.dtype == np.float32
    assert nn.Linear(2, 3, dtype=np.float64).weight.dtype == np.float64
    same_seed = nn.Linear(2, 3, rng=4), nn.Linear(2, 3, rng=4)
    np.testing.assert_array_equal(same_seed[0].weight.data, same_seed[1].weight.data)


# --- layers and losses against numerical gradients --------------------------------------------


def _linear64(rng=0, n_in=3, n_out=2):
    return nn.Linear(n_in, n_out, dtype=np.float64, rng=rng)


@pytest.mark.parametrize("layer", [nn.ReLU(), nn.Sigmoid(), nn.Tanh(), nn.LeakyReLU(0.1),
                                   nn.Softmax(), nn.Flatten(), nn.Identity()],
                         ids=lambda m: type(m).__name__)
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


LOSSES = {
    "mse": lambda p, t: F.mse_loss(p, t),
    "mse_sum": lambda p, t: F.mse_loss(p, t, reduction="sum"),
    "bce": lambda p, t: F.binary_cross_entropy(p.sigmoid(), t),
    "bce_logits": lambda p, t: F.binary_cross_entropy_with_logits(p, t),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_regression_losses_gradcheck(name):
    pred = RNG.normal(size=(4, 3))
    target = RNG.uniform(0, 1, size=(4, 3))
    assert gradcheck(lambda p: LOSSES[name](p, target), pred)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_forms_gradcheck(reduction):
    logits = RNG.normal(size=(5, 4))
    labels = np.array([0, 3, 1, 1, 2])
    assert gradcheck(lambda z: F.cross_entropy(z, labels, reduction=reduction), logits)
    onehot = np.eye(4)[labels]
    assert gradcheck(lambda z: F.cross_entropy(z, onehot, reduction=reduction), logits)
    assert gradcheck(lambda z: F.nll_loss(z.log_softmax(), labels, reduction=reduction), logits)


def test_cross_entropy_label_and_onehot_agree_and_are_finite_at_1e4():
    logits = Tensor(np.array([[1e4, -1e4, 0.0], [0.0, 1e4, -1e4]], dtype=np.float32),
                    requires_grad=True)
    labels = np.array([1, 2])
    a = F.cross_entropy(logits, labels)
    b = F.cross_entropy(logits, np.eye(3, dtype=np.float32)[labels])
    assert np.isfinite(a.item()) and a.item() == pytest.approx(b.item(), rel=1e-6)
    assert a.item() == pytest.approx(2e4, rel=1e-6)  # each row: 1e4 - (-1e4)
    a.backward()
    assert np.all(np.isfinite(logits.grad.data))


def test_accuracy_forms():
    assert F.accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1])) == 0.5
    assert F.accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.eye(2)[[1, 0]]) == 1.0
    assert F.accuracy(np.array([0.7, 0.2, 0.6]), np.array([1, 0, 0])) == pytest.approx(2 / 3)


def test_dropout_train_scales_eval_is_identity():
    layer = nn.Dropout(0.25, rng=0)
    x = Tensor(np.ones((1000, 10)))
    out = layer(x).data
    kept = out != 0
    assert 0.7 < kept.mean() < 0.8
    np.testing.assert_allclose(out[kept], 1 / 0.75)
    layer.eval()
    assert layer(x) is x


# --- against PyTorch ------------------------------------------------------------------------


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="PyTorch not installed: the oracle is optional")


def _to_torch(torch, model):
    layers = []
    for m in model.layers:
        if isinstance(m, nn.Linear):
            t = torch.nn.Linear(m.in_features, m.out_features)
            with torch.no_grad():
                t.weight.copy_(torch.tensor(m.weight.data))
                t.bias.copy_(torch.tensor(m.bias.data))
            layers.append(t)
        else:
            layers.append({"ReLU": torch.nn.ReLU, "Sigmoid": torch.nn.Sigmoid,
                           "Tanh": torch.nn.Tanh}[type(m).__name__]())
    return torch.nn.Sequential(*layers)


OPTIMIZERS = {
    "sgd": (lambda p: nn.optim.SGD(p, lr=0.1), lambda t, p: t.optim.SGD(p, lr=0.1)),
    "momentum": (lambda p: nn.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3),
                 lambda t, p: t.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3)),
    "nesterov": (lambda p: nn.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
                 lambda t, p: t.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True)),
    "adam": (lambda p: nn.optim.Adam(p, lr=0.01, weight_decay=1e-2),
             lambda t, p: t.optim.Adam(p, lr=0.01, weight_decay=1e-2)),
    "adamw": (lambda p: nn.optim.AdamW(p, lr=0.01), lambda t, p: t.optim.AdamW(p, lr=0.01)),
}


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_training_steps_match_pytorch(torch, opt, activation):
    model = nn.MLP(6, [8], 3, activation=activation, rng=0)
    reference = _to_torch(torch, model)
    ours_opt = OPTIMIZERS[opt][0](model.parameters())
    ref_opt = OPTIMIZERS[opt][1](torch, reference.parameters())
    rng = np.random.default_rng(1)
    for _ in range(5):
        x = rng.normal(size=(7, 6)).astype(np.float32)
        y = rng.integers(0, 3, size=7)
        out = model(Tensor(x))
        loss = F.cross_entropy(out, y)
        ours_opt.zero_grad()
        loss.backward()
        ref_out = reference(torch.tensor(x))
        ref_loss = torch.nn.functional.cross_entropy(ref_out, torch.tensor(y))
        ref_opt.zero_grad()
        ref_loss.backward()
        np.testing.assert_allclose(out.data, ref_out.detach().numpy(), rtol=1e-4, atol=1e-5)
        assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-5)
        ref_linears = [m for m in reference if isinstance(m, torch.nn.Linear)]
        ours_linears = [m for m in model.layers if isinstance(m, nn.Linear)]
        for a, b in zip(ours_linears, ref_linears, strict=True):
            np.testing.assert_allclose(a.weight.grad.data, b.weight.grad.numpy(), rtol=1e-4,
                                       atol=1e-6)
            np.testing.assert_allclose(a.bias.grad.data, b.bias.grad.numpy(), rtol=1e-4,
                                       atol=1e-6)
        ours_opt.step()
        ref_opt.step()
        for a, b in zip(ours_linears, ref_linears, strict=True):
            np.testing.assert_allclose(a.weight.data, b.weight.detach().numpy(), rtol=1e-4,
                                       atol=1e-5)


@pytest.mark.parametrize("name", ["mse", "bce", "bce_logits"])
def test_losses_match_pytorch(torch, name):
    pred = RNG.normal(size=(4, 3))
    target = RNG.uniform(0, 1, size=(4, 3))
    p = Tensor(pred, requires_grad=True)
    loss = LOSSES[name](p, target)
    loss.backward()
    tp = torch.tensor(pred, requires_grad=True)
    tt = torch.tensor(target)
    ref = {"mse": lambda: torch.nn.functional.mse_loss(tp, tt),
           "bce": lambda: torch.nn.functional.binary_cross_entropy(torch.sigmoid(tp), tt),
           "bce_logits": lambda: torch.nn.functional.binary_cross_entropy_with_logits(tp, tt),
           }[name]()
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    np.testing.assert_allclose(p.grad.data, tp.grad.numpy(), rtol=1e-5, atol=1e-8)


# --- optimizers -----------------------------------------------------------------------------


def test_step_before_backward_is_an_error():
    opt = nn.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(RuntimeError, match="before backward"):
        opt.step()


@pytest.mark.parametrize("kwargs,match", [
    ({"lr": -1}, "lr must be a positive"), ({"lr": 0.1, "momentum": -1}, "momentum"),
    ({"lr": 0.1, "nesterov": True}, "nesterov needs momentum"),
])
def test_bad_optimizer_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nn.optim.SGD(nn.Linear(2, 2).parameters(), **kwargs)


def test_step_lr_schedule():
    opt = nn.optim.SGD(nn.Linear(2, 2).parameters(), lr=1.0)
    schedule = nn.optim.StepLR(opt, step_size=2, gamma=0.5)
    rates = []
    for _ in range(5):
        schedule.step()
        rates.append(schedule.get_last_lr())
    assert rates == [1.0, 0.5, 0.5, 0.25, 0.25]


def test_optimizer_update_records_no_graph_and_keeps_float32():
    model = nn.Linear(3, 2)
    loss = (model(Tensor(np.ones((1, 3), np.float32))) ** 2).sum()
    loss.backward()
    nn.optim.Adam(model.parameters(), lr=0.1).step()
    assert model.weight.is_leaf and model.weight.dtype == np.float32
