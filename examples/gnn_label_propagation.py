"""Propagate labels from a few labelled samples with a GNN on latent geometry graphs.

Takes the 360 held-out digits as one batch, keeps the labels of only a few
per class, and trains a two-layer PyG ``GCNConv`` network on a kNN graph of
the batch to label the rest. The node features are always the raw pixels;
only the graph changes:

* no graph (an MLP on the labelled nodes): the baseline;
* the latent geometry graph of the input pixels (``lg.latent_graph``);
* the latent geometry graph of a CNN's penultimate layer, built with the
  ``lg.LatentGraph`` transform (the CNN was trained on the other 1,437
  digits and never saw these samples or their labels).

    python examples/gnn_label_propagation.py --labels-per-class 3
"""
import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Data
from torch_geometric.nn import GCNConv

from latentgraph import LatentGraph, capture, latent_graph
from latentgraph.data import load_digits, make_loader
from latentgraph.models import SmallCNN
from latentgraph.seed import seed_everything
from latentgraph.train import fit

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--labels-per-class", type=int, default=3)
parser.add_argument("--k", type=int, default=10)
parser.add_argument("--cnn-epochs", type=int, default=5)
parser.add_argument("--gnn-epochs", type=int, default=200)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
seed_everything(args.seed)


class GCN(nn.Module):
    def __init__(self, in_features: int, hidden: int, classes: int, graph: bool = True) -> None:
        super().__init__()
        self.graph = graph
        self.conv1 = GCNConv(in_features, hidden) if graph else nn.Linear(in_features, hidden)
        self.conv2 = GCNConv(hidden, classes) if graph else nn.Linear(hidden, classes)

    def forward(self, data: Data) -> torch.Tensor:
        args = (data.edge_index, data.edge_weight) if self.graph else ()
        h = F.dropout(F.relu(self.conv1(data.x, *args)), p=0.5, training=self.training)
        return self.conv2(h, *args)


def propagate(data: Data, labelled: torch.Tensor, graph: bool = True) -> float:
    """Train on the labelled nodes; return the accuracy on the others."""
    torch.manual_seed(args.seed)
    model = GCN(data.num_features, 64, int(data.y.max()) + 1, graph)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    for _ in range(args.gnn_epochs):
        model.train()
        optimizer.zero_grad()
        F.cross_entropy(model(data)[labelled], data.y[labelled]).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        predicted = model(data).argmax(dim=1)
    return (predicted[~labelled] == data.y[~labelled]).float().mean().item()


x_train, y_train, x_test, y_test = load_digits(seed=args.seed)
pixels = x_test.flatten(1)

# A few labelled nodes per class; the rest are to be labelled by the GNN.
generator = torch.Generator().manual_seed(args.seed)
labelled = torch.zeros(len(y_test), dtype=torch.bool)
for c in y_test.unique():
    members = (y_test == c).nonzero().flatten()
    labelled[members[torch.randperm(len(members), generator=generator)[: args.labels_per_class]]] = True

# Graph 1: the latent geometry graph of the input pixels.
input_graph = latent_graph(pixels, y_test, k=args.k)

# Graph 2: the latent geometry graph of a trained CNN's penultimate layer ("pool"),
# built by the PyG transform from a Data whose x holds those features.
cnn = fit(SmallCNN(), make_loader(x_train, y_train, batch_size=64, shuffle=True, seed=args.seed),
          epochs=args.cnn_epochs, seed=args.seed, progress=False).eval()
with torch.no_grad(), capture(cnn, ["pool"], detach=True) as acts:
    cnn(x_test)
latent = LatentGraph(k=args.k)(Data(x=acts["pool"], y=y_test))

print(f"{int(labelled.sum())} labelled and {int((~labelled).sum())} unlabelled digits, k = {args.k}")
results = {
    "no graph (MLP on pixels)": propagate(Data(x=pixels, y=y_test), labelled, graph=False),
    "GCN on the input-pixel graph": propagate(Data(x=pixels, y=y_test, edge_index=input_graph.edge_index,
                                                   edge_weight=input_graph.edge_weight), labelled),
    "GCN on the CNN's penultimate-layer graph": propagate(
        Data(x=pixels, y=y_test, edge_index=latent.edge_index, edge_weight=latent.edge_weight), labelled),
}
for name, accuracy in results.items():
    print(f"{name:42s} accuracy on unlabelled nodes: {100 * accuracy:5.1f} %")
