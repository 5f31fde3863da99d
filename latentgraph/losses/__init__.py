"""Training losses: one module per paper, plus the usual distillation baselines.

Every loss is an :class:`torch.nn.Module` whose ``forward`` returns a scalar;
the weights in front of a loss (the papers' λ, β, γ) are not inside it: the
trainer applies each once. A distillation loss is registered next to its
class with :func:`register_loss`, whose :class:`LossRecord` (inputs, default
weight, relational, needs labels, options) is all the ``distill`` objective
and the configs read.
"""
from .baselines import AttentionTransferLoss, KDLoss, PKTLoss, RKDLoss, SimilarityPreservingLoss
from .ega import EGALoss
from .gkd import GKDLoss
from .isometry import IsometryLoss
from .jacobian import BiasJacobianPenalty, FullJacobianMatchingLoss, InputJacobianMatchingLoss
from .label_variation import LabelVariationLoss
from .laplacian_smoothness import LaplacianSmoothnessLoss
from .parseval import ParsevalPenalty
from .registry import LossRecord, available_losses, get_loss, register_loss

__all__ = [
    "AttentionTransferLoss",
    "BiasJacobianPenalty",
    "EGALoss",
    "FullJacobianMatchingLoss",
    "GKDLoss",
    "InputJacobianMatchingLoss",
    "IsometryLoss",
    "KDLoss",
    "LabelVariationLoss",
    "LaplacianSmoothnessLoss",
    "LossRecord",
    "PKTLoss",
    "ParsevalPenalty",
    "RKDLoss",
    "SimilarityPreservingLoss",
    "available_losses",
    "get_loss",
    "register_loss",
]
