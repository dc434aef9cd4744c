"""Layer objects with forward and backward written by hand (Affine, ReLU, Sigmoid,
SoftmaxWithLoss), the style of the classic tutorials, next to our engine.

For every parameter we compare three gradients: backprop by hand through the layer objects,
the engine's automatic backward, and numerical central differences.

    python examples/layers_by_hand.py
"""

import argparse

import numpy as np

import autodiff as ad
from autodiff import Tensor
from autodiff.testing import numerical_grad

# No options: --help says what the script does instead of running it.
argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()


class Affine:
    def __init__(self, weight: Tensor, bias: Tensor):
        self.W, self.b = weight, bias  # Tensors: the same objects the engine differentiates

    def forward(self, x):
        self.x = x
        return x @ self.W.data + self.b.data

    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=0)
        return dout @ self.W.data.T


class ReLU:
    def forward(self, x):
        self.mask = x <= 0
        return np.where(self.mask, 0.0, x)

    def backward(self, dout):
        return np.where(self.mask, 0.0, dout)


class Sigmoid:
    def forward(self, x):
        self.out = 1 / (1 + np.exp(-x))
        return self.out

    def backward(self, dout):
        return dout * self.out * (1 - self.out)


class SoftmaxWithLoss:
    def forward(self, x, labels):
        shifted = x - x.max(axis=1, keepdims=True)
        self.p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        self.labels = labels
        return -np.mean(np.log(self.p[np.arange(len(labels)), labels]))

    def backward(self, dout=1.0):
        grad = self.p.copy()
        grad[np.arange(len(self.labels)), self.labels] -= 1
        return dout * grad / len(self.labels)


rng = np.random.default_rng(0)
params = {
    "W1": Tensor(rng.normal(0, 0.5, (4, 5)), requires_grad=True),
    "b1": Tensor(rng.normal(0, 0.1, 5), requires_grad=True),
    "W2": Tensor(rng.normal(0, 0.5, (5, 3)), requires_grad=True),
    "b2": Tensor(rng.normal(0, 0.1, 3), requires_grad=True),
}
x = rng.normal(size=(6, 4))
labels = rng.integers(0, 3, size=6)


def run(activation_layer):
    layers = [
        Affine(params["W1"], params["b1"]),
        activation_layer,
        Affine(params["W2"], params["b2"]),
    ]
    head = SoftmaxWithLoss()

    def loss_by_hand():
        h = x
        for layer in layers:
            h = layer.forward(h)
        return head.forward(h, labels)

    loss = loss_by_hand()
    dout = head.backward()
    for layer in reversed(layers):
        dout = layer.backward(dout)
    by_hand = {"W1": layers[0].dW, "b1": layers[0].db, "W2": layers[2].dW, "b2": layers[2].db}

    # The same network with the engine.
    act = {"ReLU": lambda t: t.relu(), "Sigmoid": lambda t: t.sigmoid()}[
        type(activation_layer).__name__
    ]
    for p in params.values():
        p.zero_grad()
    h = act(Tensor(x) @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]
    engine_loss = ad.softmax_cross_entropy(h, labels)
    engine_loss.backward()

    def numeric_loss(arrays):
        for p, a in zip(params.values(), arrays, strict=True):
            p.data = a
        return loss_by_hand()

    originals = [p.data.copy() for p in params.values()]
    numeric = dict(
        zip(params, numerical_grad(numeric_loss, [a.copy() for a in originals]), strict=True)
    )
    for p, a in zip(params.values(), originals, strict=True):
        p.data = a

    print(
        f"{type(activation_layer).__name__}: loss by hand {loss:.6f}, "
        f"engine {engine_loss.item():.6f}"
    )
    for name, p in params.items():
        hand_vs_num = np.abs(by_hand[name] - numeric[name]).max()
        engine_vs_num = np.abs(p.grad.data - numeric[name]).max()
        print(
            f"  {name}: |by hand - numerical| {hand_vs_num:.2e}   "
            f"|engine - numerical| {engine_vs_num:.2e}"
        )
        assert hand_vs_num < 1e-7 and engine_vs_num < 1e-7


run(ReLU())
run(Sigmoid())
