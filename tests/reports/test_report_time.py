"""The report's generation time is the wall clock of the suite's generation (first request sent to
last answer), not the sum of concurrent requests' times (which read 658 s for a 35.7 s run)."""
from __future__ import annotations

import json

import pytest

from m1bench.harness.cli import main as cli_main
from tests.support.crafted_runs import make_run, rates


def concurrent_run(tmp_path, n=20, each_s=10.0):
    """n requests of each_s seconds, all in flight together, answered in the same second."""
    run = make_run(tmp_path / "run", {"aime2024": rates(n, [1] * n, 1)})
    records = [json.loads(ln) for ln in (run / "records.jsonl").read_text().splitlines()]
    for i, r in enumerate(records):
        r["time"] = "2026-01-01T00:00:10+00:00" if i else "2026-01-01T00:00:11+00:00"  # one answer a second later
        r["completion"]["total_s"] = each_s
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


def test_generation_time_is_wall_clock_not_a_sum(tmp_path):
    run = concurrent_run(tmp_path)
    with pytest.raises(SystemExit) as e:
        cli_main(["report", str(run), "-o", str(tmp_path / "out")])
    assert e.value.code == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    # sent at 0 s (10 s before 10 s), last answer at 11 s: 11 s of wall clock; the sum would be 200 s
    assert report["suites"]["aime2024"]["time"]["generation_s"] == pytest.approx(11.0)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "generation wall s" in md and "200" not in md.split("generation wall s")[1].split("\n\n")[0]
