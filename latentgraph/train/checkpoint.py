"""Training checkpoints: atomic writes, safe loads, random-number-generator states.

A checkpoint is a plain dict of tensors, numbers and strings written with
:func:`torch.save` to a temporary file in the target folder, flushed to disk
and moved over the target with :func:`os.replace`, so that the file under
the final name is always a complete checkpoint: a crash or Ctrl-C while
writing leaves the previous good checkpoint in place. Loading uses
``torch.load(..., weights_only=True)``, which never executes code from the
file.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Union

import numpy as np
import torch

from ..atomic import save_torch, write_text
from ..torch_files import FORMAT, load_file, load_model_weights  # noqa: F401  (re-exported)

PathLike = Union[str, os.PathLike]

#: Version of the checkpoint layout, checked on load.
VERSION = 1
#: File name of the latest checkpoint inside a checkpoint folder.
LAST = "last.pt"


def save_atomic(obj: Any, path: PathLike) -> Path:
    """Write ``obj`` with :func:`torch.save` to ``path`` atomically.

    The object is written to a temporary file next to ``path``, flushed with
    :func:`os.fsync` and renamed over ``path``; on any error the temporary
    file is removed and ``path`` keeps its previous content.

    Example:
        >>> import tempfile, os
        >>> folder = tempfile.mkdtemp()
        >>> p = save_atomic({"a": torch.ones(2)}, os.path.join(folder, "x.pt"))
        >>> torch.load(p, weights_only=True)["a"]
        tensor([1., 1.])
    """
    return save_torch(obj, path)


def write_text_atomic(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, as :func:`save_atomic` does."""
    return write_text(path, text)


def load_checkpoint(path: PathLike, map_location: Any = None) -> Dict[str, Any]:
    """Load a trainer checkpoint written by :class:`~latentgraph.train.Trainer`.

    Raises:
        ValueError: if the file is unreadable (see :func:`load_file`) or is
            not a trainer checkpoint of a known version.
    """
    state = load_file(path, map_location)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not a latentgraph trainer checkpoint")
    if state.get("version") != VERSION:
        raise ValueError(
            f"checkpoint {str(path)!r} has layout version {state.get('version')!r}; "
            f"this latentgraph reads version {VERSION}"
        )
    return state


def _generators(loader: Any) -> Iterable[torch.Generator]:
    """The distinct :class:`torch.Generator` objects a DataLoader draws from."""
    seen = []
    for owner in (loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        for candidate in (getattr(owner, "generator", None), getattr(getattr(owner, "sampler", None), "generator", None)):
            if isinstance(candidate, torch.Generator) and all(candidate is not g for g in seen):
                seen.append(candidate)
    return seen


def rng_state(loader: Any = None) -> Dict[str, Any]:
    """Snapshot of every random generator training draws from.

    Covers Python's :mod:`random`, NumPy's global generator, PyTorch's CPU
    and CUDA generators and the :class:`torch.Generator` objects held by
    ``loader`` (its own and its sampler's). The snapshot holds only tensors,
    ints, floats and tuples, so it survives ``weights_only`` loading.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: Dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "loader": [g.get_state() for g in _generators(loader)] if loader is not None else [],
    }
    return state


def set_rng_state(state: Mapping[str, Any], loader: Any = None) -> None:
    """Restore a snapshot taken by :func:`rng_state` (with the same loader layout)."""
    random.setstate(_as_tuple(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if loader is not None:
        generators = list(_generators(loader))
        if len(generators) != len(state["loader"]):
            raise ValueError(
                f"the checkpoint saved {len(state['loader'])} DataLoader generator state(s) but the "
                f"loader given now has {len(generators)}; resume with a loader built the same way"
            )
        for generator, saved in zip(generators, state["loader"]):
            generator.set_state(saved)


def _as_tuple(value: Any) -> Any:
    """Python's random state round-trips through torch.save as nested tuples/lists."""
    if isinstance(value, list):
        return tuple(_as_tuple(v) for v in value)
    if isinstance(value, tuple):
        return tuple(_as_tuple(v) for v in value)
    return value


def resolve_checkpoint(resume: Union[bool, PathLike], checkpoint_dir: Optional[PathLike]) -> Path:
    """Turn ``resume`` (a file, a folder holding ``last.pt``, or ``True`` for
    ``checkpoint_dir``) into the checkpoint file to read."""
    if resume is True:
        if checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir to know where the checkpoint is")
        resume = checkpoint_dir
    if isinstance(resume, bool) or not isinstance(resume, (str, os.PathLike)):
        raise TypeError(f"`resume` must be a path or True, got {resume!r}")
    path = Path(resume)
    return path / LAST if path.is_dir() else path

