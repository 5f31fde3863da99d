"""PyTorch Geometric transform that builds a latent geometry graph."""
from __future__ import annotations

from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from .construct import latent_graph


class LatentGraph(BaseTransform):
    r"""Replace the edges of a :class:`~torch_geometric.data.Data` by the latent
    geometry graph of its node features ``data.x`` (and labels ``data.y``).

    Same arguments and defaults as :func:`~latentgraph.latent_graph`; sets
    ``edge_index`` and ``edge_weight`` on a copy of ``data``, keeping its other
    attributes (``x`` is not flattened in place).

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
        self.k = k
        self.options = dict(similarity=similarity, normalize=normalize, edges=edges,
                            symmetrize=symmetrize, backend=backend, sigma=sigma)

    _DEFAULTS = dict(similarity="auto", normalize=True, edges="all", symmetrize="union", backend="torch", sigma=None)

    def forward(self, data: Data) -> Data:
        if getattr(data, "x", None) is None:
            raise ValueError("`data.x` is required: LatentGraph builds the graph from the node features")
        graph = latent_graph(data.x, getattr(data, "y", None), k=self.k, **self.options)
        out = data.clone() if hasattr(data, "clone") else data
        out.edge_index = graph.edge_index
        out.edge_weight = graph.edge_weight
        return out

    def __repr__(self) -> str:
        changed = [f"{key}={value!r}" for key, value in self.options.items() if self._DEFAULTS[key] != value]
        return f"{self.__class__.__name__}({', '.join([f'k={self.k}', *changed])})"
