"""Linear algebra: matmul, the fused linear layer, einsum.

Each is linear in every argument separately: the tangent goes through the product itself,
and each VJP is a product with the other arguments transposed.
"""

from __future__ import annotations

import operator
import string
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import batching
from .table import ARRAY, call, register, swap


def _matmul_vjp_a(g: Any, out: Any, a: Any, b: Any) -> Any:
    if a.ndim == 1 and b.ndim == 1:
        return g * b
    if b.ndim == 1:  # (..., n, k) @ (k,) -> (..., n)
        return g[..., None] * b
    if a.ndim == 1:  # (k,) @ (..., k, m) -> (..., m)
        return (g[..., None, :] @ swap(b))[..., 0, :]
    return g @ swap(b)


def _matmul_vjp_b(g: Any, out: Any, a: Any, b: Any) -> Any:
    if a.ndim == 1 and b.ndim == 1:
        return g * a
    if b.ndim == 1:
        return (swap(a) @ g[..., None])[..., 0]
    if a.ndim == 1:
        return a[:, None] * g[..., None, :]
    return swap(a) @ g


# matmul is linear in each argument: the tangent goes through the product itself.
matmul = register(
    "matmul",
    operator.matmul,
    _matmul_vjp_a,
    _matmul_vjp_b,
    jvp=(lambda t, out, a, b: t @ b, lambda t, out, a, b: a @ t),
    numpy=(np.matmul,),
    method="__matmul__",
    formula=("transpose(b)", "transpose(a)"),
    onnx="MatMul",
    batch=batching.matmul,
)


def _linear_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None):
    y = x @ weight.T
    if bias is not None:
        y += bias  # y is a fresh array here, so adding in place is safe and saves a copy
    return y


def _rows(a: Any) -> Any:
    return a.reshape(-1, a.shape[-1])


def grown(cached: np.ndarray | None, n: int, make: Callable[[int], np.ndarray]) -> np.ndarray:
    """`cached` if it holds at least n values, else make(length) at twice its length or n,
    read-only: the arrays every training step slices from (the batch size rarely changes)."""
    if cached is not None and len(cached) >= n:
        return cached
    array = make(max(n, 2 * len(cached)) if cached is not None else n)
    array.flags.writeable = False
    return array


_ones: dict[np.dtype, np.ndarray] = {}


def _linear_bias_vjp(g: Any, out: Any, x: Any, w: Any, b: Any = None) -> Any:
    if g.ndim != 2:
        g = _rows(g)
    if not isinstance(g, ARRAY):
        return g.sum(axis=0)
    # The column sums as ones @ g, a BLAS matrix-vector product: np.add.reduce(g, 0) adds
    # one row at a time and takes about twice as long for a batch (64x128 float32: 0.9 us
    # against 1.9). The ones are cached per dtype, as the row index is.
    assert isinstance(g, np.ndarray)  # a batch of rows, never a numpy scalar
    n, dtype = len(g), g.dtype
    ones = _ones.get(dtype)
    if ones is None or len(ones) < n:
        ones = _ones[dtype] = grown(ones, n, lambda length: np.ones(length, dtype))
    return ones[:n] @ g


# ONNX: one Gemm (x @ W.T + b) for a batch of rows, which Gemm is limited to; otherwise
# MatMul with the transposed weight, then Add.
def _linear_onnx(e: Any, names: list[str], out: Any, x: Any, w: Any, b: Any = None) -> str:
    if np.ndim(x) == 2:
        return e.node("Gemm", names, transB=1)
    y = e.node("MatMul", [names[0], e.node("Transpose", [names[1]], perm=[1, 0])])
    return e.node("Add", [y, names[2]]) if len(names) == 3 else y


# Fused x @ W.T + b, W stored (out, in) as in PyTorch: one node instead of three (transpose,
# matmul, add) in every layer, which is both faster and easier to read in a drawing.
linear = register(
    "linear",
    _linear_forward,
    lambda g, out, x, w, b=None: g @ w,
    lambda g, out, x, w, b=None: g.T @ x if g.ndim == 2 else _rows(g).T @ _rows(x),
    _linear_bias_vjp,
    jvp=(
        lambda t, out, x, w, b=None: t @ w.T,
        lambda t, out, x, w, b=None: x @ t.T,
        lambda t, out, x, w, b=None: t,
    ),
    formula=("w", "x", "1"),
    onnx=_linear_onnx,
    batch=batching.linear,
)


# --- einsum ----------------------------------------------------------------------------------


def parse_einsum(subscripts: str, n: int) -> tuple[list[str], str]:
    subscripts = subscripts.replace(" ", "")
    if "." in subscripts:
        raise ValueError("einsum: ellipsis ('...') is not supported; name every axis")
    inputs, arrow, output = subscripts.partition("->")
    terms = inputs.split(",")
    if len(terms) != n:
        raise ValueError(f"einsum: {subscripts!r} names {len(terms)} operands, got {n}")
    letters = "".join(terms)
    if not arrow:  # implicit output: the letters used once, in alphabetical order
        output = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    for term in [*terms, output]:
        if not all(c in string.ascii_letters for c in term):
            raise ValueError(f"einsum: subscripts must be letters, got {subscripts!r}")
        if len(set(term)) != len(term):
            raise ValueError(
                f"einsum: a repeated letter inside one operand ({term!r}) takes a "
                "diagonal, which is not supported; use explicit indexing"
            )
    return terms, output


def _einsum_vjp(i: int, g: Any, out: Any, *xs: Any, subscripts: str) -> Any:
    """The gradient for operand i is again an einsum: g with every other operand, giving
    operand i's letters; letters only operand i had were summed, so g is broadcast back."""
    terms, output = parse_einsum(subscripts, len(xs))
    others = [t for j, t in enumerate(terms) if j != i]
    available = set(output).union(*others) if others else set(output)
    target = "".join(c for c in terms[i] if c in available)
    spec = ",".join([output, *others]) + "->" + target
    operands = [g, *(x for j, x in enumerate(xs) if j != i)]
    grad = _einsum(spec, operands)
    if target != terms[i]:  # letters summed away in the forward: broadcast along them
        shape = tuple(xs[i].shape[terms[i].index(c)] if c in target else 1 for c in terms[i])
        grad = grad.reshape(shape)
        if isinstance(grad, ARRAY):
            grad = np.broadcast_to(grad, xs[i].shape)
        else:
            grad = grad.broadcast_to(xs[i].shape)
    return grad


def _einsum(spec: str, operands: Sequence[Any]) -> Any:
    return call(einsum, *operands, subscripts=spec)


def _einsum_jvp(ts: list, out: Any, *xs: Any, subscripts: str) -> Any:
    # Multilinear: one einsum per operand with a tangent, that operand replaced by it.
    total = None
    for i, t in enumerate(ts):
        if isinstance(t, ARRAY) and not np.any(t):
            continue  # an operand without a tangent (forward mode passes zeros)
        part = _einsum(subscripts, [t if j == i else x for j, x in enumerate(xs)])
        total = part if total is None else total + part
    return np.zeros_like(out if isinstance(out, ARRAY) else out._data) if total is None else total


def _einsum_onnx(e: Any, names: list[str], out: Any, *xs: Any, subscripts: str) -> str:
    return e.node("Einsum", names, equation=subscripts.replace(" ", ""))


einsum = register(
    "einsum",
    lambda *xs, subscripts: np.asarray(np.einsum(subscripts, *xs, optimize=True)),
    _einsum_vjp,
    variadic=True,
    jvp=_einsum_jvp,
    numpy=((np.einsum, "einsum"),),
    formula="einsum(g, others)",
    onnx=_einsum_onnx,
    batch=batching.einsum,
)


# --- the nuclear norm ------------------------------------------------------------------------


def _nuclear_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sum of the singular values of each matrix (the last two axes), and U V^T, which
    is its gradient (the polar factor: the nearest matrix with singular values 1)."""
    u, s, vh = np.linalg.svd(x, full_matrices=False)
    return s.sum(axis=-1), u @ vh


def _nuclear_vjp(g: Any, out: Any, x: Any, *, saved: np.ndarray) -> Any:
    if not isinstance(x, ARRAY) and x.requires_grad:
        # U V^T as a differentiable expression needs the SVD's own derivative, which is not
        # in the table: a constant here would make every second derivative silently 0.
        raise NotImplementedError(
            "norm(ord='nuc'): the second derivative (create_graph=True, hessian, jvp of a "
            "gradient) is not implemented; the first derivative is U V^T from the SVD"
        )
    return g[..., None, None] * saved


# A primitive because its gradient comes from the SVD that computes it (U V^T, a subgradient
# where a singular value is 0, as PyTorch's); the SVD is not itself in the table.
nuclear_norm = register(
    "nuclear_norm",
    _nuclear_forward,
    _nuclear_vjp,
    saves=True,
    jvp=lambda t, out, x, *, saved: (t * saved).sum(axis=(-2, -1)),
    formula="polar(x)",
    onnx="none: ONNX has no singular value decomposition",
    batch=batching.leading,
)
