"""Scatter plots of a generalization measure against the generalization gap
over a model zoo, one panel per hyperparameter, coloured by its value (drawn
outside pyplot: :mod:`latentgraph.viz.figure`)."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from latentgraph.atomic import save_figure
from latentgraph.viz.figure import new_figure


def scatter_by_hyperparameter(rows: Sequence[dict], spec: str, hparams: Sequence[str],
                              path: str | os.PathLike) -> Path:
    """Save a figure with one panel per hyperparameter: the value of measure
    ``spec`` (x) against the gap in points (y) of every model (``rows``:
    dicts with ``spec``, ``"gap"`` and each hyperparameter), coloured by
    that hyperparameter's value.

    Example:
        >>> import tempfile, os
        >>> rows = [{"m": 0.1 * i, "gap": 0.01 * i, "width": 8 * (1 + i % 2)} for i in range(6)]
        >>> scatter_by_hyperparameter(rows, "m", ["width"], os.path.join(tempfile.mkdtemp(), "m.png")).is_file()
        True
    """
    if not rows:
        raise ValueError("`rows` must hold at least one model")
    panels = max(1, len(hparams))
    columns = min(4, panels)
    lines = (panels + columns - 1) // columns
    fig = new_figure(3.2 * columns, 2.8 * lines, dpi=90, layout="constrained")
    axes = fig.subplots(lines, columns, squeeze=False).ravel()
    x = [r[spec] for r in rows]
    y = [100 * r["gap"] for r in rows]
    for ax, name in zip(axes, hparams or [None]):
        if name is None:
            ax.scatter(x, y, s=12)
        else:
            values = sorted({r[name] for r in rows})
            for i, value in enumerate(values):
                chosen = [j for j, r in enumerate(rows) if r[name] == value]
                ax.scatter([x[j] for j in chosen], [y[j] for j in chosen], s=12, color=f"C{i}",
                           label=f"{value:g}" if isinstance(value, (int, float)) else str(value))
            ax.legend(title=name, fontsize=7, title_fontsize=7, loc="best")
        ax.set_xlabel(spec, fontsize=7)
        ax.set_ylabel("gap (points)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(hparams or [None]):]:
        ax.set_visible(False)
    return save_figure(fig, path)
