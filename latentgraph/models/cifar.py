"""Paper-scale CIFAR networks with named stages: WideResNet, ResNet-18,
PreAct-ResNet-18 and VGG with BatchNorm.

Every network is ``stem`` → ``block1`` … ``blockN`` (one per resolution) →
``pool`` (global average, flattened) → ``head`` (linear), plus the final
activation before pooling of the pre-activation networks (``norm``, BN-ReLU, for
the WideResNet; ``final``, a ReLU alone, for the PreAct-ResNet-18), so layers
can be picked by name with :func:`latentgraph.capture` in the same way for all
of them (``"block3"`` is the last stage of a WideResNet, ``"block4"`` of a
ResNet-18). :func:`latentgraph.models.build_model` builds one by name.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch.nn.functional as F
from torch import Tensor, nn

from ..validation import check_int, check_number


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _pool() -> nn.Sequential:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())


class WideBasicBlock(nn.Module):
    """Pre-activation wide residual block: BN-ReLU-conv3×3-BN-ReLU-(dropout)-conv3×3,
    with a 1×1 convolution on the (activated) input when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), _conv3x3(cin, cout, stride)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), _conv3x3(cout, cout)
        self.dropout = dropout
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False) if cin != cout or stride != 1 else None

    def forward(self, x: Tensor) -> Tensor:
        a = F.relu(self.bn1(x))
        out = F.relu(self.bn2(self.conv1(a)))
        if self.dropout > 0:
            out = F.dropout(out, p=self.dropout, training=self.training)
        out = self.conv2(out)
        return out + (x if self.shortcut is None else self.shortcut(a))


class WideResNet(nn.Module):
    r"""WideResNet-:math:`d`-:math:`k` (Zagoruyko & Komodakis, 2016) for 32×32 images.

    ``stem`` (3×3 conv, 16 channels) → ``block1``/``block2``/``block3``, each
    :math:`n = (d-4)/6` :class:`WideBasicBlock` of
    :math:`\mathrm{round}(16k), \mathrm{round}(32k), \mathrm{round}(64k)`
    channels at strides 1, 2, 2 → ``norm`` (BN-ReLU) → ``pool`` → ``head``.
    Fractional widths give thinner students: WRN-28-1 has ≈0.37M parameters,
    WRN-28-0.5 ≈0.10M.

    Args:
        depth (int): :math:`d`, with :math:`d - 4` divisible by 6. (default: :obj:`28`)
        width (float): widening factor :math:`k > 0`. (default: :obj:`1.0`)
        num_classes (int): outputs. (default: :obj:`10`)
        dropout (float): dropout inside each block. (default: :obj:`0.0`)
        in_channels (int): input channels. (default: :obj:`3`)

    Example:
        >>> model = WideResNet(depth=28, width=1)
        >>> model(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 10])
        >>> sum(p.numel() for p in model.parameters())
        369498
    """

    def __init__(self, depth: int = 28, width: float = 1.0, num_classes: int = 10, dropout: float = 0.0,
                 in_channels: int = 3) -> None:
        super().__init__()
        check_int(depth, "depth", minimum=10)
        if (depth - 4) % 6:
            raise ValueError(f"`depth` must be an int ≥ 10 with depth - 4 divisible by 6 (e.g. 16, 28, 40), got {depth!r}")
        check_number(width, "width", positive=True)
        if check_number(dropout, "dropout") >= 1.0:
            raise ValueError(f"`dropout` must be in [0, 1), got {dropout!r}")
        check_int(num_classes, "num_classes", minimum=1)
        check_int(in_channels, "in_channels", minimum=1)
        channels = [16] + [max(1, round(c * width)) for c in (16, 32, 64)]
        n = (depth - 4) // 6
        self.stem = _conv3x3(in_channels, channels[0])
        for i, stride in enumerate((1, 2, 2), start=1):
            blocks = [WideBasicBlock(channels[i - 1] if j == 0 else channels[i], channels[i],
                                     stride if j == 0 else 1, dropout) for j in range(n)]
            self.add_module(f"block{i}", nn.Sequential(*blocks))
        self.norm = nn.Sequential(nn.BatchNorm2d(channels[3]), nn.ReLU())
        self.pool = _pool()
        self.head = nn.Linear(channels[3], num_classes)
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.block3(self.block2(self.block1(self.stem(x))))
        return self.head(self.pool(self.norm(x)))


class BasicBlock(nn.Module):
    """ResNet basic block: conv3×3-BN-ReLU-conv3×3-BN plus shortcut, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv3x3(cin, cout, stride), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = _conv3x3(cout, cout), nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)) \
            if cin != cout or stride != 1 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + self.shortcut(x))


class ParsevalConv2d(nn.Conv2d):
    r"""Convolution of a Parseval network as in the Laplacian-networks code: the
    kernel is divided by :math:`\sqrt{2 k_h k_w + 1}` in the forward pass (the
    official code's factor; Parseval networks: Cisse et al., 2017).

    Example:
        >>> conv = ParsevalConv2d(1, 1, 3, padding=1, bias=False)
        >>> _ = nn.init.ones_(conv.weight)
        >>> with torch.no_grad():
        ...     round(float(conv(torch.ones(1, 1, 3, 3))[0, 0, 1, 1]), 4)  # 9 / √19
        2.0647
    """

    def forward(self, x: Tensor) -> Tensor:
        scale = (2 * self.kernel_size[0] * self.kernel_size[1] + 1) ** -0.5
        return self._conv_forward(x, self.weight * scale, self.bias)


class PreActBlock(nn.Module):
    r"""Pre-activation basic block (He et al., 2016): BN-ReLU-conv3×3-BN-ReLU-conv3×3 plus
    shortcut (a 1×1 convolution of the first ReLU's output when the shape changes).

    The two activations are the modules ``relu1`` and ``relu2`` so they can be
    captured by name. ``parseval=True`` gives the Parseval block of the
    Laplacian-networks code: :class:`ParsevalConv2d` convolutions and the
    convex residual sum :math:`\frac12 \mathrm{branch} + \frac12 \mathrm{shortcut}`.
    """

    def __init__(self, cin: int, cout: int, stride: int, parseval: bool = False) -> None:
        super().__init__()
        conv = ParsevalConv2d if parseval else nn.Conv2d
        self.parseval = parseval
        self.bn1, self.relu1 = nn.BatchNorm2d(cin), nn.ReLU()
        self.conv1 = conv(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2, self.relu2 = nn.BatchNorm2d(cout), nn.ReLU()
        self.conv2 = conv(cout, cout, 3, padding=1, bias=False)
        self.shortcut = conv(cin, cout, 1, stride=stride, bias=False) if cin != cout or stride != 1 else None

    def forward(self, x: Tensor) -> Tensor:
        a = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(a))))
        shortcut = x if self.shortcut is None else self.shortcut(a)
        return 0.5 * out + 0.5 * shortcut if self.parseval else out + shortcut


class _ResNet(nn.Module):
    """Four stages of two blocks each, CIFAR stem (3×3 conv, no max-pooling)."""

    def __init__(self, block: Callable[[int, int, int], nn.Module], preact: bool, num_classes: int,
                 width: int, in_channels: int, stem: nn.Module | None = None) -> None:
        super().__init__()
        check_int(num_classes, "num_classes", minimum=1)
        check_int(width, "width", minimum=1)
        check_int(in_channels, "in_channels", minimum=1)
        channels = [width, 2 * width, 4 * width, 8 * width]
        self.stem = stem if stem is not None else \
            nn.Sequential(_conv3x3(in_channels, width), nn.BatchNorm2d(width), nn.ReLU())
        cin = width
        for i, (cout, stride) in enumerate(zip(channels, (1, 2, 2, 2)), start=1):
            self.add_module(f"block{i}", nn.Sequential(block(cin, cout, stride), block(cout, cout, 1)))
            cin = cout
        self.final = nn.ReLU() if preact else nn.Identity()
        self.pool = _pool()
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.block4(self.block3(self.block2(self.block1(self.stem(x)))))
        return self.head(self.pool(self.final(x)))


class ResNet18(_ResNet):
    r"""ResNet-18 for 32×32 images (3×3 stem, no max-pooling): ``stem`` →
    ``block1`` … ``block4`` (64, 128, 256, 512 channels × ``width``/64) →
    ``pool`` → ``head``; 11.2M parameters at the default width; He-normal
    convolutions, unit BatchNorm, zero biases.

    Args:
        num_classes (int): outputs. (default: :obj:`10`)
        width (int): channels of the first stage. (default: :obj:`64`)
        in_channels (int): input channels. (default: :obj:`3`)

    Example:
        >>> ResNet18(width=8)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(self, num_classes: int = 10, width: int = 64, in_channels: int = 3) -> None:
        super().__init__(BasicBlock, False, num_classes, width, in_channels)
        _init_weights(self)


class PreActResNet18(_ResNet):
    r"""Pre-activation ResNet-18 as in the official Laplacian-networks code
    (Lassance et al.): ``stem`` (3×3 conv, no BatchNorm) → ``block1`` …
    ``block4`` of two :class:`PreActBlock` each → ``final`` (a ReLU, no
    BatchNorm) → ``pool`` → ``head``; 11,171,146 parameters at the default
    width, PyTorch's default initialization.

    The network holds exactly 17 ``nn.ReLU`` modules — ``relu1``/``relu2`` of
    the 8 blocks, then ``final`` — in forward order, the layers the
    Laplacian-smoothness regularizer compares
    (:func:`~latentgraph.losses.laplacian_smoothness.relu_layer_names`).
    ``parseval=True`` builds the official Parseval network instead: every
    convolution a :class:`ParsevalConv2d` and convex residual sums (train it
    with the retraction of
    :class:`~latentgraph.train.objectives.ParsevalObjective`).
    The official code normalizes the input inside the network; here the data
    pipeline does it (:class:`~latentgraph.data.cifar.CIFARDataset`).

    Args:
        num_classes (int): outputs. (default: :obj:`10`)
        width (int): channels of the first stage. (default: :obj:`64`)
        in_channels (int): input channels. (default: :obj:`3`)
        parseval (bool): the Parseval architecture. (default: :obj:`False`)

    Example:
        >>> model = PreActResNet18(width=8)
        >>> model(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 10])
        >>> from latentgraph.losses.laplacian_smoothness import relu_layer_names
        >>> names = relu_layer_names(model)
        >>> len(names), names[:2], names[-1]
        (17, ['block1.0.relu1', 'block1.0.relu2'], 'final')
    """

    def __init__(self, num_classes: int = 10, width: int = 64, in_channels: int = 3,
                 parseval: bool = False) -> None:
        if not isinstance(parseval, bool):
            raise TypeError(f"`parseval` must be a bool, got {type(parseval).__name__}")
        check_int(width, "width", minimum=1)
        check_int(in_channels, "in_channels", minimum=1)
        conv = ParsevalConv2d if parseval else nn.Conv2d
        super().__init__(partial(PreActBlock, parseval=parseval), True, num_classes, width, in_channels,
                         stem=conv(in_channels, width, 3, padding=1, bias=False))


#: Convolution widths per stage of the VGG variants (each stage ends with 2×2 max-pooling).
VGG_STAGES: dict[int, list[list[int]]] = {
    11: [[64], [128], [256, 256], [512, 512], [512, 512]],
    13: [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    16: [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    19: [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}


class VGG(nn.Module):
    r"""VGG with BatchNorm for 32×32 images (Simonyan & Zisserman, 2015).

    ``block1`` … ``block5``: conv3×3-BN-ReLU layers (see :data:`VGG_STAGES`)
    followed by 2×2 max-pooling, then ``pool`` → ``head`` (linear from the
    last stage's channels); VGG-16 has 14.7M parameters. There is no
    ``stem``: the first stage takes the image.

    Args:
        depth (int): 11, 13, 16 or 19. (default: :obj:`16`)
        num_classes (int): outputs. (default: :obj:`10`)
        width (float): multiplies every stage's channels. (default: :obj:`1.0`)
        in_channels (int): input channels. (default: :obj:`3`)

    Example:
        >>> VGG(depth=11, width=0.125)(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(self, depth: int = 16, num_classes: int = 10, width: float = 1.0, in_channels: int = 3) -> None:
        super().__init__()
        if check_int(depth, "depth") not in VGG_STAGES:
            raise ValueError(f"`depth` must be one of {sorted(VGG_STAGES)}, got {depth!r}")
        check_number(width, "width", positive=True)
        check_int(num_classes, "num_classes", minimum=1)
        cin = check_int(in_channels, "in_channels", minimum=1)
        for i, stage in enumerate(VGG_STAGES[depth], start=1):
            layers: list[nn.Module] = []
            for c in stage:
                cout = max(1, round(c * width))
                layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
                cin = cout
            self.add_module(f"block{i}", nn.Sequential(*layers, nn.MaxPool2d(2)))
        self.pool = _pool()
        self.head = nn.Linear(cin, num_classes)
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        for i in range(1, 6):
            x = getattr(self, f"block{i}")(x)
        return self.head(self.pool(x))


def _init_weights(model: nn.Module) -> None:
    """He-normal convolutions, unit BatchNorm, zero biases (the usual CIFAR setup)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)


#: Name → constructor of the CIFAR networks (see :data:`latentgraph.models.MODELS`).
CIFAR_MODELS: dict[str, Callable[..., nn.Module]] = {
    "wrn": WideResNet,
    "resnet18": ResNet18,
    "preact_resnet18": PreActResNet18,
    "vgg": VGG,
}
