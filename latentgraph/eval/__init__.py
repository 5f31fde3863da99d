"""Evaluation: accuracy, layer-by-layer graph analysis and its report, probes on frozen embeddings.

Example:
    >>> from latentgraph.eval import analyze, evaluate, knn_probe
    >>> callable(analyze) and callable(evaluate) and callable(knn_probe)
    True
"""
from latentgraph.eval.accuracy import error_rate, eval_mode, evaluate, predict
from latentgraph.eval.layers import INPUT, analyze, check_layers, default_layers
from latentgraph.eval.probes import (
    KNNClassifier,
    embedding_label_variation,
    extract_features,
    knn_probe,
    logistic_probe,
)
from latentgraph.eval.report import GRAPHS_FORMAT, STATS, AnalysisResult, LayerStats, load_graphs

__all__ = [
    "GRAPHS_FORMAT",
    "INPUT",
    "STATS",
    "AnalysisResult",
    "KNNClassifier",
    "LayerStats",
    "analyze",
    "check_layers",
    "default_layers",
    "embedding_label_variation",
    "error_rate",
    "eval_mode",
    "evaluate",
    "extract_features",
    "knn_probe",
    "load_graphs",
    "logistic_probe",
    "predict",
]
