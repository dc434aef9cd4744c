"""The "add a primitive" checklist works: `arctan` was added by CONTRIBUTING.md's three
steps alone (its row in autodiff/rules/elementwise.py, the method in autodiff/_elementwise.py,
its Case in tests/autodiff/test_rules.py), and here it works everywhere, with no other edit."""

import numpy as np
import pytest

import autodiff as ad
import nn
from autodiff import Tensor, rules
from autodiff.testing import gradcheck
from autodiff.viz import draw_graph, explain_backward

X = np.array([-1.5, -0.2, 0.0, 0.7, 3.0])
SLOPE = 1 / (1 + X * X)


def test_the_row_has_every_column():
    row = rules.OPS["arctan"]
    assert row is rules.arctan
    assert row.elementwise and row.method == "arctan" and row.numpy == (np.arctan,)
    assert row.formula == ("1 / (1 + x^2)",) and row.onnx == "Atan"


def test_method_value_and_gradient():
    x = Tensor(X, requires_grad=True)
    y = x.arctan()
    np.testing.assert_allclose(y.raw(), np.arctan(X))
    assert y.op == "arctan"
    y.sum().backward()
    np.testing.assert_allclose(x.grad.raw(), SLOPE)


def test_integers_compute_in_floating_point():
    assert Tensor(np.array([1, 2], dtype=np.uint8)).arctan().dtype == np.float64


def test_numpy_interop_routes_to_the_row():
    x = Tensor(X, requires_grad=True)
    y = np.arctan(x)
    assert isinstance(y, Tensor) and y.op == "arctan" and y.requires_grad
    np.testing.assert_allclose(y.raw(), np.arctan(X))


def test_forward_mode_and_gradcheck_to_second_order():
    _, tangent = ad.jvp(lambda x: x.arctan(), (X,), (np.ones_like(X),))
    np.testing.assert_allclose(np.asarray(tangent), SLOPE)  # numpy in, numpy out
    assert gradcheck(lambda x: x.arctan().sum(), X, modes=("rev", "fwd"), order=2)


def test_explain_backward_shows_the_local_derivative_and_its_formula():
    x = Tensor(X, requires_grad=True)
    rows = explain_backward(x.arctan().sum())
    row = next(r for r in rows if r["op"] == "arctan")
    np.testing.assert_allclose(row["local"], SLOPE)
    assert row["derivative"] == "1 / (1 + x^2)"


def test_the_drawing_names_the_op_and_shows_the_formula():
    x = Tensor(X, requires_grad=True, name="x")
    source = draw_graph(x.arctan().sum()).source
    assert "arctan" in source
    assert "1 / (1 + x^2)" in source


class Atan(nn.Module):
    def forward(self, x):
        return x.arctan()


def test_onnx_export_runs_in_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    model = nn.Sequential(nn.Linear(3, 4), Atan(), nn.Linear(4, 2))
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    proto = nn.export.to_onnx(model, x[:1])
    assert "Atan" in [node.op_type for node in proto.graph.node]
    session = ort.InferenceSession(proto.SerializeToString())
    (ours,) = session.run(None, {"input": x})
    with ad.no_grad():
        expected = model(Tensor(x)).raw()
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
