"""ONNX export (nn/export.py): every module, and Sequential/MLP mixes of them, exported and run
by onnx's reference evaluator and onnxruntime, with outputs equal to ours.

Tests that need an optional package (onnx, onnxruntime) skip with a reason when it is absent;
CI installs them with the `[export]` extra. The safetensors files are in test_formats.py, the
PyTorch bridge in test_torch_bridge.py.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

import nn
from tests.nn.zoo import MODELS, Doubler, batch, convs, needs_conv


class MyLinear(nn.Linear):  # a subclass may compute something else: never exported as Linear
    pass


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnx_export_is_valid_and_computes_what_we_compute(tmp_path, name):
    onnx = pytest.importorskip("onnx", reason="onnx not installed")
    from onnx.reference import ReferenceEvaluator

    model, shape = MODELS[name]
    model.train()  # export must describe evaluation mode whatever the model's mode
    path = nn.export_onnx(model, tmp_path / "m.onnx", batch(shape, 1, 0))
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
        x = batch(shape, n, seed + 1)
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
    x = batch((3,), 4, 0)
    np.testing.assert_allclose(
        ReferenceEvaluator(proto).run(None, {"input": x})[0],
        nn.predict(model, x),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "model, where, kind",
    [
        (nn.Sequential(nn.Linear(2, 2), Doubler()), "layers.1", "Doubler"),
        (nn.Sequential(nn.Sequential(MyLinear(2, 2))), "layers.0.layers.0", "MyLinear"),
        (Doubler(), "(the model itself)", "Doubler"),
    ],
)
def test_unsupported_modules_are_named(tmp_path, model, where, kind):
    pytest.importorskip("onnx", reason="onnx not installed")
    with pytest.raises(TypeError, match=rf"'{re.escape(where)}' is a {kind}, which has no ONNX"):
        nn.export_onnx(model, tmp_path / "m.onnx", np.zeros((1, 2)))
    assert not list(tmp_path.iterdir())


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
    input and output names failed deep in the ONNX checker.

    Found in the attack round (forward mode, transforms, conv, export).
    """
    pytest.importorskip("onnx", reason="onnx not installed")
    import nn

    model = nn.Sequential(nn.Linear(3, 3, rng=0), nn.Linear(3, 2, rng=1))
    with pytest.raises(ValueError, match=match):
        nn.export_onnx(model, tmp_path / "m.onnx", np.ones((1, 3), np.float32), **names)
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda C: C.Conv2d(2, 3, (2, 4), padding="same", rng=0), (2, 5, 6)),
        (lambda C: C.Conv2d(2, 2, 2, padding="same", dilation=(1, 3), groups=2, rng=0), (2, 5, 6)),
        (lambda C: C.Conv1d(2, 3, 4, padding="same", rng=0), (2, 9)),
    ],
)
def test_onnx_export_of_same_padding_with_an_even_kernel(tmp_path, make, shape):
    """Found in the attack round (forward mode, transforms, conv, export)."""
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


def test_a_float64_model_with_only_buffers_exports_as_double(tmp_path):
    """The export's dtype came from the parameters alone, so a float64 BatchNorm without
    affine parameters (its running statistics are buffers) became a float32 file.

    Found in the attack round (forward mode, transforms, conv, export).
    """
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
