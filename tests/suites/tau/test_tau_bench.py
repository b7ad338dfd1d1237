"""TAU-bench: the agent loop, user simulator, reward and pass^k on the fixture shop domain
(tests/support/fixtures/tau), through the real runner (records, resume, regrade), and the adapter to the
tau_bench package exercised against an API-shaped stand-in (tests/support/fixtures/tau/fake_tau_bench)."""
import asyncio
import json
import math
import sys
from pathlib import Path

import pytest
from rich.console import Console

from m1bench.harness.bench.stub_server import StubServer
from m1bench.harness.core.client import RequestError
from m1bench.harness.core.types import Completion, ToolCall
from m1bench.harness.eval.config import validate
from m1bench.harness.eval.runner import Runner
from m1bench.suites.source import DataError
from m1bench.suites.tau.agent import M1_SYSTEM_PROMPT
from m1bench.suites.tau.env import STOP_TOKEN
from tests.support import FIXTURES
from tests.support.fixtures.tau.shop_domain import TASKS, TOOLS, WIKI

TAU = FIXTURES / "tau"
SHOP = TAU / "shop_domain.py"


@pytest.fixture(autouse=True)
def reports_in_tmp(tmp_path, monkeypatch):
    """Run reports go under the test's tmp dir, not the repository's reports/."""
    monkeypatch.setenv("M1BENCH_REPORTS_DIR", str(tmp_path / "reports"))


def quiet():
    return Console(file=open("/dev/null", "w"))


def call(name, args, cid=None):
    text = args if isinstance(args, str) else json.dumps(args)
    return Completion(text="", tool_calls=[ToolCall(name=name, arguments=text, id=cid)], finish_reason="tool_calls",
                      prompt_tokens=100, completion_tokens=10)


def say(text):
    return Completion(text=text, prompt_tokens=100, completion_tokens=len(text.split()))


def gold_then_done(task, step, shift=0):
    """The task's gold actions, one per step (from step 1 + shift), then a final message with the outputs."""
    acts = TASKS[task].actions
    i = step - 1 - shift
    if 0 <= i < len(acts):
        return call(acts[i].name, acts[i].kwargs, cid=f"c{step}")
    return say(f"All done: {' '.join(TASKS[task].outputs)} DONE")


def stop_when_done(req, task, sample, turn):
    """User simulator script: opens, then stops once the agent says DONE."""
    if turn == 1:
        return "Hi, I need help with an order."
    return STOP_TOKEN if "DONE" in req.messages[-1]["content"] else "Please go ahead."


class Scripted:
    """Plays the agent (requests keyed …/stepN) and the user simulator (…/userN)."""

    model_id = "scripted-tau"

    def __init__(self, agent, user=stop_when_done):
        self.agent, self.user = agent, user
        self.requests = []

    def describe(self):
        return {"engine": "scripted", "model_id": self.model_id}

    async def complete(self, req):
        self.requests.append(req)
        await asyncio.sleep(0.001 * (len(self.requests) % 3))  # let concurrent episodes interleave
        *_, pid, sample, tag = req.key.split("/")
        if tag.startswith("user"):
            return Completion(text=self.user(req, int(pid), int(sample), int(tag[4:])))
        out = self.agent(req, int(pid), int(sample), int(tag[4:]))
        if isinstance(out, Exception):
            raise out
        return out

    async def aclose(self):
        pass

    def agent_requests(self, task=None):
        return [r for r in self.requests if "/step" in r.key and (task is None or r.key.split("/")[2] == str(task))]


def cfg_for(out, suite="tau-custom", **opts):
    o = {"data": str(SHOP), "samples": 1, "user_endpoint": "model", **opts}
    if suite != "tau-custom":
        o.pop("data")
    return validate({"run": {"output_dir": str(out), "concurrency": 4},
                     "sampling": {"max_tokens": 256}, "suites": {suite: o}})


def run(cfg, client):
    return asyncio.run(Runner(cfg, client=client, console=quiet()).run())


def records(out):
    return [json.loads(line) for line in (Path(out) / "records.jsonl").read_text().splitlines()]


def metric(results, suite, name):
    return next(m["value"] for m in results["suites"][suite]["metrics"] if m["metric"] == name)


# ---- reward ---------------------------------------------------------------------------------
def test_gold_replaying_agent_scores_one(tmp_path):
    client = Scripted(lambda req, task, sample, step: gold_then_done(task, step))
    res = run(cfg_for(tmp_path, samples=2), client)
    s = res["suites"]["tau-custom"]
    assert s["counts"]["graded"] == 6 and s["counts"]["request_errors"] == 0
    assert metric(res, "tau-custom", "avg_reward") == 1.0
    assert metric(res, "tau-custom", "pass^1") == 1.0 and metric(res, "tau-custom", "pass^2") == 1.0
    recs = records(tmp_path)
    assert {r["score"]["details"]["end"] for r in recs} == {"user_stop"}
    # every message, tool call and tool result is in the record
    t1 = next(r for r in recs if r["problem_id"] == "1")["completion"]["trajectory"]
    tool_results = [e for e in t1 if e.get("role") == "tool"]
    assert [e["name"] for e in tool_results] == [a.name for a in TASKS[1].actions]
    assert json.loads(tool_results[1]["content"])["items"][0]["price"] == 89.0
    assert t1[0] == {"role": "user", "content": "Hi, I need help with an order."}
    assert t1[-2] == {"role": "user", "content": STOP_TOKEN, "step": len(TASKS[1].actions) + 1}
    assert t1[-1]["event"] == "end" and t1[-1]["reward"] == 1.0 and t1[-1]["reward_info"]["outputs"] == {"89": True}
    # the agent saw the M1 system prompt lines, the domain policy and the domain's tools
    first = client.agent_requests()[0]
    assert first.messages[0]["content"].startswith(M1_SYSTEM_PROMPT) and WIKI in first.messages[0]["content"]
    assert [t["function"]["name"] for t in first.tools] == [t.get_info()["function"]["name"] for t in TOOLS]
    # the tool result answers the call it belongs to
    second = next(r for r in client.requests if r.key == "tau-custom/v2/0/0/step2")
    assert second.messages[-2]["tool_calls"][0]["id"] == "c1" and second.messages[-1]["tool_call_id"] == "c1"


def test_wrong_action_or_missing_output_scores_zero(tmp_path):
    def agent(req, task, sample, step):
        if task == 0 and step == 3:  # cancels with the wrong reason
            return call("cancel_pending_order", {"order_id": "#W1", "reason": "ordered by mistake"})
        if task == 2 and step > len(TASKS[2].actions):  # right actions, but never says the price
            return say("Your order is delivered. DONE")
        return gold_then_done(task, step)

    res = run(cfg_for(tmp_path), Scripted(agent))
    by_task = {r["problem_id"]: r["score"] for r in records(tmp_path)}
    assert by_task["0"]["correct"] is False and by_task["0"]["details"]["reward"] == 0.0
    assert by_task["0"]["details"]["reward_info"]["r_actions"] is False
    assert by_task["1"]["correct"] is True
    assert by_task["2"]["correct"] is False
    assert by_task["2"]["details"]["reward_info"]["r_actions"] is True
    assert by_task["2"]["details"]["reward_info"]["outputs"] == {"199": False}
    assert metric(res, "tau-custom", "avg_reward") == pytest.approx(1 / 3)


def test_transfer_tool_ends_the_episode(tmp_path):
    def agent(req, task, sample, step):
        return call("transfer_to_human_agents", {"summary": "needs a human"}) if step == 1 else say("?")

    run(cfg_for(tmp_path, limit=1), client := Scripted(agent))
    rec = records(tmp_path)[0]
    assert rec["score"]["details"]["end"] == "terminate_tool" and rec["score"]["correct"] is False
    assert len(client.agent_requests()) == 1


@pytest.mark.parametrize("bad", ['{"email": "ada@exa', '["ada@example.com"]', "null"])
def test_a_malformed_tool_call_fails_the_task_as_tau_bench_does(tmp_path, bad):
    def agent(req, task, sample, step):
        return call("find_user_id_by_email", bad, cid="bad1") if step == 1 else gold_then_done(task, step, shift=1)

    client = Scripted(agent)
    res = run(cfg_for(tmp_path, limit=1), client)
    rec = records(tmp_path)[0]
    assert len(client.agent_requests()) == 1 and rec["score"]["correct"] is False
    assert rec["score"]["details"]["end"] == "malformed_call" and rec["score"]["details"]["reward"] == 0.0
    assert metric(res, "tau-custom", "pass^1") == 0.0


def test_a_respond_tool_call_is_a_message_to_the_user(tmp_path):
    """tau_bench turns a tool call named `respond` into its respond action: the content goes to the
    user simulator and the episode goes on (it raised an internal error here)."""
    def agent(req, task, sample, step):
        if step == 1:
            return call("respond", {"content": "How can I help?"}, cid="r1")
        return gold_then_done(task, step, shift=1)

    client = Scripted(agent)
    run(cfg_for(tmp_path, limit=1), client)
    rec = records(tmp_path)[0]
    assert rec["status"] == "ok" and rec["score"]["correct"] is True  # replayed: the same reward
    second = client.agent_requests()[1]
    assert second.messages[-2]["tool_calls"][0]["function"]["name"] == "respond"
    assert second.messages[-1]["role"] == "user"


@pytest.mark.parametrize("bad", ['{"email": "ada@exa', '["ada@example.com"]', "null"])
def test_malformed_tool_call_goes_back_as_tool_error_with_retry(tmp_path, bad):
    def agent(req, task, sample, step):
        if step == 1:
            return call("find_user_id_by_email", bad, cid="bad1")
        return gold_then_done(task, step, shift=1)

    client = Scripted(agent)
    run(cfg_for(tmp_path, limit=1, malformed_calls="retry"), client)
    second = client.agent_requests()[1]
    assert second.messages[-2]["tool_calls"][0]["function"]["arguments"] == bad  # what the model said, kept
    err = second.messages[-1]
    assert err["role"] == "tool" and err["tool_call_id"] == "bad1" and err["content"].startswith("Error: malformed call")
    rec = records(tmp_path)[0]
    assert rec["score"]["correct"] is True  # not executed, then the gold actions
    assert next(e for e in rec["completion"]["trajectory"] if e.get("role") == "tool")["malformed"]


def test_only_the_first_of_several_tool_calls_runs(tmp_path):
    def agent(req, task, sample, step):
        out = gold_then_done(task, step)
        if step == 3:  # the right cancel, plus a second call that would change the address
            out.tool_calls.append(ToolCall("modify_pending_order_address", json.dumps({"order_id": "#W1", "address": "x"})))
        return out

    run(cfg_for(tmp_path, limit=1), Scripted(agent))
    rec = records(tmp_path)[0]
    assert rec["score"]["correct"] is True
    assert next(e for e in rec["completion"]["trajectory"] if e.get("step") == 3)["dropped_tool_calls"] == 1


def test_step_limit_ends_with_reward_zero_and_is_marked(tmp_path):
    client = Scripted(lambda req, task, sample, step: call("get_order_details", {"order_id": "#W1"}))
    res = run(cfg_for(tmp_path, limit=1, max_steps=3), client)
    rec = records(tmp_path)[0]
    assert rec["completion"]["finish_reason"] == "max_steps"
    assert rec["score"]["correct"] is False and rec["score"]["details"]["end"] == "max_steps"
    assert rec["score"]["details"]["reward"] == 0.0 and rec["score"]["details"]["steps"] == 3
    assert len(client.agent_requests()) == 3
    assert res["suites"]["tau-custom"]["counts"]["graded"] == 1


# ---- pass^k, resume, regrade ------------------------------------------------------------------
def test_pass_hat_k_over_trials(tmp_path):
    def agent(req, task, sample, step):
        if task == 0 and sample >= 2 and step == 3:
            return call("cancel_pending_order", {"order_id": "#W1", "reason": "ordered by mistake"})
        if task == 2 and step > 2:
            return say("done DONE")  # never the required output
        return gold_then_done(task, step)

    client = Scripted(agent)
    res = run(cfg_for(tmp_path, samples=4), client)
    episodes = [r.key.rsplit("/", 1)[0] for r in client.requests]
    assert any(a != b and a in episodes[i + 1:] for i, (a, b) in enumerate(zip(episodes, episodes[1:])))  # interleaved
    c = {0: 2, 1: 4, 2: 0}  # successes of 4 trials per task
    for k in range(1, 5):
        want = sum(math.comb(c[t], k) / math.comb(4, k) for t in c) / 3
        assert metric(res, "tau-custom", f"pass^{k}") == pytest.approx(want)
    assert metric(res, "tau-custom", "avg_reward") == pytest.approx(6 / 12)


def test_failed_episodes_are_redone_and_finished_ones_are_not(tmp_path):
    def flaky(req, task, sample, step):
        if task == 1 and step == 2:
            return RequestError("server", "HTTP 503")
        return gold_then_done(task, step)

    res = run(cfg_for(tmp_path), Scripted(flaky))
    assert [r["status"] for r in records(tmp_path)].count("error") == 1
    # as tau_bench scores it: the errored task is a failure over the 3 planned tasks, and counted apart
    assert metric(res, "tau-custom", "pass^1") == pytest.approx(2 / 3)
    assert res["suites"]["tau-custom"]["counts"]["request_errors"] == 1
    assert res["suites"]["tau-custom"]["counts"]["graded"] == 2
    again = Scripted(lambda req, task, sample, step: gold_then_done(task, step))
    res = run(cfg_for(tmp_path), again)
    assert {r.key.split("/")[2] for r in again.requests} == {"1"}  # only the failed episode, from its start
    assert again.agent_requests()[0].key.endswith("/step1")
    assert res["suites"]["tau-custom"]["counts"]["graded"] == 3 and metric(res, "tau-custom", "avg_reward") == 1.0
    third = Scripted(lambda *a: pytest.fail("nothing left to send"))
    run(cfg_for(tmp_path), third)
    assert third.requests == []


def test_regrade_replays_the_trajectory(tmp_path):
    run(cfg_for(tmp_path), Scripted(lambda req, task, sample, step: gold_then_done(task, step)))
    recs = records(tmp_path)
    for r in recs:
        r["score"], r["grader"] = None, "old"
    tampered = next(r for r in recs if r["problem_id"] == "1")
    tool = next(e for e in tampered["completion"]["trajectory"] if e.get("role") == "tool")
    tool["content"] = "u_somebody_else"
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    res = run(cfg_for(tmp_path), Scripted(lambda *a: pytest.fail("a finished episode was re-sent")))
    latest = {r["problem_id"]: r for r in records(tmp_path)}
    assert latest["0"]["regraded"] and latest["0"]["score"]["correct"] is True
    assert latest["1"]["score"] is None and "replayed observation differs" in latest["1"]["grade_error"]
    assert res["suites"]["tau-custom"]["counts"]["grading_errors"] == 1


# ---- user simulator over HTTP, the tau_bench adapter, config errors ---------------------------------
def test_user_simulator_on_its_own_endpoint(tmp_path):
    def user_model(body):
        agent_said = body["messages"][-1]["content"]
        return {"content": STOP_TOKEN if "DONE" in agent_said else "I am Ada, ada@example.com."}

    with StubServer(user_model) as stub:
        cfg = cfg_for(tmp_path, limit=1, user_endpoint=stub.url, user_model="sim-4.1", user_temperature=0.5,
                      user_api_key_env="M1BENCH_TEST_NO_KEY")
        res = run(cfg, Scripted(lambda req, task, sample, step: gold_then_done(task, step),
                                user=lambda *a: pytest.fail("the agent's client played the user")))
        bodies = stub.requests
    assert res["suites"]["tau-custom"]["metrics"][0]["value"] == 1.0
    assert len(bodies) == 2 and all(b["model"] == "sim-4.1" and b["temperature"] == 0.5 for b in bodies)
    sys_msg, greeting = bodies[0]["messages"]
    assert sys_msg["role"] == "system" and TASKS[0].instruction in sys_msg["content"] and STOP_TOKEN in sys_msg["content"]
    assert greeting == {"role": "user", "content": "Hi! How can I help you today?"}
    assert [m["role"] for m in bodies[1]["messages"]] == ["system", "user", "assistant", "user"]
    assert "DONE" in bodies[1]["messages"][-1]["content"]
    assert res["suites"]["tau-custom"]["environment"]["user_simulator"]["model"] == "sim-4.1"


@pytest.fixture
def fresh_tau_bench():
    """No tau_bench modules imported before or after the test (the stand-in must not leak)."""
    def forget():
        for m in [m for m in sys.modules if m == "tau_bench" or m.startswith("tau_bench.")]:
            del sys.modules[m]
    forget()
    yield
    forget()


def test_tau_bench_package_adapter(tmp_path, monkeypatch, fresh_tau_bench):
    monkeypatch.syspath_prepend(str(TAU / "fake_tau_bench"))
    client = Scripted(lambda req, task, sample, step: gold_then_done(task, step))
    res = run(cfg_for(tmp_path, suite="tau-retail"), client)
    s = res["suites"]["tau-retail"]
    assert s["metrics"][0]["metric"] == "avg_reward" and s["metrics"][0]["value"] == 1.0
    assert s["data"]["source"] == "tau_bench:retail/test" and s["data"]["user_prompt"] == "tau_bench"
    assert s["grader"].startswith("tau_bench")
    user_reqs = [r for r in client.requests if "/user" in r.key]
    assert user_reqs[0].messages[0]["content"] == f"FAKE-TAU user prompt. Instruction: {TASKS[0].instruction}"
    assert {r["score"]["details"]["reward_info"]["reward"] for r in records(tmp_path)} == {1.0}


def test_missing_tau_bench_says_how_to_install(tmp_path, monkeypatch, fresh_tau_bench):
    monkeypatch.setitem(sys.modules, "tau_bench", None)
    with pytest.raises(DataError, match=r"tau-airline: the tau_bench package .*git\+https://github.com/sierra-research/tau-bench"):
        run(cfg_for(tmp_path, suite="tau-airline"), Scripted(lambda *a: pytest.fail("sent")))


@pytest.mark.parametrize("opts,match", [
    ({"data": None}, r"suites.tau-custom.data: a domain file"),
    ({"data": "/nonexistent/domain.py"}, r"no such domain file"),
    ({"max_steps": 0}, r"suites.tau-custom.max_steps: must be >= 1"),
    ({"user_endpoint": "localhost:8000"}, r"suites.tau-custom.user_endpoint: expected an http\(s\) base URL"),
    ({"user_endpoint": "https://api.openai.com/v1", "user_api_key_env": "M1BENCH_TEST_UNSET_KEY"},
     r"suites.tau-custom.user_api_key_env: .* needs an API key in \$M1BENCH_TEST_UNSET_KEY"),
])
def test_bad_setup_fails_before_any_request(tmp_path, opts, match):
    with pytest.raises(DataError, match=match):
        run(cfg_for(tmp_path, **opts), Scripted(lambda *a: pytest.fail("sent")))


def test_airline_with_a_split_it_does_not_have_is_a_config_error(tmp_path, capsys):
    """tau-airline ships test tasks only: `m1bench run` with task_split = "train" stops before any
    request with one line naming the key (it ended in a traceback)."""
    from m1bench.harness.cli import main

    config = tmp_path / "tau.toml"
    config.write_text(f'[run]\noutput_dir = "{tmp_path / "run"}"\n[suites.tau-airline]\ntask_split = "train"\n'
                      'user_endpoint = "model"\n')
    with pytest.raises(SystemExit) as done:
        main(["run", str(config), "--endpoint", "http://127.0.0.1:9/v1", "--model", "m"])
    assert done.value.code == 2
    assert "suites.tau-airline.task_split: the airline domain has only the 'test' split" in \
        capsys.readouterr().err.replace("\n", "")
