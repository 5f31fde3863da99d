"""``latentgraph train``: train (or distil into) a model from a YAML config.

``latentgraph train --config configs/distill/gkd.yaml`` builds the data,
networks, objective, optimizer and schedule the file describes
(:mod:`latentgraph.train.config`), trains with
:class:`~latentgraph.train.Trainer` and writes ``config.yaml``,
``metrics.csv``, ``checkpoints/last.pt`` and ``model.pt`` to the output
folder. ``--resume`` continues an interrupted run exactly. Under
``torchrun`` every process runs the same command (data parallel).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging

HELP = "train a model, or distil a teacher into it, from a YAML config (see docs/training.md)"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``latentgraph train`` to ``parser``."""
    parser.add_argument("--config", required=True, metavar="FILE", help="YAML run configuration")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUTPUT/checkpoints/last.pt (model, optimizer, schedule, random state)")
    parser.add_argument("--output", metavar="DIR", help="output folder (overrides `output` in the config)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start a new run even where the output folder holds one (its checkpoint, weights "
                             "and metrics are deleted; a trained teacher/model.pt is reused)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bars")


def run(args: argparse.Namespace) -> int:
    """Run ``latentgraph train``; returns 0 on success."""
    from ..train.config import load_config
    from ..train.distributed import init_from_env, is_main_process, lost_rank_message
    from ..train.run import run_config

    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in the output folder and --overwrite replaces it; give one")
    config = load_config(args.config)
    if args.output:
        config = dataclasses.replace(config, output=args.output)
    distributed = init_from_env(config.distributed_timeout)
    main = is_main_process()
    if not main:  # one log, from rank 0
        logging.getLogger("latentgraph").setLevel(logging.WARNING)
    try:
        result = run_config(config, resume=args.resume, source=args.config, progress=args.progress,
                            overwrite=args.overwrite)
    except RuntimeError as error:
        message = lost_rank_message(error) if distributed else None
        if message is None:
            raise
        logging.getLogger("latentgraph").error("%s", message)
        return 1
    except KeyboardInterrupt:
        if main:
            logging.getLogger("latentgraph").warning(
                "stopped; continue with: latentgraph train --config %s --output %s --resume",
                args.config, config.output)
        raise
    finally:
        if distributed:
            import torch.distributed as dist

            dist.destroy_process_group()
    if main and result["history"]:
        last = result["history"][-1]
        shown = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k.startswith(("train/", "eval/")))
        print(f"epoch {last['epoch']}: {shown}")
        print(f"wrote {result['output']}")
    return 0
