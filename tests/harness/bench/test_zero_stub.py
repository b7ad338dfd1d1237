"""The benchmark's zero-latency stub: valid chunked SSE answers on keep-alive connections, requests
split across reads or pipelined in one write, and a clear refusal of what it does not read."""
import asyncio

from m1bench.harness.bench.zero_stub import StubProcess, _Connection, sse_response, stub_capacity
from m1bench.harness.clients.sse import SSEParser
from m1bench.harness.serve.launcher import free_port


def _post(body: bytes) -> bytes:
    return b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nCONTENT-LENGTH: %d\r\n\r\n%s" % (len(body), body)


def dechunk(body: bytes) -> bytes:
    out = b""
    while True:
        size, _, body = body.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            assert body == b"\r\n"
            return out
        out, body = out + body[:n], body[n + 2:]


def test_answer_is_chunked_sse_with_content_finish_usage_and_done():
    head, _, body = sse_response("hello").partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head and head.startswith(b"HTTP/1.1 200")
    events = [e.data for e in SSEParser().feed(dechunk(body))]
    assert len(events) == 4 and b'"content": "hello"' in events[0] and b'"finish_reason": "stop"' in events[1]
    assert b'"usage"' in events[2] and events[3] == b"[DONE]"


def test_split_and_pipelined_requests_each_get_one_answer():
    async def go():
        response = sse_response("ok")
        server = await asyncio.get_running_loop().create_server(lambda: _Connection(response), "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        one = _post(b'{"model": "m"}')
        writer.write(one[:10])
        await asyncio.sleep(0.01)
        writer.write(one[10:40])
        await asyncio.sleep(0.01)
        writer.write(one[40:] + one + one)  # the end of the first, then two more in the same write
        got = await reader.readexactly(3 * len(response))
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        refused = await reader.read()
        writer.close()
        server.close()
        return response, got, refused

    response, got, refused = asyncio.run(go())
    assert got == 3 * response and refused.startswith(b"HTTP/1.1 411")


def test_stub_process_and_its_capacity_probe():
    with StubProcess(free_port()) as stub:
        cap = stub_capacity(stub, n=500, connections=8)
    assert cap["requests"] == 500 and cap["requests_per_s"] > 0 and cap["stub_cpu_us_per_request"] >= 0
