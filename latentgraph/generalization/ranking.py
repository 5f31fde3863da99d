r"""How well a measure ranks models by generalization gap: Kendall's τ,
the granulated τ of Jiang et al. (2020) and the conditional mutual
information score of the NeurIPS 2020 PGDL competition."""
from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence


def _check(values: Sequence[float], gaps: Sequence[float]) -> None:
    if len(values) != len(gaps):
        raise ValueError(f"`values` ({len(values)}) and `gaps` ({len(gaps)}) must have the same length")
    if not all(math.isfinite(v) for v in (*values, *gaps)):
        raise ValueError("`values` and `gaps` must be finite")


def _sign(a: float) -> int:
    return int(a > 0) - int(a < 0)


def kendall_tau(values: Sequence[float], gaps: Sequence[float]) -> float:
    r"""Kendall's rank correlation (τ-b, which accounts for ties) between a
    measure and the generalization gap over models:

    .. math::
        \tau = \frac{\sum_{i<j} \operatorname{sgn}(\mu_i-\mu_j)\operatorname{sgn}(g_i-g_j)}
        {\sqrt{(n_0 - n_\mu)(n_0 - n_g)}},

    :math:`n_0 = n(n-1)/2` and :math:`n_\mu, n_g` the tied pairs. 0 when
    either is constant (or fewer than 2 models), as no ranking is predicted.

    Example:
        >>> kendall_tau([1, 2, 3], [0.1, 0.3, 0.2])
        0.3333333333333333
    """
    _check(values, gaps)
    n = len(values)
    concordance, ties_v, ties_g = 0, 0, 0
    for i, j in itertools.combinations(range(n), 2):
        sv, sg = _sign(values[i] - values[j]), _sign(gaps[i] - gaps[j])
        concordance += sv * sg
        ties_v += sv == 0
        ties_g += sg == 0
    pairs = n * (n - 1) // 2
    denominator = math.sqrt((pairs - ties_v) * (pairs - ties_g))
    return concordance / denominator if denominator > 0 else 0.0


def granulated_tau(values: Sequence[float], gaps: Sequence[float],
                   hparams: Sequence[Mapping[str, object]]) -> dict[str, float]:
    r"""Granulated Kendall's τ (Jiang et al., 2020, eq. 4): for each
    hyperparameter :math:`i`, the mean of :math:`\tau` over the groups of
    models whose other hyperparameters are all equal (only :math:`\theta_i`
    varies), over groups of at least 2 models;
    :math:`\Psi = \frac1n \sum_i \psi_i` over the hyperparameters that vary.

    Returns ``{hyperparameter: ψ_i, ..., "overall": Ψ}``; a hyperparameter
    with no such group is left out (``nan`` overall when none has one).

    Example:
        >>> hp = [{"a": 1, "b": 1}, {"a": 2, "b": 1}, {"a": 1, "b": 2}, {"a": 2, "b": 2}]
        >>> granulated_tau([1, 2, 3, 4], [1, 2, 4, 3], hp)
        {'a': 0.0, 'b': 1.0, 'overall': 0.5}
    """
    _check(values, gaps)
    if len(hparams) != len(values):
        raise ValueError(f"`hparams` ({len(hparams)}) must give one mapping per model ({len(values)})")
    names = sorted({k for h in hparams for k in h if len({repr(g.get(k)) for g in hparams}) > 1})
    result: dict[str, float] = {}
    for name in names:
        groups: dict[tuple, list[int]] = defaultdict(list)
        for index, h in enumerate(hparams):
            groups[tuple(repr(h.get(k)) for k in names if k != name)].append(index)
        taus = [kendall_tau([values[i] for i in g], [gaps[i] for i in g]) for g in groups.values() if len(g) >= 2]
        if taus:
            result[name] = sum(taus) / len(taus)
    result["overall"] = sum(result.values()) / len(result) if result else math.nan
    return result


def _entropy(counts: Sequence[int]) -> float:
    total = sum(counts)
    return -sum(c / total * math.log2(c / total) for c in counts if c)


def _mutual_information(table: Mapping[tuple[bool, bool], int]) -> tuple[float, float]:
    """``(I(V_g; V_μ), H(V_g))`` in bits from counts of (gap sign, measure sign)."""
    total = sum(table.values())
    gap = [sum(c for (g, _), c in table.items() if g == s) for s in (True, False)]
    measure = [sum(c for (_, m), c in table.items() if m == s) for s in (True, False)]
    mi = 0.0
    for (g, m), count in table.items():
        if count:
            joint = count / total
            mi += joint * math.log2(joint / (gap[not g] / total * measure[not m] / total))
    return mi, _entropy(gap)


def conditional_mutual_information(values: Sequence[float], gaps: Sequence[float],
                                   hparams: Sequence[Mapping[str, object]]) -> float:
    r"""The PGDL competition's score (Jiang et al., 2020, §6; the
    competition's scoring program): over ordered pairs of distinct models,
    :math:`V_g = [g_i > g_j]` and :math:`V_\mu = [\mu_i > \mu_j]`; for each
    pair of hyperparameters :math:`S = \{h_1, h_2\}`, group the model pairs by
    the values of :math:`S` in both models (:math:`U_S`), and compute

    .. math::
        \hat I_S = \frac{\operatorname{mean}_{u} I(V_\mu; V_g \mid U_S = u)}
                        {\operatorname{mean}_{u} H(V_g \mid U_S = u)}

    (means over the groups that occur); the score is :math:`\min_S \hat I_S`,
    in :math:`[0, 1]`, higher is better. With a single varying
    hyperparameter, :math:`S` is that one alone; with none, no condition.

    Example:
        >>> hp = [{"a": a, "b": b} for a in (1, 2) for b in (1, 2) for _ in range(2)]
        >>> gaps = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
        >>> conditional_mutual_information(gaps, gaps, hp)
        1.0
    """
    _check(values, gaps)
    if len(hparams) != len(values):
        raise ValueError(f"`hparams` ({len(hparams)}) must give one mapping per model ({len(values)})")
    names = sorted({k for h in hparams for k in h if len({repr(g.get(k)) for g in hparams}) > 1})
    conditions = list(itertools.combinations(names, 2)) if len(names) >= 2 else [tuple(names)]
    best = math.inf
    for condition in conditions:
        cells: dict[tuple, dict[tuple[bool, bool], int]] = defaultdict(lambda: defaultdict(int))
        for i, j in itertools.permutations(range(len(values)), 2):
            key = tuple((repr(hparams[i].get(h)), repr(hparams[j].get(h))) for h in condition)
            cells[key][(gaps[i] > gaps[j], values[i] > values[j])] += 1
        if not cells:
            continue
        parts = [_mutual_information(table) for table in cells.values()]
        entropy = sum(h for _, h in parts) / len(parts)
        score = (sum(mi for mi, _ in parts) / len(parts)) / entropy if entropy > 0 else 0.0
        best = min(best, score)
    return best if math.isfinite(best) else 0.0


def bootstrap_tau(values: Sequence[float], gaps: Sequence[float], reference: Sequence[float] | None = None,
                  samples: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    r"""Percentile-bootstrap confidence interval (models resampled with
    replacement, seeded) of Kendall's τ-b of ``values`` against ``gaps`` — or,
    with ``reference``, of the paired difference
    :math:`\tau(\text{values}) - \tau(\text{reference})` on the same resamples.

    Example:
        >>> low, high = bootstrap_tau(list(range(20)), list(range(20)))
        >>> low, high
        (1.0, 1.0)
    """
    import numpy as np

    _check(values, gaps)
    if reference is not None:
        _check(reference, gaps)
    n = len(values)
    g = np.sign(np.subtract.outer(np.asarray(gaps, float), np.asarray(gaps, float)))
    signs = [np.sign(np.subtract.outer(np.asarray(v, float), np.asarray(v, float)))
             for v in (values, reference) if v is not None]
    rng = np.random.default_rng(seed)
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    draws = np.empty(samples)
    for s in range(samples):
        idx = rng.integers(0, n, n)
        gs = g[np.ix_(idx, idx)][upper]
        taus = []
        for sv in signs:
            vs = sv[np.ix_(idx, idx)][upper]
            denominator = np.sqrt(np.count_nonzero(vs) * np.count_nonzero(gs))
            taus.append(float((vs * gs).sum() / denominator) if denominator > 0 else 0.0)
        draws[s] = taus[0] - taus[1] if reference is not None else taus[0]
    tail = (1 - level) / 2 * 100
    return float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail))
