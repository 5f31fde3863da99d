r"""Latent-graph measures: label variation of the training data's latent
geometry graphs (Lassance et al., 2020), on clean or perturbed inputs, at
chosen layers or as a profile over depth.

For a batch :math:`B` of training samples and a layer :math:`\ell`, the
latent geometry graph :math:`\mathcal G_\ell` connects each sample to its
:math:`k` most similar ones (:func:`~latentgraph.latent_graph`: similarity,
kNN, union-symmetrization, :math:`D^{-1/2} A D^{-1/2}` normalization), and

.. math::
    \sigma_\ell = \frac{\sum_{i,j:\, y_i \ne y_j} w_{ij}}{\sum_{i,j} w_{ij}} \in [0, 1]

is the share of edge weight between samples of distinct classes
(:func:`~latentgraph.label_variation` with ``normalized=True``; the raw
:math:`\operatorname{tr}(V^\top L V)` with ``normalized=False``). The sample
(``max_samples`` of :func:`~latentgraph.generalization.complexity`) is cut
into consecutive batches of ``batch_size``; :math:`\sigma_\ell` is averaged
over them. A larger share means classes less separated in the geometry of
the training data, read as a larger predicted gap.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..graphs import latent_graph
from ..gsp import label_variation as graph_label_variation
from ..validation import check_choice, check_int
from .inputs import INPUT, add_noise, features, mix_between_classes, resolve_layers
from .registry import Context, register

#: Perturbations of the training inputs before the graphs are built.
PERTURBATIONS = ("none", "mixup", "noise")

#: Summaries of the profile :math:`\sigma_1, \dots, \sigma_L` over depth.
SUMMARIES = ("last", "mean", "area", "slope")


def layer_variation(ctx: Context, layers: str | list[str], k: int | None, similarity: str, normalize: bool,
                    normalized: bool, batch_size: int, perturbation: str = "none", lam: float = 0.7,
                    noise: float = 0.1) -> list[float]:
    """Mean label variation of each resolved layer, over the sample's batches."""
    check_choice(perturbation, "perturbation", PERTURBATIONS)
    check_int(batch_size, "batch_size", minimum=2)
    if batch_size > len(ctx.y):
        raise ValueError(f"`batch_size`={batch_size} exceeds the {len(ctx.y)} samples drawn (raise `max_samples`)")
    names = resolve_layers(ctx.model, layers)
    x, y = ctx.x, ctx.y
    if perturbation == "mixup":
        x, y = mix_between_classes(x, y, lam, ctx.generator)
    elif perturbation == "noise":
        x = add_noise(x, noise, ctx.generator)
    feats = features(ctx.model, x, names)
    count = len(y) // batch_size
    values = []
    for name in names:
        total = 0.0
        for b in range(count):
            part = slice(b * batch_size, (b + 1) * batch_size)
            g = latent_graph(feats[name][part], y[part], k=k, similarity=similarity, normalize=normalize)
            total += float(graph_label_variation(g, normalized=normalized))
        values.append(total / count)
    return values


def summarize(profile: list[float], summary: str) -> float:
    r"""One number for a profile :math:`\sigma_1, \dots, \sigma_L` placed at
    depths :math:`t_\ell = (\ell-1)/(L-1)`: ``"last"`` :math:`\sigma_L`,
    ``"mean"``, ``"area"`` (trapezoid rule, :math:`\int_0^1 \sigma\,dt`) or
    ``"slope"`` (least-squares slope of :math:`\sigma` against :math:`t`).

    Example:
        >>> [round(summarize([0.6, 0.4, 0.2], s), 6) for s in SUMMARIES]
        [0.2, 0.4, 0.4, -0.4]
    """
    check_choice(summary, "summary", SUMMARIES)
    n = len(profile)
    if summary == "last":
        return profile[-1]
    if summary == "mean":
        return sum(profile) / n
    if n < 2:
        raise ValueError(f"`summary`={summary!r} needs at least 2 layers, got {n}")
    t = [i / (n - 1) for i in range(n)]
    if summary == "area":
        return sum((profile[i] + profile[i + 1]) / 2 * (t[i + 1] - t[i]) for i in range(n - 1))
    t_mean, s_mean = sum(t) / n, sum(profile) / n
    return (sum((a - t_mean) * (b - s_mean) for a, b in zip(t, profile))
            / sum((a - t_mean) ** 2 for a in t))


@register("label_variation", "latent graph", "normalized label variation of the penultimate layer's kNN graph")
def label_variation(ctx: Context, *, layers: str | list[str] = "penultimate", k: int | None = 10,
                    similarity: str = "auto", normalize: bool = True, normalized: bool = True,
                    batch_size: int = 100) -> float:
    r"""Label variation :math:`\sigma_\ell` of the training batches' graphs at
    ``layers`` (mean over layers), as ``latentgraph analyze`` measures it.

    Options: ``layers`` (names or ``"first"``/``"middle"``/``"penultimate"``/
    ``"all"``; default ``"penultimate"``), ``k`` (10), ``similarity``
    (``"auto"``), ``normalize`` (``True``: :math:`D^{-1/2}AD^{-1/2}`),
    ``normalized`` (``True``: the inter-class share), ``batch_size`` (100).
    """
    values = layer_variation(ctx, layers, k, similarity, normalize, normalized, batch_size)
    return sum(values) / len(values)


@register("label_variation_profile", "latent graph", "area under the label-variation profile over depth")
def label_variation_profile(ctx: Context, *, summary: str = "area", layers: str | list[str] = "all",
                            k: int | None = 10, similarity: str = "auto", normalize: bool = True,
                            normalized: bool = True, batch_size: int = 100) -> float:
    r"""Label variation at the input and at every block (``layers="all"``),
    :math:`\sigma_0, \sigma_1, \dots, \sigma_L`, summarized over depth by
    ``summary``: ``"area"`` (default), ``"mean"``, ``"last"`` or ``"slope"``
    (see :func:`summarize`). Other options as ``label_variation``."""
    check_choice(summary, "summary", SUMMARIES)
    names = [INPUT, *[n for n in resolve_layers(ctx.model, layers) if n != INPUT]]
    values = layer_variation(ctx, names, k, similarity, normalize, normalized, batch_size)
    return summarize(values, summary)


@register("label_variation_mixup", "latent graph", "label variation on between-class mixup of training inputs")
def label_variation_mixup(ctx: Context, *, lam: float = 0.7, layers: str | list[str] = "penultimate",
                          k: int | None = 10, similarity: str = "auto", normalize: bool = True,
                          normalized: bool = True, batch_size: int = 100) -> float:
    r"""Label variation of the graphs of mixed training inputs
    :math:`\lambda x_i + (1-\lambda) x_j`, :math:`y_j \ne y_i`, labelled
    :math:`y_i` (:func:`~latentgraph.generalization.inputs.mix_between_classes`;
    ``lam`` 0.7). A network whose geometry still groups the mixes by their
    major class scores low. Other options as ``label_variation``."""
    values = layer_variation(ctx, layers, k, similarity, normalize, normalized, batch_size, "mixup", lam=lam)
    return sum(values) / len(values)


@register("label_variation_noise", "latent graph", "label variation on training inputs with Gaussian noise")
def label_variation_noise(ctx: Context, *, noise: float = 0.1, layers: str | list[str] = "penultimate",
                          k: int | None = 10, similarity: str = "auto", normalize: bool = True,
                          normalized: bool = True, batch_size: int = 100) -> float:
    r"""Label variation of the graphs of :math:`x + s\,\hat\sigma_x\,\varepsilon`
    (``noise`` :math:`s` = 0.1, :math:`\hat\sigma_x` the inputs' standard
    deviation). Other options as ``label_variation``."""
    values = layer_variation(ctx, layers, k, similarity, normalize, normalized, batch_size, "noise", noise=noise)
    return sum(values) / len(values)
