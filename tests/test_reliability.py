"""Reliability: anomaly mode, in-place safety, exact gradient accumulation, graphs freed by
reference counting, flat memory over long training, threads, and fuzzing of every reader of
untrusted bytes (IDX files, weight files, state dicts)."""

from __future__ import annotations

import gc
import gzip
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import threading
import tracemalloc
import weakref
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import autodiff as ad
import nn
from autodiff import Tensor

ROOT = Path(__file__).resolve().parents[1]
THIS_FILE = str(Path(__file__).resolve())

# --- anomaly mode ---------------------------------------------------------------------------


def test_anomaly_forward_names_op_shapes_and_the_users_line():
    x = Tensor(np.array([[1000.0, 1.0]]), requires_grad=True)
    with ad.detect_anomaly(), pytest.raises(FloatingPointError) as info, np.errstate(over="ignore"):
        x.exp()  # overflows to infinity
    message = str(info.value)
    assert message.startswith("detect_anomaly: exp forward")
    assert "(1, 2)" in message and "infinity" in message
    assert THIS_FILE in message and "x.exp()  # overflows to infinity" in message


def test_anomaly_backward_names_op_shapes_and_the_line_that_made_the_node():
    x = Tensor(np.array([0.0, 4.0]), requires_grad=True)
    with ad.detect_anomaly(), np.errstate(divide="ignore"):
        root = x.sqrt()  # finite forward; d sqrt/dx at 0 is infinite
        loss = (root * 3).sum()
        with pytest.raises(FloatingPointError) as info:
            loss.backward()
    message = str(info.value)
    assert "backward, gradient for input 0" in message and "(2,)" in message
    assert "infinity" in message
    assert "root = x.sqrt()" in message and THIS_FILE in message
    assert x.grad is None  # stopped before anything reached the leaf


def test_anomaly_in_a_module_points_at_the_callers_line_not_inside_nn():
    layer = nn.Linear(2, 2)
    with ad.no_grad():
        layer.weight.data[...] = 3e38  # float32: the products overflow
    with (
        ad.detect_anomaly(),
        pytest.raises(FloatingPointError) as info,
        np.errstate(over="ignore", invalid="ignore"),
    ):
        layer(Tensor(np.full((1, 2), 10.0, np.float32)))
    message = str(info.value)
    assert "linear forward" in message and "(1, 2), (2, 2), (2,)" in message
    assert f'File "{THIS_FILE}"' in message  # the test's line, not nn/layers.py


def test_anomaly_reports_where_nan_is_born_not_where_it_spreads():
    x = Tensor(np.array([-1.0, 4.0]), requires_grad=True)
    with (
        ad.detect_anomaly(),
        pytest.raises(FloatingPointError) as info,
        np.errstate(invalid="ignore"),
    ):
        y = x.log()  # NaN is born here...
        y * 2  # ...and would spread here
    assert "log forward" in str(info.value) and "NaN" in str(info.value)
    # Values already NaN on the way in are not blamed on the next op.
    with ad.detect_anomaly():
        z = Tensor(np.array([np.nan, 1.0]), requires_grad=True) * 2
    assert np.isnan(z.data[0])


def test_anomaly_mode_is_per_thread_and_restored():
    seen = {}

    def plain_thread():
        with np.errstate(divide="ignore"):
            seen["plain"] = np.isinf(Tensor(np.array([0.0]), requires_grad=True).log().data).all()

    def anomaly_thread():
        with ad.detect_anomaly(), np.errstate(divide="ignore"):
            try:
                Tensor(np.array([0.0]), requires_grad=True).log()
            except FloatingPointError:
                seen["anomaly"] = "raised"

    with ad.detect_anomaly():
        worker = threading.Thread(target=plain_thread)  # the main thread's mode is not its
        worker.start()
        worker.join()
    worker = threading.Thread(target=anomaly_thread)  # nor is a worker's mode the main one's
    worker.start()
    worker.join()
    with np.errstate(divide="ignore"):
        assert np.isinf(Tensor(np.array([0.0]), requires_grad=True).log().data).all()
    assert seen == {"plain": True, "anomaly": "raised"}
    assert not ad.engine.state.anomaly  # left as found, even after an error inside


# --- in-place safety --------------------------------------------------------------------------


def test_write_into_a_saved_tensor_is_caught_at_backward():
    w = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    c = Tensor(np.array([4.0, 5.0, 6.0]))
    loss = (w * c).tanh().sum()
    c[0] = -1.0  # mul saved c to compute w's gradient
    with pytest.raises(RuntimeError, match=r"^mul: a tensor this op saved .* \(3,\), \(3,\)"):
        loss.backward()
    # Recomputing after the write is fine, and uses the new value.
    (w * c).sum().backward()
    assert w.grad.data.tolist() == [-1.0, 5.0, 6.0]


def test_write_into_a_tensor_not_in_the_graph_is_harmless():
    w = Tensor(np.ones(2), requires_grad=True)
    c = Tensor(np.array([2.0, 3.0]))
    loss = (w * c).sum()
    unrelated = Tensor(np.zeros(2))
    unrelated[0] = 1.0
    loss.backward()
    assert w.grad.data.tolist() == [2.0, 3.0]


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda ps: nn.optim.SGD(ps, lr=0.1),
        lambda ps: nn.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
        lambda ps: nn.optim.Adam(ps, lr=0.01),
        lambda ps: nn.optim.AdamW(ps, lr=0.01),
    ],
    ids=["sgd", "nesterov", "adam", "adamw"],
)
def test_optimizer_step_between_forward_and_backward_is_refused(make_optimizer):
    model = nn.MLP(3, [4], 2, rng=0)
    opt = make_optimizer(model.parameters())
    x = Tensor(np.ones((2, 3), np.float32))
    first = nn.F.cross_entropy(model(x), np.array([0, 1]))
    first.backward()
    stale = nn.F.cross_entropy(model(x), np.array([0, 1]))  # built with the old weights
    opt.step()
    with pytest.raises(RuntimeError, match="^linear: a tensor this op saved"):
        stale.backward()
    opt.zero_grad()
    nn.F.cross_entropy(model(x), np.array([0, 1])).backward()  # a fresh graph is fine
    assert all(p.grad is not None for p in model.parameters())


def test_load_state_dict_between_forward_and_backward_is_refused():
    model = nn.Linear(3, 2)
    loss = model(Tensor(np.ones((1, 3), np.float32))).sum()
    model.load_state_dict(nn.Linear(3, 2).state_dict())
    with pytest.raises(RuntimeError, match="^linear: "):
        loss.backward()


def test_optimizer_updates_record_no_graph_and_never_touch_gradients():
    model = nn.MLP(3, [5], 2, rng=1)
    params = model.parameters()
    arrays = [p._data for p in params]
    opts = [nn.optim.SGD(params, lr=0.1, momentum=0.9), nn.optim.Adam(params, lr=0.01)]
    x = Tensor(np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32))
    for step in range(6):
        loss = nn.F.cross_entropy(model(x), np.array([0, 1, 1, 0]))
        for p in params:
            p.zero_grad()
        # Also with differentiable gradients: the step must still use plain numbers.
        loss.backward(create_graph=step % 2 == 1)
        grads = [p.grad.data.copy() for p in params]
        opts[step % 2].step()
        for p, g, a in zip(params, grads, arrays, strict=True):
            assert p.is_leaf and p._parents == () and p.requires_grad
            assert p._data is a  # updated in place: the model keeps its arrays
            np.testing.assert_array_equal(p.grad.data, g)  # the gradient was not modified
    for opt in opts:
        for slot in opt.state.values():
            assert not any(isinstance(v, Tensor) for v in slot.values())


# --- exact accumulation -----------------------------------------------------------------------


def test_double_backward_accumulates_exactly_twice():
    model = nn.MLP(4, [6], 3, rng=2)
    x = Tensor(np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32))
    hidden = model[0](x)
    loss = nn.F.cross_entropy(model[2](model[1](hidden)), np.arange(5) % 3)
    loss.backward()
    once = [p.grad.data.copy() for p in model.parameters()]
    hidden_once = hidden.grad.data.copy()
    loss.backward()
    for p, g in zip(model.parameters(), once, strict=True):
        np.testing.assert_array_equal(p.grad.data, 2 * g)  # g + g is exact in floating point
    # An intermediate holds this pass's gradient, it does not accumulate.
    np.testing.assert_array_equal(hidden.grad.data, hidden_once)


# --- graphs are freed by reference counting alone -------------------------------------------


def _freed_without_gc(make_graph) -> bool:
    """Build a graph, drop it, and report whether every node died with the cycle collector off:
    then reference counting alone freed it, so the graph held no reference cycles."""
    gc.collect()
    gc.disable()
    try:
        refs = make_graph()
        return all(r() is None for r in refs)
    finally:
        gc.enable()


def test_graph_is_freed_when_the_output_goes():
    def build():
        x = Tensor(np.ones((3, 3)), requires_grad=True)
        nodes = [x.exp()]
        for _ in range(50):
            nodes.append((nodes[-1] @ x).tanh() + nodes[-1][0])
        loss = nodes[-1].sum()
        loss.backward()
        return [weakref.ref(t) for t in (*nodes, loss, x)]

    assert _freed_without_gc(build)


def test_second_order_graphs_are_freed_too():
    def build():
        x = Tensor(np.linspace(-1, 1, 4), requires_grad=True)
        y = (x.sigmoid() * x).sum()
        (g,) = ad.grad(y, [x], create_graph=True)
        (h,) = ad.grad((g * g).sum(), [x])
        assert h.shape == (4,)
        return [weakref.ref(t) for t in (x, y, g, h)]

    assert _freed_without_gc(build)


def test_graph_of_a_failed_backward_is_freed():
    def build():
        x = Tensor(np.array([0.0, 1.0]), requires_grad=True)
        y = x.sqrt().sum()
        with ad.detect_anomaly(), np.errstate(divide="ignore"), pytest.raises(FloatingPointError):
            y.backward()
        return [weakref.ref(x), weakref.ref(y)]

    assert _freed_without_gc(build)


def test_training_graph_is_freed_every_step():
    model = nn.MLP(4, [8], 2, rng=0)
    opt = nn.optim.SGD(model.parameters(), lr=0.1)
    refs = []
    gc.disable()
    try:
        for _ in range(3):
            out = model(Tensor(np.ones((5, 4), np.float32)))
            loss = nn.F.cross_entropy(out, np.zeros(5, dtype=np.int64))
            opt.zero_grad()
            loss.backward()
            opt.step()
            refs.append(weakref.ref(out))
        del out, loss
        assert all(r() is None for r in refs)
    finally:
        gc.enable()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_memory_stays_flat_over_10000_steps():
    rng = np.random.default_rng(0)
    model = nn.MLP(8, [16], 3, rng=0)
    opt = nn.optim.Adam(model.parameters(), lr=1e-3)
    x = rng.normal(size=(16, 8)).astype(np.float32)
    y = rng.integers(0, 3, size=16)
    losses = []

    def steps(n):
        for _ in range(n):
            loss = nn.F.cross_entropy(model(Tensor(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        losses.append(loss.item())

    # Warm up past the interpreter's own caches: its tuple free lists keep up to 2,000 tuples
    # of each size and fill over the first ~2,000 steps of this loop (how fast depends on the
    # engine's allocation pattern), which is bounded, not a leak.
    steps(3000)
    blocks, rss = sys.getallocatedblocks(), _rss_bytes() if sys.platform == "linux" else 0
    steps(7000)
    # One leaked object per step would show as 7,000 more blocks; allow a little slack for
    # interpreter caches.
    assert sys.getallocatedblocks() - blocks < 500
    if sys.platform == "linux":
        assert _rss_bytes() - rss < 2 * 1024 * 1024
    assert losses[1] < losses[0]  # and it really was training


# --- threads ----------------------------------------------------------------------------------

# Run in a fresh interpreter with one BLAS thread: the comparison is bit for bit, and BLAS
# thread counts can change the order of additions inside a matrix product.
_THREADS_SCRIPT = textwrap.dedent("""
    import hashlib, json, threading
    import numpy as np
    import autodiff as ad, nn
    from autodiff import Tensor

    def train(seed, steps=40):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(32, 6)).astype(np.float32)
        y = rng.integers(0, 3, size=32)
        model = nn.MLP(6, [12], 3, rng=seed)
        opt = nn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        losses = []
        for _ in range(steps):
            out = model(Tensor(x))
            assert out.requires_grad and ad.is_grad_enabled()
            loss = nn.F.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        digest = hashlib.sha256(b"".join(p.data.tobytes() for p in model.parameters()))
        return {"digest": digest.hexdigest(), "first": losses[0], "last": losses[-1]}

    def infer(stop, report):
        model = nn.MLP(6, [12], 3, rng=9)
        x = Tensor(np.ones((4, 6), np.float32))
        graphs = 0
        count = 0
        while not stop.is_set() or count < 50:
            with ad.no_grad():
                out = model(x)
            graphs += out.requires_grad or bool(out.parents)
            count += 1
        report["inference calls"] = count
        report["graphs recorded under no_grad"] = graphs

    sequential = {seed: train(seed) for seed in (1, 2)}
    threaded, report = {}, {}
    stop = threading.Event()
    reader = threading.Thread(target=infer, args=(stop, report))
    reader.start()
    workers = [threading.Thread(target=lambda s=s: threaded.__setitem__(s, train(s)))
               for s in (1, 2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    reader.join()
    print(json.dumps({"sequential": sequential, "threaded": threaded, "report": report}))
""")


def test_two_threads_training_match_sequential_runs_bit_for_bit():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    done = subprocess.run(
        [sys.executable, "-c", _THREADS_SCRIPT],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    sequential, threaded = result["sequential"], result["threaded"]
    assert threaded == sequential  # same digests and losses, bit for bit
    assert sequential["1"]["digest"] != sequential["2"]["digest"]
    for run in sequential.values():
        assert run["last"] < 0.5 * run["first"]
    assert result["report"]["graphs recorded under no_grad"] == 0
    assert result["report"]["inference calls"] >= 50


def test_no_grad_is_per_thread():
    seen = {}
    inside = threading.Event()
    release = threading.Event()

    def worker():
        with ad.no_grad():
            inside.set()
            release.wait(5)
            seen["worker"] = (Tensor(1.0, requires_grad=True) * 2).requires_grad

    thread = threading.Thread(target=worker)
    thread.start()
    inside.wait(5)
    seen["main"] = (Tensor(1.0, requires_grad=True) * 2).requires_grad  # while worker is in
    release.set()
    thread.join()
    assert seen == {"worker": False, "main": True}


# --- small semantics that reliability depends on --------------------------------------------


def test_detach_cuts_the_graph():
    x = Tensor(2.0, requires_grad=True)
    y = (x * 3).detach() * x
    y.backward()
    assert x.grad.item() == 6.0  # only the non-detached path


def test_augmented_assignment_is_out_of_place_and_differentiable():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * 3
    before = y
    y += x  # rebinds y to a new node; the old one is untouched
    y *= 2
    assert before.data.tolist() == [3.0, 6.0]
    y.sum().backward()
    assert x.grad.data.tolist() == [8.0, 8.0]


# --- fuzzing: IDX files -----------------------------------------------------------------------

IDX_CODES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _idx_bytes(array: np.ndarray, code: int) -> bytes:
    header = struct.pack(">HBB", 0, code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(IDX_CODES[code]).tobytes()


def _read_idx_or_clear_error(blob: bytes, **kwargs):
    """read_idx's only allowed outcomes: a consistent array, or ValueError naming itself."""
    try:
        values = nn.data.read_idx(blob, **kwargs)
    except ValueError as exc:
        assert str(exc).startswith("read_idx: "), exc
        return None
    assert isinstance(values, np.ndarray) and values.flags.writeable
    return values


idx_arrays = st.tuples(
    st.sampled_from(sorted(IDX_CODES)),
    st.lists(st.integers(0, 5), min_size=1, max_size=3),
    st.integers(0, 2**32 - 1),
)


def _random_idx(code, shape, seed):
    rng = np.random.default_rng(seed)
    array = (rng.normal(size=shape) * 100).astype(IDX_CODES[code])
    return array, _idx_bytes(array, code)


@given(st.binary(max_size=300))
def test_read_idx_random_bytes(blob):
    values = _read_idx_or_clear_error(blob)
    if values is not None:  # random bytes can spell a valid (often empty) IDX file
        ndim = blob[3]
        assert values.shape == struct.unpack(f">{ndim}I", blob[4 : 4 + 4 * ndim])


@given(idx_arrays, st.booleans())
def test_read_idx_round_trip_raw_and_gzipped(spec, gzipped):
    array, blob = _random_idx(*spec)
    values = nn.data.read_idx(gzip.compress(blob) if gzipped else blob)
    np.testing.assert_array_equal(values, array)
    assert values.dtype == array.dtype.newbyteorder("=")


@given(idx_arrays, st.data())
def test_read_idx_truncated_or_extended_is_refused(spec, data):
    _, blob = _random_idx(*spec)
    cut = data.draw(st.integers(0, len(blob) - 1), label="cut")
    assert _read_idx_or_clear_error(blob[:cut]) is None
    extra = data.draw(st.binary(min_size=1, max_size=8), label="extra")
    assert _read_idx_or_clear_error(blob + extra) is None
    gz = gzip.compress(blob)
    assert _read_idx_or_clear_error(gz[: data.draw(st.integers(2, len(gz) - 1))]) is None


@given(idx_arrays, st.data())
def test_read_idx_mutated_bytes(spec, data):
    array, blob = _random_idx(*spec)
    position = data.draw(st.integers(0, len(blob) - 1), label="position")
    value = data.draw(st.integers(0, 255), label="value")
    mutated = blob[:position] + bytes([value]) + blob[position + 1 :]
    values = _read_idx_or_clear_error(mutated)
    header = 4 + 4 * array.ndim
    if position >= header:  # a changed data byte is still a valid file of the same shape
        assert values is not None and values.shape == array.shape
    elif position < 4 and (mutated[:2] != b"\0\0" or mutated[2] not in IDX_CODES):
        assert values is None  # a wrong magic number is always refused


@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4), st.binary(max_size=64))
def test_read_idx_huge_declared_sizes_allocate_nothing(dims, body):
    assume(np.prod(np.array(dims, dtype=object)) > 10**6)
    blob = struct.pack(">HBB", 0, 0x0E, len(dims)) + struct.pack(f">{len(dims)}I", *dims) + body
    tracemalloc.start()
    try:
        assert _read_idx_or_clear_error(blob) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024


def test_read_idx_gzip_bomb_is_bounded_by_max_bytes():
    # 64 MB of zeros behind a header that declares them: a few kB compressed.
    size = 64 * 2**20
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    chunks = [packer.compress(struct.pack(">HBBI", 0, 0x08, 1, size))]
    zeros = bytes(2**20)
    chunks += [packer.compress(zeros) for _ in range(size // len(zeros))]
    bomb = b"".join(chunks) + packer.flush()
    assert len(bomb) < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="^read_idx: .*max_bytes"):
            nn.data.read_idx(bomb, max_bytes=2**20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20  # never the declared 64 MB


def test_read_idx_of_a_pickle_is_refused(tmp_path):
    path = tmp_path / "labels.idx"
    path.write_bytes(b"\x80\x04\x95" + bytes(40))
    with pytest.raises(ValueError, match="^read_idx: .*labels.idx.*magic"):
        nn.data.read_idx(path)


# --- fuzzing: weight files --------------------------------------------------------------------


def _saved_bytes(tmp_path: Path) -> tuple[bytes, dict[str, np.ndarray]]:
    model = nn.MLP(3, [4], 2, rng=0)
    path = nn.save(model, tmp_path / "good.npz")
    return path.read_bytes(), model.state_dict()


def _load_or_clear_error(path: Path, original: dict[str, np.ndarray]):
    try:
        loaded = nn.load(path)
    except ValueError as exc:
        assert str(exc).startswith("load: ") and str(path) in str(exc), exc
        return None
    # Whatever survived a mutation must still be exactly what the file claims to hold.
    assert list(loaded) == list(original)
    for name, value in loaded.items():
        assert value.shape == original[name].shape and value.dtype == original[name].dtype
    return loaded


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return _saved_bytes(tmp_path_factory.mktemp("weights"))


@given(st.data())
def test_load_truncated_weight_files(tmp_path_factory, weights, data):
    blob, original = weights
    cut = data.draw(st.integers(0, len(blob) - 1), label="cut")
    path = tmp_path_factory.mktemp("cut") / "w.npz"
    path.write_bytes(blob[:cut])
    assert _load_or_clear_error(path, original) is None


@given(st.data())
def test_load_mutated_weight_files(tmp_path_factory, weights, data):
    blob, original = weights
    mutated = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        position = data.draw(st.integers(0, len(blob) - 1), label="position")
        mutated[position] = data.draw(st.integers(0, 255), label="value")
    path = tmp_path_factory.mktemp("mutated") / "w.npz"
    path.write_bytes(bytes(mutated))
    loaded = _load_or_clear_error(path, original)
    if loaded is not None and bytes(mutated) != blob:
        # Only bytes nobody checks (zip timestamps, padding) may change without an error.
        for name, value in loaded.items():
            np.testing.assert_array_equal(value, original[name])


@given(st.binary(max_size=400))
def test_load_random_bytes(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("random") / "w.npz"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match="^load: "):
        nn.load(path)


def _npz_with(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, payload in entries.items():
            archive.writestr(f"{name}.npy", payload)
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _forged_npy(shape: tuple[int, ...], body: bytes) -> bytes:
    header = {"descr": "<f8", "fortran_order": False, "shape": shape}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + body


def _marker_entries(manifest: dict) -> dict[str, bytes]:
    from nn.serialization import FORMAT

    return {
        "__format__": _npy(np.array(FORMAT)),
        "__manifest__": _npy(np.array(json.dumps(manifest))),
    }


@given(st.lists(st.integers(0, 2**40), min_size=1, max_size=3), st.binary(max_size=64))
def test_load_huge_declared_shapes_allocate_nothing(tmp_path_factory, shape, body):
    shape = tuple(shape)
    entries = _marker_entries({"w": {"shape": list(shape), "dtype": "<f8"}})
    entries["w"] = _forged_npy(shape, body)
    path = tmp_path_factory.mktemp("huge") / "w.npz"
    path.write_bytes(_npz_with(entries))
    fits = len(body) == 8 * np.prod(shape, dtype=object)  # rarely: a valid (tiny) array
    tracemalloc.start()
    try:
        loaded = _load_or_clear_error(path, {"w": np.zeros(shape)} if fits else {})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (loaded is not None) == fits
    assert peak < 1024 * 1024


class _Evil:
    """Unpickling this creates the file `path`: proof that a pickle ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.mark.parametrize(
    "disguise", ["foreign", "with_marker_and_manifest", "bare_npy", "raw_pickle"]
)
def test_load_never_runs_a_pickle(tmp_path, disguise):
    marker = tmp_path / "pickle_ran"
    evil = np.array([_Evil(marker)], dtype=object)
    path = tmp_path / "weights.npz"
    if disguise == "foreign":
        np.savez(path, w=evil)
    elif disguise == "with_marker_and_manifest":
        # Everything a real file has; the manifest even claims a harmless float array.
        entries = _marker_entries({"w": {"shape": [1], "dtype": "<f8"}})
        entries["w"] = _npy(evil)
        path.write_bytes(_npz_with(entries))
    elif disguise == "bare_npy":
        path.write_bytes(_npy(evil))
    else:
        import pickle

        path.write_bytes(pickle.dumps(evil))
    with pytest.raises(ValueError, match="^load: ") as info:
        nn.load(path)
    assert str(path) in str(info.value)
    assert not marker.exists()
    # The marker trick itself works: numpy with pickles allowed would have run it.
    if disguise == "foreign":
        with np.load(path, allow_pickle=True) as npz:
            npz["w"]
        assert marker.exists()


# --- fuzzing: state dicts ---------------------------------------------------------------------

_NAMES = [
    "layers.0.weight",
    "layers.0.bias",
    "layers.2.weight",
    "layers.2.bias",
    "bogus",
    "layers.9.weight",
    "",
]
_JUNK = st.one_of(
    st.none(),
    st.text(max_size=3),
    st.integers(),
    st.floats(allow_nan=True),
    st.lists(st.floats(-2, 2), max_size=4),
    st.builds(
        lambda shape, dtype: np.zeros(shape, dtype=dtype),
        st.lists(st.integers(0, 5), max_size=3).map(tuple),
        st.sampled_from([np.float32, np.float64, np.int64, np.bool_]),
    ),
)


@given(st.dictionaries(st.sampled_from(_NAMES), _JUNK, max_size=7), st.booleans(), st.booleans())
def test_load_state_dict_fuzzed_dicts_fail_cleanly_and_leave_model_intact(state, strict, complete):
    model = nn.MLP(3, [4], 2, rng=0)
    before = model.state_dict()
    if complete:  # start from a valid dict so the deeper checks are reached too
        state = {**before, **state}
    try:
        model.load_state_dict(state, strict=strict)
    except (KeyError, ValueError, TypeError) as exc:
        assert "load_state_dict" in str(exc), exc
        for name, value in model.state_dict().items():
            np.testing.assert_array_equal(value, before[name])  # nothing half-loaded
    else:
        for name, value in model.state_dict().items():
            expected = state.get(name, before[name])
            np.testing.assert_array_equal(value, np.asarray(expected))


def test_load_state_dict_round_trip_through_a_file_is_exact(tmp_path):
    source, target = nn.MLP(3, [4], 2, rng=0), nn.MLP(3, [4], 2, rng=1)
    target.load_state_dict(nn.load(nn.save(source, tmp_path / "w.npz")))
    digest = [hashlib.sha256(p.data.tobytes()).digest() for p in target.parameters()]
    assert digest == [hashlib.sha256(p.data.tobytes()).digest() for p in source.parameters()]
