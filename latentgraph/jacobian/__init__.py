"""Full-Jacobian representation: decomposition, FullGrad saliency, overlays."""
from latentgraph.jacobian.decomposition import FullJacobian, bias_layer_names, full_jacobian
from latentgraph.jacobian.fullgrad import fullgrad, gradient_times_input, saliency_postprocess
from latentgraph.viz.saliency import save_saliency_overlays  # the plots live in viz/

__all__ = ["FullJacobian", "bias_layer_names", "full_jacobian", "fullgrad",
           "gradient_times_input", "saliency_postprocess", "save_saliency_overlays"]
