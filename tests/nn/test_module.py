"""Module and Parameter (nn/module.py): registration, state dicts, modes and zero_grad."""

from __future__ import annotations

import numpy as np
import pytest

import nn
from autodiff import Tensor, engine

# --- modules -----------------------------------------------------------------------------------


def test_a_weight_made_as_a_plain_tensor_is_flagged_not_silently_dropped():
    """Found in the nn hunt (adversarial testing of nn/)."""

    # micrograd's habit in a Module, self.w = Tensor(..., requires_grad=True): parameters()
    # and state_dict() leave it out, so it was never trained nor saved, and nothing said so.
    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 2, rng=0)
            self.scale = Tensor(np.ones(2), requires_grad=True)

        def forward(self, x):
            return self.linear(x) * self.scale

    with pytest.warns(
        UserWarning,
        match=r"Scale: attribute 'scale' is a Tensor that requires "
        r"grad, not a Parameter.*nn.Parameter",
    ):
        model = Scale()
    assert [name for name, _ in model.named_parameters()] == ["linear.weight", "linear.bias"]
    # What the warning asks for works, silently; so do constants and results kept around.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.scale = None
        model.scale = nn.Parameter(np.ones(2))
        model.mask = Tensor(np.ones(2))
        model.last = model(Tensor(np.ones((1, 2))))  # not a leaf: an output, not a weight
    assert "scale" in model.state_dict()


def test_load_state_dict_not_strict_reports_what_it_skipped_and_refuses_to_load_nothing(tmp_path):
    """Found in the nn hunt (adversarial testing of nn/)."""
    # strict=False with names that match nothing (a bare Linear's "weight" into a Sequential's
    # "layers.0.weight") loaded nothing and returned None: the model kept its random weights,
    # silently. Now a state sharing no name is refused, and a partial load returns PyTorch's
    # (missing_keys, unexpected_keys).
    source = nn.Linear(2, 2, rng=0)
    target = nn.Sequential(nn.Linear(2, 2, rng=1))
    before = target[0].weight.numpy().copy()
    with pytest.raises(KeyError, match=r"none of the 2 names .* nothing would load"):
        target.load_state_dict(source.state_dict(), strict=False)
    path = nn.save(source, tmp_path / "linear.npz")
    with pytest.raises(KeyError, match=r"nothing would load"):
        nn.load(path, into=target, strict=False)
    assert np.array_equal(target[0].weight.numpy(), before)
    # A partial load says what it left out, by name.
    state = {"layers.0.weight": source.weight.numpy(), "head.bias": np.zeros(2)}
    result = target.load_state_dict(state, strict=False)
    assert result.missing_keys == ["layers.0.bias"]
    assert result.unexpected_keys == ["head.bias"]
    assert np.array_equal(target[0].weight.numpy(), source.weight.numpy())
    # A strict, complete load has nothing to report.
    assert target.load_state_dict(target.state_dict()) == ([], [])


def test_loading_a_pytorch_sequential_state_dict_says_why_the_names_differ():
    """Found in the nn hunt (adversarial testing of nn/)."""
    # torch's Sequential names weights "0.weight", ours "layers.0.weight": the KeyError listed
    # every name as missing and unexpected, without saying that this was the whole story.
    theirs = {"0.weight": np.zeros((2, 3), np.float32), "0.bias": np.zeros(2, np.float32)}
    ours = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(KeyError, match=r"look like PyTorch's nn.Sequential .*nn.from_torch"):
        ours.load_state_dict(theirs)
    # A plain mismatch gets no such hint.
    with pytest.raises(KeyError) as info:
        ours.load_state_dict({"head.weight": np.zeros((2, 3), np.float32)})
    assert "PyTorch" not in str(info.value)


def test_a_module_whose_init_skipped_super_still_works():
    """Found in the nn hunt (adversarial testing of nn/)."""

    # Forgetting super().__init__() in a custom Module worked until something read .training
    # (evaluate, predict), which then said only "'Net' module has no attribute 'training'".
    # Module.__init__ sets nothing else, so a class default makes such a module whole.
    class Net(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2, rng=0)

        def forward(self, x):
            return self.fc(x)

    net = Net()
    x = np.ones((3, 2))
    np.testing.assert_allclose(nn.predict(net, x).data, nn.predict(net.fc, x).data)
    assert net.training and len(net.parameters()) == 2
    net.eval()
    assert not net.training and not net.fc.training and Net().training
    with pytest.raises(AttributeError) as info:
        nn.Linear(2, 2).wieght  # noqa: B018
    assert "'wieght'" in str(info.value) and info.value.name == "wieght"


def test_module_zero_grad_to_zeros_leaves_frozen_weights_without_a_gradient():
    """Found in the nn hunt (adversarial testing of nn/)."""
    # model.zero_grad(set_to_none=False) gave frozen weights a zero gradient, so AdamW's
    # weight decay (and SGD's, and momentum) moved them every step though they were frozen.
    # PyTorch leaves a frozen weight's gradient None there.
    model = nn.Sequential(nn.Linear(2, 2, rng=0), nn.Linear(2, 1, rng=1))
    model[0].requires_grad_(False)
    opt = nn.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.1)
    frozen = model[0].weight.numpy().copy()
    trained = model[1].weight.numpy().copy()
    for _ in range(3):
        model.zero_grad(set_to_none=False)
        assert model[0].weight.grad is None
        model(Tensor(np.ones((3, 2), np.float32))).sum().backward()
        opt.step()
    assert np.array_equal(model[0].weight.numpy(), frozen)
    assert not np.array_equal(model[1].weight.numpy(), trained)
    model.zero_grad(set_to_none=False)  # trainable ones still get zeros of their dtype
    assert model[1].weight.grad.dtype == np.float32
    np.testing.assert_array_equal(model[1].weight.grad.numpy(), np.zeros((1, 2)))


def test_a_float_dtype_mismatch_on_load_says_how_to_convert():
    """Found in the nn hunt (adversarial testing of nn/)."""
    # A float64 state (a PyTorch .double() model, numpy's default) into our float32 model was
    # refused without a way forward (PyTorch converts silently; we keep refusing, and say how).
    model = nn.Linear(2, 2, rng=0)
    state = {k: v.astype(np.float64) for k, v in model.state_dict().items()}
    with pytest.raises(
        ValueError,
        match=r"float32 in the model but float64 in the state dict "
        r"\(convert the model first, "
        r"model.to_dtype\(np.float64\)",
    ):
        model.load_state_dict(state)
    model.to_dtype(np.float64).load_state_dict(state)  # what it suggests works
    assert model.weight.dtype == np.float64


# --- modules: a registered Parameter is not silently replaced --------------------------------


@pytest.mark.parametrize(
    "value",
    [
        Tensor(np.ones((1, 2), np.float32), requires_grad=True),
        np.ones((1, 2), np.float32),
        [[1.0, 1.0]],
    ],
    ids=["tensor", "ndarray", "list"],
)
def test_assigning_a_non_parameter_over_a_parameter_is_refused(value):
    """Found in the adversarial review of nn."""
    model = nn.Linear(2, 1, rng=0)
    before = model.weight
    kind = type(value).__name__
    with pytest.raises(
        TypeError,
        match=f"Linear: cannot assign {kind} to parameter 'weight' "
        r"\(Parameter or None expected",
    ):
        model.weight = value
    assert model.weight is before
    assert list(model.state_dict()) == ["weight", "bias"]


def test_parameters_can_still_be_replaced_by_parameters_or_removed_with_none():
    """Found in the adversarial review of nn."""
    model = nn.Linear(2, 1, rng=0)
    new = nn.Parameter(np.full((1, 2), 3.0, np.float32))
    model.weight = new
    assert model.parameters()[0] is new
    np.testing.assert_array_equal(model.state_dict()["weight"], [[3.0, 3.0]])
    model.bias = None  # as in PyTorch: the parameter is gone
    assert list(model.state_dict()) == ["weight"] and model.bias is None
    model.bias = Tensor(np.zeros(1))  # no longer a parameter slot: any value is fine
    assert [n for n, _ in model.named_parameters()] == ["weight"]
    model.extra = np.ones(3)  # names that never held a Parameter take anything
    model.extra = Tensor(np.ones(3))


def test_buffers_take_tensors_or_none():
    """Found in the adversarial review of nn."""
    bn = nn.BatchNorm2d(2)
    stats = Tensor(np.full(2, 0.5, np.float32))
    bn.running_mean = stats  # a Tensor stays a buffer, saved with the model
    np.testing.assert_array_equal(bn.state_dict()["running_mean"], [0.5, 0.5])
    with pytest.raises(
        TypeError,
        match="BatchNorm2d: cannot assign ndarray to buffer "
        r"'running_var' \(Tensor or None expected\)",
    ):
        bn.running_var = np.ones(2, np.float32)
    bn.running_var = None
    assert "running_var" not in bn.state_dict() and "running_mean" in bn.state_dict()


def test_module_call_restores_the_scope_even_after_an_error():
    """Guards a fast path of the lean engine (slots, chain shortcut, raw gradients)."""

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
