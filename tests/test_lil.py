import pytest
import torch
import torch.nn.functional as F

from latentgraph.data.toy import entangled_rings, noisy_torus
from latentgraph.losses.isometry import IsometryLoss
from latentgraph.models.lil import LILBlock, LILClassifier, StackedLIL
from latentgraph.train.objectives.isometric import IsometricObjective, StackedIsometricObjective
from latentgraph.train.objectives.interface import weighted_sum
from latentgraph.train.objectives.registry import get_objective


def test_block_layout_and_range():
    block = LILBlock(3, hidden=(5, 7, 4))
    names = [name for name, _ in block.named_children()]
    assert names == ["flatten", "fc1", "act1", "fc2", "act2", "fc3", "act3"]
    assert [block.fc1.in_features, block.fc2.in_features, block.fc3.out_features] == [3, 5, 4]
    out = block(torch.randn(6, 3) * 100)
    assert out.shape == (6, 4) and out.abs().max() <= 1.0  # tanh output
    h = torch.randn(2, 3)
    manual = torch.tanh(block.fc3(torch.tanh(block.fc2(torch.tanh(block.fc1(h))))))
    assert torch.allclose(block(h), manual)


def test_classifier_flattens_images_and_exposes_lil():
    model = LILClassifier(64, 10, hidden=(16, 16))
    x = torch.rand(4, 1, 8, 8)
    assert model(x).shape == (4, 10)
    assert torch.allclose(model(x), model.head(model.lil(x.flatten(1))))


def test_classifier_default_is_papers_mnist_network():
    model = LILClassifier(784, 10)
    widths = [m.out_features for m in model.lil if isinstance(m, torch.nn.Linear)]
    assert widths == [100, 100, 100, 100]


@pytest.fixture
def one_thread():
    """Small training loops: intra-op threads only add overhead, and on a shared,
    busy machine two OpenMP threads made the torus test 25× slower (75 s vs 2.8 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _stack():
    torch.manual_seed(0)
    return StackedLIL(3, level_classes=(2, 4, 2), hidden=(6, 6))


def test_stacked_levels_chain_detached_and_shared_bias():
    model = _stack()
    x = torch.randn(5, 3)
    levels = model.forward_levels(x)
    assert [lv.logits.shape[1] for lv in levels] == [2, 4, 2]
    assert torch.equal(levels[0].inputs, x)
    for prev, cur in zip(levels, levels[1:]):
        assert torch.equal(cur.inputs, prev.features) and not cur.inputs.requires_grad
    with torch.no_grad():
        model.head_bias.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    levels = model.forward_levels(x)
    for b, c in enumerate((2, 4, 2)):
        expected = levels[b].features @ model.projections[b].weight.T + model.head_bias[:c]
        assert torch.allclose(levels[b].logits, expected)


def _level_loss(level, y):
    return F.cross_entropy(level.logits, y) + 10.0 * IsometryLoss()(level.inputs, level.features, y)


def test_later_level_loss_gives_no_gradient_to_earlier_levels():
    model = _stack()
    x, labels = torch.randn(8, 3), torch.tensor([[0, 0, 0], [0, 1, 1], [1, 2, 0], [1, 3, 1]] * 2)
    levels = model.forward_levels(x)
    _level_loss(levels[2], labels[:, 2]).backward()
    for b in (0, 1):
        assert all(p.grad is None for p in model.levels[b].parameters())
        assert model.projections[b].weight.grad is None
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.levels[2].parameters())


def test_summed_objective_trains_each_level_on_its_own_loss():
    model = _stack()
    x, labels = torch.randn(8, 3), torch.tensor([[0, 0, 0], [0, 1, 1], [1, 2, 0], [1, 3, 1]] * 2)
    objective = StackedIsometricObjective(beta=10.0)
    weighted_sum(objective(model, (x, labels)), objective.weights).backward()
    together = [p.grad.clone() for p in model.levels[0].parameters()]
    model.zero_grad(set_to_none=True)
    _level_loss(model.forward_levels(x)[0], labels[:, 0]).backward()
    alone = [p.grad for p in model.levels[0].parameters()]
    assert all(torch.allclose(a, b) for a, b in zip(together, alone))


def test_stacked_objective_matches_hand_sum_and_reference_choice():
    model = _stack()
    x, labels = torch.randn(8, 3), torch.tensor([[0, 0, 0], [0, 1, 1], [1, 2, 0], [1, 3, 1]] * 2)
    levels = model.forward_levels(x)
    iso = IsometryLoss(scale=2.0)
    for reference, inputs in (("level", [lv.inputs for lv in levels]), ("data", [x] * 3)):
        objective = StackedIsometricObjective(beta=0.5, scale=2.0, reference=reference)
        terms = objective(model, (x, labels))
        ce = sum(F.cross_entropy(lv.logits, labels[:, b]) for b, lv in enumerate(levels))
        expected = sum(iso(inputs[b], lv.features, labels[:, b]) for b, lv in enumerate(levels))
        assert torch.allclose(terms["ce"], ce) and torch.allclose(terms["isometry"], expected)  # raw
        assert objective.weights == {"isometry": 0.5}


def test_isometric_objective_matches_hand_composition():
    torch.manual_seed(1)
    model = LILClassifier(12, 3, hidden=(8, 8))
    x, y = torch.rand(6, 1, 3, 4), torch.tensor([0, 1, 2, 0, 1, 1])
    objective = IsometricObjective(beta=0.1, scale=10.0)
    terms = objective(model, (x, y))
    assert torch.allclose(terms["ce"], F.cross_entropy(model(x), y))
    assert torch.allclose(terms["isometry"], IsometryLoss(scale=10.0)(x, model.lil(x), y))  # raw, β in weights
    assert torch.allclose(objective.loss(model, x, y), terms["ce"] + 0.1 * terms["isometry"])
    assert get_objective("isometric") is IsometricObjective
    assert get_objective("stacked_isometric") is StackedIsometricObjective


def _rings_after(beta, steps, n=120):
    x, y = entangled_rings(n, noise=0.02, seed=0)
    torch.manual_seed(0)
    model = LILClassifier(3, 2, hidden=(20, 20))
    objective = IsometricObjective(beta=beta)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        objective.loss(model, x, y).backward()
        opt.step()
    with torch.no_grad():
        return IsometryLoss()(x, model.lil(x), y).item(), (model(x).argmax(1) == y).float().mean().item()


@pytest.mark.slow  # ~3 s idle; the small version below runs in CI
def test_isometry_term_is_what_preserves_within_class_distances(one_thread):
    # entangled rings, full batch: β > 0 makes the last hidden layer much closer to an
    # isometry within each ring than β = 0, at equal accuracy
    results = {beta: _rings_after(beta, 150) for beta in (0.0, 10.0)}
    assert results[10.0][0] < 0.2 * results[0.0][0]
    assert results[0.0][1] == 1.0 and results[10.0][1] >= 0.9


def test_isometry_term_preserves_within_class_distances_small(one_thread):
    results = {beta: _rings_after(beta, 20, n=60) for beta in (0.0, 10.0)}
    assert results[10.0][0] < 0.5 * results[0.0][0]


def _torus_accuracy_after(steps, n=160):
    x, labels = noisy_torus(n, noise=0.001, seed=0, regions=(2, 4))
    torch.manual_seed(0)
    model = StackedLIL(3, level_classes=(2, 4), hidden=(20, 20))
    objective = StackedIsometricObjective(beta=1.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        weighted_sum(objective(model, (x, labels)), objective.weights).backward()
        opt.step()
    with torch.no_grad():
        return [(lg.argmax(1) == labels[:, b]).float().mean().item() for b, lg in enumerate(model(x))]


@pytest.mark.slow  # ~3 s idle; the small version below runs in CI
def test_stacked_lil_learns_both_torus_levels(one_thread):
    assert min(_torus_accuracy_after(150)) > 0.9


def test_stacked_lil_learns_both_torus_levels_small(one_thread):
    before, after = _torus_accuracy_after(0, n=80), _torus_accuracy_after(30, n=80)
    assert all(a > b for a, b in zip(after, before)) and min(after) > 0.6


def test_bad_arguments():
    with pytest.raises(ValueError, match="`hidden`"):
        LILBlock(3, hidden=())
    with pytest.raises(ValueError, match="`in_features`"):
        LILBlock(0)
    with pytest.raises(TypeError, match="`num_classes`"):
        LILClassifier(3, 2.0)
    with pytest.raises(ValueError, match="`level_classes`"):
        StackedLIL(3, level_classes=[])
    with pytest.raises(ValueError, match="`beta`"):
        IsometricObjective(beta=-1.0)
    with pytest.raises(TypeError, match="`beta`"):
        StackedIsometricObjective(beta="1")
    with pytest.raises(ValueError, match="`reference`"):
        StackedIsometricObjective(reference="input")
    with pytest.raises(ValueError, match="`layers`"):
        IsometricObjective(layer="nope")(LILClassifier(3, 2), (torch.rand(4, 3), torch.tensor([0, 1, 0, 1])))


def test_stacked_objective_rejects_labels_of_wrong_shape():
    model = StackedLIL(3, level_classes=(2, 4), hidden=(4,))
    with pytest.raises(ValueError, match=r"N×2"):
        StackedIsometricObjective()(model, (torch.rand(4, 3), torch.tensor([0, 1, 0, 1])))


def test_stacked_objective_needs_a_stacked_model():
    with pytest.raises(TypeError, match="StackedLIL"):
        StackedIsometricObjective()(LILClassifier(3, 2), (torch.rand(4, 3), torch.zeros(4, 1, dtype=torch.long)))


CONFIGS = sorted((__import__("pathlib").Path(__file__).parents[1] / "configs" / "isometry").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_configs_build_the_papers_mnist_lil(path):
    from latentgraph.train.build import build_objective, model_from_config
    from latentgraph.train.config import load_config

    config = load_config(path)
    model = model_from_config(config.model)
    objective = build_objective(config.method, model, None, torch.rand(2, 1, 28, 28))
    assert isinstance(objective, IsometricObjective) and objective.isometry.scale == 10.0
    assert config.data.batch_size == 100 and config.epochs == 5
    torch.manual_seed(0)
    x, y = torch.rand(8, 1, 28, 28), torch.tensor([0, 1, 0, 1, 2, 2, 3, 3])
    terms = objective(model, (x, y))
    features = model.fc4(model.fc3(model.fc2(model.fc1(x.flatten(1)))))
    assert torch.allclose(terms["isometry"], IsometryLoss(scale=10.0)(x, features, y))
    assert objective.weights == {"isometry": objective.beta}
    assert objective.beta == float(path.stem.split("beta")[1])


def test_all_six_betas_have_a_config():
    assert sorted(float(p.stem.split("beta")[1]) for p in CONFIGS) == [0.0, 0.001, 0.01, 0.1, 1.0, 10.0]
