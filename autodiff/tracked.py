"""`Tensor.data` as users see it: the tensor's own memory, with every numpy write into it seen.

A node keeps the arrays its op saved by reference, so a write into them between forward and
backward would change the gradient without a word. Writes through Tensors (`t[i] = v`, an
optimizer step) stamp the memory they change (`engine.mark_written`), and backward refuses a
node whose saved memory was stamped after it ran.

`t.data` hands out that memory as a `DataArray`: a view flagged read-only for numpy, whose own
write paths stamp the memory and then write through a writable view: `t.data[i] = v`,
`t.data -= lr * g`, `np.add(a, b, out=t.data)`, `np.add.at(t.data, i, v)`,
`np.copyto(t.data, v)`, `t.data.fill(0)`, `.sort()`, and the same on views of it (`t.data[0]`,
`t.data.T`). Any other way numpy could write into it (`t.data.flat[i] = v`,
`rng.shuffle(t.data)`, `rng.random(out=t.data)`, `np.asarray(t.data)[i] = v`) meets the
read-only flag and fails loudly instead of changing saved numbers unseen.

Reading answers with plain ndarrays, so the subclass never spreads into the user's arrays.
"""

from __future__ import annotations

from typing import Any, Literal, cast

import numpy as np

from . import engine

# numpy functions (reached through __array_function__) that write into an argument.
_WRITERS = frozenset(
    getattr(np, name)
    for name in (
        "copyto",
        "put",
        "place",
        "putmask",
        "fill_diagonal",
        "put_along_axis",
    )
    if hasattr(np, name)
)


_TARGETS = frozenset({"dst", "a", "arr"})


class DataArray(np.ndarray):
    """A read-only view of a Tensor's memory whose numpy writes are recorded (module doc)."""

    def __setitem__(self, index: Any, value: Any) -> None:
        _writable(self)[index] = _raw(value)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        out = kwargs.get("out")
        if out is None and method != "at" and any(_defers(x) for x in inputs):
            # `t.data * w` with `w` a Tensor: let the Tensor answer (a Tensor result).
            return NotImplemented
        if out is not None:
            kwargs["out"] = tuple(_writable(a) if isinstance(a, DataArray) else a for a in out)
        if method == "at" and isinstance(inputs[0], DataArray):
            # np.add.at(t.data, index, v) writes into its first input.
            inputs = (_writable(inputs[0]), *inputs[1:])
        result = getattr(ufunc, method)(*map(_raw, inputs), **kwargs)
        if out is not None:
            # The caller's own objects, so `t.data += v` rebinds the same view.
            return out[0] if len(out) == 1 else out
        return result

    # numpy passes a tuple and a dict (NEP 18); its stub declares any Iterable and Mapping.
    def __array_function__(self, func: Any, types: tuple, args: tuple, kwargs: dict) -> Any:  # type: ignore[override]
        out = kwargs.get("out")
        if func is np.dot and len(args) > 2:
            out = args[2]
        # The array written: a writer's first parameter (dst, a or arr), else `out`; every
        # other argument is only read.
        target = out
        if func in _WRITERS:
            target = args[0] if args else next((kwargs[k] for k in _TARGETS if k in kwargs), None)

        def convert(value: Any) -> Any:
            if value is target and isinstance(value, DataArray):
                return _writable(value)
            return _raw(value)

        args = tuple(map(convert, args))
        kwargs = {k: convert(v) for k, v in kwargs.items()}
        # numpy's own implementation (DataArrays nested in lists meet __array_ufunc__ there).
        result = super().__array_function__(func, types, args, kwargs)
        if out is not None:
            return out
        return result.view(np.ndarray) if isinstance(result, DataArray) else result

    # ndarray methods that write in place without a ufunc.
    def fill(self, value: Any) -> None:
        _writable(self).fill(value)

    def sort(self, *args: Any, **kwargs: Any) -> None:
        _writable(self).sort(*args, **kwargs)

    def partition(self, *args: Any, **kwargs: Any) -> None:
        _writable(self).partition(*args, **kwargs)

    def put(self, *args: Any, **kwargs: Any) -> None:
        _writable(self).put(*args, **kwargs)

    # Copies are the user's own arrays: plain and writable.
    def copy(self, order: Literal["K", "A", "C", "F"] | None = "C") -> np.ndarray:
        return np.ndarray.copy(self.view(np.ndarray), order)

    def __copy__(self) -> np.ndarray:
        return self.copy()

    def __deepcopy__(self, memo: dict[int, Any] | None) -> np.ndarray:
        return self.copy()

    def astype(self, *args: Any, **kwargs: Any) -> np.ndarray:
        result = self.view(np.ndarray).astype(*args, **kwargs)
        if result.base is not None:  # astype(copy=False) of the same dtype: still our memory
            result = result.copy()
        return result

    def __reduce__(self) -> Any:
        return self.copy().__reduce__()  # pickles as a plain array

    def __repr__(self) -> str:
        return repr(self.view(np.ndarray))

    def __str__(self) -> str:
        return str(self.view(np.ndarray))


def view_of(array: np.ndarray) -> DataArray:
    """The view of `array` that `Tensor.data` hands out: read-only for numpy, tracked here."""
    return cast(DataArray, read_only(array, DataArray))


def read_only(array: np.ndarray, kind: type = np.ndarray) -> np.ndarray:
    """A view of `array` (as `kind`) that numpy refuses to write through."""
    view: np.ndarray = array.view(kind)
    view.flags.writeable = False
    return view


def _writable(view: DataArray) -> np.ndarray:
    """A writable plain view of `view`'s memory, stamped as written (see engine.mark_written)."""
    plain = view.view(np.ndarray)
    try:
        plain.flags.writeable = True
    except ValueError:
        raise ValueError(
            f"Tensor.data: this tensor's memory is read-only (shape {view.shape}, e.g. a "
            "broadcast result); write into a copy, or give the tensor new numbers with "
            "t.data = ..."
        ) from None
    engine.mark_written(plain)
    return plain


def _defers(value: Any) -> bool:
    """True for operands with their own __array_ufunc__ that are not arrays (Tensors)."""
    return (
        not isinstance(value, np.ndarray | np.generic)
        and getattr(type(value), "__array_ufunc__", None) is not None
    )


def _raw(value: Any) -> Any:
    """The plain array behind a DataArray or a Tensor; anything else as it is."""
    if isinstance(value, DataArray):
        return value.view(np.ndarray)
    return value._data if isinstance(value, engine.Node) else value
