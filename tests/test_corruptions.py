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


def _smooth_images(n=3, channels=3, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, channels, size // 4, size // 4, generator=g)
    return nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)


@pytest.mark.parametrize("name", corruption_names())
def test_deterministic_in_range_and_shape(name):
    x = _smooth_images()
    a = corrupt(x, name, 3, seed=7)
    assert torch.equal(a, corrupt(x, name, 3, seed=7))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert a.min() >= 0 and a.max() <= 1


@pytest.mark.parametrize("name", corruption_names())
@pytest.mark.parametrize("channels", [1, 3])
def test_monotone_in_severity(name, channels):
    # half smooth structure, half pixel noise (a purely periodic image can alias under pixelate)
    g = torch.Generator().manual_seed(1)
    x = (0.5 * _smooth_images(channels=channels) + 0.5 * torch.rand(3, channels, 32, 32, generator=g)).clamp(0, 1)
    deviation = [float((corrupt(x, name, s, seed=0) - x).abs().mean()) for s in range(1, 6)]
    assert all(b > a for a, b in zip(deviation, deviation[1:])), deviation


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
