"""1-D regression of y = x**2: a network without activations can only draw a straight line;
with ReLU it bends to fit the parabola.

    python examples/regression.py [--plot out.png]
"""

import argparse

import numpy as np

import nn

# Parsed first: --help, or --plot without its file, answers before any training.
parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument(
    "--plot", metavar="PNG", help="also draw the ReLU network's fitted curve into this picture"
)
args = parser.parse_args()

x, y = nn.data.make_regression(200, kind="quadratic", noise=0.05, seed=0)
x, y = x.astype(np.float32), y.astype(np.float32)
errors = {}
models = {}
for activation in (None, "relu"):
    model = nn.MLP(1, [32, 32], 1, activation=activation, rng=0)
    optimizer = nn.optim.Adam(model.parameters(), lr=0.01)
    nn.fit(
        model,
        nn.F.mse_loss,
        optimizer,
        (x, y),
        epochs=300,
        batch_size=50,
        metric=None,
        progress=False,
    )
    errors[activation or "linear"] = float(np.mean((nn.predict(model, x) - y) ** 2))
    models[activation or "linear"] = model
for name, mse in errors.items():
    print(f"{name:>6}: mean squared error {mse:.4f}")
assert errors["relu"] < 0.01 < errors["linear"], "ReLU network should fit, linear underfit"
if args.plot:
    from nn import viz

    path = args.plot
    viz.regression_fit(lambda g: nn.predict(models["relu"], g), x, y, path, label="ReLU MLP")
    print("wrote", path)
