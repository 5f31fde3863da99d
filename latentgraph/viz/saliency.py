"""Saliency overlays written to image files (drawn outside pyplot: :mod:`latentgraph.viz.figure`)."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from latentgraph.atomic import save_figure
from latentgraph.viz.figure import new_figure

__all__ = ["save_saliency_overlays"]


def save_saliency_overlays(images: Tensor, maps: Mapping[str, Tensor], path: str | os.PathLike,
                           titles: Sequence[str] | None = None, alpha: float = 0.6, dpi: int = 100) -> Path:
    r"""Write a grid with one column per image: the image, then each saliency map over it.

    Args:
        images (Tensor): :math:`B \times C \times H \times W` (channels are averaged for display).
        maps (dict): column title → :math:`B \times 1 \times H \times W` maps (each scaled
            to :math:`[0, 1]` per image for display).
        path (str): output file (PNG, PDF, ...), written atomically.
        titles (list of str, optional): one column title per image. (default: :obj:`None`)
        alpha (float): opacity of the maps over the image. (default: :obj:`0.6`)
        dpi (int): resolution of the file. (default: :obj:`100`)

    Example:
        >>> import tempfile
        >>> x = torch.rand(2, 1, 8, 8)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     save_saliency_overlays(x, {"FullGrad": torch.rand(2, 1, 8, 8)}, Path(d) / "s.png").exists()
        True
    """
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise ValueError("images must be a B×C×H×W tensor")
    for name, m in maps.items():
        if not isinstance(m, Tensor) or m.shape != (images.shape[0], 1, *images.shape[2:]):
            raise ValueError(f"maps['{name}'] must have shape B×1×H×W = "
                             f"{(images.shape[0], 1, *images.shape[2:])}")
    if titles is not None and len(titles) != images.shape[0]:
        raise ValueError(f"titles must hold one label per image ({images.shape[0]}), got {len(titles)}")
    count, kinds = images.shape[0], ["image", *maps]
    fig = new_figure(1.6 * count, 1.7 * len(kinds))
    axes = fig.subplots(len(kinds), count, squeeze=False)
    shown = images.detach().float().mean(1).cpu().numpy()
    for i in range(count):
        for row, kind in enumerate(kinds):
            ax = axes[row, i]
            ax.imshow(shown[i], cmap="gray", interpolation="nearest")
            if kind != "image":
                v = maps[kind][i, 0].detach().float().cpu()
                v = (v - v.min()) / (v.max() - v.min()).clamp_min(torch.finfo(v.dtype).tiny)
                ax.imshow(v.numpy(), cmap="jet", alpha=alpha, interpolation="bilinear")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(kind, fontsize=9)
        if titles is not None:
            axes[0, i].set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=dpi)
