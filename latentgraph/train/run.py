"""Run a whole training recipe from a :class:`~latentgraph.train.config.TrainConfig`."""
from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any, Dict, Optional

import torch
import yaml
from torch import nn
from torch.utils.data import TensorDataset

from . import checkpoint as ckpt
from .build import build_loaders, build_model, build_objective, build_optimizer, build_scheduler
from .config import MethodConfig, ModelConfig, TrainConfig
from .distributed import barrier, get_world_size, is_main_process
from ..device import model_device
from .trainer import Trainer

log = logging.getLogger("latentgraph.train")

#: Final weights of a run (a bare ``state_dict``), inside the output folder.
MODEL_FILE = "model.pt"


def _check_outputs(network: nn.Module, example: torch.Tensor, classes: Optional[int], where: str, data: str) -> None:
    """A clear error, before training, for a network that does not run on the data or (``classes``
    given) outputs fewer logits than there are labels."""
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            out = network(example[:2].to(model_device(network)))
    except RuntimeError as error:
        raise ValueError(f"{where} does not run on {data} inputs of shape {tuple(example.shape[1:])}: {error}") from None
    finally:
        network.train(was_training)
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


def run_config(config: TrainConfig, resume: bool = False, source: str = "<config>",
               progress: bool = True) -> Dict[str, Any]:
    """Train what ``config`` describes; return ``{"history", "model", "output"}``.

    Writes into ``config.output``: ``config.yaml`` (the parsed config),
    ``checkpoints/last.pt``, ``metrics.csv`` and ``model.pt`` (final
    weights). A ``teacher`` section without ``checkpoint`` first runs
    :func:`teacher_recipe` into ``<output>/teacher`` (reused when its
    ``model.pt`` exists; resumed with ``resume=True``).

    Args:
        resume (bool): continue from ``<output>/checkpoints/last.pt``.
    """
    output = Path(config.output)
    last = output / "checkpoints" / ckpt.LAST
    if resume and not last.is_file():
        teacher_last = Path(teacher_recipe(config).output) / "checkpoints" / ckpt.LAST if config.teacher else None
        if not (config.teacher is not None and config.teacher.checkpoint is None and teacher_last.is_file()):
            raise FileNotFoundError(f"cannot resume: no checkpoint {str(last)!r}; run without --resume to "
                                    f"start, or point --output at the interrupted run")
    teacher: Optional[nn.Module] = None
    if config.teacher is not None:
        teacher = build_model(ModelConfig(config.teacher.name, config.teacher.kwargs), source, "teacher")
        path = config.teacher.checkpoint
        if path is None:
            path = output / "teacher" / MODEL_FILE
            if not path.is_file():
                log.info("no teacher checkpoint given: training the teacher first into %s", path.parent)
                recipe = teacher_recipe(config)
                run_config(recipe, resume=resume and (Path(recipe.output) / "checkpoints" / ckpt.LAST).is_file(),
                           source=source, progress=progress)
        ckpt.load_model_weights(teacher, path)
        log.info("teacher %s loaded from %s", config.teacher.name, path)

    device = torch.device(config.device) if config.device else (
        None if get_world_size() > 1 else torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    if device is not None and device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{source}: device is {config.device!r} but CUDA is not available on this machine")
    train_loader, test_loader = build_loaders(config.data, config.seed)
    torch.manual_seed(config.seed)  # the model's initial weights
    model = build_model(config.model, source)
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
        output.mkdir(parents=True, exist_ok=True)
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
