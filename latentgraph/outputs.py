"""Output folders of the commands: checked before any work, and a manifest of
the files a command wrote there so that it never replaces a file it did not write.

``check_output_dir`` turns every way a folder can be unusable (an existing
file, a path under a file, no permission, a name too long) into one
:class:`ValueError` naming the option, before anything is computed.
``OutputManifest`` records, in ``.latentgraph-outputs.json`` inside the
folder, the files written there; a later run may replace those, but refuses
an existing file it did not write unless told to overwrite.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .atomic import write_text

PathLike = str | os.PathLike

#: File inside an output folder listing the files the commands wrote there.
MANIFEST = ".latentgraph-outputs.json"


def check_output_dir(path: PathLike, option: str = "--output") -> Path:
    """Create the folder ``path`` (and its parents) if needed and check that files can be written in it.

    Raises:
        ValueError: ``path`` is an existing file, lies under a file, cannot be
            created or written (permissions, a read-only file system) or has a
            name the file system refuses (too long); the message names
            ``option`` and the path.

    Example:
        >>> import tempfile, os
        >>> folder = check_output_dir(os.path.join(tempfile.mkdtemp(), "new", "out"))
        >>> folder.is_dir()
        True
    """
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise ValueError(f"{option} {str(path)!r} is an existing file, not a folder")
        for parent in path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise ValueError(f"{option} {str(path)!r} lies under {str(parent)!r}, which is a file")
                break
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise ValueError(f"{option} {str(path)!r} cannot be written: {error.strerror or error}") from None
    return path


class OutputManifest:
    """The files a command wrote into ``folder``, kept in ``folder/.latentgraph-outputs.json``.

    Args:
        folder (path): the output folder.
        overwrite (bool): allow replacing files the manifest does not list.
            (default: :obj:`False`)

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "report.md").write_text("someone else's notes")
        >>> OutputManifest(folder).check(["report.md"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: ... holds report.md, which latentgraph did not write; pass --overwrite to replace it, or choose another --output
        >>> manifest = OutputManifest(folder, overwrite=True)
        >>> manifest.check(["report.md"]); manifest.record(["report.md"])
        >>> OutputManifest(folder).check(["report.md"])  # its own file now: replaced without asking
    """

    def __init__(self, folder: PathLike, overwrite: bool = False) -> None:
        if not isinstance(overwrite, bool):
            raise TypeError(f"`overwrite` must be True or False, got {type(overwrite).__name__} {overwrite!r}")
        self.folder = Path(folder)
        self.overwrite = overwrite
        self.path = self.folder / MANIFEST

    def written(self) -> set[str]:
        """Names (relative to the folder) of the files recorded as written by latentgraph."""
        if not self.path.is_file():
            return set()
        try:
            names = json.loads(self.path.read_text())["files"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{str(self.path)!r} is not a latentgraph output manifest; remove it or choose "
                             f"another --output") from None
        return {str(name) for name in names}

    def check(self, names: Iterable[str]) -> None:
        """Raise :class:`ValueError` if one of ``names`` exists in the folder, was not
        written by latentgraph and ``overwrite`` is off."""
        own = self.written()
        foreign = sorted(n for n in names if (self.folder / n).exists() and n not in own)
        if foreign and not self.overwrite:
            raise ValueError(f"{str(self.folder)!r} holds {', '.join(foreign)}, which latentgraph did not write; "
                             f"pass --overwrite to replace {'it' if len(foreign) == 1 else 'them'}, "
                             f"or choose another --output")

    def record(self, names: Iterable[str]) -> None:
        """Add ``names`` to the manifest (written atomically)."""
        files = sorted(self.written() | {str(n) for n in names})
        write_text(self.path, json.dumps({"files": files}, indent=1) + "\n")


def prepare_output(path: PathLike, names: Iterable[str], overwrite: bool = False,
                   option: str = "--output") -> OutputManifest:
    """Before any work: :func:`check_output_dir` on ``path``, then refuse (unless
    ``overwrite``) any of ``names`` there that latentgraph did not write. Returns the
    manifest, to :meth:`~OutputManifest.record` the files once written.

    Example:
        >>> import tempfile
        >>> manifest = prepare_output(tempfile.mkdtemp(), ["report.md"])
        >>> manifest.record(["report.md"]); sorted(manifest.written())
        ['report.md']
    """
    folder = check_output_dir(path, option)
    manifest = OutputManifest(folder, overwrite)
    manifest.check(names)
    return manifest
