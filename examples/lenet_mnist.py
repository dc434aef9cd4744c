"""LeNet-5 on MNIST with our engine: two 5x5 conv layers with max pooling, three Linear layers.

    python examples/lenet_mnist.py --data-dir ../shared/data/mnist   # full MNIST, 3 epochs
    python examples/lenet_mnist.py --mini --epochs 1                 # shipped mini-MNIST, offline

The recipe measured in the README (the same as `python -m nn --model lenet`): pixels
standardised with MNIST's mean and std, Adam at lr 2e-3 cut to 0.3x after each epoch, batch
64, seed 0. Prints test accuracy and time per epoch, and writes the first layer's filters and
one digit's feature maps.
"""

import argparse
import time
from pathlib import Path

import nn

parser = argparse.ArgumentParser()
parser.add_argument("--data-dir")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--mini", action="store_true")
parser.add_argument("--out", default="runs/lenet", help="folder for the pictures")
args = parser.parse_args()

if args.mini:
    (x, y), (xt, yt) = nn.data.load_mini_mnist()
else:
    (x, y), (xt, yt) = nn.data.load_mnist(args.data_dir)

# Standardised inputs start every layer near zero mean and unit spread; Adam then learns
# faster in the first epoch than on raw [0, 1] pixels.
x, xt = (x - 0.1307) / 0.3081, (xt - 0.1307) / 0.3081
model = nn.LeNet5(rng=0)
print(model)
optimizer = nn.optim.Adam(model.parameters(), lr=2e-3)
schedule = nn.optim.StepLR(optimizer, step_size=1, gamma=0.3)  # smaller steps to settle
loader = nn.data.DataLoader(x, y, batch_size=64, shuffle=True, seed=0)
start = time.perf_counter()
history = nn.fit(
    model,
    nn.F.cross_entropy,
    optimizer,
    loader,
    epochs=args.epochs,
    val_data=(xt, yt),
    progress=False,
    callbacks=[lambda epoch, history: schedule.step()],
)
seconds = time.perf_counter() - start
print(
    f"test accuracy {history['val_accuracy'][-1]:.2%} after {history.epochs} epochs, "
    f"{seconds / history.epochs:.1f} s per epoch"
)

out = Path(args.out)
nn.viz.conv_filters(model.features[0], out / "filters.png")
nn.viz.feature_maps(model.features, xt[0], out / "feature_maps.png")
print(f"pictures: {out / 'filters.png'}, {out / 'feature_maps.png'}")
