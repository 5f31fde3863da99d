"""Latent geometry graphs: similarity, kNN backends, graph construction and the PyG transform."""
from .construct import adjacency_mask, dense_adjacency, latent_graph
from .knn import available_backends, knn_indices
from .similarity import Similarity, get_similarity, pair_similarity, resolve_similarity, similarity_matrix
from .transforms import LatentGraph

__all__ = [
    "LatentGraph",
    "Similarity",
    "adjacency_mask",
    "available_backends",
    "dense_adjacency",
    "get_similarity",
    "knn_indices",
    "latent_graph",
    "pair_similarity",
    "resolve_similarity",
    "similarity_matrix",
]
