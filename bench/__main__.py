"""Run the benchmark suite and write bench/RESULTS.md.

    python -m bench                 # everything (about 10 minutes on 2 cores)
    python -m bench --quick         # a small version of every workload (about 1-2 minutes)
    python -m bench --workloads mnist,ops --repeats 5 --threads 1
    python -m bench --profile micrograd   # where one workload's time goes, by function

Thread counts are fixed before numpy is imported: on a 2-core machine, BLAS with 2 threads
beside any other busy process can be many times slower than with 1, so every engine runs with
the same, recorded number of threads (default 1).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mnist"
WORKLOADS = ("mnist", "ops", "micrograd", "chain", "memory", "forward", "lenet")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA))
    parser.add_argument("--out", default=str(ROOT / "bench" / "RESULTS.md"))
    parser.add_argument(
        "--profile",
        metavar="WORKLOAD",
        help="print a cProfile of one workload instead of timing the suite: "
        "mnist, ops, micrograd, micrograd-batched or chain",
    )
    args = parser.parse_args(argv)
    unknown = set(args.workloads.split(",")) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads {sorted(unknown)}; choose from {WORKLOADS}")
    return args


def load_data(data_dir: str):
    import nn

    if Path(data_dir).exists():
        (x, y), (xt, yt) = nn.data.load_mnist(data_dir, download=False)
    else:  # no MNIST here: the shipped subset keeps the suite runnable (the table says so)
        (x, y), (xt, yt) = nn.data.load_mini_mnist()
    return x, y, xt, yt


def _available(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


PEER_MODULES = {
    "PyTorch eager": "torch",
    "MyGrad": "mygrad",
    "HIPS autograd": "autograd",
    "micrograd (scalar graph)": "micrograd",
}


def _engines(table: dict) -> dict:
    return {
        name: fn
        for name, fn in table.items()
        if name not in PEER_MODULES or _available(PEER_MODULES[name])
    }


def run_mnist(args, lines: list[str], ratios: dict) -> None:
    from bench import mnist
    from bench.runner import interleaved, paired_ratio

    x, y, xt, yt = load_data(args.data_dir)
    max_batches = 60 if args.quick else None
    lines.append("## 1. MNIST MLP 784-128-10, one epoch, SGD lr 0.1\n")
    lines.append(
        f"Training set: {len(x)} images"
        + (f", first {max_batches} batches only (--quick)" if max_batches else "")
        + ". Seconds per epoch: median (min-max); ratios are medians of the "
        "per-round ratios; test accuracy after the epoch.\n"
    )
    lines.append("| engine | batch | dtype | seconds | x numpy floor | test accuracy |")
    lines.append("| --- | --- | --- | --- | --- | --- |")
    import numpy as np

    for batch, dtype in ((128, np.float32), (64, np.float32), (128, np.float64)):
        problem = mnist.make_problem(x, y, xt, yt, batch, max_batches).cast(dtype)
        accuracy: dict[str, float] = {}

        def runner(fn, problem=problem, accuracy=accuracy):
            def run():
                seconds, acc = fn(problem)
                accuracy[fn.__name__] = acc
                return seconds

            return run

        engines = _engines(mnist.ENGINES)
        timings = interleaved({n: runner(f) for n, f in engines.items()}, args.repeats)
        floor = timings["numpy floor (by hand)"]
        for name, timing in timings.items():
            ratio = paired_ratio(timing, floor)
            acc = accuracy.get(engines[name].__name__, float("nan"))
            lines.append(
                f"| {name} | {batch} | {np.dtype(dtype).name} | {timing.cell()} | "
                f"{ratio:.2f} | {'' if acc != acc else f'{acc:.4f}'} |"
            )
            ratios[f"mnist/{batch}/{np.dtype(dtype).name}/{name}"] = ratio
        if "PyTorch eager" in timings:
            ratios[f"mnist/{batch}/{np.dtype(dtype).name}/ours_vs_torch"] = paired_ratio(
                timings["autodiff (ours)"], timings["PyTorch eager"]
            )
    lines.append("")


def run_ops(args, lines: list[str], ratios: dict) -> None:
    from bench import small_ops
    from bench.runner import interleaved, paired_ratio

    iterations = 500 if args.quick else 5000
    timings = interleaved(
        {n: (lambda f=f: f(iterations)) for n, f in _engines(small_ops.ENGINES).items()},
        args.repeats,
    )
    floor = timings["numpy floor (by hand)"]
    lines.append("## 2. Per-op overhead: 4x4 tensors, five ops + backward\n")
    lines.append("Ratios are medians of the per-round ratios.\n")
    lines.append("| engine | us per iteration | x numpy floor |")
    lines.append("| --- | --- | --- |")
    for name, timing in timings.items():
        ratio = paired_ratio(timing, floor)
        lines.append(f"| {name} | {timing.cell(1e6)} | {ratio:.1f} |")
        ratios[f"ops/{name}"] = ratio
    lines.append("")


def run_micrograd(args, lines: list[str], ratios: dict) -> None:
    from bench import micrograd_demo
    from bench.runner import interleaved, isolated, paired_ratio

    steps = 1 if args.quick else 3
    # Every sample in a fresh process (see runner.isolated): the collector's share of these
    # scalar graphs depends on what else the process has imported. A batched step takes under
    # a millisecond, so it runs 100 times as many steps, which also amortizes the first call.
    timings = interleaved(
        {
            n: (
                lambda f=f, k=steps * (100 if "batched" in n else 1): isolated(
                    "micrograd_demo", f.__name__, [k], args.threads
                )
            )
            for n, f in _engines(micrograd_demo.ENGINES).items()
        },
        args.repeats,
    )
    lines.append("## 3. micrograd's demo: MLP(2, [16, 16], 1), 100 points, hinge loss\n")
    lines.append(
        "Default garbage-collector settings; each sample in a fresh process that "
        "imports only its engine. Ratios are medians of the per-round ratios.\n"
    )
    lines.append("| engine | ms per step | speed-up over micrograd | x numpy floor, batched |")
    lines.append("| --- | --- | --- | --- |")
    reference = timings.get("micrograd (scalar graph)")
    floor = timings["numpy floor, batched"]
    for name, timing in timings.items():
        speedup = paired_ratio(reference, timing) if reference else float("nan")
        vs_floor = f"{paired_ratio(timing, floor):.2f}" if "batched" in name else ""
        lines.append(f"| {name} | {timing.cell(1e3)} | {speedup:.1f} | {vs_floor} |")
        ratios[f"micrograd/{name}"] = speedup
    ratios["micrograd/batched_vs_numpy"] = paired_ratio(timings["autodiff (ours), batched"], floor)
    lines.append("")


def run_chain(args, lines: list[str], ratios: dict) -> None:
    from bench.runner import Timing, isolated

    sizes = [1_000, 10_000, 100_000] if args.quick else [1_000, 10_000, 100_000, 1_000_000]
    lines.append("## 4. Deep chains of scalar ops (forward + backward)\n")
    lines.append(
        "`y = y * 1.0000001 + 1e-9`, repeated: two ops per step, default collector "
        "settings, in a fresh process per size that imports only the engine. "
        "Microseconds per op: median (min-max) of the repeats; peak and left-over "
        "memory from tracemalloc in one more run.\n"
    )
    lines.append(
        "| ops | ours: us per op | forward | backward | peak MB | MB left after | micrograd |"
    )
    lines.append("| --- | --- | --- | --- | --- | --- | --- |")
    for n in sizes:
        # Each loop iteration is two ops.
        result = isolated("chain", "ours", [n // 2, args.repeats], args.threads)
        total = Timing(result["total"])
        if _available("micrograd"):
            try:
                mg = isolated("chain", "micrograd", [n // 2], args.threads)
                mg = f"{mg['us_per_op']:.2f} us per op"
            except RuntimeError as exc:
                mg = f"fails: {str(exc).split(':')[0]}"
        else:
            mg = "not installed"
        lines.append(
            f"| {n:,} | {total.cell(1e6)} | "
            f"{Timing(result['forward']).median * 1e6:.2f} | "
            f"{Timing(result['backward']).median * 1e6:.2f} | "
            f"{result['peak_mb']:.1f} | {result['left_mb']:.2f} | {mg} |"
        )
        ratios[f"chain/{n}"] = ratios["chain/us_per_op"] = total.median * 1e6
        ratios["chain/left_mb"] = result["left_mb"]
        if n == sizes[-1]:
            ratios["chain/peak_mb"] = result["peak_mb"]
    lines.append("")


def run_memory(args, lines: list[str], ratios: dict) -> None:
    from bench import memory

    max_batches = 60 if args.quick else None
    lines.append("## 5. Memory\n")
    lines.append(
        "Peak RSS of one MNIST epoch (batch 128, float32), each engine in a fresh "
        "process; the data set itself is part of every figure.\n"
    )
    lines.append("| engine | peak RSS MB | above the loaded data, MB | x numpy floor |")
    lines.append("| --- | --- | --- | --- |")
    import tempfile

    import numpy as np

    from bench import mnist

    x, y, xt, yt = load_data(args.data_dir)
    peaks, above = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        arrays = str(Path(tmp) / "mnist.npz")
        np.savez(arrays, x=x, y=y, xt=xt, yt=yt)
        del x, y, xt, yt
        for name in _engines(mnist.ENGINES):
            result = memory.epoch_peak(name, arrays, max_batches, args.threads)
            peaks[name] = result.get("peak_mb", float("nan"))
            above[name] = result.get("above_data_mb", float("nan"))
    floor = peaks["numpy floor (by hand)"]
    for name, peak in peaks.items():
        lines.append(f"| {name} | {peak:.0f} | {above[name]:.0f} | {peak / floor:.2f} |")
        ratios[f"memory/{name}"] = peak / floor
    steps = 2_000 if args.quick else 10_000
    marks = memory.steady_state(steps, args.threads)
    lines.append("")
    if "error" in marks:
        lines.append(f"Our RSS while training: fails: {marks['error']}\n")
        return
    after = ", ".join(f"{v:.1f} MB after {k} steps" for k, v in marks.items())
    lines.append(f"Our RSS while training (batch 128): {after}.\n")
    keys = sorted(marks, key=int)
    ratios["memory/growth_mb"] = marks[keys[-1]] - marks[keys[1]] if len(keys) > 2 else 0.0


def run_lenet(args, lines: list[str], ratios: dict) -> None:
    from bench import lenet
    from bench.runner import interleaved, paired_ratio

    x, y, xt, yt = load_data(args.data_dir)
    steps = 20 if args.quick else 200
    problem = lenet.make_problem(x, y, xt, yt, batch_size=64, steps=steps)
    scale = problem.images_per_epoch_scale()
    scores: dict[str, tuple[float, float]] = {}

    def runner(name, fn):
        def run():
            seconds, *scores[name] = fn(problem)
            return seconds * scale

        return run

    timings = interleaved(
        {n: runner(n, f) for n, f in _engines(lenet.ENGINES).items()}, args.repeats
    )
    lines.append("## 7. LeNet-5 on MNIST, batch 64, SGD lr 0.05\n")
    lines.append(
        f"{steps} training steps, seconds scaled to one 60,000-image epoch: median "
        "(min-max); ratios are medians of the per-round ratios. Test accuracy and "
        "loss on 2,000 test images after the steps: the same in every engine.\n"
    )
    lines.append("| engine | seconds per epoch | x numpy im2col | test accuracy | test loss |")
    lines.append("| --- | --- | --- | --- | --- |")
    floor = timings["numpy im2col (by hand)"]
    for name, timing in timings.items():
        ratio = paired_ratio(timing, floor)
        accuracy, loss = scores.get(name, (float("nan"), float("nan")))
        lines.append(f"| {name} | {timing.cell()} | {ratio:.2f} | {accuracy:.4f} | {loss:.4f} |")
        ratios[f"lenet/{name}"] = ratio
    if "PyTorch eager" in timings:
        ratios["lenet/ours_vs_torch"] = paired_ratio(
            timings["autodiff (ours)"], timings["PyTorch eager"]
        )
    lines.append("")


def run_forward(args, lines: list[str], ratios: dict) -> None:
    from bench import forward

    x, y, _, _ = load_data(args.data_dir)
    forward.run(args, lines, ratios, x, y)


# The targets, each a ratio from the same run: (label, key in `ratios`, test, wanted).
TARGETS = [
    (
        "MNIST epoch, float32, batch 128",
        "mnist/128/float32/autodiff (ours)",
        lambda r: r <= 1.10,
        "<= 1.10x numpy floor",
    ),
    (
        "MNIST epoch, float32, batch 64",
        "mnist/64/float32/autodiff (ours)",
        lambda r: r <= 1.10,
        "<= 1.10x numpy floor",
    ),
    (
        "MNIST epoch vs PyTorch, batch 128",
        "mnist/128/float32/ours_vs_torch",
        lambda r: r <= 0.9,
        "<= 0.90x PyTorch eager",
    ),
    (
        "MNIST epoch vs PyTorch, batch 64",
        "mnist/64/float32/ours_vs_torch",
        lambda r: r <= 0.9,
        "<= 0.90x PyTorch eager",
    ),
    ("per-op overhead", "ops/autodiff (ours)", lambda r: r <= 5.0, "<= 5x numpy floor"),
    (
        "micrograd demo, scalar graph",
        "micrograd/autodiff (ours), scalar graph",
        lambda r: r >= 3.5,
        ">= 3.5x faster than micrograd",
    ),
    (
        "micrograd demo, batched",
        "micrograd/batched_vs_numpy",
        lambda r: r <= 3.0,
        "<= 3x numpy floor",
    ),
    ("longest chain, us per op", "chain/us_per_op", lambda r: r <= 3.0, "<= 3 us per op"),
    ("longest chain, peak MB", "chain/peak_mb", lambda r: r < 297, "< 297 MB (the old peak)"),
    ("longest chain, MB left after", "chain/left_mb", lambda r: r < 1.0, "< 1 MB"),
    ("peak RSS of an epoch", "memory/autodiff (ours)", lambda r: r <= 1.3, "<= 1.3x numpy floor"),
    ("RSS growth, 1,000 to last step, MB", "memory/growth_mb", lambda r: r < 1.0, "< 1 MB"),
    ("LeNet epoch, batch 64", "lenet/autodiff (ours)", lambda r: r <= 1.5, "<= 1.5x numpy im2col"),
    (
        "LeNet epoch vs PyTorch, batch 64",
        "lenet/ours_vs_torch",
        lambda r: r < 1.0,
        "< 1.00x PyTorch eager",
    ),
]


def summarize(ratios: dict[str, float]) -> list[str]:
    """One table of every target measured in this run, met or missed, with its ratio."""
    lines = [
        "## Targets (ratios from this run)\n",
        "| target | wanted | measured | |",
        "| --- | --- | --- | --- |",
    ]
    for label, key, ok, wanted in TARGETS:
        if key in ratios:
            value = ratios[key]
            verdict = "met" if ok(value) else "MISSED"
            lines.append(f"| {label} | {wanted} | {value:.2f} | {verdict} |")
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # Thread counts only take effect if set before numpy (or torch) is first imported; when
    # something imported numpy earlier (a test, say), the table says so.
    numpy_was_loaded = "numpy" in sys.modules
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 7
    sys.path.insert(0, str(ROOT))
    if args.profile:
        from bench.profile import PROFILES, profile

        if args.profile not in PROFILES:
            print(
                f"--profile: unknown workload {args.profile!r}; choose from {PROFILES}",
                file=sys.stderr,
            )
            return 2
        print(profile(args.profile))
        return 0
    if _available("torch"):
        import torch

        torch.set_num_threads(args.threads)
    from bench.runner import load_average, machine_facts

    facts = machine_facts(args.threads)
    if numpy_was_loaded:
        facts["threads"] += "; numpy was imported first, so BLAS keeps its default threads"
    facts["load average before"] = load_average()
    sections: list[str] = []
    ratios: dict[str, float] = {}
    steps = {
        "mnist": run_mnist,
        "ops": run_ops,
        "micrograd": run_micrograd,
        "chain": run_chain,
        "memory": run_memory,
        "forward": run_forward,
        "lenet": run_lenet,
    }
    for name in args.workloads.split(","):
        print(f"running {name} ...", file=sys.stderr, flush=True)
        steps[name](args, sections, ratios)
    facts["load average after"] = load_average()
    lines = ["# Benchmark results", ""]
    lines += [f"- {k}: {v}" for k, v in facts.items()]
    lines += [
        f"- mode: {'quick' if args.quick else 'full'}, {args.repeats} interleaved "
        "repeats per engine",
        "",
    ]
    lines += summarize(ratios) + sections
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
