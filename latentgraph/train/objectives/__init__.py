"""Training objectives, registered by name (see :mod:`.registry`).

Importing this package imports every objective module so that each
registers itself.
"""
from . import classification, distillation, isometric, jacobian, regularized  # noqa: F401  (registration)
from .classification import ClassificationObjective
from .registry import available_objectives, get_objective, register_objective

__all__ = ["register_objective", "get_objective", "available_objectives", "ClassificationObjective"]
