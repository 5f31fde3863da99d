"""A folder of images with one subfolder per class (torchvision's ``ImageFolder`` layout), read with Pillow."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..validation import check_int

#: File suffixes read as images (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _size_pair(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise ValueError(f"`size` must be an int ≥ 1 or a (height, width) pair, got {size!r}")
        return check_int(size[0], "size", minimum=1), check_int(size[1], "size", minimum=1)
    side = check_int(size, "size", minimum=1)
    return side, side


def load_image_folder(root: str | os.PathLike, size: int | tuple[int, int] | None = None,
                      channels: int = 3) -> tuple[Tensor, Tensor, list[str]]:
    r"""Read ``root/<class>/<image>`` into tensors.

    Classes are the subfolders of ``root`` in sorted order (labels ``0..K-1``,
    as torchvision's ``ImageFolder``); a class's images are its files ending
    in ``.png``, ``.jpg`` or ``.jpeg`` (any case), in sorted order. Hidden
    files and other suffixes are skipped. Every image is converted to RGB
    (``channels=3``) or grey (``channels=1``) and, when ``size`` is given,
    resized to it with Pillow's bilinear filter (antialiased).

    Args:
        root (str or Path): the folder.
        size (int or (int, int), optional): ``side`` or ``(height, width)`` to
            resize to; ``None`` requires all images to have the same size.
            (default: :obj:`None`)
        channels (int): 3 (RGB) or 1 (grey). (default: :obj:`3`)

    Returns:
        (Tensor, list): images ``N×C×H×W`` float32 in :math:`[0, 1]`, labels
        ``[N]`` (long), and the class names (label ``i`` is ``classes[i]``).

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: no class folder, a class without images, an unreadable
            image, images of different sizes without ``size``.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> with tempfile.TemporaryDirectory() as d:
        ...     for cls in ("cat", "dog"):
        ...         os.makedirs(os.path.join(d, cls))
        ...         Image.new("RGB", (6, 4), "white").save(os.path.join(d, cls, "a.png"))
        ...     x, y, classes = load_image_folder(d, size=8)
        >>> tuple(x.shape), y.tolist(), classes
        ((2, 3, 8, 8), [0, 1], ['cat', 'dog'])
    """
    from PIL import Image, UnidentifiedImageError

    pair = _size_pair(size)
    if check_int(channels, "channels") not in (1, 3):
        raise ValueError(f"`channels` must be 1 or 3, got {channels!r}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder {os.fspath(root)!r}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{os.fspath(root)!r} holds no class folders: expected {root}/<class>/<image>.png")
    images: list[np.ndarray] = []
    labels: list[int] = []
    first: tuple[Path, tuple[int, int]] | None = None
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"class folder {os.fspath(root / name)!r} holds no images "
                             f"({', '.join(IMAGE_SUFFIXES)}); remove it or add images")
        for file in files:
            try:
                with Image.open(file) as img:
                    img = img.convert("RGB" if channels == 3 else "L")
                    if pair is not None:
                        img = img.resize((pair[1], pair[0]), Image.BILINEAR)
            except (UnidentifiedImageError, OSError, ValueError) as err:
                raise ValueError(f"cannot read image {os.fspath(file)!r} ({err})") from None
            shape = (img.height, img.width)
            if first is None:
                first = (file, shape)
            elif shape != first[1]:
                raise ValueError(f"images of different sizes: {os.fspath(first[0])!r} is {first[1][0]}×{first[1][1]}, "
                                 f"{os.fspath(file)!r} is {shape[0]}×{shape[1]} (height×width); give a size to "
                                 f"resize them to")
            arr = np.asarray(img, dtype=np.uint8)
            images.append(arr[None] if channels == 1 else arr.transpose(2, 0, 1))
            labels.append(label)
    x = torch.from_numpy(np.stack(images)).float().div_(255)
    return x, torch.tensor(labels, dtype=torch.long), classes
