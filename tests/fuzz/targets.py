"""Coverage-guided fuzzing, with atheris (optional), of the code that reads untrusted bytes.

    python tests/fuzz/targets.py read_idx -runs=100000
    python tests/fuzz/targets.py load -max_len=4096 [corpus folder]
    python tests/fuzz/targets.py state_dict -runs=20000

A target accepts only a clear error: ValueError whose message starts with the function's name
(and, for load_state_dict, KeyError or TypeError naming it, with the model left unchanged).
Any other exception, or a crash, is a finding; libFuzzer saves the input that caused it.
Without a corpus folder, one is seeded with valid files, so mutations start from real ones.
"""

from __future__ import annotations

import gzip
import os
import struct
import sys
import tempfile
from pathlib import Path

import atheris
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the project, when run directly

with atheris.instrument_imports(include=["nn", "autodiff"]):
    import nn

# Scratch files (the input under test, the seed corpus); the pytest wrapper points this at its
# own temporary folder, since libFuzzer exits without running Python's clean-up.
WORK = Path(os.environ.get("AUTODIFF_FUZZ_DIR") or tempfile.mkdtemp(prefix="autodiff-fuzz-"))


def read_idx(data: bytes) -> None:
    try:
        values = nn.data.read_idx(data, max_bytes=1 << 20)
    except ValueError as exc:
        if not str(exc).startswith("read_idx: "):
            raise
        return
    assert isinstance(values, np.ndarray)


def load(data: bytes) -> None:
    path = WORK / "input.npz"
    path.write_bytes(data)
    try:
        loaded = nn.load(path)
    except ValueError as exc:
        if not str(exc).startswith("load: "):
            raise
        return
    assert all(isinstance(v, np.ndarray) and v.dtype.kind in "biuf" for v in loaded.values())


MODEL = nn.MLP(3, [4], 2, rng=0)
BEFORE = MODEL.state_dict()
NAMES = [*BEFORE, "bogus", "layers.9.weight", ""]
DTYPES = [np.float32, np.float64, np.int64, np.bool_]


def state_dict(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    start = dict(BEFORE) if fdp.ConsumeBool() else {}  # so deeper checks are reached too
    for _ in range(fdp.ConsumeIntInRange(0, 6)):
        shape = tuple(fdp.ConsumeIntInRange(0, 5) for _ in range(fdp.ConsumeIntInRange(0, 3)))
        start[fdp.PickValueInList(NAMES)] = np.zeros(shape, fdp.PickValueInList(DTYPES))
    try:
        MODEL.load_state_dict(start, strict=fdp.ConsumeBool())
    except (KeyError, ValueError, TypeError) as exc:
        if "load_state_dict" not in str(exc):
            raise
        for name, value in MODEL.state_dict().items():
            assert np.array_equal(value, BEFORE[name]), f"{name} changed by a failed load"
        return
    MODEL.load_state_dict(BEFORE)  # put the model back for the next input


def _seed_corpus(target: str) -> Path:
    folder = WORK / f"corpus-{target}"
    folder.mkdir(exist_ok=True)
    if target == "read_idx":
        labels = np.arange(10, dtype=np.uint8)
        raw = struct.pack(">HBBI", 0, 0x08, 1, labels.size) + labels.tobytes()
        (folder / "labels").write_bytes(raw)
        (folder / "labels.gz").write_bytes(gzip.compress(raw))
    elif target == "load":
        nn.save(MODEL, folder / "weights.npz")
    else:
        (folder / "empty").write_bytes(b"\x01" * 16)
    return folder


TARGETS = {"read_idx": read_idx, "load": load, "state_dict": state_dict}


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: {argv[0]} {{{','.join(TARGETS)}}} [libFuzzer options] [corpus]")
    target, rest = argv[1], argv[2:]
    if not any(not arg.startswith("-") for arg in rest):
        rest.append(str(_seed_corpus(target)))
    atheris.Setup([argv[0], *rest], TARGETS[target])
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
