"""experiments/protocol.py: splits, choice on validation, paired statistics and stamped tables."""
import doctest
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import protocol  # noqa: E402
from protocol import (  # noqa: E402
    REPORTED_SEEDS,
    TUNING_SEEDS,
    Record,
    choose_on_validation,
    fixed_split,
    load_split,
    mean_std,
    paired_difference,
    summarize,
)


def test_doctests():
    assert doctest.testmod(protocol, extraglobs={"torch": torch}).failed == 0


def test_paired_ci_by_hand():
    method = [31.2, 35.0, 33.1, 29.8, 36.4]
    base = [36.0, 40.2, 35.5, 34.1, 43.9]
    d = np.array(method) - np.array(base)
    half = stats.t.ppf(0.975, df=4) * d.std(ddof=1) / math.sqrt(5)
    got = paired_difference(method, base)
    assert got.mean == pytest.approx(d.mean())
    assert (got.low, got.high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert got.n == 5 and got.excludes_zero
    # the same interval as scipy's paired t-test
    ci = stats.ttest_rel(method, base).confidence_interval(0.95)
    assert (got.low, got.high) == pytest.approx((ci.low, ci.high))
    # t_{0.975, 4} = 2.776445 (printed tables)
    assert protocol.t_quantile(0.975, 4) == pytest.approx(2.776445, abs=1e-6)


def test_paired_ci_other_confidence_and_zero():
    got = paired_difference([1.0, 2.0, 4.0], [1.5, 1.0, 3.0], confidence=0.9)
    d = np.array([-0.5, 1.0, 1.0])
    half = stats.t.ppf(0.95, df=2) * d.std(ddof=1) / math.sqrt(3)
    assert (got.low, got.high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert not got.excludes_zero


@pytest.mark.parametrize("args, phrase", [
    (([1.0], [2.0]), "at least 2"),
    (([1.0, 2.0], [1.0, 2.0, 3.0]), "pair up"),
    (([1.0, float("nan")], [1.0, 2.0]), "NaN"),
])
def test_paired_bad_input(args, phrase):
    with pytest.raises(ValueError, match=phrase):
        paired_difference(*args)


def test_mean_std():
    assert mean_std([2.0, 4.0]) == pytest.approx((3.0, math.sqrt(2.0)))
    with pytest.raises(ValueError, match="at least 2"):
        mean_std([1.0])


def test_fixed_split_partitions_and_is_fixed():
    a, b = fixed_split(50, val=7, test=9), fixed_split(50, val=7, test=9)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert sorted(torch.cat(a).tolist()) == list(range(50))
    assert not torch.equal(fixed_split(50, 7, 9, seed=1).test, a.test)
    with pytest.raises(ValueError, match="leave training"):
        fixed_split(10, val=5, test=5)
    with pytest.raises(ValueError, match="`val`"):
        fixed_split(10, val=-1, test=2)


def test_load_split_is_fixed_split_of_the_shipped_order():
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.as_tensor(digits.images[:, None] / 16.0, dtype=torch.float32)
    idx = fixed_split(len(images), **protocol.SPLIT_SIZES["digits"])
    split = load_split("digits")
    assert torch.equal(split.x_val, images[idx.val]) and torch.equal(split.x_test, images[idx.test])
    assert torch.equal(split.x_train, images[idx.train])
    assert torch.equal(split.y_train, torch.as_tensor(digits.target)[idx.train])
    with pytest.raises(ValueError, match="`name`"):
        load_split("cifar")


def test_choose_on_validation_records_grid_and_uses_tuning_seeds():
    calls = []

    def score(value, seed):
        calls.append((value, seed))
        return (value - 2) ** 2 + 0.1 * (seed == 101)

    choice = choose_on_validation([1, 2, 3], score, name="λ")
    assert choice.value == 2 and choice.grid == (1, 2, 3)
    assert choice.scores == pytest.approx((1 + 0.1 / 3, 0.1 / 3, 1 + 0.1 / 3))
    assert {s for _, s in calls} == set(TUNING_SEEDS)
    assert "λ = 2" in choice.describe() and "100" in choice.describe()
    assert choose_on_validation([1, 2, 3], score, name="λ", minimize=False).value == 1  # first of equals
    with pytest.raises(ValueError, match="not reported seeds"):
        choose_on_validation([1], score, name="λ", seeds=[REPORTED_SEEDS[0]])
    with pytest.raises(ValueError, match="NaN"):
        choose_on_validation([1], lambda v, s: float("nan"), name="λ")


def test_summarize_pairs_per_setting():
    runs = [{"setting": st, "method": m, "seed": s, "error": e}
            for st, m, s, e in [("a", "student", 0, 10.0), ("a", "student", 1, 11.0), ("a", "kd", 0, 9.0),
                                ("a", "kd", 1, 9.5), ("b", "student", 0, 30.0), ("b", "student", 1, 20.0),
                                ("b", "kd", 1, 18.0), ("b", "kd", 0, 29.0)]]
    rows = summarize(runs, by=["setting", "method"], metric="error", baseline={"method": "student"})
    label = "Δ error vs student (95 % CI)"
    assert [r[label] for r in rows][0] == "baseline"
    expected = paired_difference([29.0, 18.0], [30.0, 20.0])  # paired on seed, not on order
    assert rows[3][label] == f"{expected.mean:+.2f} [{expected.low:+.2f}, {expected.high:+.2f}]"
    with pytest.raises(ValueError, match="no baseline"):
        summarize(runs, by=["setting", "method"], metric="error", baseline={"method": "at"})
    with pytest.raises(ValueError, match="share seed"):
        summarize(runs, by=["method"], metric="error")


def test_record_writes_csv_markdown_and_stamp(tmp_path):
    record = Record(argv=["experiments/x.py", "--seeds", "0", "1"])
    csv_path, md_path = record.write_table(tmp_path / "t", [{"a": 1, "b": 2.5}, {"a": "x|y"}], title="T",
                                           notes=["chosen on validation"])
    assert csv_path.read_text().splitlines() == ["a,b", "1,2.5", "x|y,"]
    text = md_path.read_text()
    assert "| a | b |" in text and "| 1 | 2.50 |" in text and "x\\|y" in text
    assert "chosen on validation" in text
    assert "Command: `python experiments/x.py --seeds 0 1`" in text
    assert "CPU time:" in text and "UTC" in text and "torch thread" in text
    with pytest.raises(ValueError, match="`rows`"):
        record.write_table(tmp_path / "u", [])


def test_compare_pairs_within_groups():
    runs = [{"n": n, "method": m, "seed": s, "error": e}
            for n, m, s, e in [(3, "a", 0, 10.0), (3, "a", 1, 14.0), (3, "b", 1, 11.0), (3, "b", 0, 9.0),
                               (10, "a", 0, 5.0), (10, "b", 0, 4.0)]]
    rows = protocol.compare(runs, [("b", "a")], key="method", metric="error", within=["n"])
    expected = paired_difference([9.0, 11.0], [10.0, 14.0])  # paired on seed; n = 10 has one seed only
    assert rows == [{"n": 3, "comparison": "b − a", "seeds": 2,
                     "Δ error (95 % CI)": f"{expected.mean:+.2f} [{expected.low:+.2f}, {expected.high:+.2f}]"}]


def test_saved_choice_chooses_once_then_reuses_the_saved_choice(tmp_path):
    calls = []

    def score(value, seed):
        calls.append((value, seed))
        return abs(value - 2.0)

    path = tmp_path / "choice.json"
    first = protocol.saved_choice(path, [1.0, 2.0, 3.0], score, name="λ")
    assert first.value == 2.0 and path.is_file() and len(calls) == 3 * len(protocol.TUNING_SEEDS)
    again = protocol.saved_choice(path, [1.0, 2.0, 3.0], lambda v, s: 1 / 0, name="λ")  # not called
    assert again == first
