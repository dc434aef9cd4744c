"""fit(): stopping rules, histories, per-sample updates, and real MNIST accuracy."""

from __future__ import annotations

import numpy as np
import pytest

import nn
from nn import functional as F


def _xor_setup(seed=1):
    x, y = nn.data.make_xor()
    model = nn.MLP(2, [2], 1, activation="sigmoid", output_activation="sigmoid",
                   dtype=np.float64, rng=seed)
    return model, nn.optim.SGD(model.parameters(), lr=2.0), x, y


def test_xor_learns_all_four_points():
    model, opt, x, y = _xor_setup()
    history = nn.fit(model, F.mse_loss, opt, (x, y), epochs=4000, batch_size=4,
                     progress=False)
    out = nn.predict(model, x).ravel()
    assert ((out > 0.5) == (y.ravel() > 0.5)).all()
    assert history["loss"][-1] < history["loss"][0] / 10


def test_max_epochs_rule():
    model, opt, x, y = _xor_setup()
    history = nn.fit(model, F.mse_loss, opt, (x, y), epochs=7, progress=False)
    assert history.epochs == 7 and "maximum of 7 epochs" in history.stopped_reason


def test_loss_threshold_rule():
    model, opt, x, y = _xor_setup()
    history = nn.fit(model, F.mse_loss, opt, (x, y), epochs=5000, loss_threshold=0.05,
                     progress=False)
    assert history["loss"][-1] < 0.05 <= history["loss"][-2]
    assert "loss" in history.stopped_reason and history.epochs < 5000


def test_error_threshold_rule():
    model, opt, x, y = _xor_setup()
    history = nn.fit(model, F.mse_loss, opt, (x, y), epochs=5000, error_threshold=0.01,
                     progress=False)
    assert history["accuracy"][-1] == 1.0 and "error rate" in history.stopped_reason


def test_update_threshold_rule():
    model, opt, x, y = _xor_setup()
    history = nn.fit(model, F.mse_loss, opt, (x, y), epochs=20000, update_threshold=1e-4,
                     progress=False)
    assert history["max_update"][-1] < 1e-4 <= max(history["max_update"])
    assert "weight update" in history.stopped_reason


def test_per_sample_updates_and_callbacks():
    model, opt, x, y = _xor_setup()
    seen = []
    history = nn.fit(model, F.mse_loss, opt, nn.data.DataLoader(x, y, batch_size=1,
                     shuffle=True, seed=0), epochs=3, progress=False,
                     callbacks=[lambda epoch, h: seen.append((epoch, len(h["loss"])))])
    assert seen == [(1, 1), (2, 2), (3, 3)] and history.epochs == 3


def test_validation_history_and_evaluate_restores_mode():
    (x, y), (xt, yt) = nn.data.load_mini_mnist()
    model = nn.Sequential(nn.Linear(784, 32, rng=0), nn.ReLU(), nn.Dropout(0.1, rng=0),
                          nn.Linear(32, 10, rng=1))
    history = nn.fit(model, F.cross_entropy, nn.optim.SGD(model.parameters(), lr=0.1),
                     (x[:1000], y[:1000]), epochs=2, val_data=(xt, yt), progress=True)
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
