r"""k-nearest-neighbour backends.

A backend only *chooses* neighbours: it returns, for each of the :math:`B`
samples, the indices of its ``k`` most similar other samples (self excluded).
Edge weights are computed afterwards in torch from the chosen pairs, so they
are differentiable whatever the backend.

* ``"torch"`` (default): exact search on the tensor's device (CPU or CUDA),
  in blocks of 256 × 16384 scores (:func:`blocked_topk`), or for large
  batches (:data:`_SYMMETRIC_FROM`) in 1024 × 1024 tiles on and above the
  diagonal of the symmetric score matrix (:func:`symmetric_topk`), so memory
  stays bounded for any number of samples. Ties are broken deterministically:
  higher similarity first, then lower index — duplicate and all-zero rows
  still get exactly ``k`` neighbours.
* ``"faiss"``: faiss's exact search (:func:`faiss.knn`, inner product or
  squared L2) on the CPU (``faiss-cpu``), with torch's thread count; its
  distances serve as the values.
* ``"torch_cluster"``: :func:`torch_cluster.knn_graph`.
* ``"pyg"``: :func:`torch_geometric.nn.knn_graph` (needs ``pyg-lib`` or ``torch_cluster``).

Distance-based backends search Euclidean neighbours of
:meth:`Similarity.embedding <latentgraph.graphs.similarity.Similarity.embedding>`, which rank exactly
like the similarity, except for all-zero rows under ``"cosine"``/``"pearson"``
(similarity undefined) and for ties, which they may break differently.
"""
from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from ..validation import check_choice, check_features, check_k
from .similarity import Similarity, get_similarity, resolve_similarity, working_features

#: rows and columns of one block of scores (256 × 16384: 16 MiB in float32)
_ROWS, _COLS = 256, 16384
#: block rows shorter than this are ranked by :func:`torch.topk` directly
_GROUPED_FROM = 512
#: self-searches of this many samples or more use :func:`symmetric_topk`, and so do those of
#: ``_WIDE[0]`` or more samples of at least ``_WIDE[1]`` dimensions: below, its saved products
#: do not pay for its extra ranking (measured on one CPU thread: break-even near 5000 samples
#: at 64 dimensions, 4000 at 128; 0.74 of the time at 2048 × 256)
_SYMMETRIC_FROM = 6144
_WIDE = (2048, 256)
#: rows and columns of one tile of :func:`symmetric_topk` (1024 × 1024: 4 MiB in float32)
_TILE = 1024
#: most scores per group maximum in :func:`_over_threshold`
_GROUP = 16


def _group_count(cols: int, k: int) -> int:
    r"""How many strided groups a block row of ``cols`` scores is split into: a power of
    two dividing ``cols``, about :math:`\sqrt{cols / k}`, with more than ``k`` columns
    per group (1: no grouping)."""
    s = 1
    while cols >= _GROUPED_FROM and cols % (2 * s) == 0 and (2 * s) ** 2 * k <= cols and cols // (2 * s) > k:
        s *= 2
    return s


def _block_topk(scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
    r"""Exact top-``k`` of each row of a block of scores: ``(values, columns)``, ties
    broken by column.

    The :math:`c` scores of a row are split into :math:`s` strided groups
    (:func:`_group_count`); the ``k`` groups with the largest maxima hold the
    row's ``k`` largest scores (any other group's maximum lies below ``k``
    distinct scores), so :func:`torch.topk` — some 10 ns per element on a
    CPU — runs over :math:`c / s` maxima and :math:`s k` candidates instead of
    :math:`c` scores, while the maxima cost one vectorized pass. Rows where a
    tie at the ``k``-th place could make this ambiguous are ranked by a stable
    sort of the whole row. Needs more than ``k`` scores per row.
    """
    rows, c = scores.shape
    s = _group_count(c, k)
    if s == 1:
        values, cols = scores.topk(k + 1, dim=1)
        tied = values[:, k - 1] == values[:, k]
    else:
        width = c // s
        grouped = scores.view(rows, s, width)  # grouped[i, t, u] = scores[i, t * width + u]
        maxima, group = grouped.amax(dim=1).topk(k + 1, dim=1)
        group = group[:, :k]
        candidates = grouped.gather(2, group[:, None, :].expand(rows, s, k)).view(rows, s * k)
        values, cols = candidates.topk(k + 1, dim=1)  # candidate t * k + m is at t * width + group[m]
        cols = torch.div(cols, k, rounding_mode="floor") * width + group.gather(1, cols % k)
        tied = (maxima[:, k - 1] == maxima[:, k]) | (values[:, k - 1] == values[:, k])
    values, cols = values[:, :k], cols[:, :k]
    if bool(tied.any()):
        redo = tied.nonzero().flatten()
        best = torch.sort(scores[redo], dim=1, descending=True, stable=True)
        values, cols = values.clone(), cols.clone()
        values[redo], cols[redo] = best.values[:, :k], best.indices[:, :k]
    return values, cols


def _merge_topk(values: Tensor, index: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Exact top-``k`` of each row of candidates ``(values, index)``, ties broken by index."""
    top, pos = values.topk(k + 1, dim=1)
    found = index.gather(1, pos[:, :k])
    tied = top[:, k - 1] == top[:, k]
    top = top[:, :k]
    if bool(tied.any()):
        rows = tied.nonzero().flatten()
        by_index = index[rows].sort(dim=1, stable=True)
        best = values[rows].gather(1, by_index.indices).sort(dim=1, descending=True, stable=True)
        top, found = top.clone(), found.clone()
        top[rows] = best.values[:, :k]
        found[rows] = by_index.values.gather(1, best.indices[:, :k])
    return top, found


def _block_bounds(num: int, k: int, size: int) -> list[int]:
    """Bounds of blocks of ``size`` along ``num``, each longer than ``k`` (a short
    remainder joins the block before it)."""
    starts = list(range(0, num, max(size, k + 1)))
    if len(starts) > 1 and num - starts[-1] <= k:
        starts.pop()
    return [*starts, num]


def blocked_topk(queries: Tensor, keys: Tensor, k: int) -> tuple[Tensor, Tensor]:
    r"""Exact top-``k`` of the scores :math:`S = Q K^\top` per row, the diagonal
    excluded (a self-search): ``(values, indices)``, ties broken by index
    (lower first), exactly as a stable sort of each whole row would.

    The scores are computed in blocks of :data:`_ROWS` × :data:`_COLS`, one
    matrix product each, so memory stays bounded for any number of rows;
    each block keeps the ``k`` best of its rows (:func:`_block_topk`), and a
    row's blocks are merged (:func:`_merge_topk`) before the next rows are
    scored. Needs ``k < len(keys)``.

    Example:
        >>> e = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
        >>> blocked_topk(e, e, 1)
        (tensor([[0.8000],
                [0.8000],
                [0.6000]]), tensor([[1],
                [0],
                [1]]))
    """
    bounds = _block_bounds(keys.shape[0], k, _COLS)
    found_values, found_index = [], []
    for r0 in range(0, queries.shape[0], _ROWS):
        rows = queries[r0:r0 + _ROWS]
        values, index = [], []
        for c0, c1 in zip(bounds[:-1], bounds[1:]):
            scores = rows @ keys[c0:c1].T
            scores.diagonal(r0 - c0).fill_(float("-inf"))  # self pairs, where the block holds them
            block_values, cols = _block_topk(scores, k)
            values.append(block_values)
            index.append(cols + c0)
        if len(values) > 1:
            values, index = _merge_topk(torch.cat(values, 1), torch.cat(index, 1), k)
        else:
            values, index = values[0], index[0]
        found_values.append(values)
        found_index.append(index)
    return torch.cat(found_values), torch.cat(found_index)


def _over_threshold(scores: Tensor, threshold: Tensor, dim: int) -> tuple[Tensor, Tensor, Tensor]:
    r"""The scores of a block at or above the threshold of their row (``dim=1``: scores
    ``scores[r, c] >= threshold[r]``) or of their column (``dim=0``:
    ``scores[r, c] >= threshold[c]``): ``(owner, position, score)``, owner ascending,
    where the owner is the row (column) and the position the column (row).

    The :math:`n` scores of a row (column) are split into :math:`n / s` strided
    groups of :math:`s = \gcd(n, 16)` (group :math:`u` holds positions
    :math:`u, u + n/s, \ldots`), whose maxima take one vectorized pass over the
    block, along either dimension, without a transpose; only the members of
    groups whose maximum reaches the threshold are compared one by one. Needs a
    contiguous block.
    """
    length = scores.shape[dim]
    s = math.gcd(length, _GROUP)
    width = length // s
    if dim == 1:
        maxima = scores.view(-1, s, width).amax(dim=1)
        owner_stride, position_stride = scores.shape[1], 1
    else:
        maxima = scores.view(s, width, -1).amax(dim=0).t()
        owner_stride, position_stride = 1, scores.shape[1]
    owner, group = (maxima >= threshold[:, None]).nonzero().unbind(1)
    first = owner * owner_stride + group * position_stride
    at = first[:, None] + torch.arange(s, device=scores.device) * (width * position_stride)
    members = scores.view(-1).index_select(0, at.flatten()).view(-1, s)  # index_select: 3× faster than [at]
    hit, member = (members >= threshold.index_select(0, owner)[:, None]).nonzero().unbind(1)
    return owner[hit], group[hit] + member * width, members[hit, member]


def _merge_candidates(values: Tensor, index: Tensor, owner: Tensor, found: Tensor, scores: Tensor, k: int) -> None:
    """Merge candidates ``(owner, found, scores)`` — row ``owner`` of the table, sorted,
    column ``found``, score ``scores`` — into the top-``k`` table ``(values, index)``
    in place (:func:`_merge_topk`: ties broken by index). Only rows with candidates
    are ranked again."""
    counts = torch.bincount(owner, minlength=values.shape[0])
    rows = counts.nonzero().flatten()
    if rows.numel() == 0:
        return
    slot = torch.arange(owner.numel(), device=owner.device) - (counts.cumsum(0) - counts)[owner]
    width = int(counts.max())
    padded_values = values.new_full((values.shape[0], width), float("-inf"))
    padded_index = index.new_zeros((values.shape[0], width))
    padded_values[owner, slot] = scores
    padded_index[owner, slot] = found
    values[rows], index[rows] = _merge_topk(torch.cat([values[rows], padded_values[rows]], 1),
                                            torch.cat([index[rows], padded_index[rows]], 1), k)


def symmetric_topk(queries: Tensor, keys: Tensor, k: int) -> tuple[Tensor, Tensor]:
    r"""Exact top-``k`` of the scores :math:`S = Q K^\top` per row, the diagonal
    excluded, for a **symmetric** :math:`S` (the caller's guarantee, e.g.
    :math:`Q = K`): the same ``(values, indices)`` as :func:`blocked_topk`, ties
    broken by index, from about half the products.

    The rows are cut into tiles of :data:`_TILE`. Each diagonal tile is scored
    and ranked (:func:`_block_topk`), which gives every row a first top-``k``
    and a threshold: its ``k``-th best score so far. Each tile :math:`(I, J)`
    above the diagonal is then scored once, :math:`S_{IJ} = Q_I K_J^\top`, and
    serves the rows of :math:`I` along its rows and those of :math:`J` along
    its columns (:math:`S_{JI} = S_{IJ}^\top`): only scores at or above a row's
    threshold can enter its top-``k``; they are found through group maxima
    (:func:`_over_threshold`) and merged into the row's top-``k``
    (:func:`_merge_candidates`), which raises the threshold for the next tiles.
    On random data a row gets some 20–40 candidates in all; scores tied with
    the threshold are always candidates, so heavily tied data (many equal
    scores) is exact but slower. Needs ``k < len(keys)``.

    Example:
        >>> e = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
        >>> values, index = symmetric_topk(e, e, 2)  # row 1: 0 and 2 tie at 0, 0 wins
        >>> values.tolist(), index.tolist()
        ([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0], [1.0, 1.0]], [[2, 3], [3, 0], [0, 3], [0, 1]])
    """
    bounds = _block_bounds(queries.shape[0], k, _TILE)
    tiles = list(zip(bounds[:-1], bounds[1:]))
    values, index = [], []
    for a0, a1 in tiles:
        scores = queries[a0:a1] @ keys[a0:a1].T
        scores.fill_diagonal_(float("-inf"))
        tile_values, cols = _block_topk(scores, k)
        values.append(tile_values)
        index.append(cols + a0)
    values, index = torch.cat(values), torch.cat(index)
    for i, (a0, a1) in enumerate(tiles):
        for b0, b1 in tiles[i + 1:]:
            scores = queries[a0:a1] @ keys[b0:b1].T
            for dim, r0, r1, c0 in ((1, a0, a1, b0), (0, b0, b1, a0)):
                owner, position, found = _over_threshold(scores, values[r0:r1, k - 1], dim)
                _merge_candidates(values[r0:r1], index[r0:r1], owner, position + c0, found, k)
    return values, index


def _symmetric_pays(num: int, dim: int) -> bool:
    """Whether a self-search of ``num`` vectors of ``dim`` dimensions uses :func:`symmetric_topk`
    (:data:`_SYMMETRIC_FROM`, :data:`_WIDE`)."""
    return num >= _SYMMETRIC_FROM or (num >= _WIDE[0] and dim >= _WIDE[1])


def score_factors(e: Tensor, sim: Similarity) -> tuple[Tensor, Tensor]:
    r"""``(queries, keys)`` whose inner products rank pairs of the embedding ``e``
    (larger = closer), a symmetric matrix as :func:`symmetric_topk` needs:
    ``(e, e)`` for similarities searched by inner product,
    :math:`([e_i, \lVert e_i\rVert^2, 1], [2 e_j, -1, -\lVert e_j\rVert^2])` for
    those searched by distance, whose product is :math:`-\lVert e_i - e_j\rVert^2`.

    Example:
        >>> q, keys = score_factors(torch.tensor([[0.0], [1.0], [3.0]]), get_similarity("rbf"))
        >>> (q @ keys.T).tolist()
        [[0.0, -1.0, -9.0], [-1.0, 0.0, -4.0], [-9.0, -4.0, 0.0]]
    """
    if sim.larger_is_closer:
        return e, e
    sq = (e * e).sum(dim=1, keepdim=True)
    one = torch.ones_like(sq)
    return torch.cat([e, sq, one], 1), torch.cat([2.0 * e, -one, -sq], 1)


def search_values(scores: Tensor, sim: Similarity) -> Tensor:
    r""":meth:`Similarity.pair_values` of chosen pairs from their scores
    (:func:`score_factors`): the scores themselves, or the squared distances
    :math:`-s_{ij}` clamped at 0.

    Example:
        >>> search_values(torch.tensor([[-1.0], [-4.0], [1e-7]]), get_similarity("rbf")).flatten().tolist()
        [1.0, 4.0, 0.0]
    """
    return scores if sim.larger_is_closer else scores.neg().clamp_min(0.0)


def _torch_knn(x: Tensor, k: int, sim: Similarity) -> tuple[Tensor, Tensor]:
    """Exact search of working features ``x``: ``(indices, values)`` in ``x``'s scale and
    dtype (:func:`torch_knn_search`)."""
    queries, keys = score_factors(sim.embedding(x), sim)
    values, idx = (symmetric_topk if _symmetric_pays(*queries.shape) else blocked_topk)(queries, keys, k)
    return idx, search_values(values, sim)


def torch_knn_search(x: Tensor, k: int, similarity: str | Similarity) -> tuple[Tensor, Tensor]:
    r"""Exact search: ``(indices, values)``, both :math:`B \times k`, where a
    value is the pair's similarity, or for ``"rbf"`` its squared Euclidean
    distance :math:`\lVert x_i - x_j\rVert^2` from the scores' expansion of the
    centred batch (see :meth:`Similarity.embedding <latentgraph.graphs.similarity.Similarity.embedding>`),
    clamped at 0: exact up to rounding of order
    :math:`\epsilon (\lVert x_i - \bar{x}\rVert^2 + \lVert x_j - \bar{x}\rVert^2)`,
    so a duplicate pair may get a tiny positive value instead of 0.

    Similarities searched by inner product (``larger_is_closer``) score
    :math:`e_i^\top e_j`; the others score
    :math:`2 e_i^\top e_j - \lVert e_i\rVert^2 - \lVert e_j\rVert^2 = -\lVert e_i - e_j\rVert^2`,
    one matrix product of :math:`[e_i, \lVert e_i\rVert^2, 1]` and
    :math:`[2 e_j, -1, -\lVert e_j\rVert^2]` (:func:`score_factors`). Both are symmetric, so from
    :data:`_SYMMETRIC_FROM` samples on (from ``_WIDE[0]`` with at least
    ``_WIDE[1]`` dimensions) :func:`symmetric_topk` searches, below it
    :func:`blocked_topk`; both give the same result (see them for the blocks
    and the ties).

    Half-precision inputs are searched in float32, and very large or small
    ones rescaled (:func:`~latentgraph.graphs.similarity.working_features`);
    values have ``x``'s dtype.

    Example:
        >>> idx, values = torch_knn_search(torch.tensor([[0.0], [1.0], [3.0]]) + 1000, 1, "rbf")
        >>> idx.flatten().tolist(), values.flatten().tolist()
        ([1, 0, 1], [1.0, 1.0, 4.0])
    """
    sim = get_similarity(similarity) if isinstance(similarity, str) else similarity
    xw, scale = working_features(x)
    idx, values = _torch_knn(xw, k, sim)
    return idx, sim.rescale_values(values, scale).to(x.dtype)


@contextmanager
def faiss_threads() -> Iterator[None]:
    """Run faiss with :func:`torch.get_num_threads` threads, then restore its count."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(torch.get_num_threads())
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _faiss_knn(x: Tensor, k: int, sim: Similarity) -> tuple[Tensor, Tensor | None]:
    """faiss's exact search of the embedding (inner product or squared L2, per the
    similarity), on as many threads as torch uses; its distances are the values."""
    import faiss
    import numpy as np

    e = sim.embedding(x.detach().cpu().float()).contiguous().numpy()
    metric = faiss.METRIC_INNER_PRODUCT if sim.larger_is_closer else faiss.METRIC_L2
    with faiss_threads():
        values, found = faiss.knn(e, e, k + 1, metric=metric)
    # drop each row's own entry, or its last one when the row itself is not among
    # the k + 1 (ties with duplicates): a boolean mask keeps the order, no argsort
    drop = found == np.arange(len(e))[:, None]
    drop[~drop.any(axis=1), k] = True
    keep = ~drop
    found = torch.from_numpy(found[keep].reshape(len(e), k)).to(x.device)
    if x.dtype != torch.float32:  # faiss computes in float32: values of other precisions are recomputed
        return found, None
    return found, torch.from_numpy(values[keep].reshape(len(e), k)).to(x.device)


def _edges_to_rows(edge_index: Tensor, num: int, k: int) -> Tensor:
    """Convert ``source_to_target`` kNN edges (neighbour → centre) to a B×k table."""
    neighbour, centre = edge_index
    order = torch.sort(centre, stable=True).indices
    return neighbour[order].view(num, k)


def _torch_cluster_knn(x: Tensor, k: int, sim: Similarity) -> tuple[Tensor, None]:
    from torch_cluster import knn_graph

    e = sim.embedding(x).detach()
    return _edges_to_rows(knn_graph(e, k, loop=False), e.shape[0], k), None


def _pyg_knn(x: Tensor, k: int, sim: Similarity) -> tuple[Tensor, None]:
    from torch_geometric.nn import knn_graph

    e = sim.embedding(x).detach()
    return _edges_to_rows(knn_graph(e, k, loop=False), e.shape[0], k), None


def _pyg_available() -> bool:
    return any(importlib.util.find_spec(m) is not None for m in ("pyg_lib", "torch_cluster"))


#: name -> (search returning the indices or ``(indices, values or None)``, whether it is installed)
KNN_BACKENDS: dict[str, tuple[Callable[[Tensor, int, Similarity], Tensor | tuple[Tensor, Tensor | None]],
                              Callable[[], bool]]] = {
    "torch": (_torch_knn, lambda: True),
    "faiss": (_faiss_knn, lambda: importlib.util.find_spec("faiss") is not None),
    "torch_cluster": (_torch_cluster_knn, lambda: importlib.util.find_spec("torch_cluster") is not None),
    "pyg": (_pyg_knn, _pyg_available),
}


def available_backends() -> list[str]:
    """Names of the kNN backends that can run in this environment.

    Example:
        >>> "torch" in available_backends()
        True
    """
    return [name for name, (_, available) in KNN_BACKENDS.items() if available()]


def knn_search(x: Tensor, k: int, sim: Similarity, backend: str = "torch") -> tuple[Tensor, Tensor | None]:
    """``(indices, values)`` of :func:`knn_indices` for checked 2-D working features
    (:func:`~latentgraph.graphs.similarity.working_features`, which no backend applies
    again) and a resolved similarity; ``values`` (:meth:`Similarity.pair_values` of the
    chosen pairs, in ``x``'s scale) is ``None`` for backends that do not return them.
    No autograd."""
    search, available = KNN_BACKENDS[backend]
    if not available():
        raise ValueError(
            f"kNN backend {backend!r} is not installed; available here: {', '.join(available_backends())}"
        )
    with torch.no_grad():
        found = search(x, k, sim)
    return found if isinstance(found, tuple) else (found, None)


def knn_indices(x: Tensor, k: int, similarity: str, backend: str = "torch") -> Tensor:
    r"""Indices of the ``k`` most similar other samples of each row of ``x``.

    Args:
        x (Tensor): features :math:`B \times \ldots` (flattened per sample).
        k (int): neighbours per sample, ``1 ≤ k ≤ B − 1``.
        similarity (str): ``"cosine"``, ``"pearson"``, ``"rbf"`` or ``"auto"``.
        backend (str): see the module docstring. (default: :obj:`"torch"`)

    Returns:
        LongTensor of shape :math:`B \times k` on ``x.device``.

    Example:
        >>> x = torch.tensor([[0.0], [1.0], [3.0]])
        >>> knn_indices(x, 1, "rbf").flatten().tolist()
        [1, 0, 1]
    """
    check_choice(backend, "backend", KNN_BACKENDS)
    x = check_features(x, "x")
    check_k(k, x.shape[0])
    return knn_search(working_features(x)[0], k, get_similarity(resolve_similarity(x, similarity)), backend)[0]
