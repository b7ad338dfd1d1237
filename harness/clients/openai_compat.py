"""Async client for OpenAI-compatible chat endpoints, with replicas.

Each request streams (time to first token and per-chunk arrival times), is bounded by a wall
timeout per attempt, and is retried with its own exponential backoff (or the server's Retry-After)
on 429, 408/409, 5xx, timeouts, connection resets, streams cut short, error events in the middle
of the stream and malformed JSON chunks. A fault delays only the request that met it. Several
endpoints can serve one run: a request goes to the endpoint with the fewest requests in flight,
away from the one that just failed it. Each endpoint has a circuit breaker (harness/clients/breaker.py)
that opens only on a sustained failure rate; then requests fail at once, naming the endpoint and
its last errors, instead of queueing retries on a dead server. Every attempt's fault is counted
by kind in `describe()` (timeout, connection, truncated, malformed, server, rate_limit, client).
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

from m1bench.harness.clients.breaker import Breaker
from m1bench.harness.clients.sse import SSEParser
from m1bench.harness.core.client import RequestError
from m1bench.harness.core.m1_output import parse_output
from m1bench.harness.core.types import Completion, Request, ToolCall

_RETRY_STATUS = {408, 409, 429}
# Idle pooled connections are dropped before common servers drop them (uvicorn, hence vLLM: 5 s),
# so a request rarely goes out on a connection the server is closing at that moment.
_KEEPALIVE_S = 4.0
_PROBE_S = 10.0  # the endpoint check before a run: a live server lists its models at once


@dataclass
class Endpoint:
    url: str
    chat_url: str
    breaker: Breaker
    in_flight: int = 0
    served: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # attempts that failed, by kind
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
                 max_backoff_s: float = 60.0, cooldown_s: float = 10.0):
        if not endpoints:
            raise ValueError("model.endpoints: at least one endpoint URL is needed")
        self.model = model
        self.model_id = f"openai:{model}"
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.retries = 0  # attempts after a request's first, over the client's life
        self._headers = {"Authorization": f"Bearer {api_key or 'EMPTY'}", "Content-Type": "application/json",
                         "Accept": "text/event-stream", "User-Agent": f"m1bench aiohttp/{aiohttp.__version__}"}
        self.endpoints = [Endpoint(url=u, chat_url=u.rstrip("/") + "/chat/completions",
                                   breaker=Breaker(reset_s=cooldown_s)) for u in endpoints]

    def describe(self) -> dict[str, Any]:
        return {"engine": "openai", "model": self.model, "model_id": self.model_id,
                "endpoints": [{"url": e.url, "served": e.served, "errors": e.errors,
                               "circuit_opened": e.breaker.times_opened} for e in self.endpoints],
                "retries": self.retries, "http": f"aiohttp {aiohttp.__version__}"}

    def status(self) -> str:
        """One line for a progress display: retries so far and the endpoints refusing requests."""
        down = [f"{e.url} circuit open ({e.breaker.last_errors[-1]})" for e in self.endpoints if e.breaker.is_open]
        return "; ".join([f"{self.retries} retries"] * bool(self.retries) + down)

    def _pick(self, avoid: Endpoint | None) -> Endpoint | None:
        """The endpoint for the next attempt: a closed one with the fewest requests in flight (not
        the one that just failed this request, when there is a choice), else a half-open probe."""
        closed = [e for e in self.endpoints if not e.breaker.is_open]
        if closed:
            return min(closed, key=lambda e: (len(closed) > 1 and e is avoid, e.in_flight, e.served))
        return next((e for e in self.endpoints if e.breaker.allow()), None)

    def _unavailable(self) -> str:
        last = "; ".join(f"{e.url}: {' | '.join(e.breaker.last_errors)}" for e in self.endpoints)
        return f"every endpoint is failing, so requests fail fast until one answers again (last errors: {last})"

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
                headers=self._headers, timeout=aiohttp.ClientTimeout(total=None))  # each request sets its own
            ep.loop = loop
        return ep.session

    async def complete(self, request: Request) -> Completion:
        body = self._body(request)
        last: Endpoint | None = None
        err: _Retryable | None = None
        for attempt in range(1, self.max_retries + 2):
            ep = self._pick(last)
            if ep is None:  # a request that met a fault of its own is recorded as that fault
                kind, why = (err.kind, f"{err}; then {self._unavailable()}") if err else ("unavailable", self._unavailable())
                raise RequestError(kind, why, attempts=attempt - 1)
            ep.in_flight += 1
            try:
                out = await self._once(ep, body)
            except _Retryable as e:
                err = e
            except RequestError as e:  # a 4xx the server will not change its mind about
                ep.errors[e.kind] = ep.errors.get(e.kind, 0) + 1
                raise
            else:
                ep.breaker.success()
                ep.served += 1
                return out
            finally:
                ep.in_flight -= 1
            ep.errors[err.kind] = ep.errors.get(err.kind, 0) + 1
            if err.blame_endpoint:
                ep.breaker.failure(str(err))
            last = ep
            if attempt > self.max_retries:
                raise RequestError(err.kind, f"{err} (gave up after {attempt} attempts)", attempts=attempt)
            self.retries += 1
            await asyncio.sleep(self._backoff(attempt, err.retry_after))
        raise AssertionError("unreachable")

    async def probe(self) -> list[dict[str, Any]]:
        """Each endpoint's GET /models: {"url", "models": {id: max_model_len or None}}, "models": None
        where the endpoint has no such route, or {"url", "error"} where it did not answer."""
        async def one(ep: Endpoint) -> dict[str, Any]:
            url = ep.url.rstrip("/") + "/models"
            try:
                async with self._session(ep).get(url, proxy=ep.proxy, proxy_auth=ep.proxy_auth, allow_redirects=False,
                                                 timeout=aiohttp.ClientTimeout(total=min(self.timeout_s, _PROBE_S))) as resp:
                    if resp.status in (404, 405):
                        return {"url": ep.url, "models": None}
                    if resp.status >= 300:
                        return {"url": ep.url, "error": f"HTTP {resp.status} from {url}: {_short(await resp.content.read(4096))}"}
                    listing = await resp.json(content_type=None)
                return {"url": ep.url, "models": {m["id"]: m.get("max_model_len") for m in listing["data"]}}
            except asyncio.TimeoutError:
                return {"url": ep.url, "error": f"no answer from {url} within {min(self.timeout_s, _PROBE_S):g}s"}
            except (aiohttp.ClientError, OSError) as e:
                return {"url": ep.url, "error": f"{type(e).__name__} talking to {url}: {e}"}
            except (ValueError, KeyError, TypeError):
                return {"url": ep.url, "models": None}  # not an OpenAI model listing: nothing to check against

        return list(await asyncio.gather(*(one(ep) for ep in self.endpoints)))

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
            # aiohttp's own total timeout covers connecting, the headers and the whole stream. (An outer
            # asyncio.wait_for is no substitute: the cancelled read can surface as a payload error.)
            async with self._session(ep).post(ep.chat_url, data=body, allow_redirects=False, proxy=ep.proxy,
                                              proxy_auth=ep.proxy_auth, timeout=self._timeout) as resp:
                if resp.status >= 300:
                    await self._status_error(ep, resp)
                answer.started = True
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
        except asyncio.TimeoutError:  # before OSError: in Python 3.11 it is the builtin TimeoutError, an OSError
            raise _Retryable("timeout", f"no answer from {ep.url} within {self.timeout_s:g}s") from None
        except (aiohttp.ClientError, OSError) as e:
            if answer.started:  # the answer had begun: a stream cut short, not a server out of reach
                raise _Retryable("truncated", f"stream from {ep.url} broke off ({type(e).__name__}: {e})") from None
            raise _Retryable("connection", f"{type(e).__name__} talking to {ep.url}: {e}") from None
        if answer.finish is None:
            raise _Retryable("truncated", f"stream from {ep.url} ended without a finish reason")
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
        """Close each endpoint's connection pool in the loop that made it (a run may serve some
        requests from a second loop: see Runner._run_external)."""
        here = asyncio.get_running_loop()
        for e in self.endpoints:
            if e.session is not None and e.loop is here:
                await e.session.close()
            elif e.session is not None and e.loop.is_running():
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(e.session.close(), e.loop))
            elif e.session is not None:
                e.session.detach()  # its loop is gone, and its sockets with it
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
        self.started = False  # the answer's headers arrived: what breaks after is a stream cut short

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
            reasoning_tokens=(self.usage.get("completion_tokens_details") or {}).get("reasoning_tokens"),
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
