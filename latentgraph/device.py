"""Where a model lives and how a batch gets there."""
from __future__ import annotations

import torch
from torch import Tensor, nn


def to_device(batch, device: torch.device):
    """Move every tensor of a (nested) tuple/list/dict batch to ``device``.

    Example:
        >>> to_device({"x": torch.zeros(1), "n": 3}, torch.device("cpu"))
        {'x': tensor([0.]), 'n': 3}
    """
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for an empty model).

    Example:
        >>> model_device(torch.nn.Linear(2, 2))
        device(type='cpu')
    """
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")
