r"""Locally Isometric Layers (LIL): tanh MLP blocks whose last hidden
representation is trained to preserve within-class input distances, a
classifier built on one block, and hierarchical stacks of blocks.

The isometry term itself is :class:`latentgraph.losses.isometry.IsometryLoss`;
the objectives that combine it with cross-entropy live in
:mod:`latentgraph.train.objectives.isometric`.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

__all__ = ["LILBlock", "LILClassifier", "StackedLIL", "LevelOutput"]


def _check_width(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{name}` must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"`{name}` must be at least 1, got {value}")
    return value


def _check_widths(values: object, name: str) -> tuple[int, ...]:
    if not isinstance(values, Sequence) or isinstance(values, str) or len(values) == 0:
        raise ValueError(f"`{name}` must be a non-empty sequence of ints, got {values!r}")
    return tuple(_check_width(v, name) for v in values)


class LILBlock(nn.Sequential):
    r"""A locally isometric layer block: flatten, then ``len(hidden)`` fully
    connected layers each followed by :math:`\tanh`.

    Submodules are named ``flatten``, ``fc1``, ``act1``, ``fc2``, ``act2``, …;
    the block's output (the last ``act``) is the representation
    :math:`\Phi(x)` on which the isometry term is imposed. The paper uses
    ``hidden=(20, 20, 20, 20)`` on the toy data and ``(100, 100, 100, 100)``
    on MNIST.

    Args:
        in_features (int): flattened input size :math:`D`.
        hidden (sequence of int): widths of the tanh layers.
            (default: :obj:`(20, 20, 20, 20)`)

    Example:
        >>> block = LILBlock(3, hidden=(20, 20))
        >>> block(torch.rand(5, 3)).shape, block.out_features
        (torch.Size([5, 20]), 20)
    """

    def __init__(self, in_features: int, hidden: Sequence[int] = (20, 20, 20, 20)) -> None:
        in_features = _check_width(in_features, "in_features")
        hidden = _check_widths(hidden, "hidden")
        layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        for i, (fan_in, fan_out) in enumerate(zip((in_features, *hidden), hidden), start=1):
            layers[f"fc{i}"] = nn.Linear(fan_in, fan_out)
            layers[f"act{i}"] = nn.Tanh()
        super().__init__(layers)
        self.in_features = in_features
        self.out_features = hidden[-1]


class LILClassifier(nn.Module):
    r"""A LIL block followed by a linear head: :math:`f(x) = W \Phi(x) + b`.

    Trained with :math:`\mathrm{CE} + \beta\, \mathcal{L}_{\mathrm{ISO}}` on the
    output of :attr:`lil` (objective ``"isometric"`` with ``layer="lil"``);
    :math:`\beta = 0` is the plain cross-entropy baseline.

    Args:
        in_features (int): flattened input size (784 for MNIST).
        num_classes (int): number of classes.
        hidden (sequence of int): widths of the tanh layers.
            (default: :obj:`(100, 100, 100, 100)`, the paper's MNIST network)

    Example:
        >>> model = LILClassifier(64, 10, hidden=(32, 32))
        >>> model(torch.rand(4, 1, 8, 8)).shape
        torch.Size([4, 10])
    """

    def __init__(self, in_features: int, num_classes: int, hidden: Sequence[int] = (100, 100, 100, 100)) -> None:
        super().__init__()
        self.lil = LILBlock(in_features, hidden)
        self.head = nn.Linear(self.lil.out_features, _check_width(num_classes, "num_classes"))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.lil(x))


class LevelOutput(NamedTuple):
    """What one level of a :class:`StackedLIL` saw and produced."""

    inputs: Tensor  #: the level's input (detached for levels after the first)
    features: Tensor  #: the level's representation :math:`\Phi_b`
    logits: Tensor  #: the level's scores from the shared classification layer


class StackedLIL(nn.Module):
    r"""Hierarchically stacked locally isometric layers.

    Level :math:`b` is a :class:`LILBlock` that receives the representation of
    level :math:`b-1` (level 0 receives the input) and is trained on its own
    labelling — coarser or finer than the previous level's — with
    :math:`\mathrm{CE}_b + \beta\,\mathcal{L}_{\mathrm{ISO},b}`. As in the
    paper, gradients do not interfere between levels: the input of each level
    after the first is *detached*, so a level's loss updates that level (and
    its projection into the classification layer) only, never an earlier
    level.

    Classification goes through one **shared classification layer**: a single
    set of ``max(level_classes)`` output units with a shared bias :math:`c`,
    into which each level has its own trained linear projection :math:`W_b`
    (the paper: "a shared classification layer, for which we only need to
    train the linear projection from each LIL"). Level :math:`b` with
    :math:`C_b` classes reads the first :math:`C_b` units:
    :math:`\mathrm{logits}_b = W_b \Phi_b + c_{:C_b}`.

    Args:
        in_features (int): flattened input size (3 for the torus).
        level_classes (sequence of int): number of classes at each level, in
            the order the levels are stacked, e.g. ``(2, 4)`` (coarse then fine)
            or ``(4, 2)`` (fine then coarse).
        hidden (sequence of int): widths of each level's tanh layers.
            (default: :obj:`(20, 20, 20, 20)`, the paper's toy network)

    Example:
        >>> model = StackedLIL(3, level_classes=(2, 4))
        >>> [logits.shape[1] for logits in model(torch.rand(5, 3))]
        [2, 4]
    """

    def __init__(self, in_features: int, level_classes: Sequence[int], hidden: Sequence[int] = (20, 20, 20, 20)) -> None:
        super().__init__()
        self.level_classes = _check_widths(level_classes, "level_classes")
        in_features = _check_width(in_features, "in_features")
        width = _check_widths(hidden, "hidden")[-1]
        self.levels = nn.ModuleList(
            LILBlock(in_features if b == 0 else width, hidden) for b in range(len(self.level_classes))
        )
        self.projections = nn.ModuleList(nn.Linear(width, c, bias=False) for c in self.level_classes)
        self.head_bias = nn.Parameter(torch.zeros(max(self.level_classes)))

    def forward_levels(self, x: Tensor) -> list[LevelOutput]:
        """Run every level; return each level's input, representation and logits."""
        outputs = []
        h = x.flatten(1)
        for b, (block, projection) in enumerate(zip(self.levels, self.projections)):
            inputs = h if b == 0 else h.detach()
            h = block(inputs)
            logits = projection(h) + self.head_bias[: self.level_classes[b]]
            outputs.append(LevelOutput(inputs, h, logits))
        return outputs

    def forward(self, x: Tensor) -> list[Tensor]:
        """Logits of every level, a list of :math:`N \\times C_b` tensors."""
        return [level.logits for level in self.forward_levels(x)]
