"""Tests for latentgraph.jacobian.decomposition (full-Jacobian decomposition)."""
import pytest
import torch
from torch import nn

from latentgraph.jacobian import bias_layer_names, full_jacobian

DT = torch.float64


def _randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics and affine parameters, so BN's effective bias matters."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g, dtype=DT))
            m.running_var.copy_(torch.rand(c, generator=g, dtype=DT) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.randn(c, generator=g, dtype=DT))
                m.bias.copy_(torch.randn(c, generator=g, dtype=DT))
    return model


def chain_net() -> nn.Module:
    """Conv(bias) → BN → ReLU → Conv(no bias) → BN → ReLU → pool → Linear."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
        nn.Conv2d(4, 5, 3, padding=1, bias=False), nn.BatchNorm2d(5), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(5 * 3 * 3, 3),
    ).to(DT)
    return _randomize_batchnorm(net).eval()


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.branch = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4),
                                    nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4))
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        h = self.stem(x)
        h = self.relu(h + self.branch(h))
        return self.head(self.pool(h).flatten(1))


def residual_net() -> nn.Module:
    torch.manual_seed(1)
    return _randomize_batchnorm(Residual().to(DT), seed=1).eval()


@pytest.mark.parametrize("make, shape", [(chain_net, (6, 2, 6, 6)), (residual_net, (6, 1, 7, 7))])
def test_completeness_float64(make, shape):
    net = make()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(2), dtype=DT)
    fj = full_jacobian(net, x)
    assert fj.complete
    assert fj.completeness_error(relative=True).max() < 1e-5
    # the bias terms matter: without them the decomposition is far off
    assert ((fj.output - fj.input_term()).abs() / fj.output.abs()).max() > 1e-2
    assert torch.equal(fj.target, net(x).argmax(1))


def test_completeness_every_target():
    net, x = chain_net(), torch.randn(3, 2, 6, 6, dtype=DT)
    for k in range(3):
        fj = full_jacobian(net, x, target=k)
        assert torch.allclose(fj.output, net(x)[:, k])
        assert fj.completeness_error(relative=True).max() < 1e-5


def test_one_hidden_layer_matches_example_1():
    # y = w2 relu(w1 x + b1) + b2: f^b = (w2 ψ ⊙ b1, b2), ∇x f = (w2 ψ) w1 with ψ = 1[z > 0]
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 1)).to(DT)
    x = torch.randn(5, 4, dtype=DT)
    w1, b1, w2, b2 = net[0].weight, net[0].bias, net[2].weight[0], net[2].bias
    psi = (x @ w1.T + b1 > 0).to(DT)
    fj = full_jacobian(net, x, target=0)
    assert torch.allclose(fj.bias_gradients["0"], w2 * psi * b1)
    assert torch.allclose(fj.bias_gradients["2"], b2.expand(5, 1))
    assert torch.allclose(fj.input_gradient, (w2 * psi) @ w1)
    assert torch.allclose(fj.biases["2"], b2.reshape(1, 1))


def test_batchnorm_effective_bias():
    net = chain_net()
    bn = net[1]
    fj = full_jacobian(net, torch.randn(2, 2, 6, 6, dtype=DT))
    expected = bn.bias - bn.running_mean * bn.weight / torch.sqrt(bn.running_var + bn.eps)
    assert torch.allclose(fj.biases["1"].flatten(), expected)
    assert bias_layer_names(net) == ["0", "1", "4", "8"]


def _output_with_scaled_bias(net, x, target, name, channel, scale):
    """f(x) after multiplying the (effective) bias of one channel of layer `name` by `scale`."""
    m = dict(net.named_modules())[name]
    with torch.no_grad():
        original = m.bias[channel].clone()
        shift = m.running_mean * m.weight / torch.sqrt(m.running_var + m.eps) \
            if isinstance(m, nn.BatchNorm2d) else torch.zeros_like(m.bias)
        m.bias[channel] = scale * (original - shift[channel]) + shift[channel]
        out = net(x).gather(1, target[:, None]).squeeze(1)
        m.bias[channel] = original
    return out


@pytest.mark.parametrize("make, shape", [(chain_net, (3, 2, 6, 6)), (residual_net, (3, 1, 7, 7))])
def test_bias_jacobians_equal_finite_differences(make, shape):
    # d f / d s at s = 1 for the bias b_c → s·b_c equals the summed bias-Jacobian of channel c
    net = make()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(4), dtype=DT)
    fj = full_jacobian(net, x)
    eps = 1e-6
    for name, term in fj.bias_gradients.items():
        for c in range(min(term.shape[1], 2)):
            fd = (_output_with_scaled_bias(net, x, fj.target, name, c, 1 + eps)
                  - _output_with_scaled_bias(net, x, fj.target, name, c, 1 - eps)) / (2 * eps)
            got = term[:, c].flatten(1).sum(1) if term.dim() > 2 else term[:, c]
            assert torch.allclose(got, fd, rtol=1e-6, atol=1e-8), name


def test_batched_equals_per_sample_and_input_gradient():
    net, x = residual_net(), torch.randn(4, 1, 7, 7, dtype=DT)
    target = torch.tensor([0, 2, 1, 2])
    fj = full_jacobian(net, x, target=target)
    for i in range(4):
        single = full_jacobian(net, x[i:i + 1], target=int(target[i]))
        for name in fj.bias_gradients:
            assert torch.allclose(fj.bias_gradients[name][i], single.bias_gradients[name][0])
        xi = x[i:i + 1].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(net(xi)[0, target[i]], xi)
        assert torch.allclose(fj.input_gradient[i], grad[0])


def test_model_state_left_unchanged():
    net = chain_net()
    fj = full_jacobian(net, torch.randn(2, 2, 6, 6, dtype=DT), layers=["1"])
    assert list(fj.bias_gradients) == ["1"] and not fj.complete
    assert not net.training
    assert all(not m._forward_hooks for m in net.modules())
    assert all(p.grad is None for p in net.parameters())
    with pytest.raises(ValueError, match="every bias layer"):
        fj.completeness_error()


def test_create_graph_allows_double_backward():
    net, x = chain_net(), torch.randn(2, 2, 6, 6, dtype=DT)
    fj = full_jacobian(net, x, create_graph=True)
    fj.bias_gradients["4"].pow(2).sum().backward()
    # f^b at layer 4 depends on the layers after it (the head) and on BN 4's own parameters;
    # the ReLU masks are locally constant, so the first convolution gets an exactly zero gradient
    assert net[8].weight.grad.abs().sum() > 0 and net[4].weight.grad.abs().sum() > 0
    assert net[0].weight.grad.abs().sum() == 0
    plain = full_jacobian(net, x)
    assert plain.logits.grad_fn is None and plain.input_gradient.grad_fn is None


def test_input_requiring_grad_is_used_as_is():
    net = chain_net()
    x = torch.randn(2, 2, 6, 6, dtype=DT, requires_grad=True)
    fj = full_jacobian(net, x, create_graph=True)
    assert fj.input is x
    fj.bias_gradients["1"].sum().backward()
    assert x.grad is not None


def test_strict_false_and_batch_statistics():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 2)).to(DT).train()
    x = torch.randn(5, 3, dtype=DT)
    fj = full_jacobian(net, x, strict=False, batch_statistics=True)
    bn = net[1]
    z = net[0](x)
    expected = bn.bias - z.mean(0) * bn.weight / torch.sqrt(z.var(0, unbiased=False) + bn.eps)
    assert torch.allclose(fj.biases["1"].flatten(), expected)
    assert net.training and not fj.complete


# ---- bad input -----------------------------------------------------------------------------

def test_error_batchnorm_without_affine():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, affine=False), nn.Flatten(),
                        nn.LazyLinear(2)).eval()
    with pytest.raises(ValueError, match="affine=False"):
        full_jacobian(net, torch.rand(2, 1, 5, 5))


def test_error_training_mode_batchnorm():
    net = chain_net().train()
    with pytest.raises(ValueError, match="model.eval"):
        full_jacobian(net, torch.rand(2, 2, 6, 6, dtype=DT))
    assert net.training


def test_error_training_mode_dropout():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4, 2)).to(DT)
    x = torch.rand(5, 3, dtype=DT)
    with pytest.raises(ValueError, match="dropout layer '2' is in training mode"):
        full_jacobian(net, x)
    assert net.training  # left as it was
    fj = full_jacobian(net, x, batch_statistics=True)  # training use: the sampled sub-network
    assert fj.input_gradient.shape == x.shape
    assert full_jacobian(net.eval(), x).completeness_error(relative=True).max() < 1e-10


@pytest.mark.parametrize("act", [nn.Tanh(), nn.GELU(), nn.Sigmoid(), nn.ReLU6()])
def test_error_not_piecewise_linear(act):
    net = nn.Sequential(nn.Linear(3, 4), act, nn.Linear(4, 2))
    with pytest.raises(ValueError, match="not piecewise linear"):
        full_jacobian(net, torch.rand(2, 3))
    fj = full_jacobian(net, torch.rand(2, 3), strict=False)  # documented escape hatch
    assert not fj.complete


def test_error_no_bias_source():
    net = nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 2, bias=False))
    with pytest.raises(ValueError, match="no bias source"):
        full_jacobian(net, torch.rand(2, 3))


@pytest.mark.parametrize("target, match", [(3, r"\[0, 3\)"), (-1, r"\[0, 3\)"),
                                           (torch.tensor([0, 5]), r"\[0, 3\)"),
                                           (torch.tensor([0, 1, 2]), "shape")])
def test_error_target_out_of_range(target, match):
    with pytest.raises(ValueError, match=match):
        full_jacobian(chain_net(), torch.rand(2, 2, 6, 6, dtype=DT), target=target)


def test_error_target_type():
    with pytest.raises(TypeError, match="integer"):
        full_jacobian(chain_net(), torch.rand(2, 2, 6, 6, dtype=DT), target=torch.tensor([0.0, 1.0]))


def test_error_input_cannot_take_gradients():
    net = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(TypeError, match="floating-point"):
        full_jacobian(net, torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="`x` must be a torch.Tensor"):
        full_jacobian(net, [[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="`x` contains NaN"):
        full_jacobian(net, torch.tensor([[1.0, float("nan"), 0.0]]))


def test_error_layer_names():
    net = chain_net()
    x = torch.rand(2, 2, 6, 6, dtype=DT)
    with pytest.raises(ValueError, match="no module named 'nope'"):
        full_jacobian(net, x, layers=["nope"])
    with pytest.raises(ValueError, match="has no bias"):
        full_jacobian(net, x, layers=["3"])


def test_error_shared_module_and_output_shape():
    lin = nn.Linear(3, 3)
    with pytest.raises(ValueError, match="more than once"):
        full_jacobian(nn.Sequential(lin, nn.ReLU(), lin), torch.rand(2, 3))
    assert not lin._forward_hooks
    with pytest.raises(ValueError, match="B×K"):
        full_jacobian(nn.Sequential(nn.Linear(3, 2), nn.Flatten(0)), torch.rand(2, 3))
