"""Plots of latent geometry graphs and of label variation by depth, written to files
(drawn outside pyplot: :mod:`latentgraph.viz.figure`)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from latentgraph.gsp import eigenmaps
from latentgraph.atomic import save_figure
from latentgraph.viz.figure import new_figure

if TYPE_CHECKING:  # PyG is imported on first use: it takes seconds
    from torch_geometric.data import Data

    from latentgraph.eval.report import AnalysisResult


def plot_label_variation(result: AnalysisResult, path: str | os.PathLike) -> Path:
    """Plot label variation against depth: normalized (left) and raw (right),
    mean over batches with a bar of ± one standard deviation.

    Args:
        result (AnalysisResult): the output of :func:`latentgraph.analyze`.
        path (str or os.PathLike): the image file (its suffix gives the format).

    Returns:
        Path: ``path``.
    """
    fig = new_figure(9.0, 3.6, dpi=110, layout="constrained")
    depth = list(range(len(result.layers)))
    for ax, stat, label in zip(
        fig.subplots(1, 2),
        ("label_variation_normalized", "label_variation"),
        ("normalized label variation", "label variation tr(VᵀLV)"),
    ):
        ax.errorbar(depth, [s.mean(stat) for s in result.layers], yerr=[s.std(stat) for s in result.layers],
                    marker="o", capsize=3)
        ax.set_xticks(depth, result.names, rotation=30, ha="right")
        ax.set_xlabel("layer (depth →)")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    s = result.settings
    fig.suptitle(f"Label variation by depth (k = {s['k']}, {s['num_batches']} batches of {s['batch_size']})")
    return save_figure(fig, path)


def draw_latent_graphs(
    graphs: Mapping[str, Data],
    path: str | os.PathLike,
    titles: Mapping[str, str] | None = None,
    edges: str = "inter_class",
) -> Path:
    """Draw graphs side by side, as in Figure 2 of Lassance et al.

    Each node is placed by 2-D Laplacian eigenmaps of its graph
    (:func:`~latentgraph.eigenmaps`) and coloured by its class ``g.y``; edges
    are drawn as lines whose opacity is their weight relative to the heaviest
    edge of the graph, so weak edges fade out. A legend maps colours to classes.

    Args:
        graphs (Mapping[str, Data]): panel title -> graph with ``edge_index``,
            ``edge_weight``, ``y``.
        path (str or os.PathLike): the image file (its suffix gives the format).
        titles (Mapping[str, str], optional): titles replacing the keys.
            (default: :obj:`None`)
        edges (str): ``"inter_class"`` draws only the edges between distinct
            classes (those that make up the label variation), ``"all"`` every
            edge. (default: :obj:`"inter_class"`)

    Returns:
        Path: ``path``.
    """
    import matplotlib
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    if edges not in ("inter_class", "all"):
        raise ValueError(f"`edges` must be 'inter_class' or 'all', got {edges!r}")
    if not graphs:
        raise ValueError("`graphs` must hold at least one graph")
    for name, g in graphs.items():
        if g.y is None:
            raise ValueError(f"`graphs[{name!r}]` has no labels `y` to colour the nodes by")
    present = sorted({int(c) for g in graphs.values() for c in g.y.cpu().unique()})
    classes = present[-1] + 1  # one colour per class, the same in every panel
    cmap, vmax = ("tab10", 9) if classes <= 10 else ("tab20", 19) if classes <= 20 else ("turbo", classes - 1)
    fig = new_figure(4.0 * len(graphs), 4.2, dpi=110, layout="constrained")
    axes = fig.subplots(1, len(graphs), squeeze=False)[0]
    for ax, (name, g) in zip(axes, graphs.items()):
        pos = eigenmaps(g, dim=2).detach().cpu().double()
        src, dst = g.edge_index.cpu()
        weight = g.edge_weight.detach().cpu().double() if g.edge_weight is not None else torch.ones(src.numel())
        y = g.y.cpu()
        heaviest = float(weight.max()) if weight.numel() else 0.0
        heaviest = heaviest if heaviest > 0 else 1.0  # all-zero weights: faint lines, not NaN opacities
        keep = src < dst
        if edges == "inter_class":
            keep &= y[src] != y[dst]
        src, dst, weight = src[keep], dst[keep], weight[keep]
        if src.numel():  # opacity relative to the graph's heaviest edge, drawn or not
            alpha = (0.05 + 0.95 * weight / heaviest).clamp(0, 1)
            segments = torch.stack([pos[src], pos[dst]], dim=1).numpy()
            colors = [(0.3, 0.3, 0.3, float(a)) for a in alpha]
            ax.add_collection(LineCollection(segments, colors=colors, linewidths=0.8, zorder=1))
        ax.scatter(pos[:, 0], pos[:, 1], c=y.numpy(), cmap=cmap, vmin=0, vmax=vmax, s=22,
                   edgecolors="black", linewidths=0.4, zorder=2)
        ax.set_title((titles or {}).get(name, name), fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"{src.numel()} {'inter-class ' if edges == 'inter_class' else ''}edges", fontsize=9)
    colour = matplotlib.colormaps[cmap]
    handles = [Line2D([], [], linestyle="", marker="o", markersize=5, markerfacecolor=colour(c / max(vmax, 1)),
                      markeredgecolor="black", markeredgewidth=0.4, label=str(c)) for c in present]
    fig.legend(handles=handles, title="class", loc="outside right center", fontsize=8, title_fontsize=9,
               frameon=False, ncols=1 if len(present) <= 12 else 2)
    return save_figure(fig, path)
