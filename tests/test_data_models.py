import numpy as np
import pytest
import torch

from latentgraph.data import load_digits, load_npz, make_loader, per_class_subset
from latentgraph.models import MLP, SmallCNN


def test_small_cnn_sizes_and_named_blocks():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    teacher, student = SmallCNN(width=32), SmallCNN(width=16)
    assert 90_000 < count(teacher) < 98_000 and 22_000 < count(student) < 26_000
    assert count(teacher) / count(student) > 3.8
    for size in (8, 28):
        assert student(torch.rand(2, 1, size, size)).shape == (2, 10)
    assert {"block1", "block2", "block3", "pool", "head"} <= dict(student.named_children()).keys()
    with pytest.raises(ValueError, match="width"):
        SmallCNN(width=0)


def test_mlp_blocks_and_activation():
    model = MLP(64, hidden=(16, 8), activation="tanh")
    assert [n for n, _ in model.named_children()] == ["fc1", "fc2", "head"]
    assert isinstance(model.fc2[1], torch.nn.Tanh)
    with pytest.raises(ValueError, match="activation"):
        MLP(4, activation="gelu")


def test_digits_split_is_seeded_and_scaled():
    a, b = load_digits(seed=1), load_digits(seed=1)
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, load_digits(seed=2).x_train)
    assert 0 <= a.x_train.min() and a.x_train.max() <= 1 and a.y_train.dtype == torch.long


def test_per_class_subset_and_loader():
    x, y = torch.rand(60, 2), torch.arange(60) % 3
    xs, ys = per_class_subset(x, y, 4, seed=0)
    assert torch.bincount(ys).tolist() == [4, 4, 4]
    assert torch.equal(per_class_subset(x, y, 4, seed=0)[0], xs)
    with pytest.raises(ValueError, match="n_per_class"):
        per_class_subset(x, y, 21)
    first = [yb.tolist() for _, yb in make_loader(x, y, batch_size=8, seed=3)]
    assert first == [yb.tolist() for _, yb in make_loader(x, y, batch_size=8, seed=3)]


def test_load_npz_reads_and_rejects(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, x=np.random.rand(5, 1, 4, 4), y=np.arange(5))
    x, y = load_npz(good)
    assert x.dtype == torch.float32 and x.shape == (5, 1, 4, 4) and y.dtype == torch.long
    np.savez(tmp_path / "nolabels.npz", x=np.random.rand(5, 3))
    with pytest.raises(ValueError, match="missing \\['y'\\]"):
        load_npz(tmp_path / "nolabels.npz")
    np.savez(tmp_path / "floaty.npz", x=np.random.rand(5, 3), y=np.random.rand(5))
    with pytest.raises(TypeError, match="integer labels"):
        load_npz(tmp_path / "floaty.npz")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable"):
        load_npz(tmp_path / "broken.npz")
    with pytest.raises(ValueError, match="no such file"):
        load_npz(tmp_path / "absent.npz")


def test_loader_and_seed_reject_bad_arguments():
    from latentgraph.seed import seed_everything

    with pytest.raises(ValueError, match="same batch size"):
        make_loader(torch.rand(5, 2), torch.arange(4))
    with pytest.raises(TypeError, match="`y`"):
        make_loader(torch.rand(5, 2), [0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="`seed` must fit in 64 bits"):
        seed_everything(2**64)
    seed_everything(2**64 - 1)  # the largest seed torch accepts
