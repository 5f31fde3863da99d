"""The networks of a model zoo: an MLP or a plain CNN whose width, depth and
dropout are hyperparameters, with named blocks so that every measure can
address their layers."""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..validation import check_choice, check_int, check_number

#: Architectures :class:`ZooNet` builds.
KINDS = ("mlp", "cnn")


class ZooNet(nn.Module):
    r"""A network of the model zoo: ``block1`` … ``block{depth}``, then ``head``.

    * ``kind="mlp"``: the input is flattened; each block is
      Linear(width) → ReLU → Dropout(p).
    * ``kind="cnn"``: block :math:`i` is Conv3×3(:math:`2^{i-1}` width
      channels) → ReLU → 2×2 max-pooling (while the map is at least 2×2) →
      Dropout(p); then ``flatten`` and ``head``.

    No batch normalization, so that norms and path norms are those of the
    weights alone (as in the fully connected nets of Neyshabur et al., 2015).

    Args:
        in_shape (sequence of int): shape of one input, e.g. ``(1, 8, 8)``.
        num_classes (int): outputs. (default: :obj:`10`)
        kind (str): ``"mlp"`` or ``"cnn"``. (default: :obj:`"mlp"`)
        width (int): units (MLP) or channels of the first block (CNN). (default: :obj:`64`)
        depth (int): number of blocks, at least 1. (default: :obj:`2`)
        dropout (float): dropout probability in ``[0, 1)``. (default: :obj:`0.0`)

    Example:
        >>> ZooNet((1, 8, 8), kind="cnn", width=4, depth=3)(torch.rand(2, 1, 8, 8)).shape
        torch.Size([2, 10])
        >>> [name for name, _ in ZooNet((64,), depth=2).named_children()]
        ['block1', 'block2', 'head']
    """

    def __init__(self, in_shape: Sequence[int], num_classes: int = 10, kind: str = "mlp", width: int = 64,
                 depth: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        check_choice(kind, "kind", KINDS)
        for name, value in (("num_classes", num_classes), ("width", width), ("depth", depth)):
            check_int(value, name, minimum=1)
        if check_number(dropout, "dropout") >= 1:
            raise ValueError(f"`dropout` must be a number in [0, 1), got {dropout!r}")
        shape = tuple(int(s) for s in in_shape)
        if kind == "cnn" and len(shape) != 3:
            raise ValueError(f"a CNN needs `in_shape` (C, H, W), got {shape}")
        self.depth = depth
        if kind == "mlp":
            features = 1
            for s in shape:
                features *= s
            for i in range(1, depth + 1):
                self.add_module(f"block{i}", nn.Sequential(nn.Linear(features, width), nn.ReLU(), nn.Dropout(dropout)))
                features = width
            self.flatten: nn.Module | None = None
        else:
            channels, size = shape[0], min(shape[1:])
            for i in range(1, depth + 1):
                out = width * 2 ** (i - 1)
                layers: list[nn.Module] = [nn.Conv2d(channels, out, 3, padding=1), nn.ReLU()]
                if size >= 2:
                    layers.append(nn.MaxPool2d(2))
                    size //= 2
                layers.append(nn.Dropout(dropout))
                self.add_module(f"block{i}", nn.Sequential(*layers))
                channels = out
            self.flatten = nn.Flatten()
            features = channels * size * size
        self.head = nn.Linear(features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if self.flatten is None:
            x = x.flatten(1)
        for i in range(1, self.depth + 1):
            x = getattr(self, f"block{i}")(x)
        if self.flatten is not None:
            x = self.flatten(x)
        return self.head(x)
