"""Training checkpoints: atomic writes, safe loads, random-number-generator states.

A checkpoint is a plain dict of tensors, numbers and strings written with
:func:`torch.save` to a temporary file in the target folder, flushed to disk
and moved over the target with :func:`os.replace`, so that the file under
the final name is always a complete checkpoint: a crash or Ctrl-C while
writing leaves the previous good checkpoint in place (a kill leaves at most a
``.last.pt.*.tmp`` temporary, removed by :func:`remove_stale_temporaries`
when the run starts or resumes). Loading uses
``torch.load(..., weights_only=True)``, which never executes code from the
file. A trainer checkpoint stores a SHA-256 :func:`checksum` of its content,
verified on load, so that a flipped bit in a tensor (which the zip reader does
not detect) is a :class:`ValueError` instead of silently changed weights.
"""
from __future__ import annotations

import glob
import hashlib
import logging
import os
import random
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import save_torch, write_text
from ..torch_files import FORMAT, load_file, load_model_weights  # noqa: F401  (re-exported)

PathLike = str | os.PathLike

#: Version of the checkpoint layout, checked on load.
VERSION = 1
#: File name of the latest checkpoint inside a checkpoint folder.
LAST = "last.pt"


def save_atomic(obj: Any, path: PathLike) -> Path:
    """Write ``obj`` with :func:`torch.save` to ``path`` atomically.

    The object is written to a temporary file next to ``path``, flushed with
    :func:`os.fsync` and renamed over ``path``; on any error the temporary
    file is removed and ``path`` keeps its previous content. A trainer
    checkpoint (a dict tagged :data:`FORMAT`) is stored with its
    :func:`checksum`, which :func:`load_checkpoint` verifies.

    Example:
        >>> import tempfile, os
        >>> folder = tempfile.mkdtemp()
        >>> p = save_atomic({"a": torch.ones(2)}, os.path.join(folder, "x.pt"))
        >>> torch.load(p, weights_only=True)["a"]
        tensor([1., 1.])
    """
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        obj = {**obj, "checksum": checksum(obj)}
    return save_torch(obj, path)


def write_text_atomic(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, as :func:`save_atomic` does."""
    return write_text(path, text)


def checksum(state: Any) -> str:
    """SHA-256 of a checkpoint's content: every tensor's dtype, shape and bytes and every
    other value's ``repr``, in key order (the ``"checksum"`` entry itself excluded).

    Tuples and lists hash alike (both load back as either).

    Example:
        >>> a = checksum({"w": torch.ones(2), "step": 3})
        >>> a == checksum({"w": torch.ones(2), "step": 3}), a == checksum({"w": torch.ones(2), "step": 4})
        (True, False)
    """
    digest = hashlib.sha256()
    _digest(state, digest)
    return digest.hexdigest()


def _digest(value: Any, digest: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{tensor.dtype}{tuple(value.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    elif isinstance(value, Mapping):
        digest.update(b"{")
        for key in value:
            if key != "checksum":
                digest.update(repr(key).encode())
                _digest(value[key], digest)
        digest.update(b"}")
    elif isinstance(value, (list, tuple)):
        digest.update(b"[")
        for item in value:
            _digest(item, digest)
        digest.update(b"]")
    elif isinstance(value, torch.Generator):  # not expected in a checkpoint; hashed by its state
        _digest(value.get_state(), digest)
    else:
        digest.update(repr(value).encode())


def load_checkpoint(path: PathLike, map_location: Any = None) -> dict[str, Any]:
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
    verify_checksum(state, path)
    return state


def verify_checksum(state: Mapping[str, Any], path: PathLike) -> None:
    """Raise :class:`ValueError` unless ``state["checksum"]`` matches its content.

    A checkpoint without a checksum (written before checksums existed) is accepted.
    """
    stored = state.get("checksum")
    if stored is not None and stored != checksum(state):
        raise ValueError(f"checkpoint {str(path)!r} is corrupt: its content does not match the checksum "
                         f"stored when it was written")


def remove_stale_temporaries(folder: PathLike, names: Iterable[str]) -> list[Path]:
    """Delete the temporaries ``.<name>.*.tmp`` that a killed atomic write of ``<name>``
    left in ``folder`` (each one the size of a checkpoint); return the removed paths.

    Only call this when no other process writes those files, i.e. when a run starts
    or resumes.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / ".last.pt.k2j4.tmp").write_bytes(b"partial")
        >>> [p.name for p in remove_stale_temporaries(folder, ["last.pt"])]
        ['.last.pt.k2j4.tmp']
    """
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        for name in names:
            for tmp in folder.glob(f".{glob.escape(name)}.*.tmp"):
                if tmp.is_file():
                    tmp.unlink(missing_ok=True)
                    removed.append(tmp)
    return removed


def check_optimizer_fits(saved: Mapping[str, Any], optimizer: torch.optim.Optimizer, path: PathLike) -> None:
    """Raise :class:`ValueError` when a saved optimizer state belongs to another kind of
    optimizer (its param groups hold other settings, e.g. Adam's ``betas`` for SGD)."""
    groups = saved.get("param_groups", [])
    if len(groups) != len(optimizer.param_groups):
        raise ValueError(f"checkpoint {str(path)!r} holds an optimizer with {len(groups)} parameter group(s); "
                         f"this run's has {len(optimizer.param_groups)}")
    for group, current in zip(groups, optimizer.param_groups):
        have, want = set(group) - {"params"}, set(current) - {"params"}
        if have != want:
            raise ValueError(
                f"checkpoint {str(path)!r} holds the state of another optimizer ({type(optimizer).__name__} "
                f"settings {sorted(want - have)} missing, {sorted(have - want)} unknown); resume with the "
                f"optimizer the run started with")


def _generators(loader: Any) -> Iterable[torch.Generator]:
    """The distinct :class:`torch.Generator` objects a DataLoader draws from."""
    seen = []
    for owner in (loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        for candidate in (getattr(owner, "generator", None), getattr(getattr(owner, "sampler", None), "generator", None)):
            if isinstance(candidate, torch.Generator) and all(candidate is not g for g in seen):
                seen.append(candidate)
    return seen


def rng_state(loader: Any = None) -> dict[str, Any]:
    """Snapshot of every random generator training draws from.

    Covers Python's :mod:`random`, NumPy's global generator, PyTorch's CPU
    and CUDA generators and the :class:`torch.Generator` objects held by
    ``loader`` (its own and its sampler's). The snapshot holds only tensors,
    ints, floats and tuples, so it survives ``weights_only`` loading.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
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


def resolve_checkpoint(resume: bool | PathLike, checkpoint_dir: PathLike | None) -> Path:
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



def check_data_layout(state: Mapping[str, Any], batches_per_epoch: int, world_size: int,
                      batch_size: Optional[int], path: PathLike) -> None:
    """Compare the data layout a checkpoint was written under with the resuming run's.

    Mid-epoch, the rest of the epoch can only be replayed exactly with the same
    number of batches per epoch, number of processes and per-rank batch size: any
    difference is a :class:`ValueError` saying what changed. At an epoch boundary a
    different world size or per-rank batch size is allowed (later epochs see another
    global batch and data order) and logged as a warning.
    """
    saved_world, saved_batch = state.get("world_size"), state.get("batch_size")
    changes = []
    if saved_world is not None and saved_world != world_size:
        changes.append(f"{saved_world} process(es) -> {world_size}")
    if saved_batch is not None and batch_size is not None and saved_batch != batch_size:
        changes.append(f"batch size per process {saved_batch} -> {batch_size}")
    if state.get("batch") and state.get("batches_per_epoch") != batches_per_epoch:
        changes.append(f"batches per epoch {state.get('batches_per_epoch')} -> {batches_per_epoch}")
    if not changes:
        return
    if state.get("batch"):
        raise ValueError(
            f"checkpoint {str(path)!r} stopped mid-epoch (after batch {state['batch']} of "
            f"{state.get('batches_per_epoch')}) and this run changes the data layout ({'; '.join(changes)}), "
            f"so the rest of the epoch would see other batches; resume with the same data, batch size and number "
            f"of processes")
    logging.getLogger("latentgraph.train").warning(
        "resuming %s at an epoch boundary with %s: from now on each step sees another global batch and data order, "
        "so the run will not match an uninterrupted one", path, "; ".join(changes))
