"""M1 model configuration: reads the MiniMax-M1 schema and transformers' MiniMax schema, validates,
and writes the M1 schema (the one real MiniMax-M1 checkpoints ship)."""
from __future__ import annotations

import json
import math
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from m1bench.harness.core.files import InputError, read_json

M1_MODEL_TYPES = {"minimax_m1": "MiniMaxM1ForCausalLM", "minimax_text_01": "MiniMaxText01ForCausalLM"}
HF_MODEL_TYPE = "minimax"
LIGHTNING, SOFTMAX = 0, 1


class ConfigError(InputError):
    """A config field is missing or wrong; the message names the source and the field."""


@dataclass
class M1Config:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rotary_dim: int
    intermediate_size: int
    num_local_experts: int
    num_experts_per_tok: int
    attn_type_list: list[int]
    rope_theta: float = 10_000_000.0
    rms_norm_eps: float = 1e-5
    postnorm: bool = True
    layernorm_full_attention_alpha: float = 1.0
    layernorm_full_attention_beta: float = 1.0
    layernorm_linear_attention_alpha: float = 1.0
    layernorm_linear_attention_beta: float = 1.0
    layernorm_mlp_alpha: float = 1.0
    layernorm_mlp_beta: float = 1.0
    max_position_embeddings: int = 10_240_000
    block_size: int = 256  # transformers' lightning block; results do not depend on it, kept for its schema
    bos_token_id: int | list[int] | None = None
    eos_token_id: int | list[int] | None = None  # transformers' configs may list several
    tie_word_embeddings: bool = False
    hidden_act: str = "silu"
    model_type: str = "minimax_m1"
    torch_dtype: str = "bfloat16"
    source: str = field(default="<dict>", compare=False, repr=False)

    # ---- derived facts -------------------------------------------------------------------
    @property
    def lightning_layers(self) -> list[int]:
        return [i for i, t in enumerate(self.attn_type_list) if t == LIGHTNING]

    @property
    def softmax_layers(self) -> list[int]:
        return [i for i, t in enumerate(self.attn_type_list) if t == SOFTMAX]

    def layer_alpha_beta(self, layer: int) -> tuple[float, float]:
        if self.attn_type_list[layer] == LIGHTNING:
            return self.layernorm_linear_attention_alpha, self.layernorm_linear_attention_beta
        return self.layernorm_full_attention_alpha, self.layernorm_full_attention_beta

    def lightning_slopes(self, layer: int) -> list[float]:
        """Per-head decay s_{h,l} = s_h (1 - l/(L-1) + 1e-5), with s_h the ALiBi slopes (M1 code)."""
        L = self.num_hidden_layers
        factor = 1 - layer / (L - 1) + 1e-5 if L > 1 else 1 + 1e-5
        return [s * factor for s in alibi_slopes(self.num_attention_heads)]

    # ---- validation ----------------------------------------------------------------------
    def __post_init__(self):
        self.validate()

    def _fail(self, name: str, why: str):
        raise ConfigError(f"{self.source}: field '{name}' {why}")

    def validate(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            value = getattr(self, f.name)
            if not _is_a(value, hints[f.name]):
                self._fail(f.name, f"must be {_type_words(hints[f.name])}, got {value!r}")
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "head_dim", "intermediate_size", "num_local_experts",
                     "num_experts_per_tok", "block_size", "max_position_embeddings"):
            if getattr(self, name) <= 0:
                self._fail(name, f"must be a positive integer, got {getattr(self, name)!r}")
        if len(self.attn_type_list) != self.num_hidden_layers:
            self._fail("attn_type_list", f"must list one entry per layer: got {len(self.attn_type_list)} entries for "
                                         f"num_hidden_layers={self.num_hidden_layers}")
        bad = [i for i, t in enumerate(self.attn_type_list) if t not in (LIGHTNING, SOFTMAX)]
        if bad:
            self._fail("attn_type_list", f"entries must be 0 (lightning) or 1 (softmax); entry {bad[0]} "
                                         f"is {self.attn_type_list[bad[0]]!r}")
        if self.num_attention_heads % self.num_key_value_heads:
            self._fail("num_key_value_heads", f"({self.num_key_value_heads}) must divide "
                                              f"num_attention_heads ({self.num_attention_heads})")
        if self.rotary_dim <= 0 or self.rotary_dim > self.head_dim or self.rotary_dim % 2:
            self._fail("rotary_dim", f"must be even and in 2..head_dim ({self.head_dim}), got {self.rotary_dim}")
        if self.num_experts_per_tok > self.num_local_experts:
            self._fail("num_experts_per_tok", f"({self.num_experts_per_tok}) exceeds num_local_experts "
                                              f"({self.num_local_experts})")
        if self.tie_word_embeddings:
            self._fail("tie_word_embeddings", "must be false: M1 has a separate lm_head")
        if self.hidden_act != "silu":
            self._fail("hidden_act", f"must be 'silu', got {self.hidden_act!r}")
        if self.model_type not in M1_MODEL_TYPES:
            self._fail("model_type", f"must be one of {sorted(M1_MODEL_TYPES)}, got {self.model_type!r}")

    # ---- (de)serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict:
        """The M1 schema, as in a MiniMax-M1 checkpoint's config.json."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "source"}
        d["architectures"] = [M1_MODEL_TYPES[self.model_type]]
        return dict(sorted(d.items()))

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / "config.json"
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def from_dict(cls, raw: dict, source: str = "<dict>") -> "M1Config":
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(raw).__name__}")
        model_type = raw.get("model_type")
        if model_type == HF_MODEL_TYPE:
            raw = _from_transformers_schema(raw, source)
        elif not isinstance(model_type, str) or model_type not in M1_MODEL_TYPES:
            raise ConfigError(f"{source}: field 'model_type' must be one of "
                              f"{sorted([*M1_MODEL_TYPES, HF_MODEL_TYPE])}, got {model_type!r}")
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in raw.items() if k in known}
        kwargs.setdefault("head_dim", _derived_head_dim(raw, source))
        kwargs.setdefault("rotary_dim", kwargs["head_dim"])
        if "torch_dtype" not in raw and isinstance(raw.get("dtype"), str):
            kwargs["torch_dtype"] = raw["dtype"]
        missing = [f.name for f in fields(cls) if f.name not in kwargs and not _has_default(f)]
        if missing:
            raise ConfigError(f"{source}: required field '{missing[0]}' is missing")
        return cls(**kwargs, source=source)

    @classmethod
    def load(cls, path: str | Path) -> "M1Config":
        raw, path = read_config_json(path, ConfigError)
        return cls.from_dict(raw, source=str(path))


def read_config_json(path: str | Path, error: type[InputError]) -> tuple[dict, Path]:
    """A checkpoint's config.json (or the file itself) -> (parsed dict, path); `error` names the file."""
    path = Path(path)
    if not path.exists():
        raise error(f"{path}: no such checkpoint directory",
                    hint=f"`m1bench model init --out {path}` writes a seeded random tiny checkpoint there")
    if path.is_dir():
        path = path / "config.json"
    return read_json(path, error), path


def _is_a(value, hint) -> bool:
    """isinstance for the annotations M1Config uses (a bool is no int here, an int is a float)."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return any(_is_a(value, arg) for arg in typing.get_args(hint))
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_is_a(v, item) for v in value)
    if hint is type(None):
        return value is None
    if isinstance(value, bool):
        return hint is bool
    return isinstance(value, (int, float) if hint is float else hint)


def _type_words(hint) -> str:
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return " or ".join(_type_words(arg) for arg in typing.get_args(hint))
    if typing.get_origin(hint) is list:
        return f"a list of {_type_words(typing.get_args(hint)[0]).split(' ', 1)[1]}s"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            type(None): "null"}.get(hint, hint.__name__)


def _has_default(f) -> bool:
    from dataclasses import MISSING
    return f.default is not MISSING or f.default_factory is not MISSING


def _derived_head_dim(raw: dict, source: str) -> int:
    if raw.get("head_dim"):
        return raw["head_dim"]
    for name in ("hidden_size", "num_attention_heads"):
        if name not in raw:
            raise ConfigError(f"{source}: required field '{name}' is missing")
        if not isinstance(raw[name], int) or isinstance(raw[name], bool) or raw[name] <= 0:
            raise ConfigError(f"{source}: field '{name}' must be a positive integer, got {raw[name]!r}")
    return raw["hidden_size"] // raw["num_attention_heads"]


def _from_transformers_schema(raw: dict, source: str) -> dict:
    """Map transformers' MiniMaxConfig keys onto the M1 schema (transformers' model is always postnorm)."""
    out = dict(raw)
    names = {"linear_attention": LIGHTNING, "full_attention": SOFTMAX}
    layer_types = raw.get("layer_types")
    if layer_types is None:
        raise ConfigError(f"{source}: required field 'layer_types' is missing")
    if not isinstance(layer_types, list):
        raise ConfigError(f"{source}: field 'layer_types' must be a list, got {layer_types!r}")
    unknown = [t for t in layer_types if not isinstance(t, str) or t not in names]
    if unknown:
        raise ConfigError(f"{source}: field 'layer_types' has unknown entry {unknown[0]!r} "
                          f"(want 'linear_attention' or 'full_attention')")
    out["attn_type_list"] = [names[t] for t in layer_types]
    for hf, m1 in (("full_attn_alpha_factor", "layernorm_full_attention_alpha"),
                   ("full_attn_beta_factor", "layernorm_full_attention_beta"),
                   ("linear_attn_alpha_factor", "layernorm_linear_attention_alpha"),
                   ("linear_attn_beta_factor", "layernorm_linear_attention_beta"),
                   ("mlp_alpha_factor", "layernorm_mlp_alpha"),
                   ("mlp_beta_factor", "layernorm_mlp_beta")):
        if hf in raw:
            out[m1] = raw[hf]
    rope = raw.get("rope_parameters") or {}
    if not isinstance(rope, dict):
        raise ConfigError(f"{source}: field 'rope_parameters' must be an object, got {rope!r}")
    if "rope_theta" in rope:
        out["rope_theta"] = rope["rope_theta"]
    head_dim = _derived_head_dim(raw, source)
    if "partial_rotary_factor" in rope:
        factor = rope["partial_rotary_factor"]
        if not isinstance(factor, (int, float)) or isinstance(factor, bool):
            raise ConfigError(f"{source}: field 'rope_parameters.partial_rotary_factor' must be a number, "
                              f"got {factor!r}")
        out["rotary_dim"] = int(head_dim * factor)
    out["postnorm"] = True
    out["model_type"] = "minimax_m1"
    return out


def alibi_slopes(n_heads: int) -> list[float]:
    """ALiBi slopes as the M1 code builds them: 2^(-8(h+1)/n) for a power-of-two n, and the ALiBi
    interleaving for other head counts."""
    def power_of_2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start ** i for i in range(n)]
    if math.log2(n_heads).is_integer():
        return power_of_2(n_heads)
    closest = 2 ** math.floor(math.log2(n_heads))
    return power_of_2(closest) + alibi_slopes(2 * closest)[0::2][: n_heads - closest]


def every_nth_softmax(n_layers: int, period: int = 8) -> list[int]:
    """M1's layer mix: 0-based layers period-1, 2*period-1, ... are softmax, the rest lightning."""
    return [SOFTMAX if (i + 1) % period == 0 else LIGHTNING for i in range(n_layers)]


def deepnorm_alpha(n_layers: int) -> float:
    """M1 uses alpha = (2L)^(1/4) on every residual branch (3.5565588200778455 for L = 80)."""
    return (2 * n_layers) ** 0.25


def to_transformers_dict(config: M1Config) -> dict:
    """The same model in transformers' MiniMaxConfig schema (model_type "minimax").
    transformers' MiniMax rotates all head dims, so only configs with rotary_dim == head_dim map exactly."""
    names = {LIGHTNING: "linear_attention", SOFTMAX: "full_attention"}
    c = config
    return {
        "model_type": HF_MODEL_TYPE, "architectures": ["MiniMaxForCausalLM"],
        "vocab_size": c.vocab_size, "hidden_size": c.hidden_size, "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.num_hidden_layers, "num_attention_heads": c.num_attention_heads,
        "num_key_value_heads": c.num_key_value_heads, "head_dim": c.head_dim,
        "num_local_experts": c.num_local_experts, "num_experts_per_tok": c.num_experts_per_tok,
        "rms_norm_eps": c.rms_norm_eps, "max_position_embeddings": c.max_position_embeddings,
        "layer_types": [names[t] for t in c.attn_type_list], "block_size": c.block_size,
        "rope_parameters": {"rope_type": "default", "rope_theta": c.rope_theta,
                            "partial_rotary_factor": c.rotary_dim / c.head_dim},
        "full_attn_alpha_factor": c.layernorm_full_attention_alpha,
        "full_attn_beta_factor": c.layernorm_full_attention_beta,
        "linear_attn_alpha_factor": c.layernorm_linear_attention_alpha,
        "linear_attn_beta_factor": c.layernorm_linear_attention_beta,
        "mlp_alpha_factor": c.layernorm_mlp_alpha, "mlp_beta_factor": c.layernorm_mlp_beta,
        "tie_word_embeddings": False, "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id,
    }
