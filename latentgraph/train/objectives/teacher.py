"""What every objective that learns from a frozen teacher shares: :class:`FrozenTeacherObjective`."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from latentgraph.device import model_device
from latentgraph.eval.accuracy import eval_mode


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


class FrozenTeacherObjective(nn.Module):
    """Base of the objectives that learn from a trained teacher (``distill``, ``jacobian_distill``).

    The teacher is frozen (``requires_grad=False``) and kept in eval mode
    whatever happens to the objective: ``objective.train()``, the trainer's
    ``model.train()`` or a user's ``teacher.train()`` are undone at the next
    :meth:`frozen_teacher`. It is *not* a registered sub-module, so
    ``objective.parameters()`` and ``state_dict()`` hold only the trainable
    parts (projection heads), and it follows the batch to its device.
    :meth:`metrics` reports the teacher–student decision agreement, which the
    :class:`~latentgraph.train.Trainer` logs as ``eval/agreement``.

    Args:
        teacher (nn.Module): the trained teacher.

    Example:
        >>> teacher = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
        >>> objective = FrozenTeacherObjective(teacher).train()
        >>> teacher.training, list(objective.parameters()), teacher[0].weight.requires_grad
        (False, [], False)
    """

    def __init__(self, teacher: nn.Module) -> None:
        super().__init__()
        if not isinstance(teacher, nn.Module):
            raise TypeError(f"`teacher` must be a torch.nn.Module, got {type(teacher).__name__}")
        teacher.eval()
        teacher.requires_grad_(False)
        self.__dict__["teacher"] = teacher  # not a sub-module: never trained, saved or switched to train mode

    def train(self, mode: bool = True) -> FrozenTeacherObjective:
        """Switch the trainable parts only; the teacher stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    def frozen_teacher(self, device: torch.device) -> nn.Module:
        """The teacher, in eval mode and on ``device`` (moved there once, at the first batch)."""
        teacher = self.teacher
        if any(m.training for m in teacher.modules()):
            teacher.eval()
        if next(teacher.parameters(), torch.empty(0, device=device)).device != device:
            teacher.to(device)
        return teacher

    def metrics(self, model: nn.Module, loader: Any) -> dict[str, float]:
        """``{"agreement": …}``: teacher–student decision agreement on ``loader``
        (:func:`teacher_agreement`); the trainer logs it as ``eval/agreement``."""
        return {"agreement": teacher_agreement(model, self.teacher, loader)}
