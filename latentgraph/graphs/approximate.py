r"""Approximate kNN search with faiss, for graphs of whole data sets, and its recall.

Two backends join :data:`~latentgraph.graphs.knn.KNN_BACKENDS` (so
:func:`~latentgraph.graphs.knn.knn_indices`, :func:`~latentgraph.latent_graph`
and :func:`~latentgraph.dataset_graph` take them as ``backend=``); both search
the Euclidean neighbours of the similarity's embedding
(:meth:`~latentgraph.graphs.similarity.Similarity.embedding`), in float32 on
the CPU, with as many faiss threads as :func:`torch.get_num_threads`:

* ``"faiss-ivf"``: an inverted file (``IndexIVFFlat``) of
  :math:`n_\text{list} = \lceil\sqrt{N}\,\rceil` k-means cells, trained on at
  most :math:`64\,n_\text{list}` samples; each query scans its
  :math:`n_\text{probe} = \lceil n_\text{list}/8\rceil` nearest cells
  (:class:`IVFSearch` sets other values).
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
from .knn import KNN_BACKENDS, faiss_threads
from .similarity import Similarity, get_similarity, resolve_similarity, working_features


def _embedding(x: Tensor, sim: Similarity):
    """The searched vectors, a C-contiguous float32 numpy array."""
    return sim.embedding(working_features(x.detach().to("cpu", torch.float32))[0]).contiguous().numpy()


def _drop_self(found, k: int, rows):
    """Keep ``k`` of the ``k + 1`` results of each query ``rows[i]``: drop the query itself,
    or the last result if absent; missing results (``-1``) go last."""
    import numpy as np

    rank = (found == rows[:, None]) * 2 + (found < 0)
    keep = np.argsort(rank, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(found, keep, axis=1)


def _search(index, e, k: int):
    """``index``'s ``k`` neighbours of every row of ``e``; rows left short are searched exactly."""
    import faiss
    import numpy as np

    found = _drop_self(index.search(e, k + 1)[1], k, np.arange(e.shape[0]))
    short = np.flatnonzero((found < 0).any(axis=1))
    if short.size:
        flat = faiss.IndexFlatL2(e.shape[1])
        flat.add(e)
        found[short] = _drop_self(flat.search(e[short], k + 1)[1], k, short)
    return found


@dataclass(frozen=True)
class IVFSearch:
    r"""faiss inverted-file search: ``nlist`` k-means cells (default
    :math:`\lceil\sqrt{N}\,\rceil`), ``nprobe`` of them scanned per query
    (default :math:`\lceil n_\text{list}/8\rceil`), cells trained on at most
    ``train_size`` samples (default :math:`64\,n_\text{list}`), drawn with ``seed``.

    Example:
        >>> x = torch.randn(300, 8)
        >>> IVFSearch(nlist=4, nprobe=4)(x, 5, get_similarity("rbf")).shape
        torch.Size([300, 5])
    """

    nlist: int | None = None
    nprobe: int | None = None
    train_size: int | None = None
    seed: int = 0

    def __call__(self, x: Tensor, k: int, sim: Similarity) -> Tensor:
        import faiss
        import numpy as np

        e = _embedding(x, sim)
        num, dim = e.shape
        nlist = min(self.nlist or math.ceil(math.sqrt(num)), num)
        train = e
        if (self.train_size or 64 * nlist) < num:
            pick = np.random.default_rng(self.seed).choice(num, self.train_size or 64 * nlist, replace=False)
            train = e[np.sort(pick)]
        with faiss_threads():
            index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, nlist)
            index.cp.seed = self.seed
            index.cp.min_points_per_centroid = 1  # few samples per cell is fine for a search index
            index.train(train)
            index.add(e)
            index.nprobe = min(self.nprobe or math.ceil(nlist / 8), nlist)
            found = _search(index, e, k)
        return torch.from_numpy(found).to(x.device, torch.long)


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

        e = _embedding(x, sim)
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
