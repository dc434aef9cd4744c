"""Bugs found by the second hunt, in the function transforms, conv and export; each test failed
before its fix. Reference values come from torch.func / torch.nn.functional in float64."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest

import autodiff as ad
from autodiff import func

Pair = namedtuple("Pair", "value double")


def test_jvp_and_vjp_give_a_namedtuple_result_back_as_that_namedtuple():
    # Was: TypeError "Pair.__new__() missing 1 required positional argument" (the tuple
    # type was called with one generator), for a result check_outputs had accepted.
    x, v = np.array([1.0, 2.0]), np.array([0.5, -1.0])
    out, tangent = ad.jvp(lambda a: Pair(a * a, a * 2), (x,), (v,))
    assert type(out) is Pair and type(tangent) is Pair
    np.testing.assert_allclose(tangent.value.numpy(), 2 * x * v)
    np.testing.assert_allclose(tangent.double.numpy(), 2 * v)
    value, pullback = func.vjp(lambda a: Pair(a * a, a * 2), x)
    assert type(value) is Pair
    np.testing.assert_allclose(value.value, x * x)
    (g,) = pullback(Pair(np.ones(2), np.ones(2)))
    np.testing.assert_allclose(g, 2 * x + 2)


def _dropout_net():
    import nn

    rng = np.random.default_rng(1)
    model = nn.Sequential(
        nn.Linear(3, 6, dtype=np.float64, rng=rng),
        nn.Tanh(),
        nn.Dropout(0.5, rng=np.random.default_rng(1)),
        nn.Linear(6, 1, dtype=np.float64, rng=rng),
    )
    model.train()
    return model


def test_hessian_of_a_module_in_training_mode_is_of_one_dropout_mask():
    # hessian(model) is jacfwd(jacrev(model)): jacfwd replays its f's random state for every
    # column, but its f was the function jacrev returned, so the model's Dropout Generator was
    # not found and each column used another mask: a non-symmetric "Hessian" (entries
    # 0.0140 vs 0.0238 across the diagonal). Now it is the Hessian of one mask: symmetric,
    # and equal to the Hessian of the same network with that mask fixed.
    import nn

    model = _dropout_net()
    x = np.array([[0.3, -0.2, 0.5]])
    h = np.asarray(func.hessian(model)(x)).reshape(3, 3)
    np.testing.assert_allclose(h, h.T, atol=1e-12)
    # The mask the first column drew: the Generator's state now is after one draw.
    mask = np.random.default_rng(1).random((1, 6)) >= 0.5
    lin1, lin2 = model.layers[0], model.layers[3]

    def fixed(a):
        hidden = ad.linear(a, lin1.weight.detach(), lin1.bias.detach()).tanh()
        hidden = hidden * ad.Tensor(mask / 0.5)
        return ad.linear(hidden, lin2.weight.detach(), lin2.bias.detach())

    expected = np.asarray(func.hessian(fixed)(x)).reshape(3, 3)
    np.testing.assert_allclose(h, expected, atol=1e-12)
    # BatchNorm's running statistics move once, as for one call of the model.
    bn = nn.Sequential(
        nn.Linear(3, 4, dtype=np.float64),
        nn.BatchNorm1d(4, dtype=np.float64),
        nn.Linear(4, 1, dtype=np.float64),
    )

    class Total(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, a):
            return self.inner(a).sum()

    func.hessian(Total(bn))(np.random.default_rng(2).standard_normal((5, 3)))
    assert int(np.asarray(bn.layers[1].num_batches_tracked.numpy())) == 1


def test_jacfwd_replays_the_modules_a_lambda_names_and_refuses_what_it_cannot_replay():
    # A lambda calling a Dropout module in training mode: its Generator was not found, so
    # every column had its own mask and jacfwd (and hessian through it) answered silently
    # with a Jacobian of no function (non-symmetric Hessian). Now the modules a function
    # names are replayed as f's own, and a value that still changes between passes (the
    # module reached through another object) is an error.
    import types

    model = _dropout_net()
    x = np.array([[0.3, -0.2, 0.5]])
    jac = np.asarray(func.jacfwd(lambda a: model(a))(x))
    model.layers[2]._rng = np.random.default_rng(1)  # the same mask again, for jacrev
    np.testing.assert_allclose(jac, np.asarray(func.jacrev(lambda a: model(a))(x)), atol=1e-12)
    h = np.asarray(func.hessian(lambda a: model(a).sum())(x)).reshape(3, 3)
    np.testing.assert_allclose(h, h.T, atol=1e-12)

    holder = types.SimpleNamespace(net=_dropout_net())
    with pytest.raises(RuntimeError, match="jacfwd: f gave a different value"):
        func.jacfwd(lambda a: holder.net(a))(x)
    with pytest.raises(RuntimeError, match="jacfwd: f gave a different value"):
        func.hessian(lambda a: holder.net(a).sum())(x)
    # Deterministic in evaluation mode: fine, and as jacrev.
    holder.net.eval()
    np.testing.assert_allclose(
        np.asarray(func.jacfwd(lambda a: holder.net(a))(x)),
        np.asarray(func.jacrev(lambda a: holder.net(a))(x)),
        atol=1e-12,
    )


def test_jacfwd_and_jacobian_of_a_lambda_move_batchnorm_statistics_once():
    # jacfwd(lambda x: model(x)) in training mode updated BatchNorm's running statistics once
    # per column (5 x 3 = 15 times: running_mean 79% of the way to the batch mean instead of
    # 10%), and jacobian's probe once more; now once, as one call of the model.
    import nn

    model = nn.Sequential(nn.Linear(3, 4, dtype=np.float64), nn.BatchNorm1d(4, dtype=np.float64))
    x = np.random.default_rng(2).standard_normal((5, 3))
    func.jacfwd(lambda a: model(a))(x)
    assert int(np.asarray(model.layers[1].num_batches_tracked.numpy())) == 1
    func.jacobian(lambda a: model(a).sum(axis=0))(x)
    assert int(np.asarray(model.layers[1].num_batches_tracked.numpy())) == 2
    hidden = model.layers[0](x).numpy()
    expected = 0.1 * hidden.mean(axis=0)  # from zeros, momentum 0.1, twice the same batch
    expected = 0.9 * expected + 0.1 * hidden.mean(axis=0)
    np.testing.assert_allclose(model.layers[1].running_mean.numpy(), expected, atol=1e-12)


def test_checkpoint_replays_a_named_module_and_refuses_a_recomputation_that_differs():
    # A lambda calling a frozen model in training mode: the forward pass drew one Dropout mask
    # from the module's Generator, the backward pass recomputed f with the next one, and the
    # gradient ([0.0996, -0.1528, -0.1511]) was of another function than the value's
    # ([0.3573, 0.0986, -0.2542]). Now the modules f names are replayed, and a
    # recomputation is checked against the recorded output (a module reached through
    # another object cannot be replayed: an error, not a wrong gradient).
    import types

    model = _dropout_net()
    for p in model.parameters():
        p.requires_grad = False
    x = ad.Tensor(np.array([[0.3, -0.2, 0.5]]), requires_grad=True)
    (g,) = ad.grad(func.checkpoint(lambda a: model(a))(x).sum(), [x])
    model.layers[2]._rng = np.random.default_rng(1)  # the same mask, without checkpoint
    (expected,) = ad.grad(model(x).sum(), [x])
    np.testing.assert_allclose(g.numpy(), expected.numpy(), atol=1e-12)

    holder = types.SimpleNamespace(net=_dropout_net())
    for p in holder.net.parameters():
        p.requires_grad = False
    out = func.checkpoint(lambda a: holder.net(a))(x)
    with pytest.raises(RuntimeError, match="checkpoint: recomputing f gave another value"):
        ad.grad(out.sum(), [x])
    with pytest.raises(RuntimeError, match="checkpoint: recomputing f gave another value"):
        ad.jvp(func.checkpoint(lambda a: holder.net(a)), (x.detach(),), (np.ones((1, 3)),))


def test_weights_stored_big_endian_load_into_the_model(tmp_path):
    # An .npz holding '>f4' weights (same numbers, other byte order) was refused by
    # load_state_dict ("has dtype float32 in the model but >f4 ... model.to_dtype(np.>f4)");
    # now the values are converted to native order and loaded.
    import nn

    model = nn.Linear(3, 2)
    state = {
        k: np.asarray(v).astype(np.asarray(v).dtype.newbyteorder(">"))
        for k, v in model.state_dict().items()
    }
    path = nn.save(state, tmp_path / "w.npz")
    fresh = nn.Linear(3, 2)
    nn.load(path, into=fresh)
    np.testing.assert_array_equal(fresh.weight.numpy(), model.weight.numpy())
    np.testing.assert_array_equal(fresh.bias.numpy(), model.bias.numpy())
    assert fresh.weight.numpy().dtype == np.float32 and fresh.weight.numpy().dtype.isnative
    # Another dtype is still refused.

    with pytest.raises(ValueError, match="dtype float32 in the model but float64"):
        fresh.load_state_dict({k: np.asarray(v, np.float64) for k, v in state.items()})


def test_from_torch_names_a_bfloat16_module():
    # Was torch's TypeError "Got unsupported ScalarType BFloat16", naming neither the module
    # nor what to do; now from_torch names the weight and the conversion.
    import nn

    torch = pytest.importorskip("torch", reason="torch not installed")
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1, dtype=torch.bfloat16)
    )
    with pytest.raises(TypeError, match=r"from_torch: '2'\.weight is torch\.bfloat16.*float\(\)"):
        nn.from_torch(model)
    ours = nn.from_torch(model.float())
    assert ours.layers[2].weight.numpy().dtype == np.float32


def test_checkpoint_recomputation_leaves_batchnorm_statistics_as_one_call_does():
    # checkpoint(model) with a BatchNorm in training mode: the backward pass recomputed the
    # model, which moved the running statistics a second time (num_batches_tracked 2 after
    # one step, running_mean twice as far); a jvp through it did the same. Now what the
    # recomputation changes in the modules is put back: the state is as after one call.
    import nn

    def make():
        rng = np.random.default_rng(3)
        return nn.Sequential(
            nn.Linear(3, 4, dtype=np.float64, rng=rng), nn.BatchNorm1d(4, dtype=np.float64)
        )

    data = np.random.default_rng(0).standard_normal((5, 3))
    plain, checked = make(), make()
    x1, x2 = ad.Tensor(data, requires_grad=True), ad.Tensor(data, requires_grad=True)
    (g_plain,) = ad.grad((plain(x1) ** 2).sum(), [x1])
    (g_checked,) = ad.grad((func.checkpoint(checked)(x2) ** 2).sum(), [x2])
    np.testing.assert_allclose(g_checked.numpy(), g_plain.numpy(), atol=1e-12)
    bn_plain, bn_checked = plain.layers[1], checked.layers[1]
    assert int(np.asarray(bn_checked.num_batches_tracked.numpy())) == 1
    np.testing.assert_allclose(
        bn_checked.running_mean.numpy(), bn_plain.running_mean.numpy(), atol=1e-15
    )
    np.testing.assert_allclose(
        bn_checked.running_var.numpy(), bn_plain.running_var.numpy(), atol=1e-15
    )
    ad.jvp(func.checkpoint(checked), (data,), (np.ones((5, 3)),))
    assert int(np.asarray(bn_checked.num_batches_tracked.numpy())) == 2  # one more call


def test_a_bad_argument_is_named_by_the_transform_it_was_given_to():
    # jacfwd, jacobian, hessian and checkpoint let Tensor's own error through ("Tensor:
    # expected numbers, got a string 'abc'"; jacobian even numpy's raw "setting an array
    # element with a sequence" ValueError), and hvp named the inner "jvp"; now each names
    # itself and the argument, as grad, jacrev, vjp and jvp already did.

    calls = {
        "jacfwd": lambda bad: func.jacfwd(lambda a: a)(bad),
        "jacobian": lambda bad: func.jacobian(lambda a: a)(bad),
        "hessian": lambda bad: func.hessian(lambda a: a.sum())(bad),
        "hvp": lambda bad: func.hvp(lambda a: a.sum(), bad, bad),
        "checkpoint": lambda bad: func.checkpoint(lambda a: a)(bad),
    }
    for who, call in calls.items():
        for bad in ("abc", [[1.0], [2.0, 3.0]]):
            with pytest.raises(TypeError, match=f"^{who}: argument 0 is not a number"):
                call(bad)
    np.testing.assert_allclose(
        func.hessian(lambda a: (a**3).sum())([1.0, 2.0]), [[6.0, 0.0], [0.0, 12.0]]
    )


def test_a_function_naming_a_module_class_is_not_taken_for_a_model():
    # The replay of the modules a function names took a module *class* it names for a model
    # and called Linear.modules() unbound (TypeError: missing 'self').
    import nn

    def f(x):
        assert issubclass(nn.Linear, nn.Module)
        return (x * nn.Linear(2, 1).weight.detach().numpy().size).sum()

    def g(x):
        return (x * x).sum() if nn.Linear else x

    np.testing.assert_allclose(func.jacfwd(f)(np.ones(2)), [2.0, 2.0])
    np.testing.assert_allclose(func.grad(func.checkpoint(g))(np.ones(2)), [2.0, 2.0])
    Linear = nn.Linear  # a closure variable holding the class

    np.testing.assert_allclose(
        func.jacfwd(lambda x: x * (Linear is not None))(np.ones(2)), np.eye(2)
    )
    # Nor a torch module it names (its buffers are torch tensors, not ours).
    torch = pytest.importorskip("torch", reason="torch not installed")

    torch_bn = torch.nn.BatchNorm1d(2)
    np.testing.assert_allclose(
        func.jacfwd(lambda x: x * (torch_bn is not None))(np.ones(2)), np.eye(2)
    )


def test_the_value_checks_allow_rounding_but_not_another_function():
    # The checks that jacfwd's passes and checkpoint's recomputation agree with the first
    # evaluation compared bit for bit; a BLAS summing in another order on another call (MKL
    # does, with the arrays' alignment) would then refuse a deterministic function.
    from autodiff.func import _same_value

    a = np.array([1.0, -2.0, 1e-3, np.nan, np.inf])
    assert _same_value(a, a * (1 + 1e-14))  # last-bits noise
    assert not _same_value(a, a * (1 + 1e-4))  # another function
    assert not _same_value(np.array([0.0, 2.0]), np.array([2.0, 0.0]))  # another mask
    f32 = np.array([3.0, 4.0], np.float32)
    assert _same_value(f32, f32 + np.float32(1e-6))
    assert not _same_value(f32, f32.astype(np.float64))
    assert _same_value(np.array([1, 2]), np.array([1, 2]))
    assert not _same_value(np.array([1, 2]), np.array([1, 3]))
    assert not _same_value(np.zeros(2), np.zeros(3))
