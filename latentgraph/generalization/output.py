r"""Measures on the network's output: the margin distribution (Jiang et
al., 2019 and 2020) and the input-gradient norm."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..validation import check_flag, check_number
from .registry import Context, register


def margins(logits: Tensor, y: Tensor) -> Tensor:
    r"""Output margins :math:`\gamma_i = f(x_i)_{y_i} - \max_{j \ne y_i} f(x_i)_j`
    (negative for a misclassified sample).

    Example:
        >>> margins(torch.tensor([[2.0, 0.5, 1.0], [0.0, 3.0, 1.0]]), torch.tensor([0, 2]))
        tensor([ 1., -2.])
    """
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    return true - others.max(dim=1).values


@register("margin", "margin", "minus the 10th percentile of the normalized output margin")
def margin(ctx: Context, *, percentile: float = 10.0, normalize: bool = True) -> float:
    r"""Minus a low percentile of the output margins:
    :math:`-Q_p(\gamma_1/s, \dots, \gamma_N/s)` with :math:`Q_p` the
    ``percentile`` :math:`p` (10, Jiang et al., 2020; linear interpolation)
    and, with ``normalize=True`` (default), :math:`s` the square root of the
    total variance of the logits, :math:`s^2 = \frac1N\sum_i \lVert f(x_i) -
    \bar f \rVert^2` (the normalization of Jiang et al., 2019), else
    :math:`s = 1`. Fantastic's ``1/γ²`` ranks models the same way while the
    margin is positive; the negated margin also ranks models that misfit some
    training samples.
    """
    percentile = check_number(percentile, "percentile")
    check_flag(normalize, "normalize")
    if percentile > 100:
        raise ValueError(f"`percentile` must lie in [0, 100], got {percentile}")
    logits = ctx.logits().double()
    gamma = margins(logits, ctx.y)
    if normalize:
        scale = (logits - logits.mean(dim=0)).pow(2).sum(dim=1).mean().sqrt()
        if scale == 0:
            raise ValueError("the model's outputs do not vary over the sample: the normalized margin is undefined")
        gamma = gamma / scale
    return -float(torch.quantile(gamma, percentile / 100))


@register("input_gradient_norm", "gradient", "mean norm of the loss gradient with respect to the input")
def input_gradient_norm(ctx: Context, *, batch: int = 250) -> float:
    r"""Mean over the sample of :math:`\lVert \nabla_x \ell(f(x_i), y_i) \rVert_2`,
    :math:`\ell` the cross-entropy (evaluation mode; computed ``batch``
    samples at a time, each sample's gradient its own since the loss is
    summed)."""
    total = 0.0
    for i in range(0, len(ctx.y), batch):
        x = ctx.x[i:i + batch].detach().clone().requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(ctx.model(x), ctx.y[i:i + batch], reduction="sum")
            (grad,) = torch.autograd.grad(loss, x)
        total += float(grad.flatten(1).norm(dim=1).sum())
    return total / len(ctx.y)
