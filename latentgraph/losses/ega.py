r"""Embedding Graph Alignment (Ma, Chen & Akata, BMVC 2022)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentgraph.graphs.similarity import similarity_matrix
from latentgraph.losses.registry import register_loss
from latentgraph.validation import check_features, check_labels, check_same_batch


def _check_dim(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be None or a positive int, got {value!r}")
    return value


@register_loss("ega", inputs="embedding", weight=1.0, relational=True, widths=True)  # Ma et al.: λ_EGA = 1
class EGALoss(nn.Module):
    r"""Embedding Graph Alignment loss (Ma, Chen & Akata, 2022).

    Teacher and student embeddings :math:`X_t, X_s` (:math:`B \times D`,
    optionally after linear projection heads to a shared dimension) are the
    nodes of two graphs whose edges are row-wise Pearson correlations,
    :math:`E(X, Y)_{ij} = \operatorname{corr}(x_i, y_j)`. With the edge
    matrices :math:`E_t = E(X_t, X_t)`, :math:`E_s = E(X_s, X_s)` and the node
    matrix :math:`N = E(X_t, X_s)` (teacher rows, student columns),

    .. math::
        \mathcal{L}_{EGA} = w_{node} \lVert N - I \rVert_F
        + w_{edge} \lVert E_t - E_s \rVert_F

    with plain (not squared) Frobenius norms, as in the reference code
    (github.com/yccm/EGA, ``distiller_zoo/EGA.py``). The correlations come from :func:`latentgraph.similarity_matrix` with
    ``"pearson"`` on the stacked batch :math:`[X_t; X_s]`; a constant row has
    correlation 0 with everything.

    **Head wiring, as in the official code** (``helper/loops.py``): with
    projection heads, the alignment sees the teacher's projection as a
    constant — the official script discards the alignment's gradient on the
    teacher head (``optimizer_t.zero_grad()`` after ``loss.backward()``) and
    trains that head only through its own linear classifier's cross-entropy,
    which :meth:`teacher_head_loss` returns (give ``num_classes``). The
    student head is trained by the alignment. The loss's defaults (node 1,
    edge 0.3) are those of the ``EGA`` class; the official training script
    ``train_student.py`` passes node 0.8, edge 0.24 (its defaults, used by
    ``scripts/run_vit32.sh``) with :math:`\lambda_{EGA} = 1`.

    Args:
        node_weight (float): :math:`w_{node}`. (default: :obj:`1.0`)
        edge_weight (float): :math:`w_{edge}` (the paper's :math:`\lambda`).
            (default: :obj:`0.3`)
        proj_dim (int, optional): when set, ``nn.Linear`` heads map the
            student (``student_dim`` wide) and the teacher (``teacher_dim``
            wide) to ``proj_dim`` before the graphs are built; the heads are
            parameters of this module and must be optimized with the student.
            ``None`` uses the embeddings as they are, which then must have the
            same width. (default: :obj:`None`)
        student_dim (int, optional): student width, required with ``proj_dim``.
        teacher_dim (int, optional): teacher width, required with ``proj_dim``.
        num_classes (int, optional): with ``proj_dim``, adds the teacher
            head's classifier ``nn.Linear(proj_dim, num_classes)`` that
            :meth:`teacher_head_loss` trains; without it the teacher head
            keeps its initialization. (default: :obj:`None`)

    Example:
        >>> x = torch.randn(6, 5)
        >>> same = EGALoss()(x, x)   # E_t = E_s: only the node term is left
        >>> abs(float(same - torch.linalg.norm(similarity_matrix(x, "pearson") - torch.eye(6)))) < 1e-5
        True
        >>> ega = EGALoss(proj_dim=8, student_dim=5, teacher_dim=12, num_classes=3)
        >>> t = torch.randn(6, 12)
        >>> ega(x, t).shape, ega.teacher_head_loss(t, torch.tensor([0, 1, 2, 0, 1, 2])).shape
        (torch.Size([]), torch.Size([]))
    """

    def __init__(
        self,
        node_weight: float = 1.0,
        edge_weight: float = 0.3,
        proj_dim: int | None = None,
        student_dim: int | None = None,
        teacher_dim: int | None = None,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("node_weight", node_weight), ("edge_weight", edge_weight)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"`{name}` must be a non-negative number, got {value!r}")
        self.node_weight = float(node_weight)
        self.edge_weight = float(edge_weight)
        self.proj_dim = _check_dim(proj_dim, "proj_dim")
        student_dim = _check_dim(student_dim, "student_dim")
        teacher_dim = _check_dim(teacher_dim, "teacher_dim")
        self.student_head: nn.Module = nn.Identity()
        self.teacher_head: nn.Module = nn.Identity()
        if self.proj_dim is not None:
            if student_dim is None or teacher_dim is None:
                raise ValueError("EGALoss with `proj_dim` needs `student_dim` and `teacher_dim` (the input widths)")
            self.student_head = nn.Linear(student_dim, self.proj_dim)
            self.teacher_head = nn.Linear(teacher_dim, self.proj_dim)
        self.num_classes = _check_dim(num_classes, "num_classes")
        self.teacher_classifier: nn.Module | None = None
        if self.num_classes is not None:
            if self.proj_dim is None:
                raise ValueError("EGALoss `num_classes` trains the teacher head: it needs `proj_dim`")
            self.teacher_classifier = nn.Linear(self.proj_dim, self.num_classes)
        self.student_dim, self.teacher_dim = student_dim, teacher_dim

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        s = check_features(student, "student")
        t = check_features(teacher, "teacher")
        check_same_batch(s, t, ("student", "teacher"))
        if self.proj_dim is None:
            if s.shape[1] != t.shape[1]:
                raise ValueError(
                    f"`student` and `teacher` widths differ ({s.shape[1]} vs {t.shape[1]}); "
                    "EGALoss without projection heads needs equal widths — pass proj_dim, student_dim "
                    "and teacher_dim"
                )
        else:
            for name, x, dim in (("student", s, self.student_dim), ("teacher", t, self.teacher_dim)):
                if x.shape[1] != dim:
                    raise ValueError(f"`{name}` has width {x.shape[1]} but the head expects {name}_dim={dim}")
            s, t = self.student_head(s), self.teacher_head(t).detach()  # the alignment never trains it
        num = s.shape[0]
        corr = similarity_matrix(torch.cat([t, s]), "pearson")
        edge_t, edge_s, node = corr[:num, :num], corr[num:, num:], corr[:num, num:]
        eye = torch.eye(num, dtype=corr.dtype, device=corr.device)
        return self.node_weight * torch.linalg.norm(node - eye) + self.edge_weight * torch.linalg.norm(
            edge_t - edge_s
        )

    def teacher_head_loss(self, teacher: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy of the teacher head's classifier on ``teacher`` (the
        head's only training signal, as in the official code)."""
        if self.teacher_classifier is None:
            raise ValueError("EGALoss.teacher_head_loss needs `num_classes` (and `proj_dim`)")
        t = check_features(teacher, "teacher")
        if t.shape[1] != self.teacher_dim:
            raise ValueError(f"`teacher` has width {t.shape[1]} but the head expects teacher_dim={self.teacher_dim}")
        y = check_labels(y, t.shape[0], t.device)
        return F.cross_entropy(self.teacher_classifier(self.teacher_head(t)), y)

    def auxiliary_terms(self, student: Tensor, teacher: Tensor, y: Tensor) -> dict[str, Tensor]:
        """``{"teacher_ce": teacher_head_loss(teacher, y)}`` when the teacher head has its classifier
        (``num_classes``), else nothing: the extra term the objective adds as ``"ega_teacher_ce"``."""
        return {} if self.teacher_classifier is None else {"teacher_ce": self.teacher_head_loss(teacher, y)}

    def extra_repr(self) -> str:
        return (
            f"node_weight={self.node_weight}, edge_weight={self.edge_weight}, proj_dim={self.proj_dim}, "
            f"student_dim={self.student_dim}, teacher_dim={self.teacher_dim}, num_classes={self.num_classes}"
        )
