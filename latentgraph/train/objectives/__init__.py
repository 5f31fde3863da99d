"""Training objectives, registered by name (see :mod:`.registry`), one module per method
as in :mod:`latentgraph.losses`.

Importing this package imports every objective module so that each
registers itself.
"""
from .classification import ClassificationObjective
from .distillation import DistillationObjective
from .isometric import IsometricObjective, StackedIsometricObjective
from .jacobian import BiasJacobianObjective, JacobianDistillationObjective
from .label_variation import LabelVariationObjective
from .laplacian_smoothness import LaplacianSmoothnessObjective
from .parseval import ParsevalObjective
from .registry import available_objectives, get_objective, register_objective

__all__ = [
    "BiasJacobianObjective",
    "ClassificationObjective",
    "DistillationObjective",
    "IsometricObjective",
    "JacobianDistillationObjective",
    "LabelVariationObjective",
    "LaplacianSmoothnessObjective",
    "ParsevalObjective",
    "StackedIsometricObjective",
    "available_objectives",
    "get_objective",
    "register_objective",
]
