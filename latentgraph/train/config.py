"""Training run configuration: YAML files parsed into dataclasses, strictly.

A config is read with :func:`yaml.safe_load` (plain data only, never Python
objects) and checked field by field: an unknown key anywhere, a value of the
wrong type or out of range, an unknown data set, model, optimizer, schedule
or method is a :class:`ValueError` (or :class:`TypeError`) that names the
key and the file. See ``docs/training.md`` for the schema and
``configs/`` for examples.
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import os
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Union

import yaml

DATASETS = ("digits", "mnist5k", "cifar10", "cifar100")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("none", "multistep", "cosine")
#: Seeds (``seed``, ``data.split_seed``) lie in ``0..SEED_LIMIT-1``.
SEED_LIMIT = 2**63


@dataclass
class DataConfig:
    """``data:`` — which data set and how to batch it."""

    name: str
    root: str | None = None  # folder of the CIFAR python-pickle files (required for CIFAR)
    batch_size: int = 128  # per process under torchrun
    eval_batch_size: int = 512
    per_class: int | None = None  # keep this many training samples per class (limited data)
    augment: bool = True  # CIFAR only: random 32×32 crop of the 4-padded image and horizontal flip
    num_workers: int = 0
    split_seed: int = 0  # digits / MNIST-5k train/test split; the same for every run seed


@dataclass
class ModelConfig:
    """``model:`` — a network by name and its constructor arguments."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class TeacherConfig:
    """``teacher:`` — a network and its trained weights; without ``checkpoint``
    the teacher is first trained with cross-entropy and the same recipe."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None


@dataclass
class MethodConfig:
    """``method:`` — a registered objective, its arguments and its term weights."""

    name: str = "classification"
    kwargs: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """``optim:`` — ``sgd`` or ``adam``."""

    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    nesterov: bool = False  # sgd only


@dataclass
class ScheduleConfig:
    """``schedule:`` — learning-rate schedule, stepped once per epoch."""

    name: str = "none"
    milestones: list[int] = field(default_factory=list)  # multistep: epochs where lr *= gamma
    gamma: float = 0.1


@dataclass
class TrainConfig:
    """A whole training run."""

    data: DataConfig
    model: ModelConfig
    method: MethodConfig = field(default_factory=MethodConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    teacher: TeacherConfig | None = None
    seed: int = 0
    epochs: int = 10
    checkpoint_every: int | None = None  # steps; checkpoints are also written at the end and on Ctrl-C
    output: str = "runs/default"
    device: str | None = None  # default: CUDA when available (cuda:LOCAL_RANK under torchrun), else CPU
    bn_recalibration: bool = False  # re-estimate BatchNorm statistics over the training data after the last epoch
    distributed_timeout: float = 600.0  # seconds a rank waits for the others under torchrun before it stops

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (what :func:`yaml.safe_dump` writes)."""
        return dataclasses.asdict(self)


def load_config(path: str | os.PathLike) -> TrainConfig:
    """Read and check a YAML run configuration.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the YAML is invalid, a key is unknown or missing, or a
            value is out of range; the message names the key and the file.
        TypeError: a value has the wrong type (message names key and file).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "run.yaml")
        >>> _ = open(path, "w").write("data: {name: digits}\\nmodel: {name: small_cnn}\\nepochs: 3\\n")
        >>> load_config(path).epochs
        3
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path!r} does not exist")
    with open(path) as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as error:
            raise ValueError(f"{path}: not valid YAML: {error}") from None
    return parse_config(data, source=path)


def parse_config(data: Any, source: str = "<config>") -> TrainConfig:
    """Build a :class:`TrainConfig` from plain data (e.g. parsed YAML) and check it."""
    config = _build(TrainConfig, data, "", source)
    _check_values(config, source)
    return config


def _build(cls: type, data: Any, prefix: str, source: str) -> Any:
    where = prefix.rstrip(".") or "the top level"
    if not isinstance(data, dict):
        raise TypeError(f"{source}: {where} must be a mapping of keys to values, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"did you mean {prefix}{close[0]}? " if close else ""
            raise ValueError(f"{source}: unknown key {prefix}{key!s} ({hint}known keys in {where}: {', '.join(fields)})")
    values = {}
    for name, f in fields.items():
        if name in data:
            values[name] = _convert(hints[name], data[name], f"{prefix}{name}", source)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{source}: missing required key {prefix}{name}")
    return cls(**values)


def _convert(hint: Any, value: Any, key: str, source: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):  # X | None
        if value is None:
            return None
        return _convert(next(a for a in args if a is not type(None)), value, key, source)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{key}.", source)
    if hint is Any:
        return value
    if origin is list:
        if not isinstance(value, list):
            raise TypeError(f"{source}: {key} must be a list, got {value!r}")
        return [_convert(args[0], v, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise TypeError(f"{source}: {key} must be a mapping, got {value!r}")
        return {str(k): _convert(args[1], v, f"{key}.{k}", source) for k, v in value.items()}
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 5e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{source}: {key} must be a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{source}: {key} must be an integer, got {value!r}")
        return value
    if hint is bool or hint is str:
        if not isinstance(value, hint):
            raise TypeError(f"{source}: {key} must be a {hint.__name__}, got {value!r}")
        return value
    raise TypeError(f"unsupported config field type {hint!r} for {key}")  # a bug in the schema, not the file


def _check_values(config: TrainConfig, source: str) -> None:
    from .build import MODELS
    from .objectives import available_objectives, get_objective

    def fail(key: str, message: str) -> None:
        raise ValueError(f"{source}: {key} {message}")

    def close(value: str, choices) -> str:
        match = difflib.get_close_matches(str(value), list(map(str, choices)), n=1)
        return f" (did you mean {match[0]!r}?)" if match else ""

    def choice(key: str, value: str, choices) -> None:
        if value not in choices:
            fail(key, f"must be one of {', '.join(map(str, choices))}; got {value!r}{close(value, choices)}")

    choice("data.name", config.data.name, DATASETS)
    if config.data.name.startswith("cifar") and not config.data.root:
        fail("data.root", f"is required for {config.data.name}: the folder of the python-pickle files")
    for key, value in (("data.batch_size", config.data.batch_size), ("data.eval_batch_size", config.data.eval_batch_size),
                       ("data.per_class", config.data.per_class), ("checkpoint_every", config.checkpoint_every)):
        if value is not None and value < 1:
            fail(key, f"must be a positive integer, got {value}")
    if config.data.num_workers < 0:
        fail("data.num_workers", f"must be ≥ 0, got {config.data.num_workers}")
    for key, value in (("seed", config.seed), ("data.split_seed", config.data.split_seed)):
        if not 0 <= value < SEED_LIMIT:
            fail(key, f"must be an integer in 0..2**63-1, got {value}")
    if not 0 < config.distributed_timeout < math.inf:
        fail("distributed_timeout", f"must be a positive number of seconds, got {config.distributed_timeout}")
    if config.epochs < 0:
        fail("epochs", f"must be ≥ 0, got {config.epochs}")
    choice("model.name", config.model.name, sorted(MODELS))
    if config.teacher is not None:
        choice("teacher.name", config.teacher.name, sorted(MODELS))
    if config.method.name not in available_objectives():
        fail("method.name", f"is {config.method.name!r}, not a registered method"
                            f"{close(config.method.name, available_objectives())}; "
                            f"registered: {', '.join(available_objectives())}")
    wants_teacher = "teacher" in inspect.signature(get_objective(config.method.name)).parameters
    if wants_teacher and config.teacher is None:
        fail("method.name", f"{config.method.name!r} distils a teacher: add a `teacher:` section")
    if config.teacher is not None and not wants_teacher:
        fail("teacher", f"is given but method {config.method.name!r} takes no teacher; remove the section")
    if config.device is not None:
        import torch

        try:
            kind = torch.device(config.device).type
        except RuntimeError:
            fail("device", f"must be a torch device such as cpu, cuda or cuda:1; got {config.device!r}")
        if kind not in ("cpu", "cuda", "mps"):
            fail("device", f"must be cpu, cuda[:N] or mps; {config.device!r} cannot train a model")
    choice("optim.name", config.optim.name, OPTIMIZERS)
    if not config.optim.lr > 0:
        fail("optim.lr", f"must be positive, got {config.optim.lr}")
    if config.optim.weight_decay < 0 or config.optim.momentum < 0:
        fail("optim", "momentum and weight_decay must be ≥ 0")
    choice("schedule.name", config.schedule.name, SCHEDULES)
    milestones = config.schedule.milestones
    if config.schedule.name == "multistep":
        if not milestones or any(m < 1 for m in milestones) or any(a >= b for a, b in zip(milestones, milestones[1:])):
            fail("schedule.milestones", f"must be a non-empty, strictly increasing list of epochs ≥ 1, got {milestones}")
    elif milestones:
        fail("schedule.milestones", f"are only used by schedule.name: multistep, not {config.schedule.name!r}")
    if not config.schedule.gamma > 0:
        fail("schedule.gamma", f"must be positive, got {config.schedule.gamma}")
