r"""Label variation as a training loss for embeddings (graph smoothness loss;
Bontonou et al., 2019; LGG paper §4.2)."""
from __future__ import annotations

from torch import Tensor, nn

from latentgraph.graphs.construct import dense_adjacency
from latentgraph.gsp import label_variation
from latentgraph.graphs.similarity import SIMILARITIES
from latentgraph.validation import check_choice, check_features, check_flag, check_labels, check_neighbours


class LabelVariationLoss(nn.Module):
    r"""Label variation of the latent geometry graph of a batch of features.

    Builds the kNN similarity graph :math:`A` of the (flattened) features with
    :func:`latentgraph.dense_adjacency` and returns its label variation
    (:func:`latentgraph.label_variation`), with :math:`V` the one-hot labels and
    :math:`L = D - A`:

    .. math::
        \sigma = \operatorname{tr}(V^\top L V) = 2 \sum_{i<j,\; y_i \ne y_j} A_{ij},
        \qquad
        \sigma_{norm} = \frac{\sum_{i<j,\; y_i \ne y_j} A_{ij}}{\sum_{i<j} A_{ij}} \in [0, 1].

    Minimizing it separates the classes (edges between distinct classes
    vanish) without a classifier: it is usable as the whole objective — the
    output dimension is free and a class may form several clusters — or added
    to cross-entropy. Classify the embeddings with a kNN or linear probe
    (:mod:`latentgraph.eval.probes`).

    The neighbours are chosen on the current features (not differentiable,
    as in the paper); the edge weights are differentiable. With
    ``similarity="auto"``, non-negative features (after a ReLU) use cosine
    similarity and signed ones an RBF kernel whose bandwidth is the median
    edge length (detached), so the loss does not reward merely rescaling the
    embedding.

    **A batch of a single class** has no edge between distinct classes: the
    loss is then exactly 0 (finite, with a zero gradient), so such a batch
    simply does not train the network. The same holds for a graph without
    edges (``normalized=True``).

    Args:
        k (int, optional): neighbours per node, in ``1..B-1`` (a larger
            ``k`` raises :class:`ValueError`: use batches of more than ``k``
            samples, e.g. ``drop_last``); ``None`` keeps the complete graph.
            (default: :obj:`10`)
        similarity (str): ``"cosine"``, ``"rbf"``, ``"pearson"`` or ``"auto"``.
            (default: :obj:`"auto"`)
        normalize (bool): build the graph as :math:`D^{-1/2} A D^{-1/2}`
            (LGG step 4). (default: :obj:`False`)
        normalized (bool): return :math:`\sigma_{norm}`, the share of edge
            weight between distinct classes, instead of :math:`\sigma`.
            (default: :obj:`True`)

    Shapes:
        features: :math:`B \times \ldots`; y: :math:`[B]`; output: scalar.

    Example:
        >>> loss = LabelVariationLoss(k=2)
        >>> x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
        >>> float(loss(x, torch.tensor([0, 0, 1, 1]))) < float(loss(x, torch.tensor([0, 1, 0, 1])))
        True
    """

    def __init__(self, k: int | None = 10, similarity: str = "auto", normalize: bool = False,
                 normalized: bool = True) -> None:
        normalize = check_flag(normalize, "normalize")
        normalized = check_flag(normalized, "normalized")
        super().__init__()
        self.k = check_neighbours(k)
        self.similarity = check_choice(similarity, "similarity", SIMILARITIES)
        self.normalize = bool(normalize)
        self.normalized = bool(normalized)

    def forward(self, features: Tensor, y: Tensor) -> Tensor:
        x = check_features(features, "features")
        y = check_labels(y, x.shape[0], x.device)
        if bool((y == y[0]).all()):  # no inter-class edge: exactly 0, with a zero gradient
            return x.sum() * 0.0
        adj = dense_adjacency(x, k=self.k, similarity=self.similarity, normalize=self.normalize)
        return label_variation(adj, y, normalized=self.normalized)

    def extra_repr(self) -> str:
        return (f"k={self.k}, similarity={self.similarity!r}, normalize={self.normalize}, "
                f"normalized={self.normalized}")
