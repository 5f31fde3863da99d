r"""Training losses on full-Jacobians (Srinivas & Fleuret, 2019).

The losses take the :class:`~latentgraph.jacobian.FullJacobian` results of
:func:`~latentgraph.jacobian.full_jacobian`, computed with
``create_graph=True`` for the network being trained so that the loss can be
back-propagated to its parameters (double backward).

Cheap target-class mode and memory: as in the paper, the Jacobians are those
of the single output of the correct class (``full_jacobian(..., target=y)``),
one extra backward pass per step. Passing lists of results, one per class,
matches the Jacobians of all :math:`K` outputs instead, at :math:`K` times the
cost; each result keeps its double-backward graph alive until the optimizer
step, so memory grows to about :math:`K + 1` times that of a plain training
step. The bias-Jacobian maps stored per layer have the size of the layer's
activations.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from latentgraph.jacobian import FullJacobian
from latentgraph.validation import check_flag

__all__ = ["BiasJacobianPenalty", "InputJacobianMatchingLoss", "FullJacobianMatchingLoss"]

JacobianArg = FullJacobian | Sequence[FullJacobian]


def _as_list(value: JacobianArg, name: str) -> list[FullJacobian]:
    items = [value] if isinstance(value, FullJacobian) else list(value) if isinstance(value, Sequence) else None
    if not items or not all(isinstance(item, FullJacobian) for item in items):
        raise TypeError(f"{name} must be a FullJacobian or a non-empty sequence of them "
                        "(from latentgraph.full_jacobian)")
    return items


def _pairs(student: JacobianArg, teacher: JacobianArg) -> list[tuple[FullJacobian, FullJacobian]]:
    students, teachers = _as_list(student, "student"), _as_list(teacher, "teacher")
    if len(students) != len(teachers):
        raise ValueError(f"student and teacher must hold as many results, got {len(students)} "
                         f"and {len(teachers)}")
    for s, t in zip(students, teachers):
        if s.input_gradient.shape != t.input_gradient.shape:
            raise ValueError("student and teacher must be evaluated on the same inputs, got input "
                             f"shapes {tuple(s.input_gradient.shape)} and {tuple(t.input_gradient.shape)}")
        if not torch.equal(s.target, t.target.to(s.target.device)):
            raise ValueError("student and teacher Jacobians must be taken for the same target outputs")
    return list(zip(students, teachers))


def _squared_distance(s: Tensor, t: Tensor, normalize: bool) -> Tensor:
    """Mean over the batch of the squared Euclidean distance between per-sample flattened maps."""
    s, t = s.flatten(1), t.detach().flatten(1)
    if normalize:
        s = s / s.norm(dim=1, keepdim=True).clamp_min(torch.finfo(s.dtype).eps)
        t = t / t.norm(dim=1, keepdim=True).clamp_min(torch.finfo(t.dtype).eps)
    return (s - t).pow(2).sum(1).mean()


class BiasJacobianPenalty(nn.Module):
    r"""Bias-Jacobian norm regularizer, :math:`\frac{1}{B}\sum_i \sum_l \lVert f^b_l(\mathbf{x}_i) \rVert_2^2`.

    :math:`f^b_l = \nabla_{\mathbf{b}_l} f \odot \mathbf{b}_l` is the bias-Jacobian
    map of layer :math:`l` (one entry per position and channel). Penalizing it
    lowers the sensitivity of the output to multiplicative noise on the biases
    (the paper's Proposition 3), a deterministic relative of dropout.

    Args:
        layers (list of str, optional): the captured layers to penalize;
            ``None`` penalizes every layer of the result. (default: :obj:`None`)

    Example:
        >>> from latentgraph.jacobian import full_jacobian
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
        >>> fj = full_jacobian(net, torch.rand(5, 4), target=torch.tensor([0, 1, 2, 0, 1]),
        ...                    layers=["0"], create_graph=True)
        >>> loss = BiasJacobianPenalty()(fj)
        >>> loss.backward()
        >>> net[0].bias.grad.shape
        torch.Size([8])
    """

    def __init__(self, layers: Sequence[str] | None = None) -> None:
        super().__init__()
        if layers is not None and (isinstance(layers, str) or not all(isinstance(n, str) for n in layers)):
            raise TypeError("layers must be None or a sequence of layer names")
        if layers is not None and not layers:
            raise ValueError("layers must name at least one layer (or be None for every captured layer)")
        self.layers = None if layers is None else list(layers)

    def forward(self, jacobian: JacobianArg) -> Tensor:
        results = _as_list(jacobian, "jacobian")
        total = 0.0
        for result in results:
            names = list(result.bias_gradients) if self.layers is None else self.layers
            missing = [n for n in names if n not in result.bias_gradients]
            if missing:
                raise ValueError(f"layers {missing} were not captured; pass them to "
                                 "full_jacobian(..., layers=...)")
            total = total + sum(result.bias_gradients[n].flatten(1).pow(2).sum(1).mean() for n in names)
        return total / len(results)

    def extra_repr(self) -> str:
        return f"layers={self.layers}"


class InputJacobianMatchingLoss(nn.Module):
    r"""Input-Jacobian matching (Czarnecki et al., 2017; Srinivas & Fleuret, 2018).

    :math:`\frac{1}{B}\sum_i \lVert \nabla_{\mathbf{x}} f(\mathbf{x}_i) - \nabla_{\mathbf{x}} g(\mathbf{x}_i) \rVert_2^2`
    between student :math:`f` and teacher :math:`g` (the teacher is detached).
    With lists of results (one per output class) the mean over the pairs is
    returned.

    Args:
        normalize (bool): compare the per-sample unit-norm Jacobians
            :math:`\nabla f / \lVert \nabla f \rVert`, as Srinivas & Fleuret (2018);
            the full-Jacobian paper uses the plain :math:`\ell_2` distance.
            (default: :obj:`False`)

    Example:
        >>> from latentgraph.jacobian import full_jacobian
        >>> x, y = torch.rand(4, 6), torch.tensor([0, 1, 1, 0])
        >>> student = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> teacher = nn.Sequential(nn.Linear(6, 2))
        >>> s = full_jacobian(student, x, target=y, create_graph=True)
        >>> t = full_jacobian(teacher, x, target=y)
        >>> InputJacobianMatchingLoss()(s, t).shape
        torch.Size([])
    """

    def __init__(self, normalize: bool = False) -> None:
        normalize = check_flag(normalize, "normalize")
        super().__init__()
        self.normalize = bool(normalize)

    def forward(self, student: JacobianArg, teacher: JacobianArg) -> Tensor:
        pairs = _pairs(student, teacher)
        return sum(_squared_distance(s.input_gradient, t.input_gradient, self.normalize)
                   for s, t in pairs) / len(pairs)

    def extra_repr(self) -> str:
        return f"normalize={self.normalize}"


class FullJacobianMatchingLoss(nn.Module):
    r"""Full-Jacobian matching for distillation (Srinivas & Fleuret, 2019, section 4.1.3).

    .. math::
        \lambda_o \lVert f(\mathbf{x}) - g(\mathbf{x}) \rVert^2
        + \lambda_i \lVert \nabla_{\mathbf{x}} f - \nabla_{\mathbf{x}} g \rVert^2
        + \lambda_b \frac{1}{k} \sum_{j=1}^{k}
          \Big\lVert \sum_c f^b_{s_j, c} - \sum_c g^b_{t_j, c} \Big\rVert^2 ,

    each averaged over the batch: the output (all logits), the input-Jacobian,
    and for each of :math:`k` matched layer pairs the bias-Jacobian maps summed
    over channels only (not over positions), which requires the paired layers
    to have the same spatial size. Combine with
    :class:`~latentgraph.losses.baselines.AttentionTransferLoss` for the
    paper's best setting (see the ``jacobian_distill`` objective). See the
    module docstring for the cheap target-class mode and the memory cost.

    Args:
        student_layers (list of str): bias layers of the student (captured by
            ``full_jacobian(student, ..., layers=...)``).
        teacher_layers (list of str): the teacher's layers, paired in order.
        output_weight (float): :math:`\lambda_o`. (default: :obj:`1.0`)
        input_weight (float): :math:`\lambda_i`. (default: :obj:`1.0`)
        bias_weight (float): :math:`\lambda_b`. (default: :obj:`1.0`)
        normalize (bool): as in :class:`InputJacobianMatchingLoss`, applied to
            input-Jacobians and channel-summed bias maps. (default: :obj:`False`)

    Example:
        >>> from latentgraph.jacobian import full_jacobian
        >>> def net(width):
        ...     return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
        ...                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 3))
        >>> student, teacher, x = net(4), net(8), torch.rand(2, 1, 5, 5)
        >>> loss = FullJacobianMatchingLoss(["0"], ["0"])
        >>> s = full_jacobian(student, x, target=torch.tensor([0, 2]), layers=["0"], create_graph=True)
        >>> t = full_jacobian(teacher, x, target=torch.tensor([0, 2]), layers=["0"])
        >>> sorted(loss.terms(s, t))
        ['bias_jacobian', 'input_jacobian', 'output']
    """

    def __init__(self, student_layers: Sequence[str], teacher_layers: Sequence[str],
                 output_weight: float = 1.0, input_weight: float = 1.0, bias_weight: float = 1.0,
                 normalize: bool = False) -> None:
        normalize = check_flag(normalize, "normalize")
        super().__init__()
        for name, value in (("student_layers", student_layers), ("teacher_layers", teacher_layers)):
            if isinstance(value, str) or not all(isinstance(n, str) for n in value):
                raise TypeError(f"{name} must be a sequence of layer names")
        if len(student_layers) != len(teacher_layers):
            raise ValueError(f"student_layers and teacher_layers must pair up, got {len(student_layers)} "
                             f"and {len(teacher_layers)} names")
        for name, value in (("output_weight", output_weight), ("input_weight", input_weight),
                            ("bias_weight", bias_weight)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, got {type(value).__name__}")
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        self.student_layers, self.teacher_layers = list(student_layers), list(teacher_layers)
        self.output_weight, self.input_weight, self.bias_weight = output_weight, input_weight, bias_weight
        self.input_matching = InputJacobianMatchingLoss(normalize=normalize)

    def _bias_term(self, s: FullJacobian, t: FullJacobian) -> Tensor:
        if not self.student_layers:
            return s.input_gradient.new_zeros(())
        total = 0.0
        for ns, nt in zip(self.student_layers, self.teacher_layers):
            for result, name, role in ((s, ns, "student"), (t, nt, "teacher")):
                if name not in result.bias_gradients:
                    raise ValueError(f"{role} layer '{name}' was not captured; pass it to "
                                     "full_jacobian(..., layers=...)")
            fs, ft = s.bias_gradients[ns], t.bias_gradients[nt]
            if fs.dim() < 3 or fs.shape[2:] != ft.shape[2:] or fs.shape[0] != ft.shape[0]:
                raise ValueError(f"layers '{ns}' (student, {tuple(fs.shape)}) and '{nt}' (teacher, "
                                 f"{tuple(ft.shape)}) must be convolutional with the same spatial size")
            total = total + _squared_distance(fs.sum(1), ft.sum(1), self.input_matching.normalize)
        return total / len(self.student_layers)

    def terms(self, student: JacobianArg, teacher: JacobianArg) -> dict[str, Tensor]:
        """The three unweighted terms ``output``, ``input_jacobian`` and ``bias_jacobian``."""
        pairs = _pairs(student, teacher)
        s0, t0 = pairs[0]
        return {
            "output": (s0.logits - t0.logits.detach()).pow(2).sum(1).mean(),
            "input_jacobian": self.input_matching(student, teacher),
            "bias_jacobian": sum(self._bias_term(s, t) for s, t in pairs) / len(pairs),
        }

    def forward(self, student: JacobianArg, teacher: JacobianArg) -> Tensor:
        terms = self.terms(student, teacher)
        return (self.output_weight * terms["output"] + self.input_weight * terms["input_jacobian"]
                + self.bias_weight * terms["bias_jacobian"])

    def extra_repr(self) -> str:
        return (f"student_layers={self.student_layers}, teacher_layers={self.teacher_layers}, "
                f"output_weight={self.output_weight}, input_weight={self.input_weight}, "
                f"bias_weight={self.bias_weight}, normalize={self.input_matching.normalize}")
