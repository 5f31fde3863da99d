"""LabelVariationLoss, LaplacianSmoothnessLoss, Parseval and their objectives."""
import pytest
import torch
from torch import nn

import latentgraph as lg
from latentgraph.losses.label_variation import LabelVariationLoss
from latentgraph.losses.parseval import (
    ParsevalPenalty,
    orthonormality_error,
    parseval_retraction_,
    parseval_weights,
)
from latentgraph.losses.laplacian_smoothness import LaplacianSmoothnessLoss, indicator_smoothness, relu_layer_names
from latentgraph.models import SmallCNN
from latentgraph.train.objectives import (
    LabelVariationObjective,
    LaplacianSmoothnessObjective,
    ParsevalObjective,
    get_objective,
)


def _cosine(x):
    """Cosine similarities written out: normalized rows, dot products."""
    x = x.flatten(1)
    norms = torch.sqrt((x * x).sum(1, keepdim=True))
    u = x / norms
    return u @ u.T


def _knn_union_mask(sim, k):
    b = sim.shape[0]
    s = sim.clone()
    s.fill_diagonal_(-float("inf"))
    chosen = torch.zeros(b, b, dtype=torch.bool)
    for i in range(b):
        chosen[i, torch.topk(s[i], k).indices] = True
    return chosen | chosen.T


def _inter_class(y):
    return y[:, None] != y[None, :]


# ------------------------------------------------------------ label variation


def test_label_variation_loss_complete_cosine_graph_by_hand():
    x = torch.rand(7, 5, dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 0])
    a = _cosine(x) * (1 - torch.eye(7, dtype=torch.float64))
    inter = (a * _inter_class(y)).sum()
    assert torch.allclose(LabelVariationLoss(k=None, normalized=False)(x, y), inter)
    assert torch.allclose(LabelVariationLoss(k=None)(x, y), inter / a.sum())


def test_label_variation_loss_knn_graph_by_hand():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(9, 4, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])
    sim = _cosine(x)
    a = sim * _knn_union_mask(sim, 3)
    expected = (a * _inter_class(y)).sum() / a.sum()
    assert torch.allclose(LabelVariationLoss(k=3)(x, y), expected)


def test_label_variation_loss_rbf_for_signed_features():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    off = ~torch.eye(6, dtype=torch.bool)
    sigma = d2[off].sqrt().median()
    a = torch.exp(-d2 / (2 * sigma**2)) * off
    assert torch.allclose(LabelVariationLoss(k=None, normalized=False)(x, y), (a * _inter_class(y)).sum())


def test_label_variation_loss_graph_normalization():
    x = torch.rand(5, 3, dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 1, 1])
    a = _cosine(x) * (1 - torch.eye(5, dtype=torch.float64))
    d = a.sum(1)
    a_hat = a / torch.sqrt(d[:, None] * d[None, :])
    loss = LabelVariationLoss(k=None, normalize=True, normalized=False)
    assert torch.allclose(loss(x, y), (a_hat * _inter_class(y)).sum())


def test_label_variation_loss_gradcheck():
    x = torch.rand(6, 4, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    assert torch.autograd.gradcheck(lambda t: LabelVariationLoss(k=None)(t, y), (x,))
    assert torch.autograd.gradcheck(lambda t: LabelVariationLoss(k=2, normalized=False)(t, y), (x,))


def test_label_variation_loss_single_class_is_zero():
    x = torch.rand(5, 3, requires_grad=True)
    loss = LabelVariationLoss(k=2)(x, torch.zeros(5, dtype=torch.long))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(x.grad).all() and (x.grad == 0).all()


def test_label_variation_loss_bad_inputs():
    with pytest.raises(ValueError, match="k"):
        LabelVariationLoss(k=5)(torch.rand(4, 3), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="y"):
        LabelVariationLoss(k=2)(torch.rand(4, 3), torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match="NaN"):
        LabelVariationLoss(k=2)(torch.full((4, 3), float("nan")), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="similarity"):
        LabelVariationLoss(similarity="manhattan")
    with pytest.raises(ValueError, match="`k` must be at least 1"):
        LabelVariationLoss(k=0)
    with pytest.raises(TypeError, match="`k` must be an int or None"):
        LabelVariationLoss(k=2.0)


def test_label_variation_loss_repr():
    assert repr(LabelVariationLoss(k=4)) == (
        "LabelVariationLoss(k=4, similarity='auto', normalize=False, normalized=True)"
    )


# ------------------------------------------------------------ Laplacian smoothness


def _sigma_official(x, y, m, mask=None):
    """The reference recipe: cosine W (diagonal included), optional 0/1 kNN mask,
    L = diag(W 1) - W, trace(Yᵀ L^m Y) with a 10-column one-hot Y."""
    w = _cosine(x)
    if mask is not None:
        w = w * (mask | torch.eye(w.shape[0], dtype=torch.bool))
    lap = torch.diag(w.sum(1)) - w
    lap_m = torch.linalg.matrix_power(lap, m)
    onehot = torch.zeros(x.shape[0], 10, dtype=x.dtype)
    onehot[torch.arange(x.shape[0]), y] = 1
    return torch.trace(onehot.T @ lap_m @ onehot)


def test_smoothness_matches_reference_recipe():
    g = torch.Generator().manual_seed(0)
    layers = [torch.rand(8, d, generator=g, dtype=torch.float64) for d in (5, 7, 3, 4)]
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    sig = [_sigma_official(layer, y, 2) for layer in layers]
    expected = sum(abs(b - a) for a, b in zip(sig, sig[1:])) / 3
    assert torch.allclose(LaplacianSmoothnessLoss()(layers, y), expected)
    sig_knn = [_sigma_official(layer, y, 3, _knn_union_mask(_cosine(layer), 2)) for layer in layers]
    expected_knn = sum(abs(b - a) for a, b in zip(sig_knn, sig_knn[1:])) / 3
    assert torch.allclose(LaplacianSmoothnessLoss(k=2, power=3)(layers, y), expected_knn)


def test_indicator_smoothness_power_one_is_label_variation():
    x = torch.rand(6, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 2, 2, 0])
    graph = lg.dense_adjacency(x, k=None, similarity="cosine", normalize=False)
    assert torch.allclose(indicator_smoothness(x, y, power=1), lg.label_variation(graph, y))


def test_smoothness_gradcheck():
    layers = tuple(torch.rand(6, d, dtype=torch.float64, requires_grad=True) for d in (3, 4, 5))
    y = torch.tensor([0, 1, 0, 1, 2, 2])
    assert torch.autograd.gradcheck(lambda *ls: LaplacianSmoothnessLoss()(list(ls), y), layers)


def test_smoothness_single_class_is_zero():
    layers = [torch.rand(4, 3), torch.rand(4, 5)]
    assert LaplacianSmoothnessLoss()(layers, torch.ones(4, dtype=torch.long)).item() == 0.0


def test_smoothness_bad_inputs():
    y = torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="at least 2 layers"):
        LaplacianSmoothnessLoss()([torch.rand(4, 3)], y)
    with pytest.raises(TypeError, match="list of tensors"):
        LaplacianSmoothnessLoss()(torch.rand(4, 3), y)
    with pytest.raises(ValueError, match="same batch size"):
        LaplacianSmoothnessLoss()([torch.rand(4, 3), torch.rand(5, 3)], y)
    with pytest.raises(ValueError, match="power"):
        LaplacianSmoothnessLoss(power=0)
    with pytest.raises(ValueError, match="`k` must be at least 1"):
        LaplacianSmoothnessLoss(k=-1)


def test_relu_layer_names_of_small_cnn():
    assert relu_layer_names(SmallCNN(width=4)) == ["block1.2", "block2.2", "block3.2"]


# ------------------------------------------------------------ Parseval


def test_parseval_penalty_by_hand_on_conv_and_linear():
    conv = torch.randn(4, 2, 3, 3, dtype=torch.float64)
    lin = torch.randn(3, 5, dtype=torch.float64)
    expected = 0.0
    for w in (conv, lin):
        m = w.reshape(w.shape[0], -1)
        expected = expected + ((m @ m.T - torch.eye(m.shape[0], dtype=torch.float64)) ** 2).sum()
    assert torch.allclose(ParsevalPenalty()([conv, lin]), expected)
    assert torch.autograd.gradcheck(
        lambda w: ParsevalPenalty()([w]), (lin.clone().requires_grad_(True),)
    )


def test_parseval_weights_skip_biases_and_norms():
    model = SmallCNN(width=4)
    assert [p.dim() for p in parseval_weights(model)] == [4, 4, 4, 2]


def test_parseval_retraction_formula_and_effect():
    g = torch.Generator().manual_seed(0)
    w = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))[0][:3] * 1.2
    expected = 1.01 * w - 0.01 * (w @ w.T @ w)
    before = orthonormality_error(w)
    parseval_retraction_([w], beta=0.01)
    assert torch.allclose(w, expected)
    assert orthonormality_error(w) < before
    with pytest.raises(ValueError, match="beta"):
        parseval_retraction_([w], beta=0.0)
    with pytest.raises(ValueError, match="dimension"):
        ParsevalPenalty()([torch.ones(3)])
    with pytest.raises(TypeError, match="`weights` must hold tensors"):
        ParsevalPenalty()([[1.0, 2.0]])
    with pytest.raises(ValueError, match="holds no weight"):
        ParsevalPenalty()(nn.BatchNorm1d(3))
    with pytest.raises(ValueError, match="holds no weight"):
        parseval_retraction_([], beta=0.1)


# ------------------------------------------------------------ objectives


def _cnn_batch():
    torch.manual_seed(0)
    return SmallCNN(width=4), (torch.rand(12, 1, 8, 8), torch.arange(12) % 3)


def test_objectives_are_registered():
    assert get_objective("label_variation") is LabelVariationObjective
    assert get_objective("laplacian_smoothness") is LaplacianSmoothnessObjective
    assert get_objective("parseval") is ParsevalObjective


def test_laplacian_smoothness_objective_weights_by_gamma_power():
    model, (x, y) = _cnn_batch()
    objective = LaplacianSmoothnessObjective(gamma=0.5, power=2)
    terms = objective(model, (x, y))
    with lg.capture(model, relu_layer_names(model)) as acts:
        logits = model(x)
    reg = LaplacianSmoothnessLoss(power=2)(list(acts.values()), y)
    assert torch.allclose(terms["smoothness"], reg) and objective.weights == {"smoothness": 0.25}  # raw term, γ^m
    assert torch.allclose(terms["ce"], nn.functional.cross_entropy(logits, y))


def test_label_variation_objective_layer_and_cross_entropy():
    model, (x, y) = _cnn_batch()
    objective = LabelVariationObjective(k=3, layer="pool", cross_entropy=True, weight=2.0)
    terms = objective(model, (x, y))
    with lg.capture(model, ["pool"]) as acts:
        model(x)
    assert sorted(terms) == ["ce", "label_variation"]
    assert torch.allclose(terms["label_variation"], LabelVariationLoss(k=3)(acts["pool"], y))  # raw term
    assert objective.weights == {"label_variation": 2.0}


def test_parseval_objective_retracts_after_each_optimizer_step():
    model, (x, y) = _cnn_batch()
    w = model.head.weight.detach().clone()
    objective = ParsevalObjective(retraction=0.01)
    assert sorted(objective(model, (x, y))) == ["ce"]
    assert torch.equal(model.head.weight, w)  # computing the terms never moves the weights
    with torch.no_grad():
        objective.after_step(model)
    assert torch.allclose(model.head.weight, 1.01 * w - 0.01 * (w @ w.T @ w))
    with pytest.raises(ValueError, match="retraction"):
        ParsevalObjective(retraction=-1.0)


def test_trainer_calls_after_step_once_per_optimizer_step():
    from latentgraph.train import Trainer

    calls = []

    class Counting(ParsevalObjective):
        def after_step(self, model):
            calls.append(torch.is_grad_enabled())
            super().after_step(model)

    model, (x, y) = _cnn_batch()
    loader = [(x, y)] * 3
    Trainer(model, Counting(), lambda p: torch.optim.SGD(p, lr=0.01), progress=False, metrics={}).fit(loader, 2)
    assert calls == [False] * 6


def test_objective_bad_arguments():
    with pytest.raises(ValueError, match="`gamma` must be a finite number"):
        LaplacianSmoothnessObjective(gamma=-0.01)
    with pytest.raises(TypeError, match="`gamma` must be a number"):
        LaplacianSmoothnessObjective(gamma="0.01")
    with pytest.raises(ValueError, match="`weight` must be a finite number"):
        LabelVariationObjective(weight=float("nan"))
    with pytest.raises(ValueError, match="`penalty` must be a finite number"):
        ParsevalObjective(penalty=float("inf"))
    with pytest.raises(ValueError, match="`k` must be at least 1"):
        LabelVariationObjective(k=0)


def test_objectives_train_with_the_trainer():
    from latentgraph.train import Trainer

    model, (x, y) = _cnn_batch()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=6, shuffle=True)
    for objective in (LaplacianSmoothnessObjective(), ParsevalObjective(penalty=1e-3),
                      LabelVariationObjective(k=3)):
        trainer = Trainer(model, objective, lambda p: torch.optim.SGD(p, lr=0.01), progress=False)
        history = trainer.fit(loader, epochs=1)
        assert all(torch.isfinite(torch.tensor(v)) for k, v in history[0].items() if k.startswith("train/"))


def test_laplacian_objective_apply_relu_matches_relu_modules():
    class Functional(nn.Module):  # F.relu in forward: ReLUs are not modules
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.head = nn.Linear(4, 6), nn.Linear(6, 5), nn.Linear(5, 3)

        def forward(self, x):
            return self.head(torch.relu(self.fc2(torch.relu(self.fc1(x)))))

    torch.manual_seed(0)
    functional = Functional()
    modules = nn.Sequential(functional.fc1, nn.ReLU(), functional.fc2, nn.ReLU(), functional.head)
    x, y = torch.rand(9, 4), torch.arange(9) % 3
    a = LaplacianSmoothnessObjective(layers=["fc1", "fc2"], apply_relu=True)(functional, (x, y))
    b = LaplacianSmoothnessObjective()(modules, (x, y))
    assert torch.allclose(a["smoothness"], b["smoothness"]) and torch.allclose(a["ce"], b["ce"])


def test_robustness_configs_build():
    from pathlib import Path

    from latentgraph.train.build import build_objective, model_from_config
    from latentgraph.train.config import load_config

    paths = sorted(Path(__file__).resolve().parents[1].glob("configs/robustness/*.yaml"))
    assert len(paths) >= 4
    for path in paths:
        config = load_config(path)
        objective = build_objective(config.method, model_from_config(config.model), None, torch.rand(2, 3, 32, 32))
        assert callable(objective)


def test_a_laplacian_power_that_overflows_is_an_error_not_nan():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(128, 16, generator=g), torch.randint(0, 4, (128,), generator=g)
    assert torch.isfinite(indicator_smoothness(x, y, power=2))
    with pytest.raises(ValueError, match=r"`power` = 40 is too large for this batch.*float32"):
        indicator_smoothness(x, y, power=40)


def test_parseval_penalty_refuses_non_finite_weights():
    with pytest.raises(ValueError, match="`weights` hold NaN or infinite values"):
        ParsevalPenalty()([torch.tensor([[float("nan"), 1.0]])])
