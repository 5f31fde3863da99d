"""Evaluation helpers restore the train/eval flag of every sub-module, not only the top one:
a sub-module the user put in eval mode (a frozen backbone) comes back in eval mode."""
import pytest
import torch
from torch import nn

import latentgraph as lg
from latentgraph.train import evaluate
from latentgraph.train.batchnorm import recalibrate_batchnorm
from latentgraph.train.objectives.distillation import teacher_agreement


def _model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.1), nn.Linear(6, 3))
    model.train()
    model[1].eval()  # a frozen part inside a model in training mode
    return model


def _flags(model):
    return [m.training for m in model.modules()]


def _data():
    x = torch.randn(12, 4)
    return x, torch.arange(12) % 3


@pytest.mark.parametrize("name", ["analyze", "evaluate", "recalibrate_batchnorm", "teacher_agreement",
                                  "predict", "extract_features"])
def test_every_sub_module_flag_is_restored(name):
    model = _model()
    before = _flags(model)
    x, y = _data()
    loader = [(x, y)]
    calls = {
        "analyze": lambda: lg.analyze(model, x, y, k=3, batch_size=12, num_batches=1),
        "evaluate": lambda: evaluate(model, loader),
        "recalibrate_batchnorm": lambda: recalibrate_batchnorm(model, loader),
        "teacher_agreement": lambda: teacher_agreement(model, _model(), loader),
        "predict": lambda: lg.robustness.predict(model, x),
        "extract_features": lambda: lg.eval.extract_features(model, x, layer="2"),
    }
    calls[name]()
    assert _flags(model) == before
    assert model.training and not model[1].training


def test_the_teacher_keeps_its_flags_too():
    teacher = _model()
    before = _flags(teacher)
    x, y = _data()
    teacher_agreement(_model(), teacher, [(x, y)])
    assert _flags(teacher) == before
