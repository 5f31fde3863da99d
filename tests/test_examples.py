"""Run the examples with small arguments, in-process."""
from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(monkeypatch, name, *args):
    monkeypatch.setattr(sys, "argv", [name, *args])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")


def test_analyze_your_model(monkeypatch, capsys, tmp_path):
    _run(monkeypatch, "analyze_your_model.py", "--epochs", "3", "--batches", "2", "--output", str(tmp_path))
    out = capsys.readouterr().out
    values = [float(v) for v in re.search(r"input → logits: (.*)", out).group(1).split(" → ")]
    assert len(values) == 4 and all(0 <= v <= 1 for v in values)
    assert values[-1] < values[0]  # a trained classifier separates the classes better than its input
    assert (tmp_path / "report.md").is_file() and (tmp_path / "latent_graphs.png").is_file()


def test_gnn_label_propagation(monkeypatch, capsys):
    _run(monkeypatch, "gnn_label_propagation.py", "--cnn-epochs", "2", "--gnn-epochs", "60")
    out = capsys.readouterr().out
    assert "30 labelled and 330 unlabelled digits" in out
    accuracy = {m.group(1).strip(): float(m.group(2)) for m in re.finditer(r"^(.*?) accuracy on unlabelled nodes: +([\d.]+) %", out, re.M)}
    assert len(accuracy) == 3, out
    assert all(10.0 < a <= 100.0 for a in accuracy.values())
    # labels spread along the latent graph of a trained CNN beat the pixel graph
    assert accuracy["GCN on the CNN's penultimate-layer graph"] > accuracy["GCN on the input-pixel graph"]


def _torchvision_usable() -> bool:
    try:
        import torchvision.models  # noqa: F401
    except Exception:  # absent, or built for another torch: it then fails at import
        return False
    return True


@pytest.mark.slow  # ~25 s: trains a ResNet-18 for one epoch on 80 images
@pytest.mark.skipif(not _torchvision_usable(), reason="needs torchvision built for the installed torch")
def test_analyze_resnet18(monkeypatch, capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        _run(monkeypatch, "analyze_resnet18.py", "--per-class", "10", "--epochs", "1", "--batch-size", "20", "--batches", "1",
             "--output", str(tmp_path))
    assert stop.value.code == 0
    rows = (tmp_path / "table.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["input", "layer1", "layer2", "layer3", "layer4", "fc"]


def test_analyze_resnet18_skips_cleanly_without_torchvision(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision now raises ImportError
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    with pytest.raises(SystemExit) as stop:
        _run(monkeypatch, "analyze_resnet18.py")
    assert stop.value.code == 0 and "skipped: torchvision is not usable" in capsys.readouterr().out
