"""fit(): stopping rules, histories, per-sample updates, and real MNIST accuracy."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nn
from autodiff import Tensor
from nn import functional as F


def _xor_setup(seed=1):
    x, y = nn.data.make_xor()
    model = nn.MLP(
        2, [2], 1, activation="sigmoid", output_activation="sigmoid", dtype=np.float64, rng=seed
    )
    return model, nn.optim.SGD(model.parameters(), lr=2.0), x, y


def test_xor_learns_all_four_points():
    model, opt, x, y = _xor_setup()
    history = nn.fit(model, F.mse_loss, opt, (x, y), epochs=4000, batch_size=4, progress=False)
    out = nn.predict(model, x).ravel()
    assert ((out > 0.5) == (y.ravel() > 0.5)).all()
    assert history["loss"][-1] < history["loss"][0] / 10


def test_max_epochs_rule():
    model, opt, x, y = _xor_setup()
    history = nn.fit(model, F.mse_loss, opt, (x, y), epochs=7, progress=False)
    assert history.epochs == 7 and "maximum of 7 epochs" in history.stopped_reason


def test_loss_threshold_rule():
    model, opt, x, y = _xor_setup()
    history = nn.fit(
        model, F.mse_loss, opt, (x, y), epochs=5000, loss_threshold=0.05, progress=False
    )
    assert history["loss"][-1] < 0.05 <= history["loss"][-2]
    assert "loss" in history.stopped_reason and history.epochs < 5000


def test_error_threshold_rule():
    model, opt, x, y = _xor_setup()
    history = nn.fit(
        model, F.mse_loss, opt, (x, y), epochs=5000, error_threshold=0.01, progress=False
    )
    assert history["accuracy"][-1] == 1.0 and "error rate" in history.stopped_reason


@pytest.mark.slow
def test_update_threshold_rule():
    model, opt, x, y = _xor_setup()
    history = nn.fit(
        model, F.mse_loss, opt, (x, y), epochs=20000, update_threshold=1e-4, progress=False
    )
    assert history["max_update"][-1] < 1e-4 <= max(history["max_update"])
    assert "weight update" in history.stopped_reason


def test_update_threshold_zero_still_records_max_update():
    model, opt, x, y = _xor_setup()
    history = nn.fit(model, F.mse_loss, opt, (x, y), epochs=3, update_threshold=0.0, progress=False)
    assert len(history["max_update"]) == 3 and min(history["max_update"]) > 0
    assert "maximum of 3 epochs" in history.stopped_reason


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"error_threshold": 0.1, "metric": None}, "error_threshold needs a metric"),
        ({"error_threshold": 1.5}, r"error_threshold must be in \[0.0, 1.0\], got 1.5"),
        ({"update_threshold": -1e-3}, "update_threshold must be >= 0.0, got -0.001"),
        ({"loss_threshold": float("nan")}, "loss_threshold must be a number, got nan"),
        ({"loss_threshold": "0.1"}, "loss_threshold must be a number, got '0.1'"),
    ],
)
def test_stopping_rules_that_cannot_work_are_refused(kwargs, match):
    model, opt, x, y = _xor_setup()
    before = model.state_dict()
    with pytest.raises(ValueError, match=match):
        nn.fit(model, F.mse_loss, opt, (x, y), epochs=2, progress=False, **kwargs)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])  # refused before any step


def test_a_loader_with_no_batch_is_an_error():
    model, opt, x, y = _xor_setup()
    loader = nn.data.DataLoader(x, y, batch_size=8, drop_last=True)
    with pytest.raises(
        ValueError,
        match=r"fit: the training data gives no batch \(4 samples, "
        r"batch_size=8, drop_last=True\)",
    ):
        nn.fit(model, F.mse_loss, opt, loader, epochs=3, loss_threshold=1.0, progress=False)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's, on the NaN input
def test_non_finite_loss_stops_before_the_step_and_names_epoch_and_step():
    model, opt, x, y = _xor_setup()
    x = np.array(x)
    x[3, 0] = np.nan
    before = model.state_dict()
    loader = nn.data.DataLoader(x, y, batch_size=2)
    with pytest.raises(
        FloatingPointError,
        match=r"fit: the loss is nan at epoch 1, step 2;.*"
        r"inputs hold NaN or inf.*check_finite=False",
    ):
        nn.fit(model, F.mse_loss, opt, loader, epochs=3, progress=False)
    # Step 1 (finite) was taken; step 2 was not, so the weights are finite.
    assert all(np.isfinite(v).all() for v in model.state_dict().values())
    assert any(not np.array_equal(v, before[k]) for k, v in model.state_dict().items())
    history = nn.fit(model, F.mse_loss, opt, loader, epochs=1, progress=False, check_finite=False)
    assert np.isnan(history["loss"][-1])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's overflow on the way to inf
def test_divergence_with_finite_data_says_so():
    x, y = nn.data.make_regression(20)
    model = nn.Linear(1, 1, dtype=np.float64, rng=0)
    opt = nn.optim.SGD(model.parameters(), lr=100.0)  # far too high: each step overshoots
    with pytest.raises(FloatingPointError, match="only finite values.*lower learning rate"):
        nn.fit(model, F.mse_loss, opt, (x, y), epochs=500, progress=False, metric=None)
    assert all(np.isfinite(v).all() for v in model.state_dict().values())


def test_numpy_integers_are_epoch_counts():
    model, opt, x, y = _xor_setup()
    history = nn.fit(model, F.mse_loss, opt, (x, y), epochs=np.int64(2), progress=False)
    assert history.epochs == 2
    with pytest.raises(ValueError, match="fit: epochs must be a positive int, got True"):
        nn.fit(model, F.mse_loss, opt, (x, y), epochs=True, progress=False)


@pytest.mark.parametrize(
    "data,error,match",
    [
        (
            nn.data.DataLoader(np.ones((4, 2))),
            ValueError,
            "train_loader is a DataLoader without "
            r"targets \(y=None\)",
        ),
        ((np.ones((4, 2)), None), ValueError, r"train_loader has no targets \(y is None\)"),
        ("data", TypeError, "fit: train_loader must be a DataLoader or an \\(x, y\\) pair.*str"),
        ((np.ones((4, 2)),), TypeError, "got a tuple of length 1"),
    ],
)
def test_training_data_without_targets_is_refused(data, error, match):
    model, opt, _, _ = _xor_setup()
    with pytest.raises(error, match=match):
        nn.fit(model, F.mse_loss, opt, data, epochs=1, progress=False)


def test_val_data_without_targets_is_refused_before_training():
    model, opt, x, y = _xor_setup()
    with pytest.raises(ValueError, match="fit: val_data is a DataLoader without targets"):
        nn.fit(
            model, F.mse_loss, opt, (x, y), epochs=1, progress=False, val_data=nn.data.DataLoader(x)
        )


def test_per_sample_updates_and_callbacks():
    model, opt, x, y = _xor_setup()
    seen = []
    history = nn.fit(
        model,
        F.mse_loss,
        opt,
        nn.data.DataLoader(x, y, batch_size=1, shuffle=True, seed=0),
        epochs=3,
        progress=False,
        callbacks=[lambda epoch, h: seen.append((epoch, len(h["loss"])))],
    )
    assert seen == [(1, 1), (2, 2), (3, 3)] and history.epochs == 3


def test_validation_history_and_evaluate_restores_mode():
    (x, y), (xt, yt) = nn.data.load_mini_mnist()
    model = nn.Sequential(
        nn.Linear(784, 32, rng=0), nn.ReLU(), nn.Dropout(0.1, rng=0), nn.Linear(32, 10, rng=1)
    )
    history = nn.fit(
        model,
        F.cross_entropy,
        nn.optim.SGD(model.parameters(), lr=0.1),
        (x[:1000], y[:1000]),
        epochs=2,
        val_data=(xt, yt),
        progress=True,
    )
    assert len(history["val_loss"]) == 2 and len(history["val_accuracy"]) == 2
    assert history["val_accuracy"][-1] > 0.6
    assert model.training
    loss, acc = nn.evaluate(model, xt, yt, F.cross_entropy)
    assert model.training and acc == pytest.approx(history["val_accuracy"][-1])


@pytest.mark.slow
def test_full_mnist_one_epoch_reaches_95_percent(mnist_dir):
    (x, y), (xt, yt) = nn.data.load_mnist(mnist_dir, download=False)
    model = nn.MLP(784, [128], 10, rng=0)
    loader = nn.data.DataLoader(x, y, batch_size=64, shuffle=True, seed=0)
    # One epoch: momentum gets there (plain SGD at lr 0.1 needs about two epochs).
    optimizer = nn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    nn.fit(model, F.cross_entropy, optimizer, loader, epochs=1, progress=False)
    _, accuracy = nn.evaluate(model, xt, yt, F.cross_entropy)
    assert accuracy >= 0.95
    assert model.layers[0].weight.dtype == np.float32


def test_evaluate_and_predict_on_no_samples_are_errors_not_perfect_scores():
    model = nn.Linear(2, 1)
    with pytest.raises(ValueError, match=r"evaluate: no samples .*shape \(0, 2\)"):
        nn.evaluate(model, np.ones((0, 2)), np.ones((0, 1)), F.mse_loss)
    with pytest.raises(ValueError, match=r"predict: no samples to predict"):
        nn.predict(model, np.ones((0, 2)))


_thresholds = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 0.0, 1, -1, np.float32(0.5)]),
)


@given(_thresholds, _thresholds, _thresholds, st.sampled_from([None, F.accuracy]))
def test_every_stopping_rule_works_or_is_refused(loss_t, error_t, update_t, metric):
    """No rule the user sets is silently ignored: fit refuses it up front, or it is recorded
    every epoch and a stop it reports is true."""
    model, opt, x, y = _xor_setup()
    try:
        history = nn.fit(
            model,
            F.mse_loss,
            opt,
            (x, y),
            epochs=3,
            progress=False,
            metric=metric,
            loss_threshold=loss_t,
            error_threshold=error_t,
            update_threshold=update_t,
        )
    except ValueError as exc:
        assert str(exc).startswith("fit: ")
        return
    if update_t is not None:
        assert len(history["max_update"]) == history.epochs
    if error_t is not None:
        assert len(history["accuracy"]) == history.epochs
    reason = history.stopped_reason
    if reason.startswith("loss"):
        assert history["loss"][-1] < loss_t
    elif reason.startswith("error rate"):
        assert 1 - history["accuracy"][-1] < error_t
    elif reason.startswith("largest weight update"):
        assert history["max_update"][-1] < update_t
    else:
        assert history.epochs == 3


# --- training ----------------------------------------------------------------------------------


def _sum_loss_data():
    x = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    y = np.arange(10) % 2
    return x, y


@pytest.mark.parametrize(
    "loss_fn",
    [
        functools.partial(F.cross_entropy, reduction="sum"),
        nn.CrossEntropyLoss(reduction="sum"),
    ],
)
def test_evaluate_and_fit_report_the_mean_loss_for_a_sum_loss(loss_fn):
    """Found in the nn hunt (adversarial testing of nn/)."""
    # A sum-reduced batch loss was multiplied by the batch size again: evaluate in batches of
    # 4 reported 2.61 where the mean per sample is 0.684 (and the total 6.84), and fit's
    # History["loss"] was inflated the same way, so loss_threshold compared the wrong number.
    x, y = _sum_loss_data()
    model = nn.Linear(3, 2, rng=0)
    mean = F.cross_entropy(model(Tensor(x)), y).item()
    loss, _ = nn.evaluate(model, x, y, loss_fn, batch_size=4)
    assert loss == pytest.approx(mean, rel=1e-6)
    # fit with a learning rate too small to move anything: the epoch's loss is that mean.
    history = nn.fit(
        model,
        loss_fn,
        nn.optim.SGD(model.parameters(), lr=1e-12),
        (x, y),
        epochs=1,
        batch_size=4,
        progress=False,
    )
    assert history["loss"][0] == pytest.approx(mean, rel=1e-6)


def test_fit_and_evaluate_name_a_loss_that_is_not_one_number():
    """Found in the nn hunt (adversarial testing of nn/)."""
    # reduction="none" failed with "item: only a tensor with one element ...", naming
    # neither fit nor the loss.
    x, y = _sum_loss_data()
    model = nn.Linear(3, 2, rng=0)
    per_sample = functools.partial(F.cross_entropy, reduction="none")
    with pytest.raises(ValueError, match=r"fit: loss_fn returned a loss of shape \(10,\).*'none'"):
        nn.fit(
            model,
            per_sample,
            nn.optim.SGD(model.parameters(), lr=0.1),
            (x, y),
            epochs=1,
            batch_size=10,
            progress=False,
        )
    with pytest.raises(ValueError, match=r"evaluate: loss_fn returned a loss of shape \(10,\)"):
        nn.evaluate(model, x, y, per_sample)


def test_fit_names_first_hour_mix_ups_of_its_arguments():
    """Found in the nn hunt (adversarial testing of nn/)."""
    # Each of these failed mid-step with an error about something else: the loss class (not an
    # instance) was built as CrossEntropyLoss(weight=outputs, ...) and float() refused it;
    # swapped arguments said "'SGD' object is not callable"; an optimizer made for another
    # model (a notebook cell run again) said "step() called before backward()".
    x, y = _sum_loss_data()
    model = nn.Linear(3, 2, rng=0)
    sgd = nn.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(
        TypeError,
        match=r"fit: loss_fn is the class CrossEntropyLoss; .*"
        r"CrossEntropyLoss\(\)",
    ):
        nn.fit(model, nn.CrossEntropyLoss, sgd, (x, y), epochs=1, progress=False)
    with pytest.raises(TypeError, match=r"fit: loss_fn must be .* got SGD"):
        nn.fit(model, sgd, F.cross_entropy, (x, y), epochs=1, progress=False)
    with pytest.raises(TypeError, match=r"fit: optimizer must be an nn.optim optimizer.*NoneType"):
        nn.fit(model, F.cross_entropy, None, (x, y), epochs=1, progress=False)
    stale = nn.optim.SGD(nn.Linear(3, 2).parameters(), lr=0.1)
    before = model.weight.numpy().copy()
    with pytest.raises(ValueError, match=r"fit: the optimizer holds none of the model's"):
        nn.fit(model, F.cross_entropy, stale, (x, y), epochs=1, progress=False)
    assert np.array_equal(model.weight.numpy(), before)
    # An optimizer over part of the model (the rest frozen by choice) is fine.
    part = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
    history = nn.fit(
        part,
        F.cross_entropy,
        nn.optim.SGD(part[1].parameters(), lr=0.1),
        (x, y),
        epochs=1,
        progress=False,
    )
    assert history.epochs == 1


@pytest.mark.parametrize(
    "call",
    [
        lambda model, x, y: nn.evaluate(model, x, y, F.cross_entropy),
        lambda model, x, y: nn.predict(model, x),
    ],
)
def test_evaluate_and_predict_give_each_sub_module_its_own_mode_back(call):
    """Found in the nn hunt (adversarial testing of nn/)."""
    # Fine-tuning with a frozen BatchNorm: model in training mode, its BatchNorm in eval mode.
    # evaluate/predict restored the mode with model.train(True), which put the BatchNorm back
    # in training mode, so the next forward silently updated its running statistics.
    x, y = _sum_loss_data()
    model = nn.Sequential(nn.Linear(3, 4, rng=0), nn.BatchNorm1d(4), nn.Linear(4, 2, rng=1))
    model[1].eval()
    call(model, x, y)
    assert model.training and model[0].training and model[2].training
    assert not model[1].training
    before = model[1].running_mean.numpy().copy()
    model(Tensor(x))
    assert np.array_equal(model[1].running_mean.numpy(), before)


@pytest.mark.parametrize(
    "model,loss_fn,squash",
    [
        (
            lambda: nn.Sequential(nn.Linear(3, 2, rng=0), nn.Softmax(dim=1)),
            F.cross_entropy,
            "Softmax",
        ),
        (
            lambda: nn.Sequential(nn.Linear(3, 2, rng=0), nn.Softmax()),
            nn.CrossEntropyLoss(),
            "Softmax",
        ),
        (
            lambda: nn.MLP(3, [4], 1, output_activation="sigmoid", rng=0),
            nn.BCEWithLogitsLoss(),
            "Sigmoid",
        ),
    ],
)
def test_fit_warns_when_the_model_squashes_what_the_loss_squashes_again(model, loss_fn, squash):
    """Found in the nn hunt (adversarial testing of nn/)."""
    # A final Softmax before cross_entropy (or Sigmoid before a with-logits loss) trains,
    # slowly and silently: the first-hour double softmax.
    x, y = _sum_loss_data()
    if squash == "Sigmoid":
        y = y.reshape(-1, 1).astype(np.float32)
    m = model()
    with pytest.warns(
        UserWarning,
        match=rf"fit: the model ends in {squash} but the loss "
        rf"takes logits.*drop the final {squash}",
    ):
        nn.fit(m, loss_fn, nn.optim.SGD(m.parameters(), lr=0.1), (x, y), epochs=1, progress=False)


def test_fit_does_not_warn_about_a_model_that_outputs_logits():
    """Found in the nn hunt (adversarial testing of nn/)."""
    import warnings

    x, y = _sum_loss_data()
    m = nn.Sequential(nn.Linear(3, 2, rng=0))
    probs = nn.Sequential(nn.Linear(3, 1, rng=0), nn.Sigmoid())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nn.fit(
            m,
            F.cross_entropy,
            nn.optim.SGD(m.parameters(), lr=0.1),
            (x, y),
            epochs=1,
            progress=False,
        )
        nn.fit(
            probs,
            nn.BCELoss(),
            nn.optim.SGD(probs.parameters(), lr=0.1),
            (x, y.reshape(-1, 1).astype(np.float32)),
            epochs=1,
            progress=False,
        )


def test_fit_takes_one_callback_alone_and_checks_callbacks_before_training():
    """Found in the nn hunt (adversarial testing of nn/)."""
    # callbacks=recorder (no list) failed with "'function' object is not iterable" only after
    # the first epoch had trained; callbacks=[1] with "'int' object is not callable" likewise;
    # scheduler=<an optimizer> took a second, silent step every epoch.
    x, y = _sum_loss_data()
    model = nn.Linear(3, 2, rng=0)
    sgd = nn.optim.SGD(model.parameters(), lr=0.1)
    seen = []
    history = nn.fit(
        model,
        F.cross_entropy,
        sgd,
        (x, y),
        epochs=3,
        progress=False,
        callbacks=lambda epoch, h: seen.append(epoch),
    )
    assert seen == [1, 2, 3] and history.epochs == 3
    before = model.weight.numpy().copy()
    with pytest.raises(TypeError, match=r"fit: callback 0 is a int"):
        nn.fit(model, F.cross_entropy, sgd, (x, y), epochs=1, progress=False, callbacks=[1])
    with pytest.raises(TypeError, match=r"fit: scheduler must be a learning-rate schedule"):
        nn.fit(model, F.cross_entropy, sgd, (x, y), epochs=1, progress=False, scheduler=sgd)
    assert np.array_equal(model.weight.numpy(), before)  # refused before any step


# --- fit / evaluate: the default accuracy suits the loss and the targets ---------------------


def _identity_scorer(columns=1):
    """A Linear model whose outputs are exactly its inputs (weight 1, bias 0)."""
    model = nn.Linear(columns, columns, rng=0)
    model.load_state_dict(
        {"weight": np.eye(columns, dtype=np.float32), "bias": np.zeros(columns, np.float32)}
    )
    return model


# Scores in [-1, 1) and the labels they separate perfectly at 0: thresholding these logits at
# 0.5 instead of 0 would call a quarter of them wrong.
SCORES = np.linspace(-1, 1, 40, endpoint=False, dtype=np.float32)[:, None]


LABELS = (SCORES > 0).astype(np.float32)


@pytest.mark.parametrize(
    "loss_fn",
    [
        nn.F.binary_cross_entropy_with_logits,
        nn.BCEWithLogitsLoss(),
        functools.partial(nn.F.binary_cross_entropy_with_logits, reduction="sum"),
    ],
    ids=["function", "module", "partial"],
)
def test_logit_losses_are_scored_at_0(loss_fn):
    """Found in the adversarial review of nn."""
    assert nn.F.accuracy(SCORES, LABELS) == 0.75  # what the 0.5 threshold gave
    assert nn.F.accuracy(SCORES, LABELS, threshold=0.0) == 1.0
    _, acc = nn.evaluate(_identity_scorer(), SCORES, LABELS, loss_fn)
    assert acc == 1.0
    model = _identity_scorer()
    history = nn.fit(
        model,
        loss_fn,
        nn.optim.SGD(model.parameters(), lr=1e-9),
        (SCORES, LABELS),
        epochs=1,
        batch_size=len(SCORES),
        val_data=(SCORES, LABELS),
        progress=False,
    )
    assert history["accuracy"] == [1.0] and history["val_accuracy"] == [1.0]


def test_probabilities_are_scored_at_one_half_and_columns_by_argmax():
    """Found in the adversarial review of nn."""
    probs = (SCORES + 1) / 2  # in [0, 1): above 0.5 exactly where the label is 1
    model = _identity_scorer()
    history = nn.fit(
        model,
        nn.F.binary_cross_entropy,
        nn.optim.SGD(model.parameters(), lr=1e-9),
        (probs, LABELS),
        epochs=1,
        batch_size=len(SCORES),
        progress=False,
    )
    assert history["accuracy"] == [1.0]
    assert nn.evaluate(_identity_scorer(), probs, LABELS, nn.BCELoss())[1] == 1.0
    # Two columns: argmax, for integer labels and for one-hot rows alike.
    two = np.hstack([-SCORES, SCORES])
    labels = LABELS[:, 0].astype(np.int64)
    assert nn.evaluate(_identity_scorer(2), two, labels, nn.F.cross_entropy)[1] == 1.0
    onehot = np.eye(2, dtype=np.float32)[labels]
    assert nn.evaluate(_identity_scorer(2), two, onehot, nn.F.mse_loss)[1] == 1.0


def test_regression_targets_get_no_accuracy_and_no_error_threshold():
    """Found in the adversarial review of nn."""
    x, y = nn.data.make_regression(64, seed=0)
    x, y = x.astype(np.float32), y.astype(np.float32)
    model = nn.MLP(x.shape[1], [4], y.shape[1], rng=0)
    opt = nn.optim.SGD(model.parameters(), lr=0.01)
    history = nn.fit(model, nn.F.mse_loss, opt, (x, y), epochs=2, val_data=(x, y), progress=False)
    assert history["accuracy"] == [] and history["val_accuracy"] == []
    assert len(history["loss"]) == 2 and len(history["val_loss"]) == 2
    loss, metric = nn.evaluate(model, x, y, nn.F.mse_loss)
    assert loss > 0 and np.isnan(metric)
    with pytest.raises(
        ValueError,
        match=r"fit: error_threshold needs a metric .* the targets "
        r"are not class labels \(float32 of shape \(64, "
        r"1\) with values from -?\d",
    ):
        nn.fit(model, nn.F.mse_loss, opt, (x, y), epochs=2, error_threshold=0.1, progress=False)
    # Integer counts of shape (N, 1) are regressed on too: no accuracy either.
    counts = np.arange(64)[:, None] % 5
    history = nn.fit(
        model,
        lambda out, t: nn.F.mse_loss(out, t.astype(np.float32)),
        opt,
        (x, counts),
        epochs=1,
        progress=False,
    )
    assert history["accuracy"] == []
    # An explicit metric is the caller's: used as given.
    history = nn.fit(
        model,
        nn.F.mse_loss,
        opt,
        (x, y),
        epochs=1,
        progress=False,
        metric=lambda out, t: 0.25,
        error_threshold=0.8,
    )
    assert history["accuracy"] == [0.25] and "error rate" in history.stopped_reason


def test_evaluate_without_a_loss_gives_nan_not_a_perfect_zero():
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    import nn

    model = nn.Linear(2, 2, rng=0)
    x, y = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), np.array([0, 1, 1])
    loss, acc = nn.evaluate(model, x, y)
    assert np.isnan(loss)  # it was 0.0
    expected = float(np.mean(nn.predict(model, x).argmax(1) == y))
    assert acc == pytest.approx(expected)
    loss, _ = nn.evaluate(model, x, y, nn.F.cross_entropy)
    assert loss == pytest.approx(nn.F.cross_entropy(model(x), y).item())


def test_fit_refuses_a_batch_size_its_loader_would_ignore():
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    # fit(..., DataLoader(x, y, batch_size=64), batch_size=128) trained on batches of 64.
    import nn

    x, y = nn.data.make_moons(40, seed=0)
    model = nn.MLP(2, [4], 2, rng=0)
    opt = nn.optim.SGD(model.parameters(), lr=0.1)
    loader = nn.data.DataLoader(x, y, batch_size=8)
    with pytest.raises(
        ValueError,
        match=r"fit: batch_size=16 would be ignored: train_loader "
        r"is a DataLoader with batch_size=8",
    ):
        nn.fit(model, nn.F.cross_entropy, opt, loader, epochs=1, progress=False, batch_size=16)
    steps = []
    history = nn.fit(
        model,
        nn.F.cross_entropy,
        opt,
        loader,
        epochs=1,
        progress=False,
        batch_size=8,
        callbacks=[lambda e, h: steps.append(e)],
    )  # the same: fine
    assert history.epochs == 1 and steps == [1]
    seen = []
    counting = nn.Sequential(nn.Linear(2, 2, rng=0))
    counting.forward = lambda xb: (seen.append(len(xb)), counting.layers[0](xb))[1]
    nn.fit(
        counting,
        nn.F.cross_entropy,
        nn.optim.SGD(counting.parameters(), lr=0.1),
        (x, y),
        epochs=1,
        progress=False,
    )
    assert seen == [40]  # an (x, y) pair: batches of 64 by default, here all 40 at once


ROOT = Path(__file__).resolve().parents[2]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --- threads ----------------------------------------------------------------------------------

# Run in a fresh interpreter with one BLAS thread: the comparison is bit for bit, and BLAS
# thread counts can change the order of additions inside a matrix product.
_THREADS_SCRIPT = textwrap.dedent("""
    import hashlib, json, threading
    import numpy as np
    import autodiff as ad, nn
    from autodiff import Tensor

    def train(seed, steps=40):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(32, 6)).astype(np.float32)
        y = rng.integers(0, 3, size=32)
        model = nn.MLP(6, [12], 3, rng=seed)
        opt = nn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        losses = []
        for _ in range(steps):
            out = model(Tensor(x))
            assert out.requires_grad and ad.is_grad_enabled()
            loss = nn.F.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        digest = hashlib.sha256(b"".join(p.data.tobytes() for p in model.parameters()))
        return {"digest": digest.hexdigest(), "first": losses[0], "last": losses[-1]}

    def infer(stop, report):
        model = nn.MLP(6, [12], 3, rng=9)
        x = Tensor(np.ones((4, 6), np.float32))
        graphs = 0
        count = 0
        while not stop.is_set() or count < 50:
            with ad.no_grad():
                out = model(x)
            graphs += out.requires_grad or bool(out.parents)
            count += 1
        report["inference calls"] = count
        report["graphs recorded under no_grad"] = graphs

    sequential = {seed: train(seed) for seed in (1, 2)}
    threaded, report = {}, {}
    stop = threading.Event()
    reader = threading.Thread(target=infer, args=(stop, report))
    reader.start()
    workers = [threading.Thread(target=lambda s=s: threaded.__setitem__(s, train(s)))
               for s in (1, 2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    reader.join()
    print(json.dumps({"sequential": sequential, "threaded": threaded, "report": report}))
""")


@pytest.mark.slow
def test_memory_stays_flat_over_10000_steps():
    rng = np.random.default_rng(0)
    model = nn.MLP(8, [16], 3, rng=0)
    opt = nn.optim.Adam(model.parameters(), lr=1e-3)
    x = rng.normal(size=(16, 8)).astype(np.float32)
    y = rng.integers(0, 3, size=16)
    losses = []

    def steps(n):
        for _ in range(n):
            loss = nn.F.cross_entropy(model(Tensor(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        losses.append(loss.item())

    # Warm up past the interpreter's own caches: its tuple free lists keep up to 2,000 tuples
    # of each size and fill over the first ~2,000 steps of this loop (how fast depends on the
    # engine's allocation pattern), which is bounded, not a leak.
    steps(3000)
    blocks, rss = sys.getallocatedblocks(), _rss_bytes() if sys.platform == "linux" else 0
    steps(7000)
    # One leaked object per step would show as 7,000 more blocks; allow a little slack for
    # interpreter caches.
    assert sys.getallocatedblocks() - blocks < 500
    if sys.platform == "linux":
        assert _rss_bytes() - rss < 2 * 1024 * 1024
    assert losses[1] < losses[0]  # and it really was training


def test_two_threads_training_match_sequential_runs_bit_for_bit():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    done = subprocess.run(
        [sys.executable, "-c", _THREADS_SCRIPT],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    sequential, threaded = result["sequential"], result["threaded"]
    assert threaded == sequential  # same digests and losses, bit for bit
    assert sequential["1"]["digest"] != sequential["2"]["digest"]
    for run in sequential.values():
        assert run["last"] < 0.5 * run["first"]
    assert result["report"]["graphs recorded under no_grad"] == 0
    assert result["report"]["inference calls"] >= 50
