"""Latent geometry graphs: similarity, kNN backends, graph construction and the PyG transform.

:class:`LatentGraph` subclasses a PyG transform, so it (and PyG) is imported
on first use only.
"""
from .approximate import APPROXIMATE_BACKENDS, IVFSearch, HNSWSearch, knn_recall
from .construct import adjacency_mask, dense_adjacency, latent_graph
from .knn import available_backends, knn_indices
from .similarity import Similarity, get_similarity, pair_similarity, resolve_similarity, similarity_matrix

__all__ = [
    "APPROXIMATE_BACKENDS",
    "HNSWSearch",
    "IVFSearch",
    "LatentGraph",
    "Similarity",
    "adjacency_mask",
    "available_backends",
    "dense_adjacency",
    "get_similarity",
    "knn_indices",
    "knn_recall",
    "latent_graph",
    "pair_similarity",
    "resolve_similarity",
    "similarity_matrix",
]


def __getattr__(name: str):
    if name == "LatentGraph":
        from .transforms import LatentGraph

        return LatentGraph
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
