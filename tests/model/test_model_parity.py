"""The reference model against transformers' MiniMaxForCausalLM, an implementation nobody here wrote."""
import dataclasses

import pytest
import torch
from transformers import MiniMaxConfig, MiniMaxForCausalLM

from m1bench.model.checkpoint import to_transformers_state_dict
from m1bench.model.config import M1Config, alibi_slopes, to_transformers_dict
from m1bench.model.layers import apply_partial_rope, rope_cos_sin
from m1bench.model.m1 import M1ForCausalLM
from m1bench.model.presets import tiny
from m1bench.model.tiny import init_random


def make_pair(attn_type_list, seed=0):
    # transformers' MiniMax rotates every head dim, so parity runs with rotary_dim == head_dim;
    # partial RoPE is checked on its own below.
    config = dataclasses.replace(tiny(), attn_type_list=attn_type_list, num_hidden_layers=len(attn_type_list),
                                 rotary_dim=16, block_size=32)
    ours = init_random(M1ForCausalLM(config), seed, std=0.1).eval()
    hf = MiniMaxForCausalLM(MiniMaxConfig(**to_transformers_dict(config), attn_implementation="eager")).eval()
    missing, unexpected = hf.load_state_dict(to_transformers_state_dict(ours.state_dict(), config), strict=False)
    assert not unexpected
    assert all(k.endswith(("slope_rate", "query_decay", "key_decay", "diagonal_decay")) for k in missing), missing
    for layer in hf.model.layers:
        attn = layer.self_attn
        if layer.block_type == "linear_attention":
            # One documented difference, set explicitly rather than absorbed by the tolerance: slopes
            # (transformers scales by 1 - l/(L-1+1e-5) + 1e-5, the M1 code by 1 - l/(L-1) + 1e-5).
            slopes = torch.tensor(config.lightning_slopes(attn.layer_idx))[:, None, None]
            q_decay, k_decay, diag_decay = attn.decay_factors(slopes)
            attn.slope_rate.copy_(slopes)
            attn.query_decay.copy_(q_decay)
            attn.key_decay.copy_(k_decay)
            attn.diagonal_decay.copy_(diag_decay)
    return config, ours, hf


MIXES = {"m1-like": [0, 0, 0, 1], "alternating": [1, 0, 1, 0], "all-lightning": [0, 0, 0], "all-softmax": [1, 1]}


@pytest.mark.parametrize("mix", sorted(MIXES))
@pytest.mark.parametrize("length", [1, 31, 33, 70])
def test_logits_match_transformers(mix, length):
    config, ours, hf = make_pair(MIXES[mix], seed=len(mix) + length)
    ids = torch.randint(0, config.vocab_size, (2, length), generator=torch.Generator().manual_seed(length))
    with torch.no_grad():
        expected = hf(ids).logits
        got = ours(ids)
    assert expected.abs().max() > 0.5  # large enough to be a meaningful comparison
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_cached_decode_matches_transformers():
    config, ours, hf = make_pair(MIXES["m1-like"])
    ids = torch.randint(0, config.vocab_size, (1, 40), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        out = hf(ids[:, :35], use_cache=True)
        cache = ours.new_cache(1)
        ours(ids[:, :35], cache)
        for t in range(35, 40):
            # transformers' MiniMaxCache.get_seq_length() reads layer 0, a lightning layer here, and returns 0,
            # so its default decode positions are wrong (RoPE at position 0); give it the true position.
            out = hf(ids[:, t:t + 1], past_key_values=out.past_key_values, use_cache=True,
                     position_ids=torch.tensor([[t]]))
            torch.testing.assert_close(ours(ids[:, t:t + 1], cache)[:, -1], out.logits[:, -1], atol=1e-4, rtol=0)


def test_slopes_are_alibi_with_layer_scaling():
    assert alibi_slopes(8) == pytest.approx([2 ** (-(h + 1)) for h in range(8)])
    assert alibi_slopes(64)[:2] == pytest.approx([2 ** (-8 / 64), 2 ** (-16 / 64)])
    assert len(alibi_slopes(6)) == 6  # non-power-of-two head counts use the ALiBi interleave
    config = dataclasses.replace(tiny(), num_hidden_layers=9, attn_type_list=[0] * 9)
    assert config.lightning_slopes(8) == pytest.approx([s * 1e-5 for s in alibi_slopes(4)])
    assert config.lightning_slopes(0) == pytest.approx([s * (1 + 1e-5) for s in alibi_slopes(4)])


def test_partial_rope_rotates_only_the_first_dims():
    x = torch.randn(1, 5, 3, 16, dtype=torch.float64)
    cos, sin = rope_cos_sin(torch.arange(5)[None], rotary_dim=8, theta=1e7)
    got = apply_partial_rope(x, cos.double(), sin.double())
    # independent formula: pair dim i with i + 4 as a complex number and rotate by pos * theta^(-2i/8)
    pos = torch.arange(5, dtype=torch.float64)[:, None]
    angle = pos * 1e7 ** (-torch.arange(4, dtype=torch.float64) * 2 / 8)
    z = torch.complex(x[..., :4], x[..., 4:8]) * torch.polar(torch.ones_like(angle), angle)[None, :, None, :]
    torch.testing.assert_close(got[..., :4], z.real, atol=1e-6, rtol=0)
    torch.testing.assert_close(got[..., 4:8], z.imag, atol=1e-6, rtol=0)
    assert torch.equal(got[..., 8:], x[..., 8:])


def test_transformers_config_reads_into_the_same_model():
    config = tiny()
    back = M1Config.from_dict(to_transformers_dict(config), source="hf.json")
    assert back.attn_type_list == config.attn_type_list and back.rotary_dim == config.rotary_dim
    assert back.layernorm_mlp_alpha == config.layernorm_mlp_alpha and back.postnorm
