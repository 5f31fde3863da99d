"""Plain supervised classification: cross-entropy on the model's logits."""
from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from .registry import register_objective


@register_objective("classification")
class ClassificationObjective:
    r"""Cross-entropy objective, one term ``"ce"``.

    .. math::
        \mathcal{L}_{ce} = -\frac{1}{B}\sum_i \log \operatorname{softmax}(f(x_i))_{y_i}

    Args:
        label_smoothing (float): passed to :func:`torch.nn.functional.cross_entropy`.
            (default: :obj:`0.0`)

    Example:
        >>> import torch
        >>> objective = ClassificationObjective()
        >>> model = torch.nn.Linear(4, 3)
        >>> sorted(objective(model, (torch.rand(5, 4), torch.tensor([0, 1, 2, 0, 1]))))
        ['ce']
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def __call__(self, model: nn.Module, batch: Sequence[Tensor]) -> dict[str, Tensor]:
        x, y = batch[0], batch[1]
        return {"ce": F.cross_entropy(model(x), y, label_smoothing=self.label_smoothing)}

    def __repr__(self) -> str:
        return f"ClassificationObjective(label_smoothing={self.label_smoothing})"
