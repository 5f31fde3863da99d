r"""Common corruptions (Hendrycks & Dietterich, 2019) computed on image tensors.

Every corruption takes a batch ``N×C×H×W`` with values in :math:`[0, 1]`
(``C`` = 1 or 3), a severity in ``1..5`` and a seed, and returns a new batch in
:math:`[0, 1]`. :func:`corruption_names` lists the 15 corruptions of the
CIFAR-10-C benchmark in its order; ``gaussian_blur`` (one of its 4 extra ones)
is also available. The severity constants are those of the CIFAR-10-C
generator (``make_cifar_c.py`` of the ImageNet-C repository), restated here;
where the reference uses OpenCV, scikit-image, SciPy or ImageMagick, the same
operation is written in torch (:mod:`latentgraph.robustness.filtering`,
:mod:`latentgraph.robustness.weather`):

=================  =====================================================================
name               operation (constant ``c`` per severity 1..5)
=================  =====================================================================
gaussian_noise     :math:`x + c\,\mathcal{N}(0, 1)`, c = .04 .06 .08 .09 .10
shot_noise         :math:`\mathrm{Poisson}(c x) / c`, c = 500 250 100 75 50
impulse_noise      salt-and-pepper on a share c of the values, c = .01 .02 .03 .05 .07
defocus_blur       disk of radius r anti-aliased by a 3×3 Gaussian of σ_a,
                   (r, σ_a) = (.3,.4) (.4,.5) (.5,.6) (1,.2) (1.5,.1) (reflect padding)
glass_blur         blur σ, local pixel swaps within ±d, blur σ; (σ, d, iterations) =
                   (.05,1,1) (.25,1,1) (.4,1,1) (.25,1,2) (.4,1,2)
motion_blur        ImageMagick motion blur (radius, σ) = (6,1) (6,1.5) (6,2) (8,2) (9,2.5),
                   angle U(-45°, 45°)
zoom_blur          mean of x and its zooms 1, 1.01, …: 7 12 16 21 26 zooms (the counts
                   NumPy's ``arange(1, 1 + e, .01)`` gives for e = .06 .11 .16 .21 .26)
snow               flakes 𝒩(μ, σ) zoomed by z, cut below t, motion-blurred (r, s),
                   over a paler image k; see :func:`~latentgraph.robustness.weather.snow`
frost              :math:`a x + b T`, (a, b) = (1,.2) (1,.3) (.9,.4) (.85,.4) (.75,.45);
                   T a generated texture, not the reference's photographs (see below)
fog                :math:`(x + a F) m / (m + a)`, F a plasma fractal of roughness decay
                   d; (a, d) = (.2,3) (.5,3) (.75,2.5) (1,2) (1.5,1.75)
brightness         HSV value + c, c = .05 .1 .15 .2 .3 (exact, without an HSV round trip)
contrast           :math:`(x - \bar{x}_{ch}) c + \bar{x}_{ch}`, c = .75 .5 .4 .3 .15
elastic_transform  random affine (spread a) then a smooth random displacement (α, σ),
                   (α, σ, a) × side = (0,0,.08) (.05,.2,.07) (.08,.06,.06) (.1,.04,.05)
                   (.1,.03,.03)
pixelate           box-resize to ⌊c·size⌋ and back (PIL), c = .95 .9 .85 .75 .65
jpeg_compression   JPEG at quality c (PIL), c = 80 65 58 50 40
gaussian_blur      (extra) Gaussian filter, σ = .4 .6 .7 .8 1 (truncated at 4σ, edge padding)
=================  =====================================================================

Constants in pixels are CIFAR's (32×32 images); the elastic transform's,
which the reference writes as fractions of the image side, scale with the
side. Departures from the reference, and what they do to mCE, are listed in
``docs/corruptions.md``: frost uses a generated
texture instead of six photographs; motion blur and snow use a torch
restatement of ImageMagick's kernel on float images (the reference rounds to
8 bits through PNG).

All results are clipped to :math:`[0, 1]`; random corruptions draw from a
:class:`torch.Generator` seeded with ``seed``, so a call is deterministic.
"""
from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from latentgraph.robustness.filtering import (
    correlate,
    gaussian_filter,
    gaussian_kernel_1d,
    motion_blur as _motion_blur_filter,
    random_field,
    sample,
    zoom,
)
from latentgraph.robustness.weather import fog, frost, snow
from latentgraph.validation import check_tensor

SEVERITIES = (1, 2, 3, 4, 5)


def _generator(x: Tensor, seed: int) -> torch.Generator:
    return torch.Generator(device=x.device).manual_seed(seed)


def gaussian_noise(x: Tensor, c: float, seed: int) -> Tensor:
    r""":math:`\mathrm{clip}(x + c\,\mathcal{N}(0, 1))`."""
    noise = torch.randn(x.shape, generator=_generator(x, seed), device=x.device, dtype=x.dtype)
    return (x + c * noise).clamp(0, 1)


def shot_noise(x: Tensor, c: float, seed: int) -> Tensor:
    r""":math:`\mathrm{clip}(\mathrm{Poisson}(c x) / c)`."""
    return (torch.poisson(x * c, generator=_generator(x, seed)) / c).clamp(0, 1)


def impulse_noise(x: Tensor, c: float, seed: int) -> Tensor:
    """Salt and pepper: each value becomes 0 or 1 (equal odds) with probability ``c``."""
    # scikit-image's random_noise(mode="s&p", amount=c): each value flips with
    # probability c, to 1 (salt) or 0 (pepper) with equal odds.
    g = _generator(x, seed)
    flipped = torch.rand(x.shape, generator=g, device=x.device) < c
    salt = torch.rand(x.shape, generator=g, device=x.device) < 0.5
    return torch.where(flipped, salt.to(x.dtype), x)


def gaussian_blur(x: Tensor, c: float, seed: int) -> Tensor:
    """Gaussian filter of standard deviation ``c`` per channel, truncated at 4σ, edge padding."""
    # scikit-image's gaussian(): truncate = 4σ, mode "nearest" (edge replication).
    return gaussian_filter(x, c).clamp(0, 1)


def _disk_kernel(radius: float, alias_blur: float) -> Tensor:
    """The reference's ``disk``: an aliased disk on a 17×17 grid (radius ≤ 8), normalized,
    then smoothed by a 3×3 Gaussian of σ = ``alias_blur`` (OpenCV border: reflect-101);
    cropped to its non-zero support, which leaves the filter unchanged."""
    half = max(8, int(math.ceil(radius)))
    t = torch.arange(-half, half + 1, dtype=torch.float64)
    disk = ((t[:, None] ** 2 + t[None, :] ** 2) <= radius**2).to(torch.float64)
    disk = disk / disk.sum()
    size = 3 if radius <= 8 else 5
    g = gaussian_kernel_1d(alias_blur, size // 2)
    padded = F.pad(disk[None, None], (size // 2,) * 4, mode="reflect")
    smoothed = F.conv2d(padded, torch.outer(g, g)[None, None])[0, 0]
    rows = smoothed.abs().sum(1).nonzero()
    cols = smoothed.abs().sum(0).nonzero()
    r = int(max(half - rows.min(), rows.max() - half))
    c_ = int(max(half - cols.min(), cols.max() - half))
    return smoothed[half - r : half + r + 1, half - c_ : half + c_ + 1]


def defocus_blur(x: Tensor, c: tuple[float, float], seed: int) -> Tensor:
    """Correlation with the anti-aliased disk ``c = (radius, alias σ)``, reflect padding."""
    kernel = _disk_kernel(*c)
    if kernel.shape[0] // 2 >= min(x.shape[-2:]):
        raise ValueError(f"defocus_blur: images of size {tuple(x.shape[-2:])} are too small for its kernel")
    return correlate(x, kernel, mode="reflect").clamp(0, 1)


def glass_blur(x: Tensor, c: tuple[float, int, int], seed: int) -> Tensor:
    """Blur, shuffle pixels locally, blur again; ``c = (σ, d, iterations)``.

    Each blur is :func:`gaussian_blur` of σ (the first truncated to 8 bits);
    an iteration visits rows ``H-d`` down to ``d+1``, and within each row the
    columns ``W-d`` down to ``d+1``, swapping each pixel with the one at an
    offset drawn uniformly from ``-d..d-1`` in each direction (per image).
    """
    sigma, d, iterations = c
    h, w = x.shape[-2:]
    if min(h, w) <= 2 * d + 1:
        raise ValueError(f"glass_blur: images of size {(h, w)} are too small for its shuffle")
    out = torch.floor(gaussian_filter(x, sigma).clamp(0, 1) * 255) / 255
    g = _generator(x, seed)
    rows, cols = range(h - d, d, -1), range(w - d, d, -1)
    shifts = torch.randint(-d, d, (iterations, len(rows), len(cols), 2, x.shape[0]), generator=g, device=x.device)
    images = torch.arange(x.shape[0], device=x.device)
    for it in range(iterations):
        for i, row in enumerate(rows):
            for j, col in enumerate(cols):
                dx, dy = shifts[it, i, j]
                here = out[:, :, row, col].clone()
                out[:, :, row, col] = out[images, :, row + dy, col + dx]
                out[images, :, row + dy, col + dx] = here
    return gaussian_filter(out, sigma).clamp(0, 1)


def motion_blur(x: Tensor, c: tuple[float, float], seed: int) -> Tensor:
    """ImageMagick's motion blur (:func:`~latentgraph.robustness.filtering.motion_blur`)
    of ``c = (radius, σ)`` at an angle drawn uniformly in [-45°, 45°] per image."""
    angles = 90 * torch.rand(x.shape[0], generator=_generator(x, seed), dtype=torch.float64, device=x.device) - 45
    return _motion_blur_filter(x, c[0], c[1], angles).clamp(0, 1)


def zoom_blur(x: Tensor, c: int, seed: int) -> Tensor:
    r"""Mean of the image and its central zooms by :math:`1 + 0.01 i`, :math:`i = 0..c-1`."""
    out = x.clone()
    for i in range(c):
        out += zoom(x, 1 + 0.01 * i)
    return (out / (c + 1)).clamp(0, 1)


def elastic_transform(x: Tensor, c: tuple[float, float, float], seed: int) -> Tensor:
    r"""Random affine warp, then a smooth random displacement field; ``c = (α, σ, a)``
    as fractions of the image side :math:`s` = min(H, W).

    The affine map moves the three points :math:`m + (q, q)`, :math:`m + (q, -q)`
    and :math:`m - (q, q)` (:math:`m` the centre, :math:`q = \lfloor s/3 
floor`)
    by :math:`U(-as, as)` each coordinate, bilinear, reflect-101 border. The
    field is :math:`lpha s\, G_{\sigma s} * U(-1, 1)` per axis (Gaussian
    truncated at 3σ, symmetric border), sampled bilinearly with a symmetric
    border.
    """
    n, _, h, w = x.shape
    side = min(h, w)
    alpha, sigma, spread = (value * side for value in c)
    g = _generator(x, seed)
    q = side // 3
    cx, cy = w // 2, h // 2
    src = torch.tensor([[cx + q, cy + q], [cx + q, cy - q], [cx - q, cy - q]], dtype=torch.float64,
                       device=x.device).expand(n, 3, 2)
    dst = src + spread * (2 * torch.rand((n, 3, 2), generator=g, dtype=torch.float64, device=x.device) - 1)
    ones = torch.ones(n, 3, 1, dtype=torch.float64, device=x.device)
    inverse = torch.linalg.solve(torch.cat([dst, ones], dim=2), src)  # 3×2: (x', y', 1) -> source (x, y)
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64, device=x.device),
                                torch.arange(w, dtype=torch.float64, device=x.device), indexing="ij")
    points = torch.stack([cols, rows, torch.ones_like(rows)], dim=-1).reshape(1, h * w, 3)
    source = (points @ inverse).reshape(n, h, w, 2)
    out = sample(x, source[..., 1], source[..., 0], "reflect")
    if alpha > 0:
        dx, dy = random_field((2, n, h, w), alpha, sigma, g)
        out = sample(out, rows + dy, cols + dx, "symmetric")
    return out.clamp(0, 1)


def contrast(x: Tensor, c: float, seed: int) -> Tensor:
    r""":math:`(x - \bar{x}) c + \bar{x}` with :math:`\bar{x}` the mean of each image channel."""
    means = x.mean(dim=(-2, -1), keepdim=True)
    return ((x - means) * c + means).clamp(0, 1)


def brightness(x: Tensor, c: float, seed: int) -> Tensor:
    """HSV value + ``c`` (clipped to 1), hue and saturation kept."""
    # In HSV, with hue and saturation fixed, RGB is proportional to V = max over
    # channels; adding c to V thus rescales the pixel by V'/V (black pixels,
    # whose saturation is 0, become grey V'). Same as rgb2hsv → V+c → hsv2rgb.
    v = x.amax(dim=1, keepdim=True)
    v_new = (v + c).clamp(max=1)
    return torch.where(v > 0, x * v_new / v.clamp_min(1e-12), v_new.expand_as(x)).clamp(0, 1)


def _pil_images(x: Tensor, transform: Callable[["object"], "object"], mode: str) -> Tensor:
    """Apply a PIL transform image by image (``mode`` "F": per channel on floats;
    "L"/"RGB": on 8-bit images); returns a tensor like ``x``."""
    from PIL import Image

    arr = x.detach().cpu().numpy()
    out = np.empty_like(arr)
    for i in range(arr.shape[0]):
        if mode == "F":
            for ch in range(arr.shape[1]):
                out[i, ch] = np.asarray(transform(Image.fromarray(arr[i, ch].astype(np.float32), "F")))
        else:
            img = np.uint8(np.round(arr[i].transpose(1, 2, 0) * 255))
            img = img[..., 0] if mode == "L" else img
            res = np.asarray(transform(Image.fromarray(img, mode)), dtype=np.float32) / 255
            out[i] = res[None] if mode == "L" else res.transpose(2, 0, 1)
    return torch.from_numpy(out).to(device=x.device, dtype=x.dtype)


def pixelate(x: Tensor, c: float, seed: int) -> Tensor:
    """PIL box resize to ``⌊c·size⌋`` and back."""
    from PIL import Image

    h, w = x.shape[-2:]
    small = (max(1, int(w * c)), max(1, int(h * c)))

    def transform(img: Image.Image) -> Image.Image:
        return img.resize(small, Image.BOX).resize((w, h), Image.BOX)

    return _pil_images(x, transform, "F").clamp(0, 1)


def jpeg_compression(x: Tensor, c: int, seed: int) -> Tensor:
    """PIL JPEG round trip at quality ``c`` (8-bit, L or RGB)."""
    from PIL import Image

    def transform(img: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=c)
        buffer.seek(0)
        return Image.open(buffer).convert(img.mode)

    return _pil_images(x, transform, "L" if x.shape[1] == 1 else "RGB")


CORRUPTIONS: dict[str, tuple[Callable[..., Tensor], tuple]] = {
    "gaussian_noise": (gaussian_noise, (0.04, 0.06, 0.08, 0.09, 0.10)),
    "shot_noise": (shot_noise, (500, 250, 100, 75, 50)),
    "impulse_noise": (impulse_noise, (0.01, 0.02, 0.03, 0.05, 0.07)),
    "defocus_blur": (defocus_blur, ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))),
    "glass_blur": (glass_blur, ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))),
    "motion_blur": (motion_blur, ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))),
    "zoom_blur": (zoom_blur, (7, 12, 16, 21, 26)),
    "snow": (snow, ((0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
                    (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9), (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
                    (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8))),
    "frost": (frost, ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))),
    "fog": (fog, ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))),
    "brightness": (brightness, (0.05, 0.1, 0.15, 0.2, 0.3)),
    "contrast": (contrast, (0.75, 0.5, 0.4, 0.3, 0.15)),
    "elastic_transform": (elastic_transform, ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06),
                                              (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))),
    "pixelate": (pixelate, (0.95, 0.9, 0.85, 0.75, 0.65)),
    "jpeg_compression": (jpeg_compression, (80, 65, 58, 50, 40)),
    "gaussian_blur": (gaussian_blur, (0.4, 0.6, 0.7, 0.8, 1.0)),
}
"""Name → (function, severity constants 1..5)."""

#: Corruptions of :data:`CORRUPTIONS` outside the 15 of the benchmark.
EXTRA = ("gaussian_blur",)


def corruption_names(extra: bool = False) -> list[str]:
    """The 15 corruptions of the CIFAR-10-C benchmark in its order (those of
    :data:`~latentgraph.robustness.CIFAR10C_CORRUPTIONS`), followed with
    ``extra=True`` by the extra ones also accepted by :func:`corrupt`.

    Example:
        >>> corruption_names()[:3], len(corruption_names()), corruption_names(extra=True)[15:]
        (['gaussian_noise', 'shot_noise', 'impulse_noise'], 15, ['gaussian_blur'])
    """
    return list(CORRUPTIONS) if extra else [name for name in CORRUPTIONS if name not in EXTRA]


def corrupt(x: Tensor, name: str, severity: int, seed: int = 0) -> Tensor:
    r"""Apply the corruption ``name`` at ``severity`` (1..5) to a batch of images.

    Args:
        x (Tensor): images ``N×C×H×W`` (C = 1 or 3), values in :math:`[0, 1]`.
        name (str): one of :func:`corruption_names`.
        severity (int): 1 (mild) to 5 (strong).
        seed (int): seed of the random draws (noises). (default: :obj:`0`)

    Returns:
        Tensor: corrupted images, same shape, dtype and device, in :math:`[0, 1]`.

    Example:
        >>> x = torch.full((1, 1, 8, 8), 0.5)
        >>> corrupt(x, "contrast", 5).unique()
        tensor([0.5000])
        >>> torch.equal(corrupt(x, "gaussian_noise", 3, seed=1), corrupt(x, "gaussian_noise", 3, seed=1))
        True
    """
    x = check_tensor(x, "x")
    if name not in CORRUPTIONS:
        raise ValueError(f"`name` must be one of {', '.join(CORRUPTIONS)}; got {name!r}")
    if isinstance(severity, bool) or not isinstance(severity, int) or severity not in SEVERITIES:
        raise ValueError(f"`severity` must be an int in 1..5, got {severity!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"`seed` must be an int, got {type(seed).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"`x` must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"`x` must have shape N×C×H×W with C = 1 or 3, got {tuple(x.shape)}")
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ValueError("`x` must hold finite values in [0, 1]")
    fn, constants = CORRUPTIONS[name]
    with torch.no_grad():
        return fn(x, constants[severity - 1], seed)
