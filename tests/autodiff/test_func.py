"""autodiff.func: the function transforms, by exact values, against each other and against
torch.func (when torch is installed)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import autodiff as ad
import nn
from autodiff import Tensor
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
    real_rev, real_fwd = func.jacrev, func.jacfwd
    monkeypatch.setattr(func, "jacrev", lambda *a: calls.append("rev") or real_rev(*a))
    monkeypatch.setattr(func, "jacfwd", lambda *a: calls.append("fwd") or real_fwd(*a))
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


def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("transform", ["jacrev", "jacfwd", "jacobian"])
def test_jacobians_match_torch_func(transform):
    t = _torch()
    ours = {"jacrev": jacrev, "jacfwd": jacfwd, "jacobian": jacobian}[transform](layer)(X)
    tw, tb = t.tensor(W), t.tensor(B)
    theirs = t.func.jacrev(lambda x: t.tanh(tw @ x + tb) * x.sum())(t.tensor(X))
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-10, atol=1e-12)


def test_hessian_matches_torch_func():
    t = _torch()
    ours = hessian(energy)(X)
    theirs = t.func.hessian(lambda x: (x**3).sum() + t.exp(x[0] * x[1]) + t.log((x * x).sum()))(
        t.tensor(X)
    )
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-10)
    np.testing.assert_allclose(ours, ours.T, rtol=1e-12)  # symmetric, as a Hessian must be


def test_mlp_hessian_vector_product_matches_torch():
    t = _torch()
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
    assert len(blocks) == 2
    scope: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), scope)  # noqa: S102 - our own README
    assert scope["dy"].item() == pytest.approx(2 * (1 - np.tanh(1.0) ** 2))
    assert scope["b"].item() == -2.0 and scope["db"].item() == 1.0
    assert scope["value"] == 9.0 and scope["aux"] == "aux"
    assert scope["jacrev"](scope["g"])(scope["x"]).shape == (3, 3, 3)


def test_checkpoint_never_writes_into_the_callers_input():
    from autodiff.func import checkpoint

    def f(x):
        x += 1  # inside f: under checkpoint's untracked forward this must not reach the input
        return (x * x).sum()

    a = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = a * 1
    checkpoint(f)(h)
    assert h.data.tolist() == [1.0, 2.0]
