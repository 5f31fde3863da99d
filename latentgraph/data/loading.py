"""Subsets, loaders and user-supplied arrays."""
from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from ..validation import check_features, check_flag, check_int, check_labels, check_same_batch, check_tensor


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
    check_int(n_per_class, "n_per_class", minimum=1)
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
    shuffle = check_flag(shuffle, "shuffle")
    drop_last = check_flag(drop_last, "drop_last")
    check_int(batch_size, "batch_size", minimum=1)
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


def _as_samples(value, what: str) -> Tensor:
    """A NumPy array or tensor as a float32 tensor; uint8 images are scaled to
    :math:`[0, 1]` and ``N×H×W×C`` (C = 1 or 3, not ``N×C×…``) made ``N×C×H×W``."""
    t = torch.as_tensor(value) if isinstance(value, np.ndarray) else value
    if not isinstance(t, Tensor):
        raise TypeError(f"{what} must hold a tensor or array, got {type(value).__name__}")
    if t.dtype == torch.bool or t.is_complex() or not (t.is_floating_point() or t.dtype in (
            torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)):
        raise TypeError(f"{what} must be numeric, got dtype {t.dtype}")
    scaled = t.dtype == torch.uint8
    t = t.float()
    if scaled:
        t = t / 255
    if t.dim() == 4 and t.shape[-1] in (1, 3) and t.shape[1] not in (1, 3):
        t = t.permute(0, 3, 1, 2).contiguous()
    return t


def _read_array(path: str | os.PathLike):
    """The content of a ``.npy`` (without pickles) or ``.pt`` file (``weights_only=True``)."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in (".npy", ".pt", ".pth"):
        raise ValueError(f"{os.fspath(path)!r}: expected a .npy, .pt or .pth file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file {os.fspath(path)!r}")
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any reader failure is a bad file for the user
        raise ValueError(f"{os.fspath(path)!r} is not a readable {suffix} file "
                         f"({type(err).__name__}: {err})") from None


def load_tensors(path: str | os.PathLike, labels: str | os.PathLike | None = None) -> tuple[Tensor, Tensor]:
    r"""Read samples and labels from a ``.npy`` or ``.pt`` file.

    A ``.pt`` file (read with ``weights_only=True``) holds a dict with keys
    ``"x"`` and ``"y"``, a pair ``(x, y)``, or the samples alone; a ``.npy``
    file (read without pickles) holds the samples alone. Samples alone need
    ``labels``: a ``.npy`` or ``.pt`` file of ``N`` integers (CIFAR-10-C's
    ``labels.npy`` layout). ``uint8`` samples are scaled to :math:`[0, 1]` and
    ``N×H×W×C`` images (C = 1 or 3) transposed to ``N×C×H×W``.

    Returns:
        (Tensor, Tensor): samples (float32) and labels (long).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     torch.save({"x": torch.rand(4, 3), "y": torch.tensor([0, 1, 0, 1])}, d + "/data.pt")
        ...     x, y = load_tensors(d + "/data.pt")
        >>> tuple(x.shape), y.tolist()
        ((4, 3), [0, 1, 0, 1])
    """
    content = _read_array(path)
    name = repr(os.fspath(path))
    if isinstance(content, dict):
        missing = sorted({"x", "y"} - content.keys())
        if missing:
            raise ValueError(f"{name} must hold a dict with keys 'x' and 'y'; missing {missing}")
        x, y = content["x"], content["y"]
    elif isinstance(content, (tuple, list)):
        if len(content) != 2:
            raise ValueError(f"{name} must hold a pair (x, y), got {len(content)} items")
        x, y = content
    else:
        if labels is None:
            raise ValueError(f"{name} holds samples only: give the labels file too")
        x, y = content, _read_array(labels)
    if labels is not None and (isinstance(content, (dict, tuple, list))):
        raise ValueError(f"{name} already holds labels: do not give a labels file")
    xt = _as_samples(x, f"the samples of {name}")
    yt = torch.as_tensor(y) if isinstance(y, np.ndarray) else y
    if not isinstance(yt, Tensor) or yt.is_floating_point() or yt.dtype == torch.bool or yt.is_complex():
        raise TypeError(f"the labels of {name} must be integers, got "
                        f"{getattr(yt, 'dtype', type(yt).__name__)}")
    check_features(xt, "x")
    return xt, check_labels(yt.long(), xt.shape[0], xt.device)
