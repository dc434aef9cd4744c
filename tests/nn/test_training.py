"""fit(): stopping rules, histories, per-sample updates, and real MNIST accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nn
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
