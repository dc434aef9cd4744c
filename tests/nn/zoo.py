"""Models that round-trip tests (ONNX export, the PyTorch bridge) run through: every layer
alone and in Sequential/MLP mixes, with randomised weights and statistics, and input batches.
"""

from __future__ import annotations

import numpy as np
import pytest

import nn


class Doubler(nn.Module):
    def forward(self, x):
        return x * 2


def _models() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    """name -> (model, shape of one example) covering every module nn offers."""
    return {
        "linear": (nn.Linear(4, 3, rng=0), (4,)),
        "linear_no_bias": (nn.Linear(4, 3, bias=False, rng=0), (4,)),
        "linear_rank3": (nn.Linear(4, 3, rng=0), (2, 4)),
        "linear_rank3_no_bias": (nn.Linear(4, 3, bias=False, rng=0), (2, 4)),
        "relu": (nn.ReLU(), (5,)),
        "sigmoid": (nn.Sigmoid(), (5,)),
        "tanh": (nn.Tanh(), (5,)),
        "leaky_relu": (nn.LeakyReLU(0.2), (5,)),
        "softmax": (nn.Softmax(), (5,)),
        "softmax_axis1": (nn.Softmax(axis=1), (3, 2)),
        "identity": (nn.Identity(), (5,)),
        "dropout": (nn.Dropout(0.5, rng=0), (5,)),
        "flatten": (nn.Flatten(), (3, 4)),
        "flatten_from_2": (nn.Flatten(2), (2, 3, 4)),
        "flatten_last": (nn.Flatten(-1), (2, 3)),
        "empty_sequential": (nn.Sequential(), (3,)),
        "nested": (
            nn.Sequential(
                nn.Flatten(),
                nn.Sequential(nn.Linear(12, 6, rng=1), nn.Tanh()),
                nn.Dropout(0.3),
                nn.Linear(6, 2, rng=2),
                nn.Softmax(),
            ),
            (3, 4),
        ),
        **{
            f"mlp_{a}": (nn.MLP(6, [8, 5], 3, activation=a, rng=3), (6,))
            for a in ("relu", "sigmoid", "tanh", "leaky_relu")
        },
        "mlp_sigmoid_output": (nn.MLP(6, [8], 1, output_activation="sigmoid", rng=4), (6,)),
    }


try:  # convolutions and normalisation, where this version of nn has them
    from nn import conv as convs
except ImportError:
    convs = None


needs_conv = pytest.mark.skipif(convs is None, reason="this version of nn has no nn.conv")


def _randomised(model: nn.Module, seed: int) -> nn.Module:
    """Weights, biases and running statistics away from their initial ones and zeros, so a
    swapped scale and shift or mean and variance would show."""
    rng = np.random.default_rng(seed)
    for name, value in model.state_dict().items():
        if value.dtype.kind == "f":
            fresh = (
                rng.uniform(0.5, 1.5, value.shape)
                if "var" in name
                else rng.normal(size=value.shape)
            )
            value = fresh.astype(value.dtype)
        model.load_state_dict({**model.state_dict(), name: value})
    return model


def _conv_models() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    if convs is None:
        return {}
    return {
        "conv2d": (convs.Conv2d(2, 4, 3, stride=2, padding=1, rng=0), (2, 7, 6)),
        "conv2d_same_dilated_grouped": (
            convs.Conv2d(4, 6, 3, padding="same", dilation=2, groups=2, bias=False, rng=0),
            (4, 8, 7),
        ),
        "conv2d_rect": (
            convs.Conv2d(1, 2, (2, 3), stride=(1, 2), padding=(1, 0), rng=0),
            (1, 5, 6),
        ),
        "conv1d": (convs.Conv1d(3, 2, 3, stride=2, padding=1, rng=0), (3, 9)),
        "max_pool": (convs.MaxPool2d(3, stride=2, padding=1), (2, 7, 7)),
        "avg_pool": (convs.AvgPool2d(2), (2, 6, 6)),
        "avg_pool_padded": (convs.AvgPool2d(3, 2, 1), (1, 7, 7)),
        "batch_norm2d": (_randomised(convs.BatchNorm2d(3), 1), (3, 4, 4)),
        "batch_norm1d": (_randomised(convs.BatchNorm1d(5), 2), (5,)),
        "batch_norm1d_no_affine": (_randomised(convs.BatchNorm1d(4, affine=False), 3), (4, 6)),
        "layer_norm": (_randomised(convs.LayerNorm((3, 4)), 4), (2, 3, 4)),
        "layer_norm_plain": (convs.LayerNorm(5, elementwise_affine=False), (5,)),
        "lenet5": (convs.LeNet5(rng=0), (784,)),
        "lenet5_images": (convs.LeNet5(rng=1), (1, 28, 28)),
        "cnn": (
            _randomised(
                nn.Sequential(
                    convs.Conv2d(1, 4, 3, padding=1, rng=0),
                    convs.BatchNorm2d(4),
                    nn.ReLU(),
                    convs.MaxPool2d(2),
                    nn.Flatten(),
                    nn.Linear(64, 3, rng=1),
                ),
                5,
            ),
            (1, 8, 8),
        ),
    }


MODELS = {**_models(), **_conv_models()}

# No PyTorch module reshapes its input the way LeNet5.forward does.
TORCH_MODELS = sorted(name for name in MODELS if not name.startswith("lenet5"))


def batch(shape: tuple[int, ...], n: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=(n, *shape)) * 2).astype(np.float32)
