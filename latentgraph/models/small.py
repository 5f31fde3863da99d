"""Small reference networks for CPU work (digits, MNIST), with named blocks."""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..validation import check_choice, check_int


def _conv_block(cin: int, cout: int, pool: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), pool)


class SmallCNN(nn.Module):
    r"""Three-block CNN: ``block1`` (w channels), ``block2`` (2w), ``block3`` (4w),
    then ``pool`` (global average) and ``head`` (linear).

    Each block is Conv3×3 → BatchNorm → ReLU → pool (2×2 max-pooling for the
    first two, none for the last), so it runs on 8×8 digits as on 28×28 MNIST.
    Width 32 has ≈94k parameters, width 16 ≈24k — a teacher/student pair.

    Args:
        in_channels (int): input channels. (default: :obj:`1`)
        num_classes (int): outputs. (default: :obj:`10`)
        width (int): channels of the first block. (default: :obj:`32`)

    Example:
        >>> model = SmallCNN(width=16)
        >>> model(torch.rand(2, 1, 28, 28)).shape
        torch.Size([2, 10])
        >>> sum(p.numel() for p in SmallCNN(width=32).parameters())
        94410
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes), ("width", width)):
            check_int(value, name, minimum=1)
        self.block1 = _conv_block(in_channels, width, nn.MaxPool2d(2))
        self.block2 = _conv_block(width, 2 * width, nn.MaxPool2d(2))
        self.block3 = _conv_block(2 * width, 4 * width, nn.Identity())
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.pool(self.block3(self.block2(self.block1(x)))))


class MLP(nn.Module):
    r"""Multi-layer perceptron with named blocks ``fc1``, ``fc2``, … (Linear →
    activation) and a linear ``head``; inputs are flattened.

    Args:
        in_features (int): input size after flattening.
        hidden (sequence of int): hidden widths. (default: :obj:`(256, 128)`)
        num_classes (int): outputs. (default: :obj:`10`)
        activation (str): ``"relu"`` or ``"tanh"``. (default: :obj:`"relu"`)

    Example:
        >>> MLP(64, hidden=(32,))(torch.rand(3, 1, 8, 8)).shape
        torch.Size([3, 10])
    """

    ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}

    def __init__(self, in_features: int, hidden: Sequence[int] = (256, 128), num_classes: int = 10,
                 activation: str = "relu") -> None:
        super().__init__()
        check_choice(activation, "activation", sorted(self.ACTIVATIONS))
        check_int(in_features, "in_features", minimum=1)
        check_int(num_classes, "num_classes", minimum=1)
        for width in hidden:
            check_int(width, "hidden", minimum=1)
        widths = [in_features, *hidden]
        for i, (cin, cout) in enumerate(zip(widths, widths[1:]), start=1):
            self.add_module(f"fc{i}", nn.Sequential(nn.Linear(cin, cout), self.ACTIVATIONS[activation]()))
        self.num_hidden = len(hidden)
        self.head = nn.Linear(widths[-1], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1)
        for i in range(1, self.num_hidden + 1):
            x = getattr(self, f"fc{i}")(x)
        return self.head(x)
