"""Baseline vs Parseval vs the Laplacian-smoothness regularizer (LGG paper §4.3, Table 3).

SmallCNNs (width 16) trained per seed with the same data, optimizer and epochs:

* **baseline**: cross-entropy;
* **parseval**: cross-entropy with the Parseval retraction
  :math:`W \\leftarrow (1+\\beta)W - \\beta WW^\\top W` after every step, β = 0.01
  (the value of the Laplacian-networks comparison; no Parseval-specific
  architecture changes);
* **laplacian γ=…**: cross-entropy + γ^m · mean_ℓ |σ_{ℓ+1} − σ_ℓ| over the three ReLU
  outputs, complete cosine graphs, m = 2 (official γ = 0.01, i.e. a weight of 1e-4).

Reported on the test set: clean error; error under FGSM and under PGD-L∞
(10 steps, step ε/4, seeded random start) at ``--eps``; mCE and relative mCE on
the torch corruption suite against the baseline of the same seed (relative mCE
over the corruptions listed in ``label_variation.RELATIVE_CORRUPTIONS``); and
an FGSM accuracy-vs-ε curve.

    python experiments/smoothness.py --seeds 0 1 2

writes ``smoothness.csv``, ``smoothness.md`` and ``smoothness_fgsm.png`` to
``--output`` (default ``experiments/results``).
"""
from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timezone

from label_variation import (
    DATASETS,
    OPTIMIZERS,
    machine,
    parse_arguments,
    subset,
    summary_table,
    train,
)
from latentgraph.atomic import write_csv, write_text
from latentgraph.models import SmallCNN
from latentgraph.robustness import (
    accuracy_curve,
    accuracy_under_attack,
    corruption_errors,
    error_rate,
    mce,
    plot_accuracy_curves,
    relative_mce,
)
from latentgraph.seed import seed_everything
from latentgraph.train.objectives import ClassificationObjective
from latentgraph.train.objectives import LaplacianSmoothnessObjective, ParsevalObjective

CURVE_EPS = [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3]


def methods(args: argparse.Namespace) -> dict:
    out = {"baseline": ClassificationObjective(), "parseval": ParsevalObjective(retraction=args.parseval_beta)}
    for gamma in args.gammas:
        out[f"laplacian γ={gamma:g}"] = LaplacianSmoothnessObjective(gamma=gamma, power=args.power)
    return out


def run_seed(split, seed: int, args: argparse.Namespace) -> tuple[list[dict], dict]:
    """Train every method for one seed; return the rows and each method's FGSM curve."""
    models, clean, errors, curves = {}, {}, {}, {}
    for name, objective in methods(args).items():
        seed_everything(seed)
        models[name] = train(SmallCNN(width=args.width), objective, split, args.epochs, args.lr, args.batch_size,
                             seed, args.optimizer)
        clean[name] = error_rate(models[name], split.x_test, split.y_test)
        errors[name] = corruption_errors(models[name], split.x_test, split.y_test, seed=seed)
        curves[name] = accuracy_curve(models[name], split.x_test, split.y_test, CURVE_EPS, "fgsm")
    rows = []
    x, y = split.x_test, split.y_test
    for name, model in models.items():
        rows.append({
            "seed": seed,
            "method": name,
            "clean_error": clean[name],
            "fgsm_error": 1 - accuracy_under_attack(model, x, y, "fgsm", eps=args.eps),
            "pgd_error": 1 - accuracy_under_attack(model, x, y, "pgd", eps=args.eps, step_size=args.eps / 4,
                                                   steps=10, seed=seed),
            "mCE": mce(errors[name], errors["baseline"]),
            "relative_mCE": relative_mce(subset(errors[name], args.relative_corruptions), clean[name],
                                         subset(errors["baseline"], args.relative_corruptions),
                                         clean["baseline"]),
        })
    return rows, curves


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam")
    parser.add_argument("--gammas", type=float, nargs="+", default=[0.01, 0.003, 0.001])
    parser.add_argument("--power", type=int, default=2)
    parser.add_argument("--parseval-beta", type=float, default=0.01)
    parser.add_argument("--eps", type=float, default=0.1)
    args = parse_arguments(parser, argv)

    start = time.perf_counter()
    rows, all_curves = [], []
    for seed in args.seeds:
        seed_rows, curves = run_seed(DATASETS[args.dataset](seed=seed), seed, args)
        rows += seed_rows
        all_curves.append(curves)
        print(f"seed {seed} done at {time.perf_counter() - start:.0f}s", flush=True)
    write_csv(args.output / f"smoothness{args.tag}.csv", rows)

    columns = {
        "clean_error": ("clean error %", 100.0, 2),
        "fgsm_error": (f"FGSM error % (ε={args.eps:g})", 100.0, 1),
        "pgd_error": (f"PGD-L∞ error % (ε={args.eps:g}, 10 steps)", 100.0, 1),
        "mCE": ("mCE", 100.0, 1),
        "relative_mCE": ("relative mCE", 100.0, 1),
    }
    table = summary_table(rows, "method", columns)
    names = list(all_curves[0])
    curve_rows = ["| method | " + " | ".join(f"ε={e:g}" for e in CURVE_EPS) + " |",
                  "|" + "---|" * (len(CURVE_EPS) + 1)]
    plotted = {}
    for name in names:
        per_eps = [[c[name][i] for c in all_curves] for i in range(len(CURVE_EPS))]
        means = [statistics.fmean(v) for v in per_eps]
        stds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in per_eps]
        plotted[name] = (CURVE_EPS, means, stds)
        curve_rows.append(f"| {name} | " + " | ".join(f"{100 * m:.1f} ± {100 * s:.1f}" for m, s in zip(means, stds))
                          + " |")
    plot_accuracy_curves(plotted, args.output / f"smoothness{args.tag}_fgsm.png", title=f"FGSM on {args.dataset} (test)")
    elapsed = time.perf_counter() - start
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = (f"{table}\nFGSM accuracy % vs ε (mean ± std over seeds):\n\n" + "\n".join(curve_rows) + "\n\n"
            f"Dataset {args.dataset}, seeds {args.seeds}, {args.epochs} epochs, {args.optimizer} lr {args.lr}, batch "
            f"{args.batch_size}, SmallCNN width {args.width}, m = {args.power}, Parseval β = {args.parseval_beta}; "
            f"{elapsed:.0f} s on {machine()}; {stamp}.\n")
    write_text(args.output / f"smoothness{args.tag}.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
