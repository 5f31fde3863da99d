import os
import stat

import matplotlib
import pytest
import torch

from latentgraph.atomic import save_figure, save_torch, write_atomic, write_csv, write_text

matplotlib.use("Agg")


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "report.md"
    write_text(target, "old")

    def crash(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(target, crash)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["report.md"]


def test_permissions_follow_the_umask_not_mkstemp(tmp_path):
    mode = stat.S_IMODE(os.stat(write_text(tmp_path / "a.txt", "x")).st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_csv_torch_and_figure_writers(tmp_path):
    write_csv(tmp_path / "t.csv", [{"a": 1, "b": 2}, {"a": 3, "b": 4}])
    assert (tmp_path / "t.csv").read_text().splitlines() == ["a,b", "1,2", "3,4"]
    with pytest.raises(ValueError, match="rows"):
        write_csv(tmp_path / "empty.csv", [])
    save_torch({"w": torch.ones(2)}, tmp_path / "sub" / "w.pt")
    assert torch.equal(torch.load(tmp_path / "sub" / "w.pt", weights_only=True)["w"], torch.ones(2))
    import matplotlib.pyplot as plt

    fig = plt.figure()
    save_figure(fig, tmp_path / "f.png")
    plt.close(fig)
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
