"""Optimizers and the step schedule (nn/optim.py): SGD, Adam, AdamW, StepLR."""

from __future__ import annotations

import numpy as np
import pytest

import nn
from autodiff import Tensor


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
    assert sched.get_last_lr() == pytest.approx(0.1 * 0.5**3)


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
