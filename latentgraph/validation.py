"""Input checks shared by the public API.

Every check raises :class:`TypeError` for a wrong type and :class:`ValueError`
for a wrong value, and names the offending argument in the message.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor


def check_tensor(x: object, name: str) -> Tensor:
    """Return ``x`` if it is a tensor, else raise :class:`TypeError`.

    Example:
        >>> check_tensor([1.0], "x")
        Traceback (most recent call last):
        ...
        TypeError: `x` must be a torch.Tensor, got list
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(x).__name__}")
    if x.is_meta:
        raise ValueError(f"`{name}` is on the meta device: it has a shape but no values to compute with")
    return x


def check_int(value: object, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """An int (not a bool) in ``minimum..maximum`` (either bound optional) — sizes, counts, steps.

    Example:
        >>> check_int(0, "batch_size", minimum=1)
        Traceback (most recent call last):
        ...
        ValueError: `batch_size` must be an int ≥ 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"`{name}` must be an int, got {type(value).__name__} {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        wanted = (f"in {minimum}..{maximum}" if minimum is not None and maximum is not None
                  else f"≥ {minimum}" if minimum is not None else f"≤ {maximum}")
        raise ValueError(f"`{name}` must be an int {wanted}, got {value}")
    return value


def check_features(x: object, name: str = "x") -> Tensor:
    r"""Validate a batch of features and return it flattened to :math:`B \times D`.

    The batch must be a floating-point tensor of shape ``B×…`` with ``B ≥ 1``,
    at least one feature per sample and only finite values.

    Example:
        >>> check_features(torch.zeros(4, 2, 3)).shape
        torch.Size([4, 6])
    """
    x = check_tensor(x, name)
    if x.dim() < 2:
        raise ValueError(
            f"`{name}` must have shape B×… (one row per sample, at least 2 dimensions), "
            f"got shape {tuple(x.shape)}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"`{name}` is an empty batch (B = 0)")
    if not x.is_floating_point():
        raise TypeError(f"`{name}` must be a floating-point tensor, got dtype {x.dtype}")
    x = x.reshape(x.shape[0], -1)
    if x.shape[1] == 0:
        raise ValueError(f"`{name}` has no features (shape {tuple(x.shape)})")
    # a finite sum proves every entry finite (one reduction, no temporary)
    if not torch.isfinite(x.sum()) and not torch.isfinite(x).all():
        raise ValueError(f"`{name}` contains NaN or infinite values")
    return x


def check_labels(y: object, num_nodes: int, device: torch.device, name: str = "y",
                 num_classes: int | None = None) -> Tensor:
    """Validate class labels: an integer tensor of shape ``[num_nodes]``, non-negative
    (below ``num_classes`` when given), on ``device``; returned as int64.

    Example:
        >>> check_labels(torch.tensor([0, 2], dtype=torch.int32), 2, torch.device("cpu")).dtype
        torch.int64
    """
    y = check_tensor(y, name)
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise TypeError(f"`{name}` must hold integer class labels, got dtype {y.dtype}")
    if y.dim() != 1 or y.shape[0] != num_nodes:
        raise ValueError(
            f"`{name}` must have shape [{num_nodes}] (one label per sample), got {tuple(y.shape)}"
        )
    if y.device != device:
        raise ValueError(f"`{name}` is on {y.device} but the features are on {device}")
    if num_nodes and int(y.min()) < 0:
        ignored = " (-100 is cross-entropy's ignore_index: drop those samples first)" if bool((y == -100).any()) else ""
        raise ValueError(f"`{name}` must hold non-negative class indices, got {int(y.min())}{ignored}")
    if num_classes is not None and num_nodes and int(y.max()) >= num_classes:
        raise ValueError(f"`{name}` must hold class indices in 0..{num_classes - 1} (the model gives "
                         f"{num_classes} logits), got {int(y.max())}")
    return y.long()


def check_k(k: object, num_nodes: int, name: str = "k") -> int | None:
    """Validate a neighbour count: ``None`` or an int in ``1..num_nodes-1``.

    Example:
        >>> check_k(5, 5)
        Traceback (most recent call last):
        ...
        ValueError: `k` must be in 1..B-1 = 1..4 for a batch of B = 5, got 5
    """
    if k is None:
        return None
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"`{name}` must be an int or None, got {type(k).__name__}")
    if not 1 <= k <= num_nodes - 1:
        raise ValueError(
            f"`{name}` must be in 1..B-1 = 1..{num_nodes - 1} for a batch of B = {num_nodes}, got {k}"
        )
    return k


def check_choice(value: object, name: str, choices: Iterable[str]) -> str:
    """Validate that ``value`` is one of ``choices``.

    Example:
        >>> check_choice("rbf", "similarity", ("cosine", "rbf"))
        'rbf'
    """
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value  # type: ignore[return-value]


def check_same_batch(a: Tensor, b: Tensor, names: tuple[str, str]) -> None:
    """Check that two batches have the same size and live on the same device.

    Example:
        >>> check_same_batch(torch.zeros(3, 2), torch.zeros(4), ("x", "y"))
        Traceback (most recent call last):
        ...
        ValueError: `x` and `y` must have the same batch size, got 3 and 4
    """
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"`{names[0]}` and `{names[1]}` must have the same batch size, "
            f"got {a.shape[0]} and {b.shape[0]}"
        )
    if a.device != b.device:
        raise ValueError(f"`{names[0]}` is on {a.device} but `{names[1]}` is on {b.device}")


def check_neighbours(k: object, name: str = "k") -> int | None:
    """Validate a neighbour count given before the batch size is known: ``None`` or an int ≥ 1.

    Example:
        >>> check_neighbours(None), check_neighbours(5)
        (None, 5)
    """
    if k is None:
        return None
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"`{name}` must be an int or None, got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"`{name}` must be at least 1 (or None for the complete graph), got {k}")
    return k


def check_number(value: object, name: str, positive: bool = False) -> float:
    """A finite number ≥ 0 (> 0 with ``positive``) as a float — weights, temperatures, radii.

    Example:
        >>> check_number(2, "gamma")
        2.0
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and (value > 0 if positive else value >= 0)):
        raise ValueError(f"`{name}` must be a finite number {'>' if positive else '≥'} 0, got {value}")
    return float(value)


def check_flag(value: object, name: str) -> bool:
    """A bool (``normalize=``, ``detach=``), not a truthy stand-in such as ``"yes"``.

    Example:
        >>> check_flag(True, "normalize")
        True
    """
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be True or False, got {type(value).__name__} {value!r}")
    return value


def check_bandwidth(sigma: object, name: str = "sigma") -> float | Tensor | None:
    """``None`` or a finite bandwidth > 0: a number or a one-element tensor (kept as given).

    Example:
        >>> check_bandwidth(None), check_bandwidth(2)
        (None, 2)
    """
    if sigma is None:
        return None
    if isinstance(sigma, Tensor):
        if sigma.numel() != 1 or not sigma.is_floating_point():
            raise TypeError(f"`{name}` must be a number or a one-element float tensor, got {tuple(sigma.shape)} "
                            f"{sigma.dtype}")
        check_number(float(sigma), name, positive=True)
        return sigma
    check_number(sigma, name, positive=True)
    return sigma
