"""A catalogue of misuse: each must end in a clear error of the right type whose message says
what is wrong (the op or function, and the shapes or values), raised from our code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import autodiff as ad
import nn
from autodiff import Tensor

ROOT = Path(__file__).resolve().parents[1]
OUR_CODE = (str(ROOT / "autodiff") + os.sep, str(ROOT / "nn") + os.sep)


def T(*shape, grad=False):
    return Tensor(np.ones(shape), requires_grad=grad)


@dataclass
class Misuse:
    name: str
    call: Callable[[], object]
    error: type[BaseException]
    says: tuple[str, ...]
    bug: str | None = None  # a known bug (noted in /tmp/*_bugs.md): the row is a strict xfail


# --- misuse that needs a few lines ------------------------------------------------------------


def _step_before_backward():
    nn.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1).step()


def _load_wrong_model():
    nn.MLP(3, [4], 2).load_state_dict(nn.MLP(3, [5], 2).state_dict())


def _load_missing():
    state = nn.MLP(3, [4], 2).state_dict()
    del state["layers.0.bias"]
    nn.MLP(3, [4], 2).load_state_dict(state)


def _load_unexpected():
    state = nn.Linear(2, 2).state_dict()
    state["scale"] = np.ones(1, np.float32)
    nn.Linear(2, 2).load_state_dict(state)


def _load_wrong_dtype():
    state = {k: v.astype(np.float64) for k, v in nn.Linear(2, 2).state_dict().items()}
    nn.Linear(2, 2).load_state_dict(state)  # float32 parameters


def _backward_after_inplace():
    x = T(3, grad=True)
    c = T(3)
    y = (x * c).sum()
    c[0] = 5.0  # c was saved by mul for x's gradient
    y.backward()


def _backward_after_inplace_under_no_grad():
    w = T(3, grad=True)
    y = (w.exp() * 2).sum()
    with ad.no_grad():
        w[1] = 0.0  # allowed here, but exp saved w
    y.backward()


def _module_attribute():
    return nn.MLP(2, [2], 1).hidden


def _not_a_leaf_module_call():
    return nn.Sequential(nn.Linear(2, 3), nn.Linear(2, 1))(T(4, 2))


def _fit_nan_loss():
    model = nn.Linear(2, 1)
    x = np.ones((4, 2))
    x[0, 0] = np.nan
    nn.fit(
        model,
        nn.F.mse_loss,
        nn.optim.SGD(model.parameters(), lr=0.1),
        (x, np.ones((4, 1))),
        epochs=1,
        progress=False,
        metric=None,
    )


def _load_complex():
    import json
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp())
    try:
        path = folder / "misuse-complex.npz"
        np.savez(
            path,
            __format__=np.array(nn.serialization.FORMAT),
            w=np.ones(2, complex),
            __manifest__=np.array(json.dumps({"w": {"shape": [2], "dtype": "<c16"}})),
        )
        nn.load(path)
    finally:
        shutil.rmtree(folder)


def _module_in_a_set():
    model = nn.Module()
    model.parts = {nn.Linear(1, 1)}
    model.parameters()


def _idx_gzip_bomb():
    import gzip

    header = b"\x00\x00\x08\x01\x00\x00\x00\x02ab"
    nn.data.read_idx(gzip.compress(header + bytes(8 << 20)))


CASES = [
    # --- autodiff: shapes and axes ---
    Misuse("broadcast_add", lambda: T(2, 3) + T(4), ValueError, ("add", r"\(2, 3\)", r"\(4,\)")),
    Misuse("broadcast_mul", lambda: T(2, 3) * T(3, 2), ValueError, ("mul", "broadcast")),
    Misuse("broadcast_sub", lambda: T(2) - T(3), ValueError, ("sub", r"\(2,\), \(3,\)")),
    Misuse("broadcast_div", lambda: T(2, 2) / T(3), ValueError, ("div", r"\(2, 2\)")),
    Misuse("broadcast_pow", lambda: T(2) ** T(3), ValueError, ("pow", "broadcast")),
    Misuse("broadcast_compare", lambda: T(2) < T(3), ValueError, ("less", "broadcast")),
    Misuse(
        "broadcast_where",
        lambda: ad.where(np.ones((2, 3), bool), T(2, 3), T(4)),
        ValueError,
        ("where", r"\(2, 3\), \(4,\)"),
    ),
    Misuse(
        "broadcast_maximum",
        lambda: ad.maximum(T(2), T(3)),
        ValueError,
        ("maximum", r"\(2,\)", r"\(3,\)"),
    ),
    Misuse(
        "broadcast_minimum",
        lambda: ad.minimum(T(2, 3), T(4)),
        ValueError,
        ("minimum", r"\(2, 3\)", r"\(4,\)"),
    ),
    Misuse(
        "where_condition",
        lambda: ad.where(np.ones(4, bool), T(2, 3), T(2, 3)),
        ValueError,
        ("where", "condition", r"\(4,\)", r"\(2, 3\)"),
    ),
    Misuse(
        "broadcast_to", lambda: T(3).broadcast_to((2, 4)), ValueError, ("broadcast_to", r"\(3,\)")
    ),
    Misuse("matmul_inner", lambda: T(2, 3) @ T(4, 5), ValueError, ("matmul", "3 != 4")),
    Misuse(
        "matmul_batched",
        lambda: T(2, 2, 3) @ T(3, 2, 2),
        ValueError,
        ("matmul", r"\(2, 2, 3\) @ \(3, 2, 2\)"),
    ),
    Misuse("matmul_vectors", lambda: T(3) @ T(4), ValueError, ("matmul", "3 != 4")),
    Misuse("matmul_scalar", lambda: T() @ T(3), ValueError, ("matmul", "at least 1 axis")),
    Misuse("axis_range", lambda: T(3).sum(axis=2), ValueError, ("sum", "axis 2")),
    Misuse("axis_type", lambda: T(3).mean(axis="0"), TypeError, ("mean", "axis must be")),
    Misuse("axis_float", lambda: T(3).sum(axis=1.0), TypeError, ("sum", "axis must be", "float")),
    Misuse("axis_float_max", lambda: T(3).max(axis=0.5), TypeError, ("max", "axis must be")),
    Misuse(
        "log_softmax_axis",
        lambda: T(2, 3).log_softmax(axis=-3),
        ValueError,
        ("log_softmax", "axis -3"),
    ),
    Misuse("axis_repeated", lambda: T(3, 3).sum(axis=(0, 0)), ValueError, ("sum", "repeated")),
    # axis 0 and -1 of a scalar are allowed (PyTorch's implicit axis); any other is an error
    Misuse("axis_of_scalar", lambda: T().sum(axis=1), ValueError, ("sum", "0-d")),
    Misuse("max_axis", lambda: T(2, 2).max(axis=-3), ValueError, ("max", "out of range")),
    Misuse("max_empty", lambda: Tensor(np.ones(0)).max(), ValueError, ("max", "empty", r"\(0,\)")),
    Misuse(
        "logsumexp_axis",
        lambda: T(2, 3).logsumexp(axis=5),
        ValueError,
        ("logsumexp", "axis 5", "2 axes"),
    ),
    Misuse("softmax_axis", lambda: T(2, 3).softmax(axis=2), ValueError, ("softmax", "axis 2")),
    Misuse("swapaxes_axis", lambda: T(2, 3).swapaxes(0, 2), ValueError, ("swapaxes", "axis 2")),
    Misuse("reshape_size", lambda: T(2, 3).reshape(4, 2), ValueError, ("reshape", r"\(2, 3\)")),
    Misuse("reshape_type", lambda: T(6).reshape("a"), TypeError, ("reshape", "integers")),
    Misuse(
        "reshape_two_unknown", lambda: T(6).reshape(-1, -1), ValueError, ("reshape", "one unknown")
    ),
    Misuse(
        "transpose_perm", lambda: T(2, 3).transpose(0, 0), ValueError, ("transpose", "permutation")
    ),
    Misuse(
        "transpose_count",
        lambda: T(2, 3).transpose(0),
        ValueError,
        ("transpose", r"\(0,\)", r"\(2, 3\)"),
    ),
    Misuse(
        "concatenate_shapes",
        lambda: ad.concatenate([T(2, 3), T(2, 4)], axis=0),
        ValueError,
        ("concatenate", r"\(2, 3\)"),
    ),
    Misuse(
        "concatenate_axis",
        lambda: ad.concatenate([T(2), T(2)], axis=1),
        ValueError,
        ("concatenate", "axis 1"),
    ),
    Misuse(
        "concatenate_empty", lambda: ad.concatenate([]), ValueError, ("concatenate", "at least one")
    ),
    Misuse(
        "concatenate_scalars",
        lambda: ad.concatenate([T(), T()]),
        ValueError,
        ("concatenate", "0-d", "stack"),
    ),
    Misuse("stack_shapes", lambda: ad.stack([T(2), T(3)]), ValueError, ("stack", "same shape")),
    Misuse("stack_empty", lambda: ad.stack([]), ValueError, ("stack", "at least one")),
    # --- autodiff: indexing ---
    Misuse("index_range", lambda: T(3)[5], IndexError, ("getitem", "out of bounds")),
    Misuse("index_float", lambda: T(3)[1.5], IndexError, ("getitem", "valid indices")),
    Misuse("index_too_many", lambda: T(3)[0, 0], IndexError, ("getitem", "too many indices")),
    Misuse("index_list_range", lambda: T(3)[[0, 7]], IndexError, ("getitem", "index 7")),
    Misuse(
        "setitem_shape",
        lambda: T(3).__setitem__(slice(None), np.ones(4)),
        ValueError,
        ("setitem", r"\(3,\)"),
    ),
    Misuse("setitem_range", lambda: T(3).__setitem__(9, 1.0), IndexError, ("setitem", "index 9")),
    Misuse(
        "setitem_graph",
        lambda: T(3, grad=True).__setitem__(0, 1.0),
        RuntimeError,
        ("setitem", "requires grad"),
    ),
    # --- autodiff: fused ops ---
    Misuse(
        "linear_width",
        lambda: ad.linear(T(2, 3), T(4, 5, grad=True)),
        ValueError,
        ("linear", r"\(2, 3\)", r"\(4, 5\)"),
    ),
    Misuse("linear_weight_1d", lambda: ad.linear(T(2, 3), T(3)), ValueError, ("linear", r"\(3,\)")),
    Misuse(
        "linear_bias",
        lambda: ad.linear(T(2, 3), T(4, 3), T(5)),
        ValueError,
        ("linear", "bias", r"\(5,\)", r"\(4,\)"),
    ),
    Misuse(
        "sce_labels",
        lambda: ad.softmax_cross_entropy(T(2, 3), np.array([0, 3])),
        ValueError,
        ("softmax_cross_entropy", r"\[0, 3\)", "to 3"),
    ),
    Misuse(
        "sce_negative_label",
        lambda: ad.softmax_cross_entropy(T(2, 3), np.array([-1, 0])),
        ValueError,
        ("softmax_cross_entropy", "from -1"),
    ),
    Misuse(
        "sce_label_dtype",
        lambda: ad.softmax_cross_entropy(T(2, 3), np.array([0.0, 1.0])),
        ValueError,
        ("softmax_cross_entropy", "integers", "float64"),
    ),
    Misuse(
        "sce_label_shape",
        lambda: ad.softmax_cross_entropy(T(2, 3), np.array([0, 1, 2])),
        ValueError,
        ("softmax_cross_entropy", r"\(2,\)", r"\(3,\)"),
    ),
    Misuse(
        "sce_logits_1d",
        lambda: ad.softmax_cross_entropy(T(3), np.array([0])),
        ValueError,
        ("softmax_cross_entropy", r"\(N, C\)", r"\(3,\)"),
    ),
    # --- autodiff: backward and grad ---
    Misuse(
        "backward_nonscalar",
        lambda: T(3, grad=True).exp().backward(),
        ValueError,
        ("backward", r"\(3,\)", "grad="),
    ),
    Misuse(
        "backward_grad_shape",
        lambda: T(3, grad=True).exp().backward(np.ones(2)),
        ValueError,
        ("backward", r"\(2,\)", r"\(3,\)"),
    ),
    Misuse(
        "backward_grad_tensor_shape",
        lambda: T(3, grad=True).exp().backward(T(3, 1)),
        ValueError,
        ("backward", r"\(3, 1\)", r"\(3,\)"),
    ),
    Misuse(
        "backward_no_grad",
        lambda: T(3).sum().backward(),
        RuntimeError,
        ("backward", "does not require grad"),
    ),
    Misuse(
        "backward_int",
        lambda: Tensor(np.arange(3)).sum().backward(),
        RuntimeError,
        ("backward", "does not require grad"),
    ),
    Misuse(
        "grad_input",
        lambda: ad.grad(T(2, grad=True).sum(), [T(2)]),
        RuntimeError,
        ("grad", "input 0", r"\(2,\)", "does not require grad"),
    ),
    Misuse(
        "grad_nonscalar",
        lambda: ad.grad(T(2, grad=True).exp(), [T(2, grad=True)]),
        ValueError,
        ("grad", r"\(2,\)", "not a scalar"),
    ),
    Misuse(
        "grad_outputs_count",
        lambda: ad.grad([T(2, grad=True).sum()], [T(2, grad=True)], grad_outputs=[None] * 2),
        ValueError,
        ("grad", "1 outputs but 2 grad_outputs"),
    ),
    Misuse(
        "grad_not_tensor",
        lambda: ad.grad(T(2, grad=True).sum(), [np.ones(2)]),
        TypeError,
        ("grad", "ndarray"),
    ),
    Misuse(
        "grad_outputs_str",
        lambda: ad.grad(T(2, grad=True).sum(), [T(2, grad=True)], grad_outputs="1"),
        TypeError,
        ("grad", "grad_outputs", "str"),
    ),
    Misuse(
        "grad_outputs_number_shape",
        lambda: ad.grad(T(2, grad=True).exp(), [T(2, grad=True)], grad_outputs=1.0),
        ValueError,
        ("grad", r"\(\)", r"\(2,\)"),
    ),
    Misuse(
        "setitem_leaf_with_grad",
        lambda: T(3, grad=True).__setitem__(0, T(grad=True)),
        RuntimeError,
        ("setitem", "leaf", "requires grad"),
    ),
    Misuse(
        "setitem_grad_into_int",
        lambda: Tensor(np.arange(3)).__setitem__(0, T(grad=True)),
        RuntimeError,
        ("setitem", "int64", "astype"),
    ),
    Misuse(
        "grad_nothing",
        lambda: ad.grad(T(2, grad=True).sum(), []),
        ValueError,
        ("grad", "at least one"),
    ),
    Misuse(
        "inplace_saved",
        _backward_after_inplace,
        RuntimeError,
        ("mul", "modified in place", r"\(3,\)"),
    ),
    Misuse(
        "inplace_saved_no_grad",
        _backward_after_inplace_under_no_grad,
        RuntimeError,
        ("exp", "modified in place"),
    ),
    Misuse(
        "untrack_computed",
        lambda: T(2, grad=True).exp().requires_grad_(False),
        ValueError,
        ("requires_grad_", "detach"),
    ),
    Misuse(
        "grad_setter",
        lambda: setattr(T(3, grad=True), "grad", T(2)),
        ValueError,
        ("grad", r"\(2,\)", r"\(3,\)"),
    ),
    # --- autodiff: data and conversions ---
    Misuse("ragged", lambda: Tensor([[1, 2], [3]]), ValueError, ("Tensor", "rectangular")),
    Misuse("string", lambda: Tensor("abc"), TypeError, ("Tensor", "string")),
    Misuse("object", lambda: Tensor(np.array([object()])), TypeError, ("Tensor", "numbers")),
    Misuse("none", lambda: Tensor(None), TypeError, ("Tensor", "numbers only")),
    Misuse("complex", lambda: Tensor(np.array([1j])), TypeError, ("Tensor", "complex128")),
    Misuse(
        "int_requires_grad",
        lambda: Tensor(np.arange(3), requires_grad=True),
        TypeError,
        ("requires_grad", "floating-point", "int64"),
    ),
    Misuse(
        "bool_requires_grad",
        lambda: Tensor([True, False], requires_grad=True),
        TypeError,
        ("requires_grad", "bool"),
    ),
    Misuse(
        "astype_int_keeps_grad",
        lambda: T(2, grad=True).astype(np.int64).sum().backward(),
        (TypeError, RuntimeError),
        ("astype|does not require grad",),
    ),
    Misuse("astype_string", lambda: T(2).astype("U3"), TypeError, ("astype", "U3")),
    Misuse("operand_str", lambda: T(2) + "x", TypeError, ("unsupported operand", "str")),
    Misuse("operand_dict", lambda: T(2) * {}, TypeError, ("unsupported operand", "dict")),
    Misuse("item", lambda: T(3).item(), ValueError, ("item", r"\(3,\)")),
    Misuse("float_of_array", lambda: float(T(3)), ValueError, ("item", r"\(3,\)")),
    Misuse("len_scalar", lambda: len(T()), TypeError, ("len", "0-d")),
    Misuse("iter_scalar", lambda: iter(T()), TypeError, ("iteration", "0-d")),
    Misuse("bool_array", lambda: bool(T(3)), ValueError, ("ambiguous", r"\(3,\)")),
    Misuse("clip_bound", lambda: T(2).clip("a", 1), TypeError, ("clip",)),
    Misuse(
        "clip_array_shape",
        lambda: T(2).clip(np.zeros(3), 1),
        ValueError,
        ("clip", "min", r"\(3,\)", r"\(2,\)"),
    ),
    Misuse(
        "clip_bound_requires_grad",
        lambda: T(2).clip(T(2, grad=True), None),
        TypeError,
        ("clip", "min", "requires grad"),
    ),
    Misuse("zeros_type", lambda: ad.ones("a"), TypeError, ("ones", "integers")),
    Misuse("rand_negative", lambda: ad.randn(2, -3), ValueError, ("randn", "-3")),
    Misuse("rng_type", lambda: ad.randn(2, rng=1.5), TypeError, ("rng", "float")),
    Misuse("zeros_negative", lambda: ad.zeros(-1), ValueError, ("zeros", "-1")),
    # --- nn: layers and modules ---
    Misuse(
        "linear_input",
        lambda: nn.Linear(3, 2)(T(4, 5)),
        ValueError,
        (r"Linear\(3 -> 2\)", r"\(4, 5\)"),
    ),
    Misuse(
        "sequential_widths", _not_a_leaf_module_call, ValueError, (r"Linear\(2 -> 1\)", r"\(4, 3\)")
    ),
    Misuse("linear_size", lambda: nn.Linear(0, 2), ValueError, ("Linear", "in_features")),
    Misuse("linear_float_size", lambda: nn.Linear(2.5, 2), ValueError, ("Linear", "2.5")),
    Misuse("dropout_p", lambda: nn.Dropout(1.5), ValueError, ("Dropout", "p must be", "1.5")),
    Misuse("dropout_negative", lambda: nn.Dropout(-0.1), ValueError, ("Dropout", "-0.1")),
    Misuse(
        "mlp_activation", lambda: nn.MLP(2, [2], 1, activation="gelu"), ValueError, ("MLP", "gelu")
    ),
    Misuse("module_attribute", _module_attribute, AttributeError, ("MLP", "hidden")),
    Misuse("module_forward", lambda: nn.Module()(1), NotImplementedError, ("Module", "forward")),
    Misuse(
        "sequential_item", lambda: nn.Sequential(nn.ReLU(), 3), TypeError, ("Sequential", "item 1")
    ),
    Misuse(
        "sequential_index",
        lambda: nn.Sequential(nn.ReLU())[3],
        IndexError,
        ("Sequential", "3", "out of range"),
    ),
    Misuse("leaky_slope", lambda: nn.LeakyReLU("a"), (TypeError, ValueError), ("LeakyReLU", "'a'")),
    Misuse("flatten_1d", lambda: nn.Flatten()(T(3)), ValueError, ("Flatten", r"\(3,\)")),
    # --- nn: losses ---
    Misuse(
        "ce_range",
        lambda: nn.F.cross_entropy(T(2, 3), np.array([0, 7])),
        ValueError,
        ("cross_entropy", r"\[0, 3\)"),
    ),
    Misuse(
        "ce_shape",
        lambda: nn.F.cross_entropy(T(2, 3), np.array([0, 1, 2])),
        ValueError,
        ("cross_entropy", r"\(2,\)"),
    ),
    Misuse(
        "ce_logits_1d",
        lambda: nn.F.cross_entropy(T(3), np.array([0])),
        ValueError,
        ("cross_entropy", r"\(3,\)"),
    ),
    Misuse(
        "nll_shape",
        lambda: nn.F.nll_loss(T(3), np.array([0])),
        ValueError,
        ("nll_loss", r"\(N, C\)", r"\(3,\)"),
    ),
    Misuse(
        "mse_shape",
        lambda: nn.F.mse_loss(T(2, 3), T(3, 2)),
        ValueError,
        ("mse_loss", r"\(2, 3\)", r"\(3, 2\)"),
    ),
    Misuse(
        "bce_shape",
        lambda: nn.F.binary_cross_entropy(T(3), T(4)),
        ValueError,
        ("binary_cross_entropy", r"\(3,\)", r"\(4,\)"),
    ),
    Misuse(
        "reduction",
        lambda: nn.F.mse_loss(T(2), T(2), reduction="avg"),
        ValueError,
        ("mse_loss", "reduction", "avg"),
    ),
    Misuse(
        "accuracy_shapes",
        lambda: nn.F.accuracy(np.ones((3, 2)), np.ones(4)),
        ValueError,
        ("accuracy", r"\(3, 2\)", r"\(4,\)"),
    ),
    # --- nn: optimizers ---
    Misuse(
        "step_before_backward",
        _step_before_backward,
        RuntimeError,
        (r"SGD\.step\(\)", "before backward"),
    ),
    Misuse(
        "negative_lr",
        lambda: nn.optim.Adam(nn.Linear(2, 2).parameters(), lr=-1),
        ValueError,
        ("Adam", "lr", "-1"),
    ),
    Misuse(
        "nan_lr",
        lambda: nn.optim.SGD(nn.Linear(2, 2).parameters(), lr=float("nan")),
        ValueError,
        ("SGD", "lr", "nan"),
    ),
    Misuse(
        "string_lr",
        lambda: nn.optim.SGD(nn.Linear(2, 2).parameters(), lr="0.1"),
        ValueError,
        ("SGD", "lr", "'0.1'"),
    ),
    Misuse(
        "negative_momentum",
        lambda: nn.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1, momentum=-1),
        ValueError,
        ("SGD", "momentum"),
    ),
    Misuse(
        "nesterov_without_momentum",
        lambda: nn.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1, nesterov=True),
        ValueError,
        ("SGD", "nesterov", "momentum"),
    ),
    Misuse(
        "adam_betas",
        lambda: nn.optim.Adam(nn.Linear(2, 2).parameters(), betas=(1.0, 0.9)),
        ValueError,
        ("Adam", "betas", r"\(1\.0, 0\.9\)"),
    ),
    Misuse(
        "adam_eps",
        lambda: nn.optim.Adam(nn.Linear(2, 2).parameters(), eps=0),
        ValueError,
        ("Adam", "eps"),
    ),
    Misuse("empty_params", lambda: nn.optim.SGD([], lr=0.1), ValueError, ("SGD", "empty")),
    Misuse("non_param", lambda: nn.optim.SGD([T(2)], lr=0.1), TypeError, ("SGD", "parameter 0")),
    Misuse(
        "adam_one_beta",
        lambda: nn.optim.Adam(nn.Linear(2, 2).parameters(), betas=(0.9,)),
        ValueError,
        ("Adam", "betas", "pair", r"\(0\.9,\)"),
    ),
    Misuse(
        "steplr_fraction",
        lambda: nn.optim.StepLR(nn.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1), step_size=0.5),
        ValueError,
        ("StepLR", "step_size", "int", "0.5"),
    ),
    Misuse(
        "sgd_momentum_str",
        lambda: nn.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1, momentum="0.9"),
        ValueError,
        ("SGD", "momentum", "'0.9'"),
    ),
    Misuse(
        "optimizer_one_tensor",
        lambda: nn.optim.SGD(nn.Linear(2, 2).weight, lr=0.1),
        TypeError,
        ("SGD", "single Tensor"),
    ),
    Misuse(
        "optimizer_state_other_type",
        lambda: nn.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1).load_state_dict(
            nn.optim.Adam(nn.Linear(2, 2).parameters()).state_dict()
        ),
        KeyError,
        ("SGD.load_state_dict", "betas"),
    ),
    Misuse(
        "module_list_item",
        lambda: nn.ModuleList([nn.ReLU(), "relu"]),
        TypeError,
        ("ModuleList", "item 1", "str"),
    ),
    Misuse("module_dict_key", lambda: nn.ModuleDict()["x"], KeyError, ("ModuleDict", "'x'")),
    Misuse(
        "steplr_size",
        lambda: nn.optim.StepLR(nn.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1), step_size=0),
        ValueError,
        ("StepLR", "step_size", "0"),
    ),
    # --- nn: state dicts, save and load ---
    Misuse(
        "load_wrong_model",
        _load_wrong_model,
        ValueError,
        ("load_state_dict", "layers.0.weight", "shape"),
    ),
    Misuse("load_missing", _load_missing, KeyError, ("load_state_dict", "layers.0.bias")),
    Misuse(
        "load_unexpected", _load_unexpected, KeyError, ("load_state_dict", "unexpected", "scale")
    ),
    Misuse(
        "load_dtype",
        _load_wrong_dtype,
        ValueError,
        ("load_state_dict", "weight", "float32", "float64"),
    ),
    Misuse(
        "load_not_a_dict",
        lambda: nn.Linear(2, 2).load_state_dict([1, 2]),
        TypeError,
        ("load_state_dict", "list"),
    ),
    Misuse(
        "save_object",
        lambda: nn.save({"w": np.array([object()])}, "/tmp/never.npz"),
        TypeError,
        ("save", "'w'", "dtype"),
    ),
    Misuse(
        "save_reserved_name",
        lambda: nn.save({"__x": np.ones(2)}, "/tmp/never.npz"),
        ValueError,
        ("save", "'__x'"),
    ),
    Misuse("save_not_a_dict", lambda: nn.save(42, "/tmp/never.npz"), TypeError, ("save", "int")),
    Misuse(
        "save_missing_folder",
        lambda: nn.save({"w": np.ones(2)}, "/nonexistent/x.npz"),
        FileNotFoundError,
        ("save", "/nonexistent"),
    ),
    Misuse(
        "load_missing_file",
        lambda: nn.load("/nonexistent/w.npz"),
        FileNotFoundError,
        ("load", "no such file", "/nonexistent/w.npz"),
    ),
    Misuse("load_folder", lambda: nn.load(ROOT), FileNotFoundError, ("load", "folder")),
    # --- nn: data ---
    Misuse(
        "dataloader_len",
        lambda: nn.data.DataLoader(np.ones((3, 2)), np.ones(2)),
        ValueError,
        ("DataLoader", "3 samples", "has 2"),
    ),
    Misuse(
        "dataloader_batch",
        lambda: nn.data.DataLoader(np.ones((3, 2)), batch_size=0),
        ValueError,
        ("DataLoader", "batch_size", "0"),
    ),
    Misuse(
        "dataloader_scalar",
        lambda: nn.data.DataLoader(np.float64(1.0)),
        ValueError,
        ("DataLoader", "0-d"),
    ),
    Misuse(
        "dataloader_scalar_y",
        lambda: nn.data.DataLoader(np.ones((3, 2)), 1.0),
        ValueError,
        ("DataLoader", "3 samples", "no sample axis"),
    ),
    Misuse(
        "dataloader_ragged_x",
        lambda: nn.data.DataLoader([[1, 2], [3]]),
        ValueError,
        ("DataLoader", "x is ragged"),
    ),
    Misuse(
        "dataloader_object_y",
        lambda: nn.data.DataLoader(np.ones(2), ["a", None]),
        TypeError,
        ("DataLoader", "y must hold numbers", "object"),
    ),
    Misuse(
        "idx_magic",
        lambda: nn.data.read_idx(b"\x01\x02\x03\x04" + b"\x00" * 8),
        ValueError,
        ("read_idx", "magic", "0x01020304"),
    ),
    Misuse(
        "idx_too_short",
        lambda: nn.data.read_idx(b"\x00\x00"),
        ValueError,
        ("read_idx", "too short", "2 bytes"),
    ),
    Misuse(
        "idx_truncated_header",
        lambda: nn.data.read_idx(b"\x00\x00\x08\x03\x00\x00"),
        ValueError,
        ("read_idx", "header", "16 bytes"),
    ),
    Misuse(
        "idx_truncated_data",
        lambda: nn.data.read_idx(b"\x00\x00\x08\x01\x00\x00\x00\x05ab"),
        ValueError,
        ("read_idx", r"\(5,\)", "truncated"),
    ),
    Misuse(
        "idx_trailing",
        lambda: nn.data.read_idx(b"\x00\x00\x08\x01\x00\x00\x00\x01ab"),
        ValueError,
        ("read_idx", "trailing"),
    ),
    Misuse(
        "idx_huge",
        lambda: nn.data.read_idx(b"\x00\x00\x08\x03" + b"\xff" * 12),
        ValueError,
        ("read_idx", "4294967295"),
    ),
    Misuse(
        "idx_bad_gzip",
        lambda: nn.data.read_idx(b"\x1f\x8bnot gzip at all"),
        ValueError,
        ("read_idx", "gzip"),
    ),
    Misuse(
        "regression_kind",
        lambda: nn.data.make_regression(kind="cubic"),
        ValueError,
        ("make_regression", "cubic"),
    ),
    # --- nn: training ---
    Misuse(
        "fit_epochs",
        lambda: nn.fit(
            nn.Linear(2, 1),
            nn.F.mse_loss,
            nn.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1),
            (np.ones((2, 2)), np.ones((2, 1))),
            epochs=0,
        ),
        ValueError,
        ("fit", "epochs"),
    ),
    Misuse(
        "fit_data",
        lambda: nn.fit(
            nn.Linear(2, 1),
            nn.F.mse_loss,
            nn.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1),
            "data",
            epochs=1,
        ),
        (TypeError, ValueError),
        ("fit", "str"),
    ),
    Misuse(
        "fit_no_labels",
        lambda: nn.fit(
            nn.Linear(2, 1),
            nn.F.mse_loss,
            nn.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1),
            nn.data.DataLoader(np.ones((2, 2))),
            epochs=1,
            progress=False,
        ),
        ValueError,
        ("fit", "without targets"),
    ),
    Misuse(
        "fit_empty_loader",
        lambda: nn.fit(
            nn.Linear(2, 1),
            nn.F.mse_loss,
            nn.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1),
            nn.data.DataLoader(np.ones((2, 2)), np.ones((2, 1)), batch_size=4, drop_last=True),
            epochs=1,
            progress=False,
        ),
        ValueError,
        ("fit", "no batch", "2 samples"),
    ),
    Misuse(
        "fit_error_threshold_no_metric",
        lambda: nn.fit(
            nn.Linear(2, 1),
            nn.F.mse_loss,
            nn.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1),
            (np.ones((2, 2)), np.ones((2, 1))),
            epochs=1,
            metric=None,
            error_threshold=0.1,
        ),
        ValueError,
        ("fit", "error_threshold", "metric"),
    ),
    Misuse("fit_nan_loss", _fit_nan_loss, FloatingPointError, ("fit", "nan", "epoch 1, step 1")),
    Misuse("load_complex", _load_complex, ValueError, ("load", "misuse-complex.npz", "complex128")),
    Misuse("module_set", _module_in_a_set, TypeError, ("Module", "'parts'", "set")),
    Misuse("idx_gzip_bomb", _idx_gzip_bomb, ValueError, ("read_idx", "trailing bytes")),
    Misuse(
        "predict_width",
        lambda: nn.predict(nn.Linear(2, 1), np.ones((3, 3))),
        ValueError,
        (r"Linear\(2 -> 1\)", r"\(3, 3\)"),
    ),
]


def _row(case: Misuse):
    marks = [pytest.mark.xfail(strict=True, reason=case.bug)] if case.bug else []
    return pytest.param(case, id=case.name, marks=marks)


def test_catalogue_is_big_enough():
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)  # ids are unique


@pytest.mark.parametrize("case", [_row(c) for c in CASES])
def test_misuse_gives_a_clear_error(case):
    with pytest.raises(case.error) as info:
        case.call()
    message = str(info.value)
    for pattern in case.says:
        assert re.search(pattern, message), (pattern, message)
    # Raised by our own code (which checked the problem), not by numpy or Python deep below;
    # or by Python at the caller's own line (a misspelt attribute: its own error, "Did you
    # mean" included, points at the line that has the typo).
    innermost = traceback.extract_tb(info.value.__traceback__)[-1].filename
    assert innermost.startswith(OUR_CODE) or innermost == __file__, innermost


def test_missing_mnist_names_the_file_and_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("AUTODIFF_DATA", raising=False)
    with pytest.raises(FileNotFoundError) as info:
        nn.data.load_mnist(tmp_path / "nowhere", download=False)
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message
    assert str(tmp_path / "nowhere") in message and str(tmp_path / "cache") in message


# --- the command line: usage errors end with exit code 2 and a message, never a traceback ---

CLI_CASES = [
    (["--epochs", "0"], ["--epochs", "positive integer", "'0'"]),
    (["--lr", "-1"], ["--lr", "positive number", "'-1'"]),
    (["--lr", "nan"], ["--lr", "'nan'"]),
    (["--hidden", "a"], ["--hidden", "'a'"]),
    (["--dataset", "cifar"], ["--dataset", "invalid choice", "'cifar'"]),
    (["--optimizer", "rmsprop"], ["--optimizer", "'rmsprop'"]),
    (["--bogus"], ["unrecognized arguments", "--bogus"]),
    (
        ["--dataset", "mnist", "--data-dir", "{tmp}/none", "--epochs", "1", "--no-plots"],
        ["load_mnist", "train-images-idx3-ubyte", "{tmp}/none"],
    ),
]


@pytest.mark.parametrize("argv,says", CLI_CASES, ids=[" ".join(a) for a, _ in CLI_CASES])
def test_cli_usage_errors_exit_2_without_traceback(tmp_path, argv, says):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AUTODIFF_OFFLINE": "1",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    env.pop("AUTODIFF_DATA", None)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    done = subprocess.run(
        [sys.executable, "-m", "nn", *argv, "--out", str(tmp_path / "out")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "usage: python -m nn" in done.stderr or "python -m nn: error:" in done.stderr
    for text in says:
        assert text.replace("{tmp}", str(tmp_path)) in done.stderr, (text, done.stderr)
    assert not (tmp_path / "out").exists()  # nothing was written
