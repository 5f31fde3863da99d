r"""Accuracy of a classifier: predictions, top-1 accuracy over a loader, error rate.

Every function runs the model in eval mode (no BatchNorm statistics update, no
dropout) under :func:`torch.no_grad` and restores the train/eval flag of the
model and of each of its sub-modules afterwards (:func:`eval_mode`).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from latentgraph.device import model_device, to_device
from latentgraph.validation import check_int


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode, then restore each submodule's own ``training`` flag.

    Restoring only ``model.training`` (``model.train(was_training)``) would
    switch a sub-module the user had put in eval mode (a frozen backbone) back
    to training mode; this restores every flag as it was.

    Example:
        >>> model = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
        >>> model[1].eval()
        Dropout(p=0.5, inplace=False)
        >>> with eval_mode(model):
        ...     model.training
        False
        >>> model.training, model[1].training
        (True, False)
    """
    with _mode(model, False):
        yield model


@contextmanager
def train_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in training mode, then restore each submodule's own ``training`` flag.

    Example:
        >>> model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)).eval()
        >>> with train_mode(model):
        ...     model[1].training
        True
        >>> model[1].training
        False
    """
    with _mode(model, True):
        yield model


@contextmanager
def _mode(model: nn.Module, training: bool) -> Iterator[None]:
    flags = [(module, module.training) for module in model.modules()]
    model.train(training)
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


def batch_slices(n: int, batch_size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``batch_size`` covering ``range(n)``.

    Example:
        >>> list(batch_slices(5, 2))
        [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    """
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 256) -> Tensor:
    """Predicted classes (argmax of the logits) of ``x`` in eval mode, by batches.

    Example:
        >>> model = nn.Linear(2, 2, bias=False)
        >>> _ = model.weight.data.copy_(torch.eye(2))
        >>> predict(model, torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.2, 0.9]]), batch_size=2).tolist()
        [0, 1, 1]
    """
    with eval_mode(model):
        return torch.cat([model(x[s]).argmax(dim=1) for s in batch_slices(x.shape[0], batch_size)])


def error_rate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 256) -> float:
    """Top-1 error of ``model`` on ``(x, y)``, in eval mode (the model's mode is restored).

    Example:
        >>> model = nn.Linear(2, 2, bias=False)
        >>> _ = model.weight.data.copy_(torch.eye(2))
        >>> error_rate(model, torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))
        0.5
    """
    return float((predict(model, x, batch_size) != y).float().mean())


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable[Sequence[Tensor]], device: torch.device | None = None) -> float:
    r"""Top-1 accuracy of ``model`` over ``loader``.

    .. math:: \mathrm{acc} = \frac{1}{N}\sum_i [\arg\max_c f(x_i)_c = y_i]

    The model runs in eval mode under :func:`torch.no_grad`; the train/eval
    flag of the model and of each sub-module is restored afterwards. Batches are ``(x, y, ...)``.

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
    correct, total = 0, 0
    with eval_mode(model):
        for batch in loader:
            x, y = to_device(batch[0], device), to_device(batch[1], device)
            logits = model(x)
            if logits.dim() != 2 or logits.shape[0] != y.shape[0]:
                raise ValueError(
                    f"evaluate expects B×C logits for B = {y.shape[0]} labels, got shape {tuple(logits.shape)}"
                )
            correct += int((logits.argmax(dim=1) == y).sum())
            total += int(y.shape[0])
    if total == 0:
        raise ValueError("`loader` yielded no samples")
    return correct / total
