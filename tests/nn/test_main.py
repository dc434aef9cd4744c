"""The main job (`python -m nn`, nn/__main__.py) as a learner first meets it: its curves, its
pictures and what they cost, run in-process for speed; then the command line itself, run as a
subprocess (defaults, usage errors, help, --model lenet, --save and --export)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nn
from nn import viz
from nn.__main__ import GIF_FRAMES, build_parser, resolve, run
from tests.nn.zoo import batch


def _run(tmp_path, *argv: str) -> tuple[dict, dict]:
    settings = resolve(
        build_parser("python -m nn").parse_args(["--out", str(tmp_path), "--quiet", *argv])
    )
    summary = run(settings)
    history = json.loads((tmp_path / "history.json").read_text())
    return summary, history


def _worst_dip(values: list[float]) -> float:
    """How far validation accuracy falls below the best seen so far, from epoch 3 on."""
    v = np.asarray(values)
    return float(np.max(np.maximum.accumulate(v)[1:-1] - v[2:]))


@pytest.mark.slow
def test_default_main_job_validation_curve_has_no_dip(tmp_path):
    # Before: val accuracy 0.884 at epoch 5, 0.764 at epoch 6, 0.895 at epoch 7. The cause
    # was the 8-example last batch of each epoch taking a full SGD step (5,000 = 78 x 64 + 8).
    summary, history = _run(tmp_path, "--no-plots")
    accuracy = history["val_accuracy"]
    assert len(accuracy) == 10 and summary["test_accuracy"] == pytest.approx(accuracy[-1], abs=1e-4)
    assert _worst_dip(accuracy) < 0.03, np.round(accuracy, 3)
    assert accuracy[-1] > 0.89


@pytest.mark.slow
def test_the_partial_last_batch_was_the_cause_of_the_dip():
    # The same run, keeping the partial batch: the dip comes back (so the test above can fail).
    (x, y), (xt, yt) = nn.data.load_mini_mnist()
    model = nn.MLP(784, [128], 10, activation="relu", rng=0)
    loader = nn.data.DataLoader(x, y, batch_size=64, shuffle=True, seed=0, drop_last=False)
    history = nn.fit(
        model,
        nn.F.cross_entropy,
        nn.optim.SGD(model.parameters(), lr=0.1),
        loader,
        epochs=10,
        val_data=(xt, yt),
        progress=False,
    )
    assert _worst_dip(history["val_accuracy"]) > 0.05


def _frames(path) -> int:
    with Image.open(path) as gif:
        return gif.n_frames


@pytest.mark.slow
@pytest.mark.parametrize(
    "dataset,epochs,picture",
    [
        ("xor", "400", "decision_boundary.png"),
        ("moons", "100", "decision_boundary.png"),
        ("regression", "20", "regression_fit.png"),
    ],
)
def test_pictures_per_dataset_and_a_capped_weight_gif(tmp_path, dataset, epochs, picture):
    summary, history = _run(tmp_path, "--dataset", dataset, "--epochs", epochs)
    names = {p.rsplit("/", 1)[-1] for p in summary["pictures"]}
    assert {"loss_curve.png", picture, "weights.gif"} <= names
    assert (tmp_path / picture).read_bytes()[:4] == b"\x89PNG"
    # The initial weights, then evenly spaced epochs: at most GIF_FRAMES frames.
    assert _frames(tmp_path / "weights.gif") == min(int(epochs) + 1, GIF_FRAMES)
    # Wall time covers the pictures too (each figure is rounded to 0.01 s in the summary).
    assert summary["wall_seconds"] >= summary["seconds"] + summary["pictures_seconds"] - 0.015


def test_weight_recorder_starts_at_initialisation_and_samples_evenly():
    model = nn.MLP(2, [3], 1, rng=0)
    initial = model.layers[0].weight.data.copy()
    recorder = viz.WeightRecorder(model, epochs=3000, max_frames=50)
    model.layers[0].weight.data[...] += 1.0  # "training": the snapshot must be a copy
    for epoch in range(1, 3001):
        recorder(epoch)
    assert len(recorder.snapshots) == 50 and recorder.epochs[0] == 0
    assert recorder.epochs[-1] == 3000
    np.testing.assert_array_equal(recorder.snapshots[0]["layers.0.weight"], initial)
    steps = np.diff(recorder.epochs[1:])
    assert steps.max() - steps.min() <= 1  # evenly spaced


def test_weight_heatmaps_caps_frames_of_an_uncapped_recording(tmp_path):
    rng = np.random.default_rng(0)
    snapshots = [{"w": rng.normal(size=(3, 2))} for _ in range(200)]
    gif = viz.weight_heatmaps(snapshots, tmp_path / "w.gif", max_frames=50)
    assert _frames(gif) == 50
    with pytest.raises(ValueError, match="3 labels for 200 snapshots"):
        viz.weight_heatmaps(snapshots, tmp_path / "x.gif", labels=[0, 1, 2])


def test_image_layers_are_drawn_as_one_tile_per_unit():
    w = np.random.default_rng(0).normal(size=(128, 784))
    fig = viz.heatmap_figure(
        {"layers.0.weight": w, "layers.2.weight": w[:10, :128]}, image_shape=(28, 28)
    )
    mosaic = np.ma.getdata(fig.axes[0].images[0].get_array())
    assert mosaic.shape == (8 * 29 - 1, 16 * 29 - 1)  # 8 rows of 16 tiles, 1-pixel gaps
    np.testing.assert_array_equal(mosaic[:28, :28], w[0].reshape(28, 28))
    np.testing.assert_array_equal(mosaic[29:57, 29 * 3 : 29 * 3 + 28], w[19].reshape(28, 28))
    assert np.isnan(mosaic[28, :]).all() and np.isnan(mosaic[:, 28]).all()
    assert fig.axes[1].images[0].get_array().shape == (10, 128)  # not an image layer: plain


@pytest.mark.slow
def test_full_mnist_writes_the_gif_with_tiles(tmp_path, mnist_dir):
    # --data-dir alone implies --dataset mnist.
    summary, history = _run(tmp_path, "--data-dir", str(mnist_dir), "--epochs", "1")
    assert summary["dataset"] == "mnist" and summary["test_accuracy"] > 0.9
    assert _frames(tmp_path / "weights.gif") == 2  # initial weights and epoch 1
    with Image.open(tmp_path / "weights.gif") as gif:
        assert gif.size[0] > 900  # the tiled 128x784 panel is drawn large enough to see


def test_the_main_job_multiplies_on_the_threads_asked_and_gives_them_back(tmp_path, monkeypatch):
    """--threads (default 1) limits numpy's BLAS for the run only: on a busy machine two
    threads made the tutorial run many times slower, each product waiting for both."""
    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    assert before, "numpy's BLAS should be visible to threadpoolctl"
    seen = []
    real_fit = nn.fit

    def spying_fit(*args, **kwargs):
        seen.append(blas_threads())
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(nn, "fit", spying_fit)
    default, _ = _run(tmp_path / "default", "--dataset", "xor", "--epochs", "2", "--no-plots")
    unlimited, _ = _run(
        tmp_path / "all", "--dataset", "xor", "--epochs", "2", "--no-plots", "--threads", "0"
    )
    assert seen == [[1] * len(before), before]
    assert default["options"]["threads"] == 1 and unlimited["options"]["threads"] == 0
    assert blas_threads() == before  # given back after the run
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--threads", "-1"])


# --- the command line --------------------------------------------------------------------------


def test_cli_out_that_is_a_file_is_a_usage_error_not_a_traceback(tmp_path, capsys):
    """Found in the nn hunt (adversarial testing of nn/)."""
    # --out naming a file (or a path through one) trained first and then died with a
    # FileExistsError / NotADirectoryError traceback from mkdir; an artifact path that cannot
    # be written (summary.json taken by a folder) died with IsADirectoryError. All three now
    # exit 2 with one line naming the problem.
    from nn.__main__ import main

    afile = tmp_path / "afile"
    afile.write_text("keep me")
    common = ["--dataset", "xor", "--epochs", "1", "--no-plots", "--quiet"]
    for out, says in (
        (afile, f"{afile} is a file, not a folder"),
        (afile / "sub", f"{afile} is a file, not a folder (on the way to"),
    ):
        with pytest.raises(SystemExit) as info:
            main([*common, "--out", str(out)])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "argument --out" in err and says in err and "Traceback" not in err
    assert afile.read_text() == "keep me"
    out = tmp_path / "run"
    (out / "summary.json").mkdir(parents=True)
    with pytest.raises(SystemExit) as info:
        main([*common, "--out", str(out)])
    assert info.value.code == 2
    assert "summary.json" in capsys.readouterr().err


def test_cli_save_and_export_may_go_into_the_out_folder_the_run_makes(tmp_path):
    """Found in the nn hunt (adversarial testing of nn/)."""
    # `--out runs/a --save runs/a/w.npz` on a first run was refused ("--save: folder runs/a
    # does not exist") though the run makes runs/a before it saves anything.
    from nn.__main__ import main

    out = tmp_path / "runs" / "a"
    assert (
        main(
            [
                "--dataset",
                "xor",
                "--epochs",
                "1",
                "--no-plots",
                "--quiet",
                "--out",
                str(out),
                "--save",
                str(out / "w.safetensors"),
                "--export",
                str(out / "w2.safetensors"),
            ]
        )
        == 0
    )
    saved = nn.load(out / "w.safetensors")
    assert saved.keys() == nn.load(out / "w2.safetensors").keys()
    assert all(np.array_equal(saved[k], v) for k, v in nn.load(out / "w2.safetensors").items())


def test_cli_save_into_a_missing_folder_elsewhere_is_still_refused(tmp_path, capsys):
    """Found in the nn hunt (adversarial testing of nn/)."""
    from nn.__main__ import main

    with pytest.raises(SystemExit) as info:
        main(
            [
                "--dataset",
                "xor",
                "--out",
                str(tmp_path / "out"),
                "--save",
                str(tmp_path / "elsewhere" / "w.npz"),
            ]
        )
    assert info.value.code == 2
    assert (
        f"argument --save: folder {tmp_path / 'elsewhere'} does not exist"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()  # refused before anything was made


def test_the_main_job_never_prints_an_epoch_time_of_zero(tmp_path):
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    # XOR's 3,000 epochs of 0.2 ms each printed "seconds_per_epoch  0.0".
    import json

    from nn.__main__ import build_parser, resolve, run

    settings = resolve(
        build_parser("python -m nn").parse_args(
            ["--dataset", "xor", "--epochs", "5", "--no-plots", "--quiet", "--out", str(tmp_path)]
        )
    )
    summary = run(settings)
    per_epoch = summary["seconds_per_epoch"]
    assert 0 < per_epoch < 0.01
    assert per_epoch == float(f"{per_epoch:.2g}")  # two significant digits
    # a 50-epoch XOR run takes milliseconds: its training and wall times were 0.0 too
    for key in ("seconds", "wall_seconds"):
        assert summary[key] > 0
    assert json.loads((tmp_path / "summary.json").read_text())["seconds_per_epoch"] == per_epoch


def test_the_main_job_refuses_a_loss_it_would_not_use(capsys):
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    # --dataset regression --loss cross-entropy trained with mse and recorded cross-entropy.
    from nn.__main__ import build_parser, resolve

    parser = build_parser("python -m nn")
    with pytest.raises(SystemExit):
        resolve(parser.parse_args(["--dataset", "regression", "--loss", "cross-entropy"]), parser)
    assert "--dataset regression has no classes for a cross-entropy" in capsys.readouterr().err
    assert resolve(parser.parse_args(["--dataset", "regression"]), parser)["loss"] == "mse"


@pytest.mark.parametrize(
    "path, message",
    [
        ("model.pt", "--save: expected a path ending in .npz or .safetensors, got 'model.pt'"),
        ("no/such/folder/w.npz", "--save: folder no/such/folder does not exist"),
    ],
)
def test_the_main_job_checks_save_before_training(path, message, capsys):
    """Found in the first-hour walk (micrograd, PyTorch and numpy habits)."""
    # --save model.pt wrote .npz bytes under a PyTorch name; a missing folder was found only
    # after training, when the weights could not be written.
    from nn.__main__ import build_parser

    with pytest.raises(SystemExit) as exit_info:
        build_parser("python -m nn").parse_args(["--save", path])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


ROOT = Path(__file__).resolve().parents[2]


def _run_lenet(*args: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        MPLBACKEND="Agg",
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
    )
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_main_job_lenet_on_mini_mnist(tmp_path):
    result = _run_lenet(
        "-m", "nn", "--model", "lenet", "--epochs", "1", "--out", str(tmp_path), "--quiet"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["model"].startswith("LeNet5") and summary["parameters"] == 61_706
    assert summary["epochs"] == 1 and summary["test_accuracy"] > 0.6
    for name in (
        "weights.npz",
        "loss_curve.png",
        "predictions.png",
        "filters.png",
        "feature_maps.png",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    restored = nn.LeNet5().load(tmp_path / "weights.npz")
    assert restored.features[0].weight.shape == (6, 1, 5, 5)


@pytest.mark.slow
def test_main_job_lenet_refuses_flat_datasets(tmp_path):
    result = _run_lenet(
        "-m", "nn", "--model", "lenet", "--dataset", "moons", "--out", str(tmp_path)
    )
    assert result.returncode == 2
    assert "--model lenet needs 28x28 images" in result.stderr
    result = _run_lenet("-m", "nn", "--model", "lenet", "--hidden", "64", "--out", str(tmp_path))
    assert result.returncode == 2 and "--hidden sets the MLP's layers" in result.stderr


def _assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert list(got) == list(want)
    for name, array in want.items():
        assert got[name].shape == array.shape, name
        assert got[name].dtype == array.dtype.newbyteorder("="), name
        np.testing.assert_array_equal(got[name], array, err_msg=name)


# --- the main job ----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".onnx", ".safetensors"])
def test_main_job_exports_the_trained_model(tmp_path, capsys, suffix):
    if suffix == ".onnx":
        pytest.importorskip("onnx", reason="onnx not installed")
    from nn.__main__ import main

    target = tmp_path / f"model{suffix}"
    assert (
        main(
            [
                "--dataset",
                "moons",
                "--epochs",
                "3",
                "--no-plots",
                "--quiet",
                "--out",
                str(tmp_path),
                "--export",
                str(target),
            ]
        )
        == 0
    )
    assert re.search(rf"^export\s+{re.escape(str(target))}$", capsys.readouterr().out, re.M)
    trained = nn.MLP(2, [16, 16], 2)
    trained.load_state_dict(nn.load(tmp_path / "weights.npz"))
    x = batch((2,), 10, 0)
    if suffix == ".onnx":
        from onnx.reference import ReferenceEvaluator

        got = ReferenceEvaluator(str(target)).run(None, {"input": x})[0]
        np.testing.assert_allclose(got, nn.predict(trained, x), rtol=1e-5, atol=1e-6)
    else:
        _assert_same(nn.load(target), trained.state_dict())


@pytest.mark.parametrize(
    "target, message",
    [
        ("model.pt", "expected a path ending in .onnx or .safetensors"),
        ("missing/model.safetensors", "does not exist"),
    ],
)
def test_main_job_checks_the_export_path_before_training(tmp_path, capsys, target, message):
    from nn.__main__ import main

    with pytest.raises(SystemExit) as info:
        main(["--dataset", "xor", "--export", str(tmp_path / target), "--out", str(tmp_path)])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing trained, nothing written


def _run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_main_job_default_trains_and_writes_artifacts(tmp_path):
    result = _run_cli("-m", "nn", "--out", str(tmp_path), "--epochs", "3", "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["dataset"] == "mini-mnist" and summary["parameters"] == 101_770
    assert summary["test_accuracy"] > 0.8
    for name in (
        "weights.npz",
        "history.json",
        "loss_curve.png",
        "predictions.png",
        "weights.gif",
        "graph.svg",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    assert "test_accuracy" in result.stdout


@pytest.mark.parametrize(
    "dataset,extra",
    [
        ("xor", ["--epochs", "2000"]),
        ("moons", ["--epochs", "100"]),
        ("regression", ["--epochs", "50"]),
    ],
)
def test_main_job_other_datasets(tmp_path, dataset, extra):
    result = _run_cli(
        "-m", "nn", "--dataset", dataset, "--out", str(tmp_path), "--quiet", "--no-plots", *extra
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    if dataset == "xor":
        assert summary["test_accuracy"] == 1.0
    if dataset == "moons":
        assert summary["test_accuracy"] > 0.9


@pytest.mark.parametrize(
    "args,message",
    [
        (["--epochs", "0"], "expected a positive integer"),
        (["--lr", "-1"], "expected a positive number"),
        (["--dataset", "cifar"], "invalid choice"),
        (["--dataset", "mnist", "--data-dir", "/nonexistent-folder"], "error: load_mnist"),
    ],
)
def test_bad_arguments_give_usage_errors_not_tracebacks(args, message, tmp_path):
    env_args = ["--out", str(tmp_path), "--quiet"]
    result = subprocess.run(
        [sys.executable, "-m", "nn", *args, *env_args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(
            os.environ,
            PYTHONPATH=str(ROOT),
            XDG_CACHE_HOME=str(tmp_path),
            AUTODIFF_DATA=str(tmp_path),
            AUTODIFF_OFFLINE="1",
        ),
    )
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["--seed", "-5"], "argument --seed: expected a non-negative integer"),
        (
            ["--dataset", "xor", "--data-dir", "somewhere"],
            "--data-dir is the folder of the full MNIST files, but --dataset is xor",
        ),
    ],
)
def test_usage_errors_name_the_option(args, message, capsys):
    from nn.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_help_explains_every_option_and_its_default(capsys):
    from nn.__main__ import DATASETS, PRESETS, build_parser

    parser = build_parser("python -m nn")
    helps = {action.dest: action.help or "" for action in parser._actions}
    for dest in (
        "dataset",
        "data_dir",
        "epochs",
        "hidden",
        "activation",
        "loss",
        "optimizer",
        "lr",
        "batch_size",
        "seed",
        "save",
        "out",
        "no_plots",
        "quiet",
    ):
        assert "default" in helps[dest], dest
    text = parser.format_help()
    for phrase in (
        "passes over the whole training set",
        "learning rate",
        *(f"{name}:" for name in DATASETS),
    ):
        assert phrase in text, phrase
    # The table of per-data-set defaults is generated from PRESETS: the numbers are the code's.
    xor_row = next(line for line in text.splitlines() if line.strip().startswith("xor "))
    assert xor_row.split() == [
        "xor",
        "2",
        "3000",
        "4",
        "mse",
        "sigmoid",
        "2",
        "0.5",
        "0.05",
        "0.05",
    ]
    assert PRESETS["xor"]["lr"] == {"sgd": 2.0, "momentum": 0.5, "adam": 0.05, "adamw": 0.05}


def test_help_uses_the_commands_own_name(tmp_path):
    # What pip writes for the `autodiff-train` entry point, run under that name.
    script = tmp_path / "autodiff-train"
    script.write_text("import sys\nfrom nn.__main__ import main\nsys.exit(main())\n")
    result = _run_cli(str(script), "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: autodiff-train ")
    assert _run_cli("-m", "nn", "--help").stdout.startswith("usage: python -m nn ")


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam", "adamw"])
def test_each_optimizer_has_its_own_default_lr_and_summary_records_every_option(
    optimizer, tmp_path
):
    from nn.__main__ import PRESETS, build_parser, resolve, run

    parser = build_parser("python -m nn")
    args = parser.parse_args(
        [
            "--dataset",
            "xor",
            "--optimizer",
            optimizer,
            "--epochs",
            "1500",
            "--no-plots",
            "--quiet",
            "--out",
            str(tmp_path),
        ]
    )
    run(resolve(args))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["optimizer"] == optimizer
    assert summary["lr"] == PRESETS["xor"]["lr"][optimizer]
    assert PRESETS["xor"]["lr"]["adam"] != PRESETS["xor"]["lr"]["sgd"]
    options = summary["options"]
    assert set(vars(args)) <= set(options)  # every option, as used
    assert options["epochs"] == 1500 and options["hidden"] == [2] and options["seed"] == 0
    assert summary["test_accuracy"] == 1.0  # the default lr works for every optimizer


def test_mini_mnist_adam_default_lr_beats_the_sgd_rate(tmp_path):
    # Adam at mini-MNIST's SGD rate (0.1) reached 0.773; its own default (0.001) does not.
    from nn.__main__ import build_parser, resolve, run

    args = build_parser("x").parse_args(
        ["--optimizer", "adam", "--epochs", "3", "--no-plots", "--quiet", "--out", str(tmp_path)]
    )
    summary = run(resolve(args))
    assert summary["lr"] == 0.001 and summary["test_accuracy"] > 0.88
