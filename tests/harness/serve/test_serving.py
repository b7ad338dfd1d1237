"""The embedded OpenAI-compatible server: M1 output parsing, continuous batching against the
reference generator, and the HTTP API under concurrent streaming and non-streaming clients (real
HTTP on 127.0.0.1)."""
import asyncio
import json
import random
import socket
import threading
import time

import openai
import pytest
import torch
import uvicorn

from m1bench.harness.core.m1_output import M1OutputParser, parse_output
from m1bench.harness.engine.batching import Engine, EngineRequest, TextEvent
from m1bench.harness.serve.server import EmbeddedServer, create_app
from m1bench.model.checkpoint import load_model
from m1bench.model.generate import SamplingParams, generate
from m1bench.model.tiny import ensure_tiny
from m1bench.model.tokenizer import load_tokenizer

M1_OUTPUT = ('<think>\nThe user wants the weather.\n</think>\n\nLet me check.\n<tool_calls>\n'
             '{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
             '{"name": "get_time", "arguments": {"tz": "CET"}}\n</tool_calls>')


# ---- M1 output parsing ---------------------------------------------------------------------------
@pytest.mark.parametrize("text,reasoning,content,calls", [
    (M1_OUTPUT, "The user wants the weather.", "Let me check.",
     [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "CET"})]),
    ("<think>cut off by max_tokens", "cut off by max_tokens", "", []),
    ("plain answer  ", "", "plain answer", []),
    ("a <tool_calls>\nnot json\n{\"name\": \"f\"}\n</tool_calls> b", "", "a\nnot json\nb", [("f", {})]),
    ("unclosed <tool_calls>\n{\"name\": \"f\"}", "", "unclosed\n<tool_calls>\n{\"name\": \"f\"}", []),
    ("x <thin", "", "x <thin", []),
])
def test_m1_output_split_is_the_same_for_any_chunking(text, reasoning, content, calls):
    whole = parse_output(text)
    assert (whole.reasoning, whole.content) == (reasoning, content)
    assert [(c.name, json.loads(c.arguments)) for c in whole.tool_calls] == calls
    rng = random.Random(0)
    for _ in range(30):
        parser, got, i = M1OutputParser(), type(whole)(), 0
        while i < len(text):
            j = i + rng.randint(1, 5)
            got.extend(parser.feed(text[i:j]))
            i = j
        got.extend(parser.finish())
        assert (got.reasoning, got.content, [(c.name, c.arguments) for c in got.tool_calls]) == \
               (whole.reasoning, whole.content, [(c.name, c.arguments) for c in whole.tool_calls])


# ---- engine: continuous batching vs the reference generator ------------------------------------
@pytest.fixture(scope="module")
def tiny():
    path = ensure_tiny()
    return load_model(path), load_tokenizer(path)


def run_engine(engine, prompts, params, delays):
    """Submit prompts at staggered times (so requests join a running batch); collect their text."""
    results = [dict(text="", finish=None, tokens=0) for _ in prompts]
    done = threading.Semaphore(0)

    def sink(k):
        def emit(e: TextEvent):
            results[k]["text"] += e.text
            if e.finish_reason:
                results[k].update(finish=e.finish_reason, tokens=e.completion_tokens)
                done.release()
        return emit

    for k, (p, sp, d) in enumerate(zip(prompts, params, delays)):
        time.sleep(d)
        engine.submit(EngineRequest(p, [sp], sink(k)))
    for _ in prompts:
        assert done.acquire(timeout=60)
    return results


def test_continuous_batching_matches_reference_generate(tiny):
    """Requests joining and leaving a running batch (different prompt lengths, different max_tokens,
    left-padded cache merges and trims) decode exactly what the reference generator decodes alone."""
    model, tok = tiny
    prompts = [tok.encode(t) for t in ("Hi", "The quick brown fox", "a" * 40, "Lightning attention", "x")]
    params = [SamplingParams(max_new_tokens=m, temperature=0) for m in (12, 5, 20, 9, 15)]
    engine = Engine(model, tok, max_batch_size=4)  # the fifth request waits for room
    try:
        got = run_engine(engine, prompts, params, delays=[0, 0.05, 0.1, 0.0, 0.2])
    finally:
        engine.shutdown()
    assert max(engine.batch_sizes) > 1
    for p, sp, r in zip(prompts, params, got):
        want = generate(model, tok, [p], sp)[0]
        assert r["text"] == want.text and r["tokens"] == len(want.token_ids)
        assert r["finish"] == want.finish_reason


def test_engine_stop_strings_and_seeded_samples(tiny):
    model, tok = tiny
    prompt = tok.encode("Stop strings")
    free = generate(model, tok, [prompt], SamplingParams(max_new_tokens=24, temperature=0))[0].text
    stop = free[5:8]
    engine = Engine(model, tok)
    try:
        [r] = run_engine(engine, [prompt], [SamplingParams(max_new_tokens=24, temperature=0, stop=(stop,))], [0])
        assert r["text"] == free[:free.find(stop)] and r["finish"] == "stop"
        seeded = SamplingParams(max_new_tokens=10, temperature=1.0, top_p=0.9, seed=7)
        a, b = run_engine(engine, [prompt, prompt], [seeded, seeded], [0, 0])
        assert a["text"] == b["text"] == generate(model, tok, [prompt], seeded)[0].text
    finally:
        engine.shutdown()


# ---- HTTP ---------------------------------------------------------------------------------------
class ScriptedEngine:
    """Answers every sample with a fixed M1 output in random-sized pieces (for parsing through HTTP)."""

    submit_async = Engine.submit_async  # the engine's own bridge to the event loop, over this submit

    def __init__(self, text: str):
        self.text = text

    def submit(self, request: EngineRequest):
        def run():
            rng = random.Random(len(request.prompt_ids))
            for i in range(len(request.params)):
                pos = 0
                while pos < len(self.text):
                    step = rng.randint(1, 7)
                    request.emit(TextEvent(i, self.text[pos:pos + step]))
                    pos += step
                request.emit(TextEvent(i, "", "stop", 42))
        threading.Thread(target=run, daemon=True).start()


class Served:
    def __init__(self, engine, tok, name="tiny", max_model_len=4096):
        self.server = EmbeddedServer(engine, tok, name, max_model_len)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.uv = uvicorn.Server(uvicorn.Config(create_app(self.server), host="127.0.0.1", port=port, log_level="error"))
        self.thread = threading.Thread(target=self.uv.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.uv.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}/v1"
        self.client = openai.OpenAI(base_url=self.url, api_key="none", max_retries=0, timeout=60)
        self.aclient = openai.AsyncOpenAI(base_url=self.url, api_key="none", max_retries=0, timeout=60)

    def close(self):
        self.uv.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def served(tiny):
    model, tok = tiny
    engine = Engine(model, tok, max_batch_size=8)
    s = Served(engine, tok)
    yield s
    s.close()
    engine.shutdown()


def chat_prompt(tok, messages, tools=None):
    return tok.encode(tok.render_chat(messages, tools=tools))


def test_health_and_models(served):
    import urllib.request
    with urllib.request.urlopen(served.url.removesuffix("/v1") + "/health") as r:
        assert r.status == 200
    assert [m.id for m in served.client.models.list().data] == ["tiny"]


def test_concurrent_streaming_and_plain_clients_get_the_reference_answers(served, tiny):
    """Eight clients at once, half streaming: every answer is the reference generator's greedy
    answer for its own prompt, streamed text equals whole text, usage is right, and the engine
    really batched them."""
    model, tok = tiny
    questions = [f"Question {i}: what is {i} + {i}?" for i in range(8)]
    before = len(served.server.engine.batch_sizes)

    async def ask(i, q):
        kw = dict(model="tiny", messages=[{"role": "user", "content": q}], max_tokens=6 + i, temperature=0)
        if i % 2:
            stream = await served.aclient.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw)
            text, usage, finish = "", None, None
            async for c in stream:
                usage = c.usage or usage
                for ch in c.choices:
                    text += ch.delta.content or ""
                    finish = ch.finish_reason or finish
            return text, usage, finish
        r = await served.aclient.chat.completions.create(**kw)
        return r.choices[0].message.content or "", r.usage, r.choices[0].finish_reason

    async def main():
        return await asyncio.gather(*(ask(i, q) for i, q in enumerate(questions)))

    answers = asyncio.run(main())
    for i, (q, (text, usage, finish)) in enumerate(zip(questions, answers)):
        prompt = chat_prompt(tok, [{"role": "user", "content": q}])
        want = generate(model, tok, [prompt], SamplingParams(max_new_tokens=6 + i, temperature=0))[0]
        assert text == parse_output(want.text).content
        assert (usage.prompt_tokens, usage.completion_tokens) == (len(prompt), len(want.token_ids))
        assert finish == want.finish_reason
    assert max(served.server.engine.batch_sizes[before:]) >= 4


def test_n_samples_seed_stop_and_tools_in_the_prompt(served, tiny):
    model, tok = tiny
    messages = [{"role": "user", "content": "sample me"}]
    kw = dict(model="tiny", messages=messages, max_tokens=8, temperature=1.0, top_p=0.95, seed=11)
    a = served.client.chat.completions.create(n=3, **kw)
    b = served.client.chat.completions.create(n=3, **kw)
    assert [c.message.content for c in a.choices] == [c.message.content for c in b.choices]
    assert len({c.message.content for c in a.choices}) == 3 and a.usage.completion_tokens == 24
    shifted = served.client.chat.completions.create(n=1, **{**kw, "seed": 12})  # sample i uses seed + i
    assert shifted.choices[0].message.content == a.choices[1].message.content

    greedy = served.client.completions.create(model="tiny", prompt="stop here", max_tokens=16, temperature=0)
    text = greedy.choices[0].text
    cut = served.client.completions.create(model="tiny", prompt="stop here", max_tokens=16, temperature=0,
                                           stop=[text[4:6]])
    assert cut.choices[0].text == text[:text.find(text[4:6])] and cut.choices[0].finish_reason == "stop"
    assert greedy.choices[0].finish_reason == "length" and greedy.usage.completion_tokens == 16

    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    r = served.client.chat.completions.create(model="tiny", messages=messages, tools=tools, max_tokens=1)
    assert r.usage.prompt_tokens == len(chat_prompt(tok, messages, tools)) > len(chat_prompt(tok, messages)) + 50


def test_routing_stats_extra_field_only_when_asked(served, tiny):
    """`routing_stats: true` (m1bench's extension) returns the request's expert-routing summary:
    the same counts the reference generator records for that prompt, streamed or not."""
    model, tok = tiny
    messages = [{"role": "user", "content": "route me"}]
    kw = dict(model="tiny", messages=messages, max_tokens=5, temperature=0)
    plain = served.client.chat.completions.create(**kw)
    assert getattr(plain, "routing_stats", None) is None
    asked = served.client.chat.completions.create(extra_body={"routing_stats": True}, **kw).model_dump()
    want = generate(model, tok, [chat_prompt(tok, messages)], SamplingParams(max_new_tokens=5, temperature=0),
                    routing=model.routing_recorder())[0]
    assert asked["routing_stats"] == want.routing
    stream = served.client.chat.completions.create(stream=True, extra_body={"routing_stats": True}, **kw)
    last = [c.model_dump() for c in stream][-1]
    assert last["routing_stats"] == want.routing


def test_reasoning_and_tool_calls_are_parsed_streamed_or_not(tiny):
    _, tok = tiny
    s = Served(ScriptedEngine(M1_OUTPUT), tok)
    try:
        kw = dict(model="tiny", messages=[{"role": "user", "content": "weather in Paris?"}], n=2)
        whole = s.client.chat.completions.create(**kw)
        for choice in whole.choices:
            m = choice.message
            assert m.model_extra["reasoning_content"] == "The user wants the weather."
            assert m.content == "Let me check." and choice.finish_reason == "tool_calls"
            assert [(c.function.name, json.loads(c.function.arguments)) for c in m.tool_calls] == \
                   [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "CET"})]
        reasoning, content, calls, finish = [""] * 2, [""] * 2, [{}, {}], [None] * 2
        for chunk in s.client.chat.completions.create(stream=True, **kw):
            for ch in chunk.choices:
                i, d = ch.index, ch.delta
                reasoning[i] += (d.model_extra or {}).get("reasoning_content") or ""
                content[i] += d.content or ""
                for tc in d.tool_calls or []:
                    calls[i][tc.index] = (tc.function.name, json.loads(tc.function.arguments))
                finish[i] = ch.finish_reason or finish[i]
        assert reasoning == ["The user wants the weather."] * 2 and content == ["Let me check."] * 2
        assert calls == [{0: ("get_weather", {"city": "Paris"}), 1: ("get_time", {"tz": "CET"})}] * 2
        assert finish == ["tool_calls"] * 2
    finally:
        s.close()


@pytest.mark.parametrize("body,status,names", [
    ({"model": "tiny", "messages": [], "max_tokens": 4}, 400, "messages"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "temperature": -1}, 400, "temperature"),
    ({"model": "tiny", "messages": [{"role": "wizard", "content": "x"}]}, 400, "role"),
    ({"model": "other", "messages": [{"role": "user", "content": "x"}]}, 404, "model"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": 10 ** 6}, 400, "max_tokens"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "presence_penalty": 1}, 400, "presence_penalty"),
])
def test_bad_requests_get_clear_errors(served, body, status, names):
    import urllib.error
    import urllib.request
    req = urllib.request.Request(served.url + "/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == status
    assert names in json.loads(e.value.read())["error"]["message"]


def test_client_that_hangs_up_mid_stream_frees_its_batch_slot(served):
    import http.client
    engine = served.server.engine
    host, port = served.url.removeprefix("http://").removesuffix("/v1").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("POST", "/v1/chat/completions", json.dumps(
        {"model": "tiny", "messages": [{"role": "user", "content": "long"}], "max_tokens": 3000, "stream": True}),
        {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.readline().startswith(b"data: ")
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    deadline = time.monotonic() + 20
    while engine.samples and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not engine.samples and engine.steps < 3000


def test_a_failing_request_fails_alone(tiny):
    """A prefill that raises (an out-of-vocabulary id) ends that request with the error; the engine
    keeps serving."""
    model, tok = tiny
    engine = Engine(model, tok)
    events = []
    done = threading.Event()
    try:
        engine.submit(EngineRequest([10 ** 6], [SamplingParams(max_new_tokens=3, temperature=0)],
                                    lambda e: (events.append(e), done.set())))
        assert done.wait(30)
        assert events[-1].finish_reason.startswith("error: IndexError")
        [r] = run_engine(engine, [tok.encode("still here")], [SamplingParams(max_new_tokens=4, temperature=0)], [0])
        assert r["finish"] == "length" and r["tokens"] == 4
    finally:
        engine.shutdown()
