"""Capture intermediate representations with forward hooks, by module name."""
from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from torch import Tensor, nn

from latentgraph.validation import check_flag


def layer_names(model: nn.Module) -> list[str]:
    """Names of every sub-module of ``model``, as accepted by :func:`capture`.

    Example:
        >>> layer_names(nn.Sequential(nn.Linear(2, 3), nn.ReLU()))
        ['0', '1']
    """
    return [name for name, _ in model.named_modules() if name]


def _first_tensor(output: object) -> Tensor | None:
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)):
        return next((item for item in output if isinstance(item, Tensor)), None)
    return None


class Activations(dict):
    """Captured outputs, in call order: ``acts[name]`` for the first call of a
    module, ``acts[f"{name}#{i}"]`` for its ``i``-th later call."""


@contextmanager
def capture(model: nn.Module, layers: Sequence[str] | str, detach: bool = False) -> Iterator[Activations]:
    r"""Record the outputs of the named sub-modules of ``model`` during the block.

    The hooks are always removed when the block ends, even on an exception.
    A module whose output is a tuple (e.g. an LSTM) is recorded as the first
    tensor of that tuple. A module called several times (weight sharing, a
    reused activation) is recorded at every call: the first as ``name``, the
    next ones as ``name#1``, ``name#2``, …

    An output that a later operation modifies in place (``nn.ReLU(inplace=True)``
    after the captured layer, ``out += identity`` in a residual block) would
    silently hold the modified values: with ``detach=True`` the output is
    copied when recorded, so it keeps the values the module returned; without
    it, a :class:`RuntimeError` at the end of the block names the layer (capture
    the module that does the in-place operation instead; not detectable under
    :func:`torch.inference_mode`, whose tensors have no version counter).

    Args:
        model (nn.Module): the network.
        layers (list of str): module names, as in :func:`layer_names`
            (``model.named_modules()``); a module shared under several
            attribute names can be asked for under any of them.
        detach (bool): store detached tensors (for analysis); by default the
            autograd graph is kept so losses can train through the captured
            representations. (default: :obj:`False`)

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> with capture(model, ["1"]) as acts:
        ...     out = model(torch.rand(5, 4))
        >>> acts["1"].shape
        torch.Size([5, 8])
    """
    detach = check_flag(detach, "detach")
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(layers, str):
        layers = [layers]
    modules = dict(model.named_modules(remove_duplicate=False))  # a shared module under each of its names
    for name in layers:
        if not isinstance(name, str):
            raise TypeError(f"`layers` must hold module names (str), got {type(name).__name__} {name!r}")
        if name not in modules:
            close = difflib.get_close_matches(name, modules, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ValueError(
                f"`layers`: no module named {name!r} in {type(model).__name__}.{hint} "
                f"Available: {', '.join(layer_names(model))}"
            )
    acts = Activations()
    watched: list[tuple[str, Tensor, int]] = []

    def hook_for(name: str):
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            tensor = _first_tensor(output)
            if tensor is None:
                raise TypeError(f"module {name!r} returned {type(output).__name__}, not a tensor")
            calls = sum(1 for key in acts if key == name or key.startswith(f"{name}#"))
            key = name if calls == 0 else f"{name}#{calls}"
            if detach:
                acts[key] = tensor.detach().clone()
            else:
                acts[key] = tensor
                if not tensor.is_inference():  # inference tensors keep no version counter
                    watched.append((key, tensor, tensor._version))

        return hook

    handles = [modules[name].register_forward_hook(hook_for(name)) for name in dict.fromkeys(layers)]
    try:
        yield acts
    finally:
        for handle in handles:
            handle.remove()
    changed = [key for key, tensor, version in watched if tensor._version != version]
    if changed:
        raise RuntimeError(
            f"`layers`: the output of {', '.join(map(repr, changed))} was modified in place after it was "
            "captured (e.g. by a following ReLU(inplace=True)), so it no longer holds what the module "
            "returned; capture the module that modifies it, or use detach=True for a copy"
        )

