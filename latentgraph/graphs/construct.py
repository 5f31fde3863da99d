r"""Latent geometry graphs of a batch (Lassance, Gripon & Ortega, 2020, §3.3).

Construction, shared by :func:`latent_graph` (sparse, a PyG
:class:`~torch_geometric.data.Data`) and :func:`dense_adjacency` (a
:math:`B \times B` matrix), which agree exactly:

1. flatten each sample and compute the similarity of every pair
   (:mod:`~latentgraph.graphs.similarity`; negative similarities are clipped
   to 0 so that edge weights are non-negative);
2. keep, for each sample, its ``k`` most similar other samples (self
   excluded, ties broken by index; ``k=None`` keeps the complete graph);
3. symmetrize: ``"union"`` keeps an edge if either end chose it,
   ``"mutual"`` only if both did — the weight is the (symmetric) similarity;
4. optionally keep only ``"inter_class"`` or ``"intra_class"`` edges;
5. optionally normalize :math:`\hat{A} = D^{-1/2} A D^{-1/2}`, where a node
   of degree zero keeps all-zero rows (never NaN).

Edge weights are differentiable with respect to the features whatever the
kNN backend.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torch_geometric.data import Data

from ..validation import check_choice, check_features, check_k, check_labels
from .knn import knn_indices
from .similarity import (
    pair_similarity,
    pair_squared_distances,
    rbf_bandwidth,
    resolve_similarity,
    similarity_matrix,
    squared_distances,
)

EDGE_SETS = ("all", "inter_class", "intra_class")
SYMMETRIZATIONS = ("union", "mutual")


def _prepare(x: Tensor, y: Tensor | None, k: int | None, similarity: str, edges: str, symmetrize: str):
    xf = check_features(x, "x")
    num = xf.shape[0]
    k = check_k(k, num)
    sim = resolve_similarity(xf, similarity)
    check_choice(edges, "edges", EDGE_SETS)
    check_choice(symmetrize, "symmetrize", SYMMETRIZATIONS)
    if y is not None:
        y = check_labels(y, num, xf.device)
    elif edges != "all":
        raise ValueError(f"`edges={edges!r}` needs class labels `y`")
    return xf, y, k, sim


def _neighbour_mask(xf: Tensor, k: int | None, sim: str, symmetrize: str, backend: str) -> Tensor:
    """Boolean B×B adjacency pattern after kNN and symmetrization (no self loops)."""
    num = xf.shape[0]
    eye = torch.eye(num, dtype=torch.bool, device=xf.device)
    if k is None:
        return ~eye
    idx = knn_indices(xf, k, sim, backend)
    chosen = torch.zeros(num, num, dtype=torch.bool, device=xf.device)
    chosen[torch.arange(num, device=xf.device).repeat_interleave(k), idx.flatten()] = True
    return chosen | chosen.T if symmetrize == "union" else chosen & chosen.T


def _class_mask(y: Tensor | None, edges: str) -> Tensor | None:
    if edges == "all":
        return None
    differ = y[:, None] != y[None, :]
    return differ if edges == "inter_class" else ~differ


def _inv_sqrt(deg: Tensor) -> Tensor:
    """:math:`d^{-1/2}` with 0 for zero degree, with a finite gradient everywhere."""
    positive = deg > 0
    return torch.where(positive, torch.where(positive, deg, torch.ones_like(deg)).rsqrt(), torch.zeros_like(deg))


def dense_adjacency(
    x: Tensor,
    k: int | None = 10,
    similarity: str = "auto",
    normalize: bool = True,
    y: Tensor | None = None,
    edges: str = "all",
    symmetrize: str = "union",
    backend: str = "torch",
    sigma: float | None = None,
) -> Tensor:
    r"""Dense adjacency matrix :math:`A` (or :math:`\hat{A}`) of the latent geometry graph of ``x``.

    Same construction and arguments as :func:`latent_graph`; the result is a
    :math:`B \times B` tensor with a zero diagonal, differentiable w.r.t. ``x``.

    Example:
        >>> x = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
        >>> A = dense_adjacency(x, k=1, normalize=False)
        >>> (A > 0).int().tolist()
        [[0, 1, 0], [1, 0, 1], [0, 1, 0]]
    """
    xf, y, k, sim = _prepare(x, y, k, similarity, edges, symmetrize)
    mask = _neighbour_mask(xf, k, sim, symmetrize, backend)
    if sim == "rbf" and sigma is None:
        sigma = rbf_bandwidth(squared_distances(xf.detach())[mask])
    classes = _class_mask(y, edges)
    if classes is not None:
        mask = mask & classes
    adj = torch.where(mask, similarity_matrix(xf, sim, sigma).clamp_min(0.0), torch.zeros((), dtype=xf.dtype, device=xf.device))
    if normalize:
        dinv = _inv_sqrt(adj.sum(dim=1))
        adj = adj * (dinv[:, None] * dinv[None, :])
    return adj


def _single_graph(x, y, k, similarity, normalize, edges, symmetrize, backend, sigma) -> Data:
    xf, y, k, sim = _prepare(x, y, k, similarity, edges, symmetrize)
    num = xf.shape[0]
    mask = _neighbour_mask(xf, k, sim, symmetrize, backend)
    row, col = mask.nonzero().T
    if sim == "rbf" and sigma is None:
        sigma = rbf_bandwidth(pair_squared_distances(xf.detach(), row, col))
    classes = _class_mask(y, edges)
    if classes is not None:
        keep = classes[row, col]
        row, col = row[keep], col[keep]
    weight = pair_similarity(xf, row, col, sim, sigma).clamp_min(0.0)
    if normalize:
        dinv = _inv_sqrt(torch.zeros(num, dtype=weight.dtype, device=weight.device).index_add(0, row, weight))
        weight = weight * (dinv[row] * dinv[col])
    return Data(x=xf, edge_index=torch.stack([row, col]), edge_weight=weight, y=y, num_nodes=num)


def latent_graph(
    x: Tensor | Mapping[str, Tensor] | Sequence[Tensor],
    y: Tensor | None = None,
    k: int | None = 10,
    similarity: str = "auto",
    normalize: bool = True,
    edges: str = "all",
    symmetrize: str = "union",
    backend: str = "torch",
    sigma: float | None = None,
) -> Data | dict[str, Data] | list[Data]:
    r"""Latent geometry graph of a batch, as a PyG :class:`~torch_geometric.data.Data`.

    Each sample is a node; see the module docstring for the construction.

    Args:
        x (Tensor or dict or list): features of shape :math:`B \times \ldots`
            (flattened per sample), or a dict / list of such layers, which
            gives a dict / list of graphs.
        y (LongTensor, optional): class labels of shape :math:`[B]`, stored in
            ``data.y`` and needed for ``edges != "all"``. (default: :obj:`None`)
        k (int, optional): neighbours per node, in ``1..B-1``; ``None`` keeps
            the complete graph. (default: :obj:`10`)
        similarity (str): ``"cosine"``, ``"rbf"``, ``"pearson"`` or
            ``"auto"`` (cosine for non-negative data, RBF otherwise).
            (default: :obj:`"auto"`)
        normalize (bool): return :math:`D^{-1/2} A D^{-1/2}`. (default: :obj:`True`)
        edges (str): ``"all"``, ``"inter_class"`` or ``"intra_class"``. (default: :obj:`"all"`)
        symmetrize (str): ``"union"`` or ``"mutual"``. (default: :obj:`"union"`)
        backend (str): kNN backend, see :mod:`~latentgraph.graphs.knn`. (default: :obj:`"torch"`)
        sigma (float, optional): RBF bandwidth; by default the median
            Euclidean length of the graph's edges. (default: :obj:`None`)

    Returns:
        :class:`~torch_geometric.data.Data` with ``edge_index`` (both
        directions, sorted), ``edge_weight``, ``x`` (flattened features),
        ``y`` and ``num_nodes``.

    Example:
        >>> g = latent_graph(torch.rand(20, 3, 4, 4), y=torch.arange(20) % 2, k=3)
        >>> g.num_nodes, g.x.shape
        (20, torch.Size([20, 48]))
        >>> bool((g.edge_weight >= 0).all())
        True
    """
    kwargs = dict(k=k, similarity=similarity, normalize=normalize, edges=edges, symmetrize=symmetrize,
                  backend=backend, sigma=sigma)
    if isinstance(x, Mapping):
        return {name: _single_graph(value, y, **kwargs) for name, value in x.items()}
    if isinstance(x, (list, tuple)):
        return [_single_graph(value, y, **kwargs) for value in x]
    return _single_graph(x, y, **kwargs)
