import networkx as nx
import numpy as np
import pygsp
import pytest
import torch
from torch_geometric.data import Data

import latentgraph as lg


def random_graph(n: int, seed: int, isolated: bool = True) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    w = torch.rand(n, n, dtype=torch.float64, generator=gen) * (torch.rand(n, n, generator=gen) < 0.4)
    w = torch.triu(w, 1)
    w = w + w.T
    if isolated:
        w[0] = w[:, 0] = 0.0
    return w


def as_data(adj: torch.Tensor) -> Data:
    row, col = adj.nonzero().T
    return Data(edge_index=torch.stack([row, col]), edge_weight=adj[row, col], num_nodes=adj.shape[0])


@pytest.mark.parametrize("kind", ["combinatorial", "normalized"])
@pytest.mark.parametrize("seed", range(3))
def test_laplacian_matches_pygsp(kind, seed):
    adj = random_graph(12, seed)
    graph = pygsp.graphs.Graph(adj.numpy())
    graph.compute_laplacian(kind)
    expected = torch.as_tensor(graph.L.toarray())
    assert torch.allclose(lg.laplacian(adj, kind=kind), expected)
    assert torch.allclose(lg.laplacian(as_data(adj), kind=kind).to_dense(), expected)


@pytest.mark.parametrize("seed", range(3))
def test_variation_matches_pygsp_and_the_pairwise_sum(seed):
    adj = random_graph(15, seed)
    s = torch.randn(15, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    graph = pygsp.graphs.Graph(adj.numpy())
    graph.compute_laplacian("combinatorial")
    expected = np.trace(s.numpy().T @ graph.L @ s.numpy())
    pairwise = sum(adj[i, j] * ((s[i] - s[j]) ** 2).sum() for i in range(15) for j in range(i + 1, 15))
    for g in (adj, as_data(adj)):
        assert torch.allclose(lg.total_variation(g, s), torch.tensor(expected, dtype=torch.float64))
        assert torch.allclose(lg.total_variation(g, s), pairwise)
    assert torch.allclose(lg.total_variation(adj, s[:, 0]), lg.total_variation(as_data(adj), s[:, 0]))


def test_label_variation_by_hand_and_normalized_share():
    adj = torch.tensor([[0, 1, 2, 0], [1, 0, 0, 4], [2, 0, 0, 1], [0, 4, 1, 0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 2])
    inter = 2 + 4 + 1  # edges 0-2, 1-3, 2-3 join distinct classes
    assert lg.label_variation(adj, y).item() == pytest.approx(2 * inter)
    assert lg.label_variation(adj, y, normalized=True).item() == pytest.approx(inter / 8)
    data = as_data(adj)
    data.y = y
    assert lg.label_variation(data).item() == pytest.approx(2 * inter)


def test_label_variation_is_the_trace_form_on_random_graphs():
    adj = random_graph(12, 5)
    y = torch.randint(0, 4, (12,), generator=torch.Generator().manual_seed(5))
    onehot = torch.nn.functional.one_hot(y, 4).double()
    expected = torch.trace(onehot.T @ lg.laplacian(adj) @ onehot)
    assert torch.allclose(lg.label_variation(adj, y), expected)
    assert torch.allclose(lg.label_variation(as_data(adj), y), expected)


def test_label_variation_of_a_single_class_or_no_edges_is_zero():
    adj = random_graph(6, 0)
    assert lg.label_variation(adj, torch.zeros(6, dtype=torch.long)) == 0  # exactly, not ~1e-7
    assert lg.label_variation(adj, torch.zeros(6, dtype=torch.long), normalized=True) == 0
    assert lg.label_variation(torch.zeros(4, 4), torch.arange(4), normalized=True) == 0


def test_normalized_label_variation_is_in_unit_interval_on_real_graphs():
    x, y = torch.rand(40, 6), torch.randint(0, 4, (40,))
    value = lg.label_variation(lg.latent_graph(x, y, k=5), normalized=True)
    assert 0 <= value <= 1


def test_variation_gradcheck():
    adj = random_graph(6, 1).requires_grad_(True)
    s = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, s: lg.total_variation((a + a.T) / 2, s), (adj, s))
    y = torch.tensor([0, 1, 1, 2, 0, 2])
    assert torch.autograd.gradcheck(lambda a: lg.label_variation((a + a.T) / 2, y, normalized=True), (adj,))
    x = torch.rand(8, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: lg.label_variation(lg.dense_adjacency(x, k=3), y.repeat(2)[:8]), (x,))


def test_eigenmaps_solve_the_generalized_problem():
    adj = random_graph(10, 2, isolated=False) + 0.01 * (1 - torch.eye(10, dtype=torch.float64))
    coords = lg.eigenmaps(adj, dim=2).double()
    lap, deg = lg.laplacian(adj), torch.diag(adj.sum(1))
    for c in coords.T:
        lam = (c @ lap @ c) / (c @ deg @ c)
        assert torch.allclose(lap @ c, lam * deg @ c, atol=1e-5)
    assert torch.allclose(coords.T @ deg @ torch.ones(10, dtype=torch.float64), torch.zeros(2, dtype=torch.float64), atol=1e-5)


def test_pygsp_and_networkx_round_trips():
    adj = random_graph(9, 4)
    data = lg.from_pygsp(lg.to_pygsp(as_data(adj)))
    assert torch.allclose(lg.laplacian(data).to_dense().double(), lg.laplacian(adj))
    nxg = lg.to_networkx(as_data(adj))
    assert nxg.number_of_edges() == int((adj > 0).sum()) // 2
    back = lg.from_networkx(nxg)
    assert torch.allclose(lg.laplacian(back).to_dense().double(), lg.laplacian(adj))
    sensor = lg.from_pygsp(pygsp.graphs.Ring(8))
    assert sensor.pos.shape == (8, 2) and sensor.edge_index.shape[1] == 16
    labelled = lg.latent_graph(torch.rand(10, 3), torch.arange(10) % 2, k=2)
    assert nx.get_node_attributes(lg.to_networkx(labelled), "y")[3] == 1


@pytest.mark.parametrize(
    "call,error,message",
    [
        (lambda: lg.laplacian(torch.rand(3, 4)), ValueError, "square"),
        (lambda: lg.laplacian(torch.tensor([[0.0, 1.0], [2.0, 0.0]])), ValueError, "symmetric"),
        (lambda: lg.laplacian(torch.eye(3), kind="random_walk"), ValueError, "kind"),
        (lambda: lg.laplacian(torch.eye(2, dtype=torch.long)), TypeError, "floating"),
        (lambda: lg.laplacian("graph"), TypeError, "torch.Tensor"),
        (lambda: lg.total_variation(torch.eye(3), torch.rand(4)), ValueError, r"shape \[3\]"),
        (lambda: lg.total_variation(torch.eye(3), torch.full((3,), float("nan"))), ValueError, "NaN"),
        (lambda: lg.total_variation(Data(edge_index=torch.tensor([[0], [1]]), num_nodes=2), torch.rand(2)),
         ValueError, "undirected"),
        (lambda: lg.label_variation(torch.eye(3)), ValueError, "`y` is required"),
        (lambda: lg.label_variation(torch.eye(3), torch.rand(3)), TypeError, "integer"),
        (lambda: lg.label_variation(torch.eye(3), torch.arange(3), normalized="yes"), TypeError, "`normalized`"),
        (lambda: lg.eigenmaps(torch.eye(3), dim=3), ValueError, "dim"),
        (lambda: lg.from_pygsp("graph"), TypeError, "pygsp"),
        (lambda: lg.laplacian(Data(edge_index=torch.tensor([[0, 3], [3, 0]]), num_nodes=3)), ValueError,
         "outside 0..2"),
        (lambda: lg.laplacian(Data(edge_index=torch.tensor([[0.0, 1.0], [1.0, 0.0]]), num_nodes=2)), ValueError,
         "LongTensor"),
        (lambda: lg.total_variation(Data(edge_index=torch.tensor([[0, 1], [1, 0]]), edge_weight=torch.ones(3),
                                         num_nodes=2), torch.rand(2)), ValueError, r"edge_weight.*\[2\]"),
        (lambda: lg.label_variation(Data(edge_index=torch.tensor([[0, 1], [1, 0]]),
                                         edge_weight=torch.tensor([float("nan")] * 2), num_nodes=2),
                                    torch.tensor([0, 1])), ValueError, "edge_weight.*NaN"),
    ],
)
def test_bad_input_is_rejected(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_eigenmaps_leave_isolated_nodes_out_of_the_eigenproblem():
    core = random_graph(10, 2, isolated=False) + 0.01 * (1 - torch.eye(10, dtype=torch.float64))
    adj = torch.zeros(12, 12, dtype=torch.float64)
    active = torch.tensor([1, 2, 3, 4, 5, 6, 8, 9, 10, 11])  # nodes 0 and 7 have no edge
    adj[active[:, None], active[None, :]] = core
    coords, alone = lg.eigenmaps(adj, dim=2), lg.eigenmaps(core, dim=2)
    assert coords[[0, 7]].abs().sum() == 0
    assert torch.allclose(coords[active].abs(), alone.abs(), atol=1e-6)  # eigenvectors up to sign
    assert (coords[active].std(dim=0) > 0.1).all()  # no coordinate wasted on an isolated node


def test_dense_variation_promotes_mixed_dtypes_like_the_sparse_form():
    adj = random_graph(6, 3)
    s = torch.randn(6, 2, dtype=torch.float64)
    assert torch.allclose(lg.total_variation(adj.float(), s), lg.total_variation(as_data(adj.float()), s))


@pytest.mark.parametrize("seed", range(3))
def test_label_variation_matches_pygsp_dirichlet_energy(seed):
    adj = random_graph(14, seed + 10)
    y = torch.randint(0, 3, (14,), generator=torch.Generator().manual_seed(seed))
    graph = pygsp.graphs.Graph(adj.numpy())
    graph.compute_laplacian("combinatorial")
    onehot = np.eye(3)[y.numpy()]
    expected = sum(graph.dirichlet_energy(onehot[:, c]) for c in range(3))
    for g in (adj, as_data(adj)):
        assert lg.label_variation(g, y).item() == pytest.approx(expected)
