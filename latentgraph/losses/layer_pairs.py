"""Pairing student and teacher layers for relational distillation losses.

Every relational loss takes ``(student, teacher)`` as either two tensors (one
layer each) or two equally long lists of tensors (one per matched layer pair).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from latentgraph.validation import check_features, check_same_batch

Layers = Tensor | Sequence[Tensor]


def layer_pairs(student: Layers, teacher: Layers, flatten: bool = True) -> list[tuple[Tensor, Tensor]]:
    r"""Validate matched layers and return them as ``[(student_i, teacher_i), ...]``.

    Each layer must be a finite floating-point batch of shape ``B×…`` and the
    two members of a pair must have the same batch size and device. With
    ``flatten=True`` every layer is returned as :math:`B \times D`; otherwise
    its shape is kept.

    Every layer is returned :func:`scale_free`: in float32 (or wider) and divided
    by its largest absolute entry. The relational losses built on these pairs
    (GKD, RKD, SP, PKT, attention transfer) are invariant to a positive rescaling
    of a layer, so values and gradients are unchanged, but squared distances and
    Gram matrices can no longer overflow (features of 1e19) or underflow
    (float16).

    Example:
        >>> import torch
        >>> pairs = layer_pairs(torch.rand(4, 2, 3), torch.rand(4, 5))
        >>> [(s.shape, t.shape) for s, t in pairs]
        [(torch.Size([4, 6]), torch.Size([4, 5]))]
    """
    single = isinstance(student, Tensor), isinstance(teacher, Tensor)
    if single[0] != single[1]:
        raise TypeError(
            "`student` and `teacher` must both be tensors or both be lists of tensors, "
            f"got {type(student).__name__} and {type(teacher).__name__}"
        )
    if single[0]:
        student, teacher = [student], [teacher]
    for name, layers in (("student", student), ("teacher", teacher)):
        if not isinstance(layers, Sequence) or isinstance(layers, str):
            raise TypeError(f"`{name}` must be a tensor or a list of tensors, got {type(layers).__name__}")
    if len(student) != len(teacher):
        raise ValueError(
            f"`student` and `teacher` must hold the same number of layers, got {len(student)} and {len(teacher)}"
        )
    if len(student) == 0:
        raise ValueError("`student` and `teacher` must hold at least one layer each")
    pairs = []
    for i, (s, t) in enumerate(zip(student, teacher)):
        names = (f"student[{i}]", f"teacher[{i}]") if not single[0] else ("student", "teacher")
        s_flat, t_flat = check_features(s, names[0]), check_features(t, names[1])
        check_same_batch(s_flat, t_flat, names)
        pairs.append((scale_free(s_flat), scale_free(t_flat)) if flatten else (scale_free(s), scale_free(t)))
    return pairs


def scale_free(x: Tensor) -> Tensor:
    """``x`` in float32 (or its wider float dtype) divided by its largest absolute entry,
    a constant without gradient (an all-zero ``x`` is returned as is).

    A loss :math:`L` with :math:`L(cx) = L(x)` for every :math:`c > 0` gives the same
    value and gradient on ``scale_free(x)`` as on ``x``, without overflow or underflow.

    Example:
        >>> import torch
        >>> scale_free(torch.tensor([[2e19, -4e19]], dtype=torch.float32))
        tensor([[ 0.5000, -1.0000]])
    """
    x = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    largest = x.detach().abs().amax()
    return x / torch.where(largest > 0, largest, torch.ones_like(largest))  # no host sync on the hot path


def result_dtype(student: Layers) -> torch.dtype:
    """The dtype a relational loss returns: that of its (first) student layer, so a
    float16 batch gets a float16 loss although :func:`scale_free` computed it in float32.

    Example:
        >>> import torch
        >>> result_dtype([torch.rand(2, 3).half(), torch.rand(2, 4)])
        torch.float16
    """
    return (student if isinstance(student, Tensor) else student[0]).dtype

