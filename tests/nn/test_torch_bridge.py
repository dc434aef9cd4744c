"""nn.to_torch / nn.from_torch: a model moved to PyTorch and back, by values."""

from __future__ import annotations

import numpy as np
import pytest

import nn
from autodiff import Tensor

# --- PyTorch bridge ----------------------------------------------------------------------------


def test_the_torch_bridge_keeps_frozen_weights_frozen():
    """Found in the nn hunt (adversarial testing of nn/)."""
    # Fine-tuning: a backbone frozen with requires_grad False came back trainable from
    # from_torch (and went to PyTorch trainable from to_torch), so it was silently trained.
    torch = pytest.importorskip("torch")
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


def test_from_torch_names_a_bfloat16_module():
    """Found in hunt round 2 (function transforms, conv and export)."""
    # Was torch's TypeError "Got unsupported ScalarType BFloat16", naming neither the module
    # nor what to do; now from_torch names the weight and the conversion.
    import nn

    torch = pytest.importorskip("torch", reason="torch not installed")
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1, dtype=torch.bfloat16)
    )
    with pytest.raises(TypeError, match=r"from_torch: '2'\.weight is torch\.bfloat16.*float\(\)"):
        nn.from_torch(model)
    ours = nn.from_torch(model.float())
    assert ours.layers[2].weight.numpy().dtype == np.float32
