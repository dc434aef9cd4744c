"""nn: modules, layers, losses, optimizers, data and training on top of autodiff."""

from autodiff import inference_mode, no_grad

from . import data, functional, init, optim, utils
from . import functional as F
from .conv import (
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv1d,
    Conv2d,
    LayerNorm,
    LeNet5,
    MaxPool2d,
)
from .export import export_onnx
from .functional_call import functional_call
from .layers import (
    MLP,
    Dropout,
    Flatten,
    Identity,
    LeakyReLU,
    Linear,
    ModuleDict,
    ModuleList,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from .losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from .module import Module, Parameter
from .serialization import load, save
from .torch_bridge import from_torch, to_torch
from .training import History, evaluate, fit, predict

__all__ = [
    "functional_call",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv1d",
    "Conv2d",
    "LayerNorm",
    "LeNet5",
    "MaxPool2d",
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "L1Loss",
    "MSELoss",
    "no_grad",
    "NLLLoss",
    "MLP",
    "Dropout",
    "F",
    "Flatten",
    "History",
    "Identity",
    "LeakyReLU",
    "Linear",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "data",
    "evaluate",
    "fit",
    "functional",
    "inference_mode",
    "init",
    "load",
    "optim",
    "predict",
    "save",
    "utils",
    "viz",
    "ModuleDict",
    "ModuleList",
    "export_onnx",
    "from_torch",
    "to_torch",
]


def __getattr__(name: str):
    # nn.viz pulls in matplotlib: import it only when asked for.
    if name == "viz":
        import importlib

        return importlib.import_module(".viz", __name__)
    raise AttributeError(f"module 'nn' has no attribute {name!r}")
