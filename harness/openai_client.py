"""Async client for OpenAI-compatible chat endpoints, with replicas.

Each request streams (time to first token and per-chunk arrival times), is bounded by a wall
timeout, and is retried with exponential backoff on 429, 408/409, 5xx, timeouts and connection
resets. Several endpoints can serve one run: a request goes to the healthy endpoint with the
fewest requests in flight; an endpoint that fails (connection, timeout, 5xx) is taken out for a
cool-down that doubles while it keeps failing (up to 10×), and the request is retried on another one.
Reasoning text (`reasoning_content` / `reasoning` deltas, as vLLM sends them, or `<think>` in the
content) and tool calls are carried through.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import openai

try:  # the HTTP library under openai: httpx2 in current releases, httpx before
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx

from m1bench.harness.client import RequestError
from m1bench.harness.reasoning import split_reasoning, split_tool_calls
from m1bench.harness.types import Completion, Request, ToolCall

_RETRY_STATUS = {408, 409, 429}


@dataclass
class Endpoint:
    url: str
    client: openai.AsyncOpenAI
    in_flight: int = 0
    failures: int = 0  # consecutive
    down_until: float = 0.0
    served: int = 0
    errors: dict[str, int] = field(default_factory=dict)


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
        self.endpoints = [
            Endpoint(url=u, client=openai.AsyncOpenAI(base_url=u, api_key=api_key or "EMPTY", max_retries=0,
                                                      timeout=timeout_s))
            for u in endpoints
        ]

    def describe(self) -> dict[str, Any]:
        return {"engine": "openai", "model": self.model, "model_id": self.model_id,
                "endpoints": [{"url": e.url, "served": e.served, "errors": e.errors} for e in self.endpoints],
                "openai": openai.__version__}

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

    async def complete(self, request: Request) -> Completion:
        last: Endpoint | None = None
        for attempt in range(1, self.max_retries + 2):
            ep = self._pick(last)
            wait = ep.down_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            ep.in_flight += 1
            try:
                out = await asyncio.wait_for(self._once(ep, request), self.timeout_s)
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

    async def _once(self, ep: Endpoint, request: Request) -> Completion:
        s = request.sampling
        kwargs: dict[str, Any] = dict(
            model=self.model, messages=list(request.messages), max_tokens=s.max_tokens,
            temperature=s.temperature, top_p=s.top_p, stream=True, stream_options={"include_usage": True},
        )
        if s.seed is not None:
            kwargs["seed"] = s.seed
        if s.stop:
            kwargs["stop"] = list(s.stop)
        if request.tools:
            kwargs["tools"] = list(request.tools)
        if s.top_k:
            kwargs["extra_body"] = {"top_k": s.top_k}
        t0 = time.perf_counter()
        content, reasoning, times = [], [], []
        calls: dict[int, dict[str, str]] = {}
        finish, usage = None, None
        try:
            stream = await ep.client.chat.completions.create(**kwargs)
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    delta = choice.delta
                    got = False
                    if delta is not None:
                        if delta.content:
                            content.append(delta.content)
                            got = True
                        r = getattr(delta, "reasoning_content", None) or getattr(delta, "reasoning", None)
                        if r:
                            reasoning.append(r)
                            got = True
                        for tc in delta.tool_calls or []:
                            slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                            slot["id"] = tc.id or slot["id"]
                            if tc.function is not None:
                                slot["name"] += tc.function.name or ""
                                slot["arguments"] += tc.function.arguments or ""
                            got = True
                    if got:
                        times.append(time.perf_counter() - t0)
                    if choice.finish_reason:
                        finish = choice.finish_reason
        except openai.APIStatusError as e:
            status = e.status_code
            if status in _RETRY_STATUS or status >= 500:
                kind = "rate_limit" if status == 429 else "server"
                raise _Retryable(kind, f"HTTP {status} from {ep.url}: {_short(e)}",
                                 retry_after=_retry_after(e.response), blame_endpoint=status >= 500) from None
            raise RequestError("client", f"HTTP {status} from {ep.url}: {_short(e)}") from None
        except openai.APITimeoutError:
            raise _Retryable("timeout", f"timeout talking to {ep.url}") from None
        except (openai.APIConnectionError, httpx.TransportError) as e:
            raise _Retryable("connection", f"{type(e).__name__} talking to {ep.url}: {e}") from None
        except openai.APIError as e:  # an error event in the middle of the stream
            raise _Retryable("server", f"error in the stream from {ep.url}: {_short(e)}") from None
        except json.JSONDecodeError as e:
            raise _Retryable("malformed", f"malformed JSON in the stream from {ep.url}: {e}") from None
        total = time.perf_counter() - t0
        if finish is None:
            raise _Retryable("connection", f"stream from {ep.url} ended without a finish reason")
        text = "".join(content)
        text, inline_calls = split_tool_calls(text)
        inline_reasoning, text = split_reasoning(text)
        tool_calls = [ToolCall(name=c["name"], arguments=c["arguments"], id=c["id"] or None)
                      for _, c in sorted(calls.items())] + inline_calls
        return Completion(
            text=text, reasoning="".join(reasoning) or inline_reasoning, tool_calls=tool_calls,
            finish_reason=finish, prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or len(times),
            ttft_s=times[0] if times else None, total_s=total, token_times=times, endpoint=ep.url,
        )

    async def aclose(self) -> None:
        for e in self.endpoints:
            await e.client.close()


def _retry_after(response: httpx.Response | None) -> float | None:
    try:
        return float(response.headers["retry-after"]) if response is not None else None
    except (KeyError, ValueError):
        return None


def _short(e: openai.APIStatusError) -> str:
    try:
        body = e.response.json()
        return json.dumps(body)[:300]
    except Exception:
        return str(e)[:300]
