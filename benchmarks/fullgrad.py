"""Cost of FullGrad saliency and of full-Jacobian distillation, as ratios to a plain reference.

* ``lg.fullgrad(model, x)`` against one plain forward + backward of the same
  model and batch (cross-entropy, ``loss.backward()`` to the parameters), both
  in eval mode. Target: ratio ≤ 1.0 — FullGrad needs no weight gradient (it
  differentiates with respect to the input only and reads the bias layers'
  output gradients through hooks), which pays for its post-processing.
  ``full_jacobian`` alone (no post-processing, every gradient kept) and the
  simple variant are listed too.
* One training step of the ``jacobian_distill`` objective (full-Jacobians, and
  full-Jacobians + attention) against one step of plain distillation (the
  ``distill`` objective with KD), same student, teacher and batch.

Each pair is timed interleaved (reference, method, reference, ...) and the
median of the repeats is reported, so that load from other processes hits both
alike. Usage::

    nice -n 5 python benchmarks/fullgrad.py --output benchmarks/results/fullgrad.md
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

import latentgraph.jacobian as lj
from latentgraph.atomic import write_text
from latentgraph.models import SmallCNN
from latentgraph.train.objectives.distillation import DistillationObjective
from latentgraph.train.objectives.interface import term_weights, weighted_sum
from latentgraph.train.objectives.jacobian import JacobianDistillationObjective


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(reference: Callable[[], object], method: Callable[[], object], repeats: int,
                device: torch.device) -> tuple[float, float]:
    """Median seconds of ``reference`` and ``method``, timed alternately after a warm-up."""
    times: dict[int, list[float]] = {0: [], 1: []}
    for fn in (reference, method):
        fn()
    for _ in range(repeats):
        for i, fn in enumerate((reference, method)):
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[i].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def saliency_rows(device: torch.device, repeats: int, sizes: list[tuple[int, int, int]]) -> list[str]:
    rows = []
    for width, side, batch in sizes:
        torch.manual_seed(0)
        model = SmallCNN(width=width).to(device).eval()
        x = torch.rand(batch, 1, side, side, device=device)
        y = torch.randint(0, 10, (batch,), device=device)

        def plain() -> None:
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()

        for name, fn in (("fullgrad", lambda: lj.fullgrad(model, x)),
                         ("fullgrad simple", lambda: lj.fullgrad(model, x, variant="simple")),
                         ("full_jacobian", lambda: lj.full_jacobian(model, x))):
            ref, t = interleaved(plain, fn, repeats, device)
            rows.append(f"| {name} | SmallCNN w={width} | {batch}×1×{side}×{side} | {1e3 * ref:.2f} | "
                        f"{1e3 * t:.2f} | {t / ref:.2f} |")
            print(rows[-1], flush=True)
    return rows


def distill_rows(device: torch.device, repeats: int, batch: int, side: int) -> list[str]:
    torch.manual_seed(0)
    teacher = SmallCNN(width=32).to(device).eval()
    student = SmallCNN(width=16).to(device)
    optimizer = torch.optim.SGD(student.parameters(), lr=1e-3)
    x = torch.rand(batch, 1, side, side, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    layers = ["block1.1", "block2.1", "block3.1"]
    blocks = ["block1", "block2", "block3"]

    def step(objective) -> Callable[[], None]:
        def run() -> None:
            loss = weighted_sum(objective(student, (x, y)), term_weights(objective))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return run

    plain = step(DistillationObjective(teacher, {"kd": {}}))
    rows = []
    for method in ("full_jacobian", "full_jacobian+attention", "input_jacobian"):
        objective = JacobianDistillationObjective(teacher, method=method, layers=layers, attention_layers=blocks)
        ref, t = interleaved(plain, step(objective), repeats, device)
        rows.append(f"| {method} | {batch}×1×{side}×{side} | {1e3 * ref:.2f} | {1e3 * t:.2f} | {t / ref:.2f} |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--output", type=Path, default=None, help="also write the Markdown tables here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sizes = [(16, 28, 64), (32, 28, 64), (32, 28, 256)]
    header = (f"{datetime.date.today()}, {platform.machine()}, {os.cpu_count()} CPU cores, "
              f"{torch.get_num_threads()} torch threads, device {device}, torch {torch.__version__}, "
              f"median of {args.repeats} interleaved repeats\n")
    saliency = ["| method | model | batch | plain fwd+bwd (ms) | method (ms) | ratio |",
                "|---|---|---|---|---|---|", *saliency_rows(device, args.repeats, sizes)]
    distill = ["| jacobian_distill method | batch | KD step (ms) | step (ms) | ratio |",
               "|---|---|---|---|---|", *distill_rows(device, args.repeats, 64, 28)]
    text = header + "\n" + "\n".join(saliency) + "\n\n" + "\n".join(distill) + "\n"
    print(text)
    if args.output is not None:
        write_text(args.output, text)


if __name__ == "__main__":
    main()
