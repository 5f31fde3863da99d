"""Reference networks with named blocks, so layers can be picked by name."""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .cifar import CIFAR_MODELS, VGG, PreActResNet18, ResNet18, WideResNet
from .lil import LevelOutput, LILBlock, LILClassifier, StackedLIL
from .small import MLP, SmallCNN

#: Name → constructor, for configs and the command line.
MODELS: dict[str, Callable[..., nn.Module]] = {
    "small_cnn": SmallCNN,
    "mlp": MLP,
    "lil_classifier": LILClassifier,
    **CIFAR_MODELS,
}


def build_model(name: str, **kwargs) -> nn.Module:
    """Build the network registered as ``name`` in :data:`MODELS` with ``kwargs``.

    Example:
        >>> type(build_model("wrn", depth=16, width=0.5)).__name__
        'WideResNet'
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    try:
        return MODELS[name](**kwargs)
    except TypeError as error:
        raise TypeError(f"bad arguments for model {name!r}: {error}") from None


__all__ = [
    "MLP",
    "MODELS",
    "LILBlock",
    "LILClassifier",
    "LevelOutput",
    "PreActResNet18",
    "ResNet18",
    "SmallCNN",
    "StackedLIL",
    "VGG",
    "WideResNet",
    "build_model",
]
