"""Subsets, loaders and user-supplied arrays."""
from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from ..validation import check_features, check_labels, check_same_batch, check_tensor


def per_class_subset(x: Tensor, y: Tensor, n_per_class: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """The first ``n_per_class`` samples of each class after a seeded shuffle (limited-data settings).

    Example:
        >>> x, y = torch.rand(100, 3), torch.arange(100) % 4
        >>> xs, ys = per_class_subset(x, y, 5)
        >>> torch.bincount(ys).tolist()
        [5, 5, 5, 5]
    """
    check_features(x, "x")
    y = check_labels(y, x.shape[0], x.device)
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, int) or n_per_class < 1:
        raise ValueError(f"`n_per_class` must be a positive int, got {n_per_class!r}")
    counts = torch.bincount(y)
    if int(counts[counts > 0].min()) < n_per_class:
        raise ValueError(f"`n_per_class`={n_per_class} exceeds the smallest class ({int(counts[counts > 0].min())})")
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed)).to(y.device)
    keep = torch.cat([order[y[order] == c][:n_per_class] for c in torch.unique(y)])
    keep = keep.sort().values
    return x[keep], y[keep]


def make_loader(x: Tensor, y: Tensor, batch_size: int = 128, shuffle: bool = True, seed: int = 0,
                drop_last: bool = False) -> DataLoader:
    """A :class:`~torch.utils.data.DataLoader` over ``(x, y)`` whose shuffling is seeded.

    Example:
        >>> [len(yb) for _, yb in make_loader(torch.rand(10, 2), torch.arange(10), batch_size=4)]
        [4, 4, 2]
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}")
    check_same_batch(check_tensor(x, "x"), check_tensor(y, "y"), ("x", "y"))
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                      generator=torch.Generator().manual_seed(seed))


def load_npz(path: str | os.PathLike) -> tuple[Tensor, Tensor]:
    """Read a user's data set from a ``.npz`` file with arrays ``x`` (``N×…``,
    numeric) and ``y`` (``N`` integer labels); returns float32 and long tensors."""
    if not os.path.isfile(path):
        raise ValueError(f"`path`: no such file {os.fspath(path)!r}")
    try:
        arrays = np.load(path, allow_pickle=False)
        found = {key: arrays[key] for key in ("x", "y") if key in getattr(arrays, "files", ())}
    except (OSError, EOFError, ValueError) as err:
        raise ValueError(f"{os.fspath(path)!r} is not a readable .npz file: {err}") from err
    missing = sorted({"x", "y"} - found.keys())
    if missing:
        raise ValueError(f"{os.fspath(path)!r} must hold arrays 'x' and 'y'; missing {missing}")
    x, y = found["x"], found["y"]
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"'y' in {os.fspath(path)!r} must hold integer labels, got dtype {y.dtype}")
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    check_features(xt, "x")
    return xt, check_labels(torch.as_tensor(y, dtype=torch.long), xt.shape[0], xt.device)
