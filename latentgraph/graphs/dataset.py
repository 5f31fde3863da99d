r"""Graphs of a whole data set: every sample a node, one graph per layer.

:func:`dataset_features` streams a loader through the model once and keeps,
for each requested layer, the flattened features of every sample (on the CPU
by default); :func:`dataset_graph` turns them into the layer's kNN graph with
:func:`~latentgraph.latent_graph`. Memory stays bounded by the features
(:math:`N \times D` per layer) plus the :math:`N k` edges: the exact
``"torch"`` search scores blocks of rows at a time and the faiss backends
search an index, so no :math:`N \times N` matrix is ever formed. Variation,
Laplacian and eigenmaps of the result work on its edges
(:func:`~latentgraph.label_variation`, :func:`~latentgraph.laplacian`,
:func:`~latentgraph.eigenmaps` with a sparse eigensolver).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ..capture import capture
from ..device import model_device, to_device
from ..eval.accuracy import eval_mode
from ..validation import check_int
from .construct import latent_graph

if TYPE_CHECKING:  # PyG is imported on first use: it takes seconds
    from torch_geometric.data import Data

#: Name standing for the model's input in ``layers``.
INPUT = "input"


def _split(batch) -> tuple[Tensor, Tensor | None]:
    """``(inputs, labels)`` of a batch ``x`` or ``(x, y, ...)``."""
    if isinstance(batch, Tensor):
        return batch, None
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], Tensor):
        return batch[0], batch[1] if len(batch) > 1 and isinstance(batch[1], Tensor) else None
    raise TypeError(f"`loader` must yield tensors or (x, y, ...) tuples, got {type(batch).__name__}")


@torch.no_grad()
def dataset_features(
    model: nn.Module,
    loader: Iterable,
    layers: str | Sequence[str],
    device: str | torch.device | None = None,
    store: str | torch.device = "cpu",
) -> tuple[dict[str, Tensor], Tensor | None]:
    r"""Flattened features of every sample at the named layers, in one pass over ``loader``.

    The model runs in eval mode under :func:`torch.no_grad` (its modes are
    restored afterwards); each batch's activations are captured
    (:func:`~latentgraph.capture`), flattened to :math:`B \times D` and moved
    to ``store``.

    Args:
        model (nn.Module): the network.
        loader (Iterable): yields batches ``x`` or ``(x, y, ...)``, e.g. a
            :class:`~torch.utils.data.DataLoader` (``shuffle=False`` keeps the
            data set's order).
        layers (str or list of str): module names, or ``"input"`` for the
            model's input.
        device (torch.device, optional): where the model runs; defaults to the
            model's device.
        store (torch.device): where the features are kept. (default: :obj:`"cpu"`)

    Returns:
        ``(features, labels)``: layer name → :math:`N \times D` tensor, and the
        :math:`N` labels (``None`` when the batches carry none).

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        >>> loader = [(torch.randn(5, 4), torch.arange(5)) for _ in range(3)]
        >>> feats, y = dataset_features(model, loader, ["input", "1"])
        >>> feats["input"].shape, feats["1"].shape, y.shape
        (torch.Size([15, 4]), torch.Size([15, 8]), torch.Size([15]))
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names or not all(isinstance(name, str) for name in names):
        raise ValueError(f"`layers` must be a layer name or a non-empty list of names, got {layers!r}")
    device = model_device(model) if device is None else torch.device(device)
    modules = [name for name in names if name != INPUT]
    parts: dict[str, list[Tensor]] = {name: [] for name in names}
    labels: list[Tensor] = []
    with eval_mode(model):
        for batch in loader:
            x, y = _split(batch)
            x = to_device(x, device)
            with capture(model, modules, detach=True) as acts:
                model(x)
            silent = [name for name in modules if name not in acts]
            if silent:
                raise ValueError(f"`layers`: {', '.join(map(repr, silent))} never ran in the model's forward")
            for name in names:
                value = x if name == INPUT else acts[name]
                parts[name].append(value.reshape(value.shape[0], -1).to(store))
            if y is not None:
                labels.append(y.to(store))
    if not parts[names[0]]:
        raise ValueError("`loader` yielded no batch")
    num = sum(part.shape[0] for part in parts[names[0]])
    if labels and sum(part.shape[0] for part in labels) != num:
        raise ValueError("`loader`: some batches carry labels and others do not")
    features = {}
    for name in names:  # one layer at a time, so at most one extra copy is alive
        features[name] = torch.cat(parts.pop(name))
    return features, torch.cat(labels) if labels else None


def dataset_graph(
    model: nn.Module,
    loader: Iterable,
    layers: str | Sequence[str],
    k: int = 10,
    *,
    similarity: str = "auto",
    normalize: bool = True,
    symmetrize: str = "union",
    backend: str = "torch",
    device: str | torch.device | None = None,
) -> Data | dict[str, Data]:
    r"""kNN graph of a whole data set at one or several layers.

    Streams ``loader`` through the model once (:func:`dataset_features`), then
    builds, for each layer, the latent geometry graph of all :math:`N`
    samples with :func:`~latentgraph.latent_graph` (same similarity, kNN,
    symmetrization and normalization; the labels become ``y``).

    Args:
        model (nn.Module): the network.
        loader (Iterable): batches ``x`` or ``(x, y, ...)``.
        layers (str or list of str): module names, or ``"input"``.
        k (int): neighbours per sample; a complete graph (``None``) is refused
            at this scale. (default: :obj:`10`)
        similarity (str): ``"cosine"``, ``"pearson"``, ``"rbf"`` or ``"auto"``,
            decided per layer on all samples. (default: :obj:`"auto"`)
        normalize (bool): :math:`D^{-1/2} A D^{-1/2}`. (default: :obj:`True`)
        symmetrize (str): ``"union"`` or ``"mutual"``. (default: :obj:`"union"`)
        backend (str): ``"torch"`` or ``"faiss"`` (exact), ``"faiss-ivf"`` or
            ``"faiss-hnsw"`` (approximate, see
            :mod:`~latentgraph.graphs.approximate`; check them with
            :func:`~latentgraph.knn_recall`). (default: :obj:`"torch"`)
        device (torch.device, optional): where the model runs.

    Returns:
        A :class:`~torch_geometric.data.Data` (``x``, ``edge_index``,
        ``edge_weight``, ``y``, ``num_nodes``) for one layer name, a dict of
        them for a list.

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        >>> loader = [(torch.randn(50, 4), torch.arange(50) % 3) for _ in range(4)]
        >>> g = dataset_graph(model, loader, "1", k=5)
        >>> g.num_nodes, g.edge_index.shape[1] >= 200 * 5
        (200, True)
    """
    k = check_int(k, "k", minimum=1)
    features, y = dataset_features(model, loader, layers, device=device)
    graphs = {}
    for name in list(features):
        graphs[name] = latent_graph(features.pop(name), y, k=k, similarity=similarity, normalize=normalize,
                                    symmetrize=symmetrize, backend=backend)
    return graphs[layers] if isinstance(layers, str) else graphs
