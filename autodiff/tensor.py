"""The Tensor: a numpy array that remembers how it was computed.

Primitives come from the table in `rules/`; everything else here (mean, softmax, maximum, ...)
is composed from them, so it is differentiable, to any order, for free.
"""

from __future__ import annotations

import itertools
import math
import mmap
import numbers
import operator
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from . import engine, rules, tracked
from .engine import apply

ArrayLike = Any
Axis = int | Sequence[int] | None

_FLOAT_KINDS = "f"


def _as_array(data: Any, dtype: Any, who: str) -> np.ndarray:
    """Turn user data into an ndarray under the dtype policy (see Tensor's docstring)."""
    if isinstance(data, Tensor):
        data = data._data
    if isinstance(data, (str, bytes)):
        raise TypeError(f"{who}: expected numbers, got a string {data!r}")
    if isinstance(data, np.ndarray | np.generic):
        array = np.asarray(data, dtype=dtype)
    else:
        if isinstance(data, list | tuple) and _holds_graph(data):
            # Copying their numbers would silently cut the graph (a gradient of 0 for
            # everything before them): refuse, and name the op that keeps it.
            raise TypeError(
                f"{who}: the list holds tensors that require grad, and a new tensor made from "
                "their numbers would cut the graph; use autodiff.stack([...]) to keep it, or "
                "detach() them first"
            )
        try:
            array = np.asarray(data, dtype=dtype)
        except ValueError as exc:
            if "inhomogeneous" in str(exc) or "sequence" in str(exc):
                raise ValueError(
                    f"{who}: nested lists must be rectangular (ragged data: {exc})"
                ) from None
            raise ValueError(f"{who}: cannot convert data to numbers ({exc})") from None
        except TypeError as exc:
            raise TypeError(f"{who}: cannot convert {type(data).__name__} to numbers") from exc
        if dtype is None and array.dtype.kind in "iu":
            # Python numbers and lists are teaching arithmetic: exact float64 by default.
            array = array.astype(np.float64)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{who}: unsupported data type {array.dtype} (numbers only)")
    # A 0-d value is kept as a numpy scalar: arithmetic on those is several times faster than
    # on 0-d arrays, which matters for micrograd-style graphs made of thousands of scalars.
    return array[()] if array.ndim == 0 else array


# numpy functions called on a Tensor dispatch to differentiable ops (see interop.py); what
# reaches __array__ is numpy taking the bare numbers, e.g. np.mean([a * a, b * b]) on a list
# of tensors, which would silently drop the graph behind them. Refused for a computed tensor
# while gradients are recorded (as PyTorch refuses t.numpy()); a leaf's numbers (a weight
# to plot) have no graph behind them to lose, and no_grad() says none is wanted.
_NUMPY_DROPS_GRAPH = (
    "numpy would take the numbers of a tensor computed with gradients (shape {shape}) and "
    "drop the graph behind it: use autodiff.stack([...]) or the tensor's own methods to keep "
    "the gradient, or t.detach() / t.item() / t.tolist() for the plain numbers (e.g. to plot "
    "them)"
)


class ValuesIndices(NamedTuple):
    """What max(dim=) and min(dim=) return, as PyTorch's: `.values` and `.indices`."""

    values: Tensor
    indices: Tensor


def _holds_graph(items: list | tuple, budget: int = 100_000) -> bool:
    """Whether a nested list holds a Tensor that requires grad. Lists of tensors are short
    (each is a Python object); the look stops after `budget` items, so a big nested list of
    numbers (a dataset) costs no more than a fraction of its own conversion."""
    pending = [items]
    while pending and budget > 0:
        level = pending.pop()
        budget -= len(level)
        for item in level:
            if isinstance(item, Tensor):
                if item.requires_grad:
                    return True
            elif isinstance(item, list | tuple):
                pending.append(item)
    return False


class Tensor(engine.Node, result=True):
    """An n-dimensional array that records the operations computing it, for backpropagation.

    A 0-d Tensor is a scalar and works like micrograd's Value::

        a = Tensor(2.0, requires_grad=True)
        b = a * -3 + a ** 2
        b.backward()
        a.grad          # Tensor(1.0): d/da (-3a + a^2) = -3 + 2a

    dtype policy: Python numbers and lists become float64 (exact arithmetic for teaching and
    gradient checks); numpy arrays keep their dtype, so float32 data stays float32 through
    every op and its gradient; mixing float32 and float64 promotes as numpy does. Integer and
    boolean tensors take part as constants but cannot require gradients.

    `.data` is the numbers: a tracked view of the tensor's own array (see `data`); for a
    0-d tensor a numpy scalar (np.float64 and friends), which computes several times faster
    than a 0-d array. Inside the library the array itself is the slot `_data`.
    """

    __slots__ = ()  # every slot is the engine's (engine.Node)

    # numpy hands its ufuncs and functions on Tensors to autodiff/interop.py, which answers
    # with differentiable Tensors (np.exp(t), np.ones(3) + t) or a clear TypeError.
    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        return _interop.array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func: Any, types: tuple, args: tuple, kwargs: dict) -> Any:
        return _interop.array_function(func, types, args, kwargs)

    def __init__(
        self,
        data: ArrayLike,
        requires_grad: bool = False,
        dtype: Any = None,
        name: str | None = None,
        *,
        label: str | None = None,
    ) -> None:
        """`label=` is micrograd's word for `name=` (the caption in drawings)."""
        if label is not None:
            if name is not None and name != label:
                raise TypeError("Tensor: pass name= or label= (the same thing), not both")
            name = label
        self._data = _own_numbers(_as_array(data, dtype, "Tensor"), data)
        self._grad: Any = None
        self.name = name
        self._op = None
        self._in0 = self._in1 = self._ins = None
        self._params = engine.NO_PARAMS
        self._scope = None
        self._clock = 0
        self._modified = 0
        self._born = next(_births)
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # --- basic attributes --------------------------------------------------------------

    @property
    def data(self) -> Any:
        """The numbers: a view of this tensor's memory (a numpy scalar for a 0-d tensor).

        Reading is free of surprises (results are plain ndarrays); a numpy write into it
        (`t.data[i] = v`, `t.data -= lr * g`, `out=t.data`) is recorded like an in-place op,
        so backward refuses a graph that saved these numbers before the write instead of
        computing a wrong gradient; ways of writing it cannot record (`.flat`, a random
        generator's `out=`, `np.asarray(t.data)`) find it read-only (see autodiff/tracked.py).
        """
        data = self._data
        return tracked.view_of(data) if type(data) is np.ndarray else data

    @data.setter
    def data(self, value: ArrayLike) -> None:
        """Replace the numbers (`p.data = p.data - lr * p.grad`, micrograd style).

        A Tensor gives its numbers (never its graph); a Python number keeps this tensor's
        dtype. Nodes that saved the old numbers are refused at backward, as after an
        in-place write; a gradient of another shape than the new numbers is dropped.
        """
        if isinstance(value, tracked.DataArray) and _same_memory(value, self._data):
            return  # `t.data += v` wrote in place (already recorded) and rebinds the view
        self._refuse_shared_constant("data")
        if isinstance(value, bool | int | float) and not isinstance(value, np.generic):
            array = _as_array(value, self._data.dtype, "data")
        else:
            array = _as_array(value, None, "data")
        if self.requires_grad and array.dtype.kind not in _FLOAT_KINDS:
            raise TypeError(
                f"data: a tensor that requires grad needs floating-point numbers, not {array.dtype}"
            )
        array = _own_numbers(array, value)
        if array.shape != self._data.shape:
            self._grad = None  # a gradient of the old shape means nothing for the new one
        self._data = array
        self._modified = engine.mark_written(None)

    @property
    def grad(self) -> Tensor | None:
        """The gradient from the last backward pass (None before one reaches this tensor)."""
        g = self._grad
        if g is None or isinstance(g, Tensor):
            return g
        if isinstance(g, np.ndarray) and not g.flags.writeable:
            g = np.array(g)  # a broadcast view from a rule: hand out an array of its own
        g = engine.constant(g)  # the engine stores raw arrays; wrap once, on first read
        self._grad = g
        return g

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        # A gradient is in its tensor's dtype (backward keeps it so): an assigned float64 one
        # on a float32 tensor would stay float64 and make every later backward add in float64.
        # Plain data (a list, an array) is converted, as Tensor(data, dtype=...) would; a
        # Tensor of another dtype is refused, as PyTorch refuses it.
        own = self.dtype if self.dtype.kind == "f" else None
        if value is not None and not isinstance(value, Tensor):
            value = Tensor(value, dtype=own)
        if value is not None and value.shape != self.shape:
            raise ValueError(f"grad: shape {value.shape} does not match tensor shape {self.shape}")
        if value is not None and own is not None and value.dtype != own:
            raise TypeError(
                f"grad: a {value.dtype} gradient for a {own} tensor; convert it "
                f"with .astype(np.{own})"
            )
        self._grad = value

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def size(self) -> _Size:
        """The number of elements (numpy's int), also callable as PyTorch's `size()`.

        `t.size` is an int (`t.size == 6`, `t.size * 2`); `t.size()` is the shape and
        `t.size(dim)` one axis's length, so code from either library reads the same.
        """
        return _Size(self._data.size, self._data.shape)

    @property
    def is_leaf(self) -> bool:
        return self._op is None

    @property
    def op(self) -> str | None:
        """The name of the op that produced this tensor (None for a leaf)."""
        return None if self._op is None else self._op.name

    parents = engine.Node.parents
    _parents = parents  # the name the engine's older code and some tests use

    @property
    def T(self) -> Tensor:
        return self.transpose()

    def item(self) -> float | int | bool:
        if self._data.size != 1:
            raise ValueError(f"item: only a tensor with one element has an item, not {self.shape}")
        return self._data.item()

    def numpy(self) -> np.ndarray:
        """This tensor's memory as an array (as `.data`; a fresh 0-d array for a scalar)."""
        data = self._data
        return tracked.view_of(data) if type(data) is np.ndarray else np.asarray(data)

    def tolist(self) -> Any:
        return self._data.tolist()

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if self._op is not None and engine.state.mode[0]:
            raise TypeError(_NUMPY_DROPS_GRAPH.format(shape=self.shape))
        array = np.asarray(self._data, dtype=dtype)
        if copy:
            return array.copy()
        # np.asarray(t) shares memory numpy cannot tell us about writes to: read-only, so a
        # write fails loudly instead of changing numbers a graph saved.
        return tracked.read_only(array) if array is self._data else array

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor (a scalar)")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor (a scalar)")
        return (self[i] for i in range(self.shape[0]))

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise ValueError(
                f"the truth value of a tensor of shape {self.shape} is ambiguous; "
                "use .any() or .all()"
            )
        return bool(self._data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    __hash__ = object.__hash__  # identity: == is elementwise, as in numpy

    def __repr__(self) -> str:
        body = np.array2string(
            np.asarray(self._data), separator=", ", precision=4, prefix="Tensor("
        )
        extras = []
        if self.dtype not in (np.float64, np.bool_):
            extras.append(f"dtype={self.dtype}")
        if self.name:
            extras.append(f"name={self.name!r}")
        if self._op is not None:
            extras.append(f"op={op_name(self)}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"Tensor({body}{''.join(', ' + e for e in extras)})"

    # --- gradient bookkeeping ------------------------------------------------------------

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad:
            self._refuse_shared_constant("requires_grad_")
        if requires_grad and self._data.dtype.kind not in _FLOAT_KINDS:
            raise TypeError(
                f"requires_grad: only floating-point tensors can require gradients, "
                f"not {self.dtype} (convert with .astype(np.float64))"
            )
        if not requires_grad and self._op is not None:
            raise ValueError(
                "requires_grad_: cannot stop tracking a computed tensor; use .detach()"
            )
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> None:
        """PyTorch's call to keep a computed tensor's gradient: here every tensor a backward
        pass reaches gets its `.grad` already, so there is nothing to switch on."""
        if not self.requires_grad:
            raise RuntimeError(
                "retain_grad: this tensor does not require grad, so no backward pass will reach it"
            )

    def clone(self) -> Tensor:
        """A copy of the numbers that stays in the graph (gradients flow back through it), as
        PyTorch's clone; `detach()` is the other way round."""
        return apply(rules.cast, (self,), dtype=np.asarray(self._data).dtype)

    def detach(self) -> Tensor:
        """The same numbers, cut from the graph (shares memory with this tensor)."""
        out = engine.constant(self._data)
        out._born = next(_births)
        return out

    def __reduce__(self) -> tuple:
        """copy.deepcopy and pickle: a leaf travels as its numbers, requires_grad, name and
        gradient (a model deep-copied for early stopping trains on independently)."""
        if self._op is not None:
            raise TypeError(
                f"cannot copy or pickle a computed tensor (made by {self._op.name}, shape "
                f"{self.shape}): copy its .detach(), or the leaves it was computed from"
            )
        grad = self._grad._data if isinstance(self._grad, Tensor) else self._grad
        return (_rebuild_leaf, (type(self), self._data, self.requires_grad, self.name, grad))

    def zero_grad(self) -> None:
        self._grad = None

    def _bump_version(self) -> None:
        """Mark this tensor, and every tensor sharing its memory, as modified in place.

        Call it after writing into `._data` directly (as the optimizers do): backward then
        refuses a graph that saved these numbers before the write (see engine._written).
        """
        self._modified = engine.mark_written(self._data)

    def backward(self, grad: ArrayLike | None = None, create_graph: bool = False) -> None:
        """Backpropagate from this tensor, filling `.grad` of every tensor it depends on.

        Leaf tensors (the ones you created) *accumulate*: each call adds into `.grad`, as in
        PyTorch, so reset with `zero_grad()` (or an optimizer's) between steps. Every other
        tensor reached gets this pass's gradient, replacing any older one. The graph is kept,
        so calling backward twice adds the same gradients twice. With `create_graph=True`
        the gradients are themselves differentiable (prefer `autodiff.grad` for that: a leaf
        holding a gradient that depends on itself is a reference cycle).
        """
        data = self._data
        if (
            grad is None
            and not create_graph
            and self.requires_grad
            and type(data) is not np.ndarray
        ):
            seed = type(data)(1)  # a loss (a numpy scalar): _seed's common case, inlined
        else:
            seed = self._seed(grad, "backward", create_graph)
        engine.backward([self], [seed], create_graph=create_graph)  # quiet at singular points

    def _seed(self, grad: ArrayLike | None, who: str, create_graph: bool) -> Any:
        if not self.requires_grad:
            raise RuntimeError(
                f"{who}: this tensor does not require grad: nothing that requires grad "
                "was used to compute it, or it was computed under no_grad() (create inputs "
                "with requires_grad=True, and compute the loss outside no_grad())"
            )
        if grad is None:
            if self._data.size != 1:
                raise ValueError(
                    f"{who}: a tensor of shape {self.shape} is not a scalar; pass grad= "
                    "(the upstream gradient, of the same shape)"
                )
            # A 0-d tensor (a loss) gets a numpy scalar, as its data is: cheaper than np.ones.
            seed: Any = (
                self._data.dtype.type(1)
                if self._data.ndim == 0
                else np.ones(self.shape, dtype=self.dtype)
            )
        else:
            seed = grad._data if isinstance(grad, Tensor) else _as_array(grad, None, who)
            if create_graph and isinstance(grad, Tensor) and seed.shape == self.shape:
                # Kept as a Tensor in the graph the backward pass records, so the gradients
                # are differentiable in it too (as PyTorch's grad_outputs), but through a copy
                # (a cast node) as without create_graph: the root's `.grad`, and a leaf's
                # reached through add or reshape, are this seed or views of it, and were the
                # caller's tensor itself (x.backward(g, create_graph=True); x.grad.zero_()
                # zeroed g).
                return apply(rules.cast, (grad,), dtype=self.dtype)
            if seed.shape != self.shape:
                raise ValueError(
                    f"{who}: grad has shape {seed.shape} but the tensor has shape {self.shape}"
                )
            seed = np.array(seed, dtype=self.dtype)  # a private copy in our dtype
        return Tensor(seed) if create_graph else seed

    # --- in place ------------------------------------------------------------------------

    def __setitem__(self, index: Any, value: ArrayLike) -> None:
        if getattr(value, "_batched", False):  # (a batched tensor writes through its own)
            raise TypeError(
                f"setitem: writing a value batched by vmap (one per example) into a tensor "
                f"shared by every example (shape {self.shape}) in place; build a new "
                "tensor from the batched value instead (t = x * 0 + ..., autodiff.where, "
                "autodiff.concatenate)"
            )
        recording = engine.is_grad_enabled()
        if self.requires_grad and self._op is None and recording:
            raise RuntimeError(
                f"setitem: cannot write into a leaf tensor that requires grad (shape "
                f"{self.shape}): its gradient would be about numbers it no longer holds. Build "
                "a new tensor (autodiff.where, concatenate) or write under no_grad()."
            )
        index = _index(index)
        if engine.state.forward:  # inside jvp: the tangents are written too
            from .forward import write_tangents

            write_tangents(self, index, value)
        if recording and (
            self.requires_grad or (isinstance(value, Tensor) and value.requires_grad)
        ):
            self._record_setitem(index, value)
            return
        if not (isinstance(self._data, np.ndarray) and self._data.flags.writeable):
            self._refuse_shared_constant("setitem")
            self._data = np.array(self._data)
        value = value._data if isinstance(value, Tensor) else value
        try:
            self._data[index] = value
        except (ValueError, IndexError, TypeError) as exc:
            raise engine.op_error("setitem", [self], exc) from None
        if self._data.ndim == 0:
            self._data = self._data[()]  # a 0-d tensor keeps a numpy scalar (see the class doc)
        self._bump_version()

    def _record_setitem(self, index: Any, value: ArrayLike) -> None:
        """`self[index] = value` as a node of the graph: this tensor becomes the op's output.

        Its old state moves to a new tensor (the op's first input), and the write goes into a
        copy, so nodes that saved the old numbers keep them; nodes that saved this tensor
        itself are refused at backward, as for any in-place write.
        """
        value = _operand(value, self)
        if self.dtype.kind != "f":
            raise RuntimeError(
                f"setitem: cannot write a tensor that requires grad into a {self.dtype} tensor "
                f"(shape {self.shape}): the numbers would be rounded and the gradient lost; "
                "convert with .astype(np.float64) first"
            )
        before = Tensor.__new__(Tensor)
        for slot in (
            "_data",
            "requires_grad",
            "name",
            "_op",
            "_in0",
            "_in1",
            "_ins",
            "_params",
            "_scope",
            "_clock",
            "_modified",
        ):
            setattr(before, slot, getattr(self, slot))
        before._grad = None
        # Earlier than the new node, later than any node that used self; a write, so backward
        # checks the nodes recorded before it (see engine._last_write).
        written = engine.mark_written(None)
        out = apply(rules.setitem, (before, value), index=index)
        for slot in ("_data", "requires_grad", "_op", "_in0", "_in1", "_ins", "_params", "_clock"):
            setattr(self, slot, getattr(out, slot))
        self._grad = None
        self._modified = written

    def _refuse_shared_constant(self, who: str) -> None:
        # A number like 2.0 in `x * 2.0` is one cached constant shared by every expression
        # (see _operand): changing it would change them all.
        if id(self) in _CONSTANT_IDS:
            raise RuntimeError(
                f"{who}: this constant is shared by every expression that uses "
                "the same number; it cannot be changed"
            )

    def _update(self, name: str, other: ArrayLike, compute: Any) -> Tensor:
        """`self op= other`: PyTorch's in-place update where no graph records it, micrograd's
        rebinding where one does.

        Under no_grad, or on constants, the numbers are written into this tensor's memory
        (`p -= lr * p.grad` updates the model's own array; views see it; graphs that saved
        it are refused at backward). When the update is recorded (or carries tangents
        inside autodiff.jvp), the name is rebound to a new node (`c += c + 1` in a graph),
        and the old node stays as it was for the ops that already used it. A leaf that
        requires grad is refused with grad mode on, as in PyTorch: its gradient would be
        about numbers it no longer holds.
        """
        if self.requires_grad and self._op is None and engine.is_grad_enabled():
            raise RuntimeError(
                f"{name}: cannot update a leaf tensor that requires grad in place (shape "
                f"{self.shape}) while gradients are recorded; update it under "
                "`with autodiff.no_grad():` (as an optimizer step does), or build a new tensor"
            )
        other = _operand(other, self)
        result = compute(self, other)
        if result.requires_grad or engine.state.forward:
            # Recorded (or carrying tangents inside autodiff.jvp): rebound, as micrograd's
            # Value does, so the result's node and tangent come with it.
            return result
        if result.shape != self.shape or not np.can_cast(result.dtype, self.dtype, "same_kind"):
            raise (ValueError if result.shape != self.shape else TypeError)(
                f"{name}: the result ({result.dtype} {result.shape}) cannot be stored in "
                f"place in this {self.dtype} tensor of shape {self.shape} (an in-place update "
                "keeps the shape and dtype)"
            )
        if type(self._data) is np.ndarray and self._data.flags.writeable:
            self._data[...] = result._data
        else:  # a 0-d tensor's numpy scalar, or read-only memory: new numbers
            self._refuse_shared_constant(name)
            self._data = np.asarray(result._data).astype(self.dtype)
            if self._data.ndim == 0:
                self._data = self._data[()]
        self._bump_version()
        return self

    def __iadd__(self, other: ArrayLike) -> Tensor:
        return self._update("+=", other, operator.add)

    def __isub__(self, other: ArrayLike) -> Tensor:
        return self._update("-=", other, operator.sub)

    def __imul__(self, other: ArrayLike) -> Tensor:
        return self._update("*=", other, operator.mul)

    def __itruediv__(self, other: ArrayLike) -> Tensor:
        return self._update("/=", other, operator.truediv)

    def __ipow__(self, other: ArrayLike) -> Tensor:
        return self._update("**=", other, operator.pow)

    def __imatmul__(self, other: ArrayLike) -> Tensor:
        return self._update("@=", other, operator.matmul)

    # --- operators -----------------------------------------------------------------------
    # (A Tensor operand is passed as is, without the call into _operand: one frame per op.)

    def __add__(self, other: ArrayLike) -> Tensor:
        return apply(
            rules.add, (self, other if isinstance(other, Tensor) else _operand(other, self))
        )

    def __radd__(self, other: ArrayLike) -> Tensor:
        return apply(rules.add, (_operand(other, self), self))

    def __sub__(self, other: ArrayLike) -> Tensor:
        return apply(
            rules.sub, (self, other if isinstance(other, Tensor) else _operand(other, self))
        )

    def __rsub__(self, other: ArrayLike) -> Tensor:
        return apply(rules.sub, (_operand(other, self), self))

    def __mul__(self, other: ArrayLike) -> Tensor:
        return apply(
            rules.mul, (self, other if isinstance(other, Tensor) else _operand(other, self))
        )

    def __rmul__(self, other: ArrayLike) -> Tensor:
        return apply(rules.mul, (_operand(other, self), self))

    def __truediv__(self, other: ArrayLike) -> Tensor:
        return apply(
            rules.div, (self, other if isinstance(other, Tensor) else _operand(other, self))
        )

    def __rtruediv__(self, other: ArrayLike) -> Tensor:
        return apply(rules.div, (_operand(other, self), self))

    def __neg__(self) -> Tensor:
        return apply(rules.neg, (self,))

    def __pos__(self) -> Tensor:
        return self

    def __pow__(self, exponent: ArrayLike) -> Tensor:
        if isinstance(exponent, numbers.Real) and not isinstance(exponent, bool):
            if isinstance(exponent, float):
                # np.float64 is a Python float, and x * np.float64(c) keeps float32 as x * c
                # does (_operand); numpy would compute x ** np.float64(c) in float64, so the
                # exponent goes in as the plain float it is (as PyTorch treats it too).
                exponent = float(exponent)
            return apply(rules.pow_const, (self,), exponent=exponent)
        return apply(rules.pow_tensor, (self, _operand(exponent, self)))

    def __rpow__(self, base: ArrayLike) -> Tensor:
        return apply(rules.pow_tensor, (_operand(base, self), self))

    def __matmul__(self, other: ArrayLike) -> Tensor:
        return matmul(self, other)

    def __rmatmul__(self, other: ArrayLike) -> Tensor:
        return matmul(other, self)

    def _compare(self, other: ArrayLike, ufunc: np.ufunc) -> Tensor:
        other_data = other._data if isinstance(other, Tensor) else other
        try:
            return Tensor(ufunc(self._data, other_data))
        except (ValueError, TypeError) as exc:
            raise engine.op_error(ufunc.__name__, [self, Tensor(other_data)], exc) from None

    def __lt__(self, other: ArrayLike) -> Tensor:
        return self._compare(other, np.less)

    def __le__(self, other: ArrayLike) -> Tensor:
        return self._compare(other, np.less_equal)

    def __gt__(self, other: ArrayLike) -> Tensor:
        return self._compare(other, np.greater)

    def __ge__(self, other: ArrayLike) -> Tensor:
        return self._compare(other, np.greater_equal)

    def __eq__(self, other: object) -> Tensor:  # type: ignore[override]
        return self._compare(other, np.equal)

    def __ne__(self, other: object) -> Tensor:  # type: ignore[override]
        return self._compare(other, np.not_equal)

    def __getitem__(self, index: Any) -> Tensor:
        if type(index) is np.ndarray and not self.requires_grad:
            # No node will keep this index (the result is a constant), so it needs no copy
            # of its own: a batch gathered from a data set, every training step.
            return apply(rules.getitem, (self,), index=index)
        return apply(rules.getitem, (self,), index=_index(index))

    # --- elementwise methods ---------------------------------------------------------------

    def _floating(self) -> Tensor:
        """This tensor, or its numbers in float64 if they are integers or booleans.

        Floating-point ops (exp, sigmoid, softmax, ...) must not compute in the input's integer
        type: -x and x - max(x) wrap around in uint8 (MNIST pixels), and numpy would pick
        float16 for exp of uint8. Integer tensors are constants, so nothing is lost.
        """
        if self._data.dtype.kind == "f":
            return self
        return Tensor(np.asarray(self._data).astype(np.float64))

    def exp(self) -> Tensor:
        return apply(rules.exp, (self._floating(),))

    def log(self) -> Tensor:
        return apply(rules.log, (self._floating(),))

    def sqrt(self) -> Tensor:
        return apply(rules.pow_const, (self._floating(),), exponent=0.5)

    def tanh(self) -> Tensor:
        return apply(rules.tanh, (self._floating(),))

    def sigmoid(self) -> Tensor:
        return apply(rules.sigmoid, (self._floating(),))

    def relu(self) -> Tensor:
        return apply(rules.relu, (self,))

    def abs(self) -> Tensor:
        return apply(rules.abs_, (self,))

    def clip(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
        """Values limited to [min, max]; the gradient is 1 inside and 0 where clipped.

        The bounds are numbers or arrays (constants) that broadcast to this tensor's shape.
        """
        lo, hi = (_clip_bound(b, name, self.shape) for b, name in ((min, "min"), (max, "max")))
        if lo is None and hi is None:
            return self
        data = np.clip(self._data, lo, hi)
        if self._data.dtype.kind != "f" and data.dtype.kind == "f":
            # Integers or booleans clipped to fractional bounds: the answer has fractions
            # (numpy's and PyTorch's [0.5, 2.5] for [0, 3] in [0.5, 2.5]); cast back to
            # integers it would fall outside the bounds. A constant, as integer tensors are.
            return Tensor(data)
        inside = data == self._data
        return where(inside, self, Tensor(data.astype(self.dtype, copy=False)))

    def astype(self, dtype: Any) -> Tensor:
        """A copy in another dtype; gradients flow back and are cast to this tensor's dtype.

        Casting to an integer or boolean dtype gives a constant: rounding has no useful
        derivative, so no gradient flows through it (rather than a silently wrong one).
        """
        try:
            target = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"astype: {dtype!r} is not a numpy dtype") from None
        if target.kind not in "biuf":
            raise TypeError(f"astype: unsupported dtype {target} (numbers only)")
        if target == self.dtype:
            return self
        if target.kind != "f":
            return Tensor(np.asarray(self._data).astype(target))
        return apply(rules.cast, (self,), dtype=target)

    # --- reductions ----------------------------------------------------------------------

    # Reductions take numpy's axis=/keepdims= and PyTorch's dim=/keepdim= (either, not both).

    def sum(
        self,
        axis: Axis = None,
        keepdims: bool = False,
        *,
        dim: Axis = None,
        keepdim: bool | None = None,
    ) -> Tensor:
        if dim is not None or keepdim is not None:
            axis, keepdims = _torch_names("sum", axis, keepdims, dim, keepdim)
        return apply(rules.sum_, (self,), axis=_axes(axis, self.ndim, "sum"), keepdims=keepdims)

    def mean(
        self,
        axis: Axis = None,
        keepdims: bool = False,
        *,
        dim: Axis = None,
        keepdim: bool | None = None,
    ) -> Tensor:
        if dim is not None or keepdim is not None:
            axis, keepdims = _torch_names("mean", axis, keepdims, dim, keepdim)
        axes = _axes(axis, self.ndim, "mean")
        count = self._data.size if axes is None else int(np.prod([self.shape[a] for a in axes]))
        if count == 0:
            raise ValueError(f"mean: no elements to average in shape {self.shape}")
        return apply(rules.mean, (self,), axis=axes, keepdims=keepdims, count=count)

    def max(
        self,
        *by_position: Any,
        axis: Axis = None,
        keepdims: bool = False,
        dim: int | None = None,
        keepdim: bool | None = None,
    ) -> Any:
        """The largest value over `axis` (numpy's meaning: a Tensor). With PyTorch's `dim=`,
        PyTorch's answer: `(values, indices)`, so `_, predicted = out.max(dim=1)` works.

        The axis must be named: `out.max(1)` is the values in numpy and the pair in PyTorch,
        and either reading can unpack a batch of two without an error into the wrong thing.
        """
        _named_axis_only("max", by_position)
        return self._extremum(rules.max_, axis, keepdims, dim, keepdim)

    def min(
        self,
        *by_position: Any,
        axis: Axis = None,
        keepdims: bool = False,
        dim: int | None = None,
        keepdim: bool | None = None,
    ) -> Any:
        """The smallest value: numpy's meaning with `axis=`, PyTorch's (values, indices)
        with `dim=` (see max)."""
        _named_axis_only("min", by_position)
        return self._extremum(rules.min_, axis, keepdims, dim, keepdim)

    def _extremum(
        self, op: rules.Op, axis: Axis, keepdims: bool, dim: Any = None, keepdim: bool | None = None
    ) -> Any:
        if dim is not None:
            # PyTorch's max(dim=) gives (values, indices): answering values alone would let
            # `_, predicted = out.max(dim=1)` unpack a batch of two silently into two maxima.
            if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
                raise TypeError(
                    f"{op.name}: dim= takes one axis (an int), as in PyTorch, got "
                    f"{dim!r}; for several axes use axis= (values only)"
                )
            axis, keepdims = _torch_names(op.name, axis, keepdims, dim, keepdim)
            values = self._extremum(op, axis, keepdims)
            pick = self.argmax if op is rules.max_ else self.argmin
            return ValuesIndices(values, pick(axis=axis, keepdims=keepdims))
        if keepdim is not None:
            keepdims = bool(keepdim)
        axes = _axes(axis, self.ndim, op.name)
        shape = self._data.shape
        # Only a reduction over an axis of length 0 has no answer: the max over a non-empty
        # axis of a (0, 3) tensor is an empty result, as in numpy and PyTorch.
        if self._data.size == 0 and (axes is None or any(shape[a] == 0 for a in axes)):
            raise ValueError(
                f"{op.name}: empty tensor of shape {shape} has no {op.name}"
                + ("" if axes is None else f" over axis {axis}")
            )
        return apply(op, (self,), axis=axes, keepdims=keepdims)

    def var(
        self,
        axis: Axis = None,
        keepdims: bool = False,
        ddof: int = 0,
        *,
        dim: Axis = None,
        keepdim: bool | None = None,
        correction: int | None = None,
    ) -> Tensor:
        """Variance: sum of squared deviations / (n - ddof).

        The default is numpy's ddof=0 (the population variance), also when called with
        PyTorch's dim=; pass ddof=1 or correction=1 (PyTorch's name) for the sample variance.
        """
        var = self._var("var", axis, keepdims, ddof, dim, keepdim, correction)
        return _composite(var.astype(np.float16) if self.dtype == np.float16 else var, "var")

    def std(
        self,
        axis: Axis = None,
        keepdims: bool = False,
        ddof: int = 0,
        *,
        dim: Axis = None,
        keepdim: bool | None = None,
        correction: int | None = None,
    ) -> Tensor:
        """Standard deviation, the square root of `var` (same ddof=0 default, see there)."""
        var = self._var("std", axis, keepdims, ddof, dim, keepdim, correction)
        # sqrt'(0) is infinite: where the spread is exactly 0 (a constant row, an axis of size
        # 1) the chain rule would give 0 * inf = NaN, and the mean inside var would spread it
        # into the whole tensor. There the gradient is taken as 0, a valid subgradient (as
        # PyTorch does). NaN variances stay NaN.
        spread = var._data != 0  # (a comparison, not numpy: vmap batches it)
        std = where(spread, where(spread, var, 1.0).sqrt(), 0.0)
        return _composite(std.astype(np.float16) if self.dtype == np.float16 else std, "std")

    def _var(
        self,
        who: str,
        axis: Axis,
        keepdims: bool,
        ddof: int,
        dim: Axis,
        keepdim: bool | None,
        correction: int | None,
    ) -> Tensor:
        if dim is not None or keepdim is not None:
            axis, keepdims = _torch_names(who, axis, keepdims, dim, keepdim)
        if correction is not None:
            if ddof:
                raise TypeError(f"{who}: pass ddof= or correction= (the same thing), not both")
            ddof = correction
        axes = _axes(axis, self.ndim, who)
        count = self._data.size if axes is None else int(np.prod([self.shape[a] for a in axes]))
        if count - ddof <= 0:
            raise ValueError(
                f"{who}: ddof={ddof} leaves no degrees of freedom for {count} values "
                f"(shape {self.shape}, axis {axis})"
            )
        # float16 computes in float32 (var and std cast the answer back): the squares overflow
        # 65504 long before the variance does, std([300., -300.]) = 300 had a square of 90000.
        x = self.astype(np.float32) if self.dtype == np.float16 else self
        centered = x - x.mean(axis=axes, keepdims=True)
        # The mean of the squares, rescaled for ddof, not their sum (as the variance, not the sum
        # of squares, is what has to fit in the dtype).
        spread = (centered * centered).mean(axis=axes, keepdims=keepdims)
        return spread if ddof == 0 else spread * (count / (count - ddof))

    def logsumexp(
        self,
        axis: Axis = None,
        keepdims: bool = False,
        *,
        dim: Axis = None,
        keepdim: bool | None = None,
    ) -> Tensor:
        if dim is not None or keepdim is not None:
            axis, keepdims = _torch_names("logsumexp", axis, keepdims, dim, keepdim)
        axes = _axes(axis, self.ndim, "logsumexp")
        return apply(rules.logsumexp, (self._floating(),), axis=axes, keepdims=keepdims)

    def log_softmax(self, axis: int = -1, *, dim: int | None = None) -> Tensor:
        if dim is not None:
            axis, _ = _torch_names("log_softmax", None if axis == -1 else axis, False, dim, None)
        _axis(axis, self.ndim, "log_softmax")
        x = self._floating()
        # Composite but stable: logsumexp shifts by the max, so nothing overflows.
        return _composite(x - x.logsumexp(axis=axis, keepdims=True), "log_softmax")

    def softmax(self, axis: int = -1, *, dim: int | None = None) -> Tensor:
        if dim is not None:
            axis, _ = _torch_names("softmax", None if axis == -1 else axis, False, dim, None)
        _axis(axis, self.ndim, "softmax")
        return _composite(self.log_softmax(axis=axis).exp(), "softmax")

    # --- shape ---------------------------------------------------------------------------

    def reshape(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        try:
            shape = tuple(int(n) for n in shape)
        except (TypeError, ValueError):
            raise TypeError(f"reshape: shape must be integers, got {shape}") from None
        return apply(rules.reshape, (self,), shape=shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        """All axes into one, as numpy's flatten(); PyTorch's `flatten(start_dim, end_dim)`
        merges only those: `x.flatten(1)` keeps the batch axis ((N, C, H, W) -> (N, C*H*W)).
        (Without the arguments, `x.flatten(1)` failed with "takes 1 positional argument".)"""
        if self.ndim == 0:
            _axis(start_dim, 0, "flatten")
            _axis(end_dim, 0, "flatten")
            return self.reshape(-1)
        start = _axis(start_dim, self.ndim, "flatten")
        end = _axis(end_dim, self.ndim, "flatten")
        if start > end:
            raise ValueError(
                f"flatten: start_dim {start_dim} comes after end_dim {end_dim} "
                f"for a tensor with {self.ndim} axes"
            )
        shape = self.shape
        return self.reshape(*shape[:start], math.prod(shape[start : end + 1]), *shape[end + 1 :])

    def transpose(self, *axes: Any) -> Tensor:
        """numpy's transpose: `transpose()` reverses the axes, `transpose(axes)` permutes them.

        Note for PyTorch users: `t.transpose(0, 1)` has numpy's meaning, a full permutation:
        on a 2-D tensor it is the identity (no swap!) and on 3 or more axes it is an error. To
        swap two axes use `swapaxes(0, 1)` (or `.T` for 2-D); `permute(2, 0, 1)` is PyTorch's
        name for a permutation.
        """
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        if not axes:
            axes = tuple(reversed(range(self.ndim)))
        elif sorted(_axis(a, self.ndim, "transpose") for a in axes) != list(range(self.ndim)):
            raise ValueError(
                f"transpose: axes {axes} are not a permutation of the {self.ndim} axes of a "
                f"tensor of shape {self.shape}"
            )
        axes = tuple(_axis(a, self.ndim, "transpose") for a in axes)
        return apply(rules.transpose, (self,), axes=axes)

    def swapaxes(self, axis1: int, axis2: int) -> Tensor:
        axes = list(range(self.ndim))
        a, b = _axis(axis1, self.ndim, "swapaxes"), _axis(axis2, self.ndim, "swapaxes")
        axes[a], axes[b] = axes[b], axes[a]
        return apply(rules.transpose, (self,), axes=tuple(axes))

    def broadcast_to(self, shape: int | Sequence[int]) -> Tensor:
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        return apply(rules.broadcast_to, (self,), shape=shape)

    def maximum(self, other: ArrayLike) -> Tensor:
        """Elementwise max with `other` (autodiff.maximum; PyTorch's `t.maximum(u)`)."""
        return maximum(self, other)

    def minimum(self, other: ArrayLike) -> Tensor:
        """Elementwise min with `other` (autodiff.minimum; PyTorch's `t.minimum(u)`)."""
        return minimum(self, other)

    # --- habits from micrograd, PyTorch and numpy ----------------------------------------
    # Aliases only where the name means nothing else in numpy; each is a composite of the
    # methods above, so it is differentiable with no new rule.

    def __format__(self, spec: str) -> str:
        """f"{t:.4f}" formats a 0-d tensor as its number (micrograd's `f"{a.grad:.4f}"`);
        other tensors format as numpy formats their array."""
        if not spec:
            return str(self)
        if self.ndim == 0:
            return format(self._data.item(), spec)
        return format(self._data, spec)  # numpy's own answer (an error for most specs)

    def __abs__(self) -> Tensor:
        return self.abs()

    def argmax(
        self,
        axis: int | None = None,
        keepdims: bool = False,
        *,
        dim: int | None = None,
        keepdim: bool | None = None,
    ) -> Tensor:
        """Index of the largest value (an int64 Tensor, no gradient: an index has none)."""
        return self._arg(np.argmax, "argmax", axis, keepdims, dim, keepdim)

    def argmin(
        self,
        axis: int | None = None,
        keepdims: bool = False,
        *,
        dim: int | None = None,
        keepdim: bool | None = None,
    ) -> Tensor:
        """Index of the smallest value (an int64 Tensor, no gradient)."""
        return self._arg(np.argmin, "argmin", axis, keepdims, dim, keepdim)

    def _arg(
        self,
        fn: Any,
        who: str,
        axis: int | None,
        keepdims: bool,
        dim: int | None,
        keepdim: bool | None,
    ) -> Tensor:
        if dim is not None or keepdim is not None:
            axis, keepdims = _torch_names(who, axis, keepdims, dim, keepdim)
        if self._data.size == 0:
            raise ValueError(f"{who}: empty tensor of shape {self.shape} has no {who}")
        if axis is not None:
            axis = _axis(axis, self.ndim, who)
            if self.ndim == 0:
                axis = None
        result = fn(np.asarray(self._data), axis=axis, keepdims=keepdims)
        return Tensor(np.asarray(result, dtype=np.int64))

    def unsqueeze(self, dim: int) -> Tensor:
        """A new axis of length 1 at position `dim` (numpy's expand_dims)."""
        ax = _axis(dim, self.ndim + 1, "unsqueeze")
        return self.reshape(self.shape[:ax] + (1,) + self.shape[ax:])

    def squeeze(self, dim: Axis = None) -> Tensor:
        """Drop axes of length 1: all of them, or the given ones (which must have length 1)."""
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        axes = _axes(dim, self.ndim, "squeeze") or ()
        for a in axes:
            if self.shape[a] != 1:
                raise ValueError(
                    f"squeeze: axis {a} of shape {self.shape} has length {self.shape[a]}, not 1"
                )
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if i not in axes))

    def permute(self, *dims: Any) -> Tensor:
        """PyTorch's name for a permutation of the axes: numpy's `transpose(dims)`."""
        if not dims:
            raise TypeError(f"permute: give the new order of the {self.ndim} axes")
        return self.transpose(*dims)

    def view(self, *shape: Any) -> Tensor:
        """PyTorch's name for `reshape` (here a reshape of the data, never shared writes)."""
        return self.reshape(*shape)

    def clamp(self, min: float | None = None, max: float | None = None) -> Tensor:  # noqa: A002
        """PyTorch's name for `clip`."""
        return self.clip(min, max)

    def pow(self, exponent: ArrayLike) -> Tensor:
        return self**exponent

    def zero_(self) -> Tensor:
        """Set every value to 0 in place (PyTorch's `t.grad.zero_()`); returns this tensor."""
        if self.requires_grad and engine.is_grad_enabled():
            raise RuntimeError(
                f"zero_: cannot write into a tensor that requires grad (shape {self.shape}); "
                "to reset a gradient call zero_grad() on the tensor, or t.grad.zero_()"
            )
        # Written into this tensor's memory, as PyTorch's zero_ and as `t -= v` and `t[i] = v`
        # here: views and detach() aliases made before see the zeros (new zeros left them
        # with the old numbers). Every `.grad` owns its memory (the engine copies a gradient
        # array it would hand to two tensors), so a.grad.zero_() leaves b.grad alone.
        self._refuse_shared_constant("zero_")
        data = self._data
        if type(data) is np.ndarray and data.flags.writeable:
            data[...] = 0
        else:  # a 0-d tensor's numpy scalar, or read-only memory (a broadcast): new zeros
            self._data = np.zeros_like(data)[()]
        self._bump_version()
        return self

    # Last in the class body: from here on, `float` inside the body names this method.

    def double(self) -> Tensor:
        """A float64 copy (differentiable; this tensor itself if it is float64 already)."""
        return self.astype(np.float64)

    def float(self) -> Tensor:  # noqa: A003
        """A float32 copy (differentiable; this tensor itself if it is float32 already)."""
        return self.astype(np.float32)


class _Size(int):
    """`Tensor.size`: numpy's element count that can also be called like PyTorch's size()."""

    _shape: tuple[int, ...]

    def __new__(cls, count: int, shape: tuple[int, ...]) -> _Size:
        self = super().__new__(cls, count)
        self._shape = shape
        return self

    def __reduce__(self) -> tuple:
        return (int, (int(self),))  # copies and pickles are plain ints

    def __call__(self, dim: int | None = None) -> tuple[int, ...] | int:
        if dim is None:
            return self._shape
        return self._shape[_axis(dim, len(self._shape), "size")]


# --- argument normalization --------------------------------------------------------------


_CONSTANTS: dict[tuple[int, float], Tensor] = {}
_CONSTANT_IDS: set[int] = set()


def _rebuild_leaf(cls: type, data: Any, requires_grad: bool, name: str | None, grad: Any) -> Tensor:
    t = cls.__new__(cls)
    Tensor.__init__(t, data, name=name)
    t.requires_grad = requires_grad
    t._grad = None if grad is None else np.array(grad)
    return t


def _own_numbers(array: Any, data: Any) -> Any:
    """`array` (made from `data`), copied when it may still be the caller's memory: a tensor
    owns its numbers (as torch.tensor and np.array make them), so a graph that saved them
    cannot be changed by a later write into the caller's array."""
    source = data._data if isinstance(data, Tensor) else data
    if (
        type(array) is np.ndarray
        and isinstance(source, np.ndarray)
        and (array is source or array.base is not None)
    ):
        return array.copy()
    return array


def _same_memory(view: np.ndarray, data: Any) -> bool:
    return (
        type(data) is np.ndarray
        and view.shape == data.shape
        and view.strides == data.strides
        and view.dtype == data.dtype
        and view.__array_interface__["data"] == data.__array_interface__["data"]
    )


def _operand(value: Any, like: Tensor) -> Tensor:
    """Wrap the other side of a binary operator as a constant Tensor.

    A Python number takes the dtype numpy would give it next to `like` (float32 stays
    float32 when multiplied by 0.5), matching numpy 2's rules for Python scalars.
    """
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        dtype = like._data.dtype
        if dtype.kind != "f":
            dtype = np.result_type(dtype, value)
        # Reuse constants like `2.0`, `1e-9` or the 0 that Python's sum() starts from instead
        # of making a node per use (half of the nodes of a scalar chain). -0.0 is not cached
        # (it equals 0.0 as a key but differs in sign), nor NaN (never equal to itself);
        # nothing can write into a cached constant (see _refuse_shared_constant).
        cacheable = value == value and (value or math.copysign(1.0, value) > 0)
        key = (dtype.num, value)
        if cacheable:
            cached = _CONSTANTS.get(key)
            if cached is not None:
                return cached
        # A numpy scalar, not a 0-d array: creating one is several times cheaper.
        constant = engine.constant(dtype.type(value))
        if cacheable and len(_CONSTANTS) < 4096:
            _CONSTANTS[key] = constant
            _CONSTANT_IDS.add(id(constant))  # cached ones live as long as the process
        return constant
    if isinstance(value, np.ndarray | np.generic | list | tuple | numbers.Number):
        return Tensor(value)
    raise TypeError(
        f"unsupported operand type {type(value).__name__} for a Tensor of shape {like.shape}"
    )


def _axis(axis: Any, ndim: int, who: str) -> int:
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TypeError(f"{who}: axis must be an int, got {type(axis).__name__}")
    # A 0-d tensor has one implicit axis, 0 or -1, as in PyTorch (softmax of a scalar).
    in_range = axis in (0, -1) if ndim == 0 else -ndim <= axis < ndim
    if not in_range:
        raise ValueError(f"{who}: axis {axis} is out of range for a tensor with {ndim} axes")
    return int(axis) % ndim if ndim else 0


def _axes(axis: Axis, ndim: int, who: str) -> tuple[int, ...] | None:
    if axis is None:
        return None
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
        axes: tuple = (axis,)
    elif isinstance(axis, (tuple, list)):
        axes = tuple(axis)
    else:
        raise TypeError(
            f"{who}: axis must be an int or a tuple of ints, got {type(axis).__name__} {axis!r}"
        )
    if ndim == 0:
        # As in PyTorch, a scalar has one implicit axis (0 or -1) to reduce or softmax over;
        # the answer is the same as reducing everything.
        if len(axes) <= 1 and all(a in (0, -1) for a in axes):
            return None
        raise ValueError(f"{who}: axis {axis} is out of range for a 0-d tensor")
    normalized = tuple(_axis(a, ndim, who) for a in axes)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"{who}: repeated axis in {axis}")
    return normalized


def _torch_names(
    who: str, axis: Any, keepdims: bool, dim: Any, keepdim: bool | None
) -> tuple[Any, bool]:
    """PyTorch's dim=/keepdim= turned into numpy's axis=/keepdims= (one spelling per call)."""
    if dim is not None:
        if axis is not None:
            raise TypeError(f"{who}: pass axis= or dim= (the same thing), not both")
        axis = dim
    if keepdim is not None:
        keepdims = bool(keepdim)
    return axis, keepdims


def _named_axis_only(name: str, by_position: tuple) -> None:
    """Refuse max(1) / min(1): numpy's x.max(1) is the values, PyTorch's the pair (values,
    indices); `_, predicted = out.max(1)` (PyTorch's tutorial) would take a batch of two
    apart into its two maxima. x.max() and x.max(None) mean the same in both."""
    if by_position and not (len(by_position) == 1 and by_position[0] is None):
        given = ", ".join(map(repr, by_position))
        raise TypeError(
            f"{name}({given}): name the axis, as axis= (numpy's answer: the values) or dim= "
            f"(PyTorch's: values and indices, so `_, predicted = out.{name}(dim=1)` works); "
            "by position it means one in numpy and the other in PyTorch"
        )


def _index(index: Any) -> Any:
    """Replace Tensors (and lists) inside an index by arrays, so numpy sees plain indices.

    Index arrays are copied: the node keeps its index for backward, and a caller writing into
    their array before backward must not move the gradient elsewhere.
    """
    if isinstance(index, tuple):
        return tuple(_index(part) for part in index)
    if isinstance(index, Tensor):
        index = index._data
    if isinstance(index, np.ndarray):
        return index.copy()
    if isinstance(index, list):
        array = np.asarray([_index(part) for part in index])
        # [] is an empty selection (as in numpy and PyTorch), not an array of floats.
        return array.astype(np.intp) if array.size == 0 else array
    return index


def _clip_bound(bound: Any, name: str, shape: tuple[int, ...]) -> Any:
    """A clip bound as numbers that broadcast to `shape` (None stays None)."""
    if bound is None:
        return None
    if isinstance(bound, Tensor):
        if bound.requires_grad:
            raise TypeError(
                f"clip: the {name} bound requires grad, but bounds are constants and its "
                "gradient would be lost; use autodiff.maximum / minimum instead"
            )
        bound = bound._data
    array = np.asarray(bound) if not isinstance(bound, (str, bytes)) else None
    if array is None or array.dtype.kind not in "biuf":
        raise TypeError(
            f"clip: the {name} bound must be a number or an array of numbers, "
            f"got {type(bound).__name__} {bound!r}"
        )
    if array.ndim:
        try:
            fits = np.broadcast_shapes(array.shape, shape) == shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"clip: the {name} bound of shape {array.shape} does not broadcast to the "
                f"tensor's shape {shape}"
            )
    return array if array.ndim else array[()]


# --- functions ---------------------------------------------------------------------------


def tensor(data: ArrayLike, **kwargs: Any) -> Tensor:
    return data if isinstance(data, Tensor) and not kwargs else Tensor(data, **kwargs)


def from_numpy(array: np.ndarray) -> Tensor:
    """A constant Tensor over `array`'s memory, without a copy (as torch.from_numpy): for a
    data set too big to hold twice, e.g. `X = from_numpy(x_train)`, then batches `X[idx]`.

    Tensor(array) copies, so a graph can never see the caller change its numbers; sharing
    keeps that promise another way: an array that owns its memory is made read-only, so a
    later write into it fails at once. Memory that is read-only already (np.load with
    mmap_mode="r", np.frombuffer of bytes, a view of such an array) is shared as it is. A
    view of memory that could still be written elsewhere is refused: pass its owner, or copy
    with Tensor(array).
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(
            f"from_numpy: expected a numpy array, got {type(array).__name__} "
            "(Tensor(data) converts anything)"
        )
    if array.dtype.kind not in "biuf":
        raise TypeError(f"from_numpy: unsupported data type {array.dtype} (numbers only)")
    array = np.asarray(array)  # a plain ndarray (np.memmap's view of the same memory)
    owner = engine._owner(array)
    if array.base is None:
        array.flags.writeable = False
    elif (
        array.flags.writeable
        or owner.flags.writeable
        or (owner.base is not None and not isinstance(owner.base, bytes | mmap.mmap))
    ):
        raise ValueError(
            f"from_numpy: the array (shape {array.shape}) views memory that could still be "
            "written through its owner; pass the array that owns it (from_numpy(owner)"
            ".reshape(...) shares it too), or Tensor(array) to copy"
        )
    return engine.constant(array[()] if array.ndim == 0 else array)


# Creation order of tensors made with Tensor(...): drawings number unnamed leaves by it.
_births = itertools.count(1)


def _composite(out: Tensor, name: str) -> Tensor:
    """Name the last node of a composite (mean is a sum, then a mul): repr and drawings show
    `name` for it rather than its primitive's name, so the graph reads as the code does."""
    if out._op is not None:
        out._composite = (name, out._op)  # the op too: a later in-place write replaces it
    return out


def op_name(t: Tensor) -> str:
    """The name of the op that made `t` as the user wrote it: a composite's ("mean") while
    `t` still holds the node the composite made, else the engine's op ("mul")."""
    named = getattr(t, "_composite", None)
    return named[0] if named is not None and named[1] is t._op else t._op.name


def _lift(x: ArrayLike) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def exp(x: ArrayLike) -> Tensor:
    return _lift(x).exp()


def log(x: ArrayLike) -> Tensor:
    return _lift(x).log()


def sqrt(x: ArrayLike) -> Tensor:
    return _lift(x).sqrt()


def tanh(x: ArrayLike) -> Tensor:
    return _lift(x).tanh()


def sigmoid(x: ArrayLike) -> Tensor:
    return _lift(x).sigmoid()


def relu(x: ArrayLike) -> Tensor:
    return _lift(x).relu()


def abs(x: ArrayLike) -> Tensor:  # noqa: A001
    return _lift(x).abs()


def softmax(x: ArrayLike, axis: int = -1, *, dim: int | None = None) -> Tensor:
    return _lift(x).softmax(axis=axis, dim=dim)


def log_softmax(x: ArrayLike, axis: int = -1, *, dim: int | None = None) -> Tensor:
    return _lift(x).log_softmax(axis=axis, dim=dim)


def logsumexp(
    x: ArrayLike,
    axis: Axis = None,
    keepdims: bool = False,
    *,
    dim: Axis = None,
    keepdim: bool | None = None,
) -> Tensor:
    return _lift(x).logsumexp(axis=axis, keepdims=keepdims, dim=dim, keepdim=keepdim)


def matmul(a: ArrayLike, b: ArrayLike) -> Tensor:
    a, b = _lift(a), _lift(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least 1 axis, got {a.shape} @ {b.shape}")
    inner_a = a.shape[-1]
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if inner_a != inner_b:
        raise ValueError(
            f"matmul: inner sizes do not match: {a.shape} @ {b.shape} ({inner_a} != {inner_b})"
        )
    return apply(rules.matmul, (a, b))


def linear(x: ArrayLike, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias in one node (weight has shape (out_features, in_features))."""
    # numpy weights and biases take part as constants, as arrays do in every other op.
    x, weight = _lift(x), _lift(weight)
    bias = None if bias is None else _lift(bias)
    if weight.ndim != 2 or x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input of shape {x.shape} does not fit a weight of shape {weight.shape} "
            f"(expected last axis {weight.shape[-1] if weight.ndim else '?'})"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias shape {bias.shape} != ({weight.shape[0]},)")
    parents = (x, weight) if bias is None else (x, weight, bias)
    return apply(rules.linear, parents)


_UNSIGNED: dict[np.dtype, np.dtype] = {}


def _unsigned(dtype: np.dtype) -> np.dtype:
    """The unsigned integer dtype of the same size and byte order (cached: every step asks)."""
    unsigned = _UNSIGNED.get(dtype)
    if unsigned is None:
        unsigned = _UNSIGNED[dtype] = np.dtype(dtype.str.replace("i", "u"))
    return unsigned


def softmax_cross_entropy(logits: Tensor, labels: ArrayLike) -> Tensor:
    """Mean cross-entropy of integer class labels under softmax(logits), fused and stable."""
    if getattr(labels, "_batched", False):  # labels batched by vmap (autodiff/vmap.py)
        return _vmap().cross_entropy(logits, labels)
    logits = logits if isinstance(logits, Tensor) else Tensor(logits)
    labels = np.asarray(labels._data if isinstance(labels, Tensor) else labels)
    shape = logits._data.shape  # the array's, not Tensor.shape: this runs every step
    if len(shape) != 2:
        raise ValueError(f"softmax_cross_entropy: logits must be (N, C), got {shape}")
    if labels.shape != shape[:1] or labels.dtype.kind not in "iu":
        raise ValueError(
            f"softmax_cross_entropy: labels must be integers of shape ({shape[0]},), "
            f"got {labels.dtype} {labels.shape}"
        )
    return apply(
        rules.softmax_cross_entropy,
        (logits,),
        labels=class_labels("softmax_cross_entropy", labels, shape[1]),
    )


def class_labels(who: str, labels: np.ndarray, classes: int) -> np.ndarray:
    """A copy of integer `labels` (the node keeps them for backward, and the caller may reuse
    their array), checked to lie in [0, classes); `who` names the op in the error. Shared by
    softmax_cross_entropy and nn's cross_entropy, which checks the shapes itself."""
    labels = np.array(labels)
    # One reduction for both bounds: seen as unsigned, a negative label is huge.
    unsigned = _UNSIGNED.get(labels.dtype) or _unsigned(labels.dtype)
    if labels.size and np.maximum.reduce(labels.view(unsigned)) >= classes:
        raise ValueError(
            f"{who}: labels must lie in [0, {classes}), "
            f"got values from {labels.min()} to {labels.max()}"
        )
    return labels


def _vmap() -> Any:
    # Late (vmap.py builds on this module), and by module name: the package's `vmap` is the
    # function of the same name.
    import importlib

    return importlib.import_module(".vmap", __package__)


def where(condition: ArrayLike, a: ArrayLike, b: ArrayLike) -> Tensor:
    if getattr(condition, "_batched", False):  # a mask inside vmap (autodiff/vmap.py)
        return _vmap().where(condition, a, b)
    # A copy of the mask: the node keeps it for backward, and the caller may reuse their array.
    cond = np.array(condition._data if isinstance(condition, Tensor) else condition, dtype=bool)
    a_t, b_t = _pair(a, b)
    try:
        values = np.broadcast_shapes(a_t.shape, b_t.shape)
    except ValueError:
        values = None  # the op names both shapes itself
    if values is not None:
        try:
            np.broadcast_shapes(cond.shape, values)
        except ValueError:
            raise ValueError(
                f"where: the condition's shape {cond.shape} does not broadcast with the values' "
                f"shape {values} (shapes {a_t.shape}, {b_t.shape})"
            ) from None
    return apply(rules.where, (a_t, b_t), cond=cond)


def _pair(a: ArrayLike, b: ArrayLike) -> tuple[Tensor, Tensor]:
    """Two operands as Tensors; a Python number takes the other side's dtype (float32 stays)."""
    if isinstance(a, Tensor):
        return a, _operand(b, a)
    if isinstance(b, Tensor):
        return _operand(a, b), b
    like = Tensor(np.asarray(a))
    return _operand(a, like), _operand(b, like)


def maximum(a: ArrayLike, b: ArrayLike) -> Tensor:
    """Elementwise max. On a tie each side gets half the gradient, as `max()` splits ties (and
    as PyTorch does): the result is symmetric in its arguments."""
    return apply(rules.maximum, _pair(a, b))


def minimum(a: ArrayLike, b: ArrayLike) -> Tensor:
    """Elementwise min; ties split the gradient equally, as in `maximum`."""
    return apply(rules.minimum, _pair(a, b))


def concatenate(tensors: Sequence[ArrayLike], axis: int = 0) -> Tensor:
    parts = tuple(_lift(t) for t in tensors)
    if not parts:
        raise ValueError("concatenate: needs at least one tensor")
    ndim = parts[0].ndim
    if ndim == 0:
        raise ValueError("concatenate: 0-d tensors cannot be concatenated; use stack")
    return apply(rules.concatenate, parts, axis=_axis(axis, ndim, "concatenate"))


def cat(tensors: Sequence[ArrayLike], dim: int = 0) -> Tensor:
    """PyTorch's name for `concatenate`."""
    return concatenate(tensors, axis=dim)


def stack(tensors: Sequence[ArrayLike], axis: int = 0) -> Tensor:
    parts = [_lift(t) for t in tensors]
    if not parts:
        raise ValueError("stack: needs at least one tensor")
    shapes = {p.shape for p in parts}
    if len(shapes) != 1:
        raise ValueError(f"stack: all tensors must have the same shape, got {sorted(shapes)}")
    ax = _axis(axis, parts[0].ndim + 1, "stack")
    expanded = [p.reshape(p.shape[:ax] + (1,) + p.shape[ax:]) for p in parts]
    return concatenate(expanded, axis=ax)


# --- constructors --------------------------------------------------------------------------


# The generator behind every `rng=None` (rand, randn, nn.init, layer weights, Dropout): fresh
# entropy per process, until manual_seed makes it reproducible.
_default_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Seed the default generator, as PyTorch's manual_seed: after `manual_seed(0)` the same
    program draws the same random tensors and initial weights. Returns that generator."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"manual_seed: seed must be an int, not {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"manual_seed: seed must be >= 0, got {seed}")
    # Reseeded in place: modules made earlier (a Dropout with rng=None) hold this very object.
    _default_generator.bit_generator.state = np.random.default_rng(int(seed)).bit_generator.state
    return _default_generator


def as_generator(rng: Any) -> np.random.Generator:
    """None (the default generator, see manual_seed), an int seed, or a numpy Generator -> a
    Generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return _default_generator
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be None, an int seed or a numpy Generator, not {type(rng).__name__}")


def _shape(shape: tuple, who: str) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    try:
        sizes = tuple(operator.index(n) for n in shape)
    except TypeError:
        raise TypeError(f"{who}: shape must be integers, got {shape}") from None
    if any(n < 0 for n in sizes):
        raise ValueError(f"{who}: negative size in shape {sizes}")
    return sizes


def zeros(*shape: Any, dtype: Any = np.float64, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros(_shape(shape, "zeros"), dtype=dtype), requires_grad=requires_grad)


def ones(*shape: Any, dtype: Any = np.float64, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones(_shape(shape, "ones"), dtype=dtype), requires_grad=requires_grad)


def full(
    shape: Any, fill_value: float, dtype: Any = np.float64, requires_grad: bool = False
) -> Tensor:
    shape = _shape((shape,) if isinstance(shape, int) else tuple(shape), "full")
    if not isinstance(fill_value, numbers.Number | np.generic) or isinstance(fill_value, str):
        raise TypeError(f"full: fill_value must be a number, got {fill_value!r}")
    return Tensor(np.full(shape, fill_value, dtype=dtype), requires_grad=requires_grad)


def arange(*args: float, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """numpy's arange: integers (int64) from integer arguments, as numpy and PyTorch give,
    so `logits[arange(n), labels]` indexes; float64 from float arguments or with
    requires_grad=True (only floats have gradients)."""
    if dtype is None:
        integral = all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in args)
        dtype = np.int64 if integral and not requires_grad else np.float64
    return Tensor(np.arange(*args, dtype=dtype), requires_grad=requires_grad)


def rand(
    *shape: Any, rng: Any = None, dtype: Any = np.float64, requires_grad: bool = False
) -> Tensor:
    """Uniform on [0, 1); `rng` is a seed or a numpy Generator, for reproducible runs."""
    data = as_generator(rng).random(_shape(shape, "rand")).astype(dtype, copy=False)
    return Tensor(data, requires_grad=requires_grad)


def randn(
    *shape: Any, rng: Any = None, dtype: Any = np.float64, requires_grad: bool = False
) -> Tensor:
    """Standard normal; `rng` is a seed or a numpy Generator, for reproducible runs."""
    data = as_generator(rng).standard_normal(_shape(shape, "randn")).astype(dtype, copy=False)
    return Tensor(data, requires_grad=requires_grad)


def zeros_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros_like(t._data), requires_grad=requires_grad)


def ones_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones_like(t._data), requires_grad=requires_grad)


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Sequence[Tensor] | Tensor,
    grad_outputs: Any = None,
    create_graph: bool = False,
) -> list[Tensor]:
    """Gradients of `outputs` with respect to each of `inputs`, without touching any `.grad`.

    `grad_outputs` gives the upstream gradient for each output (needed for non-scalars).
    With `create_graph=True` the results are differentiable again (Hessian-vector products,
    higher derivatives). An input the outputs do not depend on gets a gradient of zeros.
    """
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if not outs or not ins:
        raise ValueError("grad: needs at least one output and one input")
    for t in outs + ins:
        if not isinstance(t, Tensor):
            raise TypeError(f"grad: outputs and inputs must be Tensors, got {type(t).__name__}")
    for i, t in enumerate(ins):
        if not t.requires_grad:
            raise RuntimeError(f"grad: input {i} (shape {t.shape}) does not require grad")
    if grad_outputs is None or isinstance(grad_outputs, Tensor | np.ndarray | numbers.Number):
        grad_outputs = (
            [grad_outputs] * len(outs) if len(outs) == 1 or grad_outputs is None else grad_outputs
        )
    if not isinstance(grad_outputs, Sequence) or isinstance(grad_outputs, str | bytes):
        raise TypeError(
            f"grad: grad_outputs must be a Tensor, an array, a number or a list of them (one "
            f"per output), got {type(grad_outputs).__name__}"
        )
    if len(grad_outputs) != len(outs):
        raise ValueError(f"grad: {len(outs)} outputs but {len(grad_outputs)} grad_outputs")
    seeds = [out._seed(g, "grad", create_graph) for out, g in zip(outs, grad_outputs, strict=True)]
    found = engine.backward(outs, seeds, create_graph=create_graph, accumulate=False, inputs=ins)
    results = []
    handed: set[int] = set()  # gradients handed out never share memory with each other
    for t, g in zip(ins, found, strict=True):
        if g is None:
            results.append(zeros_like(t))
        elif isinstance(g, Tensor):
            # With create_graph a rule may give one gradient to several inputs (add gives
            # both the same Tensor; reshape a view of it): each input gets its own copy, a
            # cast node so that it stays differentiable, else an in-place update of one
            # gradient would change the others.
            keys = {id(g), id(engine._owner(g._data))}
            if keys & handed:
                g = g.clone()
                keys = {id(g), id(engine._owner(g._data))}
            handed.update(keys)
            results.append(g)
        else:
            results.append(Tensor(engine._own(g, handed) if g.flags.writeable else np.array(g)))
    return results


# Last: the interop tables refer to the Tensor class and the functions above.
from . import interop as _interop  # noqa: E402
