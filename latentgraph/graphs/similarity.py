r"""Similarity measures between the samples of a batch, one class each.

A similarity is a small :class:`Similarity` subclass registered under its
``name``; everything else (the kNN search, :func:`latent_graph`,
:func:`dense_adjacency`) only calls its methods, so a new similarity is one
class. Each one offers the same forms, which agree exactly and are
differentiable with respect to the features:

* :meth:`Similarity.matrix`: the dense :math:`B \times B` matrix;
* :meth:`Similarity.pair_values` then :meth:`Similarity.weights`: the
  similarity of chosen pairs ``(row[e], col[e])``, through a *value* per pair
  that the kNN search also returns — an inner product of the search
  embedding when :attr:`Similarity.larger_is_closer`, a squared Euclidean
  distance otherwise;
* :meth:`Similarity.embedding`: vectors whose inner products (or Euclidean
  distances) rank neighbours like the similarity, which is what the kNN
  backends search.

Registered similarities:

* ``"cosine"``: :math:`s_{ij} = \frac{x_i^\top x_j}{\lVert x_i\rVert \lVert x_j\rVert}`;
  an all-zero row has similarity 0 to every sample.
* ``"pearson"``: the cosine similarity of the row-centred features, i.e. the
  Pearson correlation of the two samples; a constant row has correlation 0.
* ``"rbf"``: :math:`s_{ij} = \exp(-\lVert x_i - x_j\rVert^2 / (2\sigma^2))`.
  The default bandwidth :math:`\sigma` is the median Euclidean distance over
  the graph's edges (all pairs for the complete graph), detached from autograd,
  and 1 when that median is 0.
* ``"auto"`` (a rule, not a class): ``"cosine"`` when every feature is
  non-negative (e.g. after a ReLU), ``"rbf"`` otherwise, as in Lassance et
  al. (2020).
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..validation import check_bandwidth, check_choice, check_features

#: name -> similarity class, filled by subclassing :class:`Similarity`
SIMILARITY_CLASSES: dict[str, type[Similarity]] = {}


class _Names(Sequence):
    """The names accepted as ``similarity``: the registered classes and ``"auto"`` (a live view)."""

    def _names(self) -> tuple[str, ...]:
        return (*SIMILARITY_CLASSES, "auto")

    def __getitem__(self, index):
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __repr__(self) -> str:
        return repr(self._names())


SIMILARITIES: Sequence[str] = _Names()


class Similarity:
    r"""A similarity between samples (rows of a 2-D tensor); subclasses register by ``name``.

    A subclass sets :attr:`name` and :attr:`larger_is_closer` and implements
    :meth:`embedding`, :meth:`matrix` and :meth:`pair_values`; it overrides
    :meth:`weights` when the similarity is not the value itself.

    Example:
        >>> class Dot(Similarity, name="dot-example", larger_is_closer=True):
        ...     def embedding(self, x): return x
        ...     def matrix(self, x, sigma=None, fit=None): return x @ x.T
        ...     def pair_values(self, x, row, col): return (x[row] * x[col]).sum(dim=1)
        >>> get_similarity("dot-example")(torch.tensor([[1.0, 2.0]]), torch.tensor([0]), torch.tensor([0]))
        tensor([5.])
        >>> del SIMILARITY_CLASSES["dot-example"]
    """

    #: the name it is looked up by
    name: ClassVar[str]
    #: whether a larger value (:meth:`pair_values`, and the search's values)
    #: means a closer pair: inner products of the embedding when ``True``,
    #: squared Euclidean distances of the embedding when ``False``
    larger_is_closer: ClassVar[bool]

    def __init_subclass__(cls, name: str, larger_is_closer: bool, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.name, cls.larger_is_closer = name, larger_is_closer
        SIMILARITY_CLASSES[name] = cls

    def embedding(self, x: Tensor) -> Tensor:
        """Vectors whose inner products (``larger_is_closer``) or squared
        Euclidean distances (otherwise) are the :meth:`pair_values` of ``x``."""
        raise NotImplementedError

    def matrix(self, x: Tensor, sigma: float | Tensor | None = None, fit: Tensor | None = None) -> Tensor:
        """Dense :math:`B \\times B` similarity; parameters left to their default
        (the RBF bandwidth) are fitted to the pairs where ``fit`` is true
        (default: all off-diagonal pairs)."""
        raise NotImplementedError

    def pair_values(self, x: Tensor, row: Tensor, col: Tensor) -> Tensor:
        """The value of each pair ``(row[e], col[e])`` (see :attr:`larger_is_closer`)."""
        raise NotImplementedError

    def weights(self, values: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        """Similarities from pair values; default parameters are fitted to ``values``."""
        return values

    def rescale_values(self, values: Tensor, scale: float) -> Tensor:
        """The values of ``x`` from those of ``x / scale``."""
        return values

    def __call__(self, x: Tensor, row: Tensor, col: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        """Similarity of the pairs ``(row[e], col[e])``, equal to ``matrix(x)[row, col]``."""
        return self.weights(self.pair_values(x, row, col), sigma)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def get_similarity(name: str) -> Similarity:
    """The similarity registered as ``name`` (not ``"auto"``, see :func:`resolve_similarity`).

    Example:
        >>> get_similarity("rbf").larger_is_closer
        False
    """
    return SIMILARITY_CLASSES[check_choice(name, "similarity", SIMILARITY_CLASSES)]()


def resolve_similarity(x: Tensor, similarity: str) -> str:
    """Resolve ``"auto"`` to ``"cosine"`` for non-negative ``x`` and ``"rbf"`` otherwise.

    Example:
        >>> resolve_similarity(torch.rand(4, 3), "auto")
        'cosine'
        >>> resolve_similarity(torch.randn(4, 3) - 5, "auto")
        'rbf'
    """
    check_choice(similarity, "similarity", SIMILARITIES)
    if similarity == "auto":
        return "cosine" if bool(x.min() >= 0) else "rbf"
    return similarity


def _chunked_pairs(x: Tensor, row: Tensor, col: Tensor, op) -> Tensor:
    """Apply ``op(x[row], x[col])`` in chunks so that wide features fit in memory."""
    chunk = max(1, 2**24 // max(1, x.shape[1]))
    parts = [op(x[r], x[c]) for r, c in zip(row.split(chunk), col.split(chunk))]
    return torch.cat(parts) if parts else x.new_zeros(0)


class Cosine(Similarity, name="cosine", larger_is_closer=True):
    r"""Cosine similarity :math:`\frac{x_i^\top x_j}{\lVert x_i\rVert \lVert x_j\rVert}`
    (0 for an all-zero row); values are the similarities themselves.

    Example:
        >>> Cosine().matrix(torch.tensor([[3.0, 4.0], [4.0, 3.0]]))
        tensor([[1.0000, 0.9600],
                [0.9600, 1.0000]])
    """

    def _rows(self, x: Tensor) -> Tensor:
        """The rows whose cosine similarity is taken."""
        return x

    def embedding(self, x: Tensor) -> Tensor:
        return F.normalize(self._rows(x), p=2.0, dim=1, eps=1e-12)

    def matrix(self, x: Tensor, sigma: float | Tensor | None = None, fit: Tensor | None = None) -> Tensor:
        x = self._rows(x)
        # normalize the B×B Gram matrix rather than the B×D rows: cheaper forward and backward
        gram = x @ x.T
        sq = gram.diagonal()
        eps = torch.finfo(x.dtype).tiny ** 0.5  # a zero row gets norm eps, hence similarity 0
        norm = torch.where(sq > eps * eps, sq, torch.full_like(sq, eps * eps)).sqrt()
        return gram / (norm[:, None] * norm[None, :])

    def pair_values(self, x: Tensor, row: Tensor, col: Tensor) -> Tensor:
        return _chunked_pairs(self.embedding(x), row, col, lambda a, b: (a * b).sum(dim=1))


class Pearson(Cosine, name="pearson", larger_is_closer=True):
    """Pearson correlation of two samples: the cosine similarity of the row-centred features.

    Example:
        >>> round(float(Pearson().matrix(torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]))[0, 1]), 6)
        -1.0
    """

    def _rows(self, x: Tensor) -> Tensor:
        return x - x.mean(dim=1, keepdim=True)


class RBF(Similarity, name="rbf", larger_is_closer=False):
    r"""Gaussian kernel :math:`\exp(-\lVert x_i - x_j\rVert^2 / (2\sigma^2))`; values are
    the squared distances, and the default :math:`\sigma` is their median
    (:func:`rbf_bandwidth`).

    Example:
        >>> RBF()(torch.tensor([[0.0], [1.0], [3.0]]), torch.tensor([0, 1]), torch.tensor([1, 2]))
        tensor([0.6065, 0.1353])
    """

    def embedding(self, x: Tensor) -> Tensor:
        # the mean row removed keeps the distances and avoids the cancellation
        # of large common offsets in the searches' matrix products
        return _centred(x)

    def matrix(self, x: Tensor, sigma: float | Tensor | None = None, fit: Tensor | None = None) -> Tensor:
        d2 = squared_distances(x)
        if sigma is None:
            if fit is None:
                fit = ~torch.eye(x.shape[0], dtype=torch.bool, device=x.device)
            sigma = rbf_bandwidth(d2[fit])
        return rbf_kernel(d2, sigma)

    def pair_values(self, x: Tensor, row: Tensor, col: Tensor) -> Tensor:
        return pair_squared_distances(x, row, col)

    def rescale_values(self, values: Tensor, scale: float) -> Tensor:
        return values * scale**2 if scale != 1.0 else values

    def weights(self, values: Tensor, sigma: float | Tensor | None = None) -> Tensor:
        return rbf_kernel(values, rbf_bandwidth(values) if sigma is None else sigma)


#: features whose largest magnitude lies outside [2⁻³², 2³²] are rescaled for the computation
_SAFE_RANGE = (2.0**-32, 2.0**32)


def working_features(x: Tensor) -> tuple[Tensor, float]:
    r"""``(x / scale, scale)``: the features in the precision and range the similarities
    are computed in.

    Half-precision inputs (float16, bfloat16) are promoted to float32, which
    holds their squared distances and Gram sums (float16 overflows at 65504).
    A batch whose largest magnitude lies outside :math:`[2^{-32}, 2^{32}]` is
    divided by the largest power of two not above it (``scale``; 1 otherwise), so that
    squared norms and distances neither overflow nor underflow: cosine and
    Pearson similarities do not change, and an RBF bandwidth ``sigma`` becomes
    ``sigma / scale``. Dividing by a power of two is exact, so nothing is
    rounded differently. Differentiable.

    Example:
        >>> xw, scale = working_features(torch.tensor([[1e20, -3e19]]))
        >>> scale, xw
        (7.378697629483821e+19, tensor([[ 1.3553, -0.4066]]))
    """
    if x.element_size() < 4:
        x = x.float()
    peak = float(x.detach().abs().amax())
    if peak == 0.0 or _SAFE_RANGE[0] <= peak <= _SAFE_RANGE[1]:
        return x, 1.0
    scale = math.ldexp(1.0, math.frexp(peak)[1] - 1)  # the power of two in (peak / 2, peak]
    return x / scale, scale


def _centred(x: Tensor) -> Tensor:
    """``x`` minus its (detached) mean row: the same Euclidean distances, smaller norms."""
    return x - x.detach().mean(dim=0, keepdim=True)


def squared_distances(x: Tensor) -> Tensor:
    r"""Dense squared Euclidean distances :math:`\lVert x_i - x_j\rVert^2`, clamped at 0.

    Centres the batch (distances do not depend on a shift; without it a
    common offset such as ``x + 1000`` cancels away every digit of the
    distances in float32), then uses
    :math:`\lVert x_i\rVert^2 + \lVert x_j\rVert^2 - 2 x_i^\top x_j` (one
    matrix product), so the gradient is finite even between identical rows.

    Example:
        >>> x = torch.tensor([[0.0, 0.0], [3.0, 4.0]]) + 1000
        >>> squared_distances(x)
        tensor([[ 0., 25.],
                [25.,  0.]])
    """
    x = _centred(x)
    sq = (x * x).sum(dim=1)
    return (sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)).clamp_min(0.0)


def rbf_bandwidth(sq_dist: Tensor) -> Tensor:
    r"""Median-distance bandwidth :math:`\sigma = \operatorname{median}\sqrt{d^2}` (detached).

    Returns 1 when the median is 0 (e.g. all points identical). For an even
    count the median is the lower of the two middle values (:meth:`torch.Tensor.median`).

    Example:
        >>> rbf_bandwidth(torch.tensor([1.0, 4.0, 9.0])), rbf_bandwidth(torch.zeros(3))
        (tensor(2.), tensor(1.))
    """
    if sq_dist.numel() == 0:
        return sq_dist.new_ones(())
    sigma = sq_dist.detach().sqrt().median()
    return torch.where(sigma > 0, sigma, torch.ones_like(sigma))


def rbf_kernel(sq_dist: Tensor, sigma: float | Tensor) -> Tensor:
    r"""Gaussian kernel :math:`\exp(-d^2 / (2\sigma^2))` of squared distances.

    Example:
        >>> rbf_kernel(torch.tensor([0.0, 2.0]), 1.0)
        tensor([1.0000, 0.3679])
    """
    return torch.exp(-sq_dist / (2.0 * torch.as_tensor(sigma, dtype=sq_dist.dtype, device=sq_dist.device) ** 2))


def similarity_matrix(x: Tensor, similarity: str = "cosine", sigma: float | Tensor | None = None) -> Tensor:
    r"""Dense similarity matrix of a batch ``x`` (:math:`B \times \ldots`, flattened per sample).

    The diagonal is kept as computed (1 for cosine/pearson/rbf rows that are
    not zero); graph builders zero it. For ``"rbf"`` without ``sigma`` the
    bandwidth is the median of the off-diagonal distances.

    Args:
        x (Tensor): features, one row per sample.
        similarity (str): ``"cosine"``, ``"pearson"``, ``"rbf"`` or ``"auto"``.
            (default: :obj:`"cosine"`)
        sigma (float, optional): RBF bandwidth. (default: :obj:`None`)

    Example:
        >>> s = similarity_matrix(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
        >>> torch.allclose(s[0, 1], torch.tensor(2 ** -0.5))
        True
    """
    x = check_features(x, "x")
    sim = get_similarity(resolve_similarity(x, similarity))
    check_bandwidth(sigma)
    return sim.matrix(x, sigma)


def pair_squared_distances(x: Tensor, row: Tensor, col: Tensor) -> Tensor:
    r""":math:`\lVert x_{row} - x_{col}\rVert^2` for each pair ``(row[e], col[e])``,
    from the differences (exact, also far from the origin), in chunks.

    Example:
        >>> x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
        >>> pair_squared_distances(x, torch.tensor([0, 1]), torch.tensor([1, 1]))
        tensor([25.,  0.])
    """
    return _chunked_pairs(x, row, col, lambda a, b: ((a - b) ** 2).sum(dim=1))


def pair_similarity(
    x: Tensor, row: Tensor, col: Tensor, similarity: str, sigma: float | Tensor | None = None
) -> Tensor:
    r"""Similarity of the pairs ``(row[e], col[e])``, equal to ``similarity_matrix(x)[row, col]``.

    ``similarity`` must already be resolved (not ``"auto"``). For ``"rbf"``
    without ``sigma`` the bandwidth is the median distance over the given pairs.

    Example:
        >>> x = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
        >>> pair_similarity(x, torch.tensor([0]), torch.tensor([1]), "cosine")
        tensor([0.7071])
    """
    return get_similarity(similarity)(x, row, col, sigma)

