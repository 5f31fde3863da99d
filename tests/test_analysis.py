"""Tests of lg.analyze, the analysis report and the plots."""
from __future__ import annotations

import csv
import math
import os
import statistics
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from latentgraph.eval import STATS, AnalysisResult, LayerStats, analyze, load_graphs
from latentgraph.viz import draw_latent_graphs


def _hand_graph_stats(features: np.ndarray, y: np.ndarray, k: int) -> dict[str, float]:
    """Cosine kNN graph, union-symmetrized, D^-1/2 A D^-1/2, written out with numpy."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    sim = unit @ unit.T
    n = len(y)
    chosen = np.zeros((n, n), dtype=bool)
    for i in range(n):
        others = [j for j in np.argsort(-sim[i], kind="stable") if j != i]
        chosen[i, others[:k]] = True
    mask = chosen | chosen.T
    adj = np.where(mask, np.clip(sim, 0, None), 0.0)
    d = adj.sum(axis=1)
    adj = adj / np.sqrt(d)[:, None] / np.sqrt(d)[None, :]
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    inter = (y[:, None] != y[None, :]) & upper
    sigma = 2 * adj[inter].sum()
    return {
        "edges": float(mask[upper].sum()),
        "mean_degree": 2 * float(mask[upper].sum()) / n,
        "label_variation": sigma,
        "label_variation_normalized": sigma / (2 * adj[upper].sum()),
    }


def _positive_model(features: int = 3, hidden: int = 5) -> nn.Module:
    """Linear + ReLU with positive weights and bias: no all-zero hidden rows."""
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict(lin=nn.Linear(features, hidden), relu=nn.ReLU()))
    with torch.no_grad():
        model.lin.weight.abs_()
        model.lin.bias.fill_(0.1)
    return model


def test_statistics_match_hand_computation():
    torch.manual_seed(1)
    model = _positive_model()
    x, y = torch.rand(14, 3) + 0.05, torch.tensor([0, 1, 2] * 4 + [0, 1])
    # One batch of all samples: the statistics do not depend on the node order.
    result = analyze(model, x, y, layers=["input", "relu"], k=3, batch_size=14, num_batches=1)
    hidden = (x @ model.lin.weight.detach().T + 0.1).clamp_min(0)
    for name, features in (("input", x), ("relu", hidden)):
        expected = _hand_graph_stats(features.double().numpy(), y.numpy(), k=3)
        for stat in STATS:
            assert result[name].values[stat] == pytest.approx([expected[stat]], rel=1e-5), (name, stat)
    assert result["relu"].dim == 5 and result["input"].dim == 3
    assert result["relu"].similarity == result["input"].similarity == "cosine"  # "auto", non-negative


def test_mean_and_std_over_disjoint_batches():
    torch.manual_seed(2)
    x, y = torch.rand(30, 4), torch.arange(30) % 3
    calls = []
    result = analyze(_positive_model(4, 6), x, y, k=2, batch_size=10, num_batches=3, seed=7,
                     progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert result.names == ["input", "lin", "relu"]
    for stats in result.layers:
        for stat in STATS:
            values = stats.values[stat]
            assert len(values) == 3
            assert stats.mean(stat) == pytest.approx(statistics.mean(values))
            assert stats.std(stat) == pytest.approx(statistics.stdev(values))
    # 3 × 10 ≤ 30: the batches are disjoint and together hold every sample once.
    rows = torch.cat([g.x for g in result.graphs["input"]])
    assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, x.tolist()))


def test_overlapping_batches_have_no_repeated_sample():
    x, y = torch.rand(12, 3), torch.arange(12) % 2
    result = analyze(_positive_model(), x, y, k=2, batch_size=8, num_batches=4, seed=0)
    for g in result.graphs["input"]:
        assert len({tuple(row) for row in g.x.tolist()}) == 8
    assert result.settings["num_batches"] == 4


def test_separating_layer_has_zero_label_variation():
    torch.manual_seed(3)
    y = torch.arange(40) % 4
    x = torch.cat([torch.rand(40, 6), 0.3 * nn.functional.one_hot(y, 4).float()], dim=1)
    embed = nn.Linear(10, 4, bias=False)
    with torch.no_grad():  # reads the one-hot part of the input: classes fully separated
        embed.weight.copy_(torch.cat([torch.zeros(4, 6), torch.eye(4)], dim=1))
    model = nn.Sequential(OrderedDict(embed=embed))
    result = analyze(model, x, y, k=5, batch_size=40, num_batches=1)
    assert result["embed"].mean("label_variation_normalized") == 0.0
    assert result["embed"].mean("label_variation") == 0.0
    assert result["input"].mean("label_variation_normalized") > 0.3


def test_model_mode_and_batchnorm_statistics_are_restored():
    model = nn.Sequential(OrderedDict(fc=nn.Linear(3, 4), bn=nn.BatchNorm1d(4)))
    model.train()
    before = model.bn.running_mean.clone()
    analyze(model, torch.randn(20, 3), torch.arange(20) % 2, k=3, batch_size=10, num_batches=2)
    assert model.training
    assert torch.equal(model.bn.running_mean, before)


def test_default_layers_are_input_and_children():
    model = nn.Sequential(OrderedDict(a=nn.Linear(3, 4), b=nn.Sequential(nn.ReLU(), nn.Linear(4, 2))))
    result = analyze(model, torch.randn(10, 3), torch.arange(10) % 2, k=2, batch_size=10, num_batches=1)
    assert result.names == ["input", "a", "b"]
    assert [s.dim for s in result.layers] == [3, 4, 2]
    assert result["input"].similarity == "rbf"  # "auto" on features with negative values


# ---- bad input -------------------------------------------------------------------------------

def _data():
    return _positive_model(), torch.rand(20, 3), torch.arange(20) % 2


def test_unknown_layer_lists_available_names():
    model, x, y = _data()
    with pytest.raises(ValueError, match=r"unknown layer 'conv'.*'input'.*'lin'"):
        analyze(model, x, y, layers=["input", "conv"], k=2, batch_size=10)


def test_duplicate_layer():
    model, x, y = _data()
    with pytest.raises(ValueError, match="more than once"):
        analyze(model, x, y, layers=["lin", "lin"], k=2, batch_size=10)


class _SkipsALayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used, self.unused = nn.Linear(3, 4), nn.Linear(3, 4)

    def forward(self, x):
        return self.used(x)


def test_layer_that_never_runs():
    _, x, y = _data()
    with pytest.raises(ValueError, match="'unused' never ran"):
        analyze(_SkipsALayer(), x, y, layers=["used", "unused"], k=2, batch_size=10)


def test_k_too_large_for_batch():
    model, x, y = _data()
    with pytest.raises(ValueError, match="`k`"):
        analyze(model, x, y, k=10, batch_size=10)


def test_batch_larger_than_dataset():
    model, x, y = _data()
    with pytest.raises(ValueError, match="`batch_size`"):
        analyze(model, x, y, k=2, batch_size=21)


def test_zero_batches():
    model, x, y = _data()
    with pytest.raises(ValueError, match="`num_batches`"):
        analyze(model, x, y, k=2, batch_size=10, num_batches=0)


def test_labels_of_wrong_length():
    model, x, y = _data()
    with pytest.raises(ValueError, match="`y`"):
        analyze(model, x, y[:-1], k=2, batch_size=10)


def test_float_labels():
    model, x, y = _data()
    with pytest.raises(TypeError, match="`y`"):
        analyze(model, x, y.float(), k=2, batch_size=10)


def test_nan_features():
    model, x, y = _data()
    x[3, 1] = float("nan")
    with pytest.raises(ValueError, match="`x`.*NaN"):
        analyze(model, x, y, k=2, batch_size=10)


def test_model_not_a_module():
    _, x, y = _data()
    with pytest.raises(TypeError, match="`model`"):
        analyze(lambda t: t, x, y, k=2, batch_size=10)


# ---- tables, report and graphs file ----------------------------------------------------------

def _hand_result() -> AnalysisResult:
    stats = LayerStats("input", 4, "cosine", {"edges": [10.0, 12.0], "mean_degree": [2.0, 2.4],
                                    "label_variation": [0.5, 0.7], "label_variation_normalized": [0.25, 0.35]})
    settings = dict(k=2, similarity="auto", normalize=True, batch_size=10, num_batches=2, seed=0)
    return AnalysisResult(layers=[stats], graphs={}, settings=settings)


def test_tables_show_mean_and_sample_std():
    result = _hand_result()  # std of (10, 12) with ddof = 1 is √2
    assert result.to_markdown().splitlines()[2] == "| input | 4 | cosine | 11.0 ± 1.4 | 2.2 ± 0.3 | 0.6000 ± 0.1414 | 0.3000 ± 0.0707 |"
    assert result.format_table().splitlines()[2].split() == \
        ["input", "4", "cosine", "11.0", "±", "1.4", "2.2", "±", "0.3", "0.6000", "±", "0.1414", "0.3000", "±", "0.0707"]
    row = list(csv.DictReader(result.to_csv().splitlines()))[0]
    assert float(row["edges_std"]) == pytest.approx(math.sqrt(2))
    assert float(row["label_variation_normalized_mean"]) == pytest.approx(0.3)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_write_report(tmp_path):
    torch.manual_seed(4)
    x, y = torch.rand(40, 3), torch.arange(40) % 4
    result = analyze(_positive_model(), x, y, k=4, batch_size=20, num_batches=2)
    files = result.write_report(tmp_path / "report", info={"data": "random"})
    assert {p.name for p in (tmp_path / "report").iterdir()} == \
        {"report.md", "table.csv", "graphs.pt", "label_variation.png", "latent_graphs.png"}
    for path in files.values():  # the permissions of a plain open(), not mkstemp's 0600
        assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()
    for kind in ("variation_plot", "drawing"):
        assert files[kind].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and files[kind].stat().st_size > 5000
    rows = list(csv.DictReader(files["csv"].open()))
    assert [r["layer"] for r in rows] == ["input", "lin", "relu"]
    for row, expected in zip(rows, result.rows()):
        for key, value in expected.items():
            assert row[key] == str(value)
    markdown = files["markdown"].read_text()
    assert "- data: random" in markdown and result.to_markdown() in markdown
    # Plain tensors: loadable with weights_only=True, and rebuilt as PyG graphs.
    raw = torch.load(files["graphs"], weights_only=True)
    assert raw["layers"] == ["input", "lin", "relu"] and len(raw["graphs"]["relu"]) == 2
    graphs = load_graphs(files["graphs"])
    for name in result.names:
        for loaded, original in zip(graphs[name], result.graphs[name]):
            assert torch.equal(loaded.edge_index, original.edge_index)
            assert torch.equal(loaded.edge_weight, original.edge_weight)
            assert torch.equal(loaded.y, original.y) and loaded.num_nodes == 20


def test_write_report_without_plots(tmp_path):
    result = analyze(_positive_model(), torch.rand(10, 3), torch.arange(10) % 2, k=2, batch_size=10, num_batches=1)
    result.write_report(tmp_path, plots=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graphs.pt", "report.md", "table.csv"]


def test_drawing_graphs_follow_appendix_b():
    y = torch.arange(60) % 6
    x = torch.rand(60, 5)
    result = analyze(_positive_model(5, 6), x, y, k=5, batch_size=60, num_batches=1)
    drawn = result.drawing_graphs()
    assert list(drawn) == ["input", "lin", "relu"]
    for g in drawn.values():  # 5 samples of each of 4 classes, k = 5
        assert g.num_nodes == 20 and torch.bincount(g.y).tolist() == [5, 5, 5, 5]
        assert int(torch.bincount(g.edge_index[0]).min()) >= 5


def test_load_graphs_rejects_other_files(tmp_path):
    torch.save({"weights": torch.ones(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a graphs file"):
        load_graphs(tmp_path / "other.pt")
    (tmp_path / "truncated.pt").write_bytes(b"PK\x03\x04 not a whole file")
    with pytest.raises(ValueError, match="truncated.pt.*corrupt, truncated"):
        load_graphs(tmp_path / "truncated.pt")
    with pytest.raises(FileNotFoundError, match="none.pt"):
        load_graphs(tmp_path / "none.pt")


def test_drawing_bad_edges_argument(tmp_path):
    result = analyze(_positive_model(), torch.rand(10, 3), torch.arange(10) % 2, k=2, batch_size=10, num_batches=1)
    with pytest.raises(ValueError, match="`edges`"):
        draw_latent_graphs({"input": result.graphs["input"][0]}, tmp_path / "g.png", edges="some")


def test_drawing_needs_labels(tmp_path):
    result = analyze(_positive_model(), torch.rand(10, 3), torch.arange(10) % 2, k=2, batch_size=10, num_batches=1)
    g = result.graphs["input"][0]
    g.y = None
    with pytest.raises(ValueError, match="no labels"):
        draw_latent_graphs({"input": g}, tmp_path / "g.png")


def test_drawing_has_a_class_legend_with_the_node_colours(tmp_path, monkeypatch):
    from latentgraph.viz import graphs as viz_graphs

    figures = []
    monkeypatch.setattr(viz_graphs, "save_figure", lambda fig, path: figures.append(fig) or path)
    y = torch.tensor([0, 0, 0, 2, 2, 2, 5, 5, 5])
    result = analyze(_positive_model(), torch.rand(9, 3), y, k=2, batch_size=9, num_batches=1)
    draw_latent_graphs({"input": result.graphs["input"][0]}, tmp_path / "g.png")
    (legend,) = figures[0].legends
    assert [t.get_text() for t in legend.get_texts()] == ["0", "2", "5"]
    scatter = figures[0].axes[0].collections[-1]
    legend_colours = [tuple(h.get_markerfacecolor()) for h in legend.legend_handles]
    node_colours = {int(c): tuple(rgba) for c, rgba in zip(y, scatter.to_rgba(y.numpy()))}
    assert legend_colours == [node_colours[0], node_colours[2], node_colours[5]]


def test_drawing_a_graph_whose_edges_all_weigh_zero(tmp_path, monkeypatch):
    from matplotlib.collections import LineCollection
    from torch_geometric.data import Data

    from latentgraph.viz import graphs as viz_graphs

    figures = []
    monkeypatch.setattr(viz_graphs, "save_figure", lambda fig, path: figures.append(fig) or path)
    g = Data(edge_index=torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]]), edge_weight=torch.zeros(4),
             y=torch.tensor([0, 1, 1]), num_nodes=3)
    draw_latent_graphs({"g": g}, tmp_path / "g.png")
    (lines,) = [c for c in figures[0].axes[0].collections if isinstance(c, LineCollection)]
    alpha = lines.get_colors()[:, 3]
    assert len(alpha) == 1 and np.isfinite(alpha).all() and alpha[0] == pytest.approx(0.05)  # faint, not NaN


def test_one_layer_name_as_a_string_is_that_layer_not_its_characters():
    model, x, y = _data()
    assert analyze(model, x, y, layers="lin", k=2, batch_size=10, num_batches=1).names == ["lin"]


def test_meta_device_inputs_are_refused_by_name():
    model, x, y = _data()
    with pytest.raises(ValueError, match="`x` is on the meta device: it has a shape but no values"):
        analyze(model, x.to("meta"), y, k=2, batch_size=10)
