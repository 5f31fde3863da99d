"""Training objectives, registered by name (see :mod:`.registry`).

Importing this package imports every objective module so that each
registers itself.
"""
from .registry import available_objectives, get_objective, register_objective
from . import classification  # noqa: F401  (registers "classification")
from .classification import ClassificationObjective

__all__ = ["register_objective", "get_objective", "available_objectives", "ClassificationObjective"]
