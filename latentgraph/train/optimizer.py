"""Assembling the optimizer of a run from the model's and the objective's parameters."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn


def trainable_parameters(params: Iterable[nn.Parameter]) -> list[nn.Parameter]:
    """The parameters that require a gradient, each once, in first-seen order.

    Example:
        >>> model = nn.Linear(2, 2)
        >>> model.bias.requires_grad_(False)
        Parameter containing:
        tensor([...])
        >>> [p.shape for p in trainable_parameters([*model.parameters(), model.weight])]
        [torch.Size([2, 2])]
    """
    seen, out = set(), []
    for p in params:
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def assemble_optimizer(optimizer: Any, params: list[nn.Parameter], scheduler: Any) -> torch.optim.Optimizer:
    """The optimizer of a run over ``params`` (the model's and the objective's trainable parameters).

    ``optimizer`` is an optimizer (the parameters it lacks are added as a new
    param group, unless ``scheduler`` is an already-built scheduler on it) or a
    factory ``params -> Optimizer``.

    Example:
        >>> model = nn.Linear(2, 2)
        >>> opt = assemble_optimizer(lambda ps: torch.optim.SGD(ps, lr=0.1), list(model.parameters()), None)
        >>> len(opt.param_groups[0]["params"])
        2
    """
    if isinstance(optimizer, torch.optim.Optimizer):
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        missing = [p for p in params if id(p) not in held]
        if missing:
            if scheduler is not None and hasattr(scheduler, "state_dict"):
                raise ValueError(
                    f"the optimizer lacks {len(missing)} trainable parameter(s) of the model or objective and a "
                    f"scheduler was already built on it; build the optimizer over both, or pass factories "
                    f"(optimizer=lambda params: ..., scheduler=lambda opt: ...)"
                )
            optimizer.add_param_group({"params": missing})
        return optimizer
    if callable(optimizer):
        built = optimizer(params)
        if not isinstance(built, torch.optim.Optimizer):
            raise TypeError(f"the optimizer factory returned {type(built).__name__}, not a torch.optim.Optimizer")
        return built
    raise TypeError(f"`optimizer` must be a torch.optim.Optimizer or a function params -> Optimizer, "
                    f"got {type(optimizer).__name__}")
