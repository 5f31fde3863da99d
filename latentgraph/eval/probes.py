r"""Evaluate embeddings on frozen features: kNN classifier, logistic-regression
probe, and the label variation of the test embeddings.

The classifiers come from scikit-learn, an optional extra
(``pip install 'latentgraph[data]'``), imported only when a probe runs.
"""
from __future__ import annotations


import numpy as np
import torch
from torch import Tensor, nn

from latentgraph.capture import capture
from latentgraph.losses.label_variation import LabelVariationLoss
from latentgraph.eval.accuracy import eval_mode
from latentgraph.validation import check_features, check_flag, check_int, check_labels, check_number, check_tensor


def _sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError as err:
        raise ImportError(
            "embedding probes need scikit-learn: pip install 'latentgraph[data]' (or scikit-learn)"
        ) from err
    from sklearn import linear_model, neighbors, pipeline, preprocessing

    return linear_model, neighbors, pipeline, preprocessing


def _numpy_pair(features: Tensor, y: Tensor, name: str) -> tuple[np.ndarray, np.ndarray]:
    x = check_features(features, name)
    y = check_labels(y, x.shape[0], x.device, f"{name} labels")
    return x.detach().cpu().double().numpy(), y.cpu().numpy()


@torch.no_grad()
def extract_features(model: nn.Module, x: Tensor, layer: str | None = None, batch_size: int = 256) -> Tensor:
    """Frozen features of ``x``: the model's output (``layer=None``) or the output of the
    module ``layer``, computed in eval mode by batches (the model's mode is restored),
    flattened to ``N×D`` and detached.

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        >>> extract_features(model, torch.rand(5, 1, 2, 2), layer="2").shape
        torch.Size([5, 3])
    """
    x = check_tensor(x, "x")
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"`x` must be a non-empty batch N×…, got shape {tuple(x.shape)}")
    check_int(batch_size, "batch_size", minimum=1)
    parts = []
    with eval_mode(model):
        for start in range(0, x.shape[0], batch_size):
            chunk = x[start : start + batch_size]
            if layer is None:
                parts.append(model(chunk))
            else:
                with capture(model, [layer], detach=True) as acts:
                    model(chunk)
                parts.append(acts[layer])
    return torch.cat(parts).flatten(1)


def _fit_knn(features: Tensor, y: Tensor, k: int, metric: str):
    _, neighbors, _, _ = _sklearn()
    x, labels = _numpy_pair(features, y, "train_features")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= x.shape[0]:
        raise ValueError(f"`k` must be an int in 1..{x.shape[0]} (the number of training samples), got {k!r}")
    return neighbors.KNeighborsClassifier(n_neighbors=k, metric=metric, algorithm="brute").fit(x, labels)


def knn_probe(train_features: Tensor, train_y: Tensor, test_features: Tensor, test_y: Tensor,
              k: int = 10, metric: str = "cosine") -> float:
    r"""Accuracy of a ``k``-nearest-neighbour majority vote (scikit-learn) fitted on the
    training embeddings, on the test embeddings.

    Args:
        train_features, test_features (Tensor): embeddings ``N×…`` (flattened).
        train_y, test_y (Tensor): labels.
        k (int): neighbours. (default: :obj:`10`)
        metric (str): scikit-learn metric, e.g. ``"cosine"`` or ``"euclidean"``.
            (default: :obj:`"cosine"`)

    Example:
        >>> train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
        >>> knn_probe(train, torch.tensor([0, 0, 1, 1]), torch.tensor([[1.0, 0.2]]), torch.tensor([0]), k=1)
        1.0
    """
    knn = _fit_knn(train_features, train_y, k, metric)
    x, y = _numpy_pair(test_features, test_y, "test_features")
    return float((knn.predict(x) == y).mean())


def logistic_probe(train_features: Tensor, train_y: Tensor, test_features: Tensor, test_y: Tensor,
                   C: float = 1.0, max_iter: int = 1000) -> float:
    r"""Accuracy of a linear probe: standardized features, then multinomial logistic
    regression (scikit-learn, L2 penalty of inverse strength ``C``), fitted on the
    training embeddings and scored on the test embeddings.

    Example:
        >>> train = torch.tensor([[0.0], [0.1], [0.9], [1.0]])
        >>> logistic_probe(train, torch.tensor([0, 0, 1, 1]), torch.tensor([[0.2], [0.8]]), torch.tensor([0, 1]))
        1.0
    """
    linear_model, _, pipeline, preprocessing = _sklearn()
    C = check_number(C, "C", positive=True)
    x_train, y_train = _numpy_pair(train_features, train_y, "train_features")
    x_test, y_test = _numpy_pair(test_features, test_y, "test_features")
    probe = pipeline.make_pipeline(preprocessing.StandardScaler(),
                                   linear_model.LogisticRegression(C=C, max_iter=max_iter))
    probe.fit(x_train, y_train)
    return float((probe.predict(x_test) == y_test).mean())


@torch.no_grad()
def embedding_label_variation(features: Tensor, y: Tensor, k: int | None = 10, similarity: str = "auto",
                              normalized: bool = True) -> float:
    r"""Label variation of the kNN graph of (test) embeddings, with
    :class:`~latentgraph.losses.label_variation.LabelVariationLoss`'s
    construction: by default the share of edge weight between distinct
    classes, in :math:`[0, 1]` (lower: better separated classes).

    Example:
        >>> x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
        >>> embedding_label_variation(x, torch.tensor([0, 0, 1, 1]), k=1)
        0.0
    """
    normalized = check_flag(normalized, "normalized")
    return float(LabelVariationLoss(k=k, similarity=similarity, normalized=normalized)(features, y))


class KNNClassifier(nn.Module):
    r"""An embedding network followed by a kNN vote over stored training embeddings,
    usable wherever a classifier is (e.g. :func:`latentgraph.robustness.corruption_errors`).

    ``forward(x)`` returns the vote shares, :math:`N \times C` (a
    non-differentiable score: gradient attacks need a differentiable model).

    Args:
        model (nn.Module): the embedding network (frozen; eval mode during calls).
        x_train (Tensor), y_train (Tensor): the reference set.
        k (int): neighbours. (default: :obj:`10`)
        metric (str): scikit-learn metric. (default: :obj:`"cosine"`)
        layer (str, optional): embed with this module's output. (default: :obj:`None`)

    Example:
        >>> embed = nn.Flatten()
        >>> clf = KNNClassifier(embed, torch.eye(4).view(4, 1, 2, 2), torch.tensor([0, 1, 2, 2]), k=1)
        >>> clf(torch.eye(4).view(4, 1, 2, 2)).argmax(1).tolist()
        [0, 1, 2, 2]
    """

    def __init__(self, model: nn.Module, x_train: Tensor, y_train: Tensor, k: int = 10,
                 metric: str = "cosine", layer: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.layer = layer
        self.knn = _fit_knn(extract_features(model, x_train, layer), y_train, k, metric)
        self.num_classes = int(y_train.max()) + 1

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        features = extract_features(self.model, x, self.layer)
        proba = self.knn.predict_proba(features.cpu().double().numpy())
        votes = torch.zeros(x.shape[0], self.num_classes, dtype=features.dtype, device=features.device)
        votes[:, torch.as_tensor(self.knn.classes_, device=features.device)] = torch.as_tensor(
            proba, dtype=features.dtype, device=features.device)
        return votes
