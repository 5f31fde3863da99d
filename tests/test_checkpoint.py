import os
import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from latentgraph.train import checkpoint as ckpt


class NotAllowed:
    """A class weights-only loading refuses."""


def test_save_atomic_round_trip(tmp_path):
    path = ckpt.save_atomic({"w": torch.arange(3.0), "n": 4}, tmp_path / "sub" / "a.pt")
    assert path == tmp_path / "sub" / "a.pt"
    loaded = ckpt.load_file(path)
    assert torch.equal(loaded["w"], torch.arange(3.0)) and loaded["n"] == 4
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.pt"]


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = ckpt.save_atomic({"good": torch.ones(2)}, tmp_path / "last.pt")

    def partial_save(obj, f):
        f.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", partial_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_atomic({"new": torch.zeros(2)}, path)
    monkeypatch.undo()
    assert torch.equal(ckpt.load_file(path)["good"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_interrupted_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = ckpt.save_atomic({"good": torch.ones(2)}, tmp_path / "last.pt")

    def interrupted(obj, f):
        f.write(b"PK")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_atomic({"new": torch.zeros(2)}, path)
    monkeypatch.undo()
    assert torch.equal(ckpt.load_file(path)["good"], torch.ones(2))


def test_truncated_and_corrupt_files_name_the_file(tmp_path):
    path = ckpt.save_atomic({"w": torch.randn(100)}, tmp_path / "run.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"run\.pt.*corrupt, truncated"):
        ckpt.load_file(path)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00\x01not a torch file")
    with pytest.raises(ValueError, match="garbage.pt"):
        ckpt.load_checkpoint(garbage)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        ckpt.load_file(tmp_path / "missing.pt")


def test_weights_only_refuses_arbitrary_objects(tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save({"obj": NotAllowed()}, path)
    with pytest.raises(ValueError, match="weights-only"):
        ckpt.load_file(path)


def test_load_checkpoint_checks_format_and_version(tmp_path):
    plain = ckpt.save_atomic({"weight": torch.ones(1)}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="not a latentgraph trainer checkpoint"):
        ckpt.load_checkpoint(plain)
    future = ckpt.save_atomic({"format": ckpt.FORMAT, "version": 99}, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="layout version 99"):
        ckpt.load_checkpoint(future)


def test_load_model_weights_from_trainer_checkpoint_or_state_dict(tmp_path):
    source = nn.Linear(3, 2)
    bare = ckpt.save_atomic(source.state_dict(), tmp_path / "bare.pt")
    full = ckpt.save_atomic({"format": ckpt.FORMAT, "version": ckpt.VERSION, "model": source.state_dict()},
                            tmp_path / "full.pt")
    for path in (bare, full):
        target = ckpt.load_model_weights(nn.Linear(3, 2), path)
        assert torch.equal(target.weight, source.weight) and torch.equal(target.bias, source.bias)
    with pytest.raises(ValueError, match=r"bare\.pt.*do not fit Linear"):
        ckpt.load_model_weights(nn.Linear(4, 2), bare)
    listed = ckpt.save_atomic([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="neither a trainer checkpoint nor a state_dict"):
        ckpt.load_model_weights(nn.Linear(3, 2), listed)


def _draws(loader):
    return (random.random(), float(np.random.rand()), torch.rand(2).tolist(),
            torch.randperm(10, generator=loader.generator).tolist())


def test_rng_state_round_trip_through_a_file(tmp_path):
    loader = DataLoader(TensorDataset(torch.zeros(4)), shuffle=True, generator=torch.Generator().manual_seed(1))
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    path = ckpt.save_atomic(ckpt.rng_state(loader), tmp_path / "rng.pt")
    first = _draws(loader)
    random.seed(9), np.random.seed(9), torch.manual_seed(9), loader.generator.manual_seed(9)
    ckpt.set_rng_state(ckpt.load_file(path), loader)
    assert _draws(loader) == first


def test_rng_state_with_a_different_loader_layout_is_an_error():
    with_generator = DataLoader(TensorDataset(torch.zeros(4)), shuffle=True, generator=torch.Generator())
    state = ckpt.rng_state(with_generator)
    with pytest.raises(ValueError, match="1 DataLoader generator state"):
        ckpt.set_rng_state(state, DataLoader(TensorDataset(torch.zeros(4)), shuffle=True))


def test_resolve_checkpoint(tmp_path):
    assert ckpt.resolve_checkpoint(tmp_path, None) == tmp_path / "last.pt"
    assert ckpt.resolve_checkpoint(True, tmp_path) == tmp_path / "last.pt"
    assert ckpt.resolve_checkpoint(tmp_path / "x.pt", None) == tmp_path / "x.pt"
    with pytest.raises(ValueError, match="checkpoint_dir"):
        ckpt.resolve_checkpoint(True, None)
    with pytest.raises(TypeError, match="resume"):
        ckpt.resolve_checkpoint(3, None)


def test_written_files_get_the_permissions_of_a_plain_open(tmp_path):
    umask = os.umask(0o022)
    try:
        ckpt.save_atomic({"a": torch.ones(1)}, tmp_path / "w.pt")
        ckpt.write_text_atomic(tmp_path / "m.csv", "a,b\n")
    finally:
        os.umask(umask)
    assert oct((tmp_path / "w.pt").stat().st_mode & 0o777) == oct(0o644)  # mkstemp alone gives 0o600
    assert oct((tmp_path / "m.csv").stat().st_mode & 0o777) == oct(0o644)
    assert (tmp_path / "m.csv").read_text() == "a,b\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def _trainer_state(**extra):
    return {"format": ckpt.FORMAT, "version": ckpt.VERSION, "model": {"w": torch.full((64,), 1.2345)}, **extra}


def test_a_flipped_bit_in_a_tensor_is_a_corrupt_checkpoint(tmp_path):
    path = ckpt.save_atomic(_trainer_state(step=3), tmp_path / "last.pt")
    assert torch.equal(ckpt.load_checkpoint(path)["model"]["w"], torch.full((64,), 1.2345))
    data = bytearray(path.read_bytes())
    at = data.index(torch.tensor([1.2345]).numpy().tobytes()) + 4 * 10  # inside the tensor's bytes
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    assert ckpt.load_file(path)["model"]["w"][10] != 1.2345  # torch's zip reader does not notice
    with pytest.raises(ValueError, match=r"last\.pt.*is corrupt: its content does not match the checksum"):
        ckpt.load_checkpoint(path)


def test_checksum_covers_numbers_and_tolerates_tuples_turned_lists():
    state = _trainer_state(step=3, rng=(1, (2, 3)))
    assert ckpt.checksum(state) == ckpt.checksum({**state, "rng": [1, [2, 3]]})
    assert ckpt.checksum(state) != ckpt.checksum({**state, "step": 4})
    assert ckpt.checksum(state) == ckpt.checksum({**state, "checksum": "anything"})


def test_a_refused_object_is_one_line_without_torchs_weights_only_false_advice(tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save({"obj": NotAllowed()}, path)
    with pytest.raises(ValueError) as error:
        ckpt.load_file(path)
    message = str(error.value)
    assert "\n" not in message and "weights_only=False" not in message and "False" not in message
    assert "NotAllowed" in message and "pickled.pt" in message


def test_stale_temporaries_of_the_run_are_removed_and_others_kept(tmp_path):
    (tmp_path / ".last.pt.abc123.tmp").write_bytes(b"x" * 100)
    (tmp_path / ".model.pt.zz.tmp").write_bytes(b"x")
    (tmp_path / "notes.tmp").write_bytes(b"keep")
    removed = ckpt.remove_stale_temporaries(tmp_path, ["last.pt"])
    assert [p.name for p in removed] == [".last.pt.abc123.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.pt.zz.tmp", "notes.tmp"]
    assert ckpt.remove_stale_temporaries(tmp_path / "absent", ["last.pt"]) == []


def test_an_optimizer_of_another_kind_is_refused_before_it_crashes_a_step(tmp_path):
    params = [nn.Parameter(torch.ones(2))]
    adam = torch.optim.Adam(params).state_dict()
    with pytest.raises(ValueError, match=r"another optimizer \(SGD settings \['dampening'"):
        ckpt.check_optimizer_fits(adam, torch.optim.SGD(params, lr=0.1), tmp_path / "last.pt")
    ckpt.check_optimizer_fits(torch.optim.SGD(params, lr=0.5).state_dict(), torch.optim.SGD(params, lr=0.1), "x")
