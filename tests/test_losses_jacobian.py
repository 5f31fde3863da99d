"""Tests for latentgraph.losses.jacobian (bias-Jacobian penalty, Jacobian matching)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from latentgraph.jacobian import full_jacobian
from latentgraph.losses.jacobian import (BiasJacobianPenalty, FullJacobianMatchingLoss,
                                         InputJacobianMatchingLoss)

DT = torch.float64


class Functional(nn.Module):
    """Runs `net` with externally supplied parameter tensors (so gradcheck can vary them)."""

    def __init__(self, net: nn.Module, params) -> None:
        super().__init__()
        self.net, self.names, self.params = net, [n for n, _ in net.named_parameters()], params

    def forward(self, x):
        return torch.func.functional_call(self.net, dict(zip(self.names, self.params)), (x,))


def mlp(act=nn.ReLU, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 5), act(), nn.Linear(5, 2)).to(DT)


def cnn(width, act=nn.ReLU, seed=0, stride=1):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1, stride=stride), act(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 2)).to(DT)


def test_penalty_matches_hand_computation():
    net, x = mlp(), torch.randn(4, 3, dtype=DT)
    y = torch.tensor([0, 1, 1, 0])
    w1, b1, w2, b2 = net[0].weight, net[0].bias, net[2].weight, net[2].bias
    psi = (x @ w1.T + b1 > 0).to(DT)
    fb1 = w2[y] * psi * b1                                # f^b of layer 0, B×5
    fb2 = b2[y][:, None]                                  # f^b of the head, B×1
    expected_all = (fb1.pow(2).sum(1) + fb2.pow(2).sum(1)).mean()
    fj = full_jacobian(net, x, target=y, create_graph=True)
    assert torch.allclose(BiasJacobianPenalty()(fj), expected_all)
    assert torch.allclose(BiasJacobianPenalty(["0"])(fj), fb1.pow(2).sum(1).mean())
    # a list of results (all-classes mode) gives the mean over results
    fjs = [full_jacobian(net, x, target=k) for k in range(2)]
    per = [BiasJacobianPenalty()(r) for r in fjs]
    assert torch.allclose(BiasJacobianPenalty()(fjs), (per[0] + per[1]) / 2)


@pytest.mark.parametrize("act", [nn.ReLU, nn.Tanh])
def test_penalty_gradcheck_parameters(act):
    net = mlp(act)
    x, y = torch.randn(4, 3, dtype=DT), torch.tensor([0, 1, 1, 0])
    params = [p.detach().clone().requires_grad_(True) for p in net.parameters()]

    def penalty(*ps):
        fj = full_jacobian(Functional(net, ps), x, target=y, create_graph=True, strict=False)
        return BiasJacobianPenalty()(fj)

    assert torch.autograd.gradcheck(penalty, tuple(params))


def test_penalty_gradcheck_input_smooth_net():
    net = cnn(3, nn.Tanh)
    x = torch.randn(2, 1, 4, 4, dtype=DT, requires_grad=True)
    y = torch.tensor([1, 0])
    assert torch.autograd.gradcheck(
        lambda x: BiasJacobianPenalty()(full_jacobian(net, x, target=y, create_graph=True, strict=False)),
        (x,))


def test_input_matching_hand_computation():
    torch.manual_seed(0)
    s_net, t_net = nn.Linear(4, 3).to(DT), nn.Linear(4, 3).to(DT)
    x, y = torch.randn(5, 4, dtype=DT), torch.tensor([0, 2, 1, 1, 0])
    s = full_jacobian(s_net, x, target=y, create_graph=True)
    t = full_jacobian(t_net, x, target=y)
    expected = (s_net.weight[y] - t_net.weight[y]).pow(2).sum(1).mean()
    assert torch.allclose(InputJacobianMatchingLoss()(s, t), expected)
    su = s_net.weight[y] / s_net.weight[y].norm(dim=1, keepdim=True)
    tu = t_net.weight[y] / t_net.weight[y].norm(dim=1, keepdim=True)
    assert torch.allclose(InputJacobianMatchingLoss(normalize=True)(s, t), (su - tu).pow(2).sum(1).mean())


def _explicit_channel_summed_bias_map(net, x, y):
    conv, head = net[0], net[4]
    z = F.conv2d(x, conv.weight, conv.bias, padding=1)
    out = z.relu().mean((2, 3)) @ head.weight.T + head.bias
    (g,) = torch.autograd.grad(out[torch.arange(len(x)), y].sum(), z)
    return (g * conv.bias[:, None, None]).sum(1), out


def test_full_matching_terms_hand_computation():
    student, teacher = cnn(2, seed=0), cnn(4, seed=1)
    x, y = torch.randn(3, 1, 5, 5, dtype=DT), torch.tensor([0, 1, 1])
    s = full_jacobian(student, x, target=y, layers=["0"], create_graph=True)
    t = full_jacobian(teacher, x, target=y, layers=["0"])
    loss = FullJacobianMatchingLoss(["0"], ["0"], output_weight=0.5, input_weight=2.0, bias_weight=3.0)
    terms = loss.terms(s, t)
    ms, out_s = _explicit_channel_summed_bias_map(student, x, y)
    mt, out_t = _explicit_channel_summed_bias_map(teacher, x, y)
    assert torch.allclose(terms["bias_jacobian"], (ms - mt).pow(2).sum((1, 2)).mean())
    assert torch.allclose(terms["output"], (out_s - out_t).pow(2).sum(1).mean())
    assert torch.allclose(terms["input_jacobian"], InputJacobianMatchingLoss()(s, t))
    expected = 0.5 * terms["output"] + 2.0 * terms["input_jacobian"] + 3.0 * terms["bias_jacobian"]
    assert torch.allclose(loss(s, t), expected)


@pytest.mark.parametrize("act", [nn.ReLU, nn.Tanh])
def test_matching_losses_gradcheck(act):
    student, teacher = cnn(2, act, seed=0), cnn(3, act, seed=1)
    x, y = torch.randn(2, 1, 4, 4, dtype=DT), torch.tensor([1, 0])
    t = full_jacobian(teacher, x, target=y, layers=["0"], strict=False)
    params = [p.detach().clone().requires_grad_(True) for p in student.parameters()]
    full = FullJacobianMatchingLoss(["net.0"], ["0"])

    def loss(*ps):
        s = full_jacobian(Functional(student, ps), x, target=y, layers=["net.0"], create_graph=True,
                          strict=False)
        return full(s, t) + InputJacobianMatchingLoss(normalize=True)(s, t)

    assert torch.autograd.gradcheck(loss, tuple(params))


def test_teacher_is_detached():
    student, teacher = cnn(2), cnn(3, seed=1)
    x, y = torch.randn(2, 1, 4, 4, dtype=DT), torch.tensor([1, 0])
    s = full_jacobian(student, x, target=y, layers=["0"], create_graph=True)
    t = full_jacobian(teacher, x, target=y, layers=["0"], create_graph=True)
    FullJacobianMatchingLoss(["0"], ["0"])(s, t).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert student[4].weight.grad.abs().sum() > 0


# ---- bad input -----------------------------------------------------------------------------

def test_error_spatial_size_mismatch():
    student, teacher = cnn(2), cnn(3, seed=1, stride=2)
    x, y = torch.randn(2, 1, 4, 4, dtype=DT), torch.tensor([1, 0])
    s = full_jacobian(student, x, target=y, layers=["0"])
    t = full_jacobian(teacher, x, target=y, layers=["0"])
    with pytest.raises(ValueError, match="same spatial size"):
        FullJacobianMatchingLoss(["0"], ["0"])(s, t)


def test_error_targets_and_layers():
    student, teacher = cnn(2), cnn(3, seed=1)
    x = torch.randn(2, 1, 4, 4, dtype=DT)
    s = full_jacobian(student, x, target=torch.tensor([1, 0]), layers=["4"])
    t = full_jacobian(teacher, x, target=torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="same target"):
        InputJacobianMatchingLoss()(s, t)
    t = full_jacobian(teacher, x, target=torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="student layer '0' was not captured"):
        FullJacobianMatchingLoss(["0"], ["0"])(s, t)
    with pytest.raises(ValueError, match="were not captured"):
        BiasJacobianPenalty(["0"])(s)
    with pytest.raises(ValueError, match="as many results"):
        InputJacobianMatchingLoss()([s, s], [t])
    with pytest.raises(TypeError, match="FullJacobian"):
        BiasJacobianPenalty()(torch.zeros(3))


def test_error_constructor_arguments():
    with pytest.raises(ValueError, match="pair up"):
        FullJacobianMatchingLoss(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="bias_weight"):
        FullJacobianMatchingLoss(["a"], ["a"], bias_weight=-1.0)
    with pytest.raises(TypeError, match="student_layers"):
        FullJacobianMatchingLoss("a", ["a"])
    with pytest.raises(TypeError, match="layers"):
        BiasJacobianPenalty("block3")
    with pytest.raises(ValueError, match="at least one layer"):
        BiasJacobianPenalty([])
    with pytest.raises(ValueError, match="output_weight must be a finite number"):
        FullJacobianMatchingLoss(["a"], ["a"], output_weight=float("nan"))
    with pytest.raises(TypeError, match="input_weight must be a number"):
        FullJacobianMatchingLoss(["a"], ["a"], input_weight="1")


def test_repr():
    assert repr(BiasJacobianPenalty(["a"])) == "BiasJacobianPenalty(layers=['a'])"
    assert repr(InputJacobianMatchingLoss()) .startswith("InputJacobianMatchingLoss(normalize=False")


# ---- objectives ----------------------------------------------------------------------------

from latentgraph.models import SmallCNN  # noqa: E402
from latentgraph.train.objectives.jacobian import (METHODS, BiasJacobianObjective,  # noqa: E402
                                                   JacobianDistillationObjective)


def test_bias_jacobian_objective_terms():
    torch.manual_seed(0)
    model = SmallCNN(width=4).eval()
    with torch.no_grad():  # a non-zero effective bias (at initialization it is exactly zero)
        model.block3[1].bias.uniform_(-1, 1)
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    objective = BiasJacobianObjective(["block3.1"], weight=3.0)
    terms = objective(model, (x, y))
    fj = full_jacobian(model, x, target=y, layers=["block3.1"])
    assert torch.allclose(terms["ce"], F.cross_entropy(model(x), y))
    assert torch.allclose(terms["bias_jacobian"], fj.bias_gradients["block3.1"].pow(2).sum((1, 2, 3)).mean())
    assert objective.weights == {"bias_jacobian": 3.0}  # raw term; the trainer applies λ
    terms["bias_jacobian"].backward()
    assert model.block3[1].bias.grad.abs().sum() > 0


@pytest.mark.parametrize("method", list(METHODS))
def test_jacobian_distill_methods(method):
    torch.manual_seed(0)
    teacher, student = SmallCNN(width=8), SmallCNN(width=4)
    objective = JacobianDistillationObjective(teacher, method=method, layers=["block1.1", "block2.1"],
                                              attention_layers=["block1", "block2"])
    terms = objective(student, (torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])))
    assert sorted(terms) == sorted(("ce", *METHODS[method]))
    sum(terms.values()).backward()
    assert all(p.grad is None for p in teacher.parameters()) and not teacher.training
    assert student.head.weight.grad is not None


def test_jacobian_distill_matches_loss():
    torch.manual_seed(0)
    teacher, student = SmallCNN(width=8).eval(), SmallCNN(width=4).eval()
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    objective = JacobianDistillationObjective(teacher, method="full_jacobian", layers={"block2.1": "block2.1"},
                                              input_weight=2.0, bias_weight=5.0)
    terms = objective(student, (x, y))
    s = full_jacobian(student, x, target=y, layers=["block2.1"])
    t = full_jacobian(teacher, x, target=y, layers=["block2.1"])
    expected = FullJacobianMatchingLoss(["block2.1"], ["block2.1"]).terms(s, t)
    assert torch.allclose(terms["bias_jacobian"], expected["bias_jacobian"])  # raw terms
    assert torch.allclose(terms["input_jacobian"], expected["input_jacobian"])
    assert torch.allclose(terms["output"], expected["output"])
    assert objective.weights == {"output": 1.0, "input_jacobian": 2.0, "bias_jacobian": 5.0}


def test_objective_bad_input():
    with pytest.raises(ValueError, match="unknown method"):
        JacobianDistillationObjective(SmallCNN(width=4), method="fj")
    with pytest.raises(ValueError, match="give `layers`"):
        JacobianDistillationObjective(SmallCNN(width=4), method="full_jacobian")
    with pytest.raises(ValueError, match="give `attention_layers`"):
        JacobianDistillationObjective(SmallCNN(width=4), method="attention")
    with pytest.raises(ValueError, match="attention_weight"):
        JacobianDistillationObjective(SmallCNN(width=4), method="ce", attention_weight=-1)
    with pytest.raises(ValueError, match="bias_weight"):
        JacobianDistillationObjective(SmallCNN(width=4), method="ce", bias_weight=float("nan"))
    with pytest.raises(TypeError, match="`weight` must be a number"):
        BiasJacobianObjective(["block3.1"], weight="1")
    with pytest.raises(TypeError, match="teacher"):
        JacobianDistillationObjective("teacher")
    with pytest.raises(ValueError, match="at least one"):
        BiasJacobianObjective([])
