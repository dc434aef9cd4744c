"""nn.functional: activations, losses and metrics as functions, by value and gradient."""

from __future__ import annotations

import numpy as np
import pytest

import autodiff as ad
import nn
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


# --- losses ------------------------------------------------------------------------------------


def test_nll_loss_refuses_boolean_and_float_labels_by_name():
    """Found in the nn hunt (adversarial testing of nn/)."""
    # Boolean labels used to index as a mask: [True, False] picked log p[0, 0] and log p[1, 0]
    # (loss 1.26) where the labels 1, 0 give 0.16, silently. Float labels failed deep inside
    # getitem. Both are now refused naming nll_loss and the dtype, as cross_entropy does.
    log_probs = Tensor(np.log(np.array([[0.1, 0.9], [0.8, 0.2]])))
    with pytest.raises(ValueError, match=r"nll_loss: labels must be integers .*bool"):
        F.nll_loss(log_probs, np.array([True, False]))
    with pytest.raises(ValueError, match=r"nll_loss: labels must be integers .*float64"):
        F.nll_loss(log_probs, np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"labels must be integers"):
        nn.NLLLoss()(log_probs, [1.0, 0.0])
    # Integer labels (list or array) still work, with the right value.
    expected = -(np.log(0.9) + np.log(0.8)) / 2
    assert F.nll_loss(log_probs, [1, 0]).item() == pytest.approx(expected)
    assert F.nll_loss(log_probs, np.array([1, 0], dtype=np.uint8)).item() == pytest.approx(expected)
    # No labels at all (np.asarray([]) is float64): the sum over nothing is 0.
    assert F.nll_loss(Tensor(np.zeros((0, 2))), [], reduction="sum").item() == 0.0


@pytest.mark.parametrize(
    "loss,args",
    [
        (F.mse_loss, (np.zeros((0, 2)), np.zeros((0, 2)))),
        (F.l1_loss, (np.zeros(0), np.zeros(0))),
        (F.binary_cross_entropy, (np.zeros(0), np.zeros(0))),
        (F.binary_cross_entropy_with_logits, (np.zeros(0), np.zeros(0))),
        (F.nll_loss, (np.zeros((0, 3)), np.zeros(0, np.int64))),
    ],
)
def test_a_loss_of_an_empty_batch_names_the_loss(loss, args):
    """Found in the nn hunt (adversarial testing of nn/)."""
    # The mean of an empty batch failed with the engine's "mean: no elements to average",
    # naming no loss; it now names the loss and the way out. The sum is still 0.
    name = loss.__name__
    with pytest.raises(ValueError, match=rf"{name}: the batch is empty .*reduction='sum'"):
        loss(Tensor(args[0]), args[1])
    assert loss(Tensor(args[0]), args[1], reduction="sum").item() == 0.0
    assert loss(Tensor(args[0]), args[1], reduction="none").shape == args[0].shape[:1] + (
        args[0].shape[1:] if loss is not F.nll_loss else ()
    )


def test_cross_entropy_with_integer_one_hot_rows_says_what_to_pass():
    """Found in the nn hunt (adversarial testing of nn/)."""
    # F.one_hot gives int64 rows; cross_entropy read them as labels of the wrong shape and
    # said only "integer labels must have shape (4,), got (4, 3)".
    logits = Tensor(np.random.default_rng(0).normal(size=(4, 3)))
    labels = np.array([0, 2, 1, 2])
    rows = F.one_hot(labels, 3).numpy()
    with pytest.raises(ValueError, match=r"got \(4, 3\) \(one-hot rows\? .*\.astype"):
        F.cross_entropy(logits, rows)
    # What it suggests gives the same loss as the labels.
    assert F.cross_entropy(logits, rows.astype(np.float64)).item() == pytest.approx(
        F.cross_entropy(logits, labels).item()
    )
