"""The decode step (a pool of slots, sorted-dispatch MoE, no host sync) against the plain forward loop.

The forward loop is the reference: one `model(ids, cache)` per token on an InferenceCache, whose MoE
loops over the chosen experts. The decode step must give the same tokens, with and without other
sequences in the batch, greedy and sampled; its MoE must compute the loop's function."""
import pytest
import torch

from m1bench.model.checkpoint import load_model
from m1bench.model.decode import DecodeRunner
from m1bench.model.generate import SamplingParams, generate, prefill
from m1bench.model.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return load_model(tiny_dir), load_tokenizer(tiny_dir)


def forward_loop(model, prompt, steps):
    """Greedy tokens and per-step logits from the forward path alone."""
    cache = model.new_cache(1, capacity=len(prompt) + steps)
    logits = model(torch.tensor([prompt]), cache)[0, -1]
    tokens, seen = [], []
    for _ in range(steps):
        seen.append(logits)
        tokens.append(int(logits.argmax()))
        logits = model(torch.tensor([[tokens[-1]]]), cache)[0, -1]
    return tokens, torch.stack(seen)


def prompts(n_tokens, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 260, (n,), generator=g).tolist() for n in n_tokens]


@torch.inference_mode()
def test_decode_step_gives_the_forward_loops_tokens_in_a_batch(tiny):
    model, _ = tiny
    batch = prompts([5, 40, 17, 33], seed=1)  # block boundaries (32) crossed during decode
    steps = 20
    pool = model.new_pool(6, 64)
    runner = DecodeRunner(model, pool, graphs=False)
    slots = [4, 0, 2, 5]  # any slots, in any order
    first = [prefill(model, p, pool, s) for p, s in zip(batch, slots)]
    tokens = [[int(l.argmax())] for l in first]
    logits = [[l] for l in first]
    for _ in range(steps - 1):
        out = runner.step([t[-1] for t in tokens], slots)
        for row, l in enumerate(out):
            tokens[row].append(int(l.argmax()))
            logits[row].append(l)
    for p, got, got_logits in zip(batch, tokens, logits):
        want, want_logits = forward_loop(model, p, steps)
        assert got == want
        torch.testing.assert_close(torch.stack(got_logits), want_logits, atol=1e-5, rtol=1e-5)
    held = [n and n + steps - 1 for n in (40, 0, 17, 0, 5, 33)]  # slots 1 and 3 unused
    assert pool.host_lengths == held and pool.lengths.tolist() == held + [0]


def test_generate_equals_the_forward_loop_greedy_and_sampled(tiny):
    model, tok = tiny
    batch = prompts([3, 29, 12], seed=2)
    greedy = generate(model, tok, batch, SamplingParams(max_new_tokens=15, temperature=0))
    for p, out in zip(batch, greedy):
        assert out.token_ids == forward_loop(model, p, 15)[0]
    sampled = [SamplingParams(max_new_tokens=12, temperature=1.0, top_p=0.9, seed=s) for s in (5, 6, 7)]
    together = generate(model, tok, batch, sampled)
    for p, s, out in zip(batch, sampled, together):
        assert generate(model, tok, [p], s)[0].token_ids == out.token_ids


@torch.inference_mode()
def test_sorted_dispatch_moe_computes_the_expert_loop(tiny):
    model, _ = tiny
    moe = model.model.layers[1].block_sparse_moe
    x = torch.randn(37, model.config.hidden_size, generator=torch.Generator().manual_seed(3))
    loop = moe(x)  # forward: the per-expert loop
    sorted_dispatch = moe.decode(x, *moe.route(x)).sum(1)
    torch.testing.assert_close(sorted_dispatch, loop, atol=1e-6, rtol=1e-6)


def test_stacked_expert_weights_are_the_experts_storage(tiny):
    model, _ = tiny
    moe = model.model.layers[0].block_sparse_moe
    w13, w2 = moe.stacked_weights()
    assert moe.stacked_weights()[0].data_ptr() == w13.data_ptr()  # tied: no second copy
    with torch.no_grad():
        moe.experts[2].w3.weight[1, 4] += 1.0
        assert w13[2, moe.experts[2].w1.out_features + 1, 4] == moe.experts[2].w3.weight[1, 4]
        moe.experts[2].w3.weight[1, 4] -= 1.0
    assert sum(p.numel() for p in model.parameters()) == model.num_parameters()["total"]
    copy = load_model(model.config.source.rsplit("/", 1)[0]).to(torch.bfloat16)  # .to() replaces the storage
    w13_b, _ = copy.model.layers[0].block_sparse_moe.stacked_weights()
    assert w13_b.dtype == torch.bfloat16 and torch.equal(w13_b.float(), w13.bfloat16().float())


def test_a_full_slot_is_refused(tiny):
    model, _ = tiny
    pool = model.new_pool(1, 6)
    runner = DecodeRunner(model, pool, graphs=False)
    with torch.inference_mode():
        prefill(model, [1, 2, 3, 4, 5], pool, 0)
        runner.step([7], [0])
        with pytest.raises(ValueError, match="capacity 6"):
            runner.step([8], [0])
