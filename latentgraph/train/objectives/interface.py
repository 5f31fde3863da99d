r"""What the :class:`~latentgraph.train.Trainer` asks of an objective, as :class:`typing.Protocol` s.

An objective is any callable ``objective(model, batch) -> {name: scalar tensor}``
(:class:`Objective`) returning raw, unweighted terms; the trainer sums them
with their weights (:func:`weighted_sum`), applying each weight once, and logs
the raw and the weighted value of each. Three parts are optional, each its
own protocol, checked with ``isinstance``:

* :class:`WeightedObjective` — ``weights``, the default weight of each term
  (the papers' λ, β, γ; a term not named weighs 1), which the trainer's
  ``weights`` override;
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


@runtime_checkable
class WeightedObjective(Objective, Protocol):
    """An objective that declares the default weight of its terms."""

    weights: Mapping[str, float]


def term_weights(objective: Objective, overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """The weight of each term: the objective's :attr:`~WeightedObjective.weights`,
    replaced (not multiplied) by ``overrides``.

    Example:
        >>> class Toy:
        ...     weights = {"a": 25.0, "b": 2.0}
        ...     def __call__(self, model, batch):
        ...         return {}
        >>> term_weights(Toy(), {"b": 3.0})
        {'a': 25.0, 'b': 3.0}
    """
    defaults = dict(objective.weights) if isinstance(objective, WeightedObjective) else {}
    return {**defaults, **(overrides or {})}


def weighted_sum(terms: Mapping[str, Tensor], weights: Mapping[str, float]) -> Tensor:
    r""":math:`\sum_n w_n \, \text{terms}[n]` with :math:`w_n` = ``weights.get(n, 1)``.

    Example:
        >>> import torch
        >>> weighted_sum({"ce": torch.tensor(2.0), "gkd": torch.tensor(0.5)}, {"gkd": 4.0})
        tensor(4.)
    """
    return sum(weights.get(name, 1.0) * term.reshape(()) for name, term in terms.items())
