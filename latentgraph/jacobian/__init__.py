"""Full-Jacobian representation: decomposition, FullGrad saliency, overlays."""
from latentgraph.jacobian.decomposition import FullJacobian, bias_layer_names, full_jacobian
from latentgraph.jacobian.fullgrad import fullgrad, gradient_times_input, saliency_postprocess

__all__ = ["FullJacobian", "bias_layer_names", "full_jacobian", "fullgrad",
           "gradient_times_input", "saliency_postprocess"]
