r"""Predicting generalization from training data.

:func:`complexity` computes any measure of :data:`MEASURES` for a trained
model from its training data (higher = larger predicted generalization gap):
latent-graph measures (label variation of the training data's latent
geometry graphs, clean, over depth, under mixup or noise) and baselines from
the literature (margin, norms, path norm, PAC-Bayes flatness, input-gradient
norm, Davies–Bouldin with mixup). :func:`train_zoo` trains a zoo of models
whose hyperparameters vary; :func:`kendall_tau`, :func:`granulated_tau` and
:func:`conditional_mutual_information` say how well a measure ranks them;
:func:`rank_zoo` does it all for a zoo. See docs/generalization.md.
"""
from . import variation, output, norms, flatness, clustering  # noqa: F401, I001  (registers the measures, in table order)
from .networks import ZooNet
from .ranking import conditional_mutual_information, granulated_tau, kendall_tau
from .registry import MEASURES, Context, Measure, complexity, register
from .zoo import Zoo, ZooConfig, ZooModel, load_zoo, load_zoo_config, train_zoo

__all__ = [
    "MEASURES",
    "Context",
    "Measure",
    "Zoo",
    "ZooConfig",
    "ZooModel",
    "ZooNet",
    "complexity",
    "conditional_mutual_information",
    "granulated_tau",
    "kendall_tau",
    "load_zoo",
    "load_zoo_config",
    "register",
    "train_zoo",
]
