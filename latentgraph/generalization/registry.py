r"""The registry of generalization measures and :func:`complexity`, the one
call that computes any of them.

A measure is a function ``f(ctx, **options) -> float`` registered once with
:func:`register`; its keyword-only arguments are its options, their defaults
the documented ones. ``ctx`` (a :class:`Context`) holds the model in
evaluation mode, a seeded sample of the training data on the model's device
and a seeded generator. Every measure follows one convention: **higher means a
larger predicted generalization gap**.
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..device import model_device
from ..eval.accuracy import eval_mode
from ..validation import check_choice, check_features, check_int, check_labels


@dataclass(frozen=True)
class Measure:
    """A registered measure.

    Attributes:
        name (str): its key in :data:`MEASURES`.
        family (str): ``"latent graph"``, ``"margin"``, ``"norm"``,
            ``"flatness"``, ``"gradient"`` or ``"clustering"``.
        function (callable): ``function(ctx, **options) -> float``.
        summary (str): one line for tables and ``--help``.
    """

    name: str
    family: str
    function: Callable[..., float]
    summary: str

    @property
    def options(self) -> dict[str, object]:
        """The measure's options and their defaults."""
        params = inspect.signature(self.function).parameters.values()
        return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


#: Every measure :func:`complexity` accepts, by name.
MEASURES: dict[str, Measure] = {}


def register(name: str, family: str, summary: str) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Decorator adding a measure to :data:`MEASURES` under ``name``."""

    def add(function: Callable[..., float]) -> Callable[..., float]:
        if name in MEASURES:
            raise ValueError(f"a measure named {name!r} is already registered")
        MEASURES[name] = Measure(name, family, function, summary)
        return function

    return add


@dataclass
class Context:
    """What a measure sees.

    Attributes:
        model (nn.Module): the network, in evaluation mode, its parameters'
            ``requires_grad`` off.
        x (Tensor): the sampled training inputs, on the model's device.
        y (LongTensor): their labels.
        num_classes (int): outputs of the model.
        generator (torch.Generator): CPU generator seeded with ``seed``; draw
            random tensors on the CPU with it, then move them, so that CPU and
            CUDA runs see the same numbers.
    """

    model: nn.Module
    x: Tensor
    y: Tensor
    num_classes: int
    generator: torch.Generator

    @property
    def device(self) -> torch.device:
        return self.x.device

    def logits(self, x: Tensor | None = None, batch: int = 1000) -> Tensor:
        """The model's outputs on ``x`` (default: the sample), without gradients."""
        x = self.x if x is None else x
        with torch.no_grad():
            return torch.cat([self.model(x[i:i + batch]) for i in range(0, len(x), batch)])


def complexity(model: nn.Module, x: Tensor, y: Tensor, measure: str = "label_variation", *, seed: int = 0,
               max_samples: int | None = 500, **options: object) -> float:
    r"""Complexity of a trained ``model`` from its training data: higher
    predicts a larger generalization gap (training minus test accuracy).

    Draws ``max_samples`` samples of ``(x, y)`` without replacement (seeded
    by ``seed``; all of them when ``None`` or fewer), moves them to the
    model's device, puts the model in evaluation mode with its parameters'
    ``requires_grad`` off, computes ``MEASURES[measure]`` with ``options``,
    and restores every module's mode and every parameter's ``requires_grad``
    (also when the measure fails). The same seed gives the same value.

    Args:
        model (nn.Module): a classifier returning ``N×C`` class scores.
        x (Tensor): training inputs ``N×…``, finite floats.
        y (LongTensor): their labels (those the model was trained on), ``[N]``.
        measure (str): a name in :data:`MEASURES`. (default: :obj:`"label_variation"`)
        seed (int): seed of the sample and of any random draw. (default: :obj:`0`)
        max_samples (int, optional): samples used. (default: :obj:`500`)
        **options: the measure's options (see ``MEASURES[measure].options``).

    Returns:
        float: a finite number.

    Raises:
        ValueError: unknown measure or option, bad data, a model whose output
            is not one score per class, or a non-finite result.
        TypeError: ``model`` is not an ``nn.Module``, or ``x``/``y`` are not tensors.

    Example:
        >>> from latentgraph.generalization import ZooNet
        >>> net = ZooNet((4,), num_classes=2, width=8)
        >>> x, y = torch.rand(40, 4), torch.arange(40) % 2
        >>> v = complexity(net, x, y, "margin")
        >>> v == complexity(net, x, y, "margin") and net.training
        True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
    check_choice(measure, "measure", sorted(MEASURES))
    entry = MEASURES[measure]
    unknown = sorted(set(options) - set(entry.options))
    if unknown:
        known = ", ".join(entry.options) or "none"
        raise ValueError(f"measure {measure!r} has no option(s) {unknown}; its options: {known}")
    check_int(seed, "seed")
    if max_samples is not None:
        check_int(max_samples, "max_samples", minimum=2)
    check_features(x, "x")
    y = check_labels(y, x.shape[0], x.device)
    if x.shape[0] < 2:
        raise ValueError(f"`x` must hold at least 2 samples, got {x.shape[0]}")
    generator = torch.Generator().manual_seed(seed)
    if max_samples is not None and x.shape[0] > max_samples:
        keep = torch.randperm(x.shape[0], generator=generator)[:max_samples].sort().values.to(x.device)
        x, y = x[keep], y[keep]
    device = model_device(model)
    x, y = x.to(device), y.to(device)
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        with eval_mode(model):
            for p, _ in flags:
                p.requires_grad_(False)
            try:
                with torch.no_grad():
                    out = model(x[:2])
            except Exception as error:
                raise ValueError(f"`model` cannot run on inputs of shape {tuple(x.shape[1:])}: "
                                 f"{type(error).__name__}: {error}") from error
            if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != 2:
                shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise ValueError(f"`model` must return N×C class scores; on 2 samples it returned {shape}")
            if out.shape[1] <= int(y.max()):
                raise ValueError(f"`model` returns {out.shape[1]} scores per sample but `y` holds class {int(y.max())}")
            ctx = Context(model, x, y, int(out.shape[1]), generator)
            value = float(entry.function(ctx, **options))
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
    if not math.isfinite(value):
        raise ValueError(f"measure {measure!r} gave {value} on this model and data")
    return value
