r"""The Laplacian-networks regularizer as a training objective (``"laplacian_smoothness"``,
Lassance et al.): cross-entropy plus :math:`\gamma^m` times the layer-to-layer change of label
variation; the loss is :class:`~latentgraph.losses.laplacian_smoothness.LaplacianSmoothnessLoss`.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from latentgraph.capture import capture
from latentgraph.losses.laplacian_smoothness import LaplacianSmoothnessLoss, relu_layer_names
from latentgraph.train.objectives.registry import register_objective
from latentgraph.validation import check_flag, check_number

__all__ = ["LaplacianSmoothnessObjective"]


@register_objective("laplacian_smoothness")
class LaplacianSmoothnessObjective:
    r"""Cross-entropy plus the Laplacian-networks regularizer over captured layers.

    .. math::
        \mathcal{L} = \mathrm{CE}(f(x), y) + \gamma^m \frac{1}{L-1}
        \sum_{\ell} \lvert \sigma_{\ell+1} - \sigma_\ell \rvert,
        \qquad \sigma_\ell = \operatorname{tr}(Y^\top L_\ell^m Y)

    (:class:`~latentgraph.losses.laplacian_smoothness.LaplacianSmoothnessLoss`). Official
    setting: :math:`\gamma = 0.01`, :math:`m = 2`, complete graph — a weight of
    :math:`10^{-4}`. Terms: ``"ce"`` and ``"smoothness"``, raw;
    :attr:`weights` is ``{"smoothness": γ^m}``, applied by the trainer.

    Args:
        gamma (float): :math:`\gamma`. (default: :obj:`0.01`)
        power (int): :math:`m`. (default: :obj:`2`)
        k (int, optional): kNN graphs instead of complete ones. (default: :obj:`None`)
        layers (list of str, optional): modules whose outputs are compared, in
            forward order; by default every ``nn.ReLU`` of the model
            (:func:`~latentgraph.losses.laplacian_smoothness.relu_layer_names`), each
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

    #: term → the constructor option that sets its weight (a config may not also set it in method.weights)
    weight_options = {"smoothness": "gamma"}

    def __init__(self, gamma: float = 0.01, power: int = 2, k: int | None = None,
                 layers: Sequence[str] | None = None, apply_relu: bool = False) -> None:
        apply_relu = check_flag(apply_relu, "apply_relu")
        self.gamma = check_number(gamma, "gamma")
        self.loss = LaplacianSmoothnessLoss(k=k, power=power)
        self.layers = None if layers is None else list(layers)
        self.apply_relu = bool(apply_relu)
        self.weights = {"smoothness": self.gamma ** self.loss.power}

    def __call__(self, model: nn.Module, batch: Sequence[Tensor]) -> dict[str, Tensor]:
        x, y = batch[0], batch[1]
        names = self.layers if self.layers is not None else relu_layer_names(model)
        with capture(model, names) as acts:
            logits = model(x)
        outputs = [F.relu(a) for a in acts.values()] if self.apply_relu else list(acts.values())
        reg = self.loss(outputs, y)
        return {"ce": F.cross_entropy(logits, y), "smoothness": reg}

    def __repr__(self) -> str:
        return (f"LaplacianSmoothnessObjective(gamma={self.gamma}, {self.loss.extra_repr()}, layers={self.layers}, "
                f"apply_relu={self.apply_relu})")
