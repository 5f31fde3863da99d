"""Paired comparisons between the methods of a runs table written by an experiment script.

Reads a ``*_runs.csv`` (one row per method and seed) and writes, with
:func:`protocol.compare`, the paired difference ``a − b`` over the seeds both
share, with its Student-t 95 % confidence interval, for each pair ``a:b``::

    python experiments/compare.py experiments/results/full_jacobian_regularize_runs.csv \\
        --pairs "bias-Jacobian:dropout" "bias-Jacobian:bias weight decay" \\
        --output experiments/results/full_jacobian_regularize_comparisons

writes ``<output>.csv`` and ``<output>.md`` (stamped).
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

from protocol import Record, compare


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, help="a *_runs.csv table")
    parser.add_argument("--pairs", nargs="+", required=True, help="a:b pairs of values of --key")
    parser.add_argument("--key", default="method")
    parser.add_argument("--metric", default="error")
    parser.add_argument("--within", nargs="*", default=[], help="columns that define separate groups")
    parser.add_argument("--output", type=Path, required=True, help="output path without suffix")
    args = parser.parse_args(argv)
    pairs = []
    for text in args.pairs:
        a, sep, b = text.partition(":")
        if not sep or not a or not b:
            raise SystemExit(f"--pairs: expected a:b, got {text!r}")
        pairs.append((a, b))
    with open(args.runs, newline="") as f:
        runs = list(csv.DictReader(f))
    rows = compare(runs, pairs, key=args.key, metric=args.metric, within=args.within)
    if not rows:
        raise SystemExit(f"no pair of {args.pairs} shares two seeds in {args.runs}")
    Record().write_table(args.output, rows, title=f"Paired differences in {args.metric} ({args.runs.name})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
