"""The paper-scale CIFAR-10 distillation recipes: their faithful settings, and one smoke run each
on a tiny CIFAR-shaped folder written here (one epoch, the recipe's networks and losses)."""
import pickle
from pathlib import Path

import numpy as np
import pytest
import yaml

from latentgraph.train.config import load_config, parse_config
from latentgraph.train.run import run_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RECIPES = sorted(CONFIGS.glob("cifar10_wrn28_*.yaml"))
# the official code (github.com/cadurosar/graph_kd): --gkd 25, --rkd 25 (distance only), --inter_only
LOSSES = {"teacher": None, "student": None, "gkd": {"gkd": {"weight": 25.0}},
          "gkd_inter": {"gkd": {"weight": 25.0, "edges": "inter_class"}},
          "rkd_d": {"rkd": {"weight": 1.0, "distance_weight": 25.0, "angle_weight": 0.0}}}


def _name(path: Path) -> str:
    return path.stem.removeprefix("cifar10_wrn28_")


def test_every_recipe_is_listed():
    assert {_name(p) for p in RECIPES} == set(LOSSES)


@pytest.mark.parametrize("path", RECIPES, ids=_name)
def test_recipe_is_the_official_setting(path):
    c = load_config(path)
    width = 1 if _name(path) == "teacher" else 0.5
    assert (c.model.name, c.model.kwargs["depth"], c.model.kwargs["width"]) == ("wrn", 28, width)
    assert (c.optim.name, c.optim.lr, c.optim.momentum, c.optim.weight_decay) == ("sgd", 0.1, 0.9, 5e-4)
    assert (c.data.name, c.data.batch_size, c.data.augment, c.epochs) == ("cifar10", 128, True, 200)
    assert (c.schedule.name, c.schedule.milestones, c.schedule.gamma) == ("multistep", [60, 120, 160], 0.2)
    if LOSSES[_name(path)] is None:
        assert c.teacher is None and c.method.name == "classification"
    else:
        assert (c.teacher.kwargs["depth"], c.teacher.kwargs["width"]) == (28, 1)
        assert c.method.name == "distill" and c.method.kwargs["losses"] == LOSSES[_name(path)]
        assert c.method.kwargs["layers"] == ["block1", "block2", "block3"]


def _tiny_cifar10(root: Path) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in [*((f"data_batch_{i}", 2) for i in range(1, 6)), ("test_batch", 4)]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, n).tolist(), b"batch_label": b"tiny"}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)


@pytest.mark.parametrize("path", RECIPES, ids=_name)
def test_recipe_smoke_run(path, tmp_path):
    """One epoch of the recipe, as written, on 10 CIFAR-shaped images (only the data size shrinks)."""
    _tiny_cifar10(tmp_path / "data")
    raw = yaml.safe_load(path.read_text())
    raw["epochs"] = 1
    raw["output"] = str(tmp_path / "run")
    raw["data"].update(root=str(tmp_path / "data"), batch_size=5, eval_batch_size=4, num_workers=0)
    raw["schedule"]["milestones"] = [1]
    result = run_config(parse_config(raw, str(path)), progress=False)
    assert (Path(result["output"]) / "model.pt").is_file()
    assert all(np.isfinite(v) for k, v in result["history"][-1].items() if k.startswith("train/"))
    if LOSSES[_name(path)] is not None:
        term = next(iter(LOSSES[_name(path)]))
        assert f"train/{term}" in result["history"][-1]
