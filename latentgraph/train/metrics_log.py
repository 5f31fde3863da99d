"""Where the trainer writes its per-epoch records: ``metrics.csv`` (atomically) and TensorBoard."""
from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from latentgraph.atomic import write_text


class MetricsLog:
    """Writes the history of epoch records to ``log_dir``.

    ``metrics.csv`` is rewritten whole (atomically) after every epoch, with
    one column per key seen in any record; each record's numbers also go to
    TensorBoard (``torch.utils.tensorboard``) when it is installed, with the
    epoch as the global step.

    Args:
        log_dir (str or os.PathLike): the folder, created when first written.

    Example:
        >>> import tempfile
        >>> log = MetricsLog(tempfile.mkdtemp())
        >>> history = [{"epoch": 1, "step": 4, "train/loss": 0.5}]
        >>> log.write(history, history[-1]).read_text().splitlines()
        ['epoch,step,train/loss', '1,4,0.5']
    """

    def __init__(self, log_dir: str | os.PathLike) -> None:
        self.log_dir = Path(log_dir)
        self._tensorboard: Any = None

    def write(self, history: Sequence[Mapping[str, Any]], record: Mapping[str, Any]) -> Path:
        """Rewrite ``metrics.csv`` from ``history`` and send ``record`` (its last row) to TensorBoard."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        columns: list[str] = []
        for row in history:
            columns += [k for k in row if k not in columns]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
        path = write_text(self.log_dir / "metrics.csv", text.getvalue())
        if self._tensorboard is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                self._tensorboard = False
            else:
                self._tensorboard = SummaryWriter(str(self.log_dir))
        if self._tensorboard:
            for key, value in record.items():
                if key not in ("epoch", "step"):
                    self._tensorboard.add_scalar(key, value, record["epoch"])
            self._tensorboard.flush()
        return path
