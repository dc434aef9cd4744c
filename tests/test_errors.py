"""A catalogue of misuse: each must end in a clear error of the right type whose message says
what is wrong (the op or function, and the shapes or values), raised from our code."""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

import autodiff as ad
import nn
from autodiff import Tensor


def T(*shape, grad=False):
    return Tensor(np.ones(shape), requires_grad=grad)


@dataclass
class Misuse:
    name: str
    call: Callable[[], object]
    error: type[BaseException]
    says: tuple[str, ...]


def _step_before_backward():
    nn.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1).step()


def _load_wrong_model():
    nn.MLP(3, [4], 2).load_state_dict(nn.MLP(3, [5], 2).state_dict())


def _load_missing():
    state = nn.MLP(3, [4], 2).state_dict()
    del state["layers.0.bias"]
    nn.MLP(3, [4], 2).load_state_dict(state)


def _backward_twice_after_inplace():
    x = T(3, grad=True)
    c = T(3)
    y = (x * c).sum()
    c[0] = 5.0
    y.backward()


def _module_attribute():
    return nn.MLP(2, [2], 1).hidden


def _missing_mnist(tmp):
    return lambda: nn.data.load_mnist(tmp / "nowhere", download=False)


CASES = [
    # --- autodiff: shapes ---
    Misuse("broadcast", lambda: T(2, 3) + T(4), ValueError, ("add", r"\(2, 3\)", r"\(4,\)")),
    Misuse("broadcast_mul", lambda: T(2, 3) * T(3, 2), ValueError, ("mul", "broadcast")),
    Misuse("matmul_inner", lambda: T(2, 3) @ T(4, 5), ValueError, ("matmul", "3 != 4")),
    Misuse("matmul_scalar", lambda: T() @ T(3), ValueError, ("matmul", "at least 1 axis")),
    Misuse("axis_range", lambda: T(3).sum(axis=2), ValueError, ("sum", "axis 2")),
    Misuse("axis_type", lambda: T(3).mean(axis="0"), TypeError, ("mean", "axis must be")),
    Misuse("axis_repeated", lambda: T(3, 3).sum(axis=(0, 0)), ValueError, ("sum", "repeated")),
    Misuse("max_axis", lambda: T(2, 2).max(axis=-3), ValueError, ("max", "out of range")),
    Misuse("reshape_size", lambda: T(2, 3).reshape(4, 2), ValueError, ("reshape", r"\(2, 3\)")),
    Misuse("reshape_type", lambda: T(6).reshape("a"), TypeError, ("reshape", "integers")),
    Misuse("transpose_perm", lambda: T(2, 3).transpose(0, 0), ValueError,
           ("transpose", "permutation")),
    Misuse("concatenate", lambda: ad.concatenate([T(2, 3), T(2, 4)], axis=0), ValueError,
           ("concatenate", r"\(2, 3\)")),
    Misuse("stack", lambda: ad.stack([T(2), T(3)]), ValueError, ("stack", "same shape")),
    Misuse("index", lambda: T(3)[5], IndexError, ("getitem", "out of bounds")),
    Misuse("setitem_shape", lambda: T(3).__setitem__(slice(None), np.ones(4)), ValueError,
           ("setitem", r"\(3,\)")),
    Misuse("linear_width", lambda: ad.linear(T(2, 3), T(4, 5, grad=True)), ValueError,
           ("linear", r"\(2, 3\)", r"\(4, 5\)")),
    Misuse("sce_labels", lambda: ad.softmax_cross_entropy(T(2, 3), np.array([0, 3])),
           ValueError, ("softmax_cross_entropy", r"\[0, 3\)")),
    Misuse("sce_label_dtype", lambda: ad.softmax_cross_entropy(T(2, 3), np.array([0.0, 1.0])),
           ValueError, ("softmax_cross_entropy", "integers")),
    # --- autodiff: backward ---
    Misuse("backward_nonscalar", lambda: T(3, grad=True).exp().backward(), ValueError,
           ("backward", r"\(3,\)", "grad=")),
    Misuse("backward_grad_shape", lambda: T(3, grad=True).exp().backward(np.ones(2)),
           ValueError, ("backward", r"\(2,\)", r"\(3,\)")),
    Misuse("backward_no_grad", lambda: T(3).sum().backward(), RuntimeError,
           ("backward", "does not require grad")),
    Misuse("grad_input", lambda: ad.grad(T(2, grad=True).sum(), [T(2)]), RuntimeError,
           ("grad", "input 0", "does not require grad")),
    Misuse("inplace_saved", _backward_twice_after_inplace, RuntimeError,
           ("mul", "modified in place")),
    Misuse("setitem_graph", lambda: T(3, grad=True).__setitem__(0, 1.0), RuntimeError,
           ("setitem", "requires grad")),
    # --- autodiff: data ---
    Misuse("ragged", lambda: Tensor([[1, 2], [3]]), ValueError, ("Tensor", "rectangular")),
    Misuse("string", lambda: Tensor("abc"), TypeError, ("Tensor", "string")),
    Misuse("object", lambda: Tensor(np.array([object()])), TypeError, ("Tensor", "numbers")),
    Misuse("int_requires_grad", lambda: Tensor(np.arange(3), requires_grad=True), TypeError,
           ("requires_grad", "floating-point", "int64")),
    Misuse("operand_type", lambda: T(2) + "x", TypeError, ("unsupported operand", "str")),
    Misuse("operand_dict", lambda: T(2) * {}, TypeError, ("unsupported operand", "dict")),
    Misuse("item", lambda: T(3).item(), ValueError, ("item", r"\(3,\)")),
    Misuse("len_scalar", lambda: len(T()), TypeError, ("len", "0-d")),
    Misuse("bool_array", lambda: bool(T(3)), ValueError, ("ambiguous", r"\(3,\)")),
    Misuse("grad_setter", lambda: setattr(T(3, grad=True), "grad", T(2)), ValueError,
           ("grad", r"\(2,\)")),
    Misuse("rng_type", lambda: ad.randn(2, rng="seed"), TypeError, ("rng",)),
    # --- nn ---
    Misuse("linear_input", lambda: nn.Linear(3, 2)(T(4, 5)), ValueError,
           ("Linear\\(3 -> 2\\)", r"\(4, 5\)")),
    Misuse("linear_size", lambda: nn.Linear(0, 2), ValueError, ("Linear", "in_features")),
    Misuse("ce_range", lambda: nn.F.cross_entropy(T(2, 3), np.array([0, 7])), ValueError,
           ("cross_entropy", r"\[0, 3\)")),
    Misuse("ce_shape", lambda: nn.F.cross_entropy(T(2, 3), np.array([0, 1, 2])), ValueError,
           ("cross_entropy", r"\(2,\)")),
    Misuse("mse_shape", lambda: nn.F.mse_loss(T(2, 3), T(3, 2)), ValueError,
           ("mse_loss", r"\(2, 3\)", r"\(3, 2\)")),
    Misuse("reduction", lambda: nn.F.mse_loss(T(2), T(2), reduction="avg"), ValueError,
           ("mse_loss", "reduction")),
    Misuse("step_before_backward", _step_before_backward, RuntimeError,
           ("step\\(\\)", "before backward")),
    Misuse("negative_lr", lambda: nn.optim.Adam(nn.Linear(2, 2).parameters(), lr=-1),
           ValueError, ("Adam", "lr")),
    Misuse("empty_params", lambda: nn.optim.SGD([], lr=0.1), ValueError, ("SGD", "empty")),
    Misuse("non_param", lambda: nn.optim.SGD([T(2)], lr=0.1), TypeError,
           ("SGD", "parameter 0")),
    Misuse("dropout_p", lambda: nn.Dropout(1.5), ValueError, ("Dropout", "p must be")),
    Misuse("mlp_activation", lambda: nn.MLP(2, [2], 1, activation="gelu"), ValueError,
           ("MLP", "gelu")),
    Misuse("load_wrong_model", _load_wrong_model, ValueError,
           ("load_state_dict", "layers.0.weight", "shape")),
    Misuse("load_missing", _load_missing, KeyError, ("load_state_dict", "layers.0.bias")),
    Misuse("module_attribute", _module_attribute, AttributeError, ("MLP", "hidden")),
    Misuse("sequential_item", lambda: nn.Sequential(nn.ReLU(), 3), TypeError,
           ("Sequential", "item 1")),
    Misuse("dataloader_len", lambda: nn.data.DataLoader(np.ones((3, 2)), np.ones(2)),
           ValueError, ("DataLoader", "3 samples", "has 2")),
    Misuse("fit_epochs", lambda: nn.fit(nn.Linear(2, 1), nn.F.mse_loss,
                                        nn.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1),
                                        (np.ones((2, 2)), np.ones((2, 1))), epochs=0),
           ValueError, ("fit", "epochs")),
    Misuse("save_object", lambda: nn.save({"w": np.array([object()])}, "/tmp/never.npz"),
           TypeError, ("save", "'w'", "dtype")),
    Misuse("regression_kind", lambda: nn.data.make_regression(kind="cubic"), ValueError,
           ("make_regression", "cubic")),
    Misuse("idx_magic", lambda: nn.data.read_idx(b"\x01\x02\x03\x04" + b"\x00" * 8), ValueError,
           ("read_idx", "magic")),
]


def test_catalogue_is_big_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_misuse_gives_a_clear_error(case):
    with pytest.raises(case.error) as info:
        case.call()
    message = str(info.value)
    for pattern in case.says:
        assert re.search(pattern, message), (pattern, message)
    # Raised by our code: the innermost frame is in autodiff/ or nn/, never inside numpy.
    innermost = traceback.extract_tb(info.value.__traceback__)[-1].filename
    assert "/numpy/" not in innermost, innermost


def test_missing_mnist_names_the_file_and_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("AUTODIFF_DATA", raising=False)
    with pytest.raises(FileNotFoundError) as info:
        _missing_mnist(tmp_path)()
    assert "train-images-idx3-ubyte" in str(info.value) and str(tmp_path / "nowhere") in str(
        info.value)
