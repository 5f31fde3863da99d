r"""Parseval networks as a training objective (``"parseval"``, Cisse et al., 2017), the
baseline of the Laplacian regularizer; the penalty and retraction are in
:mod:`latentgraph.losses.parseval`.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from latentgraph.losses.parseval import ParsevalPenalty, parseval_retraction_
from latentgraph.train.objectives.registry import register_objective
from latentgraph.validation import check_number

__all__ = ["ParsevalObjective"]


@register_objective("parseval")
class ParsevalObjective:
    r"""Cross-entropy for a Parseval network (Cisse et al., 2017).

    Orthonormality of every weight of dimension ≥ 2 is kept by either or both of

    * ``retraction`` :math:`\beta > 0`: the step
      :math:`W \leftarrow (1 + \beta) W - \beta W W^\top W`
      (:func:`~latentgraph.losses.parseval.parseval_retraction_`, official
      :math:`\beta = 0.01`), applied by :meth:`after_step`, which the trainer
      calls right after every optimizer step, as in Cisse et al. (2017);
    * ``penalty`` :math:`w > 0`: a term
      ``"parseval"`` :math:`= \sum_W \lVert W W^\top - I\rVert_F^2` of weight
      :math:`w` (in :attr:`weights`, applied by the trainer)
      (:class:`~latentgraph.losses.parseval.ParsevalPenalty`). For SGD with
      learning rate :math:`\eta`, a retraction :math:`\beta` equals a penalty
      :math:`w = \beta / (4\eta)`.

    Terms: ``"ce"`` and, when ``penalty > 0``, ``"parseval"``.

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(4, 3)
        >>> sorted(ParsevalObjective(penalty=0.1)(model, (torch.rand(5, 4), torch.tensor([0, 1, 2, 0, 1]))))
        ['ce', 'parseval']
    """

    #: term → the constructor option that sets its weight (a config may not also set it in method.weights)
    weight_options = {"parseval": "penalty"}

    def __init__(self, retraction: float = 0.01, penalty: float = 0.0) -> None:
        self.retraction = check_number(retraction, "retraction")
        if self.retraction > 1:
            raise ValueError(f"`retraction` must be in [0, 1], got {retraction}")
        self.penalty_weight = check_number(penalty, "penalty")
        self.penalty = ParsevalPenalty()
        self.weights = {"parseval": self.penalty_weight} if self.penalty_weight > 0 else {}

    def __call__(self, model: nn.Module, batch: Sequence[Tensor]) -> dict[str, Tensor]:
        x, y = batch[0], batch[1]
        terms = {"ce": F.cross_entropy(model(x), y)}
        if self.penalty_weight > 0:
            terms["parseval"] = self.penalty(model)
        return terms

    def after_step(self, model: nn.Module) -> None:
        """Retract the weights towards the Parseval manifold after an optimizer step."""
        if self.retraction > 0:
            parseval_retraction_(model, self.retraction)

    def __repr__(self) -> str:
        return f"ParsevalObjective(retraction={self.retraction}, penalty={self.penalty_weight})"
