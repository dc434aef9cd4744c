"""cross_entropy and nll_loss against PyTorch over random cases at the edges (issue #22).

Every case mixes the options (weight, ignore_index, label_smoothing, every reduction) with
the inputs that used to leak: an ignored row holding NaN or -inf (a stand-in label 0 times a
weight of 0 made the loss NaN), kept rows with masked (-inf) classes, and the (N, C, d1, ...)
form. Values and gradients must match PyTorch's, NaN and inf included.
"""

from __future__ import annotations

import numpy as np
import pytest

import autodiff as ad
import nn
import nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _case(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    n, classes = int(rng.integers(1, 6)), int(rng.integers(2, 6))
    spatial = tuple(int(d) for d in rng.integers(1, 4, size=rng.integers(0, 3)))
    logits = rng.normal(scale=3.0, size=(n, classes, *spatial))
    labels = rng.integers(0, classes, size=(n, *spatial))
    ignore_index = int(rng.choice([-100, 0, classes - 1, 7]))
    # Some labels ignored; the rows (positions) they point at hold NaN or -inf garbage.
    ignored = rng.random(labels.shape) < 0.4
    labels[ignored] = ignore_index
    moved = np.moveaxis(logits, 1, -1)  # a view: (n, *spatial, classes)
    moved[ignored & (labels == ignore_index)] = rng.choice([np.nan, -np.inf, 1e300])
    # Masked classes in kept rows: -inf anywhere but at the row's own label.
    if rng.random() < 0.5:
        for pos in zip(*np.nonzero(labels != ignore_index), strict=True):
            other = int(rng.integers(0, classes))
            if other != labels[pos] and rng.random() < 0.5:
                moved[pos + (other,)] = -np.inf
    weight = rng.uniform(0.0, 2.0, size=classes) if rng.random() < 0.5 else None
    smoothing = float(rng.choice([0.0, 0.0, 0.1, 0.7]))
    return dict(
        logits=logits,
        labels=labels,
        weight=weight,
        ignore_index=ignore_index,
        smoothing=smoothing,
    )


def _compare(mine_in, mine, theirs_in, theirs, ignored=None):
    np.testing.assert_allclose(mine.data, theirs.detach().numpy(), rtol=1e-9, atol=1e-12)
    if not np.isfinite(theirs.detach().numpy()).all():
        return  # an infinite loss (smoothing over a masked class) has no gradient to compare
    weights = np.arange(1.0, 1.0 + mine.size).reshape(mine.shape)
    (mine * weights).sum().backward()
    (theirs * torch.tensor(weights)).sum().backward()
    mine_grad = np.moveaxis(mine_in.grad.data, 1, -1)
    theirs_grad = np.moveaxis(theirs_in.grad.numpy(), 1, -1)
    if ignored is not None:
        # An ignored row's gradient is exactly 0. PyTorch's smoothing term reads the row
        # before masking it, so its gradient there is NaN for a NaN row: not an oracle there.
        assert not mine_grad[ignored].any()
        mine_grad, theirs_grad = mine_grad[~ignored], theirs_grad[~ignored]
    np.testing.assert_allclose(mine_grad, theirs_grad, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("seed", range(40))
def test_cross_entropy_matches_pytorch_on_random_edge_cases(seed, reduction):
    c = _case(seed)
    mine_in = ad.Tensor(c["logits"], requires_grad=True)
    mine = F.cross_entropy(
        mine_in,
        c["labels"],
        reduction=reduction,
        weight=c["weight"],
        ignore_index=c["ignore_index"],
        label_smoothing=c["smoothing"],
    )
    theirs_in = torch.tensor(c["logits"], requires_grad=True)
    theirs = TF.cross_entropy(
        theirs_in,
        torch.tensor(c["labels"]),
        reduction=reduction,
        weight=None if c["weight"] is None else torch.tensor(c["weight"]),
        ignore_index=c["ignore_index"],
        label_smoothing=c["smoothing"],
    )
    _compare(mine_in, mine, theirs_in, theirs, c["labels"] == c["ignore_index"])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("seed", range(40))
def test_nll_loss_matches_pytorch_on_random_edge_cases(seed, reduction):
    c = _case(seed)
    log_probs = torch.tensor(c["logits"]).log_softmax(dim=1).numpy()
    mine_in = ad.Tensor(log_probs, requires_grad=True)
    mine = F.nll_loss(
        mine_in,
        c["labels"],
        reduction=reduction,
        weight=c["weight"],
        ignore_index=c["ignore_index"],
    )
    theirs_in = torch.tensor(log_probs, requires_grad=True)
    theirs = TF.nll_loss(
        theirs_in,
        torch.tensor(c["labels"]),
        reduction=reduction,
        weight=None if c["weight"] is None else torch.tensor(c["weight"]),
        ignore_index=c["ignore_index"],
    )
    _compare(mine_in, mine, theirs_in, theirs, c["labels"] == c["ignore_index"])


def test_an_ignored_row_never_reaches_loss_or_gradient():
    # The case that was silently wrong: an ignored row of NaN / -inf made the loss NaN.
    logits = np.array([[-np.inf, 1.0, 2.0], [0.0, 1.0, 2.0], [np.nan, 0.0, 0.0]])
    labels = np.array([-100, 2, -100])
    for reduction in ("mean", "sum", "none"):
        for smoothing in (0.0, 0.2):
            x = ad.Tensor(logits, requires_grad=True)
            loss = F.cross_entropy(x, labels, reduction=reduction, label_smoothing=smoothing)
            assert np.isfinite(loss.data).all()
            loss.sum().backward()
            assert np.isfinite(x.grad.data).all()
            assert not x.grad.data[[0, 2]].any()


def test_probability_targets_over_spatial_positions_match_pytorch():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(2, 4, 3, 2))
    probs = torch.tensor(rng.random((2, 4, 3, 2))).softmax(dim=1).numpy()
    for reduction in ("mean", "sum", "none"):
        mine_in = ad.Tensor(logits, requires_grad=True)
        mine = F.cross_entropy(mine_in, probs, reduction=reduction, label_smoothing=0.1)
        theirs_in = torch.tensor(logits, requires_grad=True)
        theirs = TF.cross_entropy(
            theirs_in, torch.tensor(probs), reduction=reduction, label_smoothing=0.1
        )
        _compare(mine_in, mine, theirs_in, theirs)


def test_loss_modules_take_the_new_options():
    rng = np.random.default_rng(0)
    log_probs = torch.tensor(rng.normal(size=(5, 3))).log_softmax(dim=1)
    labels = np.array([0, 2, 1, 1, 2])
    weight = np.array([0.5, 1.0, 2.0])
    mine = nn.NLLLoss(weight=weight, ignore_index=1)(ad.Tensor(log_probs.numpy()), labels)
    theirs = torch.nn.NLLLoss(weight=torch.tensor(weight), ignore_index=1)(
        log_probs, torch.tensor(labels)
    )
    assert mine.item() == pytest.approx(theirs.item(), rel=1e-12)


def test_wrong_label_shapes_name_the_shape_needed():
    with pytest.raises(ValueError, match=r"cross_entropy: integer labels .*\(2, 3\)"):
        F.cross_entropy(ad.Tensor(np.zeros((2, 4, 3))), np.zeros((2, 4), np.int64))
    with pytest.raises(ValueError, match=r"nll_loss: integer labels .*\(2,\)"):
        F.nll_loss(ad.Tensor(np.zeros((2, 4))), np.zeros(3, np.int64))
