"""Pictures of training, on matplotlib: curves, weight heatmaps (GIF), predictions, boundaries,
gradient flow. Each function returns the Figure and, given `path`, writes the file too."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

if not os.environ.get("DISPLAY") and "inline" not in matplotlib.get_backend().lower():
    matplotlib.use("Agg")  # no screen: draw to files (notebooks keep their inline backend)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

PathLike = str | os.PathLike


def _save(fig: Any, path: PathLike | None) -> Any:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
    return fig


# --- curves ----------------------------------------------------------------------------------


def plot_history(history: Mapping[str, Sequence[float]], path: PathLike | None = None) -> Any:
    """Loss (and accuracy, when recorded) per epoch, training and validation."""
    has_acc = bool(history.get("accuracy") or history.get("val_accuracy"))
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(10 if has_acc else 5, 3.6),
                             squeeze=False)
    panels = [("loss", "val_loss", "loss")] + ([("accuracy", "val_accuracy", "accuracy")]
                                               if has_acc else [])
    for ax, (train_key, val_key, label) in zip(axes[0], panels, strict=True):
        for key, style, name in ((train_key, "-o", "training"), (val_key, "--s", "validation")):
            values = history.get(key) or []
            if values:
                ax.plot(range(1, len(values) + 1), values, style, markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(label.capitalize() + " per epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return _save(fig, path)


class LiveHistoryPlot:
    """A `fit` callback that redraws the curves after each epoch, in a Jupyter notebook."""

    def __call__(self, epoch: int, history: Mapping[str, Sequence[float]]) -> None:
        try:
            from IPython.display import clear_output, display
        except ImportError:  # outside IPython there is nothing to redraw
            return
        fig = plot_history(history)
        clear_output(wait=True)
        display(fig)
        plt.close(fig)


# --- weights ---------------------------------------------------------------------------------


class WeightRecorder:
    """A `fit` callback: a copy of every 2-D weight after each epoch (for weight_heatmaps)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.snapshots: list[dict[str, np.ndarray]] = []

    def __call__(self, epoch: int, history: Any = None) -> None:
        self.snapshots.append({name: np.array(p.data, copy=True)
                               for name, p in self.model.named_parameters() if p.ndim == 2})


def heatmap_figure(snapshot: Mapping[str, np.ndarray], title: str | None = None,
                   limits: Mapping[str, float] | None = None) -> Any:
    """One panel per weight matrix, blue negative, red positive, zero white."""
    names = list(snapshot)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        w = np.asarray(snapshot[name])
        limit = (limits or {}).get(name) or float(np.abs(w).max()) or 1.0
        image = ax.imshow(w, cmap="coolwarm", vmin=-limit, vmax=limit, aspect="auto",
                          interpolation="nearest")
        ax.set_title(f"{name} {w.shape[0]}x{w.shape[1]}", fontsize=9)
        ax.set_xlabel("input")
        ax.set_ylabel("output unit")
        fig.colorbar(image, ax=ax, fraction=0.046)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def weight_heatmaps(snapshots: Sequence[Mapping[str, np.ndarray]], path: PathLike,
                    fps: float = 2) -> Path:
    """An animated GIF, one frame per snapshot (epoch), one panel per layer; each layer keeps
    one symmetric colour scale across frames, so changes in colour are changes in weight."""
    import imageio.v2 as imageio

    if not snapshots:
        raise ValueError("weight_heatmaps: no snapshots (record some with WeightRecorder)")
    limits = {name: float(max(np.abs(s[name]).max() for s in snapshots)) or 1.0
              for name in snapshots[0]}
    frames = []
    for epoch, snapshot in enumerate(snapshots, start=1):
        fig = heatmap_figure(snapshot, title=f"epoch {epoch}", limits=limits)
        fig.canvas.draw()
        frames.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
        plt.close(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimsave(path, frames, duration=1000.0 / fps, loop=0)
    return path


# --- predictions ---------------------------------------------------------------------------


def prediction_gallery(images: np.ndarray, predicted: Sequence[int], true: Sequence[int],
                       path: PathLike | None = None, n: int = 25,
                       image_shape: tuple[int, int] = (28, 28),
                       mistakes_first: bool = False) -> Any:
    """A grid of images titled "pred / true"; mistakes in red with a red frame."""
    images = np.asarray(images)
    predicted, true = np.asarray(predicted), np.asarray(true)
    order = np.arange(len(images))
    if mistakes_first:
        order = np.concatenate([order[predicted != true], order[predicted == true]])
    order = order[:n]
    cols = int(np.ceil(np.sqrt(len(order)))) or 1
    rows = int(np.ceil(len(order) / cols)) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), order, strict=False):
        wrong = predicted[i] != true[i]
        ax.imshow(images[i].reshape(image_shape), cmap="gray_r")
        ax.set_title(f"{predicted[i]} / {true[i]}", fontsize=9,
                     color="red" if wrong else "black")
        if wrong:
            ax.axis("on")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor("red")
                spine.set_linewidth(2)
    errors = int(np.sum(predicted[order] != true[order]))
    fig.suptitle(f"predicted / true  ({errors} of {len(order)} wrong, in red)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def decision_boundary(predict_fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                      y: np.ndarray, path: PathLike | None = None, resolution: int = 200) -> Any:
    """The classifier's decision over the plane, with the data points on top.

    `predict_fn` maps (M, 2) points to probabilities (M,) / (M, 1) or class scores (M, C).
    """
    x, y = np.asarray(x), np.asarray(y).reshape(-1)
    pad = 0.5
    (x0, y0), (x1, y1) = x.min(axis=0) - pad, x.max(axis=0) + pad
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    scores = np.asarray(predict_fn(np.c_[gx.ravel(), gy.ravel()].astype(np.float32)))
    fig, ax = plt.subplots(figsize=(5, 4.2))
    if scores.ndim == 2 and scores.shape[1] > 1:
        field = scores.argmax(axis=1).reshape(gx.shape)
        levels = np.arange(scores.shape[1] + 1) - 0.5
        ax.contourf(gx, gy, field, levels=levels, cmap="coolwarm", alpha=0.35)
    else:
        field = scores.reshape(gx.shape)
        image = ax.contourf(gx, gy, field, levels=20, cmap="coolwarm", alpha=0.35)
        ax.contour(gx, gy, field, levels=[0.5], colors="k", linewidths=1)
        fig.colorbar(image, ax=ax, label="P(class 1)")
    ax.scatter(x[:, 0], x[:, 1], c=y, cmap="coolwarm", edgecolors="k", s=25)
    ax.set_title("Decision boundary")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    fig.tight_layout()
    return _save(fig, path)


def regression_fit(predict_fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
                   y: np.ndarray, path: PathLike | None = None, label: str = "model") -> Any:
    """Data points and the fitted curve over a dense grid (1-D regression)."""
    x, y = np.asarray(x).reshape(-1), np.asarray(y).reshape(-1)
    grid = np.linspace(x.min(), x.max(), 300).reshape(-1, 1).astype(np.float32)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.scatter(x, y, s=12, alpha=0.6, label="data")
    ax.plot(grid[:, 0], np.asarray(predict_fn(grid)).reshape(-1), "r-", lw=2, label=label)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("Fitted curve")
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


# --- gradient flow ---------------------------------------------------------------------------


class GradientFlowRecorder:
    """Call after backward(): records mean |gradient| of every 2-D weight, per call."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.history: dict[str, list[float]] = {}

    def __call__(self, *args: Any) -> None:
        for name, p in self.model.named_parameters():
            if p.ndim == 2 and p.grad is not None:
                self.history.setdefault(name, []).append(float(np.abs(p.grad.data).mean()))


def gradient_flow(grad_history: Mapping[str, Sequence[float]] | Sequence[Mapping[str, float]],
                  path: PathLike | None = None, title: str = "Gradient flow") -> Any:
    """Mean |gradient| per layer over training, log scale: vanishing gradients show as layers
    near the input sitting orders of magnitude below those near the output."""
    if not isinstance(grad_history, Mapping):
        merged: dict[str, list[float]] = {}
        for row in grad_history:
            for name, value in row.items():
                merged.setdefault(name, []).append(value)
        grad_history = merged
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, values in grad_history.items():
        ax.plot(range(1, len(values) + 1), values, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("mean |gradient|")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


# --- convolutions ----------------------------------------------------------------------------


def conv_filters(weight: Any, path: PathLike | None = None, title: str | None = None) -> Any:
    """The kernels of a conv layer, one tile per (output channel, input channel).

    `weight` is a Conv2d (its .weight is used) or an (out, in, kh, kw) array. Each row of tiles
    is an input channel, each column an output channel; one symmetric colour scale for all
    tiles (blue negative, red positive), so a pale kernel is a weak one.
    """
    w = np.asarray(getattr(getattr(weight, "weight", weight), "data", weight))
    if w.ndim != 4:
        raise ValueError(f"conv_filters: expected a Conv2d or an (out, in, kh, kw) weight, "
                         f"got shape {w.shape}")
    out_ch, in_ch = w.shape[:2]
    limit = float(np.abs(w).max()) or 1.0
    fig, axes = plt.subplots(in_ch, out_ch, figsize=(1.1 * out_ch + 0.8, 1.1 * in_ch + 0.6),
                             squeeze=False)
    image = None
    for i in range(in_ch):
        for o in range(out_ch):
            ax = axes[i, o]
            image = ax.imshow(w[o, i], cmap="coolwarm", vmin=-limit, vmax=limit,
                              interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"out {o}", fontsize=8)
            if o == 0 and in_ch > 1:
                ax.set_ylabel(f"in {i}", fontsize=8)
    fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.02)
    fig.suptitle(title or f"{out_ch} filters of {w.shape[2]}x{w.shape[3]}"
                 f" over {in_ch} input channel{'s' if in_ch > 1 else ''}", fontsize=10)
    return _save(fig, path)


def feature_maps(layers: Any, image: Any, path: PathLike | None = None,
                 max_channels: int = 16) -> Any:
    """What each layer makes of one image: the image, then one row per layer whose output is
    an (N, C, H, W) map, one tile per channel (at most `max_channels`).

    `layers` is a sequence of modules applied in order (e.g. `LeNet5().features`); `image` is
    one image, (H, W), (C, H, W) or a flat 784 MNIST row (reshaped to 28x28).
    """
    from autodiff import Tensor, no_grad

    x = np.asarray(image, dtype=np.float32)
    if x.ndim == 1 and x.size == 28 * 28:
        x = x.reshape(28, 28)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"feature_maps: expected one image (H, W), (C, H, W) or a flat 784 "
                         f"row, got shape {np.asarray(image).shape}")
    rows: list[tuple[str, np.ndarray]] = []
    out = Tensor(x[None])
    with no_grad():
        for index, layer in enumerate(layers):
            out = layer(out)
            if out.ndim == 4:
                name = layer.label() if hasattr(layer, "label") else type(layer).__name__
                rows.append((f"{index}: {name}", np.asarray(out.data)[0]))
    if not rows:
        raise ValueError("feature_maps: no layer gave an (N, C, H, W) output to show")
    cols = min(max(m.shape[0] for _, m in rows), max_channels)
    fig, axes = plt.subplots(len(rows) + 1, cols, figsize=(1.1 * cols, 1.25 * (len(rows) + 1)),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    axes[0, 0].imshow(x[0], cmap="gray_r")
    axes[0, 0].set_title("input", fontsize=8)
    for r, (name, maps) in enumerate(rows, start=1):
        for c in range(min(maps.shape[0], cols)):
            axes[r, c].imshow(maps[c], cmap="viridis")
        axes[r, 0].set_title(name, fontsize=8, loc="left")
    fig.suptitle("Feature maps of one image, layer by layer (one tile per channel)",
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
