r"""Label variation of the embedding graph as a training objective (``"label_variation"``,
Lassance et al.); the loss is :class:`~latentgraph.losses.label_variation.LabelVariationLoss`.

The objective returns the raw term; its weight :math:`w_{lv}` is in :attr:`weights`, applied by the trainer.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from latentgraph.capture import capture
from latentgraph.losses.label_variation import LabelVariationLoss
from latentgraph.train.objectives.registry import register_objective
from latentgraph.validation import check_flag, check_number

__all__ = ["LabelVariationObjective"]


@register_objective("label_variation")
class LabelVariationObjective:
    r"""Label variation of the batch's embedding graph, alone or added to cross-entropy.

    .. math::
        \mathcal{L} = w_{lv}\, \sigma\big(G(\Phi(x)), y\big)
        \;[+\; \mathrm{CE}(f(x), y)]

    with :math:`\Phi(x)` the model's output (``layer=None``: the network is
    an embedding network and its output dimension is free) or the output of
    the module ``layer`` (then ``cross_entropy=True`` adds CE on the model's
    output, which must be logits). Terms: ``"label_variation"`` and, if asked,
    ``"ce"``, raw; :attr:`weights` is ``{"label_variation": w_lv}``. See :class:`~latentgraph.losses.label_variation.LabelVariationLoss`
    (a single-class batch gives 0).

    Args:
        k (int, optional): neighbours per node. (default: :obj:`10`)
        similarity (str): graph similarity. (default: :obj:`"auto"`)
        normalize (bool): :math:`D^{-1/2} A D^{-1/2}` graph. (default: :obj:`False`)
        normalized (bool): inter-class share of edge weight. (default: :obj:`True`)
        layer (str, optional): module whose output is embedded. (default: :obj:`None`)
        cross_entropy (bool): add CE on the model's output. (default: :obj:`False`)
        weight (float): :math:`w_{lv}`. (default: :obj:`1.0`)

    Example:
        >>> import torch
        >>> objective = LabelVariationObjective(k=3)
        >>> model = torch.nn.Linear(4, 8)
        >>> sorted(objective(model, (torch.rand(8, 4), torch.tensor([0, 1] * 4))))
        ['label_variation']
    """

    #: term → the constructor option that sets its weight (a config may not also set it in method.weights)
    weight_options = {"label_variation": "weight"}

    def __init__(self, k: int | None = 10, similarity: str = "auto", normalize: bool = False,
                 normalized: bool = True, layer: str | None = None, cross_entropy: bool = False,
                 weight: float = 1.0) -> None:
        normalize = check_flag(normalize, "normalize")
        normalized = check_flag(normalized, "normalized")
        cross_entropy = check_flag(cross_entropy, "cross_entropy")
        self.loss = LabelVariationLoss(k=k, similarity=similarity, normalize=normalize, normalized=normalized)
        self.layer = layer
        self.cross_entropy = bool(cross_entropy)
        self.weight = check_number(weight, "weight")
        self.weights = {"label_variation": self.weight}

    def __call__(self, model: nn.Module, batch: Sequence[Tensor]) -> dict[str, Tensor]:
        x, y = batch[0], batch[1]
        if self.layer is None:
            out = model(x)
            features = out
        else:
            with capture(model, [self.layer]) as acts:
                out = model(x)
            features = acts[self.layer]
        terms = {"label_variation": self.loss(features, y)}
        if self.cross_entropy:
            terms["ce"] = F.cross_entropy(out, y)
        return terms

    def __repr__(self) -> str:
        return (f"LabelVariationObjective({self.loss.extra_repr()}, layer={self.layer!r}, "
                f"cross_entropy={self.cross_entropy}, weight={self.weight})")
