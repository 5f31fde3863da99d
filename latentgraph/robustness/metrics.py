r"""Corruption robustness metrics (Hendrycks & Dietterich, 2019).

With :math:`E_{s,c}` the top-1 error of the model under corruption :math:`c`
at severity :math:`s`, :math:`E_{clean}` its clean error, and the same
quantities :math:`E^{base}` for a baseline model the user names (in the
papers: AlexNet on ImageNet, the CE-trained network on CIFAR-10):

.. math::
    \mathrm{CE}_c = \frac{\sum_{s=1}^{5} E_{s,c}}{\sum_{s=1}^{5} E^{base}_{s,c}},
    \qquad \mathrm{mCE} = \frac{1}{|C|}\sum_{c} \mathrm{CE}_c,

.. math::
    \text{relative mCE} = \frac{1}{|C|}\sum_{c}
    \frac{\sum_{s} \big(E_{s,c} - E_{clean}\big)}{\sum_{s} \big(E^{base}_{s,c} - E^{base}_{clean}\big)}.

All values are ratios (the baseline scores 1); papers print them ×100, so the
baseline reads 100. Errors are fractions in :math:`[0, 1]`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from latentgraph.eval.accuracy import error_rate
from latentgraph.robustness.corruptions import SEVERITIES, corrupt, corruption_names

Errors = Mapping[str, Sequence[float]]


def _check_errors(errors: Sequence[float], name: str) -> list[float]:
    values = [float(e) for e in errors]
    if not values:
        raise ValueError(f"`{name}` must hold one error per severity, got none")
    if any(not math.isfinite(e) or not 0 <= e <= 1 for e in values):
        raise ValueError(f"`{name}` must hold error rates in [0, 1], got {values}")
    return values


def _check_pair(errors: Errors, baseline: Errors) -> list[str]:
    if not errors:
        raise ValueError("`errors` must hold at least one corruption")
    if set(errors) != set(baseline):
        raise ValueError(
            "`errors` and `baseline_errors` must cover the same corruptions, got "
            f"{sorted(errors)} and {sorted(baseline)}"
        )
    for name in errors:
        if len(errors[name]) != len(baseline[name]):
            raise ValueError(f"corruption {name!r}: model and baseline have different numbers of severities")
    return list(errors)


def corruption_error(errors: Sequence[float], baseline_errors: Sequence[float]) -> float:
    r""":math:`\mathrm{CE}_c = \sum_s E_{s,c} / \sum_s E^{base}_{s,c}` for one corruption.

    Example:
        >>> corruption_error([0.1, 0.2, 0.3], [0.2, 0.4, 0.6])
        0.5
    """
    e = _check_errors(errors, "errors")
    b = _check_errors(baseline_errors, "baseline_errors")
    if len(e) != len(b):
        raise ValueError("`errors` and `baseline_errors` must have one entry per severity each")
    if sum(b) == 0:
        raise ValueError("`baseline_errors` sum to 0: CE is undefined for a baseline without errors")
    return sum(e) / sum(b)


def relative_corruption_error(
    errors: Sequence[float], clean_error: float, baseline_errors: Sequence[float], baseline_clean_error: float
) -> float:
    r""":math:`\sum_s (E_{s,c} - E_{clean}) / \sum_s (E^{base}_{s,c} - E^{base}_{clean})`.

    Example:
        >>> round(relative_corruption_error([0.2, 0.3], 0.1, [0.3, 0.5], 0.1), 6)
        0.5
    """
    e = _check_errors(errors, "errors")
    b = _check_errors(baseline_errors, "baseline_errors")
    (clean,) = _check_errors([clean_error], "clean_error")
    (base_clean,) = _check_errors([baseline_clean_error], "baseline_clean_error")
    if len(e) != len(b):
        raise ValueError("`errors` and `baseline_errors` must have one entry per severity each")
    denominator = sum(b) - len(b) * base_clean
    if denominator <= 0:
        raise ValueError(
            "the baseline's error does not grow under this corruption "
            f"(Σ_s(E_base - E_base_clean) = {denominator:.4g} ≤ 0): relative CE is undefined"
        )
    return (sum(e) - len(e) * clean) / denominator


def mce(errors: Errors, baseline_errors: Errors) -> float:
    r"""Mean corruption error :math:`\frac{1}{|C|}\sum_c \mathrm{CE}_c` over the corruptions of ``errors``.

    Args:
        errors (Mapping[str, Sequence[float]]): corruption → errors per severity.
        baseline_errors (Mapping[str, Sequence[float]]): same keys, the baseline model.

    Example:
        >>> mce({"a": [0.2], "b": [0.3]}, {"a": [0.4], "b": [0.3]})
        0.75
    """
    names = _check_pair(errors, baseline_errors)
    return sum(corruption_error(errors[n], baseline_errors[n]) for n in names) / len(names)


def relative_mce(errors: Errors, clean_error: float, baseline_errors: Errors, baseline_clean_error: float) -> float:
    r"""Relative mCE: the mean over corruptions of :func:`relative_corruption_error`.

    Example:
        >>> round(relative_mce({"a": [0.3]}, 0.1, {"a": [0.5]}, 0.1), 6)
        0.5
    """
    names = _check_pair(errors, baseline_errors)
    return sum(
        relative_corruption_error(errors[n], clean_error, baseline_errors[n], baseline_clean_error) for n in names
    ) / len(names)


def corruption_errors(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    names: Sequence[str] | None = None,
    severities: Sequence[int] = SEVERITIES,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, list[float]]:
    r"""Errors :math:`E_{s,c}` of ``model`` on :func:`~latentgraph.robustness.corrupt`-ed ``x``.

    The same ``seed`` gives every model the same corrupted images, so errors
    of two models (and their CE) compare like for like.

    Returns:
        dict[str, list[float]]: corruption → error per severity.

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
        >>> errs = corruption_errors(model, torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0]),
        ...                          names=["contrast"], severities=[1, 5])
        >>> len(errs["contrast"])
        2
    """
    names = corruption_names() if names is None else list(names)
    out: dict[str, list[float]] = {}
    for name in names:
        out[name] = [
            error_rate(model, corrupt(x, name, severity, seed=seed), y, batch_size) for severity in severities
        ]
    return out

