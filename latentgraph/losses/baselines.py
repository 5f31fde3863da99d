r"""Standard distillation baselines: KD, RKD, attention transfer, SP and PKT.

Each loss follows its authors' reference implementation; the weight that the
authors put in front of the loss is noted in the docstring and is applied by
the objective (see :class:`latentgraph.train.objectives.distillation.DistillationObjective`),
except for RKD whose two internal weights are part of the loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentgraph.graphs.similarity import similarity_matrix, squared_distances
from latentgraph.losses.layer_pairs import Layers, layer_pairs, result_dtype
from latentgraph.losses.registry import register_loss
from latentgraph.validation import check_features, check_int, check_number, check_same_batch


@register_loss("kd", inputs="logits", weight=1.0)  # Hinton et al.: T² KL, weight 1 next to CE
class KDLoss(nn.Module):
    r"""Hinton et al. (2015) knowledge distillation on softened logits.

    .. math::
        \mathcal{L}_{KD} = T^2 \cdot \frac{1}{B} \sum_{b=1}^{B}
        \mathrm{KL}\big(\operatorname{softmax}(t_b / T) \,\big\Vert\,
        \operatorname{softmax}(s_b / T)\big)

    The :math:`T^2` factor keeps the gradient scale independent of the
    temperature, as in the paper.

    Args:
        temperature (float): softmax temperature :math:`T`. (default: :obj:`4.0`)

    Example:
        >>> loss = KDLoss()
        >>> float(loss(torch.zeros(2, 3), torch.zeros(2, 3)))
        0.0
    """

    def __init__(self, temperature: float = 4.0) -> None:
        super().__init__()
        self.temperature = check_number(temperature, "temperature", positive=True)

    def forward(self, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        s = check_features(student_logits, "student_logits")
        t = check_features(teacher_logits, "teacher_logits")
        if student_logits.dim() != 2 or s.shape != t.shape:
            raise ValueError(
                "`student_logits` and `teacher_logits` must both have shape B×C, "
                f"got {tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
            )
        check_same_batch(s, t, ("student_logits", "teacher_logits"))
        temp = self.temperature
        log_p_s = F.log_softmax(s / temp, dim=1)
        log_p_t = F.log_softmax(t / temp, dim=1)
        return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * temp**2

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


def _pairwise_distances(x: Tensor) -> Tensor:
    """Euclidean distances with a zero diagonal and finite gradients (RKD's ``pdist``)."""
    d = squared_distances(x).clamp_min(1e-12).sqrt()
    return d * (1 - torch.eye(x.shape[0], dtype=x.dtype, device=x.device))


def _mean_normalized_distances(x: Tensor) -> Tensor:
    d = _pairwise_distances(x)
    n = x.shape[0]
    mean = d.sum() / (n * (n - 1))
    return d / mean.clamp_min(1e-12)


def _angles(x: Tensor) -> Tensor:
    """``a[i, j, k] = <unit(x_j - x_i), unit(x_k - x_i)>`` (zero where j = i or k = i)."""
    diff = F.normalize(x[None, :, :] - x[:, None, :], p=2, dim=2)
    return diff @ diff.transpose(1, 2)


@register_loss("rkd", inputs="layers", weight=1.0, relational=True)  # Park et al.: the 25 / 50 weights are inside
class RKDLoss(nn.Module):
    r"""Relational knowledge distillation, distance and angle terms (Park et al., 2019).

    With :math:`\psi_D(i, j) = \lVert x_i - x_j \rVert / \mu` where :math:`\mu`
    is the mean distance over the pairs :math:`i \ne j` of the batch, and
    :math:`\psi_A(i, j, k) = \langle \frac{x_j - x_i}{\lVert x_j - x_i\rVert},
    \frac{x_k - x_i}{\lVert x_k - x_i\rVert} \rangle` (0 when a difference
    vanishes), for each layer pair

    .. math::
        w_D \cdot \frac{1}{B^2} \sum_{i,j} \ell_\delta\big(\psi_D^s(i,j), \psi_D^t(i,j)\big)
        + w_A \cdot \frac{1}{B^3} \sum_{i,j,k} \ell_\delta\big(\psi_A^s(i,j,k), \psi_A^t(i,j,k)\big)

    where :math:`\ell_\delta` is the smooth-L1 (Huber, :math:`\delta = 1`)
    loss. The means run over all entries including the zero diagonal, as in
    the reference implementation. With several layer pairs the loss is the
    mean over pairs. The angle term costs :math:`O(B^3 D)`.

    Args:
        distance_weight (float): :math:`w_D`. (default: :obj:`25.0`)
        angle_weight (float): :math:`w_A`. (default: :obj:`50.0`)

    Example:
        >>> x = torch.rand(5, 3)
        >>> float(RKDLoss()(x, 2 * x)) < 1e-10   # both terms are scale-invariant
        True
    """

    def __init__(self, distance_weight: float = 25.0, angle_weight: float = 50.0) -> None:
        super().__init__()
        self.distance_weight = check_number(distance_weight, "distance_weight")
        self.angle_weight = check_number(angle_weight, "angle_weight")

    def forward(self, student: Layers, teacher: Layers) -> Tensor:
        pairs = layer_pairs(student, teacher)
        if pairs[0][0].shape[0] < 2:
            raise ValueError("RKDLoss needs a batch of at least 2 samples")
        total = pairs[0][0].new_zeros(())
        for s, t in pairs:
            if self.distance_weight:
                dist = F.smooth_l1_loss(_mean_normalized_distances(s), _mean_normalized_distances(t))
                total = total + self.distance_weight * dist
            if self.angle_weight:
                total = total + self.angle_weight * F.smooth_l1_loss(_angles(s), _angles(t))
        return (total / len(pairs)).to(result_dtype(student))

    def extra_repr(self) -> str:
        return f"distance_weight={self.distance_weight}, angle_weight={self.angle_weight}"


def attention_map(x: Tensor, p: int = 2) -> Tensor:
    r"""Zagoruyko & Komodakis' spatial attention map, flattened and L2-normalized.

    :math:`Q = \frac{1}{C}\sum_c |x_c|^p` over channels, then
    :math:`Q / \lVert Q \rVert_2` per sample. ``x`` is ``B×C×…`` (spatial dims
    of any number, flattened).
    """
    q = x.abs().pow(p).mean(dim=1).reshape(x.shape[0], -1)
    return F.normalize(q, p=2, dim=1)


@register_loss("at", inputs="layers", weight=1000.0)  # Zagoruyko & Komodakis: β = 1000
class AttentionTransferLoss(nn.Module):
    r"""Activation-based attention transfer (Zagoruyko & Komodakis, 2017).

    For each layer pair with the same spatial size,

    .. math::
        \mathcal{L}_{AT} = \frac{1}{2} \sum_{j} \frac{1}{B\,HW}
        \big\lVert \hat Q_s^{(j)} - \hat Q_t^{(j)} \big\rVert_F^2,
        \qquad \hat Q = \frac{Q}{\lVert Q\rVert_2},\;
        Q = \frac{1}{C}\sum_c |x_c|^p

    summed over layer pairs. This is the reference code's convention: it sums
    ``(at(x) - at(y)).pow(2).mean()`` over layer groups and multiplies by
    :math:`\beta/2` with :math:`\beta = 10^3`. The :math:`1/2` is inside this
    loss, so an objective weight :math:`\lambda = \beta = 1000` reproduces the
    reference loss exactly. (The paper writes the unsquared p-norm
    :math:`\frac{\beta}{2}\lVert \cdot \rVert_p`; the authors' released
    code uses the squared mean form above.)
    The channel counts of student and teacher may differ.

    Args:
        p (int): exponent of the attention map. (default: :obj:`2`)

    Example:
        >>> x = torch.rand(2, 4, 3, 3)
        >>> float(AttentionTransferLoss()(x, torch.cat([x, x], dim=1))) < 1e-10  # 8 teacher channels
        True
    """

    def __init__(self, p: int = 2) -> None:
        super().__init__()
        self.p = check_int(p, "p", minimum=1)

    def forward(self, student: Layers, teacher: Layers) -> Tensor:
        pairs = layer_pairs(student, teacher, flatten=False)
        total = pairs[0][0].new_zeros(())
        for i, (s, t) in enumerate(pairs):
            if s.dim() < 3 or s.shape[2:] != t.shape[2:]:
                raise ValueError(
                    "attention transfer needs B×C×H×W maps with the same spatial size in "
                    f"layer pair {i}, got {tuple(s.shape)} and {tuple(t.shape)}"
                )
            diff = attention_map(s, self.p) - attention_map(t, self.p)
            total = total + 0.5 * diff.pow(2).mean()
        return total.to(result_dtype(student))

    def extra_repr(self) -> str:
        return f"p={self.p}"


@register_loss("sp", inputs="layers", weight=3000.0, relational=True)  # Tung & Mori: γ = 3000
class SimilarityPreservingLoss(nn.Module):
    r"""Similarity-preserving distillation (Tung & Mori, 2019).

    With :math:`G = \operatorname{rownorm}(F F^\top)` the row-L2-normalized
    Gram matrix of the flattened batch,

    .. math::
        \mathcal{L}_{SP} = \sum_{j} \frac{1}{B^2}
        \big\lVert G_s^{(j)} - G_t^{(j)} \big\rVert_F^2

    summed over layer pairs as in the reference code; the paper's weight is
    :math:`\gamma = 3000`.

    Example:
        >>> x = torch.rand(4, 6)
        >>> float(SimilarityPreservingLoss()(x, 5 * x)) < 1e-10
        True
    """

    def forward(self, student: Layers, teacher: Layers) -> Tensor:
        pairs = layer_pairs(student, teacher)
        total = pairs[0][0].new_zeros(())
        for s, t in pairs:
            g_s = F.normalize(s @ s.T, p=2, dim=1)
            g_t = F.normalize(t @ t.T, p=2, dim=1)
            total = total + (g_s - g_t).pow(2).sum() / s.shape[0] ** 2
        return total.to(result_dtype(student))


@register_loss("pkt", inputs="embedding", weight=30000.0, relational=True)  # RepDistiller's PKT weight
class PKTLoss(nn.Module):
    r"""Probabilistic knowledge transfer (Passalis & Tefas, 2018).

    Cosine similarities are mapped to :math:`[0, 1]` by
    :math:`k_{ij} = (\cos_{ij} + 1)/2` and normalized into conditional
    distributions :math:`p_{j|i} = k_{ij} / \sum_{j'} k_{ij'}` (diagonal
    included, as in the reference code). The loss is the mean over the
    :math:`B^2` entries of :math:`p^t \log\frac{p^t + \epsilon}{p^s + \epsilon}`,
    averaged over layer pairs; RepDistiller weights it by :math:`3\cdot10^4`.

    Args:
        eps (float): :math:`\epsilon`. (default: :obj:`1e-7`)

    Example:
        >>> x = torch.rand(4, 6)
        >>> float(PKTLoss()(x, 2 * x)) < 1e-10
        True
    """

    def __init__(self, eps: float = 1e-7) -> None:
        super().__init__()
        self.eps = check_number(eps, "eps", positive=True)

    def _conditional(self, x: Tensor) -> Tensor:
        k = (similarity_matrix(x, "cosine") + 1.0) / 2.0
        return k / k.sum(dim=1, keepdim=True)

    def forward(self, student: Layers, teacher: Layers) -> Tensor:
        pairs = layer_pairs(student, teacher)
        total = pairs[0][0].new_zeros(())
        for s, t in pairs:
            p_s, p_t = self._conditional(s), self._conditional(t)
            total = total + (p_t * torch.log((p_t + self.eps) / (p_s + self.eps))).mean()
        return (total / len(pairs)).to(result_dtype(student))

    def extra_repr(self) -> str:
        return f"eps={self.eps}"
