"""`vmap`: a function of one example, run on a whole batch without a Python loop.

    per_example = vmap(grad(loss), in_axes=(None, 0, 0))(params, xs, ys)

Inside `f` every batched value is a `BatchedTensor`: it shows the PER-EXAMPLE shape (so `f`
is written for one example) and holds underneath a real Tensor with the batch axis in front.
Every primitive applied to one goes through that primitive's *batching rule* (the `batch`
column of the table, autodiff/rules/batching.py): the rule computes the
whole batch at once by applying primitives to the real Tensors. So the graph is recorded on
the batched Tensors, and the derivative transforms compose with vmap in both orders:
`grad(vmap(f))` differentiates through the batched ops, and a transform inside `f`
(`vmap(grad(f))`) is lowered to the same transform of the batched computation, which is
block-diagonal across examples (no rule mixes two examples), so its derivative with respect
to the batched input is every example's own derivative.

Nested vmaps are levels (outermost first) in the engine's stack of interpreters; a value
batched at level 2 may hold, underneath, a value batched at level 1. The engine knows none of
this: `engine.apply` hands an application to the innermost interpreter when one is active,
which hands it down when none of the inputs belongs to it.

Numbers of a batched value cannot be read one example at a time: `bool(x)`, `float(x)`,
`x.item()`, `np.asarray(x)` and numpy on its numbers raise an error naming vmap and the line.
Data-dependent choices are written with `autodiff.where(x > 0, a, b)`, which is batched.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import engine, func, rules, trees
from ._args import _index, _operand
from .composites import stack
from .composites import where as plain_where
from .rules import batching
from .rules.batching import LOOP_FALLBACK
from .tensor import Tensor

__all__ = ["LOOP_FALLBACK", "BatchedTensor", "vmap"]

InAxes = Any  # int | None | a tuple/list/dict of those matching the arguments


# --- errors -----------------------------------------------------------------------------------


def _refusal(what: str, shape: tuple[int, ...], size: int) -> TypeError:
    return TypeError(
        f"vmap: {what} reads the numbers of a value batched by vmap (per-example shape "
        f"{shape}, batch of {size}); inside vmap the function sees every example at once, "
        "so Python control flow and numpy cannot look at one example's numbers. Use "
        "autodiff.where(cond, a, b) for a data-dependent choice, or return the value and "
        f"inspect it after vmap (at {engine._user_frame()})"
    )


class _PerExample:
    """What a BatchedTensor holds as `_data`: the per-example shape and dtype, and no numbers.

    Tensor's code reads `.shape`, `.ndim`, `.dtype` and `.size` from `_data`: those answer
    for one example. Anything that would read numbers (numpy, bool(), item()) raises the
    vmap error instead of silently mixing the batch's shape with one example's.
    """

    __slots__ = ("shape", "dtype", "owner")
    __array_priority__ = 1e9
    per_example = True  # how the batching rules recognise a batched index

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, owner: BatchedTensor) -> None:
        self.shape = shape
        self.dtype = dtype
        self.owner = owner

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def _refuse(self, what: str) -> TypeError:
        return _refusal(what, self.shape, self.owner._level.size)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise self._refuse("numpy (np.asarray)")

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        raise self._refuse(f"numpy's {getattr(ufunc, '__name__', ufunc)}")

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        if func in (np.shape, np.ndim, np.size):
            return func(_Shape(self.shape), *args[1:], **kwargs)
        raise self._refuse(f"numpy's {getattr(func, '__name__', func)}")

    def __bool__(self) -> bool:
        raise self._refuse("bool() (an `if` on a tensor)")

    def __float__(self) -> float:
        raise self._refuse("float()")

    def __int__(self) -> int:
        raise self._refuse("int()")

    def __index__(self) -> int:
        raise self._refuse("an index")

    def __getitem__(self, index: Any) -> Any:
        raise self._refuse("indexing the numbers")

    # `x._data > 0` is how the library makes a mask for `where` (elu, leaky_relu, ...): a
    # comparison of the per-example numbers gives the batched mask's own numbers, which
    # `where` takes as a batched condition.
    def _mask(self, other: Any, method: str) -> _PerExample:
        if isinstance(other, _PerExample):
            other = other.owner
        return getattr(self.owner, method)(other)._data

    def __gt__(self, other: Any) -> Any:
        return self._mask(other, "__gt__")

    def __ge__(self, other: Any) -> Any:
        return self._mask(other, "__ge__")

    def __lt__(self, other: Any) -> Any:
        return self._mask(other, "__lt__")

    def __le__(self, other: Any) -> Any:
        return self._mask(other, "__le__")

    def __eq__(self, other: object) -> Any:
        return self._mask(other, "__eq__")

    def __ne__(self, other: object) -> Any:
        return self._mask(other, "__ne__")

    __hash__ = object.__hash__

    @property
    def _batched(self) -> bool:  # where() takes these numbers as a batched condition
        return True

    def _vmap_where(self, a: Any, b: Any) -> Tensor:
        return where(self.owner, a, b)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # numpy's probes (__array_interface__, ...): not here
            raise AttributeError(name)
        raise self._refuse(f"numbers.{name}")


class _Shape:
    """np.shape / np.ndim / np.size of a per-example value: only its shape is known."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape
        self.ndim = len(shape)
        self.size = math.prod(shape)


# --- the batched value ------------------------------------------------------------------------


class BatchedTensor(Tensor):
    """A value inside `vmap`: per-example shape outside, the whole batch (axis 0) inside."""

    __slots__ = ("_real", "_level")
    _batched = True  # what tensor.py's where/softmax_cross_entropy look for
    _real: Any  # the whole batch, batch axis first (a Tensor, or a lower level's value)
    _level: _Level

    def __repr__(self) -> str:
        return (
            f"BatchedTensor(per-example shape {self.shape}, dtype {self.dtype}, batch of "
            f"{self._level.size}, vmap level {self._level.depth})"
        )

    # Reading numbers: refused, naming vmap and the user's line.
    def item(self) -> Any:
        raise _refusal(".item()", self.shape, self._level.size)

    def tolist(self) -> Any:
        raise _refusal(".tolist()", self.shape, self._level.size)

    def numpy(self) -> np.ndarray:
        raise _refusal(".numpy()", self.shape, self._level.size)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise _refusal("numpy (np.asarray)", self.shape, self._level.size)

    def __bool__(self) -> bool:
        raise _refusal("bool() (an `if` on a tensor)", self.shape, self._level.size)

    def __float__(self) -> float:
        raise _refusal("float()", self.shape, self._level.size)

    def __int__(self) -> int:
        raise _refusal("int()", self.shape, self._level.size)

    def __format__(self, spec: str) -> str:
        if not spec:
            return repr(self)
        raise _refusal("format()", self.shape, self._level.size)

    def backward(self, grad: Any = None, create_graph: bool = False) -> None:
        raise RuntimeError(
            "vmap: .backward() on a batched value; inside vmap use autodiff.func.grad (or "
            f"vjp), which computes every example's gradient (at {engine._user_frame()})"
        )

    # Methods that build a result from `_data` directly: done on the real Tensor instead.
    def detach(self) -> Tensor:
        return self._level.wrap(self._real.detach())

    def clone(self) -> Tensor:
        return self._level.wrap(self._real.clone())

    def astype(self, dtype: Any) -> Tensor:
        return self._level.wrap(self._real.astype(dtype))

    def _floating(self) -> Tensor:
        return self if self.dtype.kind == "f" else self.astype(np.float64)

    def clip(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
        # The bounds broadcast against the per-example shape, which is the real Tensor's
        # trailing axes: the same bounds work on the batch.
        return self._level.wrap(self._real.clip(min, max))

    def __setitem__(self, index: Any, value: Any) -> None:
        # Functional: this name now stands for a new batched value (as recorded setitem does).
        out: Any = engine.apply(
            rules.setitem,
            (self._level.wrap(self._real), _lift(value, self)),
            index=_plain_index(index),
        )
        self._real = out._real if isinstance(out, BatchedTensor) else out
        self._data = _PerExample(tuple(out.shape), out.dtype, self)

    def argmax(self, axis: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        return self._batched_arg("argmax", axis, keepdims, kw)

    def argmin(self, axis: Any = None, keepdims: bool = False, **kw: Any) -> Tensor:
        return self._batched_arg("argmin", axis, keepdims, kw)

    def _batched_arg(self, who: str, axis: Any, keepdims: bool, kw: dict) -> Tensor:
        if kw.get("dim") is not None:
            axis = kw["dim"]
        if kw.get("keepdim") is not None:
            keepdims = kw["keepdim"]
        n = self.ndim
        if axis is None:
            real = self._real.reshape((self._level.size, -1))
            out = getattr(real, who)(axis=1)
            if keepdims:
                out = out.reshape((self._level.size,) + (1,) * n)
        else:
            axis = axis % max(n, 1) + 1 if n else None
            out = getattr(self._real, who)(axis=axis, keepdims=keepdims)
        return self._level.wrap(out)

    # Comparisons make masks: batched like any elementwise op (as the reflected method of a
    # subclass, these run for `plain > batched` too).
    def __lt__(self, other: Any) -> Tensor:
        return _compare(self, other, "__lt__")

    def __le__(self, other: Any) -> Tensor:
        return _compare(self, other, "__le__")

    def __gt__(self, other: Any) -> Tensor:
        return _compare(self, other, "__gt__")

    def __ge__(self, other: Any) -> Tensor:
        return _compare(self, other, "__ge__")

    def __eq__(self, other: object) -> Tensor:  # type: ignore[override]
        return _compare(self, other, "__eq__")

    def __ne__(self, other: object) -> Tensor:  # type: ignore[override]
        return _compare(self, other, "__ne__")

    __hash__ = Tensor.__hash__

    # What composites.where and softmax_cross_entropy call on a batched mask or labels.
    def _vmap_where(self, a: Any, b: Any) -> Tensor:
        return where(self, a, b)

    def _vmap_cross_entropy(self, logits: Any) -> Tensor:
        return cross_entropy(logits, self)


def _lift(value: Any, like: Tensor) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _operand(value, like)
    return Tensor(np.asarray(value))


def _plain_index(index: Any) -> Any:
    return _index(index)


# --- levels: the interpreters -------------------------------------------------------------------

_local = threading.local()
_count_lock = threading.Lock()


def _levels() -> tuple:
    return engine.state.interpreters


class _Level:
    """One active vmap: its batch size and its place in the stack (depth 1 is outermost)."""

    def __init__(self, size: int, depth: int) -> None:
        self.size = size
        self.depth = depth
        self.hidden = False  # while a transform inside f runs on this level's real values

    def __repr__(self) -> str:
        return f"vmap level {self.depth} (batch of {self.size})"

    # The engine's hook: one application of a primitive.
    def process(self, op: rules.Op, parents: tuple, params: dict) -> Any:
        index = params.get("index")  # the one param that may hold a batched value
        owners = _index_levels(index) if index is not None else ()
        for level in reversed(_levels()):
            if level in owners or any(
                type(p) is BatchedTensor and p._level is level for p in parents
            ):
                return level.batch(op, parents, params)
        return NotImplemented

    # The transforms' side of the protocol (autodiff/func.py asks the innermost interpreter
    # which level a transform called now works at, then hands the transform to it).
    def lowering(self) -> _Level | None:
        return lowering_level()

    def value_and_grad(self, *args: Any) -> Any:
        return value_and_grad(self, *args)

    def vjp(self, *args: Any) -> Any:
        return vjp(self, *args)

    def jvp(self, *args: Any) -> Any:
        return jvp(self, *args)

    def jacrev(self, *args: Any) -> Any:
        return jacrev(self, *args)

    def jacfwd(self, *args: Any) -> Any:
        return jacfwd(self, *args)

    def wrap(self, real: Tensor) -> Tensor:
        out = object.__new__(BatchedTensor)
        out._real = real
        out._level = self
        out._data = _PerExample(tuple(real.shape[1:]), real.dtype, out)
        out._grad = None
        out.requires_grad = False
        out.name = None
        out._op = out._in0 = out._in1 = out._ins = None
        out._params = engine.NO_PARAMS
        out._scope = None
        out._clock = 0
        out._modified = 0
        return out

    def unwrap(self, value: Any) -> tuple[Any, int | None]:
        """(the real value, 0) for a value batched at this level, else (value, None)."""
        if type(value) is BatchedTensor and value._level is self:
            return value._real, 0
        return value, None

    def batch(self, op: rules.Op, parents: tuple, params: dict) -> Any:
        reals, dims = zip(*(self.unwrap(p) for p in parents), strict=True)
        rule = op.batch
        if rule is None:
            if op.name not in LOOP_FALLBACK:
                warnings.warn(
                    f"vmap: op {op.name!r} has no batching rule; computing it with a loop "
                    "over the batch (slow)",
                    stacklevel=4,
                )
            rule = batching.loop
        out = rule(op, list(reals), list(dims), self.size, **params)
        return self.wrap(out)


def _index_levels(index: Any) -> tuple:
    parts = index if isinstance(index, tuple) else (index,)
    return tuple(p.owner._level for p in parts if type(p) is _PerExample)


def _top_visible() -> _Level | None:
    for level in reversed(_levels()):
        if not level.hidden:
            return level
    return None


def _enter(size: int) -> _Level:
    stack = _levels()
    level = _Level(size, len(stack) + 1)
    engine.state.interpreters = stack + (level,)
    with _count_lock:
        engine.interpreting += 1
    return level


def _leave(level: _Level) -> None:
    engine.state.interpreters = tuple(x for x in _levels() if x is not level)
    with _count_lock:
        engine.interpreting -= 1


# --- tensor-level entry points (where, comparisons, labels) ---------------------------------------


def _highest(*values: Any) -> _Level | None:
    best = None
    for v in values:
        if type(v) is BatchedTensor and (best is None or v._level.depth > best.depth):
            best = v._level
    return best if best in _levels() else None


def _compare(a: Any, b: Any, method: str) -> Tensor:
    level = _highest(a, b)
    if level is None:  # a value from a vmap that has returned
        raise _refusal("a comparison", a.shape, a._level.size)
    ra, da = level.unwrap(a)
    rb, db = level.unwrap(b) if isinstance(b, Tensor) else (b, None)
    n = max(batching.ndim(ra, da), batching.ndim(rb, db) if isinstance(rb, Tensor) else np.ndim(rb))
    ra, rb = batching.pad(ra, da, n), (batching.pad(rb, db, n) if isinstance(rb, Tensor) else rb)
    if not isinstance(ra, Tensor):
        ra = Tensor(np.asarray(ra))
    return level.wrap(
        getattr(Tensor, method)(ra, rb) if type(ra) is Tensor else getattr(ra, method)(rb)
    )


def where(condition: Any, a: Any, b: Any) -> Tensor:
    """autodiff.where with a batched condition (tensor.where sends it here)."""
    if type(condition) is _PerExample:
        condition = condition.owner
    level = _highest(condition, a, b)
    if level is None:
        raise _refusal("where's condition", condition.shape, condition._level.size)
    rc, dc = level.unwrap(condition)
    ra, da = level.unwrap(a) if isinstance(a, Tensor) else (a, None)
    rb, db = level.unwrap(b) if isinstance(b, Tensor) else (b, None)
    n = max(
        batching.ndim(x, d) if isinstance(x, Tensor) else np.ndim(x)
        for x, d in ((rc, dc), (ra, da), (rb, db))
    )
    rc, ra, rb = (
        batching.pad(x, d, n) if isinstance(x, Tensor) else x
        for x, d in ((rc, dc), (ra, da), (rb, db))
    )
    out = plain_where(rc, ra, rb)
    if dc is not None or out.ndim > n:
        return level.wrap(out)
    return level.wrap(batching.expand(out, None, level.size))


def cross_entropy(logits: Any, labels: Any) -> Tensor:
    """softmax_cross_entropy with batched labels (tensor.py sends it here)."""
    level = _highest(logits, labels)
    if level is None:
        raise _refusal("the labels", labels.shape, labels._level.size)
    rx, dx = level.unwrap(logits if isinstance(logits, Tensor) else Tensor(logits))
    ry, dy = level.unwrap(labels)
    if dy is None:
        return level.wrap(
            batching.cross_entropy(
                rules.softmax_cross_entropy, [rx], [dx], level.size, labels=np.asarray(ry)
            )
        )
    if type(ry) is not Tensor:
        raise TypeError("vmap: labels batched by two nested vmaps are not supported")
    labels_real = np.asarray(ry._data)
    if labels_real.ndim != 2 or labels_real.dtype.kind not in "iu":
        raise ValueError(
            f"softmax_cross_entropy: labels must be integers of shape (N,) per example, got "
            f"{labels_real.dtype} {labels_real.shape[1:]}"
        )
    rx = batching.expand(rx, dx, level.size)
    if rx.ndim != 3 or rx.shape[1] != labels_real.shape[1]:
        raise ValueError(
            f"softmax_cross_entropy: logits must be (N, C) per example with N labels, got "
            f"{tuple(rx.shape[1:])} and {labels_real.shape[1:]}"
        )
    classes = rx.shape[2]
    if labels_real.size and (labels_real.min() < 0 or labels_real.max() >= classes):
        raise ValueError(f"softmax_cross_entropy: labels must lie in [0, {classes})")
    return level.wrap(batching.cross_entropy_real(rx, labels_real, level.size))


# --- trees: in_axes and out_axes are prefixes of the arguments' and results' trees ----------


def _axes_for(axes: Any, treedef: trees.TreeDef, who: str) -> list[Any]:
    """One axis per leaf of a tree of structure `treedef`: `axes` is a prefix of the tree (an
    int or None stands for every leaf under it), as JAX's in_axes and out_axes."""
    if axes is None or (isinstance(axes, int) and not isinstance(axes, bool)):
        return [axes] * treedef.num_leaves
    kind = treedef.kind
    if isinstance(axes, tuple | list) and kind in (trees._TUPLE, trees._LIST, trees._NAMEDTUPLE):
        if len(axes) != len(treedef.children):
            raise ValueError(
                f"vmap: {who} has {len(axes)} entries but the value has "
                f"{len(treedef.children)} ({treedef})"
            )
        return [
            a
            for sub, child in zip(axes, treedef.children, strict=True)
            for a in _axes_for(sub, child, who)
        ]
    if isinstance(axes, dict) and kind in (trees._DICT, trees._ORDERED, trees._DEFAULT):
        keys = treedef.aux[0] if kind == trees._DEFAULT else treedef.aux
        if set(axes) != set(keys):
            raise ValueError(f"vmap: {who} has keys {sorted(axes)} but the value has {list(keys)}")
        return [
            a
            for k, child in zip(keys, treedef.children, strict=True)
            for a in _axes_for(axes[k], child, who)
        ]
    raise ValueError(f"vmap: {who} {axes!r} does not match the structure of the value, {treedef}")


# --- vmap -------------------------------------------------------------------------------------


def _move(t: Any, source: int, dest: int) -> Any:
    if source == dest:
        return t
    order = [i for i in range(t.ndim) if i != source]
    order.insert(dest, source)
    return engine.apply(rules.transpose, (t,), axes=tuple(order))


def vmap(
    f: Callable[..., Any],
    in_axes: InAxes = 0,
    out_axes: InAxes = 0,
    axis_size: int | None = None,
) -> Callable[..., Any]:
    """f mapped over an axis of its arguments, as JAX's vmap: f is written for one example.

    `in_axes`: the batched axis of each argument (an int, None for an argument shared by all
    examples, or a tuple/list/dict matching the arguments' structure). `out_axes`: where the
    batch axis goes in each output (None: an output that does not depend on the batch).
    `axis_size`: the batch size when no argument is batched. Outputs are Tensors when an
    argument is a Tensor, numpy arrays otherwise.

    Inside f a batched value shows one example's shape; its numbers cannot be read (bool,
    float, .item(), numpy): choose with autodiff.where. Random numbers drawn inside f (a
    Dropout mask, randn) are drawn once, for one example's shape, and shared by every
    example, as one JAX key would be. Transforms compose in both orders: vmap(grad(f)) is
    every example's gradient, grad(vmap(f)) differentiates the batched computation.
    """
    if not callable(f):
        raise TypeError(f"vmap: f must be callable, got {type(f).__name__}")

    def batched(*args: Any, **kwargs: Any) -> Any:
        # Each argument a tree (autodiff.trees; a list of plain numbers is one array, as the
        # transforms read it); the arguments together the tuple that in_axes describes.
        flat = [func._flatten_arg(a) for a in args]
        structure = trees.TreeDef(trees._TUPLE, None, tuple(d for _, d in flat))
        leaves = [leaf for sub, _ in flat for leaf in sub]
        axes = _axes_for(in_axes, structure, "in_axes")
        size = axis_size
        sized_by = None
        prepared = []
        any_tensor = False
        for i, (leaf, ax) in enumerate(zip(leaves, axes, strict=True)):
            if isinstance(leaf, Tensor):
                any_tensor = True
            if ax is None:
                prepared.append(leaf)
                continue
            t = leaf if isinstance(leaf, Tensor) else Tensor(leaf)
            if t.ndim == 0:
                raise ValueError(
                    f"vmap: in_axes={ax} for argument leaf {i}, a 0-d value (nothing to map over)"
                )
            if not -t.ndim <= ax < t.ndim:
                raise ValueError(
                    f"vmap: in_axes={ax} is out of range for argument leaf {i} of shape {t.shape}"
                )
            ax %= t.ndim
            if size is None:
                size, sized_by = t.shape[ax], (i, t.shape)
            elif t.shape[ax] != size:
                origin = (
                    "axis_size"
                    if sized_by is None
                    else f"leaf {sized_by[0]} of shape {sized_by[1]}"
                )
                raise ValueError(
                    f"vmap: the batched axes have different sizes: {size} (from {origin}) "
                    f"and {t.shape[ax]} (leaf {i} of shape {t.shape}, axis {ax})"
                )
            prepared.append((t, ax))
        if size is None:
            raise ValueError("vmap: no argument is batched (all in_axes are None); pass axis_size=")
        inputs = [
            _move(p[0], p[1], 0) if isinstance(p, tuple) and ax is not None else p
            for p, ax in zip(prepared, axes, strict=True)
        ]
        level = _enter(size)
        try:
            wrapped = [
                level.wrap(x) if ax is not None else x for x, ax in zip(inputs, axes, strict=True)
            ]
            out = f(*structure.unflatten(wrapped), **kwargs)
        finally:
            _leave(level)
        return _finish(out, level, out_axes, any_tensor)

    batched.__wrapped__ = f  # type: ignore[attr-defined]
    batched.__name__ = f"vmap({getattr(f, '__name__', 'f')})"
    return batched


def _unbatch(value: Any, level: _Level, ax: int | None, who: str) -> Any:
    """One output leaf of a vmap: the real value with the batch axis at `ax`."""
    if type(value) is BatchedTensor and value._level is level:
        if ax is None:
            raise ValueError(
                f"vmap: {who} is None for an output that depends on the batch (per-example "
                f"shape {value.shape}); give the axis to put the batch at"
            )
        real = value._real
        return _move(real, 0, ax % real.ndim)
    if ax is None:
        return value
    if not isinstance(value, Tensor):
        value = Tensor(np.asarray(value))
    real = batching.expand(value, None, level.size)
    return _move(real, 0, ax % real.ndim)


def _finish(out: Any, level: _Level, out_axes: Any, any_tensor: bool) -> Any:
    leaves, structure = func._flatten_arg(out)
    axes = _axes_for(out_axes, structure, "out_axes")
    results = [_unbatch(v, level, ax, "out_axes") for v, ax in zip(leaves, axes, strict=True)]
    if not any_tensor:  # arrays in, arrays out (as the transforms answer in kind)
        results = [func._export(r, "array") if type(r) is Tensor else r for r in results]
    return structure.unflatten(results)


# --- transforms inside vmap -------------------------------------------------------------------
# A transform called inside f (grad, vjp, jvp, jacrev, jacfwd; hessian and the rest are built
# on those) is the same transform of the batched computation: every differentiated argument
# batched (an unbatched one broadcast, so that each example gets its own derivative), f run on
# it at this level, and the transform applied to the real Tensors with this level hidden from
# transforms (not from the engine: f's ops are still batched by it).


def lowering_level() -> _Level | None:
    """The level a transform called now works at: the innermost one not already lowered."""
    return _top_visible() if engine.interpreting and _levels() else None


class _Hidden:
    """While a transform runs on a level's real values: the level is hidden from transforms;
    f itself runs with the level visible again (`_shown`)."""

    def __init__(self, level: _Level, hidden: bool = True) -> None:
        self.level, self.hidden = level, hidden

    def __enter__(self) -> None:
        self.saved = self.level.hidden
        self.level.hidden = self.hidden

    def __exit__(self, *exc: object) -> None:
        self.level.hidden = self.saved


def _real_arg(level: _Level, value: Any, who: str) -> Tensor:
    t = value if isinstance(value, Tensor) else Tensor(value)
    real, dim = level.unwrap(t)
    return batching.expand(real, dim, level.size)


def _run(
    level: _Level,
    f: Callable,
    args: Sequence[Any],
    nums: Sequence[int],
    reals: Sequence[Any],
    kwargs: dict | None = None,
) -> Any:
    call = list(args)
    for n, r in zip(nums, reals, strict=True):
        call[n] = level.wrap(r)
    with _Hidden(level, False):
        return f(*call, **(kwargs or {}))


def _leaves_out(level: _Level, out: Any, who: str) -> tuple[Any, trees.TreeDef]:
    """f's result at this level as real leaves (batch first) for the transform of the batch:
    one leaf as itself, several as a tuple; and the result's structure."""
    outs, outdef = func._outputs(out, who)
    reals = [_unbatch(o, level, 0, "out") for o in outs]
    return (reals[0] if len(reals) == 1 else tuple(reals)), outdef


def _as_list(values: Any) -> list[Any]:
    return list(values) if isinstance(values, tuple | list) else [values]


def value_and_grad(
    level: _Level, f: Callable, argnums: Any, has_aux: bool, args: tuple, kwargs: dict, who: str
) -> Any:
    nums = func._argnums(argnums, len(args), who)
    spec = func._Args(args, nums)
    reals = [_real_arg(level, v, who) for v in spec.values]
    kept: dict[str, Any] = {}

    def total(*rs: Any) -> Any:
        with _Hidden(level, False):
            result = f(*spec.build([level.wrap(r) for r in rs]), **kwargs)
        out, aux = func._split_aux(result, who) if has_aux else (result, None)
        func._outputs(out, who, single=True)
        real = _unbatch(out, level, 0, "out")
        if real.ndim != 1:
            raise ValueError(
                f"{who}: f must return a scalar (one element), got per-example shape "
                f"{tuple(real.shape[1:])} inside vmap"
            )
        kept["out"], kept["aux"] = real, aux
        return real.sum()

    with _Hidden(level):
        grads = _grad_of_total(total, reals, who)
    exported: Any = spec.regroup([level.wrap(g) for g in grads])
    value = level.wrap(kept["out"])
    g = exported[0] if isinstance(argnums, int) else exported
    return ((value, kept["aux"]) if has_aux else value), g


def _grad_of_total(total: Callable, reals: list[Tensor], who: str) -> list[Any]:
    """func.value_and_grad(total) at `reals`, for the batched arguments: an argument shared by
    the examples is a broadcast view (batch x parameter size), which autodiff.grad would copy
    into a fresh leaf; here a leaf holds the view itself (nothing writes into it)."""
    if lowering_level() is not None:  # an outer vmap too: autodiff.grad lowers it in turn
        _, grads = func.value_and_grad(total, tuple(range(len(reals))))(*reals)
        return list(grads)
    caller_grad = engine.is_grad_enabled()
    with engine.enable_grad():
        leaves: list[Any] = []
        for i, r in enumerate(reals):
            plain = (
                type(r) is Tensor
                and not r.requires_grad
                and not any(lv.get(r) is not None for lv in engine.state.forward)
            )
            if plain and r.dtype.kind == "f":
                leaf: Any = engine.constant(r._data)
                leaf.requires_grad = True
                leaves.append(leaf)
            else:
                leaves.append(func._leaf(r, i, who))
        saved = engine.traced.leaves
        engine.traced.leaves = {**saved, **{id(leaf): leaf for leaf in leaves}}
        try:
            out = total(*leaves)
        finally:
            engine.traced.leaves = saved
    if not out.requires_grad:  # f does not depend on its inputs
        return [engine.constant(np.zeros_like(x._data)) for x in leaves]
    create = func._needs_graph([out], leaves, caller_grad)
    seed = np.ones((), dtype=out.dtype)
    # engine.backward itself rather than autodiff.grad, which copies every gradient into a
    # new Tensor: a batch of per-example gradients is large (64 x an MNIST layer: 25 MB).
    with engine.enable_grad():
        found = engine.backward(
            [out],
            [engine.constant(seed) if create else seed],
            create_graph=create,
            accumulate=False,
            inputs=leaves,
        )
    grads, seen = [], set()
    for leaf, g in zip(leaves, found or [None] * len(leaves), strict=True):
        if g is None:
            g = np.zeros_like(leaf._data)
        if not isinstance(g, engine.Node):
            if id(g) in seen or not (isinstance(g, np.ndarray) and g.flags.writeable):
                g = np.array(g)  # an array handed to two inputs, or a read-only view
            seen.add(id(g))
            g = engine.constant(g)
        grads.append(g)
    return grads


def vjp(level: _Level, f: Callable, primals: tuple, has_aux: bool) -> Any:
    spec = func._Args(primals, tuple(range(len(primals))))
    reals = [_real_arg(level, p, "vjp") for p in spec.values]
    kept: dict[str, Any] = {}

    def g(*rs: Any) -> Any:
        with _Hidden(level, False):
            result = f(*spec.build([level.wrap(r) for r in rs]))
        out, kept["aux"] = func._split_aux(result, "vjp") if has_aux else (result, None)
        real, kept["outdef"] = _leaves_out(level, out, "vjp")
        return real

    with _Hidden(level):
        out, pull = func.vjp(g, *reals)
    outdef = kept["outdef"]

    def pullback(*cotangents: Any) -> tuple:
        cots = func._cotangent_leaves(cotangents, outdef, "vjp")
        real_cots = [_real_arg(level, c, "vjp") for c in cots]
        with _Hidden(level):
            grads = pull(*real_cots)
        return spec.regroup([level.wrap(x) for x in grads])

    wrapped = outdef.unflatten([level.wrap(o) for o in _as_list(out)])
    return (wrapped, pullback, kept["aux"]) if has_aux else (wrapped, pullback)


def jvp(level: _Level, f: Callable, primals: tuple, tangents: tuple, who: str) -> Any:
    if len(primals) != len(tangents):
        raise ValueError(f"{who}: {len(primals)} primals but {len(tangents)} tangents")
    spec = func._Args(primals, tuple(range(len(primals))))
    tspec = func._Args(tangents, tuple(range(len(tangents))))
    if spec.defs != tspec.defs:
        raise ValueError(f"{who}: the tangents' structure differs from the primals'")
    reals = [_real_arg(level, p, who) for p in spec.values]
    real_tangents = []
    for r, t in zip(reals, tspec.values, strict=True):
        t = t if isinstance(t, Tensor) else Tensor(np.asarray(t, dtype=r.dtype))
        real_tangents.append(_real_arg(level, t, who))
    kept: dict[str, Any] = {}

    def g(*rs: Any) -> Any:
        with _Hidden(level, False):
            out = f(*spec.build([level.wrap(r) for r in rs]))
        real, kept["outdef"] = _leaves_out(level, out, who)
        return real

    with _Hidden(level):
        out, tangent = func.jvp(g, tuple(reals), tuple(real_tangents))
    outdef = kept["outdef"]
    return (
        outdef.unflatten([level.wrap(o) for o in _as_list(out)]),
        outdef.unflatten([level.wrap(t) for t in _as_list(tangent)]),
    )


def _single(spec: Any, who: str) -> None:
    if len(spec.values) != len(spec.nums):
        raise NotImplementedError(
            f"{who} inside vmap: differentiate with respect to arrays or Tensors, not trees"
        )


def jacrev(level: _Level, f: Callable, argnums: Any, args: tuple) -> Any:
    nums = func._argnums(argnums, len(args), "jacrev")
    spec = func._Args(args, nums)
    _single(spec, "jacrev")
    reals = [_real_arg(level, args[n], "jacrev") for n in nums]

    def g(*rs: Any) -> Any:
        out = _run(level, f, args, nums, rs)
        func._outputs(out, "jacrev", single=True)
        return _unbatch(out, level, 0, "out")

    with _Hidden(level):
        out, pull = func.vjp(g, *reals)
        out_shape = tuple(out.shape[1:])
        count = math.prod(out_shape)
        rows: list[list[Tensor]] = [[] for _ in nums]
        for i in range(count):
            seed = np.zeros((level.size, count), dtype=out.dtype)
            seed[:, i] = 1
            for row, gr in zip(rows, pull(seed.reshape(out.shape)), strict=True):
                row.append(gr)
        jacs = []
        for row, r in zip(rows, reals, strict=True):
            in_shape = tuple(r.shape[1:])
            if not row:
                jacs.append(Tensor(np.zeros((level.size,) + out_shape + in_shape, dtype=out.dtype)))
                continue
            jacs.append(stack(row, axis=1).reshape((level.size,) + out_shape + in_shape))
    wrapped = tuple(level.wrap(j) for j in jacs)
    return wrapped[0] if isinstance(argnums, int) else wrapped


def jacfwd(level: _Level, f: Callable, argnums: Any, args: tuple) -> Any:
    nums = func._argnums(argnums, len(args), "jacfwd")
    _single(func._Args(args, nums), "jacfwd")
    jacs = []
    for n in nums:
        real = _real_arg(level, args[n], "jacfwd")

        def g(r: Any, n: int = n) -> Any:
            out = _run(level, f, args, (n,), (r,))
            func._outputs(out, "jacfwd", single=True)
            return _unbatch(out, level, 0, "out")

        in_shape = tuple(real.shape[1:])
        count = math.prod(in_shape)
        columns = []
        out: Any = None
        with _Hidden(level):
            for j in range(count):
                basis = np.zeros((level.size, count), dtype=real.dtype)
                basis[:, j] = 1
                out, column = func.jvp(g, (real,), (Tensor(basis.reshape(real.shape)),))
                columns.append(column)
            if not columns:
                out = g(real)
                jac = Tensor(np.zeros(tuple(out.shape) + in_shape, dtype=real.dtype))
            else:
                stacked = stack(columns, axis=-1)
                jac = stacked.reshape(tuple(out.shape) + in_shape)
        jacs.append(level.wrap(jac))
    return jacs[0] if isinstance(argnums, int) else tuple(jacs)
