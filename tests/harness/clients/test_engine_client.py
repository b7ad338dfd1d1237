"""In-process client: requests gathered into batches, per-request sampling (seeds, stops) handed to
the engine, reasoning/tool calls split, finish reasons and usage carried, engine failures become
request errors. A recording fake stands in for model.generate; the real tiny model runs in
test_runner's end-to-end test."""
import asyncio
import time
from types import SimpleNamespace

import pytest

import m1bench.model.generate as gen_mod
from m1bench.harness.core.client import RequestError
from m1bench.harness.clients.engine import EngineClient
from m1bench.harness.core.types import Request, Sampling


class FakeTokenizer:
    def render_chat(self, messages, tools=None, add_generation_prompt=True):
        return "|".join(m["content"] for m in messages) + ("|tools" if tools else "")

    def encode(self, text):
        return [ord(c) for c in text]


def req(i, **kw):
    return Request(messages=({"role": "user", "content": f"q{i}"},), sampling=Sampling(max_tokens=5, seed=i, **kw),
                   key=f"t/{i}")


def test_batches_and_conversions(monkeypatch):
    batches = []

    def fake_generate(model, tok, prompts, params, routing=None):
        batches.append((prompts, params))
        time.sleep(0.03)  # the prefill + decode time it reports below
        outs = []
        for p, sp in zip(prompts, params):
            q = "".join(map(chr, p))
            text = {"q0": "<think>hmm</think>4", "q1": '<tool_calls>\n{"name": "f", "arguments": {"x": 1}}\n</tool_calls>'}.get(q, "abcde")
            outs.append(SimpleNamespace(token_ids=[1] * (3 if q != "q2" else 5), text=text,
                                        finish_reason="length" if q == "q2" else "stop",
                                        prompt_tokens=len(p), prefill_s=0.01, decode_s=0.02, routing=None))
        return outs

    monkeypatch.setattr(gen_mod, "generate", fake_generate)
    client = EngineClient(model=None, tokenizer=FakeTokenizer(), model_id="fake", batch_size=2)

    async def go():
        try:
            return await asyncio.gather(*(client.complete(req(i, stop=("\n",))) for i in range(5)))
        finally:
            await client.aclose()

    outs = asyncio.run(go())
    assert [len(p) for p, _ in batches] == [2, 2, 1]  # never more than batch_size at once
    assert sorted(sp.seed for _, ps in batches for sp in ps) == [0, 1, 2, 3, 4]
    assert all(sp.stop == ("\n",) and sp.max_new_tokens == 5 and sp.top_p == 0.95 for _, ps in batches for sp in ps)
    assert (outs[0].reasoning, outs[0].text, outs[0].finish_reason) == ("hmm", "4", "stop")
    assert outs[1].tool_calls[0].name == "f" and outs[1].finish_reason == "tool_calls"
    assert outs[2].truncated and outs[2].completion_tokens == 5 and outs[2].prompt_tokens == 2
    assert all(o.ttft_s >= 0.01 and o.total_s >= o.ttft_s for o in outs)


def test_engine_failure_is_a_request_error(monkeypatch):
    def broken(model, tok, prompts, params, routing=None):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(gen_mod, "generate", broken)
    client = EngineClient(model=None, tokenizer=FakeTokenizer(), model_id="fake")

    async def go():
        try:
            return await client.complete(req(0))
        finally:
            await client.aclose()

    with pytest.raises(RequestError) as e:
        asyncio.run(go())
    assert e.value.kind == "engine" and "out of memory" in e.value.message


def test_a_result_that_cannot_be_converted_errors_instead_of_hanging(monkeypatch):
    def broken_output(model, tok, prompts, params, routing=None):
        return [SimpleNamespace(text=None) for _ in prompts]  # no fields: conversion raises

    monkeypatch.setattr(gen_mod, "generate", broken_output)
    client = EngineClient(model=None, tokenizer=FakeTokenizer(), model_id="fake", batch_size=2)

    async def go():
        try:
            return await asyncio.wait_for(asyncio.gather(*(client.complete(req(i)) for i in range(3)),
                                                         return_exceptions=True), timeout=10)
        finally:
            await client.aclose()

    outs = asyncio.run(go())
    assert all(isinstance(o, RequestError) and o.kind == "engine" for o in outs)
