"""Locally Isometric Layers (LIL) experiments: MNIST-5k robustness, entangled
rings, stacked LILs on the torus.

Run from the repository root::

    nice -n 5 python experiments/isometry.py --seeds 0 1 2

Writes CSV files, Markdown tables and PNG plots under ``--output``
(default ``experiments/results/isometry``); ``docs/isometry.md`` shows them.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from latentgraph.atomic import save_figure, write_csv, write_text
from latentgraph.data import load_mnist5k, make_loader
from latentgraph.data.toy import entangled_rings, noisy_torus
from latentgraph.losses.isometry import IsometryLoss, pairwise_euclidean
from latentgraph.models.lil import LILClassifier, StackedLIL
from latentgraph.robustness import accuracy_curve, plot_accuracy_curves, predict
from latentgraph.train import Trainer
from latentgraph.train.objectives.isometric import IsometricObjective, StackedIsometricObjective

BETAS = (0.0, 0.001, 0.01, 0.1, 1.0, 10.0)
FGSM_EPS = tuple(float(e) for e in np.logspace(-2, 0, 9))
PGD_STEP_SIZES = tuple(float(e) for e in np.logspace(-2, 0, 5))
PGD_BALL, PGD_STEPS = 0.5, 10


# ---------------------------------------------------------------- helpers
def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _fmt(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    mean, std = _mean_std([scale * v for v in values])
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _train(model, objective, loader, epochs: int, lr: float, seed: int) -> None:
    trainer = Trainer(model, objective, lambda params: torch.optim.Adam(params, lr=lr), seed=seed, progress=False)
    trainer.fit(loader, epochs=epochs)
    model.eval()


# ---------------------------------------------------------------- MNIST-5k
def run_mnist(seeds: list[int], out: Path, scale: float, epochs: int) -> str:
    """LILClassifier (4×100 tanh) on MNIST-5k for each β: clean accuracy,
    FGSM (ε log-spaced in [0.01, 1]) and PGD (L∞ ball 0.5, 10 steps, step
    size log-spaced in [0.01, 1]), each attack ascending CE + β·L_ISO (as the
    authors) and plain CE."""
    split = load_mnist5k(seed=0)
    x_test, y_test = split.x_test, split.y_test
    rows, curves = [], {}
    for beta in BETAS:
        for seed in seeds:
            start = time.perf_counter()
            torch.manual_seed(seed)
            model = LILClassifier(784, 10)
            objective = IsometricObjective(beta=beta, scale=scale)
            loader = make_loader(split.x_train, split.y_train, batch_size=100, shuffle=True, seed=seed)
            _train(model, objective, loader, epochs=epochs, lr=1e-3, seed=seed)
            with torch.no_grad():
                clean = float((predict(model, x_test) == y_test).float().mean())
                iso = float(IsometryLoss(scale=scale)(x_test, model.lil(x_test), y_test))
            row = {"beta": beta, "seed": seed, "clean_acc": clean, "test_isometry": iso}
            for attack_loss, loss_fn in (("objective", objective.loss), ("ce", None)):
                fgsm = accuracy_curve(model, x_test, y_test, FGSM_EPS, "fgsm", loss_fn=loss_fn)
                pgd = [
                    accuracy_curve(model, x_test, y_test, [PGD_BALL], "pgd", step_size=step, steps=PGD_STEPS,
                                   random_start=False, loss_fn=loss_fn)[0]
                    for step in PGD_STEP_SIZES
                ]
                curves[(beta, seed, attack_loss, "fgsm")] = fgsm
                curves[(beta, seed, attack_loss, "pgd")] = pgd
                row.update({f"fgsm_{attack_loss}_{e:.3g}": a for e, a in zip(FGSM_EPS, fgsm)})
                row.update({f"pgd_{attack_loss}_{s:.3g}": a for s, a in zip(PGD_STEP_SIZES, pgd)})
            row["seconds"] = round(time.perf_counter() - start, 1)
            rows.append(row)
            print(f"mnist beta={beta} seed={seed} clean={clean:.4f} iso={iso:.4g} "
                  f"fgsm@0.1={row['fgsm_objective_0.1']:.3f} ({row['seconds']} s)", flush=True)
    write_csv(out / f"mnist_K{scale:g}.csv", rows)

    for attack_loss in ("objective", "ce"):
        for attack, xs, xlabel in (("fgsm", FGSM_EPS, "FGSM ε (L∞)"), ("pgd", PGD_STEP_SIZES, "PGD step size (ball 0.5, 10 steps)")):
            plotted = {}
            for beta in BETAS:
                per_seed = np.array([curves[(beta, s, attack_loss, attack)] for s in seeds])
                plotted[f"β={beta:g}"] = (list(xs), per_seed.mean(0).tolist(), per_seed.std(0, ddof=1 if len(seeds) > 1 else 0).tolist())
            loss_name = "CE + β·L_ISO" if attack_loss == "objective" else "CE"
            plot_accuracy_curves(plotted, out / f"mnist_K{scale:g}_{attack}_{attack_loss}.png",
                                 title=f"{attack.upper()} on MNIST-5k, K={scale:g}, attack loss {loss_name}",
                                 xlabel=xlabel, log_x=True)

    by_beta = {beta: [r for r in rows if r["beta"] == beta] for beta in BETAS}
    table = _markdown_table(
        ["β", "clean acc. (%)", "test L_ISO", "FGSM ε=0.1 (%)", "FGSM ε=0.32 (%)", "PGD α=0.1 (%)",
         "FGSM ε=0.1, CE (%)", "PGD α=0.1, CE (%)"],
        [[f"{beta:g}", _fmt([r["clean_acc"] for r in rs]), _fmt([r["test_isometry"] for r in rs], 1.0, 3),
          _fmt([r["fgsm_objective_0.1"] for r in rs]), _fmt([r["fgsm_objective_0.316"] for r in rs]),
          _fmt([r["pgd_objective_0.1"] for r in rs]),
          _fmt([r["fgsm_ce_0.1"] for r in rs]), _fmt([r["pgd_ce_0.1"] for r in rs])]
         for beta, rs in by_beta.items()],
    )
    write_text(out / f"mnist_K{scale:g}.md", table)
    return table


# ---------------------------------------------------------------- entangled rings
def _within_class_pairs(x: torch.Tensor, h: torch.Tensor, y: torch.Tensor, c: int) -> tuple[np.ndarray, np.ndarray]:
    idx = (y == c).nonzero().squeeze(1)
    iu = torch.triu_indices(len(idx), len(idx), offset=1)
    d_in = pairwise_euclidean(x[idx])[iu[0], iu[1]]
    d_out = pairwise_euclidean(h[idx])[iu[0], iu[1]]
    return d_in.numpy(), d_out.numpy()


def run_rings(seeds: list[int], out: Path, n: int, noise: float, beta: float, epochs: int, batch_size: int,
              lr: float) -> str:
    """LILClassifier (4×20 tanh) on two linked rings, β = 0 vs β > 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, hist = [], {}
    for b in (0.0, beta):
        for seed in seeds:
            x, y = entangled_rings(n, noise=noise, seed=seed)
            x_test, y_test = entangled_rings(n, noise=noise, seed=10_000 + seed)
            torch.manual_seed(seed)
            model = LILClassifier(3, 2, hidden=(20, 20, 20, 20))
            _train(model, IsometricObjective(beta=b), make_loader(x, y, batch_size=batch_size, seed=seed), epochs, lr,
                   seed)
            with torch.no_grad():
                h_test = model.lil(x_test)
                row = {"beta": b, "seed": seed,
                       "train_acc": float((model(x).argmax(1) == y).float().mean()),
                       "test_acc": float((model(x_test).argmax(1) == y_test).float().mean()),
                       "test_isometry": float(IsometryLoss()(x_test, h_test, y_test))}
                for c in (0, 1):
                    d_in, d_out = _within_class_pairs(x_test, h_test, y_test, c)
                    row[f"ring{c}_corr"] = float(np.corrcoef(d_in, d_out)[0, 1])
                    row[f"ring{c}_rel_error"] = float(np.abs(d_out - d_in).mean() / d_in.mean())
                    if seed == seeds[0]:
                        hist[(b, c)] = (d_in, d_out)
            rows.append(row)
            print(f"rings beta={b} seed={seed} test_acc={row['test_acc']:.3f} iso={row['test_isometry']:.4g}", flush=True)
    write_csv(out / "rings.csv", rows)

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.3))
    for c, ax in enumerate(axes):
        d_in = hist[(0.0, c)][0]
        bins = np.linspace(0, max(d_in.max(), hist[(0.0, c)][1].max(), hist[(beta, c)][1].max()), 50)
        ax.hist(d_in, bins=bins, histtype="step", color="black", label="input (3-D)")
        ax.hist(hist[(0.0, c)][1], bins=bins, alpha=0.6, color="tab:orange", label="last layer, CE (β=0)")
        ax.hist(hist[(beta, c)][1], bins=bins, alpha=0.6, color="tab:green", label=f"last layer, LIL (β={beta:g})")
        ax.set_title(f"ring {c}, test points (seed {seeds[0]})", fontsize=10)
        ax.set_xlabel("Euclidean distance")
        ax.set_yscale("log")
    axes[0].set_ylabel("pairs (log scale)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / "rings_distances.png", dpi=120)
    plt.close(fig)

    table = _markdown_table(
        ["β", "train acc. (%)", "test acc. (%)", "test L_ISO", "corr(D_M, D_Φ) ring 0 / ring 1",
         "rel. distance error ring 0 / ring 1"],
        [[f"{b:g}", _fmt([r["train_acc"] for r in rs]), _fmt([r["test_acc"] for r in rs]),
          _fmt([r["test_isometry"] for r in rs], 1.0, 4),
          f"{_fmt([r['ring0_corr'] for r in rs], 1.0, 3)} / {_fmt([r['ring1_corr'] for r in rs], 1.0, 3)}",
          f"{_fmt([r['ring0_rel_error'] for r in rs], 1.0, 3)} / {_fmt([r['ring1_rel_error'] for r in rs], 1.0, 3)}"]
         for b in (0.0, beta) for rs in [[r for r in rows if r["beta"] == b]]],
    )
    write_text(out / "rings.md", table)
    return table


# ---------------------------------------------------------------- stacked LILs on the torus
def run_torus(seeds: list[int], out: Path, n: int, regions: tuple[int, ...], betas: tuple[float, ...],
              epochs: int, batch_size: int, lr: float) -> str:
    """StackedLIL (levels of 4×20 tanh) on the noisy torus, one level per
    labelling in ``regions``; accuracy and isometry per level."""
    rows = []
    for b in betas:
        for seed in seeds:
            x, labels = noisy_torus(n, noise=0.001, seed=seed, regions=regions)
            x_test, labels_test = noisy_torus(n, noise=0.001, seed=10_000 + seed, regions=regions)
            torch.manual_seed(seed)
            model = StackedLIL(3, level_classes=regions, hidden=(20, 20, 20, 20))
            _train(model, StackedIsometricObjective(beta=b), make_loader(x, labels, batch_size=batch_size, seed=seed),
                   epochs, lr, seed)
            row = {"beta": b, "seed": seed}
            with torch.no_grad():
                train_levels, test_levels = model.forward_levels(x), model.forward_levels(x_test)
                for level, (tr, te) in enumerate(zip(train_levels, test_levels)):
                    row[f"level{level}_train_acc"] = float((tr.logits.argmax(1) == labels[:, level]).float().mean())
                    row[f"level{level}_test_acc"] = float((te.logits.argmax(1) == labels_test[:, level]).float().mean())
                    row[f"level{level}_test_isometry"] = float(IsometryLoss()(te.inputs, te.features, labels_test[:, level]))
            rows.append(row)
            print(f"torus beta={b} seed={seed} " + " ".join(
                f"L{lv}={row[f'level{lv}_test_acc']:.3f}" for lv in range(len(regions))), flush=True)
    write_csv(out / "torus.csv", rows)
    header = ["β"] + [f"level {lv} ({c} regions) test acc. (%)" for lv, c in enumerate(regions)] + \
             [f"level {lv} test L_ISO" for lv in range(len(regions))]
    body = []
    for b in betas:
        rs = [r for r in rows if r["beta"] == b]
        body.append([f"{b:g}"] + [_fmt([r[f"level{lv}_test_acc"] for r in rs]) for lv in range(len(regions))]
                    + [_fmt([r[f"level{lv}_test_isometry"] for r in rs], 1.0, 4) for lv in range(len(regions))])
    table = _markdown_table(header, body)
    write_text(out / "torus.md", table)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--parts", nargs="+", default=["mnist", "rings", "torus"], choices=["mnist", "rings", "torus"])
    parser.add_argument("--output", type=Path, default=Path("experiments/results/isometry"))
    parser.add_argument("--scales", type=float, nargs="+", default=[10.0], help="K values for MNIST")
    parser.add_argument("--mnist-epochs", type=int, default=5)
    parser.add_argument("--rings-n", type=int, default=400)
    parser.add_argument("--rings-beta", type=float, default=1.0)
    parser.add_argument("--rings-epochs", type=int, default=300)
    parser.add_argument("--rings-batch", type=int, default=100)
    parser.add_argument("--rings-lr", type=float, default=1e-2)
    parser.add_argument("--torus-n", type=int, default=1600)
    parser.add_argument("--torus-regions", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--torus-betas", type=float, nargs="+", default=[0.0, 100.0])
    parser.add_argument("--torus-epochs", type=int, default=150)
    parser.add_argument("--torus-batch", type=int, default=200)
    parser.add_argument("--torus-lr", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.output.mkdir(parents=True, exist_ok=True)
    header = (f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
              f"{os.cpu_count()} CPU cores, torch {torch.__version__}, {args.threads} thread(s); seeds {args.seeds}.\n")
    report = [header]
    start = time.perf_counter()
    if "mnist" in args.parts:
        for scale in args.scales:
            report.append(f"\n## MNIST-5k, K = {scale:g}\n\n" + run_mnist(args.seeds, args.output, scale, args.mnist_epochs))
    if "rings" in args.parts:
        report.append("\n## Entangled rings\n\n" + run_rings(args.seeds, args.output, args.rings_n, 0.02,
                                                             args.rings_beta, args.rings_epochs, args.rings_batch,
                                                             args.rings_lr))
    if "torus" in args.parts:
        report.append("\n## Stacked LILs on the torus\n\n" + run_torus(
            args.seeds, args.output, args.torus_n, tuple(args.torus_regions), tuple(args.torus_betas), args.torus_epochs,
            args.torus_batch, args.torus_lr))
    report.append(f"\nTotal wall time: {time.perf_counter() - start:.0f} s.\n")
    write_text(args.output / "summary.md", "".join(report))
    print("".join(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
