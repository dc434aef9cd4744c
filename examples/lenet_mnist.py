"""LeNet-5 on MNIST with our engine: two 5x5 conv layers with max pooling, three Linear layers.

    python examples/lenet_mnist.py --data-dir ../shared/data/mnist   # full MNIST, 3 epochs
    python examples/lenet_mnist.py --mini --epochs 1                 # shipped mini-MNIST, offline

Adam (lr 1e-3), batch 64, seed 0: the recipe measured in the README. Prints test accuracy and
time per epoch, and writes the first layer's filters and one digit's feature maps.
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

model = nn.LeNet5(rng=0)
print(model)
optimizer = nn.optim.Adam(model.parameters(), lr=1e-3)
loader = nn.data.DataLoader(x, y, batch_size=64, shuffle=True, seed=0)
start = time.perf_counter()
history = nn.fit(model, nn.F.cross_entropy, optimizer, loader, epochs=args.epochs,
                 val_data=(xt, yt), progress=False)
seconds = time.perf_counter() - start
print(f"test accuracy {history['val_accuracy'][-1]:.2%} after {history.epochs} epochs, "
      f"{seconds / history.epochs:.1f} s per epoch")

out = Path(args.out)
nn.viz.conv_filters(model.features[0], out / "filters.png")
nn.viz.feature_maps(model.features, xt[0], out / "feature_maps.png")
print(f"pictures: {out / 'filters.png'}, {out / 'feature_maps.png'}")
