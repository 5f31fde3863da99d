r"""Image filters and resamplings that the corruptions are made of, on ``N×C×H×W`` tensors.

They restate in torch the OpenCV, scikit-image, SciPy and ImageMagick
operations of the CIFAR-10-C generator, with the same border conventions:

* ``"replicate"``: edge replication (``a a | a b c | c c``; scikit-image's
  ``mode="nearest"``, ImageMagick's default virtual pixels);
* ``"reflect"``: mirror about the edge pixel (``c b | a b c | b a``;
  OpenCV's ``BORDER_REFLECT_101``);
* ``"symmetric"``: mirror about the border (``b a | a b c | c b``; SciPy's and
  scikit-image's ``mode="reflect"``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

BORDERS = ("replicate", "reflect", "symmetric")


def _border_index(n: int, pad: int, mode: str, device: torch.device) -> Tensor:
    """Indices into ``0..n-1`` of the ``n + 2·pad`` samples of a padded axis."""
    i = torch.arange(-pad, n + pad, device=device)
    if mode == "replicate":
        return i.clamp(0, n - 1)
    if mode == "symmetric":
        i = i.remainder(2 * n)
        return torch.where(i >= n, 2 * n - 1 - i, i)
    if n == 1:  # reflect-101 of a single sample is that sample
        return torch.zeros_like(i)
    i = i.remainder(2 * n - 2)
    return torch.where(i >= n, 2 * n - 2 - i, i)


def pad(x: Tensor, pad_h: int, pad_w: int, mode: str) -> Tensor:
    """Pad the last two axes of ``x`` by ``pad_h`` rows and ``pad_w`` columns on
    each side, with any pad size (also beyond the image, unlike :func:`F.pad`).

    Example:
        >>> pad(torch.tensor([[[[1., 2., 3.]]]]), 0, 2, "symmetric")[0, 0, 0].tolist()
        [2.0, 1.0, 1.0, 2.0, 3.0, 3.0, 2.0]
    """
    if mode not in BORDERS:
        raise ValueError(f"`mode` must be one of {', '.join(BORDERS)}; got {mode!r}")
    rows = _border_index(x.shape[-2], pad_h, mode, x.device)
    cols = _border_index(x.shape[-1], pad_w, mode, x.device)
    return x[..., rows, :][..., cols]


def correlate(x: Tensor, kernel: Tensor, mode: str) -> Tensor:
    """Correlate every channel of ``x`` with the 2-D ``kernel`` (odd sides); same size.

    Example:
        >>> correlate(torch.ones(1, 1, 4, 4), torch.full((3, 3), 1 / 9), "reflect").allclose(torch.ones(1, 1, 4, 4))
        True
    """
    kh, kw = kernel.shape
    n, ch, h, w = x.shape
    padded = pad(x.reshape(n * ch, 1, h, w), kh // 2, kw // 2, mode)
    return F.conv2d(padded, kernel.to(x)[None, None]).reshape(n, ch, h, w)


def gaussian_kernel_1d(sigma: float, radius: int) -> Tensor:
    r"""Normalized :math:`\exp(-t^2 / 2\sigma^2)` on ``t = -radius..radius`` (float64)."""
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_filter(x: Tensor, sigma: float, truncate: float = 4.0, mode: str = "replicate") -> Tensor:
    r"""Gaussian filter of standard deviation ``sigma`` per channel, truncated at
    ``truncate``·σ (``scipy.ndimage.gaussian_filter``'s radius
    :math:`\lfloor \mathrm{truncate}\cdot\sigma + 1/2 \rfloor`).

    Example:
        >>> gaussian_filter(torch.ones(1, 1, 5, 5), 1.0).allclose(torch.ones(1, 1, 5, 5))
        True
    """
    k = gaussian_kernel_1d(sigma, int(truncate * sigma + 0.5))
    return correlate(x, torch.outer(k, k), mode)


def motion_blur(x: Tensor, radius: float, sigma: float, angles: Tensor) -> Tensor:
    r"""ImageMagick's ``-motion-blur radius×sigma+angle``, one angle (degrees) per image.

    The kernel has :math:`w = 2\lceil r \rceil + 1` taps on a ray from the pixel
    in the direction of the angle, tap :math:`i` at the rounded offset
    :math:`(i\cos\theta, i\sin\theta)` (columns, rows), weighted by
    :math:`e^{-i^2 / 2\sigma^2}` normalized to sum 1; pixels beyond the image
    repeat the edge.

    Example:
        >>> x = torch.zeros(1, 1, 1, 9); x[..., 4] = 1
        >>> (motion_blur(x, 2, 1e3, torch.tensor([0.0]))[0, 0, 0] * 5).round().tolist()
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    """
    width = 2 * math.ceil(radius) + 1
    taps = torch.arange(width, dtype=torch.float64)
    weights = torch.exp(-(taps**2) / (2 * sigma**2))
    weights = (weights / weights.sum()).to(x)
    theta = torch.deg2rad(angles.to(torch.float64)).cpu()
    dx = torch.ceil(taps[None] * torch.cos(theta)[:, None] - 0.5).long()  # N×w column offsets
    dy = torch.ceil(taps[None] * torch.sin(theta)[:, None] - 0.5).long()
    h, w = x.shape[-2:]
    padded = pad(x, width, width, "replicate").movedim(1, -1)  # N×H'×W'×C
    images = torch.arange(x.shape[0], device=x.device)[:, None, None]
    rows = torch.arange(h, device=x.device)[None, :, None] + width
    cols = torch.arange(w, device=x.device)[None, None, :] + width
    out = torch.zeros_like(padded[:, :h, :w])
    for i in range(width):
        out += weights[i] * padded[images, rows + dy[:, i, None, None].to(x.device),
                                   cols + dx[:, i, None, None].to(x.device)]
    return out.movedim(-1, 1)


def random_field(shape: tuple[int, ...], alpha: float, sigma: float, generator: torch.Generator,
                 device: torch.device | str = "cpu") -> Tensor:
    r""":math:`\alpha\, G_\sigma * U(-1, 1)`: uniform noise of ``shape`` (``…×H×W``,
    float64) smoothed over its last two axes by a Gaussian of σ truncated at 3σ,
    symmetric border (the displacements of the elastic transform).

    Example:
        >>> random_field((2, 8, 8), 1.0, 2.0, torch.Generator().manual_seed(0)).abs().max() < 1
        tensor(True)
    """
    noise = 2 * torch.rand(shape, generator=generator, dtype=torch.float64, device=device) - 1
    flat = noise.reshape(-1, 1, *shape[-2:])
    return alpha * gaussian_filter(flat, sigma, truncate=3.0, mode="symmetric").reshape(shape)


def zoom(x: Tensor, factor: float) -> Tensor:
    r"""``scipy.ndimage.zoom(order=1)`` of the central :math:`\lceil s/z \rceil`
    crop, cropped back to the centre at the input size (the reference's
    ``clipped_zoom``): linear interpolation with the corner samples aligned.

    Example:
        >>> x = torch.rand(1, 3, 8, 8)
        >>> torch.equal(zoom(x, 1.0), x)
        True
    """
    h, w = x.shape[-2:]
    ch, cw = math.ceil(h / factor), math.ceil(w / factor)
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[..., top : top + ch, left : left + cw]
    out_h, out_w = round(ch * factor), round(cw * factor)
    if (out_h, out_w) == (ch, cw):
        zoomed = crop
    else:
        zoomed = F.interpolate(crop, size=(out_h, out_w), mode="bilinear", align_corners=True)
    trim_h, trim_w = (out_h - h) // 2, (out_w - w) // 2
    return zoomed[..., trim_h : trim_h + h, trim_w : trim_w + w]


def sample(x: Tensor, rows: Tensor, cols: Tensor, mode: str) -> Tensor:
    """Bilinear samples of ``x`` (``N×C×H×W``) at pixel coordinates ``rows``,
    ``cols`` (``N×H×W`` each); outside points follow ``mode`` ``"reflect"``
    (OpenCV's reflect-101) or ``"symmetric"`` (SciPy's ``reflect``).

    Example:
        >>> x = torch.rand(1, 1, 4, 5)
        >>> r, c = torch.meshgrid(torch.arange(4.), torch.arange(5.), indexing="ij")
        >>> sample(x, r[None], c[None], "symmetric").allclose(x)
        True
    """
    h, w = x.shape[-2:]
    if mode == "reflect":  # mirror about the edge pixel centres
        gy = 2 * rows / max(h - 1, 1) - 1
        gx = 2 * cols / max(w - 1, 1) - 1
        align = True
    elif mode == "symmetric":  # mirror about the image border
        gy = (2 * rows + 1) / h - 1
        gx = (2 * cols + 1) / w - 1
        align = False
    else:
        raise ValueError(f"`mode` must be 'reflect' or 'symmetric'; got {mode!r}")
    grid = torch.stack([gx, gy], dim=-1).to(x)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=align)
