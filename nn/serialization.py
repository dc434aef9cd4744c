"""Saving and loading weights: atomic .npz files, never unpickled.

A file written by `save` holds the arrays plus two small entries: a format marker with its
version, and a manifest of the names, shapes and dtypes it holds, both plain byte strings.
`load` opens it with pickling disabled and checks both before returning anything.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "autodiff-nn/1"
_FORMAT_KEY = "__format__"
_MANIFEST_KEY = "__manifest__"


def _as_state_dict(obj: Any) -> dict[str, np.ndarray]:
    state = obj.state_dict() if hasattr(obj, "state_dict") else obj
    if not isinstance(state, dict):
        raise TypeError(f"save: expected a Module or a dict of arrays, got {type(obj).__name__}")
    arrays = {}
    for name, value in state.items():
        if not isinstance(name, str) or name.startswith("__"):
            raise ValueError(f"save: invalid parameter name {name!r}")
        array = np.asarray(getattr(value, "data", value))
        if array.dtype.kind not in "biuf":
            raise TypeError(f"save: parameter '{name}' has unsupported dtype {array.dtype}")
        arrays[name] = array
    return arrays


def save(module_or_state_dict: Any, path: str | os.PathLike) -> Path:
    """Write weights to `path` (.npz) atomically: a crash mid-save leaves the old file intact."""
    arrays = _as_state_dict(module_or_state_dict)
    manifest = {name: {"shape": list(a.shape), "dtype": a.dtype.str} for name, a in arrays.items()}
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".",
                               prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                **{_FORMAT_KEY: np.frombuffer(FORMAT.encode(), dtype=np.uint8),
                   _MANIFEST_KEY: np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8)},
                **arrays,
            )
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows: readers see old or new, never half
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a file written by `save`; refuses truncated, foreign or pickled files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load: no such file: {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            names = list(f.files)
            if _FORMAT_KEY not in names or _MANIFEST_KEY not in names:
                raise ValueError(f"load: {path} was not written by nn.save (no format marker)")
            marker = bytes(f[_FORMAT_KEY]).decode("utf-8", "replace")
            if marker != FORMAT:
                raise ValueError(f"load: {path} has format {marker!r}, expected {FORMAT!r}")
            manifest = json.loads(bytes(f[_MANIFEST_KEY]).decode("utf-8"))
            arrays = {name: f[name] for name in names if name not in (_FORMAT_KEY, _MANIFEST_KEY)}
    except ValueError as exc:
        if str(exc).startswith("load:"):
            raise
        raise ValueError(f"load: {path} is not a valid weights file ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, UnicodeDecodeError) as exc:
        raise ValueError(f"load: {path} is truncated or not a weights file ({exc})") from None
    if not isinstance(manifest, dict) or set(manifest) != set(arrays):
        raise ValueError(f"load: {path} is inconsistent: its manifest does not list its arrays")
    for name, array in arrays.items():
        entry = manifest[name]
        if list(array.shape) != entry.get("shape") or array.dtype.str != entry.get("dtype"):
            raise ValueError(
                f"load: {path}: parameter '{name}' is {array.dtype} {array.shape} but the "
                f"manifest says {entry.get('dtype')} {tuple(entry.get('shape') or ())}"
            )
    return arrays
