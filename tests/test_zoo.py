"""Model zoos: configs, training to a criterion, resuming model by model, and
the `zoo` / `rank` commands on a zoo of a few tiny models written here."""
import json
from pathlib import Path

import pytest
import torch

from latentgraph.cli import main
from latentgraph.generalization import load_zoo, load_zoo_config, train_zoo
from latentgraph.generalization.report import measure_zoo, parse_spec, rank_measures
from latentgraph.generalization.zoo import HYPERPARAMETERS, noisy_labels

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "zoo"

TINY = {"name": "tiny", "data": "digits", "model": "mlp", "seed": 0, "stop_loss": 1.0, "max_epochs": 2,
        "grid": {"width": [4, 8], "label_noise": [0.0, 0.2], "lr": [0.01]}}


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zoo")
    train_zoo(load_zoo_config(TINY), folder)
    return folder


def test_zoo_records_hyperparameters_accuracies_and_weights(tiny_zoo):
    zoo = load_zoo(tiny_zoo)
    assert [m.id for m in zoo.models] == ["m000", "m001", "m002", "m003"]
    record = zoo.models[3].record
    assert record["hparams"]["width"] == 8 and record["hparams"]["label_noise"] == 0.2
    assert 0 <= record["test_acc"] <= 1 and record["epochs"] <= 2
    assert record["converged"] == (record["train_loss"] <= 1.0)
    net = zoo.network(zoo.models[3])
    x, y = zoo.training_data(zoo.models[3])
    with torch.no_grad():
        accuracy = float((net(x).argmax(1) == y).float().mean())
    assert accuracy == pytest.approx(record["train_acc"])  # the stored weights and the noisy labels trained on
    assert zoo.models[3].gap == pytest.approx(record["train_acc"] - record["test_acc"])


def test_zoo_resumes_model_by_model(tmp_path):
    config = load_zoo_config(TINY)
    train_zoo(config, tmp_path, limit=2)
    done = sorted(p.parent.name for p in tmp_path.glob("models/*/record.json"))
    assert len(done) == 2
    first = {name: (tmp_path / "models" / name / "record.json").read_text() for name in done}
    train_zoo(config, tmp_path)
    assert len(list(tmp_path.glob("models/*/record.json"))) == 4
    assert all((tmp_path / "models" / n / "record.json").read_text() == text for n, text in first.items())
    other = dict(TINY, seed=1)
    with pytest.raises(ValueError, match="different zoo"):
        train_zoo(load_zoo_config(other), tmp_path)


def test_zoo_config_errors_name_the_key(tmp_path):
    with pytest.raises(ValueError, match="unknown key"):
        load_zoo_config({**TINY, "epochs": 3})
    with pytest.raises(ValueError, match="unknown hyperparameter 'momentum'"):
        load_zoo_config({**TINY, "grid": {"momentum": [0.9]}})
    with pytest.raises(ValueError, match=r"grid.dropout` values must lie in \[0, 1\)"):
        load_zoo_config({**TINY, "grid": {"dropout": [1.5]}})
    with pytest.raises(ValueError, match="needs `data_root`"):
        load_zoo_config({**TINY, "data": "cifar10"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_zoo_config(bad)
    with pytest.raises(ValueError, match="has no option 'k'"):
        parse_spec("margin:k=3")


@pytest.mark.parametrize("name", ["digits", "mnist5k", "cifar10"])
def test_shipped_zoo_configs_parse(name):
    config = load_zoo_config(CONFIGS / f"{name}.yaml")
    assert len(config.points()) >= 48 and set(config.grid) == set(HYPERPARAMETERS)


def test_noisy_labels_flip_the_asked_share_to_other_classes():
    y = torch.arange(100) % 10
    noisy = noisy_labels(y, 0.2, seed=3, num_classes=10)
    assert int((noisy != y).sum()) == 20
    assert torch.equal(noisy, noisy_labels(y, 0.2, seed=3, num_classes=10))


def test_rank_measures_on_the_tiny_zoo(tiny_zoo):
    data = measure_zoo(load_zoo(tiny_zoo), ["margin", "label_variation:k=5,batch_size=50", "distance_from_init"],
                       max_samples=100)
    assert data.hparams == ["label_noise", "width"]
    table = rank_measures(data)
    assert [row["measure"] for row in table] == data.specs
    for row in table:
        assert -1 <= row["tau"] <= 1 and 0 <= row["cmi"] <= 1
    assert all(r["distance_from_init"] > 0 for r in data.rows)


def test_zoo_and_rank_commands(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(json.dumps(TINY))  # JSON is YAML
    assert main(["-q", "zoo", "--config", str(config), "--output", str(tmp_path / "z"), "--limit", "3"]) == 0
    assert main(["-q", "zoo", "--config", str(config), "--output", str(tmp_path / "z")]) == 0
    code = main(["-q", "rank", "--zoo", str(tmp_path / "z"), "--measures", "margin", "path_norm",
                 "--max-samples", "50"])
    assert code == 0
    report = tmp_path / "z" / "ranking"
    assert "| `margin` | margin |" in (report / "ranking.md").read_text()
    assert (report / "plots" / "path_norm.png").stat().st_size > 0
    assert main(["-q", "rank", "--zoo", str(tmp_path), "--measures", "margin"]) == 2  # not a zoo
    assert main(["-q", "rank", "--zoo", str(tmp_path / "z"), "--measures", "accuracy"]) == 2
