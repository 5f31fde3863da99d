import csv
import glob
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import latentgraph.train.objectives  # noqa: F401
import latentgraph.train.objectives.distillation  # noqa: F401  (registers "distill")
import latentgraph.train.objectives.isometric  # noqa: F401  (the shipped configs use every method)
import latentgraph.train.objectives.jacobian  # noqa: F401
from latentgraph.cli import main
from latentgraph.train.build import build_loaders
from latentgraph.train.config import DataConfig, load_config, parse_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def write(tmp_path, text, name="run.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


MINIMAL = "data: {name: digits}\nmodel: {name: small_cnn}\n"


@pytest.mark.parametrize("path", sorted(p for p in glob.glob(str(CONFIGS / "**" / "*.yaml"), recursive=True)
                                     if not p.startswith(str(CONFIGS / "zoo"))),  # zoo configs: tests/test_zoo.py
                         ids=lambda p: os.path.relpath(p, CONFIGS))
def test_shipped_configs_parse(path):
    assert load_config(path).epochs > 0


def test_cifar10_gkd_recipe_is_the_paper_setting():
    c = load_config(CONFIGS / "cifar10_wrn28_gkd.yaml")
    assert (c.model.name, c.model.kwargs["depth"], c.model.kwargs["width"]) == ("wrn", 28, 0.5)
    assert (c.teacher.name, c.teacher.kwargs["depth"], c.teacher.kwargs["width"]) == ("wrn", 28, 1)
    assert (c.optim.name, c.optim.lr, c.optim.momentum, c.optim.weight_decay) == ("sgd", 0.1, 0.9, 5e-4)
    assert (c.data.name, c.data.batch_size, c.epochs) == ("cifar10", 128, 200)
    assert (c.schedule.name, c.schedule.milestones, c.schedule.gamma) == ("multistep", [60, 120, 160], 0.2)
    assert c.method.name == "distill" and c.method.kwargs["losses"] == {"gkd": {"weight": 25.0}}


def test_defaults_and_yaml_float_without_dot(tmp_path):
    c = load_config(write(tmp_path, MINIMAL + "optim: {weight_decay: 5e-4}\n"))
    assert c.optim.weight_decay == 5e-4 and c.optim.name == "sgd" and c.method.name == "classification"
    assert c.teacher is None and c.data.batch_size == 128 and c.schedule.name == "none"


@pytest.mark.parametrize("text, error, message", [
    (MINIMAL + "epoch: 3\n", ValueError,
     r"run\.yaml: unknown key epoch \(did you mean epochs\? known keys in the top level: data"),
    (MINIMAL + "colour: red\n", ValueError, r"unknown key colour \(known keys in the top level"),
    (MINIMAL + "device: gpu\n", ValueError, r"run\.yaml: device must be a torch device such as cpu, cuda"),
    (MINIMAL + "optim: {momentun: 0.9}\n", ValueError, r"run\.yaml: unknown key optim\.momentun"),
    ("data: {name: digits, bath_size: 3}\nmodel: {name: small_cnn}\n", ValueError, "unknown key data.bath_size"),
    (MINIMAL + "teacher: {name: small_cnn, checkpont: x}\n", ValueError, "unknown key teacher.checkpont"),
    (MINIMAL + "method: {name: gkdd}\n", ValueError,
     r"method\.name is 'gkdd', not a registered method; registered: .*classification, distill"),
    ("data: {name: digits}\nmodel: {name: resnet50}\n", ValueError, "model.name must be one of .*wrn"),
    ("data: {name: svhn}\nmodel: {name: small_cnn}\n", ValueError, "data.name must be one of digits"),
    ("data: {name: cifar10}\nmodel: {name: wrn}\n", ValueError, "data.root is required"),
    (MINIMAL + "schedule: {name: multistep}\n", ValueError, "schedule.milestones must be a non-empty"),
    (MINIMAL + "schedule: {name: multistep, milestones: [-5, 0]}\n", ValueError,
     r"schedule\.milestones must be a non-empty, strictly increasing list of epochs ≥ 1, got \[-5, 0\]"),
    (MINIMAL + "schedule: {name: multistep, milestones: [3, 3]}\n", ValueError, "strictly increasing"),
    (MINIMAL + "schedule: {name: cosine, milestones: [3]}\n", ValueError, "only used by schedule.name: multistep"),
    (MINIMAL + f"seed: {2**70}\n", ValueError, r"run\.yaml: seed must be an integer in 0\.\.2\*\*63-1"),
    ("data: {name: digits, split_seed: -1}\nmodel: {name: small_cnn}\n", ValueError,
     r"run\.yaml: data\.split_seed must be an integer in 0\.\.2\*\*63-1, got -1"),
    (MINIMAL + "device: meta\n", ValueError, r"run\.yaml: device must be cpu, cuda\[:N\] or mps"),
    (MINIMAL + "distributed_timeout: 0\n", ValueError, "distributed_timeout must be a positive number of seconds"),
    (MINIMAL + "schedule: {name: step}\n", ValueError, "schedule.name must be one of"),
    (MINIMAL + "optim: {name: rmsprop}\n", ValueError, "optim.name must be one of sgd, adam; got 'rmsprop'$"),
    (MINIMAL + "optim: {name: adma}\n", ValueError, r"got 'adma' \(did you mean 'adam'\?\)"),
    (MINIMAL + "method: {name: distil}\n", ValueError, r"'distil', not a registered method \(did you mean 'distill'\?\)"),
    (MINIMAL + "optim: {lr: 0}\n", ValueError, "optim.lr must be positive"),
    (MINIMAL + "epochs: -1\n", ValueError, "epochs must be ≥ 0"),
    ("model: {name: small_cnn}\n", ValueError, "missing required key data"),
    ("data: {name: digits, batch_size: big}\nmodel: {name: small_cnn}\n", TypeError,
     r"run\.yaml: data\.batch_size must be an integer, got 'big'"),
    (MINIMAL + "seed: true\n", TypeError, "seed must be an integer"),
    (MINIMAL + "bn_recalibration: 1\n", TypeError, "bn_recalibration must be a bool"),
    (MINIMAL + "optim: {lr: fast}\n", TypeError, "optim.lr must be a number"),
    (MINIMAL + "schedule: {name: multistep, milestones: 60}\n", TypeError, "schedule.milestones must be a list"),
    (MINIMAL + "method: {name: classification, weights: {ce: heavy}}\n", TypeError, "method.weights.ce must be a number"),
    (MINIMAL + "data: 3\n", TypeError, "data must be a mapping"),
    ("- a\n- b\n", TypeError, "the top level must be a mapping"),
    ("data: [unclosed\n", ValueError, "not valid YAML"),
    ("!!python/object/apply:os.system ['echo hacked']\n", ValueError, "not valid YAML"),
])
def test_bad_configs_name_the_key_and_the_file(tmp_path, text, error, message):
    with pytest.raises(error, match=message):
        load_config(write(tmp_path, text))


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def tiny_run(tmp_path, name="run.yaml", **sections):
    config = {"seed": 0, "epochs": 1, "output": str(tmp_path / "out"),
              "data": {"name": "digits", "batch_size": 50, "per_class": 10, "eval_batch_size": 400},
              "model": {"name": "small_cnn", "kwargs": {"width": 4}},
              "optim": {"name": "adam", "lr": 0.01}}
    config.update(sections)
    return write(tmp_path, yaml.safe_dump(config), name)


def test_train_command_teacher_first_then_distill_then_resume(tmp_path, capsys):
    path = tiny_run(tmp_path, teacher={"name": "small_cnn", "kwargs": {"width": 8}},
                    method={"name": "distill", "kwargs": {"losses": {"gkd": {"layers": ["block2", "block3"]}}}})
    assert main(["train", "--config", str(path), "--no-progress"]) == 0
    out = tmp_path / "out"
    assert "eval/agreement" in capsys.readouterr().out
    for name in ("config.yaml", "metrics.csv", "model.pt", "checkpoints/last.pt", "teacher/model.pt",
                 "teacher/metrics.csv"):
        assert (out / name).is_file(), name
    assert torch.load(out / "teacher" / "model.pt", weights_only=True)["block1.0.weight"].shape[0] == 8
    teacher_written = (out / "teacher" / "model.pt").stat().st_mtime_ns
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 1 and {"train/ce", "train/gkd", "eval/accuracy", "eval/agreement"} <= rows[0].keys()

    # two more epochs from the checkpoint: the teacher is reused, the history continues
    longer = yaml.safe_load(path.read_text())
    longer["epochs"] = 3
    path.write_text(yaml.safe_dump(longer))
    assert main(["train", "--config", str(path), "--resume", "--no-progress"]) == 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3] and [int(r["step"]) for r in rows] == [2, 4, 6]
    assert (out / "teacher" / "model.pt").stat().st_mtime_ns == teacher_written


def test_train_command_loads_a_given_teacher_and_reports_bad_input(tmp_path, capsys):
    teacher_run = tiny_run(tmp_path, model={"name": "small_cnn", "kwargs": {"width": 8}})
    assert main(["train", "--config", str(teacher_run), "--output", str(tmp_path / "t"), "--no-progress"]) == 0
    student = tiny_run(tmp_path, teacher={"name": "small_cnn", "kwargs": {"width": 8},
                                          "checkpoint": str(tmp_path / "t" / "model.pt")},
                       method={"name": "distill", "kwargs": {"losses": {"kd": {}}}})
    assert main(["train", "--config", str(student), "--no-progress"]) == 0
    assert not (tmp_path / "out" / "teacher").exists()

    broken = tmp_path / "broken.pt"
    broken.write_bytes((tmp_path / "t" / "model.pt").read_bytes()[:100])
    cases = [
        (tiny_run(tmp_path, "a.yaml", teacher={"name": "small_cnn", "checkpoint": str(broken)},
                  method={"name": "distill", "kwargs": {"losses": {"kd": {}}}}), "broken.pt"),
        (tiny_run(tmp_path, "b.yaml", teacher={"name": "small_cnn", "kwargs": {"width": 16},
                                     "checkpoint": str(tmp_path / "t" / "model.pt")},
                  method={"name": "distill", "kwargs": {"losses": {"kd": {}}}}), "do not fit SmallCNN"),
        (tiny_run(tmp_path, "c.yaml", method={"name": "distill"}), "distils a teacher: add a `teacher:` section"),
        (tiny_run(tmp_path, "d.yaml", teacher={"name": "small_cnn", "checkpoint": "x.pt"}), "takes no teacher"),
        (tiny_run(tmp_path, "e.yaml", model={"name": "small_cnn", "kwargs": {"depth": 3}}), "bad model.kwargs"),
        (tiny_run(tmp_path, "f.yaml", method={"name": "classification", "kwargs": {"smoothing": 0.1}}),
         "bad method.kwargs"),
        (write(tmp_path, MINIMAL + "colour: red\n", "g.yaml"), "unknown key colour"),
    ]
    capsys.readouterr()
    for path, message in cases:
        assert main(["train", "--config", str(path), "--no-progress", "--overwrite"]) == 2
        err = capsys.readouterr().err
        assert message in err, (message, err)
        assert path.name in err or message in ("broken.pt", "do not fit SmallCNN")  # these name the weights file
    assert main(["train", "--config", str(teacher_run), "--output", str(tmp_path / "fresh"), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume: no checkpoint" in err and "last.pt" in err and "without --resume" in err
    assert not (tmp_path / "fresh").exists()  # nothing written for a run that could not start


def test_resume_after_a_stop_while_the_teacher_trained(tmp_path, capsys):
    path = tiny_run(tmp_path, teacher={"name": "small_cnn", "kwargs": {"width": 8}},
                    method={"name": "distill", "kwargs": {"losses": {"kd": {}}}})
    assert main(["train", "--config", str(path), "--no-progress"]) == 0
    out = tmp_path / "out"
    # as if stopped during the teacher's run: its checkpoint exists, its weights and the student's run do not
    for name in ("teacher/model.pt", "model.pt", "checkpoints/last.pt", "metrics.csv"):
        (out / name).unlink()
    assert main(["train", "--config", str(path), "--resume", "--no-progress"]) == 0
    assert (out / "teacher" / "model.pt").is_file() and (out / "checkpoints" / "last.pt").is_file()
    assert [int(r["epoch"]) for r in csv.DictReader(open(out / "metrics.csv"))] == [1]
    assert "starting the student" in capsys.readouterr().err


def test_cifar_config_builds_loaders_and_trains(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in [(f"data_batch_{i}", 6) for i in range(1, 6)] + [("test_batch", 4)]:
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"labels": (np.arange(n) % 2).tolist()}, f)
    data = DataConfig(name="cifar10", root=str(tmp_path), batch_size=4, per_class=5)
    train, test = build_loaders(data, seed=0)
    assert len(train.dataset) == 10 and len(test.dataset) == 4
    x, y = next(iter(train))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
    config = parse_config({"data": {"name": "cifar10", "root": str(tmp_path), "batch_size": 5, "per_class": 5},
                           "model": {"name": "wrn", "kwargs": {"depth": 10, "width": 0.25, "num_classes": 2}},
                           "epochs": 1, "output": str(tmp_path / "out")})
    from latentgraph.train.run import run_config

    history = run_config(config, progress=False)["history"]
    assert history[0]["step"] == 2 and 0.0 <= history[0]["eval/accuracy"] <= 1.0


@pytest.mark.parametrize("model, message", [
    ({"name": "small_cnn", "kwargs": {"width": 4, "num_classes": 7}},
     "model must output one logit per class, B×10 for the labels 0..9 of digits, got (2, 7); set num_classes: 10"),
    ({"name": "small_cnn", "kwargs": {"width": 4, "in_channels": 3}}, "model does not run on digits inputs"),
])
def test_model_that_does_not_fit_the_data_fails_before_training(tmp_path, capsys, model, message):
    path = tiny_run(tmp_path, model=model)
    assert main(["train", "--config", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "run.yaml" in err, err
    assert not (tmp_path / "out" / "checkpoints").exists()


@pytest.mark.parametrize("method, term, option", [
    ("{name: isometric, kwargs: {beta: 0.1, layer: fc1}, weights: {isometry: 2.0}}", "isometry", "beta"),
    ("{name: distill, kwargs: {losses: {gkd: {weight: 25.0}}, layers: [block3]}, weights: {gkd: 2.0}}", "gkd",
     "losses.gkd.weight"),
])
def test_a_weight_set_in_two_places_says_where_it_moved(method, term, option):
    from latentgraph.models import SmallCNN, build_model as named
    from latentgraph.train.build import build_objective

    config = parse_config(yaml.safe_load(f"data: {{name: digits}}\nmodel: {{name: small_cnn}}\nmethod: {method}\n"
                                         + ("teacher: {name: small_cnn}\n" if "distill" in method else "")))
    model = named("mlp", in_features=64, hidden=[8], num_classes=10) if term == "isometry" else SmallCNN(width=4)
    teacher = SmallCNN(width=4) if term == "gkd" else None
    with pytest.raises(ValueError, match=rf"method.kwargs.{option} and by method.weights.{term}.*old effective"):
        build_objective(config.method, model, teacher, torch.rand(2, 1, 8, 8))


def test_a_weight_set_once_in_method_weights_replaces_the_default():
    from latentgraph.models import SmallCNN
    from latentgraph.train.build import build_objective

    config = parse_config(yaml.safe_load("data: {name: digits}\nmodel: {name: small_cnn}\nteacher: {name: small_cnn}\n"
                                         "method: {name: distill, kwargs: {layers: [block3]}, weights: {gkd: 2.0}}\n"))
    objective = build_objective(config.method, SmallCNN(width=4), SmallCNN(width=4), torch.rand(2, 1, 8, 8))
    assert objective.weights == {"gkd": 25.0} and config.method.weights == {"gkd": 2.0}
