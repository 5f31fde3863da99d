"""Turn a :class:`~latentgraph.train.config.TrainConfig` into data loaders,
networks, an objective, an optimizer and a schedule."""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..models import MODELS
from ..models import build_model
from .config import DataConfig, MethodConfig, ModelConfig, OptimConfig, ScheduleConfig
from .objectives import get_objective
from .objectives.interface import term_weights


def model_from_config(config: ModelConfig, source: str = "<config>", key: str = "model") -> nn.Module:
    """Instantiate ``MODELS[config.name](**config.kwargs)`` (:func:`latentgraph.models.build_model`),
    errors naming ``key`` and the config file ``source``."""
    if config.name not in MODELS:
        raise ValueError(f"{source}: {key}.name must be one of {', '.join(sorted(MODELS))}; got {config.name!r}")
    try:
        return build_model(config.name, **config.kwargs)
    except TypeError as error:
        raise ValueError(f"{source}: bad {key}.kwargs for {config.name!r}: {error}") from None
    except (MemoryError, RuntimeError) as error:  # torch's allocator reports a failed allocation as RuntimeError
        if not isinstance(error, MemoryError) and "allocate" not in str(error):
            raise
        raise ValueError(f"{source}: {key} {config.name!r} with {key}.kwargs {config.kwargs} does not fit in "
                         f"memory ({str(error).strip().splitlines()[0][:160]})") from None


def build_loaders(config: DataConfig, seed: int) -> tuple[DataLoader, DataLoader]:
    """Training loader (shuffled with ``seed``) and test loader for ``config``."""
    from ..data import load_digits, load_mnist5k, per_class_subset

    if config.name in ("digits", "mnist5k"):
        split = (load_digits if config.name == "digits" else load_mnist5k)(seed=config.split_seed)
        x, y = split.x_train, split.y_train
        if config.per_class is not None:
            x, y = per_class_subset(x, y, config.per_class, seed=config.split_seed)
        train, test = TensorDataset(x, y), TensorDataset(split.x_test, split.y_test)
    else:
        from ..data.cifar import NORMALIZATION, CIFARDataset, load_cifar

        x, y = load_cifar(config.root, config.name, train=True)
        if config.per_class is not None:  # select indices with the shared per-class rule
            index, _ = per_class_subset(torch.arange(len(y), dtype=torch.float32)[:, None], y, config.per_class,
                                        seed=config.split_seed)
            keep = index[:, 0].long()
            x, y = x[keep], y[keep]
        mean, std = NORMALIZATION[config.name]
        x_test, y_test = load_cifar(config.root, config.name, train=False)
        train = CIFARDataset(x, y, augment=config.augment, mean=mean, std=std)
        test = CIFARDataset(x_test, y_test, augment=False, mean=mean, std=std)
    common = {"num_workers": config.num_workers, "pin_memory": torch.cuda.is_available()}
    train_loader = DataLoader(train, batch_size=config.batch_size, shuffle=True,
                              generator=torch.Generator().manual_seed(seed), **common)
    test_loader = DataLoader(test, batch_size=config.eval_batch_size, shuffle=False, **common)
    return train_loader, test_loader


def build_objective(config: MethodConfig, model: nn.Module, teacher: nn.Module | None, example_input: torch.Tensor,
                    source: str = "<config>") -> Any:
    """Instantiate the registered objective ``config.name`` with ``config.kwargs``.

    A term's weight may be set in ``method.weights`` or by the objective's own
    option (``method.kwargs``: ``beta``, ``losses.<name>.weight``, ...), not
    both: that is a :class:`ValueError` saying where the weight moved.

    Constructor parameters named ``teacher``, ``student`` and
    ``example_input`` are filled in with the teacher network, the trained
    model and a small batch of training inputs when the objective takes them
    and the config does not set them (whether a method needs a teacher is
    checked when the config is loaded).
    """
    cls = get_objective(config.name)
    kwargs = dict(config.kwargs)
    accepted = inspect.signature(cls).parameters
    for name, value in (("teacher", teacher), ("student", model), ("example_input", example_input)):
        if name in accepted and name not in kwargs:
            kwargs[name] = value
    try:
        objective = cls(**kwargs)
    except TypeError as error:
        raise ValueError(f"{source}: bad method.kwargs for {config.name!r}: {error}") from None
    _check_weights_set_once(config, objective, source)
    return objective


def _check_weights_set_once(config: MethodConfig, objective: Any, source: str) -> None:
    """A term's weight lives in one place. Objectives once applied their own λ (``beta``,
    ``losses.gkd.weight``, ...) and the trainer multiplied ``method.weights`` on top; now the
    trainer applies one weight per term, so a config setting both gets an error saying where."""
    defaults = term_weights(objective)
    for term, path in getattr(objective, "weight_options", {}).items():
        if term not in config.weights or not _has_option(config.kwargs, path):
            continue
        product = defaults.get(term, 1.0) * config.weights[term]
        raise ValueError(
            f"{source}: the weight of term {term!r} is set twice, by method.kwargs.{path} and by "
            f"method.weights.{term}; they used to multiply, but the trainer now applies one weight per term: "
            f"keep one of them (method.weights.{term}: {product:g} gives the old effective weight)"
        )


def _has_option(kwargs: Any, path: str) -> bool:
    for key in path.split("."):
        if not isinstance(kwargs, dict) or key not in kwargs:
            return False
        kwargs = kwargs[key]
    return True


def build_optimizer(config: OptimConfig) -> Callable[[list], torch.optim.Optimizer]:
    """A factory ``params -> Optimizer`` (the trainer adds the objective's parameters)."""
    if config.name == "sgd":
        return lambda params: torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                                              weight_decay=config.weight_decay, nesterov=config.nesterov)
    return lambda params: torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def build_scheduler(config: ScheduleConfig, epochs: int) -> Callable[[torch.optim.Optimizer], Any] | None:
    """A factory ``optimizer -> scheduler`` stepped once per epoch, or ``None``."""
    if config.name == "multistep":
        return lambda opt: torch.optim.lr_scheduler.MultiStepLR(opt, milestones=config.milestones, gamma=config.gamma)
    if config.name == "cosine":
        return lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    return None

