r"""Parseval networks (Cisse et al., ICML 2017): keep weight matrices close to
orthonormal (row-wise), so that each layer is at most 1-Lipschitz.

Each weight ``W`` of dimension ≥ 2 (linear or convolutional) is read as the
matrix :math:`W \in \mathbb{R}^{n_{out} \times n_{in}}`
(``W.reshape(out, -1)``, as in the Laplacian-networks code that compares against
Parseval). Two ways to enforce orthonormality:

* the soft penalty :class:`ParsevalPenalty`,
  :math:`\sum_W \lVert W W^\top - I \rVert_F^2`, added to the loss;
* the retraction :func:`parseval_retraction_` applied after each optimizer
  step, :math:`W \leftarrow (1 + \beta) W - \beta W W^\top W` (official
  :math:`\beta = 0.01` in the Laplacian-networks comparison), which is one
  gradient step on :math:`\frac{\beta}{4}\lVert W W^\top - I\rVert_F^2`.

The Parseval *architecture* also rescales convolutions by
:math:`1/\sqrt{2 k^2 + 1}` and uses convex residual sums; that belongs to a
model, not to this module.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn


def parseval_weights(model: nn.Module) -> list[Tensor]:
    """The parameters a Parseval constraint applies to: every weight of dimension ≥ 2
    (linear and convolution kernels; biases and normalization parameters are skipped).

    Example:
        >>> len(parseval_weights(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))))
        2
    """
    return [p for p in model.parameters() if p.dim() >= 2]


def _weights(weights: nn.Module | Iterable[Tensor]) -> list[Tensor]:
    out = parseval_weights(weights) if isinstance(weights, nn.Module) else list(weights)
    if not out:
        raise ValueError("`weights` holds no weight of dimension ≥ 2")
    for w in out:
        if not isinstance(w, Tensor):
            raise TypeError(f"`weights` must hold tensors, got {type(w).__name__}")
        if w.dim() < 2:
            raise ValueError(f"`weights` must be tensors of dimension ≥ 2 (out × …), got shape {tuple(w.shape)}")
        if not torch.isfinite(w).all():
            raise ValueError(f"`weights` hold NaN or infinite values (a weight of shape {tuple(w.shape)})")
    return out


def orthonormality_error(w: Tensor) -> Tensor:
    r""":math:`\lVert W W^\top - I \rVert_F^2` with ``W`` reshaped to :math:`n_{out} \times n_{in}`.

    Example:
        >>> float(orthonormality_error(torch.eye(3)))
        0.0
        >>> float(orthonormality_error(2 * torch.eye(2)))  # (4 - 1)^2 · 2
        18.0
    """
    m = w.reshape(w.shape[0], -1)
    gram = m @ m.T
    return ((gram - torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)) ** 2).sum()


class ParsevalPenalty(nn.Module):
    r"""Orthonormality penalty :math:`\sum_W \lVert W W^\top - I \rVert_F^2`.

    Called on a model (every weight of dimension ≥ 2, see
    :func:`parseval_weights`) or on a list of weights. Rows cannot all be
    orthonormal when :math:`n_{out} > n_{in}`; the penalty then stays
    positive, as in the reference code. The weight in front (Cisse et al.'s
    :math:`\beta/2`) is applied by the objective.

    Example:
        >>> penalty = ParsevalPenalty()
        >>> float(penalty([torch.eye(2), torch.zeros(1, 3)]))
        1.0
    """

    def forward(self, weights: nn.Module | Iterable[Tensor]) -> Tensor:
        return torch.stack([orthonormality_error(w) for w in _weights(weights)]).sum()


@torch.no_grad()
def parseval_retraction_(weights: nn.Module | Iterable[Tensor], beta: float = 0.01) -> None:
    r"""In place, :math:`W \leftarrow (1 + \beta) W - \beta\, W W^\top W` for each weight.

    Call it after ``optimizer.step()``. With small :math:`\beta` it pulls
    :math:`W W^\top` towards :math:`I`.

    Example:
        >>> w = torch.full((2, 2), 0.4)
        >>> before = float(orthonormality_error(w))
        >>> parseval_retraction_([w], beta=0.5)
        >>> float(orthonormality_error(w)) < before
        True
    """
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 < beta <= 1:
        raise ValueError(f"`beta` must be a number in (0, 1], got {beta!r}")
    for w in _weights(weights):
        m = w.reshape(w.shape[0], -1)
        w.copy_(((1 + beta) * m - beta * (m @ m.T @ m)).reshape(w.shape))
