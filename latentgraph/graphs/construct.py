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
kNN backend. Half-precision features are computed in float32 and very
large or very small ones rescaled by a power of two
(:func:`~latentgraph.graphs.similarity.working_features`), so neither
overflows nor underflows; weights and matrices come back in ``x``'s dtype.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:  # PyG is imported on first use: it takes seconds
    from torch_geometric.data import Data

from ..validation import check_bandwidth, check_choice, check_features, check_flag, check_k, check_labels
from .knn import KNN_BACKENDS, knn_search
from .similarity import Similarity, get_similarity, resolve_similarity, working_features

EDGE_SETS = ("all", "inter_class", "intra_class")
SYMMETRIZATIONS = ("union", "mutual")


def _check_options(normalize: bool, backend: str, sigma: float | None) -> None:
    check_flag(normalize, "normalize")
    check_choice(backend, "backend", KNN_BACKENDS)
    check_bandwidth(sigma)


def _prepare(x: Tensor, y: Tensor | None, k: int | None, similarity: str, edges: str, symmetrize: str):
    xf = check_features(x, "x")
    num = xf.shape[0]
    k = check_k(k, num)
    sim = get_similarity(resolve_similarity(xf, similarity))
    check_choice(edges, "edges", EDGE_SETS)
    check_choice(symmetrize, "symmetrize", SYMMETRIZATIONS)
    if y is not None:
        y = check_labels(y, num, xf.device)
    elif edges != "all":
        raise ValueError(f"`edges={edges!r}` needs class labels `y`")
    return xf, y, k, sim


def _neighbour_pairs(
    xf: Tensor, k: int | None, sim: Similarity, symmetrize: str, backend: str, with_values: bool = False
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Sorted ``(row, col, value)`` of the graph after kNN and symmetrization (no self loops).

    ``value`` (:meth:`Similarity.pair_values`) comes from the search itself
    when ``with_values`` is set and the backend returns it (torch, faiss),
    without autograd; it is ``None`` otherwise. Each undirected pair takes the closer of its two directed
    values, so both directions carry the same number.
    """
    num = xf.shape[0]
    if k is None:
        row, col = (~torch.eye(num, dtype=torch.bool, device=xf.device)).nonzero().T
        return row, col, None
    idx, value = knn_search(xf, k, sim, backend)
    value = value.flatten() if with_values and value is not None else None
    row = torch.arange(num, device=xf.device).repeat_interleave(k)
    col = idx.flatten()
    # every choice i → j stands for both directed keys (i, j) and (j, i): a key
    # chosen from both ends appears twice, and takes the larger value of the two
    keys, inverse, counts = torch.unique(torch.cat([row * num + col, col * num + row]), sorted=True,
                                         return_inverse=True, return_counts=True)
    if value is not None:
        reduce = "amax" if sim.larger_is_closer else "amin"
        value = torch.zeros(keys.numel(), dtype=value.dtype, device=value.device).scatter_reduce(
            0, inverse, torch.cat([value, value]), reduce, include_self=False)
    if symmetrize == "mutual":
        both = counts == 2
        keys, value = keys[both], (value[both] if value is not None else None)
    return keys // num, keys % num, value


def _class_keep(y_a: Tensor | None, y_b: Tensor | None, edges: str) -> Tensor | None:
    """Which pairs with labels ``y_a``, ``y_b`` (broadcastable) the edge set keeps; None keeps all."""
    if edges == "all":
        return None
    differ = y_a != y_b
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
    _check_options(normalize, backend, sigma)
    xf, y, k, sim = _prepare(x, y, k, similarity, edges, symmetrize)
    xw, scale = working_features(xf)
    neighbours, mask = _dense_masks(xw, y, k, sim, edges, symmetrize, backend)
    # default σ fitted to the kNN pairs
    full = sim.matrix(xw, None if sigma is None else sigma / scale, fit=neighbours).clamp_min(0.0)
    adj = torch.where(mask, full, torch.zeros((), dtype=xw.dtype, device=xw.device))
    if normalize:
        dinv = _inv_sqrt(adj.sum(dim=1))
        adj = adj * (dinv[:, None] * dinv[None, :])
    return adj.to(xf.dtype)


def _dense_masks(xf: Tensor, y: Tensor | None, k: int | None, sim: Similarity, edges: str, symmetrize: str,
                 backend: str) -> tuple[Tensor, Tensor]:
    """Boolean B×B patterns: after kNN and symmetrization, then after the class filter."""
    row, col, _ = _neighbour_pairs(xf, k, sim, symmetrize, backend)
    neighbours = torch.zeros(xf.shape[0], xf.shape[0], dtype=torch.bool, device=xf.device)
    neighbours[row, col] = True
    classes = _class_keep(y[:, None], y[None, :], edges) if y is not None else None
    return neighbours, (neighbours if classes is None else neighbours & classes)


def adjacency_mask(
    x: Tensor,
    k: int | None = 10,
    similarity: str = "auto",
    y: Tensor | None = None,
    edges: str = "all",
    symmetrize: str = "union",
    backend: str = "torch",
) -> Tensor:
    r"""Boolean :math:`B \times B` edge pattern of the latent geometry graph of ``x``
    (steps 2–4 of the construction, no weights): ``True`` where
    :func:`dense_adjacency` may be non-zero.

    Example:
        >>> adjacency_mask(torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]]), k=1).int().tolist()
        [[0, 1, 0], [1, 0, 1], [0, 1, 0]]
    """
    check_choice(backend, "backend", KNN_BACKENDS)
    xf, y, k, sim = _prepare(x, y, k, similarity, edges, symmetrize)
    return _dense_masks(working_features(xf)[0], y, k, sim, edges, symmetrize, backend)[1]


def _single_graph(x, y, k, similarity, normalize, edges, symmetrize, backend, sigma) -> Data:
    xf, y, k, sim = _prepare(x, y, k, similarity, edges, symmetrize)
    num = xf.shape[0]
    xw, scale = working_features(xf)
    # without autograd, the exact search's own values serve as weights (no second pass)
    searched = not (torch.is_grad_enabled() and xf.requires_grad)
    row, col, raw = _neighbour_pairs(xw, k, sim, symmetrize, backend, with_values=searched)
    if raw is None:
        raw = sim.pair_values(xw, row, col)
    # default parameters fitted to all kNN pairs
    weight = sim.weights(raw, None if sigma is None else sigma / scale).clamp_min(0.0)
    keep = _class_keep(y[row], y[col], edges) if y is not None else None
    if keep is not None:
        row, col, weight = row[keep], col[keep], weight[keep]
    if normalize:
        dinv = _inv_sqrt(torch.zeros(num, dtype=weight.dtype, device=weight.device).index_add(0, row, weight))
        weight = weight * (dinv[row] * dinv[col])
    from torch_geometric.data import Data  # imported on first use: PyG takes seconds to import

    return Data(x=xf, edge_index=torch.stack([row, col]), edge_weight=weight.to(xf.dtype), y=y, num_nodes=num)


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
    _check_options(normalize, backend, sigma)
    kwargs = dict(k=k, similarity=similarity, normalize=normalize, edges=edges, symmetrize=symmetrize,
                  backend=backend, sigma=sigma)
    if isinstance(x, Mapping):
        return {name: _single_graph(value, y, **kwargs) for name, value in x.items()}
    if isinstance(x, (list, tuple)):
        return [_single_graph(value, y, **kwargs) for value in x]
    return _single_graph(x, y, **kwargs)
