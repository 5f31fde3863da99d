"""Cost of each geometry regularizer: training-step time as a ratio of a plain CE step.

One training step = objective forward, weighted sum of its terms, backward,
Adam step — what :class:`latentgraph.train.Trainer` does per batch. Every
method trains its own copy of the same SmallCNN on the same random
MNIST-shaped batch; steps are timed round-robin (one step of each method per
round, so load changes on a shared machine hit all methods alike) and the
table reports each method's median step time divided by the plain CE
step's median in the same run. Methods:

* ``ce``: :class:`~latentgraph.train.objectives.ClassificationObjective` (the reference);
* ``label_variation``: CE + label variation of the ``pool`` features' kNN graph (k = 10);
* ``label_variation_only``: label variation of the output alone (the embedding objective);
* ``laplacian_smoothness``: CE + γ² mean_ℓ |σ_{ℓ+1} − σ_ℓ| over the 3 ReLU outputs, complete graphs, m = 2;
* ``parseval_retraction``: CE + the retraction W ← (1+β)W − βWWᵀW of every weight, β = 0.01;
* ``parseval_penalty``: CE + Σ_W ‖WWᵀ − I‖²_F;
* ``isometry``: CE + the LIL isometry term on ``pool`` (``latentgraph.losses.isometry``), when present.

Usage::

    nice -n 5 python benchmarks/regularizer_overhead.py --output benchmarks/results/regularizer_overhead.md
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from latentgraph.atomic import write_text
from latentgraph.models import SmallCNN
from latentgraph.train.objectives import (
    ClassificationObjective,
    LabelVariationObjective,
    LaplacianSmoothnessObjective,
    ParsevalObjective,
)
from latentgraph.train.objectives.interface import term_weights, weighted_sum


def objectives() -> dict[str, Callable]:
    out = {
        "ce": ClassificationObjective(),
        "label_variation": LabelVariationObjective(k=10, layer="pool", cross_entropy=True),
        "label_variation_only": LabelVariationObjective(k=10),
        "laplacian_smoothness": LaplacianSmoothnessObjective(gamma=0.01, power=2),
        "parseval_retraction": ParsevalObjective(retraction=0.01),
        "parseval_penalty": ParsevalObjective(retraction=0.0, penalty=1e-3),
    }
    if importlib.util.find_spec("latentgraph.train.objectives.isometric") is not None:
        from latentgraph.train.objectives.isometric import IsometricObjective

        out["isometry"] = IsometricObjective(beta=1.0, layer="pool")
    return out


def measure(batch_size: int, width: int, rounds: int, warmup: int) -> dict[str, float]:
    """Median seconds per training step of each objective."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch_size, 1, 28, 28, generator=g)
    y = torch.arange(batch_size) % 10
    runs = {}
    for name, objective in objectives().items():
        torch.manual_seed(0)
        model = SmallCNN(width=width).train()
        runs[name] = (model, objective, torch.optim.Adam(model.parameters(), lr=1e-3))

    def step(model, objective, optimizer) -> None:
        loss = weighted_sum(objective(model, (x, y)), term_weights(objective))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(warmup + rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            step(*run)
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=None, help="write the Markdown table here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    results = {b: measure(b, args.width, args.rounds, args.warmup) for b in args.batch_sizes}
    names = list(next(iter(results.values())))
    lines = ["| method | " + " | ".join(f"B={b}" for b in args.batch_sizes) + " |",
             "|---|" + "---|" * len(args.batch_sizes)]
    lines.append("| ce (ms per step) | " + " | ".join(f"{1000 * results[b]['ce']:.1f} ms" for b in args.batch_sizes)
                 + " |")
    for name in names[1:]:
        lines.append(f"| {name} | " + " | ".join(f"{results[b][name] / results[b]['ce']:.2f}×"
                                                  for b in args.batch_sizes) + " |")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = ("\n".join(lines) + f"\n\nSmallCNN width {args.width}, 1×28×28 inputs, Adam; median of {args.rounds} "
            f"round-robin steps after {args.warmup} warm-up rounds; {args.threads} thread(s); "
            f"{platform.machine()}, {os.cpu_count()} CPU cores visible, torch {torch.__version__}; {stamp}.\n")
    print(text)
    if args.output:
        write_text(args.output, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
