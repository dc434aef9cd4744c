"""Two moons with MLP(2, [16, 16], 1) (micrograd's demo network), to 100% training accuracy.

python examples/moons.py [--plot out.png]
"""

import argparse

import numpy as np

import nn

# Parsed first: --help, or --plot without its file, answers before any training.
parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument(
    "--plot", metavar="PNG", help="also draw the decision boundary into this picture"
)
args = parser.parse_args()

x, y = nn.data.make_moons(100, noise=0.1, seed=0)
x = x.astype(np.float32)
targets = y.astype(np.float32)[:, None]
model = nn.MLP(2, [16, 16], 1, activation="relu", rng=0)
optimizer = nn.optim.Adam(model.parameters(), lr=0.02)
history = nn.fit(
    model,
    nn.F.binary_cross_entropy_with_logits,
    optimizer,
    (x, targets),
    epochs=500,
    batch_size=100,
    metric=lambda out, t: nn.F.accuracy(out.sigmoid(), t),
    error_threshold=1e-9,
    progress=False,
)
accuracy = nn.F.accuracy(1 / (1 + np.exp(-nn.predict(model, x))), targets)
print(f"training accuracy {accuracy:.0%} after {history.epochs} epochs ({history.stopped_reason})")
assert accuracy == 1.0, "moons not separated"
if args.plot:
    from nn import viz

    path = args.plot
    viz.decision_boundary(lambda g: 1 / (1 + np.exp(-nn.predict(model, g))), x, y, path)
    print("wrote", path)
