"""Plots of robustness results, written to files (drawn outside pyplot: :mod:`latentgraph.viz.figure`)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from latentgraph.atomic import save_figure
from latentgraph.validation import check_flag
from latentgraph.viz.figure import new_figure


def plot_accuracy_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    title: str | None = None,
    xlabel: str = "ε",
    log_x: bool = False,
) -> Path:
    """Accuracy-vs-ε curves, one line per model: ``{label: (eps_values, accuracies)}``.

    Curves may carry a third sequence of standard deviations, drawn as a band.

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> p = plot_accuracy_curves({"CE": ([0, 0.1], [0.9, 0.5])}, os.path.join(d, "acc.png"))
        >>> p.is_file()
        True
    """
    log_x = check_flag(log_x, "log_x")
    if not curves:
        raise ValueError("`curves` must hold at least one curve")
    fig = new_figure(5, 3.5)
    ax = fig.subplots()
    for label, curve in curves.items():
        eps, acc = list(curve[0]), list(curve[1])
        if len(eps) != len(acc):
            raise ValueError(f"curve {label!r}: {len(eps)} ε values but {len(acc)} accuracies")
        ax.plot(eps, acc, marker="o", label=label)
        if len(curve) > 2:
            std = list(curve[2])
            ax.fill_between(eps, [a - s for a, s in zip(acc, std)], [a + s for a, s in zip(acc, std)], alpha=0.2)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return save_figure(fig, path, dpi=120, bbox_inches="tight")


def plot_corruption_errors(
    errors: Mapping[str, Mapping[str, Sequence[float]]],
    path: str | Path,
    title: str | None = None,
) -> Path:
    """Error per severity for each corruption (one panel each), one line per model:
    ``{model_label: {corruption: errors per severity}}``.

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> errs = {"CE": {"contrast": [0.1, 0.3]}, "LV": {"contrast": [0.1, 0.2]}}
        >>> plot_corruption_errors(errs, os.path.join(d, "c.png")).is_file()
        True
    """
    if not errors:
        raise ValueError("`errors` must hold at least one model")
    names = list(next(iter(errors.values())))
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig = new_figure(3.2 * cols, 2.6 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, name in zip(axes.flat, names):
        for label, per_model in errors.items():
            values = list(per_model[name])
            ax.plot(range(1, len(values) + 1), values, marker="o", label=label)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("severity")
        ax.set_ylabel("error")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120, bbox_inches="tight")
