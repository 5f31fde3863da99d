r"""One record per loss: what it compares, its default weight, its options.

A loss that one network learns from another (distillation) is registered
once, next to its class, with :func:`register_loss`::

    @register_loss("gkd", inputs="layers", weight=25.0, relational=True, needs_labels=True)
    class GKDLoss(nn.Module):
        ...

The :class:`LossRecord` says everything the ``distill`` objective
(:class:`~latentgraph.train.objectives.distillation.DistillationObjective`)
and a YAML config need to use it, so a new loss is one class plus one
decorator:

* ``inputs`` — what the loss compares: ``"logits"`` (the two networks'
  outputs), ``"layers"`` (lists of matched layer outputs) or ``"embedding"``
  (exactly one matched layer pair, flattened to ``B×D``);
* ``weight`` — the default :math:`\lambda` in front of the term (the
  paper's setting), applied once by the trainer;
* ``relational`` — it compares samples of the batch with each other, so
  under ``torchrun`` it may see the batch of all ranks (``gather``);
* ``needs_labels`` — ``forward`` takes the labels as a third argument;
* ``widths`` — the constructor takes ``student_dim`` / ``teacher_dim``
  (projection heads, and ``num_classes`` if it takes it), which the objective
  fills in from the networks when ``proj_dim`` is set;
* :attr:`LossRecord.options` — the option schema, read from the
  constructor's signature: name → default.

A loss that trains a part of its own with a separate signal (EGA's teacher
head) also implements :class:`AuxiliaryLoss`; the objective adds its
``auxiliary_terms`` as ``<name>_<key>`` terms of weight 1.

Example:
    >>> from latentgraph.losses import get_loss
    >>> record = get_loss("gkd")
    >>> record.inputs, record.weight, record.relational, record.needs_labels
    ('layers', 25.0, True, True)
    >>> record.options
    {'k': None, 'power': 1, 'edges': 'all'}
"""
from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from torch import Tensor, nn

#: What a loss may compare.
INPUTS = ("logits", "layers", "embedding")

#: Marks a required option (no default) in :attr:`LossRecord.options`.
REQUIRED = inspect.Parameter.empty

L = TypeVar("L", bound=type)

_LOSSES: dict[str, LossRecord] = {}


@dataclass(frozen=True)
class LossRecord:
    """The registration of one loss (see the module's docstring)."""

    name: str
    cls: type[nn.Module]
    inputs: str
    weight: float = 1.0
    relational: bool = False
    needs_labels: bool = False
    widths: bool = False

    @property
    def options(self) -> dict[str, Any]:
        """The option schema: each constructor keyword and its default (:data:`REQUIRED` if none)."""
        return {name: p.default for name, p in inspect.signature(self.cls).parameters.items()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

    def build(self, options: Mapping[str, Any] | None = None) -> nn.Module:
        """The loss module with ``options``; an unknown option or a bad value is a
        :class:`ValueError` naming the method and the options it knows."""
        options = dict(options or {})
        known = self.options
        for key in options:
            if key not in known:
                close = difflib.get_close_matches(str(key), list(known), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ValueError(f"bad options for method {self.name!r}: unknown option {key!r} "
                                 f"({hint}options: {', '.join(known) or 'none'})")
        try:
            return self.cls(**options)
        except (TypeError, ValueError) as err:
            raise ValueError(f"bad options for method {self.name!r}: {err}") from None


@runtime_checkable
class AuxiliaryLoss(Protocol):
    """A registered loss with extra terms of its own (``student``, ``teacher`` as given to
    ``forward``, ``y`` the labels)."""

    def auxiliary_terms(self, student: Any, teacher: Any, y: Tensor) -> dict[str, Tensor]: ...


def register_loss(name: str, *, inputs: str, weight: float = 1.0, relational: bool = False,
                  needs_labels: bool = False, widths: bool = False) -> Callable[[L], L]:
    """Class decorator registering a loss under ``name`` with its :class:`LossRecord`;
    the record is also the class attribute ``record``.

    Args:
        name (str): the key a ``losses`` dict (Python or YAML) uses.
        inputs (str): ``"logits"``, ``"layers"`` or ``"embedding"``.
        weight (float): default :math:`\\lambda`, ≥ 0. (default: :obj:`1.0`)
        relational (bool): compares samples with each other. (default: :obj:`False`)
        needs_labels (bool): ``forward(student, teacher, y)``. (default: :obj:`False`)
        widths (bool): takes ``student_dim`` / ``teacher_dim``. (default: :obj:`False`)

    Example:
        >>> import torch
        >>> @register_loss("doc_l1", inputs="logits", weight=0.5)
        ... class L1(torch.nn.Module):
        ...     def forward(self, student, teacher):
        ...         return (student - teacher).abs().mean()
        >>> get_loss("doc_l1").weight, L1.record.inputs
        (0.5, 'logits')
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"loss name must be a non-empty string, got {name!r}")
    if inputs not in INPUTS:
        raise ValueError(f"`inputs` must be one of {', '.join(map(repr, INPUTS))}; got {inputs!r}")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
        raise ValueError(f"`weight` must be a finite number ≥ 0, got {weight!r}")
    for flag, value in (("relational", relational), ("needs_labels", needs_labels), ("widths", widths)):
        if not isinstance(value, bool):
            raise TypeError(f"`{flag}` must be a bool, got {type(value).__name__}")
    if widths and inputs == "logits":
        raise ValueError("`widths` (projection heads on layer outputs) needs inputs 'layers' or 'embedding'")

    def decorator(cls: L) -> L:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"register_loss({name!r}) decorates a torch.nn.Module subclass, got {cls!r}")
        if name in _LOSSES and _LOSSES[name].cls.__qualname__ != cls.__qualname__:
            raise ValueError(f"loss {name!r} is already registered by {_LOSSES[name].cls.__qualname__}")
        record = LossRecord(name, cls, inputs, float(weight), relational, needs_labels, widths)
        _LOSSES[name] = record
        cls.record = record
        return cls

    return decorator


def get_loss(name: str) -> LossRecord:
    """The record registered under ``name``; an unknown name is a :class:`ValueError`
    listing the registered ones."""
    try:
        return _LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown distillation method {name!r}; available: {', '.join(available_losses())}") from None


def available_losses() -> list[str]:
    """Registered loss names, in registration order."""
    return list(_LOSSES)
