"""PyTorch as an oracle: random compositions of ops on one to three inputs, compared value by
value and gradient by gradient (every intermediate, every input), second derivatives through
Hessian-vector products, and float32 runs within float32 tolerance."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autodiff as ad
from autodiff import Tensor
from tests.oracle import require_torch

torch = require_torch()  # every test here compares with PyTorch
F = torch.nn.functional

# Each step is written once, against a small namespace `L` that both libraries fill in, so the
# two sides cannot drift apart. Operators (+ - * / ** @, indexing, .reshape, .transpose(1, 0),
# comparisons) mean the same in both and are used directly.
OURS = SimpleNamespace(
    exp=ad.exp,
    log=ad.log,
    tanh=ad.tanh,
    sigmoid=ad.sigmoid,
    relu=ad.relu,
    abs=ad.abs,
    clip=lambda x, lo, hi: x.clip(lo, hi),
    sum=lambda x, axis=None, keepdims=False: x.sum(axis=axis, keepdims=keepdims),
    mean=lambda x, axis=None, keepdims=False: x.mean(axis=axis, keepdims=keepdims),
    max=lambda x, axis=None, keepdims=False: x.max(axis=axis, keepdims=keepdims),
    softmax=ad.softmax,
    log_softmax=ad.log_softmax,
    logsumexp=lambda x, axis=None, keepdims=False: ad.logsumexp(x, axis=axis, keepdims=keepdims),
    cat=ad.concatenate,
    stack=ad.stack,
    where=ad.where,
    maximum=ad.maximum,
    linear=ad.linear,
    cross_entropy=ad.softmax_cross_entropy,
)


def _dims(x, axis):
    return tuple(range(x.ndim)) if axis is None else axis


THEIRS = SimpleNamespace(
    exp=torch.exp,
    log=torch.log,
    tanh=torch.tanh,
    sigmoid=torch.sigmoid,
    relu=torch.relu,
    abs=torch.abs,
    clip=torch.clamp,
    sum=lambda x, axis=None, keepdims=False: x.sum(dim=_dims(x, axis), keepdim=keepdims),
    mean=lambda x, axis=None, keepdims=False: x.mean(dim=_dims(x, axis), keepdim=keepdims),
    # amax shares the gradient among ties, as ours does (torch.max(dim) picks one element).
    max=lambda x, axis=None, keepdims=False: x.amax(dim=_dims(x, axis), keepdim=keepdims),
    softmax=lambda x, axis: torch.softmax(x, dim=axis),
    log_softmax=lambda x, axis: torch.log_softmax(x, dim=axis),
    logsumexp=lambda x, axis=None, keepdims=False: torch.logsumexp(
        x, dim=_dims(x, axis), keepdim=keepdims
    ),
    cat=lambda xs, axis: torch.cat(xs, dim=axis),
    stack=lambda xs, axis: torch.stack(xs, axis),
    where=torch.where,
    maximum=torch.maximum,
    linear=F.linear,
    cross_entropy=lambda z, y: F.cross_entropy(z, torch.as_tensor(y)),
)


def _tiebreak(v):
    # Distinct offsets, so saturated values (sigmoid -> exactly 1.0) never tie inside a max:
    # a tie's gradient is a convention, and a one-ulp difference would flip it.
    offsets = np.arange(v.shape[0] * v.shape[1]).reshape(v.shape) * 1e-3
    if isinstance(v, Tensor):
        return Tensor(offsets.astype(v.dtype))
    return torch.tensor(offsets, dtype=v.dtype)


# A step maps the running value v (rows, cols) and one of the inputs w (rows, cols) to a new
# (rows, cols) value. Domains are kept safe by construction (log of a positive, division by a
# value away from zero, exp of clipped values) and growth stays at most linear, so eight steps
# neither overflow nor lose all precision.
STEPS = {
    "add": lambda L, v, w: v + w,
    "sub": lambda L, v, w: 0.5 * w - v,
    "mul": lambda L, v, w: v * w,
    "div": lambda L, v, w: (v - 0.5 * w) / (v * v + 0.5),
    "exp": lambda L, v, w: L.exp(L.clip(v, -4.0, 4.0)),
    "log": lambda L, v, w: L.log(v * v + 0.5),
    "tanh": lambda L, v, w: L.tanh(v),
    "sigmoid": lambda L, v, w: L.sigmoid(v) * w,
    "relu": lambda L, v, w: L.relu(v) + 0.1 * v,
    "abs": lambda L, v, w: L.abs(v) - 0.3 * w,
    "pow_int": lambda L, v, w: v**3 / (v * v + 1),
    "pow_frac": lambda L, v, w: (v * v + 1) ** -0.75,
    "sum0": lambda L, v, w: L.sum(v, axis=0) + w,
    "sum1": lambda L, v, w: L.sum(v, axis=1, keepdims=True) * w,
    "mean0": lambda L, v, w: L.mean(v, axis=0, keepdims=True) - w,
    "mean_all": lambda L, v, w: L.mean(v) * w + v,
    "max0": lambda L, v, w: L.max(v + _tiebreak(v), axis=0) * w,
    "max1": lambda L, v, w: L.max(v + _tiebreak(v), axis=1, keepdims=True) + v,
    "reshape": lambda L, v, w: v.reshape(v.shape[1], v.shape[0]).transpose(1, 0) * w,
    "transpose": lambda L, v, w: L.tanh(w) @ v.transpose(1, 0) @ L.tanh(w) / v.shape[0] ** 2,
    "matmul": lambda L, v, w: v @ (L.tanh(w).transpose(1, 0) @ L.tanh(w)) / v.shape[0],
    "roll": lambda L, v, w: L.cat([v[:, 1:], v[:, :1]], 1),
    "gather": lambda L, v, w: v[[0] + list(range(v.shape[0] - 1))] * w,
    "row": lambda L, v, w: v[0] * w + v[-1],
    "concatenate": lambda L, v, w: L.cat([v[:, :1] * 2, w[:, 1:] * v[:, 1:]], 1),
    "stack": lambda L, v, w: L.sum(L.stack([v, w * v], 0), axis=0),
    "softmax": lambda L, v, w: L.softmax(v, -1),
    "log_softmax": lambda L, v, w: L.log_softmax(v, 0),
    "logsumexp": lambda L, v, w: L.logsumexp(v, axis=1, keepdims=True) + w,
    # The mask comes from an input, not from computed values: a computed v within an ulp of w
    # could fall on different sides in the two libraries.
    "where": lambda L, v, w: L.where(w > 0, v, w * v),
    # + 0.1 w: applied twice, a bare maximum would tie with its own output, and ties are a
    # convention (ours sends the gradient to the first argument, PyTorch splits it).
    "maximum": lambda L, v, w: L.maximum(v, w + 0.05) + 0.1 * w,
    "linear": lambda L, v, w: L.linear(v, L.tanh(w).transpose(1, 0) @ L.tanh(w) / v.shape[0], w[0]),
}
NAMES = sorted(STEPS)

# The scalar at the end of each composition.
HEADS = {
    "weighted_sum": lambda L, v, aux: L.sum(v * aux["weights"]),
    "mean": lambda L, v, aux: L.mean(v),
    "max": lambda L, v, aux: L.max(v + _tiebreak(v)),
    "logsumexp": lambda L, v, aux: L.logsumexp(v),
    "cross_entropy": lambda L, v, aux: L.cross_entropy(v, aux["labels"]),
}


def _compose(L, inputs, steps, head, aux):
    """Run the steps on `inputs` with library L; returns every intermediate and the loss."""
    v = inputs[0]
    trail = []
    for name, k in steps:
        v = STEPS[name](L, v, inputs[k % len(inputs)])
        trail.append(v)
    return trail, HEADS[head](L, v, aux)


def _case(seed, n_inputs, rows, cols, dtype):
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(-1.5, 1.5, size=(rows, cols)).astype(dtype) for _ in range(n_inputs)]
    aux = {
        "weights": rng.normal(size=(rows, cols)).astype(dtype),
        "labels": rng.integers(0, cols, size=rows),
    }
    return arrays, aux


def _torch_aux(aux):
    return {"weights": torch.tensor(aux["weights"]), "labels": aux["labels"]}


def _close(got, expected, rtol, atol, what):
    # Tolerances relative to the size of the values: a composition may make them large.
    scale = 1.0 + float(np.max(np.abs(expected))) if np.size(expected) else 1.0
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol * scale, err_msg=what)


def _grad_of(t, like):
    return np.zeros_like(like) if t.grad is None else np.asarray(t.grad.data)


def _check_composition(steps, head, n_inputs, rows, cols, seed, dtype, rtol, atol):
    arrays, aux = _case(seed, n_inputs, rows, cols, dtype)
    ours_in = [Tensor(a, requires_grad=True) for a in arrays]
    theirs_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    trail, loss = _compose(OURS, ours_in, steps, head, aux)
    ref_trail, ref_loss = _compose(THEIRS, theirs_in, steps, head, _torch_aux(aux))
    for t in ref_trail:
        t.retain_grad()
    for i, (mine, ref) in enumerate(zip(trail, ref_trail, strict=True)):
        assert mine.dtype == dtype, (steps[i], mine.dtype)
        _close(mine.data, ref.detach().numpy(), rtol, atol, f"value after step {i} {steps[i]}")
    _close(loss.data, ref_loss.detach().numpy(), rtol, atol, "loss")
    loss.backward()
    ref_loss.backward()
    for i, (mine, ref) in enumerate(zip(trail, ref_trail, strict=True)):
        _close(
            _grad_of(mine, mine.data),
            _grad_of(ref, mine.data),
            rtol,
            atol,
            f"gradient of step {i} {steps[i]}",
        )
    for i, (mine, ref) in enumerate(zip(ours_in, theirs_in, strict=True)):
        got = _grad_of(mine, arrays[i])
        assert got.dtype == dtype
        _close(got, _grad_of(ref, arrays[i]), rtol, atol, f"gradient of input {i}")


compositions = st.lists(
    st.tuples(st.sampled_from(NAMES), st.integers(0, 2)), min_size=3, max_size=8
)


@given(
    steps=compositions,
    head=st.sampled_from(sorted(HEADS)),
    n_inputs=st.integers(1, 3),
    rows=st.integers(2, 4),
    cols=st.integers(2, 4),
    seed=st.integers(0, 2**16),
)
def test_random_compositions_match_pytorch_float64(steps, head, n_inputs, rows, cols, seed):
    _check_composition(steps, head, n_inputs, rows, cols, seed, np.float64, rtol=1e-9, atol=1e-11)


@given(
    steps=compositions,
    head=st.sampled_from(sorted(HEADS)),
    n_inputs=st.integers(1, 3),
    rows=st.integers(2, 4),
    cols=st.integers(2, 4),
    seed=st.integers(0, 2**16),
)
def test_random_compositions_match_pytorch_float32(steps, head, n_inputs, rows, cols, seed):
    # Same compositions in float32 end to end: dtypes stay float32 and the numbers agree to
    # float32 precision (summation orders differ, so exact agreement is not expected).
    _check_composition(steps, head, n_inputs, rows, cols, seed, np.float32, rtol=2e-3, atol=2e-4)


@pytest.mark.parametrize("name", NAMES)
def test_every_step_alone_matches_pytorch(name):
    # Each op once, deterministically, with all three inputs in play.
    _check_composition(
        [(name, 1), (name, 2), ("tanh", 0)],
        "weighted_sum",
        3,
        3,
        4,
        seed=len(name),
        dtype=np.float64,
        rtol=1e-9,
        atol=1e-11,
    )


# Steps whose second derivative is not zero almost everywhere, so an HVP tests something.
SMOOTH = [
    "add",
    "mul",
    "div",
    "log",
    "tanh",
    "sigmoid",
    "pow_int",
    "pow_frac",
    "sum0",
    "mean0",
    "matmul",
    "transpose",
    "reshape",
    "softmax",
    "log_softmax",
    "logsumexp",
    "gather",
    "concatenate",
    "linear",
    "where",
    "maximum",
    "exp",
    "relu",
]


@given(
    steps=st.lists(st.tuples(st.sampled_from(SMOOTH), st.integers(0, 1)), min_size=2, max_size=5),
    head=st.sampled_from(["weighted_sum", "logsumexp", "cross_entropy"]),
    n_inputs=st.integers(1, 2),
    seed=st.integers(0, 2**16),
)
def test_hessian_vector_products_match_pytorch(steps, head, n_inputs, seed):
    arrays, aux = _case(seed, n_inputs, 3, 3, np.float64)
    vectors = [np.random.default_rng(seed + 1).normal(size=a.shape) for a in arrays]
    ours_in = [Tensor(a, requires_grad=True) for a in arrays]
    theirs_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    _, loss = _compose(OURS, ours_in, steps, head, aux)
    _, ref_loss = _compose(THEIRS, theirs_in, steps, head, _torch_aux(aux))

    grads = ad.grad(loss, ours_in, create_graph=True)
    ref_grads = torch.autograd.grad(ref_loss, theirs_in, create_graph=True, allow_unused=True)
    for g, tg in zip(grads, ref_grads, strict=True):
        expected = np.zeros((3, 3)) if tg is None else tg.detach().numpy()
        _close(g.data, expected, 1e-9, 1e-11, "gradient")

    # H v = d/dx <grad, v>, summed over all inputs: the mixed second derivatives count too.
    dot = sum((g * v).sum() for g, v in zip(grads, vectors, strict=True))
    hvp = ad.grad(dot, ours_in) if dot.requires_grad else [Tensor(np.zeros((3, 3)))] * n_inputs
    ref_parts = [
        (tg * torch.tensor(v)).sum()
        for tg, v in zip(ref_grads, vectors, strict=True)
        if tg is not None and tg.requires_grad
    ]
    ref_hvp = (
        torch.autograd.grad(sum(ref_parts), theirs_in, allow_unused=True)
        if ref_parts
        else [None] * n_inputs
    )
    for i, (h, th) in enumerate(zip(hvp, ref_hvp, strict=True)):
        expected = np.zeros((3, 3)) if th is None else th.numpy()
        _close(h.data, expected, 1e-8, 1e-10, f"Hessian-vector product, input {i}")


def test_hessian_of_a_small_network_matches_pytorch_exactly_enough():
    # A full Hessian (one HVP per basis vector) of a two-layer network's loss in its weights.
    rng = np.random.default_rng(7)
    x = rng.normal(size=(5, 3))
    labels = np.array([0, 1, 2, 1, 0])
    w0 = rng.normal(size=(4, 3)) * 0.5

    def loss_ours(w):
        return ad.softmax_cross_entropy(ad.linear(Tensor(x), w).tanh() @ Tensor(w0), labels)

    def loss_theirs(w):
        return F.cross_entropy(
            torch.tanh(F.linear(torch.tensor(x), w)) @ torch.tensor(w0), torch.tensor(labels)
        )

    w = Tensor(w0.copy(), requires_grad=True)
    (g,) = ad.grad(loss_ours(w), [w], create_graph=True)
    rows = []
    for k in range(g.size):
        basis = np.zeros(g.size)
        basis[k] = 1.0
        (row,) = ad.grad((g * basis.reshape(g.shape)).sum(), [w])
        rows.append(row.data.reshape(-1))
    ours = np.array(rows)
    theirs = torch.autograd.functional.hessian(loss_theirs, torch.tensor(w0.copy()))
    theirs = theirs.reshape(g.size, g.size).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours, ours.T, rtol=1e-9, atol=1e-12)  # a Hessian is symmetric


def test_float32_network_matches_pytorch_within_float32_tolerance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 20)).astype(np.float32)
    w1 = rng.normal(0, 0.3, size=(32, 20)).astype(np.float32)
    b1 = rng.normal(0, 0.1, size=32).astype(np.float32)
    w2 = rng.normal(0, 0.3, size=(5, 32)).astype(np.float32)
    labels = rng.integers(0, 5, size=16)
    W1, B1, W2 = (Tensor(a, requires_grad=True) for a in (w1, b1, w2))
    loss = ad.softmax_cross_entropy(ad.linear(ad.linear(Tensor(x), W1, B1).relu(), W2), labels)
    loss.backward()
    T1, TB1, T2 = (torch.tensor(a, requires_grad=True) for a in (w1, b1, w2))
    ref = F.cross_entropy(
        F.linear(torch.relu(F.linear(torch.tensor(x), T1, TB1)), T2), torch.tensor(labels)
    )
    ref.backward()
    assert loss.dtype == np.float32
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    for mine, theirs in ((W1, T1), (B1, TB1), (W2, T2)):
        assert mine.grad.dtype == np.float32
        np.testing.assert_allclose(mine.grad.data, theirs.grad.numpy(), rtol=1e-4, atol=1e-6)
