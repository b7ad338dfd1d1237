"""The engine benchmark's floors, checked against an independent count (the model's own parameters)
and its verdicts on a made-up result (the benchmark itself runs only on a GPU)."""
import pytest
import torch

from m1bench.harness.bench import engine
from m1bench.model.arch import m1_twin_config
from m1bench.model.m1 import M1ForCausalLM

CEIL = {"copy_GBps": 4000.0, "bf16_matmul_TFLOPs": 700.0}


@pytest.mark.parametrize("make", [lambda: engine.MODELS["small"][0](), engine.m1_slice])
def test_batch_one_reads_the_active_weights_and_the_lm_head(make):
    config = make()
    with torch.device("meta"):
        counts = M1ForCausalLM(config).num_parameters()  # active: attention, top-k experts, router, norms
    norms = (config.num_hidden_layers * 2 + 1) * config.hidden_size + config.num_attention_heads * config.head_dim * len(
        config.lightning_layers)  # two per layer, the final one, the lightning output norms
    want = 2 * (counts["active_per_token"] - norms + counts["embedding"])  # bf16; + the LM head's V x hidden
    floor = engine.decode_floor(config, 1, 4096, CEIL)
    assert floor["weight_bytes"] == pytest.approx(want, rel=1e-6)
    kv = 4096 * len(config.softmax_layers) * config.num_key_value_heads * config.head_dim * 2 * 2
    assert floor["kv_bytes"] == kv
    assert floor["memory_floor_ms"] == pytest.approx(floor["bytes"] / 4000e6)


def test_the_twins_cache_grows_eight_times_faster_in_the_small_preset():
    small = engine.MODELS["small"][0]()
    hybrid, twin = (engine.decode_floor(c, 1, 1 << 20, CEIL) for c in (small, m1_twin_config(small)))
    assert twin["kv_bytes"] == 8 * hybrid["kv_bytes"] == 8 << 30


def test_verdicts_follow_the_goals():
    row = lambda b, c, ms, floor=0.1: {"batch": b, "context": c, "step_ms": ms, "memory_floor_ms": floor,  # noqa: E731
                                       "over_memory_floor": ms / floor, "tokens_per_s": b / ms * 1e3}
    res = {"models": {"small/hybrid": {"decode": [row(1, 4096, 0.25), row(64, 4096, 0.5), row(1, 1 << 20, 0.5)],
                                       "prefill": [{"tokens": 1 << 20, "prefill_s": 10.0, "over_compute_floor": 1.6}]},
                      "small/softmax-twin": {"decode": [row(1, 4096, 0.2), row(1, 1 << 20, 2.5)], "prefill": []}}}
    t = engine.targets(res)
    assert t["small B=1 decode <= 3x memory floor at 4K"]["met"] is True
    assert t["small B=64 tokens/s >= 20x B=1"]["measured"] == pytest.approx(32.0)
    assert t["small hybrid decode faster than twin at every context >= 16K"]["met"] is True  # 4K is not counted
    assert t["small hybrid decode >= 4x twin at 1M"] == {"measured": 5.0, "met": True}
    assert t["small 1M prefill <= 1.5x compute floor"]["met"] is False
