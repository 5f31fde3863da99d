"""``latentgraph zoo``: train a model zoo for judging generalization measures.

``latentgraph zoo --config configs/zoo/digits.yaml --output zoos/digits``
trains every model of the config's grid (or its seeded sample) to the same
training-loss criterion and writes each, with its hyperparameters, train and
test accuracy, under ``OUTPUT/models/<id>/`` (see
:mod:`latentgraph.generalization.zoo`). Run it again to resume: finished
models are skipped.
"""
from __future__ import annotations

import argparse
import logging

HELP = "train a zoo of small models whose hyperparameters vary (see docs/generalization.md)"

log = logging.getLogger("latentgraph.zoo")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``latentgraph zoo`` to ``parser``."""
    parser.add_argument("--config", required=True, metavar="FILE", help="YAML zoo configuration (configs/zoo/)")
    parser.add_argument("--output", required=True, metavar="DIR", help="zoo folder; an existing one is resumed")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="stop after N new models")
    parser.add_argument("--reverse", action="store_true",
                        help="train in the reverse order: a second process on the same --output meets the first halfway")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch (default: PyTorch's)")


def run(args: argparse.Namespace) -> int:
    """Run ``latentgraph zoo``; returns 0 on success."""
    import torch

    from ..generalization.zoo import load_zoo_config, train_zoo
    from .analyze import resolve_device

    for name in ("limit", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    config = load_zoo_config(args.config)
    device = resolve_device(args.device)
    total = len(config.points())
    log.info("zoo %s: %d models on %s (%s), writing to %s", config.name, total, config.data, device, args.output)

    def report(index: int, count: int, record: dict) -> None:
        log.info("m%03d/%d: %d epochs, loss %.3f%s, train %.3f, test %.3f (%.1f s)", index, count - 1,
                 record["epochs"], record["train_loss"], "" if record["converged"] else " (not converged)",
                 record["train_acc"], record["test_acc"], record["seconds"])

    out = train_zoo(config, args.output, device=device, limit=args.limit, progress=report,
                    reverse=args.reverse)
    print(f"wrote {out}")
    return 0
