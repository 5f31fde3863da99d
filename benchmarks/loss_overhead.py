"""Cost of the graph distillation losses relative to one training step.

For each loss, times forward + backward of the loss alone (student features
are leaf tensors that require grad, teacher features are fixed) and divides by
the time of one training step of the network it would be attached to, measured
in the same run:

* the CPU student of ``experiments/distillation.py``: SmallCNN width 16 on
  28×28 images, B = 64, layers block1–block3 (GKD) and the pooled embedding
  (RKD, EGA); one step = forward, cross-entropy, backward, Adam update;
* ResNet-18 on 32×32 images at B = 128 with three matched layers
  (block2, block3, block4; RKD and EGA on the pooled embedding).

The teacher's features have the teacher's widths (SmallCNN width 32; for
ResNet-18 the same network, i.e. a ResNet-18 teacher). Medians over
``--repeats`` timings after one warm-up; on the CPU the timings are this
process's CPU time (one thread by default), so that other jobs on a shared
machine do not distort the ratios.

    python benchmarks/loss_overhead.py --output benchmarks/results/loss_overhead.md   # CPU, both networks
    python benchmarks/loss_overhead.py --device cuda
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from latentgraph.capture import capture
from latentgraph.losses.baselines import RKDLoss
from latentgraph.losses.ega import EGALoss
from latentgraph.losses.gkd import GKDLoss
from latentgraph.models import SmallCNN
from latentgraph.models.cifar import ResNet18


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_time(fn, repeats: int, device: torch.device) -> float:
    """Median over ``repeats`` calls after one warm-up: this process's CPU time
    on the CPU (robust to other jobs on a shared machine), wall time on CUDA."""
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        _sync(device)
        start = clock()
        fn()
        _sync(device)
        times.append(clock() - start)
    return statistics.median(times)


def _features(model, layers, x):
    with torch.no_grad(), capture(model, layers, detach=True) as acts:
        model(x)
    return [acts[name] for name in layers]


def benchmark(name, student, teacher, x, y, layers, repeats, device) -> list[tuple[str, float, float]]:
    """Return ``[(loss, seconds, ratio to one step)]`` for one student/teacher pair."""
    student.to(device).train()
    teacher.to(device).eval()
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-3)

    def step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(student(x), y).backward()
        optimizer.step()

    step_time = _median_time(step, repeats, device)
    s_feats = _features(student, layers + ["pool"], x)
    t_feats = _features(teacher, layers + ["pool"], x)
    s_blocks, t_blocks = s_feats[:-1], t_feats[:-1]
    s_emb, t_emb = s_feats[-1], t_feats[-1]
    ega = EGALoss(proj_dim=256, student_dim=s_emb.shape[1], teacher_dim=t_emb.shape[1]).to(device)
    cases = {
        f"GKD ({len(layers)} layers)": (GKDLoss(), s_blocks, t_blocks, True),
        f"GKD inter-class ({len(layers)} layers)": (GKDLoss(edges="inter_class"), s_blocks, t_blocks, True),
        f"GKD k=10 ({len(layers)} layers)": (GKDLoss(k=10), s_blocks, t_blocks, False),
        f"GKD (last layer only: {layers[-1]})": (GKDLoss(), s_blocks[-1:], t_blocks[-1:], False),
        "GKD (embedding)": (GKDLoss(), [s_emb], [t_emb], False),
        "RKD distance+angle (embedding)": (RKDLoss(), [s_emb], [t_emb], False),
        "EGA with 256-d heads (embedding)": (ega, [s_emb], [t_emb], False),
    }
    rows = [(f"{name}: one training step", step_time, 1.0)]
    for label, (loss, s, t, labels) in cases.items():
        leaves = [f.clone().requires_grad_(True) for f in s]

        def run():
            for leaf in leaves:
                leaf.grad = None
            if isinstance(loss, EGALoss):
                value = loss(leaves[0], t[0])
            else:
                value = loss(leaves, t, y) if labels else loss(leaves, t)
            value.backward()

        seconds = _median_time(run, repeats, device)
        rows.append((label, seconds, seconds / step_time))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=10, help="timings per case for the CPU student")
    parser.add_argument("--resnet-repeats", type=int, default=3, help="timings per case for ResNet-18")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-resnet", action="store_true")
    parser.add_argument("--output", type=Path, default=None, help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    y64 = torch.arange(64, device=device) % 10
    results = benchmark("SmallCNN w16, B=64, 28×28", SmallCNN(width=16), SmallCNN(width=32),
                        torch.rand(64, 1, 28, 28, device=device), y64, ["block1", "block2", "block3"],
                        args.repeats, device)
    if not args.skip_resnet:
        y128 = torch.arange(128, device=device) % 10
        results += benchmark("ResNet-18, B=128, 32×32", ResNet18(), ResNet18(),
                             torch.rand(128, 3, 32, 32, device=device), y128, ["block2", "block3", "block4"],
                             args.resnet_repeats, device)
    clock = "wall" if device.type == "cuda" else "CPU"
    lines = [f"device: {device}, threads: {torch.get_num_threads()}, torch {torch.__version__}",
             f"| case | {clock} ms | ratio to one training step |", "|---|---|---|"]
    lines += [f"| {label} | {1000 * seconds:.1f} | {100 * ratio:.1f} % |" for label, seconds, ratio in results]
    print("\n".join(lines))
    if args.output is not None:
        header = (f"# Loss overhead\n\nCommand: `python benchmarks/loss_overhead.py {' '.join(sys.argv[1:])}` "
                  f"({platform.machine()}, {time.strftime('%Y-%m-%d', time.gmtime())})\n\n")
        args.output.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.output.with_suffix(args.output.suffix + ".tmp")
        tmp.write_text(header + "\n".join(lines) + "\n")
        os.replace(tmp, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
