"""Evaluation of learned representations: probes on frozen embeddings.

Example:
    >>> from latentgraph.eval import knn_probe, logistic_probe
    >>> callable(knn_probe) and callable(logistic_probe)
    True
"""
from latentgraph.eval.probes import (
    KNNClassifier,
    embedding_label_variation,
    extract_features,
    knn_probe,
    logistic_probe,
)

__all__ = ["KNNClassifier", "embedding_label_variation", "extract_features", "knn_probe", "logistic_probe"]
