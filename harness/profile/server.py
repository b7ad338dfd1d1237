"""Server-level latency against any OpenAI-compatible endpoint (m1bench's server, vLLM, a hosted API):
TTFT, TPOT, end-to-end latency and throughput vs prompt length and concurrency.

Requests stream through m1bench's OpenAI client, which stamps the arrival of every content chunk;
TTFT is the first chunk's arrival, TPOT the mean gap between later chunks, and throughput counts the
server-reported completion tokens over the wall time of a whole level.
"""
from __future__ import annotations

import asyncio
import random
import statistics
import time
from typing import Callable

from m1bench.harness.clients.openai_compat import OpenAIClient
from m1bench.harness.core.client import RequestError
from m1bench.harness.core.types import Request, Sampling, tpot

# Common short English words: about one token each in the usual BPE vocabularies.
_WORDS = ("time year people way day man thing woman life child world school state family student group "
          "country problem hand part place case week company system program question work government number "
          "night point home water room mother area money story fact month lot right study book eye job word").split()


def synthetic_prompt(n_words: int, seed: int) -> str:
    """A prompt of `n_words` words that differs per request (so no prefix cache hides prefill)."""
    rng = random.Random(seed)
    return f"[{seed}] " + " ".join(rng.choice(_WORDS) for _ in range(n_words))


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


async def run_level(client: OpenAIClient, prompt_words: int, concurrency: int, n_requests: int, max_tokens: int,
                    seed: int = 0, on_done: Callable[[], None] | None = None) -> dict:
    sem = asyncio.Semaphore(concurrency)
    results, errors = [], []

    async def one(i: int):
        req = Request(messages=({"role": "user", "content": synthetic_prompt(prompt_words, seed * 100_003 + i)},),
                      sampling=Sampling(max_tokens=max_tokens, temperature=0.0, top_p=1.0), key=f"profile/{i}")
        async with sem:
            try:
                results.append(await client.complete(req))
            except RequestError as e:  # includes an error event inside the stream (kind "server")
                errors.append(e.kind)
        if on_done:
            on_done()

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n_requests)))
    wall = time.perf_counter() - t0
    ttft = [c.ttft_s for c in results if c.ttft_s is not None]
    tpots = [t for c in results if (t := tpot(c.token_times)) is not None]
    e2e = [c.total_s for c in results]
    out_tokens = sum(c.completion_tokens for c in results)
    prompt_tokens = [c.prompt_tokens for c in results if c.prompt_tokens]
    return {
        "prompt_words": prompt_words, "prompt_tokens": int(statistics.median(prompt_tokens)) if prompt_tokens else prompt_words,
        "concurrency": concurrency, "requests": n_requests, "ok": len(results), "errors": len(errors),
        "error_kinds": sorted(set(errors)), "max_tokens": max_tokens, "wall_s": wall,
        "ttft_p50_s": _pct(ttft, 0.5), "ttft_p90_s": _pct(ttft, 0.9), "ttft_p99_s": _pct(ttft, 0.99),
        "tpot_p50_s": _pct(tpots, 0.5), "tpot_p90_s": _pct(tpots, 0.9),
        "e2e_p50_s": _pct(e2e, 0.5), "e2e_p90_s": _pct(e2e, 0.9),
        "output_tokens": out_tokens, "output_tok_per_s": out_tokens / wall if wall else None,
        "requests_per_s": len(results) / wall if wall else None,
    }


async def profile_server(endpoint: str, model: str, prompt_words: list[int], concurrency: list[int],
                         requests_per_level: int, max_tokens: int, api_key: str | None = None,
                         timeout_s: float = 600.0, warmup: int = 1,
                         on_level: Callable[[dict], None] | None = None,
                         on_request: Callable[[], None] | None = None) -> tuple[list[dict], dict]:
    """Every (prompt length, concurrency) level in turn, after `warmup` unrecorded requests.
    A level runs max(requests_per_level, concurrency) requests with at most `concurrency` in flight."""
    client = OpenAIClient([endpoint], model=model, api_key=api_key, timeout_s=timeout_s, max_retries=0)
    rows = []
    try:
        if warmup:
            await run_level(client, min(prompt_words), 1, warmup, max_tokens, seed=-1)
        for level, (p, c) in enumerate((p, c) for p in prompt_words for c in concurrency):
            row = await run_level(client, p, c, max(requests_per_level, c), max_tokens, seed=level, on_done=on_request)
            rows.append(row)
            if on_level:
                on_level(row)
        return rows, client.describe()
    finally:
        await client.aclose()
