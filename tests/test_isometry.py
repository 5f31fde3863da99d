import math

import pytest
import torch

from latentgraph.losses.isometry import IsometryLoss, pairwise_euclidean


def _double_loop(inputs, features, y, scale, scope):
    """The paper's formula written out pair by pair, with math.sqrt distances."""
    n = inputs.shape[0]
    a, b = inputs.reshape(n, -1).tolist(), features.reshape(n, -1).tolist()
    total = 0.0
    for i in range(n):
        for j in range(n):
            if scope == "class" and int(y[i]) != int(y[j]):
                continue
            d_m = math.sqrt(sum((p - q) ** 2 for p, q in zip(a[i], a[j])))
            d_phi = math.sqrt(sum((p - q) ** 2 for p, q in zip(b[i], b[j])))
            total += (scale * d_phi - d_m) ** 2
    return total / n**2


@pytest.mark.parametrize("scope", ["class", "global"])
@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_matches_double_loop(scope, scale):
    g = torch.Generator().manual_seed(0)
    inputs = torch.rand(7, 1, 2, 3, generator=g, dtype=torch.float64)  # flattened to 7×6
    features = torch.randn(7, 4, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 2, 1, 0, 2])
    got = IsometryLoss(scale=scale, scope=scope)(inputs, features, y)
    assert got.dtype == torch.float64 and got.shape == torch.Size([])
    assert got.item() == pytest.approx(_double_loop(inputs, features, y, scale, scope), rel=1e-12)


def test_hand_computed_value():
    # class 0 = {(0,0), (3,4)}: input distance 5; features (0,0), (1,0): distance 1.
    # class 1 = {(9,9)} alone. Loss = 2 · (2·1 − 5)² / 3² = 18 / 9 = 2.
    inputs = torch.tensor([[0.0, 0.0], [3.0, 4.0], [9.0, 9.0]])
    features = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    y = torch.tensor([0, 0, 1])
    assert IsometryLoss(scale=2.0)(inputs, features, y).item() == pytest.approx(2.0)
    # global scope adds pairs (0,2), (1,2) twice each:
    # (2·√50 − √162)² + (2·√41 − √61)²
    extra = (2 * math.sqrt(50) - math.sqrt(162)) ** 2 + (2 * math.sqrt(41) - math.sqrt(61)) ** 2
    expected = (18 + 2 * extra) / 9
    assert IsometryLoss(scale=2.0, scope="global")(inputs, features).item() == pytest.approx(expected, rel=1e-6)


def test_isometry_gives_zero_and_scaled_isometry_too():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 5, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))
    y = torch.tensor([0, 0, 1, 1, 1, 0])
    rotated = x @ q + 3.0  # rotation + translation preserve distances
    assert IsometryLoss(scope="global")(x, rotated).item() == pytest.approx(0.0, abs=1e-20)
    # features shrunk by 10 are an isometry for K = 10
    assert IsometryLoss(scale=10.0)(x, rotated / 10, y).item() == pytest.approx(0.0, abs=1e-20)


@pytest.mark.parametrize("scope", ["class", "global"])
def test_gradcheck(scope):
    g = torch.Generator().manual_seed(2)
    inputs = torch.rand(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    features = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 0, 1, 1, 2])
    loss = IsometryLoss(scale=3.0, scope=scope)
    assert torch.autograd.gradcheck(lambda a, b: loss(a, b, y), (inputs, features))


def test_duplicate_points_give_finite_gradient():
    g = torch.Generator().manual_seed(3)
    # > 25 rows and an offset: where cdist's default matrix-product shortcut returns
    # distances of ~1e-2 between identical points (measured: 0.0078 and a 0.011 diagonal)
    features = torch.randn(40, 5, generator=g) + 10.0
    features[1] = features[0]
    features[7] = features[0]
    inputs = torch.rand(40, 8, generator=g)
    inputs[1] = inputs[0]
    y = torch.arange(40) % 3
    features.requires_grad_(True)
    inputs.requires_grad_(True)
    loss = IsometryLoss(scale=10.0)(inputs, features, y)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(features.grad).all() and torch.isfinite(inputs.grad).all()
    # identical points are at distance exactly 0, not a cancellation residue
    distances = pairwise_euclidean(features.detach())
    assert distances[0, 1].item() == 0.0 and distances[0, 7].item() == 0.0
    assert torch.equal(distances.diagonal(), torch.zeros(40))


def test_distances_match_direct_differences_in_float32():
    g = torch.Generator().manual_seed(4)
    x = torch.rand(60, 784, generator=g) + 3.0
    x[5] = x[4] + 1e-4  # a near-duplicate: true distance 1e-4 · √784 = 2.8e-3
    expected = (x.double()[:, None] - x.double()[None]).pow(2).sum(-1).sqrt()
    got = pairwise_euclidean(x)
    assert torch.allclose(got.double(), expected, rtol=1e-4, atol=1e-5)
    assert got[4, 5].item() == pytest.approx(2.8e-3, rel=1e-2)
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(pairwise_euclidean(x)[4, 5], x)
    # ∂‖x_4 − x_5‖/∂x_4 is the unit vector (x_4 − x_5)/‖x_4 − x_5‖
    assert grad[4].norm().item() == pytest.approx(1.0, rel=1e-2)


def test_zero_distance_gradient_is_zero_subgradient():
    # two identical feature vectors in one class: d_Φ = 0, d_M = 5. The gradient of
    # (0 − 5)² w.r.t. the features goes through ‖φ_0 − φ_1‖ at 0, whose subgradient is 0.
    inputs = torch.tensor([[0.0, 0.0], [3.0, 4.0]], dtype=torch.float64)
    features = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=torch.float64, requires_grad=True)
    loss = IsometryLoss()(inputs, features, torch.tensor([0, 0]))
    loss.backward()
    assert loss.item() == pytest.approx(2 * 25 / 4)
    assert torch.equal(features.grad, torch.zeros_like(features))


def test_no_same_class_pair_gives_zero_with_zero_gradient():
    features = torch.randn(3, 4, requires_grad=True)
    loss = IsometryLoss(scale=10.0)(torch.rand(3, 6), features, torch.tensor([0, 1, 2]))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(features.grad, torch.zeros_like(features))
    single = IsometryLoss()(torch.rand(1, 6), torch.rand(1, 2), torch.tensor([4]))
    assert single.item() == 0.0


def test_batch_size_mismatch():
    with pytest.raises(ValueError, match="same batch size"):
        IsometryLoss()(torch.rand(5, 3), torch.rand(4, 3), torch.zeros(5, dtype=torch.long))


def test_bad_feature_shape():
    with pytest.raises(ValueError, match="B×"):
        IsometryLoss()(torch.rand(5), torch.rand(5, 3), torch.zeros(5, dtype=torch.long))


def test_labels_shape_and_dtype():
    with pytest.raises(ValueError, match=r"shape \[5\]"):
        IsometryLoss()(torch.rand(5, 3), torch.rand(5, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="integer class labels"):
        IsometryLoss()(torch.rand(5, 3), torch.rand(5, 3), torch.zeros(5))


def test_class_scope_requires_labels():
    with pytest.raises(ValueError, match="`y` is required"):
        IsometryLoss()(torch.rand(5, 3), torch.rand(5, 3))


def test_non_finite_features():
    features = torch.rand(5, 3)
    features[2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        IsometryLoss(scope="global")(torch.rand(5, 3), features)


def test_bad_scale_and_scope():
    with pytest.raises(ValueError, match="scale"):
        IsometryLoss(scale=0.0)
    with pytest.raises(ValueError, match="scale"):
        IsometryLoss(scale=float("inf"))
    with pytest.raises(TypeError, match="scale"):
        IsometryLoss(scale="10")
    with pytest.raises(ValueError, match="scope"):
        IsometryLoss(scope="local")


def test_repr():
    assert repr(IsometryLoss(scale=10, scope="global")) == "IsometryLoss(scale=10.0, scope='global')"
