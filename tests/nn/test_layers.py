"""nn: modules, layers, losses and optimizers, checked numerically and against PyTorch."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autodiff as ad
import nn
from autodiff import Tensor, engine
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
    assert names == [
        "scale",
        "layers.0.weight",
        "layers.0.bias",
        "heads.a.weight",
        "heads.a.bias",
        "heads.b.weight",
        "heads.b.bias",
    ]
    assert model.num_parameters() == 1 + 12 + 4 + 8 + 2 + 4 + 1
    assert [type(m).__name__ for m in model.modules()] == [
        "Block",
        "Linear",
        "ReLU",
        "Linear",
        "Linear",
    ]


def test_sequential_slices_are_sequentials_that_share_the_layers():
    model = nn.MLP(3, [4, 5], 2, rng=0)
    head = model[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is model[0]
    x = Tensor(np.ones((1, 3), np.float32))
    np.testing.assert_array_equal(model[2:](head(x)).data, model(x).data)


def test_shared_parameter_listed_once():
    layer = nn.Linear(2, 2)
    model = nn.Sequential(layer, layer)
    assert len(model.parameters()) == 2


def test_unknown_attribute_is_an_error_that_suggests_the_name():
    # Python's own error: the interpreter adds "Did you mean: 'weight'?" from its name and
    # object. Module defines no __getattr__ (one would also make every attribute read in a
    # forward pass slower: the interpreter cannot specialise reads on such a class).
    layer = nn.Linear(2, 2)
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'weights'") as info:
        _ = layer.weights
    assert info.value.name == "weights" and info.value.obj is layer


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


def test_nested_containers_are_registered_at_any_depth():
    class Deep(nn.Module):
        def __init__(self):
            super().__init__()
            self.grid = [[nn.Linear(1, 1, rng=0), nn.Linear(1, 2, rng=1)], [nn.ReLU()]]
            self.heads = {"a": [nn.Linear(2, 1, rng=2)], "b": {"c": nn.Linear(2, 3, rng=3)}}

    model = Deep()
    assert [n for n, _ in model.named_parameters()] == [
        "grid.0.0.weight",
        "grid.0.0.bias",
        "grid.0.1.weight",
        "grid.0.1.bias",
        "heads.a.0.weight",
        "heads.a.0.bias",
        "heads.b.c.weight",
        "heads.b.c.bias",
    ]
    # Saved and trained: a round trip restores the deepest weight.
    other = Deep()
    other.heads["b"]["c"].weight.data[...] = 0
    other.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(
        other.heads["b"]["c"].weight.data, model.heads["b"]["c"].weight.data
    )


def test_modules_in_a_set_are_refused():
    class Bag(nn.Module):
        def __init__(self):
            super().__init__()
            self.parts = {nn.Linear(1, 1)}

    with pytest.raises(TypeError, match="Bag: attribute 'parts' is a set"):
        Bag().parameters()


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


def test_apply_visits_children_first_and_reinitialises():
    model = nn.MLP(3, [4], 2, rng=0)
    seen = []
    model.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "ReLU", "Linear", "MLP"]

    def zero(m):
        if isinstance(m, nn.Linear):
            m.weight.data[...] = 0

    assert model.apply(zero) is model
    assert all(not np.any(layer.weight.data) for layer in model if isinstance(layer, nn.Linear))


def test_requires_grad_freezes_parameters_and_optimizers_skip_them():
    model = nn.Sequential(nn.Linear(2, 2, rng=0), nn.Linear(2, 1, rng=1))
    model[0].requires_grad_(False)
    frozen = np.array(model[0].weight.data)
    opt = nn.optim.SGD(model.parameters(), lr=0.5)
    model(Tensor(np.ones((3, 2), np.float32))).sum().backward()
    opt.step()
    assert model[0].weight.grad is None
    np.testing.assert_array_equal(model[0].weight.data, frozen)
    assert model[1].weight.grad is not None
    model.requires_grad_()
    assert all(p.requires_grad for p in model.parameters())


def test_double_and_float_convert_in_place_for_existing_optimizers():
    model = nn.Linear(2, 1, rng=0)
    opt = nn.optim.SGD(model.parameters(), lr=0.1)
    assert model.double() is model
    assert {p.dtype for p in model.parameters()} == {np.dtype(np.float64)}
    x = Tensor(np.ones((1, 2)))
    model(x).sum().backward()
    before = np.array(model.weight.data)
    opt.step()  # the optimizer still holds the same Parameter objects
    np.testing.assert_allclose(model.weight.data, before - 0.1)
    assert model.weight.dtype == np.float64
    model.float()
    assert model.weight.dtype == np.float32 and model.weight.grad.dtype == np.float32
    norm = nn.BatchNorm1d(3)
    norm.double()
    assert {t.dtype for t in norm.state_dict().values() if t.dtype.kind == "f"} == {
        np.dtype(np.float64)
    }
    scalar = nn.Module()
    scalar.t = nn.Parameter(2.0)
    scalar.float()
    assert scalar.t.dtype == np.float32 and isinstance(scalar.t.data, np.float32)
    assert (scalar.t * 3).item() == 6.0
    with pytest.raises(TypeError, match="to_dtype.*int32"):
        model.to_dtype(np.int32)


def test_zero_grad_to_none_or_to_zeros():
    model = nn.Linear(2, 2)
    model(Tensor(np.ones((1, 2), np.float32))).sum().backward()
    model.zero_grad(set_to_none=False)
    assert model.weight.grad is not None and model.weight.grad.dtype == np.float32
    np.testing.assert_array_equal(model.weight.grad.data, np.zeros((2, 2)))
    model.zero_grad()
    assert model.weight.grad is None
    opt = nn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(model.bias.grad.data, np.zeros(2))
    opt.step()  # zero gradients are gradients: a step runs (and moves nothing here)
    opt.zero_grad()
    assert model.bias.grad is None


def test_load_into_a_model_and_model_save_load(tmp_path):
    a, b = nn.MLP(3, [4], 2, rng=0), nn.MLP(3, [4], 2, rng=1)
    path = a.save(tmp_path / "w.npz")
    assert nn.load(path, into=b) is b
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        np.testing.assert_array_equal(p.data, q.data)
    c = nn.MLP(3, [4], 2, rng=2)
    assert c.load(path) is c
    np.testing.assert_array_equal(c[0].weight.data, a[0].weight.data)
    state = nn.load(path)  # the dict form is kept
    assert isinstance(state, dict) and list(state) == list(a.state_dict())
    with pytest.raises(ValueError, match="load_state_dict: parameter 'layers.0.weight'"):
        nn.load(path, into=nn.MLP(3, [5], 2))
    with pytest.raises(TypeError, match="load: into= must be a module"):
        nn.load(path, into={})


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
    logits = Tensor(
        np.array([[1e4, -1e4, 0.0], [0.0, 1e4, -1e4]], dtype=np.float32), requires_grad=True
    )
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
            layers.append(
                {"ReLU": torch.nn.ReLU, "Sigmoid": torch.nn.Sigmoid, "Tanh": torch.nn.Tanh}[
                    type(m).__name__
                ]()
            )
    return torch.nn.Sequential(*layers)


OPTIMIZERS = {
    "sgd": (lambda p: nn.optim.SGD(p, lr=0.1), lambda t, p: t.optim.SGD(p, lr=0.1)),
    "momentum": (
        lambda p: nn.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3),
        lambda t, p: t.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3),
    ),
    "nesterov": (
        lambda p: nn.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
        lambda t, p: t.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    ),
    "adam": (
        lambda p: nn.optim.Adam(p, lr=0.01, weight_decay=1e-2),
        lambda t, p: t.optim.Adam(p, lr=0.01, weight_decay=1e-2),
    ),
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
            np.testing.assert_allclose(
                a.weight.grad.data, b.weight.grad.numpy(), rtol=1e-4, atol=1e-6
            )
            np.testing.assert_allclose(a.bias.grad.data, b.bias.grad.numpy(), rtol=1e-4, atol=1e-6)
        ours_opt.step()
        ref_opt.step()
        for a, b in zip(ours_linears, ref_linears, strict=True):
            np.testing.assert_allclose(
                a.weight.data, b.weight.detach().numpy(), rtol=1e-4, atol=1e-5
            )


@pytest.mark.parametrize("name", ["mse", "bce", "bce_logits"])
def test_losses_match_pytorch(torch, name):
    pred = RNG.normal(size=(4, 3))
    target = RNG.uniform(0, 1, size=(4, 3))
    p = Tensor(pred, requires_grad=True)
    loss = LOSSES[name](p, target)
    loss.backward()
    tp = torch.tensor(pred, requires_grad=True)
    tt = torch.tensor(target)
    ref = {
        "mse": lambda: torch.nn.functional.mse_loss(tp, tt),
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


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"lr": -1}, "lr must be a positive"),
        ({"lr": 0.1, "momentum": -1}, "momentum"),
        ({"lr": 0.1, "nesterov": True}, "nesterov needs momentum"),
    ],
)
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


def test_shared_weight_listed_twice_is_updated_once():
    layer = nn.Linear(2, 2, rng=0)
    with pytest.warns(UserWarning, match="SGD: 2 parameter.*more than once.*updated once"):
        opt = nn.optim.SGD([*layer.parameters(), *layer.parameters()], lr=0.5)
    assert len(opt.params) == 2
    before = np.array(layer.weight.data)
    layer(Tensor(np.ones((1, 2), np.float32))).sum().backward()
    opt.step()
    np.testing.assert_allclose(layer.weight.data, before - 0.5 * layer.weight.grad.data)


def test_numpy_scalars_are_numbers_for_optimizers():
    params = nn.Linear(2, 2).parameters()
    opt = nn.optim.SGD(params, lr=np.float32(0.1), momentum=np.float64(0.9))
    assert opt.lr == pytest.approx(0.1) and type(opt.lr) is float
    adam = nn.optim.Adam(params, lr=np.float64(0.01), betas=np.array([0.8, 0.9]))
    assert adam.betas == (0.8, 0.9)
    with pytest.raises(ValueError, match="SGD: lr must be a number, got bool True"):
        nn.optim.SGD(params, lr=True)


def test_param_groups_is_the_live_settings_dict():
    model = nn.Linear(2, 1, rng=0)
    opt = nn.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
    (group,) = opt.param_groups
    assert group["params"] == model.parameters() and group["lr"] == 0.1
    assert group["momentum"] == 0.5 and group["nesterov"] is False
    for g in opt.param_groups:
        g["lr"] = 0.01  # the PyTorch way to change the rate by hand
    assert opt.lr == 0.01
    opt.lr = 0.2
    assert opt.param_groups[0]["lr"] == 0.2
    # A PyTorch-style list with one group dict is accepted; several are refused clearly.
    same = nn.optim.Adam([{"params": model.parameters()}], lr=0.1)
    assert same.params == model.parameters()
    with pytest.raises(ValueError, match="one parameter group.*got 2"):
        nn.optim.Adam([{"params": [model.weight]}, {"params": [model.bias]}])


def _train(model, opt, batches, scheduler=None):
    for x, y in batches:
        loss = F.mse_loss(model(Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: nn.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
        lambda ps: nn.optim.Adam(ps, lr=0.01),
        lambda ps: nn.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
    ],
    ids=["sgd", "adam", "adamw"],
)
def test_resuming_from_saved_state_gives_the_weights_of_an_unbroken_run(make, tmp_path):
    rng = np.random.default_rng(0)
    batches = [
        (rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=(8, 2)).astype(np.float32))
        for _ in range(6)
    ]
    unbroken = nn.MLP(3, [5], 2, rng=0)
    opt = make(unbroken.parameters())
    schedule = nn.optim.StepLR(opt, step_size=2, gamma=0.5)
    _train(unbroken, opt, batches, schedule)

    first = nn.MLP(3, [5], 2, rng=0)
    opt = make(first.parameters())
    schedule = nn.optim.StepLR(opt, step_size=2, gamma=0.5)
    _train(first, opt, batches[:3], schedule)
    nn.save(first, tmp_path / "model.npz")
    nn.save(opt.state_dict(), tmp_path / "optimizer.npz")  # flat arrays: plain nn.save
    nn.save(schedule.state_dict(), tmp_path / "schedule.npz")

    resumed = nn.MLP(3, [5], 2, rng=7).load(tmp_path / "model.npz")
    opt = make(resumed.parameters())
    opt.load_state_dict(nn.load(tmp_path / "optimizer.npz"))
    schedule = nn.optim.StepLR(opt, step_size=2, gamma=0.5)
    schedule.load_state_dict(nn.load(tmp_path / "schedule.npz"))
    _train(resumed, opt, batches[3:], schedule)
    for (name, p), (_, q) in zip(
        unbroken.named_parameters(), resumed.named_parameters(), strict=True
    ):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    # Without the optimizer's state (fresh moments), the weights would differ.
    fresh = nn.MLP(3, [5], 2, rng=7).load(tmp_path / "model.npz")
    opt = make(fresh.parameters())
    opt.lr = resumed_lr = nn.load(tmp_path / "optimizer.npz")["param_groups.0.lr"].item()
    assert resumed_lr > 0
    _train(fresh, opt, batches[3:])
    assert not np.array_equal(fresh[0].weight.data, unbroken[0].weight.data)


def test_optimizer_state_dict_is_checked_before_anything_changes():
    model = nn.Linear(2, 2, rng=0)
    opt = nn.optim.Adam(model.parameters(), lr=0.1)
    model(Tensor(np.ones((1, 2), np.float32))).sum().backward()
    opt.step()
    state = opt.state_dict()
    assert state["state.0.m"].shape == (2, 2) and int(state["state.0.t"]) == 1
    state["state.0.m"] = np.zeros(state["state.0.m"].shape)  # a copy: opt is unaffected
    assert np.any(opt.state[model.weight]["m"])
    bad = dict(state, **{"state.1.m": np.zeros((3,))})
    with pytest.raises(ValueError, match=r"'state.1.m' has shape \(3,\), parameter 1 has \(2,\)"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match="for 2 parameters, this optimizer has 1"):
        nn.optim.Adam([model.weight]).load_state_dict(opt.state_dict())
    with pytest.raises(KeyError, match="unexpected entry 'momentum'"):
        opt.load_state_dict({"momentum": np.zeros(1)})
    with pytest.raises(ValueError, match=r"Adam.load_state_dict: lr must be a positive number"):
        opt.load_state_dict(dict(state, **{"param_groups.0.lr": np.array(-1.0)}))
    with pytest.raises(ValueError, match="setting 'betas' is float64 \\(3,\\)"):
        opt.load_state_dict(dict(state, **{"param_groups.0.betas": np.ones(3) / 2}))
    assert opt.lr == 0.1
    assert np.any(opt.state[model.weight]["m"])  # untouched by the failed loads


@pytest.mark.parametrize("module", [nn.optim, nn.data])
def test_dir_shows_only_public_names(module):
    names = dir(module)
    assert names == sorted(module.__all__)
    assert all(hasattr(module, name) for name in names)
    assert not any(name.startswith("_") or name in ("np", "math", "os") for name in names)


# --- properties: registration and optimizer updates hold for any structure -------------------

_leaf = st.builds(lambda n: nn.Linear(1, n, dtype=np.float64), st.integers(1, 3))


def _containers(inner):
    return st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.sampled_from("abc"), inner, max_size=3),
        st.builds(nn.ModuleList, st.lists(_leaf, max_size=2)),
    )


_nested = st.recursive(_leaf, _containers, max_leaves=8)


def _linears(value):
    """Every Linear inside `value`, found by hand (the oracle for registration)."""
    if isinstance(value, nn.Linear):
        return [value]
    if isinstance(value, nn.ModuleList):
        value = list(value)
    items = value.values() if isinstance(value, dict) else value
    return [layer for item in items for layer in _linears(item)]


@given(_nested)
def test_every_layer_in_any_nesting_is_registered_saved_and_restored(structure):
    holder = nn.Module()
    holder.body = structure
    layers = list({id(m): m for m in _linears(structure)}.values())
    params = holder.parameters()
    assert {id(p) for p in params} == {id(p) for m in layers for p in (m.weight, m.bias)}
    # parameters() walks without names; it must keep named_parameters' order (optimizer
    # state and saved files are matched by it).
    assert [id(p) for p in params] == [id(p) for _, p in holder.named_parameters()]
    state = holder.state_dict()
    for p in params:
        p.data[...] = 7.0
    holder.load_state_dict(state)
    assert not any(np.any(p.data == 7.0) for p in params if p.size)


@given(st.lists(st.integers(0, 3), min_size=1, max_size=12), st.sampled_from(["sgd", "adam"]))
def test_listing_parameters_any_number_of_times_gives_one_update(picks, kind):
    def run(order):
        model = nn.Linear(2, 2, dtype=np.float64, rng=0)
        params = [*model.parameters(), *model.parameters()]
        chosen = [params[i] for i in order]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt = (
                nn.optim.SGD(chosen, lr=0.1, momentum=0.9)
                if kind == "sgd"
                else nn.optim.Adam(chosen, lr=0.1)
            )
        for _ in range(2):
            opt.zero_grad()
            model(Tensor(np.ones((1, 2)))).sum().backward()
            opt.step()
        return model.weight.data, model.bias.data

    once = run(sorted({i % 2 for i in picks}))
    many = run(picks)
    for a, b in zip(once, many, strict=True):
        np.testing.assert_array_equal(a, b)


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
