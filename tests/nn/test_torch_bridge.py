"""nn.to_torch / nn.from_torch: a model moved to PyTorch and back, by values."""

from __future__ import annotations

import numpy as np
import pytest

import nn
from autodiff import Tensor

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
