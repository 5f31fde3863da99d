"""Distillation losses: GKD, EGA and the KD / RKD / AT / SP / PKT baselines.

Each loss is checked against a computation written out here (loops, NumPy or
values worked out by hand), with gradcheck in float64, and for its bad inputs.
"""
import math

import numpy as np
import pytest
import torch

from latentgraph.losses.baselines import (
    AttentionTransferLoss,
    KDLoss,
    PKTLoss,
    RKDLoss,
    SimilarityPreservingLoss,
)
from latentgraph.losses.ega import EGALoss
from latentgraph.losses.gkd import GKDLoss

DT = torch.float64


def _normalized_cosine(x):
    """D^-1/2 A D^-1/2 of the cosine graph, zero diagonal, written with loops."""
    x = x.reshape(len(x), -1).detach().numpy()
    n = len(x)
    a = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                a[i, j] = x[i] @ x[j] / (np.linalg.norm(x[i]) * np.linalg.norm(x[j]))
    d = a.sum(axis=1)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if d[i] > 0 and d[j] > 0:
                out[i, j] = a[i, j] / math.sqrt(d[i] * d[j])
    return out


# ----------------------------------------------------------------------------- GKD
# student rows (1,0), (0,1), (1,1): cos 0, 1/√2, 1/√2, degrees c, c, 2c (c = 1/√2)
# → Â_s = [[0,0,h],[0,0,h],[h,h,0]] with h = 1/√2.
# teacher rows (1,0), (1,0), (0,1): cos(1,2) = 1, node 3 isolated → Â_t = [[0,1,0],[1,0,0],[0,0,0]].
S3 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=DT)
T3 = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=DT)


def test_gkd_hand_computed_values():
    # (1,2) and (2,1) differ by 1; (1,3),(3,1),(2,3),(3,2) by h → 2·1 + 4·½ = 4
    assert GKDLoss()(S3, T3).item() == pytest.approx(4.0)
    # Â_s² = [[½,½,0],[½,½,0],[0,0,1]], Â_t² = diag(1,1,0) → 4·¼ + 1 = 2
    assert GKDLoss(power=2)(S3, T3).item() == pytest.approx(2.0)
    y = torch.tensor([0, 0, 1])
    # inter-class keeps the four (·,3) entries → 2; intra-class keeps (1,2),(2,1) → 2
    assert GKDLoss(edges="inter_class")(S3, T3, y).item() == pytest.approx(2.0)
    assert GKDLoss(edges="intra_class")(S3, T3, y).item() == pytest.approx(2.0)
    # teacher 1-NN: 1↔2, and node 3 (tied at 0) picks the lower index 1 → mask {12, 21, 13, 31}: 1+1+½+½
    assert GKDLoss(k=1)(S3, T3).item() == pytest.approx(3.0)


def _knn_union(a, k):
    """Each row's k largest off-diagonal entries (ties to the lower index), union-symmetrized, with loops."""
    n = len(a)
    m = np.zeros((n, n), dtype=bool)
    for i in range(n):
        for j in sorted((j for j in range(n) if j != i), key=lambda j: (-a[i, j], j))[:k]:
            m[i, j] = True
    return m | m.T


# Row 5 of this teacher: raw cosine ranks node 3 first (0.744 > 0.706), the normalized
# adjacency ranks node 1 first (0.268 > 0.262): the degree scaling changes the order.
T5 = torch.tensor([[0.6, 0.3, 0.0], [0.0, 0.8, 0.9], [0.6, 0.7, 0.5], [0.9, 0.8, 0.0], [0.9, 0.0, 0.7]], dtype=DT)
S5 = torch.tensor([[0.1, 0.9], [0.5, 0.5], [0.9, 0.2], [0.3, 0.3], [0.7, 0.1]], dtype=DT)


def test_gkd_knn_ranks_on_the_normalized_teacher_adjacency():
    """The official code (cadurosar/graph_kd, utils.representations_to_adj) sorts D^-1/2 A D^-1/2."""
    a_s, a_t = _normalized_cosine(S5), _normalized_cosine(T5)
    t = T5.numpy()
    raw = (t @ t.T) / np.outer(np.linalg.norm(t, axis=1), np.linalg.norm(t, axis=1))
    np.fill_diagonal(raw, 0.0)
    official, on_raw = _knn_union(a_t, 1), _knn_union(raw, 1)
    assert (official != on_raw).any()  # the case tells the two rankings apart
    expected = (((a_s - a_t) * official) ** 2).sum()
    assert GKDLoss(k=1)(S5, T5).item() == pytest.approx(expected, rel=1e-12)
    assert GKDLoss(k=1)(S5, T5).item() != pytest.approx((((a_s - a_t) * on_raw) ** 2).sum(), rel=1e-6)
    # inter-class: the official code ranks the class-masked normalized adjacency
    y = torch.tensor([0, 1, 0, 1, 2])
    inter = (y[:, None] != y[None, :]).numpy()
    mask = inter & _knn_union(a_t * inter, 2)
    expected = (((a_s - a_t) * mask) ** 2).sum()
    assert GKDLoss(k=2, edges="inter_class")(S5, T5, y).item() == pytest.approx(expected, rel=1e-12)


def test_gkd_matches_loop_reference_on_random_layers():
    g = torch.Generator().manual_seed(0)
    s = [torch.rand(7, 3, 2, 2, dtype=DT, generator=g), torch.rand(7, 5, dtype=DT, generator=g)]
    t = [torch.rand(7, 9, dtype=DT, generator=g), torch.rand(7, 2, 3, dtype=DT, generator=g)]
    per_pair = [((_normalized_cosine(a) - _normalized_cosine(b)) ** 2).sum() for a, b in zip(s, t)]
    assert GKDLoss()(s, t).item() == pytest.approx(np.mean(per_pair), rel=1e-12)
    # a single pair as tensors equals the one-element list
    assert GKDLoss()(s[0], t[0]).item() == pytest.approx(per_pair[0], rel=1e-12)


def test_gkd_is_scale_invariant_and_zero_for_identical_geometry():
    x = torch.rand(6, 4, dtype=DT)
    assert GKDLoss()(3 * x, x).item() == pytest.approx(0.0, abs=1e-24)


@pytest.mark.parametrize("kwargs", [{}, {"k": 2}, {"power": 2}, {"edges": "inter_class"}])
def test_gkd_gradcheck(kwargs):
    g = torch.Generator().manual_seed(1)
    s = torch.rand(6, 4, dtype=DT, generator=g, requires_grad=True)
    t = torch.rand(6, 9, dtype=DT, generator=g)
    y = torch.tensor([0, 1, 0, 1, 2, 2])
    assert torch.autograd.gradcheck(lambda s: GKDLoss(**kwargs)(s, t, y), (s,))


def test_gkd_different_batch_sizes():
    with pytest.raises(ValueError, match="same batch size"):
        GKDLoss()(torch.rand(5, 3), torch.rand(6, 3))


def test_gkd_nan_features():
    t = torch.rand(5, 3)
    t[2, 1] = float("nan")
    with pytest.raises(ValueError, match="teacher.*NaN"):
        GKDLoss()(torch.rand(5, 3), t)


def test_gkd_class_mask_needs_labels():
    with pytest.raises(ValueError, match="needs the class labels `y`"):
        GKDLoss(edges="inter_class")(torch.rand(5, 3), torch.rand(5, 3))


def test_gkd_bad_labels_shape():
    with pytest.raises(ValueError, match="y"):
        GKDLoss(edges="intra_class")(torch.rand(5, 3), torch.rand(5, 3), torch.zeros(4, dtype=torch.long))


def test_gkd_bad_options():
    with pytest.raises(ValueError, match="edges"):
        GKDLoss(edges="between")
    with pytest.raises(ValueError, match="power"):
        GKDLoss(power=0)
    with pytest.raises(ValueError, match="`k`"):
        GKDLoss(k=0)


def test_gkd_k_not_below_batch_size():
    with pytest.raises(ValueError, match="k"):
        GKDLoss(k=5)(torch.rand(5, 3), torch.rand(5, 3))


def test_gkd_layer_lists_must_match():
    with pytest.raises(ValueError, match="same number of layers"):
        GKDLoss()([torch.rand(4, 3)], [torch.rand(4, 3), torch.rand(4, 2)])
    with pytest.raises(TypeError, match="both be tensors or both be lists"):
        GKDLoss()(torch.rand(4, 3), [torch.rand(4, 3)])


# ----------------------------------------------------------------------------- EGA
def _ega_reference(s, t, w_node=1.0, w_edge=0.3):
    s, t = s.detach().numpy(), t.detach().numpy()
    n = len(s)
    c = np.corrcoef(np.concatenate([t, s]))  # rows are variables
    e_t, e_s, node = c[:n, :n], c[n:, n:], c[:n, n:]
    return w_node * np.linalg.norm(node - np.eye(n)) + w_edge * np.linalg.norm(e_t - e_s)


def test_ega_matches_numpy_corrcoef():
    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(6, 5, dtype=DT, generator=g), torch.randn(6, 5, dtype=DT, generator=g)
    assert EGALoss()(s, t).item() == pytest.approx(_ega_reference(s, t), rel=1e-12)
    assert EGALoss(node_weight=0.5, edge_weight=2.0)(s, t).item() == pytest.approx(
        _ega_reference(s, t, 0.5, 2.0), rel=1e-12
    )


def test_ega_hand_computed_value():
    # rows (1,2,3) and (3,2,1) are perfectly anti-correlated (r = -1).
    t = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]], dtype=DT)
    s = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]], dtype=DT)
    # E_t = [[1,-1],[-1,1]], E_s = all ones → ‖E_t − E_s‖ = √(4+4) ; N = [[1,1],[-1,-1]] → ‖N − I‖ = √(1+1+0+4)
    expected = math.sqrt(6) + 0.3 * math.sqrt(8)
    assert EGALoss()(s, t).item() == pytest.approx(expected)


def test_ega_projection_heads_are_linear_maps_of_the_inputs():
    g = torch.Generator().manual_seed(3)
    loss = EGALoss(proj_dim=4, student_dim=5, teacher_dim=7).double()
    s, t = torch.randn(6, 5, dtype=DT, generator=g), torch.randn(6, 7, dtype=DT, generator=g)
    ps = s @ loss.student_head.weight.T + loss.student_head.bias
    pt = t @ loss.teacher_head.weight.T + loss.teacher_head.bias
    assert loss(s, t).item() == pytest.approx(_ega_reference(ps, pt), rel=1e-12)
    assert sum(p.numel() for p in loss.parameters()) == 5 * 4 + 4 + 7 * 4 + 4


def test_ega_gradcheck_inputs_and_heads():
    g = torch.Generator().manual_seed(4)
    s = torch.randn(5, 3, dtype=DT, generator=g, requires_grad=True)
    t = torch.randn(5, 4, dtype=DT, generator=g, requires_grad=True)
    loss = EGALoss(proj_dim=3, student_dim=3, teacher_dim=4).double()
    assert torch.autograd.gradcheck(lambda s: loss(s, t), (s,))
    # with heads the teacher side is a constant of the alignment (official wiring)
    loss(s, t).backward()
    assert t.grad is None and loss.teacher_head.weight.grad is None and loss.student_head.weight.grad is not None
    s2 = torch.randn(5, 4, dtype=DT, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(EGALoss(), (s2, t))


def test_ega_teacher_head_loss_is_its_classifier_cross_entropy():
    g = torch.Generator().manual_seed(5)
    loss = EGALoss(proj_dim=3, student_dim=2, teacher_dim=4, num_classes=3).double()
    t, y = torch.randn(6, 4, dtype=DT, generator=g), torch.tensor([0, 1, 2, 2, 1, 0])
    logits = (t @ loss.teacher_head.weight.T + loss.teacher_head.bias) @ loss.teacher_classifier.weight.T
    logits = (logits + loss.teacher_classifier.bias).detach().numpy()
    expected = np.mean([np.log(np.exp(row).sum()) - row[c] for row, c in zip(logits, y.tolist())])
    assert loss.teacher_head_loss(t, y).item() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="num_classes"):
        EGALoss(proj_dim=3, student_dim=2, teacher_dim=4).teacher_head_loss(t, y)
    with pytest.raises(ValueError, match="proj_dim"):
        EGALoss(num_classes=3)
    with pytest.raises(ValueError, match="teacher_dim=4"):
        loss.teacher_head_loss(torch.randn(6, 5, dtype=DT), y)


def test_ega_width_mismatch_without_heads():
    with pytest.raises(ValueError, match="widths differ"):
        EGALoss()(torch.randn(4, 3), torch.randn(4, 5))


def test_ega_width_does_not_match_head():
    with pytest.raises(ValueError, match="teacher_dim=7"):
        EGALoss(proj_dim=4, student_dim=3, teacher_dim=7)(torch.randn(4, 3), torch.randn(4, 6))


def test_ega_heads_need_dims():
    with pytest.raises(ValueError, match="student_dim"):
        EGALoss(proj_dim=8)


def test_ega_different_batch_sizes():
    with pytest.raises(ValueError, match="same batch size"):
        EGALoss()(torch.randn(4, 3), torch.randn(5, 3))


def test_ega_nan_features():
    s = torch.randn(4, 3)
    s[0, 0] = float("nan")
    with pytest.raises(ValueError, match="student.*NaN"):
        EGALoss()(s, torch.randn(4, 3))


# ----------------------------------------------------------------------------- KD
def test_kd_equals_textbook_formula():
    g = torch.Generator().manual_seed(5)
    s, t = torch.randn(4, 3, dtype=DT, generator=g), torch.randn(4, 3, dtype=DT, generator=g)
    temp = 4.0
    p_t = torch.exp(t / temp) / torch.exp(t / temp).sum(1, keepdim=True)
    p_s = torch.exp(s / temp) / torch.exp(s / temp).sum(1, keepdim=True)
    expected = temp**2 * (p_t * (p_t.log() - p_s.log())).sum() / 4
    assert KDLoss(temperature=temp)(s, t).item() == pytest.approx(expected.item(), rel=1e-12)


def test_kd_gradcheck():
    s = torch.randn(3, 4, dtype=DT, requires_grad=True)
    t = torch.randn(3, 4, dtype=DT)
    assert torch.autograd.gradcheck(lambda s: KDLoss(temperature=2.0)(s, t), (s,))


def test_kd_bad_inputs():
    with pytest.raises(ValueError, match="shape B×C"):
        KDLoss()(torch.randn(4, 3), torch.randn(4, 5))
    with pytest.raises(ValueError, match="temperature"):
        KDLoss(temperature=0.0)


def test_kd_different_batch_sizes():
    with pytest.raises(ValueError, match="shape B×C"):
        KDLoss()(torch.randn(4, 3), torch.randn(5, 3))


# ----------------------------------------------------------------------------- RKD
def _smooth_l1(a, b):
    d = abs(a - b)
    return 0.5 * d * d if d < 1 else d - 0.5


def _rkd_reference(s, t):
    s, t = s.detach().numpy(), t.detach().numpy()
    n = len(s)

    def dist(x):
        d = np.array([[np.linalg.norm(x[i] - x[j]) for j in range(n)] for i in range(n)])
        return d / d[d > 0].mean()

    def unit(v):
        norm = np.linalg.norm(v)
        return v / norm if norm > 0 else v

    ds, dt = dist(s), dist(t)
    distance = sum(_smooth_l1(ds[i, j], dt[i, j]) for i in range(n) for j in range(n)) / n**2
    angle = 0.0
    for i in range(n):
        for j in range(n):
            for k in range(n):
                a_s = unit(s[j] - s[i]) @ unit(s[k] - s[i])
                a_t = unit(t[j] - t[i]) @ unit(t[k] - t[i])
                angle += _smooth_l1(a_s, a_t)
    return distance, angle / n**3


def test_rkd_matches_triple_loop():
    g = torch.Generator().manual_seed(6)
    s, t = torch.randn(5, 3, dtype=DT, generator=g), 3 * torch.randn(5, 4, dtype=DT, generator=g)
    distance, angle = _rkd_reference(s, t)
    assert RKDLoss(1.0, 0.0)(s, t).item() == pytest.approx(distance, rel=1e-10)
    assert RKDLoss(0.0, 1.0)(s, t).item() == pytest.approx(angle, rel=1e-10)
    assert RKDLoss()(s, t).item() == pytest.approx(25 * distance + 50 * angle, rel=1e-10)
    # two layer pairs: mean over pairs
    both = RKDLoss()([s, s], [t, s])
    assert both.item() == pytest.approx((25 * distance + 50 * angle) / 2, rel=1e-10)


def test_rkd_gradcheck():
    g = torch.Generator().manual_seed(7)
    s = torch.randn(4, 3, dtype=DT, generator=g, requires_grad=True)
    t = torch.randn(4, 5, dtype=DT, generator=g)
    assert torch.autograd.gradcheck(lambda s: RKDLoss()(s, t), (s,))


def test_rkd_bad_inputs():
    with pytest.raises(ValueError, match="same batch size"):
        RKDLoss()(torch.randn(4, 3), torch.randn(3, 3))
    with pytest.raises(ValueError, match="at least 2"):
        RKDLoss()(torch.randn(1, 3), torch.randn(1, 3))
    with pytest.raises(ValueError, match="distance_weight"):
        RKDLoss(distance_weight=-1.0)


# ----------------------------------------------------------------------------- AT
def test_attention_transfer_hand_computation():
    g = torch.Generator().manual_seed(8)
    s = torch.randn(2, 3, 2, 2, dtype=DT, generator=g)
    t = torch.randn(2, 5, 2, 2, dtype=DT, generator=g)
    expected = 0.0
    for b in range(2):
        q_s = np.array([[sum(s[b, c, h, w].item() ** 2 for c in range(3)) / 3 for w in range(2)] for h in range(2)])
        q_t = np.array([[sum(t[b, c, h, w].item() ** 2 for c in range(5)) / 5 for w in range(2)] for h in range(2)])
        diff = q_s.ravel() / np.linalg.norm(q_s) - q_t.ravel() / np.linalg.norm(q_t)
        expected += (diff**2).sum()
    expected = 0.5 * expected / (2 * 4)  # ½ · mean over B·HW entries
    assert AttentionTransferLoss()(s, t).item() == pytest.approx(expected, rel=1e-12)
    # layer pairs are summed (reference code: β/2 · Σ_j at_loss_j)
    assert AttentionTransferLoss()([s, s], [t, t]).item() == pytest.approx(2 * expected, rel=1e-12)


def test_attention_transfer_gradcheck():
    s = torch.randn(2, 3, 3, 3, dtype=DT, requires_grad=True)
    t = torch.randn(2, 4, 3, 3, dtype=DT)
    assert torch.autograd.gradcheck(lambda s: AttentionTransferLoss()(s, t), (s,))


def test_attention_transfer_spatial_mismatch():
    with pytest.raises(ValueError, match="same spatial size"):
        AttentionTransferLoss()(torch.randn(2, 3, 4, 4), torch.randn(2, 3, 2, 2))


# ----------------------------------------------------------------------------- SP / PKT
def test_similarity_preserving_hand_computation():
    g = torch.Generator().manual_seed(9)
    s, t = torch.randn(4, 3, dtype=DT, generator=g), torch.randn(4, 6, dtype=DT, generator=g)

    def rownorm_gram(x):
        gram = x.numpy() @ x.numpy().T
        return gram / np.linalg.norm(gram, axis=1, keepdims=True)

    expected = ((rownorm_gram(s) - rownorm_gram(t)) ** 2).sum() / 16
    assert SimilarityPreservingLoss()(s, t).item() == pytest.approx(expected, rel=1e-12)
    s2 = torch.randn(4, 3, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: SimilarityPreservingLoss()(s, t), (s2,))


def test_pkt_hand_computation():
    g = torch.Generator().manual_seed(10)
    s, t = torch.randn(4, 3, dtype=DT, generator=g), torch.randn(4, 6, dtype=DT, generator=g)

    def cond(x):
        x = x.numpy()
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
        k = (u @ u.T + 1) / 2
        return k / k.sum(axis=1, keepdims=True)

    p_s, p_t = cond(s), cond(t)
    expected = (p_t * np.log((p_t + 1e-7) / (p_s + 1e-7))).mean()
    assert PKTLoss()(s, t).item() == pytest.approx(expected, rel=1e-10)
    s2 = torch.randn(4, 3, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: PKTLoss()(s, t), (s2,))


def test_baselines_nan_features():
    s = torch.randn(4, 3)
    s[1] = float("inf")
    for loss in (RKDLoss(), SimilarityPreservingLoss(), PKTLoss()):
        with pytest.raises(ValueError, match="NaN or infinite"):
            loss(s, torch.randn(4, 3))


@pytest.mark.parametrize("make", [GKDLoss, RKDLoss, SimilarityPreservingLoss, PKTLoss, AttentionTransferLoss],
                         ids=lambda c: c.__name__)
@pytest.mark.parametrize("scale", [1e19, 1e-30])
def test_relational_losses_are_the_same_at_extreme_scales(make, scale):
    g = torch.Generator().manual_seed(0)
    s, t = torch.rand(6, 2, 3, 3, generator=g) + 0.1, torch.rand(6, 4, 3, 3, generator=g) + 0.1
    expected = make()(s, t)
    scaled = make()(s * scale, t * scale)
    assert torch.isfinite(scaled) and torch.allclose(scaled, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("make", [GKDLoss, RKDLoss, SimilarityPreservingLoss, PKTLoss], ids=lambda c: c.__name__)
def test_relational_losses_on_float16_match_float32(make):
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(8, 16, generator=g) * 10, torch.randn(8, 12, generator=g) * 10
    half = make()(s.half(), t.half())
    assert half.dtype == torch.float16  # computed in float32, returned in the input's dtype
    expected = make()(s.half().float(), t.half().float()).half().float()
    assert torch.isfinite(half) and torch.allclose(half.float(), expected, rtol=1e-3, atol=1e-5)


def test_scale_free_rescaling_keeps_the_gradient():
    s = torch.rand(5, 4, dtype=torch.float64, requires_grad=True)
    t = torch.rand(5, 3, dtype=torch.float64)
    (grad,) = torch.autograd.grad(RKDLoss()(s, t), s)
    (grad_big,) = torch.autograd.grad(RKDLoss()(s * 1e19, t), s)
    assert torch.allclose(grad, grad_big, rtol=1e-6)  # chain rule through s·1e19, invariance of the loss
