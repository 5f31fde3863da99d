r"""Clustering quality of representations: the Davies–Bouldin index and its
product with label-wise mixup performance, the winning entry of the NeurIPS
2020 PGDL competition (Natekar & Sharma, 2020)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .inputs import features, mix_within_classes, resolve_layers
from .registry import Context, register


def davies_bouldin_index(x: Tensor, y: Tensor) -> float:
    r"""Davies–Bouldin index of the clusters given by the labels:

    .. math::
        DB = \frac1C \sum_{c} \max_{c' \ne c} \frac{s_c + s_{c'}}{\lVert \mu_c - \mu_{c'} \rVert_2},

    :math:`\mu_c` the mean of class :math:`c` and :math:`s_c` the mean
    distance of its samples to :math:`\mu_c` (as ``sklearn.metrics.davies_bouldin_score``).
    Lower means tighter, better separated classes.

    Example:
        >>> x = torch.tensor([[0.0], [2.0], [10.0], [12.0]])
        >>> davies_bouldin_index(x, torch.tensor([0, 0, 1, 1]))
        0.2
    """
    x = x.double()
    classes = torch.unique(y)
    if len(classes) < 2:
        raise ValueError("the Davies–Bouldin index needs at least 2 classes in the sample")
    centroids = torch.stack([x[y == c].mean(dim=0) for c in classes])
    spread = torch.stack([(x[y == c] - centroids[i]).norm(dim=1).mean() for i, c in enumerate(classes)])
    distances = torch.cdist(centroids, centroids)
    if bool((distances + torch.eye(len(classes), dtype=x.dtype, device=x.device) == 0).any()):
        raise ValueError("two classes have the same centroid: the Davies–Bouldin index is undefined")
    ratio = (spread[:, None] + spread[None, :]) / distances
    ratio.fill_diagonal_(float("-inf"))
    return float(ratio.max(dim=1).values.mean())


def _davies_bouldin(ctx: Context, layers: str | list[str]) -> float:
    names = resolve_layers(ctx.model, layers)
    feats = features(ctx.model, ctx.x, names)
    return sum(davies_bouldin_index(feats[n], ctx.y) for n in names) / len(names)


@register("davies_bouldin", "clustering", "Davies–Bouldin index of the first block's training features")
def davies_bouldin(ctx: Context, *, layers: str | list[str] = "first") -> float:
    r"""Davies–Bouldin index (:func:`davies_bouldin_index`) of the training
    features at ``layers`` (default ``"first"``, the layer Natekar & Sharma
    used), averaged over layers."""
    return _davies_bouldin(ctx, layers)


@register("davies_bouldin_mixup", "clustering", "Davies–Bouldin index × cross-entropy on label-wise mixup")
def davies_bouldin_mixup(ctx: Context, *, layers: str | list[str] = "first") -> float:
    r"""Natekar & Sharma's winning PGDL score: the Davies–Bouldin index at
    ``layers`` times the mean cross-entropy of the model on label-wise
    mixup :math:`(x_i + x_j)/2`, :math:`y_j = y_i`, labelled :math:`y_i`
    (:func:`~latentgraph.generalization.inputs.mix_within_classes`)."""
    mixed, y = mix_within_classes(ctx.x, ctx.y, ctx.generator)
    loss = float(F.cross_entropy(ctx.logits(mixed), y))
    return _davies_bouldin(ctx, layers) * loss
