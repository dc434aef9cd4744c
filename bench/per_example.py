"""Per-example gradients of the MNIST MLP (784-128-10, float32) at batch 64: vmap against
a Python loop of grad, and against torch.func's vmap(grad(functional_call)).

    python -m bench.per_example            # one BLAS thread, best of --repeats

Every engine computes the 64 gradients of every parameter from the same weights and images;
the script checks they agree before it reports times.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable


def best_ms(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.per_example")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import numpy as np

    import autodiff as ad
    from autodiff.func import grad

    rng = np.random.default_rng(0)
    shapes = {"w1": (128, 784), "b1": (128,), "w2": (10, 128), "b2": (10,)}
    weights = {k: (rng.normal(size=s) * 0.05).astype(np.float32) for k, s in shapes.items()}
    x = rng.random((args.batch, 784)).astype(np.float32)
    y = rng.integers(0, 10, args.batch)

    def loss(w1, b1, w2, b2, image, label):
        logits = ad.linear(ad.linear(image, w1, b1).relu(), w2, b2)
        return ad.softmax_cross_entropy(logits.reshape(1, 10), label.reshape(1))

    params = [ad.tensor(weights[k]) for k in shapes]
    images, labels = ad.tensor(x), ad.tensor(y)
    per_example = ad.vmap(grad(loss, argnums=(0, 1, 2, 3)), in_axes=(None,) * 4 + (0, 0))
    one = grad(loss, argnums=(0, 1, 2, 3))

    def looped():
        return [one(*params, images[i], labels[i]) for i in range(args.batch)]

    ours = [g.numpy() for g in per_example(*params, images, labels)]
    rows = looped()
    for k, g in enumerate(ours):
        np.testing.assert_allclose(g, np.stack([r[k].numpy() for r in rows]), atol=1e-5)
    results = {
        "autodiff vmap(grad)": best_ms(lambda: per_example(*params, images, labels), args.repeats),
        "autodiff loop of grad": best_ms(looped, args.repeats),
    }
    try:
        import torch
        from torch.func import functional_call, vmap
        from torch.func import grad as tgrad
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(args.threads)
        model = torch.nn.Sequential(
            torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)
        )
        tparams = {
            name: torch.tensor(weights[k])
            for name, k in zip(("0.weight", "0.bias", "2.weight", "2.bias"), shapes, strict=True)
        }

        def tloss(p, image, label):
            out = functional_call(model, p, (image[None],))
            return torch.nn.functional.cross_entropy(out, label[None])

        tper = vmap(tgrad(tloss), in_dims=(None, 0, 0))
        tx, ty = torch.tensor(x), torch.tensor(y)
        theirs = tper(tparams, tx, ty)
        for k, name in enumerate(tparams):
            np.testing.assert_allclose(ours[k], theirs[name].numpy(), atol=1e-5)
        results["torch.func vmap(grad(functional_call))"] = best_ms(
            lambda: tper(tparams, tx, ty), args.repeats
        )
    base = results["autodiff vmap(grad)"]
    print(f"Per-example gradients, MNIST MLP, batch {args.batch}, {args.threads} thread(s):")
    for name, ms in results.items():
        print(f"  {name:42s} {ms:8.2f} ms  ({ms / base:.2f}x vmap)")


if __name__ == "__main__":
    main()
