"""Atomic file writes: a file is either its old content or its complete new
content, never a partial write — for checkpoints, reports, tables and plots.

Each writer writes to a temporary file in the target's folder, flushes it to
disk, gives it the permissions a plain ``open`` would, and renames it over the
target with :func:`os.replace`; on any error the temporary file is removed
and the target is left as it was.
"""
from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

PathLike = str | os.PathLike


def write_atomic(path: PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(f)`` on a binary file that replaces ``path`` once complete.

    Example:
        >>> import tempfile, os
        >>> p = write_atomic(os.path.join(tempfile.mkdtemp(), "a.bin"), lambda f: f.write(b"ok"))
        >>> p.read_bytes()
        b'ok'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def write_csv(path: PathLike, rows: Sequence[Mapping[str, Any]], fieldnames: Sequence[str] | None = None) -> Path:
    """Write ``rows`` (dicts) as a CSV table with a header, atomically; the
    columns are ``fieldnames`` or the keys of the first row."""
    if not rows and fieldnames is None:
        raise ValueError("`rows` is empty and no `fieldnames` were given")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fieldnames or rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return write_text(path, buffer.getvalue())


def save_torch(obj: Any, path: PathLike) -> Path:
    """:func:`torch.save` ``obj`` to ``path`` atomically."""
    import torch

    return write_atomic(path, lambda f: torch.save(obj, f))


def save_figure(figure: Any, path: PathLike, **savefig_kwargs: Any) -> Path:
    """Save a matplotlib figure to ``path`` atomically, in the format its suffix names."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    return write_atomic(path, lambda f: figure.savefig(f, format=fmt, **savefig_kwargs))
