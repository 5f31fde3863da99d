"""Re-estimating BatchNorm running statistics after training."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from latentgraph.device import model_device, to_device
from latentgraph.eval.accuracy import train_mode


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, loader: Any, device: str | torch.device | None = None
                          ) -> list[nn.Module]:
    r"""Re-estimate the running statistics of ``model``'s BatchNorm layers over ``loader``.

    As :func:`torch.optim.swa_utils.update_bn`: each BatchNorm layer that
    tracks running statistics is reset and switched to a cumulative average
    (``momentum=None``), the model runs in train mode without gradients on
    every batch's input (``batch[0]`` of a tuple/list batch), and momentum
    and the train/eval flag of every sub-module are restored. The result is the mean over batches
    of the batch mean and of the unbiased batch variance. Other layers run
    in train mode too (dropout is active but changes no state).

    Args:
        model (nn.Module): the network.
        loader (iterable): yields ``(x, ...)`` batches or inputs.
        device (torch.device, optional): where to run; defaults to the
            model's device.

    Returns:
        list[nn.Module]: the recalibrated layers (empty: nothing to do).

    Example:
        >>> model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
        >>> x = torch.randn(8, 2)
        >>> len(recalibrate_batchnorm(model, [(x[:4],), (x[4:],)]))
        1
        >>> torch.allclose(model[1].running_mean, model[0](x).mean(0))
        True
    """
    norms = [m for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return []
    device = model_device(model) if device is None else torch.device(device)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    try:
        with train_mode(model):
            seen = 0
            for batch in loader:
                model(to_device(batch[0] if isinstance(batch, (list, tuple)) else batch, device))
                seen += 1
        if seen == 0:
            raise ValueError("`loader` yielded no batches to re-estimate the BatchNorm statistics on")
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
    return norms
