"""A run's records tell the truth: resume with an edited config, a forgotten --resume,
stale temporaries, unusable output folders, one-line errors of `latentgraph train`."""
from __future__ import annotations

import os
import sys

import pytest
import torch
import yaml

from latentgraph.cli import main
from latentgraph.train import checkpoint as ckpt
from latentgraph.train.config import parse_config
from latentgraph.train.run import config_changes, run_config

RUN = {"seed": 0, "epochs": 1,
       "data": {"name": "digits", "batch_size": 50, "per_class": 5, "eval_batch_size": 400},
       "model": {"name": "small_cnn", "kwargs": {"width": 2}}, "optim": {"name": "adam", "lr": 0.01}}


def config_file(tmp_path, name="run.yaml", **changes):
    data = {**RUN, "output": str(tmp_path / "out")}
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            data[section] = {**data[section], field: value}
        else:
            data[section] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def train(*argv):
    return main(["train", "--no-progress", *map(str, argv)])


@pytest.fixture
def finished(tmp_path):
    """A finished one-epoch run in tmp_path/out."""
    assert train("--config", config_file(tmp_path)) == 0
    return tmp_path / "out"


@pytest.mark.parametrize("change, shown", [
    ({"optim__lr": 0.5}, "optim.lr 0.01 -> 0.5"),
    ({"seed": 3}, "seed 0 -> 3"),
    ({"optim__name": "sgd"}, "optim.name 'adam' -> 'sgd'"),
])
def test_resume_with_a_changed_recipe_is_refused_listing_the_difference(finished, tmp_path, capsys, change, shown):
    recorded = (finished / "config.yaml").read_text()
    weights = (finished / "checkpoints" / "last.pt").read_bytes()
    capsys.readouterr()
    assert train("--config", config_file(tmp_path, "edited.yaml", epochs=2, **change), "--resume") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and shown in err and "cannot resume" in err and "Traceback" not in err
    assert "epochs" not in err.split("(a resume may change")[0]  # an allowed change is not listed as refused
    assert (finished / "config.yaml").read_text() == recorded  # the record is not rewritten
    assert (finished / "checkpoints" / "last.pt").read_bytes() == weights


def test_resume_applies_an_allowed_change_and_records_it(finished, tmp_path, capsys):
    assert train("--config", config_file(tmp_path, epochs=2), "--resume") == 0
    assert yaml.safe_load((finished / "config.yaml").read_text())["epochs"] == 2
    assert "resumed with epochs 1 -> 2" in (finished / "resumes.log").read_text()
    assert "resuming with changed epochs 1 -> 2" in capsys.readouterr().err


def test_config_changes_lists_nested_keys_and_ignores_output():
    a = parse_config({**RUN, "output": "x"})
    b = parse_config({**RUN, "output": "y", "optim": {"name": "sgd", "lr": 0.01}, "data": {**RUN["data"],
                                                                                        "batch_size": 7}})
    assert config_changes(a, b) == [("data.batch_size", 50, 7), ("optim.name", "adam", "sgd")]


def test_a_fresh_run_into_a_folder_with_a_run_is_refused_unless_overwrite(finished, tmp_path, capsys):
    weights = (finished / "model.pt").read_bytes()
    capsys.readouterr()
    assert train("--config", config_file(tmp_path, seed=1)) == 2
    err = capsys.readouterr().err
    assert "already holds a run (checkpoints/last.pt, model.pt); continue it with --resume" in err
    assert (finished / "model.pt").read_bytes() == weights
    (finished / "resumes.log").write_text("old\n")
    assert train("--config", config_file(tmp_path, seed=1), "--overwrite") == 0
    assert (finished / "model.pt").read_bytes() != weights and not (finished / "resumes.log").exists()
    assert yaml.safe_load((finished / "config.yaml").read_text())["seed"] == 1
    assert train("--config", config_file(tmp_path), "--overwrite", "--resume") == 2
    assert "give one" in capsys.readouterr().err


def test_stale_temporaries_of_killed_writes_are_removed_on_resume(finished, tmp_path):
    stale = [finished / "checkpoints" / ".last.pt.x1y2.tmp", finished / ".model.pt.ab.tmp"]
    for path in stale:
        path.write_bytes(b"\0" * 1000)
    keep = finished / "checkpoints" / "notes.txt"
    keep.write_text("mine")
    assert train("--config", config_file(tmp_path, epochs=2), "--resume") == 0
    assert not any(path.exists() for path in stale) and keep.exists()


def test_a_flipped_byte_in_the_runs_checkpoint_is_reported_on_resume(finished, tmp_path, capsys):
    last = finished / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    marker = state["model"]["block1.0.weight"].flatten()[:4].numpy().tobytes()
    data = bytearray(last.read_bytes())
    data[data.index(marker) + 2] ^= 0x10
    last.write_bytes(bytes(data))
    capsys.readouterr()
    assert train("--config", config_file(tmp_path, epochs=2), "--resume") == 2
    assert "is corrupt: its content does not match the checksum" in capsys.readouterr().err


def _unwritable_cases(tmp_path):
    existing_file = tmp_path / "a_file"
    existing_file.write_text("x")
    cases = [(existing_file, "is an existing file, not a folder"),
             (existing_file / "sub", "lies under"),
             (tmp_path / ("n" * 300), "cannot be written")]
    if os.geteuid() != 0 and sys.platform != "win32":  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        cases.append((locked / "out", "cannot be written"))
    return cases


def test_an_unusable_output_folder_is_one_line_before_any_work(tmp_path, capsys):
    for output, phrase in _unwritable_cases(tmp_path):
        assert train("--config", config_file(tmp_path), "--output", output) == 2, output
        err = capsys.readouterr().err
        assert phrase in err and err.count("\n") == 1, err


@pytest.mark.parametrize("change, phrase", [
    ({"device": "mps"}, "no MPS"),
    ({"model": {"name": "small_cnn", "kwargs": {"width": 1_000_000}}}, "does not fit in memory"),
])
def test_an_unavailable_device_or_a_model_too_large_is_one_line(tmp_path, capsys, change, phrase):
    if "device" in change and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    assert train("--config", config_file(tmp_path, **change)) == 2
    err = capsys.readouterr().err
    assert phrase in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_run_config_refuses_a_fresh_run_over_an_interrupted_teacher(tmp_path):
    config = parse_config({**RUN, "output": str(tmp_path / "out"), "method": {"name": "distill"},
                           "teacher": {"name": "small_cnn", "kwargs": {"width": 2}}})
    (tmp_path / "out" / "teacher" / "checkpoints").mkdir(parents=True)
    ckpt.save_atomic({"x": torch.ones(1)}, tmp_path / "out" / "teacher" / "checkpoints" / "last.pt")
    with pytest.raises(ValueError, match=r"teacher' already holds a run \(checkpoints/last\.pt\)"):
        run_config(config, progress=False)
