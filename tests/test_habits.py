"""Habits users bring from micrograd, PyTorch and numpy (issue 10, items 8, 9, 10 and 12)."""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest

import autodiff as ad
from autodiff import Tensor
from autodiff.testing import gradcheck

# --- item 8: formatting and abs() ----------------------------------------------------------


def test_micrograd_readme_example_runs_unchanged_but_for_the_class():
    def Value(x):  # noqa: N802 - micrograd's class name, the only change to its example
        return Tensor(x, requires_grad=True)

    a = Value(-4.0)
    b = Value(2.0)
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    assert f"{g.data:.4f}" == "24.7041"
    g.backward()
    assert f"{a.grad:.4f}" == "138.8338"
    assert f"{b.grad:.4f}" == "645.5773"


def test_format_of_scalars_and_arrays():
    assert f"{Tensor(2.5):.3f}" == "2.500"
    assert f"{Tensor(np.float32(0.1)):.2e}" == "1.00e-01"
    assert f"{Tensor(7.0):>6}" == "   7.0"
    assert f"{Tensor(np.int64(3)):03d}" == "003"
    t = Tensor([1.0, 2.0], requires_grad=True)
    assert f"{t}" == str(t) == repr(t)  # no spec: the usual text
    with pytest.raises(TypeError):
        f"{t:.2f}"  # noqa: B018 - numpy refuses format specs for arrays, and so do we


def test_builtin_abs_is_differentiable():
    x = Tensor([-2.0, 3.0], requires_grad=True)
    y = abs(x)
    assert y.tolist() == [2.0, 3.0]
    y.sum().backward()
    assert x.grad.tolist() == [-1.0, 1.0]


# --- item 10: PyTorch names ------------------------------------------------------------------


def test_argmax_argmin_give_integer_indices_without_gradient():
    x = Tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]], requires_grad=True)
    assert x.argmax().item() == 3 and x.argmin().item() == 4
    assert x.argmax(dim=1).tolist() == [1, 0]
    assert x.argmin(axis=0).tolist() == [0, 1, 0]
    kept = x.argmax(dim=1, keepdim=True)
    assert kept.shape == (2, 1) and kept.dtype == np.int64 and not kept.requires_grad
    assert Tensor(4.0).argmax(dim=0).item() == 0
    with pytest.raises(ValueError, match="argmax: empty"):
        Tensor(np.zeros((0,))).argmax()
    with pytest.raises(ValueError, match="argmin: axis 2 is out of range"):
        x.argmin(2)


def test_shape_aliases_match_numpy_and_are_differentiable():
    data = np.arange(6.0).reshape(2, 3)
    x = Tensor(data, requires_grad=True)
    assert x.unsqueeze(0).shape == (1, 2, 3) and x.unsqueeze(-1).shape == (2, 3, 1)
    assert x.unsqueeze(1).shape == (2, 1, 3)
    assert x.unsqueeze(0).squeeze().shape == (2, 3)
    assert Tensor(np.zeros((1, 3, 1))).squeeze(0).shape == (3, 1)
    assert Tensor(np.zeros((1, 3, 1))).squeeze((0, -1)).shape == (3,)
    with pytest.raises(ValueError, match=r"squeeze: axis 1 of shape \(2, 3\) has length 3"):
        x.squeeze(1)
    np.testing.assert_array_equal(x.permute(1, 0).data, data.T)
    np.testing.assert_array_equal(x.view(3, 2).data, data.reshape(3, 2))
    np.testing.assert_array_equal(x.view(-1).data, data.ravel())
    np.testing.assert_array_equal(x.clamp(1.0, 3.0).data, np.clip(data, 1, 3))
    np.testing.assert_array_equal(x.clamp(max=2.0).data, np.minimum(data, 2))
    np.testing.assert_array_equal(x.pow(2).data, data**2)
    with pytest.raises(TypeError, match="permute: give the new order"):
        x.permute()
    gradcheck(lambda t: t.unsqueeze(1).permute(2, 1, 0).view(-1) * np.arange(6.0), data)
    gradcheck(lambda t: t.clamp(0.5, 3.5).pow(3), data)


def test_float_and_double_convert_and_keep_the_gradient():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x.float()
    assert y.dtype == np.float32 and y.double().dtype == np.float64
    assert x.double() is x
    (y * 3).sum().backward()
    assert x.grad.dtype == np.float64 and x.grad.tolist() == [3.0, 3.0]
    assert float(Tensor(2.5)) == 2.5  # the builtin float() still takes a number out


def test_size_is_numpys_count_and_pytorchs_call():
    x = Tensor(np.zeros((2, 3)))
    assert x.size == 6 and isinstance(x.size, int) and x.size * 2 == 12
    assert x.size() == (2, 3) and x.size(0) == 2 and x.size(-1) == 3
    assert Tensor(1.0).size == 1 and Tensor(1.0).size() == ()
    with pytest.raises(ValueError, match="size: axis 2 is out of range"):
        x.size(2)
    # Copies and pickles are plain ints, not a callable that remembers a shape.
    assert type(pickle.loads(pickle.dumps(x.size))) is int
    assert type(copy.deepcopy(x.size)) is int


def test_dim_and_keepdim_beside_axis_and_keepdims():
    data = np.arange(12.0).reshape(3, 4)
    x = Tensor(data, requires_grad=True)
    for name in ("sum", "mean", "max", "min", "var", "std", "logsumexp"):
        torch_style = getattr(x, name)(dim=1, keepdim=True)
        numpy_style = getattr(x, name)(axis=1, keepdims=True)
        if name in ("max", "min"):  # PyTorch's (values, indices): see the test below
            torch_style = torch_style.values
        assert torch_style.shape == (3, 1), name
        np.testing.assert_allclose(torch_style.data, numpy_style.data, err_msg=name)
        assert getattr(x, name)(axis=0).shape == (4,)
    np.testing.assert_allclose(x.softmax(dim=0).data, x.softmax(axis=0).data)
    np.testing.assert_allclose(ad.softmax(x, dim=0).data, x.softmax(axis=0).data)
    np.testing.assert_allclose(ad.log_softmax(x, dim=0).data, x.log_softmax(axis=0).data)
    assert x.sum(dim=(0, 1)).item() == data.sum()
    with pytest.raises(TypeError, match="sum: pass axis= or dim="):
        x.sum(axis=0, dim=0)
    with pytest.raises(TypeError, match="log_softmax: pass axis= or dim="):
        x.log_softmax(axis=0, dim=1)


def test_var_and_std_take_ddof_and_correction():
    data = np.array([[1.0, 4.0, 2.0, 8.0], [3.0, 3.5, -1.0, 0.0]])
    x = Tensor(data, requires_grad=True)
    np.testing.assert_allclose(x.var().item(), np.var(data))  # numpy's default, ddof=0
    np.testing.assert_allclose(x.var(ddof=1).item(), np.var(data, ddof=1))
    np.testing.assert_allclose(x.std(axis=1, ddof=1).data, np.std(data, axis=1, ddof=1))
    np.testing.assert_allclose(x.var(dim=1, correction=1).data, np.var(data, axis=1, ddof=1))
    np.testing.assert_allclose(x.std(dim=0, correction=0).data, np.std(data, axis=0))
    gradcheck(lambda t: t.var(axis=1, ddof=1), data)
    gradcheck(lambda t: t.std(dim=0, correction=1), data)
    with pytest.raises(TypeError, match="var: pass ddof= or correction="):
        x.var(ddof=1, correction=1)
    with pytest.raises(ValueError, match="std: ddof=2 leaves no degrees of freedom for 2 values"):
        x.std(axis=0, ddof=2)


def test_cat_and_manual_seed():
    a, b = Tensor(np.ones((2, 2)), requires_grad=True), Tensor(np.zeros((2, 1)))
    out = ad.cat([a, b], dim=1)
    assert out.shape == (2, 3) and out.data[:, 2].tolist() == [0.0, 0.0]
    out.sum().backward()
    assert a.grad.tolist() == [[1.0, 1.0], [1.0, 1.0]]
    ad.manual_seed(123)
    first = (ad.randn(4).tolist(), ad.rand(2).tolist())
    import nn

    weights = nn.Linear(3, 2).weight.data.copy()
    ad.manual_seed(123)
    assert (ad.randn(4).tolist(), ad.rand(2).tolist()) == first
    np.testing.assert_array_equal(nn.Linear(3, 2).weight.data, weights)
    ad.manual_seed(124)
    assert ad.randn(4).tolist() != first[0]
    with pytest.raises(TypeError, match="manual_seed: seed must be an int"):
        ad.manual_seed(1.5)


def test_grad_zero_resets_in_place_and_leaves_other_gradients_alone():
    a = Tensor(np.ones(3), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)
    (a + b).sum().backward()  # the engine may hand a and b one gradient array
    grad_a = a.grad
    assert grad_a.zero_() is grad_a
    assert a.grad.tolist() == [0.0, 0.0, 0.0] and b.grad.tolist() == [1.0, 1.0, 1.0]
    (a * 2).sum().backward()  # accumulates into the zeroed gradient
    assert a.grad.tolist() == [2.0, 2.0, 2.0]
    s = Tensor(2.0, requires_grad=True)
    (s * s).backward()
    assert s.grad.zero_().item() == 0.0 and s.grad.shape == ()
    with pytest.raises(RuntimeError, match="zero_: cannot write into a tensor that requires"):
        a.zero_()


def test_sum_and_softmax_of_a_scalar_along_its_implicit_axis():
    x = Tensor(3.0, requires_grad=True)
    for axis in (0, -1, (), (0,)):
        assert x.sum(axis=axis).item() == 3.0
    assert x.sum(dim=0, keepdim=True).shape == ()
    assert x.softmax(axis=0).item() == 1.0 and x.softmax(dim=-1).item() == 1.0
    assert x.log_softmax().item() == 0.0
    x.softmax(0).backward()
    assert x.grad.item() == 0.0
    with pytest.raises(ValueError, match="sum: axis 1 is out of range for a 0-d tensor"):
        x.sum(1)
    # On arrays, axis=() reduces nothing, as in numpy.
    np.testing.assert_array_equal(Tensor(np.arange(3.0)).sum(axis=()).data, np.arange(3.0))


def test_transpose_keeps_numpys_meaning_and_says_so():
    x = Tensor(np.arange(6.0).reshape(2, 3))
    assert x.transpose(0, 1).shape == (2, 3)  # numpy: the identity permutation
    assert x.swapaxes(0, 1).shape == (3, 2)
    doc = Tensor.transpose.__doc__
    assert "swapaxes" in doc and "permute" in doc and "numpy" in doc


# --- item 12: no RuntimeWarning from inside the engine ---------------------------------------


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: Tensor(-1.0).log(), np.nan),
        (lambda: Tensor(0.0).log(), -np.inf),
        (lambda: Tensor(np.array([0.0, -1.0, 1.0])).log(), [-np.inf, np.nan, 0.0]),
        (lambda: Tensor(-4.0).sqrt(), np.nan),
        (lambda: Tensor(np.array([-4.0, 4.0], np.float32)).sqrt(), [np.nan, 2.0]),
        (lambda: Tensor(0.0) ** -1, np.inf),
        (lambda: Tensor(1.0) / 0, np.inf),
        (lambda: Tensor(np.array([1.0, 0.0])) / Tensor(np.array([0.0, 0.0])), [np.inf, np.nan]),
        (lambda: Tensor(-8.0) ** Tensor(1 / 3), np.nan),
        (lambda: ad.log(Tensor([-1.0])), [np.nan]),
    ],
)
def test_nan_and_inf_by_design_come_without_a_warning(make, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning fails the test
        out = make()
    np.testing.assert_array_equal(out.data, expected)


def test_backward_through_a_singular_point_is_quiet_and_anomaly_mode_still_catches_it():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = Tensor(np.array([0.0, 4.0]), requires_grad=True)
        x.sqrt().sum().backward()
        assert x.grad.tolist() == [np.inf, 0.25]
        y = Tensor(0.0, requires_grad=True)
        (dy,) = ad.grad(y.log(), [y])
        assert dy.item() == np.inf
        with ad.detect_anomaly(), pytest.raises(FloatingPointError, match="log forward"):
            Tensor(-1.0, requires_grad=True).log()
    # Overflow is not an answer by design: numpy still warns about it.
    with pytest.warns(RuntimeWarning, match="overflow"):
        Tensor(1000.0).exp()


# --- item 9: numpy functions on Tensors ------------------------------------------------------

RNG = np.random.default_rng(7)
A = RNG.uniform(0.5, 2.0, size=(3, 4))
B = RNG.normal(size=(4, 2))
C = RNG.normal(size=(3, 4))


@pytest.mark.parametrize(
    ("name", "fn", "inputs"),
    [
        ("exp", lambda a: np.exp(a), (A,)),
        ("log", lambda a: np.log(a), (A,)),
        ("sqrt", lambda a: np.sqrt(a), (A,)),
        ("tanh", lambda a: np.tanh(a), (C,)),
        ("abs", lambda c: np.abs(c), (C,)),
        ("square", lambda c: np.square(c), (C,)),
        ("reciprocal", lambda a: np.reciprocal(a), (A,)),
        ("negative", lambda c: np.negative(c) + np.positive(c) * 3, (C,)),
        ("add/sub/mul/div", lambda a, c: np.divide(np.multiply(np.add(a, c), c), a) - c, (A, C)),
        ("power", lambda a, c: np.power(a, c) + np.power(a, 3), (A, C)),
        ("array on the left", lambda c: np.subtract(A, c) * np.true_divide(A, c + 5), (C,)),
        ("maximum", lambda c: np.maximum(c, 0) + np.minimum(c, 0.3), (C,)),
        ("matmul", lambda a, b: np.matmul(a, b), (A, B)),
        ("dot", lambda a, b: np.dot(a, b) + np.dot(a[0], b), (A, B)),
        ("outer", lambda a, b: np.outer(a[0], b[:, 1]), (A, B)),
        ("sum", lambda c: np.sum(c) + np.sum(c, axis=0, keepdims=True), (C,)),
        ("mean", lambda c: np.mean(c, axis=1), (C,)),
        ("max/min", lambda c: np.max(c, axis=0) * np.amin(c, axis=1).sum(), (C,)),
        ("var/std", lambda c: np.var(c, axis=0, ddof=1) + np.std(c), (C,)),
        ("reshape/transpose", lambda c: np.transpose(np.reshape(c, (2, 6))) @ np.ones(2), (C,)),
        ("swapaxes/ravel", lambda c: np.ravel(np.swapaxes(c, 0, 1)) * np.arange(12.0), (C,)),
        (
            "concatenate/stack",
            lambda a, c: np.concatenate([a, c], axis=1) * np.stack([c, a]).sum(),
            (A, C),
        ),
        ("where", lambda a, c: np.where(c > 0, a, c * 2), (A, C)),
        ("clip", lambda c: np.clip(c, -0.5, 0.5) * c, (C,)),
        ("squeeze/expand_dims", lambda c: np.squeeze(np.expand_dims(c, (0, 2)), 0), (C,)),
        ("broadcast_to", lambda c: np.broadcast_to(c[0], (3, 4)) * c, (C,)),
        ("reduce", lambda c: np.add.reduce(c) * np.maximum.reduce(c, axis=1).sum(), (C,)),
        # numpy names for autodiff.functions
        (
            "trigonometry",
            lambda c: np.sin(c) * np.cos(c) + np.tan(c) + np.sinh(c) * np.cosh(c),
            (C,),
        ),
        ("log1p/expm1", lambda a: np.log1p(a) + np.expm1(a), (A,)),
        ("cumsum/cumprod", lambda a: np.cumsum(a) + np.ravel(np.cumprod(a, axis=1)), (A,)),
        ("prod", lambda a: np.prod(a, axis=1) + np.prod(a[0]), (A,)),
        ("sort", lambda c: np.sort(c) * np.arange(4.0) + np.sort(c, axis=None).sum(), (C,)),
        ("norm", lambda c: np.linalg.norm(c) + np.linalg.norm(c, 1, axis=1).sum(), (C,)),
        ("flip/roll/tile", lambda c: np.flip(c, 0) * np.roll(c, 1) + np.tile(c[:, :2], 2), (C,)),
        (
            "repeat/tril/triu",
            lambda c: np.repeat(c, 2, axis=0)[::2] + np.tril(c) - np.triu(c, 1),
            (C,),
        ),
        ("split/pad", lambda c: np.split(c, 2, axis=1)[1] * np.pad(c, 1)[1:-1, 1:3], (C,)),
        ("take_along_axis", lambda c: np.take_along_axis(c, np.array([[0], [3], [1]]), 1), (C,)),
        ("einsum", lambda a, b: np.einsum("ij,jk->ik", a, b), (A, B)),
        ("remainder", lambda a: np.remainder(a, 0.7) + np.floor_divide(a, 0.7) * a, (A,)),
    ],
)
def test_numpy_functions_on_tensors_are_differentiable(name, fn, inputs):
    tensors = [Tensor(x, requires_grad=True) for x in inputs]
    out = fn(*tensors)
    assert isinstance(out, Tensor) and out.requires_grad, name
    np.testing.assert_allclose(out.data, fn(*inputs), rtol=1e-12, err_msg=name)  # = numpy's
    assert gradcheck(fn, *inputs)


def test_numpy_calls_keep_float32_and_put_arrays_on_either_side():
    t = Tensor(np.array([-1.0, 2.0], np.float32), requires_grad=True)
    assert np.exp(t).dtype == np.float32 and np.maximum(t, 0).dtype == np.float32
    assert np.multiply(t, 0.5).dtype == np.float32
    left = np.ones(2, np.float32) + t
    assert isinstance(left, Tensor) and left.requires_grad and left.tolist() == [0.0, 3.0]
    assert isinstance(np.float32(2) * t, Tensor)
    np.maximum(t, 0).sum().backward()
    assert t.grad.tolist() == [0.0, 1.0]


def test_numpy_answers_without_a_gradient_are_constants_or_plain_values():
    t = Tensor(np.array([[1.0, np.nan], [3.0, -2.0]]), requires_grad=True)
    nan = np.isnan(t)
    assert isinstance(nan, Tensor) and not nan.requires_grad
    assert nan.tolist() == [[False, True], [False, False]]
    assert np.greater(t, 0).tolist() == [[True, False], [True, False]]
    assert np.sign(t).data[1, 1] == -1.0 and not np.floor(t).requires_grad
    assert np.shape(t) == (2, 2) and np.ndim(t) == 2 and np.size(t) == 4
    assert np.argmax(Tensor([1.0, 5.0, 2.0])).item() == 1
    assert np.allclose(t, t.data, equal_nan=True) is True
    assert bool(np.any(np.isnan(t))) and not bool(np.all(np.isfinite(t)))
    assert [i.tolist() for i in np.where(Tensor([0.0, 2.0, 3.0]) > 1)] == [[1, 2]]
    np.testing.assert_allclose(Tensor([1.0, 2.0]), [1.0, 2.0])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda t: np.arcsin(t), r"numpy\.arcsin is not supported .* no differentiable arcsin"),
        (lambda t: np.log2(t), r"numpy\.log2 .* write t\.log\(\) / np\.log\(2\)"),
        (lambda t: np.linalg.norm(t.reshape(1, 2), 2), r"numpy\.linalg\.norm: ord=2 on shape"),
        (lambda t: np.diff(t), r"numpy\.diff is not supported"),
        (lambda t: np.sum(t, dtype=np.float32), "numpy.sum: option dtype is not supported"),
        (lambda t: np.exp(t, out=np.empty(2)), "numpy.exp: out= cannot receive"),
        (lambda t: np.add.accumulate(t), r"numpy\.add\.accumulate is not supported"),
        (lambda t: np.dot(t.reshape(1, 1, 2), t.reshape(2, 1)), "numpy.dot: .* autodiff.matmul"),
        (lambda t: np.clip(t, Tensor(0.0, requires_grad=True), 1), "numpy.clip: a bound"),
    ],
)
def test_unsupported_numpy_calls_say_what_to_use(call, message):
    t = Tensor(np.array([0.5, 2.0]), requires_grad=True)
    with pytest.raises(TypeError, match=message):
        call(t)


def test_in_place_numpy_update_with_a_tensor_is_refused_clearly():
    a = np.ones(2)
    with pytest.raises(TypeError, match=r"write `x = x \+ t` rather than `x \+= t`"):
        a += Tensor([1.0, 2.0])
    assert a.tolist() == [1.0, 1.0]  # untouched


def test_second_derivatives_through_numpy_calls():
    from autodiff.testing import gradgradcheck

    def fn(x):
        return (
            np.exp(x) * np.sum(x, axis=1, keepdims=True)
            + np.maximum(x, 1.0) ** 2
            + np.matmul(x, np.transpose(x)).sum()
            + np.log(x).var(ddof=1)
        )

    assert gradgradcheck(fn, A)


def test_softmax_module_takes_pytorchs_dim():
    import nn

    x = Tensor(np.array([[1.0, 2.0], [3.0, 5.0]]))
    np.testing.assert_allclose(nn.Softmax(dim=0)(x).data, x.softmax(axis=0).data)
    np.testing.assert_allclose(nn.Softmax(dim=1)(x).data.sum(axis=1), [1.0, 1.0])


def test_max_and_min_with_dim_answer_values_and_indices_as_pytorch():
    # `_, predicted = out.max(dim=1)` on a batch of two unpacked the two maxima silently.
    out = Tensor(np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]]), requires_grad=True)
    _, predicted = out.max(dim=1)
    assert predicted.tolist() == [1, 0]
    values, indices = out.min(dim=0, keepdim=True)
    assert values.tolist() == [[1.0, 0.0, 2.0]] and indices.tolist() == [[0, 1, 0]]
    assert out.max(dim=1).values.tolist() == [5.0, 7.0]
    out.max(dim=1).values.sum().backward()
    assert out.grad.tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    # numpy's axis= keeps numpy's answer: the values alone.
    assert out.max(axis=1).tolist() == [5.0, 7.0] and out.max(None).item() == 7.0
    # By position the two libraries disagree, and PyTorch's tutorial line would unpack this
    # batch of two into its two maxima without a word: refused, saying which name is which.
    for call in (lambda: out.max(1), lambda: out.min(0), lambda: out.max(1, True)):
        with pytest.raises(TypeError, match=r"name the axis, as axis= .*or dim= "):
            _, predicted = call()
    with pytest.raises(TypeError, match=r"max: dim= takes one axis"):
        out.max(dim=(0, 1))


def test_micrograds_spellings_label_and_mlp_sizes():
    import nn

    a = Tensor(2.0, requires_grad=True, label="a")
    assert a.name == "a"
    with pytest.raises(TypeError, match="name= or label="):
        Tensor(1.0, name="x", label="y")
    model = nn.MLP(2, [16, 16, 1], rng=0)  # micrograd's MLP(nin, nouts)
    assert model.sizes == [2, 16, 16, 1]
    assert [type(m).__name__ for m in model.layers] == [
        "Linear",
        "ReLU",
        "Linear",
        "ReLU",
        "Linear",
    ]
    assert nn.MLP(2, [16, 16], 1, rng=0).sizes == [2, 16, 16, 1]
    with pytest.raises(TypeError, match="MLP: give out_features"):
        nn.MLP(2, [])
