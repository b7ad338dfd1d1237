"""Malformed configs in either schema and spoilt state files fail as InputErrors naming the file and
the field (never a TypeError from deep inside); the CLI side is tests/harness/cli/test_bad_inputs.py."""
import pytest

from m1bench.harness.core.files import InputError
from m1bench.model.config import ConfigError, M1Config, to_transformers_dict
from m1bench.model.presets import tiny


@pytest.mark.parametrize("field, value, why", [
    ("rope_theta", "1e7", "must be a number"),
    ("postnorm", 1, "must be true or false"),
    ("rms_norm_eps", True, "must be a number"),
    ("attn_type_list", [0, "1", 0, 1], "must be a list of integers"),
    ("eos_token_id", "eos", "must be an integer or a list of integers or null"),
    ("hidden_act", None, "must be a string"),
    ("model_type", ["minimax_m1"], "field 'model_type' must be one of"),
])
def test_every_m1_field_is_type_checked(field, value, why):
    with pytest.raises(ConfigError, match=f"^c.json: .*{why}") as e:
        M1Config.from_dict(tiny().to_dict() | {field: value}, source="c.json")
    assert field in str(e.value) and isinstance(e.value, InputError)


def test_a_list_of_eos_ids_is_a_valid_config():
    assert M1Config.from_dict(tiny().to_dict() | {"eos_token_id": [1, 2]}).eos_token_id == [1, 2]


@pytest.mark.parametrize("changes, field", [
    ({"layer_types": "linear_attention"}, "layer_types"),
    ({"layer_types": [["full_attention"]] * 4}, "layer_types"),
    ({"rope_parameters": 10000}, "rope_parameters"),
    ({"rope_parameters": {"partial_rotary_factor": "half"}}, "rope_parameters.partial_rotary_factor"),
    ({"head_dim": None, "hidden_size": "64"}, "hidden_size"),
    ({"head_dim": None, "num_attention_heads": None}, "num_attention_heads"),
])
def test_transformers_schema_fields_of_the_wrong_type_are_named(changes, field):
    raw = to_transformers_dict(tiny()) | changes
    with pytest.raises(ConfigError, match=f"^hf.json: (required )?field '{field}'"):
        M1Config.from_dict({k: v for k, v in raw.items() if v is not None}, source="hf.json")


def test_a_spoilt_state_file_is_named(tmp_path, tiny_dir):
    from m1bench.model.checkpoint import load_model
    from m1bench.model.state_io import StateError, load_state

    model = load_model(tiny_dir)
    for content in (b"", b"\x10" + b"\x00" * 7 + b"{}"):
        (tmp_path / "s.state").write_bytes(content)
        with pytest.raises(StateError, match=f"^{tmp_path / 's.state'}: not a complete safetensors file"):
            load_state(model, tmp_path / "s.state", "ckpt")
