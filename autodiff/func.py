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

Nothing here has its own traversal: reverse mode is `engine.backward` (via `tensor.grad`),
forward mode is `forward.jvp`, and every other transform is a few lines on top of those.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from . import engine, forward, rules, tracked
from .forward import jvp
from .tensor import Tensor, concatenate
from .tensor import grad as _backward_grad

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


def _vmapped() -> Any:
    """The vmap level a transform called inside vmap works at (None outside vmap): there it
    is the same transform of the batched computation (autodiff/vmap.py)."""
    if not engine.interpreting:
        return None
    vmap = importlib.import_module(".vmap", __package__)
    level = vmap.lowering_level()
    return None if level is None else (vmap, level)


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
        return value if isinstance(value, Tensor) else engine.constant(np.array(value))
    if isinstance(value, Tensor) and _seen_by_enclosing(value):
        return value
    arr = np.array(value._data if isinstance(value, Tensor) else value)
    return arr[()] if arr.ndim == 0 else arr


# The variables of the reverse-mode transforms now running f, per thread: id -> leaf. (Forward
# mode needs no such list: its levels, in engine.state, hold the tangents themselves.)
_running = threading.local()


def _seen_by_enclosing(value: Tensor) -> bool:
    if any(level.get(value) is not None for level in engine.state.forward):
        return True
    outer = getattr(_running, "leaves", None)
    if not outer or not value.requires_grad:
        return False
    return any(id(node) in outer for node in engine.toposort(value))


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


def _as_tensor(arg: Any, i: int, who: str) -> Tensor:
    """Argument i as a Tensor, or a TypeError naming the transform and the argument (not
    Tensor's own message, which says nothing of which call of which transform failed)."""
    if isinstance(arg, Tensor):
        return arg
    try:
        return Tensor(arg)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{who}: argument {i} is not a number, array or Tensor: {exc}") from None


def _leaf(arg: Any, i: int, who: str) -> Tensor:
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
        leaf = Tensor(arg._data, requires_grad=True)
        forward.copy_tangents(arg, leaf)
        return leaf
    t = _as_tensor(arg, i, who)
    if t.dtype.kind != "f":
        raise TypeError(
            f"{who}: argument {i} has dtype {t.dtype}; differentiate with respect "
            "to floating-point values (pass 2.0, not 2)"
        )
    return t.requires_grad_(True)


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
) -> tuple[Any, list[Tensor]]:
    """Call f with fresh leaves at the differentiated positions (recording the graph)."""
    call_args = list(args)
    with engine.enable_grad():
        leaves = [_leaf(args[n], n, who) for n in nums]
        for n, leaf in zip(nums, leaves, strict=True):
            call_args[n] = leaf
        # Transforms inside f see these leaves as an enclosing transform's (see _export).
        saved = getattr(_running, "leaves", {})
        _running.leaves = {**saved, **{id(leaf): leaf for leaf in leaves}}
        try:
            return f(*call_args, **kwargs), leaves
        finally:
            _running.leaves = saved


def _gradients(
    outputs: list[Any], seeds: list[Any], leaves: list[Tensor], create: bool
) -> list[Any]:
    live = [
        (o, s)
        for o, s in zip(outputs, seeds, strict=True)
        if isinstance(o, Tensor) and o.requires_grad
    ]
    if not live:  # f does not depend on its inputs: the derivative is zero
        return [engine.constant(np.zeros_like(leaf._data)) for leaf in leaves]
    outs, ins = [o for o, _ in live], [s for _, s in live]
    with engine.enable_grad():
        return _backward_grad(outs, leaves, grad_outputs=ins, create_graph=create)


def _split_aux(result: Any, who: str) -> tuple[Any, Any]:
    if not isinstance(result, tuple) or len(result) != 2:
        raise TypeError(
            f"{who}: with has_aux=True, f must return a pair (output, aux), "
            f"got {type(result).__name__}"
        )
    return result


def _scalar(out: Any, who: str) -> Any:
    size = out.size if isinstance(out, Tensor) else np.size(out)
    if size != 1:
        raise ValueError(
            f"{who}: f must return a scalar (one element), got shape "
            f"{np.shape(out._data if isinstance(out, Tensor) else out)}; use "
            "jacobian, jacrev or vjp for functions with several outputs"
        )
    return out


# --- reverse mode -------------------------------------------------------------------------------


def value_and_grad(
    f: Callable[..., Any], argnums: Argnums = 0, has_aux: bool = False
) -> Callable[..., tuple[Any, Any]]:
    """A function returning (f(*args), gradient of f at args); f must return a scalar.

    With a tuple `argnums` the gradient is a tuple, one per argument. With `has_aux`, f returns
    (output, aux) and the result is ((output, aux), gradient), as in JAX.
    """

    def value_and_grad_f(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
        if batched := _vmapped():
            return batched[0].value_and_grad(batched[1], f, argnums, has_aux, args, kwargs)
        nums = _argnums(argnums, len(args), "grad")
        caller_grad = engine.is_grad_enabled()
        result, leaves = _call(f, args, kwargs, nums, "grad")
        out, aux = _split_aux(result, "grad") if has_aux else (result, None)
        forward.check_outputs(out, "grad", several=False)
        _scalar(out, "grad")
        seed = np.ones(
            np.shape(out._data if isinstance(out, Tensor) else out),
            dtype=out.dtype if isinstance(out, Tensor) else np.float64,
        )
        create = _needs_graph([out] if isinstance(out, Tensor) else [], leaves, caller_grad)
        grads = _gradients([out], [seed], leaves, create)
        kind = _kind([args[n] for n in nums])
        exported = tuple(_export(g, kind) for g in grads)
        value = _export(out, kind)
        if isinstance(argnums, int):
            exported = exported[0]
        return ((value, aux) if has_aux else value), exported

    return _wrapping(value_and_grad_f, f)


def grad(f: Callable[..., Any], argnums: Argnums = 0, has_aux: bool = False) -> Callable[..., Any]:
    """The gradient of scalar-valued f as a function (of argument `argnums`, or a tuple of them).

    `grad(grad(f))` is the second derivative; `jvp(grad(f), ...)` a Hessian-vector product.
    With `has_aux`, f returns (output, aux) and the result is (gradient, aux).
    """
    both = value_and_grad(f, argnums, has_aux)

    def grad_f(*args: Any, **kwargs: Any) -> Any:
        value, g = both(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return _wrapping(grad_f, f)


def grad_and_aux(
    f: Callable[..., tuple[Any, Any]], argnums: Argnums = 0
) -> Callable[..., tuple[Any, Any]]:
    """grad for an f returning (scalar output, aux): the result is (gradient, aux)."""
    return grad(f, argnums, has_aux=True)


def elementwise_grad(f: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """The gradient of f(x).sum(): for an elementwise f, the derivative at every element."""

    def total(*args: Any, **kwargs: Any) -> Any:
        out = f(*args, **kwargs)
        return out.sum() if isinstance(out, Tensor) else np.sum(out)

    return grad(_wrapping(total, f), argnums)


def _as_outputs(result: Any) -> tuple[list[Any], bool]:
    if isinstance(result, tuple | list):
        return list(result), True
    return [result], False


def vjp(f: Callable[..., Any], *primals: Any, has_aux: bool = False) -> tuple[Any, ...]:
    """f(*primals) and its pullback: a function from output cotangents to input gradients.

        out, pullback = vjp(f, x, y)
        gx, gy = pullback(u)       # u^T J_f with respect to x and to y

    The pullback may be called many times (one backward pass each). With `has_aux`, returns
    (out, pullback, aux).
    """
    if not primals:
        raise ValueError("vjp: needs at least one primal")
    if batched := _vmapped():
        return batched[0].vjp(batched[1], f, primals, has_aux)
    nums = tuple(range(len(primals)))
    caller_grad = engine.is_grad_enabled()
    result, leaves = _call(f, primals, {}, nums, "vjp")
    out, aux = _split_aux(result, "vjp") if has_aux else (result, None)
    forward.check_outputs(out, "vjp")
    outputs, several = _as_outputs(out)
    kind = _kind(primals)

    def pullback(*cotangents: Any) -> tuple[Any, ...]:
        cots = (
            list(cotangents[0])
            if several and len(cotangents) == 1 and isinstance(cotangents[0], tuple | list)
            else list(cotangents)
        )
        if len(cots) != len(outputs):
            raise ValueError(
                f"vjp: f has {len(outputs)} outputs but the pullback got {len(cots)} cotangents"
            )
        seeds = []
        for i, (o, c) in enumerate(zip(outputs, cots, strict=True)):
            data = o._data if isinstance(o, Tensor) else np.asarray(o)
            c = np.asarray(c._data if isinstance(c, Tensor) else c, dtype=np.result_type(data))
            if c.shape != np.shape(data):
                raise ValueError(
                    f"vjp: cotangent {i} has shape {c.shape} but output {i} has "
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
            return tuple(_export(g, "tensor") for g in _gradients(outputs, lifted, leaves, True))
        create = _needs_graph([o for o in outputs if isinstance(o, Tensor)], leaves, caller_grad)
        return tuple(_export(g, kind) for g in _gradients(outputs, seeds, leaves, create))

    exported = (
        forward.same_kind(out, (_export(o, kind) for o in outputs))
        if several
        else _export(out, kind)
    )
    return (exported, pullback, aux) if has_aux else (exported, pullback)


# --- Jacobians ----------------------------------------------------------------------------------


def _stack(parts: list[Any]) -> Tensor:
    """Stack along a new first axis (Tensors, so that the result can be differentiated again)."""
    lifted = [p if isinstance(p, Tensor) else engine.constant(np.asarray(p)) for p in parts]
    return concatenate([p.reshape((1,) + p.shape) for p in lifted], axis=0)


def jacrev(f: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """The Jacobian by reverse mode: one backward pass per output element (cheap for few
    outputs). Shape: output shape + input shape (a tuple of those for a tuple `argnums`)."""

    def jacrev_f(*args: Any) -> Any:
        if batched := _vmapped():
            return batched[0].jacrev(batched[1], f, argnums, args)
        nums = _argnums(argnums, len(args), "jacrev")
        caller_grad = engine.is_grad_enabled()
        out, leaves = _call(f, args, {}, nums, "jacrev")
        _one_output(out, "jacrev")
        out_shape = np.shape(out._data if isinstance(out, Tensor) else out)
        dtype = out.dtype if isinstance(out, Tensor) else np.float64
        create = _needs_graph([out] if isinstance(out, Tensor) else [], leaves, caller_grad)
        rows: list[list[Any]] = [[] for _ in leaves]
        size = int(np.prod(out_shape))
        for i in range(size):
            seed = np.zeros(out_shape, dtype=dtype)
            seed.reshape(-1)[i] = 1
            for r, g in zip(rows, _gradients([out], [seed], leaves, create), strict=True):
                r.append(g)
        kind = _kind([args[n] for n in nums])
        jacs = tuple(
            _export(_assemble(r, out_shape, leaf.shape, dtype), kind)
            for r, leaf in zip(rows, leaves, strict=True)
        )
        return jacs[0] if isinstance(argnums, int) else jacs

    return _wrapping(jacrev_f, f)


def _one_output(out: Any, who: str) -> Any:
    """f's result, checked to be one Tensor (or a constant number or array)."""
    if isinstance(out, tuple | list):
        raise TypeError(f"{who}: f must return one Tensor (stack several outputs first)")
    forward.check_outputs(out, who, several=False)
    return out


def _assemble(rows: list[Any], out_shape: tuple, in_shape: tuple, dtype: Any) -> Any:
    if not rows:  # an empty output
        return np.zeros(out_shape + in_shape, dtype=dtype)
    return _stack(rows).reshape(out_shape + in_shape)


def jacfwd(f: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """The Jacobian by forward mode: one `jvp` pass per input element (cheap for few inputs).
    Shape: output shape + input shape (a tuple of those for a tuple `argnums`).

    Each pass starts from the state of the first (the default generator, and the Generators
    and buffers of the modules f runs: f itself, or those a function names, as in
    `lambda x: model(x)`), so a Dropout inside f draws one mask and a BatchNorm in training
    mode updates its running statistics once. A value that still differs between passes is
    refused (RuntimeError)."""

    def jacfwd_f(*args: Any) -> Any:
        if batched := _vmapped():
            return batched[0].jacfwd(batched[1], f, argnums, args)
        nums = _argnums(argnums, len(args), "jacfwd")
        # f sees a Tensor at every differentiated position, also at those held constant while
        # another one is perturbed (as jacrev and grad call it).
        lifted = list(args)
        for n in nums:
            lifted[n] = _as_tensor(args[n], n, "jacfwd")
            if lifted[n].dtype.kind != "f":
                raise TypeError(
                    f"jacfwd: argument {n} has dtype {lifted[n].dtype}; "
                    "differentiate with respect to floating-point values"
                )
        # Every pass starts from the state the first one did, so a Dropout inside f draws the
        # same mask for every column (else the columns would be of different functions) and a
        # BatchNorm module updates its running statistics once, not once per column;
        # afterwards all is as one call of f leaves it. (Reset only when the first pass
        # changed something: a generator's state costs 3 us to set.)
        start = _snapshot(f)
        after: list | None = None
        replay = False
        jacs = []
        for n in nums:

            def along(x: Tensor, n: int = n) -> Any:
                nonlocal after, replay
                if replay:
                    _restore(start)
                call = list(lifted)
                call[n] = x
                try:
                    return _one_output(f(*call), "jacfwd")
                finally:
                    if after is None:
                        after = _snapshot(f)
                        replay = _differs(after, start)

            x = args[n]
            shape = np.shape(x._data if isinstance(x, Tensor) else x)
            dtype = x.dtype if isinstance(x, Tensor) else np.result_type(np.asarray(x), 0.0)
            columns = []
            out = None
            first = None
            for j in range(int(np.prod(shape))):
                basis = np.zeros(shape, dtype=dtype)
                basis.reshape(-1)[j] = 1
                out, column = jvp(along, (x,), (basis,))
                columns.append(column)
                # Every pass computes f at the same point, so its value must come out the same
                # (up to rounding: _same_value). If not, f draws from random state we cannot
                # replay (a Dropout in a module reached through another object) and the
                # columns would be derivatives of different functions: refuse.
                value = np.asarray(out._data if isinstance(out, Tensor) else out)
                if first is None:
                    first = value.copy()
                elif not _same_value(value, first):
                    raise RuntimeError(
                        "jacfwd: f gave a different value on each forward pass at the same "
                        "point, so it is random or changes state (a Dropout in training mode "
                        "in a module reached through a helper or another object?); jacfwd "
                        "replays the random state of the default generator and of the modules "
                        "f itself is or names: pass the module, call .eval(), or seed it "
                        "inside f"
                    )
            if not columns:  # an empty input: no pass ran, so run f once for the shape
                out = along(x if isinstance(x, Tensor) else Tensor(x))
            out_shape = np.shape(out._data if isinstance(out, Tensor) else out)
            if not columns:
                jac: Any = np.zeros(out_shape + shape, dtype=dtype)
            else:
                # Columns are stacked first, then moved behind the output's axes.
                stacked = _stack(columns)
                k = len(out_shape)
                jac = stacked.transpose(tuple(range(1, k + 1)) + (0,)).reshape(out_shape + shape)
            jacs.append(_export(jac, _kind([x])))
        if replay:
            _restore(after)
        return jacs[0] if isinstance(argnums, int) else tuple(jacs)

    return _wrapping(jacfwd_f, f)


def jacobian(f: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """The Jacobian, by reverse mode when f has fewer outputs than inputs, else forward mode.

    Reverse mode costs one backward pass per output, forward mode one forward pass per input:
    the smaller count wins (f is evaluated once more to learn its output size).
    """

    def jacobian_f(*args: Any) -> Any:
        nums = _argnums(argnums, len(args), "jacobian")
        probe_args = list(args)
        for n in nums:  # f sees Tensors, as in the real pass
            probe_args[n] = _as_tensor(args[n], n, "jacobian")
        inputs = sum(probe_args[n].size for n in nums)
        # The probe leaves no trace: the Jacobian is of the call the user would have made (a
        # Dropout mask drawn from the state jacobian was called in, running statistics
        # updated once).
        before = _snapshot(f)
        try:
            with engine.no_grad():
                probe = _one_output(f(*probe_args), "jacobian")
        finally:
            _restore(before)
        outputs = int(np.size(probe._data if isinstance(probe, Tensor) else probe))
        chosen = jacrev if outputs <= inputs else jacfwd
        return chosen(f, argnums)(*args)

    return _wrapping(jacobian_f, f)


def hessian(f: Callable[..., Any], argnums: Argnums = 0) -> Callable[..., Any]:
    """The Hessian of scalar f: forward over reverse, `jacfwd(jacrev(f))`, as JAX does (one
    forward-mode pass per input element, each carrying tangents through a backward pass)."""
    if not isinstance(argnums, int):
        raise ValueError(
            f"hessian: argnums must be one int (one argument's Hessian), got "
            f"{argnums!r}; concatenate several arguments into one vector"
        )
    inner = jacfwd(jacrev(f, argnums), argnums)

    def hessian_f(*args: Any) -> Any:
        # Checked here, so that a bad argument is named as hessian's, not as jacfwd's.
        n = _argnums(argnums, len(args), "hessian")[0]
        _as_tensor(args[n], n, "hessian")
        return inner(*args)

    return _wrapping(hessian_f, inner)


def hvp(
    f: Callable[..., Any], primals: Any, tangents: Any, mode: str = "forward-over-reverse"
) -> Any:
    """The Hessian of scalar f at `primals` times `tangents`, without forming the Hessian.

    mode "forward-over-reverse" is `jvp(grad(f), primals, tangents)`: one pass carrying
    tangents through the gradient's computation. "reverse-over-forward" is the gradient of
    the directional derivative `jvp(f, primals, tangents)[1]`. Both cost a few times f.
    A tuple of primals gives a tuple of products.
    """
    several = isinstance(primals, tuple)
    ps = primals if several else (primals,)
    ts = tangents if isinstance(tangents, tuple) else (tangents,)
    if len(ts) != len(ps):
        raise ValueError(f"hvp: {len(ps)} primals but {len(ts)} tangents")
    nums = tuple(range(len(ps)))
    kind = _kind(ps + ts)
    # Checked here, so that a bad argument is named as hvp's, not as the inner jvp's.
    lifted = tuple(_as_tensor(p, i, "hvp") for i, p in enumerate(ps))
    if kind == "tensor":  # a Tensor tangent: the products stay Tensors, connected to it
        ps = lifted
    if mode == "forward-over-reverse":
        _, products = jvp(lambda *xs: _ensure_tuple(grad(f, nums)(*xs)), ps, ts)
    elif mode == "reverse-over-forward":

        def directional(*xs: Any) -> Any:
            return jvp(f, xs, ts)[1]

        products = grad(directional, nums)(*ps)
    else:
        raise ValueError(
            f"hvp: mode must be 'forward-over-reverse' or 'reverse-over-forward', got {mode!r}"
        )
    products = tuple(_export(p, kind) for p in products)
    return products if several else products[0]


def _ensure_tuple(x: Any) -> tuple:
    return x if isinstance(x, tuple) else (x,)


# --- memory -------------------------------------------------------------------------------------


def checkpoint(f: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """f, recorded as ONE node that keeps only its inputs: the backward pass runs f again.

    Training keeps every intermediate of the forward pass until backward; a checkpointed
    block keeps none of its own, and recomputes them when its gradient is needed (about one
    extra forward pass in total). Tensors that need gradients must be arguments of f, or
    parameters of f when f is an `nn.Module` (they are found by `f.parameters()`).
    Recomputing replays the random state f started from (the default generator, and the
    Generators of the modules f is or names, as `lambda x: model(x)`), so a Dropout mask is
    drawn again the same; a recomputation that still comes out different is refused.
    """
    params_of = getattr(f, "parameters", None)

    def checkpointed(*args: Any) -> Tensor:
        inputs = tuple(_as_tensor(a, i, "checkpoint") for i, a in enumerate(args))
        params = tuple(params_of()) if callable(params_of) else ()
        parents = inputs + params
        n = len(inputs)
        wanted = [i for i, p in enumerate(parents) if p.requires_grad]
        memo: dict[str, Any] = {}

        def run(*values: Any) -> Any:
            # The random state f starts from, so that recomputing it draws the same numbers
            # (a Dropout mask): else the gradient would be of another function.
            memo["rng"] = [(g, g.bit_generator.state) for g in _generators(f)]
            # f on constants, so none of its intermediates is recorded or kept.
            with engine.no_grad():
                # Read-only views of the caller's numbers: an in-place update inside f (under
                # no_grad here) then makes a new array instead of changing the caller's input.
                out = f(
                    *[
                        engine.constant(tracked.read_only(v) if type(v) is np.ndarray else v)
                        for v in values[:n]
                    ]
                )
            if not isinstance(out, Tensor):
                raise TypeError(f"f must return one Tensor, got {type(out).__name__}")
            return out._data

        def vjp_rule(index: int, g: Any, out: Any, *xs: Any) -> Any:
            # The engine asks once per input, in order, with the same g: recompute once.
            if memo.get("g") is not g:
                symbolic = isinstance(g, Tensor)  # create_graph: differentiable gradients
                with engine.enable_grad(), _kept(f), _replayed(memo["rng"]):
                    leaves = [_recompute_leaf(x, symbolic) for x in xs[:n]] + list(params)
                    recomputed = f(*leaves[:n])
                _same_as_recorded(recomputed, out)
                if not symbolic:
                    _no_foreign_leaves(recomputed, leaves)
                # Only what requires grad: integer labels, frozen parameters get none (the
                # engine never asks for theirs).
                asked = [i for i, leaf in enumerate(leaves) if leaf.requires_grad]
                got = _backward_grad(
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
                tuple(xs[i] for i in floats), tuple(ts[i] for i in floats), "checkpoint"
            )
            try:
                args = [x if isinstance(x, Tensor) else Tensor(x) for x in xs[:n]]
                for i, x in zip(floats, ins, strict=True):
                    args[i] = x
                for p, t in zip(params, ts[n:], strict=True):
                    level.set(p, t)
                with _kept(f), _replayed(memo["rng"]):
                    again = f(*args)
                    _same_as_recorded(again, out)
                    tangent = forward.output_tangent(again, level)
            finally:
                forward.leave(saved)
            return tangent if isinstance(out, Tensor) else tangent._data

        op = rules.Op("checkpoint", run, vjp_rule, variadic=True, jvp=jvp_rule)
        return engine.apply(op, parents)

    return checkpointed


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
    from .tensor import _default_generator

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
                f"checkpoint: f uses a tensor of shape {node.shape} that requires grad but is "
                "not an argument of f, so its gradient would be lost; pass it as an argument "
                "(or checkpoint an nn.Module, whose parameters are found for you)"
            )
