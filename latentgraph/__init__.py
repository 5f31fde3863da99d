"""latentgraph: latent geometry graphs of neural networks, and graph constraints as training losses."""
from . import data, losses, models, robustness, train
from .eval import AnalysisResult, analyze
from .capture import Activations, capture, layer_names
from .graphs import (
    LatentGraph,
    adjacency_mask,
    available_backends,
    dense_adjacency,
    knn_indices,
    latent_graph,
    similarity_matrix,
)
from .gsp import (
    eigenmaps,
    from_networkx,
    from_pygsp,
    label_variation,
    laplacian,
    to_networkx,
    to_pygsp,
    total_variation,
)
from .jacobian import FullJacobian, full_jacobian, fullgrad
from .seed import seed_everything

__version__ = "0.1.0"

__all__ = [
    "Activations",
    "AnalysisResult",
    "FullJacobian",
    "LatentGraph",
    "adjacency_mask",
    "analyze",
    "available_backends",
    "capture",
    "dense_adjacency",
    "eigenmaps",
    "from_networkx",
    "from_pygsp",
    "full_jacobian",
    "fullgrad",
    "knn_indices",
    "label_variation",
    "laplacian",
    "latent_graph",
    "layer_names",
    "seed_everything",
    "similarity_matrix",
    "to_networkx",
    "to_pygsp",
    "total_variation",
    "data",
    "losses",
    "models",
    "robustness",
    "train",
]
