"""The Tensor: a numpy array that remembers how it was computed.

The class is defined whole here and in its family mixins (`_elementwise.py`, `_reductions.py`,
`_shape.py`), whose methods it inherits: what a tensor is (data, grad, backward, in-place
writes, operators, conversions) here, what can be computed from it there. The primitives
come from the table in `rules/`; everything else is composed from them, so it is
differentiable, to any order, for free.
"""

from __future__ import annotations

import numbers
import operator
from types import MappingProxyType
from typing import Any

import numpy as np

from . import engine, interop, rules, tracked
from ._args import (
    _CONSTANT_IDS,
    _FLOAT_KINDS,
    ArrayLike,
    _as_array,
    _axis,
    _births,
    _index,
    _lift,
    _operand,
    _own_numbers,
    _same_memory,
)
from ._elementwise import ElementwiseMethods
from ._reductions import ReductionMethods
from ._shape import ShapeMethods
from .composites import matmul, op_name
from .engine import apply

_NUMPY_DROPS_GRAPH = (
    "numpy would take the numbers of a tensor computed with gradients (shape {shape}) and "
    "drop the graph behind it: use autodiff.stack([...]) or the tensor's own methods to keep "
    "the gradient, or t.detach() / t.item() / t.tolist() for the plain numbers (e.g. to plot "
    "them)"
)


class Tensor(ElementwiseMethods, ReductionMethods, ShapeMethods, result=True):
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
        return interop.array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func: Any, types: tuple, args: tuple, kwargs: dict) -> Any:
        return interop.array_function(func, types, args, kwargs)

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

    def raw(self) -> Any:
        """This tensor's own array (a numpy scalar for a 0-d tensor): not a copy, and not the
        tracked view `.data` hands out, so reading it costs nothing. For libraries on a hot
        path (nn's layers and optimizers); after writing into it in place, call
        `autodiff.mark_written(t)` so that backward refuses graphs that saved the old numbers
        (see autodiff/extend.py)."""
        return self._data

    def raw_grad(self) -> Any:
        """The gradient's array as backward stored it (None before a backward reached this
        tensor), without wrapping it in a Tensor as `.grad` does on first read: for an
        optimizer's step, which reads every parameter's gradient every step. Read it only: it
        may be a read-only view that backward handed to several tensors."""
        g = self._grad
        return g._data if isinstance(g, engine.Node) else g

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
    def grad(self, value: ArrayLike | None) -> None:
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
    def op_params(self) -> Any:
        """The non-tensor parameters of the op that made this tensor (`axis=`, `shape=`, ...),
        read-only; empty for a leaf and for an op that takes none."""
        return MappingProxyType(self._params)

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
        engine.check_concrete(self, "item()")
        if self._data.size != 1:
            raise ValueError(f"item: only a tensor with one element has an item, not {self.shape}")
        return self._data.item()

    def numpy(self) -> np.ndarray:
        """This tensor's memory as an array (as `.data`; a fresh 0-d array for a scalar)."""
        data = self._data
        return tracked.view_of(data) if type(data) is np.ndarray else np.asarray(data)

    def tolist(self) -> Any:
        engine.check_concrete(self, "tolist()")
        return self._data.tolist()

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if self._op is not None and engine.state.mode[0]:
            raise TypeError(_NUMPY_DROPS_GRAPH.format(shape=self.shape))
        engine.check_concrete(self, "numpy")
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

    def numel(self) -> int:
        """PyTorch's numel(): the number of elements (numpy's `.size`)."""
        return int(np.size(self._data))

    def dim(self) -> int:
        """PyTorch's dim(): the number of axes (numpy's `.ndim`)."""
        return self.ndim

    def long(self) -> Tensor:
        """PyTorch's long(): an int64 copy (class labels), a constant as every integer cast."""
        return self.astype(np.int64)

    def cpu(self) -> Tensor:
        """PyTorch's cpu(): the tensor itself, whose numbers already live in host memory, so
        `out.detach().cpu().numpy()` runs as written."""
        return self

    def __contains__(self, value: Any) -> bool:
        """`v in t` as numpy's and PyTorch's: whether any element equals v (Python's fallback
        iterated rows and asked a whole row for its truth value, an error for 2-d tensors)."""
        return bool(np.any(self._data == _lift(value)._data))

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


def _rebuild_leaf(
    cls: type[Tensor], data: Any, requires_grad: bool, name: str | None, grad: Any
) -> Tensor:
    t = cls.__new__(cls)
    Tensor.__init__(t, data, name=name)
    t.requires_grad = requires_grad
    t._grad = None if grad is None else np.array(grad)
    return t


def write_tangents(target: Tensor, index: Any, value: Any) -> None:
    """Called by `Tensor.__setitem__` in forward mode: `target[index] = value` writes the
    value's tangent into the target's tangent the same way (setitem is linear in both)."""
    st = engine.state
    levels = st.forward
    for depth, level in enumerate(levels):
        old = level.get(target)
        new = level.get(value) if isinstance(value, Tensor) else None
        if old is None and new is None:
            continue
        dtype = np.result_type(target._data)
        old = np.zeros(np.shape(target._data), dtype) if old is None else old
        if new is None:  # a constant written in (a Tensor without tangent, or a number)
            new = np.zeros(np.shape(value._data if isinstance(value, Tensor) else value), dtype)
        if isinstance(old, Tensor) or isinstance(new, Tensor):
            st.forward = levels[:depth]
            try:
                lifted = [t if isinstance(t, Tensor) else engine.constant(t) for t in (old, new)]
                tangent = apply(rules.setitem, tuple(lifted), index=index)
            finally:
                st.forward = levels
        else:
            tangent = rules.setitem.forward(old, np.asarray(new, dtype), index=index)
        level.set(target, tangent)
