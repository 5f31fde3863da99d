r"""Full-Jacobian objectives: bias-Jacobian regularization and Jacobian distillation.

Both differentiate through gradients (double backward), so a step costs about
two to three plain training steps. In training mode BatchNorm normalizes with
the batch's statistics; the bias-Jacobians then use the batch mean and
variance as effective bias (``full_jacobian(..., batch_statistics=True)``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentgraph.capture import capture
from latentgraph.jacobian import bias_layer_names, full_jacobian
from latentgraph.losses.baselines import AttentionTransferLoss
from latentgraph.losses.jacobian import BiasJacobianPenalty, FullJacobianMatchingLoss
from latentgraph.validation import check_flag, check_number

from .distillation import layer_name_pairs
from .registry import register_objective
from .teacher import FrozenTeacherObjective

__all__ = ["BiasJacobianObjective", "JacobianDistillationObjective"]


def _capture_layers(model: nn.Module, layers: list[str]) -> list[str] | None:
    """``layers``, or only the last bias layer when none are matched (input-Jacobians only)."""
    return layers or bias_layer_names(model)[-1:] or None


def _student_jacobian(model: nn.Module, x: Tensor, target: Tensor, layers: list[str]):
    return full_jacobian(model, x, target=target, layers=_capture_layers(model, layers), create_graph=True,
                         strict=False, batch_statistics=True)


@register_objective("bias_jacobian")
class BiasJacobianObjective(nn.Module):
    r"""Cross-entropy plus the bias-Jacobian norm of chosen layers.

    Returns the raw terms ``{"ce": CE, "bias_jacobian": ‖f^b(x)‖²}``, and
    :attr:`weights` ``{"bias_jacobian": λ}`` for the trainer to apply; the penalty
    (:class:`~latentgraph.losses.jacobian.BiasJacobianPenalty`) is taken for
    the output of the correct class (the paper's cheap approximation).

    Args:
        layers (list of str): bias layers to penalize (e.g. ``["block3.0",
            "block3.1"]``, a convolution and its BatchNorm).
        weight (float): :math:`\lambda`. The paper's grid search chose
            :math:`10^2` on CIFAR-100 with an unstated reduction; this
            penalty averages over the batch and sums over positions and
            channels. (default: :obj:`1.0`)

    Example:
        >>> from latentgraph.models import SmallCNN
        >>> objective = BiasJacobianObjective(["block3.1"])
        >>> terms = objective(SmallCNN(width=4), (torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])))
        >>> sorted(terms)
        ['bias_jacobian', 'ce']
    """

    #: term → the constructor option that sets its weight (a config may not also set it in method.weights)
    weight_options = {"bias_jacobian": "weight"}

    def __init__(self, layers: Sequence[str], weight: float = 1.0) -> None:
        super().__init__()
        if isinstance(layers, str):
            layers = [layers]
        if not layers:
            raise ValueError("`layers` must name at least one bias layer")
        self.layers = list(layers)
        self.weights = {"bias_jacobian": check_number(weight, "weight")}
        self.penalty = BiasJacobianPenalty()

    def forward(self, model: nn.Module, batch: Sequence[Tensor]) -> dict[str, Tensor]:
        x, y = batch[0], batch[1]
        fj = _student_jacobian(model, x, y, self.layers)
        return {"ce": F.cross_entropy(fj.logits, y), "bias_jacobian": self.penalty(fj)}

    def extra_repr(self) -> str:
        return f"layers={self.layers}, weight={self.weights['bias_jacobian']:g}"


#: The rows of the paper's Table 2: method → matched terms (CE is always there).
METHODS: dict[str, tuple[str, ...]] = {
    "ce": (),
    "activation": ("output",),
    "input_jacobian": ("output", "input_jacobian"),
    "attention": ("output", "attention"),
    "input_jacobian+attention": ("output", "input_jacobian", "attention"),
    "full_jacobian": ("output", "input_jacobian", "bias_jacobian"),
    "full_jacobian+attention": ("output", "input_jacobian", "bias_jacobian", "attention"),
}


@register_objective("jacobian_distill")
class JacobianDistillationObjective(FrozenTeacherObjective):
    r"""Distillation by matching outputs, input-Jacobians, bias-Jacobians and attention.

    Returns the raw terms ``{"ce": CE, term: L_term, ...}`` (their
    :math:`\lambda_{term}` in :attr:`weights`, applied by the trainer) for the terms of
    ``method`` (see :data:`METHODS`, the rows of the paper's Table 2):
    ``output`` (squared error between logits, Ba & Caruana), ``input_jacobian``
    and ``bias_jacobian`` (the three terms of
    :class:`~latentgraph.losses.jacobian.FullJacobianMatchingLoss`, Jacobians of
    the correct class's output) and ``attention``
    (:class:`~latentgraph.losses.baselines.AttentionTransferLoss` on
    ``attention_layers``). The teacher is frozen, kept in eval mode and not a
    sub-module (:class:`~latentgraph.train.objectives.teacher.FrozenTeacherObjective`,
    as in the ``distill`` objective).

    Memory: the Jacobian methods keep the double-backward graph of the
    student until the step, about twice a plain step's activations.

    Args:
        teacher (nn.Module): the trained teacher (in eval mode it must be one the
            decomposition covers).
        method (str): a key of :data:`METHODS`. (default: :obj:`"full_jacobian+attention"`)
        layers: bias layers whose channel-summed bias-Jacobians are matched —
            names present in both networks, a dict student→teacher or a list of
            pairs, with equal spatial sizes. Needed for ``full_jacobian*``.
        attention_layers: layers for attention transfer, in the same forms.
            Needed for ``*attention``.
        output_weight (float): :math:`\lambda` of the output term. (default: :obj:`1.0`)
        input_weight (float): of the input-Jacobian term. (default: :obj:`1.0`)
        bias_weight (float): of the bias-Jacobian term. (default: :obj:`1.0`)
        attention_weight (float): of attention transfer; 1000 is Zagoruyko &
            Komodakis' β (on 2×2 maps of 8×8 digits it swamps CE; 100 worked
            there, see docs/full-jacobian.md). (default: :obj:`1000.0`)
        normalize (bool): compare unit-norm Jacobians. (default: :obj:`False`)

    Example:
        >>> from latentgraph.models import SmallCNN
        >>> teacher, student = SmallCNN(width=8).eval(), SmallCNN(width=4)
        >>> objective = JacobianDistillationObjective(
        ...     teacher, layers=["block2.1"], attention_layers=["block2"])
        >>> terms = objective(student, (torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])))
        >>> sorted(terms)
        ['attention', 'bias_jacobian', 'ce', 'input_jacobian', 'output']
    """

    #: term → the constructor option that sets its weight (a config may not also set it in method.weights)
    weight_options = {"output": "output_weight", "input_jacobian": "input_weight",
                      "bias_jacobian": "bias_weight", "attention": "attention_weight"}

    def __init__(self, teacher: nn.Module, method: str = "full_jacobian+attention", layers: object = None,
                 attention_layers: object = None, output_weight: float = 1.0, input_weight: float = 1.0,
                 bias_weight: float = 1.0, attention_weight: float = 1000.0, normalize: bool = False) -> None:
        normalize = check_flag(normalize, "normalize")
        super().__init__(teacher)
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; available: {', '.join(METHODS)}")
        self.method, self.terms = method, METHODS[method]
        given = {"output": check_number(output_weight, "output_weight"),
                 "input_jacobian": check_number(input_weight, "input_weight"),
                 "bias_jacobian": check_number(bias_weight, "bias_weight"),
                 "attention": check_number(attention_weight, "attention_weight")}
        self.weights = {term: given[term] for term in self.terms}
        for term, value, name in (("bias_jacobian", layers, "layers"),
                                  ("attention", attention_layers, "attention_layers")):
            if term in self.terms and value is None:
                raise ValueError(f"method {method!r} matches {term.replace('_', '-')} maps: give `{name}`")
        self.pairs = layer_name_pairs(layers, "layers") if "bias_jacobian" in self.terms else []
        self.attention_pairs = (layer_name_pairs(attention_layers, "attention_layers")
                                if "attention" in self.terms else [])
        self.matching = FullJacobianMatchingLoss([s for s, _ in self.pairs], [t for _, t in self.pairs],
                                                 normalize=normalize)
        self.attention = AttentionTransferLoss()

    def forward(self, model: nn.Module, batch: Sequence[Tensor]) -> dict[str, Tensor]:
        x, y = batch[0], batch[1]
        teacher = self.frozen_teacher(x.device)
        jacobians = "input_jacobian" in self.terms
        s_att, t_att = [s for s, _ in self.attention_pairs], [t for _, t in self.attention_pairs]
        with capture(model, s_att) as s_acts:
            student = (_student_jacobian(model, x, y, self.matching.student_layers)
                       if jacobians else None)
            logits = student.logits if jacobians else model(x)
        terms = {"ce": F.cross_entropy(logits, y)}
        if not self.terms:
            return terms
        with capture(teacher, t_att, detach=True) as t_acts:
            if jacobians:
                t_fj = full_jacobian(teacher, x, target=y,
                                     layers=_capture_layers(teacher, self.matching.teacher_layers))
                t_logits = t_fj.logits
            else:
                with torch.no_grad():
                    t_logits = teacher(x)
        if jacobians:
            matched = self.matching.terms(student, t_fj)
        else:
            matched = {"output": (logits - t_logits).pow(2).sum(1).mean()}
        if "attention" in self.terms:
            matched["attention"] = self.attention([s_acts[n] for n in s_att], [t_acts[n] for n in t_att])
        terms.update({name: matched[name] for name in self.terms})
        return terms

    def extra_repr(self) -> str:
        return f"method={self.method!r}, pairs={self.pairs}, attention_pairs={self.attention_pairs}"
