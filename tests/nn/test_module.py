"""Module and Parameter (nn/module.py): registration, state dicts, modes and zero_grad."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

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


@pytest.mark.parametrize("module", [nn.optim, nn.data])
def test_dir_shows_only_public_names(module):
    names = dir(module)
    assert names == sorted(module.__all__)
    assert all(hasattr(module, name) for name in names)
    assert not any(name.startswith("_") or name in ("np", "math", "os") for name in names)


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


# --- fuzzing: state dicts ---------------------------------------------------------------------

_NAMES = [
    "layers.0.weight",
    "layers.0.bias",
    "layers.2.weight",
    "layers.2.bias",
    "bogus",
    "layers.9.weight",
    "",
]


_JUNK = st.one_of(
    st.none(),
    st.text(max_size=3),
    st.integers(),
    st.floats(allow_nan=True),
    st.lists(st.floats(-2, 2), max_size=4),
    st.builds(
        lambda shape, dtype: np.zeros(shape, dtype=dtype),
        st.lists(st.integers(0, 5), max_size=3).map(tuple),
        st.sampled_from([np.float32, np.float64, np.int64, np.bool_]),
    ),
)


def test_load_state_dict_between_forward_and_backward_is_refused():
    model = nn.Linear(3, 2)
    loss = model(Tensor(np.ones((1, 3), np.float32))).sum()
    model.load_state_dict(nn.Linear(3, 2).state_dict())
    with pytest.raises(RuntimeError, match="^linear: "):
        loss.backward()


@given(st.dictionaries(st.sampled_from(_NAMES), _JUNK, max_size=7), st.booleans(), st.booleans())
def test_load_state_dict_fuzzed_dicts_fail_cleanly_and_leave_model_intact(state, strict, complete):
    model = nn.MLP(3, [4], 2, rng=0)
    before = model.state_dict()
    if complete:  # start from a valid dict so the deeper checks are reached too
        state = {**before, **state}
    try:
        model.load_state_dict(state, strict=strict)
    except (KeyError, ValueError, TypeError) as exc:
        assert "load_state_dict" in str(exc), exc
        for name, value in model.state_dict().items():
            np.testing.assert_array_equal(value, before[name])  # nothing half-loaded
    else:
        for name, value in model.state_dict().items():
            expected = state.get(name, before[name])
            np.testing.assert_array_equal(value, np.asarray(expected))


def test_load_state_dict_round_trip_through_a_file_is_exact(tmp_path):
    source, target = nn.MLP(3, [4], 2, rng=0), nn.MLP(3, [4], 2, rng=1)
    target.load_state_dict(nn.load(nn.save(source, tmp_path / "w.npz")))
    digest = [hashlib.sha256(p.data.tobytes()).digest() for p in target.parameters()]
    assert digest == [hashlib.sha256(p.data.tobytes()).digest() for p in source.parameters()]
