"""F.max_pool2d / F.avg_pool2d with PyTorch's options, and F.max_unpool2d, against torch
over random shapes and settings (issue #22)."""

from __future__ import annotations

import numpy as np
import pytest

import autodiff as ad
import nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _setting(rng: np.random.Generator, dilated: bool):
    k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    s = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    p = (int(rng.integers(0, k[0] // 2 + 1)), int(rng.integers(0, k[1] // 2 + 1)))
    d = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) if dilated else (1, 1)
    need = [d[a] * (k[a] - 1) + 1 for a in range(2)]
    h, w = (int(rng.integers(max(1, need[a] - 2 * p[a]), 12)) for a in range(2))
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 3)), h, w)
    return shape, k, s, p, d, bool(rng.integers(2))


def _grads(mine_in, mine, theirs_in, theirs):
    weights = np.random.default_rng(0).normal(size=mine.shape)
    (mine * weights).sum().backward()
    (theirs * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(mine_in.grad.data, theirs_in.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(40))
def test_max_pool2d_matches_pytorch(seed):
    rng = np.random.default_rng(seed)
    shape, k, s, p, d, ceil = _setting(rng, dilated=True)
    x = rng.normal(size=shape)  # continuous values: no ties (where the gradients differ)
    mine_in = ad.Tensor(x, requires_grad=True)
    mine, index = F.max_pool2d(mine_in, k, s, p, d, ceil, return_indices=True)
    theirs_in = torch.tensor(x, requires_grad=True)
    theirs, their_index = TF.max_pool2d(theirs_in, k, s, p, d, ceil, return_indices=True)
    np.testing.assert_array_equal(mine.data, theirs.detach().numpy())
    if not np.isfinite(mine.data).all():
        # A dilated window that covers only padding (-inf): PyTorch's index there points
        # outside the input, and no gradient is defined; the values agree (-inf).
        return
    np.testing.assert_array_equal(index, their_index.numpy())
    plain = F.max_pool2d(ad.Tensor(x), k, s, p, d, ceil)
    np.testing.assert_array_equal(plain.data, mine.data)
    _grads(mine_in, mine, theirs_in, theirs)


@pytest.mark.parametrize("seed", range(40))
def test_avg_pool2d_matches_pytorch(seed):
    rng = np.random.default_rng(seed)
    shape, k, s, p, _, ceil = _setting(rng, dilated=False)
    include = bool(rng.integers(2))
    x = rng.normal(size=shape)
    mine_in = ad.Tensor(x, requires_grad=True)
    mine = F.avg_pool2d(mine_in, k, s, p, ceil_mode=ceil, count_include_pad=include)
    theirs_in = torch.tensor(x, requires_grad=True)
    theirs = TF.avg_pool2d(theirs_in, k, s, p, ceil_mode=ceil, count_include_pad=include)
    np.testing.assert_allclose(mine.data, theirs.detach().numpy(), rtol=1e-12, atol=1e-15)
    _grads(mine_in, mine, theirs_in, theirs)


@pytest.mark.parametrize("seed", range(20))
def test_max_unpool2d_matches_pytorch(seed):
    rng = np.random.default_rng(seed)
    shape, k, s, p, _, _ = _setting(rng, dilated=False)
    x = rng.normal(size=shape)
    pooled, index = TF.max_pool2d(torch.tensor(x), k, s, p, return_indices=True)
    try:
        TF.max_unpool2d(pooled, index, k, s, p)
    except RuntimeError:  # an index beyond the default output size: ours refuses it too
        with pytest.raises(ValueError, match="^max_unpool2d: indices must lie in"):
            F.max_unpool2d(ad.Tensor(pooled.numpy()), index.numpy(), k, s, p)
        return
    mine_in = ad.Tensor(pooled.numpy(), requires_grad=True)
    mine = F.max_unpool2d(mine_in, index.numpy(), k, s, p)
    theirs_in = pooled.clone().requires_grad_(True)
    theirs = TF.max_unpool2d(theirs_in, index, k, s, p)
    np.testing.assert_array_equal(mine.data, theirs.detach().numpy())
    if len(np.unique(index.numpy().reshape(*index.shape[:2], -1)[0, 0])) == index[0, 0].numel():
        _grads(mine_in, mine, theirs_in, theirs)  # (a position two windows share: see doc)
    size = (shape[2], shape[3])
    sized = F.max_unpool2d(ad.Tensor(pooled.numpy()), index.numpy(), k, s, p, output_size=size)
    np.testing.assert_array_equal(
        sized.data, TF.max_unpool2d(pooled, index, k, s, p, output_size=size).numpy()
    )


def test_pooling_errors_name_the_op():
    x = ad.Tensor(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"^max_pool2d: padding \(2, 2\) must be at most half"):
        F.max_pool2d(x, 2, padding=2, ceil_mode=True)
    with pytest.raises(ValueError, match=r"^max_unpool2d: indices must lie in \[0, 16\)"):
        F.max_unpool2d(ad.Tensor(np.ones((1, 1, 2, 2))), np.full((1, 1, 2, 2), 99), 2)
