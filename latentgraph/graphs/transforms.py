"""PyTorch Geometric transform that builds a latent geometry graph."""
from __future__ import annotations

import inspect

from torch import Tensor
from torch_geometric.data import Batch, Data
from torch_geometric.transforms import BaseTransform

from ..validation import check_choice, check_neighbours
from .construct import EDGE_SETS, SYMMETRIZATIONS, _check_options, latent_graph
from .similarity import SIMILARITIES


class LatentGraph(BaseTransform):
    r"""Replace the edges of a :class:`~torch_geometric.data.Data` by the latent
    geometry graph of its node features ``data.x`` (and labels ``data.y``).

    Same arguments and defaults as :func:`~latentgraph.latent_graph`; sets
    ``edge_index`` and ``edge_weight`` on a copy of ``data``, drops the
    attributes of the old edges (``edge_attr`` and the like, which no longer
    match) and keeps the others (``x`` is not flattened in place). On a
    :class:`~torch_geometric.data.Batch` each graph gets its own latent
    graph (no edge joins two graphs; ``k`` must fit the smallest one), with
    labels ``y`` used only when node-level (one per node).

    Example:
        >>> from torch_geometric.data import Data
        >>> data = LatentGraph(k=2)(Data(x=torch.rand(5, 3)))
        >>> data.edge_index.shape[0], data.edge_weight.dim()
        (2, 1)
        >>> LatentGraph(k=6)
        LatentGraph(k=6)
    """

    def __init__(
        self,
        k: int | None = 10,
        similarity: str = "auto",
        normalize: bool = True,
        edges: str = "all",
        symmetrize: str = "union",
        backend: str = "torch",
        sigma: float | None = None,
    ) -> None:
        self.k = check_neighbours(k)
        check_choice(similarity, "similarity", SIMILARITIES)
        check_choice(edges, "edges", EDGE_SETS)
        check_choice(symmetrize, "symmetrize", SYMMETRIZATIONS)
        _check_options(normalize, backend, sigma)
        self.options = dict(similarity=similarity, normalize=normalize, edges=edges,
                            symmetrize=symmetrize, backend=backend, sigma=sigma)

    def forward(self, data: Data) -> Data:
        if getattr(data, "x", None) is None:
            raise ValueError("`data.x` is required: LatentGraph builds the graph from the node features")
        if isinstance(data, Batch):  # one latent graph per graph, slices kept consistent
            return Batch.from_data_list([self.forward(graph) for graph in data.to_data_list()])
        y = getattr(data, "y", None)
        if isinstance(y, Tensor) and y.dim() >= 1 and y.shape[0] != data.x.shape[0]:
            y = None  # a graph-level label, not one per node
        graph = latent_graph(data.x, y, k=self.k, **self.options)
        out = data.clone()
        for key in out.edge_attrs():
            del out[key]
        out.edge_index = graph.edge_index
        out.edge_weight = graph.edge_weight
        return out

    def __repr__(self) -> str:
        changed = [f"{key}={value!r}" for key, value in self.options.items() if _DEFAULTS[key] != value]
        return f"{self.__class__.__name__}({', '.join([f'k={self.k}', *changed])})"


#: Defaults of the options, read from the signature (so ``repr`` shows only what was changed).
_DEFAULTS = {name: p.default for name, p in inspect.signature(LatentGraph.__init__).parameters.items()}
