"""Adversarial cases for forward mode, the function transforms, convolutions and the ways a
model leaves the library (files, ONNX, PyTorch), each pinned to a defect it once showed.

PyTorch is the oracle where it has the same function; the tests that need it (or onnx,
onnxruntime, safetensors) skip, saying why, when it is not installed.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import autodiff as ad
from autodiff import Tensor
from autodiff import func as F

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # the oracle is optional
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the test oracle) not installed")


def _np(value):
    return np.asarray(value.data if isinstance(value, Tensor) else value)


# --- forward mode and transforms ---------------------------------------------------------------


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_jvp_at_an_infinite_derivative_is_quiet_and_matches_torch(dtype):
    """sqrt'(0) = inf: jvp answered it with a numpy RuntimeWarning from inside the pow rule,
    where the backward pass (and the README) promise the answer quietly."""
    x = np.array([0.0, 4.0, 0.0], dtype=dtype)
    v = np.array([1.0, 1.0, -2.0], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        y, dy = ad.jvp(lambda a: a.sqrt(), (x,), (v,))
        _, dz = ad.jvp(lambda a: abs(a) ** 0.5, (x,), (v,))
    _, expected = torch.func.jvp(torch.sqrt, (torch.tensor(x),), (torch.tensor(v),))
    np.testing.assert_array_equal(_np(dy), expected.numpy())  # inf, 0.25, -inf
    _, expected = torch.func.jvp(lambda a: a.abs() ** 0.5, (torch.tensor(x),), (torch.tensor(v),))
    np.testing.assert_array_equal(_np(dz), expected.numpy())  # 0 * inf = NaN at 0, as torch
    assert _np(dy).dtype == dtype


@needs_torch
def test_jacfwd_of_several_arguments_given_as_arrays_matches_torch():
    """jacfwd(f, argnums=(0, 1)) passed the argument it was not perturbing as the raw numpy
    array, so f(a, b) = a * b.exp() failed with "'numpy.ndarray' object has no attribute 'exp'"
    (jacrev, and jacfwd of Tensors, gave f Tensors)."""
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
    with pytest.raises(TypeError, match="jacfwd: argument 0 has dtype int"):
        F.jacfwd(lambda x: x * 2)(np.array([1, 2]))


# --- convolutions and pooling -----------------------------------------------------------------


def test_conv2d_with_no_output_channels_is_empty():
    """weight (0, C, kh, kw) failed inside reshape(out_channels, -1) with numpy's "cannot
    reshape array of size 0 into shape (0,newaxis)" (PyTorch refuses it by name); no output
    channels is an empty (N, 0, Ho, Wo), as with no images."""
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
    every window has elements (avg_pool2d, and PyTorch for N = 0, give the empty output)."""
    x = Tensor(np.zeros(shape, np.float32), requires_grad=True)
    out = ad.max_pool2d(x, 3, stride=2, padding=1)
    if torch is not None and shape[0] == 0:
        assert tuple(TF.max_pool2d(torch.zeros(shape), 3, stride=2, padding=1).shape) == expected
    assert out.shape == expected and out.dtype == np.float32
    out.sum().backward()
    assert x.grad.shape == shape


def test_max_over_a_nonempty_axis_of_an_empty_tensor():
    t = Tensor(np.zeros((0, 3)), requires_grad=True)
    assert t.max(axis=1).shape == (0,)  # numpy and torch.amax: shape (0,)
    assert t.min(axis=1).shape == (0,)


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
    as 1."""
    x, w = np.zeros((1, 2, 5, 5)), np.zeros((3, 2, 3, 3))
    with pytest.raises(ValueError, match=match):
        call(x, w)
    # Sequences of ints stay welcome, numpy's included.
    assert ad.conv2d(x, w, stride=np.array([1, 2]), padding=[1, 0]).shape == (1, 3, 5, 2)


@needs_torch
def test_conv1d_takes_pytorchs_one_tuples():
    """torch.nn.Conv1d keeps stride, padding and dilation as 1-tuples; conv1d refused them
    ("stride must be an int >= 1, got (2,)"), so nn.Conv1d(..., stride=(2,)) failed."""
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(2, 4, 13)), rng.normal(size=(6, 2, 3))
    kwargs = dict(stride=(2,), padding=(1,), dilation=(2,), groups=2)
    np.testing.assert_allclose(
        ad.conv1d(x, w, **kwargs).data,
        TF.conv1d(torch.tensor(x), torch.tensor(w), **kwargs).numpy(),
        rtol=1e-12,
    )
    import nn

    layer = nn.Conv1d(4, 6, 3, dtype=np.float64, rng=0, **kwargs)
    assert layer(x).shape == (2, 6, 6)  # (13 + 2 - 2 * 2 - 1) // 2 + 1


# --- PyTorch bridge ---------------------------------------------------------------------------


@needs_torch
def test_from_torch_keeps_a_layer_used_twice():
    """torch's named_children() lists a shared module once, so from_torch turned
    Sequential(lin, ReLU, lin) into Sequential(lin, ReLU): a model silently computing
    something else (to_torch of our shared layer gives exactly that torch model)."""
    import nn

    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 3, dtype=torch.float64)
    model = torch.nn.Sequential(lin, torch.nn.ReLU(), lin)
    ours = nn.from_torch(model)
    x = np.random.default_rng(0).normal(size=(4, 3))
    with torch.no_grad():
        expected = model(torch.tensor(x)).numpy()
    np.testing.assert_allclose(ours(x).data, expected, rtol=1e-12)
    assert ours.layers[0] is ours.layers[2]  # still one layer, as in torch
    ours_shared = nn.Sequential(ours.layers[0], nn.Tanh(), ours.layers[0])
    back = nn.from_torch(nn.to_torch(ours_shared))
    np.testing.assert_array_equal(back(x).data, ours_shared(x).data)


# --- ONNX -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "names,match",
    [
        (dict(input_name="layers.0.weight"), "input_name 'layers.0.weight' is the name of one of"),
        (dict(output_name="layers.1.bias"), "output_name 'layers.1.bias' is the name of one of"),
        (dict(input_name="x", output_name="x"), "input_name and output_name are both 'x'"),
        (dict(input_name=""), "input_name must be a non-empty string"),
    ],
)
def test_onnx_input_and_output_names_cannot_alias_weights(tmp_path, names, match):
    """An input named like a weight made a file in which onnxruntime fed the input in place of
    the weight (it lets graph inputs override initialisers): silently wrong outputs. Equal
    input and output names failed deep in the ONNX checker."""
    pytest.importorskip("onnx", reason="onnx not installed")
    import nn

    model = nn.Sequential(nn.Linear(3, 3, rng=0), nn.Linear(3, 2, rng=1))
    with pytest.raises(ValueError, match=match):
        nn.export_onnx(model, tmp_path / "m.onnx", np.ones((1, 3), np.float32), **names)
    assert not (tmp_path / "m.onnx").exists()


# --- files --------------------------------------------------------------------------------------


def _safetensors(path, header: bytes, data: bytes = b""):
    path.write_bytes(len(header).to_bytes(8, "little") + header + data)
    return path


@pytest.mark.parametrize(
    "header,data",
    [
        (
            b'{"a":{"dtype":"F32","shape":[0,1000000000000000000000000000000],"data_offsets":[0,0]}}',
            b"",
        ),
        (b'{"a":{"dtype":"F64","shape":[4611686018427387904,4,0],"data_offsets":[0,0]}}', b""),
        (
            b'{"a":{"dtype":"F32","shape":[' + b",".join([b"1"] * 65) + b'],"data_offsets":[0,4]}}',
            b"\0" * 4,
        ),
        (b'{"a":{"dtype":"F32","shape":[' + b"9" * 5000 + b'],"data_offsets":[0,4]}}', b"\0" * 4),
    ],
    ids=["0-by-1e30", "2**62-by-4-by-0", "65-axes", "5000-digits"],
)
def test_crafted_safetensors_shapes_are_refused_naming_the_file(tmp_path, header, data):
    """Shapes that pass the size check (an empty axis makes any other axis hold no bytes) or
    a 5,000-digit integer reached numpy or json and came out as their own ValueErrors
    ("Maximum allowed dimension exceeded", "Exceeds the limit (4300 digits)..."), naming
    neither the file nor the tensor."""
    import nn

    path = _safetensors(tmp_path / "w.safetensors", header, data)
    with pytest.raises(ValueError, match=r"load: .*w\.safetensors is not a valid \.safetensors"):
        nn.load(path)


def test_a_name_given_twice_is_still_named(tmp_path):
    import nn

    header = (
        b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
        b'"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}'
    )
    with pytest.raises(ValueError, match="names 'a' twice"):
        nn.load(_safetensors(tmp_path / "w.safetensors", header, b"\1\2"))


def _npz_with_header(path, shape_text: str, manifest_shape: list[int]):
    """A file nn.save could have written but for one entry's forged .npy header."""
    import io
    import json
    import zipfile

    header = "{'descr': '<f8', 'fortran_order': False, 'shape': " + shape_text + ", }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
    manifest = json.dumps({"a": {"shape": manifest_shape, "dtype": "<f8"}})
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in (("__format__", "autodiff-nn/1"), ("__manifest__", manifest)):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.array(text))
            archive.writestr(f"{name}.npy", buffer.getvalue())
        archive.writestr("a.npy", npy)
    return path


def test_an_npz_entry_of_impossible_shape_is_refused_naming_the_file(tmp_path):
    """An entry declaring shape (0, 10**30) holds no bytes, so it passed the size check and
    numpy's reader then raised OverflowError ("Python int too large to convert to C long"),
    neither a ValueError nor naming the file."""
    import nn

    path = _npz_with_header(tmp_path / "w.npz", f"(0, {10**30})", [0, 10**30])
    with pytest.raises(ValueError, match=r"load: .*w\.npz was refused: .*no numpy array"):
        nn.load(path)


def test_saving_a_ragged_list_names_the_parameter(tmp_path):
    """numpy's "setting an array element with a sequence..." came out bare."""
    import nn

    with pytest.raises(TypeError, match="save: parameter 'w' is not an array"):
        nn.save({"w": [[1.0], [2.0, 3.0]]}, tmp_path / "w.npz")


@needs_torch
@pytest.mark.parametrize(
    "make",
    [
        lambda C: C.BatchNorm1d(3, dtype=np.float64),
        lambda C: C.BatchNorm2d(3, affine=False, dtype=np.float64),
        lambda C: C.LayerNorm(3, dtype=np.float64),
    ],
    ids=["batch_norm", "batch_norm_no_affine", "layer_norm"],
)
def test_float64_normalisation_round_trips_through_torch_exactly(make):
    """to_torch built BatchNorm and LayerNorm in torch's default float32 (silently rounding
    float64 statistics and weights), and from_torch of a float64 one failed with
    "parameter 'weight' has dtype float32 in the model but float64 in the state dict"."""
    import nn
    from nn import conv as C

    ours = make(C)
    rng = np.random.default_rng(0)
    state = {
        name: (rng.uniform(0.5, 1.5, v.shape) if v.dtype.kind == "f" else v)
        for name, v in ours.state_dict().items()
    }
    ours.load_state_dict(state)
    theirs = nn.to_torch(ours)
    for name, value in theirs.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), state[name])
        assert value.numpy().dtype == state[name].dtype
    back = nn.from_torch(theirs)
    for name, value in back.state_dict().items():
        assert value.dtype == state[name].dtype
        np.testing.assert_array_equal(value, state[name])
    for module in (ours, theirs, back):
        module.eval()
    x = rng.normal(size=(4, 3, 2, 2) if isinstance(ours, C.BatchNorm2d) else (4, 3))
    with torch.no_grad():
        expected = theirs(torch.tensor(x)).numpy()
    np.testing.assert_allclose(ours(x).data, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(back(x).data, ours(x).data)


# --- checkpoint ---------------------------------------------------------------------------------


def test_checkpoint_with_integer_labels_and_a_frozen_parameter():
    """The recomputing backward asked the engine for the gradient of every input, so an
    integer label (or a parameter with requires_grad=False) failed with "grad: input 2
    (shape (2,)) does not require grad"."""
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
    with pytest.raises(TypeError, match=r"^checkpoint: f must return one Tensor, got tuple"):
        F.checkpoint(lambda t: (t, t))(Tensor(np.ones(2), requires_grad=True))


def test_explain_forward_shows_each_value_as_it_was_at_its_step():
    """Rows held views of the tensors' memory, so a later write into a tensor (b[0] = ...)
    changed the value printed for an earlier step: v1 = a * 1 showed [4, 2] for a = [1, 2].
    And the observer's own rule call warned at sqrt(0), where jvp is quiet."""

    def f(a):
        b = a * 1
        b[0] = a[1] * 2
        return b.sqrt()

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        rows = ad.explain_forward(f, (np.array([0.0, 2.0]),), (np.ones(2),), print_rows=False)
        ad.explain_forward(lambda a: a.sqrt(), (0.0,), (1.0,), print_rows=False)
    first = next(r for r in rows if r["op"] == "mul")
    np.testing.assert_array_equal(first["value"], [0.0, 2.0])
    assert rows[-1]["op"] == "pow"
    np.testing.assert_allclose(rows[-1]["value"], [2.0, np.sqrt(2.0)])


def test_jvp_tangent_is_not_a_view_of_the_callers_array():
    """The primal is copied (Tensor(x)), the tangent was not: for f = reshape the output
    tangent was a view of the caller's v, and `dy += 1` (written in place on a constant)
    changed v."""
    x, v = np.ones(4), np.arange(4.0)
    y, dy = ad.jvp(lambda a: a.reshape(2, 2), (x,), (v,))
    y += 1
    dy += 1
    np.testing.assert_array_equal(x, np.ones(4))
    np.testing.assert_array_equal(v, np.arange(4.0))
    np.testing.assert_array_equal(dy.data, [[1.0, 2.0], [3.0, 4.0]])


# --- padding="same" with an even kernel ---------------------------------------------------------


@needs_torch
@pytest.mark.parametrize(
    "kernel,dilation", [((2, 2), 1), ((4, 3), 1), ((2, 3), (3, 2)), ((1, 2), 1)]
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_padding_with_an_even_kernel_matches_torch(kernel, dilation, dtype):
    """padding='same' refused an even dilated kernel, which PyTorch pads with the odd zero
    at the end (bottom, right); so from_torch of such a Conv2d built a layer that failed."""
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


@needs_torch
def test_conv1d_same_with_an_even_kernel_and_from_torch():
    import nn

    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(2, 4, 9)), rng.normal(size=(6, 2, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        expected = TF.conv1d(
            torch.tensor(x), torch.tensor(w), padding="same", dilation=3, groups=2
        ).numpy()
        np.testing.assert_allclose(
            ad.conv1d(x, w, padding="same", dilation=3, groups=2).data, expected, rtol=1e-12
        )
        for layer, shape in (
            (torch.nn.Conv2d(2, 3, 2, padding="same"), (1, 2, 5, 5)),
            (torch.nn.Conv1d(2, 3, 4, padding="same"), (1, 2, 7)),
        ):
            xs = torch.randn(*shape)
            with torch.no_grad():
                want = layer(xs).numpy()
            np.testing.assert_allclose(
                nn.from_torch(layer)(xs.numpy()).data, want, rtol=1e-5, atol=1e-6
            )


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda C: C.Conv2d(2, 3, (2, 4), padding="same", rng=0), (2, 5, 6)),
        (lambda C: C.Conv2d(2, 2, 2, padding="same", dilation=(1, 3), groups=2, rng=0), (2, 5, 6)),
        (lambda C: C.Conv1d(2, 3, 4, padding="same", rng=0), (2, 9)),
    ],
)
def test_onnx_export_of_same_padding_with_an_even_kernel(tmp_path, make, shape):
    onnx = pytest.importorskip("onnx", reason="onnx not installed")
    from onnx.reference import ReferenceEvaluator

    import nn
    from nn import conv as C

    model = make(C)
    x = np.random.default_rng(2).normal(size=(3, *shape)).astype(np.float32)
    path = nn.export_onnx(model, tmp_path / "m.onnx", x[:1])
    (got,) = ReferenceEvaluator(onnx.load(path)).run(None, {"input": x})
    np.testing.assert_allclose(got, model(x).data, rtol=1e-5, atol=1e-5)
    try:
        import onnxruntime
    except ImportError:
        return
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        session.run(None, {"input": x})[0], model(x).data, rtol=1e-5, atol=1e-5
    )


# --- atomic saving ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_a_long_but_legal_file_name_can_be_saved(tmp_path, suffix):
    """The temporary file was named "." + the whole target name + ".XXXXXXXX.tmp", so a
    target name of 240-255 bytes, which the file system accepts, failed with "File name too
    long" naming the temporary file."""
    import nn

    path = tmp_path / ("\u00e9" * ((250 - len(suffix)) // 2) + suffix)  # ~250 bytes: é is 2
    path.write_bytes(b"")  # the name itself is legal here
    nn.save({"a": np.arange(3.0)}, path)
    np.testing.assert_array_equal(nn.load(path)["a"], np.arange(3.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_failing_to_create_the_temporary_file_names_the_users_path(tmp_path, monkeypatch):
    """A folder the user cannot write into failed in mkstemp, outside the error translation:
    "Permission denied: '.../.w.npz.abc123.tmp'", a hidden file they never asked for."""
    import errno
    import os
    import tempfile

    import nn

    def refused(*args, dir=None, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", os.path.join(dir, ".w.x.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    path = tmp_path / "w.npz"
    with pytest.raises(OSError, match=f"save: could not write {path}: Permission denied$") as info:
        nn.save({"a": np.ones(2)}, path)
    assert info.value.errno == errno.EACCES


# --- Jacobians of a function that draws random numbers ----------------------------------------


def _dropout_model(rng=None):
    import nn

    return nn.Sequential(
        nn.Linear(4, 6, dtype=np.float64, rng=0),
        nn.Dropout(0.5, rng=rng),
        nn.Linear(6, 3, dtype=np.float64, rng=1),
    )


@pytest.mark.parametrize("own_generator", [False, True])
def test_jacobians_of_a_model_with_dropout_use_one_mask(own_generator):
    """jacfwd runs f once per input element, and each run drew a new Dropout mask, so the
    columns were of different functions (jacfwd differed from jacrev by 0.36); jacobian's
    shape probe drew a mask too, so even when it chose jacrev its answer was not that of a
    jacrev call made in its place. PyTorch's jacfwd refuses randomness; here every pass
    replays the random state the first one started from."""
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
    refuses ("argnums elements must be unique")."""

    def f(a, b):
        return (a * a * b).sum()

    with pytest.raises(ValueError, match=r"argnums \(.*\) names an argument twice"):
        transform(f, argnums)(np.array([1.0, 2.0]), np.array([3.0, 4.0]))


@pytest.mark.parametrize("argnums", [True, (0, False), 0.0, np.int64(0), "0"])
def test_argnums_that_are_not_ints_are_refused(argnums):
    """argnums=True was taken as 1 (a bool is an int to Python): the gradient of the wrong
    argument, silently; np.int64(0) failed with "'numpy.int64' object is not iterable"."""
    with pytest.raises(TypeError, match="grad: argnums must be an int or a tuple of ints"):
        F.grad(lambda a, b: (a * b).sum(), argnums)(np.ones(2), np.ones(2))


@pytest.mark.parametrize("mode", ["forward-over-reverse", "reverse-over-forward"])
def test_hvp_names_itself_for_a_missing_tangent(mode):
    with pytest.raises(ValueError, match="^hvp: 2 primals but 1 tangents"):
        F.hvp(lambda a, b: (a * b).sum(), (np.ones(2), np.ones(2)), (np.ones(2),), mode=mode)


def test_forward_mode_through_a_checkpoint_with_integer_labels():
    """The checkpoint's JVP rule started a jvp level over every input, integer labels too,
    and failed: "checkpoint: primal 2 has dtype int64; forward mode needs floats" (so jvp,
    hvp and hessian of a checkpointed loss with labels could not run)."""
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


@needs_torch
def test_jvp_through_writing_numbers_and_arrays_into_a_tensor_matches_torch():
    """Inside jvp, `b[1] = 7.0` (a number, not a Tensor, written into a tensor that carries a
    tangent) failed with "'float' object has no attribute '_data'" in write_tangents."""

    def f(a, ones, zeros, tensor):
        b = a + zeros(3)  # its tangent is a broadcast (read-only) view
        b[0] = a * 5
        b[1] = 7.0
        b[2:] = tensor([1.5])
        c = a * ones(2)
        c[...] = 3.0
        return b.sum() * a + c.sum()

    def ours(a):
        return f(a, np.ones, np.zeros, np.array)

    def theirs(a):
        return f(
            a,
            lambda n: torch.ones(n, dtype=torch.float64),
            lambda n: torch.zeros(n, dtype=torch.float64),
            lambda v: torch.tensor(v, dtype=torch.float64),
        )

    y, dy = ad.jvp(ours, (2.0,), (1.0,))
    ty, tdy = torch.func.jvp(
        theirs, (torch.tensor(2.0, dtype=torch.float64),), (torch.tensor(1.0, dtype=torch.float64),)
    )
    assert y.item() == ty.item() and dy.item() == tdy.item()
    for nested in (lambda a: ad.jvp(ours, (a,), (1.0,))[1], F.grad(ours)):
        np.testing.assert_allclose(_np(ad.jvp(nested, (2.0,), (1.0,))[1]), 10.0)


def test_a_float64_model_with_only_buffers_exports_as_double(tmp_path):
    """The export's dtype came from the parameters alone, so a float64 BatchNorm without
    affine parameters (its running statistics are buffers) became a float32 file."""
    onnx = pytest.importorskip("onnx", reason="onnx not installed")
    from onnx.reference import ReferenceEvaluator

    import nn
    from nn import conv as C

    model = C.BatchNorm1d(3, affine=False, dtype=np.float64)
    model.load_state_dict(
        {
            **model.state_dict(),
            "running_mean": np.array([0.1, -0.2, 0.3]),
            "running_var": np.array([0.5, 1.5, 2.5]),
        }
    )
    model.eval()
    x = np.random.default_rng(0).normal(size=(4, 3))
    proto = onnx.load(nn.export_onnx(model, tmp_path / "bn.onnx", x[:1]))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    (got,) = ReferenceEvaluator(proto).run(None, {"input": x})
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, model(x).data, rtol=1e-12)


# --- kinks and ties, both modes and second order, against PyTorch -------------------------------

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


@needs_torch
@pytest.mark.parametrize("name", sorted(KINKS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kinks_and_ties_match_torch_in_both_modes_and_second_order(name, dtype):
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


# --- state: threads and exceptions --------------------------------------------------------------


def test_forward_mode_and_no_grad_in_two_threads_at_once():
    import threading

    from autodiff import engine

    errors: list[str] = []
    start = threading.Barrier(2)

    def forward_mode():
        try:
            start.wait(5)
            for i in range(60):
                x = np.array([1.0, 2.0]) * (i + 1)
                _, dy = ad.jvp(lambda a: (a * a).sum(), (x,), (np.ones(2),))
                assert dy.item() == 2 * x.sum()
                np.testing.assert_array_equal(F.hessian(lambda a: (a**3).sum())(x), np.diag(6 * x))
        except Exception as exc:  # reported below, with the thread's name
            errors.append(f"forward: {exc!r}")

    def no_grad_and_backward():
        try:
            start.wait(5)
            for _ in range(60):
                w = Tensor(np.ones(2), requires_grad=True)
                with ad.no_grad():
                    assert not (w * w).requires_grad
                    assert engine.state.forward == ()
                (w * w).sum().backward()
                np.testing.assert_array_equal(w.grad.data, [2.0, 2.0])
        except Exception as exc:
            errors.append(f"no_grad: {exc!r}")

    threads = [threading.Thread(target=t) for t in (forward_mode, no_grad_and_backward)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert engine.state.forward == () and engine.is_grad_enabled()


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


@pytest.mark.parametrize("name", sorted(FAILURES))
@pytest.mark.parametrize("grad_mode", [True, False])
def test_an_exception_inside_a_transform_leaves_no_state_behind(name, grad_mode):
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


# --- what f may return -------------------------------------------------------------------

BAD_RESULTS = {
    "dict": lambda a: {"y": a * 2},
    "nested_tuple": lambda a: ((a, a * 2), a * 3),
    "none": lambda a: None,
    "string": lambda a: "y",
}


@pytest.mark.parametrize("result", sorted(BAD_RESULTS))
@pytest.mark.parametrize(
    "who,call",
    [
        ("jvp", lambda f, x: ad.jvp(f, (x,), (x,))),
        ("vjp", lambda f, x: F.vjp(f, x)),
        ("grad", lambda f, x: F.grad(f)(x)),
        ("jacrev", lambda f, x: F.jacrev(f)(x)),
        ("jacfwd", lambda f, x: F.jacfwd(f)(x)),
        ("jacobian", lambda f, x: F.jacobian(f)(x)),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_results_that_are_not_tensors_are_refused_by_name(result, who, call):
    """f returning ((a, 2a), 3a) gave jvp tangents (zeros, 3v): the inner tuple was taken
    for a constant; a dict made grad and jacrev answer zeros (np.size of a dict is 1) and
    jvp fail with "float() argument must be ... not 'dict'"."""
    with pytest.raises(TypeError, match=f"^{who}: f must return "):
        call(BAD_RESULTS[result], np.ones(2))


def test_constant_results_and_flat_tuples_are_still_fine():
    _, tangents = ad.jvp(lambda a: (a * 2, 3.0, np.ones(2)), (np.ones(2),), (np.ones(2),))
    np.testing.assert_array_equal(_np(tangents[0]), [2.0, 2.0])
    np.testing.assert_array_equal(_np(tangents[1]), 0.0)
    np.testing.assert_array_equal(_np(tangents[2]), [0.0, 0.0])
    assert F.grad(lambda a: 3.0)(2.0) == 0.0


# --- differentiating with respect to tangents and cotangents -----------------------------------


@needs_torch
def test_pullback_and_hvp_are_differentiable_in_their_direction():
    """vjp's pullback took a Tensor cotangent u as numbers, and hvp exported its products as
    arrays whenever the primals were arrays, so d/du pullback(u) and d/dv hvp(f, x, v) came
    back as zeros, silently (grad of a function that no longer depended on its input).
    PyTorch's pullback is differentiable in u; jvp here already was in its tangent."""
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


@needs_torch
def test_grad_is_differentiable_in_its_grad_outputs():
    x = Tensor(np.array([0.5, -1.0]), requires_grad=True)
    u = Tensor(np.array([2.0, 3.0]), requires_grad=True)
    (g,) = ad.grad(x.tanh(), [x], grad_outputs=[u], create_graph=True)
    g.sum().backward()
    np.testing.assert_allclose(u.grad.data, 1 - np.tanh(x.data) ** 2)


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


@needs_torch
@pytest.mark.parametrize("name", sorted(NESTED))
def test_an_inner_transform_of_arrays_closing_over_the_outer_variable(name):
    """An inner transform called with numpy arrays answered in numpy even when f closed over
    the outer transform's variable w, cutting the chain rule: every outer derivative here was
    silently zero. Its result now stays a Tensor exactly when an enclosing transform
    differentiates something it depends on; at top level arrays still give numpy."""
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
    statistics ended far from where one training call leaves them, silently."""
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


@pytest.mark.parametrize("base", [0.0, 2.2250738585072014e-309, 5e-324, 3.0])
def test_power_with_exponent_zero_has_zero_base_derivative_even_at_subnormal_bases(base):
    """a ** b with b = 0 is the constant 1 in a, so its derivative in a is 0. The formula
    b * a**(b-1) gave 0 * inf = NaN for a subnormal base (1/a overflows), not only at a = 0;
    found by the PyTorch sweep."""
    a = Tensor(np.array([base]), requires_grad=True)
    b = Tensor(np.array([0.0]), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        (a**b).sum().backward()
    assert a.grad.data.tolist() == [0.0]
    # d(a**b)/db = a**b log a; at a = 0 the engine's convention is 0 (see ops._log_base).
    np.testing.assert_allclose(b.grad.data, [np.log(base) if base else 0.0])
    # Second order in b is left exact where the first-order formula is finite.
    x = Tensor(np.array([3.0]), requires_grad=True)
    y = Tensor(np.array([0.0]), requires_grad=True)
    (gx,) = ad.grad(x**y, [x], create_graph=True)
    (gxy,) = ad.grad(gx.sum(), [y])
    np.testing.assert_allclose(gxy.data, [1 / 3])  # d/dy (y x**(y-1)) at y = 0 is 1/x


# --- reported by the adversarial hunt of this round, in code the hunters left alone ---------


def test_a_broadcast_gradient_never_shares_memory_with_another_tensors_grad():
    """sum's gradient is a read-only broadcast view of the upstream gradient (no copy for a
    large array); the upstream gradient is also an intermediate's .grad, which the user may
    write into. The leaf's gradient must not change with it."""
    x = Tensor(np.ones((300, 300)), requires_grad=True)
    c = Tensor(np.arange(300.0))
    s = x.sum(axis=0)
    (s * c).sum().backward()
    s.grad.data[:] = 0
    np.testing.assert_array_equal(x.grad.data[0, :3], [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(x.grad.data[-1], np.arange(300.0))
    # Nothing handed out is shared with an array another tensor was given, the other way
    # round either: a view kept for one tensor marks its memory as taken.
    y = Tensor(np.ones((300, 300)), requires_grad=True)
    t = y.sum(axis=0)
    u = t * 1.0
    (u * c).sum().backward()
    t.grad.data[:] = -1
    u.grad.data[:] = -2
    np.testing.assert_array_equal(y.grad.data[0, :3], [0.0, 1.0, 2.0])


def test_create_graph_gives_each_leaf_a_gradient_of_its_own():
    """add hands one gradient Tensor to both inputs: with create_graph both leaves held the
    same object, so an update of one's gradient changed the other's."""
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([3.0, 4.0], requires_grad=True)
    ((a + b) * 1.0).sum().backward(create_graph=True)
    assert a.grad is not b.grad and not np.shares_memory(a.grad.data, b.grad.data)
    with ad.no_grad():
        a.grad += 1
    np.testing.assert_array_equal(b.grad.data, [1.0, 1.0])
    np.testing.assert_array_equal(a.grad.data, [2.0, 2.0])
    # Both stay differentiable: d/da of sum(d(a * b)/da) = d/da sum(b) = 0, d/db = 1.
    a.zero_grad(), b.zero_grad()
    (a * b + a * b).sum().backward(create_graph=True)
    (gb,) = ad.grad(a.grad.sum(), [b])
    np.testing.assert_array_equal(gb.data, [2.0, 2.0])
    # Intermediates get detached gradients, also of their own.
    p = Tensor([1.0, 2.0], requires_grad=True)
    q, r = p * 2.0, p * 3.0
    (q + r).sum().backward(create_graph=True)
    assert not np.shares_memory(q.grad.data, r.grad.data)


def test_clone_is_a_copy_that_stays_in_the_graph():
    x = Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    y = x.clone()
    assert y.dtype == np.float32 and not np.shares_memory(y.data, x.data)
    (y * y).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [2.0, 4.0])
    s = Tensor(np.float64(3.0), requires_grad=True).clone()  # 0-d: a scalar copy
    assert s.item() == 3.0 and s.requires_grad


def test_an_empty_batch_cross_entropy_is_nan_quietly_in_every_mode():
    """The mean over no samples is NaN (as in PyTorch); it warned of 0 / 0, and forward mode
    divided a Python 1.0 by zero (ZeroDivisionError)."""
    import nn

    labels = np.zeros(0, np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        z = Tensor(np.zeros((0, 3), np.float32), requires_grad=True)
        loss = nn.F.cross_entropy(z, labels)
        assert np.isnan(loss.item()) and loss.dtype == np.float32
        loss.backward()
        assert z.grad.shape == (0, 3)
        value, tangent = ad.jvp(
            lambda a: nn.F.cross_entropy(a, labels),
            (Tensor(np.zeros((0, 3))),),
            (Tensor(np.ones((0, 3))),),
        )
        assert np.isnan(value.item()) and tangent.item() == 0.0
        (g,) = ad.grad(nn.F.cross_entropy(z, labels), [z], create_graph=True)
        assert g.shape == (0, 3)
