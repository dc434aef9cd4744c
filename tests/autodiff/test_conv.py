"""autodiff/conv.py, convolutions and pooling as functions: against PyTorch (when installed),
by their algebra (fold is unfold's transpose) and by their errors. The layers built on them are
in tests/nn/test_conv.py.

The numerical gradient checks (first and second order, hypothesis-drawn strides, padding,
dilation, groups and odd sizes) are rows of the table in test_rules.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autodiff as ad
import nn
from autodiff import Tensor, engine
from autodiff.testing import gradgradcheck
from tests.oracle import torch_if_installed


@st.composite
def conv_setup(draw):
    groups = draw(st.integers(1, 3))
    c, o = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 3))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    size = tuple(
        max(1, d * (kk - 1) + 1 - 2 * p) + draw(st.integers(0, 5))
        for kk, d, p in zip(k, dilation, padding, strict=True)
    )
    n = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**16))
    return dict(
        groups=groups,
        c=c,
        o=o,
        k=k,
        stride=stride,
        dilation=dilation,
        padding=padding,
        size=size,
        n=n,
        dtype=dtype,
        seed=seed,
        bias=draw(st.booleans()),
    )


def _close(ours, theirs, dtype):
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(np.asarray(ours), theirs.detach().numpy(), rtol=tol, atol=tol)


@pytest.mark.slow
@given(conv_setup())
def test_conv2d_matches_pytorch_values_and_gradients(torch, s):
    TF = torch.nn.functional
    rng = np.random.default_rng(s["seed"])
    x = rng.normal(size=(s["n"], s["c"], *s["size"])).astype(s["dtype"])
    w = rng.normal(size=(s["o"], s["c"] // s["groups"], *s["k"])).astype(s["dtype"])
    b = rng.normal(size=s["o"]).astype(s["dtype"]) if s["bias"] else None
    args = dict(
        stride=s["stride"], padding=s["padding"], dilation=s["dilation"], groups=s["groups"]
    )
    ours = [Tensor(v, requires_grad=True) for v in (x, w, b) if v is not None]
    out = ad.conv2d(ours[0], ours[1], ours[2] if b is not None else None, **args)
    theirs = [torch.tensor(v, requires_grad=True) for v in (x, w, b) if v is not None]
    expected = TF.conv2d(theirs[0], theirs[1], theirs[2] if b is not None else None, **args)
    assert out.shape == tuple(expected.shape) and out.dtype == s["dtype"]
    _close(out.data, expected, s["dtype"])
    upstream = rng.normal(size=out.shape).astype(s["dtype"])  # random, not ones
    out.backward(upstream)
    expected.backward(torch.tensor(upstream))
    for mine, ref in zip(ours, theirs, strict=True):
        assert mine.grad.dtype == s["dtype"]
        _close(mine.grad.data, ref.grad, s["dtype"])


@pytest.mark.parametrize(
    "fn,kwargs",
    [
        ("max_pool2d", dict(kernel_size=2)),
        ("max_pool2d", dict(kernel_size=3, stride=2, padding=1)),
        ("max_pool2d", dict(kernel_size=(2, 3), stride=(1, 2))),
        ("avg_pool2d", dict(kernel_size=2)),
        ("avg_pool2d", dict(kernel_size=3, stride=1, padding=1)),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pooling_matches_pytorch(torch, fn, kwargs, dtype):
    TF = torch.nn.functional
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 2, 9, 8)).astype(dtype)
    ours = Tensor(x, requires_grad=True)
    out = getattr(ad, fn)(ours, **kwargs)
    theirs = torch.tensor(x, requires_grad=True)
    expected = getattr(TF, fn)(theirs, **kwargs)
    _close(out.data, expected, dtype)
    upstream = rng.normal(size=out.shape).astype(dtype)
    out.backward(upstream)
    expected.backward(torch.tensor(upstream))
    _close(ours.grad.data, theirs.grad, dtype)


@pytest.mark.parametrize(
    "kwargs", [dict(), dict(stride=2, padding=1), dict(dilation=2), dict(groups=2, padding="same")]
)
def test_conv1d_matches_pytorch(torch, kwargs):
    TF = torch.nn.functional
    rng = np.random.default_rng(2)
    x, w, b = (
        rng.normal(size=(2, 4, 11)),
        rng.normal(size=(6, 4 // kwargs.get("groups", 1), 3)),
        rng.normal(size=6),
    )
    ours = [Tensor(v, requires_grad=True) for v in (x, w, b)]
    out = ad.conv1d(*ours, **kwargs)
    theirs = [torch.tensor(v, requires_grad=True) for v in (x, w, b)]
    expected = TF.conv1d(*theirs, **kwargs)
    _close(out.data, expected, np.float64)
    upstream = rng.normal(size=out.shape)
    out.backward(upstream)
    expected.backward(torch.tensor(upstream))
    for mine, ref in zip(ours, theirs, strict=True):
        _close(mine.grad.data, ref.grad, np.float64)


@given(
    st.integers(0, 2**16),
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(0, 2),
    st.integers(1, 2),
)
def test_fold_is_the_transpose_of_unfold(seed, k, stride, pad, dilation):
    """<unfold(x), c> == <x, fold(c)> for random x and c: the two rules are adjoint."""
    rng = np.random.default_rng(seed)
    h = w = dilation * (k - 1) + 1 + rng.integers(0, 4)
    x = rng.normal(size=(2, 3, h, w))
    window = dict(
        kernel=(k, k), stride=(stride, stride), padding=(pad, pad), dilation=(dilation, dilation)
    )
    cols = ad.conv.unfold2d.forward(x, **window)
    c = rng.normal(size=cols.shape)
    back = ad.conv.fold2d.forward(c, shape=x.shape, **window)
    assert np.isclose(np.sum(cols * c), np.sum(x * back))


def test_unfold_is_a_view_and_the_image_is_never_written():
    x = np.arange(2 * 1 * 4 * 4, dtype=np.float64).reshape(2, 1, 4, 4)
    x.flags.writeable = False  # a rule writing into its input would raise here
    t = Tensor(x, requires_grad=True)
    cols = ad.unfold(t, 3)
    assert cols.shape == (2, 1, 2, 2, 3, 3)
    np.testing.assert_array_equal(cols.data[0, 0, 1, 0], x[0, 0, 1:4, 0:3])
    cols.sum().backward()
    # Corner pixels are read by one window, the centre ones by all four.
    assert t.grad.data[0, 0, 0, 0] == 1 and t.grad.data[0, 0, 1, 1] == 4


def test_conv_of_integer_images_computes_in_floating_point():
    img = np.array([[[[0, 255], [255, 0]]]], dtype=np.uint8)
    out = ad.conv2d(img, np.ones((1, 1, 2, 2), dtype=np.float32))
    assert out.dtype == np.float32 and out.item() == 510.0


@pytest.mark.parametrize(
    "call,match",
    [
        (
            lambda: ad.conv2d(np.zeros((1, 3, 5, 5)), np.zeros((2, 2, 3, 3))),
            r"\(1, 3, 5, 5\).*groups",
        ),
        (
            lambda: ad.conv2d(np.zeros((3, 5, 5)), np.zeros((2, 3, 3, 3))),
            r"conv2d.*4-d.*\(3, 5, 5\)",
        ),
        (lambda: ad.conv2d(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 3, 3))), "conv2d.*smaller"),
        (lambda: ad.conv2d(np.zeros((1, 2, 5, 5)), np.zeros((2, 1, 3, 3)), groups=3), "groups"),
        (lambda: ad.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), stride=0), "stride"),
        (lambda: ad.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), np.zeros(2)), "bias"),
        (
            lambda: ad.conv2d(
                np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 2, 2)), padding="same", stride=2
            ),
            "same.*stride 1",
        ),
        (
            lambda: ad.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 2, 2)), padding="full"),
            "'same' or 'valid'",
        ),
        (lambda: ad.max_pool2d(np.zeros((1, 1, 4, 4)), 2, padding=2), "max_pool2d.*padding"),
        (lambda: ad.max_pool2d(np.zeros((1, 1, 1, 4)), 2), "max_pool2d.*smaller"),
        (lambda: nn.Conv2d(3, 4, 3)(np.zeros((1, 2, 5, 5))), r"Conv2d\(3 -> 4.*\(1, 2, 5, 5\)"),
        (lambda: nn.Conv2d(3, 4, 3, groups=2), "divisible"),
        (lambda: nn.BatchNorm2d(3)(np.zeros((2, 4, 2, 2))), r"BatchNorm2d\(3\).*\(2, 4, 2, 2\)"),
        (lambda: nn.BatchNorm1d(3)(np.zeros((1, 3))), "more than one value"),
        (lambda: nn.LayerNorm(4)(np.zeros((2, 3))), r"LayerNorm.*\(2, 3\)"),
    ],
)
def test_bad_input_gets_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    "kwargs", [dict(), dict(stride=2, padding=1), dict(dilation=2), dict(groups=2, padding=1)]
)
def test_conv2d_second_derivatives_match_numerical(kwargs):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(1, 2, 4, 4))
    w = rng.normal(size=(2, 2 // kwargs.get("groups", 1), 2, 2))
    assert gradgradcheck(lambda x, w: ad.conv2d(x, w, **kwargs), x, w, atol=1e-4)


def test_conv_graph_is_differentiable_twice():
    rng = np.random.default_rng(6)
    x = Tensor(rng.normal(size=(1, 1, 4, 4)), requires_grad=True)
    w = Tensor(rng.normal(size=(1, 1, 2, 2)), requires_grad=True)
    (gx,) = ad.grad((ad.conv2d(x, w) ** 2).sum(), [x], create_graph=True)
    (gw,) = ad.grad(gx.sum(), [w])
    assert gw.shape == w.shape and np.all(np.isfinite(gw.data)) and np.any(gw.data != 0)
    assert engine.toposort  # the engine's one traversal did all of it


# --- convolutions and pooling -----------------------------------------------------------------


def test_conv2d_with_no_output_channels_is_empty():
    """weight (0, C, kh, kw) failed inside reshape(out_channels, -1) with numpy's "cannot
    reshape array of size 0 into shape (0,newaxis)" (PyTorch refuses it by name); no output
    channels is an empty (N, 0, Ho, Wo), as with no images.

    Found in the attack round (forward mode, transforms, conv, export).
    """
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 5))
    w = np.zeros((0, 3, 3, 3))
    xt = Tensor(x, requires_grad=True)
    out = ad.conv2d(xt, w, padding=1)
    assert out.shape == (2, 0, 5, 5)
    out.sum().backward()
    np.testing.assert_array_equal(xt.grad.data, np.zeros_like(x))


@pytest.mark.parametrize(
    "shape,expected", [((0, 2, 6, 6), (0, 2, 3, 3)), ((2, 0, 6, 6), (2, 0, 3, 3))]
)
def test_max_pool_of_an_empty_batch_is_empty(shape, expected):
    """An empty batch made max_pool2d fail with "max: empty tensor ... has no max", although
    every window has elements (avg_pool2d, and PyTorch for N = 0, give the empty output).

    Found in the attack round (forward mode, transforms, conv, export).
    """
    x = Tensor(np.zeros(shape, np.float32), requires_grad=True)
    out = ad.max_pool2d(x, 3, stride=2, padding=1)
    torch = torch_if_installed()
    if torch is not None and shape[0] == 0:
        pool = torch.nn.functional.max_pool2d(torch.zeros(shape), 3, stride=2, padding=1)
        assert tuple(pool.shape) == expected
    assert out.shape == expected and out.dtype == np.float32
    out.sum().backward()
    assert x.grad.shape == shape


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda x, w: ad.conv2d(x, w, stride=1.0), r"conv2d: stride must be an int >= 1.*1\.0"),
        (lambda x, w: ad.conv2d(x, w, stride=True), r"conv2d: stride must be an int >= 1.*True"),
        (lambda x, w: ad.conv2d(x, w, padding=(1.5, 1)), r"conv2d: padding must be"),
        (lambda x, w: ad.conv2d(x, w, groups=True), r"conv2d: groups must be a positive int"),
        (lambda x, w: ad.max_pool2d(x, 2.0), r"max_pool2d: kernel_size must be an int"),
        (lambda x, w: ad.conv2d(x, w, dilation=None), r"conv2d: dilation must be an int.*None"),
        (lambda x, w: ad.conv1d(x[0], w[..., 0], stride=(1, 1)), r"conv1d: stride must be an int"),
    ],
)
def test_bad_sizes_get_a_clear_error(call, match):
    """A float size used to fail with a bare "'float' object is not iterable"; True passed
    as 1.

    Found in the attack round (forward mode, transforms, conv, export).
    """
    x, w = np.zeros((1, 2, 5, 5)), np.zeros((3, 2, 3, 3))
    with pytest.raises(ValueError, match=match):
        call(x, w)
    # Sequences of ints stay welcome, numpy's included.
    assert ad.conv2d(x, w, stride=np.array([1, 2]), padding=[1, 0]).shape == (1, 3, 5, 2)


# --- padding="same" with an even kernel ---------------------------------------------------------


@pytest.mark.parametrize(
    "kernel,dilation", [((2, 2), 1), ((4, 3), 1), ((2, 3), (3, 2)), ((1, 2), 1)]
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_padding_with_an_even_kernel_matches_torch(torch, kernel, dilation, dtype):
    """padding='same' refused an even dilated kernel, which PyTorch pads with the odd zero
    at the end (bottom, right); so from_torch of such a Conv2d built a layer that failed.

    Found in the attack round (forward mode, transforms, conv, export).
    """
    TF = torch.nn.functional
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 2, 5, 6)).astype(dtype)
    w = rng.normal(size=(3, 2, *kernel)).astype(dtype)
    ours = [Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)]
    theirs = [torch.tensor(v, requires_grad=True) for v in (x, w)]
    out = ad.conv2d(*ours, padding="same", dilation=dilation)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: "may require a zero-padded copy"
        expected = TF.conv2d(*theirs, padding="same", dilation=dilation)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert out.shape == tuple(expected.shape) == (2, 3, 5, 6) and out.dtype == dtype
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=tol, atol=tol)
    upstream = rng.normal(size=out.shape).astype(dtype)
    out.backward(upstream)
    expected.backward(torch.tensor(upstream))
    for mine, ref in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mine.grad.data, ref.grad.numpy(), rtol=tol, atol=tol)
