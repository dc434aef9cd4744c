"""XOR with the classic 2-2-1 sigmoid network, trained by plain gradient descent on MSE.

python examples/xor.py
"""

import argparse

import numpy as np

import nn
from autodiff import Tensor

# No options: --help says what the script does instead of running it.
argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()

x, y = nn.data.make_xor()
model = nn.MLP(
    2, [2], 1, activation="sigmoid", output_activation="sigmoid", dtype=np.float64, rng=1
)
optimizer = nn.optim.SGD(model.parameters(), lr=2.0)
history = nn.fit(
    model,
    nn.F.mse_loss,
    optimizer,
    (x, y),
    epochs=5000,
    batch_size=4,
    loss_threshold=0.005,
    progress=False,
)
outputs = model(Tensor(x)).data.ravel()
print(f"stopped after {history.epochs} epochs: {history.stopped_reason}")
for inputs, target, out in zip(x, y.ravel(), outputs, strict=True):
    print(f"  {inputs.astype(int)} -> {out:.3f}   (target {int(target)})")
assert np.all((outputs > 0.5) == (y.ravel() > 0.5)), "XOR not learned"
