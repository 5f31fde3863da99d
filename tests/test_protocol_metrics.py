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


def test_shards_write_their_runs_and_read_every_shard(tmp_path):
    from protocol import Choice, Record, load_choice, save_choice

    record = Record(argv=["experiments/x.py"])
    first = record.write_runs(tmp_path / "exp", [{"method": "a", "seed": 0, "error": 1.5}], shard="_s0")
    assert first == [{"method": "a", "seed": "0", "error": "1.5"}]
    both = record.write_runs(tmp_path / "exp", [{"method": "a", "seed": 1, "error": 2.5}], shard="_s1")
    assert [r["seed"] for r in both] == ["0", "1"] and (tmp_path / "exp_runs_s1.md").is_file()
    assert summarize(both, by=["method"], metric="error")[0]["error"] == "2.00 ± 0.71"
    choice = Choice("λ", 10, (1, 10), (3.0, 2.0), (100, 101), True)
    assert load_choice(save_choice(choice, tmp_path / "c.json")) == choice
