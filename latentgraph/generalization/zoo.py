r"""Model zoos: many small networks trained on one data set while their
hyperparameters vary, each to the same training-loss criterion, with their
train and test accuracy — the material on which a generalization measure is
judged (Jiang et al., 2020, "Fantastic generalization measures").

A zoo is described by a YAML file (:func:`load_zoo_config`)::

    name: digits-cnn
    data: digits            # digits | mnist5k | cifar10 (then data_root: FOLDER)
    model: cnn              # mlp | cnn (see ZooNet)
    grid:                   # every combination, or a seeded sample of them
      width: [8, 16]
      depth: [2, 3]
      dropout: [0.0, 0.25]
      weight_decay: [0.0, 1.0e-4]
      lr: [1.0e-3, 3.0e-3]
      batch_size: [32, 128]
      label_noise: [0.0, 0.2]
    sample: 64              # optional: train a seeded sample of this many grid points
    seed: 0
    stop_loss: 0.1          # stop once the training cross-entropy is at most this
    max_epochs: 100

:func:`train_zoo` trains the models one by one into ``OUTPUT/models/<id>/``
(``weights.pt``, ``init.pt`` and, written last, ``record.json``), so that an
interrupted zoo resumes model by model; :func:`load_zoo` reads it back.
"""
from __future__ import annotations

import itertools
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..atomic import save_torch, write_text
from .networks import KINDS, ZooNet

log = logging.getLogger(__name__)

#: Hyperparameters a zoo may vary, with the type of their values.
HYPERPARAMETERS: dict[str, type] = {
    "width": int,
    "depth": int,
    "dropout": float,
    "weight_decay": float,
    "lr": float,
    "batch_size": int,
    "label_noise": float,
}

#: Value of a hyperparameter the grid leaves out.
DEFAULTS: dict[str, float | int] = {
    "width": 64, "depth": 2, "dropout": 0.0, "weight_decay": 0.0, "lr": 1e-3, "batch_size": 64, "label_noise": 0.0,
}

#: Data sets a zoo can be trained on.
DATASETS = ("digits", "mnist5k", "cifar10")

#: File name that marks a finished model (written last).
RECORD = "record.json"


@dataclass(frozen=True)
class ZooConfig:
    """A zoo's description; see the module docstring for the YAML keys."""

    name: str
    data: str
    model: str
    grid: dict[str, list]
    sample: int | None = None
    seed: int = 0
    stop_loss: float = 0.1
    max_epochs: int = 100
    data_root: str | None = None
    data_seed: int = 0

    def points(self) -> list[dict[str, float | int]]:
        """The hyperparameters of each model, in a fixed order: the grid's
        combinations (first key varying slowest), or a seeded sample of them
        kept in grid order."""
        names = list(self.grid)
        combos = [dict(zip(names, values)) for values in itertools.product(*(self.grid[n] for n in names))]
        if self.sample is not None and self.sample < len(combos):
            chosen = torch.randperm(len(combos), generator=torch.Generator().manual_seed(self.seed))[: self.sample]
            combos = [combos[i] for i in sorted(chosen.tolist())]
        return [{**DEFAULTS, **c} for c in combos]


def load_zoo_config(source: str | os.PathLike | Mapping) -> ZooConfig:
    """Parse a zoo configuration from a YAML file (``yaml.safe_load``) or a
    mapping; unknown keys, unknown hyperparameters and bad values are a
    :class:`ValueError` naming them.

    Example:
        >>> cfg = load_zoo_config({"name": "t", "data": "digits", "model": "mlp",
        ...                        "grid": {"width": [8, 16], "depth": [1, 2]}})
        >>> len(cfg.points()), cfg.points()[1]["depth"]
        (4, 2)
    """
    if isinstance(source, Mapping):
        raw, where = dict(source), "zoo config"
    else:
        import yaml

        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no such zoo config {os.fspath(source)!r}")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise ValueError(f"{os.fspath(source)!r} is not valid YAML: {error}") from None
        where = os.fspath(source)
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: expected a mapping of keys, got {type(raw).__name__}")
    known = {f for f in ZooConfig.__dataclass_fields__}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    missing = sorted({"name", "data", "model", "grid"} - set(raw))
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}")
    if raw["data"] not in DATASETS:
        raise ValueError(f"{where}: `data` must be one of {', '.join(DATASETS)}; got {raw['data']!r}")
    if raw["data"] == "cifar10" and not raw.get("data_root"):
        raise ValueError(f"{where}: `data: cifar10` needs `data_root`, the local CIFAR-10 folder")
    if raw["model"] not in KINDS:
        raise ValueError(f"{where}: `model` must be one of {', '.join(KINDS)}; got {raw['model']!r}")
    grid = raw["grid"]
    if not isinstance(grid, dict) or not grid:
        raise ValueError(f"{where}: `grid` must map hyperparameters to lists of values")
    clean: dict[str, list] = {}
    for name, values in grid.items():
        if name not in HYPERPARAMETERS:
            raise ValueError(f"{where}: unknown hyperparameter {name!r} in `grid`; known: {sorted(HYPERPARAMETERS)}")
        if not isinstance(values, list) or not values:
            raise ValueError(f"{where}: `grid.{name}` must be a non-empty list, got {values!r}")
        clean[name] = [_check_value(name, v, where) for v in values]
        if len(set(clean[name])) != len(clean[name]):
            raise ValueError(f"{where}: `grid.{name}` repeats a value: {values}")
    for key, low in (("sample", 1), ("max_epochs", 1)):
        value = raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ValueError(f"{where}: `{key}` must be an int ≥ {low}, got {value!r}")
    stop = raw.get("stop_loss", 0.1)
    if isinstance(stop, bool) or not isinstance(stop, (int, float)) or not (math.isfinite(stop) and stop > 0):
        raise ValueError(f"{where}: `stop_loss` must be a positive number, got {stop!r}")
    for key in ("seed", "data_seed"):
        if isinstance(raw.get(key, 0), bool) or not isinstance(raw.get(key, 0), int):
            raise ValueError(f"{where}: `{key}` must be an int, got {raw[key]!r}")
    return ZooConfig(**{**raw, "grid": clean, "stop_loss": float(stop)})


def _check_value(name: str, value: object, where: str) -> float | int:
    kind = HYPERPARAMETERS[name]
    ok = not isinstance(value, bool) and isinstance(value, (int, float) if kind is float else int)
    if not ok or not math.isfinite(value):
        raise ValueError(f"{where}: `grid.{name}` values must be {kind.__name__}s, got {value!r}")
    value = kind(value)
    limits = {"dropout": (0, 1), "label_noise": (0, 1)}
    if name in limits and not limits[name][0] <= value < limits[name][1]:
        raise ValueError(f"{where}: `grid.{name}` values must lie in [0, 1), got {value}")
    if name not in limits and name != "weight_decay" and value <= 0:
        raise ValueError(f"{where}: `grid.{name}` values must be positive, got {value}")
    if name == "weight_decay" and value < 0:
        raise ValueError(f"{where}: `grid.weight_decay` values must be ≥ 0, got {value}")
    return value


def load_split(config: ZooConfig) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x_train, y_train, x_test, y_test)`` of the zoo's data set, clean labels."""
    from ..data import load_digits, load_mnist5k

    if config.data == "digits":
        return tuple(load_digits(config.data_seed))
    if config.data == "mnist5k":
        return tuple(load_mnist5k(config.data_seed))
    from ..data import load_cifar

    x_train, y_train = load_cifar(config.data_root, train=True)
    x_test, y_test = load_cifar(config.data_root, train=False)
    return x_train.float() / 255, y_train, x_test.float() / 255, y_test


def noisy_labels(y: Tensor, rate: float, seed: int, num_classes: int) -> Tensor:
    """``y`` with ``round(rate·N)`` labels (a seeded choice) replaced by a
    different class drawn uniformly.

    Example:
        >>> y = torch.arange(10) % 5
        >>> int((noisy_labels(y, 0.3, seed=0, num_classes=5) != y).sum())
        3
    """
    y = y.clone()
    count = round(rate * len(y))
    if count == 0:
        return y
    g = torch.Generator().manual_seed(seed)
    flip = torch.randperm(len(y), generator=g)[:count]
    shift = torch.randint(1, num_classes, (count,), generator=g)
    y[flip] = (y[flip] + shift) % num_classes
    return y


def model_seed(config: ZooConfig, index: int) -> int:
    """Seed of model ``index``: initialization, label noise and batch order."""
    return config.seed * 100_003 + index


def zoo_network(config: ZooConfig, hparams: Mapping, in_shape: tuple[int, ...], num_classes: int) -> ZooNet:
    """The (untrained) network of one zoo model."""
    return ZooNet(in_shape, num_classes, kind=config.model, width=int(hparams["width"]),
                  depth=int(hparams["depth"]), dropout=float(hparams["dropout"]))


@dataclass
class ZooModel:
    """One trained model of a zoo, as :func:`load_zoo` reads it.

    Attributes:
        id (str): folder name, ``m000``, ``m001``, …
        hparams (dict): its hyperparameters.
        record (dict): everything ``record.json`` holds (accuracies, epochs,
            final loss, whether the criterion was reached, seconds, seed).
        folder (Path): where its files are.
    """

    id: str
    hparams: dict
    record: dict
    folder: Path

    @property
    def gap(self) -> float:
        """Generalization gap: training accuracy (on the labels it was trained
        on) minus test accuracy."""
        return float(self.record["train_acc"] - self.record["test_acc"])


@dataclass
class Zoo:
    """A trained zoo: its config and models, with what the measures need."""

    config: ZooConfig
    models: list[ZooModel] = field(default_factory=list)
    folder: Path | None = None
    _data: tuple[Tensor, Tensor, Tensor, Tensor] | None = field(default=None, repr=False, compare=False)

    def training_data(self, model: ZooModel) -> tuple[Tensor, Tensor]:
        """The training inputs and the (possibly noisy) labels ``model`` was trained on."""
        x_train, y_train, _, y_test = self._split()
        num_classes = int(max(y_train.max(), y_test.max())) + 1
        y = noisy_labels(y_train, float(model.hparams["label_noise"]), int(model.record["seed"]), num_classes)
        return x_train, y

    def network(self, model: ZooModel, weights: str = "weights.pt") -> ZooNet:
        """``model``'s network with its trained weights (or ``weights="init.pt"``
        for its initial ones), loaded with ``weights_only=True``."""
        x_train, y_train, _, y_test = self._split()
        net = zoo_network(self.config, model.hparams, tuple(x_train.shape[1:]),
                          int(max(y_train.max(), y_test.max())) + 1)
        state = torch.load(model.folder / weights, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        return net.eval()

    def _split(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The zoo's data split, loaded once."""
        if self._data is None:
            self._data = load_split(self.config)
        return self._data


def _accuracy(model: nn.Module, x: Tensor, y: Tensor, batch: int = 1000) -> tuple[float, float]:
    """``(accuracy, mean cross-entropy)`` of ``model`` in evaluation mode."""
    model.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            out = model(x[i:i + batch])
            correct += int((out.argmax(1) == y[i:i + batch]).sum())
            loss += float(F.cross_entropy(out, y[i:i + batch], reduction="sum"))
    return correct / len(y), loss / len(y)


def train_one(config: ZooConfig, hparams: Mapping, seed: int, data: tuple[Tensor, Tensor, Tensor, Tensor],
              device: torch.device | str = "cpu") -> tuple[nn.Module, dict, dict]:
    """Train one zoo model with Adam until its training cross-entropy (on its
    noisy labels, evaluation mode, after each epoch) is at most
    ``config.stop_loss`` or ``config.max_epochs`` have run.

    Returns ``(model, initial_state, record)``; the record holds the
    hyperparameters, ``seed``, ``epochs``, ``train_loss``, ``converged``,
    ``train_acc`` (on the labels trained on), ``train_acc_clean``,
    ``test_acc``, ``seconds`` (wall clock) and ``cpu_seconds`` (this process).
    """
    x_train, y_train, x_test, y_test = data
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    y_noisy = noisy_labels(y_train, float(hparams["label_noise"]), seed, num_classes)
    torch.manual_seed(seed)
    model = zoo_network(config, hparams, tuple(x_train.shape[1:]), num_classes).to(device)
    initial = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=float(hparams["lr"]),
                                 weight_decay=float(hparams["weight_decay"]))
    x_dev, y_dev = x_train.to(device), y_noisy.to(device)
    order_gen = torch.Generator().manual_seed(seed)
    batch = int(hparams["batch_size"])
    start, cpu_start, epochs, loss = time.perf_counter(), time.process_time(), 0, math.inf
    while epochs < config.max_epochs:
        model.train()
        order = torch.randperm(len(y_dev), generator=order_gen).to(device)
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            optimizer.zero_grad(set_to_none=True)
            step_loss = F.cross_entropy(model(x_dev[idx]), y_dev[idx])
            if not torch.isfinite(step_loss):
                raise FloatingPointError(f"the training loss became {float(step_loss)} at epoch {epochs + 1}")
            step_loss.backward()
            optimizer.step()
        epochs += 1
        train_acc, loss = _accuracy(model, x_dev, y_dev)
        if loss <= config.stop_loss:
            break
    clean_acc, _ = _accuracy(model, x_dev, y_train.to(device))
    test_acc, _ = _accuracy(model, x_test.to(device), y_test.to(device))
    record = {"hparams": dict(hparams), "seed": seed, "epochs": epochs, "train_loss": loss,
              "converged": loss <= config.stop_loss, "train_acc": train_acc, "train_acc_clean": clean_acc,
              "test_acc": test_acc, "seconds": round(time.perf_counter() - start, 3),
              "cpu_seconds": round(time.process_time() - cpu_start, 3)}
    return model.cpu().eval(), initial, record


def train_zoo(config: ZooConfig, output: str | os.PathLike, device: torch.device | str = "cpu",
              limit: int | None = None, progress: Callable[[int, int, dict], None] | None = None,
              reverse: bool = False) -> Path:
    """Train every model of ``config`` not yet in ``output`` (resuming model
    by model, in a seeded order so that an unfinished zoo is a random part
    of the whole) and return the folder.

    Writes ``output/zoo.json`` (the config) and, per model,
    ``models/<id>/weights.pt``, ``init.pt`` and ``record.json`` (last, each
    atomically: a model is done when its record exists). ``limit`` stops after
    that many new models. ``reverse`` walks the order backwards, so that a
    second process on the same folder meets the first in the middle (a model
    both happen to train is written twice, identically: same seed). A folder holding another zoo's config is a
    :class:`ValueError`.
    """
    out = Path(output)
    stored = out / "zoo.json"
    described = json.dumps(asdict(config), indent=2, sort_keys=True)
    if stored.is_file() and json.loads(stored.read_text()) != json.loads(described):
        raise ValueError(f"{os.fspath(output)!r} holds a different zoo (see its zoo.json); choose another --output")
    write_text(stored, described + "\n")
    points = config.points()
    data = load_split(config)
    trained = 0
    # a seeded order, so that the models finished so far are a random part of the zoo
    order = torch.randperm(len(points), generator=torch.Generator().manual_seed(config.seed + 1)).tolist()
    if reverse:
        order.reverse()
    for index in order:
        hparams = points[index]
        folder = out / "models" / f"m{index:03d}"
        if (folder / RECORD).is_file():
            continue
        if limit is not None and trained >= limit:
            break
        model, initial, record = train_one(config, hparams, model_seed(config, index), data, device)
        save_torch(initial, folder / "init.pt")
        save_torch(model.state_dict(), folder / "weights.pt")
        write_text(folder / RECORD, json.dumps({"id": folder.name, **record}, indent=2) + "\n")
        trained += 1
        if progress is not None:
            progress(index, len(points), record)
    return out


def load_zoo(folder: str | os.PathLike) -> Zoo:
    """Read a zoo written by :func:`train_zoo`: its config and every finished
    model (those with a ``record.json``), in id order."""
    root = Path(folder)
    if not (root / "zoo.json").is_file():
        raise FileNotFoundError(f"{os.fspath(folder)!r} is not a zoo folder (no zoo.json)")
    config = load_zoo_config(json.loads((root / "zoo.json").read_text()))
    models = []
    for record_path in sorted((root / "models").glob(f"*/{RECORD}")):
        record = json.loads(record_path.read_text())
        models.append(ZooModel(record["id"], record["hparams"], record, record_path.parent))
    return Zoo(config, models, root)
