r"""Layer-to-layer smoothness of label variation, for robustness (Lassance et al.,
"Laplacian networks: bounding indicator function smoothness for neural
networks robustness", 2021; LGG paper §4.3)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentgraph.graphs.construct import dense_adjacency
from latentgraph.gsp import laplacian
from latentgraph.validation import check_features, check_labels, check_neighbours, check_same_batch


def relu_layer_names(model: nn.Module, types: tuple[type[nn.Module], ...] = (nn.ReLU,)) -> list[str]:
    """Names of the activation modules of ``model`` (default: every :class:`torch.nn.ReLU`),
    in registration order, ready for :func:`latentgraph.capture`.

    Only ReLUs that are *modules* can be captured: a network that calls
    ``F.relu``/``torch.relu`` in ``forward`` needs ``nn.ReLU`` modules (or the
    names of the modules whose outputs follow them). A module reused several
    times (e.g. torchvision's ``BasicBlock.relu``) is recorded at each call as
    ``name``, ``name#1``… by :func:`~latentgraph.capture`. ``inplace=True`` is
    fine as long as the captured output is not modified in place afterwards
    (autograd would then refuse to backpropagate through it).

    Example:
        >>> model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(inplace=True))
        >>> relu_layer_names(model)
        ['1', '3']
    """
    return [name for name, module in model.named_modules() if name and isinstance(module, types)]


def indicator_smoothness(x: Tensor, y: Tensor, k: int | None = None, power: int = 2) -> Tensor:
    r""":math:`\sigma = \operatorname{tr}(V^\top L^m V)` of one layer's cosine graph.

    :math:`L = D - A` is the combinatorial Laplacian of the cosine-similarity
    graph of the flattened features (complete graph for ``k=None``, else the
    union-symmetrized kNN graph), :math:`V` the one-hot labels, :math:`m` the
    ``power``. For :math:`m = 1` this is :func:`latentgraph.label_variation`.

    Example:
        >>> x = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
        >>> float(indicator_smoothness(x, torch.tensor([0, 0, 1]), power=1))  # 2·(0 + 2^-1/2)
        1.4142135381698608
    """
    adj = dense_adjacency(x, k=k, similarity="cosine", normalize=False)
    lap = laplacian(adj)
    onehot = F.one_hot(y, int(y.max()) + 1).to(adj.dtype)
    z = onehot
    for _ in range(power):  # L^m V as m products with the B×C matrix, not a B×B power
        z = lap @ z
    sigma = (onehot * z).sum()
    if not torch.isfinite(sigma):  # grows like λ_max^m: B = 128, m = 20 exceeds float32
        raise ValueError(f"`power` = {power} is too large for this batch: tr(YᵀL^mY) exceeds the range of "
                         f"{adj.dtype} (it grows like the largest Laplacian eigenvalue, up to B, to the power m); "
                         f"use a smaller power (the paper uses 2) or float64 features")
    return sigma


class LaplacianSmoothnessLoss(nn.Module):
    r"""Smooth evolution of label variation across layers (the "Laplacian
    networks" regularizer).

    For each captured layer :math:`\ell` (by default every ReLU output, in
    order) it computes :math:`\sigma_\ell = \operatorname{tr}(Y^\top L_\ell^m Y)`
    (:func:`indicator_smoothness`) and returns

    .. math::
        \mathcal{L}_{reg} = \frac{1}{L - 1} \sum_{\ell=1}^{L-1}
        \lvert \sigma_{\ell+1} - \sigma_\ell \rvert .

    The official training adds :math:`\gamma^m \mathcal{L}_{reg}` to the
    cross-entropy with :math:`\gamma = 0.01`, :math:`m = 2` and the complete
    graph (``k=None``), i.e. a weight of :math:`10^{-4}`, on the 17 ReLU
    outputs of a PreActResNet-18; the weight is applied by the objective
    (:class:`~latentgraph.train.objectives.laplacian_smoothness.LaplacianSmoothnessObjective`),
    not here. A batch of a single class gives :math:`\sigma_\ell = 0` for all
    layers, hence a loss of exactly 0 (finite).

    Args:
        k (int, optional): neighbours per node of each graph; ``None`` keeps
            the complete graph. (default: :obj:`None`)
        power (int): :math:`m \ge 1`, the power of the Laplacian. (default: :obj:`2`)

    Shapes:
        layers: a list of at least two tensors :math:`B \times \ldots` (widths
        may differ); y: :math:`[B]`; output: scalar.

    Example:
        >>> loss = LaplacianSmoothnessLoss()
        >>> layers = [torch.rand(6, 4), torch.rand(6, 3, 2, 2), torch.rand(6, 5)]
        >>> loss(layers, torch.tensor([0, 0, 1, 1, 2, 2])).shape
        torch.Size([])
    """

    def __init__(self, k: int | None = None, power: int = 2) -> None:
        super().__init__()
        if isinstance(power, bool) or not isinstance(power, int) or power < 1:
            raise ValueError(f"`power` must be an int ≥ 1, got {power!r}")
        self.k = check_neighbours(k)
        self.power = power

    def layer_smoothness(self, layers: Sequence[Tensor], y: Tensor) -> list[Tensor]:
        r"""The :math:`\sigma_\ell` of each layer, in order."""
        if isinstance(layers, Tensor) or not isinstance(layers, Sequence):
            raise TypeError("`layers` must be a list of tensors (one per layer)")
        if len(layers) < 2:
            raise ValueError(f"`layers` must hold at least 2 layers to compare, got {len(layers)}")
        flat = [check_features(layer, f"layers[{i}]") for i, layer in enumerate(layers)]
        for i, layer in enumerate(flat[1:], start=1):
            check_same_batch(flat[0], layer, ("layers[0]", f"layers[{i}]"))
        y = check_labels(y, flat[0].shape[0], flat[0].device)
        return [indicator_smoothness(layer, y, self.k, self.power) for layer in flat]

    def forward(self, layers: Sequence[Tensor], y: Tensor) -> Tensor:
        sigma = self.layer_smoothness(layers, y)
        if bool((y == y[0]).all()):  # every σ_ℓ is 0 (up to rounding): exactly 0, zero gradient
            return sum(layer.sum() for layer in layers) * 0.0
        return torch.stack([(b - a).abs() for a, b in zip(sigma, sigma[1:])]).mean()

    def extra_repr(self) -> str:
        return f"k={self.k}, power={self.power}"
