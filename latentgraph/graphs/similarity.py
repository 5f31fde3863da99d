r"""Similarity measures between the samples of a batch.

Each measure comes in two forms that agree exactly: a dense
:math:`B \times B` matrix (:func:`similarity_matrix`) and a value per chosen
pair (:func:`pair_similarity`), both differentiable with respect to the
features. :func:`neighbour_embedding` maps the features to vectors whose
Euclidean nearest neighbours are the most similar samples, which is what the
distance-based kNN backends search.

* ``"cosine"``: :math:`s_{ij} = \frac{x_i^\top x_j}{\lVert x_i\rVert \lVert x_j\rVert}`;
  an all-zero row has similarity 0 to every sample.
* ``"pearson"``: the cosine similarity of the row-centred features, i.e. the
  Pearson correlation of the two samples; a constant row has correlation 0.
* ``"rbf"``: :math:`s_{ij} = \exp(-\lVert x_i - x_j\rVert^2 / (2\sigma^2))`.
  The default bandwidth :math:`\sigma` is the median Euclidean distance over
  the graph's edges (all pairs for the complete graph), detached from autograd,
  and 1 when that median is 0.
* ``"auto"``: ``"cosine"`` when every feature is non-negative (e.g. after a
  ReLU), ``"rbf"`` otherwise, as in Lassance et al. (2020).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..validation import check_bandwidth, check_choice, check_features

SIMILARITIES = ("cosine", "rbf", "pearson", "auto")


def resolve_similarity(x: Tensor, similarity: str) -> str:
    """Resolve ``"auto"`` to ``"cosine"`` for non-negative ``x`` and ``"rbf"`` otherwise.

    Example:
        >>> resolve_similarity(torch.rand(4, 3), "auto")
        'cosine'
        >>> resolve_similarity(torch.randn(4, 3) - 5, "auto")
        'rbf'
    """
    check_choice(similarity, "similarity", SIMILARITIES)
    if similarity == "auto":
        return "cosine" if bool(x.min() >= 0) else "rbf"
    return similarity


def _unit_rows(x: Tensor, centre: bool) -> Tensor:
    if centre:
        x = x - x.mean(dim=1, keepdim=True)
    return F.normalize(x, p=2.0, dim=1, eps=1e-12)


def _centred(x: Tensor) -> Tensor:
    """``x`` minus its (detached) mean row: the same Euclidean distances, smaller norms."""
    return x - x.detach().mean(dim=0, keepdim=True)


def squared_distances(x: Tensor) -> Tensor:
    r"""Dense squared Euclidean distances :math:`\lVert x_i - x_j\rVert^2`, clamped at 0.

    Centres the batch (distances do not depend on a shift; without it a
    common offset such as ``x + 1000`` cancels away every digit of the
    distances in float32), then uses
    :math:`\lVert x_i\rVert^2 + \lVert x_j\rVert^2 - 2 x_i^\top x_j` (one
    matrix product), so the gradient is finite even between identical rows.

    Example:
        >>> x = torch.tensor([[0.0, 0.0], [3.0, 4.0]]) + 1000
        >>> squared_distances(x)
        tensor([[ 0., 25.],
                [25.,  0.]])
    """
    x = _centred(x)
    sq = (x * x).sum(dim=1)
    return (sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)).clamp_min(0.0)


def rbf_bandwidth(sq_dist: Tensor) -> Tensor:
    r"""Median-distance bandwidth :math:`\sigma = \operatorname{median}\sqrt{d^2}` (detached).

    Returns 1 when the median is 0 (e.g. all points identical). For an even
    count the median is the lower of the two middle values (:meth:`torch.Tensor.median`).

    Example:
        >>> rbf_bandwidth(torch.tensor([1.0, 4.0, 9.0])), rbf_bandwidth(torch.zeros(3))
        (tensor(2.), tensor(1.))
    """
    if sq_dist.numel() == 0:
        return sq_dist.new_ones(())
    sigma = sq_dist.detach().sqrt().median()
    return torch.where(sigma > 0, sigma, torch.ones_like(sigma))


def rbf_kernel(sq_dist: Tensor, sigma: float | Tensor) -> Tensor:
    r"""Gaussian kernel :math:`\exp(-d^2 / (2\sigma^2))` of squared distances.

    Example:
        >>> rbf_kernel(torch.tensor([0.0, 2.0]), 1.0)
        tensor([1.0000, 0.3679])
    """
    return torch.exp(-sq_dist / (2.0 * torch.as_tensor(sigma, dtype=sq_dist.dtype, device=sq_dist.device) ** 2))


def similarity_matrix(x: Tensor, similarity: str = "cosine", sigma: float | Tensor | None = None) -> Tensor:
    r"""Dense similarity matrix of a batch ``x`` (:math:`B \times \ldots`, flattened per sample).

    The diagonal is kept as computed (1 for cosine/pearson/rbf rows that are
    not zero); graph builders zero it. For ``"rbf"`` without ``sigma`` the
    bandwidth is the median of the off-diagonal distances.

    Args:
        x (Tensor): features, one row per sample.
        similarity (str): ``"cosine"``, ``"pearson"``, ``"rbf"`` or ``"auto"``.
            (default: :obj:`"cosine"`)
        sigma (float, optional): RBF bandwidth. (default: :obj:`None`)

    Example:
        >>> s = similarity_matrix(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
        >>> torch.allclose(s[0, 1], torch.tensor(2 ** -0.5))
        True
    """
    x = check_features(x, "x")
    similarity = resolve_similarity(x, similarity)
    check_bandwidth(sigma)
    if similarity in ("cosine", "pearson"):
        if similarity == "pearson":
            x = x - x.mean(dim=1, keepdim=True)
        # normalize the B×B Gram matrix rather than the B×D rows: cheaper forward and backward
        gram = x @ x.T
        sq = gram.diagonal()
        eps = torch.finfo(x.dtype).tiny ** 0.5  # a zero row gets norm eps, hence similarity 0
        norm = torch.where(sq > eps * eps, sq, torch.full_like(sq, eps * eps)).sqrt()
        return gram / (norm[:, None] * norm[None, :])
    d2 = squared_distances(x)
    if sigma is None:
        off = ~torch.eye(x.shape[0], dtype=torch.bool, device=x.device)
        sigma = rbf_bandwidth(d2[off])
    return rbf_kernel(d2, sigma)


def _chunked_pairs(x: Tensor, row: Tensor, col: Tensor, op) -> Tensor:
    """Apply ``op(x[row], x[col])`` in chunks so that wide features fit in memory."""
    chunk = max(1, 2**24 // max(1, x.shape[1]))
    parts = [op(x[r], x[c]) for r, c in zip(row.split(chunk), col.split(chunk))]
    return torch.cat(parts) if parts else x.new_zeros(0)


def pair_squared_distances(x: Tensor, row: Tensor, col: Tensor) -> Tensor:
    r""":math:`\lVert x_{row} - x_{col}\rVert^2` for each pair ``(row[e], col[e])``,
    from the differences (exact, also far from the origin), in chunks.

    Example:
        >>> x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
        >>> pair_squared_distances(x, torch.tensor([0, 1]), torch.tensor([1, 1]))
        tensor([25.,  0.])
    """
    return _chunked_pairs(x, row, col, lambda a, b: ((a - b) ** 2).sum(dim=1))


def pair_similarity(
    x: Tensor, row: Tensor, col: Tensor, similarity: str, sigma: float | Tensor | None = None
) -> Tensor:
    r"""Similarity of the pairs ``(row[e], col[e])``, equal to ``similarity_matrix(x)[row, col]``.

    ``similarity`` must already be resolved (not ``"auto"``). For ``"rbf"``
    without ``sigma`` the bandwidth is the median distance over the given pairs.

    Example:
        >>> x = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
        >>> pair_similarity(x, torch.tensor([0]), torch.tensor([1]), "cosine")
        tensor([0.7071])
    """
    if similarity in ("cosine", "pearson"):
        u = _unit_rows(x, centre=similarity == "pearson")
        return _chunked_pairs(u, row, col, lambda a, b: (a * b).sum(dim=1))
    d2 = pair_squared_distances(x, row, col)
    return rbf_kernel(d2, rbf_bandwidth(d2) if sigma is None else sigma)


def neighbour_embedding(x: Tensor, similarity: str) -> Tensor:
    """Vectors whose Euclidean nearest neighbours are the most similar rows of ``x``.

    Unit rows for ``"cosine"`` (centred first for ``"pearson"``); for
    ``"rbf"``, ``x`` minus its mean row, which keeps the distances and avoids
    the cancellation of large common offsets in the searches' matrix products.
    ``similarity`` must already be resolved.

    Example:
        >>> neighbour_embedding(torch.tensor([[3.0, 4.0], [0.0, 2.0]]), "cosine")
        tensor([[0.6000, 0.8000],
                [0.0000, 1.0000]])
    """
    if similarity in ("cosine", "pearson"):
        return _unit_rows(x, centre=similarity == "pearson")
    return _centred(x)
