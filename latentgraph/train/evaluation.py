"""Evaluation of a classifier over a DataLoader."""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import torch
from torch import Tensor, nn


def to_device(batch, device: torch.device):
    """Move every tensor of a (nested) tuple/list/dict batch to ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for an empty model)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable[Sequence[Tensor]], device: Optional[torch.device] = None) -> float:
    r"""Top-1 accuracy of ``model`` over ``loader``.

    .. math:: \mathrm{acc} = \frac{1}{N}\sum_i [\arg\max_c f(x_i)_c = y_i]

    The model runs in eval mode under :func:`torch.no_grad`; its previous
    train/eval mode is restored afterwards. Batches are ``(x, y, ...)``.

    Args:
        model (nn.Module): a classifier returning ``B×C`` logits.
        loader (Iterable): yields ``(x, y)`` batches.
        device (torch.device, optional): where to run; defaults to the
            model's device.

    Example:
        >>> model = torch.nn.Linear(2, 2, bias=False)
        >>> _ = model.weight.data.copy_(torch.eye(2))
        >>> evaluate(model, [(torch.tensor([[1., 0.], [0., 1.], [1., 0.]]), torch.tensor([0, 1, 1]))])
        0.6666666666666666
    """
    device = model_device(model) if device is None else torch.device(device)
    was_training = model.training
    model.eval()
    correct, total = 0, 0
    try:
        for batch in loader:
            x, y = to_device(batch[0], device), to_device(batch[1], device)
            logits = model(x)
            if logits.dim() != 2 or logits.shape[0] != y.shape[0]:
                raise ValueError(
                    f"evaluate expects B×C logits for B = {y.shape[0]} labels, got shape {tuple(logits.shape)}"
                )
            correct += int((logits.argmax(dim=1) == y).sum())
            total += int(y.shape[0])
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("`loader` yielded no samples")
    return correct / total
