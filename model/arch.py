"""Architecture specs: the shapes that decide parameters and FLOPs, for the model families the M1 paper
compares (MiniMax hybrid lightning/softmax MoE, DeepSeek-V3/R1 with MLA, Qwen3 MoE).

A spec is built from a Hugging Face config.json (or DeepSeek's inference `config_671B.json`); the
loader is picked by `model_type` through a registry. `NAMED` holds the specs the profiling commands
know by name; `load_spec` takes a name or a config path.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from m1bench.harness.core.files import InputError
from m1bench.model.published import DEEPSEEK_R1, QWEN3_235B_A22B
from m1bench.model.config import LIGHTNING, SOFTMAX, M1Config, read_config_json
from m1bench.model.presets import preset


class SpecError(InputError):
    """A config cannot be turned into a spec; the message names the source and the field."""


@dataclass(frozen=True)
class Attention:
    """One token mixer. kind: "softmax" (MHA/GQA), "mla" (DeepSeek multi-head latent attention) or
    "lightning" (M1's linear attention with decay, SiLU qkv and a sigmoid output gate)."""

    kind: str
    heads: int
    kv_heads: int = 0          # softmax: KV heads (GQA); lightning: = heads
    head_dim: int = 0          # q/k head dim (softmax, lightning)
    v_head_dim: int = 0
    qk_norm: bool = False      # Qwen3: RMSNorm on q and k per head (weights only; elementwise)
    # MLA
    q_lora_rank: int | None = None
    kv_lora_rank: int = 0
    qk_nope_dim: int = 0
    qk_rope_dim: int = 0

    @property
    def qk_dim(self) -> int:
        return self.qk_nope_dim + self.qk_rope_dim if self.kind == "mla" else self.head_dim


@dataclass(frozen=True)
class FFN:
    """A SwiGLU feed-forward: dense (experts == 0) or a routed MoE with optional shared experts."""

    intermediate: int          # dense width, or each routed expert's width
    experts: int = 0           # routed experts (0: dense FFN)
    top_k: int = 0
    shared_experts: int = 0
    shared_intermediate: int = 0

    @property
    def is_moe(self) -> bool:
        return self.experts > 0


@dataclass(frozen=True)
class Layer:
    attn: Attention
    ffn: FFN


@dataclass(frozen=True)
class ArchSpec:
    name: str
    hidden: int
    vocab: int
    layers: tuple[Layer, ...]
    tied_embeddings: bool = False
    lightning_block: int = 256  # prefill block of the lightning layers (intra-block FLOPs depend on it)
    source: str = field(default="<spec>", compare=False)

    def count(self, kind: str) -> int:
        return sum(1 for layer in self.layers if layer.attn.kind == kind)

    def summary(self) -> str:
        kinds = {k: self.count(k) for k in ("lightning", "softmax", "mla") if self.count(k)}
        return f"{self.name}: {len(self.layers)} layers (" + ", ".join(f"{n} {k}" for k, n in kinds.items()) + ")"

    def params(self) -> dict[str, int]:
        """Parameter counts. Vendors publish "activated" under different conventions, so all parts
        are given: `blocks_active` (decoder blocks, top-k + shared experts only; MiniMax's 45.9B),
        `embedding`, `lm_head` (0 when tied), `total` (everything, MTP modules excluded)."""
        total = active = 0
        for layer in self.layers:
            a = _attention_params(layer.attn, self.hidden)
            f_total, f_active = _ffn_params(layer.ffn, self.hidden)
            norms = 2 * self.hidden
            total += a + f_total + norms
            active += a + f_active + norms
        embedding = self.vocab * self.hidden
        lm_head = 0 if self.tied_embeddings else self.vocab * self.hidden
        return {"total": total + embedding + lm_head + self.hidden, "blocks_active": active,
                "blocks_total": total, "embedding": embedding, "lm_head": lm_head}


def _attention_params(a: Attention, hidden: int) -> int:
    if a.kind == "lightning":
        inner = a.heads * a.head_dim
        return hidden * 3 * inner + hidden * inner + inner * hidden + inner  # qkv, gate, out, norm
    if a.kind == "softmax":
        q, kv = a.heads * a.head_dim, a.kv_heads * a.head_dim
        o = a.heads * a.v_head_dim
        return hidden * q + hidden * kv + hidden * a.kv_heads * a.v_head_dim + o * hidden + (2 * a.head_dim if a.qk_norm else 0)
    if a.kind == "mla":
        q_out = a.heads * a.qk_dim
        q = hidden * q_out if a.q_lora_rank is None else hidden * a.q_lora_rank + a.q_lora_rank + a.q_lora_rank * q_out
        kv_a = hidden * (a.kv_lora_rank + a.qk_rope_dim) + a.kv_lora_rank
        kv_b = a.kv_lora_rank * a.heads * (a.qk_nope_dim + a.v_head_dim)
        return q + kv_a + kv_b + a.heads * a.v_head_dim * hidden
    raise SpecError(f"unknown attention kind {a.kind!r}")


def _ffn_params(f: FFN, hidden: int) -> tuple[int, int]:
    per = 3 * hidden * f.intermediate
    if not f.is_moe:
        return per, per
    shared = f.shared_experts * 3 * hidden * f.shared_intermediate
    router = hidden * f.experts
    return f.experts * per + shared + router, f.top_k * per + shared + router


# ---- loaders: config.json -> spec -------------------------------------------------------------------

LOADERS: dict[str, Callable[[dict, str], ArchSpec]] = {}


def loader(*model_types: str):
    def register(fn):
        for t in model_types:
            LOADERS[t] = fn
        return fn
    return register


def _need(raw: dict, key: str, source: str):
    if raw.get(key) is None:
        raise SpecError(f"{source}: required field '{key}' is missing")
    return raw[key]


@loader("minimax_m1", "minimax_text_01", "minimax")
def from_minimax(raw: dict, source: str) -> ArchSpec:
    return from_m1_config(M1Config.from_dict(raw, source=source), name=raw.get("_name", "minimax"))


def from_m1_config(c: M1Config, name: str) -> ArchSpec:
    def attn(kind: int) -> Attention:
        if kind == LIGHTNING:
            return Attention("lightning", c.num_attention_heads, c.num_attention_heads, c.head_dim, c.head_dim)
        return Attention("softmax", c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.head_dim)
    ffn = FFN(c.intermediate_size, c.num_local_experts, c.num_experts_per_tok)
    layers = tuple(Layer(attn(t), ffn) for t in c.attn_type_list)
    return ArchSpec(name, c.hidden_size, c.vocab_size, layers, c.tie_word_embeddings, c.block_size, c.source)


@loader("deepseek_v3", "deepseek_v2")
def from_deepseek(raw: dict, source: str) -> ArchSpec:
    g = lambda k: _need(raw, k, source)
    n_layers, dense = g("num_hidden_layers"), raw.get("first_k_dense_replace", 0)
    freq = raw.get("moe_layer_freq", 1)
    attn = Attention("mla", g("num_attention_heads"), g("num_attention_heads"), v_head_dim=g("v_head_dim"),
                     q_lora_rank=raw.get("q_lora_rank"), kv_lora_rank=g("kv_lora_rank"),
                     qk_nope_dim=g("qk_nope_head_dim"), qk_rope_dim=g("qk_rope_head_dim"))
    moe = FFN(g("moe_intermediate_size"), g("n_routed_experts"), g("num_experts_per_tok"),
              raw.get("n_shared_experts") or 0, g("moe_intermediate_size"))
    dense_ffn = FFN(g("intermediate_size"))
    layers = tuple(Layer(attn, moe if (i >= dense and i % freq == 0) else dense_ffn) for i in range(n_layers))
    return ArchSpec(raw.get("_name", "deepseek"), g("hidden_size"), g("vocab_size"), layers,
                    bool(raw.get("tie_word_embeddings", False)), source=source)


def from_deepseek_inference(raw: dict, source: str) -> ArchSpec:
    """DeepSeek-V3's own inference config (`configs/config_671B.json`: dim, n_layers, ...)."""
    keys = {"dim": "hidden_size", "inter_dim": "intermediate_size", "moe_inter_dim": "moe_intermediate_size",
            "n_layers": "num_hidden_layers", "n_dense_layers": "first_k_dense_replace",
            "n_heads": "num_attention_heads", "n_routed_experts": "n_routed_experts",
            "n_shared_experts": "n_shared_experts", "n_activated_experts": "num_experts_per_tok",
            "q_lora_rank": "q_lora_rank", "kv_lora_rank": "kv_lora_rank", "qk_nope_head_dim": "qk_nope_head_dim",
            "qk_rope_head_dim": "qk_rope_head_dim", "v_head_dim": "v_head_dim", "vocab_size": "vocab_size"}
    hf = {hf_key: raw[k] for k, hf_key in keys.items() if k in raw}
    if hf.get("q_lora_rank") == 0:  # the inference code uses 0 for "no query compression"
        hf["q_lora_rank"] = None
    return from_deepseek({**hf, "_name": raw.get("_name", "deepseek")}, source)


@loader("qwen3_moe", "qwen3")
def from_qwen(raw: dict, source: str) -> ArchSpec:
    g = lambda k: _need(raw, k, source)
    heads = g("num_attention_heads")
    head_dim = raw.get("head_dim") or g("hidden_size") // heads
    attn = Attention("softmax", heads, raw.get("num_key_value_heads") or heads, head_dim, head_dim, qk_norm=True)
    n_layers = g("num_hidden_layers")
    experts = raw.get("num_experts") or 0
    step, dense_only = raw.get("decoder_sparse_step", 1), set(raw.get("mlp_only_layers") or [])
    moe = FFN(raw.get("moe_intermediate_size") or 0, experts, raw.get("num_experts_per_tok") or 0)
    dense = FFN(g("intermediate_size"))
    is_moe = lambda i: experts > 0 and i not in dense_only and (i + 1) % step == 0
    layers = tuple(Layer(attn, moe if is_moe(i) else dense) for i in range(n_layers))
    return ArchSpec(raw.get("_name", "qwen"), g("hidden_size"), g("vocab_size"), layers,
                    bool(raw.get("tie_word_embeddings", False)), source=source)


def spec_from_config(raw: dict, source: str = "<dict>", name: str | None = None) -> ArchSpec:
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: expected a JSON object, got {type(raw).__name__}")
    if name:
        raw = {**raw, "_name": name}
    model_type = raw.get("model_type")
    if model_type is None and "dim" in raw and "n_layers" in raw:
        return from_deepseek_inference(raw, source)
    if model_type not in LOADERS:
        raise SpecError(f"{source}: field 'model_type' is {model_type!r}; profiling knows {sorted(LOADERS)} "
                        "(and DeepSeek's inference config with 'dim'/'n_layers')")
    return LOADERS[model_type](raw, source)


def load_config(path: str | Path) -> ArchSpec:
    raw, path = read_config_json(path, SpecError)
    return spec_from_config(raw, source=str(path), name=path.parent.name or path.stem)


def softmax_twin(spec: ArchSpec) -> ArchSpec:
    """The same model with every lightning layer replaced by the softmax layer of the same shapes
    (M1: attn_type_list all 1; the KV-head count is the softmax layers' one)."""
    softmax = next((l.attn for l in spec.layers if l.attn.kind == "softmax"), None)
    if softmax is None:
        raise SpecError(f"{spec.name}: has no softmax layer to copy into a twin")
    layers = tuple(replace(l, attn=softmax) if l.attn.kind == "lightning" else l for l in spec.layers)
    return replace(spec, name=f"{spec.name}-softmax", layers=layers)


def m1_twin_config(c: M1Config) -> M1Config:
    """The reference model's softmax twin: the same config with attn_type_list all softmax."""
    return replace(c, attn_type_list=[SOFTMAX] * c.num_hidden_layers)


def _preset_spec(name: str) -> Callable[[], ArchSpec]:
    return lambda: from_m1_config(preset(name), name=name)


NAMED: dict[str, Callable[[], ArchSpec]] = {
    "m1": _preset_spec("m1"),
    "m1-softmax": lambda: softmax_twin(from_m1_config(preset("m1"), name="m1")),
    "deepseek-r1": lambda: spec_from_config(DEEPSEEK_R1, source="published DeepSeek-R1 config.json", name="deepseek-r1"),
    "qwen3-235b": lambda: spec_from_config(QWEN3_235B_A22B, source="published Qwen3-235B-A22B config.json",
                                           name="qwen3-235b"),
    "small": _preset_spec("small"),
    "small-softmax": lambda: softmax_twin(from_m1_config(preset("small"), name="small")),
    "tiny": _preset_spec("tiny"),
    "tiny-softmax": lambda: softmax_twin(from_m1_config(preset("tiny"), name="tiny")),
}


def load_spec(name_or_path: str) -> ArchSpec:
    """A named spec (see NAMED) or a config.json path / checkpoint directory."""
    if name_or_path in NAMED:
        return NAMED[name_or_path]()
    path = Path(name_or_path)
    if path.exists():
        return load_config(path)
    raise SpecError(f"unknown model {name_or_path!r}: not one of {sorted(NAMED)} and no such config path")
