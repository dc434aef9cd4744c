"""The engine: recording an op (`apply`), ordering the graph, and the backward pass.

One order serves everything: the creation clock (see `_ticks`). `backward` pops nodes
latest-first; `toposort`, which drawings use, sorts by the same clock. Every gradient is
reduced to its input's shape in one place, `unbroadcast`. The derivative rules themselves
live in `autodiff/rules/`; this module knows nothing about any particular op, nor about
the Tensor class (a tensor is a `Node` here).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import heapq
import inspect
import itertools
import operator
import os
import threading
import traceback
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .rules import Op
    from .tensor import Tensor


class Node:
    """What the engine knows of a tensor: the array, and the node that computed it.

    `Tensor` (autodiff/tensor.py) is the one subclass users meet; the engine and the rules
    recognise a tensor as a Node, so that they need not import the class that uses them.
    The class declared with `result=True` is the class of every op output and constant.

    A node is this one object: its parents sit in slots (`_in0`, `_in1`, and `_ins` holding
    all of them when there are three or more) rather than in a tuple of their own, and a node
    without params shares one empty mapping. Each extra object per node was more work for
    Python's cycle collector, which scans every live node (see `parents` for the tuple).
    """

    __slots__ = (
        "_data",
        "_grad",
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
        "_origin",
        "_born",
        "_composite",
        "__weakref__",
    )

    # The slots' types (annotations only: a class value would clash with the slot).
    _data: Any  # an ndarray, or a numpy scalar for a 0-d tensor (see Tensor)
    _grad: Any  # None, or the gradient as _data is (a Tensor under create_graph)
    requires_grad: bool
    name: str | None
    _op: Op | None
    _in0: Node | None
    _in1: Node | None
    _ins: tuple[Node, ...] | None
    _params: Mapping[str, Any]
    _scope: tuple[Any, ...] | None
    _clock: int
    _modified: int
    _origin: str
    _born: int
    _composite: tuple[str, Op | None]

    # The class of op outputs and constants (Tensor): set by its class statement.
    _result: type[Node]

    def __init_subclass__(cls, result: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if result:
            Node._result = cls

    @property
    def parents(self) -> tuple[Node, ...]:
        """The inputs of the op that made this tensor, in argument order (() for a leaf)."""
        first = self._in0
        if first is None:
            return ()
        if self._ins is not None:
            return self._ins
        second = self._in1
        return (first,) if second is None else (first, second)


class _State(threading.local):
    """Per-thread switches: two threads may train with and without gradients at once.

    The switches live in one tuple, `mode` = (grad_enabled, anomaly, scope, forward), because
    `apply` runs for every node and a thread-local read costs as much as the rest of a small
    op's bookkeeping: one read per node instead of four. The properties keep it in sync.
    `forward` holds the active levels of `autodiff.jvp` (outermost first), each mapping a
    tensor to its tangent; it is empty, and so skipped at the cost of one check, otherwise.
    """

    mode: tuple[bool, bool, tuple | None, tuple] = (True, False, None, ())
    # Active interpreters (vmap levels, innermost last); see `apply`.
    interpreters: tuple = ()

    @property
    def grad_enabled(self) -> bool:
        return self.mode[0]

    @grad_enabled.setter
    def grad_enabled(self, value: bool) -> None:
        self.mode = (value, *self.mode[1:])

    @property
    def anomaly(self) -> bool:
        return self.mode[1]

    @anomaly.setter
    def anomaly(self, value: bool) -> None:
        enabled, _, scope, forward = self.mode
        self.mode = (enabled, value, scope, forward)

    @property
    def scope(self) -> tuple | None:
        return self.mode[2]

    @scope.setter
    def scope(self, value: tuple | None) -> None:
        enabled, anomaly, _, forward = self.mode
        self.mode = (enabled, anomaly, value, forward)

    @property
    def forward(self) -> tuple:
        return self.mode[3]

    @forward.setter
    def forward(self, value: tuple) -> None:
        self.mode = (*self.mode[:3], value)


state = _State()


class _Traced(threading.local):
    """The variables of the reverse-mode transforms (grad, hessian, ...) now running, per
    thread: id -> leaf. (Forward mode needs no such record: its levels in `state.forward`
    hold the tangents.) A class default, so a thread that set none reads it as a plain
    attribute: item() and np.asarray(t) ask on every call. Replaced, never mutated."""

    leaves: dict[int, Node] = {}  # noqa: RUF012


traced = _Traced()


def seen_by_transforms(value: Node) -> bool:
    """Whether `value` carries a tangent of a running `jvp` or depends on a variable of a
    running reverse-mode transform."""
    if any(level.get(value) is not None for level in state.forward):
        return True
    outer = traced.leaves
    if not outer or not value.requires_grad:
        return False
    return any(id(node) in outer for node in toposort(value))


_CONCRETE = {
    "numpy": "numpy would take the plain numbers of",
    "item()": "float(), int() or .item() would make a plain number of",
    "tolist()": ".tolist() would make plain numbers of",
}


def check_concrete(t: Node, who: str) -> None:
    """Refuse to turn a value a running transform differentiates into plain numbers.

    Reverse mode already refuses numpy on a computed tensor, but the transform's own variable
    is a leaf, and forward mode records nothing: there np.array([x, 2 * x]) or float(x) made
    a constant, and the derivative came out silently zero (JAX raises here too). Values that
    do not depend on the transform's variables (a model's weights in a closure) pass.
    """
    if not state.mode[3] and not traced.leaves:
        return  # no transform running: the common case costs two attribute reads
    if seen_by_transforms(t):
        raise TypeError(
            f"{_CONCRETE.get(who, who)} a tensor (shape {t._data.shape}) that a running "
            "transform (grad, jvp, hessian, ...) differentiates, and its derivative would "
            "silently be lost; keep it a Tensor (autodiff.stack([...]) instead of "
            "np.array([...]), autodiff.concatenate instead of np.r_ / np.c_, t[0] instead of "
            "float(t[0])), or call .detach() first if a constant is really meant"
        )


# One logical clock orders everything. Each recorded node takes the next tick at creation, so
# a child always has a later tick than its parents: processing nodes from the latest tick down
# is a valid backward order, with no separate topological sort. An in-place write also takes
# a tick and stamps the tensor (`_modified`), so a parent stamped later than its child was
# created changed under the child's feet: its saved value is stale.
_ticks = itertools.count(1)
# The tick of the latest in-place write anywhere (see `mark_written`). A node created after it
# cannot have seen any of its inputs change, so backward checks a node's inputs only when its
# tick is older than this: one comparison per node in the common case of no writes since the
# forward pass (an optimizer writes before the next forward, not between forward and backward).
_last_write = 0
_write_lock = threading.Lock()


_data_of = operator.attrgetter("_data")  # map(_data_of, ...) is cheaper than a comprehension


# In-place writes are tracked per block of memory, not per Tensor: `detach()`, views made by
# indexing or reshaping, and `t.data` (a tracked numpy view, see tracked.py) share memory with
# the tensor a node saved, and a write through any of them changes what backward would read (as
# PyTorch shares one version counter between a tensor and its views). The key is the array
# that owns the memory; the value is the tick of the last write into it. Backward consults it
# only for nodes older than the last write anywhere (`_last_write`).
_written: dict[int, int] = {}


def _owner(data: Any) -> Any:
    """The array that owns `data`'s memory (numpy keeps `.base` pointing at the owner)."""
    base = getattr(data, "base", None)
    while isinstance(base, np.ndarray):
        data, base = base, base.base
    return data


def mark_written(data: Any) -> int:
    """Record an in-place write into `data`'s memory (None: a write with no array to name,
    the caller stamps its tensor); returns the write's tick."""
    global _last_write
    # Under a lock so `_last_write` only grows: two writers storing their ticks out of order
    # could otherwise leave it below a write that a graph's check must not skip.
    with _write_lock:
        now = _last_write = next(_ticks)
        _stamp(data, now)
    return now


def mark_tensors_written(tensors: Sequence[Node]) -> None:
    """`mark_written` for several tensors at once, under one lock and one tick (an optimizer
    step writes every parameter before any node can use them again)."""
    global _last_write
    with _write_lock:
        now = _last_write = next(_ticks)
        for t in tensors:
            t._modified = now
            data = t._data
            key = id(data)
            if key in _written and type(data) is np.ndarray and data.base is None:
                _written[key] = now  # _stamp's common case (an array seen before), inlined
            else:
                _stamp(data, now)


def _stamp(data: Any, now: int) -> None:
    owner = _owner(data)
    if isinstance(owner, np.ndarray):
        key = id(owner)
        if key not in _written:
            # Forget the entry when the owner dies, so a new array reusing its id starts clean.
            weakref.finalize(owner, _written.pop, key, None)
        _written[key] = now


def _written_since(data: Any, clock: int) -> bool:
    return _written.get(id(_owner(data)), 0) > clock


def is_grad_enabled() -> bool:
    return state.grad_enabled


_F = TypeVar("_F", bound=Callable[..., Any])  # a decorated function keeps its signature


class _GradMode(contextlib.ContextDecorator):
    """`with no_grad():` and `@no_grad()`: the mode to restore is kept per thread and per use.

    A decorator is one object shared by every call of the function, from every thread, so
    each call gets a fresh context (`_recreate_cm`) and a `with` on a shared instance keeps
    its saved modes in a per-thread stack: two threads can never restore each other's mode.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._local = threading.local()

    def _recreate_cm(self) -> _GradMode:
        return _GradMode(self.enabled)

    def __call__(self, func: _F) -> _F:
        if not inspect.isgeneratorfunction(func):
            return super().__call__(func)
        enabled = self.enabled

        # A generator runs its body at each next(), after the call returned: the mode must
        # hold around every resumption, and the caller's mode in between.
        @functools.wraps(func)
        def generator(*args: Any, **kwargs: Any) -> Any:
            inner = func(*args, **kwargs)
            sent: Any = None
            thrown: BaseException | None = None
            while True:
                with _GradMode(enabled):
                    try:
                        item = inner.send(sent) if thrown is None else inner.throw(thrown)
                    except StopIteration as stop:
                        return stop.value
                sent, thrown = None, None
                try:
                    sent = yield item
                except GeneratorExit:
                    with _GradMode(enabled):
                        inner.close()
                    raise
                except BaseException as exc:  # noqa: BLE001 (passed on to the generator)
                    thrown = exc

        return cast(_F, generator)  # wraps(func): the same signature

    def __enter__(self) -> None:
        stack = self._local.__dict__.setdefault("saved", [])
        stack.append(state.grad_enabled)
        state.grad_enabled = self.enabled

    def __exit__(self, *exc: object) -> None:
        state.grad_enabled = self._local.saved.pop()


class _SetGradEnabled(_GradMode):
    """`set_grad_enabled(mode)` switches at once (this thread), as in PyTorch, so it works as a
    plain call; as a context manager it restores the previous mode on exit."""

    def __init__(self, enabled: bool) -> None:
        super().__init__(enabled)
        self._previous = state.grad_enabled
        state.grad_enabled = enabled

    def __call__(self, func: _F) -> _F:
        # Used as a decorator: the switch belongs to each call, not to the definition.
        state.grad_enabled = self._previous
        return super().__call__(func)

    def __enter__(self) -> None:
        pass  # already switched by __init__

    def __exit__(self, *exc: object) -> None:
        state.grad_enabled = self._previous


def no_grad(func: Callable | None = None) -> Any:
    """Context manager and decorator: ops inside record no graph (per thread).

    `@no_grad()` and bare `@no_grad` both decorate; generator functions keep the mode at
    every resumption."""
    return _GradMode(False) if func is None else _GradMode(False)(func)


def inference_mode(mode: Any = True) -> Any:
    """PyTorch's name for evaluation without a graph: here the same as `no_grad` (this engine
    has no separate inference tensors). A context manager and decorator, `@inference_mode()`
    and bare `@inference_mode`; `inference_mode(False)` leaves the mode as it is, as in
    PyTorch."""
    if callable(mode):
        return no_grad(mode)
    # Off: a mode that sets what is already set (each use reads the mode current then).
    return _GradMode(False) if mode else _GradMode(state.grad_enabled)


def enable_grad(func: Callable | None = None) -> Any:
    return _GradMode(True) if func is None else _GradMode(True)(func)


def set_grad_enabled(mode: bool) -> _GradMode:
    """Switch gradient recording on or off for this thread; also a context manager."""
    return _SetGradEnabled(bool(mode))


@contextlib.contextmanager
def detect_anomaly() -> Iterator[None]:
    """Record where each node is created and stop at the first NaN or infinity.

    Inside this block every op's output and every gradient computed by backward is checked;
    the error names the op, the shapes, and the line of user code that created the node.
    It is slow (a stack capture per op), so it is for debugging only. Per thread.
    """
    saved = state.anomaly
    state.anomaly = True
    try:
        yield
    finally:
        state.anomaly = saved


def enter_scope(module: object) -> tuple | None:
    """Tag every tensor created from now on (this thread) with `module`, inside the module
    stack already active; returns that stack, for `exit_scope`. What `module_scope` does as a
    context manager, as two calls for a framework's hot path (nn's Module.__call__)."""
    st = state
    enabled, anomaly, scope, forward = st.mode
    st.mode = (enabled, anomaly, (module,) if scope is None else scope + (module,), forward)
    return scope


def exit_scope(scope: tuple | None) -> None:
    """Restore the module stack `enter_scope` returned (only it: a grad-mode switch made
    inside the module stays made)."""
    st = state
    enabled, anomaly, _, forward = st.mode
    st.mode = (enabled, anomaly, scope, forward)


class module_scope:  # noqa: N801 - used like a function, as `with module_scope(m):`
    """Tag every tensor created inside with the active module stack, for drawings by module.

    A class rather than a generator-based context manager: every module call of every
    forward pass goes through it, and this costs a fraction of a microsecond.
    """

    __slots__ = ("module", "saved")

    def __init__(self, module: object) -> None:
        self.module = module

    def __enter__(self) -> None:
        self.saved = saved = state.scope
        state.scope = (self.module,) if saved is None else saved + (self.module,)

    def __exit__(self, *exc: object) -> None:
        state.scope = self.saved


# ---------------------------------------------------------------------------------------------
# Recording an op


def _shapes(values: Sequence[Any]) -> str:
    return ", ".join(str(tuple(np.shape(v))) for v in values)


def op_error(op_name: str, parents: Sequence[Node], exc: Exception) -> Exception:
    """Rewrite a numpy failure so that it names our op and the shapes, not numpy's internals."""
    shapes = _shapes([p._data for p in parents])
    message = str(exc)
    if message.startswith(f"{op_name}: "):
        return exc  # the op's own error already names it (a checkpointed f's, say)
    if "broadcast" in message:
        message = f"shapes {shapes} do not broadcast together"
    elif "mismatch in its core dimension" in message or "not aligned" in message:
        # numpy's words for a matrix product whose inner sizes differ (matmul, linear): by
        # the message, so that the engine names no op.
        message = f"inner sizes do not match for shapes {shapes}"
    else:
        message = f"{message} (input shapes {shapes})"
    kind = type(exc) if isinstance(exc, (ValueError, TypeError, IndexError)) else ValueError
    if isinstance(exc, np.exceptions.AxisError):
        kind = ValueError
    try:
        return kind(f"{op_name}: {message}")
    except TypeError:
        # numpy's ufunc errors (np.sign of booleans: _UFuncNoLoopError) take more arguments
        # than a message: the builtin class they derive from says the same.
        builtin = next(k for k in (IndexError, TypeError, ValueError) if issubclass(kind, k))
        return builtin(f"{op_name}: {message}")


# This package and its sibling `nn`, by where they really are: a user's own `myproject/nn/`
# folder is user code and must be named.
_HERE = os.path.dirname(os.path.abspath(__file__))
_OUR_DIRS = tuple(
    {
        os.path.join(d, name) + os.sep
        for d in {os.path.dirname(_HERE), os.path.dirname(os.path.realpath(_HERE))}
        for name in ("autodiff", "nn")
    }
) + (
    # numpy's own frames too: backward runs under its np.errstate decorator, so a node that
    # create_graph records was said to be created in numpy's _ufunc_config.py, not at the
    # user's autodiff.grad(...) line.
    os.path.dirname(os.path.abspath(np.__file__)) + os.sep,
    os.path.dirname(os.path.realpath(np.__file__)) + os.sep,
)


def _user_frame() -> str:
    """The innermost stack frame outside this package (and numpy): the user's line that made
    a node."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        name = os.path.abspath(frame.filename)
        if not name.startswith(_OUR_DIRS):
            return f'File "{frame.filename}", line {frame.lineno}, in {frame.name}: {frame.line}'
    return "<unknown>"


def _check_finite(value: Any, what: str, origin: str | None) -> None:
    # With create_graph the backward pass's gradients are Tensors, and np.asarray refuses a
    # Tensor that carries a graph while grad mode is on: check their numbers.
    arr = np.asarray(value._data if isinstance(value, Node) else value)
    if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        bad = "NaN" if np.isnan(arr).any() else "infinity"
        where = f"\n  created at {origin}" if origin else ""
        raise FloatingPointError(f"detect_anomaly: {what} produced {bad}{where}")


# The params of every node that has none: one shared, read-only mapping instead of an empty
# dict per node (a node is then a single object for the collector to track).
NO_PARAMS: Any = MappingProxyType({})
_new: Callable[[type[Node]], Any] = object.__new__  # typed: it makes the result class

# How many interpreters are active in all threads (vmap, autodiff/vmap.py): while it is 0,
# `apply` pays one global read for them. An interpreter in `state.interpreters` gets every
# application first (`process`) and returns the output, or NotImplemented when none of the
# parents is its own; the engine knows no interpreter and no op.
interpreting = 0


def apply(op: Op, parents: tuple[Node, ...], **params: Any) -> Tensor:
    """Run `op` forward on the parents' data and, when gradients are wanted, record the node."""
    if interpreting and state.interpreters:
        handled = state.interpreters[-1].process(op, parents, params)
        if handled is not NotImplemented:
            return handled
    # Positional calls for the common shapes: unpacking a map or a **{} costs more than a
    # scalar op's arithmetic.
    first = parents[0]
    count = len(parents)
    try:
        if count == 2:
            data = (
                op.forward(first._data, parents[1]._data, **params)
                if params
                else op.forward(first._data, parents[1]._data)
            )
        elif count == 1:
            data = op.forward(first._data, **params) if params else op.forward(first._data)
        elif count == 3 and not params:  # a linear layer's x, weight and bias
            data = op.forward(first._data, parents[1]._data, parents[2]._data)
        else:
            data = op.forward(*map(_data_of, parents), **params)
    except (ValueError, TypeError, IndexError) as exc:
        raise op_error(op.name, parents, exc) from None
    if op.saves:
        data, params["saved"] = data
    grad_enabled, anomaly, scope, forward = state.mode
    out: Tensor = _new(first._result)
    out._data = data
    out._grad = None
    out.name = None
    out._scope = scope
    if grad_enabled and (
        first.requires_grad
        or (count > 1 and (parents[1].requires_grad or any(p.requires_grad for p in parents[2:])))
    ):
        out.requires_grad = True
        out._op = op
        # Parents in slots rather than a tuple: one object per node for the collector.
        out._in0 = first
        if count == 1:
            out._in1 = out._ins = None
        elif count == 2:
            out._in1 = parents[1]
            out._ins = None
        else:
            out._in1 = parents[1]
            out._ins = parents
        out._clock = next(_ticks)
    else:  # nothing to differentiate: keep no references, so the inputs can be freed
        out.requires_grad = False
        out._op = out._in0 = out._in1 = out._ins = None
        out._clock = 0
    out._params = params or NO_PARAMS  # forward mode's rules read them even on constants
    out._modified = 0
    if forward:  # inside autodiff.jvp: the output's tangent, in the same pass
        carry_tangents(op, parents, out, params)
    if anomaly:
        out._origin = _user_frame()
        inputs_finite = all(
            np.all(np.isfinite(p._data)) for p in parents if np.asarray(p._data).dtype.kind == "f"
        )
        if inputs_finite:
            _check_finite(
                data,
                f"{op.name} forward (input shapes {_shapes([p._data for p in parents])})",
                out._origin,
            )
    return out


# ---------------------------------------------------------------------------------------------
# Walking the graph


def toposort(root: Node) -> list[Node]:
    """Tensors that require grad reachable from `root`, parents before children.

    Iterative (a 1,000,000-node chain must not hit the recursion limit); visited nodes are
    keyed by `id`, so Tensor can overload `==`. The order is the creation clock's, the same
    order `backward` runs in (leaves, which have no tick, come first).
    """
    seen = {id(root): root}
    stack = [root]
    while stack:
        for parent in stack.pop().parents:
            if parent.requires_grad and id(parent) not in seen:
                seen[id(parent)] = parent
                stack.append(parent)
    return sorted(seen.values(), key=_tick_of)


def _tick_of(t: Node) -> int:
    return t._clock


def unbroadcast(grad: Any, shape: tuple[int, ...], dtype: np.dtype) -> Any:
    """Reduce a gradient to an input's shape: the one place broadcasting is undone.

    A broadcast input was used in several output positions, so its gradient is the sum over
    them: sum the leading axes it lacked, then the axes where it had size 1. Also casts to the
    input's dtype, so a float32 input gets a float32 gradient even when mixed with float64.
    """
    if grad.shape != shape:
        extra = grad.ndim - len(shape)
        axes = tuple(range(extra)) + tuple(
            extra + i for i, n in enumerate(shape) if n == 1 and grad.shape[extra + i] != 1
        )
        if axes:
            grad = grad.sum(axis=axes, keepdims=True)
        grad = grad.reshape(shape)
    if grad.dtype != dtype:
        grad = grad.astype(dtype)
    return grad


def _check_grad_shape(op: Op, index: int, got: tuple, want: tuple, out: Any) -> None:
    """A rule's gradient must have its input's shape, or one the input broadcasts to with
    no more axes than the output (the engine sums the broadcast axes away); else name the
    op and both shapes, instead of numpy's reshape error or, worse, a reshape or sum that
    happens to fit ((4,) into (2, 2), or (2, 3) summed into (3,) for a (3,) output)."""
    if len(want) <= len(got) <= max(len(want), np.ndim(out)) and all(
        w == g or w == 1 for w, g in zip(reversed(want), reversed(got), strict=False)
    ):
        return
    raise ValueError(
        f"{op.name}: the gradient rule for input {index} returned shape {got}, but input "
        f"{index} has shape {want} (a gradient has its input's shape, or a shape the input "
        "broadcasts to)"
    )


StepHook = Callable[[Any, Any, list], None]


# A rule at a point where the derivative is infinite or undefined (log or sqrt at 0) answers
# inf or NaN quietly, as the forwards do (rules.table.QUIET); detect_anomaly finds it. errstate as a
# decorator: it costs less than half of a `with np.errstate(...)` block per call.
@np.errstate(divide="ignore", invalid="ignore")
def backward(
    roots: Sequence[Node],
    seeds: Sequence[Any],
    *,
    create_graph: bool = False,
    accumulate: bool = True,
    inputs: Sequence[Node] | None = None,
    on_step: StepHook | None = None,
) -> list[Any] | None:
    """Reverse-mode accumulation from `roots` (each with its upstream gradient `seeds`).

    accumulate=True (Tensor.backward): leaf gradients are added into `.grad`; every other node
    reached gets this pass's gradient in `.grad` (overwritten, so nothing stale survives).
    accumulate=False (autodiff.grad): nothing is written; the gradients of `inputs` are returned.
    create_graph=True runs the rules on Tensors, so the backward pass is itself a graph.
    on_step(node, upstream, [(index, parent, contribution), ...]) is called per node, in order.
    """
    # Gradients received so far, keyed by the node itself: Tensor hashes by identity, and a
    # dict local to this call keeps two threads' passes over shared nodes apart.
    pending: dict[Node, Any] = {}
    # Computed nodes waiting for their turn, latest tick first (heapq is a min-heap, hence the
    # minus; ticks are unique, so nodes are never compared). A node enters when its first
    # contribution arrives; by the time it is taken, every node created after it has been
    # processed, so its gradient is complete. Leaves have no rule to run: they are only
    # collected, in `leaves`, and given their gradients at the end.
    queue: list[tuple[int, Node]] = []
    leaves: list[Node] = []
    for root, seed in zip(roots, seeds, strict=True):
        if root in pending:
            pending[root] = pending[root] + seed
            continue
        pending[root] = seed
        if root._op is None:
            leaves.append(root)
        else:
            heapq.heappush(queue, (-root._clock, root))
    # An input may be listed more than once (grad(y, [x, x])): `found` is keyed by node, so it
    # gets its gradient at every position it was listed in.
    wanted = set(inputs) if inputs is not None else ()
    found: dict[Node, Any] = {}
    # Owners of the arrays handed out as `.grad` in this pass: a rule may pass one array to
    # two parents (add) or a view of it (reshape), and users must get arrays of their own.
    handed: set[int] = set()
    st = state
    mode = st.mode
    grad_was_enabled, anomaly = mode[0], mode[1]
    st.mode = (create_graph, *mode[1:])  # record the rules' own ops only when asked to
    push, pushpop, pop = heapq.heappush, heapq.heappushpop, heapq.heappop
    # The engine makes no reference cycles, so the cycle collector has nothing to find here;
    # pausing it saves it from scanning the whole graph while backward allocates gradients.
    collecting = gc.isenabled()
    gc.disable()
    try:
        # The common pass (Tensor.backward, no create_graph): one check per node instead of
        # three; `watched` likewise for the per-contribution extras.
        plain = accumulate and not create_graph and not wanted
        watched = anomaly or on_step is not None
        node = pop(queue)[1] if queue else None
        while node is not None:
            grad = pending.pop(node)
            # An intermediate gets this pass's gradient, not a sum (a graph-carrying one is
            # detached: it would otherwise be a cycle through the node itself).
            if plain:
                if type(grad) is not np.ndarray:
                    node._grad = grad  # a numpy scalar: immutable
                elif grad.base is None and id(grad) not in handed:
                    handed.add(id(grad))  # a fresh array (the common case): _own, inlined
                    node._grad = grad
                else:
                    node._grad = _own(grad, handed)
            else:
                if node in wanted:
                    found[node] = grad
                if accumulate:
                    node._grad = (
                        _own_tensor(grad.detach(), handed, False)
                        if create_graph
                        else _own(grad, handed)
                    )
            op = node._op
            if node._clock < _last_write:
                _check_not_stale(node)
            first, second, many = node._in0, node._in1, node._ins
            assert op is not None and first is not None  # a computed node (leaves wait below)
            parents = many or ((first,) if second is None else (first, second))
            if create_graph:
                out: Any = node
                args: Any = parents
            else:
                out = node._data
                if second is None:
                    args = (first._data,)
                elif many is None:
                    args = (first._data, second._data)
                elif len(many) == 3:  # a linear layer's: written out, a fifth of map's cost
                    args = (first._data, second._data, many[2]._data)
                else:
                    args = tuple(map(_data_of, parents))
            params = node._params
            rules = op.vjps
            contributions: list[tuple[int, Node, Any]] | None = [] if on_step is not None else None
            following = None  # the latest of the parents this node reached first
            for index, parent in enumerate(parents):
                if not parent.requires_grad:
                    continue
                if op.variadic:
                    contrib = rules[0](index, grad, out, *args, **params)
                elif params:
                    contrib = rules[index](grad, out, *args, **params)
                else:
                    contrib = rules[index](grad, out, *args)
                data = parent._data
                # Same numpy scalar type on both sides means same shape and dtype: skip the
                # shape comparison that dominates tiny scalar graphs.
                if (type(contrib) is not type(data) or type(data) is np.ndarray) and (
                    contrib.shape != data.shape or contrib.dtype != data.dtype
                ):
                    if contrib.shape != data.shape:
                        _check_grad_shape(op, index, contrib.shape, data.shape, node._data)
                    contrib = unbroadcast(contrib, data.shape, data.dtype)
                if watched:
                    if anomaly:
                        _check_finite(
                            contrib,
                            f"{op.name} backward, gradient for input {index} "
                            f"(shapes {_shapes([p._data for p in parents])})",
                            getattr(node, "_origin", None),
                        )
                    if contributions is not None:
                        contributions.append((index, parent, contrib))
                previous = pending.get(parent)
                if previous is not None:
                    # Out of place on purpose: a rule may give one array to two parents.
                    pending[parent] = previous + contrib
                    continue
                pending[parent] = contrib
                if parent._op is None:
                    leaves.append(parent)
                elif following is None:
                    following = parent
                elif parent._clock > following._clock:
                    push(queue, (-following._clock, following))
                    following = parent
                else:
                    push(queue, (-parent._clock, parent))
            if on_step is not None:
                assert contributions is not None  # made a list when on_step is given
                on_step(node, grad, contributions)
            # Next: the latest node waiting. In a chain that is the parent just reached, which
            # then never goes through the heap.
            if following is None:
                node = pop(queue)[1] if queue else None
            elif not queue or following._clock > -queue[0][0]:
                node = following
            else:
                node = pushpop(queue, (-following._clock, following))[1]
        for leaf in leaves:
            grad = pending.pop(leaf)
            if not plain:
                if leaf in wanted:
                    found[leaf] = grad
                if not accumulate:
                    continue
            if (
                leaf._grad is None
                and type(grad) is np.ndarray
                and grad.base is None
                and id(grad) not in handed
            ):
                handed.add(id(grad))  # a leaf's first gradient, a fresh array: _store_grad,
                leaf._grad = grad  # inlined (this runs for every parameter every step)
            else:
                _store_grad(leaf, grad, create_graph, handed)
    finally:
        # Only this switch (a rule may have changed no other); the tuple, not the property.
        st.mode = (grad_was_enabled, *st.mode[1:])
        if collecting:
            gc.enable()
    if inputs is None:
        return None
    return [found.get(t) for t in inputs]


def _check_not_stale(node: Node) -> None:
    """Refuse a node whose output or inputs were written in place after it was recorded,
    directly or through another tensor sharing their memory (a view, a detach() alias)."""
    clock = node._clock
    parents = node.parents
    if (
        node._modified > clock
        or any(p._modified > clock for p in parents)
        or _written_since(node._data, clock)
        or any(_written_since(p._data, clock) for p in parents)
    ):
        assert node._op is not None  # only computed nodes are checked
        raise _stale_error(node._op, parents)


def _stale_error(op: Op, parents: Sequence[Node]) -> RuntimeError:
    return RuntimeError(
        f"{op.name}: a tensor this op saved for backward was modified in place (or its .data "
        f"replaced) after the op ran (shapes {_shapes([p._data for p in parents])}); compute "
        "a new tensor instead of writing into it, or run backward first"
    )


def _own(grad: Any, handed: set[int]) -> Any:
    """`grad`, or a copy of it if this pass already handed out its memory to another tensor."""
    if type(grad) is not np.ndarray:
        return grad  # numpy scalars and Tensors are immutable here
    if grad.base is None:
        key = id(grad)  # a fresh array (the common case): its own owner
    else:
        key = id(_owner(grad))
        if not grad.flags.writeable and key not in handed:
            # A read-only broadcast view is copied by `Tensor.grad` when first read, so the
            # (often large) copy is paid only if used; its memory is marked as handed out,
            # so that no other tensor is given it to write into meanwhile.
            handed.add(key)
            return grad
    if key in handed:
        grad = np.array(grad)
        key = id(grad)
    handed.add(key)
    return grad


def _store_grad(node: Node, grad: Any, create_graph: bool, handed: set[int]) -> None:
    """Leaves add into `.grad`; other nodes get this pass's gradient (see Tensor.backward).

    A plain backward stores the raw array; `Tensor.grad` wraps it in a Tensor when read,
    so intermediate gradients nobody looks at cost no Tensor objects.
    """
    previous = node._grad if node._op is None else None
    if create_graph:
        if node._op is not None:
            grad = grad.detach()  # a graph-carrying grad on a non-leaf would be a cycle
        elif previous is not None:
            grad = grad + previous
        if node._op is None and isinstance(grad, Node) and grad.requires_grad:
            # leaf -> .grad -> graph -> leaf: inherent to a differentiable .grad, so warned
            # of (as PyTorch does) rather than broken; autodiff.grad returns it instead.
            warnings.warn(_CYCLE_WARNING.format(shape=node._data.shape), stacklevel=5)
        node._grad = _own_tensor(grad, handed, node._op is None)
        return
    if previous is not None:
        grad = grad + (previous._data if isinstance(previous, Node) else previous)
    node._grad = _own(grad, handed)


_CYCLE_WARNING = (
    "backward(create_graph=True) put a gradient that carries its graph into .grad of a leaf "
    "(shape {shape}): the leaf and its gradient now refer to each other, a reference cycle "
    "that only Python's cycle collector frees (not the last name going away); use "
    "autodiff.grad(outputs, inputs, create_graph=True) for differentiable gradients, or set "
    "x.grad = None once done with them"
)


def _own_tensor(grad: Any, handed: set[int], differentiable: bool) -> Any:
    """`_own` for a gradient kept as a Tensor (create_graph): a rule may give one Tensor to
    several inputs (add gives both the same), so one whose numbers another tensor already
    holds is copied: through a node when it must stay differentiable (a leaf's), else as a
    constant."""
    if not isinstance(grad, Node):
        return _own(grad, handed)
    key = id(_owner(grad._data))
    if key in handed:
        grad = cast("Tensor", grad).clone() if differentiable else constant(np.array(grad._data))
        key = id(_owner(grad._data))
    handed.add(key)
    return grad


def constant(data: Any) -> Tensor:
    """Wrap an array the engine made as a Tensor outside any graph (no copy, no checks)."""
    t: Tensor = _new(Node._result)
    t._data = data
    t._grad = None
    t.requires_grad = False
    t.name = None
    t._op = t._in0 = t._in1 = t._ins = None
    t._params = NO_PARAMS
    t._scope = None
    t._clock = 0
    t._modified = 0
    return t


# ---------------------------------------------------------------------------------------------
# Forward mode: the tangent of each op's output, from its row's JVP rules (autodiff.jvp
# manages the levels; see autodiff/forward.py)


def carry_tangents(op: Op, parents: tuple[Node, ...], out: Node, params: dict) -> None:
    """Called by `engine.apply` in forward mode: the output's tangent at every active level.

    `params` are the op's parameters (an untracked output does not keep them)."""
    st = state
    levels = st.forward
    if np.result_type(out._data).kind != "f":
        return  # integer and boolean results are constants
    for depth, level in enumerate(levels):
        tangents = [level.get(p) for p in parents]
        if all(t is None for t in tangents):
            continue
        if op.jvps is None:
            raise NotImplementedError(
                f"{op.name}: this op has no JVP rule, so forward mode cannot go through it "
                f"(input shapes {_shapes([p._data for p in parents])})"
            )
        # The rule's own ops carry the tangents of the enclosing levels only: a tangent is a
        # value to them, which they may perturb, but this level's perturbation is the tangent.
        st.forward = levels[:depth]
        try:
            # A rule at a point where the derivative is infinite or undefined (sqrt at 0)
            # answers inf or NaN quietly, as the forwards and the backward pass do.
            with np.errstate(divide="ignore", invalid="ignore"):
                tangent = _push(op, parents, out, params, tangents, depth)
        finally:
            st.forward = levels
        level.set(out, tangent)
        if level.observer is not None:
            level.observer(op, parents, out, params, tangents, tangent)


def _push(
    op: Op, parents: tuple[Node, ...], out: Node, params: dict, tangents: list, depth: int
) -> Any:
    # On Tensors (recorded) when the result must be differentiated again; on arrays otherwise.
    symbolic = depth > 0 or (
        state.grad_enabled
        and (out.requires_grad or any(isinstance(t, Node) and t.requires_grad for t in tangents))
    )
    if symbolic:
        args: Any = parents
        result: Any = out
        ts = [t if t is None or isinstance(t, Node) else constant(t) for t in tangents]
    else:
        args = [p._data for p in parents]
        result = out._data
        ts = [t._data if isinstance(t, Node) else t for t in tangents]
    assert op.jvps is not None  # the caller refused an op without them
    if op.variadic:
        zeros = [np.zeros_like(p._data) for p in parents]
        filled = [z if t is None else t for t, z in zip(ts, zeros, strict=True)]
        total = op.jvps[0](filled, result, *args, **params)
    else:
        total = None
        # zip stops at the shorter: linear's bias rule goes unused when there is no bias.
        for rule, t in zip(op.jvps, ts, strict=False):
            if t is not None:
                part = rule(t, result, *args, **params)
                total = part if total is None else total + part
    try:
        return fit_tangent(total, out._data)
    except ValueError:
        # A rule's tangent must broadcast to its output's shape: name the op and both.
        raise ValueError(
            f"{op.name}: the JVP rule returned a tangent of shape {np.shape(total)}, but "
            f"the output has shape {out._data.shape}"
        ) from None


def fit_tangent(tangent: Any, like: Any) -> Any:
    """A tangent in its output's shape and dtype: the forward counterpart of unbroadcast."""
    shape, dtype = np.shape(like), np.result_type(like)
    if isinstance(tangent, Node):
        tangent = cast("Tensor", tangent)
        if tangent.shape != shape:
            tangent = tangent.broadcast_to(shape)
        return tangent if tangent.dtype == dtype else tangent.astype(dtype)
    if np.shape(tangent) != shape:
        tangent = np.broadcast_to(tangent, shape)
    if np.result_type(tangent) != dtype:
        tangent = np.asarray(tangent).astype(dtype)
    return tangent
