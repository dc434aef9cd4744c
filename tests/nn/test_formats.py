"""nn/formats.py: the safetensors format written and read here, and refusal of crafted
files.
"""

from __future__ import annotations

import pytest

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
