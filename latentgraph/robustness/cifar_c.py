r"""Loader for the released CIFAR-10-C files (Hendrycks & Dietterich, 2019).

The release is a folder of NumPy files: ``<corruption>.npy`` of shape
``50000×32×32×3`` (uint8, HWC) and ``labels.npy`` of shape ``[50000]``. Rows
``(s-1)·10000 : s·10000`` hold severity ``s`` (1..5) of the 10,000 CIFAR-10 test
images. Nothing is downloaded: point ``root`` at a local copy. The loader
accepts any ``5n`` rows (so that small files behave like the real ones) and
reads them memory-mapped, copying only the requested severity.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

CIFAR10C_CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
    "elastic_transform", "pixelate", "jpeg_compression",
)
"""The 15 benchmark corruptions (the release also has 4 extra: speckle_noise,
gaussian_blur, spatter, saturate, which the loader accepts too)."""

CIFAR10C_EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")


def _load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-10-C file not found: {path}")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(f"{path} is not a readable .npy array ({err})") from err


def available_corruptions(root: str | Path) -> list[str]:
    """Corruption names with a ``<name>.npy`` file in ``root``, in the benchmark's order."""
    root = Path(root)
    return [n for n in CIFAR10C_CORRUPTIONS + CIFAR10C_EXTRA if (root / f"{n}.npy").is_file()]


def load_cifar10c(root: str | Path, corruption: str, severity: int) -> tuple[Tensor, Tensor]:
    r"""One corruption at one severity of CIFAR-10-C.

    Args:
        root (str or Path): folder holding ``<corruption>.npy`` and ``labels.npy``.
        corruption (str): a name of :data:`CIFAR10C_CORRUPTIONS` or
            :data:`CIFAR10C_EXTRA`.
        severity (int): 1..5; selects rows ``(s-1)·n : s·n`` with ``n`` = rows / 5.

    Returns:
        (Tensor, Tensor): images ``n×3×32×32`` float in :math:`[0, 1]` and
        labels ``[n]`` (long).

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: unknown name or severity, an unreadable or malformed file
            (not uint8 N×H×W×3, N not a multiple of 5, labels not [N] integers in 0..9).
    """
    if corruption not in CIFAR10C_CORRUPTIONS + CIFAR10C_EXTRA:
        raise ValueError(f"`corruption` must be a CIFAR-10-C name such as 'gaussian_noise'; got {corruption!r}")
    if isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= 5:
        raise ValueError(f"`severity` must be an int in 1..5, got {severity!r}")
    root = Path(root)
    images = _load_npy(root / f"{corruption}.npy")
    labels = _load_npy(root / "labels.npy")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"{root / f'{corruption}.npy'} must be uint8 of shape N×H×W×3, "
            f"got {images.dtype} {images.shape}"
        )
    n_total = images.shape[0]
    if n_total == 0 or n_total % 5:
        raise ValueError(f"{root / f'{corruption}.npy'} must have 5·n rows (5 severities), got {n_total}")
    if labels.shape != (n_total,) or labels.dtype.kind not in "iu":
        raise ValueError(
            f"{root / 'labels.npy'} must hold {n_total} integer labels, got {labels.dtype} {labels.shape}"
        )
    n = n_total // 5
    rows = slice((severity - 1) * n, severity * n)
    y = torch.from_numpy(np.array(labels[rows], dtype=np.int64))
    if y.numel() and (int(y.min()) < 0 or int(y.max()) > 9):
        raise ValueError(f"{root / 'labels.npy'} must hold CIFAR-10 classes 0..9")
    x = torch.from_numpy(np.array(images[rows])).permute(0, 3, 1, 2).float().div_(255)
    return x.contiguous(), y


def cifar10c_errors(
    model: torch.nn.Module,
    root: str | Path,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> dict[str, list[float]]:
    r"""Errors :math:`E_{s,c}` of ``model`` on the released CIFAR-10-C files in ``root``,
    ready for :func:`~latentgraph.robustness.mce` / :func:`~latentgraph.robustness.relative_mce`.

    Images are fed in :math:`[0, 1]` (put the normalization inside the model)
    on ``device``.

    Args:
        model (nn.Module): the classifier.
        root (str or Path): folder of the ``.npy`` files.
        corruptions (list of str, optional): names; by default the 15 benchmark
            corruptions (:data:`CIFAR10C_CORRUPTIONS`).
        severities (list of int): severities to evaluate. (default: 1..5)
        batch_size (int): evaluation batch size. (default: :obj:`256`)
        device (torch.device or str, optional): where the images go; ``None``
            takes the device of the model's first parameter or buffer (the
            files are read on the host, so a model without any stays there).
            (default: :obj:`None`)

    Returns:
        dict[str, list[float]]: corruption → error per severity.
    """
    from latentgraph.eval.accuracy import error_rate

    if device is None:
        tensor = next(iter(model.parameters()), None)
        tensor = next(iter(model.buffers()), None) if tensor is None else tensor
        device = None if tensor is None else tensor.device
    out: dict[str, list[float]] = {}
    for name in CIFAR10C_CORRUPTIONS if corruptions is None else corruptions:
        errors = []
        for severity in severities:
            x, y = load_cifar10c(root, name, severity)
            if device is not None:
                x, y = x.to(device), y.to(device)
            errors.append(error_rate(model, x, y, batch_size))
        out[name] = errors
    return out
