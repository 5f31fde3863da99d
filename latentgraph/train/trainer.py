"""The training loop: objective terms, checkpoints, exact resume, data parallelism."""
from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ..device import resolve_device, to_device
from ..eval.accuracy import evaluate
from ..seed import seed_everything
from ..validation import check_flag, check_int, check_number
from . import checkpoint as ckpt
from .batchnorm import recalibrate_batchnorm
from .distributed import (
    all_reduce_mean, average_gradients, barrier, broadcast_module, get_world_size, is_main_process, shard_loader,
)
from .interrupt import interrupt_after_step
from .metrics_log import MetricsLog
from .objectives.classification import ClassificationObjective
from .objectives.interface import MeasuredObjective, Objective, SteppedObjective, term_weights, weighted_sum
from .optimizer import assemble_optimizer, trainable_parameters

log = logging.getLogger("latentgraph.train")

Metric = Callable[[nn.Module, Any], float]


class Trainer:
    r"""Train ``model`` on the weighted sum of an objective's named loss terms.

    Each step calls ``terms = objective(model, batch)`` (``batch`` already on
    the device), minimizes

    .. math:: \mathcal{L} = \sum_{n \in \text{terms}} w_n \, \text{terms}[n]

    where the terms are raw (unweighted) and :math:`w_n` is ``weights[n]``
    if given, else the objective's own default ``objective.weights[n]`` (the
    paper's λ, β, γ), else 1: each weight is applied once, here. Every term
    is logged twice, raw as ``train/<n>`` and weighted as
    ``train/<n>/weighted``; ``train/loss`` is :math:`\mathcal{L}`. After
    each epoch the per-term means over the epoch,
    the learning rate and, when ``eval_loader`` is given, every metric are
    appended to :attr:`history`, written to ``log_dir/metrics.csv`` (and to
    TensorBoard when it is installed) and logged.

    The objective may be an :class:`~torch.nn.Module`: its trainable
    parameters (e.g. projection heads) are optimized with the model's, its
    state (e.g. a frozen teacher) is checkpointed, it is moved to the device,
    and :meth:`~torch.nn.Module.train` / :meth:`~torch.nn.Module.eval` are
    called on it with the model's — an objective keeps a teacher in eval mode
    by overriding ``train``. The objective's interface and its optional hooks
    are the protocols of :mod:`latentgraph.train.objectives.interface`:
    ``after_step(model)`` runs after every optimizer step, and
    ``metrics(model, loader) -> dict[str, float]`` is evaluated with the
    trainer's ``metrics`` after each epoch (model and objective in eval mode,
    under :func:`torch.no_grad`) and logged as ``eval/<name>``.

    Checkpoints (``checkpoint_dir/last.pt``, written atomically) are saved
    every ``checkpoint_every`` steps, at the end of :meth:`fit` and when
    Ctrl-C stops a run; a Ctrl-C during a step takes effect after the step
    (a second one stops at once, without a checkpoint). ``fit(..., resume=)``
    restores model, objective, optimizer, scheduler, step counters and every
    random generator (incl. the DataLoader's shuffling) and continues exactly:
    on CPU an interrupted and resumed run ends with the same weights, bit for
    bit, as an uninterrupted one.

    Under ``torchrun`` (a process group is initialized) the training loader
    gets a :class:`~torch.utils.data.DistributedSampler`, parameters are
    broadcast from rank 0, gradients are averaged over ranks before each
    optimizer step (see :mod:`latentgraph.train.distributed`), epoch means are
    averaged over ranks, and only rank 0 evaluates, logs and writes files.

    Args:
        model (nn.Module): the network to train.
        objective (Objective): ``objective(model, batch) -> dict[str, Tensor]``
            of scalar terms.
        optimizer (Optimizer or callable): an optimizer, or a function
            ``params -> Optimizer`` called with the model's and the objective's
            trainable parameters. An optimizer built over the model only gets
            the objective's parameters added as a new param group (only
            allowed when ``scheduler`` is not an already-built scheduler).
        scheduler (LRScheduler or callable, optional): stepped once per
            epoch; a function ``optimizer -> scheduler`` is called with the
            optimizer. (default: :obj:`None`)
        weights (dict, optional): weight per term name, replacing the
            objective's default for that term (not multiplying it); unnamed
            terms keep the objective's weight, or 1. A name the objective
            never returns is an error at the first step. (default: :obj:`None`)
        device (torch.device, optional): defaults to ``cuda:LOCAL_RANK``
            under ``torchrun`` with CUDA, else the model's device.
        checkpoint_dir (str, optional): folder for ``last.pt``.
            (default: :obj:`None`, no checkpoints)
        checkpoint_every (int, optional): steps between checkpoints.
            (default: :obj:`None`, only at the end and on Ctrl-C)
        log_dir (str, optional): folder for ``metrics.csv`` and TensorBoard
            events. (default: :obj:`None`)
        seed (int): seeds every generator when a fresh run starts and the
            distributed sampler. (default: :obj:`0`)
        progress (bool): show a tqdm progress bar. (default: :obj:`True`)
        metrics (dict, optional): name → ``fn(model, loader) -> float``
            evaluated on ``eval_loader``. (default: ``{"accuracy": evaluate}``)
        bn_recalibration (bool): after the last epoch, before its metrics,
            re-estimate the running statistics of every BatchNorm layer over
            the training data (:func:`recalibrate_batchnorm`). With a large
            learning rate the running averages lag the weights, and eval-mode
            accuracy can fall far below train-mode accuracy (SmallCNN, Adam at
            3e-3, MNIST-5k, 4 epochs: 72 % vs 96 %, see docs/training.md).
            (default: :obj:`False`)

    Example:
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> from latentgraph.train.objectives import ClassificationObjective
        >>> _ = torch.manual_seed(0)
        >>> data = TensorDataset(torch.randn(32, 4), torch.randint(0, 2, (32,)))
        >>> model = nn.Linear(4, 2)
        >>> trainer = Trainer(model, ClassificationObjective(),
        ...                   lambda params: torch.optim.SGD(params, lr=0.1), progress=False)
        >>> history = trainer.fit(DataLoader(data, batch_size=8), epochs=2)
        >>> [row["step"] for row in history], sorted(history[0])
        ([4, 8], ['epoch', 'lr', 'seconds', 'step', 'train/ce', 'train/ce/weighted', 'train/loss'])
    """

    def __init__(
        self,
        model: nn.Module,
        objective: Objective,
        optimizer: torch.optim.Optimizer | Callable[[list[nn.Parameter]], torch.optim.Optimizer],
        scheduler: Any = None,
        weights: Mapping[str, float] | None = None,
        device: str | torch.device | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int | None = None,
        log_dir: str | os.PathLike | None = None,
        seed: int = 0,
        progress: bool = True,
        metrics: Mapping[str, Metric] | None = None,
        bn_recalibration: bool = False,
    ) -> None:
        progress = check_flag(progress, "progress")
        if not isinstance(model, nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(objective, Objective):
            raise TypeError(f"`objective` must be callable as objective(model, batch), got {type(objective).__name__}")
        self.weights = _check_weights(weights)
        if checkpoint_every is not None:
            check_int(checkpoint_every, "checkpoint_every", minimum=1)
        check_int(seed, "seed")
        self.metrics = dict(metrics) if metrics is not None else {"accuracy": evaluate}
        for name, fn in self.metrics.items():
            if not callable(fn):
                raise TypeError(f"metric {name!r} must be callable as fn(model, loader), got {type(fn).__name__}")

        if not isinstance(bn_recalibration, bool):
            raise TypeError(f"`bn_recalibration` must be a bool, got {type(bn_recalibration).__name__}")
        self.bn_recalibration = bn_recalibration
        self.device = resolve_device(device, model)
        self.model = model.to(self.device)
        self.objective = objective.to(self.device) if isinstance(objective, nn.Module) else objective
        self.parameters = trainable_parameters(list(self.model.parameters()) + (
            list(objective.parameters()) if isinstance(objective, nn.Module) else []))
        self.optimizer = assemble_optimizer(optimizer, self.parameters, scheduler)
        self.scheduler = scheduler(self.optimizer) if callable(scheduler) and not hasattr(scheduler, "state_dict") \
            else scheduler
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.checkpoint_every = checkpoint_every
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self._log = MetricsLog(self.log_dir) if self.log_dir is not None else None
        self.seed = seed
        self.progress = progress

        self.step = 0  # optimizer steps done
        self.epoch = 0  # epochs completed
        self.batch = 0  # batches done in the current epoch
        self.history: list[dict[str, Any]] = []
        self._sums: dict[str, float] = {}
        self._count = 0
        self._rng_epoch: dict[str, Any] | None = None  # generators at the start of the current epoch
        self._rng_now: dict[str, Any] | None = None  # generators after the last completed step
        self._consistent = True  # False while a step is half done
        self._batches_per_epoch: int | None = None
        self._loader: DataLoader | None = None  # the (sharded) training loader of the current fit
        self._epoch_start = time.perf_counter()

    # ------------------------------------------------------------------ fit
    def fit(self, train_loader: DataLoader, epochs: int, eval_loader: Any = None,
            resume: bool | str | os.PathLike | None = None) -> list[dict[str, Any]]:
        """Train until ``epochs`` epochs are completed; return :attr:`history`.

        Args:
            train_loader (DataLoader): yields ``(x, y, ...)`` batches.
            epochs (int): total number of epochs (a resumed run counts the
                epochs already done).
            eval_loader (iterable, optional): evaluated after every epoch.
            resume (str or bool, optional): a checkpoint file, a folder
                holding ``last.pt``, or ``True`` for ``checkpoint_dir``.
        """
        check_int(epochs, "epochs", minimum=0)
        loader = shard_loader(train_loader, self.seed)
        self._loader = loader
        try:
            self._batches_per_epoch = len(loader)
        except TypeError:
            raise TypeError("`train_loader` must have a length (batches per epoch) so that a run can resume "
                            "mid-epoch; use a map-style dataset") from None
        if self._batches_per_epoch == 0:
            raise ValueError("`train_loader` yields no batches")
        if self.checkpoint_dir is not None and is_main_process():  # left by a write killed in an earlier run
            ckpt.remove_stale_temporaries(self.checkpoint_dir, [ckpt.LAST])
        if resume is not None and resume is not False:
            self.load_checkpoint(ckpt.resolve_checkpoint(resume, self.checkpoint_dir), loader)
        elif self.step == 0 and self.epoch == 0 and self.batch == 0:
            seed_everything(self.seed)
            broadcast_module(self.model)
            if isinstance(self.objective, nn.Module):
                broadcast_module(self.objective)
        try:
            if len(self.history) < self.epoch:  # stopped between an epoch's last step and its record
                self._record_epoch(eval_loader)
            while self.epoch < epochs:
                self._train_epoch(loader, eval_loader, epochs)
        except KeyboardInterrupt:
            if self._consistent and self.checkpoint_dir is not None:
                path = self.save_checkpoint()
                if is_main_process():
                    log.warning("interrupted at step %d; checkpoint saved to %s", self.step, path)
            raise
        if self.checkpoint_dir is not None:
            self.save_checkpoint()
        barrier()
        return self.history

    def _train_epoch(self, loader: DataLoader, eval_loader: Any, epochs: int) -> None:
        if hasattr(getattr(loader, "sampler", None), "set_epoch"):
            loader.sampler.set_epoch(self.epoch)
        if self.batch == 0:
            self._rng_epoch = ckpt.rng_state(loader)
            self._sums, self._count = {}, 0
            self._epoch_start = time.perf_counter()
        else:  # resuming mid-epoch: replay the epoch's shuffling, skip the batches already done
            ckpt.set_rng_state(self._rng_epoch, loader)
        iterator = iter(loader)
        for _ in range(self.batch):
            next(iterator)
        if self.batch:
            ckpt.set_rng_state(self._rng_now, loader)
        self._set_train(True)
        bar = self._progress_bar(loader, epochs)
        try:
            for batch in iterator:
                with interrupt_after_step():
                    self._consistent = False
                    self._train_step(batch)
                    self.batch += 1
                    self._rng_now = ckpt.rng_state(loader)
                    self._consistent = True
                if bar is not None:
                    bar.update(1)
                    if self.batch % 10 == 0 or self.batch == len(loader):
                        bar.set_postfix({k: f"{v / self._count:.4g}" for k, v in self._sums.items()}, refresh=False)
                if self.checkpoint_every is not None and self.step % self.checkpoint_every == 0:
                    self.save_checkpoint()
        finally:
            if bar is not None:
                bar.close()
        with interrupt_after_step():
            self._consistent = False
            if self.scheduler is not None:
                self.scheduler.step()
            self.epoch += 1
            self.batch = 0
            if self.bn_recalibration and self.epoch == epochs:
                self._recalibrate_batchnorm(loader)
            self._consistent = True
        self._record_epoch(eval_loader)

    def _train_step(self, batch: Any) -> None:
        batch = to_device(batch, self.device)
        terms = self.objective(self.model, batch)
        _check_terms(terms, self.objective)
        unknown = sorted(self.weights.keys() - terms.keys())
        if unknown:
            raise ValueError(f"weights given for terms the objective does not return: {', '.join(unknown)} "
                             f"(it returns {', '.join(terms)})")
        weights = term_weights(self.objective, self.weights)
        loss = weighted_sum(terms, weights)
        raw = [t.detach().float().reshape(()) for t in terms.values()]
        weighted = [weights.get(name, 1.0) * value for name, value in zip(terms, raw)]
        values = torch.stack([loss.detach().float(), *raw, *weighted]).tolist()
        if not all(math.isfinite(v) for v in values[:1 + len(raw)]):
            shown = ", ".join(f"{n}={v:.4g}" for n, v in zip(terms, values[1:]))
            raise FloatingPointError(f"non-finite loss at step {self.step + 1}: {shown}")
        if not loss.requires_grad:
            raise ValueError("the weighted loss does not depend on any trainable parameter")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(self.parameters)
        self.optimizer.step()
        if isinstance(self.objective, SteppedObjective):  # e.g. Parseval's retraction of the weights
            with torch.no_grad():
                self.objective.after_step(self.model)
        self.step += 1
        for name, value in zip(["loss", *terms, *(f"{n}/weighted" for n in terms)], values):
            self._sums[name] = self._sums.get(name, 0.0) + value
        self._count += 1

    def _record_epoch(self, eval_loader: Any) -> None:
        names = sorted(self._sums)
        means = all_reduce_mean(torch.tensor([self._sums[n] / max(self._count, 1) for n in names],
                                             dtype=torch.float64, device=self.device)).tolist()
        record: dict[str, Any] = {"epoch": self.epoch, "step": self.step,
                                  "lr": float(self.optimizer.param_groups[0]["lr"])}
        record.update({f"train/{n}": v for n, v in zip(names, means)})
        if eval_loader is not None and is_main_process():
            record.update(self._evaluate(eval_loader))
        record["seconds"] = round(time.perf_counter() - self._epoch_start, 3)
        self.history.append(record)
        self._sums, self._count = {}, 0
        if is_main_process() and self._log is not None:
            self._log.write(self.history, record)
            log.info("epoch %d: %s", self.epoch, ", ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items() if k != "epoch"))

    def _evaluate(self, loader: Any) -> dict[str, float]:
        """Metrics on ``loader``; the random generators are left untouched so that
        evaluating never changes training."""
        saved = ckpt.rng_state()
        self._set_train(False)
        try:
            with torch.no_grad():
                out = {f"eval/{name}": float(fn(self.model, loader)) for name, fn in self.metrics.items()}
                if isinstance(self.objective, MeasuredObjective):
                    out.update({f"eval/{k}": float(v) for k, v in self.objective.metrics(self.model, loader).items()})
        finally:
            self._set_train(True)
            ckpt.set_rng_state(saved)
        return out

    def _recalibrate_batchnorm(self, loader: DataLoader) -> None:
        """Re-estimate BatchNorm statistics over ``loader`` (this rank's shard),
        average them over ranks, and leave the random generators untouched."""
        saved = ckpt.rng_state(loader)
        try:
            norms = recalibrate_batchnorm(self.model, loader, self.device)
        finally:
            ckpt.set_rng_state(saved, loader)
        for norm in norms:
            for buffer in (norm.running_mean, norm.running_var):
                if buffer is not None:
                    buffer.copy_(all_reduce_mean(buffer))
        if norms and is_main_process():
            log.info("re-estimated the statistics of %d BatchNorm layer(s) over the training data", len(norms))

    def _set_train(self, mode: bool) -> None:
        self.model.train(mode)
        if isinstance(self.objective, nn.Module):
            self.objective.train(mode)

    def _progress_bar(self, loader: DataLoader, epochs: int):
        if not (self.progress and is_main_process()):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=len(loader), initial=self.batch, desc=f"epoch {self.epoch + 1}/{epochs}",
                    leave=False, dynamic_ncols=True)

    # ---------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs, as a weights-only-loadable dict."""
        return {
            "format": ckpt.FORMAT, "version": ckpt.VERSION,
            "model": self.model.state_dict(),
            "objective": self.objective.state_dict() if isinstance(self.objective, nn.Module) else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "step": self.step, "epoch": self.epoch, "batch": self.batch,
            "batches_per_epoch": self._batches_per_epoch, "world_size": get_world_size(),
            "batch_size": getattr(self._loader, "batch_size", None),  # per rank
            "history": self.history, "sums": dict(self._sums), "count": self._count,
            "rng_epoch": self._rng_epoch, "rng_now": self._rng_now if self.batch else ckpt.rng_state(self._loader),
            "seed": self.seed,
        }

    def save_checkpoint(self, path: str | os.PathLike | None = None) -> Path | None:
        """Write :meth:`state_dict` atomically to ``path`` (default
        ``checkpoint_dir/last.pt``) on rank 0; return the path."""
        if path is None:
            if self.checkpoint_dir is None:
                raise ValueError("save_checkpoint needs a path or the trainer's checkpoint_dir")
            path = self.checkpoint_dir / ckpt.LAST
        if not is_main_process():
            return Path(path)
        return ckpt.save_atomic(self.state_dict(), path)

    def load_checkpoint(self, path: str | os.PathLike, loader: DataLoader | None = None) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint`."""
        state = ckpt.load_checkpoint(path, map_location="cpu")
        if loader is not None:
            ckpt.check_data_layout(state, len(loader), get_world_size(), getattr(loader, "batch_size", None), path)
        if isinstance(self.objective, nn.Module) and state["objective"] is None:
            raise ValueError(f"checkpoint {str(path)!r} has no objective state but the objective is a module")
        ckpt.check_optimizer_fits(state["optimizer"], self.optimizer, path)
        try:
            self.model.load_state_dict(state["model"])
            if isinstance(self.objective, nn.Module):
                self.objective.load_state_dict(state["objective"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as error:
            raise ValueError(f"checkpoint {str(path)!r} does not fit this run (another model, objective or "
                             f"optimizer?): {error}") from error
        if (self.scheduler is None) != (state["scheduler"] is None):
            raise ValueError(f"checkpoint {str(path)!r} and this trainer disagree on having a scheduler")
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.epoch, self.batch = state["step"], state["epoch"], state["batch"]
        self.history = [dict(row) for row in state["history"]]
        self._sums, self._count = dict(state["sums"]), state["count"]
        self._rng_epoch, self._rng_now = state["rng_epoch"], state["rng_now"]
        ckpt.set_rng_state(self._rng_now, loader)
        self._epoch_start = time.perf_counter()


def fit(model: nn.Module, train_loader: DataLoader, epochs: int = 5, lr: float = 1e-3,
        device: str | torch.device | None = None, seed: int = 0, progress: bool = True,
        recalibrate_bn: bool = False) -> nn.Module:
    r"""Train a classifier with cross-entropy and Adam; return the model.

    A shortcut for :class:`Trainer` with :class:`ClassificationObjective` and
    ``torch.optim.Adam(lr=lr)``, no scheduler and no checkpoints;
    ``recalibrate_bn=True`` re-estimates BatchNorm statistics at the end
    (``Trainer(bn_recalibration=True)``).

    Example:
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> _ = torch.manual_seed(0)
        >>> x = torch.randn(64, 2); y = (x[:, 0] > 0).long()
        >>> model = fit(nn.Linear(2, 2), DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True),
        ...             epochs=10, lr=0.1, progress=False)
        >>> evaluate(model, [(x, y)]) > 0.9
        True
    """
    progress = check_flag(progress, "progress")
    recalibrate_bn = check_flag(recalibrate_bn, "recalibrate_bn")
    lr = check_number(lr, "lr", positive=True)
    trainer = Trainer(model, ClassificationObjective(), lambda params: torch.optim.Adam(params, lr=lr),
                      device=device, seed=seed, progress=progress, bn_recalibration=recalibrate_bn)
    trainer.fit(train_loader, epochs)
    return model


def _check_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    if weights is None:
        return {}
    if not isinstance(weights, Mapping):
        raise TypeError(f"`weights` must be a dict of term name -> number, got {type(weights).__name__}")
    out = {}
    for name, value in weights.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"weight of term {name!r} must be a finite number, got {value!r}")
        out[str(name)] = float(value)
    return out


def _check_terms(terms: Any, objective: Any) -> None:
    name = type(objective).__name__
    if not isinstance(terms, Mapping) or not terms:
        raise TypeError(f"objective {name} must return a non-empty dict of named loss terms, got {terms!r:.80}")
    for key, value in terms.items():
        if not isinstance(key, str) or not isinstance(value, Tensor) or value.numel() != 1:
            raise TypeError(f"objective {name} returned term {key!r} that is not a scalar tensor")

