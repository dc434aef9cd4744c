"""Taking a model elsewhere: safetensors files, ONNX export, and the PyTorch bridge.

Every round trip is checked by values: ours -> file/ONNX/torch -> outputs equal to ours, and
torch -> ours. Tests that need an optional package (onnx, onnxruntime, safetensors, torch) skip
with a reason when it is absent; CI installs them with the `[export]` extra.
"""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nn
from nn.formats import read_safetensors


def _state() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "layers.0.weight": rng.normal(size=(3, 4)).astype(np.float32),
        "layers.0.bias": rng.normal(size=3),
        "half": rng.normal(size=(2, 2)).astype(np.float16),
        "step": np.array(17, dtype=np.int64),
        "counts": np.arange(-5, 5, dtype=np.int8),
        "unsigned": np.arange(4, dtype=np.uint32),
        "mask": np.array([True, False, True]),
        "empty": np.zeros((0, 3), dtype=np.float64),
        "transposed": np.arange(12, dtype=np.float64).reshape(3, 4).T,  # not C-contiguous
        "big_endian": np.arange(3, dtype=">i4"),
        "größe.ß": np.array([1.5]),
    }


def _assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert list(got) == list(want)
    for name, array in want.items():
        assert got[name].shape == array.shape, name
        assert got[name].dtype == array.dtype.newbyteorder("="), name
        np.testing.assert_array_equal(got[name], array, err_msg=name)


# --- safetensors -----------------------------------------------------------------------------


def test_safetensors_round_trip_is_exact_and_ordered(tmp_path):
    state = _state()
    path = nn.save(state, tmp_path / "w.safetensors")
    _assert_same(nn.load(path), state)


def test_safetensors_layout_matches_the_documented_format(tmp_path):
    weight = np.array([[1.0, 2.0]], dtype=np.float32)
    path = nn.save({"w": weight, "b": np.array([3], dtype=np.int64)}, tmp_path / "w.safetensors")
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    assert length % 8 == 0  # padded so the data starts aligned
    header = json.loads(raw[8 : 8 + length])
    assert header["w"] == {"dtype": "F32", "shape": [1, 2], "data_offsets": [0, 8]}
    assert header["b"] == {"dtype": "I64", "shape": [1], "data_offsets": [8, 16]}
    assert header["__metadata__"]["producer"].startswith("autodiff-nn")
    assert raw[8 + length :] == struct.pack("<ffq", 1.0, 2.0, 3)


def test_module_round_trip_through_safetensors(tmp_path):
    model = nn.MLP(4, [5], 3, rng=1)
    nn.save(model, tmp_path / "m.safetensors")
    other = nn.MLP(4, [5], 3, rng=2)
    other.load_state_dict(nn.load(tmp_path / "m.safetensors"))
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    np.testing.assert_array_equal(nn.predict(other, x), nn.predict(model, x))


def test_the_safetensors_package_reads_our_files_and_we_read_its(tmp_path):
    st = pytest.importorskip("safetensors.numpy", reason="safetensors not installed")
    state = _state()
    ours = nn.save(state, tmp_path / "ours.safetensors")
    _assert_same({k: st.load_file(ours)[k] for k in state}, state)
    theirs = tmp_path / "theirs.safetensors"
    st.save_file(
        {k: np.asarray(v, dtype=v.dtype.newbyteorder("="), order="C") for k, v in state.items()},
        theirs,
        metadata={"format": "np"},
    )
    got = nn.load(theirs)
    assert set(got) == set(state)
    for name, array in state.items():
        np.testing.assert_array_equal(got[name], array, err_msg=name)
        assert got[name].dtype == array.dtype.newbyteorder("=")


def test_pytorch_users_load_our_file(tmp_path):
    pytest.importorskip("safetensors", reason="safetensors not installed")
    torch = pytest.importorskip("torch", reason="torch not installed")
    from safetensors.torch import load_file

    model = nn.MLP(4, [5], 3, rng=1)
    tensors = load_file(nn.save(model, tmp_path / "m.safetensors"))
    for name, value in model.state_dict().items():
        assert tensors[name].dtype == torch.float32
        np.testing.assert_array_equal(tensors[name].numpy(), value)


def test_safetensors_save_is_atomic(tmp_path, monkeypatch):
    path = nn.save({"a": np.ones(3)}, tmp_path / "w.safetensors")
    before = path.read_bytes()

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        nn.save({"a": np.zeros(3)}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]  # no temp left


_DTYPES = st.sampled_from(
    ["?", "u1", "i1", "<u2", ">i2", "<u4", "<i4", "<u8", ">i8", "<f2", "<f4", ">f8"]
).map(np.dtype)
_ARRAYS = st.dictionaries(
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=8).filter(
        lambda n: not n.startswith("__")
    ),
    _DTYPES.flatmap(
        lambda d: hnp.arrays(d, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
    ),
    max_size=5,
)


@given(state=_ARRAYS)
def test_any_state_round_trips_exactly_and_the_package_agrees(tmp_path_factory, state):
    path = nn.save(state, tmp_path_factory.mktemp("st") / "w.safetensors")
    got = nn.load(path)
    assert list(got) == list(state)
    for name, array in state.items():
        assert got[name].shape == array.shape and got[name].dtype == array.dtype.newbyteorder("=")
        np.testing.assert_array_equal(got[name], array)  # NaNs compare equal here
    try:
        from safetensors.numpy import load_file
    except ImportError:
        return
    theirs = load_file(path)
    assert set(theirs) == set(state)
    for name in state:
        assert theirs[name].tobytes() == got[name].tobytes()


_VALID = None


def _valid_file_bytes() -> bytes:
    global _VALID
    if _VALID is None:
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            path = nn.save(
                {
                    "a": np.arange(6, dtype=np.float32).reshape(2, 3),
                    "b": np.array([1, 2], dtype=np.int64),
                },
                Path(folder) / "v.safetensors",
            )
            _VALID = path.read_bytes()
    return _VALID


@given(
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.none() | st.integers(0, 10**6),
)
def test_damaged_files_load_or_raise_valueerror_never_anything_else(tmp_path_factory, edits, cut):
    raw = bytearray(_valid_file_bytes())
    for where, value in edits:
        raw[where % len(raw)] = value
    if cut is not None:
        raw = raw[: cut % len(raw)]
    path = tmp_path_factory.mktemp("bad") / "d.safetensors"
    path.write_bytes(bytes(raw))
    try:
        loaded = nn.load(path)
    except ValueError as exc:
        assert str(path) in str(exc)
    else:  # a change the format cannot notice (in the data, or whitespace): sizes still agree
        assert sum(a.nbytes for a in loaded.values()) <= len(raw)


def _file(tmp_path: Path, header: object, data: bytes = b"", length: int | None = None) -> Path:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path = tmp_path / "bad.safetensors"
    size = len(text) if length is None else length
    path.write_bytes(struct.pack("<Q", size) + text + data)
    return path


GOOD = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}


@pytest.mark.parametrize(
    "header, data, message",
    [
        (b"not json", b"", "not valid JSON"),
        (b"[" * 100_000, b"", "nested too deeply"),
        ([1, 2], b"", "not a JSON object"),
        ({"w": {"dtype": "F32", "shape": [2]}}, bytes(8), "malformed"),
        (
            {"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}},
            bytes(4),
            "no numpy dtype",
        ),
        ({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, bytes(8), "invalid shape"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 10**12]}}, bytes(8), "outside"),
        ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, bytes(8), "span 8 bytes"),
        (GOOD, bytes(12), "cover 8 of the 12"),
        ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8), "gap"),
        (
            {**GOOD, "v": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}},
            bytes(8),
            "overlap",
        ),
        ({**GOOD, "__metadata__": {"a": 1}}, bytes(8), "__metadata__"),
        (b'{"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "w": {}}', b"x", "twice"),
    ],
)
def test_malformed_safetensors_are_refused_naming_the_file(tmp_path, header, data, message):
    path = _file(tmp_path, header, data)
    with pytest.raises(ValueError, match=message) as info:
        nn.load(path)
    assert str(path) in str(info.value)


def test_a_huge_claimed_header_is_refused_before_reading_it(tmp_path):
    path = _file(tmp_path, GOOD, bytes(8), length=2**62)
    with pytest.raises(ValueError, match="claims 4611686018427387904 bytes"):
        nn.load(path)
    (tmp_path / "tiny.safetensors").write_bytes(b"\x01\x02")
    with pytest.raises(ValueError, match="fewer than the 8-byte"):
        nn.load(tmp_path / "tiny.safetensors")


def test_a_huge_claimed_tensor_allocates_nothing(tmp_path, monkeypatch):
    # A header promising a 10**12-element tensor in a tiny file is refused by its offsets
    # before np.empty is ever called.
    calls = []
    monkeypatch.setattr(np, "empty", lambda *a, **k: calls.append(a))
    header = {"w": {"dtype": "F32", "shape": [10**12], "data_offsets": [0, 4 * 10**12]}}
    with pytest.raises(ValueError, match="outside"):
        read_safetensors(_file(tmp_path, header, bytes(8)))
    assert calls == []


def test_safetensors_refuses_what_it_cannot_hold(tmp_path):
    with pytest.raises(TypeError, match="'z' has dtype complex128"):
        nn.save({"z": np.zeros(2, dtype=complex)}, tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="reserved"):
        nn.save({"__metadata__": np.zeros(2)}, tmp_path / "w.safetensors")
    with pytest.raises(FileNotFoundError, match="no such file"):
        nn.load(tmp_path / "missing.safetensors")
    assert not list(tmp_path.iterdir())


def test_npz_still_chosen_for_other_suffixes(tmp_path):
    path = nn.save({"a": np.ones(2)}, tmp_path / "w.npz")
    assert path.read_bytes()[:2] == b"PK"
    np.testing.assert_array_equal(nn.load(path)["a"], np.ones(2))


# --- ONNX ------------------------------------------------------------------------------------


class Doubler(nn.Module):
    def forward(self, x):
        return x * 2


class MyLinear(nn.Linear):  # a subclass may compute something else: never exported as Linear
    pass


def _models() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    """name -> (model, shape of one example) covering every module nn offers."""
    return {
        "linear": (nn.Linear(4, 3, rng=0), (4,)),
        "linear_no_bias": (nn.Linear(4, 3, bias=False, rng=0), (4,)),
        "linear_rank3": (nn.Linear(4, 3, rng=0), (2, 4)),
        "linear_rank3_no_bias": (nn.Linear(4, 3, bias=False, rng=0), (2, 4)),
        "relu": (nn.ReLU(), (5,)),
        "sigmoid": (nn.Sigmoid(), (5,)),
        "tanh": (nn.Tanh(), (5,)),
        "leaky_relu": (nn.LeakyReLU(0.2), (5,)),
        "softmax": (nn.Softmax(), (5,)),
        "softmax_axis1": (nn.Softmax(axis=1), (3, 2)),
        "identity": (nn.Identity(), (5,)),
        "dropout": (nn.Dropout(0.5, rng=0), (5,)),
        "flatten": (nn.Flatten(), (3, 4)),
        "flatten_from_2": (nn.Flatten(2), (2, 3, 4)),
        "flatten_last": (nn.Flatten(-1), (2, 3)),
        "empty_sequential": (nn.Sequential(), (3,)),
        "nested": (
            nn.Sequential(
                nn.Flatten(),
                nn.Sequential(nn.Linear(12, 6, rng=1), nn.Tanh()),
                nn.Dropout(0.3),
                nn.Linear(6, 2, rng=2),
                nn.Softmax(),
            ),
            (3, 4),
        ),
        **{
            f"mlp_{a}": (nn.MLP(6, [8, 5], 3, activation=a, rng=3), (6,))
            for a in ("relu", "sigmoid", "tanh", "leaky_relu")
        },
        "mlp_sigmoid_output": (nn.MLP(6, [8], 1, output_activation="sigmoid", rng=4), (6,)),
    }


try:  # convolutions and normalisation, where this version of nn has them
    from nn import conv as convs
except ImportError:
    convs = None
needs_conv = pytest.mark.skipif(convs is None, reason="this version of nn has no nn.conv")


def _randomised(model: nn.Module, seed: int) -> nn.Module:
    """Weights, biases and running statistics away from their initial ones and zeros, so a
    swapped scale and shift or mean and variance would show."""
    rng = np.random.default_rng(seed)
    for name, value in model.state_dict().items():
        if value.dtype.kind == "f":
            fresh = (
                rng.uniform(0.5, 1.5, value.shape)
                if "var" in name
                else rng.normal(size=value.shape)
            )
            value = fresh.astype(value.dtype)
        model.load_state_dict({**model.state_dict(), name: value})
    return model


def _conv_models() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    if convs is None:
        return {}
    return {
        "conv2d": (convs.Conv2d(2, 4, 3, stride=2, padding=1, rng=0), (2, 7, 6)),
        "conv2d_same_dilated_grouped": (
            convs.Conv2d(4, 6, 3, padding="same", dilation=2, groups=2, bias=False, rng=0),
            (4, 8, 7),
        ),
        "conv2d_rect": (
            convs.Conv2d(1, 2, (2, 3), stride=(1, 2), padding=(1, 0), rng=0),
            (1, 5, 6),
        ),
        "conv1d": (convs.Conv1d(3, 2, 3, stride=2, padding=1, rng=0), (3, 9)),
        "max_pool": (convs.MaxPool2d(3, stride=2, padding=1), (2, 7, 7)),
        "avg_pool": (convs.AvgPool2d(2), (2, 6, 6)),
        "avg_pool_padded": (convs.AvgPool2d(3, 2, 1), (1, 7, 7)),
        "batch_norm2d": (_randomised(convs.BatchNorm2d(3), 1), (3, 4, 4)),
        "batch_norm1d": (_randomised(convs.BatchNorm1d(5), 2), (5,)),
        "batch_norm1d_no_affine": (_randomised(convs.BatchNorm1d(4, affine=False), 3), (4, 6)),
        "layer_norm": (_randomised(convs.LayerNorm((3, 4)), 4), (2, 3, 4)),
        "layer_norm_plain": (convs.LayerNorm(5, elementwise_affine=False), (5,)),
        "lenet5": (convs.LeNet5(rng=0), (784,)),
        "lenet5_images": (convs.LeNet5(rng=1), (1, 28, 28)),
        "cnn": (
            _randomised(
                nn.Sequential(
                    convs.Conv2d(1, 4, 3, padding=1, rng=0),
                    convs.BatchNorm2d(4),
                    nn.ReLU(),
                    convs.MaxPool2d(2),
                    nn.Flatten(),
                    nn.Linear(64, 3, rng=1),
                ),
                5,
            ),
            (1, 8, 8),
        ),
    }


MODELS = {**_models(), **_conv_models()}
# No PyTorch module reshapes its input the way LeNet5.forward does.
TORCH_MODELS = sorted(name for name in MODELS if not name.startswith("lenet5"))


def _batch(shape: tuple[int, ...], n: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=(n, *shape)) * 2).astype(np.float32)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnx_export_is_valid_and_computes_what_we_compute(tmp_path, name):
    onnx = pytest.importorskip("onnx", reason="onnx not installed")
    from onnx.reference import ReferenceEvaluator

    model, shape = MODELS[name]
    model.train()  # export must describe evaluation mode whatever the model's mode
    path = nn.export_onnx(model, tmp_path / "m.onnx", _batch(shape, 1, 0))
    assert all(m.training for m in model.modules())  # the mode is given back
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.ir_version == nn.export.IR_VERSION == 8
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == list(shape)
    # Every weight (and running statistic) travels under its state_dict name; the only other
    # initialisers are the exporter's own constants (reshape targets, ones and zeros).
    state = model.state_dict()
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    for name, value in state.items():
        if not name.endswith("num_batches_tracked"):
            np.testing.assert_array_equal(inits[name], value, err_msg=name)
    assert all(
        name.endswith((".shape", "image_shape", ".ones", ".zeros"))
        for name in set(inits) - set(state)
    )

    runners = [lambda x: ReferenceEvaluator(proto).run(None, {"input": x})[0]]
    try:
        import onnxruntime as ort
    except ImportError:
        pass
    else:
        session = ort.InferenceSession(path.read_bytes(), providers=["CPUExecutionProvider"])
        runners.append(lambda x: session.run(None, {"input": x})[0])
    model.eval()
    for seed, n in enumerate((1, 5, 33)):  # batch sizes other than the example's
        x = _batch(shape, n, seed + 1)
        ours = nn.predict(model, x)
        for run in runners:
            theirs = run(x)
            assert theirs.dtype == np.float32 and theirs.shape == ours.shape
            # float32 precision relative to the outputs' scale (logits can reach ~100)
            np.testing.assert_allclose(
                theirs, ours, rtol=1e-5, atol=1e-6 * max(1.0, float(np.abs(ours).max()))
            )


def test_float64_models_export_as_double_and_mixed_dtypes_are_refused():
    onnx = pytest.importorskip("onnx", reason="onnx not installed")
    from onnx.reference import ReferenceEvaluator

    model = nn.MLP(3, [4], 2, activation="tanh", dtype=np.float64, rng=0)
    proto = nn.export.to_onnx(model, np.zeros((1, 3)))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    x = np.random.default_rng(0).normal(size=(6, 3))
    np.testing.assert_allclose(
        ReferenceEvaluator(proto).run(None, {"input": x})[0],
        nn.predict(model, x),
        rtol=1e-12,
        atol=1e-12,
    )
    mixed = nn.Sequential(nn.Linear(3, 3, rng=0), nn.Linear(3, 3, dtype=np.float64, rng=0))
    with pytest.raises(TypeError, match=r"one float dtype, got \['float32', 'float64'\]"):
        nn.export.to_onnx(mixed, np.zeros((1, 3)))


def test_onnx_uses_gemm_for_matrices_and_names_nodes_by_module():
    pytest.importorskip("onnx", reason="onnx not installed")
    proto = nn.export.to_onnx(nn.MLP(4, [3], 2, rng=0), np.zeros((1, 4)))
    assert [(n.op_type, n.name) for n in proto.graph.node] == [
        ("Gemm", "layers.0/Gemm"),
        ("Relu", "layers.1/Relu"),
        ("Gemm", "layers.2/Gemm"),
    ]
    assert proto.graph.node[-1].output[0] == "output"
    assert proto.graph.node[0].input == ["input", "layers.0.weight", "layers.0.bias"]


def test_a_shared_layer_is_one_initialiser():
    onnx = pytest.importorskip("onnx", reason="onnx not installed")
    from onnx.reference import ReferenceEvaluator

    shared = nn.Linear(3, 3, rng=0)
    model = nn.Sequential(shared, nn.Tanh(), shared)
    proto = nn.export.to_onnx(model, np.zeros((1, 3)))
    assert [i.name for i in proto.graph.initializer] == ["layers.0.weight", "layers.0.bias"]
    onnx.checker.check_model(proto, full_check=True)
    x = _batch((3,), 4, 0)
    np.testing.assert_allclose(
        ReferenceEvaluator(proto).run(None, {"input": x})[0],
        nn.predict(model, x),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "model",
    [
        nn.Sequential(nn.Linear(2, 2, rng=0), Doubler()),
        nn.Sequential(nn.Sequential(MyLinear(2, 2, rng=0))),
        Doubler(),
    ],
    ids=["custom-in-sequential", "subclass-of-linear", "custom-model"],
)
def test_modules_without_a_layer_translation_are_traced(tmp_path, model):
    # Once refused by name; now their forward is traced (tests/nn/test_export_tracing.py). A
    # subclass of Linear is traced too, never written as the Linear it may not compute.
    onnx = pytest.importorskip("onnx", reason="onnx not installed")
    from onnx.reference import ReferenceEvaluator

    from autodiff import Tensor

    path = nn.export_onnx(model, tmp_path / "m.onnx", np.zeros((1, 2), np.float32))
    x = np.random.default_rng(1).normal(size=(3, 2)).astype(np.float32)
    (got,) = ReferenceEvaluator(onnx.load(path)).run(None, {"input": x})
    np.testing.assert_allclose(got, model(Tensor(x)).data, rtol=1e-6)


def test_onnx_bad_inputs_are_refused(tmp_path):
    pytest.importorskip("onnx", reason="onnx not installed")
    with pytest.raises(ValueError, match=r"cannot run on example_input of shape \(1, 5\)"):
        nn.export_onnx(nn.Linear(4, 2), tmp_path / "m.onnx", np.zeros((1, 5)))
    with pytest.raises(ValueError, match=r"layers.0 needs inputs with a batch axis .* \(1, 4\)"):
        nn.export_onnx(nn.Sequential(nn.Linear(4, 2)), tmp_path / "m.onnx", np.zeros(4))
    with pytest.raises(ValueError, match="flattens from axis 0"):
        nn.export_onnx(nn.Flatten(0), tmp_path / "m.onnx", np.zeros((2, 3)))
    with pytest.raises(ValueError, match="batch axis first"):
        nn.export_onnx(nn.ReLU(), tmp_path / "m.onnx", np.float32(1))
    with pytest.raises(TypeError, match="expected an nn Module"):
        nn.export_onnx(lambda x: x, tmp_path / "m.onnx", np.zeros((1, 2)))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        nn.export_onnx(nn.ReLU(), tmp_path / "no" / "m.onnx", np.zeros((1, 2)))
    assert not list(tmp_path.iterdir())


def test_onnx_export_is_atomic(tmp_path, monkeypatch):
    pytest.importorskip("onnx", reason="onnx not installed")
    path = nn.export_onnx(nn.ReLU(), tmp_path / "m.onnx", np.zeros((1, 2)))
    before = path.read_bytes()

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        nn.export_onnx(nn.Tanh(), path, np.zeros((1, 2)))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_missing_optional_packages_give_the_install_command(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"autodiff-nn\[export\]"):
        nn.export_onnx(nn.ReLU(), tmp_path / "m.onnx", np.zeros((1, 2)))
    with pytest.raises(ImportError, match="to_torch needs PyTorch: pip install torch"):
        nn.to_torch(nn.ReLU())
    with pytest.raises(ImportError, match="from_torch needs PyTorch"):
        nn.from_torch(object())


def test_draw_onnx_shows_operators_weights_and_edges(tmp_path):
    pytest.importorskip("onnx", reason="onnx not installed")
    path = nn.export_onnx(
        nn.MLP(4, [3], 2, activation="leaky_relu", rng=0), tmp_path / "m.onnx", np.zeros((1, 4))
    )
    source = nn.export.draw_onnx(path).source
    assert source.count("Gemm") == 2 and "LeakyRelu" in source and "alpha=0.01" in source
    assert "init0 -> op0" in source and 'init0 [label="layers.0.weight' in source
    assert "op2 -> out0" in source and "in0 -> op0" in source
    assert "(batch, 4)" in source and "(3, 4)" in source


# --- PyTorch ---------------------------------------------------------------------------------


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="torch not installed")


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_to_torch_computes_what_we_compute(torch, name):
    model, shape = MODELS[name]
    model.eval()
    twin = nn.to_torch(model)
    assert not twin.training
    x = _batch(shape, 7, 0)
    with torch.no_grad():
        theirs = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(theirs, nn.predict(model, x), rtol=1e-5, atol=1e-6)


def test_to_torch_names_and_layouts_are_pytorchs(torch):
    model = nn.MLP(4, [3], 2, rng=0)
    twin = nn.to_torch(model)
    assert isinstance(twin, torch.nn.Sequential) and isinstance(twin[0], torch.nn.Linear)
    theirs = {k: v.numpy() for k, v in twin.state_dict().items()}
    assert list(theirs) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(theirs[name.removeprefix("layers.")], value)
    assert theirs["0.weight"].shape == (3, 4)  # (out, in), no transposition anywhere
    assert twin.training and twin[0].training  # the mode is carried over
    twin[0].weight.data.zero_()  # a copy: ours is untouched
    assert np.abs(model.layers[0].weight.data).sum() > 0


def _sgd_step_ours(model, x, y, lr):
    from autodiff import Tensor

    optimizer = nn.optim.SGD(model.parameters(), lr=lr)
    loss = nn.F.cross_entropy(model(Tensor(x)), y)
    model.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.data)


def _sgd_step_torch(torch, module, x, y, lr):
    optimizer = torch.optim.SGD(module.parameters(), lr=lr)
    loss = torch.nn.functional.cross_entropy(module(torch.from_numpy(x)), torch.from_numpy(y))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def test_one_training_step_matches_after_to_torch(torch):
    model = nn.Sequential(nn.Flatten(), nn.MLP(12, [16, 8], 4, activation="tanh", rng=5))
    twin = nn.to_torch(model)
    x = _batch((3, 4), 32, 1)
    y = np.random.default_rng(2).integers(0, 4, size=32)
    ours = _sgd_step_ours(model, x, y, 0.5)
    theirs = _sgd_step_torch(torch, twin, x, y, 0.5)
    assert ours == pytest.approx(theirs, rel=1e-6)
    updated = {k: v.detach().numpy() for k, v in twin.state_dict().items()}
    for name, value in model.state_dict().items():
        # ours "layers.1.layers.0.weight" is torch's "1.0.weight"
        np.testing.assert_allclose(
            updated[name.replace("layers.", "")], value, rtol=1e-5, atol=1e-6
        )


def test_from_torch_computes_and_trains_like_torch(torch):
    torch.manual_seed(0)
    tn = torch.nn
    module = tn.Sequential(
        tn.Flatten(),
        tn.Linear(12, 10),
        tn.LeakyReLU(0.1),
        tn.Dropout(0.2),
        tn.Linear(10, 6),
        tn.Sigmoid(),
        tn.Linear(6, 5, bias=False),
        tn.Identity(),
        tn.ReLU(),
        tn.Tanh(),
        tn.Linear(5, 3),
    )
    ours = nn.from_torch(module)
    assert type(ours) is nn.Sequential and type(ours[3]) is nn.Dropout and ours[3].p == 0.2
    assert ours[6].bias is None
    module.eval()
    ours.eval()
    x = _batch((3, 4), 9, 3)
    with torch.no_grad():
        np.testing.assert_allclose(
            nn.predict(ours, x), module(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6
        )
    softmax = nn.from_torch(tn.Softmax(dim=1))
    np.testing.assert_allclose(
        nn.predict(softmax, x[:, 0]), torch.softmax(torch.from_numpy(x[:, 0]), 1).numpy(), rtol=1e-6
    )
    y = np.random.default_rng(4).integers(0, 3, size=9)
    assert _sgd_step_ours(ours, x, y, 0.3) == pytest.approx(
        _sgd_step_torch(torch, module, x, y, 0.3), rel=1e-6
    )
    theirs = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    mine = ours.state_dict()
    assert [k.removeprefix("layers.") for k in mine] == list(theirs)
    for name, value in mine.items():
        np.testing.assert_allclose(
            value, theirs[name.removeprefix("layers.")], rtol=1e-5, atol=1e-6
        )


def test_round_trip_through_torch_is_exact(torch):
    model = nn.MLP(5, [7], 2, activation="leaky_relu", output_activation="sigmoid", rng=6)
    back = nn.from_torch(nn.to_torch(model))
    assert [type(m).__name__ for m in back] == [type(m).__name__ for m in model]
    for (a, va), (b, vb) in zip(model.state_dict().items(), back.state_dict().items(), strict=True):
        assert a == b and va.dtype == vb.dtype
        np.testing.assert_array_equal(va, vb)


def test_bridge_refuses_what_has_no_counterpart(torch):
    with pytest.raises(TypeError, match=r"to_torch: module 'layers.1' is a Doubler"):
        nn.to_torch(nn.Sequential(nn.ReLU(), Doubler()))
    with pytest.raises(TypeError, match=r"from_torch: module '1' is a Embedding, which has no"):
        nn.from_torch(torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Embedding(3, 2)))
    with pytest.raises(TypeError, match="end_dim=-1"):
        nn.from_torch(torch.nn.Flatten(0, 1))
    with pytest.raises(TypeError, match="Softmax without dim"):
        nn.from_torch(torch.nn.Softmax())
    with pytest.raises(TypeError, match="expected a torch.nn.Module"):
        nn.from_torch(nn.ReLU())


# --- the main job ----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".onnx", ".safetensors"])
def test_main_job_exports_the_trained_model(tmp_path, capsys, suffix):
    if suffix == ".onnx":
        pytest.importorskip("onnx", reason="onnx not installed")
    from nn.__main__ import main

    target = tmp_path / f"model{suffix}"
    assert (
        main(
            [
                "--dataset",
                "moons",
                "--epochs",
                "3",
                "--no-plots",
                "--quiet",
                "--out",
                str(tmp_path),
                "--export",
                str(target),
            ]
        )
        == 0
    )
    assert re.search(rf"^export\s+{re.escape(str(target))}$", capsys.readouterr().out, re.M)
    trained = nn.MLP(2, [16, 16], 2)
    trained.load_state_dict(nn.load(tmp_path / "weights.npz"))
    x = _batch((2,), 10, 0)
    if suffix == ".onnx":
        from onnx.reference import ReferenceEvaluator

        got = ReferenceEvaluator(str(target)).run(None, {"input": x})[0]
        np.testing.assert_allclose(got, nn.predict(trained, x), rtol=1e-5, atol=1e-6)
    else:
        _assert_same(nn.load(target), trained.state_dict())


@pytest.mark.parametrize(
    "target, message",
    [
        ("model.pt", "expected a path ending in .onnx or .safetensors"),
        ("missing/model.safetensors", "does not exist"),
    ],
)
def test_main_job_checks_the_export_path_before_training(tmp_path, capsys, target, message):
    from nn.__main__ import main

    with pytest.raises(SystemExit) as info:
        main(["--dataset", "xor", "--export", str(tmp_path / target), "--out", str(tmp_path)])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing trained, nothing written


# --- convolutions and normalisation (where nn has them) --------------------------------------


@needs_conv
def test_conv_export_details(tmp_path):
    onnx = pytest.importorskip("onnx", reason="onnx not installed")
    model, _ = MODELS["cnn"]
    proto = nn.export.to_onnx(model, np.zeros((1, 1, 8, 8)))
    assert [n.op_type for n in proto.graph.node] == [
        "Conv",
        "BatchNormalization",
        "Relu",
        "MaxPool",
        "Flatten",
        "Gemm",
    ]
    names = {i.name for i in proto.graph.initializer}
    assert names == set(model.state_dict()) - {"layers.1.num_batches_tracked"}
    conv = onnx.helper.get_attribute_value
    attrs = {a.name: conv(a) for a in proto.graph.node[0].attribute}
    assert attrs == {
        "kernel_shape": [3, 3],
        "strides": [1, 1],
        "pads": [1, 1, 1, 1],
        "dilations": [1, 1],
        "group": 1,
    }
    with pytest.raises(ValueError, match=r"layers.0 has no running statistics"):
        nn.export.to_onnx(
            nn.Sequential(convs.BatchNorm1d(3, track_running_stats=False)), np.zeros((2, 3))
        )


@needs_conv
def test_conv_models_train_like_torch_both_ways(torch):
    tn = torch.nn
    torch.manual_seed(0)
    module = tn.Sequential(
        tn.Conv2d(2, 4, 3, padding=1),
        tn.BatchNorm2d(4),
        tn.ReLU(),
        tn.MaxPool2d(2),
        tn.Conv2d(4, 4, 3, padding="same", groups=2),
        tn.AvgPool2d(2),
        tn.Flatten(),
        tn.LayerNorm(16),
        tn.Linear(16, 3),
    )
    ours = nn.from_torch(module)
    assert [type(m).__name__ for m in ours] == [type(m).__name__ for m in module]
    x = _batch((2, 8, 8), 6, 7)
    y = np.random.default_rng(8).integers(0, 3, size=6)
    # Training mode: BatchNorm normalises by the batch and updates its running statistics.
    assert _sgd_step_ours(ours, x, y, 0.2) == pytest.approx(
        _sgd_step_torch(torch, module, x, y, 0.2), rel=1e-5
    )
    theirs = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    mine = ours.state_dict()
    assert sorted(k.removeprefix("layers.") for k in mine) == sorted(theirs)
    for name, value in mine.items():
        np.testing.assert_allclose(
            value, theirs[name.removeprefix("layers.")], rtol=1e-4, atol=1e-5, err_msg=name
        )
    twin = nn.to_torch(ours.eval())
    module.eval()
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(twin(torch.from_numpy(x)).numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(nn.predict(ours, x), want, rtol=1e-4, atol=1e-5)


@needs_conv
def test_lenet5_and_odd_torch_layers_are_refused_by_name(torch):
    with pytest.raises(TypeError, match="'\\(the model itself\\)' is a LeNet5"):
        nn.to_torch(convs.LeNet5())
    with pytest.raises(TypeError, match="'0' is MaxPool2d with ceil_mode=True"):
        nn.from_torch(torch.nn.Sequential(torch.nn.MaxPool2d(2, ceil_mode=True)))
    with pytest.raises(TypeError, match="pads with 'reflect'"):
        nn.from_torch(torch.nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"))
