r"""Watch the latent geometry while a model trains: label variation per layer, every few epochs.

:class:`LabelVariationMonitor` measures, on a fixed probe batch, the
normalized label variation of each chosen layer's kNN graph (the share of
edge weight between distinct classes, :math:`\in [0, 1]`; it falls as a
layer separates the classes) and sends the values to the logger you already
use: a CSV file, a TensorBoard ``SummaryWriter``, a Lightning logger, or any
function. It works from a plain loop (:meth:`LabelVariationMonitor.on_epoch_end`),
from :class:`~latentgraph.train.Trainer` (:meth:`LabelVariationMonitor.trainer_metrics`)
and from PyTorch Lightning (see ``docs/your-own-loop.md``).
"""
from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from latentgraph.atomic import write_text
from latentgraph.capture import capture
from latentgraph.eval.accuracy import eval_mode
from latentgraph.graphs import latent_graph
from latentgraph.gsp import label_variation
from latentgraph.validation import check_features, check_int, check_labels

#: The pseudo-layer name of the model's input.
INPUT = "input"


class LabelVariationMonitor:
    r"""Normalized label variation of each layer on a fixed batch, logged every ``every`` epochs.

    For each layer :math:`\ell`, the layer's output on ``x`` (flattened per
    sample) gives a kNN graph :math:`W` (:func:`~latentgraph.latent_graph`,
    ``k`` and ``similarity``), and the value logged as
    ``label_variation/<layer>`` is

    .. math:: \sigma_\ell = \frac{\sum_{i<j,\ y_i \ne y_j} w_{ij}}{\sum_{i<j} w_{ij}}
              \in [0, 1]

    (:func:`~latentgraph.label_variation` with ``normalized=True``). The model
    is measured in eval mode under :func:`torch.no_grad` and left in the mode
    it was in.

    Args:
        x (Tensor): the probe batch ``B×…`` (keep it fixed: values at
            different epochs then compare like for like).
        y (Tensor): its integer labels ``[B]``, at least two classes.
        layers (list of str): module names (:func:`~latentgraph.layer_names`),
            and ``"input"`` for the input.
        k (int): neighbours per node, below ``B``. (default: :obj:`10`)
        similarity (str): as in :func:`~latentgraph.latent_graph`.
            (default: :obj:`"auto"`)
        every (int): measure at epochs ``every``, ``2·every``, …
            (default: :obj:`1`)
        loggers (list): where values go at each measurement: a path ending in
            ``.csv`` (rewritten atomically, one row per measurement, columns
            ``epoch`` then the layers), an object with
            ``add_scalar(tag, value, step)`` (TensorBoard's ``SummaryWriter``),
            one with ``log_metrics(metrics, step)`` (Lightning's loggers), or a
            function ``fn(metrics, epoch)``. (default: none; see
            :attr:`history`)

    Attributes:
        history (list of dict): one ``{"epoch": e, "label_variation/<layer>": v, …}``
            per measurement.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> x, y = torch.randn(20, 4), torch.arange(20) % 2
        >>> monitor = LabelVariationMonitor(x, y, ["input", "1"], k=3, every=2)
        >>> monitor.on_epoch_end(model, epoch=1) is None      # not a measuring epoch
        True
        >>> sorted(monitor.on_epoch_end(model, epoch=2))
        ['label_variation/1', 'label_variation/input']
    """

    def __init__(self, x: Tensor, y: Tensor, layers: Sequence[str], k: int = 10, similarity: str = "auto",
                 every: int = 1, loggers: Sequence[Any] = ()) -> None:
        check_features(x, "x")
        self.y = check_labels(y, x.shape[0], x.device)
        if torch.unique(self.y).numel() < 2:
            raise ValueError("`y` must hold at least two classes: label variation of one class is 0 by definition")
        if isinstance(layers, str) or not layers or not all(isinstance(name, str) for name in layers):
            raise TypeError(f"`layers` must be a non-empty list of module names, got {layers!r}")
        check_int(k, "k", minimum=1, maximum=x.shape[0] - 1)
        check_int(every, "every", minimum=1)
        self.x, self.layers, self.k, self.similarity, self.every = x, list(layers), k, similarity, every
        self.loggers = [self._check_logger(logger) for logger in loggers]
        self.history: list[dict[str, float]] = []
        self._trainer_calls = 0
        self._last: dict[str, float] = {}

    @staticmethod
    def _check_logger(logger: Any) -> Any:
        if isinstance(logger, (str, os.PathLike)):
            if Path(logger).suffix.lower() != ".csv":
                raise ValueError(f"`loggers`: a path must end in .csv, got {os.fspath(logger)!r}")
            return Path(logger)
        if not (hasattr(logger, "add_scalar") or hasattr(logger, "log_metrics") or callable(logger)):
            raise TypeError(f"`loggers`: {type(logger).__name__} is not a .csv path, a SummaryWriter, a "
                            f"Lightning logger or a function")
        return logger

    def measure(self, model: nn.Module) -> dict[str, float]:
        """``{"label_variation/<layer>": σ}`` of ``model`` now, in layer order."""
        parameter = next(iter(model.parameters()), None)
        x = self.x if parameter is None else self.x.to(parameter.device)
        modules = [name for name in self.layers if name != INPUT]
        with eval_mode(model), torch.no_grad(), capture(model, modules, detach=True) as acts:
            model(x)
        out = {}
        for name in self.layers:
            features = (x if name == INPUT else acts[name]).flatten(1)
            graph = latent_graph(features, self.y.to(features.device), k=self.k, similarity=self.similarity)
            out[f"label_variation/{name}"] = float(label_variation(graph, normalized=True))
        return out

    def on_epoch_end(self, model: nn.Module, epoch: int) -> dict[str, float] | None:
        """Measure and log when ``epoch`` (counted from 1) is a multiple of
        ``every``; return the values, or ``None`` on other epochs."""
        check_int(epoch, "epoch", minimum=0)
        if epoch % self.every:
            return None
        values = self.measure(model)
        self.history.append({"epoch": epoch, **values})
        for logger in self.loggers:
            self._send(logger, values, epoch)
        return values

    def _send(self, logger: Any, values: dict[str, float], epoch: int) -> None:
        if isinstance(logger, Path):
            text = io.StringIO()
            writer = csv.DictWriter(text, fieldnames=list(self.history[-1]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.history)
            write_text(logger, text.getvalue())
        elif hasattr(logger, "add_scalar"):
            for tag, value in values.items():
                logger.add_scalar(tag, value, epoch)
        elif hasattr(logger, "log_metrics"):
            logger.log_metrics(values, step=epoch)
        else:
            logger(values, epoch)

    def trainer_metrics(self) -> dict[str, Callable[[nn.Module, Any], float]]:
        """Metrics for :class:`~latentgraph.train.Trainer` (its ``metrics=``
        argument, beside e.g. ``{"accuracy": evaluate}``): one per layer, logged
        by the trainer as ``eval/label_variation/<layer>`` in ``metrics.csv`` and
        TensorBoard. The trainer evaluates after every epoch; the layers are
        measured (once for all of them) at epochs ``every``, ``2·every``, … and
        are NaN (not measured) in between; measurements also go to
        :attr:`loggers`. The trainer's ``eval_loader`` is not used: the probe
        batch is."""
        first = self.layers[0]

        def metric(name: str) -> Callable[[nn.Module, Any], float]:
            def fn(model: nn.Module, loader: Any = None) -> float:
                if name == first:  # the trainer calls the metrics in order, once per epoch
                    self._trainer_calls += 1
                    self._last = self.on_epoch_end(model, self._trainer_calls) or {}
                return self._last.get(f"label_variation/{name}", math.nan)

            return fn

        return {f"label_variation/{name}": metric(name) for name in self.layers}
