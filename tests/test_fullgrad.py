"""Tests for latentgraph.jacobian.fullgrad (FullGrad saliency, equation 4 of the paper)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from latentgraph.jacobian import fullgrad, gradient_times_input, saliency_postprocess

DT = torch.float64


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 2, 3, padding=1), nn.ReLU(),
        nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2),
    ).to(DT)
    bn = net[3]
    bn.running_mean.copy_(torch.tensor([0.3, -0.2, 0.1], dtype=DT))
    bn.running_var.copy_(torch.tensor([0.5, 2.0, 1.5], dtype=DT))
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.5, -0.7, 0.9], dtype=DT))
        bn.bias.copy_(torch.tensor([0.2, 0.4, -0.3], dtype=DT))
    return net.eval()


def _minmax(t: np.ndarray) -> np.ndarray:
    """abs, then min–max over all channels and positions of one sample (official eps = 1e-6)."""
    t = np.abs(t)
    t = t - t.min()
    return t / (t.max() + 1e-6)


def _resize_bilinear_aligned(m: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of an h×w map to size×size with aligned corners, written out."""
    def axis_weights(n_in):
        w = np.zeros((size, n_in))
        for i in range(size):
            src = i * (n_in - 1) / (size - 1)
            i0 = int(np.floor(src))
            i1 = min(i0 + 1, n_in - 1)
            w[i, i0] += 1 - (src - i0)
            w[i, i1] += src - i0
        return w
    return axis_weights(m.shape[0]) @ m @ axis_weights(m.shape[1]).T


def _equation_4(net, x, target, simple=False):
    """FullGrad written out: explicit forward, gradients w.r.t. the pre-activations, post-processing."""
    c1, c2, bn, lin = net[0], net[2], net[3], net[7]
    x = x.clone().requires_grad_(True)
    z1 = F.conv2d(x, c1.weight, c1.bias, padding=1)
    z2 = F.conv2d(z1.relu(), c2.weight, c2.bias, stride=2, padding=1)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    z3 = (z2 - bn.running_mean[:, None, None]) * scale[:, None, None] + bn.bias[:, None, None]
    out = z3.relu().mean((2, 3)) @ lin.weight.T + lin.bias
    gx, g1, g2, g3 = torch.autograd.grad(out[torch.arange(len(x)), target].sum(), [x, z1, z2, z3])
    biases = [c1.bias, c2.bias, bn.bias - bn.running_mean * scale]
    terms = [g1, g2, g3] if simple else [g * b[:, None, None] for g, b in zip([g1, g2, g3], biases)]
    size = x.shape[-1]
    maps = []
    for i in range(len(x)):
        s = _minmax((gx[i] * x[i]).detach().numpy()).sum(0)
        for t in terms:
            scaled = _minmax(t[i].detach().numpy())
            s = s + sum(_resize_bilinear_aligned(scaled[c], size) for c in range(scaled.shape[0]))
        maps.append(s[None])
    return torch.from_numpy(np.stack(maps))


@pytest.mark.parametrize("variant", ["full", "simple"])
def test_fullgrad_equals_equation_4_written_out(variant):
    net = tiny_net()
    x = torch.randn(3, 2, 6, 6, generator=torch.Generator().manual_seed(1), dtype=DT)
    target = torch.tensor([0, 1, 1])
    got = fullgrad(net, x, target=target, variant=variant)
    assert got.shape == (3, 1, 6, 6)
    assert torch.allclose(got, _equation_4(net, x, target, simple=variant == "simple"), atol=1e-10)


def test_default_target_is_prediction_and_batch_independent():
    net = tiny_net()
    x = torch.randn(4, 2, 6, 6, generator=torch.Generator().manual_seed(2), dtype=DT)
    maps = fullgrad(net, x)
    assert torch.allclose(maps, fullgrad(net, x, target=net(x).argmax(1)))
    for i in range(4):
        assert torch.allclose(maps[i], fullgrad(net, x[i:i + 1])[0])


def test_postprocess_is_per_sample_min_max():
    t = torch.tensor([[[[-2.0, 1.0], [0.5, 3.0]]], [[[4.0, 4.0], [0.0, -8.0]]]])
    got = saliency_postprocess(t, eps=0.0)
    assert torch.equal(got, torch.tensor([[[[0.6, 0.2], [0.0, 1.0]]], [[[0.5, 0.5], [0.0, 1.0]]]]))


def test_differentiable_mode():
    net = tiny_net()
    x = torch.randn(2, 2, 6, 6, dtype=DT, requires_grad=True)
    maps = fullgrad(net, x, differentiable=True)
    maps.sum().backward()
    assert net[7].weight.grad.abs().sum() > 0 and x.grad is not None
    assert fullgrad(net, x).grad_fn is None


def test_model_mode_and_hooks_left_unchanged():
    net = tiny_net()
    fullgrad(net, torch.rand(2, 2, 6, 6, dtype=DT), variant="simple")
    assert not net.training and all(not m._forward_hooks for m in net.modules())


def test_gradient_times_input_written_out():
    net = tiny_net()
    x = torch.randn(2, 2, 6, 6, dtype=DT)
    xg = x.clone().requires_grad_(True)
    out = net(xg)
    (g,) = torch.autograd.grad(out[:, 1].sum(), xg)
    assert torch.allclose(gradient_times_input(net, x, target=1), (g * x).abs().sum(1, keepdim=True))


def test_simple_variant_accepts_any_activation():
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.GELU(), nn.Flatten(), nn.Linear(2 * 16, 3)).eval()
    with pytest.raises(ValueError, match="not piecewise linear"):
        fullgrad(net, torch.rand(2, 1, 4, 4))
    assert fullgrad(net, torch.rand(2, 1, 4, 4), variant="simple").shape == (2, 1, 4, 4)


def test_bad_input():
    net = tiny_net()
    with pytest.raises(ValueError, match="B×C×H×W"):
        fullgrad(net, torch.rand(2, 36, dtype=DT))
    with pytest.raises(ValueError, match="variant"):
        fullgrad(net, torch.rand(2, 2, 6, 6, dtype=DT), variant="smooth")
    with pytest.raises(ValueError, match="model.eval"):
        fullgrad(net.train(), torch.rand(2, 2, 6, 6, dtype=DT))
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        fullgrad(net.eval(), torch.rand(2, 2, 6, 6, dtype=DT), target=2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    net = tiny_net()
    x = torch.randn(3, 2, 6, 6, dtype=DT)
    expected = fullgrad(net, x)
    assert torch.allclose(fullgrad(net.cuda(), x.cuda()).cpu(), expected, atol=1e-10)


# ---- the `latentgraph saliency` command ----------------------------------------------------

def test_saliency_command_on_user_model_and_images(tmp_path):
    from latentgraph.cli import main
    from latentgraph.models import SmallCNN

    torch.manual_seed(0)
    torch.save(SmallCNN(width=4).state_dict(), tmp_path / "w.pt")
    (tmp_path / "nets.py").write_text("from latentgraph.models import SmallCNN\n"
                                      "def make():\n    return SmallCNN(width=4)\n")
    x = torch.rand(6, 1, 8, 8).numpy()
    np.savez(tmp_path / "imgs.npz", x=x, y=np.arange(6) % 3)
    out = tmp_path / "out"
    rc = main(["saliency", "--model", f"{tmp_path / 'nets.py'}:make", "--checkpoint", str(tmp_path / "w.pt"),
               "--images", str(tmp_path / "imgs.npz"), "--output", str(out), "--count", "4",
               "--variant", "simple"])
    assert rc == 0 and (out / "saliency.png").stat().st_size > 0
    saved = np.load(out / "saliency.npz")
    assert saved["fullgrad"].shape == (4, 1, 8, 8)
    net = SmallCNN(width=4)
    net.load_state_dict(torch.load(tmp_path / "w.pt", weights_only=True))
    expected = fullgrad(net.eval(), torch.from_numpy(saved["x"]), variant="simple")
    assert np.allclose(saved["fullgrad"], expected.numpy(), atol=1e-6)


def test_saliency_command_bad_input(tmp_path):
    from latentgraph.cli import main

    assert main(["saliency", "--count", "0", "--output", str(tmp_path)]) == 2
    assert main(["saliency", "--images", str(tmp_path / "missing.npz"), "--output", str(tmp_path)]) == 2


@pytest.mark.slow
def test_saliency_command_default_trains_on_digits(tmp_path):
    from latentgraph.cli import main

    assert main(["saliency", "--epochs", "1", "--output", str(tmp_path)]) == 0
    assert (tmp_path / "model.pt").exists() and (tmp_path / "saliency.png").exists()


def _official_fullgrad(net, x):
    """The authors' post-processing, one bias layer at a time: ψ of ∇x f ⊙ x and of each
    bias-gradient, F.interpolate to the input, channel sums."""
    from latentgraph.jacobian import full_jacobian

    fj = full_jacobian(net, x)
    maps = saliency_postprocess(fj.input_gradient * fj.input).sum(1, keepdim=True)
    for grad in fj.bias_gradients.values():
        if grad.dim() == 4:
            maps = maps + F.interpolate(saliency_postprocess(grad), size=x.shape[-2:], mode="bilinear",
                                        align_corners=True).sum(1, keepdim=True)
    return maps.detach()


def test_fullgrad_of_a_three_resolution_cnn_equals_the_official_post_processing():
    from latentgraph.models import SmallCNN

    torch.manual_seed(3)
    net = SmallCNN(width=8).to(DT).eval()
    for module in net.modules():  # non-trivial running statistics, so BatchNorm's effective bias is not β
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    x = torch.rand(5, 1, 28, 28, dtype=DT)
    assert torch.allclose(fullgrad(net, x), _official_fullgrad(net, x), rtol=1e-10, atol=1e-10)


def test_fullgrad_computes_no_weight_gradient():
    from latentgraph.models import SmallCNN

    net = SmallCNN(width=4).eval()
    reached = []
    for name, param in net.named_parameters():
        param.register_hook(lambda grad, name=name: reached.append(name))
    fullgrad(net, torch.rand(2, 1, 28, 28))
    fullgrad(net, torch.rand(2, 1, 28, 28), variant="simple")
    assert reached == [] and all(param.grad is None for param in net.parameters())
