r"""Within-class distance preservation: the isometry loss of Locally Isometric
Layers (LIL; "Isometric representations in neural networks improve
robustness").
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from latentgraph.graphs.similarity import pair_squared_distances, squared_distances
from latentgraph.validation import check_choice, check_features, check_labels, check_same_batch

__all__ = ["IsometryLoss", "pairwise_euclidean"]


def pairwise_euclidean(x: Tensor) -> Tensor:
    r"""Euclidean (not squared) distance matrix :math:`D_{ij} = \lVert x_i - x_j \rVert_2`
    of the rows of a :math:`N \times D` tensor, differentiable, fast and
    exact near zero.

    The batch is centred (distances do not depend on a shift), then squared
    distances come from one matrix product,
    :math:`\lVert x_i\rVert^2 + \lVert x_j\rVert^2 - 2 x_i^\top x_j`
    (:func:`latentgraph.graphs.similarity.squared_distances`). That form loses
    precision by cancellation when :math:`x_i \approx x_j` — it gives
    distances of order :math:`10^{-2}` between identical float32 rows, the
    same as :func:`torch.cdist`'s matrix-product shortcut. So every pair whose
    product-form value is below :math:`10^{-3}(\lVert x_i\rVert^2 + \lVert x_j\rVert^2)`
    (the diagonal, duplicates, near neighbours) is recomputed from the
    differences :math:`x_i - x_j`
    (:func:`latentgraph.graphs.similarity.pair_squared_distances`): identical
    points get exactly ``0``. The square root's gradient is taken as ``0``
    where a distance is ``0`` — the subgradient of the norm at the origin —
    instead of :math:`0/0 = \mathrm{NaN}`; elsewhere it is
    :math:`(x_i - x_j)/D_{ij}`, a unit vector, so near-duplicates cannot blow
    it up either. (:func:`torch.cdist` with
    ``compute_mode="donot_use_mm_for_euclid_dist"`` is exact too, but was 7×
    slower, forward and backward, on a 256×784 batch on one CPU thread.)

    Example:
        >>> pairwise_euclidean(torch.tensor([[0.0, 0.0], [3.0, 4.0]]))
        tensor([[0., 5.],
                [5., 0.]])
    """
    x = x - x.detach().mean(dim=0, keepdim=True)
    sq = squared_distances(x)
    norms = x.detach().pow(2).sum(dim=1)
    row, col = (sq.detach() <= 1e-3 * (norms[:, None] + norms[None, :])).nonzero(as_tuple=True)
    sq = sq.index_put((row, col), pair_squared_distances(x, row, col))
    positive = sq > 0
    return torch.where(positive, torch.where(positive, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))


class IsometryLoss(nn.Module):
    r"""Isometry loss of Locally Isometric Layers.

    For a batch of :math:`N` inputs :math:`x_i` (flattened) and their
    representations :math:`\Phi(x_i)` (flattened), with Euclidean distance
    matrices :math:`(D_M)_{ij} = \lVert x_i - x_j \rVert_2` and
    :math:`(D_\Phi)_{ij} = \lVert \Phi(x_i) - \Phi(x_j) \rVert_2`,

    .. math::
        \mathcal{L}_{\mathrm{ISO}} = \frac{1}{N^2}
        \left\lVert G \odot (K \, D_\Phi) - G \odot D_M \right\rVert_F^2,

    where :math:`K` is :obj:`scale` and :math:`G` the indexing matrix:
    :math:`G_{ij} = [y_i = y_j]` for ``scope="class"`` (distances preserved
    within each class only: a *locally* isometric map) or :math:`G_{ij} = 1`
    for ``scope="global"`` (a global isometry, as in multidimensional
    scaling). Distances are Euclidean, not squared, as in the paper.

    The paper's objective is :math:`\alpha\,\mathrm{CE} + \beta\,\mathcal{L}_{\mathrm{ISO}}`;
    this module returns :math:`\mathcal{L}_{\mathrm{ISO}}` without :math:`\beta`:
    the objective (:mod:`latentgraph.train.objectives.isometric`) applies it.
    The paper's equation has no scale (:math:`K = 1`); the issue this package
    implements reports that the authors used :math:`K = 10` on MNIST, which
    asks the representation's within-class distances to be a tenth of the
    pixel-space ones (a value not stated in the paper's text).

    A batch in which no two samples share a class (for instance a batch of
    one) has :math:`G = I`; since every diagonal term is :math:`(K \cdot 0 - 0)^2`,
    the loss is then exactly ``0`` with a zero gradient — the paper's remark
    that with a batch size of 1 the isometric term contributes nothing.
    Where two representations coincide, the gradient of their distance is
    taken as ``0`` (see :func:`pairwise_euclidean`), so duplicate points
    never produce NaN.

    Args:
        scale (float): the factor :math:`K > 0` applied to the
            representation's distances. (default: :obj:`1.0`)
        scope (str): ``"class"`` (:math:`G` = same-class indicator) or
            ``"global"`` (:math:`G` = all ones). (default: :obj:`"class"`)

    Shapes:
        - **inputs**: :math:`N \times \ldots` floating point (flattened per sample).
        - **features**: :math:`N \times \ldots` floating point, same :math:`N`.
        - **y**: :math:`N` integer labels; required for ``scope="class"``,
          ignored (may be ``None``) for ``scope="global"``.
        - **output**: scalar.

    Example:
        >>> x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [9.0, 9.0]])
        >>> y = torch.tensor([0, 0, 1])
        >>> IsometryLoss()(x, x, y)   # the identity is an isometry
        tensor(0.)
        >>> IsometryLoss(scale=2.0)(x, x, y)  # 2 * (2·5 − 5)² / 3²
        tensor(5.5556)
    """

    def __init__(self, scale: float = 1.0, scope: str = "class") -> None:
        super().__init__()
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            raise TypeError(f"`scale` must be a number, got {type(scale).__name__}")
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"`scale` must be a finite number > 0, got {scale}")
        self.scale = float(scale)
        self.scope = check_choice(scope, "scope", ("class", "global"))

    def forward(self, inputs: Tensor, features: Tensor, y: Tensor | None = None) -> Tensor:
        inputs = check_features(inputs, "inputs")
        features = check_features(features, "features")
        check_same_batch(inputs, features, ("inputs", "features"))
        n = inputs.shape[0]
        diff = self.scale * pairwise_euclidean(features) - pairwise_euclidean(inputs.to(features.dtype))
        if self.scope == "class":
            if y is None:
                raise ValueError("`y` is required when scope='class'")
            y = check_labels(y, n, features.device, "y")
            diff = diff * (y.unsqueeze(0) == y.unsqueeze(1)).to(diff.dtype)
        return diff.pow(2).sum() / n**2

    def extra_repr(self) -> str:
        return f"scale={self.scale}, scope={self.scope!r}"
