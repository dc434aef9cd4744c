"""evaluate and fit report the whole set's loss as the loss defines it (issue #22).

A weighted mean (cross_entropy / nll_loss with class weights or ignored labels) must stay
a weighted mean over the whole set, whatever the batch size; the default accuracy skips the
labels the loss ignores. The oracle is the loss computed on the whole set in one call, and
PyTorch's loss on the same outputs.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import autodiff as ad
import nn
import nn.functional as F


def _loss_variants(classes: int, rng: np.random.Generator) -> list:
    weight = rng.uniform(0.1, 3.0, size=classes)
    # (loss, the label it ignores): the data's ignored labels (-100) are mapped to it.
    return [
        (F.cross_entropy, -100),
        (functools.partial(F.cross_entropy, weight=weight), -100),
        (functools.partial(F.cross_entropy, ignore_index=1), 1),
        (functools.partial(F.cross_entropy, weight=weight, ignore_index=0, label_smoothing=0.2), 0),
        (nn.CrossEntropyLoss(weight=weight, ignore_index=2), 2),
        (nn.CrossEntropyLoss(reduction="sum", ignore_index=2), 2),
        (functools.partial(F.nll_loss, weight=weight), -100),
    ]


def _data(seed: int):
    rng = np.random.default_rng(seed)
    n, features, classes = int(rng.integers(5, 40)), 3, int(rng.integers(3, 5))
    x = rng.normal(size=(n, features))
    y = rng.integers(0, classes, size=n)
    y[rng.random(n) < 0.3] = -100  # PyTorch's default ignore_index: ignored by every variant
    return rng, x, y, classes


@pytest.mark.parametrize("seed", range(12))
def test_evaluate_loss_does_not_depend_on_batch_size(seed):
    rng, x, labels, classes = _data(seed)
    ad.manual_seed(seed)
    model = nn.Linear(3, classes)
    outputs = ad.Tensor(nn.predict(model, x))
    for loss_fn, ignored in _loss_variants(classes, rng):
        y = np.where(labels == -100, ignored, labels)
        whole = loss_fn(outputs, y).item()
        if getattr(loss_fn, "reduction", "mean") == "sum":
            whole /= len(x)  # a "sum" loss is reported per sample
        for batch_size in (1, 2, 3, 7, len(x)):
            loss, _ = nn.evaluate(model, x, y, loss_fn, batch_size=batch_size)
            assert loss == pytest.approx(whole, rel=1e-9, nan_ok=True), (loss_fn, batch_size)


@pytest.mark.parametrize("seed", range(6))
def test_evaluate_loss_matches_pytorch_weighted_mean(seed):
    torch = pytest.importorskip("torch")
    rng, x, y, classes = _data(seed)
    model = nn.Linear(3, classes)
    weight = rng.uniform(0.1, 3.0, size=classes)
    loss, _ = nn.evaluate(
        model, x, y, functools.partial(F.cross_entropy, weight=weight), batch_size=4
    )
    theirs = torch.nn.functional.cross_entropy(
        torch.tensor(nn.predict(model, x)), torch.tensor(y), weight=torch.tensor(weight)
    )
    assert loss == pytest.approx(theirs.item(), rel=1e-9)


@pytest.mark.parametrize("seed", range(8))
def test_default_accuracy_skips_ignored_labels(seed):
    rng, x, labels, classes = _data(seed)
    model = nn.Linear(3, classes)
    predicted = nn.predict(model, x).argmax(axis=1)
    for loss_fn, ignored in (
        (F.cross_entropy, -100),
        (functools.partial(F.cross_entropy, ignore_index=1), 1),
        (nn.CrossEntropyLoss(ignore_index=2), 2),
        (nn.NLLLoss(ignore_index=0), 0),
    ):
        y = np.where(labels == -100, ignored, labels)
        keep = y != ignored
        expected = np.mean(predicted[keep] == y[keep])
        for batch_size in (1, 3, len(x)):
            _, acc = nn.evaluate(model, x, y, loss_fn, batch_size=batch_size)
            assert acc == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_fit_history_is_the_whole_set_loss(seed):
    # lr=1e-300: the weights do not move, so the epoch's reported loss must be the set's loss.
    rng, x, labels, classes = _data(seed)
    model = nn.Linear(3, classes)
    outputs = ad.Tensor(nn.predict(model, x))
    for loss_fn, ignored in _loss_variants(classes, rng):
        y = np.where(labels == -100, ignored, labels)
        whole = loss_fn(outputs, y).item()
        if getattr(loss_fn, "reduction", "mean") == "sum":
            whole /= len(x)
        for batch_size in (1, 4, len(x)):
            opt = nn.optim.SGD(model.parameters(), lr=1e-300)
            history = nn.fit(
                model, loss_fn, opt, (x, y), epochs=1, batch_size=batch_size, progress=False
            )
            assert history["loss"][0] == pytest.approx(whole, rel=1e-9, nan_ok=True)


def test_fit_skips_a_batch_whose_labels_are_all_ignored():
    x = np.arange(8.0).reshape(4, 2)
    y = np.array([0, 1, -100, -100])
    model = nn.Linear(2, 2)
    opt = nn.optim.SGD(model.parameters(), lr=0.1)
    history = nn.fit(model, F.cross_entropy, opt, (x, y), epochs=2, batch_size=2, progress=False)
    assert np.isfinite(history["loss"]).all()
