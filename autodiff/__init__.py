"""autodiff: reverse-mode automatic differentiation on numpy arrays, small enough to read."""

from . import engine, func, ops
from .engine import (
    detect_anomaly,
    enable_grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from .forward import jvp
from .forward_steps import explain_forward
from .tensor import (
    Tensor,
    abs,
    arange,
    concatenate,
    exp,
    full,
    grad,
    linear,
    log,
    log_softmax,
    logsumexp,
    matmul,
    maximum,
    minimum,
    ones,
    ones_like,
    rand,
    randn,
    relu,
    sigmoid,
    softmax,
    softmax_cross_entropy,
    sqrt,
    stack,
    tanh,
    tensor,
    where,
    zeros,
    zeros_like,
)

__all__ = [
    "Tensor", "abs", "arange", "concatenate", "detect_anomaly", "enable_grad", "engine", "exp",
    "explain_forward", "full", "func", "grad", "is_grad_enabled", "jvp", "linear", "log",
    "log_softmax", "logsumexp", "matmul",
    "maximum", "minimum", "no_grad", "ones", "ones_like", "ops", "rand", "randn", "relu",
    "set_grad_enabled", "sigmoid", "softmax", "softmax_cross_entropy", "sqrt", "stack", "tanh",
    "tensor", "where", "zeros", "zeros_like",
]
__version__ = "0.1.0"
