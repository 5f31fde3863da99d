"""latentgraph: latent geometry graphs of neural networks, and graph constraints as training losses.

Public names are imported on first use (a module-level ``__getattr__``,
PEP 562), so ``import latentgraph`` costs about one ``import torch``: PyTorch
Geometric, PyGSP, networkx, SciPy and matplotlib are loaded only by the
functions that need them.

Example:
    >>> import latentgraph as lg
    >>> "latent_graph" in dir(lg) and callable(lg.latent_graph)
    True
"""
from __future__ import annotations

import importlib

# ``capture`` is both a submodule and a function: bound eagerly so that a later
# ``import latentgraph.capture`` elsewhere cannot shadow the function.
from .capture import Activations, capture, layer_names

__version__ = "0.1.0"

#: Public name -> module that defines it (imported when the name is first used).
_LAZY: dict[str, str] = {
    "AnalysisResult": "latentgraph.eval",
    "analyze": "latentgraph.eval",
    "LatentGraph": "latentgraph.graphs",
    "adjacency_mask": "latentgraph.graphs",
    "available_backends": "latentgraph.graphs",
    "dataset_features": "latentgraph.graphs.dataset",
    "dataset_graph": "latentgraph.graphs.dataset",
    "knn_recall": "latentgraph.graphs",
    "dense_adjacency": "latentgraph.graphs",
    "knn_indices": "latentgraph.graphs",
    "latent_graph": "latentgraph.graphs",
    "similarity_matrix": "latentgraph.graphs",
    "eigenmaps": "latentgraph.gsp",
    "from_networkx": "latentgraph.gsp",
    "from_pygsp": "latentgraph.gsp",
    "label_variation": "latentgraph.gsp",
    "laplacian": "latentgraph.gsp",
    "to_networkx": "latentgraph.gsp",
    "to_pygsp": "latentgraph.gsp",
    "total_variation": "latentgraph.gsp",
    "complexity": "latentgraph.generalization",
    "FullJacobian": "latentgraph.jacobian",
    "full_jacobian": "latentgraph.jacobian",
    "fullgrad": "latentgraph.jacobian",
    "seed_everything": "latentgraph.seed",
    "LabelVariationMonitor": "latentgraph.callbacks",
}

#: Subpackages reachable as attributes (``lg.losses``), imported on first use.
_SUBMODULES = ("callbacks", "data", "generalization", "losses", "models", "robustness", "train")

__all__ = ["Activations", "capture", "layer_names", *sorted(_LAZY), *_SUBMODULES]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
