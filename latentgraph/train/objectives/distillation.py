r"""Knowledge distillation from a frozen teacher: ``CE + Σ λ_i L_i``."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Dict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentgraph.capture import capture
from latentgraph.device import model_device
from latentgraph.eval.accuracy import eval_mode
from latentgraph.losses.baselines import (
    AttentionTransferLoss,
    KDLoss,
    PKTLoss,
    RKDLoss,
    SimilarityPreservingLoss,
)
from latentgraph.losses.ega import EGALoss
from latentgraph.losses.gkd import GKDLoss
from latentgraph.train.distributed import GATHER_MODES, gather_features, get_rank

from .registry import register_objective

# name → (loss class, what it compares, default λ from the method's paper / reference code)
#   "logits": the two networks' outputs; "layers": the matched layers (a list);
#   "embedding": exactly one matched layer pair (flattened).
METHODS: Dict[str, tuple[type, str, float]] = {
    "kd": (KDLoss, "logits", 1.0),  # Hinton et al.: T² KL, weight 1 next to CE (RepDistiller's -b 0.9 ~ 1)
    "gkd": (GKDLoss, "layers", 25.0),  # Lassance et al.: λ = 25, mean over 3 layers
    "rkd": (RKDLoss, "layers", 1.0),  # Park et al.: the 25 / 50 weights live inside RKDLoss
    "at": (AttentionTransferLoss, "layers", 1000.0),  # Zagoruyko & Komodakis: β = 1000
    "sp": (SimilarityPreservingLoss, "layers", 3000.0),  # Tung & Mori: γ = 3000
    "pkt": (PKTLoss, "embedding", 30000.0),  # RepDistiller's PKT weight
    "ega": (EGALoss, "embedding", 1.0),  # Ma et al.: λ_EGA = 1
}
_RELATIONAL = {"gkd", "rkd", "sp", "pkt", "ega"}
_NEEDS_LABELS = {"gkd"}


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


@torch.no_grad()
def teacher_agreement(student: nn.Module, teacher: nn.Module, loader: Any) -> float:
    """Fraction of samples on which ``student`` and ``teacher`` predict the same class.

    Both networks are evaluated in eval mode on ``loader``'s inputs (batches
    ``(x, y, ...)``); the train/eval flag of each of their sub-modules is
    restored afterwards.

    Example:
        >>> net = nn.Linear(3, 2)
        >>> teacher_agreement(net, net, [(torch.rand(5, 3), torch.zeros(5))])
        1.0
    """
    same = total = 0
    device = model_device(student)
    with eval_mode(student), eval_mode(teacher):
        for batch in loader:
            x = batch[0].to(device)
            same += int((student(x).argmax(1) == teacher(x).argmax(1)).sum())
            total += x.shape[0]
    if total == 0:
        raise ValueError("`loader` yielded no samples")
    return same / total


@register_objective("distill")
class DistillationObjective(nn.Module):
    r"""Distil a frozen teacher into the trained model: ``CE + Σ_i λ_i L_i``.

    Returns the terms ``{"ce": CE, name_i: λ_i · L_i, ...}``; with the
    trainer's default weights of 1 their sum is the full loss. Layers are
    captured by module name with :func:`latentgraph.capture` on the student
    (with gradient) and on the teacher (without).

    The teacher is frozen (``requires_grad=False``) and kept in eval mode
    whatever the trainer does (``objective.train()`` and the trainer's
    ``model.train()`` never reach it). It is *not* a registered sub-module:
    ``objective.parameters()`` and ``state_dict()`` hold only trainable
    parts (EGA's projection heads), which must be given to the optimizer
    along with the student's parameters.

    :meth:`metrics` reports the teacher–student decision agreement, which the
    :class:`~latentgraph.train.Trainer` logs as ``eval/agreement``.

    Methods (``losses`` keys) and their default :math:`\lambda` (the
    authors' settings): ``"kd"`` (:class:`~latentgraph.losses.KDLoss`, 1),
    ``"gkd"`` (:class:`~latentgraph.losses.GKDLoss`, 25), ``"rkd"``
    (:class:`~latentgraph.losses.RKDLoss`, 1 — its 25/50 weights are
    inside), ``"at"`` (:class:`~latentgraph.losses.AttentionTransferLoss`,
    1000), ``"sp"`` (3000), ``"pkt"`` (30000, one layer pair) and ``"ega"``
    (:class:`~latentgraph.losses.EGALoss`, 1, one layer pair, with linear
    heads to ``proj_dim`` dimensions; as in the official code the teacher
    head is trained only by its own classifier's cross-entropy, returned as
    the extra term ``"ega_teacher_ce"`` with weight 1).

    Args:
        teacher (nn.Module): the trained teacher.
        losses (dict): method name → options, e.g.
            ``{"gkd": {"weight": 25, "k": None}, "kd": {}}``. The options
            ``weight`` (:math:`\lambda`) and ``layers`` (this term's layer
            pairs, overriding ``layers``) are the objective's; every other key
            goes to the loss. (default: ``{"gkd": {}}``)
        layers: matched layers — a list of names present in both networks,
            a dict ``{student_name: teacher_name}`` or a list of pairs.
            Required unless every method is ``"kd"``.
        gather (str): ``"none"``, ``"nograd"`` or ``"grad"``: under
            ``torchrun``, relational losses see the batch of all ranks
            (:func:`~latentgraph.train.distributed.gather_features`, rank
            order); the teacher is always gathered without gradient, the
            student with gradient through all ranks (``"grad"``: with the
            trainer's gradient averaging, equal to one process on the whole
            batch) or only through its own slice (``"nograd"``: the averaged
            gradient is that of the whole batch divided by the number of
            ranks). (default: :obj:`"none"`)
        proj_dim (int, optional): EGA's shared embedding dimension;
            ``None`` compares the raw embeddings. (default: :obj:`256`)
        student (nn.Module, optional) and example_input (Tensor, optional):
            used once to read the layer widths EGA's heads need (else give
            ``student_dim``/``teacher_dim`` in EGA's options).

    Example:
        >>> from latentgraph.models import SmallCNN
        >>> teacher, student = SmallCNN(width=8), SmallCNN(width=4)
        >>> objective = DistillationObjective(teacher, {"gkd": {}, "kd": {}}, layers=["block2", "block3"])
        >>> x, y = torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
        >>> sorted(objective(student, (x, y)))
        ['ce', 'gkd', 'kd']
    """

    def __init__(
        self,
        teacher: nn.Module,
        losses: Mapping[str, Mapping[str, Any] | None] | None = None,
        layers: object = None,
        gather: str = "none",
        proj_dim: int | None = 256,
        student: nn.Module | None = None,
        example_input: Tensor | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(teacher, nn.Module):
            raise TypeError(f"`teacher` must be a torch.nn.Module, got {type(teacher).__name__}")
        if gather not in GATHER_MODES:
            raise ValueError(f"`gather` must be one of {', '.join(map(repr, GATHER_MODES))}; got {gather!r}")
        losses = {"gkd": {}} if losses is None else losses
        if not isinstance(losses, Mapping) or not losses:
            raise ValueError("`losses` must be a non-empty dict: method name → options")
        teacher.eval()
        teacher.requires_grad_(False)
        self.__dict__["teacher"] = teacher  # not a sub-module: never trained, saved or switched to train mode
        self.gather = gather
        self.criteria = nn.ModuleDict()
        self.weights: Dict[str, float] = {}
        self.pairs: Dict[str, list[tuple[str, str]]] = {}
        default_pairs = None if layers is None else layer_name_pairs(layers, "layers")
        for name, options in losses.items():
            if name not in METHODS:
                raise ValueError(f"unknown distillation method {name!r}; available: {', '.join(METHODS)}")
            options = dict(options or {})
            cls, kind, default_weight = METHODS[name]
            weight = options.pop("weight", default_weight)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
                raise ValueError(f"`losses.{name}.weight` must be a non-negative number, got {weight!r}")
            self.weights[name] = float(weight)
            if kind != "logits":
                pairs = layer_name_pairs(options.pop("layers"), f"losses.{name}.layers") if "layers" in options else default_pairs
                if pairs is None:
                    raise ValueError(f"method {name!r} compares layers: give `layers` (or `losses.{name}.layers`)")
                if kind == "embedding" and len(pairs) != 1:
                    raise ValueError(f"method {name!r} compares one layer pair (an embedding), got {len(pairs)}")
                self.pairs[name] = pairs
            if name == "ega":
                options = self._ega_options(options, proj_dim, self.pairs[name][0], student, example_input)
            try:
                self.criteria[name] = cls(**options)
            except TypeError as err:
                raise ValueError(f"bad options for method {name!r}: {err}") from None
        self.student_layers = sorted({s for pairs in self.pairs.values() for s, _ in pairs})
        self.teacher_layers = sorted({t for pairs in self.pairs.values() for _, t in pairs})
        with capture(teacher, self.teacher_layers):  # fails early, naming a layer the teacher lacks
            pass

    def _ega_options(self, options, proj_dim, pair, student, example_input) -> dict:
        options.setdefault("proj_dim", proj_dim)
        if options["proj_dim"] is None or {"student_dim", "teacher_dim", "num_classes"} <= options.keys():
            return options
        if student is None or example_input is None:
            raise ValueError(
                "EGA's projection heads need the layer widths and the teacher head's classes: pass `student` "
                "and `example_input`, or `student_dim`, `teacher_dim` and `num_classes` in the EGA options"
            )
        with eval_mode(student):
            options.setdefault("student_dim", _features_width(student, pair[0], example_input))
        options.setdefault("teacher_dim", _features_width(self.teacher, pair[1], example_input))
        with torch.no_grad():
            options.setdefault("num_classes", self.teacher(example_input).shape[1])
        return options

    def train(self, mode: bool = True) -> "DistillationObjective":
        """Switch the trainable parts (EGA heads) only; the teacher stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    def _gather_student(self, x: Tensor) -> Tensor:
        if self.gather == "grad":
            return gather_features(x, "grad")
        ranks = gather_features(torch.full((x.shape[0],), get_rank(), device=x.device), "nograd")
        full = gather_features(x, "nograd")
        start = int((ranks < get_rank()).sum())
        return torch.cat([full[:start], x, full[start + x.shape[0]:]])

    def forward(self, model: nn.Module, batch: Sequence[Tensor]) -> Dict[str, Tensor]:
        x, y = batch[0], batch[1]
        teacher = self.teacher
        if teacher.training:
            teacher.eval()
        device = x.device
        if next(teacher.parameters(), torch.empty(0, device=device)).device != device:
            teacher.to(device)
        if any(p.device != device for p in self.parameters()):
            self.to(device)
        with capture(model, self.student_layers) as s_acts:
            logits = model(x)
        with torch.no_grad(), capture(teacher, self.teacher_layers, detach=True) as t_acts:
            t_logits = teacher(x)
        terms = {"ce": F.cross_entropy(logits, y)}
        relational = self.gather != "none"
        y_all = gather_features(y, "nograd") if relational else y
        for name, criterion in self.criteria.items():
            kind = METHODS[name][1]
            if kind == "logits":
                value = criterion(logits, t_logits)
            else:
                student_feats = [s_acts[s] for s, _ in self.pairs[name]]
                teacher_feats = [t_acts[t] for _, t in self.pairs[name]]
                if relational and name in _RELATIONAL:
                    student_feats = [self._gather_student(f) for f in student_feats]
                    teacher_feats = [gather_features(f, "nograd") for f in teacher_feats]
                if kind == "embedding":
                    value = criterion(student_feats[0].flatten(1), teacher_feats[0].flatten(1))
                elif name in _NEEDS_LABELS:
                    value = criterion(student_feats, teacher_feats, y_all)
                else:
                    value = criterion(student_feats, teacher_feats)
            terms[name] = self.weights[name] * value
            if name == "ega" and criterion.teacher_classifier is not None:  # official wiring, weight 1
                terms["ega_teacher_ce"] = criterion.teacher_head_loss(teacher_feats[0].flatten(1), y_all)
        return terms

    def metrics(self, model: nn.Module, loader: Any) -> Dict[str, float]:
        """``{"agreement": …}``: teacher–student decision agreement on ``loader``
        (:func:`teacher_agreement`); the trainer logs it as ``eval/agreement``."""
        return {"agreement": teacher_agreement(model, self.teacher, loader)}

    def extra_repr(self) -> str:
        weights = ", ".join(f"{name}={w:g}" for name, w in self.weights.items())
        return f"weights=({weights}), pairs={self.pairs}, gather={self.gather!r}"
