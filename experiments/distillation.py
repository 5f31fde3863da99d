"""Distillation on MNIST-5k: student alone, KD, RKD, GKD, GKD inter-class and EGA.

A SmallCNN of width 32 (≈94k parameters) is the teacher, one of width 16
(≈24k) the student. The teacher is trained once (seed ``--teacher-seed``,
cached in the output folder) and shared; for each seed one student per method
is trained, on the full training set (4,000 images) and in a limited-data
setting (``--per-class`` images per class; the teacher still saw everything).
Every run reports test error and teacher–student agreement (share of test
images on which both predict the same class). Every network is trained with
Adam (lr 1e-3) and a cosine schedule, batch 64. The weights λ are the
methods' published defaults, not tuned here: KD T = 4, λ = 1; RKD
distance/angle 25/50 on the embedding; GKD λ = 25, mean over the three blocks;
EGA λ = 1 (node 1, edge 0.3, heads to 256 dimensions) on the embedding.

    python experiments/distillation.py --seeds 0 1 2

writes ``distillation.csv`` (one row per run) and ``distillation.md`` (mean ±
std over seeds) to ``--output``.
"""
from __future__ import annotations

import argparse
import io
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from latentgraph.atomic import save_torch, write_csv, write_text
from latentgraph.data import load_mnist5k, make_loader, per_class_subset
from latentgraph.models import SmallCNN
from latentgraph.seed import seed_everything
from latentgraph.train import Trainer, evaluate
from latentgraph.train.objectives import ClassificationObjective
from latentgraph.train.objectives.distillation import DistillationObjective, teacher_agreement

BLOCKS = ["block1", "block2", "block3"]
METHODS = {
    "student": None,
    "kd": {"kd": {}},
    "rkd": {"rkd": {"layers": ["pool"]}},
    "gkd": {"gkd": {"layers": BLOCKS}},
    "gkd_inter": {"gkd": {"layers": BLOCKS, "edges": "inter_class"}},
    "ega": {"ega": {"layers": ["pool"], "proj_dim": 256}},
}

FIELDS = ["setting", "method", "seed", "error", "agreement", "seconds", "cpu_seconds"]


def _adam(lr: float):
    return lambda params: torch.optim.Adam(params, lr=lr)


def _cosine(epochs: int):
    return lambda optimizer: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)


def train_teacher(split, seed: int, epochs: int, batch_size: int, lr: float, cache: Path) -> SmallCNN:
    """Train (or load from ``cache``) the width-32 teacher for ``seed``."""
    teacher = SmallCNN(width=32)
    path = cache / f"teacher_seed{seed}_e{epochs}_b{batch_size}_cosine.pt"
    if path.exists():
        teacher.load_state_dict(torch.load(path, weights_only=True))
        return teacher.eval()
    seed_everything(seed)
    teacher = SmallCNN(width=32)
    loader = make_loader(split.x_train, split.y_train, batch_size, shuffle=True, seed=seed)
    Trainer(teacher, ClassificationObjective(), _adam(lr), _cosine(epochs), seed=seed, progress=False,
            metrics={}).fit(loader, epochs)
    save_torch(teacher.state_dict(), path)
    return teacher.eval()


def train_student(method: str, teacher: SmallCNN, x, y, split, seed: int, epochs: int, batch_size: int,
                  lr: float) -> dict:
    """Train one width-16 student with ``method``; return its test error and agreement."""
    seed_everything(seed)
    student = SmallCNN(width=16)
    losses = METHODS[method]
    if losses is None:
        objective = ClassificationObjective()
    else:
        objective = DistillationObjective(teacher, losses, student=student, example_input=x[:2])
    loader = make_loader(x, y, batch_size, shuffle=True, seed=seed)
    start, cpu_start = time.perf_counter(), time.process_time()
    Trainer(student, objective, _adam(lr), _cosine(epochs), seed=seed, progress=False, metrics={}).fit(loader, epochs)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    test = make_loader(split.x_test, split.y_test, 500, shuffle=False)
    return {
        "error": 100.0 * (1.0 - evaluate(student, test)),
        "agreement": 100.0 * teacher_agreement(student, teacher, test),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
    }


def _summary(rows: list[dict], teachers: dict[int, float], args, elapsed: float) -> str:
    out = io.StringIO()
    for seed, error in teachers.items():
        out.write(f"Teacher (SmallCNN width 32, seed {seed}, {args.teacher_epochs} epochs): test error {error:.2f} %\n\n")
    for setting in dict.fromkeys(row["setting"] for row in rows):
        out.write(f"**{setting}**\n\n| method | test error (%) | agreement with teacher (%) | wall s / run | CPU s / run |\n")
        out.write("|---|---|---|---|---|\n")
        for method in METHODS:
            runs = [r for r in rows if r["setting"] == setting and r["method"] == method]
            if not runs:
                continue
            cells = []
            for key in ("error", "agreement"):
                values = [r[key] for r in runs]
                std = statistics.stdev(values) if len(values) > 1 else 0.0
                cells.append(f"{statistics.mean(values):.2f} ± {std:.2f}")
            cells.append(f"{statistics.mean(r['seconds'] for r in runs):.1f}")
            cells.append(f"{statistics.mean(r['cpu_seconds'] for r in runs):.1f}")
            out.write(f"| {method} | " + " | ".join(cells) + " |\n")
        out.write("\n")
    out.write(f"mean ± sample std over seeds {args.seeds}; {elapsed:.0f} s wall and "
              f"{time.process_time():.0f} s CPU in all, "
              f"{torch.get_num_threads()} thread(s), {platform.machine()}, torch {torch.__version__}, "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n\n"
              f"Command: `python experiments/distillation.py {' '.join(sys.argv[1:])}`\n")
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--teacher-seed", type=int, default=0, help="one teacher, shared by every student seed")
    parser.add_argument("--teacher-epochs", type=int, default=8)
    parser.add_argument("--student-epochs", type=int, default=6)
    parser.add_argument("--per-class", type=int, default=20, help="limited-data setting: images per class")
    parser.add_argument("--limited-epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.output.mkdir(parents=True, exist_ok=True)
    split = load_mnist5k(seed=0)
    begin = time.perf_counter()
    rows: list[dict] = []
    teachers: dict[int, float] = {}
    teacher = train_teacher(split, args.teacher_seed, args.teacher_epochs, args.batch_size, args.lr, args.output)
    test = make_loader(split.x_test, split.y_test, 500, shuffle=False)
    teachers[args.teacher_seed] = 100.0 * (1.0 - evaluate(teacher, test))
    print(f"teacher (seed {args.teacher_seed}): test error {teachers[args.teacher_seed]:.2f} %", flush=True)
    for seed in args.seeds:
        x_few, y_few = per_class_subset(split.x_train, split.y_train, args.per_class, seed=seed)
        settings = {
            f"full (4000 images, {args.student_epochs} epochs)": (split.x_train, split.y_train, args.student_epochs),
            f"limited ({args.per_class} per class, {args.limited_epochs} epochs)": (x_few, y_few, args.limited_epochs),
        }
        for setting, (x, y, epochs) in settings.items():
            for method in args.methods:
                result = train_student(method, teacher, x, y, split, seed, epochs, args.batch_size, args.lr)
                rows.append({"setting": setting, "method": method, "seed": seed, **result})
                print(f"seed {seed} | {setting} | {method:9s} | error {result['error']:.2f} % | "
                      f"agreement {result['agreement']:.2f} % | {result['seconds']:.1f} s", flush=True)
                write_csv(args.output / "distillation.csv", rows, FIELDS)  # after every run: partial results survive
    summary = _summary(rows, teachers, args, time.perf_counter() - begin)
    write_text(args.output / "distillation.md", summary)
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
