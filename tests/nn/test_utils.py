"""nn.utils (gradient clipping) and F.one_hot, against PyTorch's definitions."""

import math

import numpy as np
import pytest

import nn
from autodiff import Tensor
from tests.oracle import torch_if_installed

torch = torch_if_installed()  # the hand-computed checks run without it


def _params_with_grads(grads):
    params = []
    for g in grads:
        p = nn.Parameter(np.zeros_like(g))
        p.grad = Tensor(g)
        params.append(p)
    return params


GRADS = [np.array([[3.0, -4.0], [1.0, 2.0]]), np.array([12.0, -0.5])]


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
def test_clip_grad_norm_scales_all_gradients_together(norm_type):
    params = _params_with_grads(GRADS)
    flat = np.concatenate([g.ravel() for g in GRADS])
    expected = (
        np.max(np.abs(flat))
        if norm_type == math.inf
        else np.sum(np.abs(flat) ** norm_type) ** (1 / norm_type)
    )
    total = nn.utils.clip_grad_norm_(params, 1.0, norm_type=norm_type)
    assert total.item() == pytest.approx(expected)
    for p, g in zip(params, GRADS, strict=True):
        np.testing.assert_allclose(p.grad.data, g / (expected + 1e-6))
    if torch is not None:
        theirs = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in GRADS]
        for t, g in zip(theirs, GRADS, strict=True):
            t.grad = torch.tensor(g)
        their_total = torch.nn.utils.clip_grad_norm_(theirs, 1.0, norm_type=norm_type)
        assert total.item() == pytest.approx(their_total.item())
        for p, t in zip(params, theirs, strict=True):
            np.testing.assert_allclose(p.grad.data, t.grad.numpy(), rtol=1e-12)


def test_clip_grad_norm_leaves_small_and_nonfinite_gradients_alone():
    params = _params_with_grads(GRADS)
    nn.utils.clip_grad_norm_(params, 100.0)
    np.testing.assert_array_equal(params[0].grad.data, GRADS[0])
    params = _params_with_grads([np.array([np.nan, 1.0])])
    assert math.isnan(nn.utils.clip_grad_norm_(params, 1.0).item())
    with pytest.raises(FloatingPointError, match="clip_grad_norm_: .*nan"):
        nn.utils.clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="max_norm must be positive"):
        nn.utils.clip_grad_norm_(params, 0)
    with pytest.raises(TypeError, match="model.parameters"):
        nn.utils.clip_grad_norm_([np.ones(2)], 1.0)


def test_clipping_in_a_training_step_keeps_the_dtype():
    model = nn.Linear(3, 2, rng=0)  # float32
    loss = (model(np.full((4, 3), 100.0, np.float32)) ** 2).sum()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 0.5)
    grads = [p.grad.data for p in model.parameters()]
    assert all(g.dtype == np.float32 for g in grads)
    norm = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads))
    assert 0.49 < norm <= 0.5 * (1 + 1e-6)  # float32 rounding: within an ulp of the limit
    nn.utils.clip_grad_value_(model.parameters(), 0.01)
    assert max(float(np.abs(p.grad.data).max()) for p in model.parameters()) <= 0.01


def test_one_hot_as_pytorch():
    labels = np.array([[0, 2], [1, 0]])
    out = nn.F.one_hot(labels)
    assert out.dtype == np.int64 and out.shape == (2, 2, 3)
    assert out.tolist() == [[[1, 0, 0], [0, 0, 1]], [[0, 1, 0], [1, 0, 0]]]
    assert nn.F.one_hot(Tensor(np.array([1])), num_classes=4).tolist() == [[0, 1, 0, 0]]
    if torch is not None:
        np.testing.assert_array_equal(
            out.data, torch.nn.functional.one_hot(torch.tensor(labels)).numpy()
        )
    with pytest.raises(ValueError, match="label 3 does not fit num_classes=2"):
        nn.F.one_hot(np.array([3]), num_classes=2)
    with pytest.raises(ValueError, match=">= 0"):
        nn.F.one_hot(np.array([-1]))
    with pytest.raises(TypeError, match="integers"):
        nn.F.one_hot(np.array([0.5]))
