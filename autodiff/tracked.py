"""`Tensor.data` as users see it: the tensor's own memory, with every numpy write into it seen.

A node keeps the arrays its op saved by reference, so a write into them between forward and
backward would change the gradient without a word. Writes through Tensors (`t[i] = v`, an
optimizer step) stamp the memory they change (`engine.mark_written`), and backward refuses a
node whose saved memory was stamped after it ran. `t.data` hands out the same memory as a
`DataArray` view that stamps it the same way before numpy writes into it: `t.data[i] = v`,
`t.data -= lr * g`, `np.add(a, b, out=t.data)`, `np.add.at(t.data, i, v)`,
`np.copyto(t.data, v)`, `t.data.fill(0)`, and views of it (`t.data[0]`, `t.data.T`).

Anything that reads answers with plain ndarrays, so the subclass never spreads into the
user's arrays. Deliberate escapes are not seen (`np.asarray(t.data)` is a plain view, as are
`.view(np.ndarray)`, `memoryview` and `ctypes`); write through the view you were given.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import engine

# The Tensor class, set by tensor.py (which imports this module first).
Tensor: type = type(None)

# numpy functions (reached through __array_function__) that write into their first argument.
_WRITES_FIRST = frozenset(
    getattr(np, name) for name in (
        "copyto", "put", "place", "putmask", "fill_diagonal", "put_along_axis",
    ) if hasattr(np, name)
)


class DataArray(np.ndarray):
    """A view of a Tensor's memory whose numpy writes are recorded (see the module's doc)."""

    def __setitem__(self, index: Any, value: Any) -> None:
        engine.mark_written(self)
        np.ndarray.__setitem__(self, index, _raw(value))

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        out = kwargs.get("out")
        if out is None and method != "at" and any(_defers(x) for x in inputs):
            # `t.data * w` with `w` a Tensor: let the Tensor answer (a Tensor result).
            return NotImplemented
        if method == "at" and isinstance(inputs[0], DataArray):
            engine.mark_written(inputs[0])  # np.add.at(t.data, index, v) writes its input
        if out is not None:
            for array in out:
                if isinstance(array, DataArray):
                    engine.mark_written(array)
            kwargs["out"] = tuple(_raw(array) for array in out)
        result = getattr(ufunc, method)(*map(_raw, inputs), **kwargs)
        if out is not None and method != "at":
            # Return the caller's own objects, so `t.data += v` rebinds the same view.
            return out[0] if len(out) == 1 else out
        return result

    def __array_function__(self, func: Any, types: tuple, args: tuple, kwargs: dict) -> Any:
        if func in _WRITES_FIRST and args and isinstance(args[0], DataArray):
            engine.mark_written(args[0])
        out = kwargs.get("out")
        if func is np.dot and len(args) > 2:
            out = args[2]
        for array in out if isinstance(out, tuple) else (out,):
            if isinstance(array, DataArray):
                engine.mark_written(array)
        result = super().__array_function__(func, types, args, kwargs)
        return _plain_result(result, out)

    # ndarray methods that write in place without a ufunc.
    def fill(self, value: Any) -> None:
        engine.mark_written(self)
        np.ndarray.fill(self, value)

    def sort(self, *args: Any, **kwargs: Any) -> None:
        engine.mark_written(self)
        np.ndarray.sort(self, *args, **kwargs)

    def partition(self, *args: Any, **kwargs: Any) -> None:
        engine.mark_written(self)
        np.ndarray.partition(self, *args, **kwargs)

    def put(self, *args: Any, **kwargs: Any) -> None:
        engine.mark_written(self)
        np.ndarray.put(self, *args, **kwargs)

    def setfield(self, *args: Any, **kwargs: Any) -> None:
        engine.mark_written(self)
        np.ndarray.setfield(self, *args, **kwargs)

    def byteswap(self, inplace: bool = False) -> np.ndarray:
        if inplace:
            engine.mark_written(self)
            np.ndarray.byteswap(self, True)
            return self
        return np.ndarray.byteswap(self.view(np.ndarray))

    # Copies are the user's own arrays: plain ndarrays.
    def copy(self, order: str = "C") -> np.ndarray:
        return np.ndarray.copy(self.view(np.ndarray), order)

    def __copy__(self) -> np.ndarray:
        return self.copy()

    def __deepcopy__(self, memo: dict) -> np.ndarray:
        return self.copy()

    def astype(self, *args: Any, **kwargs: Any) -> np.ndarray:
        return self.view(np.ndarray).astype(*args, **kwargs)

    def __reduce__(self) -> Any:
        return self.view(np.ndarray).__reduce__()  # pickles as a plain array

    def __repr__(self) -> str:
        return repr(self.view(np.ndarray))

    def __str__(self) -> str:
        return str(self.view(np.ndarray))


def _defers(value: Any) -> bool:
    """True for operands with their own __array_ufunc__ that are not arrays (Tensors)."""
    return (not isinstance(value, np.ndarray | np.generic)
            and getattr(type(value), "__array_ufunc__", None) is not None)


def _raw(value: Any) -> Any:
    """The plain array behind a DataArray or a Tensor; anything else as it is."""
    if isinstance(value, DataArray):
        return value.view(np.ndarray)
    return value._data if isinstance(value, Tensor) else value


def _plain_result(result: Any, out: Any) -> Any:
    if out is not None:
        return out
    if isinstance(result, DataArray):
        return result.view(np.ndarray)
    if isinstance(result, tuple | list):
        return type(result)(_plain_result(r, None) for r in result)
    return result


def view_of(array: np.ndarray) -> DataArray:
    """The tracked view of `array` that `Tensor.data` hands out."""
    return array.view(DataArray)
