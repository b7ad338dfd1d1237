"""In-process client over the continuous-batching engine: on the tiny model its completions are
the oracle loop's (model/generate.py, one request at a time) while many requests share the batch;
per-request sampling is handed over; reasoning, tool calls, finish reasons and usage are carried;
engine failures and cancellations stay with their request."""
import asyncio

import pytest

from m1bench.harness.clients.engine import EngineClient
from m1bench.harness.core.client import RequestError
from m1bench.harness.core.m1_output import parse_output
from m1bench.harness.core.types import Request, Sampling
from m1bench.harness.engine.batching import EngineRequest, TextEvent


def req(i, **kw):
    return Request(messages=({"role": "user", "content": f"question {i}: what is {i} + {i}?"},),
                   sampling=Sampling(**{"max_tokens": 6, "seed": i, **kw}), key=f"t/{i}")


def run_all(client, requests):
    async def go():
        try:
            return await asyncio.gather(*(client.complete(r) for r in requests), return_exceptions=True)
        finally:
            await client.aclose()
    return asyncio.run(asyncio.wait_for(go(), timeout=120))


def test_completions_are_the_oracle_loops_while_requests_share_the_batch(tiny_dir):
    from m1bench.model.generate import SamplingParams, generate

    requests = [req(i, temperature=0.0, max_tokens=4 + i) for i in range(5)]
    requests += [req(10 + i, temperature=1.0, top_p=0.9) for i in range(3)]
    client = EngineClient.from_checkpoint(str(tiny_dir), batch_size=3)
    engine = client.engine
    model, tok = engine.model, engine.tokenizer
    outs = run_all(client, requests)
    assert max(engine.batch_sizes) == 3  # rows were shared (and never more than the engine has)
    for r, c in zip(requests, outs):
        ids = tok.encode(tok.render_chat(list(r.messages), add_generation_prompt=True))
        s = r.sampling
        (g,) = generate(model, tok, [ids], [SamplingParams(max_new_tokens=s.max_tokens, temperature=s.temperature,
                                                           top_p=s.top_p, top_k=s.top_k, seed=s.seed)])
        want = parse_output(g.text)
        assert (c.text, c.reasoning, c.finish_reason) == (want.content, want.reasoning, g.finish_reason), r.key
        assert c.prompt_tokens == len(ids) and 1 <= c.completion_tokens <= s.max_tokens
        assert c.ttft_s is not None and 0 < c.ttft_s <= c.total_s and c.token_times == sorted(c.token_times)


class FakeTokenizer:
    def render_chat(self, messages, tools=None, add_generation_prompt=True):
        return "|".join(m["content"] for m in messages) + ("|tools" if tools else "")

    def encode(self, text):
        return [ord(c) for c in text]


class ScriptedEngine:
    """Answers each request with scripted text events (the engine's thread is not needed here)."""

    def __init__(self, script):
        self.tokenizer, self.script, self.requests = FakeTokenizer(), script, []

    def submit_async(self, prompt_ids, params, routing=False):
        events = asyncio.Queue()
        handle = EngineRequest(prompt_ids, params, emit=events.put_nowait)
        self.requests.append(handle)
        for event in self.script(len(self.requests) - 1, params[0]):
            events.put_nowait(event)
        return handle, events

    def shutdown(self):
        pass


def test_sampling_is_handed_over_and_outputs_are_split():
    texts = {0: ("<think>hmm</think>4", "stop"), 1: ('<tool_calls>\n{"name": "f", "arguments": {}}\n</tool_calls>', "stop"),
             2: ("abcde", "length")}

    def script(i, params):
        text, finish = texts[i]
        return [TextEvent(0, text[:3]), TextEvent(0, text[3:], finish, 5)]

    engine = ScriptedEngine(script)
    outs = run_all(EngineClient(engine, model_id="fake"), [req(i, stop=("\n",), top_p=0.95) for i in range(3)])
    assert [r.params[0].seed for r in engine.requests] == [0, 1, 2]
    assert all(r.params[0].stop == ("\n",) and r.params[0].max_new_tokens == 6 and r.params[0].top_p == 0.95
               for r in engine.requests)
    assert (outs[0].reasoning, outs[0].text, outs[0].finish_reason) == ("hmm", "4", "stop")
    assert outs[1].tool_calls[0].name == "f" and outs[1].finish_reason == "tool_calls"
    assert outs[2].truncated and outs[2].completion_tokens == 5 and outs[2].prompt_tokens == len("question 2: what is 2 + 2?")
    assert all(len(o.token_times) == 2 for o in outs)


def test_an_engine_failure_is_that_requests_error():
    engine = ScriptedEngine(lambda i, p: [TextEvent(0, "", "error: RuntimeError: CUDA out of memory")] if i == 0
                            else [TextEvent(0, "fine", "stop", 1)])
    outs = run_all(EngineClient(engine, model_id="fake"), [req(0), req(1)])
    assert isinstance(outs[0], RequestError) and outs[0].kind == "engine" and "out of memory" in outs[0].message
    assert outs[1].text == "fine"


def test_a_cancelled_request_is_cancelled_in_the_engine():
    engine = ScriptedEngine(lambda i, p: [TextEvent(0, "still thinking")])  # never finishes

    async def go():
        task = asyncio.ensure_future(EngineClient(engine, model_id="fake").complete(req(0)))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    asyncio.run(go())
    assert engine.requests[0].cancelled.is_set()
