"""PyTorch habits that used to fail (issue #22): checkpoint dicts through nn.save/nn.load,
DataLoader over a map-style data set and a TensorDataset, Module.to("cpu")/.cpu(),
inference_mode, and the builtin round() on a Tensor."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import autodiff as ad
import nn


def _trained(seed: int):
    rng = np.random.default_rng(seed)
    model = nn.MLP(3, [int(rng.integers(2, 6))], 2, rng=seed)
    opt = nn.optim.Adam(model.parameters(), lr=0.01)
    x = rng.normal(size=(8, 3))
    y = rng.integers(0, 2, size=8)
    for _ in range(int(rng.integers(1, 4))):
        opt.zero_grad()
        nn.F.cross_entropy(model(ad.Tensor(x)), y).backward()
        opt.step()
    return model, opt, rng


# --- checkpoints ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_checkpoint_dict_round_trips(seed, tmp_path):
    model, opt, rng = _trained(seed)
    schedule = nn.optim.StepLR(opt, step_size=2)
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": schedule,  # objects with state_dict() are saved through it
        "epoch": int(rng.integers(0, 100)),
        "best_loss": float(rng.random()),
        "note": "run 1 ✓",
        "done": bool(seed % 2),
        "extra": None,
        "nested": {"deeper": {"a": np.arange(3)}, "n": -1},
    }
    path = nn.save(checkpoint, tmp_path / "ckpt.npz")
    back = nn.load(path)
    assert list(back) == list(checkpoint)
    for key in ("epoch", "best_loss", "note", "done", "extra"):
        assert back[key] == checkpoint[key] and type(back[key]) is type(checkpoint[key])
    assert back["nested"]["n"] == -1
    np.testing.assert_array_equal(back["nested"]["deeper"]["a"], np.arange(3))
    for name, value in checkpoint["model"].items():
        np.testing.assert_array_equal(back["model"][name], value)
    # Resuming from it continues the same run.
    again = nn.MLP(3, [model.layers[0].out_features], 2, rng=99)
    again.load_state_dict(back["model"])
    opt2 = nn.optim.Adam(again.parameters(), lr=0.5)
    opt2.load_state_dict(back["optimizer"])
    assert opt2.lr == opt.lr
    for p, q in zip(model.parameters(), again.parameters(), strict=True):
        np.testing.assert_array_equal(p.data, q.data)
    # Never unpickled: every entry reads with allow_pickle=False, and none is a pickle.
    with np.load(path, allow_pickle=False) as npz:
        assert "__tree__" in npz.files
        for name in npz.files:
            assert npz[name].dtype != object


def test_checkpoint_save_is_atomic_and_load_refuses_pickles(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    nn.save({"model": {"w": np.ones(2)}, "epoch": 1}, path)
    good = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    import nn.serialization as serialization

    monkeypatch.setattr(serialization.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        nn.save({"model": {"w": np.zeros(2)}, "epoch": 2}, path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]
    monkeypatch.undo()
    (tmp_path / "evil.npz").write_bytes(pickle.dumps({"epoch": 1}))
    with pytest.raises(ValueError, match="pickle"):
        nn.load(tmp_path / "evil.npz")


def test_checkpoint_tree_is_checked_on_load(tmp_path):
    path = nn.save({"model": {"w": np.ones(2)}, "epoch": 1}, tmp_path / "c.npz")
    with np.load(path) as npz:
        entries = {k: npz[k] for k in npz.files}
    entries["__tree__"] = np.array('{"array": "nowhere"}')
    forged = tmp_path / "forged.npz"
    np.savez(forged, **entries)
    with pytest.raises(ValueError, match="__tree__"):
        nn.load(forged)
    with pytest.raises(ValueError, match="checkpoint with entries"):
        nn.load(path, into=nn.Linear(2, 1))
    with pytest.raises(ValueError, match="save it as .npz"):
        nn.save({"model": {"w": np.ones(2)}, "epoch": 1}, tmp_path / "c.safetensors")


# --- data sets -----------------------------------------------------------------------------


class Squares(nn.data.Dataset):
    """A map-style data set computing its samples on demand."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return np.array([i, i * i], dtype=np.float64), i % 3


class Plain:
    """Duck-typed: no base class, just __len__ and __getitem__ (dict samples)."""

    def __len__(self) -> int:
        return 7

    def __getitem__(self, i: int):
        return {"x": np.full(2, float(i)), "y": i}


@pytest.mark.parametrize("seed", range(6))
def test_dataloader_over_map_style_and_tensor_datasets(seed):
    rng = np.random.default_rng(seed)
    n, batch = int(rng.integers(1, 30)), int(rng.integers(1, 8))
    shuffle, drop_last = bool(rng.integers(2)), bool(rng.integers(2))
    x = rng.normal(size=(n, 2))
    y = rng.integers(0, 3, size=n)
    reference = list(
        nn.data.DataLoader(x, y, batch, shuffle=shuffle, seed=seed, drop_last=drop_last)
    )
    tensors = list(
        nn.data.DataLoader(
            nn.data.TensorDataset(x, y), batch, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
    )
    mapped = list(
        nn.data.DataLoader(
            _Rows(x, y), batch_size=batch, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
    )
    assert len(reference) == len(tensors) == len(mapped)
    for (xa, ya), (xb, yb), (xc, yc) in zip(reference, tensors, mapped, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xc)
        np.testing.assert_array_equal(ya, yc)


class _Rows:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def test_dataloader_collates_like_pytorch_and_fit_trains_on_a_dataset():
    xb, yb = next(iter(nn.data.DataLoader(Squares(10), batch_size=4)))
    np.testing.assert_array_equal(xb, [[0, 0], [1, 1], [2, 4], [3, 9]])
    assert yb.dtype == np.int64 and yb.tolist() == [0, 1, 2, 0]
    batch = next(iter(nn.data.DataLoader(Plain(), batch_size=3)))
    assert batch["x"].shape == (3, 2) and batch["y"].tolist() == [0, 1, 2]
    model = nn.Linear(2, 3)
    history = nn.fit(
        model,
        nn.F.cross_entropy,
        nn.optim.SGD(model.parameters(), lr=1e-3),
        nn.data.DataLoader(Squares(12), batch_size=5),
        epochs=2,
        val_data=nn.data.DataLoader(nn.data.TensorDataset(np.ones((4, 2)), np.zeros(4, np.int64))),
        progress=False,
    )
    assert history.epochs == 2 and len(history["val_loss"]) == 2
    with pytest.raises(ValueError, match="TensorDataset: the arrays must share"):
        nn.data.TensorDataset(np.ones(3), np.ones(4))


# --- devices, inference_mode, round --------------------------------------------------------


def test_module_to_cpu_and_clear_errors_for_other_devices():
    model = nn.Linear(2, 2)
    assert model.to("cpu") is model and model.cpu() is model
    assert model.to("cpu", np.float64).weight.dtype == np.float64
    assert model.to(dtype=np.float32).weight.dtype == np.float32
    for device in ("cuda", "cuda:1", "mps"):
        with pytest.raises(RuntimeError, match=rf"Linear.to: device '{device}' is not available"):
            model.to(device)
    with pytest.raises(RuntimeError, match="Linear.cuda: device 'cuda' is not available"):
        model.cuda()
    torch = pytest.importorskip("torch")
    assert model.to(torch.device("cpu"), torch.float64).weight.dtype == np.float64
    with pytest.raises(RuntimeError, match="not available"):
        model.to(torch.device("cuda"))


@pytest.mark.parametrize("where", [ad, nn])
def test_inference_mode_as_context_and_decorator(where):
    x = ad.Tensor([1.0, 2.0], requires_grad=True)
    with where.inference_mode():
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad

    @where.inference_mode
    def bare():
        return (x * 2).requires_grad

    @where.inference_mode()
    def called():
        return (x * 2).requires_grad

    @where.inference_mode()
    def gen():
        yield (x * 2).requires_grad
        yield (x * 2).requires_grad

    assert not bare() and not called()
    assert list(gen()) == [False, False]
    assert ad.is_grad_enabled()
    with where.inference_mode(False):
        assert (x * 2).requires_grad
    model = nn.Linear(2, 1)
    with where.inference_mode():
        out = model(ad.Tensor(np.ones((1, 2))))
    assert not out.requires_grad


@pytest.mark.parametrize("seed", range(5))
def test_builtin_round_on_a_tensor(seed):
    rng = np.random.default_rng(seed)
    values = np.round(rng.normal(scale=10, size=int(rng.integers(1, 10))) * 4) / 8  # ties
    t = ad.Tensor(values)
    np.testing.assert_array_equal(round(t).data, np.round(values))
    np.testing.assert_array_equal(round(t, 1).data, np.round(values, 1))
    assert isinstance(round(ad.Tensor(2.5)), ad.Tensor) and round(ad.Tensor(2.5)).item() == 2.0
