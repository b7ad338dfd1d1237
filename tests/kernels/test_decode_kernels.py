"""The decode step's Triton kernels (projections with their norm fused in front, the router fused
with its norm, RoPE + cache append, split-KV attention, sorted-dispatch experts), run by Triton's
interpreter on CPU, against their PyTorch definitions and float64 oracles. Outputs are poisoned
(NaN) so an element never written fails."""
import importlib
import os

import pytest
import torch
import torch.nn.functional as F

os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported (see lightning/test_triton.py)
triton = pytest.importorskip("triton")

from m1bench.kernels.attention import reference as attn_ref  # noqa: E402
from m1bench.kernels.linear import reference as linear_ref  # noqa: E402
from m1bench.kernels.moe import reference as moe_ref  # noqa: E402


@pytest.fixture(scope="module")
def tk():
    from triton.runtime.interpreter import InterpretedFunction
    if not isinstance(triton.language.standard.sum, InterpretedFunction):
        pytest.fail("triton was imported before TRITON_INTERPRET=1 was set; run pytest with TRITON_INTERPRET=1")
    for n in ("lightning.chunk", "launch"):
        importlib.reload(importlib.import_module(f"m1bench.kernels.{n}"))
    return {n: importlib.reload(importlib.import_module(f"m1bench.kernels.{n}"))
            for n in ("norm.triton_norm", "moe.triton_moe", "linear.triton_linear", "attention.triton_decode")}


@pytest.fixture
def poisoned(monkeypatch):
    real = torch.empty

    def nan_empty(*a, **kw):
        t = real(*a, **kw)
        return t.fill_(float("nan")) if t.is_floating_point() else t.fill_(-7)
    monkeypatch.setattr(torch, "empty", nan_empty)


# The interpreter casts fp32 to bf16 by truncation, not round-to-nearest as the GPU does: the bf16
# checks here allow for three truncations in a row; the device benchmark checks bf16 against float64.
BF16_TOL = 3e-2


def rel(a, b):
    assert not torch.isnan(a).any(), "output has unwritten (NaN) elements"
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def gen(seed):
    return torch.Generator().manual_seed(seed)


def float64_norm_linear(x, w_norm, eps, weight, gate=None):
    """RMSNorm (then the sigmoid gate) and the product, all in float64: no rounding at all."""
    x = x.double()
    h = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w_norm.double()
    if gate is not None:
        h = torch.sigmoid(gate.double()) * h
    return h @ weight.double().T


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("ky", [None, 1, 2])
@pytest.mark.parametrize("M", [1, 3, 20])  # 20 rows: past GEMV_ROWS, the norm kernel and a matrix product
def test_add_norm_linear(tk, poisoned, dtype, ky, M):
    D, N = 200, 72  # neither a multiple of the tiles
    g = gen(M * 10 + (ky or 0))
    res = torch.randn(M, D, generator=g).to(dtype)
    y = None if ky is None else torch.randn(M, ky, D, generator=g).to(dtype)
    w_norm = (1 + 0.1 * torch.randn(D, generator=g)).to(dtype)
    weight = (torch.randn(N, D, generator=g) * D ** -0.5).to(dtype)
    x, h, out = tk["linear.triton_linear"].add_norm_linear(res, y, 3.5, 0.7, w_norm, 1e-5, weight)
    xr, hr, outr = linear_ref.add_norm_linear(res, y, 3.5, 0.7, w_norm, 1e-5, weight)
    tol = 1e-6 if dtype == torch.float32 else BF16_TOL
    assert out.dtype == dtype and rel(x, xr) < tol and rel(h, hr) < tol and rel(out, outr) < tol
    x64 = res.double() if y is None else res.double() * 3.5 + y.double().sum(1) * 0.7
    assert rel(out, float64_norm_linear(x64, w_norm, 1e-5, weight)) < tol
    if ky is None:
        assert x is res
    _, _, logits = tk["linear.triton_linear"].add_norm_linear(res, y, 3.5, 0.7, w_norm, 1e-5, weight,
                                                              out_dtype=torch.float32)
    assert logits.dtype == torch.float32 and torch.equal(logits, out.float())


@pytest.mark.parametrize("M", [1, 6])
def test_plain_linear(tk, poisoned, M):
    g = gen(M)
    x, weight = torch.randn(M, 96, generator=g), torch.randn(50, 96, generator=g)
    out = tk["linear.triton_linear"].linear(x, weight)
    assert rel(out, x.double() @ weight.double().T) < 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("M", [3, 7])
def test_gated_norm_linear_reads_the_gate_from_a_wider_projection(tk, poisoned, dtype, M):
    D, N = 64, 40
    g = gen(1)
    o = torch.randn(M, D, generator=g).to(dtype)
    proj = torch.randn(M, 3 * D, generator=g).to(dtype)
    gate = proj[:, 2 * D:]  # a strided view, as the lightning layer's gate is
    w_norm, weight = torch.randn(D, generator=g).to(dtype), (torch.randn(N, D, generator=g) / 8).to(dtype)
    out = tk["linear.triton_linear"].gated_norm_linear(o, gate, w_norm, 1e-6, weight)
    tol = 1e-6 if dtype == torch.float32 else BF16_TOL
    assert rel(out, linear_ref.gated_norm_linear(o, gate, w_norm, 1e-6, weight)) < tol
    assert rel(out, float64_norm_linear(o, w_norm, 1e-6, weight, gate)) < tol


@pytest.mark.parametrize("ky", [None, 2])
@pytest.mark.parametrize("M", [3, 19])  # fused; past GEMV_ROWS: norm kernel, then the routing kernel
def test_router_fused_with_its_norm_picks_the_references_top_k(tk, poisoned, ky, M):
    D, E = 40, 6
    g = gen(3)
    res = torch.randn(M, D, generator=g)
    y = None if ky is None else torch.randn(M, ky, D, generator=g)
    w_norm, gate = 1 + 0.1 * torch.randn(D, generator=g), torch.randn(E, D, generator=g)
    x, h, weights, ids = tk["linear.triton_linear"].add_norm_route(res, y, 2.0, 0.5, w_norm, 1e-5, gate, 2)
    xr, hr, want_w, want_ids = linear_ref.add_norm_route(res, y, 2.0, 0.5, w_norm, 1e-5, gate, 2)
    assert rel(x, xr) < 1e-6 and rel(h, hr) < 1e-6
    assert torch.equal(ids.long(), want_ids) and rel(weights, want_w) < 1e-6


@pytest.mark.parametrize("rd", [8, 16])
def test_rotary_append_writes_the_cache_and_rotates_q(tk, poisoned, rd):
    B, HQ, KVH, D, P, cap = 3, 4, 2, 16, 5, 9
    g = gen(rd)
    proj = torch.randn(B, (HQ + 2 * KVH) * D, generator=g)  # q, k, v as views of one projection's rows
    q = proj[:, :HQ * D].view(B, HQ, D)
    k, v = proj[:, HQ * D:(HQ + KVH) * D].view(B, KVH, D), proj[:, (HQ + KVH) * D:].view(B, KVH, D)
    slots, positions = torch.tensor([4, 0, 2]), torch.tensor([0, 7, 3])
    freqs = attn_ref.inv_freq(rd, 1e7, q.device)
    kc, vc = (torch.randn(P, cap, KVH, D, generator=g) for _ in range(2))
    caches = [kc, vc, kc.clone(), vc.clone()]
    want_q = attn_ref.rotary_append(q, k, v, freqs, caches[0], caches[1], slots, positions)
    got_q = tk["attention.triton_decode"].rotary_append(q, k, v, freqs, caches[2], caches[3], slots, positions)
    assert rel(got_q, want_q) < 1e-6
    assert torch.allclose(caches[2], caches[0], atol=1e-6) and torch.equal(caches[3], caches[1])
    cos, sin = attn_ref.rope_cos_sin(positions[:, None], rd, 1e7)  # the forward pass's RoPE
    assert torch.equal(want_q, attn_ref.apply_partial_rope(q[:, None], cos, sin)[:, 0])


def test_rotary_angles_stay_exact_at_a_million_tokens(tk, poisoned):
    """The angles are float64 in the kernel as in the reference: at position ~1M an fp32 angle would
    be off by ~0.06 rad in the fastest frequency."""
    B, HQ, D = 2, 1, 16
    q = torch.randn(B, HQ, D, generator=gen(9))
    k, v = q.clone(), q.clone()
    slots, positions = torch.tensor([0, 1]), torch.tensor([1_048_575, 999_999])
    freqs = attn_ref.inv_freq(D, 1e7, q.device)
    caches = [torch.zeros(2, 1_048_576, 1, D) for _ in range(2)]
    got = tk["attention.triton_decode"].rotary_append(q, k, v, freqs, *caches, slots, positions)
    cos, sin = attn_ref.rope_cos_sin(positions[:, None], D, 1e7)
    assert rel(got, attn_ref.apply_partial_rope(q[:, None], cos, sin)[:, 0]) < 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("splits", [1, 4, 64])  # 64: the merge loops over fewer splits than there are
def test_split_kv_decode_attention_matches_float64(tk, poisoned, dtype, splits):
    B, HQ, KVH, D, P, cap = 3, 8, 2, 32, 4, 700
    g = gen(splits)
    q = torch.randn(B, HQ, D, generator=g).to(dtype)
    kc, vc = (torch.randn(P, cap, KVH, D, generator=g).to(dtype) for _ in range(2))
    slots, lengths = torch.tensor([3, 0, 1]), torch.tensor([1, 130, 641], dtype=torch.int32)  # one key; partial blocks
    o = tk["attention.triton_decode"].decode_attention(q, kc, vc, slots, lengths, D ** -0.5, splits=splits)
    want = torch.stack([F.scaled_dot_product_attention(
        q[b, :, None].double(), kc[s, :n].transpose(0, 1).double().repeat_interleave(HQ // KVH, 0),
        vc[s, :n].transpose(0, 1).double().repeat_interleave(HQ // KVH, 0), scale=D ** -0.5)[:, 0]
        for b, (s, n) in enumerate(zip(slots.tolist(), lengths.tolist()))])
    assert o.dtype == dtype and rel(o, want) < (1e-5 if dtype == torch.float32 else 1e-2)
    assert rel(attn_ref.decode_attention(q, kc, vc, slots, lengths, D ** -0.5), want) < (1e-5 if dtype == torch.float32 else 1e-2)


def loop_experts(x, w13, w2, weights, ids):
    """The per-expert loop in float64, independent of both dispatch implementations."""
    I = w2.shape[-1]
    out = torch.zeros(*ids.shape, x.shape[-1], dtype=torch.float64)
    for n in range(ids.shape[0]):
        for j, e in enumerate(ids[n].tolist()):
            h = w13[e].double() @ x[n].double()
            out[n, j] = weights[n, j].double() * (w2[e].double() @ (F.silu(h[:I]) * h[I:]))
    return out


# Rows 48 and 40 wide (neither a multiple of a tile) or 1100 and 2100 (several K steps); a single
# token skips the sort; 40 tokens over 2 experts give each expert several blocks.
@pytest.mark.parametrize("N,E,H,I", [(1, 4, 48, 40), (5, 4, 48, 40), (12, 3, 48, 40), (3, 16, 48, 40),
                                     (40, 2, 48, 40), (6, 3, 1100, 40), (6, 3, 40, 2100)])
def test_sorted_dispatch_experts_match_the_loop(tk, poisoned, N, E, H, I):
    g = gen(N * E)
    x = torch.randn(N, H, generator=g)
    w13, w2 = torch.randn(E, 2 * I, H, generator=g) * 0.2, torch.randn(E, H, I, generator=g) * 0.2
    weights, ids = moe_ref.route(x, torch.randn(E, H, generator=g), 2)
    want = loop_experts(x, w13, w2, weights, ids)
    assert rel(moe_ref.experts(x, w13, w2, weights, ids), want) < 1e-6
    assert rel(tk["moe.triton_moe"].experts(x, w13, w2, weights, ids), want) < 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("N,k,H", [(37, 2, 300), (5, 3, 64)])  # neither a multiple of the tiles
def test_gather_sum_puts_sorted_expert_outputs_back_in_token_order(tk, poisoned, dtype, N, k, H):
    """Prefill's combine: row p of y is pair order[p]'s output; token n gets sum_j w[n, j] * its pair's row."""
    g = gen(N + k)
    y = torch.randn(N * k, H, generator=g).to(dtype)
    order = torch.randperm(N * k, generator=g)
    unsort = torch.empty_like(order)
    unsort[order] = torch.arange(N * k)
    weights = torch.rand(N, k, generator=g)
    want = torch.stack([sum(weights[n, j].double() * y[unsort[n * k + j]].double() for j in range(k)) for n in range(N)])
    ref = moe_ref.gather_sum(y, unsort, weights)
    got = tk["moe.triton_moe"].gather_sum(y, unsort, weights)
    tol = 1e-6 if dtype == torch.float32 else BF16_TOL
    assert got.dtype == dtype and rel(got, ref) < tol and rel(ref, want) < tol and rel(got, want) < tol


def test_a_whole_decode_step_through_the_kernels_equals_the_pytorch_step(tk, tiny_dir):
    """The tiny model's decode step with every op on its Triton kernel gives the PyTorch step's
    logits, for a batch of sequences of different lengths in scattered slots."""
    from m1bench.kernels.dispatch import default_impl
    from m1bench.model.checkpoint import load_model
    from m1bench.model.generate import prefill
    importlib.reload(importlib.import_module("m1bench.kernels.lightning.recurrent"))
    model = load_model(tiny_dir)
    runs = {}
    with torch.inference_mode():
        for impl in ("torch", "triton"):
            pool = model.new_pool(4, 48)
            for slot, n in ((3, 9), (0, 35), (1, 1)):
                prefill(model, list(range(7, 7 + n)), pool, slot)
            slots, tokens, steps = torch.tensor([3, 0, 1]), torch.tensor([11, 12, 13]), []
            with default_impl(impl):
                for _ in range(4):
                    steps.append(model.decode_step(tokens, pool, slots))
                    tokens = steps[-1].argmax(-1)
            runs[impl] = torch.stack(steps)
    assert rel(runs["triton"], runs["torch"]) < 1e-5
    assert torch.equal(runs["triton"].argmax(-1), runs["torch"].argmax(-1))
