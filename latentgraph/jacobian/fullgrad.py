r"""FullGrad saliency maps (Srinivas & Fleuret, 2019, equation 4).

.. math::
    S(\mathbf{x}) = \psi\big(\nabla_{\mathbf{x}} f \odot \mathbf{x}\big)
    + \sum_{l} \sum_{c} \text{resize}\,\psi\big(f^b_l\big)_c ,

with the post-processing of the authors' code
(``idiap/fullgrad-saliency``): :math:`\psi` takes the absolute value and
min–max scales each sample over all its channels and positions,
:math:`\psi(t) = (|t| - \min|t|) / (\max(|t| - \min|t|) + 10^{-6})`; the maps
are then resized to the input with bilinear interpolation (aligned corners)
and summed over channels. Every bias layer whose output is 4-D (a
convolution or a 2-D BatchNorm) contributes; linear layers do not. Note that
the official code applies :math:`\psi` per channel element before the channel
sum, where the paper's equation 4 writes the absolute value of the channel
sum; this module follows the code.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentgraph.jacobian.decomposition import full_jacobian, resolve_target

__all__ = ["fullgrad", "gradient_times_input", "saliency_postprocess"]

_VARIANTS = ("full", "simple")


def saliency_postprocess(t: Tensor, eps: float = 1e-6) -> Tensor:
    r"""Absolute value, then per-sample min–max scaling over all non-batch dimensions.

    :math:`\psi(t)_i = (|t_i| - \min_j |t_j|) / (\max_j (|t_j| - \min_k |t_k|) + \epsilon)`,
    taken separately for each sample of the batch.

    Example:
        >>> saliency_postprocess(torch.tensor([[[[-2.0, 1.0], [0.5, 3.0]]]]), eps=0.0)
        tensor([[[[0.6000, 0.2000],
                  [0.0000, 1.0000]]]])
    """
    t = t.abs()
    t = t - t.flatten(1).min(dim=1).values.reshape(-1, *[1] * (t.dim() - 1))
    return t / (t.flatten(1).max(dim=1).values.reshape(-1, *[1] * (t.dim() - 1)) + eps)


def _check_image_batch(x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"x must be an image batch B×C×H×W, got shape {tuple(x.shape)}")


def fullgrad(
    model: nn.Module,
    x: Tensor,
    target: int | Tensor | None = None,
    variant: str = "full",
    differentiable: bool = False,
) -> Tensor:
    r"""FullGrad saliency maps of a batch of images, :math:`B \times 1 \times H \times W`.

    One forward and one backward pass (:func:`full_jacobian`), then the
    post-processing of the official implementation (see the module docstring).

    Args:
        model (nn.Module): an image classifier in evaluation mode.
        x (Tensor): images, :math:`B \times C \times H \times W`.
        target (int or Tensor, optional): class per sample; ``None`` takes the
            predicted class. (default: :obj:`None`)
        variant (str): ``"full"`` uses the bias-Jacobians
            :math:`\nabla_{z_l} f \odot b_l` and requires a model the
            decomposition covers (piecewise-linear activations);
            ``"simple"`` uses the raw gradients :math:`\nabla_{z_l} f` of the
            same layers' outputs, as the authors' ``SimpleFullGrad``, and
            accepts any activation. (default: :obj:`"full"`)
        differentiable (bool): keep the graph so that the maps can be
            back-propagated to the parameters and to a :obj:`x` that requires
            gradients. (default: :obj:`False`)

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
        ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
        >>> fullgrad(net, torch.rand(5, 1, 8, 8)).shape
        torch.Size([5, 1, 8, 8])
    """
    _check_image_batch(x)
    if variant not in _VARIANTS:
        raise ValueError(f"variant must be one of {_VARIANTS}, got {variant!r}")
    fj = full_jacobian(model, x, target=target, create_graph=differentiable,
                       strict=variant == "full")
    terms = fj.bias_gradients if variant == "full" else fj.feature_gradients
    size = tuple(x.shape[-2:])
    saliency = saliency_postprocess(fj.input_gradient * fj.input).sum(1, keepdim=True)
    for term in terms.values():
        if term.dim() == 4:
            resized = F.interpolate(saliency_postprocess(term), size=size, mode="bilinear",
                                    align_corners=True)
            saliency = saliency + resized.sum(1, keepdim=True)
    return saliency if differentiable else saliency.detach()


def gradient_times_input(model: nn.Module, x: Tensor, target: int | Tensor | None = None) -> Tensor:
    r"""The plain :math:`|\nabla_{\mathbf{x}} f \odot \mathbf{x}|` map summed over channels, :math:`B \times 1 \times H \times W`.

    The baseline FullGrad is compared with: no bias terms, no post-processing
    beyond the absolute value. Any differentiable classifier is accepted.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False))
        >>> with torch.no_grad():
        ...     _ = net[1].weight.copy_(torch.tensor([[1.0, -1.0, 2.0, 0.0], [0.0, 0.0, 0.0, 1.0]]))
        >>> gradient_times_input(net, torch.ones(1, 1, 2, 2), target=0).flatten().tolist()
        [1.0, 1.0, 2.0, 0.0]
    """
    _check_image_batch(x)
    inputs = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(inputs)
        if not isinstance(logits, Tensor) or logits.dim() != 2:
            raise ValueError("model must return a B×K tensor")
        chosen = resolve_target(target, logits)
        (grad,) = torch.autograd.grad(logits.gather(1, chosen[:, None]).sum(), inputs)
    return (grad * inputs).abs().sum(1, keepdim=True).detach()
