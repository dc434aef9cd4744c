"""binary_cross_entropy_with_logits with pos_weight= and weight=, against PyTorch over
random shapes, logits (to +-1e4) and targets (issue #22)."""

from __future__ import annotations

import numpy as np
import pytest

import autodiff as ad
import nn
import nn.functional as F

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("seed", range(25))
def test_matches_pytorch(seed, reduction):
    rng = np.random.default_rng(seed)
    shape = tuple(int(d) for d in rng.integers(1, 5, size=rng.integers(1, 4)))
    scale = float(rng.choice([1.0, 30.0, 1e4]))
    logits = rng.normal(scale=scale, size=shape)
    logits.flat[0] = 0.0  # the kink of the textbook formula
    target = rng.random(shape) if seed % 2 else rng.integers(0, 2, size=shape).astype(float)
    pos = rng.uniform(0.1, 5.0, size=shape[-1:]) if seed % 3 else None
    weight = rng.uniform(0.0, 2.0, size=shape) if seed % 4 == 0 else None
    mine_in = ad.Tensor(logits, requires_grad=True)
    mine = F.binary_cross_entropy_with_logits(
        mine_in, target, reduction=reduction, pos_weight=pos, weight=weight
    )
    theirs_in = torch.tensor(logits, requires_grad=True)
    theirs = torch.nn.functional.binary_cross_entropy_with_logits(
        theirs_in,
        torch.tensor(target),
        reduction=reduction,
        pos_weight=None if pos is None else torch.tensor(pos),
        weight=None if weight is None else torch.tensor(weight),
    )
    np.testing.assert_allclose(mine.data, theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
    weights = np.arange(1.0, 1.0 + mine.size).reshape(mine.shape)
    (mine * weights).sum().backward()
    (theirs * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(mine_in.grad.data, theirs_in.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_module_takes_pos_weight():
    logits, target = np.array([[0.3, -2.0]]), np.array([[1.0, 0.0]])
    mine = nn.BCEWithLogitsLoss(pos_weight=np.array([3.0, 0.5]))(ad.Tensor(logits), target)
    theirs = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([3.0, 0.5], dtype=torch.float64))(
        torch.tensor(logits), torch.tensor(target)
    )
    assert mine.item() == pytest.approx(theirs.item(), rel=1e-12)
    with pytest.raises(ValueError, match="pos_weight of shape \\(3,\\) does not broadcast"):
        F.binary_cross_entropy_with_logits(ad.Tensor(logits), target, pos_weight=np.ones(3))
