"""Embedding probes: kNN, logistic regression, label variation of embeddings."""
import sys

import pytest
import torch
from torch import nn

from latentgraph.eval import (
    KNNClassifier,
    embedding_label_variation,
    extract_features,
    knn_probe,
    logistic_probe,
)
from latentgraph.robustness import corruption_errors, error_rate


def _clusters(n_per_class=10, seed=0, spread=0.05):
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    x = centres.repeat_interleave(n_per_class, 0) + spread * torch.rand(3 * n_per_class, 3, generator=g)
    return x, torch.arange(3).repeat_interleave(n_per_class)


def test_knn_probe_matches_a_vote_written_out():
    g = torch.Generator().manual_seed(3)
    train, train_y = torch.randn(30, 4, generator=g), torch.randint(0, 3, (30,), generator=g)
    test, test_y = torch.randn(12, 4, generator=g), torch.randint(0, 3, (12,), generator=g)
    dist = torch.cdist(test.double(), train.double())
    nearest = dist.topk(5, largest=False).indices
    votes = torch.nn.functional.one_hot(train_y[nearest], 3).sum(1)
    expected = (votes.argmax(1) == test_y).float().mean().item()
    assert knn_probe(train, train_y, test, test_y, k=5, metric="euclidean") == pytest.approx(expected)


def test_knn_probe_cosine_on_clusters():
    x, y = _clusters()
    assert knn_probe(x, y, x * 3.0, y, k=3) == 1.0  # cosine ignores the scale
    assert knn_probe(x, y, x, (y + 1) % 3, k=3) == 0.0


def test_logistic_probe_separable_and_flipped():
    x, y = _clusters()
    assert logistic_probe(x, y, x, y) == 1.0
    assert logistic_probe(x, y, x, (y + 1) % 3) == 0.0


def test_embedding_label_variation_by_hand():
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    y = torch.tensor([0, 0, 1])
    # complete cosine graph: w01 = w12 = 2^-1/2, w02 = 0; inter-class share = w12 / (w01 + w12) = 1/2
    assert embedding_label_variation(x, y, k=None) == pytest.approx(0.5)
    x, y = _clusters()
    assert embedding_label_variation(x, y, k=5) == pytest.approx(0.0, abs=1e-6)


def test_extract_features_layer_and_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2))
    model.train()
    x = torch.rand(7, 1, 2, 2)
    feats = extract_features(model, x, layer="3", batch_size=3)
    model.eval()
    with torch.no_grad():
        expected = model[3](model[2](model[1](model[0](x))))
    model.train()
    assert torch.allclose(feats, expected)
    assert model.training
    assert extract_features(model, x).shape == (7, 2)


def test_knn_classifier_as_a_model():
    x, y = _clusters()
    images = x.view(-1, 1, 1, 3)
    clf = KNNClassifier(nn.Flatten(), images, y, k=3)
    assert clf(images).shape == (30, 3)
    assert error_rate(clf, images, y) == 0.0
    errs = corruption_errors(clf, images.clamp(0, 1), y, names=["contrast"], severities=[1])
    assert len(errs["contrast"]) == 1


def test_probe_bad_inputs():
    x, y = _clusters()
    with pytest.raises(ValueError, match="k"):
        knn_probe(x, y, x, y, k=100)
    with pytest.raises(ValueError, match="labels"):
        knn_probe(x, y[:5], x, y)
    with pytest.raises(ValueError, match="C"):
        logistic_probe(x, y, x, y, C=0.0)
    model = nn.Flatten()
    with pytest.raises(TypeError, match="`x` must be a torch.Tensor"):
        extract_features(model, [[1.0, 2.0]])
    with pytest.raises(ValueError, match="`x` must be a non-empty batch"):
        extract_features(model, torch.zeros(0, 2))
    with pytest.raises(ValueError, match="`batch_size`"):
        extract_features(model, x, batch_size=0)


def test_missing_scikit_learn_gives_a_clear_error(monkeypatch):
    x, y = _clusters()
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(ImportError, match="scikit-learn"):
        knn_probe(x, y, x, y)
