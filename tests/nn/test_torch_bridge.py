"""nn.to_torch / nn.from_torch: a model moved to PyTorch and back, by values."""

from __future__ import annotations

import numpy as np
import pytest

import nn
from autodiff import Tensor
from tests.nn.zoo import MODELS, TORCH_MODELS, Doubler, batch, convs, needs_conv

# --- PyTorch bridge ----------------------------------------------------------------------------


def test_the_torch_bridge_keeps_frozen_weights_frozen(torch):
    """Found in the nn hunt (adversarial testing of nn/)."""
    # Fine-tuning: a backbone frozen with requires_grad False came back trainable from
    # from_torch (and went to PyTorch trainable from to_torch), so it was silently trained.
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    theirs[0].requires_grad_(False)
    theirs[2].bias.requires_grad_(False)
    ours = nn.from_torch(theirs)
    assert [(n, p.requires_grad) for n, p in ours.named_parameters()] == [
        ("layers.0.weight", False),
        ("layers.0.bias", False),
        ("layers.2.weight", True),
        ("layers.2.bias", False),
    ]
    back = nn.to_torch(ours)
    assert [(n, p.requires_grad) for n, p in back.named_parameters()] == [
        ("0.weight", False),
        ("0.bias", False),
        ("2.weight", True),
        ("2.bias", False),
    ]
    # The frozen ones are then left alone by a step here, as they would be there.
    opt = nn.optim.SGD(ours.parameters(), lr=0.1)
    frozen = ours[0].weight.numpy().copy()
    ours(Tensor(np.ones((2, 3), np.float32))).sum().backward()
    opt.step()
    assert np.array_equal(ours[0].weight.numpy(), frozen)
    # BatchNorm and convolutions too.
    bn = torch.nn.BatchNorm1d(3)
    bn.weight.requires_grad_(False)
    assert [p.requires_grad for p in nn.from_torch(bn).parameters()] == [False, True]


def test_from_torch_names_a_bfloat16_module(torch):
    """Found in hunt round 2 (function transforms, conv and export)."""
    # Was torch's TypeError "Got unsupported ScalarType BFloat16", naming neither the module
    # nor what to do; now from_torch names the weight and the conversion.
    import nn

    model = torch.nn.Sequential(
        torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1, dtype=torch.bfloat16)
    )
    with pytest.raises(TypeError, match=r"from_torch: '2'\.weight is torch\.bfloat16.*float\(\)"):
        nn.from_torch(model)
    ours = nn.from_torch(model.float())
    assert ours.layers[2].weight.numpy().dtype == np.float32


# --- PyTorch bridge ---------------------------------------------------------------------------


def test_from_torch_keeps_a_layer_used_twice(torch):
    """torch's named_children() lists a shared module once, so from_torch turned
    Sequential(lin, ReLU, lin) into Sequential(lin, ReLU): a model silently computing
    something else (to_torch of our shared layer gives exactly that torch model).

    Found in the attack round (forward mode, transforms, conv, export).
    """
    import nn

    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 3, dtype=torch.float64)
    model = torch.nn.Sequential(lin, torch.nn.ReLU(), lin)
    ours = nn.from_torch(model)
    x = np.random.default_rng(0).normal(size=(4, 3))
    with torch.no_grad():
        expected = model(torch.tensor(x)).numpy()
    np.testing.assert_allclose(ours(x).data, expected, rtol=1e-12)
    assert ours.layers[0] is ours.layers[2]  # still one layer, as in torch
    ours_shared = nn.Sequential(ours.layers[0], nn.Tanh(), ours.layers[0])
    back = nn.from_torch(nn.to_torch(ours_shared))
    np.testing.assert_array_equal(back(x).data, ours_shared(x).data)


@pytest.mark.parametrize(
    "make",
    [
        lambda C: C.BatchNorm1d(3, dtype=np.float64),
        lambda C: C.BatchNorm2d(3, affine=False, dtype=np.float64),
        lambda C: C.LayerNorm(3, dtype=np.float64),
    ],
    ids=["batch_norm", "batch_norm_no_affine", "layer_norm"],
)
def test_float64_normalisation_round_trips_through_torch_exactly(torch, make):
    """to_torch built BatchNorm and LayerNorm in torch's default float32 (silently rounding
    float64 statistics and weights), and from_torch of a float64 one failed with
    "parameter 'weight' has dtype float32 in the model but float64 in the state dict".

    Found in the attack round (forward mode, transforms, conv, export).
    """
    import nn
    from nn import conv as C

    ours = make(C)
    rng = np.random.default_rng(0)
    state = {
        name: (rng.uniform(0.5, 1.5, v.shape) if v.dtype.kind == "f" else v)
        for name, v in ours.state_dict().items()
    }
    ours.load_state_dict(state)
    theirs = nn.to_torch(ours)
    for name, value in theirs.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), state[name])
        assert value.numpy().dtype == state[name].dtype
    back = nn.from_torch(theirs)
    for name, value in back.state_dict().items():
        assert value.dtype == state[name].dtype
        np.testing.assert_array_equal(value, state[name])
    for module in (ours, theirs, back):
        module.eval()
    x = rng.normal(size=(4, 3, 2, 2) if isinstance(ours, C.BatchNorm2d) else (4, 3))
    with torch.no_grad():
        expected = theirs(torch.tensor(x)).numpy()
    np.testing.assert_allclose(ours(x).data, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(back(x).data, ours(x).data)


def _sgd_step_ours(model, x, y, lr):

    optimizer = nn.optim.SGD(model.parameters(), lr=lr)
    loss = nn.F.cross_entropy(model(Tensor(x)), y)
    model.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.data)


def _sgd_step_torch(torch, module, x, y, lr):
    optimizer = torch.optim.SGD(module.parameters(), lr=lr)
    loss = torch.nn.functional.cross_entropy(module(torch.from_numpy(x)), torch.from_numpy(y))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


# --- PyTorch ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_to_torch_computes_what_we_compute(torch, name):
    model, shape = MODELS[name]
    model.eval()
    twin = nn.to_torch(model)
    assert not twin.training
    x = batch(shape, 7, 0)
    with torch.no_grad():
        theirs = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(theirs, nn.predict(model, x), rtol=1e-5, atol=1e-6)


def test_to_torch_names_and_layouts_are_pytorchs(torch):
    model = nn.MLP(4, [3], 2, rng=0)
    twin = nn.to_torch(model)
    assert isinstance(twin, torch.nn.Sequential) and isinstance(twin[0], torch.nn.Linear)
    theirs = {k: v.numpy() for k, v in twin.state_dict().items()}
    assert list(theirs) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(theirs[name.removeprefix("layers.")], value)
    assert theirs["0.weight"].shape == (3, 4)  # (out, in), no transposition anywhere
    assert twin.training and twin[0].training  # the mode is carried over
    twin[0].weight.data.zero_()  # a copy: ours is untouched
    assert np.abs(model.layers[0].weight.data).sum() > 0


def test_one_training_step_matches_after_to_torch(torch):
    model = nn.Sequential(nn.Flatten(), nn.MLP(12, [16, 8], 4, activation="tanh", rng=5))
    twin = nn.to_torch(model)
    x = batch((3, 4), 32, 1)
    y = np.random.default_rng(2).integers(0, 4, size=32)
    ours = _sgd_step_ours(model, x, y, 0.5)
    theirs = _sgd_step_torch(torch, twin, x, y, 0.5)
    assert ours == pytest.approx(theirs, rel=1e-6)
    updated = {k: v.detach().numpy() for k, v in twin.state_dict().items()}
    for name, value in model.state_dict().items():
        # ours "layers.1.layers.0.weight" is torch's "1.0.weight"
        np.testing.assert_allclose(
            updated[name.replace("layers.", "")], value, rtol=1e-5, atol=1e-6
        )


def test_from_torch_computes_and_trains_like_torch(torch):
    torch.manual_seed(0)
    tn = torch.nn
    module = tn.Sequential(
        tn.Flatten(),
        tn.Linear(12, 10),
        tn.LeakyReLU(0.1),
        tn.Dropout(0.2),
        tn.Linear(10, 6),
        tn.Sigmoid(),
        tn.Linear(6, 5, bias=False),
        tn.Identity(),
        tn.ReLU(),
        tn.Tanh(),
        tn.Linear(5, 3),
    )
    ours = nn.from_torch(module)
    assert type(ours) is nn.Sequential and type(ours[3]) is nn.Dropout and ours[3].p == 0.2
    assert ours[6].bias is None
    module.eval()
    ours.eval()
    x = batch((3, 4), 9, 3)
    with torch.no_grad():
        np.testing.assert_allclose(
            nn.predict(ours, x), module(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6
        )
    softmax = nn.from_torch(tn.Softmax(dim=1))
    np.testing.assert_allclose(
        nn.predict(softmax, x[:, 0]), torch.softmax(torch.from_numpy(x[:, 0]), 1).numpy(), rtol=1e-6
    )
    y = np.random.default_rng(4).integers(0, 3, size=9)
    assert _sgd_step_ours(ours, x, y, 0.3) == pytest.approx(
        _sgd_step_torch(torch, module, x, y, 0.3), rel=1e-6
    )
    theirs = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    mine = ours.state_dict()
    assert [k.removeprefix("layers.") for k in mine] == list(theirs)
    for name, value in mine.items():
        np.testing.assert_allclose(
            value, theirs[name.removeprefix("layers.")], rtol=1e-5, atol=1e-6
        )


def test_round_trip_through_torch_is_exact(torch):
    model = nn.MLP(5, [7], 2, activation="leaky_relu", output_activation="sigmoid", rng=6)
    back = nn.from_torch(nn.to_torch(model))
    assert [type(m).__name__ for m in back] == [type(m).__name__ for m in model]
    for (a, va), (b, vb) in zip(model.state_dict().items(), back.state_dict().items(), strict=True):
        assert a == b and va.dtype == vb.dtype
        np.testing.assert_array_equal(va, vb)


def test_bridge_refuses_what_has_no_counterpart(torch):
    with pytest.raises(TypeError, match=r"to_torch: module 'layers.1' is a Doubler"):
        nn.to_torch(nn.Sequential(nn.ReLU(), Doubler()))
    with pytest.raises(TypeError, match=r"from_torch: module '1' is a Embedding, which has no"):
        nn.from_torch(torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Embedding(3, 2)))
    with pytest.raises(TypeError, match="end_dim=-1"):
        nn.from_torch(torch.nn.Flatten(0, 1))
    with pytest.raises(TypeError, match="Softmax without dim"):
        nn.from_torch(torch.nn.Softmax())
    with pytest.raises(TypeError, match="expected a torch.nn.Module"):
        nn.from_torch(nn.ReLU())


@needs_conv
def test_conv_models_train_like_torch_both_ways(torch):
    tn = torch.nn
    torch.manual_seed(0)
    module = tn.Sequential(
        tn.Conv2d(2, 4, 3, padding=1),
        tn.BatchNorm2d(4),
        tn.ReLU(),
        tn.MaxPool2d(2),
        tn.Conv2d(4, 4, 3, padding="same", groups=2),
        tn.AvgPool2d(2),
        tn.Flatten(),
        tn.LayerNorm(16),
        tn.Linear(16, 3),
    )
    ours = nn.from_torch(module)
    assert [type(m).__name__ for m in ours] == [type(m).__name__ for m in module]
    x = batch((2, 8, 8), 6, 7)
    y = np.random.default_rng(8).integers(0, 3, size=6)
    # Training mode: BatchNorm normalises by the batch and updates its running statistics.
    assert _sgd_step_ours(ours, x, y, 0.2) == pytest.approx(
        _sgd_step_torch(torch, module, x, y, 0.2), rel=1e-5
    )
    theirs = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    mine = ours.state_dict()
    assert sorted(k.removeprefix("layers.") for k in mine) == sorted(theirs)
    for name, value in mine.items():
        np.testing.assert_allclose(
            value, theirs[name.removeprefix("layers.")], rtol=1e-4, atol=1e-5, err_msg=name
        )
    twin = nn.to_torch(ours.eval())
    module.eval()
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(twin(torch.from_numpy(x)).numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(nn.predict(ours, x), want, rtol=1e-4, atol=1e-5)


@needs_conv
def test_lenet5_and_odd_torch_layers_are_refused_by_name(torch):
    with pytest.raises(TypeError, match="'\\(the model itself\\)' is a LeNet5"):
        nn.to_torch(convs.LeNet5())
    with pytest.raises(TypeError, match="'0' is MaxPool2d with ceil_mode=True"):
        nn.from_torch(torch.nn.Sequential(torch.nn.MaxPool2d(2, ceil_mode=True)))
    with pytest.raises(TypeError, match="pads with 'reflect'"):
        nn.from_torch(torch.nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"))
