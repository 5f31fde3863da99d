r"""k-nearest-neighbour backends.

A backend only *chooses* neighbours: it returns, for each of the :math:`B`
samples, the indices of its ``k`` most similar other samples (self excluded).
Edge weights are computed afterwards in torch from the chosen pairs, so they
are differentiable whatever the backend.

* ``"torch"`` (default): exact, blocked similarity + :func:`torch.topk` on the
  tensor's device (CPU or CUDA). Rows are processed in blocks of at most
  :math:`2^{25}` scores so that tens of thousands of samples fit in memory.
  Ties are broken deterministically: higher similarity first, then lower
  index — duplicate and all-zero rows still get exactly ``k`` neighbours.
* ``"faiss"``: exact :class:`faiss.IndexFlatL2` search on the CPU (``faiss-cpu``).
* ``"torch_cluster"``: :func:`torch_cluster.knn_graph`.
* ``"pyg"``: :func:`torch_geometric.nn.knn_graph` (needs ``pyg-lib`` or ``torch_cluster``).

Distance-based backends search Euclidean neighbours of
:func:`~latentgraph.graphs.similarity.neighbour_embedding`, which rank exactly
like the similarity, except for all-zero rows under ``"cosine"``/``"pearson"``
(similarity undefined) and for ties, which they may break differently.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Callable

import torch
from torch import Tensor

from ..validation import check_choice, check_features, check_k
from .similarity import Similarity, get_similarity, resolve_similarity, working_features

_BLOCK = 2**25


def _scores(e: Tensor, rows: slice, sim: Similarity) -> Tensor:
    """Scores that rank neighbours like the similarity (larger = closer)."""
    block = e[rows] @ e.T
    if not sim.larger_is_closer:  # -‖x_i − x_j‖² up to a per-row constant
        block = 2.0 * block - (e * e).sum(dim=1)[None, :]
    return block


def torch_knn_search(x: Tensor, k: int, similarity: str | Similarity) -> tuple[Tensor, Tensor]:
    r"""Exact blocked search: ``(indices, values)``, both :math:`B \times k`, where a
    value is the pair's similarity, or for ``"rbf"`` its squared Euclidean
    distance :math:`\lVert x_i - x_j\rVert^2` from the scores' expansion of the
    centred batch (see :func:`~latentgraph.graphs.similarity.neighbour_embedding`),
    clamped at 0: exact up to rounding of order
    :math:`\epsilon (\lVert x_i - \bar{x}\rVert^2 + \lVert x_j - \bar{x}\rVert^2)`,
    so a duplicate pair may get a tiny positive value instead of 0.

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
    e = sim.embedding(xw)
    num = e.shape[0]
    step = max(1, _BLOCK // num)
    found, values = [], []
    for start in range(0, num, step):
        stop = min(num, start + step)
        s = _scores(e, slice(start, stop), sim)
        local = torch.arange(stop - start, device=e.device)
        s[local, local + start] = float("-inf")
        # one extra candidate tells whether the k-th place is tied with the next one
        # (k ≤ B − 1, so the extra candidate exists: at worst the −inf self entry)
        vals, idx = s.topk(k + 1, dim=1)
        tied = vals[:, k - 1] == vals[:, k]
        vals, idx = vals[:, :k], idx[:, :k]
        if bool(tied.any()):
            rows = tied.nonzero().flatten()
            idx[rows] = torch.sort(s[rows], dim=1, descending=True, stable=True).indices[:, :k]
            vals[rows] = s[rows].gather(1, idx[rows])
        if not sim.larger_is_closer:  # score = ‖e_i‖² − ‖e_i − e_j‖²
            vals = ((e[start:stop] * e[start:stop]).sum(dim=1, keepdim=True) - vals).clamp_min(0.0)
        found.append(idx)
        values.append(vals)
    return torch.cat(found), sim.rescale_values(torch.cat(values), scale).to(x.dtype)


def _torch_knn(x: Tensor, k: int, sim: Similarity) -> Tensor:
    return torch_knn_search(x, k, sim)[0]


def _faiss_knn(x: Tensor, k: int, sim: Similarity) -> Tensor:
    import faiss
    import numpy as np

    e = sim.embedding(working_features(x.detach().to("cpu", torch.float32))[0]).contiguous().numpy()
    index = faiss.IndexFlatL2(e.shape[1])
    index.add(e)
    _, found = index.search(e, k + 1)
    is_self = found == np.arange(e.shape[0])[:, None]
    keep = np.argsort(is_self, axis=1, kind="stable")[:, :k]
    return torch.from_numpy(np.take_along_axis(found, keep, axis=1)).to(x.device, torch.long)


def _edges_to_rows(edge_index: Tensor, num: int, k: int) -> Tensor:
    """Convert ``source_to_target`` kNN edges (neighbour → centre) to a B×k table."""
    neighbour, centre = edge_index
    order = torch.sort(centre, stable=True).indices
    return neighbour[order].view(num, k)


def _torch_cluster_knn(x: Tensor, k: int, sim: Similarity) -> Tensor:
    from torch_cluster import knn_graph

    e = sim.embedding(working_features(x)[0]).detach()
    return _edges_to_rows(knn_graph(e, k, loop=False), e.shape[0], k)


def _pyg_knn(x: Tensor, k: int, sim: Similarity) -> Tensor:
    from torch_geometric.nn import knn_graph

    e = sim.embedding(working_features(x)[0]).detach()
    return _edges_to_rows(knn_graph(e, k, loop=False), e.shape[0], k)


def _pyg_available() -> bool:
    return any(importlib.util.find_spec(m) is not None for m in ("pyg_lib", "torch_cluster"))


KNN_BACKENDS: dict[str, tuple[Callable[[Tensor, int, Similarity], Tensor], Callable[[], bool]]] = {
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
    sim = get_similarity(resolve_similarity(x, similarity))
    search, available = KNN_BACKENDS[backend]
    if not available():
        raise ValueError(
            f"kNN backend {backend!r} is not installed; available here: {', '.join(available_backends())}"
        )
    with torch.no_grad():
        return search(x, k, sim)
