"""Config validation and safetensors checkpoints: round trips and errors that name the culprit."""
import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from m1bench.model.checkpoint import (
    INDEX,
    CheckpointError,
    load_model,
    save_checkpoint,
    to_transformers_state_dict,
)
from m1bench.model.config import ConfigError, M1Config, to_transformers_dict
from m1bench.model.m1 import M1ForCausalLM
from m1bench.model.presets import tiny
from m1bench.model.tiny import init_random


def write_config(tmp_path, **changes):
    raw = tiny().to_dict() | changes
    (tmp_path / "config.json").write_text(json.dumps(raw))
    return tmp_path


@pytest.mark.parametrize("changes, field", [
    ({"attn_type_list": [0, 0, 1]}, "attn_type_list"),
    ({"attn_type_list": [0, 2, 0, 1]}, "attn_type_list"),
    ({"num_key_value_heads": 3}, "num_key_value_heads"),
    ({"rotary_dim": 17}, "rotary_dim"),
    ({"hidden_size": -4}, "hidden_size"),
    ({"num_experts_per_tok": 9}, "num_experts_per_tok"),
    ({"tie_word_embeddings": True}, "tie_word_embeddings"),
    ({"model_type": "llama"}, "model_type"),
])
def test_bad_config_names_the_field(tmp_path, changes, field):
    with pytest.raises(ConfigError, match=f"config.json: field '{field}'"):
        M1Config.load(write_config(tmp_path, **changes))


def test_missing_field_and_bad_json(tmp_path):
    raw = tiny().to_dict()
    del raw["num_local_experts"]
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="'num_local_experts' is missing"):
        M1Config.load(tmp_path)
    (tmp_path / "config.json").write_text('{\n  "vocab_size": 3,\n  oops\n}')
    with pytest.raises(ConfigError, match=r"config.json:3: invalid JSON"):
        M1Config.load(tmp_path)


def test_both_schemas_read_and_m1_schema_written(tmp_path):
    config = tiny()
    hf = to_transformers_dict(config)
    hf["layer_types"][0] = "sliding_attention"
    with pytest.raises(ConfigError, match="'layer_types' has unknown entry 'sliding_attention'"):
        M1Config.from_dict(hf, source="x.json")
    written = json.loads(config.save(tmp_path).read_text())
    assert written["model_type"] == "minimax_m1" and written["architectures"] == ["MiniMaxM1ForCausalLM"]
    assert "attn_type_list" in written and "layer_types" not in written
    assert M1Config.load(tmp_path) == config
    text01 = M1Config.from_dict(config.to_dict() | {"model_type": "minimax_text_01"})
    assert text01.to_dict()["architectures"] == ["MiniMaxText01ForCausalLM"]


@pytest.fixture
def tiny_model():
    return init_random(M1ForCausalLM(tiny()), seed=5).eval()


@pytest.mark.parametrize("shard_bytes", [2 << 30, 200_000])
def test_round_trip_single_and_sharded(tmp_path, tiny_model, shard_bytes):
    save_checkpoint(tiny_model, tmp_path, max_shard_bytes=shard_bytes)
    assert (tmp_path / INDEX).exists() == (shard_bytes < 2 << 30)
    loaded = load_model(tmp_path)
    ids = torch.arange(40)[None]
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids), tiny_model(ids), atol=0, rtol=0)


def test_bf16_load_and_transformers_named_checkpoint(tmp_path, tiny_model):
    assert load_model(save_checkpoint(tiny_model, tmp_path / "m1"), dtype=torch.bfloat16).dtype == torch.bfloat16
    hf_dir = tmp_path / "hf"
    hf_dir.mkdir()
    (hf_dir / "config.json").write_text(json.dumps(to_transformers_dict(tiny_model.config)))
    save_file(to_transformers_state_dict(tiny_model.state_dict(), tiny_model.config), hf_dir / "model.safetensors")
    ids = torch.arange(20)[None]
    with torch.no_grad():
        torch.testing.assert_close(load_model(hf_dir)(ids), tiny_model(ids), atol=0, rtol=0)


def _tamper(directory, fn):
    path = directory / "model.safetensors"
    state = load_file(path)
    fn(state)
    save_file(state, path)


def test_missing_unexpected_and_misshaped_tensors_are_named(tmp_path, tiny_model):
    save_checkpoint(tiny_model, tmp_path)
    name = "model.layers.1.self_attn.qkv_proj.weight"
    _tamper(tmp_path, lambda s: s.pop(name))
    with pytest.raises(CheckpointError, match=f"missing tensor '{name}'"):
        load_model(tmp_path)
    save_checkpoint(tiny_model, tmp_path)
    _tamper(tmp_path, lambda s: s.update({"model.layers.9.extra.weight": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match="unexpected tensor 'model.layers.9.extra.weight'"):
        load_model(tmp_path)
    save_checkpoint(tiny_model, tmp_path)
    _tamper(tmp_path, lambda s: s.update({"lm_head.weight": torch.zeros(3, 64)}))
    with pytest.raises(CheckpointError, match=r"'lm_head.weight' has shape \(3, 64\), the config wants \(320, 64\)"):
        load_model(tmp_path)


def test_missing_shard_is_named(tmp_path, tiny_model):
    save_checkpoint(tiny_model, tmp_path, max_shard_bytes=200_000)
    victim = sorted(tmp_path.glob("model-*.safetensors"))[1]
    victim.unlink()
    with pytest.raises(CheckpointError, match=victim.name):
        load_model(tmp_path)
