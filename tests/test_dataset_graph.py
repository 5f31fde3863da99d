"""Whole-data-set graphs: streaming features, exact and approximate search, sparse operators."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.sparse.csgraph import connected_components
from torch import nn

import latentgraph as lg
from latentgraph import gsp
from latentgraph.graphs.approximate import HNSWSearch, IVFSearch, probed_search
from latentgraph.graphs.knn import score_factors
from latentgraph.graphs.similarity import get_similarity

faiss = pytest.importorskip("faiss")


def clustered(n: int, dim: int, classes: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian clusters around random centres (features of a trained layer look alike)."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    centres = 3.0 * torch.randn(classes, dim, generator=gen)
    return centres[y] + torch.randn(n, dim, generator=gen), y


def brute_force_scores(x: torch.Tensor, similarity: str) -> np.ndarray:
    """Exact N×N closeness (larger = closer, −inf on the diagonal), written out in numpy."""
    a = x.double().numpy()
    if similarity == "rbf":
        scores = -((a[:, None, :] - a[None, :, :]) ** 2).sum(-1)
    else:
        if similarity == "pearson":
            a = a - a.mean(axis=1, keepdims=True)
        a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-300)
        scores = a @ a.T
    np.fill_diagonal(scores, -np.inf)
    return scores


def batches(x, y, size):
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


@pytest.mark.parametrize("backend", ["torch", "faiss"])
@pytest.mark.parametrize("similarity", ["cosine", "rbf", "pearson"])
def test_exact_backends_choose_the_brute_force_neighbours(backend, similarity):
    x, _ = clustered(300, 6, seed=1)
    x[10] = x[11] = x[12]  # ties: three identical samples
    k = 4
    idx = lg.knn_indices(x, k, similarity, backend=backend)
    scores = brute_force_scores(x, similarity)
    kth = -np.sort(-scores, axis=1)[:, k - 1]
    chosen = np.take_along_axis(scores, idx.numpy(), axis=1)
    assert (chosen >= kth[:, None] - 1e-9).all()  # every choice is among the k best, ties either way
    assert all(len(set(row)) == k and i not in row for i, row in enumerate(idx.tolist()))
    assert lg.knn_recall(x, idx, similarity, queries=None) == 1.0
    if backend == "torch":  # ties broken by index
        assert set(idx[10].tolist()) >= {11, 12} and set(idx[12].tolist()) >= {10, 11}


def test_dataset_graph_streams_the_loader_into_the_batch_graph_of_all_samples():
    x, y = clustered(230, 5, seed=2)
    model = nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Linear(12, 3))
    graphs = lg.dataset_graph(model, batches(x, y, 64), ["input", "1"], k=6)
    with torch.no_grad():
        hidden = model[1](model[0](x))
    for name, features in (("input", x), ("1", hidden)):
        expected = lg.latent_graph(features, y, k=6)
        assert graphs[name].num_nodes == 230 and torch.equal(graphs[name].y, y)
        assert torch.equal(graphs[name].edge_index, expected.edge_index)
        assert torch.allclose(graphs[name].edge_weight, expected.edge_weight, atol=1e-6)
    single = lg.dataset_graph(model, batches(x, y, 64), "1", k=6, backend="faiss")
    assert torch.equal(single.edge_index, graphs["1"].edge_index)


def test_dataset_features_keep_the_order_and_restore_the_mode():
    x = torch.randn(37, 4)
    model = nn.Sequential(nn.Linear(4, 6), nn.Dropout(0.5))
    model.train()
    feats, labels = lg.dataset_features(model, [x[:20], x[20:]], "1")
    assert labels is None and model.training
    assert torch.allclose(feats["1"], model[0](x).detach(), atol=1e-6)  # dropout off: eval mode


@pytest.mark.parametrize("backend", ["faiss-ivf", "faiss-hnsw"])
def test_approximate_backends_reach_a_high_recall_and_build_a_graph(backend):
    x, y = clustered(3000, 16, classes=10, seed=3)
    idx = lg.knn_indices(x, 10, "rbf", backend=backend)
    assert idx.shape == (3000, 10)
    assert all(i not in row and len(set(row)) == 10 for i, row in enumerate(idx.tolist()))
    assert lg.knn_recall(x, idx, "rbf", queries=500) >= 0.95
    g = lg.latent_graph(x, y, k=10, backend=backend)
    assert g.edge_index.shape[1] >= 3000 * 10 and float(lg.label_variation(g, normalized=True)) < 0.05


def test_exhaustive_ivf_is_exact_and_a_starved_index_still_fills_every_row():
    x, _ = clustered(400, 8, seed=4)
    exact = IVFSearch(nlist=8, nprobe=8)(x, 5, get_similarity("rbf"))[0]
    assert lg.knn_recall(x, exact, "rbf", queries=None) == 1.0
    # one probed cell out of 64 holds ~6 samples: many rows come back short and are searched again
    starved, values = IVFSearch(nlist=64, nprobe=1)(x, 10, get_similarity("rbf"))
    assert (starved >= 0).all() and all(i not in row and len(set(row)) == 10 for i, row in enumerate(starved.tolist()))
    expected = ((x[:, None, :] - x[starved]) ** 2).sum(-1)  # the chosen pairs' squared distances, exact rows too
    assert torch.allclose(values, expected, rtol=1e-4, atol=1e-4)
    hnsw = HNSWSearch(m=4, ef_search=4)(x, 5, get_similarity("cosine"))
    assert (hnsw >= 0).all() and hnsw.shape == (400, 5)


def test_ivf_recall_falls_when_fewer_cells_are_probed_and_the_search_is_deterministic():
    x, _ = clustered(3000, 16, classes=10, seed=3)
    sim = get_similarity("rbf")
    default, values = IVFSearch()(x, 10, sim)
    assert torch.equal(default, IVFSearch()(x, 10, sim)[0])  # same seed, same cells, same table
    assert lg.knn_recall(x, IVFSearch(nlist=200, nprobe=1)(x, 10, sim)[0], "rbf", queries=500) < 0.9
    assert lg.knn_recall(x, default, "rbf", queries=500) >= 0.95


def test_probed_search_is_the_exact_top_k_among_the_probed_cells():
    gen = torch.Generator().manual_seed(7)
    e = torch.randn(240, 5, generator=gen, dtype=torch.float64)
    offsets = torch.stack([torch.cat([torch.zeros(1, dtype=torch.long), 1 + torch.randperm(11, generator=gen)[:3]])
                           for _ in range(240)])
    probes = (torch.arange(240)[:, None] + offsets) % 12  # 12 cells of 20 samples, 4 distinct cells per row
    q, keys = score_factors(e, get_similarity("rbf"))
    scores = -((e[:, None, :] - e[None, :, :]) ** 2).sum(-1)  # written out: larger = closer
    allowed = (probes[:, :, None] == probes[:, 0][None, None, :]).any(dim=1)
    allowed.fill_diagonal_(False)
    expected = scores.masked_fill(~allowed, -torch.inf).topk(6, dim=1).indices
    assert torch.equal(probed_search(q, keys, probes, 6)[0], expected)
    # cell 1 is probed but holds no sample; rows of a cell of two get one neighbour, then -1
    small = probed_search(q[:4], keys[:4], torch.tensor([[0, 1], [0, 1], [2, 1], [2, 1]]), 2)[0]
    assert small.tolist() == [[1, -1], [0, -1], [3, -1], [2, -1]]


@pytest.mark.parametrize(("kwargs", "error", "phrase"), [
    ({"nprobe": 0}, ValueError, "`nprobe` must be an int ≥ 1"),
    ({"nlist": 0}, ValueError, "`nlist` must be an int ≥ 1"),
    ({"nlist": 4, "nprobe": 5}, ValueError, "`nprobe` must be at most `nlist` = 4"),
    ({"nlist": 16, "train_size": 8}, ValueError, "`train_size` must be at least `nlist` = 16"),
    ({"niter": 0}, ValueError, "`niter` must be an int ≥ 1"),
    ({"nprobe": 2.5}, TypeError, "`nprobe` must be an int"),
])
def test_ivf_search_rejects_bad_parameters(kwargs, error, phrase):
    with pytest.raises(error, match=phrase):
        IVFSearch(**kwargs)


def test_knn_recall_counts_wrong_neighbours_and_accepts_ties():
    x = torch.tensor([[0.0], [1.0], [3.0], [6.0], [10.0]])
    exact = lg.knn_indices(x, 2, "rbf")
    assert lg.knn_recall(x, exact, "rbf", queries=None) == 1.0
    wrong = exact.clone()
    wrong[0, 1] = 4  # node 0's second neighbour is node 2, not node 4
    assert lg.knn_recall(x, wrong, "rbf", queries=None) == pytest.approx(1 - 1 / 10)
    tied = torch.tensor([[0.0], [1.0], [-1.0], [5.0]])  # nodes 1 and 2 tie as node 0's nearest
    assert lg.knn_recall(tied, torch.tensor([[2], [0], [0], [1]]), "rbf", queries=None) == 1.0


def kn_graph(n=60, seed=5, isolated=()):
    """A connected kNN graph of random points (distinct eigenvalues), minus the edges of ``isolated``."""
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(seed))
    g = lg.latent_graph(x, k=6)
    if isolated:
        cut = torch.isin(g.edge_index, torch.tensor(isolated)).any(dim=0)
        g.edge_index, g.edge_weight = g.edge_index[:, ~cut], g.edge_weight[~cut]
    g.edge_weight = g.edge_weight.double()
    adj = lg.to_pygsp(g).W
    assert connected_components(adj[adj.getnnz(axis=1) > 0][:, adj.getnnz(axis=0) > 0])[0] == 1
    return g


@pytest.mark.parametrize("isolated", [(), (3, 17)])
def test_sparse_eigenmaps_equal_the_dense_ones(isolated):
    g = kn_graph(isolated=isolated)
    dense = lg.eigenmaps(g, dim=3, method="dense")
    sparse = lg.eigenmaps(g, dim=3, method="sparse")
    assert torch.allclose(sparse, dense, atol=1e-5)
    if isolated:
        assert sparse[list(isolated)].abs().sum() == 0


def test_eigenmaps_match_pygsp_fourier_basis():
    g = kn_graph(seed=6)
    graph = lg.to_pygsp(g)
    graph.compute_laplacian("normalized")
    graph.compute_fourier_basis()
    expected = torch.from_numpy(graph.U[:, 1:4] / np.sqrt(graph.dw)[:, None])
    ours = lg.eigenmaps(g, dim=3, method="sparse").double()
    assert torch.allclose(ours.abs(), expected.abs(), atol=1e-5)  # eigenvectors up to sign


def test_whole_graph_operators_never_form_a_dense_matrix(monkeypatch):
    x, y = clustered(5000, 8, classes=4, seed=7)
    g = lg.latent_graph(x, y, k=8, backend="faiss")

    def dense(*args, **kwargs):
        raise AssertionError("formed a dense N×N matrix")

    monkeypatch.setattr(gsp, "_dense_eigenmaps", dense)
    monkeypatch.setattr(torch.Tensor, "to_dense", dense)
    coords = lg.eigenmaps(g, dim=3)  # "auto": 5000 nodes > SPARSE_EIGEN_NODES
    assert coords.shape == (5000, 3) and torch.isfinite(coords).all()
    sigma = lg.label_variation(g, normalized=True)
    row, col = g.edge_index
    assert sigma == pytest.approx(float(g.edge_weight[y[row] != y[col]].sum() / g.edge_weight.sum()))
    lap = lg.laplacian(g)
    assert lap.is_sparse and lap._nnz() == g.edge_index.shape[1] + 5000


@pytest.mark.parametrize(
    "call, error, phrase",
    [
        (lambda m: lg.dataset_graph(m, [torch.rand(4, 3)], "0", k=None), TypeError, "`k`"),
        (lambda m: lg.dataset_graph(m, [], "0", k=2), ValueError, "no batch"),
        (lambda m: lg.dataset_graph(m, [torch.rand(4, 3)], "9", k=2), ValueError, "layers"),
        (lambda m: lg.dataset_features(m, ["abc"], "0"), TypeError, "loader"),
        (lambda m: lg.dataset_features(m, [torch.rand(4, 3)], []), ValueError, "layers"),
        (lambda m: lg.dataset_features(m, [(torch.rand(4, 3), torch.arange(4)), torch.rand(4, 3)], "0"), ValueError,
         "labels"),
        (lambda m: lg.knn_recall(torch.rand(5, 2), torch.zeros(4, 2, dtype=torch.long)), ValueError, "neighbours"),
        (lambda m: lg.knn_recall(torch.rand(5, 2), torch.full((5, 2), 7)), ValueError, "outside"),
        (lambda m: lg.eigenmaps(kn_graph(), dim=2, method="arpack"), ValueError, "method"),
    ],
)
def test_bad_input(call, error, phrase):
    with pytest.raises(error, match=phrase):
        call(nn.Sequential(nn.Linear(3, 2)))


def test_analyze_whole_reports_every_layer_beside_the_batch_means(tmp_path, capsys):
    from latentgraph import cli

    out = tmp_path / "report"
    assert cli.main(["analyze", "--epochs", "0", "--batches", "2", "--batch-size", "40", "--k", "5", "--no-plots",
                     "--layers", "input,block3,head", "--whole", "--whole-backend", "faiss", "--output", str(out)]) == 0
    table = (out / "whole_set.md").read_text()
    assert table in capsys.readouterr().out
    rows = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row[0].strip() for row in rows] == ["input", "block3", "head"]
    held_out = int(table.split(" samples")[0].split()[-1])
    for row in rows:
        assert int(row[1]) >= held_out * 5 / 2 and 0 <= float(row[2]) <= 1
