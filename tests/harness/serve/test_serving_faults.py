"""The evaluation core's OpenAI client against a local fault-injecting server, many requests at once:
connections dropped before and during the answer, 429s, 500s, answers slower than the client's
timeout, malformed JSON in the stream and in an error body. Every request must end answered (with
its own answer) or as a recorded error naming its cause; none may hang; none is answered twice."""
import asyncio
import json
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from m1bench.harness.core.client import RequestError
from m1bench.harness.clients.openai_compat import OpenAIClient
from m1bench.harness.core.types import Request, Sampling

CLIENT_TIMEOUT_S = 1.0

# Per request key: the faults its attempts meet, in order; attempts after the list are answered.
TRANSIENT = {"drop": ["drop"], "drop-mid": ["drop_mid"], "429": ["429", "429"], "500": ["500"],
             "slow": ["slow"], "malformed-chunk": ["malformed_chunk"], "malformed-error": ["malformed_error"],
             "mixed": ["429", "drop_mid", "500"]}
PERSISTENT = {"always-500": ("500", "server"), "always-429": ("429", "rate_limit"), "always-drop": ("drop", "connection"),
              "always-slow": ("slow", "timeout"), "always-malformed": ("malformed_chunk", "malformed")}


class FaultServer:
    def __init__(self):
        self.attempts: Counter = Counter()
        self.answered: Counter = Counter()  # complete answers sent, per key
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = body["messages"][-1]["content"]
                with server.lock:
                    n = server.attempts[key]
                    server.attempts[key] += 1
                name = key.split("#")[0]
                if name in PERSISTENT:
                    fault = PERSISTENT[name][0]
                else:
                    plan = TRANSIENT.get(name, [])
                    fault = plan[n] if n < len(plan) else None
                if fault == "drop":
                    return self._reset()
                if fault in ("429", "500"):
                    return self._status(int(fault), json.dumps({"error": {"message": f"injected {fault}"}}).encode())
                if fault == "malformed_error":
                    return self._status(503, b"{not json")
                if fault == "slow":
                    time.sleep(CLIENT_TIMEOUT_S * 2.5)
                self._stream(body, key, fault)

            def _reset(self):  # TCP RST: linger 0, and the file objects' references dropped so close() is real
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.rfile.close()
                self.wfile.close()
                self.connection.close()

            def _status(self, code, payload, headers=()):
                self.send_response(code)
                if code == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _stream(self, body, key, fault):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()

                def send(raw: str):
                    self.wfile.write(f"data: {raw}\n\n".encode())
                    self.wfile.flush()

                def chunk(delta, finish=None):
                    send(json.dumps({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}))

                chunk({"role": "assistant", "content": "echo "})
                if fault == "drop_mid":
                    return self._reset()
                if fault == "malformed_chunk":
                    send('{"id": "x", "choices": [{"index": 0, "delta": {"content": "bro')
                chunk({"content": key})
                chunk({}, "stop")
                good = fault != "malformed_chunk"  # a stream with a broken chunk is no answer
                send(json.dumps({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                                 "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}))
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                with server.lock:
                    server.answered[key] += good

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256  # a real server's backlog; the default 5 refuses a burst of connections

            def handle_error(self, request, client_address):  # clients hanging up are part of the test
                pass

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def run_mixed(names: list[str], copies: int = 3):
    keys = [f"{name}#{i}" for i in range(copies) for name in names]
    with FaultServer() as server:
        client = OpenAIClient([server.url], model="stub", timeout_s=CLIENT_TIMEOUT_S, max_retries=3,
                              backoff_s=0.01, max_backoff_s=0.05, cooldown_s=0.0)

        async def one(key):
            request = Request(messages=({"role": "user", "content": key},), sampling=Sampling(max_tokens=8), key=key)
            try:
                return await asyncio.wait_for(client.complete(request), timeout=60)  # a hang fails here
            except RequestError as e:
                return e

        async def main():
            try:
                return await asyncio.gather(*(one(k) for k in keys))
            finally:
                await client.aclose()

        t0 = time.monotonic()
        outcomes = dict(zip(keys, asyncio.run(main())))
        assert time.monotonic() - t0 < 45
    for key, out in outcomes.items():
        name = key.split("#")[0]
        if name in PERSISTENT:
            assert isinstance(out, RequestError), f"{key}: {out!r}"
            kind = PERSISTENT[name][1]
            assert out.kind == kind and out.message, f"{key}: {out.kind} {out.message}"
            assert out.attempts == 4 and 1 <= server.attempts[key] <= 4  # an attempt may die on a stale connection
        else:
            assert not isinstance(out, RequestError), f"{key}: {out}"
            assert out.text == f"echo {key}", f"{key}: got another request's answer: {out.text!r}"
            assert server.answered[key] == 1  # answered once: no retry after a complete answer


def test_every_request_ends_answered_or_as_a_named_error_under_mixed_faults():
    run_mixed([*TRANSIENT, *PERSISTENT, "ok"])
