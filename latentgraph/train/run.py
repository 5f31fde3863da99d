"""Run a whole training recipe from a :class:`~latentgraph.train.config.TrainConfig`."""
from __future__ import annotations

import dataclasses
import datetime
import logging
import os
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from torch.utils.data import TensorDataset

from . import checkpoint as ckpt
from .build import build_loaders, build_objective, build_optimizer, build_scheduler, model_from_config
from ..outputs import check_output_dir
from ..validation import check_flag
from .config import MethodConfig, ModelConfig, TrainConfig, parse_config
from .distributed import barrier, is_main_process
from ..device import model_device, resolve_device
from ..eval.accuracy import eval_mode
from .trainer import Trainer

log = logging.getLogger("latentgraph.train")

#: Final weights of a run (a bare ``state_dict``), inside the output folder.
MODEL_FILE = "model.pt"


def _check_outputs(network: nn.Module, example: torch.Tensor, classes: int | None, where: str, data: str) -> None:
    """A clear error, before training, for a network that does not run on the data or (``classes``
    given) outputs fewer logits than there are labels."""
    try:
        with eval_mode(network), torch.no_grad():
            out = network(example[:2].to(model_device(network)))
    except RuntimeError as error:
        raise ValueError(f"{where} does not run on {data} inputs of shape {tuple(example.shape[1:])}: {error}") from None
    if classes is not None and (not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] < classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{where} must output one logit per class, B×{classes} for the labels 0..{classes - 1} of "
                         f"{data}, got {shape}; set num_classes: {classes} in its kwargs")


def teacher_recipe(config: TrainConfig) -> TrainConfig:
    """The run that trains the configured teacher first: the same data,
    optimizer, schedule, epochs and seed, cross-entropy only, written to
    ``<output>/teacher``."""
    if config.teacher is None:
        raise ValueError("the config has no teacher section")
    return dataclasses.replace(
        config, model=ModelConfig(config.teacher.name, dict(config.teacher.kwargs)), teacher=None,
        method=MethodConfig("classification"), output=os.path.join(config.output, "teacher"),
    )


#: Config keys a resumed run may change; any other difference from the run's ``config.yaml`` is refused.
RESUMABLE = ("epochs", "device", "checkpoint_every", "distributed_timeout", "data.num_workers",
             "data.eval_batch_size")
#: Log of the changes applied on resume, inside the output folder.
CHANGES_FILE = "resumes.log"


def config_changes(before: TrainConfig, after: TrainConfig) -> list[tuple[str, Any, Any]]:
    """``(key, old, new)`` for every config value that differs (``output`` excluded: a run may move).

    Example:
        >>> from latentgraph.train.config import DataConfig
        >>> a = TrainConfig(DataConfig("digits"), ModelConfig("small_cnn"))
        >>> config_changes(a, dataclasses.replace(a, seed=1, epochs=3))
        [('seed', 0, 1), ('epochs', 10, 3)]
    """
    old, new = _flatten(before.to_dict()), _flatten(after.to_dict())
    return [(key, old.get(key), new.get(key)) for key in dict.fromkeys([*old, *new])
            if key != "output" and old.get(key) != new.get(key)]


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key not in ("kwargs", "weights"):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _check_resumable(config: TrainConfig, output: Path) -> list[tuple[str, Any, Any]]:
    """The allowed changes of a resume, or a ValueError listing the refused ones."""
    saved = output / "config.yaml"
    if not saved.is_file():
        log.warning("%s has no config.yaml: cannot check that the resumed run uses the same recipe", output)
        return []
    try:
        before = parse_config(yaml.safe_load(saved.read_text()), source=str(saved))
    except (ValueError, TypeError, yaml.YAMLError) as error:
        raise ValueError(f"cannot resume: the run's own config {str(saved)!r} does not load ({error})") from None
    changes = config_changes(before, config)
    refused = [c for c in changes if c[0] not in RESUMABLE]
    if refused:
        shown = "; ".join(f"{key} {old!r} -> {new!r}" for key, old, new in refused)
        raise ValueError(
            f"cannot resume {str(output)!r} with a changed recipe ({shown}): the checkpoint continues the run "
            f"described by {str(saved)!r}. Resume with that config, or start a new run with --overwrite or "
            f"another --output (a resume may change only {', '.join(RESUMABLE)})")
    return changes


def _check_fresh(output: Path, overwrite: bool) -> bool:
    """Refuse to start a new run over an existing one unless ``overwrite``; return whether one exists."""
    existing = [name for name in (f"checkpoints/{ckpt.LAST}", MODEL_FILE) if (output / name).is_file()]
    if existing and not overwrite:
        raise ValueError(f"{str(output)!r} already holds a run ({', '.join(existing)}); continue it with --resume, "
                         f"replace it with --overwrite, or choose another --output")
    return bool(existing)


def run_config(config: TrainConfig, resume: bool = False, source: str = "<config>",
               progress: bool = True, overwrite: bool = False) -> dict[str, Any]:
    """Train what ``config`` describes; return ``{"history", "model", "output"}``.

    Writes into ``config.output``: ``config.yaml`` (the parsed config),
    ``checkpoints/last.pt``, ``metrics.csv`` and ``model.pt`` (final
    weights). A ``teacher`` section without ``checkpoint`` first runs
    :func:`teacher_recipe` into ``<output>/teacher`` (reused when its
    ``model.pt`` exists; resumed with ``resume=True``).

    The output folder is checked before any work. A new run into a folder
    that holds one (``checkpoints/last.pt`` or ``model.pt``) is refused
    unless ``overwrite``. A resumed run must use the recipe of the run's
    ``config.yaml``: only the keys in :data:`RESUMABLE` may change (each
    change is logged and appended to ``resumes.log``); any other difference
    is a :class:`ValueError` listing it. Temporaries left by a killed write
    are removed.

    Args:
        resume (bool): continue from ``<output>/checkpoints/last.pt``.
        overwrite (bool): start a new run even where one exists, deleting its
            checkpoint, weights and metrics first (a trained ``teacher/model.pt``
            is still reused).
    """
    resume = check_flag(resume, "resume")
    progress = check_flag(progress, "progress")
    overwrite = check_flag(overwrite, "overwrite")
    output = Path(config.output)
    last = output / "checkpoints" / ckpt.LAST
    if resume and not last.is_file():
        teacher_last = Path(teacher_recipe(config).output) / "checkpoints" / ckpt.LAST if config.teacher else None
        if not (config.teacher is not None and config.teacher.checkpoint is None and teacher_last.is_file()):
            raise FileNotFoundError(f"cannot resume: no checkpoint {str(last)!r}; run without --resume to "
                                    f"start, or point --output at the interrupted run")
    device = resolve_device(config.device, where=f"{source}: device")  # refused before any work if absent
    check_output_dir(output, "output folder")
    changes = _check_resumable(config, output) if resume else []
    replaced = not resume and _check_fresh(output, overwrite)
    if is_main_process():
        ckpt.remove_stale_temporaries(output / "checkpoints", [ckpt.LAST])
        ckpt.remove_stale_temporaries(output, ["config.yaml", "metrics.csv", MODEL_FILE, CHANGES_FILE])
    teacher: nn.Module | None = None
    if config.teacher is not None:
        teacher = model_from_config(ModelConfig(config.teacher.name, config.teacher.kwargs), source, "teacher")
        path = config.teacher.checkpoint
        if path is None:
            path = output / "teacher" / MODEL_FILE
            if not path.is_file():
                log.info("no teacher checkpoint given: training the teacher first into %s", path.parent)
                recipe = teacher_recipe(config)
                run_config(recipe, resume=resume and (Path(recipe.output) / "checkpoints" / ckpt.LAST).is_file(),
                           source=source, progress=progress, overwrite=overwrite)
        ckpt.load_model_weights(teacher, path)
        log.info("teacher %s loaded from %s", config.teacher.name, path)

    train_loader, test_loader = build_loaders(config.data, config.seed)
    torch.manual_seed(config.seed)  # the model's initial weights
    model = model_from_config(config.model, source)
    example = next(iter(train_loader))[0][:8]
    dataset = train_loader.dataset
    labels = dataset.tensors[1] if isinstance(dataset, TensorDataset) else getattr(dataset, "y", None)
    classes = int(labels.max()) + 1 if isinstance(labels, torch.Tensor) and labels.numel() else None
    # the teacher and a plainly classified model must give one logit per class; other objectives may
    # train embeddings of any width, so for them only check that the model runs on the data
    _check_outputs(model, example, classes if config.method.name == "classification" else None,
                   f"{source}: model", config.data.name)
    if teacher is not None:
        _check_outputs(teacher, example, classes, f"{source}: teacher", config.data.name)
    objective = build_objective(config.method, model, teacher, example, source)
    trainer = Trainer(
        model, objective, build_optimizer(config.optim), scheduler=build_scheduler(config.schedule, config.epochs),
        weights=config.method.weights, device=device, checkpoint_dir=output / "checkpoints",
        checkpoint_every=config.checkpoint_every, log_dir=output, seed=config.seed, progress=progress,
        bn_recalibration=config.bn_recalibration,
    )
    if is_main_process():
        if replaced:  # nothing of the old run may be mistaken for the new one's
            log.warning("--overwrite: replacing the run in %s", output)
            for name in (f"checkpoints/{ckpt.LAST}", MODEL_FILE, "metrics.csv", CHANGES_FILE):
                (output / name).unlink(missing_ok=True)
        if changes:
            shown = ", ".join(f"{key} {old!r} -> {new!r}" for key, old, new in changes)
            log.warning("resuming with changed %s", shown)
            with open(output / CHANGES_FILE, "a") as record:
                record.write(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%dT%H:%M:%SZ} resumed with "
                             f"{shown}\n")
        ckpt.write_text_atomic(output / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
        log.info("training %s (%d parameters) with %r for %d epochs on %s, output %s", config.model.name,
                 sum(p.numel() for p in model.parameters()), config.method.name, config.epochs, trainer.device, output)
    if resume and not last.is_file():
        log.info("no student checkpoint yet (the run stopped while training the teacher): starting the student")
    history = trainer.fit(train_loader, config.epochs, eval_loader=test_loader,
                          resume=last if resume and last.is_file() else None)
    if is_main_process():
        ckpt.save_atomic(model.state_dict(), output / MODEL_FILE)
    barrier()  # other ranks may read model.pt next (a teacher trained first)
    return {"history": history, "model": model, "output": output}
