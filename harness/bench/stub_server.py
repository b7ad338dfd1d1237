"""A local OpenAI-compatible chat endpoint whose answers, timing and faults are set by the caller:
what the server profiler, the clients and the runner are measured and tested against. Binds
127.0.0.1 only; stdlib, no model. (`zero_stub` is the other stub: a raw-asyncio endpoint with no
per-request work at all, for measuring a client's own overhead.)

Answers: `responder(body) -> {"content", "reasoning", "tool_calls": [{"name", "arguments"}],
"finish"}`; the default echoes the last message, `words_responder` answers `max_tokens` words
("tok tok …", finish "length": a profiler's steady stream). Text streams in
pieces of `chunk` characters, reasoning first (as `reasoning_content`), one piece per token:
time to first token = ttft_s + prefill_s_per_word × (words in the prompt), then one piece per
tpot_s. Non-streaming requests get the whole message after the same total time.

Faults, one per request before it is answered: `faults` is a list consumed in order (None: no
fault) or a callable `(body) -> fault`:
    ("status", code[, headers[, body bytes]])  an error response (JSON error body by default)
    ("sleep", seconds)                          a slow answer
    ("reset", after_pieces)                     TCP reset, before the answer (0) or mid-stream;
                                                "reset" alone: after 2 pieces
    ("cut", after_pieces)                       the connection closed mid-stream (FIN, the chunked
                                                body unfinished: nothing sent is lost in transit)
    "truncate"                                  the stream ends cleanly after the first piece, with
                                                no finish reason and no [DONE]
    ("trickle", seconds)                        every piece that many seconds after the last
    "malformed"                                 a broken JSON chunk after the first piece
    "error_event"                               an error event after the first piece
    ("raw", pieces)                             a 200 whose body is these bytes, one write each
`fail_after_tokens` sends an error event after that many pieces of every stream.
`models` ({id: max_model_len or None}) is what GET /v1/models lists; None: no such route (404),
as some hosted APIs have none.
`requests` lists every request body; `answered` the bodies whose answer went out whole.
`FaultPlan` is a seeded `faults` callable injecting a mix of them at a given rate.
"""
from __future__ import annotations

import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import urlsplit

Responder = Callable[[dict[str, Any]], dict[str, Any]]


def words_responder(body: dict[str, Any]) -> dict[str, Any]:
    """`max_tokens` words, cut at the limit: a profiler's steady stream of tokens."""
    return {"content": " ".join(["tok"] * int(body.get("max_tokens") or 16)), "finish": "length"}


def echo_responder(body: dict[str, Any]) -> dict[str, Any]:
    return {"content": "echo: " + str(body["messages"][-1]["content"])[:20]}


class FaultPlan:
    """Faults at `rate`, a seeded mix of what endpoints do wrong. Whether attempt n of a request
    meets a fault, and which, depends only on (seed, the request's messages and seed, n): the faults
    of a run do not depend on the order its requests arrive in. `injected` counts them by name;
    `CLIENT_KIND` is the error kind the client must record for each."""

    CLIENT_KIND = {"drop": "connection", "cut": "truncated", "truncate": "truncated", "rate_limit": "rate_limit",
                   "http_500": "server", "http_503": "server", "error_event": "server", "slow_headers": "timeout",
                   "trickle": "timeout", "malformed": "malformed"}

    def __init__(self, rate: float, seed: int = 0, stall_s: float = 5.0, names: tuple[str, ...] = tuple(CLIENT_KIND)):
        self.rate, self.seed, self.names = rate, seed, names
        self.faults = {"drop": ("reset", 0), "cut": ("cut", 1), "truncate": "truncate",
                       "rate_limit": ("status", 429, {"Retry-After": "1"}), "http_500": ("status", 500),
                       "http_503": ("status", 503), "error_event": "error_event", "slow_headers": ("sleep", stall_s),
                       "trickle": ("trickle", stall_s), "malformed": "malformed"}
        self.history: dict[str, list[str | None]] = {}  # request -> the fault of each attempt (None: none)
        self.injected: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> Any:
        key = json.dumps([body.get("messages"), body.get("seed")], sort_keys=True)
        with self.lock:
            seen = self.history.setdefault(key, [])
            rng = random.Random(f"{self.seed}|{key}|{len(seen)}")
            name = rng.choice(self.names) if rng.random() < self.rate else None
            seen.append(name)
            if name is None:
                return None
            self.injected[name] += 1
        return self.faults[name]

    def gave_up(self, attempts: int) -> Counter[str]:
        """The client error kinds of the requests whose `attempts` attempts all met a fault."""
        return Counter(self.CLIENT_KIND[h[-1]] for h in self.history.values()
                       if len(h) == attempts and all(h))


class StubServer:
    def __init__(self, responder: Responder | None = None, faults: list | Callable[[dict], Any] | None = None, *,
                 chunk: int = 4, ttft_s: float = 0.0, tpot_s: float = 0.0, prefill_s_per_word: float = 0.0,
                 fail_after_tokens: int | None = None, models: dict[str, int | None] | None = None):
        self.responder = responder or echo_responder
        self.faults = faults if callable(faults) else list(faults or [])
        self.chunk, self.ttft_s, self.tpot_s, self.prefill_s_per_word = chunk, ttft_s, tpot_s, prefill_s_per_word
        self.fail_after_tokens = fail_after_tokens
        self.models = models
        self.requests: list[dict[str, Any]] = []
        self.answered: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.httpd = _Server(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "StubServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _next_fault(self, body: dict[str, Any]) -> Any:
        with self.lock:
            self.requests.append(body)
            if callable(self.faults):
                return self.faults(body)
            return self.faults.pop(0) if self.faults else None

    def pieces(self, answer: dict[str, Any]) -> list[tuple[str, str]]:
        """(delta field, text) per streamed token: reasoning, then content."""
        out = []
        for key, field in (("reasoning", "reasoning_content"), ("content", "content")):
            text = answer.get(key) or ""
            out += [(field, text[i:i + self.chunk]) for i in range(0, len(text), self.chunk)]
        return out


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # a real server's backlog; the default 5 refuses a burst of connections

    def handle_error(self, request, client_address):  # clients hanging up early are part of the tests
        pass


def _handler(stub: StubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def setup(self):
            super().setup()
            # Without TCP_NODELAY, small SSE writes wait on delayed ACKs (~40 ms) and arrive in bursts.
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _route(self) -> str:  # a proxied request names the whole URL
            return urlsplit(self.path).path.rstrip("/")

        def do_GET(self):
            if self._route() != "/v1/models" or stub.models is None:
                return self._json(404, {"error": {"message": f"no route {self.path}"}})
            self._json(200, {"object": "list", "data": [{"id": name, "object": "model", "max_model_len": limit}
                                                        for name, limit in stub.models.items()]})

        def do_POST(self):
            if self._route() != "/v1/chat/completions":
                return self._json(404, {"error": {"message": f"no route {self.path}"}})
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            fault = stub._next_fault(body)
            kind = fault[0] if isinstance(fault, tuple) else fault
            if kind == "status":
                code, headers = fault[1], fault[2] if len(fault) > 2 else {}
                payload = fault[3] if len(fault) > 3 else json.dumps({"error": {"message": f"injected {code}"}}).encode()
                return self._json(code, payload, headers)
            if kind == "raw":
                return self._raw(fault[1])
            if kind == "sleep":
                time.sleep(fault[1])
            reset_after = (fault[1] if isinstance(fault, tuple) else 2) if kind in ("reset", "cut") else None
            if reset_after == 0:
                return self._reset()
            answer = stub.responder(body)
            words = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
            time.sleep(stub.ttft_s + stub.prefill_s_per_word * words)
            pieces = stub.pieces(answer)
            calls = answer.get("tool_calls") or []
            finish = answer.get("finish", "tool_calls" if calls else "stop")
            usage = {"prompt_tokens": words, "completion_tokens": len(pieces) + 2 * len(calls),
                     "total_tokens": words + len(pieces) + 2 * len(calls)}
            if not body.get("stream"):
                time.sleep(stub.tpot_s * max(len(pieces) - 1, 0))
                message = {"role": "assistant", "content": answer.get("content") or ""}
                if answer.get("reasoning"):
                    message["reasoning_content"] = answer["reasoning"]
                if calls:
                    message["tool_calls"] = [{"id": f"call_{i}", "type": "function", "function": {
                        "name": c["name"], "arguments": json.dumps(c["arguments"])}} for i, c in enumerate(calls)]
                self._json(200, {"id": "stub", "object": "chat.completion", "model": body.get("model"),
                                 "choices": [{"index": 0, "finish_reason": finish, "message": message}], "usage": usage})
                return self._done(body, True)
            gap = fault[1] if kind == "trickle" else stub.tpot_s
            self._stream(body, pieces, calls, finish, usage, kind, reset_after, gap)

        def _stream(self, body, pieces, calls, finish, usage, kind, reset_after, gap):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def chunk(delta, finish_reason=None):
                self._event({"choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}, body)

            for n, (field, text) in enumerate(pieces, 1):
                if n > 1 or kind == "trickle":
                    time.sleep(gap)
                chunk({field: text})
                if n == stub.fail_after_tokens:
                    self._write(f"data: {json.dumps({'error': {'message': 'stub failure', 'type': 'server_error'}})}\n\n")
                    return self._end()
                if n == 1 and kind == "malformed":
                    self._write('data: {"id": "x", "choices": [{"index": 0, "delta": {"content": "bro\n\n')
                if n == 1 and kind == "error_event":
                    self._write(f"data: {json.dumps({'error': {'message': 'injected mid-stream error'}})}\n\n")
                if n == 1 and kind == "truncate":
                    return self._end()
                if n == reset_after:
                    return self._reset() if kind == "reset" else self._cut()
            for i, call in enumerate(calls):  # arguments in two pieces, as servers stream them
                args = json.dumps(call["arguments"])
                chunk({"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function",
                                       "function": {"name": call["name"], "arguments": args[:5]}}]})
                chunk({"tool_calls": [{"index": i, "function": {"arguments": args[5:]}}]})
            chunk({}, finish)
            self._event({"choices": [], "usage": usage}, body)
            self._write("data: [DONE]\n\n")
            self._end()
            self._done(body, kind not in ("malformed", "error_event"))

        def _done(self, body, whole: bool):
            if whole:
                with stub.lock:
                    stub.answered.append(body)

        def _event(self, payload: dict, body: dict):
            self._write(f"data: {json.dumps({'id': 'stub', 'object': 'chat.completion.chunk', 'created': 0, 'model': body.get('model', 'stub'), **payload})}\n\n")

        def _write(self, text: str):
            data = text.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _end(self):
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _raw(self, pieces: list[bytes]):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.flush()
            for piece in pieces:  # separate writes, so they reach the client in separate reads
                self.wfile.write(piece)
                self.wfile.flush()
                time.sleep(0.002)
            self.close_connection = True

        def _reset(self):  # TCP RST: linger 0, and the file objects dropped so that close() is real
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()
            self.wfile.close()
            self.connection.close()
            self.close_connection = True

        def _cut(self):  # a clean close (FIN) with the chunked body unfinished
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.close_connection = True

        def _json(self, status: int, payload: dict | bytes, headers: dict | None = None):
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
