"""Malformed-file properties for every reader of untrusted bytes (IDX raw and gzipped, MNIST
files, .npz and .safetensors weights), run under a memory cap so that any reader which
allocates what a header claims, or inflates a gzip bomb, dies with MemoryError instead of
passing on a big machine.

    python tests/fuzz/capped.py WORK_FOLDER [HEADROOM_MIB] [EXAMPLES]

Run as a child process (tests/fuzz/test_capped.py does): the cap, RLIMIT_AS, is set to what
the process already uses plus HEADROOM_MIB (default 384), below the 512 MiB every bomb here
inflates to. Each reader may only return, or raise ValueError whose message starts with its
own name (and, for files, names the file). Anything else, MemoryError included, fails the
property and exits non-zero with hypothesis's smallest failing input.
"""

from __future__ import annotations

import gzip
import io
import json
import resource
import struct
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the project, when run directly

import numpy as np  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import nn  # noqa: E402
from nn.serialization import FORMAT  # noqa: E402

MiB = 1 << 20
BOMB_MIB = 512
# 512 gzip members of 1 MiB of zeros each: one gzip file of ~0.5 MB inflating to 512 MiB
# (readers must accept multi-member gzip, as gunzip does, so this is a fair bomb).
BOMB_TAIL = gzip.compress(bytes(MiB), 9) * BOMB_MIB
IDX_CODES = [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]


def _vm_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def _idx_header(code: int, dims: list[int]) -> bytes:
    return struct.pack(">HBB", 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims)


def _expect_clear(call, prefix: str, path: Path | None = None):
    try:
        return call()
    except ValueError as exc:
        message = str(exc)
        assert message.startswith(prefix), message
        if path is not None:
            assert str(path) in message, message
        return None


headers = st.builds(
    _idx_header,
    st.sampled_from(IDX_CODES),
    st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4),
)
small_headers = st.builds(
    _idx_header, st.sampled_from(IDX_CODES), st.lists(st.integers(0, 64), min_size=1, max_size=3)
)


def _mutate(blob: bytes, flips: list[tuple[int, int]], keep: int) -> bytes:
    out = bytearray(blob)
    for position, xor in flips:
        out[position % len(out)] ^= xor
    return bytes(out[:keep])


flips = st.lists(st.tuples(st.integers(0, 2**16), st.integers(1, 255)), max_size=4)


def properties(work: Path, examples: int) -> list:
    config = settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )

    @config
    @given(small_headers, st.binary(max_size=64))
    def idx_bomb_behind_a_small_header(header, body):
        # The header declares at most a few KB; 512 MiB of zeros follow, in gzip.
        blob = gzip.compress(header + body) + BOMB_TAIL
        _expect_clear(lambda: nn.data.read_idx(blob), "read_idx: <bytes>")

    @config
    @given(headers)
    def idx_huge_header_with_a_bomb_under_max_bytes(header):
        # Any declared size, with max_bytes below the cap: never more than max_bytes read.
        blob = gzip.compress(header) + BOMB_TAIL
        _expect_clear(lambda: nn.data.read_idx(blob, max_bytes=64 * MiB), "read_idx: <bytes>")

    @config
    @given(st.binary(max_size=2048), flips, st.integers(0, 4096), st.booleans())
    def idx_mutated_files(body, changes, keep, zipped):
        good = _idx_header(0x08, [len(body)]) + body
        blob = _mutate(gzip.compress(good) if zipped else good, changes, keep)
        path = work / "fuzz-idx"
        path.write_bytes(blob)
        _expect_clear(lambda: nn.data.read_idx(path), f"read_idx: {path}")

    @config
    @given(
        st.one_of(
            st.binary(max_size=512), st.builds(lambda h: gzip.compress(h) + BOMB_TAIL, headers)
        )
    )
    def mnist_files(blob):
        folder = work / "mnist"
        folder.mkdir(exist_ok=True)
        # The loader reads the training images first: this file must be refused.
        target = folder / "train-images-idx3-ubyte.gz"
        target.write_bytes(blob)
        _expect_clear(
            lambda: nn.data.load_mnist(folder, download=False, progress=False),
            "load_mnist: ",
            target,
        )

    good_npz = _weights_file()

    @config
    @given(flips, st.integers(0, len(good_npz)))
    def npz_mutated_files(changes, keep):
        path = work / "fuzz.npz"
        path.write_bytes(_mutate(good_npz, changes, keep))
        _expect_clear(lambda: nn.load(path), "load: ", path)

    @config
    @given(
        st.lists(st.integers(0, 2**40), min_size=0, max_size=3),
        st.sampled_from(["<f8", "<f4", "|u1", "<i8", "<c16", "<U4"]),
        st.integers(0, 64),
    )
    def npz_crafted_headers(shape, dtype, held):
        # A .npy header that claims any shape (up to petabytes) while holding a few bytes,
        # in an otherwise well-formed file whose manifest agrees with it.
        path = work / "crafted.npz"
        path.write_bytes(_crafted(shape, dtype, bytes(held), zipfile.ZIP_STORED))
        _expect_clear(lambda: nn.load(path), "load: ", path)

    bomb_npz = _crafted([BOMB_MIB * MiB], "|u1", None, zipfile.ZIP_DEFLATED)

    def npz_deflated_bomb():
        # One member deflated from 512 MiB to ~0.5 MB, whose header tells the truth.
        path = work / "bomb.npz"
        path.write_bytes(bomb_npz)
        _expect_clear(lambda: nn.load(path), "load: ", path)

    good_st = _safetensors_file(work)

    @config
    @given(flips, st.integers(0, len(good_st)))
    def safetensors_mutated_files(changes, keep):
        path = work / "fuzz.safetensors"
        path.write_bytes(_mutate(good_st, changes, keep))
        _expect_clear(lambda: nn.load(path), "load: ", path)

    @config
    @given(
        st.lists(st.integers(0, 2**40), max_size=3),
        st.sampled_from(["F64", "U8", "C64"]),
        st.integers(0, 2**50),
        st.integers(0, 64),
    )
    def safetensors_crafted_headers(shape, dtype, end, held):
        # A header claiming any shape and any span, over a data section of a few bytes.
        header = json.dumps({"w": {"dtype": dtype, "shape": shape, "data_offsets": [0, end]}})
        path = work / "crafted.safetensors"
        blob = header.encode() + b" " * (-len(header) % 8)
        path.write_bytes(len(blob).to_bytes(8, "little") + blob + bytes(held))
        _expect_clear(lambda: nn.load(path), "load: ", path)

    return [
        idx_bomb_behind_a_small_header,
        idx_huge_header_with_a_bomb_under_max_bytes,
        idx_mutated_files,
        mnist_files,
        npz_mutated_files,
        npz_crafted_headers,
        npz_deflated_bomb,
        safetensors_mutated_files,
        safetensors_crafted_headers,
    ]


def _safetensors_file(work: Path) -> bytes:
    path = work / "good.safetensors"
    nn.save({"w": np.arange(12, dtype=np.float32).reshape(4, 3), "b": np.ones(3)}, path)
    return path.read_bytes()


def _crafted(shape: list[int], dtype: str, data: bytes | None, method: int) -> bytes:
    """An .npz like nn.save's whose entry "w" has a .npy header declaring `shape`, followed
    by `data` (None: 512 MiB of zeros, written in chunks), stored with `method`."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)}
    )
    manifest = json.dumps({"w": {"shape": shape, "dtype": dtype}})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, array in (("__format__", np.array(FORMAT)), ("__manifest__", np.array(manifest))):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array)
            archive.writestr(f"{name}.npy", buffer.getvalue())
        info = zipfile.ZipInfo("w.npy")
        info.compress_type = method
        with archive.open(info, "w", force_zip64=True) as member:
            member.write(header.getvalue())
            if data is not None:
                member.write(data)
            else:
                for _ in range(BOMB_MIB):
                    member.write(bytes(MiB))
    return out.getvalue()


def _weights_file() -> bytes:
    buffer = io.BytesIO()
    arrays = {
        "__format__": np.array(FORMAT),
        "__manifest__": np.array(
            json.dumps(
                {"w": {"shape": [4, 3], "dtype": "<f4"}, "b": {"shape": [3], "dtype": "<f8"}}
            )
        ),
        "w": np.arange(12, dtype=np.float32).reshape(4, 3),
        "b": np.ones(3),
    }
    nn.serialization._write_npz(buffer, arrays)
    return buffer.getvalue()


def main(argv: list[str]) -> None:
    work = Path(argv[1])
    headroom = int(argv[2]) * MiB if len(argv) > 2 else 384 * MiB
    examples = int(argv[3]) if len(argv) > 3 else 40
    work.mkdir(parents=True, exist_ok=True)
    checks = properties(work, examples)
    cap = _vm_bytes() + headroom
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    # The cap is real: allocating a bomb's worth here must fail.
    try:
        bytearray(BOMB_MIB * MiB)
    except MemoryError:
        pass
    else:
        sys.exit("the memory cap did not hold: a 512 MiB allocation succeeded")
    for check in checks:
        check()
        print(f"ok {check.__name__}", flush=True)


if __name__ == "__main__":
    main(sys.argv)
