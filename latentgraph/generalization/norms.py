r"""Norm-based measures (Neyshabur et al., 2015; Jiang et al., 2020):
parameter norms, distance from initialization, path norm."""
from __future__ import annotations

import copy
import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..validation import check_choice
from .registry import Context, register

#: Kinds of :func:`parameter_norm`.
NORMS = ("frobenius", "log_prod_frobenius", "log_prod_spectral")


def weight_matrices(model: nn.Module) -> list[tuple[str, Tensor]]:
    """The weights of the model's linear and convolutional layers, as
    matrices ``out × (in·kernel)``, in module order."""
    found = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
            found.append((name, module.weight.detach().flatten(1).double()))
    return found


@register("parameter_norm", "norm", "squared Frobenius norm of all parameters")
def parameter_norm(ctx: Context, *, kind: str = "frobenius") -> float:
    r"""``kind="frobenius"`` (default): :math:`\lVert w \rVert_2^2`, the
    squared norm of all parameters; ``"log_prod_frobenius"``:
    :math:`\sum_\ell \log \lVert W_\ell \rVert_F^2`; ``"log_prod_spectral"``:
    :math:`\sum_\ell \log \lVert W_\ell \rVert_2^2`, over the linear and
    convolutional layers (a convolution as its ``out × (in·k·k)`` matrix, a
    proxy for the operator norm)."""
    check_choice(kind, "kind", NORMS)
    if kind == "frobenius":
        return float(sum(p.detach().double().pow(2).sum() for p in ctx.model.parameters()))
    mats = weight_matrices(ctx.model)
    if not mats:
        raise ValueError(f"`kind`={kind!r} needs linear or convolutional layers; the model has none")
    if kind == "log_prod_frobenius":
        return sum(math.log(float(w.pow(2).sum())) for _, w in mats)
    return sum(math.log(float(torch.linalg.matrix_norm(w, ord=2)) ** 2) for _, w in mats)


@register("distance_from_init", "norm", "squared distance of the parameters from their initial values")
def distance_from_init(ctx: Context, *, initial: Mapping[str, Tensor] | nn.Module | None = None) -> float:
    r""":math:`\lVert w - w_0 \rVert_2^2` over all parameters, :math:`w_0`
    the ``initial`` weights (a state dict or a module of the same
    architecture); required."""
    if initial is None:
        raise ValueError("measure 'distance_from_init' needs `initial`, the model's initial weights "
                         "(a state dict or a module of the same architecture)")
    state = initial.state_dict() if isinstance(initial, nn.Module) else initial
    if not isinstance(state, Mapping):
        raise TypeError(f"`initial` must be a state dict or an nn.Module, got {type(initial).__name__}")
    total = 0.0
    for name, p in ctx.model.named_parameters():
        if name not in state:
            raise ValueError(f"`initial` has no entry {name!r}; it must come from the same architecture")
        w0 = state[name]
        if tuple(w0.shape) != tuple(p.shape):
            raise ValueError(f"`initial`[{name!r}] has shape {tuple(w0.shape)}, the model {tuple(p.shape)}")
        total += float((p.detach().double() - w0.detach().to(p.device).double()).pow(2).sum())
    return total


def _square_batchnorm(module: nn.modules.batchnorm._BatchNorm) -> None:
    """Turn an evaluation-mode BatchNorm into its affine map ``s·x + b`` (then squared with the other parameters)."""
    scale = torch.ones_like(module.running_var) if module.weight is None else module.weight
    scale = scale / torch.sqrt(module.running_var + module.eps)
    shift = -scale * module.running_mean + (0 if module.bias is None else module.bias)
    module.running_mean.zero_()
    module.running_var.fill_(1.0)
    module.eps = 0.0
    module.weight = nn.Parameter(scale, requires_grad=False)
    module.bias = nn.Parameter(shift, requires_grad=False)


@register("path_norm", "norm", "path norm: the squared-weight network's output on an all-ones input")
def path_norm(ctx: Context) -> float:
    r"""Path norm (Neyshabur et al., 2015; Jiang et al., 2020, eq. 44):
    :math:`\sum_i f_{w^2}(\mathbf 1)_i`, the network with every parameter
    squared evaluated (float64, evaluation mode) on an all-ones input of the
    data's shape. An evaluation-mode BatchNorm is first folded into its affine
    map :math:`x \mapsto s x + b`, whose :math:`s, b` are then squared. Only
    layers that keep non-negative inputs non-negative (ReLU, pooling,
    dropout) make this the sum over paths of squared weights."""
    net = copy.deepcopy(ctx.model).double().eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
                _square_batchnorm(module)
        for p in net.parameters():
            p.pow_(2)
        out = net(torch.ones((1, *ctx.x.shape[1:]), dtype=torch.float64, device=ctx.device))
    return float(out.sum())
