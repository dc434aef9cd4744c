"""Learning-rate schedulers against torch.optim.lr_scheduler (issue #22).

Random settings and step counts; at a random step the user sets the rate by hand (the
multiplicative schedules must carry on from it, as PyTorch's do); `get_last_lr()` is a list.
Also: a schedule resumed from state_dict (with the optimizer's own state) continues exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

import nn

torch = pytest.importorskip("torch")
LR = torch.optim.lr_scheduler


def _pair(lr: float, kind: str = "sgd"):
    mine_p = nn.Parameter(np.zeros(2))
    theirs_p = torch.nn.Parameter(torch.zeros(2))
    if kind == "adam":
        return nn.optim.Adam([mine_p], lr=lr), torch.optim.Adam([theirs_p], lr=lr)
    return (
        nn.optim.SGD([mine_p], lr=lr, momentum=0.5),
        torch.optim.SGD([theirs_p], lr=lr, momentum=0.5),
    )


def _settings(name: str, rng: np.random.Generator, steps: int) -> dict:
    if name == "StepLR":
        return dict(step_size=int(rng.integers(1, 6)), gamma=float(rng.uniform(0.1, 0.9)))
    if name == "MultiStepLR":
        marks = sorted(int(m) for m in rng.integers(1, steps + 2, size=rng.integers(1, 5)))
        return dict(milestones=marks, gamma=float(rng.uniform(0.1, 0.9)))
    if name == "ExponentialLR":
        return dict(gamma=float(rng.uniform(0.5, 0.99)))
    if name == "CosineAnnealingLR":
        return dict(T_max=int(rng.integers(1, 12)), eta_min=float(rng.choice([0.0, 1e-3])))
    if name == "LambdaLR":
        a = float(rng.uniform(0.5, 0.99))
        return dict(lr_lambda=lambda t: a**t + 0.01 * (t % 3))
    raise AssertionError(name)


MULTIPLICATIVE = ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LambdaLR"]


@pytest.mark.parametrize("name", MULTIPLICATIVE)
@pytest.mark.parametrize("seed", range(12))
def test_schedules_match_pytorch_with_a_rate_set_by_hand(name, seed):
    rng = np.random.default_rng(seed)
    steps = int(rng.integers(1, 40))
    lr = float(rng.uniform(0.01, 1.0))
    settings = _settings(name, rng, steps)
    mine_opt, theirs_opt = _pair(lr)
    mine = getattr(nn.optim.lr_scheduler, name)(mine_opt, **settings)
    theirs = getattr(LR, name)(theirs_opt, **settings)
    assert mine.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12)
    by_hand = int(rng.integers(0, steps + 1)) if seed % 2 else -1
    for t in range(steps):
        if t == by_hand:
            new = float(rng.uniform(0.01, 1.0))
            mine_opt.lr = new
            for g in theirs_opt.param_groups:
                g["lr"] = new
        theirs_opt.step()
        theirs.step()
        mine.step()
        got = mine.get_last_lr()
        assert isinstance(got, list)
        assert got == pytest.approx(theirs.get_last_lr(), rel=1e-9, abs=1e-15), (t, name)
        assert mine_opt.lr == pytest.approx(theirs_opt.param_groups[0]["lr"], rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("seed", range(12))
def test_reduce_lr_on_plateau_matches_pytorch(seed):
    rng = np.random.default_rng(seed)
    settings = dict(
        mode=str(rng.choice(["min", "max"])),
        factor=float(rng.uniform(0.1, 0.9)),
        patience=int(rng.integers(0, 4)),
        threshold=float(rng.choice([1e-4, 0.05])),
        threshold_mode=str(rng.choice(["rel", "abs"])),
        cooldown=int(rng.integers(0, 3)),
        min_lr=float(rng.choice([0.0, 0.01])),
    )
    mine_opt, theirs_opt = _pair(0.5)
    mine = nn.optim.lr_scheduler.ReduceLROnPlateau(mine_opt, **settings)
    theirs = LR.ReduceLROnPlateau(theirs_opt, **settings)
    # A noisy curve that flattens: plateaus and small improvements both occur.
    values = np.round(np.exp(-np.arange(40) / 8) + rng.normal(scale=0.02, size=40), 3)
    for v in values:
        mine.step(float(v))
        theirs.step(float(v))
        assert mine.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12)


@pytest.mark.parametrize("seed", range(16))
def test_one_cycle_matches_pytorch_rate_and_momentum(seed):
    rng = np.random.default_rng(seed)
    kind = "adam" if seed % 2 else "sgd"
    total = int(rng.integers(2, 60))
    settings = dict(
        max_lr=float(rng.uniform(0.1, 2.0)),
        total_steps=total,
        pct_start=float(rng.uniform(0.1, 0.6)),
        anneal_strategy=str(rng.choice(["cos", "linear"])),
        div_factor=float(rng.uniform(5, 30)),
        final_div_factor=float(rng.choice([1e2, 1e4])),
        three_phase=bool(seed % 3 == 0),
    )
    mine_opt, theirs_opt = _pair(0.1, kind)
    mine = nn.optim.lr_scheduler.OneCycleLR(mine_opt, **settings)
    theirs = LR.OneCycleLR(theirs_opt, **settings)
    key = "betas" if kind == "adam" else "momentum"

    def momentum(group):
        return group[key][0] if kind == "adam" else group[key]

    for _ in range(total - 1):
        assert mine.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-9)
        assert momentum(mine_opt.param_groups[0]) == pytest.approx(
            momentum(theirs_opt.param_groups[0]), rel=1e-9
        )
        theirs_opt.step()
        theirs.step()
        mine.step()
    with pytest.raises(ValueError, match="OneCycleLR: stepped"):
        mine.step()
        mine.step()


@pytest.mark.parametrize("name", MULTIPLICATIVE + ["ReduceLROnPlateau"])
@pytest.mark.parametrize("seed", range(4))
def test_resumed_schedule_continues_exactly(name, seed, tmp_path):
    rng = np.random.default_rng(seed)
    steps = int(rng.integers(4, 30))
    cut = int(rng.integers(1, steps))
    settings = {} if name == "ReduceLROnPlateau" else _settings(name, rng, steps)
    if name == "ReduceLROnPlateau":
        settings = dict(patience=1, factor=0.5)
    values = rng.random(steps)

    def make(p):
        opt = nn.optim.SGD([p], lr=0.3)
        return opt, getattr(nn.optim.lr_scheduler, name)(opt, **settings)

    def step(schedule, t):
        if name == "ReduceLROnPlateau":
            schedule.step(values[t])
        else:
            schedule.step()

    opt, schedule = make(nn.Parameter(np.zeros(2)))
    rates = []
    for t in range(steps):
        step(schedule, t)
        rates.append(schedule.get_last_lr()[0])
    opt, schedule = make(nn.Parameter(np.zeros(2)))
    for t in range(cut):
        step(schedule, t)
    nn.save(opt.state_dict(), tmp_path / "opt.npz")
    nn.save(schedule.state_dict(), tmp_path / "sched.npz")
    opt, schedule = make(nn.Parameter(np.zeros(2)))
    opt.load_state_dict(nn.load(tmp_path / "opt.npz"))
    schedule.load_state_dict(nn.load(tmp_path / "sched.npz"))
    resumed = []
    for t in range(cut, steps):
        step(schedule, t)
        resumed.append(schedule.get_last_lr()[0])
    assert resumed == pytest.approx(rates[cut:], rel=1e-12)


def test_fit_steps_one_cycle_per_batch_and_plateau_on_the_loss():
    x = np.random.default_rng(0).normal(size=(40, 3))
    y = (x.sum(axis=1) > 0).astype(np.int64)
    model = nn.Linear(3, 2)
    opt = nn.optim.SGD(model.parameters(), lr=0.1)
    cycle = nn.optim.OneCycleLR(opt, max_lr=0.5, epochs=3, steps_per_epoch=4)
    nn.fit(
        model,
        nn.F.cross_entropy,
        opt,
        (x, y),
        epochs=3,
        batch_size=10,
        scheduler=cycle,
        progress=False,
    )
    assert cycle.last_epoch == 12
    opt = nn.optim.SGD(model.parameters(), lr=0.1)
    plateau = nn.optim.ReduceLROnPlateau(
        opt, patience=0, factor=0.5, threshold=10.0, threshold_mode="abs"
    )
    nn.fit(model, nn.F.cross_entropy, opt, (x, y), epochs=3, scheduler=plateau, progress=False)
    # threshold=10 (absolute): no epoch is better than the first, so two reductions.
    assert opt.lr == pytest.approx(0.1 * 0.5**2)
