"""experiments/protocol.py: summarize_metrics merges per-metric summaries row by row."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from protocol import paired_difference, summarize, summarize_metrics  # noqa: E402


def test_summarize_metrics_equals_one_summary_per_metric():
    runs = [{"method": m, "seed": s, "clean": c, "attacked": a}
            for m, s, c, a in [("plain", 0, 3.0, 40.0), ("plain", 1, 4.0, 50.0), ("plain", 2, 3.5, 45.0),
                               ("lap", 2, 4.0, 41.0), ("lap", 0, 3.5, 30.0), ("lap", 1, 4.5, 44.0)]]
    rows = summarize_metrics(runs, by=["method"], metrics=["clean", "attacked"], baseline={"method": "plain"})
    assert [r["method"] for r in rows] == ["plain", "lap"]
    for metric in ("clean", "attacked"):
        single = summarize(runs, by=["method"], metric=metric, baseline={"method": "plain"})
        for merged, one in zip(rows, single):
            assert {k: merged[k] for k in one} == one
    d = paired_difference([30.0, 44.0, 41.0], [40.0, 50.0, 45.0])
    assert rows[1]["Δ attacked vs plain (95 % CI)"] == f"{d.mean:+.2f} [{d.low:+.2f}, {d.high:+.2f}]"
    assert list(rows[1]) == ["method", "seeds", "clean", "Δ clean vs plain (95 % CI)", "attacked",
                             "Δ attacked vs plain (95 % CI)"]
    with pytest.raises(ValueError, match="`metrics`"):
        summarize_metrics(runs, by=["method"], metrics="clean")
