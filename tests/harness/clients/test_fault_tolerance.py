"""`m1bench run` against a fault-injecting endpoint on 127.0.0.1 (seeded): every planned sample ends
with a record, every injected fault is recorded as what it was, a fault delays only its own request,
and a dead endpoint ends the run fast and non-zero. Plus the circuit breaker's rules on their own."""
import time

from m1bench.harness.bench.faults import run_case
from m1bench.harness.bench.stub_server import FaultPlan
from m1bench.harness.clients.breaker import Breaker


def test_faulty_endpoint_every_sample_recorded_every_fault_named(tmp_path):
    plan = FaultPlan(0.2, seed=3, stall_s=2.0)
    row = run_case(tmp_path, plan, problems=30, samples=4, concurrency=8, timeout_s=1.0, max_retries=3, ttft_s=0.05)
    assert row["recorded"] == row["planned"] == 120  # nothing stalls, nothing is lost
    assert sum(plan.injected.values()) >= 15 and set(plan.injected) == set(FaultPlan.CLIENT_KIND)  # the whole mix
    assert row["client_errors"] == row["expected_client_errors"]  # each fault counted as the kind it was
    # a request errs only when all 4 of its attempts met a fault; its record names the last one's kind
    assert row["request_errors_by_kind"] == dict(plan.gave_up(4))
    assert row["retries"] == sum(plan.injected.values()) - row["request_errors"]
    assert row["exit"] == (1 if row["request_errors"] else 0)
    assert row["wall_s"] < 60  # bounded: runs stalled behind a shared cool-down took minutes


def test_dead_endpoint_ends_the_run_fast_and_non_zero(tmp_path):
    """It lists its model and fails every completion (HTTP 500): the breaker opens, the rest fail fast."""
    row = run_case(tmp_path, FaultPlan(1.0, names=("http_500",)), problems=50, samples=4, concurrency=8,
                   timeout_s=1.0, max_retries=3, ttft_s=0.05)
    assert row["exit"] == 1 and row["recorded"] == row["planned"] == 200
    assert row["process_s"] < 60
    assert set(row["request_errors_by_kind"]) <= {"server", "unavailable"}
    assert row["request_errors_by_kind"].get("unavailable", 0) > 150  # failed fast, not retried
    assert "every endpoint is failing" in row["stderr_tail"] and "HTTP 500" in row["stderr_tail"]


def test_breaker_opens_on_a_sustained_rate_only_and_recovers_through_a_probe():
    b = Breaker(window=10, min_attempts=4, open_rate=0.5, reset_s=0.05)
    for outcome in [False, False, True, False, False, True, False, False]:  # 2 of 8 failed: stays closed
        b.failure("x") if outcome else b.success()
    assert not b.is_open and b.allow()
    for _ in range(3):
        b.failure("HTTP 500")
    assert b.is_open and not b.allow() and b.times_opened == 1  # 5 of the last 10: open, refusing
    time.sleep(0.06)
    assert b.allow() and not b.allow()  # one probe per reset_s
    b.failure("still down")
    time.sleep(0.06)
    assert b.allow()
    b.success()  # the probe was answered: closed, with a clean window
    assert not b.is_open and list(b.outcomes) == [False]
    assert list(b.last_errors)[-1] == "still down"
