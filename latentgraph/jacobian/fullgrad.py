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
from torch import Tensor, nn

from latentgraph.jacobian.decomposition import decompose, resolve_target
from latentgraph.validation import check_flag, check_tensor

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


def _summed_postprocess(t: Tensor, eps: float = 1e-6) -> Tensor:
    r""":math:`\sum_c \psi(t)_c` as a :math:`B \times 1 \times h \times w` map, in three passes over :obj:`t`.

    Since :math:`\psi` subtracts and divides by per-sample scalars,
    :math:`\sum_c \psi(t)_c = (\sum_c |t_c| - C \min|t|) / (\max|t| - \min|t| + \epsilon)`;
    and as bilinear resizing is linear and acts on each channel alike, the
    channel sum can be taken before resizing. Both give the official result
    with a fraction of the memory traffic.
    """
    a = t.abs()
    flat = a.flatten(1)
    low, high = flat.amin(1), flat.amax(1)  # (aminmax is several times slower on CPU)
    shape = (-1,) + (1,) * (t.dim() - 1)
    return (a.sum(1, keepdim=True) - t.shape[1] * low.reshape(shape)) / ((high - low).reshape(shape) + eps)


def _summed_bias_map(grad: Tensor, bias: Tensor | None, eps: float = 1e-6) -> Tensor | None:
    r""":func:`_summed_postprocess` of :math:`\nabla_z f \odot b` without forming the product.

    With :math:`a = |\nabla_z f|` and :math:`w = |b| \ge 0`, the extremes of
    :math:`a_c w_c` are :math:`\min_c w_c \min a_c` and :math:`\max_c w_c \max a_c`,
    and the channel sum :math:`\sum_c w_c a_c` is one contraction: four passes
    over the gradient (absolute value, minimum, maximum, weighted sum), no
    product tensor. ``bias=None`` gives the raw gradient (simple FullGrad).
    Layers whose output is not :math:`B \times C \times h \times w` give ``None``.
    """
    if grad.dim() != 4:
        return None
    a = grad.abs()
    low, high = a.amin((2, 3)), a.amax((2, 3))  # per sample and channel, B×C
    if bias is None:
        low, high, summed = low.amin(1), high.amax(1), a.sum(1, keepdim=True)
    else:
        w = bias.reshape(-1).abs().to(grad.dtype)
        low, high = (low * w).amin(1), (high * w).amax(1)
        summed = torch.matmul(w, a.flatten(2)).reshape(a.shape[0], 1, *a.shape[2:])  # reads a in place
    shape = (-1, 1, 1, 1)
    return (summed - grad.shape[1] * low.reshape(shape)) / ((high - low).reshape(shape) + eps)


def _bilinear_weights(n_in: int, n_out: int, like: Tensor) -> Tensor:
    r"""The :math:`n_\text{out} \times n_\text{in}` matrix of 1-D linear interpolation with
    aligned corners: output :math:`i` reads source position :math:`i (n_\text{in} - 1) / (n_\text{out} - 1)`."""
    src = torch.arange(n_out, dtype=torch.float64) * ((n_in - 1) / max(n_out - 1, 1))
    low = src.floor().long().clamp(max=n_in - 1)
    frac = src - low
    weights = torch.zeros(n_out, n_in, dtype=torch.float64)
    weights[torch.arange(n_out), low] += 1 - frac
    weights[torch.arange(n_out), (low + 1).clamp(max=n_in - 1)] += frac
    return weights.to(like.device, like.dtype)


def _resize(summed: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize with aligned corners (as ``F.interpolate``), as two small matrix
    products: :math:`R_h M R_w^\top`."""
    if tuple(summed.shape[-2:]) == size:
        return summed
    rows = _bilinear_weights(summed.shape[-2], size[0], summed)
    cols = _bilinear_weights(summed.shape[-1], size[1], summed)
    return rows @ summed @ cols.T


def _check_image_batch(x: Tensor) -> None:
    if check_tensor(x, "x").dim() != 4:
        raise ValueError(f"`x` must be an image batch B×C×H×W, got shape {tuple(x.shape)}")


def fullgrad(
    model: nn.Module,
    x: Tensor,
    target: int | Tensor | None = None,
    variant: str = "full",
    differentiable: bool = False,
) -> Tensor:
    r"""FullGrad saliency maps of a batch of images, :math:`B \times 1 \times H \times W`.

    One forward and one backward pass (:func:`~latentgraph.jacobian.decomposition.decompose`)
    that computes only the input-gradient and the gradients at the bias
    layers' outputs (no weight gradient, parameters' ``.grad`` untouched);
    each bias layer's gradient is reduced to its
    :math:`B \times 1 \times h \times w` map as soon as the backward pass
    produces it, maps of one size are summed before one bilinear resize, and
    the result equals the post-processing of the official implementation (see
    the module docstring).

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
    differentiable = check_flag(differentiable, "differentiable")
    _check_image_batch(x)
    if variant not in _VARIANTS:
        raise ValueError(f"variant must be one of {_VARIANTS}, got {variant!r}")
    full = variant == "full"
    parts = decompose(model, x, target=target, create_graph=differentiable, strict=full,
                      reduce=lambda grad, bias: _summed_bias_map(grad, bias if full else None))
    by_size: dict[tuple[int, int], Tensor] = {}  # resizing is linear: sum the maps of a size first
    for summed in parts.feature_gradients.values():
        if summed is not None:
            key = tuple(summed.shape[-2:])
            by_size[key] = by_size[key] + summed if key in by_size else summed
    saliency = _summed_postprocess(parts.input_gradient * parts.input)
    for summed in by_size.values():
        saliency = saliency + _resize(summed, tuple(x.shape[-2:]))
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
