r"""What the measures feed the model: layers named by position, their
features, and perturbed training inputs (mixup, noise)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..capture import capture, layer_names
from ..validation import check_number

#: Layer names that stand for a position among the model's top-level blocks.
ALIASES = ("first", "middle", "penultimate", "all")

#: Layer name standing for the model's input (as in :func:`latentgraph.analyze`).
INPUT = "input"


def resolve_layers(model: nn.Module, layers: str | Sequence[str]) -> list[str]:
    r"""Module names for ``layers``: module names (see
    :func:`~latentgraph.layer_names`) or one alias of the model's top-level
    children :math:`c_1, \dots, c_n` (:math:`c_n` the output layer):
    ``"first"`` is :math:`c_1`, ``"middle"`` :math:`c_{\lceil (n-1)/2 \rceil}`,
    ``"penultimate"`` :math:`c_{n-1}` (the features the output layer reads),
    ``"all"`` :math:`c_1, \dots, c_{n-1}`. Aliases make one choice apply to
    networks of different depths. ``"input"`` names the input itself.

    Example:
        >>> from latentgraph.generalization import ZooNet
        >>> net = ZooNet((4,), depth=3)
        >>> resolve_layers(net, "penultimate"), resolve_layers(net, "middle"), resolve_layers(net, "all")
        (['block3'], ['block2'], ['block1', 'block2', 'block3'])
    """
    if isinstance(layers, str) and layers in ALIASES:
        children = [name for name, _ in model.named_children()]
        if len(children) < 2:
            raise ValueError(f"`layers`={layers!r} needs a model with at least 2 top-level children (blocks, "
                             f"then the output layer); this one has {children}; pass module names instead")
        inner = children[:-1]
        if layers == "all":
            return inner
        index = {"first": 0, "middle": (len(inner) - 1) // 2, "penultimate": len(inner) - 1}[layers]
        return [inner[index]]
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names or not all(isinstance(n, str) for n in names):
        raise TypeError(f"`layers` must be an alias ({', '.join(ALIASES)}) or a non-empty list of module names, "
                        f"got {layers!r}")
    known = {*layer_names(model), INPUT}
    missing = [n for n in names if n not in known]
    if missing:
        raise ValueError(f"`layers`: no module named {missing} in the model; aliases: {', '.join(ALIASES)}")
    return names


def features(model: nn.Module, x: Tensor, layers: Sequence[str], batch: int = 500) -> dict[str, Tensor]:
    """Flattened outputs ``N×D`` of ``layers`` on ``x`` (no gradients);
    ``"input"`` gives ``x`` itself."""
    modules = [name for name in layers if name != INPUT]
    parts: dict[str, list[Tensor]] = {name: [] for name in modules}
    with torch.no_grad():
        for i in range(0, len(x), batch):
            with capture(model, modules, detach=True) as acts:
                model(x[i:i + batch])
            for name in modules:
                parts[name].append(acts[name].flatten(1))
    found = {name: torch.cat(chunks) for name, chunks in parts.items()}
    return {name: x.flatten(1) if name == INPUT else found[name] for name in layers}


def mix_between_classes(x: Tensor, y: Tensor, lam: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    r"""Mixup between classes: :math:`\tilde x_i = \lambda x_i + (1-\lambda) x_{j(i)}`
    with :math:`j(i)` drawn uniformly among the samples of another class,
    labelled :math:`y_i` (the major part for :math:`\lambda > 1/2`).

    Example:
        >>> x, y = torch.tensor([[0.0], [1.0], [2.0]]), torch.tensor([0, 0, 1])
        >>> mix_between_classes(x, y, 0.75, torch.Generator().manual_seed(0))[0].flatten().tolist()
        [0.5, 1.25, 1.75]
    """
    lam = check_number(lam, "lam")
    if not 0.5 < lam <= 1:
        raise ValueError(f"`lam` must lie in (0.5, 1] so that the label is the major part, got {lam}")
    if int(y.unique().numel()) < 2:
        raise ValueError("mixup between classes needs at least 2 classes in the sample")
    # partner: a uniformly drawn sample of another class, by rejection over a random order
    other = y[:, None] != y[None, :]
    scores = torch.rand(len(y), len(y), generator=generator).to(x.device) * other
    partner = scores.argmax(dim=1)
    return lam * x + (1 - lam) * x[partner], y


def mix_within_classes(x: Tensor, y: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    r"""Label-wise mixup (Natekar & Sharma, 2020): :math:`(x_i + x_j)/2` for
    :math:`j` drawn uniformly among the other samples of the class of
    :math:`i`, labelled :math:`y_i`; samples alone in their class are kept as they are."""
    same = (y[:, None] == y[None, :]) & ~torch.eye(len(y), dtype=torch.bool, device=y.device)
    scores = torch.rand(len(y), len(y), generator=generator).to(x.device) * same
    partner = torch.where(same.any(dim=1), scores.argmax(dim=1), torch.arange(len(y), device=y.device))
    return 0.5 * (x + x[partner]), y


def add_noise(x: Tensor, scale: float, generator: torch.Generator) -> Tensor:
    r""":math:`x + s\,\hat\sigma\,\varepsilon` with :math:`\varepsilon \sim \mathcal N(0, I)`
    and :math:`\hat\sigma` the standard deviation of all entries of ``x``."""
    scale = check_number(scale, "noise")
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    return x + scale * x.std() * noise
