"""Make the pictures shown in README.md (docs/*.png), with the project's own code.

python examples/readme_figures.py
"""

import argparse
from pathlib import Path

import nn
from autodiff import Tensor
from autodiff.viz import draw_graph, render

# No options: --help says what the script does instead of running it.
argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()

out = Path(__file__).resolve().parents[1] / "docs"
out.mkdir(exist_ok=True)

# A micrograd-style expression, after backward.
a = Tensor(2.0, requires_grad=True, name="a")
b = Tensor(-3.0, requires_grad=True, name="b")
c = a * b
c.name = "c"
d = (c + a).tanh()
d.name = "d"
d.backward()
render(draw_graph(d), out / "graph_scalar", format="png")

# One training step of the MNIST network, collapsed by module.
(x, y), (xt, yt) = nn.data.load_mini_mnist()
model = nn.MLP(784, [128], 10, rng=0)
loss = nn.F.cross_entropy(model(Tensor(x[:4])), y[:4])
loss.backward()
render(draw_graph(loss, model=model, group_by_module="collapse"), out / "graph_mlp", format="png")

# Training curves on mini-MNIST, as the main job trains: without the 8-example last batch
# (5,000 = 78 x 64 + 8), whose noisy full step just before each validation made the curve dip.
model.zero_grad()
history = nn.fit(
    model,
    nn.F.cross_entropy,
    nn.optim.SGD(model.parameters(), lr=0.1),
    nn.data.DataLoader(x, y, batch_size=64, shuffle=True, seed=0, drop_last=True),
    epochs=10,
    val_data=(xt, yt),
    progress=False,
)
from nn import viz  # noqa: E402

viz.plot_history(history, out / "loss_curve.png")
predicted = nn.predict(model, xt[:16]).argmax(axis=1)
viz.prediction_gallery(xt[:16], predicted, yt[:16], out / "predictions.png", n=16)
print("wrote", sorted(p.name for p in out.glob("*.png")))
print("final test accuracy", round(history["val_accuracy"][-1], 4))
