"""Saving and loading weights: atomic .npz files, never unpickled.

A file written by `save` is an ordinary .npz (a zip of .npy files, uncompressed) holding the
arrays plus two text entries: `__format__`, the format name and version, and `__manifest__`, a
JSON object of the names, shapes and dtypes it holds. Both are plain string arrays, so
`np.load(path, allow_pickle=False)` reads every entry.

A checkpoint, a dict that nests dicts (or modules, optimizers, schedulers: their
state_dict()) and plain numbers or strings beside the arrays, e.g. `{"model": model.state_dict(),
"optimizer": opt.state_dict(), "epoch": 3}`, is written the same way: its arrays under
"model/layers.0.weight"-style names, and one more text entry, `__tree__`, the JSON of the
nesting with the numbers and strings themselves. Such files carry the format "autodiff-nn/2";
`load` gives the same nested dict back (numbers as Python numbers), still never unpickling.

`load` trusts nothing in the file: it checks every entry's .npy header against the size the
zip directory gives for it (so a forged header cannot make it allocate gigabytes), the format
marker, and the manifest, before reading any array, and it never unpickles.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .formats import numpy_can_hold

FORMAT = "autodiff-nn/1"
TREE_FORMAT = "autodiff-nn/2"  # a checkpoint: FORMAT plus the __tree__ entry
_FORMAT_KEY = "__format__"
_MANIFEST_KEY = "__manifest__"
_TREE_KEY = "__tree__"
_OWN_KEYS = (_FORMAT_KEY, _MANIFEST_KEY, _TREE_KEY)
_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned ints, floats


# --- writing ---------------------------------------------------------------------------------


def _write_npz(file: BinaryIO, arrays: Mapping[str, np.ndarray], *, compress: bool = False) -> None:
    """Write `arrays` as an .npz with fixed timestamps, so equal arrays give equal bytes."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(file, "w") as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(
                info, buffer.getvalue(), compress_type=method, compresslevel=9 if compress else None
            )


def _as_state_dict(obj: Any) -> dict[str, np.ndarray]:
    state = obj.state_dict() if hasattr(obj, "state_dict") else obj
    if not isinstance(state, Mapping):
        raise TypeError(
            f"save: expected a module (with .state_dict()) or a dict of arrays, "
            f"got {type(obj).__name__}"
        )
    arrays = {}
    for name, value in state.items():
        if not isinstance(name, str) or not name or name.startswith("__"):
            raise ValueError(
                f"save: invalid parameter name {name!r} (names are non-empty "
                f"strings; a leading '__' is reserved for the file's own entries)"
            )
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                f"save: parameter name {name!r} is not valid text (it holds a "
                f"lone surrogate, which no file format can store)"
            ) from None
        # Tensors (anything with .data) are saved by value; ndarrays also have a .data
        # attribute (their raw buffer), so they are taken as they are.
        if not isinstance(value, (np.ndarray, np.generic)) and hasattr(value, "data"):
            value = value.data
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as exc:  # ragged nested lists, objects numpy refuses
            raise TypeError(f"save: parameter '{name}' is not an array ({exc})") from None
        if array.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(
                f"save: parameter '{name}' has dtype {array.dtype}; only bool, "
                f"integer and float arrays can be saved"
            )
        arrays[name] = array
    return arrays


def _is_checkpoint(obj: Any) -> bool:
    """A dict holding more than arrays: nested dicts, objects with state_dict(), strings,
    None or Python numbers beside them. (A flat dict of arrays keeps the original format:
    a Python number in it is saved as a 0-d array, as before.)"""
    if hasattr(obj, "state_dict") or not isinstance(obj, Mapping):
        return False
    return any(
        isinstance(v, (Mapping, str)) or v is None or hasattr(v, "state_dict") for v in obj.values()
    )


def _flatten_checkpoint(obj: Mapping) -> tuple[dict[str, np.ndarray], Any]:
    """(name -> array, the JSON tree) of a checkpoint. Array leaves are named by their path
    joined with "/" ("model/layers.0.weight"); numbers, bools, strings and None are kept in
    the tree itself, so they come back as the Python values they were."""
    arrays: dict[str, np.ndarray] = {}

    def node(value: Any, path: tuple[str, ...]) -> Any:
        where = "/".join(path)
        if hasattr(value, "state_dict") and not isinstance(value, Mapping):
            value = value.state_dict()
        if isinstance(value, Mapping):
            items = []
            for key, item in value.items():
                if not isinstance(key, str) or not key or key.startswith("__"):
                    raise ValueError(
                        f"save: invalid key {key!r} in the checkpoint"
                        + (f" under {where!r}" if where else "")
                        + " (keys are non-empty strings; a leading '__' is reserved)"
                    )
                items.append([key, node(item, (*path, key))])
            return {"dict": items}
        if value is None or isinstance(value, (bool, str)):
            return {"value": value}
        if isinstance(value, (int, float)) and not isinstance(value, np.generic):
            if isinstance(value, int) and not -(2**63) <= value < 2**63:
                raise ValueError(f"save: the number at {where!r} does not fit in 64 bits")
            return {"value": value}
        if where in arrays:
            raise ValueError(
                f"save: two entries of the checkpoint are both named {where!r} once their "
                f"keys are joined with '/'; rename one"
            )
        arrays[where] = _as_state_dict({where: value})[where]
        return {"array": where}

    return arrays, node(obj, ())


def _unflatten_checkpoint(tree: Any, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The nested dict a checkpoint's tree describes, or _Refused if the tree is malformed
    or does not use every array exactly once."""
    used: set[str] = set()

    def build(n: Any, depth: int) -> Any:
        if depth > 100 or not isinstance(n, dict) or len(n) != 1:
            raise _Refused(f"its {_TREE_KEY} entry is malformed")
        ((kind, value),) = n.items()
        if kind == "dict" and isinstance(value, list):
            out = {}
            for item in value:
                if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
                    raise _Refused(f"its {_TREE_KEY} entry is malformed")
                out[item[0]] = build(item[1], depth + 1)
            return out
        if kind == "value" and (value is None or isinstance(value, (bool, int, float, str))):
            return value
        if kind == "array" and isinstance(value, str) and value in arrays and value not in used:
            used.add(value)
            return arrays[value]
        raise _Refused(f"its {_TREE_KEY} entry is malformed or names a missing array")

    result = build(tree, 0)
    if not isinstance(result, dict) or used != set(arrays):
        raise _Refused(f"its {_TREE_KEY} entry does not account for every array it holds")
    return result


# A zip entry's name length is a 16-bit field, and ours is the name plus ".npy".
_MAX_NAME_BYTES = 0xFFFF - len(".npy")


def _check_npz_names(arrays: Mapping[str, np.ndarray]) -> None:
    """Refuse, naming the parameter, a name an .npz cannot give back as it was given: the
    read-back check would catch it, but only with a vague "did not read back unchanged"."""
    for name in arrays:
        if "\0" in name:
            raise ValueError(
                f"save: parameter name {name!r} contains a NUL character, where a "
                f"zip archive ends an entry's name, so it would read back as "
                f"{name.split(chr(0))[0]!r}; rename it (or save as .safetensors)"
            )
        size = len(name.encode("utf-8"))
        if size > _MAX_NAME_BYTES:
            raise ValueError(
                f"save: parameter name {name[:40]!r}... is {size} bytes long in "
                f"UTF-8; an .npz entry name holds at most {_MAX_NAME_BYTES}"
            )
        if name.endswith(".npy") and name[:-4] in arrays:
            # numpy's reader strips ".npy" from entry names and looks a key up raw first, so
            # npz["x.npy"] is the entry of "x": the two names cannot both be kept apart.
            raise ValueError(
                f"save: parameter names {name[:-4]!r} and {name!r} cannot both "
                f"be saved in an .npz: numpy's reader drops '.npy' from entry "
                f"names, so one would read back as the other; rename one (or save "
                f"as .safetensors)"
            )


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX only; Windows cannot open folders)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse; the data itself is already synced
    finally:
        os.close(fd)


_OTHER_FORMATS = {
    ".pt": "PyTorch",
    ".pth": "PyTorch",
    ".ckpt": "checkpoint",
    ".bin": "PyTorch",
    ".onnx": "ONNX",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".h5": "HDF5",
    ".keras": "Keras",
    ".json": "JSON",
    ".npy": ".npy (one array)",
}


def save(module_or_state_dict: Any, path: str | os.PathLike[str]) -> Path:
    """Write a module's weights (anything with `.state_dict()`), a dict of name -> array, or
    a checkpoint dict (`{"model": sd, "optimizer": osd, "epoch": 3}`: nested dicts, modules,
    numbers and strings; `load` gives it back as it was) to `path` as .npz, atomically: the
    file is written beside the target, synced, and renamed over it, so a crash mid-save
    leaves the old file intact. Returns the path.

    Only bool, integer and float arrays are accepted (TypeError otherwise). A path ending in
    `.safetensors` is written in that format instead (readable by the `safetensors` package
    and PyTorch), just as atomically.
    """
    suffix = Path(path).suffix.lower()
    if suffix in _OTHER_FORMATS:
        # .npz bytes under another format's name would fail in that format's reader, far
        # from here (torch.load("model.pt") of our file), or be read back by nobody.
        raise ValueError(
            f"save: {str(path)!r} names a {_OTHER_FORMATS[suffix]} file, but nn.save writes .npz "
            "or .safetensors (name it .npz or .safetensors; PyTorch reads .safetensors, and "
            "nn.to_torch(model) gives a torch module for torch.save, nn.export_onnx an ONNX file)"
        )
    tree = None
    if _is_checkpoint(module_or_state_dict):
        arrays, tree = _flatten_checkpoint(module_or_state_dict)
    else:
        arrays = _as_state_dict(module_or_state_dict)
    if suffix == ".safetensors":
        if tree is not None:
            raise ValueError(
                "save: a .safetensors file holds a flat dict of arrays; this checkpoint "
                "nests dicts or holds numbers or strings: save it as .npz"
            )
        from .formats import write_safetensors

        return write_safetensors(arrays, path, metadata={"producer": FORMAT})
    _check_npz_names(arrays)
    manifest = {name: {"shape": list(a.shape), "dtype": a.dtype.str} for name, a in arrays.items()}
    entries = {
        _FORMAT_KEY: np.array(FORMAT if tree is None else TREE_FORMAT),
        _MANIFEST_KEY: np.array(json.dumps(manifest)),
    }
    if tree is not None:
        entries[_TREE_KEY] = np.array(json.dumps(tree))
    entries.update(arrays)
    path = Path(path)
    return write_atomic(
        path,
        lambda f: _write_npz(f, entries),
        "save",
        check=lambda written: _verify(written, arrays, path, tree),
    )


def write_atomic(
    path: str | os.PathLike[str],
    write: Callable[[BinaryIO], object],  # what it returns (a byte count) is unused
    who: str,
    check: Callable[[Path], None] | None = None,
) -> Path:
    """Call `write(file)` on a temporary file beside `path`, sync it, run `check(temporary
    path)` if given, and rename it over `path`: readers see the old file or the new one, never
    half of one, and a file that fails its check never replaces a good one. Every save of nn
    (.npz, .safetensors, ONNX) goes through here. Returns the path."""
    path = Path(path)
    # Renaming over a symbolic link would replace the link with a file and leave the file it
    # points to stale; np.save and torch.save write through the link, and so do we: the new
    # file is made beside the link's final target and renamed over that target.
    target = _link_target(path, who) if path.is_symlink() else path
    folder = target.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"{who}: folder {folder} does not exist (saving {path})")
    # The temporary file is created 0600; give it the mode the file it replaces had (or, for
    # a new file, what the umask gives any new file), so a save never narrows permissions.
    mode = _mode_for(target)
    try:
        # The temporary name keeps at most 40 characters (160 bytes of UTF-8) of the target's,
        # so a target name near the file system's limit (255 bytes) still leaves room for
        # the ".XXXXXXXX.tmp" around it.
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name[:40]}.", suffix=".tmp")
    except OSError as exc:
        raise _naming(exc, who, path) from None
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, mode)
            if check is not None:
                check(Path(tmp))
            os.replace(tmp, target)
        except OSError as exc:
            raise _naming(exc, who, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(folder)
    return path


def _naming(exc: OSError, who: str, path: Path) -> OSError:
    """The error naming the user's file: the hidden temporary one means nothing to them."""
    message = f"{who}: could not write {path}: {exc.strerror or exc}"
    return OSError(exc.errno, message) if exc.errno else OSError(message)


def _link_target(path: Path, who: str) -> Path:
    """The file a symbolic link finally points to (through chains of links; it need not
    exist yet, as with a dangling link), or an error naming `path` for a loop of links."""
    target = Path(os.path.realpath(path))
    if target.is_symlink():  # realpath stops where a loop of links would go round forever
        raise OSError(errno.ELOOP, f"{who}: could not write {path}: it is a loop of symbolic links")
    return target


def _mode_for(path: Path) -> int:
    """The permissions a file written to `path` should get: those of the file it replaces,
    else what the umask gives a new file (never the temporary file's 0600)."""
    return stat.S_IMODE(path.stat().st_mode) if path.is_file() else 0o666 & ~_umask()


def _umask() -> int:
    # The only portable way to read the umask is to set it and put it back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _verify(written: Path, arrays: Mapping[str, np.ndarray], path: Path, tree: Any = None) -> None:
    """Read the new file back as `load` would and compare it bit for bit with `arrays`."""
    try:
        with np.load(written, allow_pickle=False) as npz:
            back, back_tree = _read_tree(npz)
        if tree is not None and json.dumps(back_tree) != json.dumps(tree):
            raise _Refused("the checkpoint's structure did not read back unchanged")
    except (_Refused, *_DAMAGE) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, _Refused):
            raise
        raise ValueError(
            f"save: {path} was left as it was: the new file did not read back "
            f"({type(exc).__name__}: {exc})"
        ) from None
    for name, array in arrays.items():
        got = back.get(name)
        if (
            got is None
            or got.dtype != array.dtype
            or got.shape != array.shape
            or got.tobytes() != np.ascontiguousarray(array).tobytes()
        ):
            raise ValueError(
                f"save: {path} was left as it was: parameter '{name}' did not read back unchanged"
            )


# --- reading ---------------------------------------------------------------------------------

# What a file that is not a zip archive at all most likely is, by its first bytes.
_NOT_ZIP = {b"\x93NUMPY": "a bare .npy array", b"\x80": "a Python pickle (never unpickled)"}

# What the zip and .npy readers raise on damaged input (BadZipFile for a bad CRC or directory,
# zlib.error for broken compressed data, RuntimeError for encrypted entries, ...).
_DAMAGE = (
    OSError,
    EOFError,
    KeyError,
    ValueError,
    struct.error,
    zlib.error,
    zipfile.BadZipFile,
    NotImplementedError,
    RuntimeError,
)


class _Refused(ValueError):
    """A file we read fine but that is not (or no longer) what `save` wrote."""


def _entry_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple, np.dtype]:
    """Shape and dtype from one entry's .npy header, checked against the entry's real size."""
    if not info.filename.endswith(".npy") or info.compress_type != zipfile.ZIP_STORED:
        raise _Refused(f"unexpected entry {info.filename!r} (not an uncompressed .npy)")
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise _Refused(f"entry {info.filename!r} has unsupported .npy version {version}")
        data_bytes = info.file_size - member.tell()
    if dtype.hasobject:
        raise _Refused(f"entry {info.filename!r} holds Python objects (pickled data, refused)")
    if not numpy_can_hold(shape, dtype.itemsize):
        raise _Refused(
            f"entry {info.filename!r} declares shape {shape}, which no numpy array can have"
        )
    declared = math.prod(shape) * dtype.itemsize
    if declared != data_bytes:
        raise _Refused(
            f"entry {info.filename!r} declares {dtype} {shape} ({declared} bytes) "
            f"but holds {data_bytes} bytes"
        )
    return shape, dtype


def _text(array: np.ndarray) -> str:
    if array.dtype.kind == "U" and array.ndim == 0:
        return str(array[()])
    if array.dtype == np.uint8 and array.ndim == 1:  # files from before text entries
        return array.tobytes().decode("utf-8")
    raise _Refused(f"a text entry has dtype {array.dtype} and shape {array.shape}")


def _manifest(text: str) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (shape, dtype string) from the manifest's JSON, or _Refused if malformed."""
    entries = json.loads(text)
    if not isinstance(entries, dict):
        raise _Refused("its manifest is not a JSON object")
    result = {}
    for name, entry in entries.items():
        ok = (
            isinstance(entry, dict)
            and isinstance(entry.get("shape"), list)
            and isinstance(entry.get("dtype"), str)
            and all(isinstance(d, int) for d in entry["shape"])
        )
        if not ok:
            raise _Refused(f"its manifest entry for {name!r} is malformed: {entry!r}")
        result[name] = (tuple(entry["shape"]), entry["dtype"])
    return result


def _read_checked(npz: Any) -> dict[str, np.ndarray]:
    return _read_tree(npz)[0]


def _read_tree(npz: Any) -> tuple[dict[str, np.ndarray], Any]:
    """The arrays, checked, and the checkpoint's tree (None for a plain dict of arrays)."""
    archive: zipfile.ZipFile = npz.zip
    names = archive.namelist()
    if f"{_FORMAT_KEY}.npy" not in names or f"{_MANIFEST_KEY}.npy" not in names:
        raise _Refused("it was not written by nn.save (no format marker or manifest)")
    headers = {info.filename[:-4]: _entry_header(archive, info) for info in archive.infolist()}
    marker = _text(npz[_FORMAT_KEY])
    if marker not in (FORMAT, TREE_FORMAT):
        raise _Refused(f"it has format {marker!r}; this version reads {FORMAT!r}")
    tree = None
    if marker == TREE_FORMAT:
        if f"{_TREE_KEY}.npy" not in names:
            raise _Refused(f"it has format {marker!r} but no {_TREE_KEY} entry")
        try:
            tree = json.loads(_text(npz[_TREE_KEY]))
        except json.JSONDecodeError:
            raise _Refused(f"its {_TREE_KEY} entry is not JSON") from None
    manifest = _manifest(_text(npz[_MANIFEST_KEY]))
    own = _OWN_KEYS if tree is not None else (_FORMAT_KEY, _MANIFEST_KEY)
    stored = {name: h for name, h in headers.items() if name not in own}
    if set(manifest) != set(stored) or len(headers) != len(names):
        raise _Refused(f"its manifest lists {sorted(manifest)} but it holds {sorted(stored)}")
    for name, (shape, dtype) in stored.items():
        if dtype.kind not in _NUMERIC_KINDS or (shape, dtype.str) != manifest[name]:
            raise _Refused(
                f"parameter '{name}' is {dtype} {shape} but the manifest says "
                f"{manifest[name][1]} {manifest[name][0]}"
            )
    # Every header is now known to be sound: reading allocates only what the file holds.
    return {name: npz[name] for name in manifest}, tree


def load(path: str | os.PathLike[str], into: Any = None, strict: bool = True) -> Any:
    """Read the dict of name -> array written by `save`, in the order it was saved (or the
    checkpoint dict, nested as it was, with its numbers and strings as Python values).

    With `into=model`, the arrays are loaded into that module instead (its
    `load_state_dict(..., strict=strict)`: every name, shape and dtype is checked before any
    weight changes) and the module is returned, the mirror of `save(model, path)`.

    Raises FileNotFoundError if `path` does not exist, and ValueError naming the path and the
    problem if the file is truncated, damaged, foreign (not written by `save`) or holds pickled
    objects. Pickles are never executed: everything is read with allow_pickle=False.
    A path ending in `.safetensors` is read as that format, with the same guarantees.
    """
    if into is not None and not hasattr(into, "load_state_dict"):
        raise TypeError(
            f"load: into= must be a module (with .load_state_dict()), got {type(into).__name__}"
        )
    state = _load(path)
    if into is None:
        return state
    if any(isinstance(v, dict) for v in state.values()) or not all(
        isinstance(v, np.ndarray) for v in state.values()
    ):
        raise ValueError(
            f"load: {path} is a checkpoint with entries {list(state)}, not one module's "
            f"weights: load it, then model.load_state_dict(checkpoint[<the model's key>])"
        )
    into.load_state_dict(state, strict=strict)
    return into


def _load(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        from .formats import read_safetensors

        return read_safetensors(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "no such file"
        raise FileNotFoundError(f"load: {what}: {path}")
    with path.open("rb") as f:
        head = f.read(6)
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        kind = next(
            (v for k, v in _NOT_ZIP.items() if head.startswith(k)), f"it starts with {head!r}"
        )
        raise ValueError(f"load: {path} is not an .npz weights file ({kind})")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays, tree = _read_tree(npz)
            return arrays if tree is None else _unflatten_checkpoint(tree, arrays)
    except _Refused as exc:
        raise ValueError(f"load: {path} was refused: {exc}") from None
    except _DAMAGE as exc:
        raise ValueError(
            f"load: {path} is truncated or damaged ({type(exc).__name__}: {exc})"
        ) from None
