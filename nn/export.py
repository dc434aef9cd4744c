"""ONNX export: a trained nn model as an ONNX graph that onnxruntime and friends can run.

    nn.export_onnx(model, "model.onnx", x[:1])

The graph is built with the `onnx` package's helper API (`pip install "autodiff-nn[export]"`);
each module becomes the ONNX operator that computes the same function, weights become
initialisers named by their parameter path ("layers.0.weight", as in `state_dict`), and the
first axis is a symbolic "batch" dimension, so the file accepts any batch size.

The export describes the model in evaluation mode (Dropout is the identity there), which is
what a deployed model runs. Modules without a translation are refused by name.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np

from autodiff import Tensor, enable_grad, no_grad, rules
from autodiff.conv import same_padding

from . import conv as _convs
from . import layers
from .module import Module
from .serialization import write_atomic

# Pinned so files open in older runtimes too: opset 17 has every operator used here in its
# current form (Softmax over one axis since 13), and IR version 8 is the one that opset was
# released with. onnxruntime 1.17, the oldest our extra allows, reads IR up to 9 and opset up to
# 20; files stamped with the newest IR version (what onnx.helper writes by default) are refused
# by runtimes older than the onnx package that wrote them.
OPSET = 17
IR_VERSION = 8
BATCH = "batch"


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError(
            'export_onnx needs the onnx package: pip install "autodiff-nn[export]" '
            "(or pip install onnx)"
        ) from None
    return onnx


class _Graph:
    """Nodes and initialisers collected while walking the model, with unique names."""

    def __init__(self, onnx: Any, dtype: np.dtype, param_names: dict[int, str]) -> None:
        self.onnx = onnx
        self.dtype = dtype
        self.param_names = param_names
        self.nodes: list[Any] = []
        self.initializers: dict[str, Any] = {}
        self._used: set[str] = set()

    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self._used:
            i += 1
            name = f"{base}_{i}"
        self._used.add(name)
        return name

    def parameter(self, p: Tensor) -> str:
        """The initialiser for a parameter, named by its path; added once even if shared."""
        name = self.param_names[id(p)]
        if name not in self.initializers:
            array = np.asarray(p.raw(), dtype=self.dtype)
            self.initializers[name] = self.onnx.numpy_helper.from_array(array, name)
            self._used.add(name)
        return name

    def constant(self, base: str, values: np.ndarray) -> str:
        name = self.fresh(base)
        self.initializers[name] = self.onnx.numpy_helper.from_array(values, name)
        return name

    def node(self, op: str, inputs: list[str], where: str, **attrs: Any) -> str:
        output = self.fresh(f"{where}/{op}" if where else op)
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [output], name=output, **attrs))
        return output


# A translator adds the nodes for one module: (graph, module, its path, input name, input
# rank) -> (output name, output rank).
Translator = Callable[[_Graph, Any, str, str, int], tuple[str, int]]


def _linear(g: _Graph, m: layers.Linear, where: str, x: str, rank: int) -> tuple[str, int]:
    if rank < 2:  # the only axis would be the symbolic batch axis and the features at once
        raise ValueError(
            f"export_onnx: {where or 'Linear'} needs inputs with a batch axis and "
            f"a feature axis; give an example_input of shape (1, "
            f"{m.in_features})"
        )
    weight = g.parameter(m.weight)  # stored (out, in), as in PyTorch
    bias = [g.parameter(m.bias)] if m.bias is not None else []
    if rank == 2:  # the common case: one Gemm computes x @ W.T + b
        return g.node("Gemm", [x, weight, *bias], where, transB=1), 2
    y = g.node("MatMul", [x, g.node("Transpose", [weight], where, perm=[1, 0])], where)
    return (g.node("Add", [y, *bias], where) if bias else y), rank


def _elementwise(op: str, **attrs: Callable[[Any], Any]) -> Translator:
    def translate(g: _Graph, m: Any, where: str, x: str, rank: int) -> tuple[str, int]:
        return g.node(op, [x], where, **{k: f(m) for k, f in attrs.items()}), rank

    return translate


def _flatten(g: _Graph, m: layers.Flatten, where: str, x: str, rank: int) -> tuple[str, int]:
    start = m.start_axis + rank if m.start_axis < 0 else m.start_axis
    if not 1 <= start <= rank:
        raise ValueError(
            f"export_onnx: {where or 'Flatten'} flattens from axis {m.start_axis} "
            f"of a rank-{rank} input; only axes after the batch axis can be "
            f"flattened in an export with a symbolic batch size"
        )
    if start == 1:  # ONNX Flatten(axis=1) is exactly (N, ...) -> (N, -1)
        return g.node("Flatten", [x], where, axis=1), 2
    # Reshape: 0 keeps that axis's size, -1 takes the rest.
    shape = g.constant(f"{where}.shape", np.array([0] * start + [-1], dtype=np.int64))
    return g.node("Reshape", [x, shape], where), start + 1


def _sequence(g: _Graph, m: layers.Sequential, where: str, x: str, rank: int) -> tuple[str, int]:
    for i, layer in enumerate(m.layers):
        x, rank = _translate(g, layer, f"{where}.layers.{i}" if where else f"layers.{i}", x, rank)
    return x, rank


def _ints(value: Any, n: int) -> list[int]:
    return [int(value)] * n if isinstance(value, (int, np.integer)) else [int(v) for v in value]


def _conv(g: _Graph, m: Any, where: str, x: str, rank: int) -> tuple[str, int]:
    n = len(m.kernel_size)
    dilation = _ints(m.dilation, n)
    if m.padding == "same":  # as autodiff.conv pads (and PyTorch): the odd zero at the end
        # A Conv1d is a conv2d of height 1: pad as one, keep the width.
        kernel, dilations = (1, *m.kernel_size)[-2:], (1, *dilation)[-2:]
        pads = same_padding(cast("tuple[int, int]", kernel), cast("tuple[int, int]", dilations))
        before, after = (list(side[2 - n :]) for side in pads)
    else:
        before = after = [0] * n if m.padding == "valid" else _ints(m.padding, n)
    bias = [g.parameter(m.bias)] if m.bias is not None else []
    return g.node(
        "Conv",
        [x, g.parameter(m.weight), *bias],
        where,
        kernel_shape=list(m.kernel_size),
        strides=_ints(m.stride, n),
        pads=before + after,
        dilations=dilation,
        group=int(m.groups),
    ), rank


def _pool(op: str, **extra: int) -> Translator:
    def translate(g: _Graph, m: Any, where: str, x: str, rank: int) -> tuple[str, int]:
        kernel = _ints(m.kernel_size, 2)
        stride = kernel if m.stride is None else _ints(m.stride, 2)
        pads = _ints(m.padding, 2)
        return g.node(
            op, [x], where, kernel_shape=kernel, strides=stride, pads=pads + pads, **extra
        ), rank

    return translate


def _affine(g: _Graph, m: Any, where: str, shape: tuple[int, ...]) -> list[str]:
    """Scale and shift initialisers: the module's own, or ones and zeros without them."""
    if m.weight is not None:
        return [g.parameter(m.weight), g.parameter(m.bias)]
    return [
        g.constant(f"{where}.ones", np.ones(shape, g.dtype)),
        g.constant(f"{where}.zeros", np.zeros(shape, g.dtype)),
    ]


def _batch_norm(g: _Graph, m: Any, where: str, x: str, rank: int) -> tuple[str, int]:
    if not m.track_running_stats:
        raise ValueError(
            f"export_onnx: {where or 'BatchNorm'} has no running statistics "
            f"(track_running_stats=False), so in evaluation mode it normalises by "
            f"each batch's own statistics, which ONNX's BatchNormalization cannot"
        )
    stats = [g.parameter(m.running_mean), g.parameter(m.running_var)]
    return g.node(
        "BatchNormalization",
        [x, *_affine(g, m, where, (m.num_features,)), *stats],
        where,
        epsilon=m.eps,
    ), rank


def _layer_norm(g: _Graph, m: Any, where: str, x: str, rank: int) -> tuple[str, int]:
    return g.node(
        "LayerNormalization",
        [x, *_affine(g, m, where, m.normalized_shape)],
        where,
        axis=-len(m.normalized_shape),
        epsilon=m.eps,
    ), rank


def _lenet(g: _Graph, m: Any, where: str, x: str, rank: int) -> tuple[str, int]:
    if rank in (2, 3):  # LeNet5 takes (N, 784) and (N, 28, 28) as one-channel images
        shape = g.constant(
            f"{where}.image_shape" if where else "image_shape",
            np.array([-1, 1, 28, 28], dtype=np.int64),
        )
        x, rank = g.node("Reshape", [x, shape], where), 4
    prefix = f"{where}." if where else ""
    x, rank = _translate(g, m.features, f"{prefix}features", x, rank)
    return _translate(g, m.classifier, f"{prefix}classifier", x, rank)


TRANSLATORS: dict[type, Translator] = {
    layers.Linear: _linear,
    # The activations' ONNX operators are their rows' `onnx` column (autodiff.rules).
    layers.ReLU: _elementwise(cast(str, rules.relu.onnx)),  # these rows name an operator
    layers.Sigmoid: _elementwise(cast(str, rules.sigmoid.onnx)),
    layers.Tanh: _elementwise(cast(str, rules.tanh.onnx)),
    layers.LeakyReLU: _elementwise("LeakyRelu", alpha=lambda m: m.negative_slope),
    layers.Softmax: _elementwise("Softmax", axis=lambda m: m.axis),
    layers.Identity: _elementwise("Identity"),
    layers.Dropout: _elementwise("Identity"),  # evaluation mode: Dropout passes x through
    layers.Flatten: _flatten,
    layers.Sequential: _sequence,
    layers.MLP: _sequence,
}

# Convolutions and normalisation (nn/conv.py).
TRANSLATORS.update(
    {
        _convs.Conv2d: _conv,
        _convs.Conv1d: _conv,
        _convs.MaxPool2d: _pool("MaxPool"),
        # PyTorch's default (and ours): zero padding counts in the mean.
        _convs.AvgPool2d: _pool("AveragePool", count_include_pad=1),
        _convs.BatchNorm1d: _batch_norm,
        _convs.BatchNorm2d: _batch_norm,
        _convs.LayerNorm: _layer_norm,
        _convs.LeNet5: _lenet,
    }
)


def _elementwise_chain(module: Any, rank: int, dtype: np.dtype) -> list[str] | None:
    """The ONNX operators of a module whose forward is a chain of one-input elementwise
    primitives without params (`x.arctan().tanh()`), read off their rows' `onnx` column; None
    for any other forward. Found by running the module once on a probe of the input's rank:
    elementwise ops do not depend on the sizes."""
    probe = Tensor(np.full((1,) * rank, 0.5, dtype=dtype), requires_grad=True)
    try:
        with enable_grad():
            node = module(probe)
    except Exception:  # noqa: BLE001 - a forward that needs other sizes: not a chain
        return None
    chain: list[str] = []
    while node is not probe:
        row = rules.OPS.get(node.op) if isinstance(node, Tensor) and node.op else None
        if (
            row is None
            or not row.elementwise
            or row.onnx is None
            or row.onnx.startswith("none")
            or node.op_params
            or len(node.parents) != 1
        ):
            return None
        chain.append(row.onnx)
        node = node.parents[0]
    return chain[::-1] or None


def _translate(g: _Graph, module: Any, where: str, x: str, rank: int) -> tuple[str, int]:
    # Exact types only: a subclass may override forward, and exporting it as its parent would
    # give a file that silently computes something else.
    translator = TRANSLATORS.get(type(module))
    if translator is None and not isinstance(module, layers.Sequential | layers.ModuleList):
        chain = _elementwise_chain(module, rank, g.dtype)
        if chain is not None:
            for op in chain:
                x = g.node(op, [x], where)
            return x, rank
    if translator is None:
        supported = ", ".join(sorted(t.__name__ for t in TRANSLATORS))
        raise TypeError(
            f"export_onnx: module {where or '(the model itself)'!r} is a "
            f"{type(module).__name__}, which has no ONNX translation; supported: "
            f"{supported}"
        )
    return translator(g, module, where, x, rank)


def to_onnx(
    model: Module, example_input: Any, *, input_name: str = "input", output_name: str = "output"
) -> Any:
    """The model as an `onnx.ModelProto` (checked with the ONNX checker), without writing it.

    `example_input` fixes every axis but the first (the batch axis, left symbolic) and is
    run through the model once, so a mismatch is reported here rather than by the runtime.
    """
    onnx = _onnx()
    if not isinstance(model, Module):
        raise TypeError(f"export_onnx: expected an nn Module, got {type(model).__name__}")
    params: list[Tensor] = list(model.parameters())  # a list of Tensors: buffers join it
    # Floating-point buffers count too: a BatchNorm without affine parameters has only its
    # running statistics, and a float64 one must not be exported as float32.
    buffers = [b for _, b in model.named_buffers()] if hasattr(model, "named_buffers") else []
    params = params + [b for b in buffers if b.dtype.kind == "f"]
    dtype = np.dtype(params[0].dtype if params else np.float32)
    if dtype.kind != "f" or any(p.dtype != dtype for p in params):
        raise TypeError(
            f"export_onnx: parameters must share one float dtype, got "
            f"{sorted({str(p.dtype) for p in params})}"
        )
    x = np.asarray(example_input.raw() if isinstance(example_input, Tensor) else example_input)
    if x.ndim == 0 or x.dtype.kind not in "biuf":
        raise ValueError(
            f"export_onnx: example_input must be a numeric array with a batch "
            f"axis first, got dtype {x.dtype} shape {x.shape}"
        )
    x = x.astype(dtype)

    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with no_grad():
            try:
                y = model(Tensor(x))
            except (ValueError, TypeError) as exc:
                raise ValueError(
                    f"export_onnx: the model cannot run on example_input of shape {x.shape}: {exc}"
                ) from None
        param_names = {id(p): name for name, p in model.named_parameters()}
        # Buffers (BatchNorm's running statistics) travel as initialisers too, by their path.
        if hasattr(model, "named_buffers"):
            param_names.update({id(b): name for name, b in model.named_buffers()})
        _check_io_names(input_name, output_name, set(param_names.values()))
        g = _Graph(onnx, dtype, param_names)
        g.fresh(input_name)
        g.fresh(output_name)
        out, _ = _translate(g, model, "", input_name, x.ndim)
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)

    elem = onnx.helper.np_dtype_to_tensor_dtype(dtype)
    y_shape = np.shape(y.raw())
    if g.nodes and g.nodes[-1].output[0] == out:
        g.nodes[-1].output[0] = output_name  # the last operator writes the graph's output
    else:  # a model that computes nothing (Identity, an empty Sequential)
        g.nodes.append(onnx.helper.make_node("Identity", [out], [output_name], name=output_name))
    graph = onnx.helper.make_graph(
        g.nodes,
        type(model).__name__,
        [onnx.helper.make_tensor_value_info(input_name, elem, [BATCH, *x.shape[1:]])],
        [onnx.helper.make_tensor_value_info(output_name, elem, [BATCH, *y_shape[1:]])],
        initializer=list(g.initializers.values()),
    )
    proto = onnx.helper.make_model(
        graph,
        opset_imports=[onnx.helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="autodiff-nn",
        doc_string=repr(model),
    )
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _check_io_names(input_name: Any, output_name: Any, weights: set[str]) -> None:
    """The graph's input and output names must be its own: an input named like a weight
    would be fed in place of that weight (runtimes let an input override an initialiser)."""
    for what, name in (("input_name", input_name), ("output_name", output_name)):
        if not isinstance(name, str) or not name:
            raise ValueError(f"export_onnx: {what} must be a non-empty string, got {name!r}")
        if name in weights:
            raise ValueError(
                f"export_onnx: {what} {name!r} is the name of one of the model's "
                f"weights; choose another name"
            )
    if input_name == output_name:
        raise ValueError(
            f"export_onnx: input_name and output_name are both {input_name!r}; "
            f"an ONNX graph needs two different names"
        )


def export_onnx(
    model: Module,
    path: str | os.PathLike[str],
    example_input: Any,
    *,
    input_name: str = "input",
    output_name: str = "output",
) -> Path:
    """Write `model` as an ONNX file at `path`, atomically; returns the path.

    The file takes an input named "input" of shape (batch, *example_input.shape[1:]) in the
    parameters' dtype (float32 by default) and gives "output". Weights are initialisers named
    as in `model.state_dict()`. Raises ImportError without the onnx package and TypeError
    naming any module it cannot translate.
    """
    proto = to_onnx(model, example_input, input_name=input_name, output_name=output_name)
    data = proto.SerializeToString()
    return write_atomic(path, lambda f: f.write(data), "export_onnx")


def draw_onnx(model: Any) -> Any:
    """A graphviz drawing of an ONNX model (a ModelProto or a path): one box per operator with
    its attributes, initialisers as notes with their shapes, edges along the tensor names."""
    onnx = _onnx()
    if not hasattr(model, "graph"):
        model = onnx.load(os.fspath(model))
    from autodiff.viz import Drawing  # renders inline, without a system Graphviz too

    dot = Drawing(graph_attr={"rankdir": "TB"})
    graph = model.graph
    # Node ids are plain words: graphviz reads "a:b" as node a's port b.
    producers: dict[str, str] = {}
    for i, v in enumerate(graph.input):
        dot.node(f"in{i}", f"{v.name}\n{_dims(v)}", shape="ellipse")
        producers[v.name] = f"in{i}"
    for i, init in enumerate(graph.initializer):
        dot.node(
            f"init{i}",
            f"{init.name}\n{tuple(init.dims)}",
            shape="note",
            style="filled",
            fillcolor="#eef3fb",
            fontsize="10",
        )
        producers[init.name] = f"init{i}"
    for i, node in enumerate(graph.node):
        attrs = [f"{a.name}={_attr(onnx.helper.get_attribute_value(a))}" for a in node.attribute]
        dot.node(f"op{i}", "\n".join([node.op_type, *attrs]), shape="box", style="rounded")
        for name in node.input:
            if name in producers:
                dot.edge(producers[name], f"op{i}")
        for name in node.output:
            producers[name] = f"op{i}"
    for i, v in enumerate(graph.output):
        dot.node(f"out{i}", f"{v.name}\n{_dims(v)}", shape="ellipse")
        if v.name in producers:
            dot.edge(producers[v.name], f"out{i}")
    return dot


def _dims(value_info: Any) -> str:
    dims = value_info.type.tensor_type.shape.dim
    return "(" + ", ".join(d.dim_param or str(d.dim_value) for d in dims) + ")"


def _attr(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"  # attributes are float32: 0.01 rather than 0.009999999776
    return value.decode() if isinstance(value, bytes) else str(value)
