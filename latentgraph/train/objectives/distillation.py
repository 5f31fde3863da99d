r"""Knowledge distillation from a frozen teacher: ``CE + Σ λ_i L_i``, each loss read from its
:class:`~latentgraph.losses.LossRecord` (:func:`~latentgraph.losses.register_loss`)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentgraph.capture import capture
from latentgraph.eval.accuracy import eval_mode
from latentgraph.losses.registry import AuxiliaryLoss, LossRecord, get_loss
from latentgraph.train.distributed import GATHER_MODES, gather_features, get_rank

from .registry import register_objective
from .teacher import FrozenTeacherObjective, teacher_agreement

__all__ = ["DistillationObjective", "layer_name_pairs", "teacher_agreement"]


def layer_name_pairs(layers: object, name: str) -> list[tuple[str, str]]:
    """``["a", "b"]`` (same names in both), ``{"s": "t"}`` or ``[["s", "t"], ...]`` → pairs."""
    if isinstance(layers, str):
        layers = [layers]
    if isinstance(layers, Mapping):
        pairs = list(layers.items())
    elif isinstance(layers, Sequence):
        pairs = [(item, item) if isinstance(item, str) else tuple(item) for item in layers]
    else:
        raise TypeError(f"`{name}` must be a list of layer names, a dict student→teacher or a list of pairs")
    for pair in pairs:
        if len(pair) != 2 or not all(isinstance(p, str) for p in pair):
            raise ValueError(f"`{name}`: each entry must be a layer name or a (student, teacher) pair, got {pair!r}")
    if not pairs:
        raise ValueError(f"`{name}` must name at least one layer")
    return pairs


def _features_width(model: nn.Module, layer: str, example: Tensor) -> int:
    with capture(model, [layer], detach=True) as acts, torch.no_grad():
        model(example)
    return acts[layer][0].numel()


@register_objective("distill")
class DistillationObjective(FrozenTeacherObjective):
    r"""Distil a frozen teacher into the trained model: ``CE + Σ_i λ_i L_i``.

    Returns the raw terms ``{"ce": CE, name_i: L_i, ...}``; :attr:`weights`
    holds each :math:`\lambda_i`, which the :class:`~latentgraph.train.Trainer`
    applies once (``Trainer(weights=)`` or a config's ``method.weights``
    override them). Layers are captured by module name with
    :func:`latentgraph.capture` on the student (with gradient) and on the
    teacher (without). The teacher is frozen, kept in eval mode and not a
    sub-module (:class:`~latentgraph.train.objectives.teacher.FrozenTeacherObjective`):
    ``objective.parameters()`` holds only trainable parts (EGA's projection
    heads), which the trainer optimizes along with the student.

    Each method is a registered loss: its :class:`~latentgraph.losses.LossRecord`
    says what it compares (logits, layer lists or one embedding pair), its
    default :math:`\lambda`, whether it is relational (gathered across ranks)
    and whether it takes the labels. Registered: ``"kd"``
    (:class:`~latentgraph.losses.KDLoss`, λ = 1), ``"gkd"``
    (:class:`~latentgraph.losses.GKDLoss`, 25), ``"rkd"``
    (:class:`~latentgraph.losses.RKDLoss`, 1 — its 25/50 weights are
    inside), ``"at"`` (:class:`~latentgraph.losses.AttentionTransferLoss`,
    1000), ``"sp"`` (3000), ``"pkt"`` (30000, one layer pair) and ``"ega"``
    (:class:`~latentgraph.losses.EGALoss`, 1, one layer pair; with
    ``proj_dim``, as in the official code the teacher head is trained only by
    its own classifier's cross-entropy, the extra term ``"ega_teacher_ce"``
    of weight 1); see :func:`latentgraph.losses.available_losses`.

    Args:
        teacher (nn.Module): the trained teacher.
        losses (dict): method name → options, e.g.
            ``{"gkd": {"weight": 25, "k": None}, "kd": {}}``. The options
            ``weight`` (:math:`\lambda`, default: the record's) and ``layers``
            (this term's layer pairs, overriding ``layers``) are the
            objective's; every other key goes to the loss (its options are
            the record's :attr:`~latentgraph.losses.LossRecord.options`).
            (default: ``{"gkd": {}}``)
        layers: matched layers — a list of names present in both networks,
            a dict ``{student_name: teacher_name}`` or a list of pairs.
            Required unless every method compares logits.
        gather (str): ``"none"``, ``"nograd"`` or ``"grad"``: under
            ``torchrun``, relational losses see the batch of all ranks
            (:func:`~latentgraph.train.distributed.gather_features`, rank
            order); the teacher is always gathered without gradient, the
            student with gradient through all ranks (``"grad"``: with the
            trainer's gradient averaging, equal to one process on the whole
            batch) or only through its own slice (``"nograd"``: the averaged
            gradient is that of the whole batch divided by the number of
            ranks). (default: :obj:`"none"`)
        proj_dim (int, optional): shortcut for EGA's ``proj_dim`` option
            (linear heads to a shared dimension); ``None`` leaves EGA's own
            default, :obj:`None`: no heads. (default: :obj:`None`)
        student (nn.Module, optional) and example_input (Tensor, optional):
            used once to read the layer widths that losses with projection
            heads need (else give ``student_dim``/``teacher_dim`` in their
            options).

    Example:
        >>> from latentgraph.models import SmallCNN
        >>> teacher, student = SmallCNN(width=8), SmallCNN(width=4)
        >>> objective = DistillationObjective(teacher, {"gkd": {}, "kd": {}}, layers=["block2", "block3"])
        >>> x, y = torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
        >>> sorted(objective(student, (x, y))), objective.weights
        (['ce', 'gkd', 'kd'], {'gkd': 25.0, 'kd': 1.0})
    """

    def __init__(
        self,
        teacher: nn.Module,
        losses: Mapping[str, Mapping[str, Any] | None] | None = None,
        layers: object = None,
        gather: str = "none",
        proj_dim: int | None = None,
        student: nn.Module | None = None,
        example_input: Tensor | None = None,
    ) -> None:
        super().__init__(teacher)
        if gather not in GATHER_MODES:
            raise ValueError(f"`gather` must be one of {', '.join(map(repr, GATHER_MODES))}; got {gather!r}")
        losses = {"gkd": {}} if losses is None else losses
        if not isinstance(losses, Mapping) or not losses:
            raise ValueError("`losses` must be a non-empty dict: method name → options")
        self.gather = gather
        self.criteria = nn.ModuleDict()
        self.records: dict[str, LossRecord] = {}
        #: λ of each term, applied by the trainer.
        self.weights: dict[str, float] = {}
        #: term → the option that set its λ explicitly (a config may not set it twice).
        self.weight_options: dict[str, str] = {}
        self.pairs: dict[str, list[tuple[str, str]]] = {}
        default_pairs = None if layers is None else layer_name_pairs(layers, "layers")
        for name, options in losses.items():
            record = get_loss(name)
            options = dict(options or {})
            if "weight" in options:
                self.weight_options[name] = f"losses.{name}.weight"
            weight = options.pop("weight", record.weight)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < math.inf:
                raise ValueError(f"`losses.{name}.weight` must be a finite number ≥ 0, got {weight!r}")
            self.weights[name] = float(weight)
            if record.inputs != "logits":
                pairs = layer_name_pairs(options.pop("layers"), f"losses.{name}.layers") if "layers" in options else default_pairs
                if pairs is None:
                    raise ValueError(f"method {name!r} compares layers: give `layers` (or `losses.{name}.layers`)")
                if record.inputs == "embedding" and len(pairs) != 1:
                    raise ValueError(f"method {name!r} compares one layer pair (an embedding), got {len(pairs)}")
                self.pairs[name] = pairs
            if "proj_dim" in record.options and proj_dim is not None:
                options.setdefault("proj_dim", proj_dim)
            if record.widths:
                options = self._widths(record, options, self.pairs[name][0], student, example_input)
            self.records[name] = record
            self.criteria[name] = record.build(options)
        self.student_layers = sorted({s for pairs in self.pairs.values() for s, _ in pairs})
        self.teacher_layers = sorted({t for pairs in self.pairs.values() for _, t in pairs})
        with capture(teacher, self.teacher_layers):  # fails early, naming a layer the teacher lacks
            pass

    def _widths(self, record: LossRecord, options: dict, pair: tuple[str, str], student: nn.Module | None,
                example_input: Tensor | None) -> dict:
        """Fill in ``student_dim`` / ``teacher_dim`` (and ``num_classes``, the teacher's output
        width, when the loss takes it) from one forward pass when its heads need them."""
        needed = {"student_dim", "teacher_dim"} | ({"num_classes"} & record.options.keys())
        if options.get("proj_dim") is None or needed <= options.keys():
            return options
        if student is None or example_input is None:
            raise ValueError(
                f"the projection heads of {record.name!r} need the layer widths: pass `student` and "
                f"`example_input`, or {', '.join(f'`{n}`' for n in sorted(needed))} in the {record.name!r} options"
            )
        with eval_mode(student):
            options.setdefault("student_dim", _features_width(student, pair[0], example_input))
        options.setdefault("teacher_dim", _features_width(self.teacher, pair[1], example_input))
        if "num_classes" in needed:
            with torch.no_grad():
                options.setdefault("num_classes", self.teacher(example_input).shape[1])
        return options

    def _gather_student(self, x: Tensor) -> Tensor:
        if self.gather == "grad":
            return gather_features(x, "grad")
        ranks = gather_features(torch.full((x.shape[0],), get_rank(), device=x.device), "nograd")
        full = gather_features(x, "nograd")
        start = int((ranks < get_rank()).sum())
        return torch.cat([full[:start], x, full[start + x.shape[0]:]])

    def forward(self, model: nn.Module, batch: Sequence[Tensor]) -> dict[str, Tensor]:
        x, y = batch[0], batch[1]
        teacher = self.frozen_teacher(x.device)
        own = next(self.parameters(), None)  # projection heads move as one, like the teacher
        if own is not None and own.device != x.device:
            self.to(x.device)
        with capture(model, self.student_layers) as s_acts:
            logits = model(x)
        with torch.no_grad(), capture(teacher, self.teacher_layers, detach=True) as t_acts:
            t_logits = teacher(x)
        terms = {"ce": F.cross_entropy(logits, y)}
        gathered = self.gather != "none"
        y_all = gather_features(y, "nograd") if gathered else y
        for name, criterion in self.criteria.items():
            record = self.records[name]
            if record.inputs == "logits":
                student_in, teacher_in = logits, t_logits
            else:
                student_in = [s_acts[s] for s, _ in self.pairs[name]]
                teacher_in = [t_acts[t] for _, t in self.pairs[name]]
                if gathered and record.relational:
                    student_in = [self._gather_student(f) for f in student_in]
                    teacher_in = [gather_features(f, "nograd") for f in teacher_in]
                if record.inputs == "embedding":
                    student_in, teacher_in = student_in[0].flatten(1), teacher_in[0].flatten(1)
            labels = y_all if gathered and record.relational else y
            terms[name] = criterion(student_in, teacher_in, *((labels,) if record.needs_labels else ()))
            if isinstance(criterion, AuxiliaryLoss):  # e.g. EGA's teacher-head cross-entropy, weight 1
                terms.update({f"{name}_{key}": value
                              for key, value in criterion.auxiliary_terms(student_in, teacher_in, labels).items()})
        return terms

    def extra_repr(self) -> str:
        weights = ", ".join(f"{name}={w:g}" for name, w in self.weights.items())
        return f"weights=({weights}), pairs={self.pairs}, gather={self.gather!r}"
