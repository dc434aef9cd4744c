"""Forward mode against reverse mode: Jacobians as inputs and outputs grow, and Hessian-vector
products on the MNIST MLP against PyTorch (torch.func.jvp of torch.func.grad, the way
torch.func composes an hvp: it has no hvp of its own; and autograd's double backward).

    python -m bench --workloads forward
"""

from __future__ import annotations

import time

import numpy as np

SIZES = (1, 10, 100, 1000)


def _best(fn, repeats: int) -> float:
    fn()  # warm-up: first-call costs (imports, caches) are not what is compared
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def jacobian_times(n: int, m: int, repeats: int) -> dict[str, float]:
    """Seconds for the Jacobian of x -> tanh(A x) * 2 + (A x)**2 (R^n -> R^m) both ways."""
    import autodiff as ad
    from autodiff.func import jacfwd, jacrev

    rng = np.random.default_rng(0)
    a = ad.Tensor(rng.standard_normal((m, n)) / np.sqrt(n))
    x = rng.standard_normal(n)

    def f(v):
        y = a @ v
        return y.tanh() * 2 + y**2

    rev, fwd = jacrev(f)(x), jacfwd(f)(x)
    if not np.allclose(rev, fwd, atol=1e-10):
        raise AssertionError(f"jacrev and jacfwd disagree for n={n}, m={m}")
    return {
        "rev": _best(lambda: jacrev(f)(x), repeats),
        "fwd": _best(lambda: jacfwd(f)(x), repeats),
    }


def _mlp_problem(x: np.ndarray, y: np.ndarray, batch: int = 128):
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((128, 784)) * np.sqrt(2 / 784)
    w2 = rng.standard_normal((10, 128)) * np.sqrt(2 / 128)
    params = (w1, np.zeros(128), w2, np.zeros(10))
    vs = tuple(rng.standard_normal(p.shape) for p in params)
    xb = np.asarray(x[:batch], dtype=np.float64).reshape(batch, -1)
    yb = np.asarray(y[:batch], dtype=np.int64)
    return params, vs, xb, yb


def hvp_candidates(x: np.ndarray, y: np.ndarray, with_torch: bool = True) -> dict[str, object]:
    """Hessian-vector products of the MNIST MLP's loss (all four parameters, float64, batch
    128): ours both ways, our gradient alone, and PyTorch's when installed (checked equal)."""
    import autodiff as ad
    from autodiff.func import grad, hvp

    params, vs, xb, yb = _mlp_problem(x, y)
    xt = ad.Tensor(xb)

    def loss(w1, b1, w2, b2):
        h = ad.linear(xt, w1, b1).relu()
        return ad.softmax_cross_entropy(ad.linear(h, w2, b2), yb)

    result = {
        "ours, forward over reverse": lambda: hvp(loss, params, vs),
        "ours, reverse over forward": lambda: hvp(loss, params, vs, mode="reverse-over-forward"),
        "ours, gradient only": lambda: grad(loss, (0, 1, 2, 3))(*params),
    }
    try:
        if not with_torch:
            return result
        import torch
        import torch.func as tf
    except ImportError:
        return result
    tx, ty = torch.tensor(xb), torch.tensor(yb)

    def torch_loss(w1, b1, w2, b2):
        h = torch.relu(tx @ w1.T + b1)
        return torch.nn.functional.cross_entropy(h @ w2.T + b2, ty)

    tparams = tuple(torch.tensor(p) for p in params)
    tvs = tuple(torch.tensor(v) for v in vs)

    def torch_hvp():
        return tf.jvp(tf.grad(torch_loss, argnums=(0, 1, 2, 3)), tparams, tvs)[1]

    ours = hvp(loss, params, vs)
    theirs = torch_hvp()
    for a, b in zip(ours, theirs, strict=True):
        if not np.allclose(a, b.numpy(), rtol=1e-6, atol=1e-9):
            raise AssertionError("hvp: ours and PyTorch's disagree")
    result["PyTorch torch.func.jvp(grad)"] = torch_hvp

    def torch_double_backward():
        ps = tuple(p.clone().requires_grad_(True) for p in tparams)
        gs = torch.autograd.grad(torch_loss(*ps), ps, create_graph=True)
        dot = sum((g * v).sum() for g, v in zip(gs, tvs, strict=True))
        return torch.autograd.grad(dot, ps)

    result["PyTorch autograd, double backward"] = torch_double_backward
    return result


def run(args, lines: list[str], ratios: dict, x: np.ndarray, y: np.ndarray) -> None:
    sizes = SIZES[:3] if args.quick else SIZES
    repeats = max(3, args.repeats or 3)
    lines.append("## 6. Forward and reverse mode: Jacobians and Hessian-vector products\n")
    lines.append(
        "Jacobian of x -> tanh(A x) * 2 + (A x)^2, R^n -> R^m, float64: `jacrev` costs "
        "one backward pass per output, `jacfwd` one forward pass per input. "
        "Milliseconds, median of the repeats; the last column is reverse / forward "
        "(above 1: forward mode is faster).\n"
    )
    lines.append("| n inputs | m outputs | jacrev ms | jacfwd ms | rev / fwd |")
    lines.append("| --- | --- | --- | --- | --- |")
    for n in sizes:
        for m in sizes:
            t = jacobian_times(n, m, repeats)
            ratio = t["rev"] / t["fwd"]
            lines.append(
                f"| {n} | {m} | {t['rev'] * 1e3:.3g} | {t['fwd'] * 1e3:.3g} | {ratio:.2f} |"
            )
            ratios[f"forward/jacobian/{n}x{m}/rev_over_fwd"] = ratio
    lines.append("")
    from bench.runner import interleaved, paired_ratio

    candidates = hvp_candidates(x, y)
    for fn in candidates.values():
        fn()  # warm-up

    calls, rounds = (2, 3) if args.quick else (10, max(5, repeats))

    def several(fn):
        return lambda: [fn() for _ in range(calls)] and None

    timings = interleaved({k: several(fn) for k, fn in candidates.items()}, rounds)
    lines.append(
        "Hessian-vector product of the MNIST MLP 784-128-10 loss with respect to all "
        "its parameters (float64, batch 128). Milliseconds per product: median "
        f"(min-max) over {rounds} interleaved rounds of {calls}; ratios are medians of "
        "per-round ratios.\n"
    )
    lines.append("| engine | ms per hvp | x our gradient | x PyTorch torch.func |")
    lines.append("| --- | --- | --- | --- |")
    base = timings["ours, gradient only"]
    torch_timing = timings.get("PyTorch torch.func.jvp(grad)")
    for name, timing in timings.items():
        vs_torch = f"{paired_ratio(timing, torch_timing):.2f}" if torch_timing else "not installed"
        lines.append(
            f"| {name} | {timing.cell(1e3 / calls)} | {paired_ratio(timing, base):.2f} | "
            f"{vs_torch} |"
        )
    ratios["forward/hvp_over_grad"] = paired_ratio(timings["ours, forward over reverse"], base)
    if torch_timing:
        ratios["forward/hvp_vs_torch"] = paired_ratio(
            timings["ours, forward over reverse"], torch_timing
        )
    lines.append("")
