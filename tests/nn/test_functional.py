"""nn.functional: activations, losses and metrics as functions, by value and gradient."""

from __future__ import annotations

import numpy as np
import pytest

import autodiff as ad
import nn.functional as F
from autodiff import Tensor


def test_bce_third_derivative_is_pytorch_double_backward():
    """Found in hunt round 3 (dtypes and higher-order derivatives)."""
    # The gradient of binary_cross_entropy in p is PyTorch's G = (p - y) / (p (1 - p)); its
    # higher derivatives are G's. The composite (p - p.detach()) * slope matched G and dG/dp
    # but gave 1.5 d2G/dp2 for the third derivative, and 0 for d3/dp2 dy.
    torch = pytest.importorskip("torch", reason="torch not installed")
    tf = torch.nn.functional
    p0 = np.array([0.2, 0.45, 0.7, 0.9])
    y0 = np.array([0.1, 0.6, 0.3, 1.0])
    v = np.array([0.3, -1.1, 0.7, 0.5])

    def ours():
        p, y = Tensor(p0, requires_grad=True), Tensor(y0, requires_grad=True)
        loss = F.binary_cross_entropy(p, y, reduction="sum")
        gp, gy = ad.grad(loss, [p, y], create_graph=True)
        hp, hy = ad.grad((gp * Tensor(v)).sum(), [p, y], create_graph=True)
        return [x.data for x in (gp, gy, hp, hy, *ad.grad((hp * hp).sum() + hy.sum(), [p, y]))]

    def theirs():
        p = torch.tensor(p0, requires_grad=True)
        y = torch.tensor(y0, requires_grad=True)
        loss = tf.binary_cross_entropy(p, y, reduction="sum")
        gp, gy = torch.autograd.grad(loss, [p, y], create_graph=True)
        hp, hy = torch.autograd.grad((gp * torch.tensor(v)).sum(), [p, y], create_graph=True)
        third = torch.autograd.grad((hp * hp).sum() + hy.sum(), [p, y])
        return [x.detach().numpy() for x in (gp, gy, hp, hy, *third)]

    for a, b in zip(ours(), theirs(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_bce_third_derivative_in_p_without_torch():
    """Found in hunt round 3 (dtypes and higher-order derivatives)."""
    # Analytically: G = (p - y)/(p(1-p)); d3 loss/dp3 = d2G/dp2.
    p0, y0 = 0.3, 0.8
    p = Tensor(p0, requires_grad=True)
    (g,) = ad.grad(F.binary_cross_entropy(p, Tensor(y0), reduction="sum"), [p], create_graph=True)
    (h,) = ad.grad(g, [p], create_graph=True)
    (k,) = ad.grad(h, [p])

    def big_g(q):
        return (q - y0) / (q * (1 - q))

    step = 1e-4
    d2 = (big_g(p0 + step) - 2 * big_g(p0) + big_g(p0 - step)) / step**2
    assert float(g.data) == pytest.approx(big_g(p0), rel=1e-12)
    assert float(k.data) == pytest.approx(d2, rel=1e-6)


def test_bce_keeps_dtype_and_gradient_dtype():
    """Found in hunt round 3 (dtypes and higher-order derivatives)."""
    p = Tensor(np.array([0.2, 0.7], np.float32), requires_grad=True)
    loss = F.binary_cross_entropy(p, np.array([0.0, 1.0]))
    loss.backward()
    assert loss.dtype == np.float32 and p.grad.dtype == np.float32


def test_float16_cross_entropy_adds_up_in_float32():
    """The fused loss summed the exponentials (and the batch's losses) in float16, whose
    largest value is 65504: inf for 100,000 equal logits or a batch of 30,000, and the saved
    probabilities became 0, so the gradient lost its softmax part.

    Found in hunt round 3 (dtypes and higher-order derivatives).
    """
    from autodiff import Tensor

    z = Tensor(np.zeros((1, 100000), np.float16), requires_grad=True)
    loss = ad.softmax_cross_entropy(z, np.array([3]))
    assert loss.dtype == np.float16
    np.testing.assert_allclose(loss.item(), np.log(100000), rtol=1e-3)
    loss.backward()
    assert z.grad.dtype == np.float16
    np.testing.assert_allclose(
        z.grad.data[0, :4].astype(np.float64), [1e-5, 1e-5, 1e-5, -1 + 1e-5], rtol=1e-2, atol=1e-6
    )
    batch = ad.softmax_cross_entropy(
        Tensor(np.zeros((30000, 10), np.float16)), np.zeros(30000, np.int64)
    )
    np.testing.assert_allclose(batch.item(), np.log(10), rtol=1e-3)
