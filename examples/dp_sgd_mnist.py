"""DP-SGD on MNIST: every example's gradient clipped, then noise added, with one `vmap`.

    python examples/dp_sgd_mnist.py                 # the mini-MNIST shipped with the package
    python examples/dp_sgd_mnist.py --data-dir ../shared/data/mnist --epochs 3

Differentially private SGD (Abadi et al., 2016) bounds how much any one training example can
move the model: each example's gradient is scaled down to norm at most --clip, the clipped
gradients are summed, Gaussian noise of standard deviation --noise x --clip is added, and the
sum is divided by the batch size. That needs the gradient of every example on its own, which
`vmap(grad(loss))` computes for the whole batch at once: `loss` is written for ONE example,
the model's parameters are shared by all (in_axes None) and the images and labels are
batched (in_axes 0). The clipping is written for one example too, inside the vmapped
function. (This shows the mechanics; it computes no privacy budget epsilon.)
"""

import argparse
import os
import sys
import time

parser = argparse.ArgumentParser(
    prog="examples/dp_sgd_mnist.py",
    description="DP-SGD (per-example clipping and noise) on the 784-128-10 MLP, with vmap.",
)
parser.add_argument("--data-dir", metavar="DIR", help="the four MNIST files (default: mini-MNIST)")
parser.add_argument("--epochs", type=int, default=2, help="(default: 2)")
parser.add_argument("--batch", type=int, default=64, help="(default: 64)")
parser.add_argument("--lr", type=float, default=0.5, help="(default: 0.5)")
parser.add_argument("--clip", type=float, default=1.0, help="per-example norm bound (default: 1)")
parser.add_argument(
    "--noise", type=float, default=1.0, help="noise multiplier sigma (default: 1.0)"
)
parser.add_argument("--steps", type=int, default=None, help="stop after this many steps")
parser.add_argument("--seed", type=int, default=0, help="(default: 0)")
parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default: 1)")
args = parser.parse_args()

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import numpy as np  # noqa: E402

import autodiff as ad  # noqa: E402
import nn  # noqa: E402
from autodiff.func import grad  # noqa: E402

if args.data_dir:
    try:
        (x, y), (xt, yt) = nn.data.load_mnist(args.data_dir, download=False)
    except FileNotFoundError as exc:
        sys.exit(f"{parser.prog}: no MNIST files in {args.data_dir} ({exc})")
else:
    (x, y), (xt, yt) = nn.data.load_mini_mnist()
x, xt = x.reshape(len(x), -1).astype(np.float32), xt.reshape(len(xt), -1).astype(np.float32)
if x.max() > 1:
    x, xt = x / 255, xt / 255

# The parameters as plain Tensors, initialised as nn.Linear does.
ad.manual_seed(args.seed)
first, second = nn.Linear(784, 128), nn.Linear(128, 10)
params = [
    ad.tensor(p.numpy().astype(np.float32))
    for p in (first.weight, first.bias, second.weight, second.bias)
]


def loss(w1, b1, w2, b2, image, label):
    """The cross-entropy of ONE example: image (784,), label () (an integer)."""
    logits = ad.linear(ad.linear(image, w1, b1).relu(), w2, b2)
    return ad.softmax_cross_entropy(logits.reshape(1, 10), label.reshape(1))


def clipped_gradient(w1, b1, w2, b2, image, label):
    """ONE example's gradient, scaled to norm at most --clip (over all parameters)."""
    grads = grad(loss, argnums=(0, 1, 2, 3))(w1, b1, w2, b2, image, label)
    norm = sum((g * g).sum() for g in grads).sqrt()
    scale = ad.minimum(1.0, args.clip / (norm + 1e-12))  # a per-example number
    return tuple(g * scale for g in grads)


# One call gives every example's clipped gradient: shape (batch, *parameter shape) each.
per_example = ad.vmap(clipped_gradient, in_axes=(None, None, None, None, 0, 0))


def accuracy() -> float:
    with ad.no_grad():
        h = ad.linear(ad.tensor(xt), params[0], params[1]).relu()
        logits = ad.linear(h, params[2], params[3])
    return float((logits.numpy().argmax(axis=1) == yt).mean())


rng = np.random.default_rng(args.seed)
labels = ad.tensor(y.astype(np.int64))
images = ad.tensor(x)
print(
    f"{len(x)} training images, batch {args.batch}, clip {args.clip}, noise {args.noise}, "
    f"lr {args.lr}; test accuracy before training {accuracy():.3f}"
)
step = 0
for epoch in range(args.epochs):
    start = time.perf_counter()
    order = rng.permutation(len(x))
    for at in range(0, len(order) - args.batch + 1, args.batch):
        rows = order[at : at + args.batch]
        clipped = per_example(*params, images[rows], labels[rows])
        with ad.no_grad():
            for p, g in zip(params, clipped, strict=True):
                noisy = g.numpy().sum(axis=0) + rng.normal(
                    0.0, args.noise * args.clip, size=p.shape
                ).astype(np.float32)
                p -= args.lr * noisy / args.batch
        step += 1
        if args.steps is not None and step >= args.steps:
            break
    seconds = time.perf_counter() - start
    print(f"epoch {epoch + 1}: test accuracy {accuracy():.3f} ({seconds:.1f} s)")
    if args.steps is not None and step >= args.steps:
        break
