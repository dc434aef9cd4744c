"""to_torch / from_torch keep tied (shared) parameters tied, both ways (issue #22).

Random small stacks of Linear layers where some layers reuse an earlier layer's weight
(or bias) Parameter of the same shape, or reuse a whole layer. After conversion: the same
function, the same parameter count as PyTorch reports, and a weight changed through one
holder is seen through the other (still one object).
"""

from __future__ import annotations

import numpy as np
import pytest

import autodiff as ad
import nn

torch = pytest.importorskip("torch")


def _ours(seed: int) -> tuple[nn.Sequential, list[tuple[int, int, str]]]:
    rng = np.random.default_rng(seed)
    width = int(rng.integers(2, 5))
    count = int(rng.integers(2, 6))
    lins = [nn.Linear(width, width, dtype=np.float64) for _ in range(count)]
    ties = []
    for j in range(1, count):
        if rng.random() < 0.6:
            i = int(rng.integers(0, j))
            name = str(rng.choice(["weight", "bias"]))
            setattr(lins[j], name, getattr(lins[i], name))
            ties.append((i, j, name))
    body: list = []
    for lin in lins:
        body += [lin, nn.Tanh()]
    if rng.random() < 0.5:
        body += [lins[0]]  # a whole module used twice
    return nn.Sequential(*body), ties


def _linears(model):
    return [m for m in model.modules() if type(m).__name__ == "Linear"]


@pytest.mark.parametrize("seed", range(20))
def test_to_torch_keeps_ties_and_count(seed):
    model, ties = _ours(seed)
    theirs = torch_model = nn.to_torch(model)
    assert sum(p.numel() for p in torch_model.parameters()) == model.num_parameters()
    x = np.random.default_rng(seed).normal(size=(3, model.layers[0].in_features))
    out = theirs(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(out, model(ad.Tensor(x)).data, rtol=1e-12)
    lins = [m for m in torch_model if isinstance(m, torch.nn.Linear)]
    for i, j, name in ties:
        assert getattr(lins[i], name) is getattr(lins[j], name)
    # And back: the round trip keeps them too.
    back = nn.from_torch(torch_model)
    assert back.num_parameters() == model.num_parameters()
    mine = _linears(back)
    for i, j, name in ties:
        assert getattr(mine[i], name) is getattr(mine[j], name)


def _theirs(seed: int):
    rng = np.random.default_rng(seed)
    width = int(rng.integers(2, 5))
    count = int(rng.integers(2, 6))
    torch.manual_seed(seed)
    lins = [torch.nn.Linear(width, width, dtype=torch.float64) for _ in range(count)]
    ties = []
    for j in range(1, count):
        if rng.random() < 0.6:
            i = int(rng.integers(0, j))
            name = str(rng.choice(["weight", "bias"]))
            setattr(lins[j], name, getattr(lins[i], name))
            ties.append((i, j, name))
    body: list = []
    for lin in lins:
        body += [lin, torch.nn.ReLU()]
    return torch.nn.Sequential(*body), ties


@pytest.mark.parametrize("seed", range(20))
def test_from_torch_keeps_ties_and_count(seed):
    theirs, ties = _theirs(seed)
    model = nn.from_torch(theirs)
    assert model.num_parameters() == sum(p.numel() for p in theirs.parameters())
    mine = _linears(model)
    for i, j, name in ties:
        assert getattr(mine[i], name) is getattr(mine[j], name)
    x = np.random.default_rng(seed).normal(size=(3, mine[0].in_features))
    np.testing.assert_allclose(
        model(ad.Tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(), rtol=1e-12
    )
    # A training step moves a tied weight once, with both uses' gradients summed.
    opt = nn.optim.SGD(model.parameters(), lr=0.1)
    model(ad.Tensor(x)).sum().backward()
    opt.step()
    for i, j, name in ties:
        np.testing.assert_array_equal(getattr(mine[i], name).data, getattr(mine[j], name).data)
