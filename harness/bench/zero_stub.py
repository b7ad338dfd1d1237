"""A zero-latency OpenAI-compatible chat endpoint, for measuring clients (not servers).

Every POST gets the same finished streaming answer at once: HTTP/1.1 keep-alive, chunked transfer
encoding with one SSE event per chunk (as uvicorn/vLLM send them): a content delta, the finish
reason, the usage, `[DONE]`. Raw asyncio protocol, no HTTP framework, so that it costs far less per
request than any client it measures; `stub_capacity` measures it alone with a raw-socket load that
costs less still. Run it in its own process:

    python -m m1bench.harness.bench.zero_stub --port 8123 [--content "The answer is \\boxed{7}."]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time


def sse_response(content: str) -> bytes:
    """The whole HTTP response: status line, headers, and the SSE events as chunks."""
    base = {"id": "s", "object": "chat.completion.chunk", "created": 0, "model": "stub"}
    events = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": content}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**base, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}},
    ]
    chunks = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n") + body


class _Connection(asyncio.Protocol):
    """Reads requests (headers + Content-Length body, pipelined or not) and answers each at once."""

    def __init__(self, response: bytes):
        self.response, self.buf, self.transport = response, b"", None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes):
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            head = self.buf[:end].lower()
            at = head.find(b"\r\ncontent-length:")
            if at < 0:  # a chunked request body: clients under test send Content-Length
                self.transport.write(b"HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                self.transport.close()
                return
            line_end = head.find(b"\r\n", at + 2)
            length = int(head[at + 17:line_end if line_end >= 0 else len(head)])
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length:]
            self.transport.write(self.response)


async def serve(port: int, content: str) -> None:
    response = sse_response(content)
    server = await asyncio.get_running_loop().create_server(lambda: _Connection(response), "127.0.0.1", port,
                                                            backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


class StubProcess:
    """The stub in a child process (its own core), with its CPU time readable from /proc."""

    def __init__(self, port: int, content: str = "ok"):
        self.port, self.url = port, f"http://127.0.0.1:{port}/v1"
        self.proc = subprocess.Popen([sys.executable, "-m", "m1bench.harness.bench.zero_stub", "--port", str(port),
                                      "--content", content], stdout=subprocess.PIPE, text=True)

    def __enter__(self) -> "StubProcess":
        if self.proc.stdout.readline().strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"zero-latency stub on port {self.port} did not start")
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(10)

    def cpu_s(self) -> float:
        """User + system CPU seconds the stub has used so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _raw_load(port: int, n: int, connections: int) -> float:
    """`n` requests over `connections` keep-alive sockets, one in flight per socket, the answer's end
    found by its last chunk; seconds taken. About as little client work per request as there is."""
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Content-Length: 2\r\n\r\n{}")
    left = [n]

    async def worker():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while left[0] > 0:
            left[0] -= 1
            writer.write(request)
            await reader.readuntil(b"0\r\n\r\n")
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.perf_counter() - t0


def stub_capacity(stub: StubProcess, n: int = 20000, connections: int = 64) -> dict:
    """The stub alone: requests/s under the raw load, and the stub's CPU per request."""
    asyncio.run(_raw_load(stub.port, 1000, connections))  # warm-up
    cpu0 = stub.cpu_s()
    wall = asyncio.run(_raw_load(stub.port, n, connections))
    cpu = stub.cpu_s() - cpu0
    return {"requests": n, "connections": connections, "requests_per_s": n / wall,
            "stub_cpu_us_per_request": cpu / n * 1e6, "stub_requests_per_s_per_core": n / cpu if cpu else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m m1bench.harness.bench.zero_stub", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--content", default="ok", help="the answer's text")
    args = p.parse_args(argv)
    asyncio.run(serve(args.port, args.content))
    return 0


if __name__ == "__main__":
    sys.exit(main())
