"""Analyze your own model's layers with latent geometry graphs, in a few lines.

Trains a small MLP of your own on scikit-learn's digits, then measures, for
each chosen layer, how much of the kNN similarity graph of a batch connects
samples of distinct classes (normalized label variation: 1 = only edges
between classes, 0 = classes fully separated). Swap in your model, your data
and your layer names.

    python examples/analyze_your_model.py --epochs 10 --output my-report
"""
import argparse
from collections import OrderedDict

from torch import nn

from latentgraph import analyze
from latentgraph.data import load_digits, make_loader
from latentgraph.seed import seed_everything
from latentgraph.train import fit

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--batches", type=int, default=5, help="batches to average over")
parser.add_argument("--output", default="my-report", help="report folder")
args = parser.parse_args()
seed_everything(0)

# 1. Your model: any nn.Module; its sub-modules are addressed by name.
model = nn.Sequential(OrderedDict(
    flatten=nn.Flatten(),
    fc1=nn.Linear(64, 128), relu1=nn.ReLU(),
    fc2=nn.Linear(128, 64), relu2=nn.ReLU(),
    logits=nn.Linear(64, 10),
))

# 2. Your data: inputs N×… and integer labels N.
x_train, y_train, x_test, y_test = load_digits()
fit(model, make_loader(x_train, y_train, batch_size=64, shuffle=True), epochs=args.epochs, progress=False)

# 3. The analysis: one graph per layer and batch, statistics averaged over batches.
result = analyze(model, x_test, y_test, layers=["input", "relu1", "relu2", "logits"],
                 k=10, batch_size=100, num_batches=args.batches)
print(result.format_table())
print("normalized label variation, input → logits:",
      " → ".join(f"{stats.mean('label_variation_normalized'):.3f}" for stats in result.layers))
files = result.write_report(args.output)  # report.md, table.csv, graphs.pt, two figures
print("report:", files["markdown"])
