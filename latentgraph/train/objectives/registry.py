"""Name → objective class table, filled by :func:`register_objective`.

An *objective* is a callable ``objective(model, batch) -> dict[str, Tensor]``
returning named scalar loss terms; the :class:`~latentgraph.train.Trainer`
sums them with their weights and logs each one. Objectives are registered
once under a name so that a config can pick one by name.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_OBJECTIVES: dict[str, type] = {}


def register_objective(name: str) -> Callable[[T], T]:
    r"""Class decorator registering an objective under ``name``.

    Args:
        name (str): the name a config uses in ``method.name``.

    Example:
        >>> from latentgraph.train.objectives import register_objective, get_objective
        >>> @register_objective("doc_example")
        ... class Example:
        ...     def __call__(self, model, batch):
        ...         return {}
        >>> get_objective("doc_example") is Example
        True
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"objective name must be a non-empty string, got {name!r}")

    def decorator(cls: T) -> T:
        if name in _OBJECTIVES and _OBJECTIVES[name] is not cls:
            raise ValueError(f"objective {name!r} is already registered by {_OBJECTIVES[name].__qualname__}")
        _OBJECTIVES[name] = cls
        return cls

    return decorator


def get_objective(name: str) -> type:
    """Return the objective class registered under ``name``.

    Raises:
        ValueError: if no objective has that name; the message lists the
            registered ones.
    """
    try:
        return _OBJECTIVES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown objective {name!r}; registered objectives: {', '.join(available_objectives())}"
        ) from None


def available_objectives() -> list[str]:
    """Sorted names of the registered objectives."""
    return sorted(_OBJECTIVES)
