r"""Weather corruptions of CIFAR-10-C: fog, frost and snow, on ``N×C×H×W`` tensors in :math:`[0, 1]`.

Fog and snow follow the reference generator (``make_cifar_c.py``); frost
needs the generator's six photographs of frost, which are not shipped, and
uses a generated texture instead (:func:`frost_texture`; see
``docs/corruptions.md``).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from latentgraph.robustness.filtering import motion_blur, zoom

#: ITU-R 601 luma weights (OpenCV's ``COLOR_RGB2GRAY``).
LUMA = (0.299, 0.587, 0.114)


def plasma_fractal(n: int, size: int, decay: float, generator: torch.Generator,
                   device: torch.device | str = "cpu") -> Tensor:
    r"""``n`` diamond-square height maps of side ``size`` (a power of two), in :math:`[0, 1]`.

    Starting from a zero corner with step ``size`` and roughness
    :math:`w = 100`, each pass sets the centre of every square, then of every
    diamond, to the mean of its four corners plus :math:`w\,U(-w, w)`; the
    step then halves and :math:`w` is divided by ``decay`` (the reference's
    ``plasma_fractal``). The map is wrapped around (periodic) and rescaled to
    :math:`[0, 1]`.

    Example:
        >>> m = plasma_fractal(2, 8, 3.0, torch.Generator().manual_seed(0))
        >>> m.shape, float(m.amin()), float(m.amax())
        (torch.Size([2, 8, 8]), 0.0, 1.0)
    """
    if size < 2 or size & (size - 1):
        raise ValueError(f"`size` must be a power of two ≥ 2, got {size}")
    m = torch.zeros(n, size, size, dtype=torch.float64, device=device)
    step, wibble = size, 100.0

    def noisy_mean(total: Tensor) -> Tensor:
        noise = torch.rand(total.shape, generator=generator, dtype=torch.float64, device=device)
        return total / 4 + wibble * (2 * noise - 1) * wibble

    while step >= 2:
        half = step // 2
        corners = m[:, ::step, ::step]
        square = corners + corners.roll(-1, dims=1)
        square = square + square.roll(-1, dims=2)
        m[:, half::step, half::step] = noisy_mean(square)
        centres = m[:, half::step, half::step]
        corners = m[:, ::step, ::step]
        top = centres + centres.roll(1, dims=1) + corners + corners.roll(-1, dims=2)
        m[:, ::step, half::step] = noisy_mean(top)
        left = centres + centres.roll(1, dims=2) + corners + corners.roll(-1, dims=1)
        m[:, half::step, ::step] = noisy_mean(left)
        step //= 2
        wibble /= decay
    m = m - m.amin(dim=(1, 2), keepdim=True)
    return m / m.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)


def _fractal_size(h: int, w: int) -> int:
    """The reference's 32, or the next power of two covering larger images."""
    return max(32, 2 ** math.ceil(math.log2(max(h, w))))


def fog(x: Tensor, c: tuple[float, float], seed: int) -> Tensor:
    r""":math:`\mathrm{clip}\big((x + a F)\, m / (m + a)\big)` with ``c = (a, decay)``,
    :math:`F` a plasma fractal (one per image, shared by its channels) and
    :math:`m` the image's maximum."""
    a, decay = c
    h, w = x.shape[-2:]
    generator = torch.Generator(device=x.device).manual_seed(seed)
    fractal = plasma_fractal(x.shape[0], _fractal_size(h, w), decay, generator, x.device)[:, None, :h, :w].to(x)
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    return ((x + a * fractal) * peak / (peak + a)).clamp(0, 1)


def frost_texture(n: int, channels: int, h: int, w: int, generator: torch.Generator,
                  device: torch.device | str = "cpu") -> Tensor:
    r"""A stand-in for the reference's crops of frost photographs, in :math:`[0, 1]`.

    Ice on glass is bright, bluish and crystalline: the texture is the sum of a
    smooth plasma fractal (decay 2, the hazy layer) and 1.5 times a rough one
    (decay 1.2, the crystals) raised to the power 3 (sparse bright needles),
    scaled to mean 0.45 per image and clipped to 1, then tinted bluish white
    (R, G, B gains .86, .93, 1; their luma for one channel). The photographs'
    own statistics are not known here: the mean 0.45 is a guess.
    """
    size = _fractal_size(h, w)
    haze = plasma_fractal(n, size, 2.0, generator, device)
    crystals = plasma_fractal(n, size, 1.2, generator, device) ** 3
    texture = (haze + 1.5 * crystals)[:, None, :h, :w]
    texture = (texture * 0.45 / texture.mean(dim=(2, 3), keepdim=True).clamp_min(1e-12)).clamp(0, 1)
    tint = torch.tensor([0.86, 0.93, 1.0], dtype=texture.dtype, device=device)
    if channels == 1:
        tint = (tint * torch.tensor(LUMA, dtype=tint.dtype, device=device)).sum(0, keepdim=True)
    return texture * tint[None, :, None, None]


def frost(x: Tensor, c: tuple[float, float], seed: int) -> Tensor:
    r""":math:`\mathrm{clip}(a x + b T)` with ``c = (a, b)`` and :math:`T` a
    :func:`frost_texture` (the reference: a random crop of a frost photograph)."""
    a, b = c
    generator = torch.Generator(device=x.device).manual_seed(seed)
    texture = frost_texture(x.shape[0], x.shape[1], *x.shape[-2:], generator, x.device).to(x)
    return (a * x + b * texture).clamp(0, 1)


def _grey(x: Tensor) -> Tensor:
    if x.shape[1] == 1:
        return x
    return sum(weight * x[:, i : i + 1] for i, weight in enumerate(LUMA))


def snow(x: Tensor, c: tuple[float, ...], seed: int) -> Tensor:
    r"""Snowflakes streaked by the wind over a paler image, ``c = (μ, σ, z, t, r, s, k)``.

    A layer :math:`S \sim \mathcal{N}(\mu, \sigma^2)` per pixel is zoomed by
    ``z`` (:func:`~latentgraph.robustness.filtering.zoom`), zeroed below ``t``,
    clipped to :math:`[0, 1]`, truncated to 8 bits and motion-blurred (radius
    ``r``, σ ``s``, angle :math:`U(-135°, -45°)`); the image is paled to
    :math:`k x + (1 - k) \max(x, 1.5\,\mathrm{grey}(x) + 0.5)` and the result
    is :math:`\mathrm{clip}(x' + S + \mathrm{rot}_{180°}(S))`.
    """
    mean, std, factor, threshold, radius, sigma, keep = c
    n, _, h, w = x.shape
    generator = torch.Generator(device=x.device).manual_seed(seed)
    layer = mean + std * torch.randn((n, 1, h, w), generator=generator, dtype=torch.float64, device=x.device)
    layer = zoom(layer, factor)
    layer = torch.where(layer < threshold, torch.zeros_like(layer), layer).clamp(0, 1)
    layer = torch.floor(layer * 255) / 255
    angles = -135 + 90 * torch.rand(n, generator=generator, dtype=torch.float64, device=x.device)
    layer = motion_blur(layer, radius, sigma, angles).to(x)
    paled = keep * x + (1 - keep) * torch.maximum(x, _grey(x) * 1.5 + 0.5)
    return (paled + layer + layer.flip(-2, -1)).clamp(0, 1)
