"""The CIFAR robustness recipes (configs/robustness/cifar10_*.yaml): the official settings
as written, and one smoke epoch of each on a tiny CIFAR-shaped folder written here."""
import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from latentgraph.losses.laplacian_smoothness import relu_layer_names
from latentgraph.models import PreActResNet18
from latentgraph.train.config import load_config
from latentgraph.train.run import run_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "robustness"
RECIPES = sorted(CONFIGS.glob("cifar10_*.yaml"))


def _tiny_cifar10(root: Path) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (6, 3072), dtype=np.uint8), b"labels": list(range(6))}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    return folder


def test_there_is_a_recipe_per_table_row():
    assert [p.name for p in RECIPES] == [
        "cifar10_preact_resnet18_baseline.yaml", "cifar10_preact_resnet18_laplacian.yaml",
        "cifar10_preact_resnet18_parseval.yaml", "cifar10_resnet18_ce.yaml", "cifar10_resnet18_label_variation.yaml"]


def test_laplacian_networks_recipes_are_the_official_settings():
    # cadurosar/laplacian_networks, cifar_10/cifar10.py and train_scripts/{V,P,R}.sh
    configs = {p.stem.rsplit("_", 1)[-1]: load_config(p) for p in RECIPES if "preact" in p.name}
    for config in configs.values():
        assert (config.data.batch_size, config.data.augment, config.epochs) == (100, False, 100)
        assert (config.optim.name, config.optim.lr, config.optim.momentum, config.optim.weight_decay) == \
            ("sgd", 0.1, 0.9, 5e-4)
        assert (config.schedule.name, config.schedule.milestones, config.schedule.gamma) == ("multistep", [50], 0.01)
    laplacian = configs["laplacian"].method
    assert laplacian.name == "laplacian_smoothness" and laplacian.kwargs == {"gamma": 0.01, "power": 2, "k": None}
    assert len(relu_layer_names(PreActResNet18(**configs["laplacian"].model.kwargs))) == 17  # every ReLU output
    parseval = configs["parseval"]
    assert parseval.model.kwargs == {"parseval": True} and parseval.method.kwargs == {"retraction": 0.01}
    assert configs["baseline"].method.name == "classification" and configs["baseline"].model.kwargs == {}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_runs_one_epoch_on_a_tiny_cifar10(path, tmp_path):
    config = load_config(path)
    config = dataclasses.replace(
        config, epochs=1, output=str(tmp_path / "run"), device="cpu",
        data=dataclasses.replace(config.data, root=str(_tiny_cifar10(tmp_path)), num_workers=0, batch_size=30),
        model=dataclasses.replace(config.model, kwargs={**config.model.kwargs, "width": 4}))
    result = run_config(config, progress=False)
    assert (tmp_path / "run" / "model.pt").is_file()
    terms = {k: v for k, v in result["history"][-1].items() if k.startswith("train/")}
    assert terms and all(np.isfinite(v) for v in terms.values())
    expected = {"laplacian_smoothness": "train/smoothness", "label_variation": "train/label_variation"}
    if config.method.name in expected:
        assert expected[config.method.name] in terms
    with torch.no_grad():
        assert result["model"].eval()(torch.rand(2, 3, 32, 32)).isfinite().all()
