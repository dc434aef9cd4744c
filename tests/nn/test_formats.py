"""nn/formats.py: the safetensors format written and read here, and refusal of crafted
files.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nn
from nn.formats import read_safetensors

# --- files --------------------------------------------------------------------------------------


def _safetensors(path, header: bytes, data: bytes = b""):
    path.write_bytes(len(header).to_bytes(8, "little") + header + data)
    return path


@pytest.mark.parametrize(
    "header,data",
    [
        (
            b'{"a":{"dtype":"F32","shape":[0,1000000000000000000000000000000],"data_offsets":[0,0]}}',
            b"",
        ),
        (b'{"a":{"dtype":"F64","shape":[4611686018427387904,4,0],"data_offsets":[0,0]}}', b""),
        (
            b'{"a":{"dtype":"F32","shape":[' + b",".join([b"1"] * 65) + b'],"data_offsets":[0,4]}}',
            b"\0" * 4,
        ),
        (b'{"a":{"dtype":"F32","shape":[' + b"9" * 5000 + b'],"data_offsets":[0,4]}}', b"\0" * 4),
    ],
    ids=["0-by-1e30", "2**62-by-4-by-0", "65-axes", "5000-digits"],
)
def test_crafted_safetensors_shapes_are_refused_naming_the_file(tmp_path, header, data):
    """Shapes that pass the size check (an empty axis makes any other axis hold no bytes) or
    a 5,000-digit integer reached numpy or json and came out as their own ValueErrors
    ("Maximum allowed dimension exceeded", "Exceeds the limit (4300 digits)..."), naming
    neither the file nor the tensor.

    Found in the attack round (forward mode, transforms, conv, export).
    """
    import nn

    path = _safetensors(tmp_path / "w.safetensors", header, data)
    with pytest.raises(ValueError, match=r"load: .*w\.safetensors is not a valid \.safetensors"):
        nn.load(path)


def test_a_name_given_twice_is_still_named(tmp_path):
    """Found in the attack round (forward mode, transforms, conv, export)."""
    import nn

    header = (
        b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
        b'"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}'
    )
    with pytest.raises(ValueError, match="names 'a' twice"):
        nn.load(_safetensors(tmp_path / "w.safetensors", header, b"\1\2"))


def _state() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "layers.0.weight": rng.normal(size=(3, 4)).astype(np.float32),
        "layers.0.bias": rng.normal(size=3),
        "half": rng.normal(size=(2, 2)).astype(np.float16),
        "step": np.array(17, dtype=np.int64),
        "counts": np.arange(-5, 5, dtype=np.int8),
        "unsigned": np.arange(4, dtype=np.uint32),
        "mask": np.array([True, False, True]),
        "empty": np.zeros((0, 3), dtype=np.float64),
        "transposed": np.arange(12, dtype=np.float64).reshape(3, 4).T,  # not C-contiguous
        "big_endian": np.arange(3, dtype=">i4"),
        "größe.ß": np.array([1.5]),
    }


def _assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert list(got) == list(want)
    for name, array in want.items():
        assert got[name].shape == array.shape, name
        assert got[name].dtype == array.dtype.newbyteorder("="), name
        np.testing.assert_array_equal(got[name], array, err_msg=name)


_DTYPES = st.sampled_from(
    ["?", "u1", "i1", "<u2", ">i2", "<u4", "<i4", "<u8", ">i8", "<f2", "<f4", ">f8"]
).map(np.dtype)


_ARRAYS = st.dictionaries(
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=8).filter(
        lambda n: not n.startswith("__")
    ),
    _DTYPES.flatmap(
        lambda d: hnp.arrays(d, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
    ),
    max_size=5,
)


_VALID = None


def _valid_file_bytes() -> bytes:
    global _VALID
    if _VALID is None:
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            path = nn.save(
                {
                    "a": np.arange(6, dtype=np.float32).reshape(2, 3),
                    "b": np.array([1, 2], dtype=np.int64),
                },
                Path(folder) / "v.safetensors",
            )
            _VALID = path.read_bytes()
    return _VALID


def _file(tmp_path: Path, header: object, data: bytes = b"", length: int | None = None) -> Path:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path = tmp_path / "bad.safetensors"
    size = len(text) if length is None else length
    path.write_bytes(struct.pack("<Q", size) + text + data)
    return path


GOOD = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}


# --- safetensors -----------------------------------------------------------------------------


def test_safetensors_round_trip_is_exact_and_ordered(tmp_path):
    state = _state()
    path = nn.save(state, tmp_path / "w.safetensors")
    _assert_same(nn.load(path), state)


def test_safetensors_layout_matches_the_documented_format(tmp_path):
    weight = np.array([[1.0, 2.0]], dtype=np.float32)
    path = nn.save({"w": weight, "b": np.array([3], dtype=np.int64)}, tmp_path / "w.safetensors")
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    assert length % 8 == 0  # padded so the data starts aligned
    header = json.loads(raw[8 : 8 + length])
    assert header["w"] == {"dtype": "F32", "shape": [1, 2], "data_offsets": [0, 8]}
    assert header["b"] == {"dtype": "I64", "shape": [1], "data_offsets": [8, 16]}
    assert header["__metadata__"]["producer"].startswith("autodiff-nn")
    assert raw[8 + length :] == struct.pack("<ffq", 1.0, 2.0, 3)


def test_module_round_trip_through_safetensors(tmp_path):
    model = nn.MLP(4, [5], 3, rng=1)
    nn.save(model, tmp_path / "m.safetensors")
    other = nn.MLP(4, [5], 3, rng=2)
    other.load_state_dict(nn.load(tmp_path / "m.safetensors"))
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    np.testing.assert_array_equal(nn.predict(other, x), nn.predict(model, x))


def test_the_safetensors_package_reads_our_files_and_we_read_its(tmp_path):
    st = pytest.importorskip("safetensors.numpy", reason="safetensors not installed")
    state = _state()
    ours = nn.save(state, tmp_path / "ours.safetensors")
    _assert_same({k: st.load_file(ours)[k] for k in state}, state)
    theirs = tmp_path / "theirs.safetensors"
    st.save_file(
        {k: np.asarray(v, dtype=v.dtype.newbyteorder("="), order="C") for k, v in state.items()},
        theirs,
        metadata={"format": "np"},
    )
    got = nn.load(theirs)
    assert set(got) == set(state)
    for name, array in state.items():
        np.testing.assert_array_equal(got[name], array, err_msg=name)
        assert got[name].dtype == array.dtype.newbyteorder("=")


def test_pytorch_users_load_our_file(torch, tmp_path):
    pytest.importorskip("safetensors", reason="safetensors not installed")
    from safetensors.torch import load_file

    model = nn.MLP(4, [5], 3, rng=1)
    tensors = load_file(nn.save(model, tmp_path / "m.safetensors"))
    for name, value in model.state_dict().items():
        assert tensors[name].dtype == torch.float32
        np.testing.assert_array_equal(tensors[name].numpy(), value)


def test_safetensors_save_is_atomic(tmp_path, monkeypatch):
    path = nn.save({"a": np.ones(3)}, tmp_path / "w.safetensors")
    before = path.read_bytes()

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        nn.save({"a": np.zeros(3)}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]  # no temp left


@pytest.mark.slow
@given(state=_ARRAYS)
def test_any_state_round_trips_exactly_and_the_package_agrees(tmp_path_factory, state):
    path = nn.save(state, tmp_path_factory.mktemp("st") / "w.safetensors")
    got = nn.load(path)
    assert list(got) == list(state)
    for name, array in state.items():
        assert got[name].shape == array.shape and got[name].dtype == array.dtype.newbyteorder("=")
        np.testing.assert_array_equal(got[name], array)  # NaNs compare equal here
    try:
        from safetensors.numpy import load_file
    except ImportError:
        return
    theirs = load_file(path)
    assert set(theirs) == set(state)
    for name in state:
        assert theirs[name].tobytes() == got[name].tobytes()


@given(
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.none() | st.integers(0, 10**6),
)
def test_damaged_files_load_or_raise_valueerror_never_anything_else(tmp_path_factory, edits, cut):
    raw = bytearray(_valid_file_bytes())
    for where, value in edits:
        raw[where % len(raw)] = value
    if cut is not None:
        raw = raw[: cut % len(raw)]
    path = tmp_path_factory.mktemp("bad") / "d.safetensors"
    path.write_bytes(bytes(raw))
    try:
        loaded = nn.load(path)
    except ValueError as exc:
        assert str(path) in str(exc)
    else:  # a change the format cannot notice (in the data, or whitespace): sizes still agree
        assert sum(a.nbytes for a in loaded.values()) <= len(raw)


@pytest.mark.parametrize(
    "header, data, message",
    [
        (b"not json", b"", "not valid JSON"),
        (b"[" * 100_000, b"", "nested too deeply"),
        ([1, 2], b"", "not a JSON object"),
        ({"w": {"dtype": "F32", "shape": [2]}}, bytes(8), "malformed"),
        (
            {"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}},
            bytes(4),
            "no numpy dtype",
        ),
        ({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, bytes(8), "invalid shape"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 10**12]}}, bytes(8), "outside"),
        ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, bytes(8), "span 8 bytes"),
        (GOOD, bytes(12), "cover 8 of the 12"),
        ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8), "gap"),
        (
            {**GOOD, "v": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}},
            bytes(8),
            "overlap",
        ),
        ({**GOOD, "__metadata__": {"a": 1}}, bytes(8), "__metadata__"),
        (b'{"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "w": {}}', b"x", "twice"),
    ],
)
def test_malformed_safetensors_are_refused_naming_the_file(tmp_path, header, data, message):
    path = _file(tmp_path, header, data)
    with pytest.raises(ValueError, match=message) as info:
        nn.load(path)
    assert str(path) in str(info.value)


def test_a_huge_claimed_header_is_refused_before_reading_it(tmp_path):
    path = _file(tmp_path, GOOD, bytes(8), length=2**62)
    with pytest.raises(ValueError, match="claims 4611686018427387904 bytes"):
        nn.load(path)
    (tmp_path / "tiny.safetensors").write_bytes(b"\x01\x02")
    with pytest.raises(ValueError, match="fewer than the 8-byte"):
        nn.load(tmp_path / "tiny.safetensors")


def test_a_huge_claimed_tensor_allocates_nothing(tmp_path, monkeypatch):
    # A header promising a 10**12-element tensor in a tiny file is refused by its offsets
    # before np.empty is ever called.
    calls = []
    monkeypatch.setattr(np, "empty", lambda *a, **k: calls.append(a))
    header = {"w": {"dtype": "F32", "shape": [10**12], "data_offsets": [0, 4 * 10**12]}}
    with pytest.raises(ValueError, match="outside"):
        read_safetensors(_file(tmp_path, header, bytes(8)))
    assert calls == []


def test_safetensors_refuses_what_it_cannot_hold(tmp_path):
    with pytest.raises(TypeError, match="'z' has dtype complex128"):
        nn.save({"z": np.zeros(2, dtype=complex)}, tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="reserved"):
        nn.save({"__metadata__": np.zeros(2)}, tmp_path / "w.safetensors")
    with pytest.raises(FileNotFoundError, match="no such file"):
        nn.load(tmp_path / "missing.safetensors")
    assert not list(tmp_path.iterdir())


def test_npz_still_chosen_for_other_suffixes(tmp_path):
    path = nn.save({"a": np.ones(2)}, tmp_path / "w.npz")
    assert path.read_bytes()[:2] == b"PK"
    np.testing.assert_array_equal(nn.load(path)["a"], np.ones(2))
