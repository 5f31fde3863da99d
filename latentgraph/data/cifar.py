"""CIFAR-10/100 read from a local folder in the standard python-pickle format.

Nothing is downloaded: point ``root`` at the folder unpacked from
``cifar-10-python.tar.gz`` (``cifar-10-batches-py/`` with ``data_batch_1`` …
``data_batch_5`` and ``test_batch``) or ``cifar-100-python.tar.gz``
(``cifar-100-python/`` with ``train`` and ``test``), or at its parent. The
files are unpickled with an allow-list that admits only NumPy arrays and
plain Python values, so a tampered file cannot run code.
"""
from __future__ import annotations

import importlib
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..validation import check_flag

#: Layout of each data set: folder name, training files, test files, label key, number of classes.
LAYOUTS: dict[str, dict[str, Any]] = {
    "cifar10": {"folder": "cifar-10-batches-py", "train": [f"data_batch_{i}" for i in range(1, 6)],
                "test": ["test_batch"], "labels": b"labels", "classes": 10},
    "cifar100": {"folder": "cifar-100-python", "train": ["train"], "test": ["test"],
                 "labels": b"fine_labels", "classes": 100},
}

#: Per-channel mean and standard deviation of the training images (in [0, 1]).
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that only builds NumPy arrays (and plain Python values)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only NumPy arrays are allowed")
        with warnings.catch_warnings():  # numpy.core is a deprecated alias of numpy._core in NumPy 2
            warnings.simplefilter("ignore", DeprecationWarning)
            return getattr(importlib.import_module(module), name)


def _read_batch(path: Path, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR file {str(path)!r} is missing")
    try:
        with open(path, "rb") as f:
            entry = _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as error:  # truncated or foreign files raise many kinds of errors
        raise ValueError(f"CIFAR file {str(path)!r} is not a readable python-pickle batch: {error}") from error
    if not isinstance(entry, dict):
        raise ValueError(f"CIFAR file {str(path)!r} must hold a dict, got {type(entry).__name__}")
    entry = {k.encode() if isinstance(k, str) else k: v for k, v in entry.items()}
    missing = [k.decode() for k in (b"data", label_key) if k not in entry]
    if missing:
        raise ValueError(f"CIFAR file {str(path)!r} lacks the key(s) {', '.join(missing)}")
    data = np.asarray(entry[b"data"])
    labels = np.asarray(entry[label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(
            f"CIFAR file {str(path)!r}: 'data' must be uint8 of shape N×3072, got {data.dtype} {data.shape}"
        )
    if labels.ndim != 1 or labels.shape[0] != data.shape[0] or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"CIFAR file {str(path)!r}: expected {data.shape[0]} integer labels, got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"CIFAR file {str(path)!r}: labels must be in 0..{num_classes - 1}")
    return data, labels


def _find_folder(root: str | os.PathLike, name: str) -> Path:
    root = Path(root)
    layout = LAYOUTS[name]
    for folder in (root, root / layout["folder"]):
        if (folder / layout["test"][0]).exists():
            return folder
    if not root.exists():
        raise FileNotFoundError(f"CIFAR folder {str(root)!r} does not exist")
    raise FileNotFoundError(
        f"{str(root)!r} holds no {name} python-pickle files: expected {', '.join(layout['train'] + layout['test'])} "
        f"in it or in {layout['folder']}/ below it (unpack the official *-python.tar.gz there)"
    )


def load_cifar(root: str | os.PathLike, name: str = "cifar10", train: bool = True) -> tuple[Tensor, Tensor]:
    """Read a CIFAR split from a local folder.

    Args:
        root (str): the ``cifar-10-batches-py``/``cifar-100-python`` folder or its parent.
        name (str): ``"cifar10"`` or ``"cifar100"`` (fine labels). (default: :obj:`"cifar10"`)
        train (bool): the 50,000 training images, else the 10,000 test images.
            (default: :obj:`True`)

    Returns:
        ``(x, y)``: ``uint8`` images ``N×3×32×32`` and ``long`` labels.

    Raises:
        FileNotFoundError: the folder or one of its files is missing.
        ValueError: a file is truncated, is not a CIFAR batch, or holds data
            of the wrong shape, type or label range; the message names the file.
    """
    train = check_flag(train, "train")
    if name not in LAYOUTS:
        raise ValueError(f"`name` must be one of {', '.join(map(repr, LAYOUTS))}; got {name!r}")
    layout = LAYOUTS[name]
    folder = _find_folder(root, name)
    parts = [_read_batch(folder / f, layout["labels"], layout["classes"]) for f in layout["train" if train else "test"]]
    data = np.concatenate([p[0] for p in parts]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([p[1] for p in parts])
    return torch.from_numpy(data.copy()), torch.from_numpy(labels.astype(np.int64))


class CIFARDataset(Dataset):
    r"""Images ``uint8 N×3×32×32`` as normalized float tensors, optionally augmented.

    Each item is :math:`((x/255 - \mu)/\sigma, y)`; with ``augment=True`` the
    image is first padded by 4 pixels (zeros) and randomly cropped back to
    32×32, then flipped horizontally with probability 1/2 — the standard
    CIFAR recipe. Random draws come from PyTorch's generator, so seeded runs
    and resumed runs repeat them.

    Args:
        x (Tensor): ``uint8`` images ``N×3×32×32`` (from :func:`load_cifar`).
        y (Tensor): labels ``N``.
        augment (bool): random crop and flip. (default: :obj:`False`)
        mean, std (tuple): per-channel normalization (see :data:`NORMALIZATION`).
            (default: CIFAR-10's)

    Example:
        >>> ds = CIFARDataset(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.tensor([0, 1]), augment=True)
        >>> ds[1][0].shape, int(ds[1][1])
        (torch.Size([3, 32, 32]), 1)
    """

    def __init__(self, x: Tensor, y: Tensor, augment: bool = False, mean=NORMALIZATION["cifar10"][0],
                 std=NORMALIZATION["cifar10"][1]) -> None:
        augment = check_flag(augment, "augment")
        if not isinstance(x, Tensor) or x.dtype != torch.uint8 or x.dim() != 4 or tuple(x.shape[1:]) != (3, 32, 32):
            raise ValueError("`x` must be a uint8 tensor of shape N×3×32×32")
        if not isinstance(y, Tensor) or y.shape != (x.shape[0],):
            raise ValueError(f"`y` must be a tensor of {x.shape[0]} labels")
        self.x, self.y, self.augment = x, y.long(), bool(augment)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image = self.x[index].float().div_(255)
        if self.augment:
            padded = torch.nn.functional.pad(image, (4, 4, 4, 4))
            top, left = torch.randint(0, 9, (2,)).tolist()
            image = padded[:, top:top + 32, left:left + 32]
            if torch.rand(()) < 0.5:
                image = image.flip(-1)
        return (image - self.mean) / self.std, self.y[index]
