r"""Approximate kNN search with faiss, for graphs of whole data sets, and its recall.

Two backends join :data:`~latentgraph.graphs.knn.KNN_BACKENDS` (so
:func:`~latentgraph.graphs.knn.knn_indices`, :func:`~latentgraph.latent_graph`
and :func:`~latentgraph.dataset_graph` take them as ``backend=``); both search
the Euclidean neighbours of the similarity's embedding
(:meth:`~latentgraph.graphs.similarity.Similarity.embedding`), in float32 on
the CPU, with as many faiss threads as :func:`torch.get_num_threads`:

* ``"faiss-ivf"``: an inverted file of
  :math:`n_\text{list} = \lceil\sqrt{N}\,\rceil` faiss k-means cells
  (10 iterations, trained on at most :math:`64\,n_\text{list}` samples);
  each query scans its
  :math:`n_\text{probe} = \lceil 4\,n_\text{list}^{1/4} \sqrt{\max(k, 10) / 10}\,\rceil`
  nearest cells, scored by one matrix product per cell
  (:func:`probed_search`; :class:`IVFSearch` sets other values).
* ``"faiss-hnsw"``: a hierarchical navigable small-world graph
  (``IndexHNSWFlat``) with :math:`M = 32` links per node,
  ``efConstruction = 80`` and ``efSearch = max(96, 2k)`` (:class:`HNSWSearch`).

Each sample's own entry is dropped from its results (the last candidate when
the search missed it), and a row that the index could not fill with ``k``
other samples is searched again exactly, so every row gets ``k`` distinct
neighbours. :func:`knn_recall` measures recall@k of any neighbour table
against the exact search on a sample of queries.
"""
from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..validation import check_features, check_int, check_k
from .knn import KNN_BACKENDS, _merge_candidates, blocked_topk, faiss_threads, score_factors, search_values
from .similarity import Similarity, get_similarity, resolve_similarity, working_features


def _embedding(x: Tensor, sim: Similarity) -> tuple[Tensor, Tensor]:
    """``(features, embedding)`` of working features ``x`` (as every backend receives them
    from :func:`~latentgraph.graphs.knn.knn_search`) in float32 on the CPU, the embedding
    C-contiguous (the searched vectors)."""
    xw = x.detach().to("cpu", torch.float32)
    return xw, sim.embedding(xw).contiguous()


def _drop_self(found, k: int, rows):
    """Keep ``k`` of the ``k + 1`` results of each query ``rows[i]``: drop the query itself,
    or the last result if absent; missing results (``-1``) go last."""
    import numpy as np

    rank = (found == rows[:, None]) * 2 + (found < 0)
    keep = np.argsort(rank, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(found, keep, axis=1)


def _fill_short(found, e, k: int):
    """``found`` (numpy, in place) with its rows that lack a neighbour (``-1``) searched again exactly."""
    import faiss
    import numpy as np

    short = np.flatnonzero((found < 0).any(axis=1))
    if short.size:
        flat = faiss.IndexFlatL2(e.shape[1])
        flat.add(e)
        found[short] = _drop_self(flat.search(e[short], k + 1)[1], k, short)
    return found


def _search(index, e, k: int):
    """``index``'s ``k`` neighbours of every row of ``e``; rows left short are searched exactly."""
    import numpy as np

    return _fill_short(_drop_self(index.search(e, k + 1)[1], k, np.arange(e.shape[0])), e, k)


#: most scores computed at once by the cell search (2²² float32: 16 MiB)
_BLOCK = 2**22


def _cells(assigned: Tensor, nlist: int) -> tuple[Tensor, list[int]]:
    """Positions in ``assigned`` sorted by cell (stable), and the ``nlist + 1`` bounds of each cell's run."""
    order = torch.sort(assigned, stable=True).indices
    return order, torch.searchsorted(assigned[order], torch.arange(nlist + 1, device=assigned.device)).tolist()


def _merge(values: Tensor, index: Tensor, rows: Tensor, cols: Tensor, scores: Tensor) -> None:
    """Merge the candidates ``(rows, cols, scores)`` into the top-``k`` table ``(values, index)``
    in place, ties broken by index as in the exact search
    (:func:`~latentgraph.graphs.knn._merge_candidates`, which wants the rows sorted)."""
    order = torch.sort(rows, stable=True).indices
    _merge_candidates(values, index, rows[order], cols[order], scores[order], values.shape[1])


def probed_search(queries: Tensor, keys: Tensor, probes: Tensor, k: int) -> tuple[Tensor, Tensor]:
    r"""The ``k`` best other samples of each row :math:`i` (scores
    :math:`q_i^\top \kappa_j`, larger = closer) among the samples of the cells it
    probes: ``probes[i]`` lists cells, its own first; a sample's cell is the
    first probe of its row. Returns ``(indices, scores)``, both :math:`N \times k`,
    best first; index ``-1`` (score :math:`-\infty`) fills rows with fewer
    than ``k`` candidates.

    The candidates are scored a cell at a time, one matrix product for all the
    rows probing it (at most :data:`_BLOCK` scores at once), instead of
    faiss's per-vector scan of each query's lists. Each row's own cell gives
    its exact top-``k`` (:func:`~latentgraph.graphs.knn.blocked_topk`); in the
    other cells only scores above the row's running ``k``-th best are kept,
    and merged into the table once they outnumber its entries twice.

    Example:
        >>> q, keys = score_factors(torch.tensor([[0.0], [1.0], [5.0], [6.0], [3.5]]), get_similarity("rbf"))
        >>> probed_search(q, keys, torch.tensor([[0, 1], [0, 1], [1, 0], [1, 0], [1, 0]]), 1)[0].flatten().tolist()
        [1, 0, 3, 2, 2]
        >>> probed_search(q, keys, torch.tensor([[0], [0], [1], [1], [1]]), 2)[0].tolist()  # row 0: cell 0 only
        [[1, -1], [0, -1], [3, 4], [2, 4], [2, 3]]
    """
    num, nprobe = probes.shape
    nlist = int(probes.max()) + 1
    members, bounds = _cells(probes[:, 0], nlist)
    values = torch.full((num, k), -math.inf, dtype=queries.dtype, device=queries.device)
    index = torch.full((num, k), -1, dtype=torch.long, device=queries.device)
    for c in range(nlist):
        m = members[bounds[c]:bounds[c + 1]]
        if m.numel() > 1:
            top = min(k, m.numel() - 1)
            values[m, :top], cols = blocked_topk(queries[m], keys[m], top)
            index[m, :top] = m[cols]
    visits, visit_bounds = _cells(probes[:, 1:].flatten(), nlist)
    visits = torch.div(visits, max(nprobe - 1, 1), rounding_mode="floor")  # the visiting rows
    kth, found, count = values[:, -1].clone(), [], 0
    for c in range(nlist):
        m = members[bounds[c]:bounds[c + 1]]
        if not m.numel():  # a probed centroid may hold no sample
            continue
        for r in visits[visit_bounds[c]:visit_bounds[c + 1]].split(max(1, _BLOCK // m.numel())):
            scores = queries[r] @ keys[m].T
            hit = scores.amax(dim=1) > kth[r]  # most rows find nothing better here
            r, scores = r[hit], scores[hit]
            i, j = (scores > kth[r, None]).nonzero(as_tuple=True)
            found.append((r[i], m[j], scores[i, j]))
            count += i.numel()
            if count > 2 * num * k:
                _merge(values, index, *map(torch.cat, zip(*found)))
                kth, found, count = values[:, -1].clone(), [], 0
    if found:
        _merge(values, index, *map(torch.cat, zip(*found)))
    return index, values


@dataclass(frozen=True)
class IVFSearch:
    r"""Inverted-file search: faiss k-means cells, each query's ``nprobe`` nearest
    cells scanned by matrix products (:func:`probed_search`). Returns
    ``(indices, values)``: the values (:meth:`Similarity.pair_values` of the
    chosen pairs, exact float32 scores) only for float32 features.

    The :math:`N` samples' embeddings are clustered into ``nlist`` cells by
    faiss k-means (``niter`` iterations from ``seed``, on at most
    ``train_size`` samples drawn with ``seed``); each sample's ``nprobe``
    nearest centroids, its own cell first, are the cells searched for its
    ``k`` neighbours. The candidates are those of faiss's ``IndexIVFFlat``
    with the same cells, but scored by one matrix product per cell rather
    than a per-vector scan, several times faster per candidate.

    Args:
        nlist (int, optional): cells; ``None``: :meth:`default_nlist`,
            :math:`\lceil\sqrt{N}\,\rceil`. (default: :obj:`None`)
        nprobe (int, optional): cells scanned per query; ``None``:
            :meth:`default_nprobe`. (default: :obj:`None`)
        train_size (int, optional): most samples k-means is trained on;
            ``None``: :math:`64\,n_\text{list}`. (default: :obj:`None`)
        niter (int): k-means iterations. (default: :obj:`10`)
        seed (int): seed of the training sample and of k-means. (default: :obj:`0`)

    Example:
        >>> x = torch.randn(300, 8)
        >>> indices, values = IVFSearch(nlist=4, nprobe=4)(x, 5, get_similarity("rbf"))
        >>> indices.shape, values.shape  # values: squared distances of the chosen pairs
        (torch.Size([300, 5]), torch.Size([300, 5]))
    """

    nlist: int | None = None
    nprobe: int | None = None
    train_size: int | None = None
    niter: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("nlist", "nprobe", "train_size"):
            if getattr(self, name) is not None:
                check_int(getattr(self, name), name, minimum=1)
        check_int(self.niter, "niter", minimum=1)
        check_int(self.seed, "seed", minimum=0)
        if self.nlist is not None and self.nprobe is not None and self.nprobe > self.nlist:
            raise ValueError(f"`nprobe` must be at most `nlist` = {self.nlist}, got {self.nprobe}")
        if self.nlist is not None and self.train_size is not None and self.train_size < self.nlist:
            raise ValueError(f"`train_size` must be at least `nlist` = {self.nlist}, got {self.train_size}")

    @staticmethod
    def default_nlist(num: int) -> int:
        r""":math:`\lceil\sqrt{N}\,\rceil` cells."""
        return math.ceil(math.sqrt(num))

    @staticmethod
    def default_nprobe(nlist: int, k: int) -> int:
        r""":math:`\lceil 4\,n_\text{list}^{1/4} \sqrt{\max(k, 10) / 10}\,\rceil` cells
        (13 of 100 at :math:`N = 10^4`, 17 of 317 at :math:`10^5`, for :math:`k \le 10`)."""
        return math.ceil(4.0 * nlist**0.25 * math.sqrt(max(k, 10) / 10))

    def __call__(self, x: Tensor, k: int, sim: Similarity) -> tuple[Tensor, Tensor | None]:
        import faiss
        import numpy as np

        xw, emb = _embedding(x, sim)
        e = emb.numpy()
        num, dim = e.shape
        nlist = min(self.nlist or self.default_nlist(num), num)
        nprobe = min(self.nprobe or self.default_nprobe(nlist, k), nlist)
        size = max(self.train_size or 64 * nlist, nlist)
        train = e if size >= num else e[np.sort(np.random.default_rng(self.seed).choice(num, size, replace=False))]
        with faiss_threads():
            kmeans = faiss.Kmeans(dim, nlist, niter=self.niter, seed=self.seed, min_points_per_centroid=1,
                                  max_points_per_centroid=size)
            kmeans.train(train)
            probes = torch.from_numpy(kmeans.index.search(e, nprobe)[1])
        found, scores = probed_search(*score_factors(emb, sim), probes, k)
        values = search_values(scores, sim)
        short = (found < 0).any(dim=1).nonzero().flatten()
        if short.numel():  # cells too small: exact search, values recomputed
            found = torch.from_numpy(_fill_short(found.numpy(), e, k))
            values[short] = sim.pair_values(xw, short.repeat_interleave(k), found[short].flatten()).view(-1, k)
        found = found.to(x.device)
        # values are float32 computations: other precisions are recomputed by the caller
        return found, (values.to(x.device) if x.dtype == torch.float32 else None)


@dataclass(frozen=True)
class HNSWSearch:
    """faiss HNSW search: ``m`` links per node, ``ef_construction`` candidates while
    building, ``ef_search`` while searching (default ``max(96, 2k)``).

    Example:
        >>> HNSWSearch(m=8)(torch.randn(200, 8), 5, get_similarity("rbf")).shape
        torch.Size([200, 5])
    """

    m: int = 32
    ef_construction: int = 80
    ef_search: int | None = None

    def __call__(self, x: Tensor, k: int, sim: Similarity) -> Tensor:
        import faiss

        e = _embedding(x, sim)[1].numpy()
        with faiss_threads():
            index = faiss.IndexHNSWFlat(e.shape[1], self.m)
            index.hnsw.efConstruction = self.ef_construction
            index.add(e)
            index.hnsw.efSearch = max(self.ef_search or max(96, 2 * k), k + 1)
            found = _search(index, e, k)
        return torch.from_numpy(found).to(x.device, torch.long)


def _faiss_available() -> bool:
    return importlib.util.find_spec("faiss") is not None


#: Backends that may miss some of the exact neighbours (see :func:`knn_recall`).
APPROXIMATE_BACKENDS = {"faiss-ivf": IVFSearch(), "faiss-hnsw": HNSWSearch()}
KNN_BACKENDS.update({name: (search, _faiss_available) for name, search in APPROXIMATE_BACKENDS.items()})


@torch.no_grad()
def knn_recall(x: Tensor, neighbours: Tensor, similarity: str = "auto", queries: int | None = 1000,
               seed: int = 0) -> float:
    r"""Recall@k of a neighbour table against the exact search.

    For each query row :math:`i` (``queries`` rows drawn with ``seed``, or all
    rows for ``None``), the share of its :math:`k` listed neighbours that are
    among its exact :math:`k` nearest other samples, averaged over the
    queries:
    :math:`\frac{1}{|Q|\,k}\sum_{i \in Q} |\{j \in N_i : s_{ij} \ge s_i^{(k)}\}|`,
    where :math:`s_i^{(k)}` is the :math:`k`-th best exact score of row
    :math:`i`, so a neighbour tied with the :math:`k`-th counts as found,
    whichever of the tied ones the search returned. Scores are computed
    exactly, a block of queries at a time (never all :math:`N^2`).

    Args:
        x (Tensor): features :math:`N \times \ldots` (flattened per sample).
        neighbours (LongTensor): :math:`N \times k` table, e.g. from
            :func:`~latentgraph.knn_indices` with an approximate backend.
        similarity (str): as in :func:`~latentgraph.latent_graph`. (default: :obj:`"auto"`)
        queries (int, optional): rows checked. (default: :obj:`1000`)
        seed (int): seed of the query draw. (default: :obj:`0`)

    Example:
        >>> from latentgraph import knn_indices
        >>> x = torch.randn(500, 16)
        >>> knn_recall(x, knn_indices(x, 10, "rbf", backend="faiss-hnsw"), "rbf") > 0.9
        True
    """
    x = check_features(x, "x")
    num = x.shape[0]
    if not isinstance(neighbours, Tensor) or neighbours.dtype != torch.long or neighbours.dim() != 2 \
            or neighbours.shape[0] != num:
        raise ValueError(f"`neighbours` must be a LongTensor of shape [{num}, k], got "
                         f"{getattr(neighbours, 'dtype', type(neighbours).__name__)} "
                         f"{tuple(getattr(neighbours, 'shape', ()))}")
    k = check_k(neighbours.shape[1], num)
    if neighbours.numel() and not 0 <= int(neighbours.min()) <= int(neighbours.max()) < num:
        raise ValueError(f"`neighbours` refers to rows outside 0..{num - 1}")
    sim = get_similarity(resolve_similarity(x, similarity))
    e = sim.embedding(working_features(x.to(torch.float64))[0])
    if queries is None or queries >= num:
        rows = torch.arange(num, device=x.device)
    else:
        check_int(queries, "queries", minimum=1)
        rows = torch.randperm(num, generator=torch.Generator().manual_seed(seed))[:queries].to(x.device)
    sq = (e * e).sum(dim=1)
    hits = 0
    step = max(1, 2**24 // num)
    for start in range(0, rows.numel(), step):
        q = rows[start : start + step]
        scores = e[q] @ e.T  # larger = closer: inner products, or −‖e_i − e_j‖² + ‖e_i‖²
        if not sim.larger_is_closer:
            scores = 2.0 * scores - sq[None, :]
        tol = 1e-9 * scores.abs().amax(dim=1, keepdim=True).clamp_min(1.0)  # rounding of equal scores
        scores[torch.arange(q.numel(), device=q.device), q] = -math.inf
        kth = scores.topk(k, dim=1).values[:, -1:]
        listed = scores.gather(1, neighbours[q])
        hits += int((listed >= kth - tol).sum())
    return hits / (rows.numel() * k)
