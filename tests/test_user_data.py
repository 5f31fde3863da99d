"""Users' data and models: image folders, .npy/.pt files, factory keyword arguments."""
import numpy as np
import pytest
import torch
from PIL import Image

from latentgraph import cli
from latentgraph.commands.analyze import parse_kwargs, parse_size
from latentgraph.data import load_image_folder, load_tensors

FACTORY_FILE = '''
from torch import nn


class Net(nn.Module):
    """torchvision style: named top-level children, flatten inside forward."""

    def __init__(self, num_classes, width=4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.relu = nn.ReLU()
        self.layer1 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc(self.avgpool(self.layer1(self.relu(self.conv1(x)))).flatten(1))


def factory(num_classes, width=4):
    return Net(num_classes, width)
'''


def _write_png_folder(root, classes=("ants", "bees", "wasps"), per_class=8, size=(10, 12), seed=0):
    """Class-coloured noisy PNGs: class c has a bright channel c."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 80, size=(*size, 3), dtype=np.uint8)
            img[..., c] += 150
            Image.fromarray(img).save(root / name / f"{i:02d}.png")
    return root


def test_image_folder_reads_classes_in_sorted_order(tmp_path):
    root = _write_png_folder(tmp_path / "imgs", classes=("b_second", "a_first"), per_class=2)
    Image.new("L", (12, 10), 128).save(root / "a_first" / "grey.JPG")  # any case, grey → RGB
    (root / "a_first" / "notes.txt").write_text("skipped")
    (root / "b_second" / ".hidden.png").write_bytes(b"skipped")
    x, y, classes = load_image_folder(root)
    assert classes == ["a_first", "b_second"]
    assert y.tolist() == [0, 0, 0, 1, 1] and x.shape == (5, 3, 10, 12) and x.dtype == torch.float32
    grey = x[2]  # "grey.JPG" sorts after "00.png", "01.png"
    assert torch.allclose(grey, torch.full_like(grey, 128 / 255), atol=2 / 255)
    expected = np.asarray(Image.open(root / "a_first" / "00.png"), dtype=np.float32).transpose(2, 0, 1) / 255
    assert torch.equal(x[0], torch.from_numpy(expected))


def test_image_folder_resizes_and_greys(tmp_path):
    root = _write_png_folder(tmp_path / "imgs", per_class=1)
    Image.new("RGB", (30, 20), (255, 0, 0)).save(root / "ants" / "big.png")
    with pytest.raises(ValueError, match="different sizes.*give a size"):
        load_image_folder(root)
    x, y, _ = load_image_folder(root, size=(8, 6), channels=1)
    assert x.shape == (4, 1, 8, 6) and x.min() >= 0 and x.max() <= 1
    assert torch.allclose(x[1], torch.full_like(x[1], 0.299), atol=1 / 255)  # red, resized, in luma


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_image_folder(tmp_path / "none")
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(ValueError, match="no class folders"):
        load_image_folder(tmp_path / "flat")
    root = _write_png_folder(tmp_path / "imgs", per_class=1)
    (root / "empty").mkdir()
    (root / "empty" / "readme.txt").write_text("no images")
    with pytest.raises(ValueError, match="empty.*holds no images"):
        load_image_folder(root)
    (root / "empty" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image.*broken.png"):
        load_image_folder(root)
    for size, error in ((0, ValueError), ((3,), ValueError), ((8, 0), ValueError), ("8", TypeError), (True, TypeError),
                        ((8, 8.0), TypeError)):
        with pytest.raises(error, match="`size`"):
            load_image_folder(root, size=size)
    with pytest.raises(ValueError, match="`channels`"):
        load_image_folder(root, channels=2)


def test_load_tensors_layouts(tmp_path):
    x = torch.rand(6, 3, 4, 5)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    torch.save({"x": x, "y": y}, tmp_path / "dict.pt")
    torch.save((x, y), tmp_path / "pair.pt")
    for name in ("dict.pt", "pair.pt"):
        xs, ys = load_tensors(tmp_path / name)
        assert torch.equal(xs, x) and torch.equal(ys, y)
    hwc = (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)  # CIFAR-10-C's layout
    np.save(tmp_path / "x.npy", hwc)
    np.save(tmp_path / "labels.npy", y.numpy().astype(np.uint8))
    xs, ys = load_tensors(tmp_path / "x.npy", labels=tmp_path / "labels.npy")
    assert xs.shape == (6, 3, 4, 5) and torch.allclose(xs, x, atol=0.5 / 255) and ys.tolist() == y.tolist()


def test_load_tensors_errors(tmp_path):
    torch.save({"x": torch.rand(3, 2)}, tmp_path / "nolabels.pt")
    with pytest.raises(ValueError, match=r"missing \['y'\]"):
        load_tensors(tmp_path / "nolabels.pt")
    np.save(tmp_path / "x.npy", np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="give the labels file"):
        load_tensors(tmp_path / "x.npy")
    np.save(tmp_path / "bad_labels.npy", np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="must be integers"):
        load_tensors(tmp_path / "x.npy", labels=tmp_path / "bad_labels.npy")
    np.save(tmp_path / "short.npy", np.zeros(2, np.int64))
    with pytest.raises(ValueError):
        load_tensors(tmp_path / "x.npy", labels=tmp_path / "short.npy")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable .pt file"):
        load_tensors(tmp_path / "junk.pt")
    with pytest.raises(ValueError, match="expected a .npy, .pt"):
        load_tensors(tmp_path / "x.csv")
    # a pickled object is refused by weights_only=True, not executed
    torch.save({"x": torch.rand(3, 2), "y": torch.zeros(3, dtype=torch.long), "f": _write_png_folder},
               tmp_path / "pickled.pt")
    with pytest.raises(ValueError, match="not a readable .pt file"):
        load_tensors(tmp_path / "pickled.pt")


def test_parse_kwargs_is_safe():
    assert parse_kwargs(None) == {}
    assert parse_kwargs(["a=1.5", "b=true", "c=[1, 2]", "d=hello world"]) == {
        "a": 1.5, "b": True, "c": [1, 2], "d": "hello world"}
    assert parse_kwargs(["x=__import__('os').getcwd()"]) == {"x": "__import__('os').getcwd()"}  # text, not run
    for bad, phrase in ((["novalue"], "key=value"), (["1x=2"], "key=value"), (["a=1", "a=2"], "given twice"),
                        (["{bad json"], "not a JSON object"), (["[1, 2]=3"], "key=value")):
        with pytest.raises(ValueError, match=phrase):
            parse_kwargs(bad)
    assert parse_size("32") == (32, 32) and parse_size("64x48") == (64, 48) and parse_size(None) is None
    for bad in ("0", "axb", "1x2x3", "-4"):
        with pytest.raises(ValueError, match="--image-size"):
            parse_size(bad)


@pytest.fixture
def png_project(tmp_path):
    _write_png_folder(tmp_path / "images", size=(14, 10))
    (tmp_path / "tests_module.py").write_text(FACTORY_FILE)
    return tmp_path


def test_analyze_png_folder_with_factory_kwargs(png_project, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(png_project))
    out = png_project / "out"
    code = cli.main(["analyze", "--model", "tests_module:factory", "--model-kwargs", "num_classes=3", "width=5",
                     "--data", str(png_project / "images"), "--image-size", "12", "--epochs", "1",
                     "--batch-size", "4", "--batches", "1", "--k", "2", "--no-plots", "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "3 classes, 12×12 images" in err and "tests_module:factory(num_classes=3, width=5)" in err
    rows = (out / "table.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["input", "conv1", "relu", "layer1", "avgpool", "fc"]
    code = cli.main(["analyze", "--model", "tests_module:factory", "--model-kwargs", '{"num_classes": 3}',
                     "--data", str(png_project / "images"), "--image-size", "12", "--epochs", "0",
                     "--batch-size", "4", "--batches", "1", "--k", "2", "--no-plots", "--output", str(out)])
    assert code == 0


def _analyze_fails(args, capsys, phrase):
    assert cli.main(["analyze", "--no-plots", "--epochs", "0", *args]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "ERROR" in err and phrase in err, err


def test_analyze_user_input_errors(png_project, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(png_project))
    images, out = str(png_project / "images"), str(png_project / "out")
    _analyze_fails(["--model", "tests_module:factory", "--data", images, "--output", out], capsys,
                   "pass its arguments with --model-kwargs")
    _analyze_fails(["--model-kwargs", "num_classes=3", "--output", out], capsys, "--model-kwargs needs --model")
    _analyze_fails(["--model", "tests_module:factory", "--model-kwargs", "num_classes=3", "--data", images,
                    "--image-size", "12", "--layers", "input,layer9", "--output", out], capsys,
                   "available: 'input' (the input), 'conv1'")
    Image.new("RGB", (30, 30)).save(png_project / "images" / "ants" / "odd.png")
    _analyze_fails(["--data", images, "--output", out], capsys, "--data: images of different sizes")
    _analyze_fails(["--image-size", "8", "--output", out], capsys, "--image-size needs --data")
    _analyze_fails(["--data", str(png_project / "none.pt"), "--output", out], capsys, "no such file or folder")
