"""One way to draw: a bare :class:`matplotlib.figure.Figure` on its own Agg canvas.

Figures made here never pass through :mod:`matplotlib.pyplot`: no window, no
display needed, nothing left in pyplot's list of open figures, and the
caller's backend (``matplotlib.get_backend()``, an svg or notebook backend
say) is left as it was. Plots are written with :func:`latentgraph.atomic.save_figure`.
"""
from __future__ import annotations

from typing import Any


def new_figure(width: float, height: float, dpi: float = 100, layout: str | None = None) -> Any:
    """A ``width × height`` inch :class:`~matplotlib.figure.Figure` drawn by Agg, outside pyplot.

    Example:
        >>> fig = new_figure(2, 1)
        >>> type(fig.canvas).__name__, fig.get_size_inches().tolist()
        ('FigureCanvasAgg', [2.0, 1.0])
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig

