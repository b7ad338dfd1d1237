"""The contest-date window is lcb_runner's, checked on the real release_v6 dates: both bounds are
midnights and inclusive, so the end date keeps AtCoder's midnight problems and drops LeetCode's
06:30 and 18:30 ones."""
import json

import pytest

from m1bench.suites import get_suite
from tests.support import REPO

DATES = REPO.parent / "shared" / "realdata" / "livecodebench" / "dates" / "release_v6_dates_from_2024-07-27.jsonl"


@pytest.fixture(scope="module")
def rows_file(tmp_path_factory):
    if not DATES.exists():
        pytest.skip("../shared/realdata is not here")
    out = tmp_path_factory.mktemp("lcb") / "rows.jsonl"
    with open(out, "w") as f:
        for line in DATES.read_text().splitlines():
            d = json.loads(line)
            f.write(json.dumps({**d, "question_title": d["question_id"], "question_content": "p", "starter_code": "",
                                "difficulty": "easy", "public_test_cases": "[]", "private_test_cases": "[]",
                                "metadata": "{}"}) + "\n")
    return out


@pytest.mark.parametrize("end,count,dropped", [
    ("2025-02-01", 329, {"3697", "3701", "3736", "3743", "3753", "3754"}),  # lcb_runner: 329 (a date-only rule: 335)
    ("2025-05-01", 454, set()),
])
def test_the_window_is_lcb_runners(rows_file, end, count, dropped):
    suite = get_suite("livecodebench")
    problems, info = suite.load({"data": str(rows_file), "end_date": end, "limit": None})
    ids = {p.id for p in problems}
    assert len(problems) == count == info["in_window"]
    assert not ids & dropped
    day = {json.loads(line)["question_id"]: json.loads(line)["contest_date"] for line in DATES.read_text().splitlines()}
    assert all(day[d].startswith(end) for d in dropped)  # each is dated later on the end date itself


def test_m1bench_run_reports_the_window_it_kept(rows_file, tmp_path):
    from m1bench.harness.bench.stub_server import StubServer
    from m1bench.harness.cli import main

    config = tmp_path / "lcb.toml"
    config.write_text(f'[run]\noutput_dir = "{tmp_path / "run"}"\n[suites.livecodebench]\ndata = "{rows_file}"\n'
                      'end_date = "2025-02-01"\nlimit = 1\nsamples = 1\n')
    with StubServer(lambda body: {"content": "```python\nprint(1)\n```"}) as stub, pytest.raises(SystemExit) as done:
        main(["run", str(config), "--endpoint", stub.url, "--model", "stub"])
    assert done.value.code == 0
    data = json.loads((tmp_path / "run" / "results.json").read_text())["suites"]["livecodebench"]["data"]
    assert data["in_window"] == 329 and data["window"] == ["2024-08-01", "2025-02-01"]
