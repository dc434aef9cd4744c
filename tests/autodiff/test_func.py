"""autodiff.func: the function transforms, by exact values, against each other and against
torch.func (when torch is installed)."""

from __future__ import annotations

import tracemalloc
from collections import namedtuple

import numpy as np
import pytest

import autodiff as ad
import nn
from autodiff import Tensor, func
from autodiff import func as F
from autodiff.func import (
    checkpoint,
    elementwise_grad,
    grad,
    grad_and_aux,
    hessian,
    hvp,
    jacfwd,
    jacobian,
    jacrev,
    jvp,
    value_and_grad,
    vjp,
)
from autodiff.testing import check_jvp, check_vjp, gradcheck
from tests.oracle import torch_if_installed

RNG = np.random.default_rng(0)
W = RNG.standard_normal((4, 3))
B = RNG.standard_normal(4)


def layer(x):  # R^3 -> R^4, through several primitives
    return (Tensor(W) @ x + Tensor(B)).tanh() * x.sum()


def energy(x):  # R^3 -> R
    return (x**3).sum() + (x[0] * x[1]).exp() + (x * x).sum().log()


X = np.array([0.3, -0.7, 1.1])


# --- kinds in, kinds out ----------------------------------------------------------------------


def test_grad_of_a_python_function_of_a_number():
    df = grad(lambda x: x**3)
    assert df(2.0) == 12.0 and isinstance(df(2.0), float)
    assert grad(df)(2.0) == 12.0  # 6x
    assert grad(grad(df))(2.0) == 6.0


def test_results_come_back_in_the_kind_of_the_arguments():
    f = grad(lambda x: (x * x).sum())
    assert isinstance(f(np.array([1.0, 2.0])), np.ndarray)
    t = f(Tensor([1.0, 2.0]))
    assert isinstance(t, Tensor)
    np.testing.assert_array_equal(t.data, [2.0, 4.0])
    np.testing.assert_array_equal(f([1.0, 2.0]), [2.0, 4.0])  # a list is one vector


def test_argnums_and_value_and_grad():
    def f(x, y):
        return (x * y * y).sum()

    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    gx, gy = grad(f, argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, y * y)
    np.testing.assert_array_equal(gy, 2 * x * y)
    value, gy_only = value_and_grad(f, argnums=1)(x, y)
    assert value == 41.0
    np.testing.assert_array_equal(gy_only, 2 * x * y)
    np.testing.assert_array_equal(grad(f, argnums=-1)(x, y), 2 * x * y)


def test_grad_and_aux_returns_the_aux_untouched():
    g, aux = grad_and_aux(lambda x: ((x * x).sum(), {"norm": float(np.sqrt((x.data**2).sum()))}))(
        np.array([3.0, 4.0])
    )
    np.testing.assert_array_equal(g, [6.0, 8.0])
    assert aux == {"norm": 5.0}
    (value, aux2), g2 = value_and_grad(lambda x: (x.sum(), "tag"), has_aux=True)(1.0)
    assert value == 1.0 and aux2 == "tag" and g2 == 1.0


def test_elementwise_grad_is_the_derivative_at_every_point():
    xs = np.linspace(-2, 2, 9)
    np.testing.assert_allclose(elementwise_grad(lambda x: x.tanh())(xs), 1 - np.tanh(xs) ** 2)


def test_vjp_pullback_can_be_called_many_times():
    out, pullback = vjp(layer, X)
    np.testing.assert_allclose(out, layer(Tensor(X)).data)
    rows = np.stack([pullback(e)[0] for e in np.eye(4)])
    np.testing.assert_allclose(rows, jacfwd(layer)(X), atol=1e-12)
    with pytest.raises(
        ValueError,
        match=r"vjp: cotangent 0 has shape \(3,\) but output 0 has "
        r"shape \(4,\)",
    ):
        pullback(np.ones(3))


def test_vjp_of_several_outputs():
    (a, b), pullback = vjp(lambda x, y: (x * y, x + y), np.array([1.0, 2.0]), np.array([3.0, 5.0]))
    np.testing.assert_array_equal(a, [3.0, 10.0])
    gx, gy = pullback((np.ones(2), np.ones(2)))
    np.testing.assert_array_equal(gx, [4.0, 6.0])
    np.testing.assert_array_equal(gy, [2.0, 3.0])


def test_a_constant_function_has_zero_derivatives():
    assert grad(lambda x: 3.0)(2.0) == 0.0
    np.testing.assert_array_equal(grad(lambda x: Tensor(1.0) + 0 * 0)(np.ones(2)), [0, 0])
    np.testing.assert_array_equal(
        jacrev(lambda x: Tensor(np.ones(2)))(np.ones(3)), np.zeros((2, 3))
    )


# --- Jacobians and Hessians -------------------------------------------------------------------


def test_jacrev_and_jacfwd_agree_and_have_output_then_input_shape():
    jr, jf = jacrev(layer)(X), jacfwd(layer)(X)
    assert jr.shape == jf.shape == (4, 3)
    np.testing.assert_allclose(jr, jf, atol=1e-12)
    m = np.arange(6.0).reshape(2, 3) / 6

    def matrix_fn(a):
        return (a @ a.T).tanh()

    assert jacrev(matrix_fn)(m).shape == (2, 2, 2, 3)
    np.testing.assert_allclose(jacrev(matrix_fn)(m), jacfwd(matrix_fn)(m), atol=1e-12)


def test_jacobian_picks_the_cheaper_mode(monkeypatch):
    import autodiff.func as func

    calls = []
    real_rev, real_fwd = func._jacrev, func._jacfwd
    monkeypatch.setattr(func, "_jacrev", lambda *a: calls.append("rev") or real_rev(*a))
    monkeypatch.setattr(func, "_jacfwd", lambda *a: calls.append("fwd") or real_fwd(*a))
    wide = jacobian(lambda x: x.sum(keepdims=True))(np.ones(5))  # 1 output, 5 inputs
    tall = jacobian(lambda x: x * Tensor(np.ones((6, 1))))(np.ones(2))  # 12 outputs, 2 inputs
    assert calls == ["rev", "fwd"]
    # f is only ever given Tensors (the probe for the output size included).
    np.testing.assert_allclose(jacobian(lambda x: x.tanh())(np.zeros(2)), np.eye(2))
    np.testing.assert_array_equal(wide, np.ones((1, 5)))
    assert tall.shape == (6, 2, 2)


def test_hessian_exact():
    h = hessian(lambda x: (x[0] ** 2) * x[1] + x[1] ** 3)(np.array([1.0, 2.0]))
    np.testing.assert_allclose(h, [[4.0, 2.0], [2.0, 12.0]])
    # With respect to the second argument only: d^2/dy^2 (x y^3) = 6 x y.
    assert hessian(lambda x, y: x * y**3, argnums=1)(2.0, 3.0) == 36.0
    with pytest.raises(ValueError, match="hessian: argnums must be one int"):
        hessian(lambda x, y: x * y, argnums=(0, 1))


def test_hvp_both_ways_equals_hessian_times_v():
    v = np.array([1.0, -2.0, 0.5])
    expected = hessian(energy)(X) @ v
    np.testing.assert_allclose(hvp(energy, X, v), expected, rtol=1e-10)
    np.testing.assert_allclose(hvp(energy, X, v, mode="reverse-over-forward"), expected, rtol=1e-10)
    with pytest.raises(ValueError, match="hvp: mode must be"):
        hvp(energy, X, v, mode="sideways")


def test_grad_through_jvp_and_jvp_through_grad():
    # reverse over forward: d/dx of the directional derivative <grad f, v> is H v.
    v = np.array([0.0, 1.0, 0.0])
    rev_fwd = grad(lambda x: jvp(energy, (x,), (v,))[1])(X)
    fwd_rev = jvp(grad(energy), (X,), (v,))[1]
    np.testing.assert_allclose(rev_fwd, hessian(energy)(X)[:, 1], rtol=1e-10)
    np.testing.assert_allclose(fwd_rev.data, rev_fwd, rtol=1e-10)


def test_no_perturbation_confusion():
    # d/dx [x * d/dy (x * y)] = d/dx [x^2] = 2x, not 4x (Siskind and Pearlmutter's example).
    assert grad(lambda x: x * grad(lambda y: x * y)(x))(3.0) == 6.0


def test_grad_of_grad_under_an_outer_parameter():
    # The inner gradient depends on a parameter that requires grad: the outer gradient
    # (meta-learning style) must flow through the inner one.
    w = Tensor(2.0, requires_grad=True)
    inner = grad(lambda x: w * x * x)(Tensor(3.0))  # 2 w x = 12
    assert inner.item() == 12.0
    (dw,) = ad.grad(inner, [w])
    assert dw.item() == 6.0  # 2x


def test_grad_needs_a_scalar_and_floats():
    with pytest.raises(ValueError, match=r"grad: f must return a scalar.*\(3,\)"):
        grad(lambda x: x * 2)(np.ones(3))
    with pytest.raises(TypeError, match="grad: argument 0 has dtype int64"):
        grad(lambda x: x.sum())(np.arange(3))
    with pytest.raises(ValueError, match="argnums 2 out of range for 1 arguments"):
        grad(lambda x: x, argnums=2)(1.0)
    with pytest.raises(TypeError, match="with has_aux=True, f must return a pair"):
        grad_and_aux(lambda x: x)(1.0)


@pytest.mark.parametrize("transform", ["jacrev", "jacfwd", "jacobian"])
def test_jacobians_match_torch_func(torch, transform):
    t = torch
    ours = {"jacrev": jacrev, "jacfwd": jacfwd, "jacobian": jacobian}[transform](layer)(X)
    tw, tb = t.tensor(W), t.tensor(B)
    theirs = t.func.jacrev(lambda x: t.tanh(tw @ x + tb) * x.sum())(t.tensor(X))
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-10, atol=1e-12)


def test_hessian_matches_torch_func(torch):
    t = torch
    ours = hessian(energy)(X)
    theirs = t.func.hessian(lambda x: (x**3).sum() + t.exp(x[0] * x[1]) + t.log((x * x).sum()))(
        t.tensor(X)
    )
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-10)
    np.testing.assert_allclose(ours, ours.T, rtol=1e-12)  # symmetric, as a Hessian must be


def test_mlp_hessian_vector_product_matches_torch(torch):
    t = torch
    rng = np.random.default_rng(1)
    w1, w2 = rng.standard_normal((5, 3)), rng.standard_normal((2, 5))
    x, labels = rng.standard_normal((4, 3)), np.array([0, 1, 1, 0])
    v = rng.standard_normal(w1.shape)

    def loss(a):
        return ad.softmax_cross_entropy(
            ad.linear(ad.linear(Tensor(x), a).tanh(), Tensor(w2)), labels
        )

    def torch_loss(a):
        h = t.tanh(t.tensor(x) @ a.T) @ t.tensor(w2).T
        return t.nn.functional.cross_entropy(h, t.tensor(labels))

    ours = hvp(loss, w1, v)
    _, theirs = t.func.jvp(t.func.grad(torch_loss), (t.tensor(w1),), (t.tensor(v),))
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-9, atol=1e-12)


# --- the testing kit ------------------------------------------------------------------------


def test_check_jvp_and_check_vjp_pass_and_catch_a_wrong_rule(monkeypatch):
    assert check_jvp(layer, X) and check_vjp(layer, X)
    assert gradcheck(layer, X, modes=("rev", "fwd"), order=2)
    from autodiff import ops

    monkeypatch.setattr(ops.tanh, "jvps", (lambda t, out, x: t * out,))  # wrong: d tanh = 1-y^2
    with pytest.raises(AssertionError, match="check_jvp: projection"):
        check_jvp(layer, X)
    with pytest.raises(AssertionError, match="forward mode"):
        gradcheck(layer, X, modes=("fwd",))
    assert check_vjp(layer, X)  # reverse mode untouched
    with pytest.raises(ValueError, match="gradcheck: modes must be"):
        gradcheck(layer, X, modes=("sideways",))


def test_check_jvp_scales_to_a_big_tensor():
    big = np.random.default_rng(2).standard_normal((300, 300))
    assert check_jvp(lambda a: (a @ a).tanh(), big, rtol=1e-3)


# --- checkpoint -------------------------------------------------------------------------------


def test_checkpoint_gives_the_same_gradients_and_derivatives():
    rng = np.random.default_rng(3)
    w = Tensor(rng.standard_normal((4, 4)), requires_grad=True)
    x = Tensor(rng.standard_normal((3, 4)), requires_grad=True)

    def block(a, b):
        return (a @ b).tanh() @ b

    plain = ad.grad(block(x, w).sum(), [x, w])
    saved = ad.grad(checkpoint(block)(x, w).sum(), [x, w])
    for p, s in zip(plain, saved, strict=True):
        np.testing.assert_allclose(s.data, p.data, rtol=1e-12)
    assert gradcheck(checkpoint(block), x.data, w.data, modes=("rev", "fwd"), order=2)


def test_checkpoint_of_a_module_finds_its_parameters():
    model = nn.MLP(3, [8, 8], 2, activation="tanh", dtype=np.float64, rng=0)
    x = Tensor(np.random.default_rng(4).standard_normal((5, 3)))
    model(x).sum().backward()
    expected = [p.grad.data.copy() for p in model.parameters()]
    for p in model.parameters():
        p.zero_grad()
    checkpoint(model)(x).sum().backward()
    for p, e in zip(model.parameters(), expected, strict=True):
        np.testing.assert_allclose(p.grad.data, e, rtol=1e-12)


def test_checkpoint_refuses_a_closed_over_parameter():
    w = Tensor(np.ones(3), requires_grad=True)
    y = checkpoint(lambda a: a * w)(Tensor(np.ones(3), requires_grad=True)).sum()
    with pytest.raises(
        RuntimeError,
        match=r"checkpoint: f uses a tensor of shape \(3,\) that "
        "requires grad but is not an argument",
    ):
        y.backward()


@pytest.mark.slow
def test_checkpoint_keeps_less_memory_on_a_deep_mlp():
    rng = np.random.default_rng(5)
    weights = [Tensor(rng.standard_normal((256, 256)) / 16, requires_grad=True) for _ in range(16)]
    x = Tensor(rng.standard_normal((512, 256)))

    def block(h, *ws):
        for w in ws:
            h = ad.linear(h, w).tanh()
        return h

    def peak(segment: bool) -> int:
        tracemalloc.start()
        h = x
        for i in range(0, 16, 4):
            ws = weights[i : i + 4]
            h = checkpoint(block)(h, *ws) if segment else block(h, *ws)
        h.sum().backward()
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    plain, segmented = peak(False), peak(True)
    # 16 layers keep 32 activations of 1 MiB without checkpoints; 4 segments keep 4 inputs
    # and recompute 4 layers at a time.
    assert segmented < 0.6 * plain, (plain, segmented)
    print(f"peak {plain / 2**20:.1f} MiB plain, {segmented / 2**20:.1f} MiB checkpointed")


@pytest.mark.slow
def test_bench_forward_section_is_written(monkeypatch):
    from types import SimpleNamespace

    from bench import forward as bench_forward

    monkeypatch.setattr(bench_forward, "SIZES", (1, 10, 20))  # small: this checks the table
    ours_only = bench_forward.hvp_candidates  # PyTorch's side: test_mlp_hessian_vector_...
    monkeypatch.setattr(
        bench_forward, "hvp_candidates", lambda x, y: ours_only(x, y, with_torch=False)
    )
    rng = np.random.default_rng(6)
    x, y = rng.random((128, 784)), rng.integers(0, 10, 128)
    lines, ratios = [], {}
    bench_forward.run(SimpleNamespace(quick=True, repeats=1), lines, ratios, x, y)
    text = "\n".join(lines)
    assert "## 6. Forward and reverse mode" in text and "| 20 | 10 |" in text
    assert "forward/jacobian/1x20/rev_over_fwd" in ratios and "forward/hvp_over_grad" in ratios
    assert "| ours, reverse over forward |" in text


def test_readme_forward_mode_examples_run():
    """The README's forward-mode section: its code blocks run and say what they claim."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text.split("## Forward mode, Jacobians and Hessians")[1].split("\n## ")[0]
    blocks = [b.split("```")[0] for b in section.split("```python\n")[1:]]
    assert len(blocks) == 3  # forward mode, the transforms, trees with functional_call
    scope: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), scope)  # noqa: S102 - our own README
    assert scope["dy"].item() == pytest.approx(2 * (1 - np.tanh(1.0) ** 2))
    assert scope["b"].item() == -2.0 and scope["db"].item() == 1.0
    assert scope["value"] == 9.0 and scope["aux"] == "aux"
    assert scope["jacrev"](scope["g"])(scope["x"]).shape == (3, 3, 3)
    assert sorted(scope["grads"]) == sorted(dict(scope["model"].named_parameters()))


def test_checkpoint_never_writes_into_the_callers_input():
    from autodiff.func import checkpoint

    def f(x):
        x += 1  # inside f: under checkpoint's untracked forward this must not reach the input
        return (x * x).sum()

    a = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = a * 1
    checkpoint(f)(h)
    assert h.data.tolist() == [1.0, 2.0]


Pair = namedtuple("Pair", "value double")


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


def test_jvp_and_vjp_give_a_namedtuple_result_back_as_that_namedtuple():
    """Found in hunt round 2 (function transforms, conv and export)."""
    # Was: TypeError "Pair.__new__() missing 1 required positional argument" (the tuple
    # type was called with one generator), for a result check_outputs had accepted.
    x, v = np.array([1.0, 2.0]), np.array([0.5, -1.0])
    out, tangent = ad.jvp(lambda a: Pair(a * a, a * 2), (x,), (v,))
    assert type(out) is Pair and type(tangent) is Pair
    # numpy primals: the tangents come back as arrays (results answer in kind)
    np.testing.assert_allclose(np.asarray(tangent.value), 2 * x * v)
    np.testing.assert_allclose(np.asarray(tangent.double), 2 * v)
    value, pullback = func.vjp(lambda a: Pair(a * a, a * 2), x)
    assert type(value) is Pair
    np.testing.assert_allclose(value.value, x * x)
    (g,) = pullback(Pair(np.ones(2), np.ones(2)))
    np.testing.assert_allclose(g, 2 * x + 2)


def test_hessian_of_a_module_in_training_mode_is_of_one_dropout_mask():
    """Found in hunt round 2 (function transforms, conv and export)."""
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
    """Found in hunt round 2 (function transforms, conv and export)."""
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
    with pytest.raises(RuntimeError, match="hessian: f gave a different value"):
        func.hessian(lambda a: holder.net(a).sum())(x)
    # Deterministic in evaluation mode: fine, and as jacrev.
    holder.net.eval()
    np.testing.assert_allclose(
        np.asarray(func.jacfwd(lambda a: holder.net(a))(x)),
        np.asarray(func.jacrev(lambda a: holder.net(a))(x)),
        atol=1e-12,
    )


def test_jacfwd_and_jacobian_of_a_lambda_move_batchnorm_statistics_once():
    """Found in hunt round 2 (function transforms, conv and export)."""
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
    """Found in hunt round 2 (function transforms, conv and export)."""
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


def test_checkpoint_recomputation_leaves_batchnorm_statistics_as_one_call_does():
    """Found in hunt round 2 (function transforms, conv and export)."""
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

    """Found in hunt round 2 (function transforms, conv and export)."""
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


def test_a_function_naming_a_module_class_is_not_taken_for_a_model(torch):
    """Found in hunt round 2 (function transforms, conv and export)."""
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

    torch_bn = torch.nn.BatchNorm1d(2)
    np.testing.assert_allclose(
        func.jacfwd(lambda x: x * (torch_bn is not None))(np.ones(2)), np.eye(2)
    )


def test_the_value_checks_allow_rounding_but_not_another_function():
    """Found in hunt round 2 (function transforms, conv and export)."""
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


def _np(value):
    return np.asarray(value.data if isinstance(value, Tensor) else value)


# --- Jacobians of a function that draws random numbers ----------------------------------------


def _dropout_model(rng=None):
    import nn

    return nn.Sequential(
        nn.Linear(4, 6, dtype=np.float64, rng=0),
        nn.Dropout(0.5, rng=rng),
        nn.Linear(6, 3, dtype=np.float64, rng=1),
    )


# --- kinks and ties, both modes and second order, against PyTorch -------------------------------

# The tables below name torch's functions when it is installed; their tests take the `torch`
# fixture, so they skip without it.
torch = torch_if_installed()

KINKS = {
    "relu": (lambda t: t.relu(), lambda t: t.relu()),
    "abs": (lambda t: abs(t), lambda t: t.abs()),
    "amax_ties": (lambda t: t.max(axis=1), lambda t: t.amax(1)),
    "amin_ties": (lambda t: t.min(axis=0), lambda t: t.amin(0)),
    "maximum_tie": (lambda t: ad.maximum(t, t[::-1]), lambda t: torch.maximum(t, t.flip(0))),
    "clip_at_bounds": (lambda t: t.clip(-1.0, 1.0), lambda t: t.clamp(-1.0, 1.0)),
    "where_zero": (lambda t: ad.where(t > 0, t * t, -t), lambda t: torch.where(t > 0, t * t, -t)),
    "sqrt_of_square": (lambda t: (t * t + 1.0).sqrt(), lambda t: (t * t + 1.0).sqrt()),
}


# (transform, the call of f that fails): mid-way through each transform
FAILURES = {
    "hessian": (lambda f, x: F.hessian(f)(x), 2),
    "jacfwd": (lambda f, x: F.jacfwd(f)(x), 2),
    "jacrev": (lambda f, x: F.jacrev(f)(x), 1),
    "hvp": (lambda f, x: F.hvp(f, x, x), 1),
    "hvp_rof": (lambda f, x: F.hvp(f, x, x, mode="reverse-over-forward"), 1),
    "explain_forward": (
        lambda f, x: ad.explain_forward(lambda a: f(a) + f(a), (x,), (x,), print_rows=False),
        2,
    ),
    "checkpoint_backward": (lambda f, x: F.grad(lambda a: F.checkpoint(f)(a))(x), 2),
    "checkpoint_jvp": (lambda f, x: ad.jvp(lambda a: F.checkpoint(f)(a), (x,), (x,)), 2),
}


# --- what f may return -------------------------------------------------------------------

BAD_RESULTS = {
    "dict": lambda a: {"y": a * 2},
    "nested_tuple": lambda a: ((a, a * 2), a * 3),
    "none": lambda a: None,
    "string": lambda a: "y",
}


def _inner(a, w):
    return ((a * w).tanh()).sum()


NESTED = {
    "grad_of_grad": (
        lambda x: lambda w: (F.grad(lambda a: _inner(a, w))(x) ** 2).sum(),
        lambda x: lambda w: (torch.func.grad(lambda a: _inner(a, w))(x) ** 2).sum(),
    ),
    "grad_of_jacrev": (
        lambda x: lambda w: F.jacrev(lambda a: (a * w).tanh())(x).sum(),
        lambda x: lambda w: torch.func.jacrev(lambda a: (a * w).tanh())(x).sum(),
    ),
    "grad_of_jacfwd": (
        lambda x: lambda w: F.jacfwd(lambda a: (a * w).tanh())(x).sum(),
        lambda x: lambda w: torch.func.jacfwd(lambda a: (a * w).tanh())(x).sum(),
    ),
    "grad_of_hessian": (
        lambda x: lambda w: F.hessian(lambda a: _inner(a, w))(x).sum(),
        lambda x: lambda w: torch.func.hessian(lambda a: _inner(a, w))(x).sum(),
    ),
    "grad_of_vjp": (
        lambda x: lambda w: F.vjp(lambda a: (a * w).tanh(), x)[1](np.ones(3))[0].sum(),
        lambda x: (
            lambda w: torch.func.vjp(lambda a: (a * w).tanh(), x)[1](
                torch.ones(3, dtype=torch.float64)
            )[0].sum()
        ),
    ),
    "grad_of_hvp": (
        lambda x: lambda w: F.hvp(lambda a: _inner(a, w), x, np.ones(3)).sum(),
        lambda x: (
            lambda w: torch.func.jvp(
                torch.func.grad(lambda a: _inner(a, w)), (x,), (torch.ones(3, dtype=torch.float64),)
            )[1].sum()
        ),
    ),
}


def test_jacfwd_of_several_arguments_given_as_arrays_matches_torch(torch):
    """jacfwd(f, argnums=(0, 1)) passed the argument it was not perturbing as the raw numpy
    array, so f(a, b) = a * b.exp() failed with "'numpy.ndarray' object has no attribute 'exp'"
    (jacrev, and jacfwd of Tensors, gave f Tensors).

    Found in the attack round (forward mode, transforms, conv, export).
    """
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=3), rng.normal(size=3)

    def f(x, y):
        return x * y.exp()

    ours = F.jacfwd(f, (0, 1))(a, b)
    theirs = torch.func.jacfwd(f, (0, 1))(torch.tensor(a), torch.tensor(b))
    assert isinstance(ours, tuple) and len(ours) == 2
    for mine, ref in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mine, ref.numpy(), rtol=1e-12)
    rev = F.jacrev(f, (0, 1))(a, b)
    for mine, other in zip(ours, rev, strict=True):
        np.testing.assert_allclose(mine, other, rtol=1e-12)


def test_jacfwd_of_integers_names_jacfwd():
    """Found in the attack round (forward mode, transforms, conv, export)."""
    with pytest.raises(TypeError, match="jacfwd: argument 0 has dtype int"):
        F.jacfwd(lambda x: x * 2)(np.array([1, 2]))


# --- checkpoint ---------------------------------------------------------------------------------


def test_checkpoint_with_integer_labels_and_a_frozen_parameter():
    """The recomputing backward asked the engine for the gradient of every input, so an
    integer label (or a parameter with requires_grad=False) failed with "grad: input 2
    (shape (2,)) does not require grad".

    Found in the attack round (forward mode, transforms, conv, export).
    """
    import nn

    rng = np.random.default_rng(0)
    x = Tensor(rng.normal(size=(2, 3)))
    labels = np.array([1, 0])
    model = nn.Sequential(
        nn.Linear(3, 4, dtype=np.float64, rng=0),
        nn.Tanh(),
        nn.Linear(4, 4, dtype=np.float64, rng=1),
    )
    model.layers[0].weight.requires_grad_(False)
    w = Tensor(rng.normal(size=(4, 4)), requires_grad=True)

    def loss(features, weight, y):
        return ad.softmax_cross_entropy(features @ weight, y)

    loss(F.checkpoint(model)(x), w, labels).backward()  # a frozen parameter
    F.checkpoint(loss)(model(x), w, labels).backward()  # integer labels
    ours = [p.grad.data.copy() for p in (*model.parameters(), w) if p.requires_grad]
    model.zero_grad()
    w.grad = None
    loss(model(x), w, labels).backward()
    loss(model(x), w, labels).backward()
    expected = [p.grad.data for p in (*model.parameters(), w) if p.requires_grad]
    assert len(ours) == 4
    for mine, ref in zip(ours, expected, strict=True):
        np.testing.assert_allclose(mine, ref, rtol=1e-12)
    # (a tuple of Tensors is a tree checkpoint now returns; a string is still refused)
    with pytest.raises(TypeError, match=r"^checkpoint: f must return a Tensor"):
        F.checkpoint(lambda t: "y")(Tensor(np.ones(2), requires_grad=True))


@pytest.mark.parametrize("own_generator", [False, True])
def test_jacobians_of_a_model_with_dropout_use_one_mask(own_generator):
    """jacfwd runs f once per input element, and each run drew a new Dropout mask, so the
    columns were of different functions (jacfwd differed from jacrev by 0.36); jacobian's
    shape probe drew a mask too, so even when it chose jacrev its answer was not that of a
    jacrev call made in its place. PyTorch's jacfwd refuses randomness; here every pass
    replays the random state the first one started from.

    Found in the attack round (forward mode, transforms, conv, export).
    """
    x = np.linspace(-1.0, 1.0, 4)
    results = []
    for transform in (F.jacrev, F.jacfwd, F.jacobian):
        ad.manual_seed(0)
        model = _dropout_model(np.random.default_rng(7) if own_generator else None)
        results.append(transform(model)(x))
        results.append(model.layers[1]._rng.random())  # the stream is left as one call leaves it
    jac_rev, after_rev, jac_fwd, after_fwd, jac, after = results
    plain = F.jacrev(_dropout_model().eval())(x)
    assert not np.allclose(jac_rev, plain)  # a mask was drawn (else this test tests nothing)
    np.testing.assert_allclose(jac_fwd, jac_rev, rtol=1e-12)
    np.testing.assert_allclose(jac, jac_rev, rtol=1e-12)
    assert after_rev == after_fwd == after


@pytest.mark.parametrize("transform", [F.grad, F.jacrev, F.jacfwd, F.jacobian, F.value_and_grad])
@pytest.mark.parametrize("argnums", [(0, 0), (1, -1)])
def test_an_argument_named_twice_in_argnums_is_refused(transform, argnums):
    """argnums=(0, 0) gave (0, true gradient) from grad and jacrev: the first fresh leaf was
    replaced by the second in the call, so its gradient came back as zeros. torch.func
    refuses ("argnums elements must be unique").

    Found in the attack round (forward mode, transforms, conv, export).
    """

    def f(a, b):
        return (a * a * b).sum()

    with pytest.raises(ValueError, match=r"argnums \(.*\) names an argument twice"):
        transform(f, argnums)(np.array([1.0, 2.0]), np.array([3.0, 4.0]))


@pytest.mark.parametrize("argnums", [True, (0, False), 0.0, np.int64(0), "0"])
def test_argnums_that_are_not_ints_are_refused(argnums):
    """argnums=True was taken as 1 (a bool is an int to Python): the gradient of the wrong
    argument, silently; np.int64(0) failed with "'numpy.int64' object is not iterable".

    Found in the attack round (forward mode, transforms, conv, export).
    """
    with pytest.raises(TypeError, match="grad: argnums must be an int or a tuple of ints"):
        F.grad(lambda a, b: (a * b).sum(), argnums)(np.ones(2), np.ones(2))


@pytest.mark.parametrize("mode", ["forward-over-reverse", "reverse-over-forward"])
def test_hvp_names_itself_for_a_missing_tangent(mode):
    """Found in the attack round (forward mode, transforms, conv, export)."""
    with pytest.raises(ValueError, match="^hvp: 2 primals but 1 tangents"):
        F.hvp(lambda a, b: (a * b).sum(), (np.ones(2), np.ones(2)), (np.ones(2),), mode=mode)


def test_forward_mode_through_a_checkpoint_with_integer_labels():
    """The checkpoint's JVP rule started a jvp level over every input, integer labels too,
    and failed: "checkpoint: primal 2 has dtype int64; forward mode needs floats" (so jvp,
    hvp and hessian of a checkpointed loss with labels could not run).

    Found in the attack round (forward mode, transforms, conv, export).
    """
    rng = np.random.default_rng(0)
    x, w, labels = rng.normal(size=(2, 3)), rng.normal(size=(3, 4)), np.array([1, 3])

    def loss(inputs, weight, y):
        return ad.softmax_cross_entropy((inputs @ weight).tanh(), y)

    v = rng.normal(size=w.shape)
    _, ours = ad.jvp(lambda a: F.checkpoint(loss)(x, a, labels), (w,), (v,))
    _, plain = ad.jvp(lambda a: loss(x, a, labels), (w,), (v,))
    np.testing.assert_allclose(_np(ours), _np(plain), rtol=1e-12)
    np.testing.assert_allclose(
        F.hvp(lambda a: F.checkpoint(loss)(x, a, labels), w, v),
        F.hvp(lambda a: loss(x, a, labels), w, v),
        rtol=1e-10,
    )


@pytest.mark.parametrize("name", sorted(KINKS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kinks_and_ties_match_torch_in_both_modes_and_second_order(torch, name, dtype):
    """Found in the attack round (forward mode, transforms, conv, export)."""
    ours, theirs = KINKS[name]
    x = np.array([[0.0, 1.0, 1.0, -1.0], [-0.0, 2.0, 0.0, 2.0], [1.0, 1.0, -1.0, -1.0]], dtype)
    rng = np.random.default_rng(0)
    v = rng.normal(size=x.shape).astype(dtype)
    tx, tv = torch.tensor(x), torch.tensor(v)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    y, dy = ad.jvp(ours, (x,), (v,))
    ty, tdy = torch.func.jvp(theirs, (tx,), (tv,))
    assert _np(dy).dtype == dtype
    np.testing.assert_allclose(_np(y), ty.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(_np(dy), tdy.numpy(), rtol=tol, atol=tol)
    u = rng.normal(size=np.shape(_np(y))).astype(dtype)
    (g,) = F.vjp(ours, x)[1](u)
    (tg,) = torch.func.vjp(theirs, tx)[1](torch.tensor(u))
    np.testing.assert_allclose(g, tg.numpy(), rtol=tol, atol=tol)

    def scalar(f, lift):
        return lambda t: (f(t) * lift(u)).sum()

    hess = F.hessian(scalar(ours, Tensor))(x)
    expected = torch.autograd.functional.hessian(scalar(theirs, torch.tensor), tx)
    np.testing.assert_allclose(hess, expected.numpy(), rtol=tol, atol=tol)
    hvp = F.hvp(scalar(ours, Tensor), x, v, mode="reverse-over-forward")
    np.testing.assert_allclose(hvp, np.tensordot(expected.numpy(), v, axes=2), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(FAILURES))
@pytest.mark.parametrize("grad_mode", [True, False])
def test_an_exception_inside_a_transform_leaves_no_state_behind(name, grad_mode):
    """Found in the attack round (forward mode, transforms, conv, export)."""
    from autodiff import engine

    transform, fail_at = FAILURES[name]
    calls = {"n": 0}

    def failing(a):
        calls["n"] += 1
        if calls["n"] >= fail_at:
            raise KeyError("inside f")
        return (a**3).sum() + (a**3).sum()

    with ad.set_grad_enabled(grad_mode):
        with pytest.raises(KeyError, match="inside f"):
            transform(failing, np.array([1.0, 2.0]))
        assert engine.state.forward == ()
        assert engine.is_grad_enabled() is grad_mode
    assert engine.is_grad_enabled()


_TRANSFORM_CALLS = {
    "jvp": lambda f, x: ad.jvp(f, (x,), (x,)),
    "vjp": lambda f, x: F.vjp(f, x),
    "grad": lambda f, x: F.grad(f)(x),
    "jacrev": lambda f, x: F.jacrev(f)(x),
    "jacfwd": lambda f, x: F.jacfwd(f)(x),
    "jacobian": lambda f, x: F.jacobian(f)(x),
}
# Dicts and nested tuples are trees now (tests/autodiff/test_trees.py): only grad, whose f
# must give one scalar, still refuses them; None and strings every transform refuses.
_REFUSED = [
    (result, who)
    for who in _TRANSFORM_CALLS
    for result in sorted(BAD_RESULTS)
    if who == "grad" or result not in ("dict", "nested_tuple")
]


@pytest.mark.parametrize("result,who", _REFUSED)
def test_results_that_are_not_tensors_are_refused_by_name(result, who):
    """f returning ((a, 2a), 3a) gave jvp tangents (zeros, 3v): the inner tuple was taken
    for a constant; a dict made grad and jacrev answer zeros (np.size of a dict is 1) and
    jvp fail with "float() argument must be ... not 'dict'".

    Found in the attack round (forward mode, transforms, conv, export).
    """
    with pytest.raises(TypeError, match=f"^{who}: f must return "):
        _TRANSFORM_CALLS[who](BAD_RESULTS[result], np.ones(2))


def test_constant_results_and_flat_tuples_are_still_fine():
    """Found in the attack round (forward mode, transforms, conv, export)."""
    _, tangents = ad.jvp(lambda a: (a * 2, 3.0, np.ones(2)), (np.ones(2),), (np.ones(2),))
    np.testing.assert_array_equal(_np(tangents[0]), [2.0, 2.0])
    np.testing.assert_array_equal(_np(tangents[1]), 0.0)
    np.testing.assert_array_equal(_np(tangents[2]), [0.0, 0.0])
    assert F.grad(lambda a: 3.0)(2.0) == 0.0


# --- differentiating with respect to tangents and cotangents -----------------------------------


def test_pullback_and_hvp_are_differentiable_in_their_direction(torch):
    """vjp's pullback took a Tensor cotangent u as numbers, and hvp exported its products as
    arrays whenever the primals were arrays, so d/du pullback(u) and d/dv hvp(f, x, v) came
    back as zeros, silently (grad of a function that no longer depended on its input).
    PyTorch's pullback is differentiable in u; jvp here already was in its tangent.

    Found in the attack round (forward mode, transforms, conv, export).
    """
    x, u0, v = np.array([0.5, -1.0, 2.0]), np.array([0.3, -0.2, 0.7]), np.array([1.0, 2.0, 3.0])

    def g(a):
        return (a * a[::-1]).tanh()

    def tg(a):
        return (a * a.flip(0)).tanh()

    ours = F.grad(lambda u: (F.vjp(g, x)[1](u)[0] ** 2).sum())(u0)
    theirs = torch.func.grad(lambda u: (torch.func.vjp(tg, torch.tensor(x))[1](u)[0] ** 2).sum())
    np.testing.assert_allclose(ours, theirs(torch.tensor(u0)).numpy(), rtol=1e-12)
    _, tangent = ad.jvp(lambda u: F.vjp(g, x)[1](u)[0], (u0,), (v,))
    _, expected = torch.func.jvp(
        lambda u: torch.func.vjp(tg, torch.tensor(x))[1](u)[0],
        (torch.tensor(u0),),
        (torch.tensor(v),),
    )
    np.testing.assert_allclose(_np(tangent), expected.numpy(), rtol=1e-12)

    def f(a):
        return (a**3).sum() + (a[0] * a[1]).tanh()

    hessian = F.hessian(f)(x)
    for mode in ("forward-over-reverse", "reverse-over-forward"):
        np.testing.assert_allclose(
            F.grad(lambda w, m=mode: F.hvp(f, x, w, mode=m).sum())(v),
            hessian.sum(axis=0),
            rtol=1e-12,
        )
        assert isinstance(F.hvp(f, x, v, mode=mode), np.ndarray)  # arrays in, arrays out


@pytest.mark.parametrize("name", sorted(NESTED))
def test_an_inner_transform_of_arrays_closing_over_the_outer_variable(torch, name):
    """An inner transform called with numpy arrays answered in numpy even when f closed over
    the outer transform's variable w, cutting the chain rule: every outer derivative here was
    silently zero. Its result now stays a Tensor exactly when an enclosing transform
    differentiates something it depends on; at top level arrays still give numpy.

    Found in the attack round (forward mode, transforms, conv, export).
    """
    ours, theirs = NESTED[name]
    x, w = np.array([0.5, -1.0, 2.0]), np.array([1.0, 2.0, 3.0])
    tx, tw = torch.tensor(x), torch.tensor(w)
    np.testing.assert_allclose(
        F.grad(ours(x))(w), torch.func.grad(theirs(tx))(tw).numpy(), rtol=1e-10, atol=1e-12
    )
    _, tangent = ad.jvp(ours(x), (w,), (np.ones(3),))
    _, expected = torch.func.jvp(theirs(tx), (tw,), (torch.ones(3, dtype=torch.float64),))
    np.testing.assert_allclose(_np(tangent), expected.numpy(), rtol=1e-10, atol=1e-12)
    parameter = Tensor(w, requires_grad=True)  # no enclosing transform: numpy, as before
    assert isinstance(F.grad(lambda a: _inner(a, parameter))(x), np.ndarray)


@pytest.mark.parametrize(
    "transform", [F.jacrev, F.jacfwd, F.jacobian], ids=["jacrev", "jacfwd", "jacobian"]
)
def test_jacobians_of_a_batchnorm_in_training_update_its_statistics_once(transform):
    """jacfwd ran the module once per input element, each run updating the running
    statistics (12 updates for a 4x3 input), and jacobian's shape probe added one more: the
    statistics ended far from where one training call leaves them, silently.

    Found in the attack round (forward mode, transforms, conv, export).
    """
    from nn import conv as C

    x = np.random.default_rng(0).normal(size=(4, 3))
    once = C.BatchNorm1d(3, dtype=np.float64)
    once(x)
    module = C.BatchNorm1d(3, dtype=np.float64)
    jac = transform(module)(x)
    assert int(module.num_batches_tracked.data) == 1
    np.testing.assert_array_equal(module.running_mean.data, once.running_mean.data)
    np.testing.assert_array_equal(module.running_var.data, once.running_var.data)
    reference = F.jacrev(C.BatchNorm1d(3, dtype=np.float64))(x)
    np.testing.assert_allclose(jac, reference, rtol=1e-10, atol=1e-12)
