"""Async client for OpenAI-compatible chat endpoints, with replicas.

Each request streams (time to first token and per-chunk arrival times), is bounded by a wall
timeout, and is retried with exponential backoff on 429, 408/409, 5xx, timeouts, connection
resets, error events in the middle of the stream and malformed JSON chunks. Several endpoints can
serve one run: a request goes to the healthy endpoint with the fewest requests in flight; an
endpoint that fails (connection, timeout, 5xx) is taken out for a cool-down that doubles while it
keeps failing (up to 10×), and the request is retried on another one.
Reasoning text (`reasoning_content` / `reasoning` deltas, as vLLM sends them, or `<think>` in the
content) and tool calls are carried through.

Transport: aiohttp, one keep-alive connection pool per endpoint, the SSE stream parsed by
harness/clients/sse.py and each chunk read as a plain dict. The openai SDK builds a model object per chunk
and transforms every request; that capped this client near 240 requests/s on two cores, far below
what a harness must sustain (issue 6: >= 2,000/s against a zero-latency server).
"""
from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from m1bench.harness.clients.sse import SSEParser
from m1bench.harness.core.client import RequestError
from m1bench.harness.core.m1_output import parse_output
from m1bench.harness.core.types import Completion, Request, ToolCall

_RETRY_STATUS = {408, 409, 429}
# Idle pooled connections are dropped before common servers drop them (uvicorn, hence vLLM: 5 s),
# so a request rarely goes out on a connection the server is closing at that moment.
_KEEPALIVE_S = 4.0


@dataclass
class Endpoint:
    url: str
    chat_url: str
    in_flight: int = 0
    failures: int = 0  # consecutive
    down_until: float = 0.0
    served: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    session: aiohttp.ClientSession | None = None  # its connection pool, made in the loop that uses it
    loop: asyncio.AbstractEventLoop | None = None
    proxy: URL | None = None  # from HTTP(S)_PROXY / NO_PROXY, read once (aiohttp's trust_env reads them per request)
    proxy_auth: aiohttp.BasicAuth | None = None

    def __post_init__(self):
        try:
            self.proxy, self.proxy_auth = get_env_proxy_for_url(URL(self.chat_url))
        except LookupError:  # no proxy for this URL
            pass


class _Retryable(Exception):
    def __init__(self, kind: str, message: str, retry_after: float | None = None, blame_endpoint: bool = True):
        super().__init__(message)
        self.kind, self.retry_after, self.blame_endpoint = kind, retry_after, blame_endpoint


class OpenAIClient:
    def __init__(self, endpoints: list[str], model: str, api_key: str | None = None,
                 timeout_s: float = 600.0, max_retries: int = 5, backoff_s: float = 1.0,
                 max_backoff_s: float = 60.0, cooldown_s: float = 30.0):
        if not endpoints:
            raise ValueError("model.endpoints: at least one endpoint URL is needed")
        self.model = model
        self.model_id = f"openai:{model}"
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.backoff_s, self.max_backoff_s, self.cooldown_s = backoff_s, max_backoff_s, cooldown_s
        self._headers = {"Authorization": f"Bearer {api_key or 'EMPTY'}", "Content-Type": "application/json",
                         "Accept": "text/event-stream", "User-Agent": f"m1bench aiohttp/{aiohttp.__version__}"}
        self.endpoints = [Endpoint(url=u, chat_url=u.rstrip("/") + "/chat/completions") for u in endpoints]

    def describe(self) -> dict[str, Any]:
        return {"engine": "openai", "model": self.model, "model_id": self.model_id,
                "endpoints": [{"url": e.url, "served": e.served, "errors": e.errors} for e in self.endpoints],
                "http": f"aiohttp {aiohttp.__version__}"}

    def _pick(self, avoid: Endpoint | None) -> Endpoint:
        now = time.monotonic()
        healthy = [e for e in self.endpoints if e.down_until <= now]
        if len(healthy) > 1 and avoid in healthy:
            healthy.remove(avoid)
        if not healthy:  # everyone is cooling down: take the one that comes back first
            return min(self.endpoints, key=lambda e: e.down_until)
        return min(healthy, key=lambda e: (e.in_flight, e.served))

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff_s)
        return min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s) * (0.5 + random.random() / 2)

    def _session(self, ep: Endpoint) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if ep.session is None or ep.loop is not loop:
            if ep.session is not None:  # left open by an earlier event loop, which took its sockets with it
                ep.session.detach()
            ep.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=_KEEPALIVE_S),
                headers=self._headers, timeout=aiohttp.ClientTimeout(total=None))  # complete() times requests
            ep.loop = loop
        return ep.session

    async def complete(self, request: Request) -> Completion:
        body = self._body(request)
        last: Endpoint | None = None
        for attempt in range(1, self.max_retries + 2):
            ep = self._pick(last)
            wait = ep.down_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            ep.in_flight += 1
            try:
                out = await asyncio.wait_for(self._once(ep, body), self.timeout_s)
                ep.failures, ep.served = 0, ep.served + 1
                return out
            except (asyncio.TimeoutError, _Retryable) as e:
                err = e if isinstance(e, _Retryable) else _Retryable("timeout", f"no answer within {self.timeout_s}s")
                ep.errors[err.kind] = ep.errors.get(err.kind, 0) + 1
                if err.blame_endpoint:
                    ep.failures += 1
                    ep.down_until = time.monotonic() + min(self.cooldown_s * 2 ** (ep.failures - 1), 10 * self.cooldown_s)
                last = ep
                if attempt > self.max_retries:
                    raise RequestError(err.kind, f"{err} (gave up after {attempt} attempts)", attempts=attempt) from None
                await asyncio.sleep(self._backoff(attempt, err.retry_after))
            finally:
                ep.in_flight -= 1
        raise AssertionError("unreachable")

    def _body(self, request: Request) -> bytes:
        s = request.sampling
        body: dict[str, Any] = dict(
            model=self.model, messages=list(request.messages), max_tokens=s.max_tokens,
            temperature=s.temperature, top_p=s.top_p, stream=True, stream_options={"include_usage": True},
        )
        if s.seed is not None:
            body["seed"] = s.seed
        if s.stop:
            body["stop"] = list(s.stop)
        if request.tools:
            body["tools"] = list(request.tools)
        if s.top_k:
            body["top_k"] = s.top_k  # not OpenAI's; vLLM and m1bench's server read it
        return json.dumps(body, ensure_ascii=False).encode()

    async def _once(self, ep: Endpoint, body: bytes) -> Completion:
        t0 = time.perf_counter()
        answer = _Answer(t0)
        try:
            async with self._session(ep).post(ep.chat_url, data=body, allow_redirects=False, proxy=ep.proxy,
                                              proxy_auth=ep.proxy_auth) as resp:
                if resp.status >= 300:
                    await self._status_error(ep, resp)
                parser = SSEParser()
                done = False
                async for raw in resp.content.iter_any():
                    for ev in parser.feed(raw):
                        if done or not ev.data:  # after [DONE] the rest is drained, so the connection is reused
                            continue
                        if ev.data.startswith(b"[DONE]"):
                            done = True
                        else:
                            answer.add(_chunk(ev.data, ev.event, ep.url), ep.url)
        except (aiohttp.ClientError, OSError) as e:
            raise _Retryable("connection", f"{type(e).__name__} talking to {ep.url}: {e}") from None
        if answer.finish is None:
            raise _Retryable("connection", f"stream from {ep.url} ended without a finish reason")
        return answer.completion(time.perf_counter() - t0, ep.url)

    @staticmethod
    async def _status_error(ep: Endpoint, resp: aiohttp.ClientResponse) -> None:
        status = resp.status
        detail = _short(await resp.content.read(4096))
        if status in _RETRY_STATUS or status >= 500:
            kind = "rate_limit" if status == 429 else "server"
            raise _Retryable(kind, f"HTTP {status} from {ep.url}: {detail}",
                             retry_after=_retry_after(resp.headers.get("Retry-After")), blame_endpoint=status >= 500)
        raise RequestError("client", f"HTTP {status} from {ep.url}: {detail}")

    async def aclose(self) -> None:
        for e in self.endpoints:
            if e.session is not None:
                await e.session.close()
            e.session = e.loop = None


class _Answer:
    """The streamed chunks of one attempt, gathered: text, reasoning, tool-call deltas, finish, usage,
    and the arrival time of every chunk that carried output."""

    def __init__(self, t0: float):
        self.t0 = t0
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.times: list[float] = []
        self.calls: dict[int, dict[str, str]] = {}
        self.finish: str | None = None
        self.usage: dict[str, Any] = {}

    def add(self, chunk: dict[str, Any], url: str) -> None:
        try:
            if chunk.get("usage"):
                self.usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                got = False
                if delta.get("content"):
                    self.content.append(delta["content"])
                    got = True
                r = delta.get("reasoning_content") or delta.get("reasoning")
                if r:
                    self.reasoning.append(r)
                    got = True
                for tc in delta.get("tool_calls") or ():
                    slot = self.calls.setdefault(tc.get("index") or 0, {"id": "", "name": "", "arguments": ""})
                    slot["id"] = tc.get("id") or slot["id"]
                    fn = tc.get("function") or {}
                    slot["name"] += fn.get("name") or ""
                    slot["arguments"] += fn.get("arguments") or ""
                    got = True
                if got:
                    self.times.append(time.perf_counter() - self.t0)
                if choice.get("finish_reason"):
                    self.finish = choice["finish_reason"]
        except (AttributeError, TypeError) as e:  # a field of the wrong JSON type
            raise _Retryable("malformed", f"unexpected chunk shape in the stream from {url}: {e}") from None

    def completion(self, total_s: float, url: str) -> Completion:
        inline = parse_output("".join(self.content))  # M1 markup the server left in the content
        text, inline_calls, inline_reasoning = inline.content, inline.tool_calls, inline.reasoning
        tool_calls = [ToolCall(name=c["name"], arguments=c["arguments"], id=c["id"] or None)
                      for _, c in sorted(self.calls.items())] + inline_calls
        return Completion(
            text=text, reasoning="".join(self.reasoning) or inline_reasoning, tool_calls=tool_calls,
            finish_reason=self.finish, prompt_tokens=self.usage.get("prompt_tokens") or 0,
            completion_tokens=self.usage.get("completion_tokens") or len(self.times),
            ttft_s=self.times[0] if self.times else None, total_s=total_s, token_times=self.times, endpoint=url,
        )


def _chunk(data: bytes, event: str | None, url: str) -> dict[str, Any]:
    """One stream event as a dict; an error event or broken JSON is a retryable failure."""
    try:
        chunk = json.loads(data)
    except ValueError as e:  # JSONDecodeError, or bytes that are not UTF-8
        raise _Retryable("malformed", f"malformed JSON in the stream from {url}: {e}") from None
    if not isinstance(chunk, dict):
        raise _Retryable("malformed", f"stream event from {url} is not a JSON object: {data[:200]!r}")
    if chunk.get("error") or event == "error":
        raise _Retryable("server", f"error in the stream from {url}: {json.dumps(chunk)[:300]}")
    return chunk


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _short(body: bytes) -> str:
    try:
        return json.dumps(json.loads(body))[:300]
    except ValueError:
        return body.decode("utf-8", "replace")[:300]
