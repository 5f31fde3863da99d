"""Plots written to files: latent geometry graphs, label variation by depth,
robustness curves, saliency overlays and generalization measures over a zoo.

Every function draws on a bare figure (:func:`~latentgraph.viz.figure.new_figure`):
the caller's matplotlib backend and pyplot state are left unchanged.

Example:
    >>> from latentgraph import viz
    >>> callable(viz.draw_latent_graphs) and callable(viz.plot_accuracy_curves)
    True
"""
from latentgraph.viz.generalization import scatter_by_hyperparameter
from latentgraph.viz.graphs import draw_latent_graphs, plot_label_variation
from latentgraph.viz.robustness import plot_accuracy_curves, plot_corruption_errors
from latentgraph.viz.saliency import save_saliency_overlays

__all__ = [
    "draw_latent_graphs",
    "plot_accuracy_curves",
    "plot_corruption_errors",
    "plot_label_variation",
    "save_saliency_overlays",
    "scatter_by_hyperparameter",
]
