r"""Objectives that constrain latent geometry for embeddings and robustness:
label variation (``"label_variation"``), layer-to-layer Laplacian smoothness
(``"laplacian_smoothness"``) and the Parseval baseline (``"parseval"``).

Each returns named terms; the weights of the papers are applied here (the
trainer's ``weights`` multiply on top, default 1).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from latentgraph.capture import capture
from latentgraph.losses.label_variation import LabelVariationLoss
from latentgraph.losses.parseval import ParsevalPenalty, parseval_retraction_
from latentgraph.losses.smoothness import LaplacianSmoothnessLoss, relu_layer_names

from ...validation import check_number
from .registry import register_objective

__all__ = ["LabelVariationObjective", "LaplacianSmoothnessObjective", "ParsevalObjective"]


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
    ``"ce"``. See :class:`~latentgraph.losses.label_variation.LabelVariationLoss`
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

    def __init__(self, k: Optional[int] = 10, similarity: str = "auto", normalize: bool = False,
                 normalized: bool = True, layer: Optional[str] = None, cross_entropy: bool = False,
                 weight: float = 1.0) -> None:
        self.loss = LabelVariationLoss(k=k, similarity=similarity, normalize=normalize, normalized=normalized)
        self.layer = layer
        self.cross_entropy = bool(cross_entropy)
        self.weight = check_number(weight, "weight")

    def __call__(self, model: nn.Module, batch: Sequence[Tensor]) -> Dict[str, Tensor]:
        x, y = batch[0], batch[1]
        if self.layer is None:
            out = model(x)
            features = out
        else:
            with capture(model, [self.layer]) as acts:
                out = model(x)
            features = acts[self.layer]
        terms = {"label_variation": self.weight * self.loss(features, y)}
        if self.cross_entropy:
            terms["ce"] = F.cross_entropy(out, y)
        return terms

    def __repr__(self) -> str:
        return (f"LabelVariationObjective({self.loss.extra_repr()}, layer={self.layer!r}, "
                f"cross_entropy={self.cross_entropy}, weight={self.weight})")


@register_objective("laplacian_smoothness")
class LaplacianSmoothnessObjective:
    r"""Cross-entropy plus the Laplacian-networks regularizer over captured layers.

    .. math::
        \mathcal{L} = \mathrm{CE}(f(x), y) + \gamma^m \frac{1}{L-1}
        \sum_{\ell} \lvert \sigma_{\ell+1} - \sigma_\ell \rvert,
        \qquad \sigma_\ell = \operatorname{tr}(Y^\top L_\ell^m Y)

    (:class:`~latentgraph.losses.smoothness.LaplacianSmoothnessLoss`). Official
    setting: :math:`\gamma = 0.01`, :math:`m = 2`, complete graph — a weight of
    :math:`10^{-4}`. Terms: ``"ce"`` and ``"smoothness"`` (already multiplied
    by :math:`\gamma^m`).

    Args:
        gamma (float): :math:`\gamma`. (default: :obj:`0.01`)
        power (int): :math:`m`. (default: :obj:`2`)
        k (int, optional): kNN graphs instead of complete ones. (default: :obj:`None`)
        layers (list of str, optional): modules whose outputs are compared, in
            forward order; by default every ``nn.ReLU`` of the model
            (:func:`~latentgraph.losses.smoothness.relu_layer_names`), each
            call of a reused module counting as a layer. (default: :obj:`None`)
        apply_relu (bool): apply ReLU to every captured output. For networks
            that call ``F.relu`` in ``forward`` (the CIFAR ResNets), capture the
            BatchNorm modules that feed each ReLU and set this, which gives
            exactly the ReLU outputs. (default: :obj:`False`)

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 6),
        ...                             torch.nn.ReLU(), torch.nn.Linear(6, 3))
        >>> terms = LaplacianSmoothnessObjective()(model, (torch.rand(8, 4), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])))
        >>> sorted(terms)
        ['ce', 'smoothness']
    """

    def __init__(self, gamma: float = 0.01, power: int = 2, k: Optional[int] = None,
                 layers: Optional[Sequence[str]] = None, apply_relu: bool = False) -> None:
        self.gamma = check_number(gamma, "gamma")
        self.loss = LaplacianSmoothnessLoss(k=k, power=power)
        self.layers = None if layers is None else list(layers)
        self.apply_relu = bool(apply_relu)

    def __call__(self, model: nn.Module, batch: Sequence[Tensor]) -> Dict[str, Tensor]:
        x, y = batch[0], batch[1]
        names = self.layers if self.layers is not None else relu_layer_names(model)
        with capture(model, names) as acts:
            logits = model(x)
        outputs = [F.relu(a) for a in acts.values()] if self.apply_relu else list(acts.values())
        reg = self.loss(outputs, y)
        return {"ce": F.cross_entropy(logits, y), "smoothness": self.gamma ** self.loss.power * reg}

    def __repr__(self) -> str:
        return (f"LaplacianSmoothnessObjective(gamma={self.gamma}, {self.loss.extra_repr()}, layers={self.layers}, "
                f"apply_relu={self.apply_relu})")


@register_objective("parseval")
class ParsevalObjective:
    r"""Cross-entropy for a Parseval network (Cisse et al., 2017).

    Orthonormality of every weight of dimension ≥ 2 is kept by either or both of

    * ``retraction`` :math:`\beta > 0`: the step
      :math:`W \leftarrow (1 + \beta) W - \beta W W^\top W`
      (:func:`~latentgraph.losses.parseval.parseval_retraction_`, official
      :math:`\beta = 0.01`), applied by :meth:`after_step`, which the trainer
      calls right after every optimizer step, as in Cisse et al. (2017);
    * ``penalty`` :math:`w > 0`: a term
      ``"parseval"`` :math:`= w \sum_W \lVert W W^\top - I\rVert_F^2`
      (:class:`~latentgraph.losses.parseval.ParsevalPenalty`). For SGD with
      learning rate :math:`\eta`, a retraction :math:`\beta` equals a penalty
      :math:`w = \beta / (4\eta)`.

    Terms: ``"ce"`` and, when ``penalty > 0``, ``"parseval"``.

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(4, 3)
        >>> sorted(ParsevalObjective(penalty=0.1)(model, (torch.rand(5, 4), torch.tensor([0, 1, 2, 0, 1]))))
        ['ce', 'parseval']
    """

    def __init__(self, retraction: float = 0.01, penalty: float = 0.0) -> None:
        self.retraction = check_number(retraction, "retraction")
        if self.retraction > 1:
            raise ValueError(f"`retraction` must be in [0, 1], got {retraction}")
        self.penalty_weight = check_number(penalty, "penalty")
        self.penalty = ParsevalPenalty()

    def __call__(self, model: nn.Module, batch: Sequence[Tensor]) -> Dict[str, Tensor]:
        x, y = batch[0], batch[1]
        terms = {"ce": F.cross_entropy(model(x), y)}
        if self.penalty_weight > 0:
            terms["parseval"] = self.penalty_weight * self.penalty(model)
        return terms

    def after_step(self, model: nn.Module) -> None:
        """Retract the weights towards the Parseval manifold after an optimizer step."""
        if self.retraction > 0:
            parseval_retraction_(model, self.retraction)

    def __repr__(self) -> str:
        return f"ParsevalObjective(retraction={self.retraction}, penalty={self.penalty_weight})"
