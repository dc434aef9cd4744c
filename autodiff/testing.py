"""A testing kit for gradients: numerical checks and hypothesis strategies, for your own ops too.

    from autodiff.testing import gradcheck
    gradcheck(lambda x, y: (x * y).tanh().sum(), x_array, y_array)

`gradcheck` compares the engine's gradients with central differences in float64 and, on a
mismatch, says which input and which element differ and by how much. `modes=("rev", "fwd")`
checks forward mode too, `order=2` the second derivatives as well. `check_jvp` and `check_vjp`
check one random projection each (one scalar, so they scale to big tensors).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .composites import concatenate
from .func import gradients as grad
from .tensor import Tensor

__all__ = [
    "check_jvp",
    "check_vjp",
    "gradcheck",
    "gradcheck_module",
    "gradgradcheck",
    "numerical_grad",
    "tensors",
    "arrays",
    "broadcastable_shapes",
    "shapes",
]


def _float64_inputs(inputs: Sequence[Any]) -> list[Tensor]:
    return [
        Tensor(
            np.array(x._data if isinstance(x, Tensor) else x, dtype=np.float64), requires_grad=True
        )
        for x in inputs
    ]


def _scalar_output(
    fn: Callable[..., Tensor], tensors: Sequence[Tensor], weights: np.ndarray | None
) -> tuple[Tensor, np.ndarray]:
    """Reduce fn's output to a scalar with fixed random weights, so every element counts."""
    out = fn(*tensors)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    if weights is None:
        # Random even for a scalar output: a rule that ignores its upstream gradient is then
        # wrong by that factor (with weight 1 it would pass whenever the seed is 1).
        weights = np.random.default_rng(0).uniform(0.5, 1.5, size=out.shape)
    return (out * weights).sum(), weights


def numerical_grad(
    fn: Callable[[list[np.ndarray]], float], arrays: list[np.ndarray], eps: float = 1e-6
) -> list[np.ndarray]:
    """Central differences of a scalar function of several float64 arrays.

    Each array is perturbed in place, element by element, and `fn(arrays)` evaluated, so the
    arrays must be writeable float64 numpy arrays (views too: a transposed weight is fine).
    Anything else is refused: float32 cannot hold x + 1e-6 apart from x, an integer array
    cannot hold it at all, and either gave a silently wrong gradient.
    """
    for i, array in enumerate(arrays):
        if not isinstance(array, np.ndarray):
            raise TypeError(
                f"numerical_grad: array {i} must be a numpy array (it is perturbed "
                f"in place), got {type(array).__name__}; pass t.data.copy() for a "
                f"Tensor t"
            )
        if array.dtype != np.float64:
            raise TypeError(
                f"numerical_grad: array {i} is {array.dtype}, but central "
                f"differences with eps={eps:g} need float64; pass "
                f"a.astype(np.float64)"
            )
        if not array.flags.writeable:
            raise ValueError(
                f"numerical_grad: array {i} is read-only, and it is perturbed in place; pass a copy"
            )
    grads = []
    for array in arrays:
        g = np.zeros_like(array)
        # Index the array itself: reshape(-1) of a non-contiguous view is a copy, whose
        # perturbations fn never saw (every derivative came out 0).
        for index in np.ndindex(array.shape):
            original = array[index]
            array[index] = original + eps
            up = fn(arrays)
            array[index] = original - eps
            down = fn(arrays)
            array[index] = original
            g[index] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


def gradcheck(
    fn: Callable[..., Tensor],
    *inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    modes: Sequence[str] = ("rev",),
    order: int = 1,
    allow_unused: bool = False,
) -> bool:
    """Check fn's derivatives against central differences, in float64.

    `fn` takes Tensors and returns a Tensor of any shape; `inputs` are arrays or Tensors (copied
    to float64). `modes` picks reverse mode ("rev", the backward pass) and/or forward mode
    ("fwd", one `jvp` per input element); `order=2` also checks the derivatives of the first
    gradient (in every mode: "fwd" then means forward over reverse). Returns True, or raises
    AssertionError naming the mode and the input, with the worst entry of the Jacobians: the
    output and input elements, the analytical and the numerical derivative, the difference.

    An input fn does not use at all fails the check (`allow_unused=True` accepts it): its
    derivatives are zero on both sides, so it would pass without testing anything, which is
    what happens when fn reads a model's weights through a closure instead of its arguments
    (check those with `gradcheck_module`, or pass them as inputs).
    """
    unknown = set(modes) - {"rev", "fwd"}
    if unknown or not modes:
        raise ValueError(
            f"gradcheck: modes must be a non-empty subset of ('rev', 'fwd'), got {tuple(modes)}"
        )
    if order not in (1, 2):
        raise ValueError(f"gradcheck: order must be 1 or 2, got {order}")
    if order == 2:
        gradcheck(
            fn, *inputs, eps=eps, atol=atol, rtol=rtol, modes=modes, allow_unused=allow_unused
        )
        # The first gradient of a linear fn uses no input at all, rightly: the first-order
        # check above has already refused inputs fn does not use.
        return gradcheck(
            _first_gradient(fn, inputs),
            *inputs,
            eps=eps,
            atol=atol,
            rtol=rtol,
            modes=modes,
            allow_unused=True,
        )
    tensors = _float64_inputs(inputs)
    total, weights = _scalar_output(fn, tensors, None)
    if not allow_unused:
        _refuse_unused(total, tensors)
    arrays = [np.array(t._data, dtype=np.float64) for t in tensors]

    def value(current: list[np.ndarray]) -> float:
        out = fn(*[Tensor(a, requires_grad=True) for a in current])
        return float(np.sum(np.asarray(out._data) * weights))

    numeric = numerical_grad(value, arrays, eps)
    for mode in modes:
        analytic: list[Tensor] | list[np.ndarray]
        if mode == "rev":
            # An output that does not depend on the inputs at all (the gradient of a linear
            # function, in gradgradcheck) has zero gradients; the numerical side must agree.
            analytic = (
                grad(total, tensors)
                if total.requires_grad
                else [Tensor(np.zeros_like(t._data)) for t in tensors]
            )
        else:
            analytic = _forward_gradient(fn, arrays, weights)
        try:
            _compare(mode, analytic, numeric, tensors, atol, rtol, weights=weights)
        except AssertionError as exc:
            # The weighted sums disagree: find the Jacobian entries that do, for a message
            # a reader can check by hand (d out[j] / d input[k], not a random projection).
            detail = _worst_entry(fn, mode, arrays, eps, atol, rtol)
            if detail is None:
                raise
            raise AssertionError(detail) from exc
    return True


def _refuse_unused(total: Tensor, tensors: Sequence[Tensor]) -> None:
    from . import engine

    reached = {id(node) for node in engine.toposort(total)} if total.requires_grad else set()
    unused = [i for i, t in enumerate(tensors) if id(t) not in reached]
    if unused:
        which = ", ".join(f"{i} (shape {tensors[i].shape})" for i in unused)
        raise AssertionError(
            f"gradcheck: fn does not use input {which}, so its derivatives are zero on both "
            "sides and the check would pass without testing anything; if fn reads a model's "
            "parameters through a closure, check them with gradcheck_module(model, ...) or "
            "pass them as inputs (allow_unused=True if the input is unused on purpose)"
        )


def _jacobians(
    fn: Callable[..., Tensor], mode: str, arrays: list[np.ndarray], eps: float
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Full Jacobians (output size x input size, one per input): analytical in `mode` and by
    central differences. Only for the failure message: one pass per element."""
    from .func import jacfwd, jacrev

    nums = tuple(range(len(arrays)))

    def flat(*ts: Tensor) -> Tensor:
        return fn(*ts).reshape(-1)

    jac = (jacrev if mode == "rev" else jacfwd)(flat, nums)(*[Tensor(a) for a in arrays])
    analytic = [np.asarray(j).reshape(j.shape[0], -1) for j in jac]
    numeric = []
    work = [a.copy() for a in arrays]
    for a in work:
        columns = []
        for index in np.ndindex(a.shape):
            original = a[index]
            a[index] = original + eps
            up = np.asarray(fn(*[Tensor(w) for w in work])._data, dtype=np.float64).reshape(-1)
            a[index] = original - eps
            down = np.asarray(fn(*[Tensor(w) for w in work])._data, dtype=np.float64).reshape(-1)
            a[index] = original
            columns.append((up - down) / (2 * eps))
        size = analytic[0].shape[0]
        numeric.append(np.stack(columns, axis=1) if columns else np.zeros((size, 0)))
    return analytic, numeric


def _worst_entry(
    fn: Callable[..., Tensor],
    mode: str,
    arrays: list[np.ndarray],
    eps: float,
    atol: float,
    rtol: float,
) -> str | None:
    try:
        analytic, numeric = _jacobians(fn, mode, arrays, eps)
    except Exception:  # noqa: BLE001 - the message falls back to the weighted comparison
        return None
    out_shape = np.shape(fn(*[Tensor(a) for a in arrays])._data)
    name = "backprop" if mode == "rev" else "forward mode"
    worst = None
    for i, (a, n) in enumerate(zip(analytic, numeric, strict=True)):
        if a.size == 0:
            continue
        excess = np.abs(a - n) - (atol + rtol * np.abs(n))
        k = int(np.argmax(excess))
        if excess.flat[k] > 0 and (worst is None or excess.flat[k] > worst[0]):
            bad = int((excess > 0).sum())
            worst = (excess.flat[k], i, np.unravel_index(k, a.shape), a, n, bad)
    if worst is None:
        return None
    _, i, (row, col), a, n, bad = worst
    out_el = tuple(int(v) for v in np.unravel_index(row, out_shape)) if out_shape else ()
    in_el = tuple(int(v) for v in np.unravel_index(col, arrays[i].shape)) if arrays[i].ndim else ()
    out_at = str(list(out_el)) if out_el else ""
    in_at = str(list(in_el)) if in_el else ""
    return (
        f"gradcheck: input {i} (shape {arrays[i].shape}): Jacobian entry d out{out_at} / "
        f"d input {i}{in_at}: {name} {a[row, col]:.8g} vs numerical {n[row, col]:.8g} "
        f"(difference {abs(a[row, col] - n[row, col]):.3g}, atol={atol}, rtol={rtol}); "
        f"{bad} of {a.size} entries of this input's Jacobian differ"
    )


def gradcheck_module(
    module: Any,
    fn: Callable[..., Tensor],
    *inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    modes: Sequence[str] = ("rev",),
    check_inputs: bool = False,
) -> bool:
    """gradcheck over all of a module's parameters (and, with `check_inputs`, its inputs) in
    one call: `fn(module, *inputs)` returns a Tensor; the parameters are set by
    `nn.functional_call` for every evaluation, so the module is left unchanged.

        gradcheck_module(model, lambda m, x: m(x), x)

    On a failure the message names the parameter (its dotted name) and the worst entry."""
    from nn.functional_call import swapped  # nn builds on autodiff: imported when used

    named = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError(f"gradcheck_module: {type(module).__name__} has no trainable parameters")
    names = [name for name, _ in named]
    params = [np.array(p._data, dtype=np.float64) for _, p in named]
    n_inputs = len(inputs)
    if any(p.dtype != np.float64 for _, p in named):
        raise TypeError(
            "gradcheck_module: central differences need float64 parameters; call "
            "module.double() first (or build it with dtype=np.float64)"
        )

    def wrapped(*tensors: Tensor) -> Tensor:
        xs = tensors[:n_inputs] if check_inputs else inputs
        values = dict(zip(names, tensors[n_inputs if check_inputs else 0 :], strict=True))
        with swapped(module, values):
            return fn(module, *xs)

    try:
        return gradcheck(
            wrapped,
            *((*inputs, *params) if check_inputs else params),
            eps=eps,
            atol=atol,
            rtol=rtol,
            modes=modes,
        )
    except AssertionError as exc:
        message = str(exc)
        offset = n_inputs if check_inputs else 0
        for k in sorted(range(len(names)), reverse=True):
            message = message.replace(f"input {k + offset} (", f"parameter '{names[k]}' (")
            message = message.replace(f"d input {k + offset}", f"d {names[k]}")
        raise AssertionError(message) from None


def _forward_gradient(
    fn: Callable[..., Tensor], arrays: list[np.ndarray], weights: np.ndarray
) -> list[np.ndarray]:
    """The gradient of sum(fn * weights) by forward mode: one jvp per input element."""
    from .func import jvp

    def weighted(*ts: Tensor) -> Tensor:
        return (fn(*ts) * weights).sum()

    grads = []
    for i, a in enumerate(arrays):
        g = np.zeros_like(a)
        for j in range(a.size):
            tangents = [np.zeros_like(b) for b in arrays]
            tangents[i].reshape(-1)[j] = 1.0
            _, dt = jvp(weighted, tuple(arrays), tuple(tangents))
            g.reshape(-1)[j] = float(np.asarray(dt._data if isinstance(dt, Tensor) else dt))
        grads.append(g)
    return grads


def _compare(
    mode: str,
    analytic: Sequence[Any],
    numeric: Sequence[np.ndarray],
    tensors: Sequence[Tensor],
    atol: float,
    rtol: float,
    weights: np.ndarray | None = None,
) -> None:
    name = "backprop" if mode == "rev" else "forward mode"
    # The numbers compared are derivatives of sum(w * fn), w random. The message showed them
    # as they were: for a scalar fn, w times the true derivative (notebook 5's sin(3x) at 0.1
    # read "numerical 3.258543" where 3 cos(0.3) = 2.866). A scalar w is divided out again;
    # with several outputs it cannot be, so the message says what the numbers are.
    scale, of = 1.0, ""
    if weights is not None and weights.shape == ():
        scale = float(weights)
    elif weights is not None:
        of = (
            " (derivatives of sum(w * fn(...)), w fixed random weights in [0.5, 1.5] so "
            "that every output element counts)"
        )
    for i, (a, n, t) in enumerate(zip(analytic, numeric, tensors, strict=True)):
        a_data = np.asarray(a._data if isinstance(a, Tensor) else a)
        if a_data.shape != t.shape:
            raise AssertionError(
                f"gradcheck: gradient for input {i} has shape {a_data.shape}, "
                f"but the input has shape {t.shape}"
            )
        close = np.isclose(a_data, n, atol=atol, rtol=rtol)
        if not close.all():
            where = np.unravel_index(int(np.argmin(close)), close.shape) if close.ndim else ()
            raise AssertionError(
                f"gradcheck: input {i} (shape {t.shape}) element {tuple(int(k) for k in where)}: "
                f"{name} {a_data[where] / scale:.8g} vs numerical {n[where] / scale:.8g} "
                f"(difference {abs(a_data[where] - n[where]) / scale:.3g}, atol={atol}, "
                f"rtol={rtol}); "
                f"{int((~close).sum())} of {close.size} elements differ{of}"
            )


def gradgradcheck(
    fn: Callable[..., Tensor],
    *inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
) -> bool:
    """Check second derivatives: gradcheck of the (weighted) first gradient of fn (which
    uses no input at all when fn is linear: that is not refused here)."""
    return gradcheck(
        _first_gradient(fn, inputs), *inputs, eps=eps, atol=atol, rtol=rtol, allow_unused=True
    )


def _first_gradient(fn: Callable[..., Tensor], inputs: Sequence[Any]) -> Callable[..., Tensor]:
    """The (weighted) first gradient of fn, flattened into one differentiable Tensor."""
    probe = _float64_inputs(inputs)
    _, weights = _scalar_output(fn, probe, None)

    def first_gradient(*tensors: Tensor) -> Tensor:
        from .func import grad as grad_transform  # differentiable in both modes

        def total(*ts: Tensor) -> Tensor:
            return (fn(*ts) * weights).sum()

        grads = grad_transform(total, tuple(range(len(tensors))))(*tensors)
        flat = [g.reshape(-1) for g in grads]
        out = flat[0]
        for g in flat[1:]:
            out = _concat(out, g)
        return out

    return first_gradient


def _concat(a: Tensor, b: Tensor) -> Tensor:
    return concatenate([a, b])


# --- hypothesis strategies -------------------------------------------------------------------
# Imported lazily so that `import autodiff.testing` works without hypothesis installed.


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4):
    """Array shapes, including 0-d and size-1 axes."""
    from hypothesis.extra import numpy as hnp

    return hnp.array_shapes(
        min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
    )


def broadcastable_shapes(
    num_shapes: int = 2, min_dims: int = 0, max_dims: int = 3, max_side: int = 4
):
    """Groups of shapes that broadcast together, with the shape they broadcast to.

    Draws a `hypothesis.extra.numpy.BroadcastableShapes` (input_shapes, result_shape).
    """
    from hypothesis.extra import numpy as hnp

    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims, max_side=max_side
    )


def arrays(shape: Any = None, dtype: Any = np.float64, low: float = -3.0, high: float = 3.0):
    """numpy arrays of the given (or a drawn) shape with finite elements in [low, high]."""
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    elements = st.floats(
        low, high, allow_nan=False, allow_infinity=False, width=np.dtype(dtype).itemsize * 8
    )
    return hnp.arrays(dtype=dtype, shape=shapes() if shape is None else shape, elements=elements)


def tensors(
    shape: Any = None,
    dtype: Any = np.float64,
    low: float = -3.0,
    high: float = 3.0,
    requires_grad: bool = True,
):
    """Tensors of the given (or a drawn) shape, dtype and element range."""
    return arrays(shape, dtype, low, high).map(
        lambda a: Tensor(a, requires_grad=requires_grad and a.dtype.kind == "f")
    )


# --- forward mode and projections -------------------------------------------------------------


def _projection(
    fn: Callable[..., Any], primals: Any, who: str
) -> tuple[list[np.ndarray], Callable[[list[np.ndarray]], float], Any]:
    """float64 copies of the primals, and the scalar <u, fn(x)> for one fixed random u."""
    if isinstance(primals, list) and any(isinstance(p, Tensor) for p in primals):
        # A list is one array (its numbers stacked), as for jvp: [x, y] would become one
        # input and fn would miss its second argument.
        raise TypeError(
            f"{who}: give several inputs as a tuple, (x, y); a list is read as one array"
        )
    arrays = [
        np.array(p._data if isinstance(p, Tensor) else p, dtype=np.float64)
        for p in (primals if isinstance(primals, tuple) else (primals,))
    ]
    out = fn(*[Tensor(a) for a in arrays])
    if not isinstance(out, Tensor):
        raise TypeError(f"{who}: fn must return a Tensor, got {type(out).__name__}")
    u = np.random.default_rng(1).standard_normal(out.shape)

    def projected(current: list[np.ndarray]) -> float:
        return float(np.sum(np.asarray(fn(*[Tensor(a) for a in current])._data) * u))

    return arrays, projected, u


def _directional(
    projected: Callable, arrays: list[np.ndarray], v: list[np.ndarray], eps: float
) -> float:
    up = projected([a + eps * d for a, d in zip(arrays, v, strict=True)])
    down = projected([a - eps * d for a, d in zip(arrays, v, strict=True)])
    return (up - down) / (2 * eps)


def _agree(who: str, analytic: float, numeric: float, atol: float, rtol: float) -> bool:
    if not abs(analytic - numeric) <= atol + rtol * abs(numeric):
        raise AssertionError(
            f"{who}: projection {analytic:.10g} vs numerical {numeric:.10g} (difference "
            f"{abs(analytic - numeric):.3g}, atol={atol}, rtol={rtol})"
        )
    return True


def check_jvp(
    fn: Callable[..., Tensor],
    primals: Any,
    tangents: Any = None,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    seed: int = 0,
) -> bool:
    """Check forward mode on one random projection: <u, J v> from `jvp` against central
    differences of <u, fn> along v (random v unless `tangents` are given), in float64.

    One scalar per check whatever the sizes, so it scales to big tensors; a wrong rule is
    caught with probability 1 over the random draw.
    """
    from .func import jvp

    arrays, projected, u = _projection(fn, primals, "check_jvp")
    rng = np.random.default_rng(seed)
    if tangents is None:
        v = [rng.standard_normal(a.shape) for a in arrays]
    else:
        v = [
            np.array(t._data if isinstance(t, Tensor) else t, dtype=np.float64)
            for t in (tangents if isinstance(tangents, tuple) else (tangents,))
        ]
    _, dt = jvp(fn, tuple(arrays), tuple(v))
    analytic = float(np.sum(np.asarray(dt._data if isinstance(dt, Tensor) else dt) * u))
    return _agree("check_jvp", analytic, _directional(projected, arrays, v, eps), atol, rtol)


def check_vjp(
    fn: Callable[..., Tensor],
    primals: Any,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    seed: int = 0,
) -> bool:
    """Check reverse mode on one random projection: <J^T u, v> from the backward pass against
    central differences of <u, fn> along a random v, in float64 (one scalar per check)."""
    from .func import vjp

    arrays, projected, u = _projection(fn, primals, "check_vjp")
    rng = np.random.default_rng(seed)
    v = [rng.standard_normal(a.shape) for a in arrays]
    _, pullback = vjp(fn, *arrays)
    grads = pullback(u)
    analytic = float(sum(np.sum(np.asarray(g) * d) for g, d in zip(grads, v, strict=True)))
    return _agree("check_vjp", analytic, _directional(projected, arrays, v, eps), atol, rtol)
