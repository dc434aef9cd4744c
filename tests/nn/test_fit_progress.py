"""fit shows one progress bar for the whole run (issue #22), not one per epoch."""

from __future__ import annotations

import numpy as np
import pytest

import nn

tqdm_auto = pytest.importorskip("tqdm.auto")


class _Bar:
    made: list[_Bar] = []

    def __init__(self, *args, **kwargs):
        self.total = kwargs.get("total")
        self.updates = 0
        self.closed = 0
        self.descriptions: list[str] = []
        self.postfixes: list = []
        _Bar.made.append(self)

    def update(self, n=1):
        self.updates += n

    def set_description(self, text, refresh=True):
        self.descriptions.append(text)

    def set_postfix(self, *args, **kwargs):
        self.postfixes.append((args, kwargs))

    def close(self):
        self.closed += 1


@pytest.mark.parametrize("seed", range(5))
def test_one_bar_for_the_run(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    n, batch, epochs = int(rng.integers(5, 60)), int(rng.integers(1, 16)), int(rng.integers(1, 6))
    x = rng.normal(size=(n, 3))
    y = rng.integers(0, 2, size=n)
    _Bar.made = []
    monkeypatch.setattr(tqdm_auto, "tqdm", _Bar)
    model = nn.Linear(3, 2)
    nn.fit(
        model,
        nn.F.cross_entropy,
        nn.optim.SGD(model.parameters(), lr=0.01),
        (x, y),
        epochs=epochs,
        batch_size=batch,
        val_data=(x, y),
    )
    (bar,) = _Bar.made
    steps = epochs * -(-n // batch)
    assert bar.total == steps and bar.updates == steps and bar.closed == 1
    assert bar.descriptions == [f"epoch {e}/{epochs}" for e in range(1, epochs + 1)]


def test_the_bar_is_closed_when_training_stops_with_an_error(monkeypatch):
    _Bar.made = []
    monkeypatch.setattr(tqdm_auto, "tqdm", _Bar)
    x = np.array([[np.nan, 0.0], [1.0, 1.0]])
    model = nn.Linear(2, 2)
    with pytest.raises(FloatingPointError):
        nn.fit(
            model,
            nn.F.cross_entropy,
            nn.optim.SGD(model.parameters(), lr=0.1),
            (x, np.array([0, 1])),
            epochs=3,
        )
    (bar,) = _Bar.made
    assert bar.closed == 1
