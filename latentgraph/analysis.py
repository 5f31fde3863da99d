r"""Layer-by-layer analysis of a network with latent geometry graphs.

:func:`analyze` draws a few batches from a dataset, captures the
representations of each chosen layer, builds one latent geometry graph per
layer and batch (:func:`~latentgraph.latent_graph`) and measures how well the
graph separates the classes (:func:`~latentgraph.label_variation`). The
:class:`AnalysisResult` it returns holds the per-batch values, their mean and
spread, and the graphs; :meth:`AnalysisResult.write_report` writes the tables,
the plots and the graphs to a folder.
"""
from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from .capture import capture, layer_names
from .graphs import latent_graph, resolve_similarity
from .gsp import label_variation
from .atomic import save_torch, write_text
from .train.checkpoint import load_file
from .validation import check_features, check_k, check_labels

log = logging.getLogger(__name__)

#: Name standing for the model's input in ``layers``.
INPUT = "input"

#: Statistics measured on each graph, in table order, with their column titles.
STATS: dict[str, str] = {
    "edges": "edges",
    "mean_degree": "mean degree",
    "label_variation": "label variation",
    "label_variation_normalized": "normalized LV",
}

#: Version tag of the ``graphs.pt`` format written by :meth:`AnalysisResult.save_graphs`.
GRAPHS_FORMAT = "latentgraph.graphs/1"


@dataclass
class LayerStats:
    """Statistics of one layer's graphs, one value per analysed batch.

    Attributes:
        layer (str): the layer's module name (``"input"`` for the input).
        dim (int): features per sample at this layer (flattened).
        similarity (str): the similarity used, ``"auto"`` resolved (cosine
            for non-negative features, RBF otherwise).
        values (dict[str, list[float]]): for each name in :data:`STATS`, the
            value on each batch.
    """

    layer: str
    dim: int
    similarity: str
    values: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STATS})

    def mean(self, stat: str) -> float:
        """Mean of ``stat`` over the batches."""
        v = self.values[stat]
        return sum(v) / len(v)

    def std(self, stat: str) -> float:
        """Sample standard deviation (ddof = 1) of ``stat`` over the batches; 0 for one batch."""
        v = self.values[stat]
        if len(v) < 2:
            return 0.0
        m = self.mean(stat)
        return math.sqrt(sum((a - m) ** 2 for a in v) / (len(v) - 1))


@dataclass
class AnalysisResult:
    """What :func:`analyze` measured.

    Attributes:
        layers (list[LayerStats]): one entry per analysed layer, input first.
        graphs (dict[str, list[Data]]): for each layer, the graph of each batch
            (on the CPU, detached), with ``x`` the flattened features and ``y``
            the labels.
        settings (dict): the arguments of the analysis (``k``, ``similarity``,
            ``normalize``, ``batch_size``, ``num_batches``, ``seed``).
    """

    layers: list[LayerStats]
    graphs: dict[str, list[Data]]
    settings: dict[str, object]

    def __getitem__(self, layer: str) -> LayerStats:
        for stats in self.layers:
            if stats.layer == layer:
                return stats
        raise KeyError(f"no layer {layer!r}; analysed: {', '.join(self.names)}")

    @property
    def names(self) -> list[str]:
        """Layer names, in depth order."""
        return [stats.layer for stats in self.layers]

    def rows(self) -> list[dict[str, object]]:
        """One flat dict per layer: ``layer``, ``depth``, ``dim``, ``similarity`` and
        ``<stat>_mean`` / ``<stat>_std`` for each statistic."""
        rows = []
        for depth, stats in enumerate(self.layers):
            row: dict[str, object] = {"layer": stats.layer, "depth": depth, "dim": stats.dim,
                                      "similarity": stats.similarity}
            for stat in STATS:
                row[f"{stat}_mean"] = stats.mean(stat)
                row[f"{stat}_std"] = stats.std(stat)
            rows.append(row)
        return rows

    def _cells(self) -> tuple[list[str], list[list[str]]]:
        header = ["layer", "dim", "similarity", *STATS.values()]
        body = []
        for stats in self.layers:
            cells = [stats.layer, str(stats.dim), stats.similarity]
            for stat in STATS:
                digits = 1 if stat in ("edges", "mean_degree") else 4
                cells.append(f"{stats.mean(stat):.{digits}f} ± {stats.std(stat):.{digits}f}")
            body.append(cells)
        return header, body

    def format_table(self) -> str:
        """The table as aligned plain text, for a terminal."""
        header, body = self._cells()
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                 for row in [header, *body]]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """The table in Markdown (mean ± standard deviation over batches)."""
        header, body = self._cells()
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)

    def to_csv(self) -> str:
        """The table as CSV text, full precision, columns as in :meth:`rows`."""
        rows = self.rows()
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()

    def save_graphs(self, path: str | os.PathLike) -> Path:
        """Save the graphs as plain tensors, loadable with ``weights_only=True``.

        The file holds ``{"format", "layers", "settings", "graphs"}`` where
        ``graphs[layer]`` is a list (one per batch) of dicts with
        ``edge_index``, ``edge_weight``, ``x``, ``y`` and ``num_nodes``; turn
        one back into a PyG graph with ``Data(**d)`` or use :func:`load_graphs`.
        """
        payload = {
            "format": GRAPHS_FORMAT,
            "layers": self.names,
            "settings": dict(self.settings),
            "graphs": {
                name: [{key: g[key] for key in ("edge_index", "edge_weight", "x", "y", "num_nodes")}
                       for g in graphs]
                for name, graphs in self.graphs.items()
            },
        }
        return save_torch(payload, path)

    def write_report(
        self,
        output_dir: str | os.PathLike,
        info: Mapping[str, object] | None = None,
        plots: bool = True,
    ) -> dict[str, Path]:
        """Write the report to ``output_dir`` (created if needed).

        Files: ``report.md`` (``info`` lines, the table, the plots),
        ``table.csv`` (:meth:`to_csv`), ``graphs.pt`` (:meth:`save_graphs`)
        and, with ``plots=True``, ``label_variation.png`` (label variation
        against depth) and ``latent_graphs.png`` (Laplacian-eigenmap drawings
        of the first batch's graphs at the input, middle and last layer, with
        the edges between distinct classes).

        Returns:
            dict[str, Path]: the written files by kind (``"markdown"``,
            ``"csv"``, ``"graphs"``, ``"variation_plot"``, ``"drawing"``).
        """
        from . import viz

        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = {
            "csv": write_text(out / "table.csv", self.to_csv()),
            "graphs": self.save_graphs(out / "graphs.pt"),
        }
        if plots:
            files["variation_plot"] = viz.plot_label_variation(self, out / "label_variation.png")
            drawn = self.drawing_graphs()
            if next(iter(drawn.values())).num_nodes < 3:
                log.warning("too few samples in the first batch to draw the graphs; skipping the drawing")
            else:
                files["drawing"] = viz.draw_latent_graphs(
                    drawn,
                    out / "latent_graphs.png",
                    titles={name: f"{name}\nnormalized LV {float(label_variation(g, normalized=True)):.3f}"
                            for name, g in drawn.items()},
                )
        files["markdown"] = write_text(out / "report.md", self._report(info, files))
        return files

    def drawing_graphs(self, classes: int = 4, per_class: int = 5, k: int = 5) -> dict[str, Data]:
        """Small graphs to draw, as in the paper's Figure 2 and appendix B.

        From the first batch, takes ``per_class`` samples of each of the
        ``classes`` most frequent classes (ties: lower label first) and builds
        their graph with ``k`` neighbours (fewer if the subset is smaller) and
        the analysis' similarity and normalization, at the input, middle and
        last analysed layer.
        """
        y = self.graphs[self.names[0]][0].y
        counts = torch.bincount(y)
        order = sorted(range(len(counts)), key=lambda c: (-int(counts[c]), c))[:classes]
        index = torch.cat([(y == c).nonzero().flatten()[:per_class] for c in order if counts[c] > 0])
        s = self.settings
        k = min(k, len(index) - 1)
        return {
            name: latent_graph(self.graphs[name][0].x[index], y[index], k=k if k >= 1 else None,
                               similarity=s["similarity"], normalize=s["normalize"])
            for name in _drawn_layers(self.names)
        }

    def _report(self, info: Mapping[str, object] | None, files: Mapping[str, Path]) -> str:
        s = self.settings
        lines = ["# latentgraph analysis", ""]
        for key, value in (info or {}).items():
            lines.append(f"- {key}: {value}")
        lines += [
            f"- graphs: k = {s['k']}, similarity = {s['similarity']}, normalize = {s['normalize']}",
            f"- batches: {s['num_batches']} of {s['batch_size']} samples (seed {s['seed']}); "
            "values are mean ± standard deviation over batches",
            "",
            self.to_markdown(),
            "",
            "Label variation is tr(VᵀLV) = 2 Σ_{i<j, y_i ≠ y_j} w_ij with V the one-hot labels; the "
            "normalized value is the share of edge weight between distinct classes, in [0, 1].",
        ]
        if "variation_plot" in files:
            lines += ["", "![label variation against depth](label_variation.png)"]
        if "drawing" in files:
            lines += ["", "![latent geometry graphs](latent_graphs.png)", "",
                      "The drawing shows 5 samples of each of the 4 most frequent classes of the first batch, "
                      "their graph rebuilt with k = 5 (as in the paper's Figure 2), placed by Laplacian "
                      "eigenmaps; only edges between distinct classes are drawn."]
        lines += ["", "Graphs: `graphs.pt` (load with `latentgraph.analysis.load_graphs`)."]
        return "\n".join(lines) + "\n"


def load_graphs(path: str | os.PathLike, map_location: str | torch.device | None = None) -> dict[str, list[Data]]:
    """Load a ``graphs.pt`` written by :meth:`AnalysisResult.save_graphs`.

    Uses ``torch.load(..., weights_only=True)``: the file holds plain tensors
    only. Returns, for each layer in depth order, the list of per-batch
    :class:`~torch_geometric.data.Data` graphs.
    """
    payload = load_file(path, map_location=map_location)  # a clear error for a missing or corrupt file
    if not isinstance(payload, dict) or payload.get("format") != GRAPHS_FORMAT:
        raise ValueError(f"`path` {str(path)!r} is not a graphs file written by latentgraph ({GRAPHS_FORMAT})")
    return {name: [Data(**g) for g in payload["graphs"][name]] for name in payload["layers"]}


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
        model (torch.nn.Module): the network; its mode is restored afterwards.
        x (Tensor): inputs, ``N×…``, finite floats.
        y (Tensor): integer labels, shape ``[N]``.
        layers (list[str], optional): module names (see
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
    layers = list(default_layers(model) if layers is None else layers)
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
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
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
    finally:
        model.train(was_training)
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


def _drawn_layers(names: list[str]) -> list[str]:
    """Input, middle and last layer (fewer when there are fewer layers)."""
    picks = [names[0], names[len(names) // 2], names[-1]]
    return list(dict.fromkeys(picks))
