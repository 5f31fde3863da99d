"""Training: the :class:`Trainer`, objectives, checkpoints and data parallelism.

Example:
    >>> from latentgraph.train import Trainer, fit, evaluate, get_objective
    >>> get_objective("classification").__name__
    'ClassificationObjective'
"""
from ..eval.accuracy import evaluate
from .objectives import available_objectives, get_objective, register_objective
from .trainer import Trainer, fit

__all__ = ["Trainer", "fit", "evaluate", "register_objective", "get_objective", "available_objectives"]
