"""Function transforms: derivatives as functions, built from `grad` (reverse) and `jvp` (forward).

    from autodiff.func import grad, jacobian, hessian
    df = grad(lambda x: (x ** 3).sum())      # a function: df(x) = 3 x**2
    df(2.0)                                  # 12.0
    hessian(lambda x: (x ** 3).sum())([1.0, 2.0])   # [[6, 0], [0, 12]]

The names and signatures follow torch.func and JAX where they exist. A transformed function
takes Tensors, numpy arrays or Python numbers and answers in kind: Tensors in, Tensors out
(still connected to any enclosing transform, so transforms nest); arrays or numbers in,
numpy out (a 0-d result is an np.float64, which is a Python float), unless the result depends
on what an enclosing transform differentiates (f closes over its variable): then a Tensor.
A Tensor result carries a graph only when something of the caller's requires its gradient
(hessian of a plain Tensor is a plain Tensor).

Arguments and results may be trees: tuples, lists, dicts and namedtuples of those values,
nested as you like, with JAX's rules (see `autodiff.trees`): `grad(loss)(params_dict)` is a
dict of the same keys, and `nn.functional_call` makes a model's loss a function of such a
dict. A list or tuple of plain numbers stays one array, as numpy reads it.

Inside a transform, a value it differentiates cannot become plain numbers (float(x),
x.item(), np.array([x, 2 * x])): that would silently cut its derivative, so it is refused.

Nothing here has its own traversal: reverse mode is `engine.backward` (via `tensor.grad`),
forward mode is `forward.enter` (the tangent-carrying pass), and every other transform is a
few lines on top of those.
"""

from __future__ import annotations

import contextlib
import inspect
import numbers
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np

from . import engine, forward, rules, tracked, trees
from .composites import concatenate
from .creation import _default_generator
from .tensor import Tensor

__all__ = [
    "checkpoint",
    "elementwise_grad",
    "grad",
    "grad_and_aux",
    "hessian",
    "hvp",
    "jacfwd",
    "jacobian",
    "jacrev",
    "jvp",
    "value_and_grad",
    "vjp",
]

Argnums = int | tuple[int, ...]


# --- inputs and outputs -------------------------------------------------------------------------


def _batching() -> Any:
    """The vmap level a transform called now works at, or None outside vmap: inside vmap a
    transform is the same transform of the batched computation, which the level (the engine's
    innermost interpreter, autodiff/vmap.py) runs."""
    if engine.interpreting and engine.state.interpreters:
        return engine.state.interpreters[-1].lowering()
    return None


def _kind(args: Sequence[Any]) -> str:
    if any(isinstance(a, Tensor) for a in args):
        return "tensor"
    if any(isinstance(a, np.ndarray | np.generic) for a in args):
        return "array"
    return "number"


def _export(value: Any, kind: str) -> Any:
    """A result in the kind of the arguments: a Tensor, or a fresh numpy array / np.float64.

    Arrays in give numpy out, except when the result depends on what an enclosing transform
    is differentiating (f closes over the outer variable: grad(lambda w: grad(lambda x:
    (x * w).sum())(x0) ...)): numbers would cut the outer chain rule, silently, to zero.
    """
    if kind == "tensor":
        if not isinstance(value, Tensor):
            return engine.constant(np.array(value))
        if value.requires_grad and _own_graph_only(value):
            # Recorded only because a transform of ours differentiates it again (hessian is
            # jacfwd over jacrev): nothing of the caller's requires its gradient, so it
            # answers as the inputs do, without a graph (and can be turned into numpy).
            detached = engine.constant(value._data)
            forward.copy_tangents(value, detached)
            return detached
        return value
    if isinstance(value, Tensor) and engine.seen_by_transforms(value):
        return value
    arr = np.array(value._data if isinstance(value, Tensor) else value)
    return arr[()] if arr.ndim == 0 else arr


# The leaves our transforms made for their variables (id -> weak reference, dropped when the
# leaf dies): a result whose graph reaches only those, once their transforms have returned,
# has no gradient the caller could ask for.
_made: dict[int, weakref.ref] = {}


def _made_leaf(leaf: Tensor) -> Tensor:
    key = id(leaf)
    _made[key] = weakref.ref(leaf, partial(_unmade, key))
    return leaf


def _unmade(key: int, _dead: Any) -> None:
    _made.pop(key, None)


def _own_graph_only(value: Tensor) -> bool:
    active = engine.traced.leaves
    for node in engine.toposort(value):
        if node._op is None and node.requires_grad:
            ref = _made.get(id(node))
            if ref is None or ref() is not node or id(node) in active:
                return False
    return True


def _argnums(argnums: Argnums, nargs: int, who: str) -> tuple[int, ...]:
    def index(n: Any) -> bool:  # True would silently mean argument 1
        return isinstance(n, int) and not isinstance(n, bool)

    if not index(argnums) and not (
        isinstance(argnums, tuple | list) and all(index(n) for n in argnums)
    ):
        raise TypeError(f"{who}: argnums must be an int or a tuple of ints, got {argnums!r}")
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if not nums:
        raise ValueError(f"{who}: argnums is empty")
    for n in nums:
        if not -nargs <= n < nargs:
            raise ValueError(f"{who}: argnums {argnums!r} out of range for {nargs} arguments")
    normalised = tuple(n % nargs for n in nums)
    if len(set(normalised)) != len(normalised):
        # Each position gets one fresh leaf; a second leaf for the same argument would be
        # left unused and its gradient silently zero.
        raise ValueError(f"{who}: argnums {argnums!r} names an argument twice")
    return normalised


def _numbers_only(x: Any) -> bool:
    """A non-empty list or tuple of Python numbers (at any depth): one array, as numpy reads
    it, so grad(f)([1.0, 2.0]) differentiates with respect to a vector, as it always did."""
    if type(x) not in (list, tuple) or not x:
        return False
    return all(
        (isinstance(e, numbers.Number) and not isinstance(e, np.ndarray)) or _numbers_only(e)
        for e in x
    )


def _arg_leaf(x: Any) -> bool:
    """Where the transforms stop descending an argument's tree: Tensors, arrays, numbers, and
    lists or tuples made only of numbers. Everything else follows `trees` (JAX's rules)."""
    return isinstance(x, Tensor | np.ndarray | np.generic) or _numbers_only(x)


def _flatten_arg(x: Any) -> tuple[list[Any], trees.TreeDef]:
    return trees.tree_flatten(x, is_leaf=_arg_leaf)


class _Args:
    """The differentiated arguments of one call, as a flat list of leaves (every array or
    Tensor in their trees), and the way back: `build` puts leaves in place of the arguments,
    `regroup` turns one value per leaf into one tree per argument."""

    def __init__(self, args: Sequence[Any], nums: tuple[int, ...]) -> None:
        self.args = args
        self.nums = nums
        self.defs: list[trees.TreeDef] = []
        self.values: list[Any] = []
        self.where: list[Any] = []  # how an error names each leaf
        for n in nums:
            leaves, treedef = _flatten_arg(args[n])
            self.defs.append(treedef)
            self.values += leaves
            if treedef.is_leaf:
                self.where.append(n)
            else:
                self.where += [f"{n} (leaf {k} of its {treedef})" for k in range(len(leaves))]

    def regroup(self, per_leaf: Sequence[Any]) -> tuple[Any, ...]:
        it = iter(per_leaf)
        return tuple(d.unflatten([next(it) for _ in range(d.num_leaves)]) for d in self.defs)

    def build(self, leaves: Sequence[Any]) -> list[Any]:
        call = list(self.args)
        for n, tree in zip(self.nums, self.regroup(leaves), strict=True):
            call[n] = tree
        return call


def _outputs(result: Any, who: str, single: bool = False) -> tuple[list[Any], trees.TreeDef]:
    """f's result as leaves and structure, after checking each leaf is a Tensor, a number or
    a numeric array (a constant): anything else (a string, an object) taken as a constant
    would silently have derivative zero, so it is refused by name."""
    leaves, treedef = trees.tree_flatten(result)
    bad = [
        leaf
        for leaf in leaves
        if not isinstance(leaf, Tensor | numbers.Number | np.ndarray | np.number | np.bool_)
        or isinstance(leaf, np.ndarray)
        and leaf.dtype.kind not in "biuf"
    ]
    if bad or not leaves or (single and not treedef.is_leaf):
        what = (
            "one Tensor"
            if single
            else "Tensors, or a tuple, list or dict (nested as you like) of Tensors"
        )
        got = forward._describe(result) if not bad else f"a leaf of type {type(bad[0]).__name__}"
        raise TypeError(f"{who}: f must return {what}, got {got}")
    return leaves, treedef


def _as_tensor(arg: Any, i: Any, who: str) -> Tensor:
    """Argument i as a Tensor, or a TypeError naming the transform and the argument (not
    Tensor's own message, which says nothing of which call of which transform failed)."""
    if isinstance(arg, Tensor):
        return arg
    try:
        return Tensor(arg)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{who}: argument {i} is not a number, array or Tensor: {exc}") from None


def _leaf(arg: Any, i: Any, who: str) -> Tensor:
    """A fresh node requiring grad that stands for argument i.

    Fresh even when the argument is already a Tensor that requires grad: grad(f)(x) inside
    another grad must differentiate through *this* argument only, not through other uses of
    x in a closure (perturbation confusion). Such a node is an identity op on x, so the outer
    transform still sees through it; an argument carrying forward-mode tangents passes them on.
    """
    if isinstance(arg, Tensor):
        if arg.dtype.kind != "f":
            raise TypeError(
                f"{who}: argument {i} has dtype {arg.dtype}; differentiate "
                "with respect to floating-point values"
            )
        if arg.requires_grad:
            return engine.apply(rules.reshape, (arg,), shape=arg.shape)
        leaf = _made_leaf(Tensor(arg._data, requires_grad=True))
        forward.copy_tangents(arg, leaf)
        return leaf
    t = _as_tensor(arg, i, who)
    if t.dtype.kind != "f":
        raise TypeError(
            f"{who}: argument {i} has dtype {t.dtype}; differentiate with respect "
            "to floating-point values (pass 2.0, not 2)"
        )
    return _made_leaf(t.requires_grad_(True))


def _needs_graph(outputs: Sequence[Tensor], leaves: Sequence[Tensor], caller_grad: bool) -> bool:
    """Whether the gradients must be recorded: an enclosing transform will differentiate them.

    That is so inside `jvp` (forward over reverse: tangents flow through the backward pass's
    ops), and when the caller records gradients and the outputs depend on something else that
    requires grad (an enclosing `grad`, or parameters of a model being trained). Otherwise the
    fast backward on arrays is used.
    """
    if engine.state.forward:
        return True
    if not caller_grad:
        return False
    ours = {id(leaf) for leaf in leaves}
    for out in outputs:
        for node in engine.toposort(out):
            if node._op is None and id(node) not in ours:
                return True
    return False


def _call(
    f: Callable, args: tuple, kwargs: dict, nums: tuple[int, ...], who: str
) -> tuple[Any, list[Tensor], _Args]:
    """Call f with fresh leaves in place of every leaf of the differentiated arguments'
    trees (recording the graph). Returns f's result, the leaves and the arguments' layout."""
    spec = _Args(args, nums)
    with engine.enable_grad():
        leaves = [_leaf(v, w, who) for v, w in zip(spec.values, spec.where, strict=True)]
        call_args = spec.build(leaves)
        # Transforms inside f see these leaves as an enclosing transform's (see _export).
        saved = engine.traced.leaves
        engine.traced.leaves = {**saved, **{id(leaf): leaf for leaf in leaves}}
        try:
            return f(*call_args, **kwargs), leaves, spec
        finally:
            engine.traced.leaves = saved


def _gradients(
    outputs: list[Any], seeds: list[Any], leaves: list[Tensor], create: bool
) -> list[Any]:
    live = [
        (o, s)
        for o, s in zip(outputs, seeds, strict=True)
        if isinstance(o, Tensor) and o.requires_grad
    ]
    if not live or not leaves:  # f does not depend on its inputs: the derivative is zero
        return [engine.constant(np.zeros_like(leaf._data)) for leaf in leaves]
    outs, ins = [o for o, _ in live], [s for _, s in live]
    with engine.enable_grad():
        return gradients(outs, leaves, grad_outputs=ins, create_graph=create)


def _split_aux(result: Any, who: str) -> tuple[Any, Any]:
    if not isinstance(result, tuple) or len(result) != 2:
        raise TypeError(
            f"{who}: with has_aux=True, f must return a pair (output, aux), "
            f"got {type(result).__name__}"
        )
    return result


def _aux_out(aux: Any) -> Any:
    """aux as f returned it, except that its Tensors lose a graph only our transform made
    (predictions computed from the transform's variable), as results do (see _export)."""
    return trees.tree_map(lambda v: _export(v, "tensor") if isinstance(v, Tensor) else v, aux)


def _scalar(out: Any, who: str) -> Any:
    size = out.size if isinstance(out, Tensor) else np.size(out)
    if size != 1:
        raise ValueError(
            f"{who}: f must return a scalar (one element), got shape "
            f"{np.shape(out._data if isinstance(out, Tensor) else out)}; use "
            "jacobian, jacrev or vjp for functions with several outputs"
        )
    return out


def _shape_dtype(x: Any) -> tuple[tuple[int, ...], Any]:
    if isinstance(x, Tensor):
        return x.shape, x.dtype
    return np.shape(x), np.result_type(np.asarray(x), 0.0)


# --- reverse mode -------------------------------------------------------------------------------


def value_and_grad(
    f: Callable[..., Any], argnums: Argnums = 0, has_aux: bool = False
) -> Callable[..., tuple[Any, Any]]:
    """A function returning (f(*args), gradient of f at args); f must return a scalar.

    With a tuple `argnums` the gradient is a tuple, one per argument. An argument may be a
    tree (a dict, list, tuple or namedtuple of arrays or Tensors, nested as you like): its
    gradient is a tree of the same structure (see `autodiff.trees`). With `has_aux`, f
    returns (output, aux) and the result is ((output, aux), gradient), as in JAX.
    """
    return _value_and_grad(f, argnums, has_aux, "value_and_grad")


def _value_and_grad(
    f: Callable[..., Any], argnums: Argnums, has_aux: bool, who: str
) -> Callable[..., tuple[Any, Any]]:
    def value_and_grad_f(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
        if (level := _batching()) is not None:
            return level.value_and_grad(f, argnums, has_aux, args, kwargs, who)
        nums = _argnums(argnums, len(args), who)
        caller_grad = engine.is_grad_enabled()
        result, leaves, spec = _call(f, args, kwargs, nums, who)
        out, aux = _split_aux(result, who) if has_aux else (result, None)
        _outputs(out, who, single=True)
        _scalar(out, who)
        seed = np.ones(
            np.shape(out._data if isinstance(out, Tensor) else out),
            dtype=out.dtype if isinstance(out, Tensor) else np.float64,
        )
        create = _needs_graph([out] if isinstance(out, Tensor) else [], leaves, caller_grad)
        grads = _gradients([out], [seed], leaves, create)
        kind = _kind(spec.values)
        exported: Any = spec.regroup([_export(g, kind) for g in grads])
        value = _export(out, kind)
        if isinstance(argnums, int):
            exported = exported[0]
        return ((value, _aux_out(aux)) if has_aux else value), exported

    return _wrapping(value_and_grad_f, f)


def grad(f: Callable[..., Any], argnums: Argnums = 0, has_aux: bool = False) -> Callable[..., Any]:
    """The gradient of scalar-valued f as a function (of argument `argnums`, or a tuple of them).

    `grad(grad(f))` is the second derivative; `jvp(grad(f), ...)` a Hessian-vector product.
    An argument may be a tree (`grad(loss)(params_dict)` is a dict of the same keys). With
    `has_aux`, f returns (output, aux) and the result is (gradient, aux).
    """
    return _grad(f, argnums, has_aux, "grad")


def _grad(f: Callable[..., Any], argnums: Argnums, has_aux: bool, who: str) -> Callable[..., Any]:
    both = _value_and_grad(f, argnums, has_aux, who)

    def grad_f(*args: Any, **kwargs: Any) -> Any:
        value, g = both(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return _wrapping(grad_f, f)


def grad_and_aux(
    f: Callable[..., tuple[Any, Any]], argnums: Argnums = 0
) -> Callable[..., tuple[Any, Any]]:
    """grad for an f returning (scalar output, aux): the result is (gradient, aux)."""
    return _grad(f, argnums, True, "grad_and_aux")


def elementwise_grad(f: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """The gradient of f(x).sum(): for an elementwise f, the derivative at every element."""

    def total(*args: Any, **kwargs: Any) -> Any:
        out = f(*args, **kwargs)
        _outputs(out, "elementwise_grad", single=True)
        return out.sum() if isinstance(out, Tensor) else np.sum(out)

    return _grad(_wrapping(total, f), argnums, False, "elementwise_grad")


def vjp(f: Callable[..., Any], *primals: Any, has_aux: bool = False) -> tuple[Any, ...]:
    """f(*primals) and its pullback: a function from output cotangents to input gradients.

        out, pullback = vjp(f, x, y)
        gx, gy = pullback(u)       # u^T J_f with respect to x and to y

    Primals and f's output may be trees (dicts, lists, tuples of arrays or Tensors); the
    cotangent has the output's structure (several outputs in a tuple or list may also be
    passed one by one) and the pullback gives one tree per primal. It may be called many
    times (one backward pass each). With `has_aux`, returns (out, pullback, aux).
    """
    if not primals:
        raise ValueError("vjp: needs at least one primal")
    if (level := _batching()) is not None:
        return level.vjp(f, primals, has_aux)
    who = "vjp"
    nums = tuple(range(len(primals)))
    caller_grad = engine.is_grad_enabled()
    result, leaves, spec = _call(f, primals, {}, nums, who)
    out, aux = _split_aux(result, who) if has_aux else (result, None)
    outputs, outdef = _outputs(out, who)
    kind = _kind(spec.values)

    def pullback(*cotangents: Any) -> tuple[Any, ...]:
        cots = _cotangent_leaves(cotangents, outdef, who)
        seeds = []
        for i, (o, c) in enumerate(zip(outputs, cots, strict=True)):
            data = o._data if isinstance(o, Tensor) else np.asarray(o)
            c = np.asarray(c._data if isinstance(c, Tensor) else c, dtype=np.result_type(data))
            if c.shape != np.shape(data):
                raise ValueError(
                    f"{who}: cotangent {i} has shape {c.shape} but output {i} has "
                    f"shape {np.shape(data)}"
                )
            seeds.append(c)
        if any(isinstance(c, Tensor) for c in cots):
            # Tensor cotangents stay in the recorded backward pass: the result is a function
            # of u (differentiable in it, carrying its tangent), as PyTorch's pullback is.
            lifted = []
            for c, seed in zip(cots, seeds, strict=True):
                c = c if isinstance(c, Tensor) else engine.constant(seed)
                lifted.append(c if c.dtype == seed.dtype else c.astype(seed.dtype))
            grads = _gradients(outputs, lifted, leaves, True)
            return spec.regroup([_export(g, "tensor") for g in grads])
        create = _needs_graph([o for o in outputs if isinstance(o, Tensor)], leaves, caller_grad)
        grads = _gradients(outputs, seeds, leaves, create)
        return spec.regroup([_export(g, kind) for g in grads])

    exported = outdef.unflatten([_export(o, kind) for o in outputs])
    return (exported, pullback, _aux_out(aux)) if has_aux else (exported, pullback)


def _cotangent_leaves(cotangents: tuple, outdef: trees.TreeDef, who: str) -> list[Any]:
    """The pullback's cotangents as one leaf per output leaf: one tree of the output's
    structure, or (for a tuple or list of outputs) its items one by one."""
    if len(cotangents) == 1:
        given = cotangents[0]
    elif outdef.kind in (trees._TUPLE, trees._LIST, trees._NAMEDTUPLE):
        given = list(cotangents)
    else:
        raise ValueError(f"{who}: f has one output but the pullback got {len(cotangents)}")
    cots, ctdef = _flatten_arg(given)
    same = ctdef == outdef or (
        # A tuple of cotangents for a list of outputs (or the other way round) is the same.
        ctdef.kind in (trees._TUPLE, trees._LIST, trees._NAMEDTUPLE)
        and outdef.kind in (trees._TUPLE, trees._LIST, trees._NAMEDTUPLE)
        and ctdef.children == outdef.children
    )
    if not same:
        if ctdef.kind in (trees._TUPLE, trees._LIST) and outdef.kind in (
            trees._TUPLE,
            trees._LIST,
        ):
            raise ValueError(
                f"{who}: f has {len(outdef.children)} outputs but the pullback got "
                f"{len(ctdef.children)} cotangents"
            )
        raise ValueError(f"{who}: the cotangent has structure {ctdef} but f's output has {outdef}")
    return cots


# --- forward mode -------------------------------------------------------------------------------


def jvp(f: Callable[..., Any], primals: Any, tangents: Any) -> tuple[Any, Any]:
    """f's outputs and their tangents J_f(primals) @ tangents, in one forward pass.

        y, dy = jvp(f, (x,), (v,))     # y = f(x), dy = J_f(x) @ v

    `primals` and `tangents` are tuples (or a single value each) of Tensors, arrays, numbers
    or trees of them, with matching structures and shapes. Returns (outputs, tangents) with
    the structure of f's result, in the kind of the inputs (Tensors in, Tensors out; arrays
    or numbers in, numpy out, as grad and vjp). Works inside `grad` (forward over reverse)
    and under `grad` (reverse over forward).
    """
    return _jvp(f, primals, tangents, "jvp")


def _jvp(f: Callable[..., Any], primals: Any, tangents: Any, who: str) -> tuple[Any, Any]:
    ps, ts = forward._as_tuple(primals), forward._as_tuple(tangents)
    if (level := _batching()) is not None:
        return level.jvp(f, ps, ts, who)
    outs, outdef, tans, kind = _jvp_raw(f, ps, ts, who)
    return (
        outdef.unflatten([_export(o, kind) for o in outs]),
        outdef.unflatten([_export(t, kind) for t in tans]),
    )


def _jvp_raw(
    f: Callable[..., Any], primals: tuple, tangents: tuple, who: str
) -> tuple[list[Any], trees.TreeDef, list[Any], str]:
    """One forward pass: f's output leaves, its structure, the leaves' tangents (Tensors for
    Tensor outputs), and the kind the results should answer in."""
    if len(primals) != len(tangents):
        raise ValueError(f"{who}: {len(primals)} primals but {len(tangents)} tangents")
    flat_p: list[Any] = []
    flat_t: list[Any] = []
    defs = []
    for i, (p, t) in enumerate(zip(primals, tangents, strict=True)):
        pl, pd = _flatten_arg(p)
        tl, td = _flatten_arg(t)
        if pd != td:
            raise ValueError(
                f"{who}: tangent {i} has structure {td} but primal {i} has structure {pd}"
            )
        flat_p += pl
        flat_t += tl
        defs.append(pd)
    level, inputs, saved = forward.enter(flat_p, flat_t, who)
    try:
        it = iter(inputs)
        outputs = f(*[d.unflatten([next(it) for _ in range(d.num_leaves)]) for d in defs])
    finally:
        forward.leave(saved)
    outs, outdef = _outputs(outputs, who)
    tans = [forward.output_tangent(o, level) for o in outs]
    return outs, outdef, tans, _kind(flat_p + flat_t)


# --- Jacobians ----------------------------------------------------------------------------------


def _stack(parts: list[Any]) -> Tensor:
    """Stack along a new first axis (Tensors, so that the result can be differentiated again)."""
    lifted = [p if isinstance(p, Tensor) else engine.constant(np.asarray(p)) for p in parts]
    return concatenate([p.reshape((1,) + p.shape) for p in lifted], axis=0)


def _jacobian_tree(
    blocks: list[list[Any]], outdef: trees.TreeDef, spec: _Args, argnums: Argnums
) -> Any:
    """blocks[k][j] (output leaf k, input leaf j) as JAX lays them out: the output's tree,
    each leaf replaced by the input's tree (a tuple of them for a tuple `argnums`)."""
    per_out = []
    for row in blocks:
        grouped = spec.regroup(row)
        per_out.append(grouped[0] if isinstance(argnums, int) else grouped)
    return outdef.unflatten(per_out)


def jacrev(f: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """The Jacobian by reverse mode: one backward pass per output element (cheap for few
    outputs). Shape: output shape + input shape (a tuple of those for a tuple `argnums`).
    For trees of inputs or outputs, the output's tree of the input's trees (as JAX)."""
    return _jacrev(f, argnums, "jacrev")


def _jacrev(f: Callable[..., Any], argnums: Argnums, who: str) -> Callable[..., Any]:
    def jacrev_f(*args: Any) -> Any:
        if (level := _batching()) is not None:
            return level.jacrev(f, argnums, args)
        nums = _argnums(argnums, len(args), who)
        caller_grad = engine.is_grad_enabled()
        out, leaves, spec = _call(f, args, {}, nums, who)
        outs, outdef = _outputs(out, who)
        create = _needs_graph([o for o in outs if isinstance(o, Tensor)], leaves, caller_grad)
        kind = _kind(spec.values)
        blocks = []
        for o in outs:
            out_shape = np.shape(o._data if isinstance(o, Tensor) else o)
            dtype = o.dtype if isinstance(o, Tensor) else np.float64
            rows: list[list[Any]] = [[] for _ in leaves]
            for i in range(int(np.prod(out_shape))):
                seed = np.zeros(out_shape, dtype=dtype)
                seed.reshape(-1)[i] = 1
                for r, g in zip(rows, _gradients([o], [seed], leaves, create), strict=True):
                    r.append(g)
            blocks.append(
                [
                    _export(_assemble(r, out_shape, leaf.shape, dtype), kind)
                    for r, leaf in zip(rows, leaves, strict=True)
                ]
            )
        return _jacobian_tree(blocks, outdef, spec, argnums)

    return _wrapping(jacrev_f, f)


def _assemble(rows: list[Any], out_shape: tuple, in_shape: tuple, dtype: Any) -> Any:
    if not rows:  # an empty output
        return np.zeros(out_shape + in_shape, dtype=dtype)
    return _stack(rows).reshape(out_shape + in_shape)


def jacfwd(f: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """The Jacobian by forward mode: one `jvp` pass per input element (cheap for few inputs).
    Shape: output shape + input shape (a tuple of those for a tuple `argnums`); for trees,
    laid out as `jacrev`'s.

    Each pass starts from the state of the first (the default generator, and the Generators
    and buffers of the modules f runs: f itself, or those a function names, as in
    `lambda x: model(x)`), so a Dropout inside f draws one mask and a BatchNorm in training
    mode updates its running statistics once. A value that still differs between passes is
    refused (RuntimeError)."""
    return _jacfwd(f, argnums, "jacfwd")


def _jacfwd(f: Callable[..., Any], argnums: Argnums, who: str) -> Callable[..., Any]:
    def jacfwd_f(*args: Any) -> Any:
        if (level := _batching()) is not None:
            return level.jacfwd(f, argnums, args)
        nums = _argnums(argnums, len(args), who)
        spec = _Args(args, nums)
        # f sees a Tensor at every differentiated position, also at those held constant while
        # another one is perturbed (as jacrev and grad call it).
        lifted = []
        for v, w in zip(spec.values, spec.where, strict=True):
            t = _as_tensor(v, w, who)
            if t.dtype.kind != "f":
                raise TypeError(
                    f"{who}: argument {w} has dtype {t.dtype}; "
                    "differentiate with respect to floating-point values"
                )
            lifted.append(t)
        # Every pass starts from the state the first one did, so a Dropout inside f draws the
        # same mask for every column (else the columns would be of different functions) and a
        # BatchNorm module updates its running statistics once, not once per column;
        # afterwards all is as one call of f leaves it. (Reset only when the first pass
        # changed something: a generator's state costs 3 us to set.)
        start = _snapshot(f)
        after: list | None = None
        replay = False
        columns_of: list[list[list[Any]]] = []  # [input leaf][element][output leaf]
        outs: list[Any] = []
        outdef = None
        for j, x in enumerate(spec.values):

            def along(xj: Tensor, j: int = j) -> Any:
                nonlocal after, replay
                if replay:
                    _restore(start)
                call = list(lifted)
                call[j] = xj
                try:
                    return f(*spec.build(call))
                finally:
                    if after is None:
                        after = _snapshot(f)
                        replay = _differs(after, start)

            shape, dtype = _shape_dtype(x)
            columns = []
            first = None
            for e in range(int(np.prod(shape))):
                basis = np.zeros(shape, dtype=dtype)
                basis.reshape(-1)[e] = 1
                outs, outdef, column, _ = _jvp_raw(along, (lifted[j],), (basis,), who)
                columns.append(column)
                # Every pass computes f at the same point, so its value must come out the same
                # (up to rounding: _same_value). If not, f draws from random state we cannot
                # replay (a Dropout in a module reached through another object) and the
                # columns would be derivatives of different functions: refuse.
                values = [np.asarray(o._data if isinstance(o, Tensor) else o) for o in outs]
                if first is None:
                    first = [v.copy() for v in values]
                elif not all(_same_value(v, w) for v, w in zip(values, first, strict=True)):
                    raise RuntimeError(
                        f"{who}: f gave a different value on each forward pass at the same "
                        "point, so it is random or changes state (a Dropout in training mode "
                        "in a module reached through a helper or another object?); jacfwd "
                        "replays the random state of the default generator and of the modules "
                        "f itself is or names: pass the module, call .eval(), or seed it "
                        "inside f"
                    )
            columns_of.append(columns)
        if outdef is None:
            # Empty inputs only: no pass ran, so run f once for the output's shapes.
            outs, outdef = _outputs(f(*spec.build(lifted)), who)
        blocks: list[list[Any]] = []
        for k, o in enumerate(outs):
            out_shape = np.shape(o._data if isinstance(o, Tensor) else o)
            row = []
            for j, x in enumerate(spec.values):
                shape, dtype = _shape_dtype(x)
                cols = [c[k] for c in columns_of[j]]
                if not cols:
                    jac: Any = np.zeros(out_shape + shape, dtype=dtype)
                else:
                    # Columns are stacked first, then moved behind the output's axes.
                    stacked = _stack(cols)
                    n = len(out_shape)
                    jac = stacked.transpose(tuple(range(1, n + 1)) + (0,)).reshape(
                        out_shape + shape
                    )
                row.append(_export(jac, _kind([x])))
            blocks.append(row)
        if replay:
            assert after is not None  # replay is set with it
            _restore(after)
        return _jacobian_tree(blocks, outdef, spec, argnums)

    return _wrapping(jacfwd_f, f)


def jacobian(f: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """The Jacobian, by reverse mode when f has fewer outputs than inputs, else forward mode.

    Reverse mode costs one backward pass per output, forward mode one forward pass per input:
    the smaller count wins (f is evaluated once more to learn its output size).
    """
    who = "jacobian"

    def jacobian_f(*args: Any) -> Any:
        nums = _argnums(argnums, len(args), who)
        spec = _Args(args, nums)
        # f sees Tensors, as in the real pass.
        lifted = [_as_tensor(v, w, who) for v, w in zip(spec.values, spec.where, strict=True)]
        inputs = sum(t.size for t in lifted)
        # The probe leaves no trace: the Jacobian is of the call the user would have made (a
        # Dropout mask drawn from the state jacobian was called in, running statistics
        # updated once).
        before = _snapshot(f)
        try:
            with engine.no_grad():
                probe, _ = _outputs(f(*spec.build(lifted)), who)
        finally:
            _restore(before)
        outputs = sum(int(np.size(p._data if isinstance(p, Tensor) else p)) for p in probe)
        chosen = _jacrev if outputs <= inputs else _jacfwd
        return chosen(f, argnums, who)(*args)

    return _wrapping(jacobian_f, f)


def hessian(f: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """The Hessian of scalar f: forward over reverse, `jacfwd(jacrev(f))`, as JAX does (one
    forward-mode pass per input element, each carrying tangents through a backward pass).
    For a tree argument (a dict of parameters), a tree of trees: H[a][b] is the block of
    second derivatives with respect to leaves a and b, as JAX lays it out."""
    who = "hessian"
    if not isinstance(argnums, int):
        raise ValueError(
            f"{who}: argnums must be one int (one argument's Hessian), got "
            f"{argnums!r}; put several arguments in one tree (a tuple or dict)"
        )
    inner = _jacfwd(_jacrev(f, argnums, who), argnums, who)

    def hessian_f(*args: Any) -> Any:
        n = _argnums(argnums, len(args), who)[0]
        spec = _Args(args, (n,))
        for v, w in zip(spec.values, spec.where, strict=True):
            _as_tensor(v, w, who)
        return inner(*args)

    return _wrapping(hessian_f, inner)


def hvp(
    f: Callable[..., Any], primals: Any, tangents: Any, mode: str = "forward-over-reverse"
) -> Any:
    """The Hessian of scalar f at `primals` times `tangents`, without forming the Hessian.

    mode "forward-over-reverse" is `jvp(grad(f), primals, tangents)`: one pass carrying
    tangents through the gradient's computation. "reverse-over-forward" is the gradient of
    the directional derivative `jvp(f, primals, tangents)[1]`. Both cost a few times f.
    A tuple of primals gives a tuple of products; a tree (a dict of parameters) gives a
    tree of the same structure.
    """
    who = "hvp"
    several = isinstance(primals, tuple)
    ps = primals if several else (primals,)
    ts = tangents if isinstance(tangents, tuple) else (tangents,)
    if len(ts) != len(ps):
        raise ValueError(f"{who}: {len(ps)} primals but {len(ts)} tangents")
    nums = tuple(range(len(ps)))
    spec = _Args(ps, nums)
    kind = _kind(spec.values + _Args(ts, nums).values)
    # Checked here, so that a bad argument is named as hvp's, not as the inner jvp's.
    lifted = [_as_tensor(v, w, who) for v, w in zip(spec.values, spec.where, strict=True)]
    if kind == "tensor":  # a Tensor tangent: the products stay Tensors, connected to it
        ps = tuple(spec.build(lifted))
    if mode == "forward-over-reverse":
        _, outdef, tans, _ = _jvp_raw(lambda *xs: _grad(f, nums, False, who)(*xs), ps, ts, who)
        products = outdef.unflatten([_export(t, kind) for t in tans])
    elif mode == "reverse-over-forward":

        def directional(*xs: Any) -> Any:
            return _jvp(f, xs, ts, who)[1]

        products = trees.tree_map(
            lambda p: _export(p, kind), _grad(directional, nums, False, who)(*ps)
        )
    else:
        raise ValueError(
            f"{who}: mode must be 'forward-over-reverse' or 'reverse-over-forward', got {mode!r}"
        )
    return products if several else products[0]


# --- memory -------------------------------------------------------------------------------------


def checkpoint(f: Callable[..., Any]) -> Callable[..., Any]:
    """f, recorded as ONE node that keeps only its inputs: the backward pass runs f again.

    Training keeps every intermediate of the forward pass until backward; a checkpointed
    block keeps none of its own, and recomputes them when its gradient is needed (about one
    extra forward pass in total). Tensors that need gradients must be arguments of f (also
    inside tuples, lists and dicts, or keyword arguments), or parameters of f when f is an
    `nn.Module` (they are found by `f.parameters()`). Keyword arguments and the other
    leaves of argument trees that are not Tensors or arrays (scale=2.0, dim=1) are passed
    to f as they are, as PyTorch's checkpoint does. f returns a Tensor, or a tree of float
    Tensors (a tuple, list or dict), given back in that structure.
    Recomputing replays the random state f started from (the default generator, and the
    Generators of the modules f is or names, as `lambda x: model(x)`), so a Dropout mask is
    drawn again the same; a recomputation that still comes out different is refused.
    """
    params_of = getattr(f, "parameters", None)
    who = "checkpoint"

    def checkpointed(*args: Any, **kwargs: Any) -> Any:
        slots, rebuild = _checkpoint_inputs(args, kwargs, who)
        inputs = tuple(slots)
        params = tuple(params_of()) if callable(params_of) else ()
        parents = inputs + params
        n = len(inputs)
        wanted = [i for i, p in enumerate(parents) if p.requires_grad]
        memo: dict[str, Any] = {}

        def call(values: Sequence[Any]) -> Any:
            call_args, call_kwargs = rebuild(values)
            return f(*call_args, **call_kwargs)

        def run(*values: Any) -> Any:
            # The random state f starts from, so that recomputing it draws the same numbers
            # (a Dropout mask): else the gradient would be of another function.
            memo["rng"] = [(g, g.bit_generator.state) for g in _generators(f)]
            # f on constants, so none of its intermediates is recorded or kept.
            with engine.no_grad():
                # Read-only views of the caller's numbers: an in-place update inside f (under
                # no_grad here) then makes a new array instead of changing the caller's input.
                out = call(
                    [
                        engine.constant(tracked.read_only(v) if type(v) is np.ndarray else v)
                        for v in values[:n]
                    ]
                )
                flat, memo["layout"] = _pack(out, who)
            return flat._data

        def vjp_rule(index: int, g: Any, out: Any, *xs: Any) -> Any:
            # The engine asks once per input, in order, with the same g: recompute once.
            if memo.get("g") is not g:
                symbolic = isinstance(g, Tensor)  # create_graph: differentiable gradients
                with engine.enable_grad(), _kept(f), _replayed(memo["rng"]):
                    leaves = [_recompute_leaf(x, symbolic) for x in xs[:n]] + list(params)
                    recomputed = _pack(call(leaves[:n]), who)[0]
                _same_as_recorded(recomputed, out)
                if not symbolic:
                    _no_foreign_leaves(recomputed, leaves)
                # Only what requires grad: integer labels, frozen parameters get none (the
                # engine never asks for theirs).
                asked = [i for i, leaf in enumerate(leaves) if leaf.requires_grad]
                got = gradients(
                    recomputed, [leaves[i] for i in asked], grad_outputs=g, create_graph=symbolic
                )
                grads: list[Any] = [None] * len(leaves)
                for i, gr in zip(asked, got, strict=True):
                    grads[i] = gr if symbolic else gr._data
                memo.update(g=g, grads=grads)
            result = memo["grads"][index]
            if index == wanted[-1]:
                # The last input asked: hold no gradients beyond this node (the random state
                # stays, for a second backward through a kept graph).
                del memo["g"], memo["grads"]
            return result

        def jvp_rule(ts: list[Any], out: Any, *xs: Any) -> Any:
            # Forward mode runs f again, carrying tangents (no intermediates were kept).
            # Integer inputs (labels, indices) carry none: they are passed as they are.
            floats = [
                i
                for i in range(n)
                if np.result_type(xs[i]._data if isinstance(xs[i], Tensor) else xs[i]).kind == "f"
            ]
            level, ins, saved = forward.enter(
                tuple(xs[i] for i in floats), tuple(ts[i] for i in floats), who
            )
            try:
                values = [x if isinstance(x, Tensor) else Tensor(x) for x in xs[:n]]
                for i, x in zip(floats, ins, strict=True):
                    values[i] = x
                for p, t in zip(params, ts[n:], strict=True):
                    level.set(p, t)
                with _kept(f), _replayed(memo["rng"]):
                    again = _pack(call(values), who)[0]
                    _same_as_recorded(again, out)
                    tangent = forward.output_tangent(again, level)
            finally:
                forward.leave(saved)
            return tangent if isinstance(out, Tensor) else tangent._data

        op = rules.Op(who, run, vjp_rule, variadic=True, jvp=jvp_rule)
        result = engine.apply(op, parents)
        return _unpack(result, memo["layout"])

    return _wrapping(checkpointed, f)


def _checkpoint_inputs(
    args: tuple, kwargs: dict, who: str
) -> tuple[list[Tensor], Callable[[Sequence[Any]], tuple[tuple, dict]]]:
    """The Tensors checkpoint's node takes as inputs, and how to rebuild f's arguments from
    (new values for) them. A positional argument that is a Tensor, array, number or list of
    numbers is an input (as it always was); inside trees and keyword arguments, Tensors and
    arrays are inputs and everything else is passed through untouched."""
    leaves, treedef = trees.tree_flatten((args, kwargs), is_leaf=_arg_leaf)
    # The leaf index of each positional argument that is one leaf itself: always an input
    # (numbers become Tensors, as they always did).
    top: dict[int, int] = {}
    offset = 0
    for i, a in enumerate(args):
        if _arg_leaf(a):
            top[offset] = i
        offset += len(trees.tree_leaves(a, is_leaf=_arg_leaf))
    positions = []
    slots: list[Tensor] = []
    for k, leaf in enumerate(leaves):
        if k in top or isinstance(leaf, Tensor | np.ndarray):
            slots.append(_as_tensor(leaf, top.get(k, f"leaf {k}"), who))
            positions.append(k)
    for i, a in enumerate(args):  # a string or object as an argument: refused, as before
        if not _arg_leaf(a) and trees.tree_structure(a).is_leaf:
            _as_tensor(a, i, who)

    def rebuild(values: Sequence[Any]) -> tuple[tuple, dict]:
        filled = list(leaves)
        for k, v in zip(positions, values, strict=True):
            filled[k] = v
        new_args, new_kwargs = treedef.unflatten(filled)
        return new_args, new_kwargs

    return slots, rebuild


def _pack(out: Any, who: str) -> tuple[Tensor, Any]:
    """f's result as one Tensor for checkpoint's node: itself, or a tree's float Tensors
    raveled and joined (with the layout to take them apart again)."""
    if isinstance(out, Tensor):
        return out, None
    leaves, treedef = trees.tree_flatten(out)
    if not leaves or not all(isinstance(t, Tensor) and t.dtype.kind == "f" for t in leaves):
        raise TypeError(
            f"{who}: f must return a Tensor, or a tuple, list or dict of float Tensors, "
            f"got {forward._describe(out)}"
        )
    dtype = np.result_type(*[t.dtype for t in leaves])
    parts = [t.reshape(-1) if t.dtype == dtype else t.reshape(-1).astype(dtype) for t in leaves]
    layout = (treedef, [(t.shape, t.dtype) for t in leaves])
    return concatenate(parts, axis=0), layout


def _unpack(flat: Tensor, layout: Any) -> Any:
    if layout is None:
        return flat
    treedef, specs = layout
    parts = []
    start = 0
    for shape, dtype in specs:
        size = int(np.prod(shape))
        part = flat[start : start + size].reshape(shape)
        parts.append(part if part.dtype == dtype else part.astype(dtype))
        start += size
    return treedef.unflatten(parts)


def _wrapping(transformed: Callable, f: Callable) -> Callable:
    """Mark `transformed` as a transform of f (`__wrapped__`, as functools.wraps does), so that
    an enclosing transform finds f's modules through it: hessian(model) is
    jacfwd(jacrev(model)), and jacfwd must replay the model's Dropout Generators and
    BatchNorm buffers for each of its passes, not those of the function jacrev returns."""
    transformed.__wrapped__ = f  # type: ignore[attr-defined]
    return transformed


def _models_of(f: Any) -> list[Any]:
    """The modules f runs: f itself when it is one (or the function a transform of ours was
    made from), the module of a bound method (model.forward), and the modules a function
    names directly (lambda x: model(x).sum(), whether model is a closure variable or a
    global). Modules reached only through other objects or helper functions are not found."""
    f = inspect.unwrap(f)
    candidates = [f, getattr(f, "__self__", None)]
    if inspect.isfunction(f) or inspect.ismethod(f):  # not a module, builtin or partial
        names = inspect.getclosurevars(f)
        candidates += [*names.nonlocals.values(), *names.globals.values()]
    found: list[Any] = []
    for c in candidates:
        # Instances only: a module class that f names (issubclass(..., Linear)) has the same
        # methods, unbound.
        if (
            not isinstance(c, type)
            and callable(getattr(c, "modules", None))
            and callable(getattr(c, "named_buffers", None))
            and all(c is not m for m in found)
        ):
            found.append(c)
    return found


def _generators(f: Any) -> list[np.random.Generator]:
    """The random generators f may draw from: the default one (see manual_seed) and every
    Generator held by the modules f runs (Dropout's; see _models_of)."""
    found = [_default_generator]
    for model in _models_of(f):
        for module in model.modules():
            for value in vars(module).values():
                if isinstance(value, np.random.Generator) and all(value is not g for g in found):
                    found.append(value)
    return found


def _snapshot(f: Any) -> list[tuple[Any, Any]]:
    """What calling f may change that a repeated call must find as the first did: the random
    generators it draws from and the buffers of the modules it runs (BatchNorm's running
    statistics, updated by every call in training mode). (holder, state) pairs."""
    snap: list[tuple[Any, Any]] = [(g, g.bit_generator.state) for g in _generators(f)]
    seen: set[int] = set()
    for model in _models_of(f):
        for _, buffer in model.named_buffers():
            # Tensors of ours only (a torch module f names has its own), each once (a module
            # named twice, or shared by two).
            if isinstance(buffer, Tensor) and id(buffer) not in seen:
                seen.add(id(buffer))
                snap.append((buffer, np.array(buffer._data, copy=True)))
    return snap


def _restore(snap: list[tuple[Any, Any]]) -> None:
    for holder, state in snap:
        if isinstance(holder, np.random.Generator):
            holder.bit_generator.state = state
        else:
            data = holder._data
            if isinstance(data, np.ndarray) and data.shape == state.shape and data.flags.writeable:
                data[...] = state  # in place, as BatchNorm updates them
            else:
                holder._data = state[()] if state.ndim == 0 else state.copy()
            holder._bump_version()  # as any write into a buffer


def _differs(a: list[tuple[Any, Any]], b: list[tuple[Any, Any]]) -> bool:
    return any(
        not np.array_equal(x, y) if isinstance(x, np.ndarray) else x != y
        for (_, x), (_, y) in zip(a, b, strict=True)
    )


@contextlib.contextmanager
def _kept(f: Any) -> Iterator[None]:
    """Run a recomputation of f and put back what it changed in f's modules (BatchNorm's
    running statistics in training mode): the forward pass updated them once already, and
    the model must end as one call of f leaves it, however many times it is recomputed.
    Put back only when changed: writing a buffer bumps its version, which a graph that
    saved it (evaluation mode) would take for an in-place change."""
    before = _snapshot(f)
    try:
        yield
    finally:
        after = _snapshot(f)
        if _differs(after, before):
            _restore(before)


@contextlib.contextmanager
def _replayed(states: list[tuple[np.random.Generator, dict]]) -> Iterator[None]:
    """Run with the generators back at `states`; afterwards they continue where they were, so
    recomputing leaves the user's random stream untouched."""
    now = [(g, g.bit_generator.state) for g, _ in states]
    state: Mapping[str, Any]
    for g, state in states:
        g.bit_generator.state = state
    try:
        yield
    finally:
        for g, state in now:
            g.bit_generator.state = state


def _same_value(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two evaluations of f at one point agree: exactly for integers and booleans,
    and for floats up to the square root of the precision, relative to the largest value.
    Not bit for bit: a BLAS may sum in another order on another call (MKL does, with the
    arrays' alignment), while another Dropout mask or random draw changes values by O(1)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind != "f" or a.size == 0:
        return bool(np.array_equal(a, b))
    tol = float(np.sqrt(np.finfo(a.dtype).eps))
    scale = float(np.max(np.abs(b), initial=0.0, where=np.isfinite(b)))
    return bool(np.allclose(a, b, rtol=tol, atol=tol * scale, equal_nan=True))


def _same_as_recorded(again: Any, out: Any) -> None:
    """A recomputation must reproduce the recorded output (up to rounding); if not, f
    draws from random state we did not replay (a Dropout module called from a lambda, whose
    Generator cannot be found) and the gradient would silently be of another function."""
    new = np.asarray(again._data if isinstance(again, Tensor) else again)
    old = np.asarray(out._data if isinstance(out, Tensor) else out)
    if not _same_value(new, old):
        raise RuntimeError(
            "checkpoint: recomputing f gave another value than its forward pass, so f is "
            "random or changes state in a way that is not replayed (a Dropout in training mode "
            "in a module reached through a helper or another object?); checkpoint the module "
            "itself (its Generators are replayed), call .eval(), or seed it inside f"
        )


def _recompute_leaf(x: Any, symbolic: bool) -> Tensor:
    if not symbolic:
        x = engine.constant(x)
    if x.dtype.kind != "f":
        return x  # labels, indices: constants
    return _leaf(x, 0, "checkpoint")


def _no_foreign_leaves(out: Tensor, leaves: Sequence[Tensor]) -> None:
    ours = {id(leaf) for leaf in leaves}
    for node in engine.toposort(out):
        if node._op is None and id(node) not in ours:
            raise RuntimeError(
                f"checkpoint: f uses a tensor of shape {node._data.shape} that requires grad "
                "but is not an argument of f, so its gradient would be lost; pass it as an "
                "argument (or checkpoint an nn.Module, whose parameters are found for you)"
            )


# --- the functional gradient ------------------------------------------------------------------
# autodiff.grad(outputs, inputs): what the transforms above compute their gradients with.


def gradients(
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
    assert found is not None  # a list when inputs= is given
    results = []
    handed: set[int] = set()  # gradients handed out never share memory with each other
    for t, g in zip(ins, found, strict=True):
        if g is None:
            results.append(Tensor(np.zeros_like(t._data)))
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
