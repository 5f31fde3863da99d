r"""What :func:`~latentgraph.analyze` measured, and how it is written out.

:class:`AnalysisResult` holds, for each analysed layer, the per-batch values
of the statistics in :data:`STATS` and the graphs; it formats them as a
terminal table, Markdown or CSV, saves the graphs (:func:`load_graphs` reads
them back) and writes the whole report to a folder, plots included.
"""
from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from latentgraph.atomic import save_torch, write_text
from latentgraph.graphs import latent_graph
from latentgraph.gsp import label_variation
from latentgraph.torch_files import load_file
from latentgraph.validation import check_flag

if TYPE_CHECKING:  # PyG is imported on first use: it takes seconds
    from torch_geometric.data import Data

log = logging.getLogger(__name__)

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
        plots = check_flag(plots, "plots")
        from latentgraph import viz

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
        lines += ["", "Graphs: `graphs.pt` (load with `latentgraph.eval.load_graphs`)."]
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
    from torch_geometric.data import Data

    return {name: [Data(**g) for g in payload["graphs"][name]] for name in payload["layers"]}


def _drawn_layers(names: list[str]) -> list[str]:
    """Input, middle and last layer (fewer when there are fewer layers)."""
    picks = [names[0], names[len(names) // 2], names[-1]]
    return list(dict.fromkeys(picks))
