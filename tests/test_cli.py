"""Tests of the `latentgraph` command and `latentgraph analyze`."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from latentgraph import cli


def test_help_lists_each_command_with_a_description(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--help"])
    assert stop.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # undo the help's line wrapping
    assert "analyze" in out and "report how its layers separate the classes" in out
    for name in cli.COMMANDS:
        assert name in out


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"latentgraph {cli.version()}"
    assert cli.version() != "unknown"


def test_no_command_prints_help(capsys):
    assert cli.main([]) == cli.EXIT_BAD_INPUT
    assert "usage: latentgraph" in capsys.readouterr().out


def test_broken_command_does_not_break_the_others(monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "broken", "latentgraph.commands.no_such_module")
    monkeypatch.setitem(cli.COMMANDS, "incomplete", "latentgraph.seed")  # lacks HELP, configure, run
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "unavailable: ModuleNotFoundError" in out
    assert "lacks HELP, configure, run" in out
    assert "report how its layers separate the classes" in out
    with pytest.raises(SystemExit) as stop:
        cli.main(["analyze", "--help"])
    assert stop.value.code == 0 and "--checkpoint" in capsys.readouterr().out
    assert cli.main(["broken"]) == 1
    assert "command 'broken' is unavailable" in capsys.readouterr().err


def test_only_the_named_command_is_imported(monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "broken", "latentgraph.commands.no_such_module")
    parser = cli.build_parser(["analyze", "--k", "3"])
    args = parser.parse_args(["analyze", "--k", "3"])
    assert args.k == 3 and callable(args._run)


def _read_table(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _check_table(rows, layers, batch_size, k):
    assert [row["layer"] for row in rows] == layers
    for row in rows:
        edges, degree = float(row["edges_mean"]), float(row["mean_degree_mean"])
        # union symmetrization keeps between B·k/2 and B·k undirected edges
        assert batch_size * k / 2 <= edges <= batch_size * k
        assert degree == pytest.approx(2 * edges / batch_size)
        assert 0.0 <= float(row["label_variation_normalized_mean"]) <= 1.0
        assert float(row["label_variation_mean"]) >= 0.0


def test_analyze_default_end_to_end(tmp_path, capsys):
    out = tmp_path / "report"
    assert cli.main(["analyze", "--epochs", "1", "--batches", "2", "--batch-size", "40", "--k", "5",
                     "--output", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"report.md", "table.csv", "graphs.pt", "label_variation.png",
                                              "latent_graphs.png", ".latentgraph-outputs.json"}
    rows = _read_table(out / "table.csv")
    _check_table(rows, ["input", "block1", "block2", "block3", "pool", "head"], batch_size=40, k=5)
    captured = capsys.readouterr()
    assert "normalized LV" in captured.out and "head" in captured.out  # the terminal table
    assert "held-out accuracy" in captured.err and "wrote markdown" in captured.err
    report = (out / "report.md").read_text()
    assert "scikit-learn digits" in report and "latentgraph analyze --epochs 1" in report
    assert len(torch.load(out / "graphs.pt", weights_only=True)["graphs"]["head"]) == 2


@pytest.mark.slow  # the full default: ~4 s of CPU idle, far more on a busy machine; small: test_analyze_default_end_to_end
def test_analyze_default_label_variation_falls_with_depth(tmp_path):
    assert cli.main(["analyze", "--output", str(tmp_path), "--no-plots"]) == 0
    rows = {row["layer"]: float(row["label_variation_normalized_mean"]) for row in _read_table(tmp_path / "table.csv")}
    assert rows["head"] < rows["block3"] < rows["block1"] < rows["input"]


MODEL_FILE = """
from collections import OrderedDict
from torch import nn

def make():
    return nn.Sequential(OrderedDict(fc=nn.Linear(6, 8), act=nn.ReLU(), out=nn.Linear(8, 3)))
"""


@pytest.fixture
def user_files(tmp_path):
    generator = np.random.default_rng(0)
    y = np.arange(60) % 3
    x = generator.normal(size=(60, 6)).astype(np.float32) + y[:, None]
    np.savez(tmp_path / "data.npz", x=x, y=y)
    (tmp_path / "mynets.py").write_text(MODEL_FILE)
    namespace: dict = {}
    exec(MODEL_FILE, namespace)
    torch.save(namespace["make"]().state_dict(), tmp_path / "weights.pt")
    return tmp_path


def test_analyze_user_data_model_and_checkpoint(user_files, capsys):
    out = user_files / "out"
    code = cli.main(["analyze", "--data", str(user_files / "data.npz"), "--model", f"{user_files / 'mynets.py'}:make",
                     "--checkpoint", str(user_files / "weights.pt"), "--layers", "input,act,out",
                     "--batch-size", "30", "--batches", "2", "--k", "4", "--no-plots", "--output", str(out)])
    assert code == 0
    _check_table(_read_table(out / "table.csv"), ["input", "act", "out"], batch_size=30, k=4)
    err = capsys.readouterr().err
    assert "loaded checkpoint" in err and "training for" not in err


def _fails(args, capsys, phrase):
    assert cli.main(["analyze", "--no-plots", *args]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "ERROR" in err and phrase in err, err


def test_npz_without_labels(tmp_path, capsys):
    np.savez(tmp_path / "bad.npz", x=np.zeros((10, 3), dtype=np.float32))
    _fails(["--data", str(tmp_path / "bad.npz"), "--output", str(tmp_path)], capsys, "missing ['y']")


def test_missing_npz(tmp_path, capsys):
    _fails(["--data", str(tmp_path / "none.npz"), "--output", str(tmp_path)], capsys, "no such file")


def test_model_spec_without_factory(tmp_path, capsys):
    _fails(["--model", "mynets", "--output", str(tmp_path)], capsys, "module:factory")


def test_model_module_that_does_not_exist(tmp_path, capsys):
    _fails(["--model", "no_such_module_xyz:make", "--output", str(tmp_path)], capsys, "cannot import 'no_such_module_xyz'")


def test_model_factory_that_does_not_exist(user_files, capsys):
    _fails(["--model", f"{user_files / 'mynets.py'}:build", "--output", str(user_files)], capsys, "no callable 'build'")


def test_unknown_layer(user_files, capsys):
    _fails(["--data", str(user_files / "data.npz"), "--model", f"{user_files / 'mynets.py'}:make",
            "--checkpoint", str(user_files / "weights.pt"), "--layers", "input,conv1", "--k", "3",
            "--batch-size", "20", "--output", str(user_files)], capsys, "unknown layer 'conv1'")


def test_missing_checkpoint(user_files, capsys):
    _fails(["--data", str(user_files / "data.npz"), "--model", f"{user_files / 'mynets.py'}:make",
            "--checkpoint", str(user_files / "none.pt"), "--output", str(user_files)], capsys, "--checkpoint")


def test_corrupt_checkpoint(user_files, capsys):
    (user_files / "corrupt.pt").write_bytes(b"not a torch file")
    _fails(["--data", str(user_files / "data.npz"), "--model", f"{user_files / 'mynets.py'}:make",
            "--checkpoint", str(user_files / "corrupt.pt"), "--output", str(user_files)], capsys, "corrupt")


def test_checkpoint_of_another_model(user_files, capsys):
    torch.save({"fc.weight": torch.zeros(2, 2)}, user_files / "other.pt")
    _fails(["--data", str(user_files / "data.npz"), "--model", f"{user_files / 'mynets.py'}:make",
            "--checkpoint", str(user_files / "other.pt"), "--output", str(user_files)], capsys, "do not fit")


def test_negative_k(tmp_path, capsys):
    _fails(["--k", "0", "--output", str(tmp_path)], capsys, "--k must be at least 1")


def test_zero_threads(tmp_path, capsys):
    _fails(["--threads", "0", "--output", str(tmp_path)], capsys, "--threads must be at least 1")


def test_k_not_below_batch_size_fails_before_training(tmp_path, capsys):
    _fails(["--k", "100", "--batch-size", "100", "--output", str(tmp_path)], capsys, "--k must be below --batch-size")


def test_batch_size_larger_than_the_analysed_data(user_files, capsys):
    _fails(["--data", str(user_files / "data.npz"), "--model", f"{user_files / 'mynets.py'}:make",
            "--checkpoint", str(user_files / "weights.pt"), "--batch-size", "61", "--k", "3",
            "--output", str(user_files)], capsys, "--batch-size must be at most the 60 samples")


def test_unknown_layer_is_reported_before_any_training(tmp_path, capsys):
    assert cli.main(["analyze", "--layers", "input,blokc1", "--output", str(tmp_path)]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "--layers: unknown layer 'blokc1'" in err and "training for" not in err, err


@pytest.mark.parametrize("device, phrase", [("gpu", "--device must be cpu, cuda"),
                                            ("cuda:99", "--device cuda:99")])
def test_bad_device(tmp_path, capsys, device, phrase):
    _fails(["--device", device, "--output", str(tmp_path)], capsys, phrase)


def test_model_factory_that_needs_arguments(tmp_path, capsys):
    _fails(["--model", "torch.nn:Linear", "--output", str(tmp_path)], capsys,
           "--model: calling torch.nn:Linear failed")


@pytest.mark.parametrize("error, code, phrase", [
    (KeyboardInterrupt(), cli.EXIT_INTERRUPTED, "--output runs/x --resume"),
    (FloatingPointError("non-finite loss at step 3: ce=nan"), 1, "non-finite loss at step 3: ce=nan (lower the"),
])
def test_train_stopped_by_ctrl_c_or_divergence_says_so_without_traceback(tmp_path, monkeypatch, capsys,
                                                                        error, code, phrase):
    import latentgraph.train.run

    def stop(*args, **kwargs):
        raise error

    monkeypatch.setattr(latentgraph.train.run, "run_config", stop)
    path = tmp_path / "run.yaml"
    path.write_text("data: {name: digits}\nmodel: {name: small_cnn}\noutput: runs/x\n")
    assert cli.main(["train", "--config", str(path)]) == code
    err = capsys.readouterr().err
    assert phrase in err and "Traceback" not in err, err


def test_non_positive_learning_rate(tmp_path, capsys):
    _fails(["--lr", "0", "--output", str(tmp_path)], capsys, "--lr must be positive, got 0.0")


def _user_analysis(user_files, *extra):
    return cli.main(["analyze", "--data", str(user_files / "data.npz"), "--model", f"{user_files / 'mynets.py'}:make",
                     "--checkpoint", str(user_files / "weights.pt"), "--batch-size", "30", "--batches", "1",
                     "--k", "4", "--no-plots", *map(str, extra)])


def test_analyze_refuses_report_files_it_did_not_write_unless_overwrite(user_files, capsys):
    out = user_files / "out"
    out.mkdir()
    (out / "report.md").write_text("my own notes")
    assert _user_analysis(user_files, "--output", out) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "holds report.md, which latentgraph did not write; pass --overwrite" in err and err.count("\n") == 1
    assert (out / "report.md").read_text() == "my own notes" and not (out / "table.csv").exists()
    assert _user_analysis(user_files, "--output", out, "--overwrite") == 0
    assert _user_analysis(user_files, "--output", out) == 0  # its own files now: replaced without asking


@pytest.mark.parametrize("command", ["analyze", "saliency"])
def test_an_output_that_is_a_file_is_one_line_before_any_work(tmp_path, capsys, command):
    (tmp_path / "taken").write_text("x")
    for output, phrase in [(tmp_path / "taken", "is an existing file"), (tmp_path / "taken" / "sub", "lies under")]:
        assert cli.main([command, "--epochs", "0", "--output", str(output)]) == cli.EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert phrase in err and err.count("\n") == 1 and "training" not in err, err


def test_a_model_that_does_not_fit_the_data_is_one_line(user_files, capsys):
    (user_files / "wrong.py").write_text("from torch import nn\ndef make():\n    return nn.Linear(5, 3)\n")
    _fails(["--data", str(user_files / "data.npz"), "--model", f"{user_files / 'wrong.py'}:make",
            "--output", str(user_files / "o")], capsys, "does not run on the data's inputs of shape (6,)")
