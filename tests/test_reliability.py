"""Reliability: anomaly mode, graph freeing, flat memory over long training, threads."""

from __future__ import annotations

import gc
import threading
import tracemalloc
import weakref

import numpy as np
import pytest

import autodiff as ad
import nn
from autodiff import Tensor


def test_anomaly_mode_is_per_thread():
    results = {}

    def other():
        x = Tensor(np.array([0.0]), requires_grad=True)
        with np.errstate(divide="ignore"):
            results["other"] = np.isinf(x.log().data).all()  # no anomaly mode here

    with ad.detect_anomaly():
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        with pytest.raises(FloatingPointError), np.errstate(divide="ignore"):
            Tensor(np.array([0.0]), requires_grad=True).log()
    assert results == {"other": True}


def test_anomaly_mode_reports_the_first_bad_op_only():
    x = Tensor(np.array([-1.0, 4.0]), requires_grad=True)
    with ad.detect_anomaly(), pytest.raises(FloatingPointError) as info, \
            np.errstate(invalid="ignore"):
        y = x.sqrt()  # NaN is born here...
        y * 2  # ...and would propagate here
    assert "pow forward" in str(info.value) and "x.sqrt()" in str(info.value)


def test_optimizer_step_between_forward_and_backward_is_refused():
    model = nn.Linear(3, 1)
    opt = nn.optim.SGD(model.parameters(), lr=0.1)
    loss = model(Tensor(np.ones((2, 3), np.float32))).sum()
    loss.backward()
    opt.step()
    with pytest.raises(RuntimeError, match="linear: a tensor this op saved"):
        loss.backward()  # the weights changed since this graph was built


def test_training_graph_is_freed_every_step():
    model = nn.MLP(4, [8], 2, rng=0)
    opt = nn.optim.SGD(model.parameters(), lr=0.1)
    refs = []
    for _ in range(3):
        out = model(Tensor(np.ones((5, 4), np.float32)))
        loss = nn.F.cross_entropy(out, np.zeros(5, dtype=np.int64))
        opt.zero_grad()
        loss.backward()
        opt.step()
        refs.append(weakref.ref(out))
    del out, loss
    gc.disable()
    try:
        assert all(r() is None for r in refs)  # freed by reference counting: no cycles
    finally:
        gc.enable()


def test_memory_stays_flat_over_10000_steps():
    rng = np.random.default_rng(0)
    model = nn.MLP(8, [16], 3, rng=0)
    opt = nn.optim.Adam(model.parameters(), lr=1e-3)
    x = rng.normal(size=(16, 8)).astype(np.float32)
    y = rng.integers(0, 3, size=16)

    def steps(n):
        for _ in range(n):
            loss = nn.F.cross_entropy(model(Tensor(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

    steps(200)  # warm up caches and optimizer state
    tracemalloc.start()
    steps(1000)
    after_1000 = tracemalloc.get_traced_memory()[0]
    steps(9000)
    after_10000 = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert after_10000 - after_1000 < 64 * 1024, (after_1000, after_10000)


def _train_copy(seed: int, steps: int = 30) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(32, 6)).astype(np.float32)
    y = rng.integers(0, 3, size=32)
    model = nn.MLP(6, [12], 3, rng=seed)
    opt = nn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(steps):
        loss = nn.F.cross_entropy(model(Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.data.copy() for p in model.parameters()]


def test_two_threads_training_match_sequential_runs():
    expected = {seed: _train_copy(seed) for seed in (1, 2)}
    results: dict[int, list[np.ndarray]] = {}
    # A third thread toggles no_grad on and off meanwhile: it must not leak into the others.
    stop = threading.Event()

    def noisy():
        while not stop.is_set():
            with ad.no_grad():
                Tensor(np.ones(3), requires_grad=True) * 2

    threads = [threading.Thread(target=lambda s=s: results.__setitem__(s, _train_copy(s)))
               for s in (1, 2)]
    spoiler = threading.Thread(target=noisy)
    spoiler.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    spoiler.join()
    for seed in (1, 2):
        for a, b in zip(results[seed], expected[seed], strict=True):
            np.testing.assert_array_equal(a, b)


def test_detach_cuts_the_graph():
    x = Tensor(2.0, requires_grad=True)
    y = (x * 3).detach() * x
    y.backward()
    assert x.grad.item() == 6.0  # only the non-detached path


def test_augmented_assignment_is_out_of_place_and_differentiable():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * 3
    before = y
    y += x  # rebinds y to a new node; the old one is untouched
    y *= 2
    assert before.data.tolist() == [3.0, 6.0]
    y.sum().backward()
    assert x.grad.data.tolist() == [8.0, 8.0]


@pytest.mark.parametrize("seed", range(20))
def test_load_state_dict_fuzzed_dicts_fail_cleanly_and_leave_model_intact(seed):
    rng = np.random.default_rng(seed)
    model = nn.MLP(3, [4], 2, rng=0)
    before = model.state_dict()
    names = list(before) + ["bogus", "layers.9.weight"]
    state = {}
    for name in rng.choice(names, size=rng.integers(0, len(names)), replace=False):
        shape = tuple(rng.integers(0, 5, size=rng.integers(0, 3)))
        dtype = rng.choice([np.float32, np.float64, np.int64])
        state[str(name)] = np.zeros(shape, dtype=dtype)
    try:
        model.load_state_dict(state, strict=bool(rng.integers(0, 2)))
    except (KeyError, ValueError) as exc:
        assert "load_state_dict" in str(exc)
        for name, value in model.state_dict().items():
            np.testing.assert_array_equal(value, before[name])  # nothing half-loaded
