"""A checkpoint that transformers itself wrote (a random MiniMaxForCausalLM, `save_pretrained`:
model_type "minimax", layer_types, the decay buffers it persists) loads in m1bench, and `m1bench
generate` gives transformers' own greedy tokens on it."""
import json
import shutil

import pytest
import torch
from transformers import MiniMaxConfig, MiniMaxForCausalLM

from m1bench.harness.cli import main
from m1bench.model.checkpoint import CheckpointError, load_model
from m1bench.model.config import to_transformers_dict
from m1bench.model.presets import tiny
from m1bench.model.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tiny_dir):
    import dataclasses

    d = tmp_path_factory.mktemp("hf-minimax")
    # M1's layer mix (lightning first); full rotary dims, which is what transformers' MiniMax rotates
    config = dataclasses.replace(tiny(), attn_type_list=[0, 0, 0, 1], num_hidden_layers=4, rotary_dim=16)
    torch.manual_seed(0)
    hf = MiniMaxForCausalLM(MiniMaxConfig(**to_transformers_dict(config), attn_implementation="eager",
                                          initializer_range=0.1)).eval()
    hf.save_pretrained(d)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_dir / name, d / name)
    return d, hf


def test_the_saved_checkpoint_is_transformers_own(saved):
    d, _ = saved
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["model_type"] == "minimax" and "layer_types" in cfg
    from safetensors import safe_open
    with safe_open(str(d / "model.safetensors"), "pt") as f:
        assert any(k.endswith("self_attn.slope_rate") for k in f.keys())


def test_m1bench_generate_gives_transformers_greedy_tokens(saved, tmp_path):
    d, hf = saved
    out = tmp_path / "gen.json"
    main(["generate", "--model", str(d), "--prompt", "Name three primes.", "--temperature", "0",
          "--max-new-tokens", "24", "--json", str(out)])
    got = json.loads(out.read_text())
    prompt = torch.tensor([got["prompt_token_ids"]])
    with torch.no_grad():
        want = hf.generate(prompt, max_new_tokens=24, do_sample=False, eos_token_id=None,
                           pad_token_id=0)[0, prompt.shape[1]:].tolist()
    n = len(got["token_ids"])
    assert n >= 8 and got["token_ids"] == want[:n]  # m1bench stops at EOS; transformers was told not to
    ours = load_model(d).eval()
    with torch.no_grad():
        ids = torch.tensor([got["prompt_token_ids"] + got["token_ids"]])
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=2e-5, rtol=0)  # eps 1e-5 instead: 1.8e-4


def test_a_stored_slope_rate_that_disagrees_with_the_config_is_refused(saved, tmp_path):
    from safetensors.torch import load_file, save_file

    d, _ = saved
    bad = tmp_path / "bad"
    shutil.copytree(d, bad)
    state = load_file(str(bad / "model.safetensors"))
    state["model.layers.1.self_attn.slope_rate"] = state["model.layers.1.self_attn.slope_rate"] * 2
    save_file(state, str(bad / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="slope_rate of layer 1"):
        load_model(bad)
    assert load_tokenizer(bad) is not None
