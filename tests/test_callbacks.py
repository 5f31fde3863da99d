"""LabelVariationMonitor: values, schedule, loggers, the Trainer's metrics."""
import csv
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import latentgraph as lg
from latentgraph.callbacks import LabelVariationMonitor


def _setup(n=24):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Linear(12, 3))
    y = torch.arange(n) % 3
    x = torch.randn(n, 5) + y[:, None].float()
    return model, x, y


def test_values_match_the_graph_written_out():
    model, x, y = _setup()
    model.train()
    values = LabelVariationMonitor(x, y, ["input", "1"], k=4).measure(model)
    with torch.no_grad():
        hidden = model[1](model[0](x))
    for name, features in (("input", x), ("1", hidden)):
        graph = lg.latent_graph(features, y, k=4)
        expected = float(lg.label_variation(graph, normalized=True))
        assert values[f"label_variation/{name}"] == pytest.approx(expected)
        assert 0 < expected < 1
    assert model.training  # left in its mode


def test_a_frozen_submodule_stays_in_eval_mode():
    model, x, y = _setup()
    model.train()
    model[0].eval()  # a frozen backbone
    LabelVariationMonitor(x, y, ["1"], k=4).measure(model)
    assert model.training and model[2].training and not model[0].training


def test_schedule_history_and_loggers(tmp_path):
    model, x, y = _setup()

    class Board:  # TensorBoard's SummaryWriter interface
        def __init__(self):
            self.scalars = []

        def add_scalar(self, tag, value, step):
            self.scalars.append((tag, value, step))

    class LightningLike:
        def __init__(self):
            self.calls = []

        def log_metrics(self, metrics, step):
            self.calls.append((dict(metrics), step))

    board, lightning, seen = Board(), LightningLike(), []
    monitor = LabelVariationMonitor(x, y, ["0", "2"], k=3, every=2,
                                    loggers=[tmp_path / "lv.csv", board, lightning, lambda m, e: seen.append(e)])
    results = [monitor.on_epoch_end(model, epoch) for epoch in range(1, 6)]
    assert [r is None for r in results] == [True, False, True, False, True]
    assert [row["epoch"] for row in monitor.history] == [2, 4] and seen == [2, 4]
    rows = list(csv.DictReader((tmp_path / "lv.csv").open()))
    assert [row["epoch"] for row in rows] == ["2", "4"]
    assert list(rows[0]) == ["epoch", "label_variation/0", "label_variation/2"]
    assert float(rows[1]["label_variation/2"]) == pytest.approx(monitor.history[1]["label_variation/2"])
    assert [(tag, step) for tag, _, step in board.scalars] == [
        ("label_variation/0", 2), ("label_variation/2", 2), ("label_variation/0", 4), ("label_variation/2", 4)]
    assert [step for _, step in lightning.calls] == [2, 4]


def test_label_variation_falls_as_the_model_learns():
    model, x, y = _setup(60)
    monitor = LabelVariationMonitor(x, y, ["2"], k=5)
    before = monitor.on_epoch_end(model, 0)["label_variation/2"]
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert monitor.on_epoch_end(model, 1)["label_variation/2"] < before / 2


def test_trainer_metrics_every_two_epochs(tmp_path):
    from latentgraph.train import Trainer, evaluate
    from latentgraph.train.objectives import ClassificationObjective

    model, x, y = _setup()
    monitor = LabelVariationMonitor(x, y, ["1", "2"], k=3, every=2, loggers=[tmp_path / "lv.csv"])
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    trainer = Trainer(model, ClassificationObjective(), lambda p: torch.optim.SGD(p, lr=0.1), progress=False,
                      log_dir=tmp_path, metrics={"accuracy": evaluate, **monitor.trainer_metrics()})
    history = trainer.fit(loader, epochs=4, eval_loader=loader)
    measured = [row["eval/label_variation/2"] for row in history]
    assert math.isnan(measured[0]) and math.isnan(measured[2])
    assert measured[1] == pytest.approx(monitor.history[0]["label_variation/2"])
    assert measured[3] == pytest.approx(monitor.history[1]["label_variation/2"])
    assert "eval/label_variation/1" in (tmp_path / "metrics.csv").read_text().splitlines()[0]
    assert len((tmp_path / "lv.csv").read_text().splitlines()) == 3


def test_bad_arguments(tmp_path):
    model, x, y = _setup()
    with pytest.raises(ValueError, match="`k` must be an int in 1..23"):
        LabelVariationMonitor(x, y, ["1"], k=24)
    with pytest.raises(ValueError, match="two classes"):
        LabelVariationMonitor(x, torch.zeros(24, dtype=torch.long), ["1"])
    with pytest.raises(TypeError, match="`layers`"):
        LabelVariationMonitor(x, y, "1")
    with pytest.raises(ValueError, match="`every`"):
        LabelVariationMonitor(x, y, ["1"], every=0)
    with pytest.raises(ValueError, match=r"must end in \.csv"):
        LabelVariationMonitor(x, y, ["1"], loggers=[tmp_path / "lv.txt"])
    with pytest.raises(TypeError, match="`loggers`"):
        LabelVariationMonitor(x, y, ["1"], loggers=[42])
    with pytest.raises(ValueError, match="`epoch`"):
        LabelVariationMonitor(x, y, ["1"]).on_epoch_end(model, -1)
    with pytest.raises(ValueError, match="no module named"):
        LabelVariationMonitor(x, y, ["fc9"]).measure(model)


def test_reachable_from_the_package():
    assert lg.LabelVariationMonitor is LabelVariationMonitor
    assert lg.callbacks.LabelVariationMonitor is LabelVariationMonitor
