"""autodiff: reverse-mode automatic differentiation on numpy arrays, small enough to read."""

# conv and functions: more rows of the same table (ops.OPS), each in a module of its own
from . import conv, engine, func, functions, ops
from .conv import avg_pool2d, conv1d, conv2d, max_pool2d, unfold
from .engine import (
    detect_anomaly,
    enable_grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from .forward import jvp
from .forward_steps import explain_forward
from .functions import all_ as all  # noqa: A004 (numpy's names, as np.all / np.any)
from .functions import any_ as any  # noqa: A004
from .functions import (
    argmax,
    argmin,
    ceil,
    chunk,
    cos,
    cosh,
    cumprod,
    cumsum,
    einsum,
    elu,
    erf,
    expm1,
    eye,
    flip,
    floor,
    floor_divide,
    gather,
    gelu,
    leaky_relu,
    log1p,
    masked_fill,
    norm,
    pad,
    prod,
    reciprocal,
    remainder,
    repeat,
    roll,
    rsqrt,
    scatter_add,
    sign,
    silu,
    sin,
    sinh,
    softplus,
    sort,
    split,
    square,
    take_along_axis,
    tan,
    tile,
    topk,
    tril,
    triu,
)
from .functions import round_ as round  # noqa: A004
from .tensor import (
    Tensor,
    abs,
    arange,
    cat,
    concatenate,
    exp,
    from_numpy,
    full,
    grad,
    linear,
    log,
    log_softmax,
    logsumexp,
    manual_seed,
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
    "Tensor", "abs", "arange", "cat", "concatenate", "detect_anomaly", "enable_grad", "engine",
    "exp", "explain_forward", "from_numpy", "full", "func", "grad", "is_grad_enabled", "jvp",
    "linear", "log", "log_softmax", "logsumexp", "manual_seed", "matmul",
    "maximum", "minimum", "no_grad", "ones", "ones_like", "ops", "rand", "randn", "relu",
    "set_grad_enabled", "sigmoid", "softmax", "softmax_cross_entropy", "sqrt", "stack", "tanh",
    "tensor", "where", "zeros", "zeros_like",
]
__all__ += ["avg_pool2d", "conv", "conv1d", "conv2d", "max_pool2d", "unfold"]
__all__ += [
    "all", "any", "argmax", "argmin", "ceil", "chunk", "cos", "cosh", "cumprod", "cumsum",
    "einsum", "elu", "erf", "expm1", "eye", "flip", "floor", "floor_divide", "functions",
    "gather", "gelu", "leaky_relu", "log1p", "masked_fill", "norm", "pad", "prod", "reciprocal",
    "remainder", "repeat", "roll", "round", "rsqrt", "scatter_add", "silu", "sign", "sin", "sinh",
    "softplus", "sort", "split", "square", "take_along_axis", "tan", "tile", "topk", "tril",
    "triu",
]
__version__ = "0.1.0"
