"""Optimizers and the step schedule (nn/optim.py): SGD, Adam, AdamW, StepLR."""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nn
from autodiff import Tensor
from nn import functional as F


def _stepped(make):
    model = nn.Linear(2, 3, rng=0)
    opt = make(model.parameters())
    model(Tensor(np.ones((1, 2), np.float32))).sum().backward()
    opt.step()
    return model, opt


# --- optimizers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda p: nn.optim.SGD(p, lr=0.1),
        lambda p: nn.optim.SGD(p, lr=0.1, momentum=0.9),
        lambda p: nn.optim.Adam(p, lr=0.1),
    ],
)
def test_setting_a_bad_learning_rate_is_refused_where_it_is_set(make):
    """Found in the nn hunt (adversarial testing of nn/)."""
    # opt.lr = "0.01" (a string from argparse) was accepted and failed at the next step deep
    # in numpy ("ufunc 'multiply' did not contain a loop ..."); opt.lr = -5 was accepted and
    # made every step climb the loss. Both are now refused as the constructor refuses them.
    model = nn.Linear(2, 1, rng=0)
    opt = make(model.parameters())
    with pytest.raises(ValueError, match=r"\.lr: lr must be a number, got str '0.01'"):
        opt.lr = "0.01"
    with pytest.raises(ValueError, match=r"\.lr: lr must be a number >= 0, got -5"):
        opt.lr = -5
    with pytest.raises(ValueError, match=r"\.lr: lr must be a number >= 0, got nan"):
        opt.lr = float("nan")
    assert opt.lr == 0.1 and opt.param_groups[0]["lr"] == 0.1
    opt.lr = np.float32(0.5)  # numbers of any kind are fine, kept as a float
    assert opt.lr == 0.5 and type(opt.lr) is float
    opt.lr = 0  # a warm-up from 0 (PyTorch allows it too)
    assert opt.lr == 0.0
    opt.lr = 0.5
    # and the step uses it: plain SGD from zero momentum moves by lr * grad
    model(Tensor(np.ones((1, 2)))).sum().backward()
    before = model.weight.numpy().copy()
    grad = model.weight.grad.numpy().copy()
    opt.step()
    if isinstance(opt, nn.optim.SGD):
        np.testing.assert_allclose(model.weight.numpy(), before - 0.5 * grad, rtol=1e-6)
    else:
        assert not np.array_equal(model.weight.numpy(), before)


@pytest.mark.parametrize(
    "make,key,value,says",
    [
        # a 0-d momentum for a (3, 2) weight: accepted, then the next step failed deep in numpy
        (
            lambda p: nn.optim.SGD(p, lr=0.1, momentum=0.9),
            "state.0.momentum",
            np.array(5.0),
            r"'state.0.momentum' has shape \(\), parameter 0 has \(3, 2\)",
        ),
        # an array of step counts: accepted, and Adam's bias correction silently went elementwise
        (
            lambda p: nn.optim.Adam(p),
            "state.0.t",
            np.ones((3, 2), np.int64),
            r"'state.0.t' is a step count",
        ),
        (lambda p: nn.optim.Adam(p), "state.0.t", np.array(2.5), r"'state.0.t' is a step count"),
        (
            lambda p: nn.optim.Adam(p),
            "state.0.m",
            np.ones((3, 2), np.int64),
            r"'state.0.m' has dtype int64",
        ),
        (
            lambda p: nn.optim.Adam(p),
            "state.0.bogus",
            np.ones((3, 2)),
            r"unexpected entry 'state.0.bogus'",
        ),
    ],
)
def test_optimizer_load_state_dict_refuses_buffers_it_would_misuse(make, key, value, says):
    """Found in the nn hunt (adversarial testing of nn/)."""
    model, opt = _stepped(make)
    state = opt.state_dict()
    state[key] = value
    before = {k: np.array(v, copy=True) for k, v in opt.state_dict().items()}
    with pytest.raises((ValueError, KeyError), match=says):
        opt.load_state_dict(state)
    after = opt.state_dict()  # nothing changed
    assert before.keys() == after.keys()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_optimizer_load_state_dict_refuses_an_incomplete_adam_state():
    """Found in the nn hunt (adversarial testing of nn/)."""
    # Adam's m without its t: accepted, then step() died with KeyError 't'.
    model, opt = _stepped(lambda p: nn.optim.Adam(p))
    state = opt.state_dict()
    del state["state.0.t"]
    with pytest.raises(KeyError, match=r"state of parameter 0 has \['m', 'v'\], Adam needs"):
        opt.load_state_dict(state)
    # The whole state still round-trips, and the run continues exactly.
    twin, twin_opt = _stepped(lambda p: nn.optim.Adam(p))
    twin_opt.load_state_dict(opt.state_dict())
    for m, o in ((model, opt), (twin, twin_opt)):
        m(Tensor(np.ones((1, 2), np.float32))).sum().backward()
        o.step()
    assert np.array_equal(model.weight.numpy(), twin.weight.numpy())


@pytest.mark.parametrize(
    "entry,value,says",
    [
        ("epoch", np.array(2.7), r"epoch is a count of steps"),
        ("epoch", np.array(-3), r"epoch is a count of steps"),
        ("base_lr", np.array(-0.1), r"base_lr must be a positive number"),
        ("base_lr", np.array([0.1, 0.2]), r"base_lr must be one number"),
    ],
)
def test_step_lr_load_state_dict_refuses_what_it_would_misread(entry, value, says):
    """Found in the nn hunt (adversarial testing of nn/)."""
    # epoch 2.7 was read as 2 and -3 as -3 (a rate above the base: 0.1 * 0.5**-1 = 0.2), a
    # negative base rate was taken as it was, and an array failed inside float().
    model = nn.Linear(2, 1, rng=0)
    sched = nn.optim.StepLR(nn.optim.SGD(model.parameters(), lr=0.1), step_size=1, gamma=0.5)
    state = {**sched.state_dict(), entry: value}
    with pytest.raises(ValueError, match=says):
        sched.load_state_dict(state)
    assert sched.epoch == 0 and sched.base_lr == 0.1
    sched.load_state_dict({"epoch": np.array(2), "base_lr": np.array(0.1)})
    sched.step()
    # As PyTorch's StepLR: step 3 multiplies the optimizer's current rate (0.1) by gamma.
    assert sched.get_last_lr() == [pytest.approx(0.1 * 0.5)]


def test_optimizer_given_the_parameters_method_itself_says_to_call_it():
    """Found in the nn hunt (adversarial testing of nn/)."""
    # SGD(model.parameters, lr=0.1), the parentheses forgotten, failed with "'method' object
    # is not iterable", naming neither the optimizer nor the fix.
    model = nn.Linear(2, 2, rng=0)
    with pytest.raises(
        TypeError,
        match=r"SGD: params is the function parameters itself.*"
        r"SGD\(model.parameters\(\), lr=...\)",
    ):
        nn.optim.SGD(model.parameters, lr=0.1)
    with pytest.raises(TypeError, match=r"AdamW: params is the function parameters itself"):
        nn.optim.AdamW(model.parameters)
    assert len(nn.optim.SGD(model.parameters(), lr=0.1).params) == 2
    assert len(nn.optim.SGD(iter(model.parameters()), lr=0.1).params) == 2  # any iterable


def test_optimizer_zero_grad_with_zeros_leaves_frozen_weights_alone():
    """Found in the nn hunt (adversarial testing of nn/)."""
    # The optimizer's zero_grad(set_to_none=False) gave frozen weights zero gradients, so
    # weight decay and momentum moved them (Module.zero_grad was fixed the same way).
    m = nn.Sequential(nn.Linear(2, 2, rng=0), nn.Linear(2, 1, rng=1))
    m[0].requires_grad_(False)
    opt = nn.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    w0 = m[0].weight.numpy().copy()
    w1 = m[1].weight.numpy().copy()
    for _ in range(3):
        opt.zero_grad(set_to_none=False)
        assert m[0].weight.grad is None
        m(Tensor(np.ones((3, 2), np.float32))).sum().backward()
        opt.step()
    np.testing.assert_array_equal(m[0].weight.numpy(), w0)
    assert not np.array_equal(m[1].weight.numpy(), w1)  # the trainable layer did move
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(m[1].weight.grad.data, np.zeros((1, 2)))


# --- optimizers: a parameter group's own settings ------------------------------------------


def _steps(opt, params, grads_per_step):
    """Give each parameter the listed gradient and step, once per entry."""
    for grads in grads_per_step:
        for p, g in zip(params, grads, strict=True):
            p.grad = np.asarray(g, dtype=p.dtype)
        opt.step()


GRADS = [
    [np.array([1.0, -2.0]), np.array([0.5])],
    [np.array([0.3, 0.1]), np.array([-1.5])],
    [np.array([-0.7, 2.0]), np.array([0.25])],
]


# --- optimizers: copies keep their state ---------------------------------------------------


def _train_steps(model, opt, steps):
    rng = np.random.default_rng(3)
    for _ in range(steps):
        x = Tensor(rng.normal(size=(8, 3)).astype(np.float32))
        y = rng.normal(size=(8, 2)).astype(np.float32)
        loss = nn.F.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize(
    "kind, group, defaults",
    [
        ("SGD", {"lr": 0.5}, {"lr": 0.1}),
        ("SGD", {"lr": 0.5, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}, {"lr": 0.1}),
        ("SGD", {"momentum": 0.0}, {"lr": 0.1, "momentum": 0.9}),
        ("Adam", {"lr": 0.05, "betas": (0.5, 0.6), "eps": 1e-3, "weight_decay": 0.2}, {}),
        ("AdamW", {"weight_decay": 0.5}, {"lr": 0.1}),
    ],
)
def test_a_group_dicts_settings_override_the_defaults_as_in_torch(torch, kind, group, defaults):
    """Found in the adversarial review of nn."""
    start = [np.array([1.0, 2.0]), np.array([-3.0])]
    ours = [nn.Parameter(v, dtype=np.float64) for v in start]
    opt = getattr(nn.optim, kind)([{"params": ours, **group}], **defaults)
    theirs = [torch.tensor(v, requires_grad=True) for v in start]
    ref = getattr(torch.optim, kind)([{"params": theirs, **group}], **defaults)
    for key, value in group.items():
        assert opt.param_groups[0][key] == pytest.approx(value)
    _steps(opt, ours, GRADS)
    for grads in GRADS:
        for p, g in zip(theirs, grads, strict=True):
            p.grad = torch.tensor(g)
        ref.step()
    for p, q in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(p._data, q.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_a_group_dicts_lr_is_the_one_used():
    """Found in the adversarial review of nn."""
    c = nn.Parameter(np.array([1.0]), dtype=np.float64)
    opt = nn.optim.SGD([{"params": [c], "lr": 0.5}], lr=0.1)
    _steps(opt, [c], [[np.array([1.0])]])
    assert c._data.tolist() == [0.5]  # 1 - 0.5 * 1 (lr 0.1 gave 0.9)
    # A group without an lr takes the constructor's; one with it needs none.
    assert nn.optim.SGD([{"params": [c]}], lr=0.1).lr == 0.1
    assert nn.optim.SGD([{"params": c, "lr": 0.3}]).lr == 0.3  # a lone tensor, as in torch


def test_group_settings_are_checked_like_constructor_arguments():
    """Found in the adversarial review of nn."""
    c = nn.Parameter(np.array([1.0]))
    with pytest.raises(ValueError, match="SGD: lr must be a positive number, got -0.5"):
        nn.optim.SGD([{"params": [c], "lr": -0.5}], lr=0.1)
    with pytest.raises(ValueError, match="SGD: momentum must be a number, got str"):
        nn.optim.SGD([{"params": [c], "momentum": "0.9"}], lr=0.1)
    with pytest.raises(ValueError, match="SGD: nesterov needs momentum > 0"):
        nn.optim.SGD([{"params": [c], "nesterov": True}], lr=0.1, momentum=0.0)
    with pytest.raises(ValueError, match="SGD: nesterov must be True or False, got str 'no'"):
        nn.optim.SGD([{"params": [c], "nesterov": "no"}], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"Adam: betas must be in \[0, 1\), got \(0.9, 1.5\)"):
        nn.optim.Adam([{"params": [c], "betas": (0.9, 1.5)}])
    with pytest.raises(ValueError, match="Adam: eps must be a positive number, got 0.0"):
        nn.optim.Adam([{"params": [c], "eps": 0.0}])
    with pytest.raises(
        ValueError,
        match=r"SGD: unknown setting\(s\) \['betas'\] in the "
        r"parameter group; SGD takes \['lr', 'momentum'",
    ):
        nn.optim.SGD([{"params": [c], "betas": (0.9, 0.99)}], lr=0.1)
    with pytest.raises(ValueError, match=r"Adam: unknown setting\(s\) \['momentum'\]"):
        nn.optim.Adam([{"params": [c], "momentum": 0.9}])
    with pytest.raises(KeyError, match="SGD: the parameter group has no 'params' entry"):
        nn.optim.SGD([{"lr": 0.1}], lr=0.1)
    with pytest.raises(TypeError, match="SGD: no learning rate"):
        nn.optim.SGD([{"params": [c]}])
    with pytest.raises(ValueError, match="one parameter group is supported, got 2"):
        nn.optim.SGD([{"params": [c]}, {"params": [c], "lr": 0.1}], lr=0.1)


def test_group_settings_survive_state_dict_round_trip():
    """Found in the adversarial review of nn."""
    c = nn.Parameter(np.array([1.0, 2.0]))
    opt = nn.optim.SGD([{"params": [c], "lr": 0.5, "momentum": 0.9}], lr=0.1)
    _steps(opt, [c], [[np.array([1.0, 1.0])]])
    state = opt.state_dict()
    assert float(state["param_groups.0.lr"]) == 0.5
    assert float(state["param_groups.0.momentum"]) == 0.9
    other = nn.optim.SGD([c], lr=0.1, momentum=0.1)
    other.load_state_dict(state)
    assert (other.lr, other.momentum, other.nesterov) == (0.5, 0.9, False)
    np.testing.assert_array_equal(other.state[c]["momentum"], opt.state[c]["momentum"])
    with pytest.raises(ValueError, match="SGD.load_state_dict: momentum must be a number >= 0"):
        other.load_state_dict(dict(state, **{"param_groups.0.momentum": np.array(-1.0)}))
    with pytest.raises(ValueError, match="SGD.load_state_dict: nesterov needs momentum > 0"):
        other.load_state_dict(
            dict(
                state,
                **{
                    "param_groups.0.momentum": np.array(0.0),
                    "param_groups.0.nesterov": np.array(True),
                },
            )
        )
    assert other.momentum == 0.9  # a refused load changes nothing


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: nn.optim.SGD(ps, lr=0.05, momentum=0.9),
        lambda ps: nn.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
        lambda ps: nn.optim.Adam(ps, lr=0.01),
    ],
    ids=["momentum", "nesterov", "adam"],
)
@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copied_model_and_optimizer_continue_exactly_as_the_original(make, how):
    """Found in the adversarial review of nn."""
    model = nn.MLP(3, [5], 2, rng=0)
    opt = make(model.parameters())
    _train_steps(model, opt, 3)
    if how == "deepcopy":
        model2, opt2 = copy.deepcopy((model, opt))
    else:
        model2, opt2 = pickle.loads(pickle.dumps((model, opt)))
    assert opt2.params == model2.parameters()
    # Every buffer is keyed by the copy's own parameter, with the original's values.
    assert len(opt2.state) == len(opt.state) == len(model.parameters())
    for p, q in zip(opt.params, opt2.params, strict=True):
        assert p is not q and set(opt2.state[q]) == set(opt.state[p])
    _train_steps(model, opt, 2)
    _train_steps(model2, opt2, 2)
    for (name, p), (_, q) in zip(model.named_parameters(), model2.named_parameters(), strict=True):
        np.testing.assert_array_equal(p._data, q._data, err_msg=name)
    # Without the carried-over state the copy would have diverged: the check has teeth.
    model3 = copy.deepcopy(model2)
    opt3 = make(model3.parameters())
    _train_steps(model2, opt2, 1)
    _train_steps(model3, opt3, 1)
    assert not np.array_equal(model2[0].weight._data, model3[0].weight._data)


def test_an_optimizer_given_the_model_itself_says_to_pass_its_parameters():
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    import nn

    with pytest.raises(TypeError, match=r"SGD.*model\.parameters\(\)"):
        nn.optim.SGD(nn.Linear(3, 2), lr=0.1)


def test_sgd_momentum_updates_in_place_and_never_writes_the_gradient():
    """Guards a fast path of the lean engine (slots, chain shortcut, raw gradients)."""
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


def _train(model, opt, batches, scheduler=None):
    for x, y in batches:
        loss = F.mse_loss(model(Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()


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
        rates.append(schedule.get_last_lr())  # a list, one rate per group, as PyTorch's
    assert rates == [[1.0], [0.5], [0.5], [0.25], [0.25]]


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


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda ps: nn.optim.SGD(ps, lr=0.1),
        lambda ps: nn.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
        lambda ps: nn.optim.Adam(ps, lr=0.01),
        lambda ps: nn.optim.AdamW(ps, lr=0.01),
    ],
    ids=["sgd", "nesterov", "adam", "adamw"],
)
def test_optimizer_step_between_forward_and_backward_is_refused(make_optimizer):
    model = nn.MLP(3, [4], 2, rng=0)
    opt = make_optimizer(model.parameters())
    x = Tensor(np.ones((2, 3), np.float32))
    first = nn.F.cross_entropy(model(x), np.array([0, 1]))
    first.backward()
    stale = nn.F.cross_entropy(model(x), np.array([0, 1]))  # built with the old weights
    opt.step()
    with pytest.raises(RuntimeError, match="^linear: a tensor this op saved"):
        stale.backward()
    opt.zero_grad()
    nn.F.cross_entropy(model(x), np.array([0, 1])).backward()  # a fresh graph is fine
    assert all(p.grad is not None for p in model.parameters())


def test_optimizer_updates_record_no_graph_and_never_touch_gradients():
    model = nn.MLP(3, [5], 2, rng=1)
    params = model.parameters()
    arrays = [p._data for p in params]
    opts = [nn.optim.SGD(params, lr=0.1, momentum=0.9), nn.optim.Adam(params, lr=0.01)]
    x = Tensor(np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32))
    for step in range(6):
        loss = nn.F.cross_entropy(model(x), np.array([0, 1, 1, 0]))
        for p in params:
            p.zero_grad()
        # Also with differentiable gradients: the step must still use plain numbers.
        loss.backward(create_graph=step % 2 == 1)
        grads = [p.grad.data.copy() for p in params]
        opts[step % 2].step()
        for p, g, a in zip(params, grads, arrays, strict=True):
            assert p.is_leaf and p._parents == () and p.requires_grad
            assert p._data is a  # updated in place: the model keeps its arrays
            np.testing.assert_array_equal(p.grad.data, g)  # the gradient was not modified
    for opt in opts:
        for slot in opt.state.values():
            assert not any(isinstance(v, Tensor) for v in slot.values())
