r"""Toy manifolds of the Locally Isometric Layers paper: two topologically
entangled (linked) rings in 3-D, and a noisy torus cut into cylindrical
regions with hierarchical labels.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..validation import check_number

__all__ = ["entangled_rings", "noisy_torus"]


def _check_count(n: object, name: str, minimum: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"`{name}` must be an int, got {type(n).__name__}")
    if n < minimum:
        raise ValueError(f"`{name}` must be at least {minimum}, got {n}")
    return n


def _generator(seed: object) -> torch.Generator:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"`seed` must be an int, got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)


def entangled_rings(n: int = 1000, noise: float = 0.0, seed: int = 0, radius: float = 1.0) -> tuple[Tensor, Tensor]:
    r"""Two linked circles in 3-D (a Hopf link), one class each.

    Ring 0 is the circle of radius :math:`r` centred at the origin in the
    :math:`xy`-plane, :math:`(r\cos t, r\sin t, 0)`; ring 1 is the circle of
    radius :math:`r` centred at :math:`(r, 0, 0)` in the :math:`xz`-plane,
    :math:`(r + r\cos t, 0, r\sin t)`. Each ring passes through the centre of
    the other's disc, so the two cannot be separated in 3-D without cutting
    one of them. Angles :math:`t` are drawn uniformly in :math:`[0, 2\pi)`,
    then isotropic Gaussian noise of standard deviation :obj:`noise` is added
    to the coordinates. As in :func:`sklearn.datasets.make_circles`, ring 0
    gets ``n - n // 2`` points and ring 1 ``n // 2``, ring 0 first.

    Args:
        n (int): total number of points, at least 2. (default: :obj:`1000`)
        noise (float): standard deviation of the added noise. (default: :obj:`0.0`)
        seed (int): seed of a private generator; the same seed gives the same
            points. (default: :obj:`0`)
        radius (float): radius :math:`r` of both rings. (default: :obj:`1.0`)

    Returns:
        ``(x, y)``: an :math:`n \times 3` float tensor and :math:`n` long labels in ``{0, 1}``.

    Example:
        >>> x, y = entangled_rings(10, noise=0.0, seed=0)
        >>> x.shape, y.tolist()
        (torch.Size([10, 3]), [0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
        >>> bool(torch.allclose(x[y == 0].norm(dim=1), torch.ones(5)))
        True
    """
    n = _check_count(n, "n", 2)
    noise = check_number(noise, "noise")
    radius = check_number(radius, "radius", positive=True)
    g = _generator(seed)
    sizes = (n - n // 2, n // 2)
    t = 2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    cos, sin, zero = radius * torch.cos(t), radius * torch.sin(t), torch.zeros(n, dtype=torch.float64)
    ring0 = torch.stack([cos, sin, zero], dim=1)
    ring1 = torch.stack([radius + cos, zero, sin], dim=1)
    y = torch.cat([torch.zeros(sizes[0], dtype=torch.long), torch.ones(sizes[1], dtype=torch.long)])
    x = torch.where(y.unsqueeze(1) == 0, ring0, ring1)
    x = x + noise * torch.randn(n, 3, generator=g, dtype=torch.float64)
    return x.float(), y


def noisy_torus(
    n: int = 1600,
    noise: float = 0.001,
    seed: int = 0,
    regions: tuple[int, ...] = (2, 4),
    major_radius: float = 2.0,
    minor_radius: float = 1.0,
) -> tuple[Tensor, Tensor]:
    r"""Points on a torus, cut around its axis into cylindrical regions with
    hierarchical labels.

    Angles :math:`u, v` are drawn uniformly in :math:`[0, 2\pi)` and mapped by
    the standard parametrization

    .. math::
        \big((R + r\cos v)\cos u,\; (R + r\cos v)\sin u,\; r\sin v\big),

    then isotropic Gaussian noise of standard deviation :obj:`noise` is added
    (the paper samples 1600 points and adds :math:`\mathcal{N}(0, 0.001)`
    noise). Level :math:`b` of the hierarchy cuts the torus by the angle
    :math:`u` into ``regions[b]`` equal sectors — tubes, i.e. bent cylinders —
    and labels each point by its sector :math:`\lfloor u \cdot
    \mathrm{regions}[b] / 2\pi \rfloor`. Each level's count must divide the
    next one's, so every region of a finer level lies inside exactly one
    region of a coarser level (labels are nested: ``fine // (fine_count //
    coarse_count) == coarse``). Levels may be given coarse-to-fine or
    fine-to-coarse; divisibility is checked between neighbours in either
    order.

    Args:
        n (int): number of points, at least 1. (default: :obj:`1600`)
        noise (float): standard deviation of the added noise. (default: :obj:`0.001`)
        seed (int): seed of a private generator. (default: :obj:`0`)
        regions (tuple of int): number of regions at each level, each at
            least 1. (default: :obj:`(2, 4)`)
        major_radius (float): :math:`R`, distance from the axis to the
            tube's centre. (default: :obj:`2.0`)
        minor_radius (float): :math:`r < R`, the tube's radius. (default: :obj:`1.0`)

    Returns:
        ``(x, labels)``: an :math:`n \times 3` float tensor and an
        :math:`n \times` ``len(regions)`` long tensor whose column :math:`b`
        holds the labels of level :math:`b`.

    Example:
        >>> x, labels = noisy_torus(8, seed=0, regions=(2, 4))
        >>> x.shape, labels.shape
        (torch.Size([8, 3]), torch.Size([8, 2]))
        >>> bool((labels[:, 1] // 2 == labels[:, 0]).all())
        True
    """
    n = _check_count(n, "n", 1)
    noise = check_number(noise, "noise")
    if not isinstance(regions, (tuple, list)) or len(regions) == 0:
        raise ValueError(f"`regions` must be a non-empty tuple of ints, got {regions!r}")
    counts = [_check_count(c, "regions", 1) for c in regions]
    for a, b in zip(counts, counts[1:]):
        if max(a, b) % min(a, b):
            raise ValueError(f"`regions` must be nested: each count must divide the next or be divided by it, got {a} and {b}")
    major_radius = check_number(major_radius, "major_radius", positive=True)
    minor_radius = check_number(minor_radius, "minor_radius", positive=True)
    if not minor_radius < major_radius:
        raise ValueError(f"need 0 < minor_radius < major_radius, got {minor_radius} and {major_radius}")
    g = _generator(seed)
    u = 2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    v = 2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    ring = major_radius + minor_radius * torch.cos(v)
    x = torch.stack([ring * torch.cos(u), ring * torch.sin(u), minor_radius * torch.sin(v)], dim=1)
    x = x + noise * torch.randn(n, 3, generator=g, dtype=torch.float64)
    fraction = u / (2 * math.pi)
    labels = torch.stack([(fraction * c).floor().long().clamp(max=c - 1) for c in counts], dim=1)
    return x.float(), labels
