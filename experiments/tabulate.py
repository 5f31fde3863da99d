"""Tabulate the per-run rows an experiment printed to its log, for a run stopped before
it wrote its own tables (the scripts print one Python dict per finished run).

Only seeds for which every group has a run are kept, so every paired difference
compares the same seeds. Writes ``<stem>_runs`` and ``<stem>`` (CSV + Markdown, with
the stamp) through :mod:`protocol`.

    python experiments/tabulate.py experiments/results/logs/isometry_mnist.log \\
        --stem experiments/results/isometry_mnist --by β --baseline 0 --metrics clean_error pgd_ce_0.05
"""
from __future__ import annotations

import argparse
import ast
from pathlib import Path

from protocol import Record, summarize_metrics


def runs_from_logs(paths: list[Path], by: str) -> list[dict]:
    """Every line of the logs that is a dict literal with ``by`` and ``"seed"``; seeds missing a group dropped."""
    runs = []
    for path in paths:
        for line in path.read_text().splitlines():
            if line.startswith("{"):
                row = ast.literal_eval(line)
                if by in row and "seed" in row:
                    runs.append(row)
    groups = {r[by] for r in runs}
    complete = {s for s in {r["seed"] for r in runs} if {r[by] for r in runs if r["seed"] == s} == groups}
    return [r for r in runs if r["seed"] in complete]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", type=Path, nargs="+")
    parser.add_argument("--stem", type=Path, required=True)
    parser.add_argument("--by", required=True, help="the key naming a method (e.g. method, β)")
    parser.add_argument("--baseline", required=True, help="the baseline's value of --by")
    parser.add_argument("--metrics", nargs="+", required=True)
    parser.add_argument("--title", default="")
    parser.add_argument("--note", action="append", default=[])
    args = parser.parse_args(argv)
    record = Record()
    runs = runs_from_logs(args.logs, args.by)
    if len({r["seed"] for r in runs}) < 2:
        raise SystemExit("fewer than 2 seeds with a run of every group: nothing to tabulate")
    seeds = sorted({r["seed"] for r in runs})
    record.write_table(args.stem.with_name(args.stem.name + "_runs"), runs, title=f"{args.title}: runs")
    notes = [f"Tabulated from the per-run rows of {', '.join(f'`{p}`' for p in args.logs)}; seeds {seeds} "
             f"(the seeds with a run of every {args.by})."] + args.note
    record.write_table(args.stem, summarize_metrics(runs, by=[args.by], metrics=args.metrics,
                                                    baseline={args.by: args.baseline}),
                       title=args.title, notes=notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
