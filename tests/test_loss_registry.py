"""One record per loss: a new loss is one class plus one registration, then usable from
Python, a YAML config and the trainer (issue 10, items 1 and 'done when')."""
import csv

import pytest
import torch
import yaml
from torch import nn

from latentgraph.cli import main
from latentgraph.losses import GKDLoss, available_losses, get_loss, register_loss
from latentgraph.models import SmallCNN
from latentgraph.train.objectives import DistillationObjective


@register_loss("toy_l1", inputs="logits", weight=0.5)
class ToyL1Loss(nn.Module):
    """Mean absolute difference of the logits (a toy: one class plus one registration)."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, student, teacher):
        return self.scale * (student - teacher).abs().mean()


def test_the_record_holds_what_the_objective_needs():
    record = get_loss("toy_l1")
    assert record.cls is ToyL1Loss and ToyL1Loss.record is record
    assert (record.inputs, record.weight, record.relational, record.needs_labels) == ("logits", 0.5, False, False)
    assert record.options == {"scale": 1.0}
    assert "toy_l1" in available_losses()
    assert get_loss("gkd").cls is GKDLoss and get_loss("gkd").needs_labels


def test_usable_from_python():
    torch.manual_seed(0)
    teacher, student = SmallCNN(width=8), SmallCNN(width=4)
    x, y = torch.rand(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    objective = DistillationObjective(teacher, {"toy_l1": {"scale": 2.0}})
    terms = objective(student, (x, y))
    with torch.no_grad():
        expected = 2.0 * (student(x) - teacher(x)).abs().mean()
    assert torch.allclose(terms["toy_l1"], expected) and objective.weights == {"toy_l1": 0.5}


def test_usable_from_a_yaml_config_and_the_trainer(tmp_path, capsys):
    config = {"seed": 0, "epochs": 1, "output": str(tmp_path / "out"),
              "data": {"name": "digits", "batch_size": 50, "per_class": 10, "eval_batch_size": 400},
              "model": {"name": "small_cnn", "kwargs": {"width": 4}},
              "teacher": {"name": "small_cnn", "kwargs": {"width": 4}},
              "method": {"name": "distill", "kwargs": {"losses": {"toy_l1": {"scale": 3.0}}}},
              "optim": {"name": "adam", "lr": 0.01}}
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", "--config", str(path), "--no-progress"]) == 0
    (row,) = csv.DictReader(open(tmp_path / "out" / "metrics.csv"))
    raw, weighted = float(row["train/toy_l1"]), float(row["train/toy_l1/weighted"])
    assert raw > 0 and weighted == pytest.approx(0.5 * raw)  # the record's default λ, applied once


def test_bad_registrations_and_options_are_named():
    with pytest.raises(ValueError, match="`inputs`"):
        register_loss("toy_bad", inputs="pixels")
    with pytest.raises(TypeError, match="nn.Module"):
        register_loss("toy_bad", inputs="logits")(object)
    with pytest.raises(ValueError, match="already registered"):
        register_loss("gkd", inputs="layers")(ToyL1Loss)
    with pytest.raises(ValueError, match=r"unknown option 'scal' \(did you mean 'scale'\?"):
        get_loss("toy_l1").build({"scal": 2.0})


def test_projection_heads_need_layer_inputs_and_weights_must_be_finite():
    with pytest.raises(ValueError, match="`widths`"):
        register_loss("toy_heads", inputs="logits", widths=True)
    with pytest.raises(ValueError, match="losses.toy_l1.weight"):
        DistillationObjective(SmallCNN(width=4), {"toy_l1": {"weight": float("inf")}})
