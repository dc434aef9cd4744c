"""Pictures of training, on matplotlib: curves, weight heatmaps (GIF), predictions, boundaries,
gradient flow. Each function returns the Figure and, given `path`, writes the file too."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import matplotlib

if not os.environ.get("DISPLAY") and "inline" not in matplotlib.get_backend().lower():
    matplotlib.use("Agg")  # no screen: draw to files (notebooks keep their inline backend)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

PathLike = str | os.PathLike


def _inline() -> bool:
    """Is matplotlib drawing into a Jupyter notebook (the inline backend)?"""
    return "inline" in matplotlib.get_backend().lower()


def _save(fig: Any, path: PathLike | None) -> Any:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
    elif _inline():
        # In Jupyter the inline backend shows every figure pyplot still holds when the cell
        # ends, and the cell shows the returned Figure too: the same picture twice. Released
        # from pyplot, it is shown once, as the returned value (display(fig) still works).
        plt.close(fig)
    return fig


def _what(obj: Any) -> str:
    """How an object that is not what a function wanted reads in its error."""
    if isinstance(obj, Mapping):
        return f"a {type(obj).__name__} of {len(obj)} entries (a state_dict?)"
    shape = getattr(obj, "shape", None)
    return f"a {type(obj).__name__}" + (f" of shape {tuple(shape)}" if shape is not None else "")


def _module(who: str, model: Any) -> Any:
    """`model` if it is a module (has named_parameters), else an error naming `who`: a
    state_dict holds copies of the weights, not the model that makes them."""
    if not hasattr(model, "named_parameters"):
        raise TypeError(
            f"{who}: expected the model (a Module), got {_what(model)}; pass the model "
            f"itself, not its state_dict()"
        )
    return model


def _image_shape(who: str, image_shape: Any) -> tuple[int, int]:
    ok = (
        isinstance(image_shape, (tuple, list))
        and len(image_shape) == 2
        and all(isinstance(d, (int, np.integer)) and d > 0 for d in image_shape)
    )
    if not ok:
        raise TypeError(
            f"{who}: image_shape must be (height, width), e.g. (28, 28), got {image_shape!r}"
        )
    return int(image_shape[0]), int(image_shape[1])


def _points(who: str, x: Any, y: Any, features: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, features) points and N targets, or an error naming `who` and the shapes needed."""
    x, y = _numbers(x), _numbers(y)
    if features == 1 and x.ndim == 1:
        x = x.reshape(-1, 1)
    if x.ndim != 2 or x.shape[1] != features:
        need = "(N,) or (N, 1) (one input feature)" if features == 1 else "(N, 2) (two features)"
        raise ValueError(f"{who}: x must be {need}, got shape {x.shape}")
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(
            f"{who}: y must hold one target per point, shape ({len(x)},), got shape {y.shape}"
        )
    return x, y


# --- curves ----------------------------------------------------------------------------------


def plot_history(history: Mapping[str, Sequence[float]], path: PathLike | None = None) -> Any:
    """Loss (and accuracy, when recorded) per epoch, training and validation."""
    if not isinstance(history, Mapping):
        raise TypeError(
            f"plot_history: expected fit's History (a dict of per-epoch lists), got "
            f"{_what(history)}"
        )
    has_acc = bool(history.get("accuracy") or history.get("val_accuracy"))
    fig, axes = plt.subplots(
        1, 2 if has_acc else 1, figsize=(10 if has_acc else 5, 3.6), squeeze=False
    )
    panels = [("loss", "val_loss", "loss")] + (
        [("accuracy", "val_accuracy", "accuracy")] if has_acc else []
    )
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
    """A `fit` callback that redraws the curves after each epoch, in a Jupyter notebook.

    The picture is replaced in place (one display, updated), not by clearing the cell's
    output, which would also wipe fit's progress bar."""

    def __init__(self) -> None:
        self._handle: Any = None

    def __call__(self, epoch: int, history: Mapping[str, Sequence[float]]) -> None:
        try:
            from IPython.display import display
        except ImportError:  # outside IPython there is nothing to redraw
            return
        fig = plot_history(history)
        plt.close(fig)  # shown through the handle only, not again by the inline backend
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)


# --- weights ---------------------------------------------------------------------------------


class WeightRecorder:
    """A `fit` callback: a copy of every 2-D weight at initialisation and after each epoch.

    `snapshots[i]` maps parameter names to arrays and `epochs[i]` says when it was taken
    (0 is the initialisation). Given `epochs` (the run's length) and `max_frames`, only about
    `max_frames` evenly spaced epochs are kept, so a 3,000-epoch run does not hold 3,000
    copies of its weights only for a GIF to drop most of them.
    """

    def __init__(
        self, model: Any, epochs: int | None = None, max_frames: int | None = None
    ) -> None:
        self.model = _module("WeightRecorder", model)
        self.snapshots: list[dict[str, np.ndarray]] = []
        self.epochs: list[int] = []
        self._keep: set[int] | None = None
        if epochs is not None and max_frames is not None:
            # The initial snapshot is one frame; the rest are spread over epochs 1..epochs,
            # always including the last.
            self._keep = {int(e) for e in _evenly(np.arange(1, epochs + 1), max_frames - 1)}
        self._record(0)

    def _record(self, epoch: int) -> None:
        self.snapshots.append(
            {
                name: np.array(p.raw(), copy=True)
                for name, p in self.model.named_parameters()
                if p.ndim == 2
            }
        )
        self.epochs.append(epoch)

    def __call__(self, epoch: int, history: Any = None) -> None:
        if self._keep is None or epoch in self._keep:
            self._record(epoch)


def _evenly(items: Sequence[Any] | np.ndarray, n: int) -> list[Any]:
    """At most `n` items, evenly spaced, keeping the first and the last."""
    if n <= 0:
        return []
    if len(items) <= n:
        return list(items)
    picks = np.unique(np.linspace(0, len(items) - 1, n).round().astype(int))
    return [items[i] for i in picks]


def _tiles(w: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    """Each row of `w` (one unit's weights over an image's pixels) as an image tile, tiles
    laid out in a grid about twice as wide as tall, NaN (drawn blank) between them."""
    h, wd = image_shape
    units = w.shape[0]
    cols = int(np.ceil(np.sqrt(2 * units)))
    rows = int(np.ceil(units / cols))
    out = np.full((rows * (h + 1) - 1, cols * (wd + 1) - 1), np.nan, dtype=np.float64)
    for i in range(units):
        r, c = divmod(i, cols)
        out[r * (h + 1) : r * (h + 1) + h, c * (wd + 1) : c * (wd + 1) + wd] = w[i].reshape(h, wd)
    return out


def _limit(arrays: Sequence[Any]) -> float:
    """The symmetric colour limit: the largest finite |weight|, else 1. A NaN or inf weight (a
    diverged run) made the limit NaN or inf, which matplotlib replaced by +-0.1: every finite
    weight drawn saturated, under a colour bar of +-0.1. (NaN was also taken or not depending
    on the frame it appeared in, as Python's max() does.) Non-finite weights are drawn blank
    (NaN) or at the end of the scale (inf)."""
    finite = [np.abs(a[np.isfinite(a)]) for a in map(np.asarray, arrays)]
    return max((float(f.max()) for f in finite if f.size), default=0.0) or 1.0


def _is_image_layer(w: np.ndarray, image_shape: tuple[int, int] | None) -> bool:
    return image_shape is not None and w.shape[1] == image_shape[0] * image_shape[1]


def _heatmap_panels(
    snapshot: Mapping[str, np.ndarray],
    limits: Mapping[str, float] | None,
    image_shape: tuple[int, int] | None,
) -> tuple[Any, list[Any]]:
    """The figure and one image artist per weight matrix (updated in place for GIF frames)."""
    names = list(snapshot)
    tiled = [_is_image_layer(np.asarray(snapshot[n]), image_shape) for n in names]
    # A tiled panel gets enough pixels for each weight to stay visible (128 tiles of 28x28
    # are ~460 pixels wide); shrunk below that, the tiles alias into noise.
    widths = [2.5 if t else 1.0 for t in tiled]
    fig, axes = plt.subplots(
        1,
        len(names),
        figsize=(3.2 * sum(widths), 4.4 if any(tiled) else 3.4),
        squeeze=False,
        gridspec_kw={"width_ratios": widths},
    )
    # The gaps between tiles (NaN) in white: zero is already light grey in coolwarm.
    cmap = plt.get_cmap("coolwarm").with_extremes(bad="white")
    artists = []
    for ax, name, tile in zip(axes[0], names, tiled, strict=True):
        w = np.asarray(snapshot[name])
        limit = (limits or {}).get(name) or _limit([w])
        shown = _tiles(w, cast("tuple[int, int]", image_shape)) if tile else w  # tile: a shape
        image = ax.imshow(
            shown,
            cmap=cmap,
            vmin=-limit,
            vmax=limit,
            aspect="equal" if tile else "auto",
            interpolation="nearest",
        )
        if tile:
            assert image_shape is not None  # tiled: an image layer of that shape
            ax.set_title(
                f"{name} {w.shape[0]}x{w.shape[1]}: each unit's weights as a "
                f"{image_shape[0]}x{image_shape[1]} image",
                fontsize=9,
            )
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            ax.set_title(f"{name} {w.shape[0]}x{w.shape[1]}", fontsize=9)
            ax.set_xlabel("input")
            ax.set_ylabel("output unit")
        fig.colorbar(image, ax=ax, fraction=0.046)
        artists.append(image)
    return fig, artists


def _matrices(who: str, snapshot: Any) -> dict[str, np.ndarray]:
    """The 2-D weight matrices of a snapshot (a state_dict's biases are left out), or an
    error naming `who` and what it needs."""
    if hasattr(snapshot, "named_parameters"):
        raise TypeError(
            f"{who}: expected a snapshot {{name: 2-D array}} (WeightRecorder.snapshots[i], "
            f"or model.state_dict()), got the model {type(snapshot).__name__}"
        )
    if not isinstance(snapshot, Mapping):
        raise TypeError(f"{who}: expected a snapshot {{name: 2-D array}}, got {_what(snapshot)}")
    arrays = {name: _numbers(value) for name, value in snapshot.items()}
    matrices = {name: a for name, a in arrays.items() if a.ndim == 2}
    if not matrices:
        shapes = {name: a.shape for name, a in arrays.items()}
        raise ValueError(f"{who}: no 2-D weight matrix to draw; the snapshot holds {shapes}")
    return matrices


def heatmap_figure(
    snapshot: Mapping[str, np.ndarray],
    title: str | None = None,
    limits: Mapping[str, float] | None = None,
    image_shape: tuple[int, int] | None = None,
) -> Any:
    """One panel per weight matrix, blue negative, red positive, zero white.

    With `image_shape` (e.g. (28, 28)), a matrix whose inputs are an image's pixels is drawn
    as a grid of tiles, one per unit: the pattern each hidden unit responds to, which a raw
    128x784 heatmap hides as noise.
    """
    if image_shape is not None:
        image_shape = _image_shape("heatmap_figure", image_shape)
    fig, _ = _heatmap_panels(_matrices("heatmap_figure", snapshot), limits, image_shape)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, None)


def _frame_title(label: Any) -> str:
    return "initial weights" if label == 0 else f"epoch {label}"


def weight_heatmaps(
    snapshots: Sequence[Mapping[str, np.ndarray]] | WeightRecorder,
    path: PathLike,
    fps: float = 2,
    *,
    labels: Sequence[Any] | None = None,
    max_frames: int | None = 60,
    image_shape: tuple[int, int] | None = None,
) -> Path:
    """An animated GIF, one frame per snapshot, one panel per layer; each layer keeps one
    symmetric colour scale across frames, so changes in colour are changes in weight.

    `snapshots` is a WeightRecorder (its snapshots, titled by its epochs) or a list of
    {name: array}. `labels` title the frames (`WeightRecorder.epochs`: 0 is drawn as
    "initial weights"); by default frames are numbered from 1. At most `max_frames`
    snapshots, evenly spaced (first and last kept), become frames: drawing is the slow part,
    and a GIF of thousands of frames shows nothing more. `image_shape` draws image-input
    layers as tiles (see heatmap_figure).
    """
    if isinstance(snapshots, WeightRecorder):  # what a newcomer has in hand after fit
        labels = snapshots.epochs if labels is None else labels
        snapshots = snapshots.snapshots
    if isinstance(snapshots, Mapping) or hasattr(snapshots, "named_parameters"):
        raise TypeError(
            f"weight_heatmaps: expected a WeightRecorder or a list of snapshots "
            f"{{name: 2-D array}}, got {_what(snapshots)}"
            + ("" if isinstance(snapshots, Mapping) else "; record it with WeightRecorder")
        )
    if not snapshots:
        raise ValueError("weight_heatmaps: no snapshots (record some with WeightRecorder)")
    snapshots = [_matrices("weight_heatmaps", s) for s in snapshots]
    if labels is None:
        labels = range(1, len(snapshots) + 1)
    if len(labels) != len(snapshots):
        raise ValueError(f"weight_heatmaps: {len(labels)} labels for {len(snapshots)} snapshots")
    if image_shape is not None:
        image_shape = _image_shape("weight_heatmaps", image_shape)
    pairs = list(zip(snapshots, labels, strict=True))
    if max_frames is not None:
        pairs = _evenly(pairs, max_frames)
    limits = {name: _limit([s[name] for s, _ in pairs]) for name in snapshots[0]}
    # The axes, ticks, colour bars and labels are drawn once; each frame redraws only the
    # images and the title over a copy of that background (blitting). Drawing the whole
    # figure per frame, mostly text, cost ~20x more.
    fig, artists = _heatmap_panels(pairs[0][0], limits, image_shape)
    suptitle = fig.suptitle(_frame_title(pairs[0][1]))
    fig.tight_layout()
    for artist in (*artists, suptitle):
        artist.set_animated(True)  # left out of the background
    fig.canvas.draw()
    background = fig.canvas.copy_from_bbox(fig.bbox)
    frames = []
    for snapshot, label in pairs:
        fig.canvas.restore_region(background)
        for image, name in zip(artists, snapshot, strict=True):
            w = np.asarray(snapshot[name])
            shape = cast("tuple[int, int]", image_shape)  # used only when it is an image layer
            image.set_data(_tiles(w, shape) if _is_image_layer(w, image_shape) else w)
            image.axes.draw_artist(image)
        suptitle.set_text(_frame_title(label))
        fig.draw_artist(suptitle)
        frames.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    plt.close(fig)
    path = Path(path)
    if not path.suffix:  # "weights" failed in PIL with "unknown file extension"
        path = path.with_name(path.name + ".gif")
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_gif(frames, path, fps)
    return path


def _write_gif(frames: Sequence[np.ndarray], path: Path, fps: float) -> None:
    """Frames (H, W, 3) to a looping GIF with one shared 256-colour palette.

    The palette is chosen once from the first, middle and last frames (the weights' extremes
    of colour); finding a palette per frame (median cut, what a plain GIF writer does) cost
    ~20x the mapping of each frame onto a fixed one.
    """
    from PIL import Image

    sample = np.concatenate([frames[0], frames[len(frames) // 2], frames[-1]], axis=0)
    palette = Image.fromarray(sample).quantize(256)
    images = [
        Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames
    ]
    images[0].save(
        path, save_all=True, append_images=images[1:], duration=round(1000.0 / fps), loop=0
    )


# --- predictions ---------------------------------------------------------------------------


def prediction_gallery(
    images: np.ndarray,
    predicted: Sequence[int] | np.ndarray,
    true: Sequence[int] | np.ndarray,
    path: PathLike | None = None,
    n: int = 25,
    image_shape: tuple[int, int] = (28, 28),
    mistakes_first: bool = False,
) -> Any:
    """A grid of images titled "pred / true"; mistakes in red with a red frame.

    `predicted` holds class labels, or the model's scores (N, C), whose argmax is taken.
    """
    if not isinstance(images, np.ndarray) and hasattr(images, "parameters"):
        raise TypeError(
            f"prediction_gallery: images must be the images, got a model "
            f"({type(images).__name__}); call prediction_gallery(x, "
            f"nn.predict(model, x), y)"
        )
    image_shape = _image_shape("prediction_gallery", image_shape)
    images = _numbers(images)
    pixels = image_shape[0] * image_shape[1]
    if images.ndim == 0 or (len(images) and images[0].size != pixels):
        each = "no sample axis" if images.ndim == 0 else f"{images[0].size} values"
        side = int(round(np.sqrt(images[0].size))) if images.ndim else 0
        hint = (
            f"; pass image_shape=({side}, {side})"
            if images.ndim and side * side == images[0].size
            else ""
        )
        raise ValueError(
            f"prediction_gallery: images must be (N, {pixels}) or (N, {image_shape[0]}, "
            f"{image_shape[1]}) for image_shape={image_shape}, got shape {images.shape} "
            f"(each image has {each}){hint}"
        )
    predicted, true = _numbers(predicted), _numbers(true)
    if predicted.ndim == 2 and predicted.shape[0] == len(images):
        predicted = cast(
            np.ndarray, predicted.argmax(axis=1)
        )  # logits or probabilities, one row per image
    if not (predicted.ndim == true.ndim == 1 and len(predicted) == len(true) == len(images)):
        raise ValueError(
            f"prediction_gallery: need one predicted and one true label per "
            f"image, got images {images.shape}, predicted {predicted.shape}, "
            f"true {true.shape}"
        )
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
        ax.set_title(f"{predicted[i]} / {true[i]}", fontsize=9, color="red" if wrong else "black")
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


def _numbers(values: Any) -> np.ndarray:
    """The numbers to draw. A picture takes them from a Tensor computed with gradients too:
    plain np.asarray refuses one, since numpy computing with it would drop its graph."""
    data = getattr(values, "_data", None)
    return np.asarray(values if data is None else data)


def _predictor(who: str, predict_fn: Any) -> Callable[[np.ndarray], np.ndarray]:
    """A model passed where a function is wanted runs as nn.predict runs it: in eval mode
    (Dropout off), without recording a graph, its mode put back afterwards."""
    if not hasattr(predict_fn, "parameters"):
        if not callable(predict_fn):
            raise TypeError(
                f"{who}: expected the model or a function of the points, got "
                f"{_what(predict_fn)}"
                + ("; pass the model itself" if isinstance(predict_fn, Mapping) else "")
            )
        return predict_fn
    from .training import predict

    return lambda points: predict(predict_fn, points)


def decision_boundary(
    predict_fn: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    path: PathLike | None = None,
    resolution: int = 200,
    *,
    threshold: float | None = None,
) -> Any:
    """The classifier's decision over the plane, with the data points on top.

    `predict_fn` (a function, or the model itself, run in eval mode) maps (M, 2) points to
    one number per point, (M,) / (M, 1), or class scores (M, C). One number per point is
    split at `threshold`. By default that is 0.5 when every value lies in [0, 1]
    (probabilities). Other scores are logits or raw scores (split at 0, as micrograd's moons
    demo) or outputs regressed onto 0/1 targets (split at 0.5): of 0 and 0.5, the one nearer
    the midpoint of the two classes' mean scores on the drawn points is taken, and 0 when
    those means lie more than 2 apart. (A 0.5 contour of logits was not the boundary the
    model decides by.) Logits are coloured as probabilities, sigmoid(logit) on a 0..1 scale.
    """
    predict_fn = _predictor("decision_boundary", predict_fn)
    x, y = _points("decision_boundary", x, y, 2)
    pad = 0.5
    (x0, y0), (x1, y1) = x.min(axis=0) - pad, x.max(axis=0) + pad
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    scores = _numbers(predict_fn(np.c_[gx.ravel(), gy.ravel()].astype(np.float32)))
    if scores.ndim == 0 or len(scores) != gx.size or scores.ndim > 2:
        raise ValueError(
            f"decision_boundary: the model gave shape {scores.shape} for {gx.size} points; "
            f"it must give one number per point, ({gx.size},) or ({gx.size}, 1), or class "
            f"scores ({gx.size}, C)"
        )
    fig, ax = plt.subplots(figsize=(5, 4.2))
    if scores.ndim == 2 and scores.shape[1] > 1:
        field = scores.argmax(axis=1).reshape(gx.shape)
        levels: np.ndarray | int = np.arange(scores.shape[1] + 1) - 0.5
        ax.contourf(gx, gy, field, levels=levels, cmap="coolwarm", alpha=0.35)
    else:
        field = scores.reshape(gx.shape)
        probabilities = bool(np.all((field >= 0) & (field <= 1)))
        if threshold is None:
            threshold = 0.5
            own = _numbers(predict_fn(x.astype(np.float32))).reshape(-1)
            positive = y > 0.5
            if not probabilities and positive.any() and not positive.all():
                high, low = own[positive].mean(), own[~positive].mean()
                middle = (high + low) / 2
                # Class means more than 2 apart are not outputs regressed onto 0 and 1 (those
                # sit near 0 and 1): logits, whose midpoint may lie far from 0 and 0.5 alike.
                logits = high - low > 2 or abs(middle) < abs(middle - 0.5)
                threshold = 0.0 if logits else 0.5
        shown = field
        if not probabilities and threshold == 0.0:
            # Logits: coloured as what they mean, P(class 1) = sigmoid(logit), on a 0..1
            # scale; a colour bar of raw logits (-150 to 90) said nothing a reader could use.
            # The boundary is still the logits' 0 contour (the same line as P = 0.5).
            shown = 0.5 * (1.0 + np.tanh(0.5 * field))  # sigmoid, without exp overflow
        as_probability = probabilities or shown is not field
        norm = None
        if not as_probability and field.min() < threshold < field.max():
            # scores: blue below the threshold, red above, however lopsided their range
            norm = matplotlib.colors.TwoSlopeNorm(threshold, field.min(), field.max())
        levels = np.linspace(0.0, 1.0, 21) if as_probability else 20
        image = ax.contourf(gx, gy, shown, levels=levels, cmap="coolwarm", alpha=0.35, norm=norm)
        ax.contour(gx, gy, field, levels=[threshold], colors="k", linewidths=1)
        fig.colorbar(image, ax=ax, label="P(class 1)" if as_probability else "score")
    ax.scatter(x[:, 0], x[:, 1], c=y, cmap="coolwarm", edgecolors="k", s=25)
    ax.set_title("Decision boundary")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    fig.tight_layout()
    return _save(fig, path)


def regression_fit(
    predict_fn: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    path: PathLike | None = None,
    label: str = "model",
) -> Any:
    """Data points and the fitted curve over a dense grid (1-D regression); `predict_fn` is a
    function or the model itself (run in eval mode)."""
    predict_fn = _predictor("regression_fit", predict_fn)
    x, y = _points("regression_fit", x, y, 1)
    x = x.reshape(-1)
    grid = np.linspace(x.min(), x.max(), 300).reshape(-1, 1).astype(np.float32)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.scatter(x, y, s=12, alpha=0.6, label="data")
    ax.plot(grid[:, 0], _numbers(predict_fn(grid)).reshape(-1), "r-", lw=2, label=label)
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
        self.model = _module("GradientFlowRecorder", model)
        self.history: dict[str, list[float]] = {}

    def __call__(self, *args: Any) -> None:
        for name, p in self.model.named_parameters():
            if p.ndim == 2 and p.grad is not None:
                self.history.setdefault(name, []).append(float(np.abs(p.grad.raw()).mean()))


def gradient_flow(
    grad_history: Mapping[str, Sequence[float]]
    | Sequence[Mapping[str, float]]
    | GradientFlowRecorder,
    path: PathLike | None = None,
    title: str = "Gradient flow",
) -> Any:
    """Mean |gradient| per layer over training, log scale: vanishing gradients show as layers
    near the input sitting orders of magnitude below those near the output. Takes the
    GradientFlowRecorder itself, its `history`, or a list of {layer: value} rows."""
    if isinstance(grad_history, GradientFlowRecorder):  # it was "not iterable"
        grad_history = grad_history.history
    if hasattr(grad_history, "named_parameters") or not isinstance(
        grad_history, (Mapping, Sequence)
    ):
        raise TypeError(
            f"gradient_flow: expected a GradientFlowRecorder (called after each backward), "
            f"its history or a list of {{layer: value}} rows, got {_what(grad_history)}"
        )
    if not isinstance(grad_history, Mapping):
        merged: dict[str, list[float]] = {}
        for row in grad_history:
            for name, value in row.items():
                merged.setdefault(name, []).append(value)
        grad_history = merged
    fig, ax = plt.subplots(figsize=(6, 3.8))
    values: Sequence[float] | np.ndarray
    for name, values in grad_history.items():
        values = np.asarray(values, dtype=np.float64)
        # A log scale cannot show 0, and matplotlib dropped those points without a word: a
        # layer whose gradient is exactly 0 (dead ReLUs, a frozen or unused layer), the most
        # vanished of all, was missing from the plot, or the plot was empty. Say so.
        zeros = int(np.sum(values == 0))
        label = (
            name
            if not zeros
            else (
                f"{name} (0 at all {zeros} steps: not drawable on a log scale)"
                if zeros == len(values)
                else f"{name} (0 at {zeros} step{'s' * (zeros != 1)}, not drawn)"
            )
        )
        ax.plot(range(1, len(values) + 1), np.where(values == 0, np.nan, values), label=label)
    if not any(np.any(np.asarray(v, dtype=np.float64) > 0) for v in grad_history.values()):
        ax.set_ylim(1e-8, 1.0)  # nothing positive to scale by: a fixed range, and no warning
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
    if hasattr(weight, "parameters") and not hasattr(weight, "weight"):
        # a whole model: its np.asarray was a 0-d object array ("got shape ()")
        raise TypeError(
            f"conv_filters: got a {type(weight).__name__}; pass one Conv2d layer "
            f"(e.g. model.features[0]) or its weight"
        )
    if isinstance(weight, Mapping):
        raise TypeError(
            f"conv_filters: expected a Conv2d or its (out, in, kh, kw) weight, got "
            f"{_what(weight)}; pass state_dict['<name>.weight'] or the layer"
        )
    w = _numbers(getattr(weight, "weight", weight))
    if w.ndim != 4:
        raise ValueError(
            f"conv_filters: expected a Conv2d or an (out, in, kh, kw) weight, got shape {w.shape}"
        )
    out_ch, in_ch = w.shape[:2]
    limit = float(np.abs(w).max()) or 1.0
    fig, axes = plt.subplots(
        in_ch, out_ch, figsize=(1.1 * out_ch + 0.8, 1.1 * in_ch + 0.6), squeeze=False
    )
    image = None
    for i in range(in_ch):
        for o in range(out_ch):
            ax = axes[i, o]
            image = ax.imshow(
                w[o, i], cmap="coolwarm", vmin=-limit, vmax=limit, interpolation="nearest"
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"out {o}", fontsize=8)
            if o == 0 and in_ch > 1:
                ax.set_ylabel(f"in {i}", fontsize=8)
    assert image is not None  # a 4-d weight has at least one filter
    fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.02)
    fig.suptitle(
        title
        or f"{out_ch} filters of {w.shape[2]}x{w.shape[3]}"
        f" over {in_ch} input channel{'s' if in_ch > 1 else ''}",
        fontsize=10,
    )
    return _save(fig, path)


def feature_maps(
    layers: Any, image: Any, path: PathLike | None = None, max_channels: int = 16
) -> Any:
    """What each layer makes of one image: the image, then one row per layer whose output is
    an (N, C, H, W) map, one tile per channel (at most `max_channels`).

    `layers` is a sequence of modules applied in order (e.g. `LeNet5().features`); `image` is
    one image, (H, W), (C, H, W) or a flat 784 MNIST row (reshaped to 28x28), also as a batch
    of one (`x_test[:1]`).
    """
    from autodiff import Tensor, no_grad

    if isinstance(layers, Mapping):
        raise TypeError(
            f"feature_maps: layers must be a sequence of layers applied in order, got "
            f"{_what(layers)}; pass the layers themselves (e.g. model.features)"
        )
    if hasattr(layers, "parameters") and not hasattr(layers, "__iter__"):
        hint = " (its .features)" if hasattr(layers, "features") else ""
        raise TypeError(
            f"feature_maps: layers must be a sequence of layers applied in order"
            f"{hint}, got a {type(layers).__name__}"
        )
    x = np.asarray(image, dtype=np.float32)
    if (
        x.ndim in (2, 4)
        and x.shape[0] == 1
        and x.size == x[0].size
        and (x.ndim == 4 or x.shape[1] == 28 * 28)
    ):
        x = x[0]  # a batch of one: x_test[:1] was read as a 1 x 784 picture
    if x.ndim == 1 and x.size == 28 * 28:
        x = x.reshape(28, 28)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(
            f"feature_maps: expected one image (H, W), (C, H, W) or a flat 784 "
            f"row, got shape {np.asarray(image).shape}"
        )
    rows: list[tuple[str, np.ndarray]] = []
    out = Tensor(x[None])
    with no_grad():
        for index, layer in enumerate(layers):
            out = layer(out)
            if out.ndim == 4:
                name = layer.label() if hasattr(layer, "label") else type(layer).__name__
                rows.append((f"{index}: {name}", np.asarray(out.raw())[0]))
    if not rows:
        raise ValueError("feature_maps: no layer gave an (N, C, H, W) output to show")
    cols = min(max(m.shape[0] for _, m in rows), max_channels)
    fig, axes = plt.subplots(
        len(rows) + 1, cols, figsize=(1.1 * cols, 1.25 * (len(rows) + 1)), squeeze=False
    )
    for ax in axes.ravel():
        ax.axis("off")
    axes[0, 0].imshow(x[0], cmap="gray_r")
    axes[0, 0].set_title("input", fontsize=8)
    for r, (name, maps) in enumerate(rows, start=1):
        for c in range(min(maps.shape[0], cols)):
            axes[r, c].imshow(maps[c], cmap="viridis")
        axes[r, 0].set_title(name, fontsize=8, loc="left")
    fig.suptitle("Feature maps of one image, layer by layer (one tile per channel)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
