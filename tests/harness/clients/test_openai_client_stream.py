"""OpenAIClient's own stream handling over real HTTP: bytes split across TCP reads, comments and
keep-alives, CRLF, named error events, malformed and wrongly shaped chunks, streams cut before the
finish, what follows [DONE], redirects, and keep-alive connection reuse."""
import asyncio
import json

import pytest

from m1bench.harness.bench.stub_server import StubServer
from m1bench.harness.bench.zero_stub import _Connection, sse_response
from m1bench.harness.clients.openai_compat import OpenAIClient
from m1bench.harness.core.client import RequestError
from m1bench.harness.core.types import Request, Sampling

REQ = Request(messages=({"role": "user", "content": "hi"},), sampling=Sampling(max_tokens=8))


def chunk(delta=None, finish=None, **extra) -> bytes:
    obj = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta or {},
                                                                      "finish_reason": finish}], **extra}
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


USAGE = b'data: {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 4}}\n\n'
GOOD = [chunk({"content": "fine"}), chunk({}, "stop"), USAGE, b"data: [DONE]\n\n"]


def complete(url, **kw):
    async def go():
        client = OpenAIClient([url], "m", backoff_s=0.01, cooldown_s=0.01, **kw)
        try:
            return await client.complete(REQ), client.describe()
        finally:
            await client.aclose()
    return asyncio.run(go())


def test_stream_split_across_reads_with_comments_and_crlf():
    call = {"index": 0, "id": "call_9", "type": "function", "function": {"name": "lookup", "arguments": '{"q": '}}
    stream = b"".join([
        b": keep-alive\r\n\r\n",
        chunk({"role": "assistant", "reasoning_content": "think "}).replace(b"\n", b"\r\n"),
        chunk({"reasoning": "more"}), b": ping\n\n",
        chunk({"content": "ans"}), chunk({"content": "wer ✓"}),
        chunk({"tool_calls": [call]}), chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"x"}'}}]}),
        chunk({}, "tool_calls"), USAGE, b"data: [DONE]\n\n"])
    cuts = [0, 3, 30, 31, 95, 96, 150, 151, 152, 200, 260, 300, 301, 420, 600, len(stream) - 3, len(stream)]
    pieces = [stream[a:b] for a, b in zip(cuts, cuts[1:])]
    assert b"".join(pieces) == stream and len(pieces) > 12
    with StubServer(faults=[("raw", pieces)]) as srv:
        c, info = complete(srv.url)
    assert len(srv.requests) == 1 and info["endpoints"][0]["errors"] == {}
    assert c.text == "answer ✓" and c.reasoning == "think more" and c.finish_reason == "tool_calls"
    assert [(t.id, t.name, json.loads(t.arguments)) for t in c.tool_calls] == [("call_9", "lookup", {"q": "x"})]
    assert (c.prompt_tokens, c.completion_tokens) == (5, 4) and len(c.token_times) == 6
    assert c.token_times == sorted(c.token_times) and c.ttft_s == c.token_times[0] <= c.total_s


@pytest.mark.parametrize("bad, kind", [
    (b'event: error\ndata: {"message": "overloaded"}\n\n', "server"),  # named error event, no "error" key
    (b'data: {"error": {"message": "engine died"}}\n\n', "server"),
    (b"data: {not json\n\n", "malformed"),
    (b"data: [1, 2]\n\n", "malformed"),  # JSON, but not an object
    (b'data: {"choices": "nope"}\n\n', "malformed"),  # an object of the wrong shape
    (b"data: \xff\xfe\n\n", "malformed"),  # not UTF-8
    (b"", "truncated"),  # no finish reason before the stream ended
])
def test_broken_stream_is_retried_then_reported_with_its_cause(bad, kind):
    first = [chunk({"content": "partial"}), bad] + (GOOD[1:] if bad else [])
    # one broken attempt then a good answer (None: no fault); then broken every time
    with StubServer(lambda body: {"content": "fine"}, faults=[("raw", first), None, ("raw", first), ("raw", first)]) as srv:
        c, info = complete(srv.url)
        assert c.text == "fine" and len(srv.requests) == 2 and info["endpoints"][0]["errors"] == {kind: 1}
        with pytest.raises(RequestError) as e:
            complete(srv.url, max_retries=1)
        assert e.value.kind == kind and e.value.attempts == 2 and len(srv.requests) == 4


def test_nothing_after_done_is_taken():
    late = chunk({"content": " and more"}, "length")
    with StubServer(faults=[("raw", GOOD + [late, b"data: {broken\n\n"])]) as srv:
        c, _ = complete(srv.url)
    assert c.text == "fine" and c.finish_reason == "stop" and len(srv.requests) == 1


def test_redirect_is_not_followed():
    with StubServer(faults=[("status", 307, {"Location": "http://127.0.0.1:9/v1/chat/completions"})]) as srv:
        with pytest.raises(RequestError) as e:
            complete(srv.url)
    assert e.value.kind == "client" and "HTTP 307" in e.value.message and len(srv.requests) == 1


def test_connections_are_kept_alive_and_reused():
    async def go():
        connections = []

        class Counting(_Connection):
            def connection_made(self, transport):
                connections.append(transport)
                super().connection_made(transport)

        response = sse_response("ok")
        server = await asyncio.get_running_loop().create_server(lambda: Counting(response), "127.0.0.1", 0)
        client = OpenAIClient([f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"], "m")
        try:
            for _ in range(20):
                assert (await client.complete(REQ)).text == "ok"
            sequential = len(connections)
            outs = await asyncio.gather(*(client.complete(REQ) for _ in range(40)))
            assert all(o.text == "ok" and o.completion_tokens == 1 for o in outs)
        finally:
            await client.aclose()
            server.close()
        return sequential, len(connections)

    sequential, total = asyncio.run(go())
    assert sequential == 1 and total <= 40


def test_client_survives_a_new_event_loop():
    with StubServer() as srv:
        client = OpenAIClient([srv.url], "m")
        first = asyncio.run(client.complete(REQ))  # no aclose: the loop ends with the pool open
        second = asyncio.run(client.complete(REQ))
        asyncio.run(client.aclose())
    assert first.text == second.text == "echo: hi"


def test_proxy_from_the_environment_and_no_proxy(monkeypatch):
    with StubServer(lambda body: {"content": "via proxy"}) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url.rsplit("/v1", 1)[0])
        monkeypatch.setenv("NO_PROXY", "localhost")
        c, _ = complete("http://m1bench-endpoint.invalid/v1")  # only the proxy can answer this one
        assert c.text == "via proxy" and len(proxy.requests) == 1
        with StubServer(lambda body: {"content": "direct"}) as direct:
            c, _ = complete(direct.url.replace("127.0.0.1", "localhost"))
        assert c.text == "direct" and len(proxy.requests) == 1
