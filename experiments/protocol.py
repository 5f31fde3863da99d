"""The experiment protocol shared by every script in ``experiments/``.

One place holds the rules the experiments follow, so no script copies them:

* a **fixed train / validation / test split** per data set
  (:func:`fixed_split` for index tensors, :func:`load_split` for digits and
  MNIST-5k); the test part is the test set of :func:`latentgraph.data.load_mnist5k`
  / :func:`~latentgraph.data.load_digits` with ``seed=0``, the validation part is
  carved out of their training part;
* every choice made **on validation with tuning seeds** (:data:`TUNING_SEEDS`,
  disjoint from the reported seeds :data:`REPORTED_SEEDS`):
  :func:`choose_on_validation` returns the choice together with its grid and
  scores, to be written in the doc;
* **statistics**: :func:`mean_std` (mean and sample standard deviation),
  :func:`paired_difference` (mean difference to a baseline over the same seeds
  and its Student-t 95 % confidence interval), :func:`summarize` (a table row
  per method from the per-run rows);
* **tables**: :class:`Record` writes each table as CSV and Markdown,
  atomically, with the stamp (command, machine, date, CPU time) under it.

A script uses it like this (run from the repository root; the script's own
folder is on ``sys.path``, so ``import protocol`` works)::

    from protocol import REPORTED_SEEDS, TUNING_SEEDS, Record, choose_on_validation, load_split, summarize

    record = Record()                                  # starts the clocks, remembers the command
    split = load_split("mnist5k")
    choice = choose_on_validation([1, 10, 100], lambda lam, seed: val_error(split, lam, seed),
                                  name="λ")            # tuning seeds, lower is better
    runs = [{"method": m, "seed": s, "error": test_error(split, m, choice.value, s)}
            for m in ("student", "gkd") for s in REPORTED_SEEDS]
    record.write_table(out / "runs", runs)             # per-run CSV + Markdown
    record.write_table(out / "summary", summarize(runs, by=["method"], metric="error",
                                                  baseline={"method": "student"}),
                       notes=[choice.describe()])

Example:
    >>> diff = paired_difference([1.0, 2.0, 3.0], [0.5, 1.0, 2.0])
    >>> round(diff.mean, 4), round(diff.low, 4), round(diff.high, 4)
    (0.8333, 0.1162, 1.5504)
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from latentgraph.atomic import write_csv, write_text

#: Seeds used only to choose hyper-parameters on validation.
TUNING_SEEDS: tuple[int, ...] = (100, 101, 102)
#: Seeds whose test results are reported (the first n of them for n seeds).
REPORTED_SEEDS: tuple[int, ...] = tuple(range(10))
#: The seed of every fixed split (the permutation of ``load_mnist5k(seed=0)``).
SPLIT_SEED = 0
#: Validation and test sizes per data set (the test sizes are those of latentgraph.data).
SPLIT_SIZES: dict[str, dict[str, int]] = {
    "digits": {"val": 300, "test": 360},
    "mnist5k": {"val": 500, "test": 1000},
}


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """``--threads`` (torch CPU threads, default 1) and ``--output`` (results folder,
    default ``experiments/results`` beside this file); :func:`start_run` applies them."""
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results")


def start_run(args: argparse.Namespace) -> Record:
    """Apply :func:`add_run_options`' options (thread count, output folder created)
    and return the :class:`Record` that stamps this run's tables."""
    torch.set_num_threads(args.threads)
    args.output.mkdir(parents=True, exist_ok=True)
    return Record()


def add_shard_options(parser: argparse.ArgumentParser, scope: str = "") -> None:
    """The options every sharded script shares: ``--seed-list`` and ``--shard`` split
    the reported seeds over processes (each writes its own runs table, the tables
    are summarized together), ``--output`` is the results folder
    (default ``experiments/results``). ``scope`` prefixes the help, e.g. ``"torus: "``.
    """
    parser.add_argument("--seed-list", type=int, nargs="+", help=f"{scope}run only these reported seeds (a shard)")
    parser.add_argument("--shard", default="", help=f"{scope}suffix of this shard's runs table")
    parser.add_argument("--output", type=Path, default=Path("experiments/results"))


def _check_count(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an int ≥ {minimum}, got {value!r}")
    return value


class SplitIndices(NamedTuple):
    """Index tensors (long) of a fixed train / validation / test split."""

    train: Tensor
    val: Tensor
    test: Tensor


def fixed_split(n: int, val: int, test: int, seed: int = SPLIT_SEED) -> SplitIndices:
    """Split ``range(n)`` into train / validation / test index tensors.

    The order is NumPy's ``default_rng(seed).permutation(n)``; the first
    ``test`` indices are the test set, the next ``val`` the validation set and
    the rest the training set — so the test set is the one
    :func:`latentgraph.data.load_mnist5k` draws with the same seed.

    Example:
        >>> s = fixed_split(10, val=2, test=3)
        >>> len(s.train), len(s.val), len(s.test)
        (5, 2, 3)
        >>> sorted(torch.cat(s).tolist()) == list(range(10))
        True
    """
    _check_count(n, "n", 1)
    _check_count(val, "val")
    _check_count(test, "test")
    if val + test >= n:
        raise ValueError(f"`val` + `test` must leave training samples: {val} + {test} ≥ n = {n}")
    order = torch.as_tensor(np.random.default_rng(seed).permutation(n), dtype=torch.long)
    return SplitIndices(order[test + val:], order[test:test + val], order[:test])


class ProtocolSplit(NamedTuple):
    """A data set's fixed train / validation / test tensors."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor


def load_split(name: str) -> ProtocolSplit:
    """The fixed split of ``"digits"`` (1,137 / 300 / 360) or ``"mnist5k"``
    (3,500 / 500 / 1,000).

    Equal to :func:`fixed_split` with :data:`SPLIT_SIZES` applied to the data
    set in its shipped order: the loaders of :mod:`latentgraph.data` already
    permute with :data:`SPLIT_SEED` and put the test set first, so the
    validation set is the first ``val`` images of their training part.

    Example:
        >>> s = load_split("digits")
        >>> len(s.y_train), len(s.y_val), len(s.y_test)
        (1137, 300, 360)
    """
    from latentgraph.data import load_digits, load_mnist5k

    loaders = {"digits": load_digits, "mnist5k": load_mnist5k}
    if name not in loaders:
        raise ValueError(f"`name` must be one of {sorted(loaders)}, got {name!r}")
    data = loaders[name](seed=SPLIT_SEED)
    val = SPLIT_SIZES[name]["val"]
    return ProtocolSplit(name, data.x_train[val:], data.y_train[val:], data.x_train[:val], data.y_train[:val],
                         data.x_test, data.y_test)


def _values(values: Sequence[float], name: str, minimum: int = 2) -> list[float]:
    out = [float(v) for v in values]
    if len(out) < minimum:
        raise ValueError(f"`{name}` needs at least {minimum} values, got {len(out)}")
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"`{name}` holds a NaN or infinite value: {out}")
    return out


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``n − 1`` in the denominator) of at least two values.

    Example:
        >>> mean_std([1.0, 2.0, 3.0])
        (2.0, 1.0)
    """
    out = _values(values, "values")
    return statistics.mean(out), statistics.stdev(out)


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``method − baseline`` over paired seeds with its confidence interval."""

    mean: float
    low: float
    high: float
    std: float
    n: int
    confidence: float

    def __str__(self) -> str:
        return f"{self.mean:+.2f} [{self.low:+.2f}, {self.high:+.2f}]"

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies entirely on one side of 0."""
        return self.low > 0 or self.high < 0


def t_quantile(probability: float, dof: int) -> float:
    """The Student-t quantile (:func:`scipy.stats.t.ppf`).

    Example:
        >>> round(t_quantile(0.975, 4), 4)
        2.7764
    """
    from scipy.stats import t

    return float(t.ppf(probability, dof))


def paired_difference(method_values: Sequence[float], baseline_values: Sequence[float],
                      confidence: float = 0.95) -> PairedDifference:
    r"""Paired difference of a method to its baseline over the same seeds.

    With :math:`d_i = m_i - b_i` over :math:`n` seeds, returns
    :math:`\bar d \pm t_{(1+c)/2,\,n-1}\, s_d / \sqrt{n}` (the Student-t
    interval of a paired t-test), ``c = confidence``.

    Example:
        >>> print(paired_difference([10.0, 12.0, 11.0], [12.0, 13.0, 14.0]))
        -2.00 [-4.48, +0.48]
    """
    m = _values(method_values, "method_values")
    b = _values(baseline_values, "baseline_values")
    if len(m) != len(b):
        raise ValueError(f"`method_values` and `baseline_values` must pair up, got {len(m)} and {len(b)} values")
    if not 0 < confidence < 1:
        raise ValueError(f"`confidence` must be in (0, 1), got {confidence!r}")
    d = [x - y for x, y in zip(m, b)]
    mean, std = statistics.mean(d), statistics.stdev(d)
    half = t_quantile((1 + confidence) / 2, len(d) - 1) * std / math.sqrt(len(d))
    return PairedDifference(mean, mean - half, mean + half, std, len(d), confidence)


@dataclass(frozen=True)
class Choice:
    """A hyper-parameter chosen on validation: the value, its grid and the scores."""

    name: str
    value: Any
    grid: tuple
    scores: tuple[float, ...]
    seeds: tuple[int, ...]
    minimize: bool

    def describe(self) -> str:
        """One sentence for the doc: grid, scores, seeds and the choice."""
        pairs = ", ".join(f"{g}: {s:.2f}" for g, s in zip(self.grid, self.scores))
        best = "lowest" if self.minimize else "highest"
        return (f"{self.name} = {self.value} chosen on validation ({best} mean over tuning seeds "
                f"{list(self.seeds)}) from the grid {{{pairs}}}.")


def choose_on_validation(grid: Sequence[Any], score_fn: Callable[[Any, int], float], *, name: str,
                         seeds: Sequence[int] = TUNING_SEEDS, minimize: bool = True,
                         reported_seeds: Sequence[int] = REPORTED_SEEDS) -> Choice:
    """Pick the grid value whose mean validation score over ``seeds`` is best.

    ``score_fn(value, seed)`` trains with ``value`` and ``seed`` and returns a
    validation score (an error when ``minimize``). Ties go to the earlier grid
    value. Tuning seeds must not be reported seeds.

    Example:
        >>> c = choose_on_validation([0.1, 1.0, 10.0], lambda v, s: abs(v - 1.0) + s / 1000, name="λ")
        >>> c.value, c.grid
        (1.0, (0.1, 1.0, 10.0))
    """
    grid = tuple(grid)
    if not grid:
        raise ValueError("`grid` must hold at least one value")
    seeds = tuple(seeds)
    if not seeds:
        raise ValueError("`seeds` must hold at least one tuning seed")
    overlap = sorted(set(seeds) & set(reported_seeds))
    if overlap:
        raise ValueError(f"`seeds` must be tuning seeds, not reported seeds; both hold {overlap}")
    scores = []
    for value in grid:
        per_seed = [float(score_fn(value, seed)) for seed in seeds]
        if not all(math.isfinite(s) for s in per_seed):
            raise ValueError(f"`score_fn` returned a NaN or infinite score for {name} = {value!r}: {per_seed}")
        scores.append(statistics.mean(per_seed))
    pick = scores.index(min(scores) if minimize else max(scores))  # first of equals
    return Choice(name, grid[pick], grid, tuple(scores), seeds, minimize)


def save_choice(choice: Choice, path: str | os.PathLike) -> Path:
    """Write ``choice`` as JSON (atomically), so that later runs of a script reuse it
    instead of tuning again (:func:`load_choice`)."""
    data = {"name": choice.name, "value": choice.value, "grid": list(choice.grid), "scores": list(choice.scores),
            "seeds": list(choice.seeds), "minimize": choice.minimize}
    return write_text(Path(path), json.dumps(data, indent=1) + "\n")


def load_choice(path: str | os.PathLike) -> Choice:
    """The :class:`Choice` written by :func:`save_choice` (lists of the grid read back as tuples).

    Example:
        >>> import tempfile
        >>> c = Choice("(lr, epochs)", (0.003, 5), ((0.001, 5), (0.003, 5)), (9.2, 5.5), (100, 101), True)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     load_choice(save_choice(c, Path(d) / "c.json")) == c
        True
    """
    data = json.loads(Path(path).read_text())

    def freeze(value: Any) -> Any:
        return tuple(freeze(v) for v in value) if isinstance(value, list) else value

    return Choice(data["name"], freeze(data["value"]), tuple(freeze(g) for g in data["grid"]),
                  tuple(float(s) for s in data["scores"]), tuple(data["seeds"]), bool(data["minimize"]))


def saved_choice(path: str | os.PathLike, grid: Sequence[Any], score_fn: Callable[[Any, int], float], *, name: str,
                 minimize: bool = True) -> Choice:
    """The choice saved at ``path`` by an earlier run of the script (another shard,
    :func:`load_choice`), else :func:`choose_on_validation` with the tuning seeds,
    saved there (:func:`save_choice`) for the next run."""
    if Path(path).is_file():
        return load_choice(path)
    choice = choose_on_validation(grid, score_fn, name=name, minimize=minimize)
    save_choice(choice, path)
    return choice


def read_runs(paths: Iterable[str | os.PathLike]) -> list[dict]:
    """The rows of per-run CSV tables (e.g. written by several shards of one experiment),
    concatenated in the order of ``paths``; values stay strings (:func:`summarize`
    converts the metric, and pairs on the string seed)."""
    rows: list[dict] = []
    for path in paths:
        with open(path, newline="") as f:
            rows += list(csv.DictReader(f))
    return rows


def summarize(runs: Sequence[Mapping[str, Any]], *, by: Sequence[str], metric: str,
              baseline: Mapping[str, Any] | None = None, pair: str = "seed", digits: int = 2) -> list[dict]:
    """One row per group of ``runs``: ``metric`` as mean ± std and, with a
    ``baseline``, the paired difference to it with its 95 % CI.

    ``by`` names the keys that define a group (e.g. ``["setting", "method"]``);
    ``baseline`` overrides some of them to name the baseline group of each
    group (e.g. ``{"method": "student"}``: each setting against its student);
    runs are paired on ``pair``. Groups keep their first-appearance order.

    Example:
        >>> runs = [{"method": m, "seed": s, "error": e} for m, s, e in
        ...         [("a", 0, 10.0), ("a", 1, 12.0), ("b", 0, 9.0), ("b", 1, 10.0)]]
        >>> summarize(runs, by=["method"], metric="error", baseline={"method": "a"})[1]
        {'method': 'b', 'seeds': 2, 'error': '9.50 ± 0.71', 'Δ error vs a (95 % CI)': '-1.50 [-7.85, +4.85]'}
    """
    groups: dict[tuple, dict[Hashable, float]] = {}
    for run in runs:
        key = tuple(run[k] for k in by)
        groups.setdefault(key, {})
        if run[pair] in groups[key]:
            raise ValueError(f"two runs of group {dict(zip(by, key))} share {pair} = {run[pair]!r}")
        groups[key][run[pair]] = float(run[metric])
    label = f"Δ {metric} vs {', '.join(str(v) for v in baseline.values())} (95 % CI)" if baseline else None
    rows = []
    for key, values in groups.items():
        group = dict(zip(by, key))
        mean, std = mean_std(list(values.values()))
        row = {**group, "seeds": len(values), metric: f"{mean:.{digits}f} ± {std:.{digits}f}"}
        if baseline:
            base_key = tuple({**group, **baseline}[k] for k in by)
            if base_key not in groups:
                raise ValueError(f"no baseline runs {dict(zip(by, base_key))} for group {group}")
            if base_key == key:
                row[label] = "baseline"
            else:
                shared = [s for s in values if s in groups[base_key]]
                diff = paired_difference([values[s] for s in shared], [groups[base_key][s] for s in shared])
                row[label] = f"{diff.mean:+.{digits}f} [{diff.low:+.{digits}f}, {diff.high:+.{digits}f}]"
        rows.append(row)
    return rows


def summarize_metrics(runs: Sequence[Mapping[str, Any]], *, by: Sequence[str], metrics: Sequence[str],
                      baseline: Mapping[str, Any] | None = None, pair: str = "seed", digits: int = 2) -> list[dict]:
    """:func:`summarize` for several metrics at once: one row per group with,
    for each metric in order, its mean ± std column and (with a ``baseline``)
    its paired-difference column.

    Example:
        >>> runs = [{"method": m, "seed": s, "error": e, "time": t} for m, s, e, t in
        ...         [("a", 0, 10.0, 1.0), ("a", 1, 12.0, 2.0), ("b", 0, 9.0, 2.0), ("b", 1, 10.0, 4.0)]]
        >>> summarize_metrics(runs, by=["method"], metrics=["error", "time"], baseline={"method": "a"})[1]["Δ time vs a (95 % CI)"]
        '+1.50 [-4.85, +7.85]'
    """
    if isinstance(metrics, str) or not metrics:
        raise ValueError(f"`metrics` must be a non-empty list of names, got {metrics!r}")
    merged: list[dict] = []
    for metric in metrics:
        rows = summarize(runs, by=by, metric=metric, baseline=baseline, pair=pair, digits=digits)
        if not merged:
            merged = rows
            continue
        for target, row in zip(merged, rows):
            target.update({k: v for k, v in row.items() if k not in by and k != "seeds"})
    return merged


def compare(runs: Sequence[Mapping[str, Any]], pairs: Sequence[tuple[Any, Any]], *, key: str, metric: str,
            within: Sequence[str] = (), pair: str = "seed", digits: int = 2) -> list[dict]:
    """Paired differences ``metric(a) − metric(b)`` for each ``(a, b)`` in ``pairs`` of values of ``key``,
    separately for each group of the ``within`` keys; runs are paired on ``pair``.

    Example:
        >>> runs = [{"method": m, "seed": s, "error": e} for m, s, e in
        ...         [("a", 0, 10.0), ("a", 1, 12.0), ("b", 0, 9.0), ("b", 1, 10.0)]]
        >>> compare(runs, [("b", "a")], key="method", metric="error")
        [{'comparison': 'b − a', 'seeds': 2, 'Δ error (95 % CI)': '-1.50 [-7.85, +4.85]'}]
    """
    rows = []
    for group in dict.fromkeys(tuple(run[k] for k in within) for run in runs):
        inside = [run for run in runs if tuple(run[k] for k in within) == group]
        for a, b in pairs:
            va = {run[pair]: float(run[metric]) for run in inside if run[key] == a}
            vb = {run[pair]: float(run[metric]) for run in inside if run[key] == b}
            shared = [s for s in va if s in vb]
            if len(shared) < 2:
                continue
            diff = paired_difference([va[s] for s in shared], [vb[s] for s in shared])
            rows.append({**dict(zip(within, group)), "comparison": f"{a} − {b}", "seeds": len(shared),
                         f"Δ {metric} (95 % CI)":
                             f"{diff.mean:+.{digits}f} [{diff.low:+.{digits}f}, {diff.high:+.{digits}f}]"})
    return rows


def _markdown(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    def cell(value: Any) -> str:
        text = f"{value:.2f}" if isinstance(value, float) else str(value)
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


@dataclass
class Record:
    """One experiment run: its command line and clocks, and the tables it writes.

    Created at the start of a script; :meth:`write_table` writes
    ``stem.csv`` and ``stem.md`` atomically, with :meth:`stamp` under the
    Markdown table.
    """

    argv: Sequence[str] = field(default_factory=lambda: list(sys.argv))
    _wall: float = field(default_factory=time.perf_counter, repr=False)
    _cpu: float = field(default_factory=lambda: sum(os.times()[:4]), repr=False)

    @property
    def command(self) -> str:
        """The command that ran the script, paths relative to the working folder where possible."""
        parts = list(self.argv)
        if parts:
            script = Path(parts[0])
            try:
                parts[0] = str(script.resolve().relative_to(Path.cwd()))
            except ValueError:
                parts[0] = str(script)
        return "python " + shlex.join(parts)

    def cpu_seconds(self) -> float:
        """CPU time (user + system, this process and its children) since the record started."""
        return sum(os.times()[:4]) - self._cpu

    def stamp(self) -> str:
        """Command, machine, date and CPU time, as one Markdown paragraph."""
        machine = (f"{platform.machine()}, {os.cpu_count()} CPU(s) visible, {torch.get_num_threads()} torch "
                   f"thread(s), Python {platform.python_version()}, torch {torch.__version__}")
        date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        return (f"Command: `{self.command}` · machine: {machine} · date: {date} · "
                f"CPU time: {self.cpu_seconds():.0f} s (wall {time.perf_counter() - self._wall:.0f} s)\n")

    def write_runs(self, stem: str | os.PathLike, runs: Sequence[Mapping[str, Any]], shard: str = "",
                   title: str | None = None) -> list[dict]:
        """Write this process's per-run rows as ``<stem>_runs<shard>`` (:meth:`write_table`)
        and return the rows of every ``<stem>_runs*.csv`` beside it — all shards of the
        experiment run so far, this one included (:func:`read_runs`)."""
        stem = Path(stem)
        self.write_table(stem.with_name(f"{stem.name}_runs{shard}"), runs, title=title)
        return read_runs(sorted(stem.parent.glob(f"{stem.name}_runs*.csv")))

    def write_table(self, stem: str | os.PathLike, rows: Sequence[Mapping[str, Any]],
                    columns: Sequence[str] | None = None, *, title: str | None = None,
                    notes: Sequence[str] = ()) -> tuple[Path, Path]:
        """Write ``rows`` to ``stem.csv`` and ``stem.md`` (title, table, notes, stamp)."""
        if not rows:
            raise ValueError("`rows` must hold at least one row")
        columns = list(columns or dict.fromkeys(k for row in rows for k in row))
        stem = Path(stem)
        csv_path = write_csv(stem.with_suffix(".csv"), [{c: row.get(c, "") for c in columns} for row in rows],
                             columns)
        parts = [f"**{title}**\n\n" if title else "", _markdown(rows, columns), "\n"]
        parts += [f"{note}\n\n" for note in notes]
        parts.append(self.stamp())
        return csv_path, write_text(stem.with_suffix(".md"), "".join(parts))
