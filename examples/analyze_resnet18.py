"""Analyse a torchvision ResNet-18 on a folder of images, through the `latentgraph analyze` command.

Writes scikit-learn's digits as 32×32 PNGs into a class-per-subfolder image
folder (torchvision's ImageFolder layout; pass --data to use your own
folder instead), then runs

    latentgraph analyze --model torchvision.models:resnet18 --model-kwargs num_classes=10 \\
        --data <folder> --image-size 32 --layers input,layer1,layer2,layer3,layer4,fc

which trains the network briefly and reports how each stage separates the
classes. Needs torchvision built for the installed torch (see the README);
without it the example says so and exits cleanly.

    python examples/analyze_resnet18.py --epochs 2 --output resnet18-report
"""
import argparse
import sys
import tempfile
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", help="your image folder (default: the digits, written as PNGs)")
parser.add_argument("--per-class", type=int, default=30, help="digits written per class (default: %(default)s)")
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--batch-size", type=int, default=50, help="samples per analysed batch (default: %(default)s)")
parser.add_argument("--batches", type=int, default=3, help="batches to average over")
parser.add_argument("--output", default="resnet18-report", help="report folder")
args = parser.parse_args()

try:
    import torchvision.models  # noqa: F401
except Exception as error:  # absent, or built for another torch (fails at import)
    print(f"skipped: torchvision is not usable here ({type(error).__name__}: {error})")
    sys.exit(0)

from latentgraph import cli  # noqa: E402


def write_digits(root: Path, per_class: int) -> None:
    """The first ``per_class`` digits of each class as 32×32 RGB PNGs in ``root/<digit>/``."""
    import numpy as np
    from PIL import Image

    from latentgraph.data import load_digits

    x, y, _, _ = load_digits()
    for digit in range(10):
        (root / str(digit)).mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(x[y == digit][:per_class]):
            grey = Image.fromarray(np.uint8(image[0].numpy() * 255)).resize((32, 32), Image.BILINEAR)
            grey.convert("RGB").save(root / str(digit) / f"{i:03d}.png")


with tempfile.TemporaryDirectory() as tmp:
    data = args.data
    if data is None:
        data = str(Path(tmp) / "digits")
        write_digits(Path(data), args.per_class)
    code = cli.main(["analyze", "--model", "torchvision.models:resnet18", "--model-kwargs", "num_classes=10",
                     "--data", data, "--image-size", "32", "--layers", "input,layer1,layer2,layer3,layer4,fc",
                     "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--batches", str(args.batches),
                     "--threads", "2", "--output", args.output])
sys.exit(code)
