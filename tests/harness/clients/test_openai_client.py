"""OpenAI-compatible client against a local stub server: streaming, reasoning, tool calls, usage,
timings, retries (429 with Retry-After, 5xx, resets, timeouts), failover across replicas."""
import asyncio
import json

import pytest

from m1bench.harness.bench.stub_server import StubServer
from m1bench.harness.clients.openai_compat import OpenAIClient
from m1bench.harness.core.client import RequestError
from m1bench.harness.core.types import Request, Sampling
from tests.support import dead_url

REQ = Request(messages=({"role": "user", "content": "hi there"},), sampling=Sampling(max_tokens=16, seed=3, top_k=5))


def run(coro):
    return asyncio.run(coro)


async def _complete(client, req=REQ):
    try:
        return await client.complete(req)
    finally:
        await client.aclose()


def test_streaming_reasoning_usage_and_timings():
    ans = {"reasoning": "let me think about it", "content": "the answer is 42"}
    with StubServer(lambda body: ans) as srv:
        c = run(_complete(OpenAIClient([srv.url], "m", backoff_s=0.01)))
    assert c.text == "the answer is 42" and c.reasoning == "let me think about it"
    assert c.finish_reason == "stop" and c.prompt_tokens == 2 and c.completion_tokens == len(c.token_times)  # the stub: prompt words
    assert c.ttft_s is not None and c.ttft_s <= c.token_times[-1] <= c.total_s
    body = srv.requests[0]
    assert body["stream"] is True and body["seed"] == 3 and body["top_k"] == 5 and body["max_tokens"] == 16
    assert body["top_p"] == 0.95 and body["temperature"] == 1.0


def test_inline_think_and_tool_calls_carried_through():
    calls = [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    with StubServer(lambda body: {"content": "<think>plan</think>calling", "tool_calls": calls}) as srv:
        c = run(_complete(OpenAIClient([srv.url], "m")))
    assert c.reasoning == "plan" and c.text == "calling" and c.finish_reason == "tool_calls"
    assert [(t.name, json.loads(t.arguments)) for t in c.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert c.tool_calls[0].id == "call_0"


def test_length_finish_is_truncation():
    with StubServer(lambda body: {"content": "abc", "finish": "length"}) as srv:
        c = run(_complete(OpenAIClient([srv.url], "m")))
    assert c.truncated


@pytest.mark.parametrize("fault", [("status", 429, {"Retry-After": "0"}), ("status", 503), "reset", "malformed",
                                   "error_event"])
def test_retries_transient_failures(fault):
    with StubServer(lambda body: {"content": "fine, thanks"}, faults=[fault]) as srv:
        c = run(_complete(OpenAIClient([srv.url], "m", backoff_s=0.01, cooldown_s=0.01)))
    assert c.text == "fine, thanks" and len(srv.requests) == 2


def test_timeout_is_retried_then_reported():
    with StubServer(lambda body: {"content": "late"}, faults=[("sleep", 2), ("sleep", 2)]) as srv:
        client = OpenAIClient([srv.url], "m", timeout_s=0.3, max_retries=1, backoff_s=0.01, cooldown_s=0.01)
        with pytest.raises(RequestError) as e:
            run(_complete(client))
    assert e.value.kind == "timeout" and e.value.attempts == 2


def test_client_error_is_not_retried():
    with StubServer(lambda body: {"content": "x"}, faults=[("status", 400)]) as srv:
        with pytest.raises(RequestError) as e:
            run(_complete(OpenAIClient([srv.url], "m", backoff_s=0.01)))
    assert e.value.kind == "client" and len(srv.requests) == 1


def test_failover_to_healthy_replica_and_spread():
    async def many(client, n):
        try:
            return await asyncio.gather(*(client.complete(REQ) for _ in range(n)))
        finally:
            await client.aclose()

    with StubServer(lambda b: {"content": "A"}) as a, StubServer(lambda b: {"content": "B"}, faults=[("status", 500)] * 2) as b:
        client = OpenAIClient([dead_url(), a.url, b.url], "m", backoff_s=0.01, cooldown_s=60)
        outs = run(many(client, 12))
        info = client.describe()["endpoints"]
    assert all(o.text in ("A", "B") for o in outs)
    dead, ok_a, ok_b = info
    assert dead["served"] == 0 and dead["errors"].get("connection", 0) >= 1
    assert ok_a["served"] > 0 and ok_b["served"] + ok_a["served"] == 12
    assert ok_b["errors"].get("server", 0) >= 1  # b failed, was taken out, its requests went elsewhere


def test_all_replicas_down_reports_connection_error():
    client = OpenAIClient([dead_url(), dead_url()], "m", max_retries=2, backoff_s=0.01, cooldown_s=0.01)
    with pytest.raises(RequestError) as e:
        run(_complete(client))
    assert e.value.kind == "connection" and e.value.attempts == 3
