"""Regression tests for bugs found by adversarial testing of nn/ (one test per bug)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import nn
import nn.functional as F
from autodiff import Tensor

# --- losses ------------------------------------------------------------------------------------


def test_nll_loss_refuses_boolean_and_float_labels_by_name():
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


# --- modules -----------------------------------------------------------------------------------


def test_a_weight_made_as_a_plain_tensor_is_flagged_not_silently_dropped():
    # micrograd's habit in a Module, self.w = Tensor(..., requires_grad=True): parameters()
    # and state_dict() leave it out, so it was never trained nor saved, and nothing said so.
    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 2, rng=0)
            self.scale = Tensor(np.ones(2), requires_grad=True)

        def forward(self, x):
            return self.linear(x) * self.scale

    with pytest.warns(
        UserWarning,
        match=r"Scale: attribute 'scale' is a Tensor that requires "
        r"grad, not a Parameter.*nn.Parameter",
    ):
        model = Scale()
    assert [name for name, _ in model.named_parameters()] == ["linear.weight", "linear.bias"]
    # What the warning asks for works, silently; so do constants and results kept around.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.scale = None
        model.scale = nn.Parameter(np.ones(2))
        model.mask = Tensor(np.ones(2))
        model.last = model(Tensor(np.ones((1, 2))))  # not a leaf: an output, not a weight
    assert "scale" in model.state_dict()


# --- optimizers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda p: nn.optim.SGD(p, lr=0.1),
        lambda p: nn.optim.SGD(p, lr=0.1, momentum=0.9),
        lambda p: nn.optim.Adam(p, lr=0.1),
    ],
)
def test_setting_a_bad_learning_rate_is_refused_where_it_is_set(make):
    # opt.lr = "0.01" (a string from argparse) was accepted and failed at the next step deep
    # in numpy ("ufunc 'multiply' did not contain a loop ..."); opt.lr = -5 was accepted and
    # made every step climb the loss. Both are now refused as the constructor refuses them.
    model = nn.Linear(2, 1, rng=0)
    opt = make(model.parameters())
    with pytest.raises(ValueError, match=r"\.lr: lr must be a number, got str '0.01'"):
        opt.lr = "0.01"
    with pytest.raises(ValueError, match=r"\.lr: lr must be a number >= 0, got -5"):
        opt.lr = -5
    with pytest.raises(ValueError, match=r"\.lr: lr must be a number >= 0, got nan"):
        opt.lr = float("nan")
    assert opt.lr == 0.1 and opt.param_groups[0]["lr"] == 0.1
    opt.lr = np.float32(0.5)  # numbers of any kind are fine, kept as a float
    assert opt.lr == 0.5 and type(opt.lr) is float
    opt.lr = 0  # a warm-up from 0 (PyTorch allows it too)
    assert opt.lr == 0.0
    opt.lr = 0.5
    # and the step uses it: plain SGD from zero momentum moves by lr * grad
    model(Tensor(np.ones((1, 2)))).sum().backward()
    before = model.weight.numpy().copy()
    grad = model.weight.grad.numpy().copy()
    opt.step()
    if isinstance(opt, nn.optim.SGD):
        np.testing.assert_allclose(model.weight.numpy(), before - 0.5 * grad, rtol=1e-6)
    else:
        assert not np.array_equal(model.weight.numpy(), before)


def test_load_state_dict_not_strict_reports_what_it_skipped_and_refuses_to_load_nothing(tmp_path):
    # strict=False with names that match nothing (a bare Linear's "weight" into a Sequential's
    # "layers.0.weight") loaded nothing and returned None: the model kept its random weights,
    # silently. Now a state sharing no name is refused, and a partial load returns PyTorch's
    # (missing_keys, unexpected_keys).
    source = nn.Linear(2, 2, rng=0)
    target = nn.Sequential(nn.Linear(2, 2, rng=1))
    before = target[0].weight.numpy().copy()
    with pytest.raises(KeyError, match=r"none of the 2 names .* nothing would load"):
        target.load_state_dict(source.state_dict(), strict=False)
    path = nn.save(source, tmp_path / "linear.npz")
    with pytest.raises(KeyError, match=r"nothing would load"):
        nn.load(path, into=target, strict=False)
    assert np.array_equal(target[0].weight.numpy(), before)
    # A partial load says what it left out, by name.
    state = {"layers.0.weight": source.weight.numpy(), "head.bias": np.zeros(2)}
    result = target.load_state_dict(state, strict=False)
    assert result.missing_keys == ["layers.0.bias"]
    assert result.unexpected_keys == ["head.bias"]
    assert np.array_equal(target[0].weight.numpy(), source.weight.numpy())
    # A strict, complete load has nothing to report.
    assert target.load_state_dict(target.state_dict()) == ([], [])


def test_layer_norm_refuses_an_eps_that_is_not_a_positive_number():
    # LayerNorm(3, eps=-1) was accepted and gave NaN for every row whose variance is under 1
    # (a constant row: sqrt(0 - 1)); eps="a" failed in float() without naming LayerNorm.
    # BatchNorm refused both already; LayerNorm now does the same.
    with pytest.raises(ValueError, match=r"LayerNorm: eps must be a positive number, got -1"):
        nn.LayerNorm(3, eps=-1)
    with pytest.raises(ValueError, match=r"LayerNorm: eps must be a positive number, got 'a'"):
        nn.LayerNorm(3, eps="a")
    with pytest.raises(ValueError, match=r"BatchNorm1d: eps must be a positive number, got nan"):
        nn.BatchNorm1d(3, eps=float("nan"))
    out = nn.LayerNorm(3, eps=1e-5)(Tensor(np.ones((2, 3), np.float32)))
    np.testing.assert_array_equal(out.numpy(), np.zeros((2, 3), np.float32))


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
    # The mean of an empty batch failed with the engine's "mean: no elements to average",
    # naming no loss; it now names the loss and the way out. The sum is still 0.
    name = loss.__name__
    with pytest.raises(ValueError, match=rf"{name}: the batch is empty .*reduction='sum'"):
        loss(Tensor(args[0]), args[1])
    assert loss(Tensor(args[0]), args[1], reduction="sum").item() == 0.0
    assert loss(Tensor(args[0]), args[1], reduction="none").shape == args[0].shape[:1] + (
        args[0].shape[1:] if loss is not F.nll_loss else ()
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda model, x, y: nn.evaluate(model, x, y, F.cross_entropy),
        lambda model, x, y: nn.predict(model, x),
    ],
)
def test_evaluate_and_predict_give_each_sub_module_its_own_mode_back(call):
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


# --- the command line --------------------------------------------------------------------------


def test_cli_out_that_is_a_file_is_a_usage_error_not_a_traceback(tmp_path, capsys):
    # --out naming a file (or a path through one) trained first and then died with a
    # FileExistsError / NotADirectoryError traceback from mkdir; an artifact path that cannot
    # be written (summary.json taken by a folder) died with IsADirectoryError. All three now
    # exit 2 with one line naming the problem.
    from nn.__main__ import main

    afile = tmp_path / "afile"
    afile.write_text("keep me")
    common = ["--dataset", "xor", "--epochs", "1", "--no-plots", "--quiet"]
    for out, says in (
        (afile, f"{afile} is a file, not a folder"),
        (afile / "sub", f"{afile} is a file, not a folder (on the way to"),
    ):
        with pytest.raises(SystemExit) as info:
            main([*common, "--out", str(out)])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "argument --out" in err and says in err and "Traceback" not in err
    assert afile.read_text() == "keep me"
    out = tmp_path / "run"
    (out / "summary.json").mkdir(parents=True)
    with pytest.raises(SystemExit) as info:
        main([*common, "--out", str(out)])
    assert info.value.code == 2
    assert "summary.json" in capsys.readouterr().err


# --- PyTorch bridge ----------------------------------------------------------------------------


def test_the_torch_bridge_keeps_frozen_weights_frozen():
    # Fine-tuning: a backbone frozen with requires_grad False came back trainable from
    # from_torch (and went to PyTorch trainable from to_torch), so it was silently trained.
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    theirs[0].requires_grad_(False)
    theirs[2].bias.requires_grad_(False)
    ours = nn.from_torch(theirs)
    assert [(n, p.requires_grad) for n, p in ours.named_parameters()] == [
        ("layers.0.weight", False),
        ("layers.0.bias", False),
        ("layers.2.weight", True),
        ("layers.2.bias", False),
    ]
    back = nn.to_torch(ours)
    assert [(n, p.requires_grad) for n, p in back.named_parameters()] == [
        ("0.weight", False),
        ("0.bias", False),
        ("2.weight", True),
        ("2.bias", False),
    ]
    # The frozen ones are then left alone by a step here, as they would be there.
    opt = nn.optim.SGD(ours.parameters(), lr=0.1)
    frozen = ours[0].weight.numpy().copy()
    ours(Tensor(np.ones((2, 3), np.float32))).sum().backward()
    opt.step()
    assert np.array_equal(ours[0].weight.numpy(), frozen)
    # BatchNorm and convolutions too.
    bn = torch.nn.BatchNorm1d(3)
    bn.weight.requires_grad_(False)
    assert [p.requires_grad for p in nn.from_torch(bn).parameters()] == [False, True]


def test_loading_a_pytorch_sequential_state_dict_says_why_the_names_differ():
    # torch's Sequential names weights "0.weight", ours "layers.0.weight": the KeyError listed
    # every name as missing and unexpected, without saying that this was the whole story.
    theirs = {"0.weight": np.zeros((2, 3), np.float32), "0.bias": np.zeros(2, np.float32)}
    ours = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(KeyError, match=r"look like PyTorch's nn.Sequential .*nn.from_torch"):
        ours.load_state_dict(theirs)
    # A plain mismatch gets no such hint.
    with pytest.raises(KeyError) as info:
        ours.load_state_dict({"head.weight": np.zeros((2, 3), np.float32)})
    assert "PyTorch" not in str(info.value)


# --- data --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call,says",
    [
        (lambda: nn.data.make_moons(noise=-0.1), r"make_moons: noise is a standard deviation"),
        (lambda: nn.data.make_moons(n=-5), r"make_moons: n must be an int >= 1, got -5"),
        (lambda: nn.data.make_moons(n_samples=1.5), r"make_moons: n must be an int >= 1, got 1.5"),
        (lambda: nn.data.make_spirals(n_classes=0), r"make_spirals: n_classes must be an int >= 1"),
        (lambda: nn.data.make_spirals(noise=float("nan")), r"make_spirals: noise is a standard"),
        (lambda: nn.data.make_regression(n=-1), r"make_regression: n must be an int >= 1, got -1"),
    ],
)
def test_toy_data_sets_name_a_bad_size_or_noise(call, says):
    # These failed inside numpy: "scale < 0", "Number of samples, -3, must be non-negative",
    # "'float' object cannot be interpreted as an integer", "need at least one array to
    # concatenate", "negative dimensions are not allowed" -- naming no generator.
    with pytest.raises(ValueError, match=says):
        call()


def test_toy_data_sets_still_give_the_same_points():
    x, y = nn.data.make_moons(n_samples=7, noise=0.0, random_state=1)
    assert x.shape == (7, 2) and sorted(y.tolist()) == [0, 0, 0, 1, 1, 1, 1]
    # noise 0: every point lies on its arc (upper: centre (0, 0); lower: centre (1, 0.5))
    radius = np.where(y == 0, np.hypot(x[:, 0], x[:, 1]), np.hypot(x[:, 0] - 1, x[:, 1] - 0.5))
    np.testing.assert_allclose(radius, 1.0)
    xs, ys = nn.data.make_spirals(n_per_class=3, n_classes=2, noise=0)
    assert xs.shape == (6, 2) and ys.tolist() == [0, 0, 0, 1, 1, 1]
    xr, yr = nn.data.make_regression(n=5, noise=0, kind="quadratic")
    np.testing.assert_allclose(yr, xr**2)


def test_cross_entropy_with_integer_one_hot_rows_says_what_to_pass():
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


def _stepped(make):
    model = nn.Linear(2, 3, rng=0)
    opt = make(model.parameters())
    model(Tensor(np.ones((1, 2), np.float32))).sum().backward()
    opt.step()
    return model, opt


@pytest.mark.parametrize(
    "make,key,value,says",
    [
        # a 0-d momentum for a (3, 2) weight: accepted, then the next step failed deep in numpy
        (
            lambda p: nn.optim.SGD(p, lr=0.1, momentum=0.9),
            "state.0.momentum",
            np.array(5.0),
            r"'state.0.momentum' has shape \(\), parameter 0 has \(3, 2\)",
        ),
        # an array of step counts: accepted, and Adam's bias correction silently went elementwise
        (
            lambda p: nn.optim.Adam(p),
            "state.0.t",
            np.ones((3, 2), np.int64),
            r"'state.0.t' is a step count",
        ),
        (lambda p: nn.optim.Adam(p), "state.0.t", np.array(2.5), r"'state.0.t' is a step count"),
        (
            lambda p: nn.optim.Adam(p),
            "state.0.m",
            np.ones((3, 2), np.int64),
            r"'state.0.m' has dtype int64",
        ),
        (
            lambda p: nn.optim.Adam(p),
            "state.0.bogus",
            np.ones((3, 2)),
            r"unexpected entry 'state.0.bogus'",
        ),
    ],
)
def test_optimizer_load_state_dict_refuses_buffers_it_would_misuse(make, key, value, says):
    model, opt = _stepped(make)
    state = opt.state_dict()
    state[key] = value
    before = {k: np.array(v, copy=True) for k, v in opt.state_dict().items()}
    with pytest.raises((ValueError, KeyError), match=says):
        opt.load_state_dict(state)
    after = opt.state_dict()  # nothing changed
    assert before.keys() == after.keys()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_optimizer_load_state_dict_refuses_an_incomplete_adam_state():
    # Adam's m without its t: accepted, then step() died with KeyError 't'.
    model, opt = _stepped(lambda p: nn.optim.Adam(p))
    state = opt.state_dict()
    del state["state.0.t"]
    with pytest.raises(KeyError, match=r"state of parameter 0 has \['m', 'v'\], Adam needs"):
        opt.load_state_dict(state)
    # The whole state still round-trips, and the run continues exactly.
    twin, twin_opt = _stepped(lambda p: nn.optim.Adam(p))
    twin_opt.load_state_dict(opt.state_dict())
    for m, o in ((model, opt), (twin, twin_opt)):
        m(Tensor(np.ones((1, 2), np.float32))).sum().backward()
        o.step()
    assert np.array_equal(model.weight.numpy(), twin.weight.numpy())


@pytest.mark.parametrize(
    "entry,value,says",
    [
        ("epoch", np.array(2.7), r"epoch is a count of steps"),
        ("epoch", np.array(-3), r"epoch is a count of steps"),
        ("base_lr", np.array(-0.1), r"base_lr must be a positive number"),
        ("base_lr", np.array([0.1, 0.2]), r"base_lr must be one number"),
    ],
)
def test_step_lr_load_state_dict_refuses_what_it_would_misread(entry, value, says):
    # epoch 2.7 was read as 2 and -3 as -3 (a rate above the base: 0.1 * 0.5**-1 = 0.2), a
    # negative base rate was taken as it was, and an array failed inside float().
    model = nn.Linear(2, 1, rng=0)
    sched = nn.optim.StepLR(nn.optim.SGD(model.parameters(), lr=0.1), step_size=1, gamma=0.5)
    state = {**sched.state_dict(), entry: value}
    with pytest.raises(ValueError, match=says):
        sched.load_state_dict(state)
    assert sched.epoch == 0 and sched.base_lr == 0.1
    sched.load_state_dict({"epoch": np.array(2), "base_lr": np.array(0.1)})
    sched.step()
    # As PyTorch's StepLR: step 3 multiplies the optimizer's current rate (0.1) by gamma.
    assert sched.get_last_lr() == [pytest.approx(0.1 * 0.5)]


def test_optimizer_given_the_parameters_method_itself_says_to_call_it():
    # SGD(model.parameters, lr=0.1), the parentheses forgotten, failed with "'method' object
    # is not iterable", naming neither the optimizer nor the fix.
    model = nn.Linear(2, 2, rng=0)
    with pytest.raises(
        TypeError,
        match=r"SGD: params is the function parameters itself.*"
        r"SGD\(model.parameters\(\), lr=...\)",
    ):
        nn.optim.SGD(model.parameters, lr=0.1)
    with pytest.raises(TypeError, match=r"AdamW: params is the function parameters itself"):
        nn.optim.AdamW(model.parameters)
    assert len(nn.optim.SGD(model.parameters(), lr=0.1).params) == 2
    assert len(nn.optim.SGD(iter(model.parameters()), lr=0.1).params) == 2  # any iterable


def test_a_module_whose_init_skipped_super_still_works():
    # Forgetting super().__init__() in a custom Module worked until something read .training
    # (evaluate, predict), which then said only "'Net' module has no attribute 'training'".
    # Module.__init__ sets nothing else, so a class default makes such a module whole.
    class Net(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2, rng=0)

        def forward(self, x):
            return self.fc(x)

    net = Net()
    x = np.ones((3, 2))
    np.testing.assert_allclose(nn.predict(net, x).data, nn.predict(net.fc, x).data)
    assert net.training and len(net.parameters()) == 2
    net.eval()
    assert not net.training and not net.fc.training and Net().training
    with pytest.raises(AttributeError) as info:
        nn.Linear(2, 2).wieght  # noqa: B018
    assert "'wieght'" in str(info.value) and info.value.name == "wieght"


def test_load_mnist_finds_files_under_kaggles_names(tmp_path, monkeypatch, mnist_dir):
    # Kaggle's MNIST names its files "train-images.idx3-ubyte" (a dot, not a hyphen, before
    # idx): load_mnist said "not found" offline (and downloaded new copies online), though
    # the user's files were the right ones. They are now found and, as always, verified.
    import gzip
    import shutil

    src = mnist_dir
    monkeypatch.setenv("AUTODIFF_OFFLINE", "1")
    monkeypatch.delenv("AUTODIFF_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for i, name in enumerate(nn.data.MNIST_FILES):
        kaggle = name.replace("-idx", ".idx")
        if i % 2:  # raw and gzipped, both under the dotted name
            (tmp_path / kaggle).write_bytes(gzip.decompress((src / f"{name}.gz").read_bytes()))
        else:
            shutil.copy(src / f"{name}.gz", tmp_path / f"{kaggle}.gz")
    (x, y), (xt, yt) = nn.data.load_mnist(tmp_path, download=False)
    assert x.shape == (60000, 784) and yt.shape == (10000,)
    assert yt[:5].tolist() == [7, 2, 1, 0, 4]
    # A damaged file under that name is still refused by its checksum, naming it.
    bad = tmp_path / "t10k-labels.idx1-ubyte"
    data = bytearray(bad.read_bytes())
    data[100] ^= 1
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"t10k-labels.idx1-ubyte is corrupt: checksum"):
        nn.data.load_mnist(tmp_path, download=False)


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


def test_two_weights_under_one_name_are_refused_not_half_saved(tmp_path):
    # A dict attribute whose keys join to the same dotted name ({1: a, "1": b}) gave four
    # parameters to optimizers but a state dict of two: nn.save silently lost one layer,
    # and load_state_dict filled only one of them.
    class Heads(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = {1: nn.Linear(2, 2, rng=0), "1": nn.Linear(2, 2, rng=1)}

    model = Heads()
    assert len(model.parameters()) == 4
    with pytest.raises(
        ValueError,
        match=r"state_dict: Heads has several tensors named "
        r"\['heads.1.bias', 'heads.1.weight'\]",
    ):
        model.state_dict()
    with pytest.raises(ValueError, match=r"several tensors named"):
        nn.save(model, tmp_path / "heads.npz")
    assert not (tmp_path / "heads.npz").exists()
    with pytest.raises(ValueError, match=r"load_state_dict: Heads has several tensors"):
        model.load_state_dict({"heads.1.weight": np.zeros((2, 2), np.float32)}, strict=False)


def test_fit_takes_one_callback_alone_and_checks_callbacks_before_training():
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


def test_module_zero_grad_to_zeros_leaves_frozen_weights_without_a_gradient():
    # model.zero_grad(set_to_none=False) gave frozen weights a zero gradient, so AdamW's
    # weight decay (and SGD's, and momentum) moved them every step though they were frozen.
    # PyTorch leaves a frozen weight's gradient None there.
    model = nn.Sequential(nn.Linear(2, 2, rng=0), nn.Linear(2, 1, rng=1))
    model[0].requires_grad_(False)
    opt = nn.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.1)
    frozen = model[0].weight.numpy().copy()
    trained = model[1].weight.numpy().copy()
    for _ in range(3):
        model.zero_grad(set_to_none=False)
        assert model[0].weight.grad is None
        model(Tensor(np.ones((3, 2), np.float32))).sum().backward()
        opt.step()
    assert np.array_equal(model[0].weight.numpy(), frozen)
    assert not np.array_equal(model[1].weight.numpy(), trained)
    model.zero_grad(set_to_none=False)  # trainable ones still get zeros of their dtype
    assert model[1].weight.grad.dtype == np.float32
    np.testing.assert_array_equal(model[1].weight.grad.numpy(), np.zeros((1, 2)))


def test_a_float_dtype_mismatch_on_load_says_how_to_convert():
    # A float64 state (a PyTorch .double() model, numpy's default) into our float32 model was
    # refused without a way forward (PyTorch converts silently; we keep refusing, and say how).
    model = nn.Linear(2, 2, rng=0)
    state = {k: v.astype(np.float64) for k, v in model.state_dict().items()}
    with pytest.raises(
        ValueError,
        match=r"float32 in the model but float64 in the state dict "
        r"\(convert the model first, "
        r"model.to_dtype\(np.float64\)",
    ):
        model.load_state_dict(state)
    model.to_dtype(np.float64).load_state_dict(state)  # what it suggests works
    assert model.weight.dtype == np.float64


def test_cli_save_and_export_may_go_into_the_out_folder_the_run_makes(tmp_path):
    # `--out runs/a --save runs/a/w.npz` on a first run was refused ("--save: folder runs/a
    # does not exist") though the run makes runs/a before it saves anything.
    from nn.__main__ import main

    out = tmp_path / "runs" / "a"
    assert (
        main(
            [
                "--dataset",
                "xor",
                "--epochs",
                "1",
                "--no-plots",
                "--quiet",
                "--out",
                str(out),
                "--save",
                str(out / "w.safetensors"),
                "--export",
                str(out / "w2.safetensors"),
            ]
        )
        == 0
    )
    saved = nn.load(out / "w.safetensors")
    assert saved.keys() == nn.load(out / "w2.safetensors").keys()
    assert all(np.array_equal(saved[k], v) for k, v in nn.load(out / "w2.safetensors").items())


def test_cli_save_into_a_missing_folder_elsewhere_is_still_refused(tmp_path, capsys):
    from nn.__main__ import main

    with pytest.raises(SystemExit) as info:
        main(
            [
                "--dataset",
                "xor",
                "--out",
                str(tmp_path / "out"),
                "--save",
                str(tmp_path / "elsewhere" / "w.npz"),
            ]
        )
    assert info.value.code == 2
    assert (
        f"argument --save: folder {tmp_path / 'elsewhere'} does not exist"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()  # refused before anything was made


def test_optimizer_zero_grad_with_zeros_leaves_frozen_weights_alone():
    # The optimizer's zero_grad(set_to_none=False) gave frozen weights zero gradients, so
    # weight decay and momentum moved them (Module.zero_grad was fixed the same way).
    m = nn.Sequential(nn.Linear(2, 2, rng=0), nn.Linear(2, 1, rng=1))
    m[0].requires_grad_(False)
    opt = nn.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    w0 = m[0].weight.numpy().copy()
    w1 = m[1].weight.numpy().copy()
    for _ in range(3):
        opt.zero_grad(set_to_none=False)
        assert m[0].weight.grad is None
        m(Tensor(np.ones((3, 2), np.float32))).sum().backward()
        opt.step()
    np.testing.assert_array_equal(m[0].weight.numpy(), w0)
    assert not np.array_equal(m[1].weight.numpy(), w1)  # the trainable layer did move
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(m[1].weight.grad.data, np.zeros((1, 2)))
