r"""Graph signal processing on latent geometry graphs.

A graph is either a PyG :class:`~torch_geometric.data.Data` (``edge_index``
holding both directions of each undirected edge, optional ``edge_weight``) or
a dense symmetric :math:`B \times B` adjacency tensor. Conventions follow
PyGSP, against which the tests check every function:

* combinatorial Laplacian :math:`L = D - A`;
* normalized Laplacian :math:`L = I - D^{-1/2} A D^{-1/2}`, with a zero row
  and column for a node of degree zero;
* variation of a signal :math:`S \in \mathbb{R}^{B \times C}`:
  :math:`\operatorname{tr}(S^\top L S) = \sum_{i<j} w_{ij} \lVert s_i - s_j\rVert^2`
  (each undirected edge counted once).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Union

import numpy as np
import torch
from torch import Tensor

from .graphs.construct import _inv_sqrt
from .validation import check_choice, check_flag, check_labels, check_tensor

if TYPE_CHECKING:  # imported on first use: together they take seconds to import
    import networkx as nx
    import pygsp
    import scipy.sparse as sp
    from torch_geometric.data import Data

LAPLACIANS = ("combinatorial", "normalized")
GraphLike = Union["Data", Tensor]


def _check_graph(g: object, name: str = "g") -> tuple[Tensor, Tensor, int] | Tensor:
    """Return ``(edge_index, edge_weight, num_nodes)`` for a Data (any object with
    ``edge_index``), the matrix for a dense graph."""
    if not isinstance(g, Tensor) and hasattr(g, "edge_index"):
        if g.edge_index is None or g.num_nodes is None:
            raise ValueError(f"`{name}` must carry `edge_index` and `num_nodes`")
        edge_index, num = g.edge_index, int(g.num_nodes)
        if edge_index.dim() != 2 or edge_index.shape[0] != 2 or edge_index.dtype != torch.long:
            raise ValueError(f"`{name}.edge_index` must be a 2×E LongTensor, got {edge_index.dtype} "
                             f"of shape {tuple(edge_index.shape)}")
        if edge_index.numel() and not 0 <= int(edge_index.min()) <= int(edge_index.max()) < num:
            raise ValueError(f"`{name}.edge_index` refers to nodes outside 0..{num - 1} (num_nodes = {num})")
        weight = g.edge_weight if g.edge_weight is not None else torch.ones(
            edge_index.shape[1], device=edge_index.device)
        if weight.shape != (edge_index.shape[1],) or not weight.is_floating_point():
            raise ValueError(f"`{name}.edge_weight` must be a float tensor of shape "
                             f"[{edge_index.shape[1]}] (one per edge), got {weight.dtype} {tuple(weight.shape)}")
        if not torch.isfinite(weight).all():
            raise ValueError(f"`{name}.edge_weight` contains NaN or infinite values")
        return edge_index, weight, num
    adj = check_tensor(g, name)
    if adj.dim() != 2 or adj.shape[0] != adj.shape[1]:
        raise ValueError(f"`{name}` must be a Data or a square B×B adjacency, got shape {tuple(adj.shape)}")
    if not adj.is_floating_point():
        raise TypeError(f"`{name}` must be a floating-point adjacency, got dtype {adj.dtype}")
    if not torch.isfinite(adj).all():
        raise ValueError(f"`{name}` contains NaN or infinite values")
    if not torch.allclose(adj, adj.T, rtol=1e-5, atol=1e-6):
        raise ValueError(f"`{name}` must be symmetric (an undirected graph)")
    return adj


def laplacian(g: GraphLike, kind: str = "combinatorial") -> Tensor:
    r"""Graph Laplacian, sparse (COO) for a ``Data`` and dense for a matrix.

    Args:
        g (Data or Tensor): the graph.
        kind (str): ``"combinatorial"`` (:math:`D - A`) or ``"normalized"``
            (:math:`I - D^{-1/2} A D^{-1/2}`, zero for isolated nodes).
            (default: :obj:`"combinatorial"`)

    Example:
        >>> A = torch.tensor([[0.0, 4.0], [4.0, 0.0]])
        >>> laplacian(A).tolist()
        [[4.0, -4.0], [-4.0, 4.0]]
        >>> laplacian(A, kind="normalized").tolist()
        [[1.0, -1.0], [-1.0, 1.0]]
    """
    check_choice(kind, "kind", LAPLACIANS)
    graph = _check_graph(g)
    if isinstance(graph, Tensor):
        deg = graph.sum(dim=1)
        if kind == "combinatorial":
            return torch.diag(deg) - graph
        dinv = _inv_sqrt(deg)
        return torch.diag((deg > 0).to(graph.dtype)) - dinv[:, None] * graph * dinv[None, :]
    edge_index, weight, num = graph
    row, col = edge_index
    deg = torch.zeros(num, dtype=weight.dtype, device=weight.device).index_add(0, row, weight)
    nodes = torch.arange(num, device=row.device)
    if kind == "combinatorial":
        diag, off = deg, -weight
    else:
        dinv = _inv_sqrt(deg)
        diag, off = (deg > 0).to(weight.dtype), -dinv[row] * weight * dinv[col]
    indices = torch.cat([torch.stack([nodes, nodes]), edge_index], dim=1)
    return torch.sparse_coo_tensor(indices, torch.cat([diag, off]), (num, num), check_invariants=True).coalesce()


def _check_signal(s: object, num: int, name: str = "s") -> Tensor:
    s = check_tensor(s, name)
    if not s.is_floating_point():
        raise TypeError(f"`{name}` must be a floating-point signal, got dtype {s.dtype}")
    if s.dim() not in (1, 2) or s.shape[0] != num:
        raise ValueError(f"`{name}` must have shape [{num}] or [{num}, C], got {tuple(s.shape)}")
    if not torch.isfinite(s).all():
        raise ValueError(f"`{name}` contains NaN or infinite values")
    return s if s.dim() == 2 else s[:, None]


def _check_undirected(edge_index: Tensor, weight: Tensor, num: int) -> None:
    row, col = edge_index
    forward, order = torch.sort(row * num + col)
    backward, reverse = torch.sort(col * num + row)
    if not (torch.equal(forward, backward) and torch.allclose(weight[order], weight[reverse], rtol=1e-5, atol=1e-7)):
        raise ValueError("`g` must be undirected: every edge (i, j) needs its reverse (j, i) with the same weight")


def total_variation(g: GraphLike, s: Tensor) -> Tensor:
    r"""Variation :math:`\operatorname{tr}(S^\top L S) = \sum_{i<j} w_{ij}\lVert s_i - s_j\rVert^2`.

    Differentiable with respect to both the signal and the edge weights.

    Args:
        g (Data or Tensor): an undirected graph.
        s (Tensor): signal of shape :math:`[B]` or :math:`[B, C]`.

    Example:
        >>> A = torch.tensor([[0.0, 2.0], [2.0, 0.0]])
        >>> total_variation(A, torch.tensor([1.0, 4.0]))
        tensor(18.)
    """
    graph = _check_graph(g)
    if isinstance(graph, Tensor):
        s = _check_signal(s, graph.shape[0])
        dtype = torch.promote_types(graph.dtype, s.dtype)  # as the sparse form does
        graph, s = graph.to(dtype), s.to(dtype)
        return (graph.sum(dim=1) * (s * s).sum(dim=1)).sum() - (s * (graph @ s)).sum()
    edge_index, weight, num = graph
    s = _check_signal(s, num)
    _check_undirected(edge_index, weight.detach(), num)
    row, col = edge_index
    return 0.5 * (weight * ((s[row] - s[col]) ** 2).sum(dim=1)).sum()


def label_variation(g: GraphLike, y: Tensor | None = None, normalized: bool = False) -> Tensor:
    r"""Label variation :math:`\sigma = \operatorname{tr}(V^\top L V)` of the one-hot label matrix :math:`V`.

    With one-hot labels, :math:`\sigma = 2\sum_{i<j,\, y_i \ne y_j} w_{ij}`
    (Lassance et al., 2020, eq. 5). ``normalized=True`` divides by
    :math:`2\sum_{i<j} w_{ij}`, giving the share of edge weight between
    distinct classes, in :math:`[0, 1]` (the paper's appendix B). A batch of a
    single class, or a graph without edges, gives 0.

    Args:
        g (Data or Tensor): an undirected graph.
        y (LongTensor, optional): labels of shape :math:`[B]`; defaults to
            ``g.y`` for a ``Data``. (default: :obj:`None`)
        normalized (bool): return the inter-class share. (default: :obj:`False`)

    Example:
        >>> A = torch.tensor([[0.0, 1.0, 3.0], [1.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
        >>> y = torch.tensor([0, 0, 1])
        >>> label_variation(A, y), label_variation(A, y, normalized=True)
        (tensor(6.), tensor(0.7500))
    """
    check_flag(normalized, "normalized")
    graph = _check_graph(g)
    if y is None:
        y = getattr(g, "y", None)
        if y is None:
            raise ValueError("`y` is required (the graph carries no labels)")
    if isinstance(graph, Tensor):
        y = check_labels(y, graph.shape[0], graph.device)
        weight, differ = graph, y[:, None] != y[None, :]
    else:
        edge_index, weight, num = graph
        y = check_labels(y, num, weight.device)
        _check_undirected(edge_index, weight.detach(), num)
        differ = y[edge_index[0]] != y[edge_index[1]]
    # Σ over ordered pairs = 2 Σ_{i<j}: exactly tr(VᵀLV), and exactly 0 for one class
    sigma = (weight * differ).sum()
    if not normalized:
        return sigma
    total = weight.sum()
    positive = total > 0
    return torch.where(positive, sigma / torch.where(positive, total, torch.ones_like(total)), torch.zeros_like(total))


#: Above this many nodes, :func:`eigenmaps` of an edge-list graph uses the sparse eigensolver.
SPARSE_EIGEN_NODES = 2048
EIGEN_METHODS = ("auto", "dense", "sparse")


def eigenmaps(g: GraphLike, dim: int = 2, method: str = "auto") -> Tensor:
    r"""Laplacian eigenmaps (Belkin & Niyogi, 2003): node coordinates for drawing.

    Solves :math:`L u = \lambda D u` through the normalized Laplacian of the
    nodes that have edges and returns the ``dim`` generalized eigenvectors
    after the first (constant) one, as a detached :math:`B \times \text{dim}`
    tensor; each coordinate's sign makes its largest entry (in magnitude)
    positive. Isolated nodes are placed at the origin and left out of the
    eigenproblem (each would otherwise bring an eigenvalue 0 whose
    eigenvector, zero on every other node, would waste a coordinate).
    Coordinates beyond the number of non-isolated nodes minus one are 0.

    Args:
        g (Data or Tensor): an undirected graph.
        dim (int): coordinates per node, in ``1..B-1``. (default: :obj:`2`)
        method (str): ``"dense"`` (:func:`torch.linalg.eigh` of the
            :math:`B \times B` matrix), ``"sparse"`` (Lanczos,
            :func:`scipy.sparse.linalg.eigsh`, on the ``dim + 1`` largest
            eigenvalues of :math:`D^{-1/2} A D^{-1/2}`: memory and time
            proportional to the edges, never a dense :math:`B \times B`), or
            ``"auto"``: sparse for a ``Data`` of more than
            :data:`SPARSE_EIGEN_NODES` nodes, dense otherwise.
            (default: :obj:`"auto"`)

    Example:
        >>> A = torch.ones(4, 4) - torch.eye(4)
        >>> eigenmaps(A, dim=2).shape
        torch.Size([4, 2])
    """
    check_choice(method, "method", EIGEN_METHODS)
    graph = _check_graph(g)
    num = graph.shape[0] if isinstance(graph, Tensor) else graph[2]
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim < num:
        raise ValueError(f"`dim` must be an int in 1..B-1 = 1..{num - 1}, got {dim!r}")
    if method == "sparse" or (method == "auto" and not isinstance(graph, Tensor) and num > SPARSE_EIGEN_NODES):
        coords = _sparse_eigenmaps(graph, num, dim)
    else:
        coords = _dense_eigenmaps(graph, num, dim)
    peak = coords.abs().argmax(dim=0)  # a sign for each coordinate, the same whatever the solver
    coords = coords * torch.where(coords.gather(0, peak[None, :]) < 0, -1.0, 1.0).to(coords.dtype)
    return coords.to(torch.get_default_dtype())


def _dense_eigenmaps(graph: tuple[Tensor, Tensor, int] | Tensor, num: int, dim: int) -> Tensor:
    if isinstance(graph, Tensor):
        adj = graph.detach().to(torch.float64)
    else:
        edge_index, weight, _ = graph
        weight = weight.detach().to(torch.float64)
        adj = weight.new_zeros(num, num).index_put_((edge_index[0], edge_index[1]), weight, accumulate=True)
    coords = adj.new_zeros(num, dim)
    active = (adj.sum(dim=1) > 0).nonzero().flatten()
    if active.numel() > 1:
        sub = adj[active][:, active]
        found = min(dim, active.numel() - 1)
        _, vectors = torch.linalg.eigh(laplacian(sub, kind="normalized"))
        coords[active, :found] = _inv_sqrt(sub.sum(dim=1))[:, None] * vectors[:, 1 : found + 1]
    return coords


def _sparse_eigenmaps(graph: tuple[Tensor, Tensor, int] | Tensor, num: int, dim: int) -> Tensor:
    import scipy.sparse as sp
    from scipy.sparse.linalg import eigsh

    adj = _scipy_adjacency(graph)
    device = graph.device if isinstance(graph, Tensor) else graph[0].device
    deg = np.asarray(adj.sum(axis=1)).ravel()
    active = np.flatnonzero(deg > 0)
    coords = np.zeros((num, dim))
    if active.size > 1:
        found = min(dim, active.size - 1)
        dinv = 1.0 / np.sqrt(deg[active])
        norm = sp.diags(dinv) @ adj[active][:, active] @ sp.diags(dinv)  # D^-1/2 A D^-1/2: spectrum in [-1, 1]
        if found + 1 < active.size:
            start = np.random.default_rng(0).uniform(0.5, 1.5, active.size)  # deterministic Lanczos start
            values, vectors = eigsh(norm, k=found + 1, which="LA", v0=start)
            vectors = vectors[:, np.argsort(-values)]
        else:  # a handful of nodes: the full eigendecomposition is the cheaper one
            vectors = np.linalg.eigh(norm.toarray())[1][:, ::-1]
        coords[active, :found] = dinv[:, None] * vectors[:, 1 : found + 1]
    return torch.from_numpy(coords).to(device)


def _scipy_adjacency(g: GraphLike | tuple[Tensor, Tensor, int]) -> sp.csr_matrix:
    """CSR float64 adjacency of a graph, or of :func:`_check_graph`'s result."""
    import scipy.sparse as sp

    graph = g if isinstance(g, tuple) else _check_graph(g)
    if isinstance(graph, Tensor):
        return sp.csr_matrix(graph.detach().cpu().double().numpy())
    edge_index, weight, num = graph
    row, col = edge_index.cpu().numpy()
    return sp.coo_matrix((weight.detach().cpu().double().numpy(), (row, col)), shape=(num, num)).tocsr()


def to_pygsp(g: GraphLike) -> pygsp.graphs.Graph:
    """Convert to a :class:`pygsp.graphs.Graph` (weights detached, float64, on the CPU).

    Example:
        >>> int(to_pygsp(torch.tensor([[0.0, 1.0], [1.0, 0.0]])).n_edges)
        1
    """
    import pygsp

    return pygsp.graphs.Graph(_scipy_adjacency(g))


def from_pygsp(graph: pygsp.graphs.Graph) -> Data:
    """Convert a :class:`pygsp.graphs.Graph` to a ``Data`` (``edge_index`` both directions,
    ``edge_weight`` in the default dtype, ``pos`` from the graph's coordinates if any).

    Example:
        >>> import pygsp
        >>> data = from_pygsp(pygsp.graphs.Ring(5))
        >>> data.num_nodes, data.edge_index.shape[1], data.pos.shape
        (5, 10, torch.Size([5, 2]))
    """
    import pygsp
    import scipy.sparse as sp
    from torch_geometric.data import Data

    if not isinstance(graph, pygsp.graphs.Graph):
        raise TypeError(f"`graph` must be a pygsp.graphs.Graph, got {type(graph).__name__}")
    w = sp.coo_matrix(graph.W)
    data = Data(
        edge_index=torch.as_tensor(np.stack([w.row, w.col]), dtype=torch.long),
        edge_weight=torch.as_tensor(w.data, dtype=torch.get_default_dtype()),
        num_nodes=graph.n_vertices,
    )
    if getattr(graph, "coords", None) is not None:
        data.pos = torch.as_tensor(np.asarray(graph.coords), dtype=torch.get_default_dtype())
    return data


def to_networkx(g: GraphLike) -> nx.Graph:
    """Convert to an undirected :class:`networkx.Graph` with edge attribute ``weight``
    (and node attribute ``y`` when the ``Data`` carries labels).

    Example:
        >>> g = to_networkx(torch.tensor([[0.0, 2.0], [2.0, 0.0]]))
        >>> list(g.edges(data="weight"))
        [(0, 1, 2.0)]
    """
    import networkx as nx

    out = nx.from_scipy_sparse_array(_scipy_adjacency(g), edge_attribute="weight")
    labels = getattr(g, "y", None)
    if labels is not None:
        nx.set_node_attributes(out, dict(enumerate(labels.tolist())), "y")
    return out


def from_networkx(graph: nx.Graph) -> Data:
    """Convert a weighted :class:`networkx.Graph` (attribute ``weight``, default 1) to a ``Data``;
    nodes are numbered in ``graph.nodes`` order.

    Example:
        >>> import networkx as nx
        >>> g = nx.Graph([("a", "b", {"weight": 2.0}), ("b", "c", {})])
        >>> data = from_networkx(g)
        >>> data.edge_index.tolist(), data.edge_weight.tolist()
        ([[0, 1, 1, 2], [1, 0, 2, 1]], [2.0, 2.0, 1.0, 1.0])
    """
    import networkx as nx
    import pygsp

    if not isinstance(graph, nx.Graph):
        raise TypeError(f"`graph` must be a networkx.Graph, got {type(graph).__name__}")
    return from_pygsp(pygsp.graphs.Graph(nx.to_scipy_sparse_array(graph, weight="weight", format="csr")))
