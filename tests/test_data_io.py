"""Data loading and weight files: MNIST (shared copy, corrupt files, simulated downloads),
mini-MNIST, DataLoader, and atomic, pickle-free save/load."""

from __future__ import annotations

import gzip
import http.server
import io
import os
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nn
from nn import data
from nn.data import DataLoader, MNISTNotFoundError, load_mnist, read_idx

# --- MNIST from the shared copy ----------------------------------------------------------------


def test_shared_mnist_loads_with_documented_checks(mnist_dir):
    (x, y), (xt, yt) = load_mnist(mnist_dir, download=False)
    assert x.shape == (60000, 784) and xt.shape == (10000, 784)
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert x.min() >= 0.0 and x.max() == 1.0
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert yt[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851,
                                       5949]


def test_mini_mnist_is_balanced_and_verified():
    (x, y), (xt, yt) = data.load_mini_mnist()
    assert x.shape == (5000, 784) and xt.shape == (1000, 784)
    assert np.bincount(y).tolist() == [500] * 10 and np.bincount(yt).tolist() == [100] * 10
    assert x.dtype == np.float32 and y.dtype == np.int64 and x.max() <= 1.0
    assert data.MINI_MNIST_PATH.stat().st_size < 1_500_000


# --- IDX parsing and corrupt files ---------------------------------------------------------------


def _idx(array: np.ndarray) -> bytes:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                    *array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_read_idx_raw_and_gzip(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw = tmp_path / "a-idx3-ubyte"
    raw.write_bytes(_idx(array))
    gz = tmp_path / "a-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(_idx(array)))
    np.testing.assert_array_equal(read_idx(raw), array)
    np.testing.assert_array_equal(read_idx(gz), array)


@pytest.mark.parametrize("blob,match", [
    (b"", "too short"),
    (b"\x01\x02\x08\x01" + b"\x00" * 8, "bad magic"),
    (struct.pack(">HBB", 0, 0x08, 2) + b"\x00\x00", "truncated inside its header"),
    (struct.pack(">HBBII", 0, 0x08, 2, 60000, 784) + b"\x00" * 100, "truncated or corrupt"),
    (struct.pack(">HBBII", 0, 0x08, 2, 2**31, 2**31), "truncated or corrupt"),
    (b"\x1f\x8b" + b"garbage", "not a valid gzip"),
])
def test_read_idx_refuses_bad_files(blob, match):
    with pytest.raises(ValueError, match=match):
        read_idx(blob)


@given(st.binary(max_size=64))
def test_read_idx_fuzz_only_clear_errors(blob):
    try:
        read_idx(blob)
    except ValueError as exc:
        assert str(exc).startswith("read_idx:")


def test_corrupt_mnist_file_is_named(tmp_path, mnist_dir):
    for name in data.MNIST_FILES:
        (tmp_path / f"{name}.gz").write_bytes((mnist_dir / f"{name}.gz").read_bytes())
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01"
                                                                       + b"\x00" * 8))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz is corrupt"):
        load_mnist(tmp_path, download=False)


def test_missing_file_names_file_and_every_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTODIFF_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(MNISTNotFoundError) as info:
        load_mnist(tmp_path / "given", download=False)
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message
    for folder in ("given", "env", "cache"):
        assert str(tmp_path / folder) in message


def test_search_order_env_variable(tmp_path, monkeypatch, mnist_dir):
    env = tmp_path / "env" / "mnist"
    env.mkdir(parents=True)
    for name in data.MNIST_FILES:
        (env / f"{name}.gz").symlink_to(mnist_dir / f"{name}.gz")
    monkeypatch.setenv("AUTODIFF_DATA", str(tmp_path / "env"))
    (_, y), _ = load_mnist(tmp_path / "nothing-here", download=False)
    assert y[:3].tolist() == [5, 0, 4]


# --- simulated downloads -------------------------------------------------------------------------


class _Response(io.BytesIO):
    headers = {"Content-Length": "0"}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_download_tries_next_mirror_and_publishes_only_verified(tmp_path, monkeypatch,
                                                                mnist_dir):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("AUTODIFF_DATA", raising=False)
    calls = []

    def opener(url):
        calls.append(url)
        if url.startswith("https://bad/"):
            raise OSError("connection refused")
        if url.startswith("https://wrong/"):
            return _Response(gzip.compress(b"not mnist"))
        name = url.rsplit("/", 1)[1]
        return _Response((mnist_dir / name).read_bytes())

    target = tmp_path / "dl"
    (x, y), (xt, yt) = load_mnist(target, opener=opener, progress=False,
                                  mirrors=("https://bad/", "https://wrong/", "https://good/"))
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert sorted(p.name for p in target.iterdir()) == sorted(f"{n}.gz" for n in data.MNIST_FILES)
    assert len(calls) == 12  # each file: bad, wrong, good


def test_failed_download_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("AUTODIFF_DATA", raising=False)

    def opener(url):
        return _Response(gzip.compress(b"tampered"))

    with pytest.raises(MNISTNotFoundError, match="checksum mismatch"):
        load_mnist(tmp_path / "dl", opener=opener, progress=False, mirrors=("https://x/",))
    assert not any((tmp_path / "dl").glob("*")) if (tmp_path / "dl").exists() else True


def test_download_from_a_local_http_server(tmp_path, monkeypatch, mnist_dir):
    """A real HTTP round trip on 127.0.0.1 with the default opener: no outside network."""
    monkeypatch.delenv("AUTODIFF_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    served = tmp_path / "served"
    served.mkdir()
    for name in data.MNIST_FILES:
        (served / f"{name}.gz").write_bytes((mnist_dir / f"{name}.gz").read_bytes())

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        (_, y), _ = load_mnist(mirrors=(url,), progress=True)
    finally:
        server.shutdown()
    assert y[:4].tolist() == [5, 0, 4, 1]
    assert (tmp_path / "cache" / "autodiff" / "mnist" / "train-labels-idx1-ubyte.gz").exists()


# --- DataLoader ------------------------------------------------------------------------------


def test_dataloader_batches_and_shuffling():
    x = np.arange(10)[:, None].astype(np.float32)
    y = np.arange(10)
    loader = DataLoader(x, y, batch_size=4)
    assert len(loader) == 3 and [len(b) for b, _ in loader] == [4, 4, 2]
    assert len(DataLoader(x, y, batch_size=4, drop_last=True)) == 2
    a = [yb.tolist() for _, yb in DataLoader(x, y, batch_size=3, shuffle=True, seed=7)]
    b = [yb.tolist() for _, yb in DataLoader(x, y, batch_size=3, shuffle=True, seed=7)]
    assert a == b and sorted(sum(a, [])) == list(range(10)) and sum(a, []) != list(range(10))
    loader = DataLoader(x, y, batch_size=5, shuffle=True, seed=1)
    assert [yb.tolist() for _, yb in loader] != [yb.tolist() for _, yb in loader]  # new epoch


@pytest.mark.parametrize("kwargs,match", [
    ({"y": np.arange(3)}, "x has 10 samples but y has 3"),
    ({"batch_size": 0}, "batch_size must be a positive int"),
])
def test_dataloader_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DataLoader(np.zeros((10, 2)), **{"y": np.arange(10), **kwargs})


def test_toy_data_sets_are_seeded():
    x, y = data.make_xor()
    assert x.shape == (4, 2) and y.ravel().tolist() == [0, 1, 1, 0]
    m1, m2 = data.make_moons(50, seed=3), data.make_moons(50, seed=3)
    np.testing.assert_array_equal(m1[0], m2[0])
    assert np.bincount(m1[1]).tolist() == [25, 25]
    xs, ys = data.make_spirals(20, 3)
    assert xs.shape == (60, 2) and np.bincount(ys).tolist() == [20, 20, 20]
    xr, yr = data.make_regression(30, kind="quadratic", noise=0.0)
    np.testing.assert_allclose(yr, xr**2)


# --- save / load ---------------------------------------------------------------------------


def test_save_load_round_trip_is_exact(tmp_path):
    model = nn.MLP(4, [3], 2, rng=0)
    path = nn.save(model, tmp_path / "w.npz")
    state = nn.load(path)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(state[name], value)
        assert state[name].dtype == value.dtype
    other = nn.MLP(4, [3], 2, rng=5)
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.layers[0].weight.data, model.layers[0].weight.data)
    mixed = {"a.b": np.arange(3, dtype=np.int64), "c": np.ones((2, 2), np.float64)}
    back = nn.load(nn.save(mixed, tmp_path / "m.npz"))
    assert back["a.b"].dtype == np.int64 and back["c"].tolist() == [[1, 1], [1, 1]]


def test_crash_during_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "w.npz"
    nn.save({"w": np.ones(3)}, path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        nn.save({"w": np.zeros(3)}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npz"]  # no temporary left behind


def test_load_refuses_pickles_without_running_them(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "evil.npz"
    np.savez(path, w=np.array([Evil()], dtype=object))
    with pytest.raises(ValueError, match="not a valid weights file|not written by nn.save"):
        nn.load(path)
    assert not marker.exists()


def test_load_refuses_foreign_and_truncated_files(tmp_path):
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, w=np.ones(2))
    with pytest.raises(ValueError, match="not written by nn.save"):
        nn.load(foreign)
    good = nn.save({"w": np.ones(1000)}, tmp_path / "good.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:-200])
    with pytest.raises(ValueError, match="truncated|not a valid"):
        nn.load(truncated)
    with pytest.raises(FileNotFoundError, match="no such file"):
        nn.load(tmp_path / "missing.npz")


@given(st.binary(max_size=200))
def test_load_fuzz_only_clear_errors(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("fuzz") / "f.npz"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match="^load: "):
        nn.load(path)
