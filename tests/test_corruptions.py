"""Corruptions, the CIFAR-10-C loader and the CE / mCE formulas."""
import io

import numpy as np
import pytest
import torch
from matplotlib.colors import hsv_to_rgb, rgb_to_hsv
from PIL import Image
from scipy import ndimage
from torch import nn

from latentgraph.robustness import (
    CIFAR10C_CORRUPTIONS,
    CORRUPTIONS,
    available_corruptions,
    corrupt,
    corruption_error,
    corruption_errors,
    corruption_names,
    error_rate,
    load_cifar10c,
    mce,
    relative_corruption_error,
    relative_mce,
)
from latentgraph.robustness.filtering import gaussian_filter, random_field, sample, zoom
from latentgraph.robustness.filtering import motion_blur as motion_blur_filter
from latentgraph.robustness.weather import frost_texture, plasma_fractal


def _smooth_images(n=3, channels=3, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, channels, size // 4, size // 4, generator=g)
    return nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)


@pytest.mark.parametrize("name", corruption_names(extra=True))
def test_deterministic_in_range_and_shape(name):
    x = _smooth_images(n=2, size=16)
    a = corrupt(x, name, 3, seed=7)
    assert torch.equal(a, corrupt(x, name, 3, seed=7))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert a.min() >= 0 and a.max() <= 1


def test_fifteen_benchmark_corruptions_in_order():
    assert corruption_names() == list(CIFAR10C_CORRUPTIONS)
    assert set(corruption_names(extra=True)) == set(CIFAR10C_CORRUPTIONS) | {"gaussian_blur"}


def _deviation(x, out):
    return float((out - x).abs().mean())


def _decorrelation(x, out):
    """1 − Pearson correlation of the pixels: the share of the image replaced (frost's
    blend weight of its texture grows while its gain on the image falls)."""
    return float(1 - torch.corrcoef(torch.stack([out.flatten(), x.flatten()]))[0, 1])


def _blurred_deviation(x, out):
    """Deviation once both are blurred (σ = 1): glass blur's shuffle, not its light blur."""
    return _deviation(gaussian_filter(x, 1.0), gaussian_filter(out, 1.0))


STRENGTH = {"frost": _decorrelation, "glass_blur": _blurred_deviation}

# Severity pairs whose reference constants give the same strength (checked to be equal):
# glass blur 1 and 2 differ by blurs of σ .05 and .25, both under an 8-bit step; motion
# blur 3 (radius 6, σ 2) and 4 (radius 8, σ 2) differ by taps of weight < 1e-7.
TIES = {("glass_blur", 1), ("motion_blur", 3)}


@pytest.mark.parametrize("name", [n for n in corruption_names(extra=True) if n != "elastic_transform"])
@pytest.mark.parametrize("channels", [1, 3])
def test_monotone_in_severity(name, channels):
    # half smooth structure, half pixel noise (a purely periodic image can alias under
    # pixelate); glass blur's shuffle and snow's flakes are measured on smooth images,
    # snow's at the reference's 32×32 over a few images so that the flakes average out
    size, n = (32, 12) if name == "snow" else (16, 3)
    g = torch.Generator().manual_seed(1)
    x = _smooth_images(n=n, channels=channels, size=size)
    if name not in ("snow", "glass_blur"):
        x = (0.5 * x + 0.5 * torch.rand(x.shape, generator=g)).clamp(0, 1)
    strength = [STRENGTH.get(name, _deviation)(x, corrupt(x, name, s, seed=0)) for s in range(1, 6)]
    for s, (a, b) in enumerate(zip(strength, strength[1:]), start=1):
        if (name, s) in TIES:
            assert b == pytest.approx(a, rel=1e-3), (s, strength)
        else:
            assert b > a, (s, strength)


def test_elastic_field_roughens_with_severity():
    # The reference's severity 1 is a pure affine warp and severity 2 nearly so: pixel
    # deviation falls from 1 to 2; what grows is the local distortion, the field's slope.
    fn, constants = CORRUPTIONS["elastic_transform"]
    side = 32
    slopes = []
    for alpha, sigma, _ in constants:
        if alpha == 0:
            slopes.append(0.0)
            continue
        field = random_field((2, 8, side, side), alpha * side, sigma * side, torch.Generator().manual_seed(0))
        slopes.append(float(field.diff(dim=-1).abs().mean() + field.diff(dim=-2).abs().mean()))
    assert all(b > a for a, b in zip(slopes, slopes[1:])), slopes


def test_noise_depends_on_seed():
    x = _smooth_images()
    assert not torch.equal(corrupt(x, "gaussian_noise", 1, seed=0), corrupt(x, "gaussian_noise", 1, seed=1))


def test_gaussian_noise_is_scaled_gaussian():
    x = torch.full((1, 1, 64, 64), 0.5, dtype=torch.float64)
    expected = 0.5 + 0.10 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert torch.allclose(corrupt(x, "gaussian_noise", 5, seed=3), expected.clamp(0, 1))


def test_impulse_noise_flips_expected_share_to_0_or_1():
    x = torch.full((1, 3, 100, 100), 0.5)
    out = corrupt(x, "impulse_noise", 5, seed=0)  # c = 0.07
    changed = out != 0.5
    assert set(out[changed].unique().tolist()) <= {0.0, 1.0}
    assert abs(changed.float().mean().item() - 0.07) < 0.01


def test_contrast_matches_formula():
    x = _smooth_images(n=2)
    means = x.mean(dim=(2, 3), keepdim=True)
    assert torch.allclose(corrupt(x, "contrast", 2), (x - means) * 0.5 + means)


def test_gaussian_blur_matches_scipy():
    x = _smooth_images(n=1, channels=1, size=16).double()
    ref = ndimage.gaussian_filter(x[0, 0].numpy(), sigma=1.0, mode="nearest", truncate=4.0)
    assert np.allclose(corrupt(x, "gaussian_blur", 5)[0, 0].numpy(), np.clip(ref, 0, 1))


def test_defocus_blur_matches_disk_written_out():
    # severity 4: disk of radius 1 (the 5-point cross), 3×3 Gaussian anti-alias σ = 0.2
    x = _smooth_images(n=1, channels=1, size=16).double()
    disk = np.zeros((17, 17))
    yy, xx = np.mgrid[-8:9, -8:9]
    disk[xx**2 + yy**2 <= 1] = 1
    disk /= disk.sum()
    g = np.exp(-0.5 * (np.arange(-1, 2) / 0.2) ** 2)
    g /= g.sum()
    kernel = ndimage.correlate(disk, np.outer(g, g), mode="mirror")
    ref = ndimage.correlate(x[0, 0].numpy(), kernel, mode="mirror")
    assert np.allclose(corrupt(x, "defocus_blur", 4)[0, 0].numpy(), np.clip(ref, 0, 1))


def test_brightness_matches_hsv_round_trip():
    x = _smooth_images(n=2)
    x[0, :, 0, 0] = 0.0  # a black pixel
    hsv = rgb_to_hsv(x.permute(0, 2, 3, 1).numpy())
    hsv[..., 2] = np.clip(hsv[..., 2] + 0.3, 0, 1)
    ref = torch.from_numpy(hsv_to_rgb(hsv)).permute(0, 3, 1, 2)
    assert torch.allclose(corrupt(x, "brightness", 5), ref.float(), atol=1e-6)


def test_pixelate_matches_pil_box_resize():
    x = _smooth_images(n=1, channels=1)
    img = Image.fromarray(x[0, 0].numpy(), "F")
    ref = np.asarray(img.resize((20, 20), Image.BOX).resize((32, 32), Image.BOX))  # c = 0.65
    assert np.allclose(corrupt(x, "pixelate", 5)[0, 0].numpy(), ref)


def test_jpeg_matches_pil():
    x = _smooth_images(n=1)
    img = Image.fromarray(np.uint8(np.round(x[0].permute(1, 2, 0).numpy() * 255)), "RGB")
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=40)
    ref = torch.from_numpy(np.asarray(Image.open(buffer), dtype=np.float32) / 255).permute(2, 0, 1)
    assert torch.equal(corrupt(x, "jpeg_compression", 5)[0], ref)


def test_unknown_name_and_severity():
    x = _smooth_images(n=1)
    with pytest.raises(ValueError, match="name"):
        corrupt(x, "fog_of_war", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(x, "contrast", 6)
    with pytest.raises(ValueError, match="severity"):
        corrupt(x, "contrast", 0)


def test_bad_images():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        corrupt(torch.full((1, 1, 8, 8), 2.0), "contrast", 1)
    with pytest.raises(ValueError, match="N×C×H×W"):
        corrupt(torch.rand(1, 8, 8), "contrast", 1)
    with pytest.raises(TypeError, match="floating"):
        corrupt(torch.ones(1, 1, 8, 8, dtype=torch.uint8), "contrast", 1)


# ---------------------------------------------------------------- CIFAR-10-C


def _write_release(root, n=2, name="gaussian_noise"):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5 * n, 32, 32, 3), dtype=np.uint8)
    labels = np.tile(np.arange(n) % 10, 5).astype(np.uint8)
    np.save(root / f"{name}.npy", images)
    np.save(root / "labels.npy", labels)
    return images, labels


def test_cifar10c_rows_of_a_severity(tmp_path):
    images, labels = _write_release(tmp_path, n=2)
    x, y = load_cifar10c(tmp_path, "gaussian_noise", 3)
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(x, torch.from_numpy(images[4:6]).permute(0, 3, 1, 2).float() / 255)
    assert y.tolist() == labels[4:6].tolist() and y.dtype == torch.long
    assert available_corruptions(tmp_path) == ["gaussian_noise"]
    assert len(CIFAR10C_CORRUPTIONS) == 15


def test_cifar10c_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="gaussian_noise.npy"):
        load_cifar10c(tmp_path, "gaussian_noise", 1)
    np.save(tmp_path / "gaussian_noise.npy", np.zeros((5, 32, 32, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match="labels.npy"):
        load_cifar10c(tmp_path, "gaussian_noise", 1)


def test_cifar10c_malformed_files(tmp_path):
    _write_release(tmp_path)
    (tmp_path / "shot_noise.npy").write_bytes(b"not a numpy file")
    with pytest.raises(ValueError, match="not a readable .npy"):
        load_cifar10c(tmp_path, "shot_noise", 1)
    np.save(tmp_path / "shot_noise.npy", np.zeros((10, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        load_cifar10c(tmp_path, "shot_noise", 1)
    np.save(tmp_path / "shot_noise.npy", np.zeros((7, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="5·n rows"):
        load_cifar10c(tmp_path, "shot_noise", 1)
    np.save(tmp_path / "shot_noise.npy", np.zeros((15, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="15 integer labels"):
        load_cifar10c(tmp_path, "shot_noise", 1)


def test_cifar10c_bad_name_severity_and_labels(tmp_path):
    _write_release(tmp_path)
    with pytest.raises(ValueError, match="corruption"):
        load_cifar10c(tmp_path, "rain", 1)
    with pytest.raises(ValueError, match="severity"):
        load_cifar10c(tmp_path, "gaussian_noise", 6)
    np.save(tmp_path / "labels.npy", np.full(10, 12, np.uint8))
    with pytest.raises(ValueError, match="0..9"):
        load_cifar10c(tmp_path, "gaussian_noise", 1)


# ---------------------------------------------------------------- CE / mCE


def test_corruption_error_formula():
    e = [0.10, 0.20, 0.30, 0.40, 0.50]
    b = [0.20, 0.30, 0.40, 0.50, 0.60]
    assert corruption_error(e, b) == pytest.approx(1.5 / 2.0)
    # relative: (1.5 - 5·0.05) / (2.0 - 5·0.10) = 1.25 / 1.5
    assert relative_corruption_error(e, 0.05, b, 0.10) == pytest.approx(1.25 / 1.5)


def test_mce_and_relative_mce_average_over_corruptions():
    errors = {"a": [0.2, 0.4], "b": [0.3, 0.3]}
    base = {"a": [0.4, 0.4], "b": [0.2, 0.4]}
    assert mce(errors, base) == pytest.approx((0.6 / 0.8 + 0.6 / 0.6) / 2)
    rel = ((0.6 - 0.2) / (0.8 - 0.2) + (0.6 - 0.2) / (0.6 - 0.2)) / 2
    assert relative_mce(errors, 0.1, base, 0.1) == pytest.approx(rel)
    assert mce(base, base) == pytest.approx(1.0)


def test_metric_bad_inputs():
    with pytest.raises(ValueError, match="same corruptions"):
        mce({"a": [0.1]}, {"b": [0.1]})
    with pytest.raises(ValueError, match="sum to 0"):
        corruption_error([0.1], [0.0])
    with pytest.raises(ValueError, match="does not grow"):
        relative_corruption_error([0.3], 0.1, [0.1], 0.2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        corruption_error([1.5], [0.5])


def test_corruption_errors_and_error_rate_on_a_fixed_model():
    # a "model" that predicts class 1 iff the mean pixel exceeds 0.5
    class Threshold(nn.Module):
        def forward(self, x):
            m = x.flatten(1).mean(1, keepdim=True)
            return torch.cat([0.5 - m, m - 0.5], dim=1)

    x = torch.cat([torch.full((2, 1, 8, 8), 0.45), torch.full((2, 1, 8, 8), 0.55)])
    y = torch.tensor([0, 0, 1, 1])
    assert error_rate(Threshold(), x, y) == 0.0
    errs = corruption_errors(Threshold(), x, y, names=["brightness"], severities=[1, 5])
    # brightness +0.3 (severity 5) lifts the 0.45 images to 0.75: both class-0 images flip
    assert errs["brightness"][1] == 0.5


def test_cifar10c_errors_of_a_fixed_model(tmp_path):
    # a "model" that predicts class 1 iff the mean pixel exceeds 0.5
    class Threshold(nn.Module):
        def forward(self, x):
            m = x.flatten(1).mean(1, keepdim=True)
            return torch.cat([0.5 - m, m - 0.5], dim=1)

    images = np.zeros((10, 32, 32, 3), np.uint8)
    images[[1, 3, 5, 7, 9]] = 200  # odd rows bright
    labels = np.array([0, 1] * 5, np.uint8)
    labels[9] = 0  # severity 5, second row: a bright image labelled 0 -> one error out of two
    np.save(tmp_path / "contrast.npy", images)
    np.save(tmp_path / "labels.npy", labels)
    from latentgraph.robustness import cifar10c_errors

    assert cifar10c_errors(Threshold(), tmp_path, ["contrast"]) == {"contrast": [0.0, 0.0, 0.0, 0.0, 0.5]}
    assert cifar10c_errors(Threshold(), tmp_path, ["contrast"], severities=[5], device="cpu") == {"contrast": [0.5]}


# --- the torch restatements of the reference's SciPy / scikit-image / ImageMagick steps ---


def test_gaussian_filter_symmetric_matches_scipy_reflect():
    x = torch.rand(1, 1, 9, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ref = ndimage.gaussian_filter(x[0, 0].numpy(), sigma=2.5, mode="reflect", truncate=3.0)
    assert np.allclose(gaussian_filter(x, 2.5, truncate=3.0, mode="symmetric")[0, 0].numpy(), ref)


def test_zoom_matches_scipy_clipped_zoom():
    x = torch.rand(1, 2, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for factor in (1.06, 1.25, 1.75, 2.25):
        img = x[0].permute(1, 2, 0).numpy()
        crop = int(np.ceil(16 / factor))
        top = (16 - crop) // 2
        zoomed = ndimage.zoom(img[top : top + crop, top : top + crop], (factor, factor, 1), order=1)
        trim = (zoomed.shape[0] - 16) // 2
        ref = zoomed[trim : trim + 16, trim : trim + 16]
        assert np.allclose(zoom(x, factor)[0].permute(1, 2, 0).numpy(), ref), factor


@pytest.mark.parametrize(("mode", "scipy_mode"), [("symmetric", "reflect"), ("reflect", "mirror")])
def test_sample_matches_scipy_map_coordinates(mode, scipy_mode):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 6, 8, dtype=torch.float64, generator=g)
    rows = torch.rand(1, 6, 8, dtype=torch.float64, generator=g) * 10 - 2  # also outside the image
    cols = torch.rand(1, 6, 8, dtype=torch.float64, generator=g) * 12 - 2
    ref = ndimage.map_coordinates(x[0, 0].numpy(), [rows[0].numpy(), cols[0].numpy()], order=1, mode=scipy_mode)
    assert np.allclose(sample(x, rows, cols, mode)[0, 0].numpy(), ref)


def test_motion_blur_kernel_written_out():
    # a vertical streak (90°): tap i at i rows below, weight ∝ exp(-i²/2σ²), edge replicated
    x = torch.rand(1, 1, 12, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    radius, sigma = 3, 1.5
    w = np.exp(-np.arange(7) ** 2 / (2 * sigma**2))
    w /= w.sum()
    padded = np.concatenate([x[0, 0].numpy(), np.repeat(x[0, 0, -1:].numpy(), 7, axis=0)])
    ref = sum(w[i] * padded[i : i + 12] for i in range(7))
    out = motion_blur_filter(x, radius, sigma, torch.tensor([90.0]))
    assert np.allclose(out[0, 0].numpy(), ref)


def test_zoom_blur_is_the_mean_of_zooms():
    x = _smooth_images(n=1, size=16).double()
    expected = (x + sum(zoom(x, 1 + 0.01 * i) for i in range(7))) / 8
    assert torch.allclose(corrupt(x, "zoom_blur", 1), expected.clamp(0, 1))


def test_glass_blur_severity_1_permutes_quantized_pixels():
    # σ = .05 is a one-tap filter: the output is the 8-bit image with its pixels swapped
    x = _smooth_images(n=2, size=16).double()
    out = corrupt(x, "glass_blur", 1, seed=3)
    quantized = torch.floor(x * 255) / 255
    assert not torch.equal(out, quantized)
    for i in range(2):
        pixels = lambda img: sorted(map(tuple, img.reshape(3, -1).T.tolist()))  # noqa: E731
        assert pixels(out[i]) == pixels(quantized[i])


def test_fog_and_frost_formulas():
    x = _smooth_images(n=2, size=16).double()
    fractal = plasma_fractal(2, 32, 3.0, torch.Generator().manual_seed(5))[:, None, :16, :16]
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(corrupt(x, "fog", 1, seed=5), ((x + 0.2 * fractal) * peak / (peak + 0.2)).clamp(0, 1))
    texture = frost_texture(2, 3, 16, 16, torch.Generator().manual_seed(5))
    assert torch.allclose(corrupt(x, "frost", 5, seed=5), (0.75 * x + 0.45 * texture).clamp(0, 1))
    assert 0.3 < float(texture.mean()) < 0.6 and float(texture.min()) >= 0


def test_plasma_fractal_spans_unit_range_and_is_rough_at_low_decay():
    g = torch.Generator().manual_seed(0)
    smooth, rough = plasma_fractal(4, 32, 3.0, g), plasma_fractal(4, 32, 1.2, g)
    assert smooth.amin() == 0 and smooth.amax() == 1
    slope = lambda m: float(m.diff(dim=-1).abs().mean())  # noqa: E731
    assert slope(rough) > 2 * slope(smooth)
    with pytest.raises(ValueError, match="power of two"):
        plasma_fractal(1, 24, 3.0, g)
