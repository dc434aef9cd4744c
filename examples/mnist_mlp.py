"""The classic tutorial network: 784-128-10 on MNIST, batch 64, SGD lr 0.1.

    python examples/mnist_mlp.py                       # full MNIST (downloads once, verified)
    python examples/mnist_mlp.py --data-dir ../shared/data/mnist --epochs 10
    python examples/mnist_mlp.py --mini                # the shipped mini-MNIST, offline

Trains two variants: ReLU + softmax cross-entropy, and the tutorial's sigmoid + squared error
against one-hot targets. Prints test accuracy and time per epoch for each.
"""

import argparse
import time

import numpy as np

import nn

parser = argparse.ArgumentParser()
parser.add_argument("--data-dir")
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--mini", action="store_true")
parser.add_argument("--variants", default="relu-ce,sigmoid-mse")
args = parser.parse_args()

if args.mini:
    (x, y), (xt, yt) = nn.data.load_mini_mnist()
else:
    (x, y), (xt, yt) = nn.data.load_mnist(args.data_dir)
onehot, onehot_test = np.eye(10, dtype=np.float32)[y], np.eye(10, dtype=np.float32)[yt]

variants = {
    "relu-ce": dict(activation="relu", output=None, loss=nn.F.cross_entropy, y=y, yt=yt),
    "sigmoid-mse": dict(activation="sigmoid", output="sigmoid", loss=nn.F.mse_loss,
                        y=onehot, yt=onehot_test),
}
results = {}
for name in args.variants.split(","):
    v = variants[name]
    model = nn.MLP(784, [128], 10, activation=v["activation"], output_activation=v["output"],
                   rng=0)
    # Squared error on sigmoids has small gradients: the tutorial uses a larger step for it.
    lr = 0.1 if name == "relu-ce" else 1.0
    optimizer = nn.optim.SGD(model.parameters(), lr=lr)
    loader = nn.data.DataLoader(x, v["y"], batch_size=64, shuffle=True, seed=0)
    start = time.perf_counter()
    history = nn.fit(model, v["loss"], optimizer, loader, epochs=args.epochs,
                     val_data=(xt, v["yt"]), progress=False)
    seconds = time.perf_counter() - start
    results[name] = (history["val_accuracy"][-1], seconds / history.epochs)
    print(f"{name:>12}: test accuracy {results[name][0]:.2%} after {history.epochs} epochs, "
          f"{results[name][1]:.2f} s per epoch (lr {lr})")
