"""Loss modules and cross_entropy's options, against PyTorch (when installed) and by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import autodiff as ad
import nn
from autodiff import Tensor
from autodiff.testing import gradcheck
from nn import functional as F

RNG = np.random.default_rng(3)
LOGITS = RNG.normal(size=(5, 4)) * 2
LABELS = np.array([0, 3, 1, 3, 2])
PROBS = RNG.dirichlet(np.ones(4), size=5)
WEIGHT = np.array([0.5, 2.0, 1.0, 3.0])


def reference(logits, target, weight=None, ignore_index=-100, reduction="mean", smoothing=0.0):
    """cross_entropy written out from its definition (PyTorch's documentation), in numpy."""
    logits = np.atleast_2d(logits)
    n, classes = logits.shape
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    w = np.ones(classes) if weight is None else weight
    if np.asarray(target).dtype.kind == "f":
        q = np.atleast_2d(target) * (1 - smoothing) + smoothing / classes
        loss = -(log_p * q * w).sum(axis=1)
        total = n
    else:
        labels = np.atleast_1d(target)
        loss, total = np.zeros(n), 0.0
        for i, y in enumerate(labels):
            if y == ignore_index:
                continue
            q = np.full(classes, smoothing / classes)
            q[y] += 1 - smoothing
            # PyTorch weights the target class's part by w[y] and the smoothed part per class.
            loss[i] = (
                -(1 - smoothing) * w[y] * log_p[i, y] - (smoothing / classes) * (w * log_p[i]).sum()
            )
            total += w[y]
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / total


OPTIONS = [
    dict(),
    dict(weight=WEIGHT),
    dict(ignore_index=3),
    dict(label_smoothing=0.2),
    dict(weight=WEIGHT, ignore_index=1, label_smoothing=0.1),
]


@pytest.mark.parametrize(
    ("options", "reduction"), list(itertools.product(OPTIONS, ("mean", "sum", "none")))
)
def test_cross_entropy_options_with_labels(options, reduction):
    out = F.cross_entropy(Tensor(LOGITS), LABELS, reduction=reduction, **options)
    expected = reference(
        LOGITS,
        LABELS,
        options.get("weight"),
        options.get("ignore_index", -100),
        reduction,
        options.get("label_smoothing", 0.0),
    )
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-14)
    assert gradcheck(lambda z: F.cross_entropy(z, LABELS, reduction=reduction, **options), LOGITS)


@pytest.mark.parametrize(
    ("options", "reduction"),
    list(
        itertools.product(
            [dict(), dict(weight=WEIGHT), dict(label_smoothing=0.3)], ("mean", "sum", "none")
        )
    ),
)
def test_cross_entropy_options_with_probabilities(options, reduction):
    out = F.cross_entropy(Tensor(LOGITS), PROBS, reduction=reduction, **options)
    expected = reference(
        LOGITS, PROBS, options.get("weight"), -100, reduction, options.get("label_smoothing", 0.0)
    )
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)
    assert gradcheck(lambda z: F.cross_entropy(z, PROBS, reduction=reduction, **options), LOGITS)


def test_probability_targets_given_as_tensors_get_gradients():
    target = Tensor(PROBS, requires_grad=True)
    for smoothing in (0.0, 0.2):
        target.zero_grad()
        F.cross_entropy(Tensor(LOGITS), target, "sum", label_smoothing=smoothing).backward()
        log_p = LOGITS - np.log(np.exp(LOGITS).sum(axis=1, keepdims=True))
        np.testing.assert_allclose(target.grad.data, -(1 - smoothing) * log_p, rtol=1e-12)
    assert gradcheck(
        lambda z, p: F.cross_entropy(z, p, weight=WEIGHT, label_smoothing=0.1), LOGITS, PROBS
    )


def test_unbatched_row_matches_a_batch_of_one():
    row = LOGITS[1]
    for target in (np.int64(3), PROBS[1]):
        for reduction in ("mean", "sum", "none"):
            out = F.cross_entropy(Tensor(row), target, reduction=reduction, label_smoothing=0.1)
            batch = F.cross_entropy(
                Tensor(row[None]), np.asarray(target)[None], reduction="none", label_smoothing=0.1
            )
            assert out.shape == ()
            np.testing.assert_allclose(out.item(), batch.data[0], rtol=1e-12)
    assert F.cross_entropy(Tensor(row), 3).item() == pytest.approx(reference(row, [3]))
    assert gradcheck(lambda z: F.cross_entropy(z, 2, weight=WEIGHT), row)


def test_plain_cross_entropy_keeps_the_fused_node():
    logits = Tensor(LOGITS, requires_grad=True)
    assert F.cross_entropy(logits, LABELS).op == "softmax_cross_entropy"
    assert F.cross_entropy(logits, LABELS, ignore_index=-1).op == "softmax_cross_entropy"
    assert F.cross_entropy(logits, LABELS, weight=WEIGHT).op != "softmax_cross_entropy"
    # The default ignore_index (-100) is honoured on the fused path too, as in PyTorch.
    labels = np.array([0, -100, 1, 3, -100])
    out = F.cross_entropy(logits, labels)
    assert out.item() == pytest.approx(reference(LOGITS, labels))


def test_reduction_is_the_third_positional_parameter_as_for_the_other_losses():
    np.testing.assert_allclose(
        F.cross_entropy(Tensor(LOGITS), LABELS, "sum").data,
        reference(LOGITS, LABELS, reduction="sum"),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        F.cross_entropy(Tensor(LOGITS), PROBS, "none").data,
        reference(LOGITS, PROBS, reduction="none"),
        rtol=1e-12,
    )


def test_all_labels_ignored_gives_nan_as_pytorch():
    out = F.cross_entropy(Tensor(LOGITS), np.full(5, -100))
    assert np.isnan(out.item())
    assert F.cross_entropy(Tensor(LOGITS), np.full(5, -100), reduction="sum").item() == 0.0


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: F.cross_entropy(Tensor(LOGITS), LABELS, label_smoothing=1.5),
            ValueError,
            r"label_smoothing must lie in \[0, 1\], got 1.5",
        ),
        (
            lambda: F.cross_entropy(Tensor(LOGITS), LABELS, weight=np.ones(3)),
            ValueError,
            r"weight must have shape \(4,\), got \(3,\)",
        ),
        (
            lambda: F.cross_entropy(
                Tensor(LOGITS), LABELS, weight=Tensor(np.ones(4), requires_grad=True)
            ),
            TypeError,
            "weight is a constant",
        ),
        (
            lambda: F.cross_entropy(Tensor(LOGITS), np.array([0, 1, 9, 2, 0]), ignore_index=0),
            ValueError,
            r"labels must lie in \[0, 4\)",
        ),
        (
            lambda: F.cross_entropy(Tensor(LOGITS), PROBS, ignore_index=1),
            ValueError,
            "ignore_index applies to integer labels only",
        ),
        (
            lambda: F.cross_entropy(Tensor(LOGITS[0]), np.array([1, 2])),
            ValueError,
            r"one unbatched row\) take one integer label",
        ),
        (
            lambda: F.cross_entropy(Tensor(LOGITS), LABELS, reduction="avg"),
            ValueError,
            "reduction must be one of",
        ),
        (
            lambda: F.cross_entropy(Tensor(LOGITS), LABELS, WEIGHT),
            ValueError,
            "reduction must be one of",
        ),  # PyTorch's positional weight: ours is keyword-only
        (
            # (N, C, d1) logits are PyTorch's per-position form: labels must be (N, d1)
            lambda: F.cross_entropy(Tensor(np.zeros((2, 3, 4))), LABELS),
            ValueError,
            r"integer labels for input of shape \(2, 3, 4\) must have shape \(2, 4\)",
        ),
        (
            lambda: F.binary_cross_entropy(Tensor([0.2, 0.7]), [0.0, 1.5]),
            ValueError,
            r"binary_cross_entropy: targets must lie in \[0, 1\].*from 0.0 to 1.5",
        ),
        (
            lambda: F.binary_cross_entropy(Tensor([0.2, 0.7]), [-1.0, 1.0]),
            ValueError,
            r"targets must lie in \[0, 1\]",
        ),
        (lambda: F.binary_cross_entropy(Tensor([0.2, 0.7]), [np.nan, 1.0]), ValueError, "and NaN"),
        # Labels that are not integers: they used to reach the row indexing unchecked
        # (getitem's numpy error for floats; booleans would be taken as a mask).
        (
            lambda: F.nll_loss(Tensor(LOGITS), LABELS.astype(float)),
            ValueError,
            r"nll_loss: labels must be integers \(class indices\), got dtype float64 \(cast",
        ),
        (
            lambda: F.nll_loss(Tensor(LOGITS), LABELS > 1),
            ValueError,
            r"nll_loss: labels must be integers \(class indices\), got dtype bool",
        ),
        (
            lambda: F.nll_loss(Tensor(LOGITS), np.array([0, 1, -1, 2, 0])),
            ValueError,
            r"nll_loss: labels must lie in \[0, 4\), got values from -1 to 2",
        ),
        (
            lambda: nn.MSELoss(reduction="avg"),
            ValueError,
            r"MSELoss: reduction must be one of \('mean', 'sum', 'none'\), got 'avg'",
        ),
        (
            lambda: nn.CrossEntropyLoss(label_smoothing=-0.1),
            ValueError,
            r"CrossEntropyLoss: label_smoothing must lie in \[0, 1\]",
        ),
    ],
)
def test_bad_loss_arguments_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_binary_cross_entropy_accepts_soft_targets_in_range():
    out = F.binary_cross_entropy(Tensor([0.2, 0.7]), [0.0, 0.25])
    expected = -np.mean([np.log(0.8), 0.25 * np.log(0.7) + 0.75 * np.log(0.3)])
    assert out.item() == pytest.approx(expected, rel=1e-6)


def test_loss_modules_equal_their_functions():
    pred = RNG.uniform(0.1, 0.9, size=(4, 3))
    target = RNG.uniform(0, 1, size=(4, 3))
    cases = [
        (nn.MSELoss, F.mse_loss, pred, target),
        (nn.L1Loss, F.l1_loss, pred, target),
        (nn.BCELoss, F.binary_cross_entropy, pred, target),
        (nn.BCEWithLogitsLoss, F.binary_cross_entropy_with_logits, pred * 4 - 2, target),
        (nn.NLLLoss, F.nll_loss, np.log(PROBS), LABELS),
        (nn.CrossEntropyLoss, F.cross_entropy, LOGITS, LABELS),
    ]
    for module, function, x, y in cases:
        for reduction in ("mean", "sum", "none"):
            criterion = module(reduction=reduction)
            assert criterion.reduction == reduction and reduction in repr(criterion)
            out = criterion(Tensor(x, requires_grad=True), y)
            np.testing.assert_array_equal(
                out.data, function(Tensor(x), y, reduction=reduction).data, err_msg=module.__name__
            )
        assert not list(criterion.parameters())
    l1 = nn.L1Loss()(Tensor(pred), target).item()
    assert l1 == pytest.approx(np.abs(pred - target).mean())
    criterion = nn.CrossEntropyLoss(weight=WEIGHT, ignore_index=1, label_smoothing=0.1)
    assert "ignore_index=1" in repr(criterion) and "label_smoothing=0.1" in repr(criterion)
    assert not list(criterion.parameters())  # the class weights are not trained
    np.testing.assert_allclose(
        criterion(Tensor(LOGITS), LABELS).item(),
        reference(LOGITS, LABELS, WEIGHT, 1, "mean", 0.1),
        rtol=1e-12,
    )


def test_a_training_step_with_a_loss_module():
    ad.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    criterion = nn.CrossEntropyLoss(label_smoothing=0.05)
    optimizer = nn.optim.SGD(model.parameters(), lr=0.5)
    x = Tensor(RNG.normal(size=(32, 4)).astype(np.float32))
    y = (x.data[:, 0] > 0).astype(np.int64) + (x.data[:, 1] > 0)
    first = criterion(model(x), y).item()
    for _ in range(50):
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.6 * first


# --- PyTorch as the oracle -----------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", OPTIONS + [dict(weight=WEIGHT, label_smoothing=0.4)])
def test_cross_entropy_matches_pytorch(torch, options, reduction):
    labels = LABELS.copy()
    for target in (labels, PROBS):
        if target is PROBS and "ignore_index" in options:
            continue
        mine_in = Tensor(LOGITS, requires_grad=True)
        mine = F.cross_entropy(mine_in, target, reduction=reduction, **options)
        theirs_in = torch.tensor(LOGITS, requires_grad=True)
        kwargs = {k: (torch.tensor(v) if k == "weight" else v) for k, v in options.items()}
        theirs = torch.nn.functional.cross_entropy(
            theirs_in, torch.tensor(target), reduction=reduction, **kwargs
        )
        np.testing.assert_allclose(mine.data, theirs.detach().numpy(), rtol=1e-10)
        weights = np.arange(1.0, 1.0 + mine.size).reshape(mine.shape)
        (mine * weights).sum().backward()
        (theirs * torch.tensor(weights)).sum().backward()
        np.testing.assert_allclose(mine_in.grad.data, theirs_in.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_unbatched_and_loss_modules_match_pytorch(torch):
    tnn = torch.nn
    row = torch.tensor(LOGITS[0])
    for target in (2, PROBS[0]):
        mine = F.cross_entropy(Tensor(LOGITS[0]), np.asarray(target), label_smoothing=0.2)
        theirs = tnn.functional.cross_entropy(row, torch.tensor(target), label_smoothing=0.2)
        assert mine.item() == pytest.approx(theirs.item(), rel=1e-12)
    pred = RNG.uniform(0.1, 0.9, size=(4, 3))
    target = RNG.uniform(0, 1, size=(4, 3))
    pairs = [
        (nn.MSELoss, tnn.MSELoss),
        (nn.L1Loss, tnn.L1Loss),
        (nn.BCELoss, tnn.BCELoss),
        (nn.BCEWithLogitsLoss, tnn.BCEWithLogitsLoss),
    ]
    for mine_cls, theirs_cls in pairs:
        for reduction in ("mean", "sum", "none"):
            mine = mine_cls(reduction=reduction)(Tensor(pred), target)
            theirs = theirs_cls(reduction=reduction)(torch.tensor(pred), torch.tensor(target))
            np.testing.assert_allclose(
                mine.data, theirs.numpy(), rtol=1e-6, err_msg=f"{mine_cls.__name__} {reduction}"
            )


RNG_nn = np.random.default_rng(0)


LOSSES = {
    "mse": lambda p, t: F.mse_loss(p, t),
    "mse_sum": lambda p, t: F.mse_loss(p, t, reduction="sum"),
    "bce": lambda p, t: F.binary_cross_entropy(p.sigmoid(), t),
    "bce_logits": lambda p, t: F.binary_cross_entropy_with_logits(p, t),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_regression_losses_gradcheck(name):
    pred = RNG_nn.normal(size=(4, 3))
    target = RNG_nn.uniform(0, 1, size=(4, 3))
    assert gradcheck(lambda p: LOSSES[name](p, target), pred)


@pytest.mark.parametrize("name", ["mse", "bce", "bce_logits"])
def test_losses_match_pytorch(torch, name):
    pred = RNG_nn.normal(size=(4, 3))
    target = RNG_nn.uniform(0, 1, size=(4, 3))
    p = Tensor(pred, requires_grad=True)
    loss = LOSSES[name](p, target)
    loss.backward()
    tp = torch.tensor(pred, requires_grad=True)
    tt = torch.tensor(target)
    ref = {
        "mse": lambda: torch.nn.functional.mse_loss(tp, tt),
        "bce": lambda: torch.nn.functional.binary_cross_entropy(torch.sigmoid(tp), tt),
        "bce_logits": lambda: torch.nn.functional.binary_cross_entropy_with_logits(tp, tt),
    }[name]()
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    np.testing.assert_allclose(p.grad.data, tp.grad.numpy(), rtol=1e-5, atol=1e-8)
