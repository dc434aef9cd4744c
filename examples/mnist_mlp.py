"""The classic tutorial network: 784-128-10 on MNIST, batch 64, SGD lr 0.1.

    python examples/mnist_mlp.py                       # full MNIST (downloads once, verified)
    python examples/mnist_mlp.py --data-dir ../shared/data/mnist --epochs 10
    python examples/mnist_mlp.py --mini                # the shipped mini-MNIST, offline

Trains two variants: ReLU + softmax cross-entropy, and the tutorial's sigmoid + squared error
against one-hot targets. Prints test accuracy and time per epoch for each.
"""

import argparse
import os
import sys

parser = argparse.ArgumentParser(
    prog="examples/mnist_mlp.py",
    description="The 784-128-10 network of the classic tutorials on MNIST, two variants.",
)
parser.add_argument(
    "--data-dir",
    metavar="DIR",
    help="folder with the four MNIST IDX files (default: $AUTODIFF_DATA, then "
    "the user cache, then a verified download)",
)
parser.add_argument("--epochs", type=int, default=10, help="(default: 10)")
parser.add_argument(
    "--mini",
    action="store_true",
    help="use the 5,000-digit mini-MNIST shipped with the package (offline)",
)
parser.add_argument(
    "--variants",
    default="relu-ce,sigmoid-mse",
    help="comma-separated, from relu-ce and sigmoid-mse (default: both)",
)
parser.add_argument(
    "--threads",
    type=int,
    default=1,
    help="BLAS threads; the README's figures were measured with 1 (default: 1)",
)
args = parser.parse_args()
unknown = set(args.variants.split(",")) - {"relu-ce", "sigmoid-mse"}
if unknown:
    parser.error(f"--variants: unknown {', '.join(sorted(unknown))} (use relu-ce, sigmoid-mse)")

# The thread count must be set before numpy loads its BLAS, so numpy is imported below.
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import time  # noqa: E402

import numpy as np  # noqa: E402

import nn  # noqa: E402

if args.mini:
    (x, y), (xt, yt) = nn.data.load_mini_mnist()
else:
    try:
        (x, y), (xt, yt) = nn.data.load_mnist(args.data_dir)
    except FileNotFoundError as exc:  # offline, or no data where we looked
        sys.exit(
            f"{parser.prog}: full MNIST is not available here.\n"
            "  * pass --mini to train on the 5,000 digits shipped with the package, or\n"
            "  * put the four files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,\n"
            "    t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz, gzipped or not) in a\n"
            "    folder and pass --data-dir FOLDER (or set AUTODIFF_DATA=FOLDER).\n"
            f"Details: {exc}"
        )
onehot, onehot_test = np.eye(10, dtype=np.float32)[y], np.eye(10, dtype=np.float32)[yt]

variants = {
    "relu-ce": dict(activation="relu", output=None, loss=nn.F.cross_entropy, y=y, yt=yt),
    "sigmoid-mse": dict(
        activation="sigmoid", output="sigmoid", loss=nn.F.mse_loss, y=onehot, yt=onehot_test
    ),
}
print(
    f"{'mini-MNIST' if args.mini else 'MNIST'}: {len(x)} training, {len(xt)} test images; "
    f"{args.threads} BLAS thread(s)"
)
results = {}
for name in args.variants.split(","):
    v = variants[name]
    model = nn.MLP(784, [128], 10, activation=v["activation"], output_activation=v["output"], rng=0)
    # Squared error on sigmoids has small gradients: the tutorial uses a larger step for it.
    lr = 0.1 if name == "relu-ce" else 1.0
    optimizer = nn.optim.SGD(model.parameters(), lr=lr)
    loader = nn.data.DataLoader(x, v["y"], batch_size=64, shuffle=True, seed=0)
    start = time.perf_counter()
    history = nn.fit(
        model,
        v["loss"],
        optimizer,
        loader,
        epochs=args.epochs,
        val_data=(xt, v["yt"]),
        progress=False,
    )
    seconds = time.perf_counter() - start
    results[name] = (history["val_accuracy"][-1], seconds / history.epochs)
    print(
        f"{name:>12}: test accuracy {results[name][0]:.2%} after {history.epochs} epochs, "
        f"{results[name][1]:.2f} s per epoch (lr {lr})"
    )
