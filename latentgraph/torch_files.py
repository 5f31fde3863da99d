"""Reading torch files safely: the reading side of :mod:`latentgraph.atomic`.

Every load uses ``torch.load(..., weights_only=True)``, which never executes
code from the file, and turns a missing, corrupt or refused file into one
clear error naming the file.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

PathLike = str | os.PathLike

#: Tag stored in every trainer checkpoint, checked on load.
FORMAT = "latentgraph-checkpoint"


def load_file(path: PathLike, map_location: Any = None) -> Any:
    """Load a file written by :func:`torch.save` with ``weights_only=True``.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is corrupt, truncated or holds objects that
            ``weights_only`` loading refuses; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises RuntimeError/UnpicklingError/EOFError/...
        raise ValueError(f"cannot read checkpoint file {str(path)!r}: {_load_error(error)}") from None


def _load_error(error: Exception) -> str:
    """One line saying why ``torch.load`` refused a file, without torch's advice to
    load it with ``weights_only=False`` (which would run code from the file)."""
    text = str(error)
    refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if refused or "weights_only" in text or "Weights only" in text:
        what = f"a Python object ({refused.group(1)})" if refused else "Python objects"
        return (f"it is not a weights-only torch file: it holds {what} that safe loading refuses; "
                f"only tensors, numbers, strings and containers of them are read")
    first = text.strip().splitlines()[0] if text.strip() else "no details"
    return f"it is corrupt, truncated or not a torch file ({type(error).__name__}: {first[:200]})"


def load_model_weights(model: nn.Module, path: PathLike) -> nn.Module:
    """Load weights into ``model`` from a trainer checkpoint or a bare ``state_dict`` file.

    A trainer checkpoint contributes its ``"model"`` entry. Missing or
    unexpected keys raise :class:`ValueError` naming the file.
    """
    state = load_file(path, map_location="cpu")
    if isinstance(state, dict) and state.get("format") == FORMAT:
        state = state["model"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{str(path)!r} holds neither a trainer checkpoint nor a state_dict")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"weights in {str(path)!r} do not fit {type(model).__name__}: {error}") from error
    return model
