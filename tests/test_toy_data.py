import math

import pytest
import torch

from latentgraph.data.toy import entangled_rings, noisy_torus


def _plane(points):
    """Centre, unit normal and mean radius of a roughly planar ring, fitted by SVD."""
    centre = points.mean(0)
    _, _, vh = torch.linalg.svd(points - centre)
    return centre, vh[2], (points - centre).norm(dim=1).mean()


def _ordered_polygon(points):
    """The ring's points sorted by their angle in the ring's own plane."""
    centre = points.mean(0)
    _, _, vh = torch.linalg.svd(points - centre)
    coords = (points - centre) @ vh[:2].T
    return points[torch.atan2(coords[:, 1], coords[:, 0]).argsort()]


def _crossings_inside_disc(ring, other):
    """How many times the closed polygon of `ring` passes through the disc spanned by `other`."""
    centre, normal, radius = _plane(other)
    poly = _ordered_polygon(ring)
    p, q = poly, poly.roll(-1, dims=0)
    sp, sq = (p - centre) @ normal, (q - centre) @ normal
    crossing = (sp * sq) < 0
    t = (sp / (sp - sq))[crossing].unsqueeze(1)
    hits = p[crossing] + t * (q[crossing] - p[crossing])
    return int(((hits - centre).norm(dim=1) < radius).sum())


def _gauss_linking_number(a, b):
    """Discretized Gauss integral (1/4π) ∮∮ (r_a − r_b)·(dr_a × dr_b) / |r_a − r_b|³."""
    a, b = _ordered_polygon(a).double(), _ordered_polygon(b).double()
    da, db = a.roll(-1, 0) - a, b.roll(-1, 0) - b
    ma, mb = a + da / 2, b + db / 2
    r = ma.unsqueeze(1) - mb.unsqueeze(0)
    cross = torch.cross(da.unsqueeze(1).expand_as(r), db.unsqueeze(0).expand_as(r), dim=2)
    return float((r * cross).sum(2).div(r.norm(dim=2) ** 3).sum() / (4 * math.pi))


def test_rings_shapes_labels_and_radius():
    x, y = entangled_rings(11, noise=0.0, seed=3)
    assert x.shape == (11, 3) and x.dtype == torch.float32
    assert y.dtype == torch.long and y.tolist() == [0] * 6 + [1] * 5
    assert torch.allclose(x[y == 0].norm(dim=1), torch.ones(6))  # on the unit circle
    assert torch.allclose(x[y == 0][:, 2], torch.zeros(6))  # in the xy-plane
    ring1 = x[y == 1]
    assert torch.allclose((ring1 - torch.tensor([1.0, 0.0, 0.0])).norm(dim=1), torch.ones(5), atol=1e-6)
    assert torch.allclose(ring1[:, 1], torch.zeros(5))  # in the xz-plane


def test_rings_deterministic_for_a_seed():
    a, ya = entangled_rings(50, noise=0.1, seed=7)
    b, yb = entangled_rings(50, noise=0.1, seed=7)
    c, _ = entangled_rings(50, noise=0.1, seed=8)
    assert torch.equal(a, b) and torch.equal(ya, yb)
    assert not torch.equal(a, c)


def test_rings_noise_has_the_asked_spread():
    clean, _ = entangled_rings(4000, noise=0.0, seed=1)
    noisy, _ = entangled_rings(4000, noise=0.05, seed=1)
    assert (noisy - clean).std().item() == pytest.approx(0.05, rel=0.05)


@pytest.mark.parametrize("noise", [0.0, 0.02])
def test_rings_are_linked(noise):
    x, y = entangled_rings(600, noise=noise, seed=0)
    ring0, ring1 = x[y == 0], x[y == 1]
    # each ring passes exactly once through the other's disc ...
    assert _crossings_inside_disc(ring0, ring1) == 1
    assert _crossings_inside_disc(ring1, ring0) == 1
    # ... and the Gauss linking integral is ±1
    assert abs(_gauss_linking_number(ring0, ring1)) == pytest.approx(1.0, abs=0.05)


def test_link_checks_detect_unlinked_rings():
    # the same rings, ring 1 moved away along x: no longer linked
    x, y = entangled_rings(600, seed=0)
    ring0, ring1 = x[y == 0], x[y == 1] + torch.tensor([3.0, 0.0, 0.0])
    assert _crossings_inside_disc(ring0, ring1) == 0
    assert _crossings_inside_disc(ring1, ring0) == 0
    assert abs(_gauss_linking_number(ring0, ring1)) == pytest.approx(0.0, abs=0.05)


def test_torus_shapes_geometry_and_nested_labels():
    x, labels = noisy_torus(400, noise=0.0, seed=0, regions=(2, 4, 8))
    assert x.shape == (400, 3) and labels.shape == (400, 3) and labels.dtype == torch.long
    # on the torus: (√(x² + y²) − R)² + z² = r²
    rho = x[:, :2].norm(dim=1)
    assert torch.allclose((rho - 2.0) ** 2 + x[:, 2] ** 2, torch.ones(400), atol=1e-5)
    # level b labels the sector of the angle u around the z axis
    u = torch.atan2(x[:, 1], x[:, 0]).remainder(2 * math.pi)
    for b, count in enumerate((2, 4, 8)):
        assert torch.equal(labels[:, b], (u / (2 * math.pi) * count).floor().long())
    assert torch.equal(labels[:, 1] // 2, labels[:, 0]) and torch.equal(labels[:, 2] // 2, labels[:, 1])
    assert [int((labels[:, 2] == c).sum()) > 0 for c in range(8)] == [True] * 8


def test_torus_fine_to_coarse_order_and_noise():
    x, labels = noisy_torus(300, noise=0.01, seed=2, regions=(6, 3))
    assert torch.equal(labels[:, 0] // 2, labels[:, 1])
    clean, _ = noisy_torus(300, noise=0.0, seed=2, regions=(6, 3))
    assert 0 < (x - clean).abs().max().item() < 0.1


def test_torus_deterministic_for_a_seed():
    a, la = noisy_torus(100, seed=5)
    b, lb = noisy_torus(100, seed=5)
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert not torch.equal(a, noisy_torus(100, seed=6)[0])


def test_bad_arguments():
    with pytest.raises(ValueError, match="`n` must be at least 2"):
        entangled_rings(1)
    with pytest.raises(TypeError, match="`n` must be an int"):
        entangled_rings(10.0)
    with pytest.raises(ValueError, match="`noise`"):
        entangled_rings(10, noise=-0.1)
    with pytest.raises(ValueError, match="`radius`"):
        entangled_rings(10, radius=0)
    with pytest.raises(ValueError, match="nested"):
        noisy_torus(10, regions=(2, 3))
    with pytest.raises(ValueError, match="`regions`"):
        noisy_torus(10, regions=())
    with pytest.raises(ValueError, match="`regions` must be at least 1"):
        noisy_torus(10, regions=(0, 2))
    with pytest.raises(ValueError, match="minor_radius"):
        noisy_torus(10, major_radius=1.0, minor_radius=1.0)
    with pytest.raises(TypeError, match="`major_radius` must be a number"):
        noisy_torus(10, major_radius="2")
    with pytest.raises(ValueError, match="`minor_radius` must be a finite number > 0"):
        noisy_torus(10, minor_radius=float("nan"))
    with pytest.raises(TypeError, match="`seed` must be an int"):
        entangled_rings(10, seed="0")
    with pytest.raises(TypeError, match="`seed` must be an int"):
        noisy_torus(10, seed=1.5)
