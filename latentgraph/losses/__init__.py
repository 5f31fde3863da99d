"""Training losses: one module per paper, plus the usual distillation baselines.

Every loss is an :class:`torch.nn.Module` whose ``forward`` returns a scalar;
weights in front of a loss (the papers' λ, β, γ) are applied by the objective.
"""
from .baselines import AttentionTransferLoss, KDLoss, PKTLoss, RKDLoss, SimilarityPreservingLoss
from .ega import EGALoss
from .gkd import GKDLoss
from .isometry import IsometryLoss
from .jacobian import BiasJacobianPenalty, FullJacobianMatchingLoss, InputJacobianMatchingLoss
from .label_variation import LabelVariationLoss
from .parseval import ParsevalPenalty
from .laplacian_smoothness import LaplacianSmoothnessLoss

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
    "PKTLoss",
    "ParsevalPenalty",
    "RKDLoss",
    "SimilarityPreservingLoss",
]
