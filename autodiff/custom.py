"""Custom operations: your own differentiable primitive, with its forward and its VJP.

Write the forward on numpy arrays and the VJP (the gradient rule) with autodiff operations;
the result is a primitive like `tanh` or `matmul`: every transform (`grad`, `jvp`, `vjp`,
`jacrev`, `jacfwd`, `hessian`, `gradcheck`) goes through it, drawings and
`explain_backward` show it under its own name, and its errors name it.

    import numpy as np
    import autodiff as ad
    from autodiff.testing import gradcheck

    def log1pexp_vjp(g, out, x):          # d/dx log(1 + e^x) = sigmoid(x)
        return g * ad.sigmoid(x)

    @ad.custom_op(vjp=log1pexp_vjp, formula="sigmoid(x)")
    def log1pexp(x):                      # numpy in, numpy out: no overflow for large x
        return np.logaddexp(0.0, x)

    x = ad.tensor([-800.0, 0.0, 800.0], requires_grad=True)
    log1pexp(x).sum().backward()
    assert np.allclose(x.grad.data, [0.0, 0.5, 1.0])
    _, tangent = ad.jvp(log1pexp, (x,), (np.ones(3),))  # forward mode: derived from the VJP
    assert np.allclose(tangent.data, [0.0, 0.5, 1.0])
    assert gradcheck(log1pexp, [0.3, -1.2], modes=("rev", "fwd"), order=2)

The pieces (all but the forward and the VJP are optional):

- `forward(*inputs, **params)`: the numbers, on numpy arrays, returning one array. Its
  positional parameters without a default are the op's inputs (differentiable, Tensors or
  arrays or numbers when called); keyword arguments are parameters (an axis, a threshold),
  passed to every rule as they were given and never differentiated.
- `vjp(g, out, *inputs, **params)`: the gradient of each input given `g`, the gradient of
  the op's output; returns one gradient per input (a tuple; a single value for a one-input
  op; None where an input gets no gradient). A gradient may have the output's shape where
  the input was broadcast: it is summed down to the input's shape, as for every primitive.
  `g`, `out` and the inputs are Tensors: write the rule with autodiff operations (`*`, `@`,
  `ad.exp`, `ad.where`, ...) and it is differentiable itself, which is what grad-of-grad,
  `hessian` and the derived JVP need. (A rule written with numpy on `t.data` gives correct
  first derivatives; where a higher derivative needs it, the error says so.)
- `jvp(tangents, out, *inputs, **params)`: forward mode: the output's tangent given one
  tangent per input (zeros for inputs that have none). Without it, forward mode derives the
  JVP from the VJP: the VJP is linear in `g`, so J t is the VJP of the VJP (run on a dummy
  `g`) with cotangent t. That needs the VJP to be written with autodiff operations; if it
  is not, forward mode stops with an error naming the op and asking for `jvp=`.
- `batch(inputs, dims, size, **params)`: `vmap`'s batching rule: `inputs` are Tensors,
  `dims[i]` is 0 where input i carries the batch (of `size` examples) in front and None
  where it is the same for every example; returns the batched output, batch in front. An
  `elementwise=True` op without one gets one (it broadcasts over the batch); another op
  without one is computed by vmap one example at a time.
- `name` (default: the forward's name), `formula` (the local derivative per input as text in
  the inputs' names, for the page), `elementwise` (output element i depends only on input
  element i).

The rules can also be given after the forward, as decorators: `@log1pexp.defvjp`,
`@log1pexp.defjvp`, `@log1pexp.defbatch`.

A custom op is a row of the same `Op` type as the built-in table (`log1pexp.op`), so the
engine, forward mode and drawings treat it like any primitive; it is not added to the
table `autodiff.rules.OPS`, which lists the library's own primitives.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import Any, overload

import numpy as np

from . import engine, rules
from .rules.table import Op, lift
from .tensor import Tensor

__all__ = ["CustomOp", "custom_op"]


@overload
def custom_op(
    forward: Callable[..., Any],
    *,
    vjp: Callable[..., Any] | None = ...,
    jvp: Callable[..., Any] | None = ...,
    batch: Callable[..., Any] | None = ...,
    name: str | None = ...,
    formula: str | tuple[str, ...] | None = ...,
    elementwise: bool = ...,
) -> CustomOp: ...


@overload
def custom_op(
    forward: None = ...,
    *,
    vjp: Callable[..., Any] | None = ...,
    jvp: Callable[..., Any] | None = ...,
    batch: Callable[..., Any] | None = ...,
    name: str | None = ...,
    formula: str | tuple[str, ...] | None = ...,
    elementwise: bool = ...,
) -> Callable[[Callable[..., Any]], CustomOp]: ...


def custom_op(
    forward: Callable[..., Any] | None = None,
    *,
    vjp: Callable[..., Any] | None = None,
    jvp: Callable[..., Any] | None = None,
    batch: Callable[..., Any] | None = None,
    name: str | None = None,
    formula: str | tuple[str, ...] | None = None,
    elementwise: bool = False,
) -> CustomOp | Callable[[Callable[..., Any]], CustomOp]:
    """Make `forward` (numpy in, numpy out) a differentiable primitive; see the module doc.

    As a decorator, `@custom_op(vjp=...)` or bare `@custom_op` (then `@f.defvjp`); as a call,
    `custom_op(forward, vjp=...)`. Returns a `CustomOp`, called like a function on Tensors.
    """

    def make(fn: Callable[..., Any]) -> CustomOp:
        return CustomOp(
            fn,
            vjp=vjp,
            jvp=jvp,
            batch=batch,
            name=name,
            formula=formula,
            elementwise=elementwise,
        )

    return make if forward is None else make(forward)


class CustomOp:
    """A user-defined primitive: call it on Tensors (or arrays, numbers) like `ad.tanh`.

    `op` is its row (an `autodiff.rules.Op`); `defvjp`, `defjvp` and `defbatch` give or
    replace its rules (also usable as decorators).
    """

    def __init__(
        self,
        forward: Callable[..., Any],
        *,
        vjp: Callable[..., Any] | None = None,
        jvp: Callable[..., Any] | None = None,
        batch: Callable[..., Any] | None = None,
        name: str | None = None,
        formula: str | tuple[str, ...] | None = None,
        elementwise: bool = False,
    ) -> None:
        if not callable(forward):
            raise TypeError(f"custom_op: forward must be a function, got {type(forward).__name__}")
        self.name: str = name or getattr(forward, "__name__", None) or "custom_op"
        if self.name in rules.OPS:
            # Drawings and the page look some facts up by op name: a user's "tanh" would be
            # taken for the library's.
            raise ValueError(
                f"custom_op: {self.name!r} is the name of a built-in primitive; give name="
            )
        self.forward = forward
        self.inputs = _input_names(forward, self.name)
        self.vjp = vjp
        self.jvp = jvp
        self.batch = batch
        self.elementwise = elementwise
        self.__doc__ = forward.__doc__
        self.__name__ = self.name
        # One VJP call serves every input of a node: the engine asks for the gradients of a
        # node's inputs one after the other, with the same arguments (see `_gradients`).
        self._last = threading.local()
        n = len(self.inputs)
        vjps = tuple(self._vjp_rule(i) for i in range(n))
        jvps = tuple(self._jvp_rule(i) for i in range(n))
        self.op = Op(
            self.name,
            self._forward,
            *vjps,
            jvp=jvps,
            elementwise=elementwise,
            formula=formula,
            onnx="none: a custom operation (autodiff.custom_op)",
            # None: vmap's own fallback (one example at a time) and its warning naming the op.
            batch=self._batch_rule if batch is not None or elementwise else None,
        )

    def __repr__(self) -> str:
        return f"custom_op({self.name}({', '.join(self.inputs)}))"

    # --- giving the rules after the forward --------------------------------------------

    def defvjp(self, vjp: Callable[..., Any]) -> Callable[..., Any]:
        """Set the VJP rule; returns it, so that `@f.defvjp` works as a decorator."""
        self.vjp = vjp
        return vjp

    def defjvp(self, jvp: Callable[..., Any]) -> Callable[..., Any]:
        """Set the JVP rule (otherwise derived from the VJP)."""
        self.jvp = jvp
        return jvp

    def defbatch(self, batch: Callable[..., Any]) -> Callable[..., Any]:
        """Set vmap's batching rule."""
        self.batch = batch
        self.op.batch = self._batch_rule
        return batch

    # --- calling it --------------------------------------------------------------------

    def __call__(self, *inputs: Any, **params: Any) -> Tensor:
        if len(inputs) != len(self.inputs):
            raise TypeError(
                f"{self.name}: takes {len(self.inputs)} input(s) ({', '.join(self.inputs)}) "
                f"as positional arguments, got {len(inputs)}; parameters go by keyword"
            )
        # Arrays become constants; a Python number takes the dtype of a Tensor or array
        # beside it (x * 0.5 keeps float32), as for the built-in ops.
        given = [x if isinstance(x, Tensor | int | float) else Tensor(x) for x in inputs]
        like = next((x for x in given if isinstance(x, Tensor)), None)
        parents = tuple(
            x if isinstance(x, Tensor) else (Tensor(x) if like is None else lift(x, like))
            for x in given
        )
        return _apply(self.op, parents, **params)

    def _forward(self, *arrays: Any, **params: Any) -> Any:
        out = self.forward(*arrays, **params)
        if isinstance(out, Tensor):
            raise TypeError(
                f"{self.name}: the forward returned a Tensor; it runs on numpy arrays and "
                "must return one (the VJP says how the output changes)"
            )
        array = np.asarray(out)
        if array.dtype.kind not in "biufc":
            raise TypeError(
                f"{self.name}: the forward must return numbers, got dtype {array.dtype}"
            )
        return array[()] if array.ndim == 0 else array

    # --- reverse mode ------------------------------------------------------------------

    def _vjp_rule(self, index: int) -> Callable[..., Any]:
        last = len(self.inputs) - 1

        def rule(g: Any, out: Any, *args: Any, **params: Any) -> Any:
            grads = self._gradients(g, out, args, params)
            # Recorded (create_graph), the inputs say which will be asked for; on arrays the
            # engine may skip the last input (no grad wanted): then the entry stays until the
            # op's next backward step, one step's arrays.
            if index == last or (
                isinstance(g, Tensor)
                and not any(isinstance(a, Tensor) and a.requires_grad for a in args[index + 1 :])
            ):
                self._last.entry = None  # asked for the last input: keep no graph alive
            return grads[index]

        # The page names the inputs in formulas from the rule's parameters.
        rule.__signature__ = _signature(("g", "out", *self.inputs))  # type: ignore[attr-defined]
        rule.__name__ = f"{self.name}_vjp_{index}"
        return rule

    def _gradients(self, g: Any, out: Any, args: tuple, params: dict) -> tuple:
        """Every input's gradient from one call of the user's VJP, kept until the engine has
        asked for all of them (it calls one rule per input, with the same objects)."""
        # By identity (the engine passes the same objects for each input; the params dict
        # is rebuilt per call, its values are not).
        key = (g, out, *args, *params.values(), *params)
        last = getattr(self._last, "entry", None)
        if (
            last is not None
            and len(last[0]) == len(key)
            and all(a is b for a, b in zip(last[0], key, strict=True))
        ):
            return last[1]
        grads = self._call_vjp(g, out, args, params, derived_jvp=False)
        self._last.entry = (key, grads)
        return grads

    def _call_vjp(self, g: Any, out: Any, args: tuple, params: dict, derived_jvp: bool) -> tuple:
        """The user's VJP on Tensors; gradients back as the engine passed the values in:
        arrays for a plain backward, Tensors when the backward pass is recorded."""
        if self.vjp is None:
            raise NotImplementedError(
                f"{self.name}: no vjp rule; give custom_op(..., vjp=...) or @{self.name}.defvjp"
            )
        recorded = isinstance(g, Tensor) or any(isinstance(a, Tensor) for a in (out, *args))
        ts = [_as_tensor(v) for v in (g, out, *args)]
        result = self.vjp(*ts, **params)
        n = len(self.inputs)
        if n == 1 and not isinstance(result, tuple | list):
            result = (result,)
        if not isinstance(result, tuple | list) or len(result) != n:
            got = f"{len(result)} values" if isinstance(result, tuple | list) else "one value"
            raise TypeError(
                f"{self.name}: the vjp must return one gradient per input ({n}: "
                f"{', '.join(self.inputs)}), got {got}"
            )
        grads = []
        for i, (grad, x) in enumerate(zip(result, ts[2:], strict=True)):
            if grad is None:
                grads.append(_zeros(x, recorded))
                continue
            shape = np.shape(grad._data if isinstance(grad, Tensor) else grad)
            self._check_shape("vjp", f"gradient for input {i} ({self.inputs[i]})", shape,
                              x.shape, ts[1].shape)  # fmt: skip
            if recorded or derived_jvp:
                self._check_differentiable(grad, ts[0], i, derived_jvp)
                grads.append(grad if isinstance(grad, Tensor) else engine.constant(grad))
            else:
                grads.append(np.asarray(grad._data if isinstance(grad, Tensor) else grad))
        return tuple(grads)

    def _check_shape(
        self, rule: str, what: str, got: tuple, shape: tuple, out_shape: tuple
    ) -> None:
        # A gradient may carry the output's broadcast shape (summed down later); anything
        # else would fail deep in the engine (or, worse, broadcast silently).
        try:
            if rule == "jvp":  # a tangent broadcasts up to the output's shape
                fits = np.broadcast_shapes(got, out_shape) == out_shape
            else:  # a gradient is summed down to the input's shape
                fits = np.broadcast_shapes(shape, got) == got
        except ValueError:
            fits = False
        if not fits:
            target = f"the output's shape {out_shape}" if rule == "jvp" else f"shape {shape}"
            raise ValueError(
                f"{self.name}: the {rule} returned a {what} of shape {got}, but it must have "
                f"{target} (or broadcast to it); the op's output has shape {out_shape}"
            )

    def _check_differentiable(self, grad: Any, g: Tensor, index: int, derived_jvp: bool) -> None:
        """A VJP is linear in g: a gradient that does not depend on a g that requires grad
        was computed outside autodiff (numpy on `.data`), and differentiating it again would
        silently give zero."""
        if not g.requires_grad or (isinstance(grad, Tensor) and grad.requires_grad):
            return
        if derived_jvp:
            raise self._underivable(index)
        raise RuntimeError(
            f"{self.name}: a higher derivative needs the vjp differentiated, but its gradient "
            f"for input {index} ({self.inputs[index]}) is not computed from g with autodiff "
            "operations (numpy on .data?); write the vjp with autodiff operations"
        )

    def _underivable(self, index: int) -> NotImplementedError:
        return NotImplementedError(
            f"{self.name}: no jvp rule, and it cannot be derived from the vjp: the vjp's "
            f"gradient for input {index} ({self.inputs[index]}) is not computed from g with "
            "autodiff operations, so it cannot be differentiated. Give custom_op(..., "
            "jvp=...) or write the vjp with autodiff operations"
        )

    # --- forward mode ------------------------------------------------------------------

    def _jvp_rule(self, index: int) -> Callable[..., Any]:
        def rule(t: Any, out: Any, *args: Any, **params: Any) -> Any:
            if self.jvp is not None:
                return self._given_jvp(index, t, out, args, params)
            return self._derived_jvp(index, t, out, args, params)

        rule.__signature__ = _signature(("t", "out", *self.inputs))  # type: ignore[attr-defined]
        rule.__name__ = f"{self.name}_jvp_{index}"
        return rule

    def _given_jvp(self, index: int, t: Any, out: Any, args: tuple, params: dict) -> Any:
        """The user's JVP with this input's tangent and zeros for the others: the engine
        adds the inputs' contributions (a JVP is linear in the tangents)."""
        recorded = any(isinstance(v, Tensor) for v in (t, out, *args))
        xs = [_as_tensor(a) for a in args]
        tangents = [_as_tensor(t) if i == index else _zeros(x, True) for i, x in enumerate(xs)]
        jvp: Any = self.jvp
        result = jvp(tuple(tangents), _as_tensor(out), *xs, **params)
        if result is None:
            return _zeros(_as_tensor(out), recorded)
        out_shape = np.shape(out._data if isinstance(out, Tensor) else out)
        shape = np.shape(result._data if isinstance(result, Tensor) else result)
        self._check_shape("jvp", "tangent", shape, out_shape, out_shape)
        if recorded:
            return result if isinstance(result, Tensor) else engine.constant(np.asarray(result))
        return np.asarray(result._data if isinstance(result, Tensor) else result)

    def _derived_jvp(self, index: int, t: Any, out: Any, args: tuple, params: dict) -> Any:
        """J t from the VJP alone. The VJP u -> J^T u is linear in u, so its own VJP with
        cotangent t is (J^T)^T t = J t, whatever u is: run the user's VJP on a dummy u (zeros,
        requiring grad) with its ops recorded, then backward from its gradient for this input
        with seed t. Recorded again (create_graph) when the tangent is itself a Tensor to be
        differentiated (reverse over forward, nested jvp)."""
        recorded = any(isinstance(v, Tensor) for v in (t, out, *args))
        out_t = _as_tensor(out)
        with engine.enable_grad():
            u = Tensor(np.zeros(out_t.shape, out_t.dtype), requires_grad=True)
            grad = self._call_vjp(u, out_t, args, params, derived_jvp=True)[index]
            if not grad.requires_grad:  # None: this input does not affect the output
                return _zeros(out_t, recorded)
            seed = _as_tensor(t) if recorded else np.asarray(t)
            if np.shape(seed) != grad.shape:  # the VJP gave an output-shaped gradient
                seed = (
                    _apply(rules.broadcast_to, (seed,), shape=grad.shape)
                    if recorded
                    else np.broadcast_to(seed, grad.shape)
                )
            found = engine.backward(
                [grad], [seed], create_graph=recorded, accumulate=False, inputs=[u]
            )
        jt = found[0] if found else None
        if jt is None:  # requires grad through the inputs, but not through u
            raise self._underivable(index)
        return jt

    # --- vmap --------------------------------------------------------------------------

    def _batch_rule(self, op: Op, reals: list, dims: list, size: int, **params: Any) -> Any:
        """vmap's rule for this op, in vmap's calling convention (the row comes first)."""
        if self.batch is not None:
            return self.batch(list(reals), list(dims), size, **params)
        # Elementwise: the forward broadcasts, so line the batch axes up in front (batched
        # inputs as (B, 1, ..., *shape)) and run the op once on the whole batch.
        ndim = max(r.ndim - (d is not None) for r, d in zip(reals, dims, strict=True))
        lined = []
        for r, d in zip(reals, dims, strict=True):
            if d is not None and r.ndim - 1 < ndim:
                shape = tuple(r.shape)
                r = _apply(
                    rules.reshape,
                    (r,),
                    shape=shape[:1] + (1,) * (ndim - len(shape) + 1) + shape[1:],
                )
            lined.append(r)
        result = _apply(op, tuple(lined), **params)
        if all(d is None for d in dims):  # nothing batched: the same for every example
            shape = tuple(result.shape)
            result = _apply(
                rules.broadcast_to,
                (_apply(rules.reshape, (result,), shape=(1, *shape)),),
                shape=(size, *shape),
            )
        return result


# --- helpers -------------------------------------------------------------------------------


def _input_names(forward: Callable[..., Any], name: str) -> tuple[str, ...]:
    """The forward's inputs: its positional parameters without a default."""
    try:
        parameters = inspect.signature(forward).parameters.values()
    except (TypeError, ValueError):
        raise TypeError(f"custom_op {name}: cannot read the forward's parameters") from None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        raise TypeError(
            f"custom_op {name}: the forward takes *args; a custom op has a fixed number of "
            "inputs (name them)"
        )
    names = tuple(p.name for p in parameters if p.kind in positional and p.default is p.empty)
    if not names:
        raise TypeError(f"custom_op {name}: the forward must take at least one input")
    return names


def _signature(names: tuple[str, ...]) -> inspect.Signature:
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return inspect.Signature(
        [inspect.Parameter(n, kind) for n in names]
        + [inspect.Parameter("params", inspect.Parameter.VAR_KEYWORD)]
    )


def _apply(op: Op, parents: tuple, **params: Any) -> Tensor:
    """`engine.apply`, typed: its result is a Tensor (the engine calls it a Node)."""
    out: Any = engine.apply(op, parents, **params)
    return out


def _as_tensor(value: Any) -> Tensor:
    """A value the engine passed to a rule, as a Tensor for the user's rule (an array
    becomes a constant: nothing is recorded on it)."""
    if isinstance(value, Tensor):
        return value
    constant: Any = engine.constant(value)
    return constant


def _zeros(like: Any, recorded: bool) -> Any:
    data = like._data if isinstance(like, Tensor) else like
    zeros = np.zeros(np.shape(data), np.result_type(data))
    return engine.constant(zeros) if recorded else zeros
