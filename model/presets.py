"""Named model shapes: `tiny` (CI, seconds on 2 CPU cores), `small` (GPU profiling, long context),
`m1` (the real MiniMax-M1 shapes: FLOPs/memory math and real checkpoints)."""
from m1bench.model.config import M1Config, deepnorm_alpha, every_nth_softmax


def _preset(*, vocab_size, hidden_size, layers, heads, kv_heads, head_dim, rotary_dim, intermediate,
            experts, top_k, block_size=256, period=8, eos_token_id=None, bos_token_id=None) -> M1Config:
    alpha = deepnorm_alpha(layers)
    return M1Config(
        vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim, rotary_dim=rotary_dim,
        intermediate_size=intermediate, num_local_experts=experts, num_experts_per_tok=top_k,
        attn_type_list=every_nth_softmax(layers, period), block_size=block_size,
        layernorm_full_attention_alpha=alpha, layernorm_linear_attention_alpha=alpha, layernorm_mlp_alpha=alpha,
        bos_token_id=bos_token_id, eos_token_id=eos_token_id, source=f"preset")


def tiny(vocab_size: int = 320, **kw) -> M1Config:
    # 4 layers: 3 lightning + 1 softmax; block 32 so short prompts already cross block boundaries.
    return _preset(vocab_size=vocab_size, hidden_size=64, layers=4, heads=4, kv_heads=2, head_dim=16,
                   rotary_dim=8, intermediate=96, experts=4, top_k=2, block_size=32, period=4, **kw)


def small(vocab_size: int = 320, **kw) -> M1Config:
    # 16 layers (layers 7 and 15 softmax), M1's head geometry (128-dim heads, 8:1 GQA, RoPE on 64 dims).
    return _preset(vocab_size=vocab_size, hidden_size=1024, layers=16, heads=8, kv_heads=1, head_dim=128,
                   rotary_dim=64, intermediate=1536, experts=8, top_k=2, **kw)


def m1(**kw) -> M1Config:
    return _preset(vocab_size=200064, hidden_size=6144, layers=80, heads=64, kv_heads=8, head_dim=128,
                   rotary_dim=64, intermediate=9216, experts=32, top_k=2, **kw)


PRESETS = {"tiny": tiny, "small": small, "m1": m1}


def preset(name: str, **kw) -> M1Config:
    try:
        return PRESETS[name](**kw)
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}") from None
