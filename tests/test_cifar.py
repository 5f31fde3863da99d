import os
import pickle

import numpy as np
import pytest
import torch

import latentgraph as lg
from latentgraph.data.cifar import NORMALIZATION, CIFARDataset, load_cifar
from latentgraph.models import VGG, PreActResNet18, ResNet18, WideResNet, build_model
from latentgraph.models.cifar import CIFAR_MODELS, ParsevalConv2d


def n_params(model):
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------ models
def test_wideresnet_parameter_counts_match_the_paper():
    # Zagoruyko & Komodakis (2016), Table: WRN-40-4 8.9M, WRN-16-8 11.0M
    assert round(n_params(WideResNet(40, 4)) / 1e6, 1) == 8.9
    assert round(n_params(WideResNet(16, 8)) / 1e6, 1) == 11.0
    teacher, student = n_params(WideResNet(28, 1)), n_params(WideResNet(28, 0.5))
    assert round(teacher / 1e6, 2) == 0.37
    assert 3.5 < teacher / student < 4.5  # the GKD recipe's ≈4× smaller student


def test_resnet_and_vgg_parameter_counts():
    assert n_params(ResNet18()) == 11_173_962  # the common CIFAR ResNet-18
    # the official Laplacian-networks PreAct-ResNet-18: no BatchNorm after the last block
    assert n_params(PreActResNet18()) == 11_171_146
    assert n_params(PreActResNet18(parseval=True)) == 11_171_146
    assert round(n_params(VGG(16)) / 1e6, 1) == 14.7


@pytest.mark.parametrize("name, kwargs, blocks", [
    ("wrn", {"depth": 16, "width": 0.5}, ["block1", "block2", "block3"]),
    ("resnet18", {"width": 8}, ["block1", "block2", "block3", "block4"]),
    ("preact_resnet18", {"width": 8}, ["block1", "block2", "block3", "block4"]),
    ("vgg", {"depth": 11, "width": 0.125}, ["block1", "block2", "block3", "block4", "block5"]),
])
def test_named_blocks_forward_and_capture(name, kwargs, blocks):
    model = build_model(name, num_classes=7, **kwargs).eval()
    names = lg.layer_names(model)
    assert set(blocks + ["pool", "head"]) <= set(names)
    with lg.capture(model, blocks) as acts:
        out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 7)
    sizes = [acts[b].shape[-1] for b in blocks]
    expected = [32, 16, 8] if name == "wrn" else [32, 16, 8, 4] if "resnet" in name else [16, 8, 4, 2, 1]
    assert sizes == expected


def test_wideresnet_stage_widths_and_dropout():
    model = WideResNet(depth=16, width=0.5, dropout=0.3)
    with lg.capture(model, ["block1", "block2", "block3"]) as acts:
        model.eval()(torch.rand(1, 3, 32, 32))
    assert [acts[b].shape[1] for b in ("block1", "block2", "block3")] == [8, 16, 32]
    x = torch.rand(2, 3, 32, 32)
    model.train()
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, model(x))  # dropout active in training


def test_model_bad_arguments():
    with pytest.raises(ValueError, match="depth - 4 divisible by 6"):
        WideResNet(depth=27)
    with pytest.raises(ValueError, match="`width` must be a finite number > 0"):
        WideResNet(width=0)
    with pytest.raises(ValueError, match="`depth` must be one of"):
        VGG(depth=12)
    with pytest.raises(ValueError, match="`num_classes` must be an int ≥ 1"):
        ResNet18(num_classes=0)
    with pytest.raises(ValueError, match="unknown model 'wrn28'; available: lil_classifier, mlp, preact_resnet18, resnet18"):
        build_model("wrn28")
    with pytest.raises(TypeError, match="bad arguments for model 'resnet18'"):
        build_model("resnet18", depth=18)
    assert sorted(CIFAR_MODELS) == ["preact_resnet18", "resnet18", "vgg", "wrn"]


def _official_preact_forward(model, x):
    """The forward pass of the Laplacian-networks code (models/preact_resnet.py),
    written out on our parameters: returns its 17 ReLU outputs and the logits."""
    relus, out = [], model.stem(x)
    for stage in (model.block1, model.block2, model.block3, model.block4):
        for block in stage:
            relu1 = torch.relu(block.bn1(out))
            shortcut = block.shortcut(relu1) if block.shortcut is not None else out
            relu2 = torch.relu(block.bn2(block.conv1(relu1)))
            branch = block.conv2(relu2)
            out = 0.5 * branch + 0.5 * shortcut if block.parseval else branch + shortcut
            relus += [relu1, relu2]
    out = torch.relu(out)
    relus.append(out)
    return relus, model.head(out.mean(dim=(2, 3)))


@pytest.mark.parametrize("parseval", [False, True])
def test_preact_resnet18_matches_the_official_network(parseval):
    torch.manual_seed(0)
    model = PreActResNet18(width=4, in_channels=1, parseval=parseval).eval()
    names = lg.losses.laplacian_smoothness.relu_layer_names(model)
    assert len(names) == 17 and names[-1] == "final"
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in (model.stem, model.final))
    x = torch.rand(3, 1, 28, 28)
    with lg.capture(model, names) as acts:
        logits = model(x)
    relus, expected = _official_preact_forward(model, x)
    assert torch.allclose(logits, expected, atol=1e-6)
    for name, reference in zip(names, relus):
        assert torch.allclose(acts[name], reference, atol=1e-6), name
    # Parseval convolutions divide the kernel by sqrt(2·k_h·k_w + 1) (1/sqrt(19) for 3×3, 1/sqrt(3) for 1×1)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(isinstance(c, ParsevalConv2d) == parseval for c in convs)
    shortcut = model.block2[0].shortcut
    a = torch.rand(1, 4, 8, 8)
    plain = torch.nn.functional.conv2d(a, shortcut.weight, stride=2)
    assert torch.allclose(shortcut(a), plain / 3 ** 0.5 if parseval else plain, atol=1e-6)


def test_preact_resnet18_keeps_pytorch_default_initialization():
    # the official network does not re-initialize: PyTorch's kaiming_uniform(a=√5) gives
    # |w| ≤ 1/sqrt(fan_in) and BatchNorm weights of 1; He-normal (fan_out) would exceed that bound
    torch.manual_seed(0)
    model = PreActResNet18(width=16)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            bound = module.weight[0].numel() ** -0.5
            assert float(module.weight.abs().max()) <= bound + 1e-7, name
    assert float(ResNet18(width=16).stem[0].weight.abs().max()) > ResNet18(width=16).stem[0].weight[0].numel() ** -0.5
    with pytest.raises(TypeError, match="`parseval` must be a bool"):
        PreActResNet18(parseval="yes")


# ------------------------------------------------------------------ data
def _write(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _batch(n, seed, label_key=b"labels", classes=10):
    rng = np.random.default_rng(seed)
    return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            label_key: rng.integers(0, classes, n).tolist(), b"batch_label": b"tiny"}


@pytest.fixture
def cifar10(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        _write(folder / f"data_batch_{i}", _batch(2, i))
    _write(folder / "test_batch", _batch(3, 9))
    return tmp_path


def test_load_cifar10_layout_and_pixels(cifar10):
    x, y = load_cifar(cifar10, "cifar10", train=True)
    assert x.shape == (10, 3, 32, 32) and x.dtype == torch.uint8 and y.dtype == torch.long
    raw = _batch(2, 3)  # data_batch_3 holds training images 4 and 5
    # row-major channel planes: data[i, c*1024 + r*32 + col] = image[c, r, col]
    assert int(x[5, 2, 7, 11]) == int(raw[b"data"][1, 2 * 1024 + 7 * 32 + 11])
    assert y[4:6].tolist() == raw[b"labels"]
    xt, yt = load_cifar(cifar10 / "cifar-10-batches-py", train=False)  # the folder itself works too
    assert xt.shape == (3, 3, 32, 32) and yt.tolist() == _batch(3, 9)[b"labels"]


def test_load_cifar100_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    _write(folder / "train", _batch(4, 1, b"fine_labels", 100))
    _write(folder / "test", _batch(2, 2, b"fine_labels", 100))
    x, y = load_cifar(tmp_path, "cifar100")
    assert x.shape == (4, 3, 32, 32) and y.tolist() == _batch(4, 1, b"fine_labels", 100)[b"fine_labels"]


def test_missing_folder_and_files(tmp_path, cifar10):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_cifar(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no cifar10 python-pickle files"):
        load_cifar(empty)
    os.remove(cifar10 / "cifar-10-batches-py" / "data_batch_3")
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_cifar(cifar10)
    with pytest.raises(ValueError, match="`name` must be one of"):
        load_cifar(cifar10, "svhn")


@pytest.mark.parametrize("content, message", [
    ({b"labels": [0, 1]}, "lacks the key"),
    ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, "N×3072"),
    ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 integer labels"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, r"labels must be in 0\.\.9"),
    ([1, 2], "must hold a dict"),
])
def test_malformed_batches(cifar10, content, message):
    path = cifar10 / "cifar-10-batches-py" / "test_batch"
    _write(path, content)
    with pytest.raises(ValueError, match=message) as info:
        load_cifar(cifar10, train=False)
    assert "test_batch" in str(info.value)


def test_truncated_and_malicious_files(cifar10):
    path = cifar10 / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError, match="test_batch.*not a readable python-pickle batch"):
        load_cifar(cifar10, train=False)
    _write(path, {b"data": os.system, b"labels": []})
    with pytest.raises(ValueError, match="refusing to load posix.system"):
        load_cifar(cifar10, train=False)


def test_dataset_normalizes_and_augments():
    x = torch.arange(3 * 32 * 32, dtype=torch.int64).remainder(256).to(torch.uint8).view(1, 3, 32, 32)
    mean, std = NORMALIZATION["cifar10"]
    image, label = CIFARDataset(x, torch.tensor([4]))[0]
    expected = (x[0].float() / 255 - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    assert torch.allclose(image, expected) and int(label) == 4
    # an augmented image is one of the 9×9 crops of the zero-padded image, possibly flipped
    padded = torch.nn.functional.pad(expected * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1),
                                     (4, 4, 4, 4))
    candidates = [c for t in range(9) for s in range(9) for c in
                  (padded[:, t:t + 32, s:s + 32], padded[:, t:t + 32, s:s + 32].flip(-1))]
    dataset = CIFARDataset(x, torch.tensor([4]), augment=True)
    torch.manual_seed(0)
    draws = [dataset[0][0] for _ in range(6)]
    for drawn in draws:
        raw = drawn * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)
        assert any(torch.allclose(raw, c, atol=1e-5) for c in candidates)
    assert len({tuple(d.flatten()[:50].tolist()) for d in draws}) > 1
    torch.manual_seed(0)
    assert torch.equal(dataset[0][0], draws[0])
    with pytest.raises(ValueError, match="uint8"):
        CIFARDataset(x.float(), torch.tensor([4]))
    with pytest.raises(ValueError, match="1 labels"):
        CIFARDataset(x, torch.tensor([4, 5]))
