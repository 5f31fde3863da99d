r"""Layer-by-layer analysis of a network with latent geometry graphs.

:func:`analyze` draws a few batches from a dataset, captures the
representations of each chosen layer, builds one latent geometry graph per
layer and batch (:func:`~latentgraph.latent_graph`) and measures how well the
graph separates the classes (:func:`~latentgraph.label_variation`). The
:class:`AnalysisResult` it returns holds the per-batch values, their mean and
spread, and the graphs; :meth:`~latentgraph.eval.report.AnalysisResult.write_report` writes the tables,
the plots and the graphs to a folder.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from latentgraph.capture import capture, layer_names
from latentgraph.eval.accuracy import eval_mode
from latentgraph.eval.report import STATS, AnalysisResult, LayerStats
from latentgraph.graphs import latent_graph, resolve_similarity
from latentgraph.gsp import label_variation
from latentgraph.validation import check_features, check_k, check_labels

if TYPE_CHECKING:  # PyG is imported on first use: it takes seconds
    from torch_geometric.data import Data

#: Name standing for the model's input in ``layers``.
INPUT = "input"

def default_layers(model: nn.Module) -> list[str]:
    """``"input"`` followed by the names of the model's top-level children, in order."""
    return [INPUT] + [name for name, _ in model.named_children()]


def analyze(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    layers: Sequence[str] | None = None,
    k: int | None = 10,
    similarity: str = "auto",
    normalize: bool = True,
    batch_size: int = 100,
    num_batches: int = 5,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AnalysisResult:
    r"""Measure, layer by layer, how a network separates the classes of a dataset.

    Draws ``num_batches`` batches of ``batch_size`` samples from ``(x, y)``
    (disjoint when the dataset is large enough, else each drawn independently
    without repetition; seeded by ``seed``), runs the model on each in
    evaluation mode without gradients, and for each layer builds the latent
    geometry graph :math:`\mathcal{G}_\ell` of the batch with
    :func:`~latentgraph.latent_graph` (``k``, ``similarity``, ``normalize``).
    On each graph it measures

    * ``edges``: the number of undirected edges :math:`|E|`;
    * ``mean_degree``: :math:`2|E|/B`, neighbours per node;
    * ``label_variation``: :math:`\sigma = \mathrm{tr}(V^\top L V) =
      2\sum_{i<j,\, y_i \ne y_j} w_{ij}` with :math:`V` the one-hot labels
      (:func:`~latentgraph.label_variation`);
    * ``label_variation_normalized``: :math:`\sigma / (2\sum_{i<j} w_{ij})`,
      the share of edge weight between distinct classes, in :math:`[0, 1]`.

    A batch with one class gives 0; a node without edges adds nothing.

    Args:
        model (torch.nn.Module): the network; its train/eval flags (each
            sub-module's) are restored afterwards.
        x (Tensor): inputs, ``N×…``, finite floats.
        y (Tensor): integer labels, shape ``[N]``.
        layers (list[str] or str, optional): module names, or one name, (see
            :func:`~latentgraph.layer_names`) in depth order; ``"input"``
            stands for the input itself. ``None`` takes ``"input"`` and each
            top-level child of the model. (default: :obj:`None`)
        k (int, optional): neighbours per node, in ``1..batch_size-1``;
            ``None`` keeps the complete graph. (default: :obj:`10`)
        similarity (str): ``"cosine"``, ``"rbf"``, ``"pearson"`` or ``"auto"``.
            (default: :obj:`"auto"`)
        normalize (bool): use :math:`D^{-1/2} A D^{-1/2}`. (default: :obj:`True`)
        batch_size (int): samples per batch, at most ``N``. (default: :obj:`100`)
        num_batches (int): batches to average over. (default: :obj:`5`)
        seed (int): seed of the batch draw. (default: :obj:`0`)
        device (str or torch.device, optional): where to run; ``None`` uses
            the device of the model's parameters. (default: :obj:`None`)
        progress (callable, optional): called as ``progress(done, total)``
            after each batch. (default: :obj:`None`)

    Returns:
        AnalysisResult: per-layer statistics and the graphs.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU())
        >>> x, y = torch.randn(40, 4), torch.arange(40) % 2
        >>> result = analyze(model, x, y, k=3, batch_size=20, num_batches=2)
        >>> result.names
        ['input', '0', '1']
        >>> 0 <= result["1"].mean("label_variation_normalized") <= 1
        True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
    check_features(x, "x")
    if not isinstance(y, Tensor):
        raise TypeError(f"`y` must be a torch.Tensor, got {type(y).__name__}")
    check_labels(y, x.shape[0], y.device, "y")
    n = x.shape[0]
    for name, value, low in (("batch_size", batch_size, 2), ("num_batches", num_batches, 1)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"`{name}` must be an int, got {type(value).__name__}")
        if value < low:
            raise ValueError(f"`{name}` must be at least {low}, got {value}")
    if batch_size > n:
        raise ValueError(f"`batch_size` must be at most the number of samples N = {n}, got {batch_size}")
    check_k(k, batch_size, "k")
    layers = default_layers(model) if layers is None else [layers] if isinstance(layers, str) else list(layers)
    check_layers(model, layers)
    if device is None:
        device = next((p.device for p in model.parameters()), x.device)
    device = torch.device(device)

    modules = [name for name in layers if name != INPUT]
    dims: dict[str, int] = {}
    similarities: dict[str, str] = {}
    stats: dict[str, dict[str, list[float]]] = {name: {s: [] for s in STATS} for name in layers}
    graphs: dict[str, list[Data]] = {name: [] for name in layers}
    batches = _draw_batches(n, batch_size, num_batches, seed)
    with eval_mode(model), torch.no_grad():
        for done, index in enumerate(batches, start=1):
            xb, yb = x[index].to(device), y[index].to(device)
            with capture(model, modules, detach=True) as acts:
                model(xb)
            silent = [name for name in modules if name not in acts]
            if silent:
                raise ValueError(f"`layers`: {', '.join(map(repr, silent))} never ran in the model's forward")
            features = {name: xb if name == INPUT else acts[name] for name in layers}
            for name, g in latent_graph(features, yb, k=k, similarity=similarity, normalize=normalize).items():
                dims[name] = g.x.shape[1]
                similarities[name] = resolve_similarity(g.x, similarity)
                for stat, value in _graph_stats(g, yb).items():
                    stats[name][stat].append(value)
                graphs[name].append(g.cpu())
            if progress is not None:
                progress(done, len(batches))
    settings = {"k": k, "similarity": similarity, "normalize": normalize,
                "batch_size": batch_size, "num_batches": num_batches, "seed": seed}
    return AnalysisResult(
        layers=[LayerStats(name, dims[name], similarities[name], stats[name]) for name in layers],
        graphs=graphs,
        settings=settings,
    )


def _graph_stats(g: Data, y: Tensor) -> dict[str, float]:
    directed = g.edge_index.shape[1]
    return {
        "edges": directed / 2,
        "mean_degree": directed / g.num_nodes,
        "label_variation": float(label_variation(g, y)),
        "label_variation_normalized": float(label_variation(g, y, normalized=True)),
    }


def check_layers(model: nn.Module, layers: list[str]) -> None:
    """Raise :class:`ValueError` (:class:`TypeError`) unless ``layers`` are distinct
    module names of ``model`` or :data:`INPUT`; the message lists the available names."""
    if not layers:
        raise ValueError("`layers` must name at least one layer")
    for name in layers:
        if not isinstance(name, str):
            raise TypeError(f"`layers` must hold module names (str), got {type(name).__name__}")
    duplicates = sorted({name for name in layers if layers.count(name) > 1})
    if duplicates:
        raise ValueError(f"`layers` names {', '.join(map(repr, duplicates))} more than once")
    available = layer_names(model)
    if INPUT in available and INPUT in layers:
        raise ValueError(f"`layers`: the model has a module named {INPUT!r}, which clashes with the input")
    unknown = [name for name in layers if name != INPUT and name not in available]
    if unknown:
        raise ValueError(
            f"`layers`: unknown layer {', '.join(map(repr, unknown))}; available: "
            f"{INPUT!r} (the input), {', '.join(map(repr, available))}"
        )


def _draw_batches(n: int, batch_size: int, num_batches: int, seed: int) -> list[Tensor]:
    generator = torch.Generator().manual_seed(seed)
    if batch_size * num_batches <= n:
        return list(torch.randperm(n, generator=generator)[: batch_size * num_batches].split(batch_size))
    return [torch.randperm(n, generator=generator)[:batch_size] for _ in range(num_batches)]
