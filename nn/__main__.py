"""The main job: `python -m nn` trains an MLP and reports (mini-MNIST by default, offline).

python -m nn                                   # 784-128-10 ReLU on the shipped mini-MNIST
python -m nn --dataset mnist --data-dir ../shared/data/mnist --epochs 10
python -m nn --dataset xor --activation sigmoid --loss mse --lr 0.5 --epochs 2000
python -m nn --model lenet --dataset mnist --data-dir ../shared/data/mnist   # LeNet-5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

DATASETS = ("mini-mnist", "mnist", "xor", "moons", "regression")
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
DATASET_HELP = {
    "mini-mnist": "5,000 MNIST digits shipped with the package (1,000 test), offline",
    "mnist": "the full MNIST, 60,000 digits (10,000 test): --data-dir, or downloaded once",
    "xor": "the four XOR points, 2 classes (the classic 2-2-1 sigmoid network)",
    "moons": "200 points on two interleaved half-circles, 2 classes (100 train, 100 test)",
    "regression": "y = x^2 plus noise, 1-D (100 train, 100 test)",
}
# Defaults per data set: the classic tutorials' settings. The learning rate is per optimizer
# too: Adam's steps are normalised, so the SGD rate that suits a data set is far too large for
# it (PyTorch's default for Adam and AdamW is 0.001; the short runs here need larger ones).
PRESETS: dict[str, dict[str, Any]] = {
    "mini-mnist": dict(
        hidden=[128],
        epochs=10,
        batch_size=64,
        loss="cross-entropy",
        activation="relu",
        lr=dict(sgd=0.1, momentum=0.05, adam=0.001, adamw=0.001),
    ),
    "mnist": dict(
        hidden=[128],
        epochs=10,
        batch_size=64,
        loss="cross-entropy",
        activation="relu",
        lr=dict(sgd=0.1, momentum=0.05, adam=0.001, adamw=0.001),
    ),
    "xor": dict(
        hidden=[2],
        epochs=3000,
        batch_size=4,
        loss="mse",
        activation="sigmoid",
        lr=dict(sgd=2.0, momentum=0.5, adam=0.05, adamw=0.05),
    ),
    "moons": dict(
        hidden=[16, 16],
        epochs=300,
        batch_size=100,
        loss="cross-entropy",
        activation="relu",
        lr=dict(sgd=0.1, momentum=0.05, adam=0.01, adamw=0.01),
    ),
    "regression": dict(
        hidden=[32],
        epochs=500,
        batch_size=100,
        loss="mse",
        activation="relu",
        lr=dict(sgd=0.05, momentum=0.01, adam=0.01, adamw=0.01),
    ),
}
# The weight GIF: at most this many frames (the initial weights, then evenly spaced epochs),
# so that drawing costs a small part of a run whatever its number of epochs.
GIF_FRAMES = 50
# --model lenet: LeNet-5 (nn.LeNet5) on MNIST images, the recipe measured in README: inputs
# standardised with MNIST's pixel mean and std, Adam, the rate cut to 0.3x after each epoch.
# (Adam at a flat 1e-3 on raw [0, 1] pixels reached 98.14% after 3 epochs: short of 98.8%.)
LENET = dict(
    epochs=3,
    batch_size=64,
    loss="cross-entropy",
    optimizer="adam",
    lr=dict(sgd=0.05, momentum=0.01, adam=0.002, adamw=0.002),
)
LENET_DECAY = 0.3
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def _prog_name() -> str:
    """`python -m nn` when run as a module, else the command's own name (`autodiff-train`)."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return "python -m nn" if name in ("", "__main__.py", "-c") else name


def _presets_table() -> str:
    head = (
        "data set",
        "hidden",
        "epochs",
        "batch",
        "loss",
        "activation",
        *(f"lr {o}" for o in OPTIMIZERS),
    )
    rows = [head] + [
        (
            name,
            " ".join(map(str, p["hidden"])),
            str(p["epochs"]),
            str(p["batch_size"]),
            p["loss"],
            p["activation"],
            *(f"{p['lr'][o]:g}" for o in OPTIMIZERS),
        )
        for name, p in PRESETS.items()
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    return "defaults per data set (any option given on the command line wins):\n" + "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    """The options, then the checks that need two of them: --save and --export may go into
    the --out folder, which the run makes (a first run with `--out runs/a --save
    runs/a/w.npz` was refused because runs/a did not exist yet)."""

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        namespace, extras = super().parse_known_args(args, namespace)
        out = getattr(namespace, "out", None)
        for option in ("save", "export"):
            value = getattr(namespace, option, None)
            if value is None:
                continue
            folder = Path(value).parent
            if not folder.is_dir() and (out is None or folder.resolve() != Path(out).resolve()):
                self.error(f"argument --{option}: folder {folder} does not exist")
        return namespace, extras


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog or _prog_name(),
        description="Train a multi-layer perceptron with the autodiff engine, then write the\n"
        "weights, the history, summary.json (every setting used) and pictures\n"
        "to --out.",
        epilog=_presets_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    datasets = "; ".join(f"{k}: {v}" for k, v in DATASET_HELP.items())
    parser.add_argument(
        "--dataset",
        choices=DATASETS,
        metavar="NAME",
        help=f"what to learn, one of {', '.join(DATASETS)} (default: "
        f"mini-mnist, or mnist when --data-dir is given). {datasets}",
    )
    parser.add_argument(
        "--model",
        choices=("mlp", "lenet"),
        default="mlp",
        help="mlp, or lenet: LeNet-5 (two conv layers) for the MNIST data "
        "sets, 3 epochs of Adam by default (default: mlp)",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder with the four MNIST IDX files; implies --dataset mnist "
        "(an error with any other --dataset) (default: $AUTODIFF_DATA, "
        "then the user cache, then a verified download)",
    )
    parser.add_argument(
        "--epochs",
        type=_positive_int,
        help="passes over the whole training set; the weights are updated "
        "once per mini-batch (default: per data set, table below)",
    )
    parser.add_argument(
        "--hidden",
        type=_positive_int,
        nargs="+",
        metavar="N",
        help="hidden layer sizes, e.g. --hidden 128 or --hidden 16 16 (default: per data set)",
    )
    parser.add_argument(
        "--activation",
        choices=("relu", "sigmoid", "tanh", "leaky_relu"),
        help="activation of the hidden layers (default: per data set)",
    )
    parser.add_argument(
        "--loss",
        choices=("cross-entropy", "mse"),
        help="softmax cross-entropy, or squared error on sigmoid outputs (default: per data set)",
    )
    parser.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        help="sgd, sgd with momentum 0.9, adam, or adamw (weight decay 0.01) "
        "(default: sgd; adam for --model lenet)",
    )
    parser.add_argument(
        "--lr",
        type=_positive_float,
        help="learning rate: how far each update moves the weights along "
        "the negative gradient (default: per data set and optimizer, "
        "table below)",
    )
    parser.add_argument(
        "--batch-size", type=_positive_int, help="examples per update (default: per data set)"
    )
    parser.add_argument(
        "--seed",
        type=_nonnegative_int,
        default=0,
        help="seeds the initial weights, the shuffling and the generated data sets (default: 0)",
    )
    parser.add_argument(
        "--save",
        metavar="PATH",
        type=_save_path,
        help="write the trained weights here: .npz, or .safetensors by its "
        "suffix (default: OUT/weights.npz)",
    )
    parser.add_argument(
        "--export",
        metavar="PATH",
        type=_export_path,
        help="also write the trained model as .onnx (needs the onnx package) "
        "or .safetensors (default: no export)",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        default="runs/latest",
        type=_out_dir,
        help="folder for the artifacts: weights, history, summary, pictures (default: runs/latest)",
    )
    parser.add_argument(
        "--threads",
        type=_nonnegative_int,
        default=1,
        metavar="N",
        help="threads for numpy's matrix products, 0 for numpy's own choice "
        "(all cores). The networks here are small enough that more "
        "threads gain little when the machine is idle, and each product "
        "waits for all of them: on a busy machine two made the tutorial "
        "run 3 to 50 times slower (default: 1)",
    )
    parser.add_argument(
        "--no-plots", action="store_true", help="skip the pictures (default: draw them)"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bars (default: one bar per epoch)"
    )
    parser.add_argument(
        "--page",
        action="store_true",
        help="also write OUT/backward.html: one training step (the first batch) to step "
        "through node by node in a browser, offline (default: no page)",
    )
    return parser


def _number(kind: type, noun: str, accept):
    """An argparse type: a finite number of `kind` that `accept`s, or a usage error (argparse
    prefixes it with the option's name)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not np.isfinite(value) or not accept(value):
            raise argparse.ArgumentTypeError(f"expected a {noun}, got {text!r}")
        return value

    return parse


_positive_int = _number(int, "positive integer", lambda v: v > 0)
_positive_float = _number(float, "positive number", lambda v: v > 0)
# numpy's generators take seeds in [0, 2**32) for legacy APIs; refuse what they would refuse.
_nonnegative_int = _number(int, "non-negative integer below 2**32", lambda v: 0 <= v < 2**32)


def resolve(
    args: argparse.Namespace, parser: argparse.ArgumentParser | None = None
) -> dict[str, Any]:
    """Every setting of the run: the options given, else the data set's and optimizer's
    defaults. `--data-dir` implies `--dataset mnist`; with another data set it is an error."""

    def error(message: str):
        if parser is not None:
            parser.error(message)
        raise ValueError(message)

    dataset = args.dataset
    if args.data_dir is not None:
        if dataset not in (None, "mnist"):
            error(
                f"--data-dir is the folder of the full MNIST files, but --dataset is "
                f"{dataset}: drop --data-dir, or use --dataset mnist"
            )
        dataset = "mnist"
    dataset = dataset or "mini-mnist"
    preset = PRESETS[dataset]
    model = getattr(args, "model", "mlp")
    if model == "lenet":
        if dataset not in ("mnist", "mini-mnist"):
            error(
                f"--model lenet needs 28x28 images (--dataset mnist or mini-mnist), got "
                f"--dataset {dataset}"
            )
        if args.loss == "mse":
            error("--model lenet trains with --loss cross-entropy only")
        for option in ("hidden", "activation"):  # LeNet's layers are fixed: never ignore them
            if getattr(args, option) is not None:
                error(
                    f"--{option} sets the MLP's layers; LeNet-5's are fixed (drop --{option} "
                    "or use --model mlp)"
                )
        preset = {**preset, **LENET}
    if dataset == "regression" and args.loss == "cross-entropy":
        # it trained with mse anyway while summary.json recorded cross-entropy
        error(
            "--dataset regression has no classes for a cross-entropy: its loss is mse (drop --loss)"
        )
    settings: dict[str, Any] = {"dataset": dataset, "model": model, "data_dir": args.data_dir}
    for key in ("hidden", "epochs", "batch_size", "loss", "activation"):
        given = getattr(args, key)
        settings[key] = preset[key] if given is None else given
    settings["optimizer"] = args.optimizer or preset.get("optimizer", "sgd")
    settings["lr"] = preset["lr"][settings["optimizer"]] if args.lr is None else args.lr
    for key in ("seed", "save", "export", "out", "no_plots", "quiet", "threads", "page"):
        value = getattr(args, key, None)
        settings[key] = str(value) if isinstance(value, Path) else value  # JSON-ready
    return settings


def _save_path(text: str) -> str:
    """An argparse type for --save: the format checked before training (a PyTorch habit,
    --save model.pt, wrote .npz bytes under that name); the folder is checked by _Parser,
    which knows --out (a missing folder was found only when the weights could not be
    written)."""
    path = Path(text)
    if path.suffix.lower() not in (".npz", ".safetensors"):
        raise argparse.ArgumentTypeError(
            f"expected a path ending in .npz or .safetensors, got {text!r}"
        )
    return text  # its folder is checked beside --out, by _Parser


def _out_dir(text: str) -> str:
    """An argparse type for --out: a folder (made if missing), checked before training: a file
    of that name, or on the way to it, was found only when the first artifact was written,
    with a traceback."""
    path = Path(text)
    for part in (path, *path.parents):
        if part.exists() and not part.is_dir():
            raise argparse.ArgumentTypeError(
                f"{part} is a file, not a folder"
                + ("" if part == path else f" (on the way to {text})")
            )
    return text


def _export_path(text: str) -> Path:
    """An argparse type for --export, checked before training rather than after it."""
    import importlib.util

    path = Path(text)
    if path.suffix.lower() not in (".onnx", ".safetensors"):
        raise argparse.ArgumentTypeError(
            f"expected a path ending in .onnx or .safetensors, got {text!r}"
        )
    if path.suffix.lower() == ".onnx" and importlib.util.find_spec("onnx") is None:
        raise argparse.ArgumentTypeError(
            '.onnx export needs the onnx package: pip install "autodiff-nn[export]"'
        )
    return path  # its folder is checked beside --out, by _Parser


def load_dataset(name: str, data_dir: str | None, seed: int):
    """(x_train, y_train, x_test, y_test, n_classes); n_classes 0 means regression."""
    from . import data

    if name == "mini-mnist":
        (x, y), (xt, yt) = data.load_mini_mnist()
        return x, y, xt, yt, 10
    if name == "mnist":
        (x, y), (xt, yt) = data.load_mnist(data_dir)
        return x, y, xt, yt, 10
    if name == "xor":
        x, y = data.make_xor()
        return x, y.reshape(-1).astype(np.int64), x, y.reshape(-1).astype(np.int64), 2
    if name == "moons":
        x, y = data.make_moons(200, noise=0.1, seed=seed)
        return x[:100], y[:100], x[100:], y[100:], 2
    x, y = data.make_regression(200, kind="quadratic", noise=0.05, seed=seed)
    return x[::2], y[::2], x[1::2], y[1::2], 0


def _seconds(value: float, places: int = 3) -> float:
    """A duration rounded to `places` decimals, or to two significant digits where that
    rounding would print 0.0 (a 0.2 ms XOR epoch, a 4 ms regression run)."""
    rounded = round(value, places)
    return rounded if rounded > 0 else float(f"{value:.2g}")


def run(args: argparse.Namespace | dict[str, Any]) -> dict[str, Any]:
    """Train as the options say; write weights, history.json, summary.json and pictures."""
    wall_start = time.perf_counter()
    settings = resolve(args) if isinstance(args, argparse.Namespace) else dict(args)
    threads = settings.setdefault("threads", 1)
    # For this process's run only, restored after it (see --threads).
    with threadpool_limits(limits=threads, user_api="blas") if threads else nullcontext():
        return _train(settings, wall_start)


def _train(settings: dict[str, Any], wall_start: float) -> dict[str, Any]:
    import nn

    x, y, xt, yt, n_classes = load_dataset(
        settings["dataset"], settings["data_dir"], settings["seed"]
    )
    regression = n_classes == 0
    binary = n_classes == 2 and settings["loss"] == "mse"
    out_features = 1 if regression or binary else n_classes
    output_activation = "sigmoid" if (settings["loss"] == "mse" and not regression) else None
    lenet = settings.get("model") == "lenet"
    model: nn.Module
    if lenet:
        model = nn.LeNet5(n_classes, rng=settings["seed"])
    else:
        model = nn.MLP(
            x.shape[1],
            settings["hidden"],
            out_features,
            activation=settings["activation"],
            output_activation=output_activation,
            rng=settings["seed"],
        )
    x, xt = x.astype(np.float32), xt.astype(np.float32)
    if lenet:
        x, xt = (x - MNIST_MEAN) / MNIST_STD, (xt - MNIST_MEAN) / MNIST_STD

    loss_fn: Callable[..., Any]  # mse_loss or cross_entropy
    if regression:
        targets, test_targets = y.astype(np.float32), yt.astype(np.float32)
        loss_fn, metric = nn.F.mse_loss, None
    elif settings["loss"] == "mse":
        # The classic tutorial: sigmoid outputs against one-hot targets, squared error.
        width = out_features
        targets = _one_hot(y, n_classes)[:, -width:] if width > 1 else y[:, None]
        test_targets = _one_hot(yt, n_classes)[:, -width:] if width > 1 else yt[:, None]
        targets, test_targets = targets.astype(np.float32), test_targets.astype(np.float32)
        loss_fn, metric = nn.F.mse_loss, nn.F.accuracy
    else:
        targets, test_targets = y, yt
        loss_fn, metric = nn.F.cross_entropy, nn.F.accuracy

    lr = settings["lr"]
    optimizer = {
        "sgd": lambda p: nn.optim.SGD(p, lr=lr),
        "momentum": lambda p: nn.optim.SGD(p, lr=lr, momentum=0.9),
        "adam": lambda p: nn.optim.Adam(p, lr=lr),
        "adamw": lambda p: nn.optim.AdamW(p, lr=lr),
    }[settings["optimizer"]](model.parameters())
    # The last batch of an epoch is partial when the batch size does not divide the data
    # (mini-MNIST: 5,000 = 78 x 64 + 8). Its mean gradient over 8 examples is 8x noisier yet
    # takes a full step, just before the epoch's validation: it made val accuracy drop from
    # 0.88 to 0.76 at one epoch. Dropping it (a different 8 each epoch, as the order is
    # shuffled) leaves a smooth curve.
    loader = nn.data.DataLoader(
        x,
        targets,
        batch_size=settings["batch_size"],
        shuffle=True,
        seed=settings["seed"],
        drop_last=len(x) > settings["batch_size"],
    )
    out_dir = Path(settings["out"])
    out_dir.mkdir(parents=True, exist_ok=True)
    recorder = None
    callbacks = []
    if lenet:
        schedule = nn.optim.StepLR(optimizer, step_size=1, gamma=LENET_DECAY)
        callbacks.append(lambda epoch, history: schedule.step())
    elif not settings["no_plots"]:  # (LeNet's pictures are its filters and feature maps)
        from .viz import WeightRecorder

        recorder = WeightRecorder(model, epochs=settings["epochs"], max_frames=GIF_FRAMES)
        callbacks.append(recorder)

    started = time.perf_counter()
    history = nn.fit(
        model,
        loss_fn,
        optimizer,
        loader,
        epochs=settings["epochs"],
        val_data=(xt, test_targets),
        metric=metric,
        progress=not settings["quiet"],
        callbacks=callbacks,
    )
    seconds = time.perf_counter() - started
    test_loss, test_metric = nn.evaluate(model, xt, test_targets, loss_fn, metric=metric)

    weights = Path(settings["save"]) if settings["save"] else out_dir / "weights.npz"
    nn.save(model, weights)
    summary: dict[str, Any] = {
        "dataset": settings["dataset"],
        "model": repr(model).split("\n")[0],
        "parameters": model.num_parameters(),
        "optimizer": settings["optimizer"],
        "lr": lr,
        "epochs": history.epochs,
        "stopped": history.stopped_reason,
        "seconds": _seconds(seconds, 2),
        "seconds_per_epoch": _seconds(seconds / max(history.epochs, 1)),
        "test_loss": round(test_loss, 5),
        "weights": str(weights),
    }
    if metric is not None:
        summary["test_accuracy"] = round(test_metric, 4)
    if lenet:  # the saved model expects inputs standardised the same way
        summary["inputs"] = f"(pixels - {MNIST_MEAN}) / {MNIST_STD}"
    if settings.get("export") is not None:
        export = Path(settings["export"])
        if export.suffix.lower() == ".onnx":
            nn.export_onnx(model, export, xt[:1])
        else:
            nn.save(model, export)
        summary["export"] = str(export)
    (out_dir / "history.json").write_text(json.dumps(dict(history), indent=1))
    if not settings["no_plots"]:
        drawing = time.perf_counter()
        summary["pictures"] = _pictures(
            settings, model, history, recorder, x, y, xt, yt, targets, n_classes, loss_fn, out_dir
        )
        summary["pictures_seconds"] = _seconds(time.perf_counter() - drawing, 2)
    if settings.get("page"):
        summary["page"] = _page(model, x, targets, loss_fn, settings["batch_size"], out_dir)
    # Everything this function did: loading, training, evaluating, saving and drawing.
    summary["wall_seconds"] = _seconds(time.perf_counter() - wall_start, 2)
    summary["options"] = settings
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _page(model, x, targets, loss_fn, batch_size: int, out_dir: Path) -> str:
    """The step-through page of one training step of the trained model, on the first batch:
    its forward pass, the backward pass that step takes, and forward mode."""
    from autodiff import Tensor
    from autodiff.viz import page

    loss = loss_fn(model(Tensor(x[:batch_size])), targets[:batch_size])
    return str(page(loss, out_dir / "backward.html", model=model).path)


def _one_hot(labels: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((len(labels), n), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1
    return out


def _pictures(
    settings, model, history, recorder, x, y, xt, yt, targets, n_classes, loss_fn, out_dir: Path
) -> list[str]:
    """Loss curve; prediction gallery (MNIST), decision boundary (2-D) or fitted curve
    (regression); the weight GIF; the graph of one training step."""
    written: list[str] = []
    try:
        from . import viz
    except ImportError as exc:  # matplotlib missing: the run itself still succeeded
        print(f"pictures skipped: {exc}", file=sys.stderr)
        return written
    import nn

    def keep(path: Any) -> None:
        written.append(str(path))

    viz.plot_history(history, out_dir / "loss_curve.png")
    keep(out_dir / "loss_curve.png")
    mnist = settings["dataset"] in ("mnist", "mini-mnist")
    if mnist:
        predicted = nn.predict(model, xt[:25]).argmax(axis=1)
        viz.prediction_gallery(xt[:25], predicted, yt[:25], out_dir / "predictions.png")
        keep(out_dir / "predictions.png")
    elif n_classes == 0:
        viz.regression_fit(lambda g: nn.predict(model, g), x, y, out_dir / "regression_fit.png")
        keep(out_dir / "regression_fit.png")
    elif x.shape[1] == 2:
        viz.decision_boundary(
            lambda g: _class1_probability(nn.predict(model, g)),
            x,
            y,
            out_dir / "decision_boundary.png",
            resolution=150,
        )
        keep(out_dir / "decision_boundary.png")
    if isinstance(model, nn.LeNet5):
        viz.conv_filters(model.features[0], out_dir / "filters.png")
        keep(out_dir / "filters.png")
        viz.feature_maps(model.features, xt[0], out_dir / "feature_maps.png")
        keep(out_dir / "feature_maps.png")
    if recorder is not None and recorder.snapshots:
        frames = min(len(recorder.snapshots), GIF_FRAMES)
        keep(
            viz.weight_heatmaps(
                recorder.snapshots,
                out_dir / "weights.gif",
                labels=recorder.epochs,
                max_frames=GIF_FRAMES,
                fps=max(2.0, frames / 8),  # the whole run in ~8 s
                image_shape=(28, 28) if mnist else None,
            )
        )
    try:
        from autodiff import Tensor
        from autodiff.viz import draw_graph, render

        loss = loss_fn(model(Tensor(x[:4])), targets[:4])
        model.zero_grad()
        loss.backward()
        graph = draw_graph(loss, model=model, group_by_module="collapse")
        keep(render(graph, out_dir / "graph", format="svg"))
        model.zero_grad()
    except Exception as exc:  # noqa: BLE001 - a missing dot binary must not fail the run
        print(f"graph drawing skipped: {exc}", file=sys.stderr)
    return written


def _class1_probability(outputs: np.ndarray) -> np.ndarray:
    """P(class 1) from one sigmoid output or from two logits (softmax), for the boundary."""
    if outputs.shape[1] == 1:
        return outputs[:, 0]
    logits = outputs - outputs.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p[:, 1] / p.sum(axis=1)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = resolve(args, parser)
    try:
        summary = run(settings)
    except (OSError, ValueError) as exc:  # missing data, a file that cannot be written
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    shown = {k: v for k, v in summary.items() if k != "options"}
    width = max(len(k) for k in shown)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in shown.items()))
    print(f"{'options':<{width}}  all recorded in {Path(settings['out']) / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
