"""FGSM / PGD attacks and accuracy-vs-ε curves."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from latentgraph.robustness import accuracy_curve, accuracy_under_attack, fgsm, pgd, plot_accuracy_curves


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
        nn.Flatten(), nn.Linear(4 * 6 * 6, 3),
    ).double()


def _batch(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 6, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def _reference_grad(model, x, y, loss=None):
    ref = copy.deepcopy(model).eval()
    x = x.clone().requires_grad_(True)
    value = F.cross_entropy(ref(x), y) if loss is None else loss(ref, x, y)
    value.backward()
    return x.grad


def test_fgsm_equals_clipped_sign_step_exactly():
    model, (x, y) = _model(), _batch()
    model.train()
    expected = torch.clamp(x + 0.1 * torch.sign(_reference_grad(model, x, y)), 0, 1)
    assert torch.equal(fgsm(model, x, y, eps=0.1), expected)


def test_fgsm_custom_loss():
    model, (x, y) = _model(), _batch()

    def logit0(m, inputs, targets):
        return m(inputs)[:, 0].sum()

    expected = torch.clamp(x + 0.2 * torch.sign(_reference_grad(model, x, y, logit0)), 0, 1)
    assert torch.equal(fgsm(model, x, y, eps=0.2, loss_fn=logit0), expected)


def test_fgsm_eps_zero_is_identity():
    model, (x, y) = _model(), _batch()
    assert torch.equal(fgsm(model, x, y, eps=0.0), x)


@pytest.mark.parametrize("norm", ["inf", "2"])
@pytest.mark.parametrize("random_start", [True, False])
def test_pgd_stays_in_ball_and_unit_box(norm, random_start):
    model, (x, y) = _model(), _batch(n=8)
    eps = 0.3 if norm == "inf" else 1.0
    x_adv = pgd(model, x, y, eps=eps, step_size=eps / 2, steps=5, norm=norm, random_start=random_start, seed=0)
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "inf" else delta.norm(dim=1)
    assert (size <= eps + 1e-9).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert size.max() > 0.5 * eps  # it did move


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_pgd_increases_the_loss(norm):
    model, (x, y) = _model(), _batch(n=8)
    model.eval()
    eps = 0.1 if norm == "inf" else 0.5
    x_adv = pgd(model, x, y, eps=eps, step_size=eps / 4, steps=10, norm=norm, seed=0)
    with torch.no_grad():
        assert F.cross_entropy(model(x_adv), y) > F.cross_entropy(model(x), y)


def test_pgd_l2_single_step_is_normalized_gradient_step():
    model, (x, y) = _model(), _batch()
    x = 0.4 + 0.2 * x  # far from the box edges: no clipping
    g = _reference_grad(model, x, y)
    expected = x + 0.05 * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    out = pgd(model, x, y, eps=0.05, step_size=0.05, steps=1, norm="2", random_start=False)
    assert torch.allclose(out, expected, atol=1e-12)


def test_pgd_one_step_no_start_equals_fgsm():
    model, (x, y) = _model(), _batch()
    assert torch.equal(pgd(model, x, y, eps=0.1, step_size=0.1, steps=1, random_start=False), fgsm(model, x, y, 0.1))


def test_pgd_seeded_random_start_is_deterministic():
    model, (x, y) = _model(), _batch()
    a = pgd(model, x, y, eps=0.1, step_size=0.01, steps=2, seed=3)
    assert torch.equal(a, pgd(model, x, y, eps=0.1, step_size=0.01, steps=2, seed=3))
    assert not torch.equal(a, pgd(model, x, y, eps=0.1, step_size=0.01, steps=2, seed=4))


def test_mode_buffers_and_parameter_grads_are_restored():
    model, (x, y) = _model(), _batch()
    model.train()
    model[3].eval()  # a submodule with its own mode
    stats = model[1].running_mean.clone()
    fgsm(model, x, y, 0.1)
    pgd(model, x, y, 0.1, 0.05, 2, seed=0)
    assert model.training and model[1].training and not model[3].training
    assert torch.equal(model[1].running_mean, stats)
    assert all(p.grad is None for p in model.parameters())
    model.eval()
    fgsm(model, x, y, 0.1)
    assert not model.training and not model[1].training


def test_bad_inputs():
    model, (x, y) = _model(), _batch()
    with pytest.raises(ValueError, match="eps"):
        fgsm(model, x, y, eps=-0.1)
    with pytest.raises(ValueError, match="eps"):
        pgd(model, x, y, eps=-1.0, step_size=0.1, steps=1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fgsm(model, x * 2 + 0.5, y, eps=0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pgd(model, x - 0.5, y, eps=0.1, step_size=0.1, steps=1)
    with pytest.raises(ValueError, match="norm"):
        pgd(model, x, y, eps=0.1, step_size=0.1, steps=1, norm="1")
    with pytest.raises(ValueError, match="steps"):
        pgd(model, x, y, eps=0.1, step_size=0.1, steps=0)
    with pytest.raises(ValueError, match="`y`"):
        fgsm(model, x, y[:2], eps=0.1)
    with pytest.raises(TypeError, match="`y` must hold integer class labels"):
        pgd(model, x, y.float(), eps=0.1, step_size=0.1, steps=1)
    with pytest.raises(ValueError, match="scalar"):
        fgsm(model, x, y, eps=0.1, loss_fn=lambda m, a, b: m(a))


def test_accuracy_under_attack_and_curve(tmp_path):
    torch.manual_seed(0)
    # a linear classifier on 2 pixels that is right on every clean sample
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        model[1].bias.zero_()
    x = torch.tensor([[0.6, 0.4], [0.3, 0.5], [0.8, 0.1], [0.2, 0.9]]).view(4, 1, 1, 2)
    y = torch.tensor([0, 1, 0, 1])
    assert accuracy_under_attack(model, x, y, "fgsm", eps=0.0) == 1.0
    # FGSM moves both coordinates by ε towards the other class: margin |x0 - x1| flips when 2ε > margin
    # margins: 0.2, 0.2, 0.7, 0.7 → at ε = 0.15 two samples flip, at ε = 0.4 all four
    curve = accuracy_curve(model, x, y, [0.0, 0.15, 0.4], "fgsm", batch_size=3)
    assert curve == [1.0, 0.5, 0.0]
    pgd_curve = accuracy_curve(model, x, y, [0.15], "pgd", steps=5, step_size="relative", random_start=False)
    assert pgd_curve == [0.5]
    path = plot_accuracy_curves({"linear": ([0.0, 0.15, 0.4], curve)}, tmp_path / "curve.png")
    assert path.stat().st_size > 0
    with pytest.raises(ValueError, match="attack"):
        accuracy_under_attack(model, x, y, "deepfool", eps=0.1)


@pytest.mark.parametrize("batch_size, error, phrase", [
    (-1, ValueError, r"`batch_size` must be an int ≥ 1, got -1"),
    (0, ValueError, r"`batch_size` must be an int ≥ 1, got 0"),
    (2.5, TypeError, r"`batch_size` must be an int, got float"),
    (True, TypeError, r"`batch_size` must be an int, got bool"),
])
def test_accuracy_under_attack_checks_the_batch_size(batch_size, error, phrase):
    x, y = _batch()
    with pytest.raises(error, match=phrase):
        accuracy_under_attack(_model(), x, y, "fgsm", batch_size=batch_size, eps=0.1)


@pytest.mark.parametrize("label, phrase", [
    (-100, r"non-negative class indices, got -100 \(-100 is cross-entropy's ignore_index"),
    (-1, "non-negative class indices, got -1$"),
    (3, r"class indices in 0\.\.2 \(the model gives 3 logits\), got 3"),
])
@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_labels_the_attack_cannot_use_are_refused(label, phrase, attack):
    x, y = _batch()
    y[1] = label
    kwargs = {"eps": 0.1} if attack == "fgsm" else {"eps": 0.1, "step_size": 0.05, "steps": 2, "seed": 0}
    with pytest.raises(ValueError, match=phrase):
        accuracy_under_attack(_model(), x, y, attack, **kwargs)
    with pytest.raises(ValueError, match=phrase):
        (fgsm if attack == "fgsm" else pgd)(_model(), x, y, **kwargs)


def test_relative_step_size_without_steps_says_what_is_missing():
    x, y = _batch()
    with pytest.raises(ValueError, match=r"step_size='relative' .* pass `steps` too"):
        accuracy_curve(_model(), x, y, [0.1], "pgd", step_size="relative")


def test_random_start_must_be_a_bool():
    x, y = _batch()
    with pytest.raises(TypeError, match="`random_start` must be True or False, got str 'no'"):
        pgd(_model(), x, y, eps=0.1, step_size=0.05, steps=1, random_start="no")
