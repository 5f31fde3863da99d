r"""Objectives of Locally Isometric Layers: cross-entropy plus
:math:`\beta` times the isometry loss, for one block (``"isometric"``) or a
hierarchical stack (``"stacked_isometric"``). The objectives return the raw
terms; :math:`\beta` is in their :attr:`weights`, applied by the trainer.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from latentgraph.capture import capture
from latentgraph.losses.isometry import IsometryLoss
from latentgraph.validation import check_choice, check_number, check_tensor

from .interface import weighted_sum
from .registry import register_objective

__all__ = ["IsometricObjective", "StackedIsometricObjective"]


@register_objective("isometric")
class IsometricObjective:
    r"""Cross-entropy plus the isometry term on a captured representation.

    .. math::
        \mathcal{L} = \mathrm{CE}(f(x), y) + \beta\,\frac{1}{N^2}
        \left\lVert G \odot (K D_{\Phi}) - G \odot D_M \right\rVert_F^2,

    with :math:`D_M` the distances between the (flattened) inputs,
    :math:`D_\Phi` those between the outputs of the module named
    :obj:`layer` and :math:`G` the same-class indicator
    (see :class:`~latentgraph.losses.isometry.IsometryLoss`). Returns the
    raw terms ``{"ce": CE, "isometry": L_ISO}``; :attr:`weights` is
    ``{"isometry": β}``, which the trainer applies once (and logs the raw and
    the weighted value). The paper's MNIST sweep is
    :math:`\beta \in \{0, 0.001, 0.01, 0.1, 1, 10\}`; with :math:`\beta = 0`
    the term is still computed and logged but gives no gradient.

    Args:
        beta (float): weight :math:`\beta \ge 0` of the isometry term. (default: :obj:`1.0`)
        layer (str): name of the module whose output is :math:`\Phi(x)`;
            ``"lil"`` is the block of a
            :class:`~latentgraph.models.lil.LILClassifier`. (default: :obj:`"lil"`)
        scale (float): :math:`K`. (default: :obj:`1.0`)
        scope (str): ``"class"`` or ``"global"``. (default: :obj:`"class"`)

    Example:
        >>> import torch
        >>> from latentgraph.models.lil import LILClassifier
        >>> objective = IsometricObjective(beta=0.1)
        >>> model = LILClassifier(6, 3, hidden=(8, 8))
        >>> terms = objective(model, (torch.rand(5, 6), torch.tensor([0, 1, 2, 0, 1])))
        >>> sorted(terms)
        ['ce', 'isometry']
    """

    #: term → the constructor option that sets its weight (a config may not also set it in method.weights)
    weight_options = {"isometry": "beta"}

    def __init__(self, beta: float = 1.0, layer: str = "lil", scale: float = 1.0, scope: str = "class") -> None:
        self.beta = check_number(beta, "beta")
        self.weights = {"isometry": self.beta}
        if not isinstance(layer, str) or not layer:
            raise ValueError(f"`layer` must be a module name, got {layer!r}")
        self.layer = layer
        self.isometry = IsometryLoss(scale=scale, scope=scope)

    def __call__(self, model: nn.Module, batch: Sequence[Tensor]) -> dict[str, Tensor]:
        x, y = batch[0], batch[1]
        with capture(model, [self.layer]) as acts:
            logits = model(x)
        return {"ce": F.cross_entropy(logits, y), "isometry": self.isometry(x, acts[self.layer], y)}

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        r"""The weighted objective :math:`\mathrm{CE} + \beta L_{ISO}` as ``loss_fn(model, x, y)``,
        the loss the LIL authors attacked (for :func:`latentgraph.robustness.fgsm` / ``pgd``)."""
        return weighted_sum(self(model, (x, y)), self.weights)

    def __repr__(self) -> str:
        return (
            f"IsometricObjective(beta={self.beta}, layer={self.layer!r}, "
            f"scale={self.isometry.scale}, scope={self.isometry.scope!r})"
        )


@register_objective("stacked_isometric")
class StackedIsometricObjective:
    r"""Objective of a :class:`~latentgraph.models.lil.StackedLIL`: the sum
    over levels :math:`b` of :math:`\mathrm{CE}_b + \beta\,\mathcal{L}_{\mathrm{ISO},b}`,
    each level with its own labels.

    The batch is ``(x, labels)`` with ``labels`` of shape :math:`N \times L`,
    column :math:`b` the labels of level :math:`b` (as returned by
    :func:`~latentgraph.data.toy.noisy_torus`). Since the model detaches the
    input of every level after the first, summing the levels' losses trains
    each level on its own loss only. Level :math:`b`'s isometry compares its
    representation with the distances of ``reference``:

    - ``"level"``: the level's own input (the previous level's representation;
      the data for level 0) — each LIL is locally isometric to what it receives;
    - ``"data"``: the original inputs, for every level.

    The two agree when each level refines the previous labelling and the
    previous level is isometric within its classes; they differ when a level
    glues classes that an earlier level pulled apart.

    Returns the raw terms ``{"ce": Σ_b CE_b, "isometry": Σ_b L_ISO,b}``;
    :attr:`weights` is ``{"isometry": β}``.

    Args:
        beta (float): weight :math:`\beta \ge 0` (the paper uses 100 on the
            torus). (default: :obj:`1.0`)
        scale (float): :math:`K`. (default: :obj:`1.0`)
        scope (str): ``"class"`` or ``"global"``. (default: :obj:`"class"`)
        reference (str): ``"level"`` or ``"data"``. (default: :obj:`"level"`)

    Example:
        >>> import torch
        >>> from latentgraph.models.lil import StackedLIL
        >>> model = StackedLIL(3, level_classes=(2, 4), hidden=(8, 8))
        >>> labels = torch.tensor([[0, 0], [0, 1], [1, 2], [1, 3]])
        >>> sorted(StackedIsometricObjective(beta=100.0)(model, (torch.rand(4, 3), labels)))
        ['ce', 'isometry']
    """

    #: term → the constructor option that sets its weight (a config may not also set it in method.weights)
    weight_options = {"isometry": "beta"}

    def __init__(self, beta: float = 1.0, scale: float = 1.0, scope: str = "class", reference: str = "level") -> None:
        self.beta = check_number(beta, "beta")
        self.weights = {"isometry": self.beta}
        self.isometry = IsometryLoss(scale=scale, scope=scope)
        self.reference = check_choice(reference, "reference", ("level", "data"))

    def __call__(self, model: nn.Module, batch: Sequence[Tensor]) -> dict[str, Tensor]:
        x, labels = batch[0], check_tensor(batch[1], "labels")
        if not callable(getattr(model, "forward_levels", None)):
            raise TypeError(f"`model` must be a StackedLIL (with forward_levels), got {type(model).__name__}")
        levels = model.forward_levels(x)
        if labels.dim() != 2 or labels.shape[1] != len(levels):
            raise ValueError(
                f"`labels` must have shape N×{len(levels)} (one column per level), got {tuple(labels.shape)}"
            )
        ce, iso = 0.0, 0.0
        for b, level in enumerate(levels):
            y = labels[:, b]
            ce = ce + F.cross_entropy(level.logits, y)
            reference = level.inputs if self.reference == "level" else x
            iso = iso + self.isometry(reference, level.features, y)
        return {"ce": ce, "isometry": iso}

    def __repr__(self) -> str:
        return (
            f"StackedIsometricObjective(beta={self.beta}, scale={self.isometry.scale}, "
            f"scope={self.isometry.scope!r}, reference={self.reference!r})"
        )
