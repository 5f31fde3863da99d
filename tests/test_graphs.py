import numpy as np
import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.nn import GCNConv

import latentgraph as lg
from latentgraph.graphs import knn as knn_module
from latentgraph.graphs.approximate import APPROXIMATE_BACKENDS
from latentgraph.graphs.knn import KNN_BACKENDS, knn_indices


def brute_force_knn(x: np.ndarray, k: int, similarity: str) -> set[tuple[int, int]]:
    """Directed (i, neighbour) pairs by a plain loop over pairwise scores."""
    n = len(x)
    out = set()
    for i in range(n):
        scores = []
        for j in range(n):
            if i == j:
                continue
            if similarity == "rbf":
                score = -float(((x[i] - x[j]) ** 2).sum())
            else:
                a, b = x[i], x[j]
                if similarity == "pearson":
                    a, b = a - a.mean(), b - b.mean()
                score = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
            scores.append((-score, j))
        out |= {(i, j) for _, j in sorted(scores)[:k]}
    return out


@pytest.mark.parametrize("similarity", ["cosine", "pearson", "rbf"])
@pytest.mark.parametrize("n,k", [(12, 1), (30, 4), (25, 24)])
def test_knn_matches_brute_force(similarity, n, k):
    x = torch.randn(n, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(n + k))
    idx = knn_indices(x, k, similarity)
    got = {(i, int(j)) for i in range(n) for j in idx[i]}
    assert got == brute_force_knn(x.numpy(), k, similarity)


@pytest.mark.parametrize("backend", [b for b in lg.available_backends() if b not in ("torch", *APPROXIMATE_BACKENDS)])
@pytest.mark.parametrize("similarity", ["cosine", "rbf", "pearson"])
def test_installed_backends_give_the_same_edges(backend, similarity):
    x = torch.rand(200, 16, generator=torch.Generator().manual_seed(1))
    reference = knn_indices(x, 6, similarity, "torch").sort(dim=1).values
    assert torch.equal(knn_indices(x, 6, similarity, backend).sort(dim=1).values, reference)
    g_ref = lg.latent_graph(x, k=6, similarity=similarity)
    g = lg.latent_graph(x, k=6, similarity=similarity, backend=backend)
    assert torch.equal(g.edge_index, g_ref.edge_index)
    assert torch.allclose(g.edge_weight, g_ref.edge_weight)


def test_blocked_search_equals_one_block(monkeypatch):
    x = torch.rand(50, 5, generator=torch.Generator().manual_seed(2))
    whole = knn_indices(x, 3, "cosine")
    monkeypatch.setattr(knn_module, "_ROWS", 7)  # blocks of 7 rows and 16 columns
    monkeypatch.setattr(knn_module, "_COLS", 16)
    assert torch.equal(knn_indices(x, 3, "cosine").sort(dim=1).values, whole.sort(dim=1).values)


@pytest.mark.parametrize("rows,cols,grouped_from", [(256, 16384, 512), (7, 64, 1), (5, 13, 1), (3, 128, 1)])
@pytest.mark.parametrize("n,k", [(300, 10), (129, 7), (64, 20), (40, 39), (200, 1)])
def test_blocked_topk_breaks_ties_by_index_like_a_stable_sort(monkeypatch, rows, cols, grouped_from, n, k):
    # small integers: exact products and many ties, across blocks, groups and merges
    monkeypatch.setattr(knn_module, "_ROWS", rows)
    monkeypatch.setattr(knn_module, "_COLS", cols)
    monkeypatch.setattr(knn_module, "_GROUPED_FROM", grouped_from)
    gen = torch.Generator().manual_seed(n + k)
    for high in (1, 2, 100):
        q = torch.randint(0, high + 1, (n, 3), generator=gen).float()
        scores = (q @ q.T).fill_diagonal_(float("-inf"))
        expected = torch.sort(scores, dim=1, descending=True, stable=True)
        values, index = knn_module.blocked_topk(q, q, k)
        assert torch.equal(index.sort(dim=1).values, expected.indices[:, :k].sort(dim=1).values)
        assert torch.equal(values.sort(dim=1).values, expected.values[:, :k].sort(dim=1).values)


def stable_topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First k of each row by (score descending, index ascending), diagonal excluded: a stable sort."""
    best = torch.sort(scores.clone().fill_diagonal_(float("-inf")), dim=1, descending=True, stable=True)
    return best.values[:, :k], best.indices[:, :k]


@pytest.mark.parametrize("similarity", ["cosine", "pearson", "rbf"])
@pytest.mark.parametrize("tile,group", [(16, 16), (37, 16), (64, 4), (1024, 16)])
@pytest.mark.parametrize("n,k", [(300, 10), (129, 7), (70, 1), (40, 39)])
def test_symmetric_topk_breaks_ties_by_index_like_a_stable_sort(monkeypatch, similarity, tile, group, n, k):
    # small integers: exact products and many ties, across tiles (remainders not divisible
    # by the group size), groups, thresholds and merges
    monkeypatch.setattr(knn_module, "_TILE", tile)
    monkeypatch.setattr(knn_module, "_GROUP", group)
    gen = torch.Generator().manual_seed(n + k + tile)
    for high in (1, 2, 100):
        e = torch.randint(0, high + 1, (n, 3), generator=gen).float()
        queries, keys = knn_module.score_factors(e, lg.graphs.similarity.get_similarity(similarity))
        scores = queries @ keys.T
        assert torch.equal(scores, scores.T)
        expected_values, expected_index = stable_topk(scores, k)
        values, index = knn_module.symmetric_topk(queries, keys, k)
        assert torch.equal(index.sort(dim=1).values, expected_index.sort(dim=1).values)
        assert torch.equal(values.sort(dim=1).values, expected_values.sort(dim=1).values)


def _exact_embedding_data(similarity: str, n: int, gen: torch.Generator) -> torch.Tensor:
    """Tie-heavy data whose embedding is exact in float32: rows of ±1 with two of each sign
    or constant (norm 2; Pearson: the constant rows become zero rows), or for RBF integer
    rows together with their negatives (batch mean 0)."""
    if similarity == "rbf":
        half = torch.randint(-2, 3, (n // 2, 3), generator=gen).float()
        return torch.cat([half, -half])[torch.randperm(n // 2 * 2, generator=gen)]
    rows = torch.tensor([[1, 1, -1, -1], [1, -1, 1, -1], [1, -1, -1, 1], [1, 1, 1, 1], [-1, -1, -1, -1]]).float()
    return rows[torch.randint(0, len(rows), (n,), generator=gen)]


def _stable_knn(x: torch.Tensor, k: int, similarity: str) -> torch.Tensor:
    """Brute-force neighbours of x (float64, formulas written out), ties by index."""
    x = x.double()
    if similarity == "rbf":
        scores = -((x[:, None] - x[None]) ** 2).sum(-1)
    else:
        e = x - x.mean(dim=1, keepdim=True) if similarity == "pearson" else x
        e = e / e.norm(dim=1, keepdim=True).clamp_min(1e-300)
        scores = e @ e.T
    return stable_topk(scores, k)[1]


@pytest.mark.parametrize("similarity", ["cosine", "pearson", "rbf"])
@pytest.mark.parametrize("n,k,tile", [(300, 10, 64), (250, 5, 37), (90, 20, 32)])
def test_self_search_takes_the_symmetric_path_from_the_threshold(monkeypatch, similarity, n, k, tile):
    def refuse(*args):
        raise AssertionError("blocked_topk used above the symmetric threshold")

    x = _exact_embedding_data(similarity, n, torch.Generator().manual_seed(n + k))
    expected = _stable_knn(x, k, similarity).sort(dim=1).values
    monkeypatch.setattr(knn_module, "_TILE", tile)
    monkeypatch.setattr(knn_module, "_SYMMETRIC_FROM", n)
    monkeypatch.setattr(knn_module, "blocked_topk", refuse)
    assert torch.equal(knn_indices(x, k, similarity).sort(dim=1).values, expected)
    monkeypatch.setattr(knn_module, "_SYMMETRIC_FROM", n + 1)  # below it: the blocked search
    with pytest.raises(AssertionError, match="blocked_topk used"):
        knn_indices(x, k, similarity)


def test_symmetric_search_is_used_for_many_or_wide_samples():
    assert knn_module._symmetric_pays(6144, 64) and not knn_module._symmetric_pays(6143, 255)
    assert knn_module._symmetric_pays(2048, 256) and not knn_module._symmetric_pays(2047, 4096)


def test_ties_are_broken_by_index_and_keep_k_neighbours():
    x = torch.zeros(6, 4)  # all-zero rows (dead ReLUs): every similarity ties at 0
    x[3] = 1.0
    idx = knn_indices(x, 2, "cosine")
    assert idx.tolist() == [[1, 2], [0, 2], [0, 1], [0, 1], [0, 1], [0, 1]]
    dup = torch.tensor([[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 2)  # duplicated rows
    idx = knn_indices(dup, 3, "rbf").sort(dim=1).values
    assert idx.tolist()[0] == [1, 2, 3] and idx.tolist()[4] == [0, 1, 5]
    g = lg.latent_graph(x, k=2)
    assert torch.bincount(g.edge_index[0], minlength=6).min() >= 2


def test_hand_computed_cosine_graph():
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    g = lg.latent_graph(x, k=1, normalize=False)
    c = 2 ** -0.5
    assert g.edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]
    assert torch.allclose(g.edge_weight, torch.tensor([c, c, c, c]))
    gn = lg.latent_graph(x, k=1)  # degrees c, 2c, c
    expected = c / torch.sqrt(torch.tensor([c * 2 * c] * 4))
    assert torch.allclose(gn.edge_weight, expected)


def test_rbf_bandwidth_is_the_median_edge_length():
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]])  # kNN(1): 0-1, 1-0, 2-1, 3-2
    g = lg.latent_graph(x, k=1, similarity="rbf", normalize=False)
    lengths = (x[g.edge_index[0]] - x[g.edge_index[1]]).abs().flatten()
    sigma = lengths.median()
    assert torch.allclose(g.edge_weight, torch.exp(-lengths**2 / (2 * sigma**2)))
    g2 = lg.latent_graph(x, k=1, similarity="rbf", normalize=False, sigma=1.0)
    assert torch.allclose(g2.edge_weight, torch.exp(-lengths**2 / 2))


def test_auto_similarity_follows_the_sign_of_the_data():
    pos = torch.rand(10, 3)
    assert torch.allclose(lg.dense_adjacency(pos, k=3), lg.dense_adjacency(pos, k=3, similarity="cosine"))
    neg = pos - 0.5
    assert torch.allclose(lg.dense_adjacency(neg, k=3), lg.dense_adjacency(neg, k=3, similarity="rbf"))


@pytest.mark.parametrize("similarity", ["cosine", "rbf", "pearson"])
@pytest.mark.parametrize("k", [None, 3])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("edges", ["all", "inter_class", "intra_class"])
def test_sparse_graph_equals_dense_adjacency(similarity, k, normalize, edges):
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(15, 2, 3, generator=gen), torch.randint(0, 3, (15,), generator=gen)
    g = lg.latent_graph(x, y, k=k, similarity=similarity, normalize=normalize, edges=edges)
    dense = lg.dense_adjacency(x, k=k, similarity=similarity, normalize=normalize, y=y, edges=edges)
    rebuilt = torch.zeros(15, 15).index_put((g.edge_index[0], g.edge_index[1]), g.edge_weight)
    assert torch.allclose(rebuilt, dense, atol=1e-6)
    assert torch.equal(dense, dense.T) or torch.allclose(dense, dense.T)
    assert dense.diagonal().abs().sum() == 0


def test_edges_are_undirected_sorted_and_loop_free():
    g = lg.latent_graph(torch.rand(40, 8), k=5)
    row, col = g.edge_index
    assert (row != col).all()
    keys = row * 40 + col
    assert torch.equal(keys, keys.sort().values)
    assert torch.equal((col * 40 + row).sort().values, keys)
    assert (torch.bincount(row, minlength=40) >= 5).all()


def test_mutual_symmetrization_is_a_subset_of_union():
    x = torch.rand(30, 4)
    union = lg.dense_adjacency(x, k=3, normalize=False) > 0
    mutual = lg.dense_adjacency(x, k=3, normalize=False, symmetrize="mutual") > 0
    assert (mutual <= union).all() and mutual.sum() < union.sum()


def test_inter_class_graph_of_one_class_is_empty_not_nan():
    x, y = torch.rand(8, 3), torch.zeros(8, dtype=torch.long)
    A = lg.dense_adjacency(x, k=3, y=y, edges="inter_class")
    assert torch.equal(A, torch.zeros(8, 8))
    g = lg.latent_graph(x, y, k=3, edges="inter_class")
    assert g.edge_index.shape == (2, 0) and lg.label_variation(g, normalized=True) == 0


def test_dict_and_list_inputs_give_one_graph_per_layer():
    layers = {"a": torch.rand(10, 4), "b": torch.rand(10, 2, 2)}
    graphs = lg.latent_graph(layers, k=2)
    assert set(graphs) == {"a", "b"} and graphs["b"].x.shape == (10, 4)
    assert len(lg.latent_graph(list(layers.values()), k=2)) == 2


@pytest.mark.parametrize("similarity", ["cosine", "rbf", "pearson"])
def test_dense_adjacency_gradcheck(similarity):
    # the default RBF bandwidth is detached by design, so the check fixes it
    sigma = 0.7 if similarity == "rbf" else None
    x = torch.rand(7, 4, dtype=torch.float64, requires_grad=True)
    for k in (3, None):
        assert torch.autograd.gradcheck(lambda x: lg.dense_adjacency(x, k=k, similarity=similarity, sigma=sigma), (x,))


def test_edge_weight_gradcheck():
    x = torch.rand(7, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: lg.latent_graph(x, k=2).edge_weight, (x,))


def test_zero_rows_give_finite_gradients():
    x = torch.rand(6, 3)
    x[2] = 0.0
    x.requires_grad_(True)
    lg.dense_adjacency(x, k=2).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_transform_repr_and_gnn_composition():
    from torch_geometric.data import Data

    assert repr(lg.LatentGraph(k=6)) == "LatentGraph(k=6)"
    assert repr(lg.LatentGraph(k=3, similarity="rbf")) == "LatentGraph(k=3, similarity='rbf')"
    data = lg.LatentGraph(k=3)(Data(x=torch.rand(12, 5), y=torch.arange(12) % 2))
    assert data.x.shape == (12, 5)
    out = GCNConv(5, 2)(data.x, data.edge_index, data.edge_weight)
    assert out.shape == (12, 2) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="data.x"):
        lg.LatentGraph(k=3)(Data(edge_index=torch.zeros(2, 0, dtype=torch.long), num_nodes=3))


BAD_INPUTS = [
    (dict(x=torch.tensor([[float("nan"), 1.0]] * 3)), ValueError, "NaN"),
    (dict(x=torch.tensor([[float("inf"), 1.0]] * 3)), ValueError, "infinite"),
    (dict(x=torch.rand(5)), ValueError, "shape B"),
    (dict(x=torch.rand(0, 3)), ValueError, "empty"),
    (dict(x=[[1.0, 2.0]]), TypeError, "torch.Tensor"),
    (dict(x=torch.ones(4, 3, dtype=torch.long)), TypeError, "floating"),
    (dict(x=torch.rand(5, 3), k=0), ValueError, "1..B-1"),
    (dict(x=torch.rand(5, 3), k=5), ValueError, "1..B-1"),
    (dict(x=torch.rand(5, 3), k=2.0), TypeError, "`k`"),
    (dict(x=torch.rand(5, 3), k=True), TypeError, "`k`"),
    (dict(x=torch.rand(5, 3), k=2, similarity="euclid"), ValueError, "similarity"),
    (dict(x=torch.rand(5, 3), k=2, backend="annoy"), ValueError, "backend"),
    (dict(x=torch.rand(5, 3), k=2, edges="some"), ValueError, "edges"),
    (dict(x=torch.rand(5, 3), k=2, symmetrize="max"), ValueError, "symmetrize"),
    (dict(x=torch.rand(5, 3), k=2, edges="inter_class"), ValueError, "needs class labels"),
    (dict(x=torch.rand(5, 3), y=torch.zeros(4, dtype=torch.long), k=2), ValueError, r"shape \[5\]"),
    (dict(x=torch.rand(5, 3), y=torch.zeros(5), k=2), TypeError, "integer class labels"),
    (dict(x=torch.rand(5, 3), y=-torch.ones(5, dtype=torch.long), k=2), ValueError, "non-negative"),
    (dict(x=torch.rand(5, 3), y=torch.zeros(5, dtype=torch.long, device="meta"), k=2), ValueError, "meta"),
    (dict(x=torch.rand(5, 3), k=2, similarity="rbf", sigma=0.0), ValueError, "`sigma`"),
    (dict(x=torch.rand(5, 3), k=2, similarity="rbf", sigma=-1.0), ValueError, "`sigma`"),
    (dict(x=torch.rand(5, 3), k=2, similarity="rbf", sigma=float("nan")), ValueError, "`sigma`"),
    (dict(x=torch.rand(5, 3), k=2, similarity="rbf", sigma="wide"), TypeError, "`sigma`"),
    (dict(x=torch.rand(5, 3), k=2, similarity="rbf", sigma=torch.ones(2)), TypeError, "`sigma`"),
    (dict(x=torch.rand(5, 3), k=2, normalize="yes"), TypeError, "`normalize`"),
]


@pytest.mark.parametrize("kwargs,error,message", BAD_INPUTS)
@pytest.mark.parametrize("build", [lg.latent_graph, lg.dense_adjacency])
def test_bad_input_is_rejected(build, kwargs, error, message):
    with pytest.raises(error, match=message):
        build(**kwargs)


def test_missing_backend_names_the_available_ones():
    missing = [name for name in KNN_BACKENDS if name not in lg.available_backends()]
    if not missing:
        pytest.skip("every backend is installed")
    with pytest.raises(ValueError, match="not installed"):
        lg.latent_graph(torch.rand(5, 3), k=2, backend=missing[0])


@pytest.mark.parametrize("similarity", ["cosine", "rbf", "pearson"])
@pytest.mark.parametrize("symmetrize", ["union", "mutual"])
def test_search_values_equal_the_differentiable_weights(similarity, symmetrize):
    x = torch.randn(60, 9, generator=torch.Generator().manual_seed(4))
    fast = lg.latent_graph(x, k=4, similarity=similarity, symmetrize=symmetrize)
    slow = lg.latent_graph(x.clone().requires_grad_(True), k=4, similarity=similarity, symmetrize=symmetrize)
    assert torch.equal(fast.edge_index, slow.edge_index)
    assert torch.allclose(fast.edge_weight, slow.edge_weight.detach(), atol=1e-5)
    assert slow.edge_weight.requires_grad


def test_adjacency_mask_is_the_pattern_of_the_dense_adjacency():
    x, y = torch.rand(20, 5), torch.arange(20) % 3
    for edges in ("all", "inter_class", "intra_class"):
        mask = lg.adjacency_mask(x, k=4, y=y, edges=edges)
        dense = lg.dense_adjacency(x, k=4, y=y, edges=edges)
        assert mask.dtype == torch.bool and torch.equal(mask, dense > 0)


def test_rbf_is_exact_for_data_far_from_the_origin():
    # ‖x_i‖² + ‖x_j‖² − 2 x_iᵀx_j cancels every digit of a unit distance at norm 1000 in float32
    x = torch.randn(200, 16, generator=torch.Generator().manual_seed(5))
    far = x + 1000.0
    exact = brute_force_knn(far.double().numpy(), 5, "rbf")
    idx = knn_indices(far, 5, "rbf")
    assert {(i, int(j)) for i in range(200) for j in idx[i]} == exact
    near_graph, far_graph = lg.latent_graph(x, k=5, similarity="rbf"), lg.latent_graph(far, k=5, similarity="rbf")
    assert torch.equal(near_graph.edge_index, far_graph.edge_index)
    assert torch.allclose(near_graph.edge_weight, far_graph.edge_weight, atol=1e-4)
    assert torch.allclose(lg.dense_adjacency(far, k=5, similarity="rbf"), lg.dense_adjacency(x, k=5, similarity="rbf"),
                          atol=1e-4)


def test_rbf_search_values_are_the_exact_squared_distances():
    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(6)) * 3 + 500
    idx, values = knn_module.torch_knn_search(x, 4, "rbf")
    exact = ((x.double()[:, None] - x.double()[idx]) ** 2).sum(-1)
    assert torch.allclose(values.double(), exact, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("similarity", ["cosine", "rbf", "pearson"])
def test_half_precision_is_searched_like_float32(dtype, similarity):
    x = torch.rand(60, 12, generator=torch.Generator().manual_seed(7)).to(dtype)
    assert torch.equal(knn_indices(x, 4, similarity), knn_indices(x.float(), 4, similarity))
    g = lg.latent_graph(x, k=4, similarity=similarity)
    assert g.edge_weight.dtype == dtype and torch.isfinite(g.edge_weight).all()


def test_transform_drops_the_old_edge_attributes_and_keeps_the_rest():
    from torch_geometric.data import Data

    data = Data(x=torch.rand(10, 4), y=torch.arange(10) % 2, pos=torch.rand(10, 2),
                edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]), edge_attr=torch.rand(3, 2), name="batch 1")
    out = lg.LatentGraph(k=3)(data)
    assert "edge_attr" not in out and out.name == "batch 1" and torch.equal(out.pos, data.pos)
    assert out.edge_weight.shape[0] == out.edge_index.shape[1]
    assert torch.equal(data.edge_index, torch.tensor([[0, 1, 2], [1, 2, 3]]))  # the input is left alone


def test_transform_builds_one_graph_per_member_of_a_batch():
    from torch_geometric.data import Batch, Data

    parts = [Data(x=torch.rand(n, 4), y=torch.arange(n) % 2) for n in (6, 9)]
    batch = lg.LatentGraph(k=3)(Batch.from_data_list(parts))
    row, col = batch.edge_index
    assert torch.equal(batch.batch[row], batch.batch[col])  # no edge joins two graphs
    for part, back in zip(parts, batch.to_data_list()):
        alone = lg.latent_graph(part.x, part.y, k=3)
        assert torch.equal(back.edge_index, alone.edge_index)
        assert torch.allclose(back.edge_weight, alone.edge_weight)


def test_knn_indices_validates_and_resolves_auto():
    x = torch.rand(8, 3, generator=torch.Generator().manual_seed(8))
    assert torch.equal(knn_indices(x, 2, "auto"), knn_indices(x, 2, "cosine"))  # non-negative: cosine
    assert torch.equal(knn_indices(x - 0.5, 2, "auto"), knn_indices(x - 0.5, 2, "rbf"))
    with pytest.raises(ValueError, match="1..B-1"):
        knn_indices(x, 8, "rbf")
    with pytest.raises(ValueError, match="similarity"):
        knn_indices(x, 2, "euclid")
    with pytest.raises(ValueError, match="NaN"):
        knn_indices(torch.full((4, 2), float("nan")), 1, "rbf")


def test_similarity_matrix_validates_its_input():
    with pytest.raises(ValueError, match="shape B"):
        lg.similarity_matrix(torch.rand(3))
    with pytest.raises(ValueError, match="NaN"):
        lg.similarity_matrix(torch.tensor([[float("nan"), 1.0]] * 3))
    with pytest.raises(ValueError, match="`sigma`"):
        lg.similarity_matrix(torch.rand(3, 2), "rbf", sigma=0.0)
    assert lg.similarity_matrix(torch.rand(4, 2, 3)).shape == (4, 4)  # flattened per sample


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        (dict(k=0), ValueError, "`k`"),
        (dict(k=2.5), TypeError, "`k`"),
        (dict(similarity="euclid"), ValueError, "similarity"),
        (dict(edges="some"), ValueError, "edges"),
        (dict(symmetrize="max"), ValueError, "symmetrize"),
        (dict(backend="annoy"), ValueError, "backend"),
        (dict(normalize=1), TypeError, "normalize"),
        (dict(sigma=-2.0), ValueError, "sigma"),
    ],
)
def test_transform_rejects_bad_options_when_built(kwargs, error, message):
    with pytest.raises(error, match=message):
        lg.LatentGraph(**kwargs)


@pytest.mark.parametrize("similarity", ["cosine", "rbf", "pearson"])
@pytest.mark.parametrize("edges", ["all", "inter_class"])
@pytest.mark.parametrize("symmetrize", ["union", "mutual"])
def test_sparse_edge_weight_gradcheck_for_every_option(similarity, edges, symmetrize):
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(9, 4, dtype=torch.float64, generator=gen).requires_grad_(True)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])
    sigma = 0.8 if similarity == "rbf" else None  # the default bandwidth is detached by design

    def weights(x):
        return lg.latent_graph(x, y, k=3, similarity=similarity, edges=edges, symmetrize=symmetrize,
                               sigma=sigma).edge_weight

    assert torch.autograd.gradcheck(weights, (x,))


def test_a_new_similarity_is_one_class():
    from latentgraph.graphs.similarity import SIMILARITY_CLASSES, Similarity

    class Dot(Similarity, name="dot-test", larger_is_closer=True):
        def embedding(self, x):
            return x

        def matrix(self, x, sigma=None, fit=None):
            return x @ x.T

        def pair_values(self, x, row, col):
            return (x[row] * x[col]).sum(dim=1)

    try:
        x = torch.rand(12, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
        scores = (x @ x.T).fill_diagonal_(float("-inf"))
        expected = scores.topk(3, dim=1).indices.sort(dim=1).values
        assert torch.equal(knn_indices(x, 3, "dot-test").sort(dim=1).values, expected)
        g = lg.latent_graph(x, k=3, similarity="dot-test", normalize=False)
        dense = lg.dense_adjacency(x, k=3, similarity="dot-test", normalize=False)
        assert torch.allclose(torch.zeros(12, 12, dtype=x.dtype).index_put(tuple(g.edge_index), g.edge_weight), dense)
        assert lg.LatentGraph(k=3, similarity="dot-test")(Data(x=x)).edge_index.shape[1] == g.edge_index.shape[1]
    finally:
        del SIMILARITY_CLASSES["dot-test"]
    with pytest.raises(ValueError, match="similarity"):
        knn_indices(x, 3, "dot-test")


@pytest.mark.parametrize("similarity", ["rbf", "cosine"])
def test_float16_graphs_are_computed_in_float32_and_returned_in_float16(similarity):
    # randn * 10 at D = 512: squared norms and distances (~1e5) overflow float16 (65504)
    x = torch.randn(100, 512, generator=torch.Generator().manual_seed(11)) * 10
    if similarity == "cosine":
        x = x.abs()
    half = x.half()
    reference = lg.latent_graph(half.float(), k=10, similarity=similarity)
    g = lg.latent_graph(half, k=10, similarity=similarity)
    assert g.edge_weight.dtype == torch.float16 and torch.isfinite(g.edge_weight).all()
    assert torch.equal(g.edge_index, reference.edge_index)
    assert torch.allclose(g.edge_weight.float(), reference.edge_weight, atol=1e-3)
    dense = lg.dense_adjacency(half, k=10, similarity=similarity)  # no sigma passed, none blamed
    assert dense.dtype == torch.float16
    assert torch.allclose(dense.float(), lg.dense_adjacency(half.float(), k=10, similarity=similarity), atol=1e-3)
    data = lg.LatentGraph(k=10, similarity=similarity)(Data(x=half))
    assert torch.equal(data.edge_index, reference.edge_index) and torch.isfinite(data.edge_weight).all()
    grad = half.clone().requires_grad_(True)
    lg.latent_graph(grad, k=10, similarity=similarity).edge_weight.float().sum().backward()
    assert torch.isfinite(grad.grad).all()


@pytest.mark.parametrize("similarity,scale", [("cosine", 1e20), ("cosine", 1e-25), ("pearson", 1e20),
                                              ("rbf", 1e19), ("rbf", 1e-25)])
def test_very_large_or_small_values_give_the_same_graph(similarity, scale):
    x = torch.randn(60, 16, generator=torch.Generator().manual_seed(12))
    if similarity == "cosine":
        x = x.abs()
    sigma = 0.8 if similarity == "rbf" else None
    assert torch.equal(knn_indices(x * scale, 5, similarity), knn_indices(x, 5, similarity))
    for fixed in ({}, {"sigma": sigma * scale} if sigma else {}):
        reference = lg.latent_graph(x, k=5, similarity=similarity, sigma=sigma if fixed else None)
        g = lg.latent_graph(x * scale, k=5, similarity=similarity, **fixed)
        assert torch.equal(g.edge_index, reference.edge_index)
        assert torch.allclose(g.edge_weight, reference.edge_weight, atol=1e-5)
        dense = lg.dense_adjacency(x * scale, k=5, similarity=similarity, **fixed)
        assert torch.allclose(dense, lg.dense_adjacency(x, k=5, similarity=similarity, sigma=sigma if fixed else None),
                              atol=1e-5)
    big = (x * scale).requires_grad_(True)
    weights = lg.latent_graph(big, k=5, similarity=similarity).edge_weight
    assert torch.allclose(weights.detach(), lg.latent_graph(x, k=5, similarity=similarity).edge_weight, atol=1e-5)
    weights.sum().backward()
    assert torch.isfinite(big.grad).all()


@pytest.mark.skipif("faiss" not in lg.available_backends(), reason="faiss not installed")
@pytest.mark.parametrize("similarity", ["cosine", "rbf"])
def test_faiss_drops_self_even_when_duplicates_push_it_out(similarity):
    x = torch.tensor([[1.0, 2.0]] * 12 + [[3.0, 0.5]] * 4)  # 12 identical rows: k + 1 = 4 ties
    idx = knn_indices(x, 3, similarity, "faiss")
    rows = torch.arange(16)[:, None]
    assert idx.shape == (16, 3) and not (idx == rows).any()
    assert ((idx < 12) == (rows < 12)).all()  # each row's neighbours are its duplicates
    assert all(len(set(r)) == 3 for r in idx.tolist())
