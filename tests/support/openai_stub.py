"""A small OpenAI-compatible chat-completions server for tests (streaming SSE), started in-process
on 127.0.0.1. `responder(body) -> dict(content=..., reasoning=..., tool_calls=[...], finish=...)`
decides the answer; `faults` is a list of actions consumed one per request before answering
normally: ("status", code, headers), "reset" (TCP reset mid-stream), ("sleep", seconds),
"malformed" / "error_event" (a broken chunk / an error event after the first chunk), ("raw", pieces)
(a 200 whose body is these bytes, one write per piece, so they reach the client in separate reads)."""
from __future__ import annotations

import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


def echo_responder(body: dict[str, Any]) -> dict[str, Any]:
    return {"content": "echo: " + body["messages"][-1]["content"][:20]}


class StubServer:
    def __init__(self, responder: Callable[[dict], dict] = echo_responder, faults: list | None = None, chunk: int = 4):
        self.responder, self.faults, self.chunk = responder, list(faults or []), chunk
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    fault = server.faults.pop(0) if server.faults else None
                if isinstance(fault, tuple) and fault[0] == "status":
                    payload = json.dumps({"error": {"message": f"injected {fault[1]}"}}).encode()
                    self.send_response(fault[1])
                    for k, v in (fault[2] if len(fault) > 2 else {}).items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if isinstance(fault, tuple) and fault[0] == "raw":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.flush()
                    self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    for piece in fault[1]:
                        self.wfile.write(piece)
                        self.wfile.flush()
                        time.sleep(0.002)
                    return
                if isinstance(fault, tuple) and fault[0] == "sleep":
                    time.sleep(fault[1])
                ans = server.responder(body)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()

                def send(obj):
                    self.wfile.write(f"data: {json.dumps(obj)}\n\n".encode())
                    self.wfile.flush()

                def chunk(delta, finish=None):
                    send({"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                          "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

                n = 0
                for field in ("reasoning", "content"):
                    text = ans.get(field) or ""
                    for i in range(0, len(text), server.chunk):
                        key = "reasoning_content" if field == "reasoning" else "content"
                        chunk({key: text[i:i + server.chunk]})
                        n += 1
                        if fault == "malformed" and n == 1:
                            self.wfile.write(b"data: {not json\n\n")
                        if fault == "error_event" and n == 1:
                            send({"error": {"message": "injected mid-stream error"}})
                        if fault == "reset" and n == 2:
                            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                            self.connection.close()
                            return
                for i, tc in enumerate(ans.get("tool_calls") or []):
                    args = json.dumps(tc["arguments"])
                    chunk({"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function",
                                           "function": {"name": tc["name"], "arguments": args[:5]}}]})
                    chunk({"tool_calls": [{"index": i, "function": {"arguments": args[5:]}}]})
                    n += 2
                chunk({}, ans.get("finish", "tool_calls" if ans.get("tool_calls") else "stop"))
                send({"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": body["model"], "choices": [],
                      "usage": {"prompt_tokens": 11, "completion_tokens": n, "total_tokens": 11 + n}})
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # clients that hung up early are expected here
                pass

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "StubServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def dead_url() -> str:
    """A loopback URL with nothing listening (connection refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/v1"
