r"""What the :class:`~latentgraph.train.Trainer` asks of an objective, as :class:`typing.Protocol` s.

An objective is any callable ``objective(model, batch) -> {name: scalar tensor}``
(:class:`Objective`); the trainer sums the named terms with their weights and
logs each one. Two hooks are optional, each its own protocol, checked with
``isinstance``:

* :class:`SteppedObjective` — ``after_step(model)``, called under
  :func:`torch.no_grad` right after every optimizer step (Parseval's
  retraction of the weights);
* :class:`MeasuredObjective` — ``metrics(model, loader) -> {name: float}``,
  evaluated after each epoch with the model in eval mode and logged as
  ``eval/<name>`` (teacher–student agreement).

An objective that is also an :class:`~torch.nn.Module` has its trainable
parameters optimized with the model's and its state checkpointed.

Example:
    >>> import torch
    >>> class Toy:
    ...     def __call__(self, model, batch):
    ...         return {"mse": (model(batch[0]) - batch[1]).pow(2).mean()}
    >>> isinstance(Toy(), Objective), isinstance(Toy(), SteppedObjective)
    (True, False)
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from torch import Tensor, nn


@runtime_checkable
class Objective(Protocol):
    """``objective(model, batch)`` returns the named scalar loss terms of one batch."""

    def __call__(self, model: nn.Module, batch: Any) -> Mapping[str, Tensor]: ...


@runtime_checkable
class SteppedObjective(Objective, Protocol):
    """An objective with a hook run after every optimizer step."""

    def after_step(self, model: nn.Module) -> None: ...


@runtime_checkable
class MeasuredObjective(Objective, Protocol):
    """An objective with its own evaluation metrics."""

    def metrics(self, model: nn.Module, loader: Any) -> Mapping[str, float]: ...
