"""A testing kit for gradients: numerical checks and hypothesis strategies, for your own ops too.

    from autodiff.testing import gradcheck
    gradcheck(lambda x, y: (x * y).tanh().sum(), x_array, y_array)

`gradcheck` compares the engine's gradients with central differences in float64 and, on a
mismatch, says which input and which element differ and by how much.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .tensor import Tensor, grad

__all__ = [
    "gradcheck", "gradgradcheck", "numerical_grad", "tensors", "arrays", "broadcastable_shapes",
    "shapes",
]


def _float64_inputs(inputs: Sequence[Any]) -> list[Tensor]:
    return [
        Tensor(np.array(x.data if isinstance(x, Tensor) else x, dtype=np.float64),
               requires_grad=True)
        for x in inputs
    ]


def _scalar_output(fn: Callable[..., Tensor], tensors: Sequence[Tensor],
                   weights: np.ndarray | None) -> tuple[Tensor, np.ndarray]:
    """Reduce fn's output to a scalar with fixed random weights, so every element counts."""
    out = fn(*tensors)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    if weights is None:
        weights = np.random.default_rng(0).uniform(0.5, 1.5, size=out.shape)
    return (out * weights).sum(), weights


def numerical_grad(fn: Callable[[list[np.ndarray]], float], arrays: list[np.ndarray],
                   eps: float = 1e-6) -> list[np.ndarray]:
    """Central differences of a scalar function of several float64 arrays."""
    grads = []
    for array in arrays:
        g = np.zeros_like(array)
        flat, gflat = array.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            original = flat[i]
            flat[i] = original + eps
            up = fn(arrays)
            flat[i] = original - eps
            down = fn(arrays)
            flat[i] = original
            gflat[i] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


def gradcheck(
    fn: Callable[..., Tensor],
    *inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
) -> bool:
    """Check fn's backward pass against central differences, in float64.

    `fn` takes Tensors and returns a Tensor of any shape; `inputs` are arrays or Tensors (copied
    to float64). Returns True, or raises AssertionError naming the input, the element, both
    values and the difference.
    """
    tensors = _float64_inputs(inputs)
    total, weights = _scalar_output(fn, tensors, None)
    # An output that does not depend on the inputs at all (the gradient of a linear function,
    # in gradgradcheck) has zero gradients; the numerical side must agree.
    analytic = grad(total, tensors) if total.requires_grad else [
        Tensor(np.zeros_like(t.data)) for t in tensors
    ]
    arrays = [np.array(t.data, dtype=np.float64) for t in tensors]

    def value(current: list[np.ndarray]) -> float:
        out = fn(*[Tensor(a, requires_grad=True) for a in current])
        return float(np.sum(np.asarray(out.data) * weights))

    numeric = numerical_grad(value, arrays, eps)
    for i, (a, n, t) in enumerate(zip(analytic, numeric, tensors, strict=True)):
        a_data = np.asarray(a.data)
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
                f"backprop {a_data[where]:.8g} vs numerical {n[where]:.8g} "
                f"(difference {abs(a_data[where] - n[where]):.3g}, atol={atol}, rtol={rtol}); "
                f"{int((~close).sum())} of {close.size} elements differ"
            )
    return True


def gradgradcheck(
    fn: Callable[..., Tensor],
    *inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
) -> bool:
    """Check second derivatives: gradcheck of the (weighted) first gradient of fn."""
    probe = _float64_inputs(inputs)
    _, weights = _scalar_output(fn, probe, None)

    def first_gradient(*tensors: Tensor) -> Tensor:
        total = (fn(*tensors) * weights).sum()
        grads = grad(total, list(tensors), create_graph=True)
        flat = [g.reshape(-1) for g in grads]
        out = flat[0]
        for g in flat[1:]:
            out = _concat(out, g)
        return out

    return gradcheck(first_gradient, *inputs, eps=eps, atol=atol, rtol=rtol)


def _concat(a: Tensor, b: Tensor) -> Tensor:
    from .tensor import concatenate

    return concatenate([a, b])


# --- hypothesis strategies -------------------------------------------------------------------
# Imported lazily so that `import autodiff.testing` works without hypothesis installed.


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4):
    """Array shapes, including 0-d and size-1 axes."""
    from hypothesis.extra import numpy as hnp

    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcastable_shapes(num_shapes: int = 2, min_dims: int = 0, max_dims: int = 3,
                         max_side: int = 4):
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

    elements = st.floats(low, high, allow_nan=False, allow_infinity=False,
                         width=np.dtype(dtype).itemsize * 8)
    return hnp.arrays(dtype=dtype, shape=shapes() if shape is None else shape, elements=elements)


def tensors(shape: Any = None, dtype: Any = np.float64, low: float = -3.0, high: float = 3.0,
            requires_grad: bool = True):
    """Tensors of the given (or a drawn) shape, dtype and element range."""
    return arrays(shape, dtype, low, high).map(
        lambda a: Tensor(a, requires_grad=requires_grad and a.dtype.kind == "f")
    )
