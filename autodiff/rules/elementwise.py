"""Elementwise primitives: arithmetic, exp and log, activations, trigonometry, rounding.

Each output element depends on one element of each input (after broadcasting), so the
Jacobian is diagonal, hence its own transpose: the JVP and VJP rules read the same (`g * out`
and `t * out` for exp), and `formula` is the one number per element that drawings show.

Forwards use Python operators rather than ufuncs where they can: the same for arrays, and
several times faster on the numpy scalars that 0-d (micrograd-style) graphs are made of.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from .table import QUIET, Op, call, register, value, zeros_like

add = register(
    "add",
    operator.add,
    lambda g, out, a, b: g,
    lambda g, out, a, b: g,
    jvp=(lambda t, out, a, b: t, lambda t, out, a, b: t),
    elementwise=True,
    linear=True,
    numpy=(np.add,),
    method="__add__",
    formula=("1", "1"),
    onnx="Add",
)
# sub and div could be composites (a + -b, a * b**-1) but each would then cost two nodes on the
# hottest path of every training loop and two boxes in every drawing.
sub = register(
    "sub",
    operator.sub,
    lambda g, out, a, b: g,
    lambda g, out, a, b: -g,
    jvp=(lambda t, out, a, b: t, lambda t, out, a, b: -t),
    elementwise=True,
    linear=True,
    numpy=(np.subtract,),
    method="__sub__",
    formula=("1", "-1"),
    onnx="Sub",
)
mul = register(
    "mul",
    operator.mul,
    lambda g, out, a, b: g * b,
    lambda g, out, a, b: g * a,
    jvp=(lambda t, out, a, b: t * b, lambda t, out, a, b: a * t),
    elementwise=True,
    numpy=(np.multiply, (np.square, "ufunc:square")),
    method="__mul__",
    formula=("b", "a"),
    onnx="Mul",
)


# Numpy scalars whose result is certainly finite skip np.errstate, which costs ~0.7 us per use.
def _div_forward(a: Any, b: Any) -> Any:
    if type(b) is not np.ndarray and b:
        return a / b
    with np.errstate(**QUIET):
        return a / b


def _pow_const_forward(x: Any, *, exponent: float) -> Any:
    if exponent == 0.5 and x.dtype.kind == "f":
        # sqrt (Tensor.sqrt comes here) by np.sqrt: numpy computes an array's x ** 0.5 so,
        # but a numpy scalar's (a 0-d tensor) by C's pow, which gives sqrt(-inf) = inf and
        # differs from the correctly rounded root in the last bit. (Floats only: np.sqrt
        # of int8, uint8 or bool answers in float16, where x ** 0.5 answers in float64.)
        with np.errstate(**QUIET):
            return np.sqrt(x)
    if type(x) is not np.ndarray and x > 0:
        return x**exponent
    with np.errstate(**QUIET):
        return x**exponent


def _pow_tensor_forward(a: Any, b: Any) -> Any:
    with np.errstate(**QUIET):
        return a**b


def _log_forward(x: Any) -> Any:
    if type(x) is not np.ndarray and x > 0:
        return np.log(x)
    with np.errstate(**QUIET):
        return np.log(x)


div = register(
    "div",
    _div_forward,
    lambda g, out, a, b: g / b,
    lambda g, out, a, b: -g * out / b,
    jvp=(lambda t, out, a, b: t / b, lambda t, out, a, b: -t * out / b),
    elementwise=True,
    numpy=(np.divide, (np.reciprocal, "ufunc:reciprocal")),
    method="__truediv__",
    formula=("1 / b", "-out / b"),
    onnx="Div",
)
neg = register(
    "neg",
    operator.neg,
    lambda g, out, x: -g,
    elementwise=True,
    linear=True,
    numpy=(np.negative,),
    method="__neg__",
    formula="-1",
    onnx="Neg",
)


# x ** c for a constant c: the common case gets a rule without log(x), defined for x <= 0.
def _pow_const_vjp(g: Any, out: Any, x: Any, *, exponent: float) -> Any:
    if exponent == 0:
        return zeros_like(g)  # x**0 is constant: 0, not 0 * x**-1 = NaN at x = 0
    return g * exponent * x ** (exponent - 1)


# Elementwise, so the same rule is its JVP: d(x**c) = c x**(c-1) dx, and 0 for c = 0.
pow_const = register(
    "pow",
    _pow_const_forward,
    _pow_const_vjp,
    jvp=_pow_const_vjp,
    elementwise=True,
    numpy=((np.sqrt, "ufunc:sqrt"),),
    method="__pow__",
    formula="exponent * x^(exponent - 1)",
    onnx="Pow",
)


def _where(cond: np.ndarray, a: Any, b: Any) -> Any:
    return call(where, a, b, cond=cond)


def _pow_base_vjp(g: Any, out: Any, a: Any, b: Any) -> Any:
    # b * a**(b-1) is 0 * inf = NaN where b = 0 and a**-1 overflows (a = 0, or a subnormal
    # a); there the power is constant in a (a**0 = 1), so its derivative is 0 (as PyTorch).
    # Elsewhere the formula is left alone, so its derivative in b (second order) stays exact.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # replaced below
        local = b * a ** (b - 1)
    constant = (value(b) == 0) & ~np.isfinite(value(local))
    return g * (_where(constant, 0.0, local) if np.any(constant) else local)


def log_base(a: Any, b: Any) -> Any:
    # d(a**b)/db = a**b * log(a). At a = 0 the power is constant in b (0**b = 0) for b >= 0,
    # so we use 0; for b < 0 it is inf * log(0) = -inf (as PyTorch). For a < 0 the power is
    # only defined at integer b, so it has no derivative in b: we use 0 rather than NaN.
    av = value(a)
    positive = av > 0
    elsewhere = np.where((av == 0) & (value(b) < 0), -np.inf, 0.0)
    return _where(positive, call(log, _where(positive, a, 1.0)), elsewhere)


pow_tensor = register(
    "pow_tensor",
    _pow_tensor_forward,
    _pow_base_vjp,
    lambda g, out, a, b: g * out * log_base(a, b),
    jvp=(_pow_base_vjp, lambda t, out, a, b: t * out * log_base(a, b)),  # elementwise
    elementwise=True,
    numpy=(np.power,),
    method="__pow__",
    formula=("b * a^(b - 1)", "out * log(a)"),
    onnx="Pow",
)
exp = register(
    "exp",
    np.exp,
    lambda g, out, x: g * out,
    jvp=lambda t, out, x: t * out,
    elementwise=True,
    numpy=(np.exp,),
    method="exp",
    formula="out",
    onnx="Exp",
)
log = register(
    "log",
    _log_forward,
    lambda g, out, x: g / x,
    jvp=lambda t, out, x: t / x,
    elementwise=True,
    numpy=(np.log,),
    method="log",
    formula="1 / x",
    onnx="Log",
)
tanh = register(
    "tanh",
    np.tanh,
    lambda g, out, x: g * (1 - out * out),
    jvp=lambda t, out, x: t * (1 - out * out),
    elementwise=True,
    numpy=(np.tanh,),
    method="tanh",
    formula="1 - out^2",
    onnx="Tanh",
)


def _sigmoid_forward(x: np.ndarray) -> np.ndarray:
    # exp(-log(1 + exp(-x))): logaddexp never overflows, so this is finite and accurate in
    # both tails, unlike 1 / (1 + exp(-x)) which overflows for x < -88 in float32.
    return np.exp(-np.logaddexp(0, -x))


sigmoid = register(
    "sigmoid",
    _sigmoid_forward,
    lambda g, out, x: g * out * (1 - out),
    jvp=lambda t, out, x: t * out * (1 - out),
    elementwise=True,
    method="sigmoid",
    formula="out * (1 - out)",
    onnx="Sigmoid",
)


def _relu_forward(x: Any) -> Any:
    # Against an array of zeros, not the scalar 0: numpy's maximum with a scalar operand runs
    # a slower loop, and allocating the zeros costs less than the difference (2x faster in
    # all, float32 and float64, 8x8 to 1000x1000). Only for C-ordered arrays: the zeros are
    # C-ordered, and any other layout (a convolution's output is a transposed view) would
    # come out C-ordered too, slower to make and slower for the pooling that reads it next.
    # Integer and bool arrays keep numpy's promotion with 0 (bool would otherwise stay bool).
    if type(x) is np.ndarray and x.dtype.kind == "f" and x.flags.c_contiguous:
        return np.maximum(x, np.zeros(x.shape, x.dtype))
    return np.maximum(x, 0)


# relu'(0) is taken as 0 (as PyTorch does): a unit sitting exactly at 0 gets no update, and the
# gradient check avoids the kink, where no derivative exists.
relu = register(
    "relu",
    _relu_forward,
    lambda g, out, x: g * ((x if type(x) is np.ndarray else value(x)) > 0),
    jvp=lambda t, out, x: t * (value(x) > 0),
    elementwise=True,
    method="relu",
    formula="step(x)",
    onnx="Relu",
)
abs_ = register(
    "abs",
    np.abs,
    lambda g, out, x: g * np.sign(value(x)),
    jvp=lambda t, out, x: t * np.sign(value(x)),
    elementwise=True,
    numpy=(np.absolute,),
    method="abs",
    formula="sign(x)",
    onnx="Abs",
)
where = register(
    "where",
    lambda a, b, *, cond: np.where(cond, a, b),
    lambda g, out, a, b, *, cond: _where(cond, g, 0),
    lambda g, out, a, b, *, cond: _where(cond, 0, g),
    jvp=(
        lambda t, out, a, b, *, cond: _where(cond, t, 0),
        lambda t, out, a, b, *, cond: _where(cond, 0, t),
    ),
    elementwise=True,
    linear=True,
    numpy=((np.where, "where"),),
    formula=("cond", "1 - cond"),
    onnx="Where",
)


def _tie_share(a: Any, b: Any, wins: np.ufunc) -> np.ndarray:
    """The share of the gradient `a` gets in maximum(a, b) (wins=greater) or minimum: all of it
    where it wins, half on a tie (as PyTorch, and as max() splits ties), none where it loses."""
    a, b = value(a), value(b)
    return np.where(a == b, 0.5, wins(a, b)).astype(np.result_type(a, b))


maximum = register(
    "maximum",
    np.maximum,
    lambda g, out, a, b: g * _tie_share(a, b, np.greater),
    lambda g, out, a, b: g * _tie_share(b, a, np.greater),
    jvp=(
        lambda t, out, a, b: t * _tie_share(a, b, np.greater),
        lambda t, out, a, b: t * _tie_share(b, a, np.greater),
    ),
    elementwise=True,
    numpy=(np.maximum,),
    method="maximum",
    formula=("step(a - b)", "step(b - a)"),
    onnx="Max",
)
minimum = register(
    "minimum",
    np.minimum,
    lambda g, out, a, b: g * _tie_share(a, b, np.less),
    lambda g, out, a, b: g * _tie_share(b, a, np.less),
    jvp=(
        lambda t, out, a, b: t * _tie_share(a, b, np.less),
        lambda t, out, a, b: t * _tie_share(b, a, np.less),
    ),
    elementwise=True,
    numpy=(np.minimum,),
    method="minimum",
    formula=("step(b - a)", "step(a - b)"),
    onnx="Min",
)

# A dtype conversion: the gradient is converted back by the engine's unbroadcast, the tangent
# forward to the output's dtype by forward mode.
cast = register(
    "cast",
    lambda x, *, dtype: x.astype(dtype),
    lambda g, out, x, *, dtype: g,
    jvp=lambda t, out, x, *, dtype: t,
    elementwise=True,
    linear=True,
    method="astype",
    formula="1",
    onnx="Cast",
)

# --- trigonometry and friends ----------------------------------------------------------------

sin = register(
    "sin",
    np.sin,
    lambda g, out, x: g * call(cos, x),
    jvp=lambda t, out, x: t * call(cos, x),
    elementwise=True,
    numpy=(np.sin,),
    method="sin",
    formula="cos(x)",
    onnx="Sin",
)
cos: Op = register(  # typed: sin's rules name it before it is defined
    "cos",
    np.cos,
    lambda g, out, x: -g * call(sin, x),
    jvp=lambda t, out, x: -t * call(sin, x),
    elementwise=True,
    numpy=(np.cos,),
    method="cos",
    formula="-sin(x)",
    onnx="Cos",
)
# Primitives, not (exp(x) -+ exp(-x)) / 2: that difference cancels for small |x| (sinh(1e-20)
# was 0, sinh(1e-5) in float32 off by 0.1%) and exp overflows before sinh and cosh do (710).
sinh = register(
    "sinh",
    np.sinh,
    lambda g, out, x: g * call(cosh, x),
    jvp=lambda t, out, x: t * call(cosh, x),
    elementwise=True,
    numpy=(np.sinh,),
    method="sinh",
    formula="cosh(x)",
    onnx="Sinh",
)
cosh: Op = register(  # typed: sinh's rules name it before it is defined
    "cosh",
    np.cosh,
    lambda g, out, x: g * call(sinh, x),
    jvp=lambda t, out, x: t * call(sinh, x),
    elementwise=True,
    numpy=(np.cosh,),
    method="cosh",
    formula="sinh(x)",
    onnx="Cosh",
)
tan = register(
    "tan",
    np.tan,
    lambda g, out, x: g * (1 + out * out),
    jvp=lambda t, out, x: t * (1 + out * out),
    elementwise=True,
    numpy=(np.tan,),
    method="tan",
    formula="1 + out^2",
    onnx="Tan",
)

arctan = register(
    "arctan",
    np.arctan,
    lambda g, out, x: g / (1 + x * x),
    jvp=lambda t, out, x: t / (1 + x * x),
    elementwise=True,
    numpy=(np.arctan,),
    method="arctan",
    formula="1 / (1 + x^2)",
    onnx="Atan",
)


def _log1p_forward(x: Any) -> Any:
    with np.errstate(**QUIET):  # log1p(-1) = -inf quietly, as log(0)
        return np.log1p(x)


log1p = register(
    "log1p",
    _log1p_forward,
    lambda g, out, x: g / (1 + x),
    jvp=lambda t, out, x: t / (1 + x),
    elementwise=True,
    numpy=(np.log1p,),
    method="log1p",
    formula="1 / (1 + x)",
    onnx="none: ONNX has no log1p, and Log(1 + x) loses the accuracy near 0 this op is for",
)
# The derivative is exp(x), computed as such: out + 1 rounds to 0 once exp(x) is below the
# precision of 1 (x < -17 in float32, -37 in float64), where exp(x) itself is still exact.
expm1 = register(
    "expm1",
    np.expm1,
    lambda g, out, x: g * call(exp, x),
    jvp=lambda t, out, x: t * call(exp, x),
    elementwise=True,
    numpy=(np.expm1,),
    method="expm1",
    formula="exp(x)",
    onnx="none: ONNX has no expm1, and Exp(x) - 1 loses the accuracy near 0 this op is for",
)


def _softplus_forward(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0, x)  # log(1 + e^x) without overflow for large x


# d/dx log(1 + e^x) = sigmoid(x).
softplus = register(
    "softplus",
    _softplus_forward,
    lambda g, out, x: g * call(sigmoid, x),
    jvp=lambda t, out, x: t * call(sigmoid, x),
    elementwise=True,
    formula="sigmoid(x)",
    onnx="Softplus",
)

# numpy has no erf; math.erf is exact to double precision, applied element by element.
_erf_elements = np.vectorize(math.erf, otypes=[np.float64])


def _erf_forward(x: np.ndarray) -> np.ndarray:
    # In x's own dtype (float16 stays float16, as for every other op), and a numpy scalar
    # for a 0-d x, as every 0-d tensor holds.
    return np.asarray(_erf_elements(x), dtype=np.result_type(x))[()]


erf = register(
    "erf",
    _erf_forward,
    lambda g, out, x: g * (2 / math.sqrt(math.pi)) * call(exp, -(x * x)),
    jvp=lambda t, out, x: t * (2 / math.sqrt(math.pi)) * call(exp, -(x * x)),
    elementwise=True,
    formula="2 / sqrt(pi) * exp(-x^2)",
    onnx="Erf",
)


# --- piecewise constant ----------------------------------------------------------------------
# np.floor, np.ceil, np.sign and np.round on a Tensor stay constants (interop's rule for step
# functions), so these rows list no numpy function.


def _zero_rule(g: Any, out: Any, *inputs: Any, **params: Any) -> Any:
    # Piecewise constant: the derivative is 0 wherever it exists (as PyTorch reports it).
    # It serves forward mode too: a zero tangent out, whatever comes in.
    return g * 0


floor = register(
    "floor",
    np.floor,
    _zero_rule,
    jvp=_zero_rule,
    elementwise=True,
    method="floor",
    formula="0",
    onnx="Floor",
)
ceil = register(
    "ceil",
    np.ceil,
    _zero_rule,
    jvp=_zero_rule,
    elementwise=True,
    method="ceil",
    formula="0",
    onnx="Ceil",
)
round_ = register(
    "round",
    lambda x, *, decimals: np.round(x, decimals),
    _zero_rule,
    jvp=_zero_rule,
    elementwise=True,
    method="round",
    formula="0",
    onnx="Round",
)
sign = register(
    "sign",
    np.sign,
    _zero_rule,
    jvp=_zero_rule,
    elementwise=True,
    method="sign",
    formula="0",
    onnx="Sign",
)


# a // b and a % b as numpy computes them, not as floor(a / b): a / b is rounded before the
# floor, so 5.0 // 0.1 would be 50 and 5.0 % 0.1 would be 0.0 (Python and numpy: 49 and
# 0.09999999999999973; 1e17 % 3.0: 1.0, not 0.0). Quietly at b = 0, as division.
def _floor_divide_forward(a: Any, b: Any) -> Any:
    with np.errstate(**QUIET):
        return np.floor_divide(a, b)


def _remainder_forward(a: Any, b: Any) -> Any:
    with np.errstate(**QUIET):
        return np.remainder(a, b)


def _quotient(a: Any, b: Any) -> Any:
    # The integer quotient q in a = q * b + a % b: piecewise constant, so a constant here.
    return _floor_divide_forward(value(a), value(b))


floor_divide = register(
    "floor_divide",
    _floor_divide_forward,
    _zero_rule,
    _zero_rule,
    jvp=(_zero_rule, _zero_rule),
    elementwise=True,
    numpy=(np.floor_divide,),
    method="__floordiv__",
    formula=("0", "0"),
    onnx="none: ONNX Div truncates integers and does not floor floats",
)
# a % b = a - q * b with q constant between its jumps: the gradient is 1 for a and -q for b.
remainder = register(
    "remainder",
    _remainder_forward,
    lambda g, out, a, b: g,
    lambda g, out, a, b: -g * _quotient(a, b),
    jvp=(lambda t, out, a, b: t, lambda t, out, a, b: -t * _quotient(a, b)),
    elementwise=True,
    numpy=(np.remainder,),
    method="__mod__",
    formula=("1", "-floor(a / b)"),
    onnx="none: ONNX Mod with Python's sign rule (fmod=0) is for integers only",
)
