"""The engine on its decode pool: slots are reused as samples finish, a request longer than the pool
grows it without disturbing the sequences already running, and every sample's tokens are the oracle
loop's (model/generate.py, one request alone)."""
import threading

import pytest

from m1bench.harness.engine.batching import Engine, EngineRequest
from m1bench.model.checkpoint import load_model
from m1bench.model.generate import SamplingParams, generate
from m1bench.model.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return load_model(tiny_dir), load_tokenizer(tiny_dir)


def run(engine, prompts, params):
    done, texts, counts = threading.Event(), {}, {}
    remaining = [sum(len(p) for p in params)]
    lock = threading.Lock()

    def emit_for(i):
        def emit(e):
            with lock:
                texts[i, e.index] = texts.get((i, e.index), "") + e.text
                if e.finish_reason:
                    counts[i, e.index] = e.completion_tokens
                    remaining[0] -= 1
                    if not remaining[0]:
                        done.set()
        return emit
    for i, (p, ps) in enumerate(zip(prompts, params)):
        engine.submit(EngineRequest(p, ps, emit_for(i)))
    assert done.wait(120)
    return texts, counts


def test_slots_are_reused_and_a_long_request_grows_the_pool(tiny):
    model, tok = tiny
    engine = Engine(model, tok, max_batch_size=3, capacity=24)
    try:
        prompts = [tok.encode("hi"), tok.encode("a prompt that is longer than the pool's first capacity, by far"),
                   tok.encode("n samples"), tok.encode("x")]
        params = [[SamplingParams(max_new_tokens=12, temperature=0)],
                  [SamplingParams(max_new_tokens=9, temperature=0)],
                  [SamplingParams(max_new_tokens=7, temperature=1.0, seed=4)] * 2,
                  [SamplingParams(max_new_tokens=5, temperature=0)]]
        texts, counts = run(engine, prompts, params)
        assert engine.runner.pool.capacity >= len(prompts[1]) + 9 > 24
        assert sorted(engine.free_slots) == [0, 1, 2]  # five samples went through three slots
        for i, (p, ps) in enumerate(zip(prompts, params)):
            for j, sp in enumerate(ps):
                # sample j of a request with seed s samples with seed s + j (the engine's rule)
                alone = generate(model, tok, [p], SamplingParams(**{**sp.__dict__, "seed": None if sp.seed is None else sp.seed + j}))[0]
                assert texts[i, j] == alone.text and counts[i, j] == len(alone.token_ids)
    finally:
        engine.shutdown()


def test_routing_stats_count_the_prompt_whatever_slot_it_lands_in(tiny):
    """A request's routing summary (what `routing_stats` returns) equals the reference generator's for
    the same prompt, for requests prefilled into slots other than 0 (the engine hands out the last
    free slot first) and behind another request."""
    model, tok = tiny
    engine = Engine(model, tok, max_batch_size=3, capacity=64)
    try:
        prompts = [tok.encode("route me"), tok.encode("and me, a little longer")]
        params = SamplingParams(max_new_tokens=5, temperature=0)
        requests, done = [], threading.Semaphore(0)
        for p in prompts:
            r = EngineRequest(p, [params], lambda e: e.finish_reason and done.release(),
                              routing=engine.routing_totals())
            requests.append(r)
            engine.submit(r)
        for _ in prompts:
            assert done.acquire(timeout=120)
        for p, r in zip(prompts, requests):
            want = generate(model, tok, [p], params, routing=model.routing_recorder())[0].routing
            assert r.routing.summary() == want and want["tokens"] == len(p) + params.max_new_tokens - 1
    finally:
        engine.shutdown()
