r"""Ranking a zoo: every measure on every model, then Kendall's τ,
granulated τ and conditional mutual information against the generalization
gap, written as CSV and Markdown tables with one scatter plot per measure.

A measure is named by a *spec*: its name in :data:`MEASURES`, optionally
followed by options, ``name:key=value,key=value`` (values read as YAML
scalars), e.g. ``label_variation:layers=first,k=5``.
"""
from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..atomic import write_csv, write_text
from .ranking import bootstrap_tau, conditional_mutual_information, granulated_tau, kendall_tau
from .registry import MEASURES, complexity
from .zoo import Zoo

log = logging.getLogger(__name__)

#: The measures ``latentgraph rank`` computes by default.
DEFAULT_SPECS = (
    "label_variation", "label_variation_profile", "label_variation_mixup", "label_variation_noise",
    "margin", "parameter_norm", "parameter_norm:kind=log_prod_spectral", "distance_from_init", "path_norm",
    "pac_bayes_sharpness", "pac_bayes_flatness", "input_gradient_norm", "davies_bouldin", "davies_bouldin_mixup",
)


def parse_spec(spec: str) -> tuple[str, dict[str, object]]:
    """``(measure, options)`` of a spec; unknown measures or options, and
    malformed ``key=value`` parts, are a :class:`ValueError`.

    Example:
        >>> parse_spec("label_variation:layers=first,k=5")
        ('label_variation', {'layers': 'first', 'k': 5})
    """
    import yaml

    name, _, rest = spec.partition(":")
    if name not in MEASURES:
        raise ValueError(f"measure spec {spec!r}: no measure {name!r}; known: {', '.join(sorted(MEASURES))}")
    options: dict[str, object] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise ValueError(f"measure spec {spec!r}: expected key=value, got {part!r}")
        if key not in MEASURES[name].options:
            raise ValueError(f"measure spec {spec!r}: {name!r} has no option {key!r}; "
                             f"its options: {', '.join(MEASURES[name].options) or 'none'}")
        options[key] = yaml.safe_load(value)
    return name, options


def candidate_specs() -> list[str]:
    """The latent-graph variants searched when choosing options on a zoo:
    layer (first, middle, penultimate) × k (5, 10, 20) × perturbation (none,
    mixup, noise), and the depth profile's summaries × k."""
    specs = []
    for k in (5, 10, 20):
        for layers in ("first", "middle", "penultimate"):
            for name in ("label_variation", "label_variation_mixup", "label_variation_noise"):
                specs.append(f"{name}:layers={layers},k={k}")
        for summary in ("area", "mean", "slope"):
            specs.append(f"label_variation_profile:summary={summary},k={k}")
    return specs


@dataclass
class ZooMeasurements:
    """Every measure on every model of a zoo.

    Attributes:
        rows (list[dict]): per model: ``model``, its hyperparameters,
            ``train_acc``, ``test_acc``, ``gap``, ``converged`` and one column per spec.
        specs (list[str]): the measure specs, in column order.
        hparams (list[str]): the hyperparameters the zoo varies.
        seconds (dict[str, float]): CPU seconds spent per spec, all models together.
    """

    rows: list[dict]
    specs: list[str]
    hparams: list[str]
    seconds: dict[str, float]


def measure_zoo(zoo: Zoo, specs: Sequence[str] = DEFAULT_SPECS, seed: int = 0, max_samples: int = 500,
                progress: Callable[[int, int], None] | None = None) -> ZooMeasurements:
    """Compute each spec on each model of ``zoo`` from its training data
    (the labels it was trained on). ``distance_from_init`` receives the
    model's stored initial weights."""
    if not zoo.models:
        raise ValueError("the zoo holds no finished model")
    parsed = [parse_spec(s) for s in specs]
    hparams = [h for h in zoo.config.grid if len(zoo.config.grid[h]) > 1]
    rows, seconds = [], {s: 0.0 for s in specs}
    for index, model in enumerate(zoo.models):
        net = zoo.network(model)
        x, y = zoo.training_data(model)
        row = {"model": model.id, **{h: model.hparams[h] for h in hparams},
               "train_acc": model.record["train_acc"], "test_acc": model.record["test_acc"],
               "gap": model.gap, "converged": model.record["converged"]}
        for spec, (name, options) in zip(specs, parsed):
            if name == "distance_from_init":
                options = {**options, "initial": torch.load(model.folder / "init.pt", weights_only=True)}
            start = time.process_time()
            row[spec] = complexity(net, x, y, name, seed=seed, max_samples=max_samples, **options)
            seconds[spec] += time.process_time() - start
        rows.append(row)
        if progress is not None:
            progress(index, len(zoo.models))
    return ZooMeasurements(rows, list(specs), hparams, seconds)


def rank_measures(data: ZooMeasurements, reference: str | None = "davies_bouldin_mixup",
                  seed: int = 0) -> list[dict]:
    """One row per spec: ``measure``, ``family``, ``tau`` with its 95 %
    bootstrap interval ``tau_low``/``tau_high``, the paired difference to
    the ``reference`` spec (when measured) ``dtau_low``/``dtau``/``dtau_high``,
    ``granulated_<h>`` per hyperparameter, ``granulated`` (overall) and ``cmi``."""
    gaps = [r["gap"] for r in data.rows]
    hp = [{h: r[h] for h in data.hparams} for r in data.rows]
    ref = [r[reference] for r in data.rows] if reference in data.specs else None
    table = []
    for spec in data.specs:
        values = [r[spec] for r in data.rows]
        granulated = granulated_tau(values, gaps, hp)
        tau = kendall_tau(values, gaps)
        low, high = bootstrap_tau(values, gaps, seed=seed)
        row = {"measure": spec, "family": MEASURES[spec.partition(":")[0]].family,
               "tau": tau, "tau_low": low, "tau_high": high}
        if ref is not None:
            d_low, d_high = bootstrap_tau(values, gaps, reference=ref, seed=seed)
            row.update(dtau=tau - kendall_tau(ref, gaps), dtau_low=d_low, dtau_high=d_high)
        row.update({f"granulated_{h}": granulated.get(h, math.nan) for h in data.hparams})
        row["granulated"] = granulated["overall"]
        row["cmi"] = conditional_mutual_information(values, gaps, hp)
        table.append(row)
    return table


def to_markdown(table: list[dict], hparams: Sequence[str], reference: str | None = None) -> str:
    """The ranking table in Markdown: τ [95 % CI], the paired Δτ to the
    reference [95 % CI] when the rows hold it, granulated τ per
    hyperparameter and overall, CMI × 100."""
    paired = bool(table) and "dtau" in table[0]
    header = ["measure", "family", "τ [95 % CI]", *([f"Δτ vs `{reference}` [95 % CI]"] if paired else []),
              *[f"ψ {h}" for h in hparams], "Ψ (granulated)", "CMI ×100"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|"]
    for row in table:
        delta = [f"{row['dtau']:+.3f} [{row['dtau_low']:+.2f}, {row['dtau_high']:+.2f}]"] if paired else []
        cells = [f"`{row['measure']}`", row["family"], f"{row['tau']:+.3f} [{row['tau_low']:+.2f}, {row['tau_high']:+.2f}]",
                 *delta, *[_fmt(row[f"granulated_{h}"]) for h in hparams], _fmt(row["granulated"]),
                 f"{100 * row['cmi']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:+.3f}"


def write_report(data: ZooMeasurements, table: list[dict], output: str | os.PathLike,
                 plots: bool = True, title: str = "", name: str = "ranking",
                 reference: str | None = "davies_bouldin_mixup") -> dict[str, Path]:
    """Write ``measures.csv`` (every value), ``<name>.csv``, ``<name>.md``
    and, with ``plots``, ``plots/<measure>.png`` for the measures of
    ``table``; returns the paths by kind."""
    out = Path(output)
    files = {"measures": write_csv(out / "measures.csv", data.rows),
             "ranking": write_csv(out / f"{name}.csv", table)}
    converged = sum(bool(r["converged"]) for r in data.rows)
    gaps = [r["gap"] for r in data.rows]
    summary = (f"{len(data.rows)} models ({converged} reached the loss criterion); generalization gap "
               f"{min(gaps):+.3f} … {max(gaps):+.3f} (mean {sum(gaps) / len(gaps):+.3f}).")
    shown = [row["measure"] for row in table]
    notes = ("τ: Kendall's τ-b between measure and gap over all models, with a 95 % percentile-bootstrap "
             "interval (2,000 resamples of the models). Δτ: paired difference on the same resamples. ψ: granulated "
             "τ, mean τ within groups where only that hyperparameter varies; Ψ their mean. CMI: PGDL's "
             "conditional mutual information, minimum over pairs of conditioning hyperparameters.")
    text = (f"# {title or 'Ranking'}\n\n{summary}\n\n{to_markdown(table, data.hparams, reference)}\n\n"
            f"{notes}\n\nCPU seconds per measure (all models): "
            + ", ".join(f"`{s}` {data.seconds[s]:.2f}" for s in shown) + "\n")
    files["markdown"] = write_text(out / f"{name}.md", text)
    if plots:
        from ..viz.generalization import scatter_by_hyperparameter

        for spec in shown:
            stem = spec.replace(":", "__").replace(",", "_").replace("=", "-")
            files[f"plot:{spec}"] = scatter_by_hyperparameter(data.rows, spec, data.hparams, out / "plots" / f"{stem}.png")
    return files
