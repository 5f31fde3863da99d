r"""Full-Jacobian decomposition of a network output (Srinivas & Fleuret, 2019).

For a network :math:`f` built from affine layers and activations that are
piecewise linear through the origin (ReLU, leaky ReLU, max-pooling, ...),

.. math::
    f(\mathbf{x}) = \nabla_{\mathbf{x}} f(\mathbf{x})^\top \mathbf{x}
    + \sum_{l} \sum_{i} \big(\nabla_{\mathbf{b}_l} f(\mathbf{x}) \odot \mathbf{b}_l\big)_i ,

where the second sum runs over every bias source: the explicit biases of
convolutional and linear layers and the effective bias of BatchNorm in
evaluation mode, :math:`\beta - \mu\gamma/\sqrt{\sigma^2 + \epsilon}`. Since a
bias is added at every position of its layer's output, the gradient with
respect to that output times the bias, :math:`f^b_l = \nabla_{z_l} f \odot b_l`,
is the per-position bias-Jacobian map, and it sums to the layer's share of
:math:`f(\mathbf{x})`.

All terms come from one forward and one backward pass: forward hooks register
tensor hooks on the outputs of the bias layers, which receive
:math:`\nabla_{z_l} f` while :func:`torch.autograd.grad` computes the
input-gradient.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd
from torch.nn.modules.dropout import _DropoutNd

from latentgraph.validation import check_flag, check_tensor

__all__ = ["FullJacobian", "full_jacobian", "bias_layer_names", "decompose"]

# Modules whose local linearization has a non-zero intercept (or that couple
# the features of a sample through statistics), so that the full-Jacobian
# terms do not add up to the output.
_NOT_PIECEWISE_LINEAR = (
    nn.Sigmoid, nn.Tanh, nn.GELU, nn.SiLU, nn.Mish, nn.ELU, nn.CELU, nn.SELU,
    nn.Softplus, nn.Softsign, nn.Tanhshrink, nn.Softshrink, nn.Hardtanh,
    nn.Hardsigmoid, nn.Hardswish, nn.LogSigmoid, nn.Softmax, nn.LogSoftmax,
    nn.Softmin, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, nn.RMSNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.MultiheadAttention,
)


def _has_bias(module: nn.Module) -> bool:
    if isinstance(module, _BatchNorm):
        return True
    if isinstance(module, (_ConvNd, nn.Linear)):
        return module.bias is not None
    return False


def bias_layer_names(model: nn.Module) -> list[str]:
    r"""Names of the modules of :obj:`model` that are bias sources.

    These are convolutions and linear layers with a bias and every BatchNorm
    layer, in the order of :meth:`~torch.nn.Module.named_modules`.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(),
        ...                     nn.Conv2d(2, 2, 3, bias=False))
        >>> bias_layer_names(net)
        ['0', '1']
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return [name for name, module in model.named_modules() if _has_bias(module)]


def _check_model(model: nn.Module, strict: bool, batch_statistics: bool) -> None:
    strict = check_flag(strict, "strict")
    batch_statistics = check_flag(batch_statistics, "batch_statistics")
    for name, module in model.named_modules():
        if isinstance(module, _BatchNorm):
            if not module.affine:
                raise ValueError(
                    f"BatchNorm layer '{name}' has affine=False; the full-Jacobian "
                    "decomposition needs its weight and bias (affine=True)")
            uses_batch_stats = module.training or not module.track_running_stats
            if uses_batch_stats and not batch_statistics:
                raise ValueError(
                    f"BatchNorm layer '{name}' normalizes with batch statistics (training "
                    "mode or track_running_stats=False), which couples the samples of the "
                    "batch; call model.eval() first")
        if isinstance(module, _DropoutNd) and module.training and module.p > 0 and not batch_statistics:
            raise ValueError(
                f"dropout layer '{name}' is in training mode, so the terms would be those of a "
                "random sub-network; call model.eval() first")
        if strict and isinstance(module, _NOT_PIECEWISE_LINEAR):
            raise ValueError(
                f"module '{name}' ({type(module).__name__}) is not piecewise linear through "
                "the origin, so the output is not the sum of its full-Jacobian terms; pass "
                "strict=False to compute the terms anyway (completeness then fails), or use "
                "fullgrad(..., variant='simple')")


def _effective_bias(module: nn.Module, inputs: tuple) -> Tensor:
    if not isinstance(module, _BatchNorm):
        return module.bias
    if module.training or not module.track_running_stats:
        z = inputs[0]
        dims = [0, *range(2, z.dim())]
        mean, var = z.mean(dims), z.var(dims, unbiased=False)
    else:
        mean, var = module.running_mean, module.running_var
    return module.bias - mean * module.weight / torch.sqrt(var + module.eps)


def _broadcast(bias: Tensor, module: nn.Module, like: Tensor) -> Tensor:
    shape = [1] * like.dim()
    shape[-1 if isinstance(module, nn.Linear) else 1] = bias.numel()
    return bias.reshape(shape)


def resolve_target(target: int | Tensor | None, logits: Tensor) -> Tensor:
    """The output index per sample: the argmax for ``None``, checked to lie in ``[0, K)``.

    Example:
        >>> logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0]])
        >>> resolve_target(None, logits).tolist(), resolve_target(2, logits).tolist()
        ([1, 0], [2, 2])
    """
    batch, classes = logits.shape
    if target is None:
        return logits.detach().argmax(dim=1)
    if isinstance(target, bool) or not isinstance(target, (int, Tensor)):
        raise TypeError(f"target must be None, an int or a 1-D integer tensor, got {type(target).__name__}")
    if isinstance(target, int):
        target = torch.full((batch,), target, dtype=torch.long, device=logits.device)
    elif target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(f"target must be an integer tensor, got dtype {target.dtype}")
    elif target.dim() == 0:
        target = target.reshape(1).expand(batch)
    elif target.shape != (batch,):
        raise ValueError(f"target must have shape ({batch},) to match the batch, got {tuple(target.shape)}")
    target = target.to(device=logits.device, dtype=torch.long)
    if target.numel() and (target.min() < 0 or target.max() >= classes):
        raise ValueError(f"target must lie in [0, {classes}) for a model with {classes} outputs, "
                         f"got values in [{int(target.min())}, {int(target.max())}]")
    return target


@dataclass
class FullJacobian:
    r"""The full-Jacobian of the selected output :math:`f(\mathbf{x}) = \text{logits}[i, t_i]`.

    Attributes:
        logits (Tensor): the model output, :math:`B \times K`.
        target (Tensor): the selected class per sample, :math:`B`.
        input (Tensor): the input the terms refer to.
        input_gradient (Tensor): :math:`\nabla_{\mathbf{x}} f`, shaped like the input.
        feature_gradients (dict): per bias layer, :math:`\nabla_{z_l} f`, shaped like
            the layer's output (used by the simple FullGrad variant).
        biases (dict): per bias layer, its (effective) bias vector.
        bias_gradients (dict): per bias layer, the bias-Jacobian map
            :math:`f^b_l = \nabla_{z_l} f \odot b_l`, shaped like the layer's output.
        complete (bool): whether every bias source of the model was captured and
            the model was checked to be piecewise linear, so that
            :meth:`completeness_error` is meaningful.
    """

    logits: Tensor
    target: Tensor
    input: Tensor
    input_gradient: Tensor
    feature_gradients: dict[str, Tensor]
    biases: dict[str, Tensor]
    complete: bool = True

    @cached_property
    def bias_gradients(self) -> dict[str, Tensor]:
        r"""Per bias layer, :math:`f^b_l = \nabla_{z_l} f \odot b_l` (computed on first access)."""
        return {name: self.feature_gradients[name] * bias for name, bias in self.biases.items()}

    @property
    def output(self) -> Tensor:
        """The selected output per sample, :math:`B`."""
        return self.logits.gather(1, self.target[:, None]).squeeze(1)

    def input_term(self) -> Tensor:
        r""":math:`\nabla_{\mathbf{x}} f \cdot \mathbf{x}` per sample, :math:`B`."""
        return (self.input_gradient * self.input).flatten(1).sum(1)

    def bias_terms(self) -> dict[str, Tensor]:
        r"""Per bias layer, :math:`\sum_i (f^b_l)_i` per sample (each :math:`B`)."""
        return {name: term.flatten(1).sum(1) for name, term in self.bias_gradients.items()}

    def completeness_error(self, relative: bool = False) -> Tensor:
        r"""Per-sample :math:`|f(\mathbf{x}) - \nabla_{\mathbf{x}} f\cdot\mathbf{x} - \sum_l \sum_i (f^b_l)_i|`.

        Zero up to rounding for networks the decomposition covers.

        Args:
            relative (bool): divide by :math:`|f(\mathbf{x})|` (floored at the
                dtype's smallest normal number). (default: :obj:`False`)
        """
        if not self.complete:
            raise ValueError("completeness needs every bias layer of a piecewise-linear model; "
                             "call full_jacobian with layers=None and strict=True")
        total = self.input_term() + sum(self.bias_terms().values())
        output = self.output.detach()
        error = (output - total.detach()).abs()
        if relative:
            error = error / output.abs().clamp_min(torch.finfo(output.dtype).tiny)
        return error


def full_jacobian(
    model: nn.Module,
    x: Tensor,
    target: int | Tensor | None = None,
    layers: Sequence[str] | None = None,
    create_graph: bool = False,
    strict: bool = True,
    batch_statistics: bool = False,
) -> FullJacobian:
    r"""Input-gradient and bias-Jacobians of :obj:`model` at :obj:`x` in one backward pass.

    The scalar differentiated is :math:`\sum_i \text{logits}[i, t_i]`; as the
    samples of a batch are independent in evaluation mode, each sample's terms
    are those of its own output. The model and its train/eval mode are left
    unchanged, and parameter ``.grad`` fields are not touched.

    Args:
        model (nn.Module): maps :obj:`x` to :math:`B \times K` outputs.
        x (Tensor): floating-point input, :math:`B \times \dots`. If it does not
            require gradients, a detached copy that does is used (so the terms
            are not differentiable with respect to the caller's :obj:`x`).
        target (int or Tensor, optional): output index per sample (a :math:`B`
            integer tensor) or one index for all; ``None`` takes the argmax.
            (default: :obj:`None`)
        layers (list of str, optional): names of bias layers to capture; ``None``
            captures every bias source (:func:`bias_layer_names`). (default: :obj:`None`)
        create_graph (bool): keep the graph of the gradients so that losses on
            them can be back-propagated (double backward). (default: :obj:`False`)
        strict (bool): reject modules that are not piecewise linear through the
            origin (sigmoid, tanh, GELU, LayerNorm, ...). With ``False`` the terms
            are computed anyway but do not add up to the output. Functional
            calls inside ``forward`` cannot be checked; use
            :meth:`FullJacobian.completeness_error`. (default: :obj:`True`)
        batch_statistics (bool): allow a model in training mode: BatchNorm layers
            that normalize with the batch's statistics (their effective bias then
            uses the batch mean and biased variance, and the terms couple the
            samples) and active dropout (the terms are those of the sampled
            sub-network). Meant for training losses; without it either raises
            :class:`ValueError`. (default: :obj:`False`)

    Example:
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
        ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
        >>> net = net.double().eval()
        >>> fj = full_jacobian(net, torch.rand(2, 1, 6, 6, dtype=torch.float64))
        >>> sorted(fj.bias_gradients), tuple(fj.bias_gradients["1"].shape)
        (['0', '1', '5'], (2, 4, 4, 4))
        >>> bool(fj.completeness_error(relative=True).max() < 1e-12)
        True
    """
    return FullJacobian(*decompose(model, x, target, layers, create_graph, strict, batch_statistics))


class Decomposition(NamedTuple):
    """The raw result of :func:`decompose` (the fields of :class:`FullJacobian`)."""

    logits: Tensor
    target: Tensor
    input: Tensor
    input_gradient: Tensor
    feature_gradients: dict[str, Tensor | None]
    biases: dict[str, Tensor]
    complete: bool


def decompose(
    model: nn.Module,
    x: Tensor,
    target: int | Tensor | None = None,
    layers: Sequence[str] | None = None,
    create_graph: bool = False,
    strict: bool = True,
    batch_statistics: bool = False,
    reduce: Callable[[Tensor, Tensor], Tensor | None] | None = None,
) -> Decomposition:
    r"""The forward and backward pass of :func:`full_jacobian` (same arguments).

    With :obj:`reduce`, each layer's gradient is replaced, as soon as the
    backward pass produces it, by ``reduce(gradient, broadcast_bias)``, so that
    the full-size gradients need not be kept (FullGrad keeps only
    :math:`B \times 1 \times h \times w` maps).
    """
    create_graph = check_flag(create_graph, "create_graph")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_tensor(x, "x")
    if not x.is_floating_point():
        raise TypeError(f"`x` must be a floating-point tensor to take gradients, got dtype {x.dtype}")
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"`x` must be a non-empty batch B×…, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("`x` contains NaN or infinite values")
    _check_model(model, strict, batch_statistics)
    uses_batch_stats = any(isinstance(m, _BatchNorm) and (m.training or not m.track_running_stats)
                           for m in model.modules())

    modules = dict(model.named_modules())
    all_names = bias_layer_names(model)
    if layers is None:
        names = all_names
        if not names:
            raise ValueError("model has no bias source (no Conv/Linear bias and no BatchNorm), "
                             "so there are no bias-Jacobians to compute")
    else:
        if isinstance(layers, str):
            raise TypeError("layers must be a sequence of module names, not a single string")
        names = list(dict.fromkeys(layers))
        for name in names:
            if name not in modules:
                raise ValueError(f"layers: model has no module named '{name}'")
            if not _has_bias(modules[name]):
                raise ValueError(f"layers: module '{name}' ({type(modules[name]).__name__}) has no bias")
        if not names:
            raise ValueError("layers must name at least one bias layer")

    biases: dict[str, Tensor] = {}
    grads: dict[str, Tensor | None] = {}

    def make_hook(name: str):
        def store(grad: Tensor) -> None:
            grads[name] = grad if reduce is None else reduce(grad, biases[name])

        def hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
            if name in biases:
                raise ValueError(f"module '{name}' is called more than once in forward; shared "
                                 "bias layers are not supported")
            if not (isinstance(output, Tensor) and output.requires_grad):
                raise ValueError(f"the output of module '{name}' does not require gradients "
                                 "(is it computed under torch.no_grad()?)")
            biases[name] = _broadcast(_effective_bias(module, inputs), module, output)
            output.register_hook(store)
        return hook

    inputs = x if x.requires_grad else x.detach().requires_grad_(True)
    handles = [modules[name].register_forward_hook(make_hook(name)) for name in names]
    try:
        with torch.enable_grad():
            logits = model(inputs)
            if not isinstance(logits, Tensor) or logits.dim() != 2:
                shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
                raise ValueError(f"model must return a B×K tensor, got {shape}")
            chosen = resolve_target(target, logits)
            selected = logits.gather(1, chosen[:, None]).sum()
            (input_gradient,) = torch.autograd.grad(selected, inputs, create_graph=create_graph)
    finally:
        for handle in handles:
            handle.remove()
    missing = [name for name in names if name not in grads]
    if missing:
        raise ValueError(f"layers {missing} do not lie on a differentiable path from the input "
                         "to the output")
    if not create_graph:
        logits = logits.detach()
        biases = {name: bias.detach() for name, bias in biases.items()}
    return Decomposition(logits, chosen, inputs, input_gradient, {name: grads[name] for name in names},
                         biases, set(names) == set(all_names) and strict and not uses_batch_stats)
