"""Robustness: adversarial attacks, common corruptions, CIFAR-10-C, CE / mCE.

Example:
    >>> from latentgraph import robustness
    >>> sorted(robustness.ATTACKS)
    ['fgsm', 'pgd']
"""
from latentgraph.eval.accuracy import error_rate, eval_mode, predict
from latentgraph.robustness.attacks import (
    ATTACKS,
    accuracy_curve,
    accuracy_under_attack,
    cross_entropy_loss,
    fgsm,
    input_gradient,
    pgd,
)
from latentgraph.robustness.cifar_c import (
    CIFAR10C_CORRUPTIONS,
    CIFAR10C_EXTRA,
    available_corruptions,
    cifar10c_errors,
    load_cifar10c,
)
from latentgraph.robustness.corruptions import CORRUPTIONS, SEVERITIES, corrupt, corruption_names
from latentgraph.robustness.metrics import (
    corruption_error,
    corruption_errors,
    mce,
    relative_corruption_error,
    relative_mce,
)
from latentgraph.viz.robustness import plot_accuracy_curves, plot_corruption_errors  # the plots live in viz/

__all__ = [
    "ATTACKS",
    "CIFAR10C_CORRUPTIONS",
    "CIFAR10C_EXTRA",
    "CORRUPTIONS",
    "SEVERITIES",
    "accuracy_curve",
    "accuracy_under_attack",
    "available_corruptions",
    "cifar10c_errors",
    "corrupt",
    "corruption_error",
    "corruption_errors",
    "corruption_names",
    "cross_entropy_loss",
    "error_rate",
    "eval_mode",
    "fgsm",
    "input_gradient",
    "load_cifar10c",
    "mce",
    "pgd",
    "plot_accuracy_curves",
    "plot_corruption_errors",
    "predict",
    "relative_corruption_error",
    "relative_mce",
]
