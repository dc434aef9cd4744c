"""ONNX export of any Module by tracing its forward: the recorded primitives are written op by
op through the `onnx` column of their rows, and onnxruntime must compute what the model does,
for batch sizes other than the example's."""

from __future__ import annotations

import re

import numpy as np
import pytest

import autodiff as ad
import nn
from autodiff import Tensor, rules

onnx = pytest.importorskip("onnx", reason="onnx not installed")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")

RNG = np.random.default_rng(0)


def _session(proto):
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def _assert_runs_as_model(model, shape, batches=(1, 3, 7), rtol=1e-5, atol=1e-5, low=-2, high=2):
    """Export on a batch of 2, then run batches of other sizes in onnxruntime against ours."""
    example = RNG.uniform(low, high, (2, *shape)).astype(np.float32)
    proto = nn.export.to_onnx(model, example)
    session = _session(proto)
    model.eval()  # what the file describes (Dropout off, BatchNorm's running statistics)
    for n in batches:
        x = RNG.uniform(low, high, (n, *shape)).astype(np.float32)
        (got,) = session.run(None, {"input": x})
        want = model(Tensor(x)).data
        assert got.shape == want.shape, (n, got.shape, want.shape)
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=f"batch {n}")
    return proto


def _ops(proto) -> list[str]:
    return [node.op_type for node in proto.graph.node]


class Residual(nn.Module):
    """Every piece the issue names: residual add, tanh, matmul with a Parameter, mean,
    reshape, a getitem slice, concatenate (and an nn.Linear inside, through its row)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter((RNG.normal(size=(6, 6)) * 0.3).astype(np.float32))
        self.head = nn.Linear(6, 4, rng=0)

    def forward(self, x):
        h = x.reshape(x.shape[0], 6)
        h = h + ad.tanh(h @ self.w)
        c = ad.concatenate([h[:, 3:], h[:, :3] * 2.0], axis=1)
        return self.head(c - c.mean(axis=1, keepdims=True))


def test_a_custom_module_is_traced_and_runs_in_onnxruntime():
    model = Residual()
    proto = _assert_runs_as_model(model, (2, 3))
    ops = _ops(proto)
    for op in ("Reshape", "MatMul", "Tanh", "Add", "Slice", "Concat", "ReduceMean", "Gemm"):
        assert op in ops, (op, ops)
    # Parameters by identity, named as in state_dict; the batch axis symbolic both ends.
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(inits[name], value)
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 2, 3]
    dims = [d.dim_param or d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 4]


def test_export_onnx_writes_a_traced_model(tmp_path):
    model = Residual()
    path = nn.export_onnx(model, tmp_path / "r.onnx", np.zeros((1, 2, 3), np.float32))
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    x = RNG.normal(size=(5, 2, 3)).astype(np.float32)
    (got,) = _session(proto).run(None, {"input": x})
    np.testing.assert_allclose(got, model(Tensor(x)).data, rtol=1e-5, atol=1e-6)


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1, rng=0)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 2, 3, stride=1, padding="same", rng=1)
        self.fc = nn.Linear(2 * 4 * 4, 3, rng=2)

    def forward(self, x):
        h = self.pool(self.conv(x).relu())
        h = ad.sigmoid(self.conv2(h)) + h[:, :2]
        return self.fc(h.reshape(h.shape[0], -1)).softmax(axis=-1)


def test_a_small_cnn_is_traced_with_conv_and_pool_written_whole():
    # Conv2d and MaxPool2d are recorded as one node each and written by their layer
    # translators: their primitive, unfold2d (im2col), has no ONNX operator.
    proto = _assert_runs_as_model(SmallCNN(), (1, 8, 8))
    ops = _ops(proto)
    assert ops.count("Conv") == 2 and ops.count("MaxPool") == 1, ops
    inits = {i.name for i in proto.graph.initializer}
    assert {"conv.weight", "conv.bias", "conv2.weight", "fc.weight", "fc.bias"} <= inits


class Fn(nn.Module):
    def __init__(self, f) -> None:
        super().__init__()
        self.f = f
        self.p = nn.Parameter(RNG.uniform(0.5, 1.5, (4,)).astype(np.float32))

    def forward(self, x):
        return self.f(x, self.p)


# One forward per family of rows, each checked by value in onnxruntime on batches 1, 3 and 7.
EXPRESSIONS = {
    "arithmetic": lambda x, p: (x - p) / (p + 1) * -x,
    "pow_and_sqrt": lambda x, p: (x * x + 1) ** 0.5 + abs(x) ** p,
    "exp_log_trig": lambda x, p: ad.exp(-x * x) + ad.log(p + x * x) + ad.sin(x) * ad.cos(p),
    "hyperbolic": lambda x, p: ad.sinh(x * 0.5) + ad.cosh(x * 0.5) + ad.tan(x * 0.3),
    "activations": lambda x, p: x.relu() + x.sigmoid() + x.tanh() + ad.maximum(x, p * 0.1),
    "minimum_where": lambda x, p: ad.minimum(x, p) + ad.where(p.data > 1, x, p * 2),
    "rounding": lambda x, p: ad.floor(x * 3) + x.round() + x.round(1) + ad.sign(x),
    "reductions": lambda x, p: (
        x.sum(axis=1, keepdims=True)
        + x.max(axis=-1, keepdims=True)
        - x.min(axis=1, keepdims=True)
        + x.prod(axis=1, keepdims=True)
    ),
    "total_sum_keeps_batch_free": lambda x, p: x * x.sum() + x.mean(),
    "softmax_logsumexp": lambda x, p: x.softmax(axis=1) + x.logsumexp(axis=1, keepdims=True),
    "cumsum": lambda x, p: x.cumsum(axis=1) * p,
    "transpose_matmul": lambda x, p: (x[:, :, None] @ x[:, None, :]).transpose(0, 2, 1).sum(1),
    "einsum": lambda x, p: ad.einsum("bi,i->b", x, p)[:, None] + x,
    "getitem_forms": lambda x, p: ad.concatenate(
        [x[:, ::-1], x[:, -1:], x[..., 1:3], x[:, None, 0][:, :, None][:, 0] * p[1]], axis=1
    ),
    "getitem_array": lambda x, p: x[:, np.array([3, 0, 0, 2])] * p,
    "broadcast_to": lambda x, p: np.broadcast_to(x[:, None, :], (x.shape[0], 2, 4)).sum(1),
    "cast": lambda x, p: (x.astype(np.float64) * 2).astype(np.float32) + p,
    "softplus_erf": lambda x, p: ad.softplus(x) + ad.erf(x),
    "flatten_reshape": lambda x, p: x.reshape(-1).reshape(x.shape[0], 2, 2).sum(-1),
}


@pytest.mark.parametrize("name", sorted(EXPRESSIONS))
def test_each_family_of_rows_is_translated(name):
    _assert_runs_as_model(Fn(EXPRESSIONS[name]), (4,))


def test_a_float64_model_exports_float64():
    model = Fn(lambda x, p: x * p + 1)
    model.p = nn.Parameter(np.arange(4.0))
    proto = nn.export.to_onnx(model, np.zeros((1, 4)))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    x = RNG.normal(size=(3, 4))
    (got,) = _session(proto).run(None, {"input": x})
    np.testing.assert_allclose(got, x * np.arange(4.0) + 1, rtol=1e-12)


class Scan(nn.Module):
    def forward(self, x):
        return x.cumprod(axis=1)


class Outer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = Scan()

    def forward(self, x):
        return self.inner(x.tanh())


def test_an_op_without_translation_is_named_with_its_forward(tmp_path):
    message = (
        "export_onnx: op 'cumprod' (in Scan.forward) has no ONNX translation: "
        "ONNX has no cumulative product"
    )
    with pytest.raises(TypeError, match=re.escape(message)):
        nn.export_onnx(Outer(), tmp_path / "m.onnx", np.ones((1, 3), np.float32))
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_translation_refusing_one_case_says_why():
    model = Fn(lambda x, p: x[:, p.data > 1].sum() * p)
    with pytest.raises(TypeError, match=r"op 'getitem' \(in Fn.forward\) .* boolean mask"):
        nn.export.to_onnx(model, np.ones((1, 4), np.float32))


def test_export_reads_the_translation_off_the_row(monkeypatch):
    # No list of its own: switching the row's column off is what export then reports.
    monkeypatch.setattr(rules.tanh, "onnx", "none: switched off by this test")
    with pytest.raises(TypeError, match=r"op 'tanh' \(in Residual.forward\) .* switched off"):
        nn.export.to_onnx(Residual(), np.ones((1, 2, 3), np.float32))
    monkeypatch.setattr(rules.tanh, "onnx", "Sigmoid")  # whatever the row says is written
    proto = nn.export.to_onnx(Residual(), np.ones((1, 2, 3), np.float32))
    assert "Sigmoid" in _ops(proto) and "Tanh" not in _ops(proto)


@pytest.mark.parametrize(
    "f, what",
    [
        # A mask from a comparison is not recorded: the file would hold the example's mask.
        (lambda x, p: ad.where(x.data > 0, x, p), "its param 'cond' of shape (2, 4)"),
        (lambda x, p: x + Tensor(np.sign(x.data)), "a constant of shape (2, 4)"),
    ],
)
def test_an_array_computed_from_the_input_outside_the_graph_is_refused(f, what):
    with pytest.raises(TypeError, match=re.escape(what) + ", which follows the batch size"):
        nn.export.to_onnx(Fn(f), RNG.normal(size=(2, 4)).astype(np.float32))


def test_a_forward_for_one_batch_size_only_is_exported_for_that_size():
    # The second trace (a batch of 3) fails: the file fixes the batch axis at 2, and runs.
    model = Fn(lambda x, p: x.reshape(4, 2) * 2)
    proto = nn.export.to_onnx(model, np.zeros((2, 4), np.float32))
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 4]
    x = RNG.normal(size=(2, 4)).astype(np.float32)
    (got,) = _session(proto).run(None, {"input": x})
    np.testing.assert_allclose(got, x.reshape(4, 2) * 2)


def test_a_reduction_over_the_batch_gives_a_fixed_output_shape():
    model = Fn(lambda x, p: (x * p).sum(axis=0))
    proto = _assert_runs_as_model(model, (4,))
    dims = [d.dim_param or d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim]
    assert dims == [4]


def test_the_layer_path_is_kept_for_models_of_nn_layers():
    # A Sequential of known layers is written module by module, as before: node names
    # carry the module path, which traced nodes (named by op) would not all have.
    proto = nn.export.to_onnx(nn.MLP(4, [3], 2, rng=0), np.zeros((1, 4)))
    assert [n.name for n in proto.graph.node][0].startswith("layers.0")


def test_the_models_modes_are_restored_and_its_forward_unpatched():
    model = SmallCNN()
    model.train()
    nn.export.to_onnx(model, np.zeros((1, 1, 8, 8), np.float32))
    assert all(m.training for m in model.modules())
    assert "forward" not in vars(model.conv) and "forward" not in vars(model.pool)


def test_binary_cross_entropy_is_composed_of_onnx_operators():
    # The row's translation writes the floored logs: compared at p = 0 and 1 (where the floor
    # at -100 decides) and within float epsilon of them. The input is the probabilities.
    target = np.array([0.0, 1.0, 0.25, 1.0], np.float32)

    def bce(x, p):
        # The target broadcast by recorded ops: a constant of the batch's shape is refused.
        return nn.functional.binary_cross_entropy(x, x * 0 + target, "none")

    model = Fn(bce)
    proto = nn.export.to_onnx(model, np.full((2, 4), 0.5, np.float32))
    assert "Log" in _ops(proto)
    x = np.array([[1.0, 0.0, 0.3, 0.8], [1e-8, 1 - 6e-8, 0.5, 1.0], [0, 1, 1, 0]], np.float32)
    (got,) = _session(proto).run(None, {"input": x})
    want = model(Tensor(x)).data
    assert got[0, 0] == got[0, 1] == 100.0
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_softmax_cross_entropy_is_onnxs_fused_loss():
    # Labels are a param the file holds: a forward with fixed labels runs on their batch.
    labels = np.array([2, 0])
    model = Fn(lambda x, p: ad.softmax_cross_entropy(x * p, labels))
    proto = nn.export.to_onnx(model, np.zeros((2, 4), np.float32))
    assert "SoftmaxCrossEntropyLoss" in _ops(proto)
    x = RNG.normal(size=(2, 4)).astype(np.float32)
    (got,) = _session(proto).run(None, {"input": x})
    np.testing.assert_allclose(got, model(Tensor(x)).data, rtol=1e-6)


def test_draw_onnx_draws_a_traced_model():
    source = nn.export.draw_onnx(nn.export.to_onnx(Residual(), np.zeros((1, 2, 3)))).source
    assert "Tanh" in source and "w\n(6, 6)" in source


class Layers(nn.Module):
    """nn's layers inside a custom forward: the windowed ones, LeakyReLU (a mask of its
    input, which no row records) and BatchNorm written whole, the rest through rows; one
    Linear called twice (one set of initialisers)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 3, 3, padding=1, rng=0)
        self.bn = nn.BatchNorm1d(3)
        self.ln = nn.LayerNorm(5)
        self.drop = nn.Dropout(0.5)
        self.act = nn.LeakyReLU(0.1)
        self.pool = nn.AvgPool2d(2)
        self.soft = nn.Softmax(axis=1)
        self.flat = nn.Flatten()
        self.shared = nn.Linear(5, 5, rng=1)
        self.bn.running_mean = Tensor(RNG.normal(size=3).astype(np.float32))
        self.bn.running_var = Tensor(RNG.uniform(0.5, 2, size=3).astype(np.float32))

    def forward(self, x):
        h = self.ln(self.drop(self.act(self.bn(self.conv(x)))))
        h = self.shared(self.shared(h))[:, None]  # (N, 1, 3, 5)
        return self.soft(self.flat(self.pool(ad.concatenate([h, h], axis=2))))


def test_nn_layers_inside_a_custom_forward():
    proto = _assert_runs_as_model(Layers(), (2, 5))
    ops = _ops(proto)
    for op in ("Conv", "BatchNormalization", "LeakyRelu", "AveragePool", "Concat"):
        assert op in ops, (op, ops)
    inits = [i.name for i in proto.graph.initializer]
    assert inits.count("shared.weight") == 1
    assert {"bn.running_mean", "bn.running_var", "ln.weight"} <= set(inits)


class Same(nn.Module):
    def forward(self, x):
        return x


def test_a_forward_that_returns_its_input():
    proto = _assert_runs_as_model(Same(), (3,))
    dims = [d.dim_param or d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3]


def _write_columns(x, p):
    y = x * 1.0
    y[:, 1:3] = p[:2] * 10  # a slice of every row: the batch axis whole
    return y


def _write_from_input(x, p):
    y = x * 1.0
    y[..., 0] = x[:, 3] * 2
    return y


def _write_strided(x, p):
    y = (x[:, :, None] * p).sum(-1)[:, None, :] * 1.0
    y[:, 0, ::2] = 5.0
    return y


@pytest.mark.parametrize("f", [_write_columns, _write_from_input, _write_strided])
def test_writes_into_a_tensor_keep_the_batch_symbolic(f):
    proto = _assert_runs_as_model(Fn(f), (4,))
    assert "ScatterND" in _ops(proto)


def test_a_write_along_the_batch_axis_fixes_the_batch_size():
    def write_first_row(x, p):
        y = x * 1.0
        y[0] = p
        return y

    model = Fn(write_first_row)
    proto = nn.export.to_onnx(model, np.zeros((2, 4), np.float32))
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 4]
    x = RNG.normal(size=(2, 4)).astype(np.float32)
    (got,) = _session(proto).run(None, {"input": x})
    np.testing.assert_array_equal(got, np.concatenate([model.p.data[None], x[1:]]))
