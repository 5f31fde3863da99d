"""Generalization measures: every measure runs, the main ones equal a direct
computation, bad input is refused, the model is left as it was; rank statistics."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from latentgraph.generalization import (MEASURES, ZooNet, complexity, conditional_mutual_information,
                                        granulated_tau, kendall_tau)
from latentgraph.generalization.clustering import davies_bouldin_index
from latentgraph.generalization.inputs import mix_between_classes, resolve_layers
from latentgraph.models import MLP, SmallCNN

#: Options that make every measure fit the small samples of these tests.
SMALL = {"label_variation": {"batch_size": 30}, "label_variation_profile": {"batch_size": 30},
         "label_variation_mixup": {"batch_size": 30}, "label_variation_noise": {"batch_size": 30},
         "pac_bayes_sharpness": {"steps": 4, "draws": 2}, "pac_bayes_flatness": {"steps": 4, "draws": 2}}


def _data(n=60, shape=(1, 8, 8), classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, *shape), generator=g), torch.arange(n) % classes


@pytest.mark.parametrize("make", [lambda: SmallCNN(width=4, num_classes=4),
                                  lambda: MLP(64, hidden=(16, 8), num_classes=4)], ids=["cnn", "mlp"])
def test_every_measure_is_finite(make):
    torch.manual_seed(0)
    model = make()
    x, y = _data()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    for name in MEASURES:
        options = {**SMALL.get(name, {}), **({"initial": initial} if name == "distance_from_init" else {})}
        value = complexity(model, x, y, name, max_samples=60, **options)
        assert math.isfinite(value), name
    assert complexity(model, x, y, "distance_from_init", initial=initial) > 0


def _hand_label_variation(f, y, k):
    """Cosine kNN graph, union-symmetrized (max weight), D^-1/2 A D^-1/2, inter-class share."""
    f = f.double()
    u = f / f.norm(dim=1, keepdim=True)
    s = u @ u.T
    s.fill_diagonal_(-math.inf)
    n = len(y)
    chosen = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        chosen[i, torch.argsort(s[i], descending=True)[:k]] = True
    chosen = chosen | chosen.T
    s.fill_diagonal_(0.0)
    a = torch.where(chosen, s, torch.zeros_like(s))
    d = a.sum(dim=1).rsqrt()
    a = d[:, None] * a * d[None, :]
    return float(a[y[:, None] != y[None, :]].sum() / a.sum())


def test_label_variation_equals_direct_computation():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3))
    x, y = torch.rand(20, 5), torch.arange(20) % 3
    value = complexity(model, x, y, "label_variation", layers=["1"], k=4, similarity="cosine", batch_size=20)
    with torch.no_grad():
        f = model[1](model[0](x))
    assert value == pytest.approx(_hand_label_variation(f, y, 4), rel=1e-6)
    # two batches of 10: the mean of the two batches' values
    two = complexity(model, x, y, "label_variation", layers=["1"], k=3, similarity="cosine", batch_size=10)
    expected = (_hand_label_variation(f[:10], y[:10], 3) + _hand_label_variation(f[10:], y[10:], 3)) / 2
    assert two == pytest.approx(expected, rel=1e-6)


def test_margin_equals_direct_computation():
    model = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(3))
    x = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.5], [1.0, 1.0, 4.0], [2.0, 0.0, 2.5], [0.5, 3.0, 0.0]])
    y = torch.tensor([0, 1, 2, 0, 1])
    gamma = np.array([2.0, 0.5, 3.0, -0.5, 2.5])  # true logit minus the best other
    logits = x.numpy().astype(np.float64)
    scale = np.sqrt(((logits - logits.mean(0)) ** 2).sum(1).mean())
    assert complexity(model, x, y, "margin", normalize=False) == pytest.approx(-np.percentile(gamma, 10))
    assert complexity(model, x, y, "margin", percentile=50) == pytest.approx(-np.percentile(gamma / scale, 50))


def test_davies_bouldin_matches_sklearn():
    sklearn = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 5, generator=g), torch.arange(40) % 4
    x[y == 1] += 2.0
    assert davies_bouldin_index(x, y) == pytest.approx(sklearn.davies_bouldin_score(x.numpy(), y.numpy()))


def test_path_norm_of_a_two_layer_relu_net():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 3.0]]))
        model[0].bias.copy_(torch.tensor([1.0, -1.0]))
        model[2].weight.copy_(torch.tensor([[2.0, -1.0]]))
        model[2].bias.copy_(torch.tensor([0.5]))
    # sum over input→hidden→output paths of the squared weights, biases as paths from a constant 1
    hidden = [1 + 4 + 1, 0.25 + 9 + 1]
    expected = 4 * hidden[0] + 1 * hidden[1] + 0.25
    x, y = torch.rand(4, 2), torch.zeros(4, dtype=torch.long)
    assert complexity(model, x, y, "path_norm") == pytest.approx(expected)


def test_same_seed_same_value_other_seed_other_value():
    torch.manual_seed(0)
    model, (x, y) = MLP(64, hidden=(16,), num_classes=4), _data(80)
    a = complexity(model, x, y, "label_variation_mixup", batch_size=20, seed=3)
    assert a == complexity(model, x, y, "label_variation_mixup", batch_size=20, seed=3)
    assert a != complexity(model, x, y, "label_variation_mixup", batch_size=20, seed=4)


def test_mode_and_requires_grad_are_restored_also_on_error():
    torch.manual_seed(0)
    model = SmallCNN(width=4, num_classes=4).train()
    model.block2.eval()
    model.head.weight.requires_grad_(False)
    before = ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()])
    x, y = _data()
    complexity(model, x, y, "input_gradient_norm")
    complexity(model, x, y, "pac_bayes_sharpness", steps=2, draws=1)
    with pytest.raises(ValueError, match="needs `initial`"):
        complexity(model, x, y, "distance_from_init")
    assert ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()]) == before


def test_sharpness_leaves_the_weights_unchanged():
    torch.manual_seed(0)
    model, (x, y) = MLP(64, hidden=(8,), num_classes=4), _data()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    complexity(model, x, y, "pac_bayes_flatness", steps=3, draws=2)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_bad_input_is_refused_with_a_clear_message():
    model, (x, y) = MLP(64, hidden=(8,), num_classes=4), _data()
    with pytest.raises(ValueError, match="`measure` must be one of"):
        complexity(model, x, y, "accuracy")
    with pytest.raises(ValueError, match="has no option"):
        complexity(model, x, y, "margin", k=3)
    with pytest.raises(TypeError, match="`model` must be a torch.nn.Module"):
        complexity(lambda t: t, x, y, "margin")
    with pytest.raises(ValueError, match="NaN"):
        complexity(model, torch.full_like(x, float("nan")), y, "margin")
    with pytest.raises(ValueError, match="N×C class scores"):
        complexity(nn.Flatten(0), x, y, "margin")
    with pytest.raises(ValueError, match="returns 4 scores"):
        complexity(model, x, y + 4, "margin")
    with pytest.raises(ValueError, match="cannot run on inputs"):
        complexity(SmallCNN(num_classes=4), x.flatten(1), y, "margin")
    with pytest.raises(ValueError, match="no module named"):
        complexity(model, x, y, "label_variation", layers=["fc9"], batch_size=30)
    with pytest.raises(ValueError, match="exceeds the 60 samples"):
        complexity(model, x, y, "label_variation")
    with pytest.raises(ValueError, match="at least 2 top-level children"):
        complexity(nn.Linear(64, 4), x.flatten(1), y, "davies_bouldin")
    with pytest.raises(ValueError, match="`lam`"):
        complexity(model, x, y, "label_variation_mixup", lam=0.3, batch_size=30)
    with pytest.raises(ValueError, match="`initial` has no entry"):
        complexity(model, x, y, "distance_from_init", initial={})


def test_layer_aliases_and_between_class_mixup():
    net = ZooNet((4,), depth=4)
    assert resolve_layers(net, "first") == ["block1"] and resolve_layers(net, "middle") == ["block2"]
    x, y = torch.rand(30, 3), torch.arange(30) % 3
    mixed, labels = mix_between_classes(x, y, 0.8, torch.Generator().manual_seed(0))
    # each mix is 0.8 of its own sample plus 0.2 of a sample of another class
    partners = (mixed - 0.8 * x) / 0.2
    for i in range(30):
        j = int(((x - partners[i]).abs().sum(dim=1)).argmin())
        assert torch.allclose(x[j], partners[i], atol=1e-5) and y[j] != y[i]
    assert torch.equal(labels, y)


def test_kendall_tau_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    g = np.random.default_rng(0)
    a, b = g.integers(0, 5, 30).tolist(), g.integers(0, 5, 30).tolist()
    assert kendall_tau(a, b) == pytest.approx(stats.kendalltau(a, b).statistic)
    assert kendall_tau([1, 1, 1], [1, 2, 3]) == 0.0


def test_granulated_tau_and_cmi():
    hp = [{"a": a, "b": b} for a in (1, 2, 3) for b in (1, 2)]
    gaps = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    # the measure orders the models by a only: right within b-groups, blind within a-groups
    values = [h["a"] for h in hp]
    result = granulated_tau(values, gaps, hp)
    assert result == {"a": 1.0, "b": 0.0, "overall": 0.5}
    # CMI conditions on two hyperparameters: a third one must vary within the groups
    hp3 = [{"a": a, "b": b, "c": c} for a in (1, 2) for b in (1, 2) for c in (1, 2, 3)]
    gaps3 = [0.01 * i for i in range(12)]
    assert conditional_mutual_information(gaps3, gaps3, hp3) == pytest.approx(1.0)
    assert conditional_mutual_information([0.0] * 12, gaps3, hp3) == 0.0
    # a measure that only knows `a` says nothing once `a` is conditioned on
    assert conditional_mutual_information([h["a"] for h in hp3], gaps3, hp3) == 0.0
    with pytest.raises(ValueError, match="same length"):
        kendall_tau([1, 2], [1])
