"""Reference-model invariants: cache, chunked prefill, batching with left padding, sampling."""
import pytest
import torch

from m1bench.model.checkpoint import load_model
from m1bench.model.generate import SamplingParams, generate, sample_token
from m1bench.model.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return load_model(tiny_dir), load_tokenizer(tiny_dir)


def random_ids(n, seed, vocab=260):
    return torch.randint(0, vocab, (1, n), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("length", [5, 40, 97])
def test_cached_decode_equals_full_forward(tiny, length):
    model, _ = tiny
    ids = random_ids(length, length)
    with torch.no_grad():
        full = model(ids)
        cache = model.new_cache(1)
        steps = [model(ids[:, :1], cache)] + [model(ids[:, t:t + 1], cache) for t in range(1, length)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("chunks", [[50, 47], [1, 32, 33, 31], [96, 1]])
def test_chunked_prefill_equals_one_shot(tiny, chunks):
    model, _ = tiny
    ids = random_ids(sum(chunks), 3)
    with torch.no_grad():
        full = model(ids)
        cache, outs, start = model.new_cache(1, capacity=8), [], 0  # capacity 8 also exercises cache growth
        for n in chunks:
            outs.append(model(ids[:, start:start + n], cache))
            start += n
    torch.testing.assert_close(torch.cat(outs, dim=1), full, atol=1e-5, rtol=1e-5)


def test_left_padded_batch_logits_equal_single(tiny):
    model, _ = tiny
    a, b = random_ids(30, 1)[0], random_ids(11, 2)[0]
    ids = torch.stack([a, torch.cat([torch.zeros(19, dtype=torch.long), b])])
    mask = torch.stack([torch.ones(30), torch.cat([torch.zeros(19), torch.ones(11)])]).long()
    with torch.no_grad():
        batched = model(ids, attention_mask=mask)
        torch.testing.assert_close(batched[0], model(a[None])[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(batched[1, 19:], model(b[None])[0], atol=1e-5, rtol=1e-5)


def test_greedy_generation_identical_between_batch_and_single(tiny):
    model, tok = tiny
    prompts = [tok.encode(tok.render_chat([{"role": "user", "content": q}]))
               for q in ("What is 2+2?", "Name a prime number larger than one hundred, please.", "Hi")]
    params = SamplingParams(max_new_tokens=24, temperature=0)
    batched = generate(model, tok, prompts, params)
    for prompt, out in zip(prompts, batched):
        single = generate(model, tok, [prompt], params)[0]
        assert single.token_ids == out.token_ids and single.finish_reason == out.finish_reason
        assert len(out.token_ids) == 24 and out.finish_reason == "length"


def test_seeded_sampling_is_reproducible_and_independent_of_batch(tiny):
    model, tok = tiny
    prompts = [tok.encode("abc"), tok.encode("a much longer prompt than the other one")]
    p = [SamplingParams(max_new_tokens=16, temperature=1.0, top_p=0.95, seed=s) for s in (11, 12)]
    first = generate(model, tok, prompts, p)
    again = generate(model, tok, prompts[::-1], p[::-1])[::-1]
    assert [g.token_ids for g in first] == [g.token_ids for g in again]
    other = generate(model, tok, prompts, [SamplingParams(max_new_tokens=16, seed=99)] * 2)
    assert [g.token_ids for g in other] != [g.token_ids for g in first]


def test_stop_strings_eos_and_max_tokens(tiny):
    model, tok = tiny
    prompt = [tok.encode("hello")]
    free = generate(model, tok, prompt, SamplingParams(max_new_tokens=30, temperature=0))[0]
    stop = free.text[5:8]
    cut = generate(model, tok, prompt, SamplingParams(max_new_tokens=30, temperature=0, stop=(stop,)))[0]
    assert cut.finish_reason == "stop" and cut.text == free.text[:free.text.find(stop)]
    # make the 4th greedy token the EOS by forcing it through a logits bias on the LM head
    eos_model, _ = tiny
    zero = generate(eos_model, tok, prompt, SamplingParams(max_new_tokens=0))[0]
    assert zero.token_ids == [] and zero.finish_reason == "length"
    with torch.no_grad():
        saved = eos_model.lm_head.weight[tok.eos_token_id].clone()
        eos_model.lm_head.weight[tok.eos_token_id] += 100 * eos_model.model.norm.weight.sign()
        try:
            ended = generate(eos_model, tok, prompt, SamplingParams(max_new_tokens=30, temperature=0))[0]
        finally:
            eos_model.lm_head.weight[tok.eos_token_id] = saved
    assert ended.finish_reason == "stop" and tok.eos_token_id not in ended.token_ids


def test_sample_token_filters():
    logits = torch.tensor([0.0, 3.0, 2.9, -1.0])
    g = torch.Generator().manual_seed(0)
    assert sample_token(logits, SamplingParams(temperature=0), g) == 1
    assert {sample_token(logits, SamplingParams(top_k=1), g) for _ in range(20)} == {1}
    assert {sample_token(logits, SamplingParams(top_p=0.01), g) for _ in range(20)} == {1}
    assert {sample_token(logits, SamplingParams(top_k=2), g) for _ in range(200)} == {1, 2}
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0)


def test_parameter_counts_match_the_paper():
    from m1bench.model.m1 import M1ForCausalLM
    from m1bench.model.presets import preset
    with torch.device("meta"):
        counts = M1ForCausalLM(preset("m1")).num_parameters()
    assert round(counts["total"] / 1e9) == 456  # "456 billion parameters"
    assert round(counts["active_per_token"] / 1e9, 1) == 45.9  # "45.9 billion activated per token"


def test_unpadded_lazy_causal_mask_equals_the_explicit_mask(tiny):
    """Unpadded batches use SDPA's lazy causal bias (no [T, S] tensor, 1M-token contexts fit); padded
    ones an explicit mask. Both paths give the same logits for the same tokens, chunked or not."""
    model, _ = tiny
    ids = random_ids(90, 9)
    ones = torch.ones(1, 90, dtype=torch.long)
    with torch.no_grad():
        lazy, explicit = model.new_cache(1), model.new_cache(1)
        explicit.padded = True  # force the explicit boolean mask
        for a, b in ((0, 50), (50, 51), (51, 90)):
            torch.testing.assert_close(model(ids[:, a:b], lazy), model(ids[:, a:b], explicit, attention_mask=ones[:, a:b]),
                                       atol=1e-5, rtol=1e-5)
    assert lazy.attention_mask(1) is None


def test_decay_slopes_stay_float32_whatever_the_weights_dtype(tiny):
    """MiniMax's code keeps the lightning decay rates in fp32; a bf16 model must not round them (bf16
    slopes would move exp(-s t) by several percent at long t). Built on meta and allocated with
    `to_empty`, a model gets them too."""
    model, _ = tiny
    from m1bench.model.m1 import M1ForCausalLM
    want = {i: torch.tensor(model.config.lightning_slopes(i)) for i in model.config.lightning_layers}
    with torch.device("meta"):
        empty = M1ForCausalLM(model.config).to(torch.bfloat16)
    empty.to_empty(device="cpu")
    for m in (load_model(model.config.source.rsplit("/", 1)[0], dtype=torch.bfloat16), empty):
        for i, slopes in want.items():
            got = m.model.layers[i].self_attn.slopes
            assert got.dtype == torch.float32 and torch.equal(got, slopes)


def test_moe_sorted_dispatch_is_the_per_token_sum_of_its_experts():
    """The forward sorts the pairs by expert, runs each expert on its slice and gathers the outputs
    back: the same as sending each token through its k experts one by one (fp32), and the float64
    sum in bf16."""
    import torch.nn.functional as F
    from m1bench.model.moe import SparseMoE
    from m1bench.model.presets import tiny as tiny_config
    torch.manual_seed(0)
    moe = SparseMoE(tiny_config(), layer=0)
    x = torch.randn(2, 37, moe.gate.in_features)
    flat = x.reshape(-1, x.shape[-1])
    weights, ids = moe.route(flat)
    with torch.no_grad():
        per_token = torch.stack([sum(w * moe.experts[e](row) for w, e in zip(weights[n], ids[n].tolist()))
                                 for n, row in enumerate(flat)])
        torch.testing.assert_close(moe(x).reshape(flat.shape), per_token, atol=1e-6, rtol=1e-5)
        want = torch.zeros(flat.shape, dtype=torch.float64)
        for n, row in enumerate(flat.double()):
            for w, e in zip(weights[n].tolist(), ids[n].tolist()):
                ex = moe.experts[e]
                want[n] += w * (F.silu(row @ ex.w1.weight.double().T) * (row @ ex.w3.weight.double().T)) @ ex.w2.weight.double().T
        got = moe.to(torch.bfloat16)(x.to(torch.bfloat16)).reshape(flat.shape).double()
    assert ((got - want).norm() / want.norm()).item() < 2e-2
