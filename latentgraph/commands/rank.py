"""``latentgraph rank``: how well each generalization measure ranks a zoo.

``latentgraph rank --zoo zoos/digits`` computes every measure on every model
of a zoo (trained with ``latentgraph zoo``) from its training data, and
writes Kendall's τ against the generalization gap, the granulated τ per
hyperparameter and overall, and the PGDL conditional mutual information, as
``ranking.csv``/``ranking.md``, with ``measures.csv`` and a scatter plot per
measure. ``--select`` also searches the latent-graph options (layer, k,
perturbation) on this zoo and writes the best per measure to
``chosen.yaml``; ``--chosen FILE`` evaluates options chosen on another zoo.
"""
from __future__ import annotations

import argparse
import logging

HELP = "rank a model zoo with every generalization measure (Kendall's τ, granulated τ, CMI)"

log = logging.getLogger("latentgraph.rank")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``latentgraph rank`` to ``parser``."""
    parser.add_argument("--zoo", required=True, metavar="DIR", help="a zoo folder written by 'latentgraph zoo'")
    parser.add_argument("--output", metavar="DIR", help="report folder (default: ZOO/ranking)")
    parser.add_argument("--measures", nargs="+", metavar="SPEC",
                        help="measures, each NAME or NAME:key=value,... (default: every measure with its defaults)")
    parser.add_argument("--select", action="store_true",
                        help="also search latent-graph options on this zoo; write the best (by τ) to OUTPUT/chosen.yaml")
    parser.add_argument("--chosen", metavar="FILE", help="chosen.yaml of another zoo: evaluate its options here")
    parser.add_argument("--reference", default="davies_bouldin_mixup", metavar="SPEC",
                        help="measure the paired Δτ is taken against (default: %(default)s, the PGDL winner)")
    parser.add_argument("--converged-only", action="store_true", help="rank only models that reached the loss criterion")
    parser.add_argument("--max-samples", type=int, default=500, help="training samples per measure (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples and random draws (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch (default: PyTorch's)")
    parser.add_argument("--no-plots", dest="plots", action="store_false", help="skip the scatter plots")


def run(args: argparse.Namespace) -> int:
    """Run ``latentgraph rank``; returns 0 on success."""
    from pathlib import Path

    import torch
    import yaml

    from ..atomic import write_text
    from ..generalization.report import (DEFAULT_SPECS, candidate_specs, measure_zoo, parse_spec, rank_measures,
                                         write_report)
    from ..generalization.zoo import load_zoo

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    zoo = load_zoo(args.zoo)
    if args.converged_only:
        zoo.models = [m for m in zoo.models if m.record["converged"]]
    specs = list(args.measures or DEFAULT_SPECS)
    for spec in (*specs, args.reference):
        parse_spec(spec)  # fail before any work
    if args.chosen:
        chosen = yaml.safe_load(Path(args.chosen).read_text(encoding="utf-8"))
        if not isinstance(chosen, dict) or not isinstance(chosen.get("chosen"), dict):
            raise ValueError(f"--chosen: {args.chosen!r} must hold a mapping `chosen: {{measure: spec}}`")
        specs += [s for s in chosen["chosen"].values() if s not in specs]
    candidates = [c for c in candidate_specs() if c not in specs] if args.select else []
    output = Path(args.output or Path(args.zoo) / "ranking")
    log.info("zoo %s: %d models, %d measures%s", zoo.config.name, len(zoo.models), len(specs),
             f" + {len(candidates)} candidates" if candidates else "")

    def report(index: int, count: int) -> None:
        log.info("measured model %d/%d", index + 1, count)

    data = measure_zoo(zoo, specs + candidates, seed=args.seed, max_samples=args.max_samples, progress=report)
    table = rank_measures(data, reference=args.reference, seed=args.seed)
    by_spec = {row["measure"]: row for row in table}
    title = f"{zoo.config.name}: ranking"
    files = write_report(data, [by_spec[s] for s in specs], output, plots=args.plots, title=title,
                         reference=args.reference)
    if args.select:
        searched = [by_spec[s] for s in candidate_specs()]
        files.update({f"candidates {k}": v for k, v in write_report(
            data, searched, output, plots=False, title=f"{zoo.config.name}: option search", name="candidates",
            reference=args.reference).items()})
        best: dict[str, str] = {}
        for row in searched:
            base = row["measure"].partition(":")[0]
            if base not in best or row["tau"] > by_spec[best[base]]["tau"]:
                best[base] = row["measure"]
        text = yaml.safe_dump({"selected_on": zoo.config.name, "criterion": "Kendall tau", "chosen": best},
                              sort_keys=False, allow_unicode=True)
        files["chosen"] = write_text(output / "chosen.yaml", text)
    print(files["markdown"].read_text(encoding="utf-8"))
    for kind, path in files.items():
        if not kind.startswith("plot:"):
            log.info("wrote %-12s %s", kind, path)
    return 0
