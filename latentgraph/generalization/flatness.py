r"""Flatness measures: the PAC-Bayes sharpness and magnitude-aware flatness
estimates of Jiang et al. (2020), by bisection on the perturbation scale."""
from __future__ import annotations

import torch
from torch import nn

from ..validation import check_int, check_number
from .registry import Context, register


def _accuracy(ctx: Context) -> float:
    return float((ctx.logits().argmax(dim=1) == ctx.y).double().mean())


def perturbed_accuracy(ctx: Context, sigma: float, draws: int, magnitude_aware: bool, eps: float = 1e-3) -> float:
    r"""Mean training accuracy over ``draws`` draws of :math:`w + u`:
    :math:`u_i \sim \mathcal N(0, \sigma^2)`, or with ``magnitude_aware``
    :math:`u_i \sim \mathcal N(0, \sigma^2 w_i^2 + \epsilon^2)` (the
    parameters are restored afterwards)."""
    params = [p for p in ctx.model.parameters()]
    saved = [p.detach().clone() for p in params]
    total = 0.0
    try:
        for _ in range(draws):
            with torch.no_grad():
                for p, w in zip(params, saved):
                    noise = torch.randn(w.shape, generator=ctx.generator, dtype=w.dtype).to(w.device)
                    std = (sigma ** 2 * w.pow(2) + eps ** 2).sqrt() if magnitude_aware else sigma
                    p.copy_(w + std * noise)
            total += _accuracy(ctx)
    finally:
        with torch.no_grad():
            for p, w in zip(params, saved):
                p.copy_(w)
    return total / draws


def largest_sigma(ctx: Context, deviation: float, draws: int, steps: int, magnitude_aware: bool,
                  sigma_max: float) -> float:
    r"""The largest :math:`\sigma \le` ``sigma_max`` (bisection, ``steps``
    halvings of :math:`[0, \sigma_{max}]`) whose perturbed training accuracy
    stays within ``deviation`` of the unperturbed one."""
    base = _accuracy(ctx)
    low, high = 0.0, sigma_max
    if perturbed_accuracy(ctx, high, draws, magnitude_aware) >= base - deviation:
        return high
    for _ in range(steps):
        mid = (low + high) / 2
        if perturbed_accuracy(ctx, mid, draws, magnitude_aware) >= base - deviation:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def _check(deviation: float, draws: int, steps: int, sigma_max: float) -> None:
    deviation = check_number(deviation, "deviation", positive=True)
    check_number(sigma_max, "sigma_max", positive=True)
    for name, value in (("draws", draws), ("steps", steps)):
        check_int(value, name, minimum=1)
    if deviation >= 1:
        raise ValueError(f"`deviation` is an accuracy drop in (0, 1), got {deviation}")


@register("pac_bayes_sharpness", "flatness", "1/σ², σ the largest weight noise costing ≤ 0.1 training accuracy")
def pac_bayes_sharpness(ctx: Context, *, deviation: float = 0.1, draws: int = 5, steps: int = 12,
                        sigma_max: float = 1.0) -> float:
    r""":math:`1/\sigma^2`, :math:`\sigma` the largest standard deviation of
    isotropic Gaussian weight noise whose mean training accuracy over
    ``draws`` (5) draws drops by at most ``deviation`` (0.1); found by
    bisection on :math:`[0, \sigma_{max}=1]` in ``steps`` (12) halvings
    (Jiang et al., 2020, "pacbayes.sharpness")."""
    _check(deviation, draws, steps, sigma_max)
    return 1.0 / largest_sigma(ctx, deviation, draws, steps, False, sigma_max) ** 2


@register("pac_bayes_flatness", "flatness", "1/σ'², magnitude-aware weight noise costing ≤ 0.1 training accuracy")
def pac_bayes_flatness(ctx: Context, *, deviation: float = 0.1, draws: int = 5, steps: int = 12,
                       sigma_max: float = 1.0) -> float:
    r"""As ``pac_bayes_sharpness`` with magnitude-aware noise
    :math:`u_i \sim \mathcal N(0, \sigma'^2 w_i^2 + 10^{-6})` (Jiang et al.,
    2020, "pacbayes.mag.flatness")."""
    _check(deviation, draws, steps, sigma_max)
    return 1.0 / largest_sigma(ctx, deviation, draws, steps, True, sigma_max) ** 2
