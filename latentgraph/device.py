"""Where a model lives, where to run, and how a batch gets there."""
from __future__ import annotations

import os

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


def resolve_device(device: str | torch.device | None = None, model: nn.Module | None = None,
                   where: str = "device") -> torch.device:
    """The device to run on, checked to exist on this machine.

    ``None`` means: ``cuda:LOCAL_RANK`` under ``torchrun`` (a process group of
    several ranks) with CUDA; else the device of ``model`` when one is given;
    else CUDA when available, else the CPU. A given device must be a torch
    device that this machine has: a malformed name, CUDA or MPS missing, or a
    CUDA index beyond the visible devices is a :class:`ValueError` that starts
    with ``where`` (the option's name, e.g. ``"--device"``).

    Example:
        >>> resolve_device("cpu"), resolve_device(None, torch.nn.Linear(2, 2))
        (device(type='cpu'), device(type='cpu'))
        >>> resolve_device("gpu", where="--device")
        Traceback (most recent call last):
        ...
        ValueError: --device must be cpu, cuda or cuda:N (or another torch device), got 'gpu'
    """
    if device is None:
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if distributed and torch.distributed.get_world_size() > 1 and torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if model is not None:
            return model_device(model)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{where} must be cpu, cuda or cuda:N (or another torch device), got {device!r}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{where} {device}: CUDA is not available on this machine (use cpu)")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ValueError(f"{where} {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if resolved.type == "mps" and not (torch.backends.mps.is_built() and torch.backends.mps.is_available()):
        raise ValueError(f"{where} {device}: this torch build or machine has no MPS (Apple GPU)")
    return resolved
