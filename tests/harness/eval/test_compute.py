"""Per-sample compute: a sample's analytic FLOPs are what torch's FlopCounterMode counts of the sample's
own generate call; token splits, multi-turn sums and the budget curve's rule."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from m1bench.harness.core.types import Completion
from m1bench.harness.eval.compute import Architecture, sample_compute, score_within, served_architecture, suite_compute
from m1bench.harness.profile.counted import CUSTOM_FORMULAS, _causal_bias_outside_modes
from m1bench.model import flops as F
from m1bench.model.arch import load_spec
from m1bench.model.checkpoint import load_model
from m1bench.model.generate import SamplingParams, generate
from m1bench.model.tokenizer import load_tokenizer
from tests.support import REPO

GATE = REPO / "reports/baselines/tiny/tiny-gate"


def _causal_cpu_sdpa(q, k, v, dropout_p=0.0, is_causal=False, *args, **kwargs) -> int:
    """What a causal kernel computes: query i of T (lower-right aligned to S keys) scores S - T + i + 1 keys.
    (torch's own formula counts the dense T x S whatever the mask.)"""
    dense = sdpa_flop_count(q, k, v)
    if not is_causal:
        return dense
    T, S = q[-2], k[-2]
    return dense * (T * S - T * (T - 1) // 2) // (T * S)


def counted_generate(model, prompt_ids, params):
    with torch.no_grad(), _causal_bias_outside_modes(), FlopCounterMode(
            display=False, custom_mapping={**CUSTOM_FORMULAS,
                                           torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _causal_cpu_sdpa}) as fc:
        g = generate(model, tok, [prompt_ids], params)[0]
    return g, fc.get_total_flops()


model = load_model(GATE)
tok = load_tokenizer(GATE)


@pytest.mark.parametrize("prompt,max_new", [("Repeat this number: 42", 64), ("Repeat this number: 7", 3),
                                            ("x " * 70, 40)])
def test_sample_flops_equal_flop_counter_of_its_generate_call(prompt, max_new):
    ids = tok.encode(tok.render_chat([{"role": "user", "content": prompt}], add_generation_prompt=True))
    g, counted = counted_generate(model, ids, SamplingParams(max_new_tokens=max_new, temperature=0))
    c = Completion(text=g.text, finish_reason=g.finish_reason, prompt_tokens=len(ids), completion_tokens=len(g.token_ids))
    arch = served_architecture(None, {"engine": "reference", "checkpoint": str(GATE), "device": "cpu"})
    spec = arch.spec
    fields = sample_compute(c, arch, tok)
    # FlopCounterMode sees no matmul in the lightning decode's state update (an outer product and an add)
    decode_forwards = len(g.token_ids) - (g.finish_reason == "length")
    unseen = decode_forwards * F.coefficients(spec).const["lightning_state"]
    assert fields["flops"] == pytest.approx(counted + unseen, rel=0.01), (g.finish_reason, len(g.token_ids))


def test_multi_turn_sums_turns_with_the_whole_prompt_re_read():
    spec = load_spec("tiny")
    c = Completion(text="", prompt_tokens=300, completion_tokens=30, finish_reason="length",
                   trajectory=[{"role": "user"}, {"tokens": [100, 10], "reasoning": ""}, {"role": "tool"},
                               {"tokens": [200, 20], "reasoning": ""}])
    fields = sample_compute(c, Architecture(spec, "test", False))
    assert fields["turns"] == 2
    assert fields["flops"] == pytest.approx(F.request_flops(spec, 100, 10) + F.request_flops(spec, 200, 20))


def test_reasoning_split_with_the_tokenizer():
    c = Completion(text="\\boxed{42}", reasoning="think about it", prompt_tokens=5, completion_tokens=40)
    fields = sample_compute(c, Architecture(None, "unknown", False), tok)
    n = len(tok.encode("<think>think about it</think>"))
    assert (fields["reasoning_tokens"], fields["answer_tokens"], fields["flops"]) == (n, 40 - n, None)


def test_budget_curve_counts_only_samples_finished_within_the_budget():
    rows = [{"problem_id": "a", "credit": 1.0, "finished": True, "tokens": 10},
            {"problem_id": "a", "credit": 1.0, "finished": True, "tokens": 100},
            {"problem_id": "b", "credit": 1.0, "finished": False, "tokens": 50},
            {"problem_id": "b", "credit": 0.0, "finished": True, "tokens": 5}]
    assert score_within(rows, "tokens", [5, 10, 100, 1000]) == [0.0, 0.25, 0.5, 0.5]


def test_counterfactual_prices_the_same_tokens_on_other_architectures():
    spec = load_spec("m1")
    c = Completion(text="", prompt_tokens=1000, completion_tokens=100_000, finish_reason="length")
    arch = Architecture(spec, "test", False)
    s = [{"problem_id": "p", "credit": 1.0, "finished": True, "completion": c, "compute": sample_compute(c, arch)}]
    out = {r["architecture"]: r for r in suite_compute(s, arch, 100_000)["counterfactual"]}
    r1 = out["deepseek-r1"]
    assert r1["flops_total"] == pytest.approx(F.request_flops(load_spec("deepseek-r1"), 1000, 100_000))
    assert 0.2 < r1["served_over_this"] < 0.35  # the paper: about 25% of R1's FLOPs at 100K generated tokens
    assert out["m1"]["served_over_this"] == 1.0 and out["m1-softmax"]["served_over_this"] < 1


def test_reasoning_tokens_from_the_endpoints_usage_when_it_splits_them():
    """An endpoint that reports completion_tokens_details.reasoning_tokens (OpenAI's usage) is believed;
    without it, and without a tokenizer, the split is unknown (None), not guessed."""
    import asyncio
    import json

    from m1bench.harness.bench.stub_server import StubServer
    from m1bench.harness.clients.openai_compat import OpenAIClient
    from m1bench.harness.core.types import Request, Sampling

    def sse(payload):
        return f"data: {json.dumps(payload)}\n\n".encode()

    usage = {"prompt_tokens": 3, "completion_tokens": 9, "completion_tokens_details": {"reasoning_tokens": 6}}
    stream = [sse({"choices": [{"index": 0, "delta": {"reasoning_content": "think think"}}]}),
              sse({"choices": [{"index": 0, "delta": {"content": "42"}, "finish_reason": "stop"}]}),
              sse({"choices": [], "usage": usage}), b"data: [DONE]\n\n"]

    async def complete(url):
        client = OpenAIClient([url], "m")
        try:
            return await client.complete(Request(messages=({"role": "user", "content": "q"},), sampling=Sampling(max_tokens=8)))
        finally:
            await client.aclose()

    arch = Architecture(spec=None, source="unknown", eos_uncounted=False)
    with StubServer(faults=[("raw", stream)]) as told, StubServer(lambda body: {"reasoning": "hm", "content": "42"}) as silent:
        split, unsplit = asyncio.run(complete(told.url)), asyncio.run(complete(silent.url))
    fields = sample_compute(split, arch)
    assert split.reasoning_tokens == 6 and fields["reasoning_tokens"] == 6 and fields["answer_tokens"] == 3
    assert unsplit.reasoning_tokens is None and sample_compute(unsplit, arch)["reasoning_tokens"] is None
