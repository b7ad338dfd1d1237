"""A local OpenAI-compatible chat endpoint with known timing, to test the server profiler against:
time to first token = ttft_s + prefill_s_per_word * (words in the prompt), then one word per
`tpot_s`, `max_tokens` words in all (or an error event after `fail_after_tokens`). Binds 127.0.0.1 only; stdlib, no model."""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StubServer:
    def __init__(self, ttft_s: float = 0.02, tpot_s: float = 0.005, prefill_s_per_word: float = 0.0,
                 fail_after_tokens: int | None = None):
        self.ttft_s, self.tpot_s, self.prefill_s_per_word = ttft_s, tpot_s, prefill_s_per_word
        self.fail_after_tokens = fail_after_tokens  # stream an error event after this many tokens
        self.requests = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def setup(self):
                super().setup()
                # Without TCP_NODELAY, small SSE writes wait on delayed ACKs (~40 ms) and arrive in bursts.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self):
                if self.path.rstrip("/") != "/v1/models":
                    return self._json(404, {"error": {"message": f"no route {self.path}"}})
                self._json(200, {"object": "list", "data": [{"id": "stub", "object": "model"}]})

            def do_POST(self):
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._json(404, {"error": {"message": f"no route {self.path}"}})
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                stub.requests += 1
                words = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
                n = int(body.get("max_tokens") or 16)
                time.sleep(stub.ttft_s + stub.prefill_s_per_word * words)
                if not body.get("stream"):
                    time.sleep(stub.tpot_s * (n - 1))
                    return self._json(200, {"id": "stub", "object": "chat.completion", "model": body.get("model"),
                                            "choices": [{"index": 0, "finish_reason": "length",
                                                         "message": {"role": "assistant", "content": " ".join(["tok"] * n)}}],
                                            "usage": {"prompt_tokens": words, "completion_tokens": n,
                                                      "total_tokens": words + n}})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(n):
                    if i == stub.fail_after_tokens:
                        self._chunk(f"data: {json.dumps({'error': {'message': 'stub failure', 'type': 'server_error'}})}\n\n".encode())
                        self._chunk(b"")
                        return
                    if i:
                        time.sleep(stub.tpot_s)
                    self._event({"choices": [{"index": 0, "delta": {"content": " tok" if i else "tok"},
                                              "finish_reason": "length" if i == n - 1 else None}]})
                self._event({"choices": [], "usage": {"prompt_tokens": words, "completion_tokens": n,
                                                      "total_tokens": words + n}})
                self._chunk(b"data: [DONE]\n\n")
                self._chunk(b"")

            def _event(self, payload: dict):
                payload = {"id": "stub", "object": "chat.completion.chunk", "created": int(time.time()),
                           "model": "stub", **payload}
                self._chunk(f"data: {json.dumps(payload)}\n\n".encode())

            def _chunk(self, data: bytes):
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _json(self, status: int, payload: dict):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
